"""Symbolic traces reuse a repeated call's fake result (graph/fake_memo.py). Differential: each
program repeats an op on inputs with the same metadata, in situations where a reused result
would be wrong if the memo were too loose (views, in-place writes through them, grad mode,
autocast, ops returning an input, tuples, data-dependent sizes); outputs, argument state and
tensor metadata queries are compared with eager over several sizes under dynamic=True."""
import pytest
import torch
import torch.nn.functional as F

import bytegraph
from bytegraph.graph import fake_memo
from differential import assert_same, counters


SIZES = (5, 8, 11)


@pytest.fixture
def memo_hits(monkeypatch):
    hits = []
    orig = fake_memo.FakeMemo.replay

    def replay(self, key, builder):
        out = orig(self, key, builder)
        if out is not None:
            hits.append(key[1])
        return out
    monkeypatch.setattr(fake_memo.FakeMemo, "replay", replay)
    return hits


def _clone_args(args):
    return [a.clone() if isinstance(a, torch.Tensor) else a for a in args]


def check(fn, make_args, sizes=SIZES, dynamic=True):
    c = bytegraph.compile(fn, backend="eager", dynamic=dynamic)
    for s in sizes:
        args = make_args(s)
        mine = _clone_args(args)
        expected = fn(*args)
        actual = c(*mine)
        assert_same(expected, actual)
        assert_same(list(args), mine, path="args")   # in-place writes reached the caller's tensors alike
    return c


def _layers(x, w1, b1, w2, b2):
    h = F.layer_norm(F.linear(x, w1, b1), (8,))
    g = F.layer_norm(F.linear(x, w2, b2), (8,))
    return h + g, h._is_view(), g._is_view(), h.is_contiguous(), g.stride()


def test_repeated_layer_ops_hit_and_match(memo_hits):
    # automatic dynamic: only x's length becomes symbolic (with dynamic=True each weight's sizes
    # are symbols of their own, and the layers' metadata differ)
    check(_layers, lambda s: (torch.randn(2, s, 8), torch.randn(8, 8), torch.randn(8),
                              torch.randn(8, 8), torch.randn(8)), dynamic=None)
    assert memo_hits, "the second layer's ops were expected to reuse the first's fake results"
    assert counters()["frames"]["ok"] == 2


def _views_then_write(x):
    a = x.view(-1)
    b = x.view(-1)
    a.add_(1)                  # through one view: the other view and x see it
    t1 = x.t()
    t2 = x.t()
    t1.mul_(2)
    return b.sum(), t2.sum(), a._is_view(), t2.is_contiguous(), x.sum()


def test_views_of_inputs_alias_like_eager(memo_hits):
    check(_views_then_write, lambda s: (torch.randn(s, 3),))


def _input_views_of_different_bases(x, y):
    u = x[:, :3].reshape(-1)       # a copy: x[:, :3] is not contiguous
    v = y[:, :3].reshape(-1)
    u.add_(1)
    return u, v, x, y


def test_reshape_copy_versus_view(memo_hits):
    check(_input_views_of_different_bases,
          lambda s: (torch.randn(s, 4), torch.randn(s, 4)))


def _grad_modes(x, w):
    with torch.no_grad():
        a = x @ w
    b = x @ w
    return a.requires_grad, b.requires_grad, b.is_leaf, a + b


def test_grad_mode_is_part_of_the_key():
    w = torch.randn(4, 4, requires_grad=True)
    check(_grad_modes, lambda s: (torch.randn(s, 4), w))


def _autocast(x, w):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = F.linear(x, w)
    b = F.linear(x, w)
    return a.dtype, b.dtype, a.float() + b


def test_autocast_is_part_of_the_key():
    check(_autocast, lambda s: (torch.randn(s, 4), torch.randn(4, 4)))


def _returns_input(x, y):
    a = x.contiguous()         # x itself
    b = y.contiguous()
    a.add_(1)
    c = x.to(torch.float32)    # x itself again
    d = x.to(torch.float64)    # a copy
    return a is x, b is y, c is x, d.dtype, x, y


def test_ops_returning_an_input_keep_identity():
    check(_returns_input, lambda s: (torch.randn(s, 3), torch.randn(s, 3)))


def _tuples(x, y):
    p = torch.split(x, 2, dim=1)
    q = torch.split(y, 2, dim=1)
    p[0].add_(1)
    s1 = torch.sort(x, dim=1)
    s2 = torch.sort(y, dim=1)
    m1 = torch.max(x, dim=1)
    m2 = torch.max(y, dim=1)
    return p[1], q[0], x, y, s1.values, s2.indices, m1.indices, m2.values, type(m2).__name__


def test_tuple_results(memo_hits):
    check(_tuples, lambda s: (torch.randn(s, 4), torch.randn(s, 4)))


def _same_op_twice_on_one_tensor(x):
    a = x.expand(3, -1, -1)
    b = x.expand(3, -1, -1)
    return a.stride(), b.stride(), (a + b).sum(0), a._is_view()


def test_expand_stride_zero():
    check(_same_op_twice_on_one_tensor, lambda s: (torch.randn(s, 2),))


def _nonzero_twice(x):
    a = torch.nonzero(x > 0)
    b = torch.nonzero(x > 0)
    return a.shape[0] == b.shape[0], a + b


def test_data_dependent_sizes_are_not_reused():
    check(_nonzero_twice, lambda s: (torch.randn(s, 3),))


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q = torch.nn.Linear(8, 8)
        self.k = torch.nn.Linear(8, 8)
        self.ln = torch.nn.LayerNorm(8)

    def forward(self, x):
        b, t, d = x.shape
        q = self.q(x).view(b, t, 2, 4).transpose(1, 2)
        k = self.k(x).view(b, t, 2, 4).transpose(1, 2)
        att = (q @ k.transpose(-1, -2)).softmax(-1)
        return self.ln(x + (att @ q).transpose(1, 2).reshape(b, t, d))


def test_stacked_blocks_training_and_eval(memo_hits):
    torch.manual_seed(0)
    model = torch.nn.Sequential(_Block(), _Block(), _Block())
    for train in (False, True):
        model.train(train)
        c = bytegraph.compile(model, backend="eager", dynamic=True)
        for s in SIZES:
            x = torch.randn(2, s, 8, requires_grad=train)
            expected = model(x)
            x2 = x.detach().clone().requires_grad_(train)
            actual = c(x2)
            assert_same(expected, actual)
            if train:
                expected.sum().backward()
                actual.sum().backward()
                assert_same(x.grad, x2.grad)
        with torch.no_grad():
            c = bytegraph.compile(model, backend="eager", dynamic=True)
            for s in SIZES:
                x = torch.randn(2, s, 8)
                assert_same(model(x), c(x))
    assert memo_hits


def _two_views_one_storage(x, y, z):
    a = torch.broadcast_tensors(x, x.t())      # both views of x
    b = torch.broadcast_tensors(y, z.t())      # a view of y and a view of z
    b[1].add_(1)                               # writes z (the second argument's storage)
    return a[0].sum(), a[1].sum(), y, z


def test_views_of_arguments_sharing_a_storage():
    check(_two_views_one_storage, lambda s: (torch.randn(s, s), torch.randn(s, s), torch.randn(s, s)))
