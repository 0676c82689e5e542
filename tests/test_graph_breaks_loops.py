"""Loops whose body breaks: a bounded number of compiles, however many iterations (issue 7).

A stop inside a loop body resumes in a resume function; the next iteration stops at the same
instruction of the same original code with the same layout, so it reuses that resume function
(and its cache) instead of nesting a new one per iteration. Differential: outputs, stdout and
arguments against eager; the compile (trace) and graph counts are the same for 10 and 50
iterations; the second call is a pure cache hit."""
import contextlib
import io

import pytest
import torch
from torch import nn

import bytegraph
from differential import not_compiled

from test_graph_breaks import Counting, assert_same


def _regions(be):
    return len(be.graphs) + not_compiled()


def measure(fn, make_args):
    """(traces, graphs) of the first compiled call (graphs: regions, i.e. compiled graphs plus
    those reused because they equal one compiled before, runtime/graph_reuse.py); asserts eager ==
    compiled on both calls and that the second call traces and compiles nothing."""
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(fn, backend=be)
    first = None
    for _ in range(2):
        ea, ca = make_args(), make_args()
        out_e, out_c = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out_e):
            re_ = fn(*ea)
        frames0, graphs0 = bytegraph.counters["frames"]["total"], _regions(be)
        with contextlib.redirect_stdout(out_c):
            rc = c(*ca)
        assert out_e.getvalue() == out_c.getvalue()
        assert_same(re_, rc)
        assert_same(ea, ca)
        done = (bytegraph.counters["frames"]["total"] - frames0, _regions(be) - graphs0)
        if first is None:
            first = done
        else:
            assert done == (0, 0), f"the second call traced/compiled again: {done}"
    assert not bytegraph.counters["fallback"], dict(bytegraph.counters["fallback"])
    return first


def while_counter(x, n):
    i = 0
    while x.sum() > 0:
        x = x - 1
        i += 1
    return x * 2, i


def while_print(x, n):
    while x.sum() > 0:
        x = x - 1
        print("step", x.shape)
    return x + 1


def while_true_break(x, n):
    while True:
        x = x + 1
        if x.mean() > n:
            break
    return x.cos()


def for_item(x, n):
    s = 0.0
    for k in range(n):
        x = x * 1.01
        s = s + x.sum().item()
    return x, s


def _full(n):
    return lambda: (torch.full((3,), float(n)), n)


@pytest.mark.parametrize("fn", [while_counter, while_print, while_true_break], ids=lambda f: f.__name__)
def test_tensor_while_loop_compiles_bounded(fn):
    small = measure(fn, _full(10))
    large = measure(fn, _full(50))
    assert small == large, f"10 iterations: {small}, 50 iterations: {large} (traces, graphs)"
    assert small[0] <= 5


def test_for_loop_with_item_compiles_once():
    small = measure(for_item, lambda: (torch.ones(3), 10))
    large = measure(for_item, lambda: (torch.ones(3), 50))
    assert small[0] == large[0] == 1          # one trace; one graph per iteration's region


from graph_break_programs_modules import ModWhileTensor as WhileModule  # noqa: E402


def test_module_while_loop_nested_resume_is_reused():
    """The stop is inside forward, inlined under the module call: the outer frame's resume
    function (waiting on the inner one's result) is reused too."""
    torch.manual_seed(0)
    m = WhileModule()
    small = measure(m, lambda: (torch.full((2, 4), 2.0),))
    big = measure(m, lambda: (torch.full((2, 4), 200.0),))
    assert small[0] == big[0] and small[0] <= 4, (small, big)


def helper_step(x):
    if x.sum() > 0:
        return x - 1
    return x


def while_through_helper(x, n):
    i = 0
    while i < n:
        x = helper_step(x)
        i += 1
    return x


def test_loop_over_helper_that_stops_compiles_bounded():
    small = measure(while_through_helper, _full(10))
    large = measure(while_through_helper, _full(50))
    assert small[0] == large[0], (small, large)


# ------------------------------------------------------------------------------------------
# a data-dependent break in a callee called from a loop (per-layer breaks, issue 7 item 2)

def layer_fn(x, w):
    h = x @ w
    if h.sum() > 0:                              # stops the trace inside the callee
        h = h * 2
    return torch.relu(h) + x


def layers_model(x, ws):
    x = x * 1.5
    for w in ws:
        x = layer_fn(x, w)
    return x.sum()


def _torch_graphs(fn, *args):
    import torch._dynamo
    torch._dynamo.reset()
    be = Counting()
    out = torch.compile(fn, backend=be)(*args)
    torch._dynamo.reset()
    return len(be.graphs), out


@pytest.mark.parametrize("n", [2, 8, 16])
def test_per_layer_break_graphs_vs_torch_compile(n):
    """Resuming inside the callee costs a graph per layer; from _SPLIT_MIN_ITEMS iterations on,
    the stop splits at the loop's call instead and the callee is one compiled unit reused by
    every layer: a bounded count, the callee's graphs (3: before the branch, each side) as
    torch.compile's, plus the caller's two regions (before and after the loop), which
    torch.compile runs eagerly (a graph break inside a loop makes it skip the whole frame)."""
    torch.manual_seed(0)
    ws = [torch.randn(8, 8) for _ in range(n)]
    make = lambda: (torch.randn(3, 8, generator=torch.Generator().manual_seed(1)), list(ws))
    traces, graphs = measure(layers_model, make)
    theirs, _ = _torch_graphs(layers_model, *make())
    if n >= 8:
        assert graphs == 5 and theirs == 3, f"{n} layers: {graphs} graphs, torch.compile {theirs}"
        # traces are not bounded yet: the caller's loop resumes after each call at a new
        # iterator position (one trace without a graph per layer; docs/graph_breaks.md)
    else:
        assert graphs == n + 1                  # resumed level after level: one per region
