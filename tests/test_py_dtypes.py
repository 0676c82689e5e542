"""Python scalar types given where torch takes a dtype (`dtype=int`, `x.to(float)`): the graph
records torch's dtype for them (fx printed the class, which is not Python: an internal error
and an eager fallback on hf/zaya, zamba2 and inkling2_loop_text with a cache, transformers 5.25)."""
import pytest
import torch

import bytegraph


def _run(fn, *args):
    n = [0]

    def be(gm, ex):
        n[0] += 1
        return gm.forward
    bytegraph.reset()
    c = bytegraph.compile(fn, backend=be, fullgraph=True)
    for _ in range(2):
        got, want = c(*args), fn(*args)
        assert type(got) is type(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype
            torch.testing.assert_close(g, w)
    assert n[0] == 1
    assert bytegraph.counters["frames"]["total"] == 1


@pytest.mark.parametrize("t", [int, float, bool, complex])
def test_dtype_keyword(t):
    def f(x):
        return (torch.tensor(0, dtype=t) + x.sum(), torch.zeros(3, dtype=t), torch.full((2,), 1, dtype=t) * 2,
                x.new_ones(2, dtype=t))
    _run(f, torch.randn(4))


@pytest.mark.parametrize("t", [int, float, bool, complex])
def test_dtype_positional(t):
    def f(x):
        return (x.to(t) * 1, (x * 3).to(t), torch.ones(2, 2).to(t))
    _run(f, torch.randn(4))


def test_through_the_aten_backend():
    def f(x):
        return (torch.arange(4, dtype=float) + x, x.to(int))
    x = torch.randn(4) * 5
    c = bytegraph.compile(f, backend="aten")
    for g, w in zip(c(x), f(x)):
        assert g.dtype == w.dtype
        torch.testing.assert_close(g, w)
