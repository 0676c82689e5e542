"""Graph breaks where a size or string has no trace-time value (issue 7, session 10).

- An op whose output size depends on tensor data (`nonzero()`, `torch.where(mask)`, `x[mask]`)
  makes an unbacked size. When the code later needs that size as a number (iterating the
  result, a Python int of it), the trace stops *at the op that made it*: the op runs in Python
  and the code after it resumes compiled with a real tensor (values/symbolic.py `hint`, the
  interpreter's producer lookup). Before, the whole function ran eagerly (hf/switch_transformers,
  hf/openai_privacy_filter: "a data-dependent size with no trace-time value").
- An f-string field the trace cannot format (a tensor's value) is formatted in Python at a stop
  (FORMAT_VALUE, runtime/resume.py) and the rest resumes compiled (switch_transformers'
  `self[f"expert_{idx[0]}"]`).
- A stop that cannot be resumed from (a live `zip` iterator of the trace's own) moves one frame
  out: the callee runs as its own unit and the caller stays compiled (hf/vilt's
  `visual_embed`: before, the caller's whole resume function ran eagerly).

Differential: results equal eager, no whole-function fallback where a break serves, the
second call is a pure cache hit.
"""
import torch
from torch import nn

import bytegraph
from differential import assert_same, counters, reset


def _fallbacks():
    return sum(counters()["fallback"].values())


def _run(fn, *args, calls=2):
    reset()
    c = bytegraph.compile(fn, backend="eager")
    for i in range(calls):
        before = counters()["frames"]["total"]
        expected = fn(*args)
        actual = c(*args)
        assert_same(expected, actual)
        if i:
            assert counters()["frames"]["total"] == before, "second call compiled again"
    return c


def loop_over_nonzero(x, m):
    y = x * 2
    hit = torch.greater(m.sum(-1), 0).nonzero()
    out = torch.zeros_like(y)
    for row in hit:
        out = out + y[row].sum(0)
    return out.sin()


def test_iterating_nonzero_breaks_at_nonzero():
    x = torch.randn(4, 3)
    m = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]])
    _run(loop_over_nonzero, x, m)
    assert _fallbacks() == 0, dict(counters()["fallback"])
    reasons = list(counters()["graph_break"])
    assert any("data-dependent size" in r for r in reasons), reasons
    assert counters()["stats"]["unique_graphs"] >= 2


def test_explain_names_the_producing_line():
    x = torch.randn(4, 3)
    m = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]])
    e = bytegraph.explain(loop_over_nonzero)(x, m)
    first = e.break_reasons[0]
    assert "nonzero()" in str(first), str(e)
    assert e.graph_count >= 2


def int_of_masked_size(x):
    sel = x[x > 0]
    n = int(sel.shape[0])          # needs the number: the masked select runs in Python
    return sel.sum() * n + x.cos().sum(), n


def test_python_int_of_masked_size():
    x = torch.tensor([1.0, -2.0, 3.0, 0.5])
    _run(int_of_masked_size, x)
    assert _fallbacks() == 0, dict(counters()["fallback"])
    # a different count of positives: a recompile with the new size, still right
    c = bytegraph.compile(int_of_masked_size, backend="eager")
    y = torch.tensor([-1.0, -2.0, 3.0, -0.5])
    assert_same(int_of_masked_size(y), c(y))


def unbacked_stays_in_graph(x):
    idx = x.nonzero()
    return x[idx[:, 0]].sum() + idx.shape[0] * 0     # symbolic arithmetic only: no stop


def test_symbolic_use_needs_no_break():
    x = torch.tensor([0.0, 2.0, 0.0, 3.0])
    _run(unbacked_stays_in_graph, x)
    assert _fallbacks() == 0


class Experts(nn.ModuleDict):
    def __init__(self, n=3):
        super().__init__({f"expert_{i}": nn.Linear(4, 4) for i in range(n)})

    def forward(self, h, sel):
        out = torch.zeros_like(h)
        hit = torch.greater(sel.sum(0), 0).nonzero()
        for e in hit:
            rows = torch.where(sel[:, e[0]] > 0)[0]
            out = out.index_add(0, rows, self[f"expert_{e[0]}"](h[rows]))
        return out


def test_moe_routing_loop():
    torch.manual_seed(0)
    m = Experts()
    h = torch.randn(5, 4)
    sel = torch.tensor([[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 1]])
    _run(m, h, sel)
    assert _fallbacks() == 0, dict(counters()["fallback"])
    reasons = " ".join(counters()["graph_break"])
    assert "formatting a tensor" in reasons, reasons


def fstring_forms(x, i):
    a = f"{i}"
    b = f"{i!r:>20}|{x.sum()!s}"
    c = f"{i[0]:d}-{x.shape[0]}"
    return x + 1, a, b, c


def test_fstring_conversions_and_specs():
    x = torch.arange(3.0)
    i = torch.tensor([2])
    _run(fstring_forms, x, i)
    assert _fallbacks() == 0, dict(counters()["fallback"])


def gated(x, flags, vals):
    out = x
    for i, (f, v) in enumerate(zip(flags, vals)):   # a live enumerate(zip()) at the break below
        if f > 0:
            out = out + v * i
    return out


def caller(x, flags, vals):
    y = x.sin()
    z = gated(y, flags, vals)
    return z.cos() * 2


def test_enumerate_zip_resumes_inside_the_loop():
    # the enumerate over the zip is rebuilt live at the break (`enumerate(zip(...), n)`) and
    # read back by the resume function: every region compiled, no function runs eagerly
    x = torch.randn(3)
    flags = torch.tensor([1.0, -1.0, 2.0])
    vals = [torch.full((3,), float(i)) for i in range(3)]
    _run(caller, x, flags, vals)
    assert _fallbacks() == 0, dict(counters()["fallback"])


def grow_while_looping(x, vals, extra):
    out = x
    for i, (v, w) in enumerate(zip(vals, extra)):
        if v.sum() > 0:                  # a break with the enumerate live
            out = out + v * i
        if i == 0:
            vals.append(x * 10)          # the zip reads the list live: the new item is seen
            extra.append(-1.0)
    return out, len(vals)


def test_enumerate_zip_reads_lists_live_across_breaks():
    x = torch.ones(2)
    vals = [torch.ones(2), -torch.ones(2)]
    reset()
    c = bytegraph.compile(grow_while_looping, backend="eager")
    a_vals, b_vals = list(vals), list(vals)
    a_extra, b_extra = [0.5, 0.25], [0.5, 0.25]
    assert_same(grow_while_looping(x, a_vals, a_extra), c(x, b_vals, b_extra))
    assert_same(a_vals, b_vals)
    assert_same(a_extra, b_extra)


def _numbers(n):
    yield from range(n)


def gated_gen(x, flags, vals):
    out = x
    for i, f in enumerate(_numbers(len(vals))):    # enumerate over a generator: not handed on
        if flags[f] > 0:
            out = out + vals[f] * i
    return out


def caller_gen(x, flags, vals):
    y = x.sin()
    z = gated_gen(y, flags, vals)
    return z.cos() * 2


def test_unresumable_stop_moves_one_frame_out():
    x = torch.randn(3)
    flags = torch.tensor([1.0, -1.0, 2.0])
    vals = [torch.full((3,), float(i)) for i in range(3)]
    _run(caller_gen, x, flags, vals)
    # gated_gen alone runs eagerly (its stop cannot be resumed from: a live generator); the
    # caller is compiled around the call: its sin and its cos each in a graph (before: all of
    # it ran eagerly)
    assert _fallbacks() == 1, dict(counters()["fallback"])
    ops = [n for g in bytegraph.explain(caller_gen)(x, flags, vals).graphs for n in g.graph.nodes
           if n.op == "call_method" or n.op == "call_function"]
    names = {getattr(n.target, "__name__", str(n.target)) for n in ops}
    assert {"sin", "cos"} <= names, names
