"""Indexing with a 0-d integer tensor the graph computes (`W[e]`, `x[:, e]`, `x[idx, e]`): torch
turns such an index into the int it holds and selects with it, so the graph does the same with
`e.item()` as an unbacked symbol -- no stop (the MoE loops of hf/openai_privacy_filter: 35 -> 7
graphs). Differential: outputs, gradients, writes through the selected view, the IndexError of
an index out of range, and the graph count. uint8 and bool 0-d tensors index as masks and keep
their old path."""
import pytest
import torch

import bytegraph
from differential import REFERENCE, assert_same, check, graph_count, frame_count, reset

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's graph counts")


def _w():
    return torch.arange(60.).reshape(5, 4, 3)


@pytest.mark.parametrize("index", [
    lambda W, e: W[e],
    lambda W, e: W[e - 5],                    # negative: wraps as in eager
    lambda W, e: W[:, e % 4],
    lambda W, e: W[..., e % 3],
    lambda W, e: W[None, e, None],
    lambda W, e: W[e, 1:, e % 3],
    lambda W, e: W[torch.tensor([0, 2]), e % 4],
    lambda W, e: W[torch.tensor([0, 2]), :, e % 3],
    lambda W, e: W[e, torch.tensor([1, 3])],
], ids=["plain", "negative", "second_dim", "ellipsis", "none", "two", "after_advanced",
        "advanced_slice", "before_advanced"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16])
def test_scalar_index_stays_in_the_graph(index, dtype):
    def f(W, x):
        e = x.argmax().to(dtype)
        return index(W, e) * 2
    for x in (torch.tensor([0., 3., 1.]), torch.tensor([9., 3., 1.])):
        check(f, _w(), x, graphs=1)


def test_out_of_range_raises_index_error():
    def f(W, x):
        return W[x.argmax() + 4] + 1
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    W, x = _w(), torch.tensor([0., 3., 1.])
    with pytest.raises(IndexError) as want:
        f(W, x)
    with pytest.raises(IndexError) as got:
        compiled(W, x)
    assert str(got.value) == str(want.value)


def test_write_through_the_selected_view_reaches_the_base():
    def f(W, x):
        row = W[x.argmax()]
        row.mul_(10)
        return W.sum()
    check(f, _w(), torch.tensor([0., 3., 1.]), graphs=1)


def test_gradients_match():
    def f(W, x):
        return (W[x.argmax()] * x.sum()).sum()
    W = torch.randn(5, 4, requires_grad=True)
    x = torch.randn(5)
    W2 = W.detach().clone().requires_grad_()
    reset()
    bytegraph.compile(f, backend="eager")(W2, x).backward()
    f(W, x).backward()
    assert_same(W.grad, W2.grad)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.bool])
def test_mask_dtypes_are_not_selects(dtype):
    # a 0-d uint8/bool tensor indexes as a mask (adds a dim), never as the int it holds
    def f(W, x):
        return W[(x.sum() > 0).to(dtype)] + 1
    W = _w()
    x = torch.ones(3)
    reset()
    assert_same(f(W, x), bytegraph.compile(f, backend="eager")(W, x))


def test_buffer_index_uses_its_value():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("pick", torch.tensor(2))
            self.W = torch.nn.Parameter(torch.randn(4, 3))

        def forward(self, x):
            return self.W[self.pick] * x
    m = M()
    check(m, torch.randn(3), graphs=1)


def moe(x, idx, W):
    out = torch.zeros_like(x)
    mask = torch.nn.functional.one_hot(idx, W.shape[0] + 1).permute(1, 0)
    hit = mask.sum(-1).gt(0).nonzero()
    for e in hit:
        e = e[0]
        if e == W.shape[0]:
            continue
        tok = torch.where(mask[e])[0]
        out.index_add_(0, tok, x[tok] @ W[e])
    return out


@pytest.mark.parametrize("backend", ["eager", "aten"])
def test_moe_loop_selects_in_the_graph(backend):
    g = torch.Generator().manual_seed(0)
    W = torch.randn(4, 8, 8, generator=g)
    x = torch.randn(6, 8, generator=g)
    calls = [(x, torch.tensor([0, 1, 1, 3, 4, 0]), W), (x, torch.tensor([2, 2, 0, 1, 3, 3]), W),
             (x, torch.tensor([0, 1, 1, 3, 4, 0]), W)]
    reset()
    compiled = bytegraph.compile(moe, backend=backend)
    traces = []
    for args in calls:
        assert_same(moe(*args), compiled(*args))
        traces.append(frame_count())
    # the data-dependent `if` stops every iteration; no stop at `W[e]` or `mask[e]`
    assert set(bytegraph.counters["graph_break"]) == {
        "a data-dependent size with no trace-time value", "bool() of a tensor depends on its data"}
    assert traces[-1] == traces[-2]            # the repeated call: a pure cache hit
    assert graph_count() <= 8


def test_returned_row_is_a_view_of_the_argument():
    def f(W, x):
        return W[x.argmax()]
    W, x = torch.arange(12.).reshape(4, 3), torch.tensor([0., 5., 1., 2.])
    reset()
    row = bytegraph.compile(f, backend="eager")(W, x)
    row.add_(100)                              # eager's row is a view: the write reaches W
    assert W[1].tolist() == [103., 104., 105.]


def test_argument_index_is_not_specialized():
    def f(W, i):
        return W[i] * 2
    W = _w()
    check(f, W, torch.tensor(1), calls=[(W, torch.tensor(3)), (W, torch.tensor(-2))], graphs=1)
