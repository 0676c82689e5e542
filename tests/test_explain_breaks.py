"""explain() and the other views of graph breaks: one record per break with its reason, the
user's file:line and the line's text, the inlined call stack, a hint; graph and op counts;
counters["graph_break"]; fullgraph=True and error_on_graph_break raising (or not) Unsupported
with the user's file:line. Expected lines are found by a marker comment on the source line."""
import inspect
import os
import zlib

import pytest
import torch

import bytegraph

THIS = os.path.abspath(__file__)


def line_of(fn, marker):
    lines, start = inspect.getsourcelines(fn)
    hits = [start + i for i, text in enumerate(lines) if marker in text]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def text_of(lineno):
    with open(THIS) as f:
        return f.read().splitlines()[lineno - 1].strip()


def _dis(x):
    return x * 2


dis = bytegraph.disable(_dis)


def k_print(x):
    y = x.sin()
    print("hello")  # BREAK
    return y + 1


def k_graph_break(x):
    y = x.sin()
    bytegraph.graph_break()  # BREAK
    return y + 1


def k_item(x):
    s = x.sum().item()  # BREAK
    return x * s


def k_tolist(x):
    vals = x.tolist()  # BREAK
    return x + vals[0]


def k_numpy(x):
    arr = x.numpy()  # BREAK
    return x * 2, arr


def k_if_tensor(x):
    if x.sum() > 0:  # BREAK
        return x + 1
    return x - 1


def k_disabled(x):
    y = x.cos()
    z = dis(y)  # BREAK
    return z + 1


def k_c_function(x):
    y = x.cos()
    c = zlib.adler32(b"abc")  # BREAK
    return y + c


KINDS = [(k_print, ("print",)), (k_graph_break, ("graph_break",)), (k_item, ("item",)),
         (k_tolist, ("tolist",)), (k_numpy, ("numpy",)),
         (k_if_tensor, ("bool", "branch", "data-dependent", "condition", "jump", "if")),
         (k_disabled, ("disable",)), (k_c_function, ("adler32",))]
KIND_IDS = [f.__name__ for f, _ in KINDS]


@pytest.mark.parametrize("fn,words", KINDS, ids=KIND_IDS)
def test_break_record_fields(fn, words):
    out = bytegraph.explain(fn)(torch.randn(4))
    assert out.graph_break_count == 1, str(out)
    rec = out.break_reasons[0]
    lineno = line_of(fn, "# BREAK")
    assert isinstance(rec.reason, str) and any(w in rec.reason.lower() for w in words), rec.reason
    assert os.path.abspath(rec.filename) == THIS, rec.filename
    assert rec.lineno == lineno, (rec.lineno, lineno)
    assert rec.line == text_of(lineno), rec.line
    assert isinstance(rec.hint, str) and rec.hint.strip(), "hint is empty"
    assert isinstance(rec.stack, list) and len(rec.stack) == 1
    assert fn.__name__ in rec.stack[0] and f"{os.path.basename(THIS)}:{lineno}" in rec.stack[0]
    s = str(rec)
    assert rec.reason in s and f"{os.path.basename(THIS)}:{lineno}" in s and rec.line in s


@pytest.mark.parametrize("fn,words", KINDS, ids=KIND_IDS)
def test_fullgraph_raises_with_file_line(fn, words):
    c = bytegraph.compile(fn, backend="eager", fullgraph=True)
    with pytest.raises(bytegraph.Unsupported) as info:
        c(torch.randn(4))
    assert f"{os.path.basename(THIS)}:{line_of(fn, '# BREAK')}" in str(info.value), str(info.value)


def two_breaks(x):
    y = x.sin()
    print("one")  # FIRST
    z = y.cos() + 1
    bytegraph.graph_break()  # SECOND
    return z * 2


def test_graph_count_ops_per_graph_and_order():
    out = bytegraph.explain(two_breaks)(torch.randn(4))
    assert out.graph_count == 3 and len(out.graphs) == 3, str(out)
    assert out.graph_break_count == 2
    assert len(out.ops_per_graph) == 3
    assert [len(ops) for ops in out.ops_per_graph] == [1, 2, 1], out.ops_per_graph
    assert "sin" in out.ops_per_graph[0][0] and "cos" in out.ops_per_graph[1][0]
    assert out.op_count == 4
    lines = [r.lineno for r in out.break_reasons]
    assert lines == [line_of(two_breaks, "# FIRST"), line_of(two_breaks, "# SECOND")]


def test_explain_str_is_readable():
    out = bytegraph.explain(two_breaks)(torch.randn(4))
    s = str(out)
    assert "Graph Count: 3" in s and "Graph Break Count: 2" in s
    for r in out.break_reasons:
        assert r.reason in s and f"{os.path.basename(THIS)}:{r.lineno}" in s and r.line in s
    assert s.index(f":{line_of(two_breaks, '# FIRST')}") < s.index(f":{line_of(two_breaks, '# SECOND')}")


def inner(x):
    y = x * 3
    print("deep")  # DEEP
    return y


def middle(x):
    return inner(x + 1) - 1  # CALL2


def outer(x):
    return middle(x.exp()) * 2  # CALL1


def test_inlined_call_stack_depth2():
    out = bytegraph.explain(outer)(torch.randn(4))
    assert out.graph_break_count >= 1
    rec = out.break_reasons[0]
    base = os.path.basename(THIS)
    assert rec.lineno == line_of(inner, "# DEEP") and rec.line == text_of(rec.lineno)
    assert len(rec.stack) == 3, rec.stack
    expected = [("outer", line_of(outer, "# CALL1")), ("middle", line_of(middle, "# CALL2")),
                ("inner", line_of(inner, "# DEEP"))]
    for entry, (name, lineno) in zip(rec.stack, expected):
        assert name in entry and f"{base}:{lineno}" in entry, (entry, name, lineno)
    s = str(rec)
    assert all(e in s for e in rec.stack)


def test_fullgraph_names_the_inlined_line():
    with pytest.raises(bytegraph.Unsupported) as info:
        bytegraph.compile(outer, backend="eager", fullgraph=True)(torch.randn(4))
    assert f"{os.path.basename(THIS)}:{line_of(inner, '# DEEP')}" in str(info.value)


def loop_break(x):
    for i in range(2):
        x = x + i
        print(i)  # LOOP
    return x


def test_breaks_in_a_loop_point_at_the_loop_line():
    out = bytegraph.explain(loop_break)(torch.randn(4))
    assert out.graph_break_count >= 1
    assert {r.lineno for r in out.break_reasons} == {line_of(loop_break, "# LOOP")}


def test_counters_graph_break_by_reason():
    c = bytegraph.compile(two_breaks, backend="eager")
    c(torch.randn(4))
    counted = dict(bytegraph.counters["graph_break"])
    assert sum(counted.values()) == 2, counted
    assert any("print" in k for k in counted) and any("graph_break" in k for k in counted), counted
    c(torch.randn(4))                     # a cache hit adds nothing
    assert dict(bytegraph.counters["graph_break"]) == counted
    bytegraph.reset()
    assert sum(bytegraph.counters["graph_break"].values()) == 0


def test_error_on_graph_break_true_raises_without_fullgraph():
    c = bytegraph.compile(k_print, backend="eager")
    with bytegraph.error_on_graph_break(True):
        with pytest.raises(bytegraph.Unsupported) as info:
            c(torch.randn(4))
    assert f"{os.path.basename(THIS)}:{line_of(k_print, '# BREAK')}" in str(info.value)


def test_error_on_graph_break_true_as_decorator():
    c = bytegraph.compile(k_item, backend="eager")

    @bytegraph.error_on_graph_break(True)
    def call(x):
        return c(x)
    with pytest.raises(bytegraph.Unsupported):
        call(torch.randn(4))


def test_error_on_graph_break_false_overrides_fullgraph():
    graphs = []

    def backend(gm, ex):
        graphs.append(gm)
        return gm.forward
    c = bytegraph.compile(two_breaks, backend=backend, fullgraph=True)
    x = torch.randn(4)
    with bytegraph.error_on_graph_break(False):
        out = c(x.clone())
    torch.testing.assert_close(out, two_breaks(x.clone()))
    assert len(graphs) == 3


def test_error_on_graph_break_false_as_decorator():
    c = bytegraph.compile(k_tolist, backend="eager", fullgraph=True)
    call = bytegraph.error_on_graph_break(False)(c)
    x = torch.randn(4)
    torch.testing.assert_close(call(x), k_tolist(x))


def test_error_on_graph_break_restores_previous_mode():
    c = bytegraph.compile(k_print, backend="eager")
    with bytegraph.error_on_graph_break(True):
        pass
    x = torch.randn(4)
    torch.testing.assert_close(c(x), k_print(x))       # not raising after the block


def test_error_on_graph_break_rejects_non_bool():
    with pytest.raises(TypeError):
        bytegraph.error_on_graph_break(1)
