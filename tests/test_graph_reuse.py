"""Graphs of one trace that are the same are compiled once (runtime/convert.py: _same_graph_key).

A loop whose body breaks unrolls into one graph per iteration; the iterations' graphs are usually
identical, and the backend sees each distinct one once (bounded compiles, not one per iteration).
Differential: outputs, printed text, argument state and gradients equal eager; the count of
regions (compiled + reused graphs) is unchanged, and graphs that differ in anything a backend may
specialize on (constants, sizes, dtype, grad mode, requires_grad, aliasing) are never shared."""
import contextlib
import io

import pytest
import torch

import bytegraph
from differential import not_compiled
from test_graph_breaks import Counting
from test_warm_start import _phase, _write_module, USER_MODULE


def run(fn, make_args, compiles, regions, dynamic=None):
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(fn, backend=be, dynamic=dynamic)
    for call in range(2):
        ea, ca = make_args(), make_args()
        out_e, out_c = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out_e):
            want = fn(*ea)
        with contextlib.redirect_stdout(out_c):
            got = c(*ca)
        assert out_e.getvalue() == out_c.getvalue()
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(ca, ea)
        if call == 0:
            assert len(be.graphs) == compiles, f"{len(be.graphs)} compiles, expected {compiles}"
            assert len(be.graphs) + not_compiled() == regions
    assert len(be.graphs) == compiles, "the second call compiled again"
    assert bytegraph.counters["recompiles"]["total"] == 0
    return c


def loop_break(x, n):
    for i in range(n):
        x = x + 1
        bytegraph.graph_break()
        x = x * 2
    return x


@pytest.mark.parametrize("n", [2, 10, 60])
def test_loop_with_break_compiles_three_graphs(n):
    # before the loop + first iteration's head, iterations' bodies, the last tail
    run(loop_break, lambda: (torch.ones(3), n), compiles=min(3, n + 1), regions=n + 1)


def test_print_in_loop_over_tensors():
    def f(x, ws):
        for w in ws:
            x = torch.tanh(x * w)
            print("step", float(x.sum()))
        return x
    ws = [torch.rand(4) for _ in range(8)]
    run(f, lambda: (torch.ones(4), [w.clone() for w in ws]), compiles=1, regions=8)


def test_constant_differs_per_iteration_not_shared():
    def f(x):
        for i in range(4):
            x = x * (i + 1)
            print(i)
        return x
    run(f, lambda: (torch.ones(3),), compiles=4, regions=4)


def test_growing_shape_not_shared():
    def f(x):
        for i in range(4):
            x = torch.cat([x, x + 1])
            print(i)
        return x
    run(f, lambda: (torch.ones(2),), compiles=4, regions=4)


def test_dtype_change_not_shared():
    def f(x):
        for dt in (torch.float32, torch.float64, torch.float64, torch.float32):
            x = (x.to(dt) + 1).float()
            print(dt)
        return x
    # the conversion is in the graph: (to f32, to f64, to f64, to f32) -> 2 distinct graphs
    run(f, lambda: (torch.ones(2),), compiles=2, regions=4)


def test_grad_mode_alternating_not_shared():
    def f(x, w):
        for i in range(4):
            with torch.set_grad_enabled(i % 2 == 1):
                x = x * w
                print(i)
                x = x + 1
        return x
    def make():
        return torch.ones(3), torch.full((3,), 0.5, requires_grad=True)
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(f, backend=be)
    (xe, we), (xc, wc) = make(), make()
    with contextlib.redirect_stdout(io.StringIO()):
        ye, yc = f(xe, we), c(xc, wc)
    torch.testing.assert_close(yc, ye)
    assert ye.requires_grad == yc.requires_grad
    ye.sum().backward()
    yc.sum().backward()
    torch.testing.assert_close(wc.grad, we.grad)


def test_training_loop_gradients():
    lin = torch.nn.Linear(4, 4)

    def f(x):
        for _ in range(5):
            x = torch.relu(lin(x))
            print("layer")
        return x.sum()

    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(f, backend=be)
    x = torch.randn(2, 4)
    with contextlib.redirect_stdout(io.StringIO()):
        want = f(x)
        want.backward()
        g_want = lin.weight.grad.clone()
        lin.weight.grad = None
        got = c(x)
        got.backward()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(lin.weight.grad, g_want)
    assert len(be.graphs) < 5


def test_aliasing_inputs_not_shared():
    # in odd iterations both graph inputs are the same tensor, in even ones they are not
    def f(x, y):
        for i in range(4):
            a = x if i % 2 == 0 else y
            print(i)
            a.add_(1)
            y.mul_(2)
        return x, y
    def make():
        return torch.ones(3), torch.full((3,), 3.0)
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(f, backend=be)
    (xe, ye), (xc, yc) = make(), make()
    with contextlib.redirect_stdout(io.StringIO()):
        f(xe, ye)
        c(xc, yc)
    torch.testing.assert_close((xc, yc), (xe, ye))


def test_requires_grad_differs_not_shared():
    def f(x, ws):
        for w in ws:
            x = x * w
            print("w")
        return x
    ws = [torch.rand(3), torch.rand(3, requires_grad=True), torch.rand(3), torch.rand(3, requires_grad=True)]
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(f, backend=be)
    with contextlib.redirect_stdout(io.StringIO()):
        want, got = f(torch.ones(3), ws), c(torch.ones(3), ws)
    torch.testing.assert_close(got, want)
    assert got.requires_grad == want.requires_grad
    got.sum().backward()
    g_got = [w.grad.clone() for w in ws if w.requires_grad]
    for w in ws:
        w.grad = None
    want.sum().backward()
    torch.testing.assert_close(g_got, [w.grad for w in ws if w.requires_grad])
    assert len(be.graphs) == 4     # (x, w) plain/plain, plain/grad, grad/plain, grad/grad


def test_dynamic_loop_with_break():
    def f(x):
        for _ in range(6):
            x = torch.sin(x) * x.shape[0]
            bytegraph.graph_break()
        return x
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(f, backend=be, dynamic=True)
    for n in (3, 5, 7):
        torch.testing.assert_close(c(torch.ones(n)), f(torch.ones(n)))
    assert len(be.graphs) <= 3


def test_same_compiled_graph_shared_by_two_calls_is_exact():
    # a custom backend whose compiled callables count their calls: one compiled graph runs
    # once per region
    calls = []

    def backend(gm, example_inputs):
        k = len(calls)
        calls.append(0)

        def run(*args):
            calls[k] += 1
            return gm.forward(*args)
        return run
    bytegraph.reset()
    c = bytegraph.compile(loop_break, backend=backend)
    torch.testing.assert_close(c(torch.ones(2), 5), loop_break(torch.ones(2), 5))
    assert sum(calls) == 6 and len(calls) == 3


LOOP_MODULE = USER_MODULE + '''
def loop_print(x):
    for i in range(6):
        x = torch.cos(x) + 1
        print("it")
    return x

_cases3 = cases
def cases():
    c = _cases3()
    c["loop_print"] = (loop_print, (torch.ones(3),))
    return c
'''


def test_shared_graphs_warm_start(tmp_path):
    _write_module(tmp_path, LOOP_MODULE)
    spec = dict(cache_dir=str(tmp_path / "cache"), fns=["loop_print"])
    cold = _phase(tmp_path, **spec)
    assert cold["ok"] == {"loop_print": True} and cold["warm"].get("saved"), cold
    res = _phase(tmp_path, **spec)
    assert res["ok"] == {"loop_print": True}
    assert res["warm"].get("hit") == 1 and res["frames"].get("total", 0) == 0, res


def test_layer_stack_helper_stop_compiles_bounded():
    # one stop per layer (breaks5's OneStopStack): 17 regions for 16 layers, compiled as a few
    # distinct graphs (the layers differ in kernel size: 3 variants)
    from test_breaks5_split import OneStopStack
    torch.manual_seed(0)
    m = OneStopStack(16)
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(m, backend=be)
    x = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(c(x), m(x))
    assert len(be.graphs) + not_compiled() == 17
    assert len(be.graphs) <= 7
