"""Red-team probes of dynamic shapes (docs/dynamic_shapes.md), part 2: layouts, duck sizing and
broadcasting after a symbolic compile, rendered shape guards, tensors in containers, graph breaks
and loops, modules, autograd, marks, user errors, recompile storms and the compiling backends.
Harness and FAILING list: tests/redteam_dynamic_harness.py.
"""
import math
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bytegraph
from differential import assert_same, counters

from redteam_dynamic_harness import *  # noqa: F401,F403  (diff, marked, R, SIZES, ...)

PROBES, probe = registry()

# --------------------------------------------------------------------------- layouts, duck sizing, broadcasting

_BASE = torch.arange(40.).reshape(8, 5)


@probe
def layouts_after_symbolic_compile():
    def f(x):
        return x * 2 + x.sum(0), x.stride(), x.is_contiguous(), x.storage_offset()
    base = R(20, 20)
    diff(f, [R(4, 6), R(6, 4).t(), R(5, 6), R(6, 5).t(), R(4, 1).expand(4, 6), R(5, 1).expand(5, 7),
             R(1, 6).expand(4, 6), base[2:6, 3:9], base[3:8, 1:9], base[::2, ::3], R(4, 6)[:, ::2], R(8, 6)])


@probe
def storage_offset_not_stale():
    def f(x):
        return x * 1, x.storage_offset(), x.stride()
    diff(f, [_BASE[:, ::2], _BASE[1:, ::2], _BASE[2:6, ::2], _BASE[:3, ::2], _BASE[1:4, 1::2]])
    diff(f, [_BASE[0:2], _BASE[1:3], _BASE[2:5], _BASE[3:7]])
    diff(f, [_BASE[0:2], _BASE[1:3], _BASE[2:5], _BASE[3:7], _BASE[1:2]], dynamic=None)


@probe
def channels_last_after_symbolic_compile():
    w = torch.ones(2, 3, 3, 3)

    def f(x):
        return F.conv2d(x, w), x.is_contiguous(), x.is_contiguous(memory_format=torch.channels_last)
    cl = torch.channels_last
    diff(f, [R(1, 3, 8, 8), R(2, 3, 9, 7), R(2, 3, 9, 7).to(memory_format=cl),
             R(1, 3, 6, 10).to(memory_format=cl), R(2, 3, 8, 8)], atol=1e-4)


def _narrow_cols(a, b, w):
    return torch.randn(a, w)[:, :b]


@probe
def reshape_view_or_copy_by_layout():
    def f(x):
        y = x.reshape(-1)
        y.add_(1)
        return x.sum(), y.sum()
    nc, c = [_narrow_cols(4, 3, 6), _narrow_cols(5, 3, 7)], [R(4, 3), R(5, 3)]
    for backend in ("eager", "aten"):
        diff(f, nc + c, backend=backend)
        diff(f, c + nc, backend=backend)


@probe
def contiguous_copy_or_self():
    def f(x):
        y = x.contiguous()
        y.mul_(2)
        return x, y, x.is_contiguous()
    for backend in ("eager", "aten"):
        diff(f, [_narrow_cols(4, 3, 6), _narrow_cols(5, 3, 7), R(4, 3), R(5, 3)], backend=backend)


@probe
def is_contiguous_branch():
    def f(x):
        if x.is_contiguous():
            return x.view(-1)
        return x.reshape(-1) * 2
    diff(f, [_narrow_cols(4, 3, 6), _narrow_cols(5, 3, 7), R(4, 3), R(5, 3), _narrow_cols(6, 3, 9)])


@probe
def transposed_reshape_mutation():
    def f(x):
        y = x.t().reshape(-1)
        y.add_(1)
        return x
    diff(f, [R(4, 3), R(5, 3), R(1, 3), R(5, 1), R(4, 3).t(), R(3, 6).t()])


@probe
def expanded_reshape():
    def f(x):
        y = x.reshape(-1)
        return y.sum(), y.is_contiguous()
    diff(f, [R(4, 1).expand(4, 3), R(5, 1).expand(5, 3), R(5, 3), R(1, 3).expand(4, 3)])


@probe
def inplace_on_strided_inputs():
    def f(x):
        x.add_(1)
        return x.sum()
    diff(f, [R(4, 6), R(6, 4).t(), R(5, 5)[1:4, ::2], R(7, 3)])


@probe
def duck_sizing_equal_then_not():
    def f(x):
        return x.shape[0] == x.shape[1], x * x.shape[1], x.view(x.shape[1], x.shape[0])

    def g(x, y):
        return x @ y, x.shape[0] * y.shape[1]
    diff(f, [R(4, 4), R(5, 5), R(4, 5), R(6, 3), R(7, 7)])
    diff(g, [(R(3, 3), R(3, 3)), (R(4, 4), R(4, 4)), (R(4, 5), R(5, 2)), (R(2, 3), R(3, 6))])


@probe
def duck_sizing_square_only_op():
    def f(x):
        return x + x.t()
    diff(f, [R(4, 4), R(5, 5), R(4, 5), R(6, 6)], fullgraph=False, fallbacks=("user_error",))


@probe
def broadcasting_size_one_later():
    def f(x, y):
        return x + y, x * y.shape[0], torch.broadcast_shapes(x.shape, y.shape)
    calls = [(R(4, 3), R(4, 3)), (R(5, 3), R(5, 3)), (R(6, 3), R(6, 3)), (R(5, 3), R(1, 3)),
             (R(1, 3), R(6, 3)), (R(5, 1), R(5, 3))]
    diff(f, calls)
    diff(f, calls, dynamic=None)


@probe
def squeeze_at_size_one():
    def f(x):
        y = x.squeeze()
        return y, y.dim(), y.shape
    diff(f, [R(5, 3), R(6, 3), R(1, 3), R(7, 3), R(0, 3)], dynamic=None)
    diff(f, [R(5, 3), R(1, 3), R(7, 3), R(0, 3)])


@probe
def same_tensor_twice_then_distinct():
    def f(x, y):
        return x + y, x.shape[0] + y.shape[0]
    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager", dynamic=True)
    t = R(4, 3)
    for args in [(t, t), (R(5, 3), R(5, 3)), (R(5, 3), R(1, 3)), (R(6, 3), R(6, 3))]:
        assert_same(f(*args), c(*args))
    a = R(7, 3)
    assert_same(f(a, a), c(a, a))


@probe
def aliased_mutation_dynamic():
    def f(x, y):
        x.mul_(2)
        return x + y
    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager", dynamic=True)
    for n in (3, 4):
        assert_same(f(torch.ones(n), torch.ones(n)), c(torch.ones(n), torch.ones(n)))
    a, b = torch.ones(5), torch.ones(5)
    assert_same(f(a, a), c(b, b))
    assert_same(a, b)


@probe
def rank_change_auto():
    def f(x):
        return x.sum() * x.shape[0], x.dim()
    diff(f, [R(3), R(4), R(3, 2), R(4, 5), R(2, 2, 2)], dynamic=None)


# --------------------------------------------------------------------------- shape guards rendered

_CONDS = {
    "ftruediv": lambda a, b: a / 3 > 1.5,
    "pow2": lambda a, b: a ** 2 > 30,
    "max": lambda a, b: max(a, b) > 6,
    "min": lambda a, b: min(a, b) < 4,
    "floordiv_mul": lambda a, b: a // 3 * 3 == a,
    "float_mul": lambda a, b: float(a) * 0.5 > 2,
    "mod": lambda a, b: (a + 1) % 4 == 0,
    "floatpow": lambda a, b: a ** 0.5 > 2,
    "exp2": lambda a, b: 2 ** a > 20,
    "ratio": lambda a, b: a / b > 1,
    "abs": lambda a, b: abs(a - b) > 2,
    "neg_floordiv": lambda a, b: -a // 4 < -2,
    "mixed": lambda a, b: (a * b) // (a + b) > 1,
    "ne": lambda a, b: a != b,
    "truediv_eq": lambda a, b: a / 2 == 3.0,
}
_GUARD_SIZES = [(4, 6), (5, 6), (7, 3), (2, 9), (9, 2), (3, 3), (12, 5), (6, 4), (8, 8), (10, 3)]


@probe
def branch_guards_render_and_hold():
    for name, cond in _CONDS.items():
        def f(x, cond=cond):
            a, b = x.shape
            if cond(a, b):
                return x + 1
            return x - 1
        diff(f, [R(*s) for s in _GUARD_SIZES], compiles=2)
        assert not counters()["stats"]["guard_errors"], name


# --------------------------------------------------------------------------- tensors in containers

@probe
def tensors_in_list_dict_object():
    class Box:
        def __init__(self, t):
            self.t = t

    def lst(xs):
        return [x * x.shape[0] for x in xs], sum(x.shape[0] for x in xs)

    def dct(d):
        return d["a"].sum(0) * d["a"].shape[0]

    def obj(b):
        return b.t * b.t.shape[0]
    calls = [([R(3), R(4)],), ([R(5), R(4)],), ([R(5), R(6)],), ([R(7), R(7)],), ([R(2), R(1)],)]
    diff(lst, calls, dynamic=None)
    diff(lst, calls)
    diff(dct, [({"a": R(b, 2)},) for b in (3, 4, 5, 6)], dynamic=None, compiles=2)
    diff(obj, [(Box(R(b)),) for b in (3, 4, 5, 6)], dynamic=None, compiles=2)


# --------------------------------------------------------------------------- graph breaks and loops

@probe
def graph_break_print_between_sizes():
    def f(x, n):
        a = x * x.shape[0] + n
        print("between")
        return a[: x.shape[0] // 2] * n, a.shape, n * x.shape[0]
    diff(f, [(R(4, 3), 2), (R(6, 3), 3), (R(9, 3), 5), (R(2, 3), 7), (R(8, 3), 0)], fullgraph=False)


@probe
def graph_break_item_then_slice():
    def f(x):
        k = int(x.sum().item() > 0)
        return x[: x.shape[0] - k] * x.shape[0]
    diff(f, [R(4, 3), R(6, 3), R(9, 3), R(2, 3), R(5, 3)], fullgraph=False)


@probe
def graph_break_tensor_branch():
    def f(x):
        if x.sum() > 0:
            return x[: x.shape[0] // 2]
        return x[x.shape[0] // 2:] * 2
    diff(f, [R(4, 3), R(6, 3), R(9, 3), R(2, 3), R(5, 3), R(13, 3)], fullgraph=False)


@probe
def graph_break_in_unrolled_loop():
    def f(x):
        acc = x.new_zeros(x.shape[1])
        for i in range(x.shape[0]):
            acc = acc + x[i] * i
            if i == 1:
                print("mid")
        return acc
    diff(f, [R(4, 3), R(6, 3), R(3, 3), R(4, 3)], fullgraph=False)


@probe
def while_loop_halving_size():
    def f(x):
        n = x.shape[0]
        while n > 1:
            x = x[: n // 2] + x[n // 2: 2 * (n // 2)]
            n = x.shape[0]
        return x
    diff(f, [R(8, 3), R(16, 3), R(7, 3), R(12, 3), R(5, 3)])


@probe
def sizes_across_break():
    def f(x):
        s = x.shape
        n = x.size(0)
        print("break", file=sys.stderr)       # a real break: the rest is a resume function
        return x.reshape(n * s[1]), s, n
    diff(f, [R(s, 3) for s in (4, 6, 9, 7, 8, 5)], fullgraph=False, compiles=2)


@probe
def sizes_across_break_results():
    def f(x):
        s = x.shape
        n = x.size(0)
        print("break")
        return x.reshape(n * s[1]), s, n
    diff(f, [R(4, 3), R(6, 3), R(3, 5), R(8, 2)], fullgraph=False)


@probe
def size_into_breaking_callee():
    def inner(n):
        print("x")
        return n * 2

    def f(x):
        return x * inner(x.shape[0])
    diff(f, [R(4, 3), R(6, 3), R(3, 5), R(8, 2)], fullgraph=False)


# --------------------------------------------------------------------------- modules

@probe
def linear_conv_layernorm_sizes():
    lin, conv, ln = nn.Linear(6, 4), nn.Conv2d(3, 4, 3, padding=1), nn.LayerNorm(6)
    diff(lambda x: (lin(x), lin(x).shape), [R(3, 6), R(5, 6), R(2, 7, 6), R(1, 6), R(9, 6)])
    diff(lambda x: conv(x), [R(1, 3, 8, 8), R(2, 3, 10, 7), R(1, 3, 5, 12), R(3, 3, 8, 8)], atol=1e-4)
    diff(lambda x: ln(x), [R(3, 6), R(5, 6), R(2, 7, 6), R(9, 6)])


@probe
def attention_modules_sequence_lengths():
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).eval()
    dec = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True).eval()

    def causal(x):
        t = x.shape[1]
        return mha(x, x, x, attn_mask=torch.triu(torch.ones(t, t, dtype=torch.bool), 1))[0]

    def decode(x, m):
        return dec(x, m, tgt_mask=nn.Transformer.generate_square_subsequent_mask(x.shape[1]))
    seqs = [R(2, 3, 8), R(2, 5, 8), R(2, 9, 8), R(3, 4, 8)]
    with torch.no_grad():
        diff(lambda x: mha(x, x, x, need_weights=True), seqs, atol=1e-4, compiles=1)
        diff(lambda x: mha(x, x, x, need_weights=True), seqs, atol=1e-4, dynamic=None)
        diff(causal, seqs, atol=1e-4, compiles=1)
        diff(lambda x: enc(x), seqs, atol=1e-4)
        diff(decode, [(R(2, 3, 8), R(2, 4, 8)), (R(2, 5, 8), R(2, 6, 8)), (R(2, 9, 8), R(2, 2, 8))], atol=1e-4)


@probe
def gru_and_embedding():
    gru, emb = nn.GRU(4, 5, batch_first=True), nn.Embedding(10, 4)
    diff(lambda x: gru(x), [R(2, 3, 4), R(2, 6, 4), R(3, 5, 4)], atol=1e-4)
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(0, 10, s, generator=g) for s in ((2, 3), (2, 5), (4, 7))]
    diff(lambda i: emb(i) * i.shape[-1], ids, compiles=1)


# --------------------------------------------------------------------------- autograd and grad modes

def _grads(fn, shapes, backend="eager"):
    bytegraph.reset()
    c = bytegraph.compile(fn, backend=backend, dynamic=True)
    for s in shapes:
        x = R(*s, requires_grad=True)
        x2 = x.detach().clone().requires_grad_(True)
        e, a = fn(x), c(x2)
        assert_same(e, a, 1e-4, 1e-4)
        e.sum().backward()
        a.sum().backward()
        assert_same(x.grad, x2.grad, 1e-4, 1e-4, path="grad")
    assert not any(counters()["fallback"].values()), dict(counters()["fallback"])


@probe
def autograd_through_symbolic_views():
    def f(x):
        h = x.shape[1]
        y = (x[: x.shape[0] // 2] * h).softmax(-1)
        return y.reshape(-1, h // 2 if h % 2 == 0 else h)
    for backend in ("eager", "aten"):
        _grads(f, [(4, 6), (6, 6), (8, 4), (5, 10)], backend)
    _grads(lambda x: x.expand(3, *x.shape).sum(0) * torch.arange(x.shape[-1]), [(4, 6), (6, 7), (8, 4)])
    _grads(lambda x: F.pad(x.view(x.shape[0], -1), (1, 1)).cumsum(0), [(4, 6), (6, 7), (8, 4)])


@probe
def autograd_module_and_break():
    lin = nn.Linear(5, 3)

    def f(x):
        return lin(x).relu() * x.shape[0]

    def g(x):
        y = x * 2
        print("brk", file=sys.stderr)
        return y[: y.shape[0] - 1] ** 2
    for backend in ("eager", "aten"):
        _grads(f, [(4, 5), (6, 5), (2, 3, 5)], backend)
    _grads(g, [(4, 5), (6, 5), (3, 5)])


@probe
def no_grad_and_inference_mode():
    def f(x):
        with torch.no_grad():
            y = x * x.shape[0]
        return y, y.requires_grad, torch.is_grad_enabled()
    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager", dynamic=True)
    for s in (3, 5, 7):
        x = R(s, 2).requires_grad_()
        assert_same(f(x), c(x))
    with torch.inference_mode():
        for s in (3, 6):
            x = R(s, 2)
            e, a = f(x), c(x)
            assert_same(e, a)
            assert e[0].is_inference() == a[0].is_inference()
    with torch.inference_mode():
        x = R(4, 2)
    e, a = f(x), c(x)
    assert_same(e, a)
    assert e[0].is_inference() == a[0].is_inference()


# --------------------------------------------------------------------------- marks

def _md(d, **kw):
    return lambda t: bytegraph.mark_dynamic(t, d, **kw)


@probe
def mark_dynamic_specializations_raise():
    assert marked(lambda x: sum(range(x.shape[0])) * x, (R(5, 2),), _md(0)) == "violation"
    assert marked(lambda x: {x.shape[0]: x}[5], (R(5, 2),), _md(0)) == "violation"
    assert marked(lambda x, y: x + y, (R(5, 2), R(5, 2)), _md(0)) == "violation"
    assert marked(lambda x: x.view(5, 2), (R(5, 2),), _md(0)) == "violation"
    assert marked(lambda x, w: x @ w, (R(3, 5), R(5, 2)), _md(1)) == "violation"


@probe
def mark_dynamic_str_raises():
    assert marked(lambda x: (x, f"{x.shape[0]}"), (R(5, 2),), _md(0)) == "violation"
    assert marked(lambda x: (x, str(x.shape)), (R(5, 2),), _md(0)) == "violation"


@probe
def mark_dynamic_allowed_uses():
    def cmp(x):
        return x * 2 if x.shape[0] > 3 else x

    def eq5(x):
        return x + 1 if x.shape[0] == 5 else x

    def ge4(x):
        return x + 1 if x.shape[0] >= 4 else x

    def mod2(x):
        return x.view(-1, 2) if x.shape[0] % 2 == 0 else x
    assert marked(lambda x, y: x + y, (R(5, 2), R(1, 2)), _md(0)) == "ran"
    assert marked(cmp, (R(5, 2),), _md(0), [(R(7, 2),), (R(9, 2),)]) == "ran"
    assert marked(cmp, (R(5, 2),), _md(0, min=4, max=8), [(R(7, 2),), (R(8, 2),), (R(4, 2),), (R(9, 2),)]) == "ran"
    assert marked(eq5, (R(5, 2),), _md(0, min=5, max=5), [(R(6, 2),)]) == "ran"
    assert marked(ge4, (R(5, 2),), _md(0, min=4), [(R(9, 2),), (R(3, 2),)]) == "ran"
    assert marked(lambda x: x * 2, (R(1, 2),), _md(0), [(R(3, 2),)]) == "ran"
    assert marked(lambda x: x * 2, (R(0, 2),), _md(0), [(R(3, 2),)]) == "ran"
    assert marked(mod2, (R(6, 2),), _md(0), [(R(8, 2),), (R(7, 2),)]) == "ran"
    assert marked(lambda x: x * int(x.shape[0]) * float(x.shape[0]), (R(5, 2),), _md(0), [(R(7, 2),)]) == "ran"
    assert marked(lambda x: x.reshape(-1).reshape(x.shape[0], 2), (R(5, 2),), _md(0), [(R(7, 2),)]) == "ran"
    assert marked(lambda x, y: (torch.cat([x, y]), x.shape[0] + y.shape[0]), (R(5, 2), R(3, 2)), _md(0),
                  [(R(7, 2), R(3, 2))]) == "ran"


@probe
def mark_dynamic_min_zero_size_one():
    def f(x):
        y = x.squeeze()
        return y, y.dim(), y.shape, x.shape[0] != 0, x.shape[0] == 1
    for lo in (0, 1, None):
        kw = {} if lo is None else {"min": lo}
        assert marked(f, (R(5, 3),), _md(0, **kw), [(R(1, 3),), (R(0, 3),), (R(4, 3),)]) == "ran"


@probe
def mark_static_and_maybe_mark_dynamic():
    def f(x):
        return x * x.shape[0]

    def unroll(x):
        return torch.stack([x[i] * i for i in range(x.shape[0])])
    assert marked(f, (R(5, 2),), lambda t: bytegraph.mark_static(t, 0), [(R(6, 2),), (R(7, 2),)]) == "ran"
    assert marked(unroll, (R(5, 2),), lambda t: bytegraph.maybe_mark_dynamic(t, 0), [(R(6, 2),)]) == "ran"


@probe
def mark_dynamic_square_duck_sized():
    def f(x):
        return x.sum(0) * x.shape[1] + x.shape[0]
    assert marked(f, (R(4, 4),), lambda t: bytegraph.mark_dynamic(t, [0, 1]),
                  [(R(4, 5),), (R(6, 3),), (R(7, 7),)]) == "ran"
    assert compiles() == 1


@probe
def torch_tensor_of_size_specializes():
    diff(lambda x: x * torch.tensor(x.shape[0]), [R(s, 3) for s in (4, 6, 9, 7, 8, 5)], compiles=1)
    assert marked(lambda x: x * torch.tensor(x.shape[0]), (R(5, 2),), _md(0), [(R(7, 2),)]) == "ran"


# --------------------------------------------------------------------------- user errors inside dynamic traces

@probe
def user_error_eager_entry_too_wide():
    diff(lambda x: x.view(3, -1) * 2, [R(4), R(6), R(9), R(12)], fullgraph=False,
         fallbacks=("user_error",), compiles=1)
    diff(lambda x, y: x @ y, [(R(4, 3), R(2, 5)), (R(4, 3), R(3, 5)), (R(6, 2), R(2, 7))], fullgraph=False,
         fallbacks=("user_error",), compiles=1)
    diff(lambda x, n: x[n] * 2, [(R(4), 7), (R(4), 2), (R(6), 3), (R(8), 5)], fullgraph=False,
         fallbacks=("user_error",), compiles=1)


@probe
def user_error_then_valid_static():
    diff(lambda x: x.view(3, -1) * 2, [R(4), R(6), R(9)], dynamic=False, fullgraph=False,
         fallbacks=("user_error",), compiles=2)


@probe
def nc_user_error_covers_contiguous():
    diff(lambda x: x.view(-1) * 2, [_narrow_cols(4, 3, 6), R(4, 3), R(5, 3)], fullgraph=False,
         fallbacks=("user_error",), compiles=1)


@probe
def out_of_range_later_raises_like_eager():
    kw = dict(fullgraph=False, fallbacks=("user_error",))
    diff(lambda x, n: x[n] * 2, [(R(6, 2), 2), (R(6, 2), 3), (R(6, 2), 10), (R(6, 2), -7), (R(8, 2), 7)], **kw)
    diff(lambda x, n: x[:, n] * 2, [(R(2, 6), 2), (R(2, 6), 3), (R(2, 6), 10), (R(2, 8), 7)], **kw)
    diff(lambda x, n: x.narrow(0, n, 2), [(R(6, 2), 2), (R(6, 2), 3), (R(6, 2), 5), (R(8, 2), 6)], **kw)
    diff(lambda x, n: torch.zeros(n) + x.sum(), [(R(2), 3), (R(2), 4), (R(2), -1), (R(2), 5)], **kw)
    diff(lambda x, n: x.view(n, -1), [(R(12), 3), (R(15), 3), (R(13), 3), (R(18), 3)], **kw)
    diff(lambda x, n: torch.split(x, n), [(R(12), 3), (R(12), 4), (R(12), 0)], **kw)


@probe
def strided_views_and_tensors_from_sizes():
    diff(lambda x: x.unfold(0, 2, 1).sum(-1), [R(4, 3), R(5, 3), R(7, 3)], compiles=1)
    diff(lambda x: x.unfold(0, x.shape[0] // 2, 1).sum(-1), [R(4, 3), R(6, 3), R(8, 3)])
    diff(lambda x: x.as_strided((x.shape[0] - 1, 2), (1, 1)), [R(4), R(5), R(7)], compiles=1)
    diff(lambda x: torch.cat([x] * (x.shape[0] // 2)), [R(4, 2), R(5, 2), R(6, 2)])
    diff(lambda x: (x.new_tensor([x.shape[0], 2]), torch.tensor(x.shape)), [R(4, 2), R(5, 2), R(6, 2)])


@probe
def seeded_random_of_symbolic_size():
    def f(x):
        torch.manual_seed(0)
        return torch.randn(x.shape[0]) + x

    def g(x):
        return torch.randn(x.shape[0], generator=torch.Generator().manual_seed(3)) + x
    diff(f, [R(4), R(5), R(7)], fullgraph=False)
    diff(g, [R(4), R(5), R(7)], fullgraph=False)


@probe
def memoized_helpers_keyed_by_size():
    import functools

    def run(C):
        calls = []

        @functools.lru_cache(maxsize=None)
        def mask(n):
            calls.append(n)
            return torch.triu(torch.ones(n, n))
        memo = {}

        def pos(n):
            if n not in memo:
                memo[n] = torch.arange(n) * 2
            return memo[n]

        def f(x):
            return x @ mask(x.shape[0]), x[0] + pos(x.shape[0])
        c = C(f)
        outs = [c(R(b, b)) for b in (4, 5, 6, 4, 7)]
        return outs, sorted(memo), mask.cache_info().currsize
    states(run)


@probe
def module_tensor_attribute_resized():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)
            self.cache = torch.zeros(2, 3)

        def forward(self, x):
            return self.lin(x) + self.cache.sum(0), self.cache.shape[0]
    m = M()
    c = bytegraph.compile(m, backend="eager")
    for t, rows in ((4, 2), (5, 2), (5, 3), (6, 4), (7, 5)):
        m.cache = torch.zeros(rows, 3)
        x = R(t, 3)
        assert_same(m(x), c(x))
    assert compiles() <= 3


# --------------------------------------------------------------------------- compile counts (recompile storms)

_SWEEP = [R(s, 3) for s in (4, 6, 9, 7, 8, 5)]


@probe
def math_on_size_specializes():
    for g in (math.floor, math.ceil, round, int):
        diff(lambda x, g=g: x * g(x.shape[0] / 3), _SWEEP, compiles=1)
    diff(lambda x: x * math.sqrt(x.shape[0]) + math.log2(x.shape[0]), _SWEEP, compiles=1)
    diff(lambda x: x * divmod(x.shape[0], 3)[0], _SWEEP, compiles=1)


@probe
def container_int_not_auto_dynamic():
    class Box:
        def __init__(self, n):
            self.n = n
    diff(lambda d: d["a"] * d["n"], [({"a": R(3), "n": n},) for n in (2, 3, 4, 5, 6)], dynamic=None, compiles=2)
    diff(lambda x, b: x * b.n, [(R(3), Box(n)) for n in (2, 3, 4, 5, 6)], dynamic=None, compiles=2)
    diff(lambda x, t: x * t[0] + t[1], [(R(3), (n, n + 1)) for n in (2, 3, 4, 5, 6)], dynamic=None, compiles=2)
    diff(lambda x, *ns: x * sum(ns), [(R(3), n, n + 1) for n in (2, 3, 4, 5, 6)], dynamic=None, compiles=2)


@probe
def float_arg_specializes():
    calls = [(R(3), f) for f in (2.5, 3.5, 4.5, 5.5, 6.5)]
    diff(lambda x, f: x * f, calls, dynamic=None, compiles=2)
    diff(lambda x, f: x * f, calls, dynamic=True, compiles=1)


@probe
def automatic_dynamic_counts():
    def f(x, n):
        return x[:, : x.shape[1] // 2] * n + x.shape[0]
    diff(f, [(R(b, 6), 2) for b in (2, 3, 5, 8, 13)], dynamic=None, compiles=2)
    diff(f, [(R(4, 6), n) for n in (2, 3, 5, 8, 13)], dynamic=None, compiles=2)
    diff(f, [(R(b, 6), n) for b, n in ((2, 2), (3, 3), (5, 5), (8, 8))], dynamic=False, compiles=4)


# --------------------------------------------------------------------------- compiling backends

_BACKEND_CALLS = {
    "mixed": [(R(4, 6), 2), (R(5, 8), 3), (R(3, 6), 5), (R(7, 10), 4), (R(2, 6), 1)],
}


def _mixed(x, n):
    b, t = x.shape
    y = x[:, : t // 2] * n + torch.arange(t // 2)
    return y.reshape(-1, 2) if (b * (t // 2)) % 2 == 0 else y, y.shape[0] + n


def _split_flip(x):
    return torch.split(x, 3), x.chunk(2), x.view(-1, 2).sum(1), x.flip(0)[: x.shape[0] - 1]


def _strided(x):
    return x.t() @ x / x.shape[0], x.cumsum(0)[-1], x.stride(), x * 1


def _factories(x):
    n = x.shape[-1]
    return torch.full((n,), n) * 1, x.new_zeros(n) + x.sum(), x.expand(3, *x.shape).sum(), x.repeat(2, 1)


def _backend_probe(backend):
    diff(_mixed, _BACKEND_CALLS["mixed"], backend=backend, atol=1e-4, compiles=2)
    diff(_split_flip, [R(6, 4), R(8, 4), R(7, 4), R(9, 4), R(12, 4)], backend=backend, atol=1e-4)
    diff(_strided, [R(4, 5), R(5, 4).t(), R(6, 5), R(5, 6).t(), R(8, 10)[::2, ::2]], backend=backend,
         atol=1e-4, compiles=3)
    diff(_factories, [R(2, 4), R(2, 5), R(2, 7), R(3, 9)], backend=backend, atol=1e-4, compiles=1)


@probe
def backend_aten():
    _backend_probe("aten")


@probe
def backend_inductor():
    _backend_probe("inductor")


# --------------------------------------------------------------------------- the test

@pytest.mark.parametrize("name", list(PROBES))
def test_probe(name):
    run_probe(PROBES, name)
