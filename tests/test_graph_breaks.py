"""Graph breaks: the graph is split where the trace cannot go on, the code runs in Python,
and compiled code resumes (policy/breaks.py, runtime/resume.py, bytecode/resume.py).

Every test is differential: eager and compiled results, printed output and Python state
are compared; graph counts are the regions between breaks that hold tensor work; the
second call is a pure cache hit."""
import contextlib
import io
import logging

import pytest
import torch

import bytegraph
from differential import not_compiled


class Counting:
    def __init__(self):
        self.graphs = []

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return gm.forward


def run_both(fn, make_args, graphs=None, calls=2):
    """Run fn eagerly and compiled on fresh equal arguments; compare results and stdout."""
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(fn, backend=be)
    counts = []
    for i in range(calls):
        ea, ca = make_args(), make_args()
        out_e, out_c = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out_e):
            re_ = fn(*ea)
        with contextlib.redirect_stdout(out_c):
            rc = c(*ca)
        assert out_e.getvalue() == out_c.getvalue()
        assert_same(re_, rc)
        assert_same(ea, ca)
        counts.append(len(be.graphs) + not_compiled())   # regions
    if graphs is not None:
        assert counts[0] == graphs, f"{counts[0]} graphs, expected {graphs}"
    assert counts[-1] == counts[0], "the second call compiled again"
    assert bytegraph.counters["recompiles"]["total"] == 0
    return c, be


def assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert a.requires_grad == b.requires_grad
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        assert type(a) is type(b)
        assert_same(vars(a), vars(b))
    else:
        assert a == b


def t(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return lambda: torch.randn(*shape, generator=g.manual_seed(seed))


# ---------------------------------------------------------------------------
# breaks that keep the trace going

def test_print_splits_into_two_graphs():
    def f(x):
        y = x.sin()
        print("y", y.shape)
        return y.cos()
    run_both(f, lambda: (torch.ones(3),), graphs=2)


def test_print_in_loop_is_one_compile():
    def f(x):
        for i in range(4):
            x = x * 2
            print("step", i)
        return x
    c, be = run_both(f, lambda: (torch.ones(3),), graphs=4)
    assert bytegraph.counters["frames"]["total"] == 1
    assert len(be.graphs) == 1          # the four iterations' graphs are the same: compiled once


def test_explicit_graph_break_and_side_effects_in_order():
    def f(x, log):
        log.append(1)
        y = x + 1
        bytegraph.graph_break()
        log.append(len(log))
        print(log)
        return y * 2
    run_both(f, lambda: (torch.ones(2), []), graphs=2)


def test_item_printed_and_returned():
    def f(x):
        v = x.sum().item()
        print(v)
        return x + 1, v
    run_both(f, lambda: (torch.ones(3),), graphs=2)


def test_new_list_printed_then_mutated_keeps_identity():
    def f(x):
        out = [x + 1]
        print(len(out))
        out.append(x * 2)
        return out, out
    c, _ = run_both(f, lambda: (torch.ones(2),))
    r = c(torch.ones(2))
    assert r[0] is r[1] and len(r[0]) == 2


def test_print_in_inlined_function_depth_two():
    def inner(x):
        print("inner")
        return x.cos()

    def mid(x):
        return inner(x + 1) * 2

    def f(x):
        return mid(x.sin())
    run_both(f, lambda: (torch.ones(3),), graphs=2)


def test_print_under_no_grad():
    def f(x):
        with torch.no_grad():
            y = x * 2
            print("in no_grad")
            z = y + 1
        return z, x * 3
    run_both(f, lambda: (torch.ones(3, requires_grad=True),), graphs=2)


# ---------------------------------------------------------------------------
# breaks that stop the trace and resume

def test_tensor_branch_both_ways():
    def f(x):
        y = x * 2
        if y.sum() > 0:
            return y + 1
        return y - 1
    run_both(f, lambda: (torch.ones(3),), graphs=2)
    run_both(f, lambda: (-torch.ones(3),), graphs=2)


def test_item_branch_is_not_specialized_on_the_value():
    def f(x):
        v = x.sum().item()
        if v > 0:
            y = x * 2
        else:
            y = x * 3
        return y, int(v * 10)
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(f, backend=be)
    for x in (torch.ones(3), torch.full((3,), 0.5), torch.full((3,), 2.0)):
        assert_same(f(x), c(x))
    assert bytegraph.counters["recompiles"]["total"] == 0


def test_disabled_call_inside_nested_function():
    @bytegraph.disable
    def ext(t, log):
        log.append("ext")
        return t * 10

    def helper(x, log):
        y = ext(x + 1, log)
        return y.relu()

    def f(x, log):
        return helper(x.sin(), log) + 1
    run_both(f, lambda: (torch.ones(3), []), graphs=2)    # [sin, +1] ext [relu, +1]


def test_break_in_loop_over_modules():
    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            y = self.lin(x)
            if y.mean() > 0:
                return y.relu()
            return y.tanh()

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList(Layer() for _ in range(3))

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                x = layer(x) + i
            return x
    torch.manual_seed(0)
    m = M()
    x = torch.randn(2, 4)
    bytegraph.reset()
    c = bytegraph.compile(m, backend="eager")
    assert_same(m(x), c(x))
    n = bytegraph.counters["frames"]["total"]
    assert_same(m(x), c(x))
    assert bytegraph.counters["frames"]["total"] == n


def test_exception_from_python_code_reaches_user_handler():
    @bytegraph.disable
    def boom(t):
        if t.sum() > 10:
            raise ValueError("big")
        return t + 1

    def f(x):
        y = x * 2
        try:
            z = boom(y)
        except ValueError:
            z = y - 100
        finally:
            y = y + 0.5
        return z, y
    run_both(f, lambda: (torch.ones(3),))
    run_both(f, lambda: (torch.full((3,), 10.0),))


def test_user_context_manager_sees_exception_and_suppresses():
    @bytegraph.disable
    def boom(t):
        if t.sum() > 10:
            raise KeyError("k")
        return t + 1

    class Ctx:
        def __init__(self):
            self.log = []

        def __enter__(self):
            self.log.append("enter")
            return self

        def __exit__(self, typ, val, tb):
            self.log.append(("exit", typ))
            return True

    def f(x, ctx):
        y = x
        with ctx:
            y = boom(x) * 2
        return y
    run_both(f, lambda: (torch.ones(3), Ctx()))
    run_both(f, lambda: (torch.full((3,), 5.0), Ctx()))


def test_no_grad_restored_around_resume():
    @bytegraph.disable
    def ext(t):
        return t * 2

    def f(x):
        with torch.no_grad():
            y = ext(x) + 1
        return y, x * 2, torch.is_grad_enabled()
    run_both(f, lambda: (torch.ones(3, requires_grad=True),))


def test_grads_flow_through_graphs_and_breaks():
    def f(x, w):
        y = (x @ w).sin()
        print("mid")
        if y.sum() > -100:
            y = y * 2
        return y.sum()
    x = torch.randn(3, 4)
    w1 = torch.randn(4, 2, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_()
    f(x, w1).backward()
    bytegraph.compile(f, backend="eager")(x, w2).backward()
    torch.testing.assert_close(w1.grad, w2.grad)


# ---------------------------------------------------------------------------
# control and observability

def test_fullgraph_raises_at_the_first_break():
    def f(x):
        y = x + 1
        print("no")
        return y
    with pytest.raises(bytegraph.Unsupported) as info:
        bytegraph.compile(f, backend="eager", fullgraph=True)(torch.ones(2))
    assert f"{__file__}:{f.__code__.co_firstlineno + 2}" in str(info.value)


def test_error_on_graph_break_both_ways():
    def f(x):
        y = x + 1
        bytegraph.graph_break()
        return y
    with bytegraph.error_on_graph_break(True):
        with pytest.raises(bytegraph.Unsupported):
            bytegraph.compile(f, backend="eager")(torch.ones(2))

    @bytegraph.error_on_graph_break(False)
    def call():
        return bytegraph.compile(f, backend="eager", fullgraph=True)(torch.ones(2))
    assert_same(call(), f(torch.ones(2)))


def test_counters_logs_and_explain(caplog):
    def inner(x):
        return x.sum().item()

    def f(x):
        y = x.cos()
        v = inner(y)
        print(v)
        return y * 2
    bytegraph.reset()
    with caplog.at_level(logging.INFO, logger="bytegraph.graph_breaks"):
        out = bytegraph.explain(f)(torch.ones(3))
    assert out.graph_break_count == 2 and out.graph_count == 2
    item, prnt = out.break_reasons
    assert "item()" in item.reason and item.line == "return x.sum().item()"
    assert item.lineno == inner.__code__.co_firstlineno + 1
    assert len(item.stack) == 2 and "inner" in item.stack[1]
    assert item.hint and prnt.line == "print(v)"
    assert "graph break" in caplog.text
    assert bytegraph.counters["graph_break"]["print()"] >= 1
    text = str(out)
    assert "Graph Break Count: 2" in text and "print(v)" in text


def test_closure_made_before_a_stop_shares_its_cell_after_it():
    @bytegraph.disable
    def ext(f, t):
        return f(t) * 10

    def f(x):
        scale = 2.0

        def mul(t):
            return t * scale
        y = ext(mul, x)          # stops the trace; `scale` is a cell variable
        scale = 3.0              # written in the resume function ...
        return mul(y) + 1        # ... and read through the closure made before the break
    run_both(f, lambda: (torch.ones(2),), graphs=1, calls=3)     # no tensor work before the break
