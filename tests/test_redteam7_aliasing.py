"""Red team 7: graphs whose inputs share a storage, compiled by a functionalizing backend.

A graph after a break takes the intermediates of the graph before it; when one is a view of an
input (or two are views of one tensor), and the graph writes through one, a backend that
functionalizes (inductor, via AOT autograd) must know they alias. Differential (eager vs
bytegraph with backend="inductor"): outputs and argument state. Covers the example inputs of
static graphs (runtime/convert.py: _static_examples) and AOT autograd's cache, whose key has
no aliasing (backends/registry.py: inductor bypasses it when example inputs share storage)."""
import pytest
import torch

import bytegraph


@pytest.fixture(autouse=True)
def fresh_inductor_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    yield


def check(fn, make_args, backend="inductor"):
    bytegraph.reset()
    c = bytegraph.compile(fn, backend=backend)
    for _ in range(2):
        ea, ca = make_args(), make_args()
        want = fn(*ea)
        got = c(*ca)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(ca, ea)
    return c


def view_then_write(x):
    v = x[0]
    w = v * 1
    print("break")
    x.add_(1)
    return v * 2, w


def test_view_of_input_written_after_break(capsys):
    # was: the second graph's example for v was a fresh tensor: inductor returned v's old values
    check(view_then_write, lambda: (torch.zeros(2, 2),))


def test_two_intermediate_views_of_one_tensor(capsys):
    def f(x):
        y = x * 2
        r = y[1]
        print("break")
        y.mul_(3)
        return r + 1, y
    check(f, lambda: (torch.ones(3, 2),))


def test_intermediate_view_written_through_view(capsys):
    def f(x):
        y = x + 1
        t = y.t()
        print("break")
        t[0].zero_()
        return y.sum(0), t
    check(f, lambda: (torch.arange(6.0).reshape(2, 3),))


def test_view_of_input_with_grad(capsys):
    def f(x, w):
        y = x * w
        v = y[0]
        print("break")
        y.add_(w)
        return (v * 2).sum()
    check(f, lambda: (torch.ones(2, 2), torch.ones(2, 2, requires_grad=True)))


def plain_or_alias(x, v):
    x.add_(1)
    return v * 2


def test_aot_cache_not_found_for_aliased_inputs():
    # was: AOT autograd's on-disk cache, keyed without aliasing, handed the graph compiled for
    # distinct inputs to a fresh compile with a view and its base (torch.compile does the same)
    for make in (lambda: (torch.zeros(2, 2), torch.zeros(2)),
                 lambda: (lambda x: (x, x[0]))(torch.zeros(2, 2))):
        check(plain_or_alias, make)
