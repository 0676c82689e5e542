"""Red team 7: float constants a graph or a guard could not tell apart (nan's sign and bits).

`0 * inf`, `inf - inf` and `0 / 0` give a nan with its sign bit set on x86; fx prints every nan
constant as `nan`, and `nan != nan` passes for any nan. Differential: outputs (with their sign
bits), stdout and graph/recompile counts equal eager; a `-nan` baked in a graph stays `-nan`
(graph/builder.py), a nan argument is guarded by its bits (guards/guard_set.py), and two graphs
differing only in a nan's sign are not compiled once (runtime/graph_reuse.py)."""
import contextlib
import io
import math
import struct

import pytest
import torch

import bytegraph
from differential import not_compiled
from test_graph_breaks import Counting

NAN = float("nan")
NEG_NAN = -NAN


def bits(t):
    return t.view({torch.float64: torch.int64, torch.float32: torch.int32}.get(t.dtype, torch.int16))


def same(got, want):
    if isinstance(want, (tuple, list)):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want):
            same(g, w)
    elif isinstance(want, torch.Tensor):
        assert got.dtype == want.dtype and got.shape == want.shape
        if want.dtype.is_floating_point:
            assert torch.equal(bits(got), bits(want)), f"{got} != {want} (bits)"
        else:
            assert torch.equal(got, want)
    elif isinstance(want, float):
        assert struct.pack("<d", got) == struct.pack("<d", want), f"{got!r} != {want!r}"
    else:
        assert got == want


def run(fn, make_args, graphs=None, calls=2):
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(fn, backend=be)
    for _ in range(calls):
        ea, ca = make_args(), make_args()
        oe, oc = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(oe):
            want = fn(*ea)
        with contextlib.redirect_stdout(oc):
            got = c(*ca)
        assert oe.getvalue() == oc.getvalue()
        same(got, want)
        same(ca, ea)
    if graphs is not None:
        assert len(be.graphs) + not_compiled() == graphs
    return c, be


def test_x86_nan_is_negative():
    # the premise: real code makes -nan without writing it
    assert struct.pack("<d", NEG_NAN) != struct.pack("<d", NAN)


def test_copysign_nan_then_neg_nan_across_a_break():
    # was: the two graphs compared equal (repr 'nan') and the second reused the first: +1 for -nan
    def f(x):
        a = torch.copysign(x, NAN)
        print("a")
        b = torch.copysign(x, NEG_NAN)
        return a, b
    _, be = run(f, lambda: (torch.ones(3),), graphs=2)
    assert bytegraph.counters["stats"]["graphs_reused"] == 0


def test_full_with_neg_nan_keeps_sign():
    # was: fx printed the constant as `nan`: signbit False (torch.compile gets this wrong too)
    def f(x):
        a = torch.full((3,), NAN)
        b = torch.full((3,), NEG_NAN)
        return torch.signbit(a), torch.signbit(b), torch.copysign(x, NEG_NAN), x + NEG_NAN
    run(f, lambda: (torch.ones(3),), graphs=1)


def test_neg_nan_in_a_list_and_kwarg():
    def f(x):
        return torch.tensor([1.0, NEG_NAN]) + x, torch.where(x > 0, x, other=NEG_NAN), x.clamp(min=-1.0)
    run(f, lambda: (torch.ones(2),))


def test_nan_made_by_arithmetic():
    def f(x):
        z = 0.0 * math.inf
        return torch.copysign(x, z), torch.full_like(x, math.inf - math.inf)
    run(f, lambda: (torch.ones(2),))


@pytest.mark.parametrize("order", [(NAN, NEG_NAN), (NEG_NAN, NAN)])
def test_nan_argument_guarded_by_sign(order):
    # was: the guard `y != y` let -nan reuse the entry compiled for nan (a stale hit)
    def f(x, y):
        return torch.copysign(x, y)
    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager")
    for y in order + order:
        same(c(torch.ones(2), y), f(torch.ones(2), y))
    assert bytegraph.counters["recompiles"]["total"] == 1


def test_nan_with_other_payload_refused():
    odd = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
    assert odd != odd

    def f(x):
        return torch.full((2,), odd, dtype=torch.float64) + x
    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager")
    got, want = c(torch.zeros(2, dtype=torch.float64)), f(torch.zeros(2, dtype=torch.float64))
    assert torch.equal(got.view(torch.int64), want.view(torch.int64))


def test_zero_signs_and_int_float_bool_not_shared():
    def f(x):
        a = torch.copysign(x, 0.0)
        print("a")
        b = torch.copysign(x, -0.0)
        print("b")
        c = torch.div(x, 1)
        print("c")
        d = torch.div(x, 1.0)
        print("d")
        e = torch.add(x, True)
        return a, b, c, d, e
    run(f, lambda: (torch.arange(3),), graphs=5)


def test_slices_ellipsis_list_tuple_not_confused():
    def f(x):
        a = x[1:2]
        print("a")
        b = x[1:2:1]
        print("b")
        c = x[..., 1]
        print("c")
        d = x[:, 1]
        print("d")
        e = torch.sum(x, dim=[0])
        print("e")
        g = torch.sum(x, dim=(0,))
        return a, b, c, d, e, g
    run(f, lambda: (torch.arange(9.0).reshape(3, 3),), graphs=6)


def test_dtype_constants_per_iteration():
    def f(x):
        out = []
        for d in (torch.float32, torch.float64, torch.float16, torch.float64):
            out.append(x.to(d) * 3)
            print(d)
        return out
    run(f, lambda: (torch.arange(3.0),), graphs=4)


def test_graph_compiled_under_other_autocast_dtype_not_reused():
    # was: the recompile for float16 autocast reused the bfloat16 entry's graph (the key held
    # only "is any autocast on"): inductor then raised "Expected out tensor to have dtype
    # BFloat16, but got Half"
    def f(x):
        y = torch.mm(x, x)
        print("b")
        return torch.mm(y, x)
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(f, backend=be)
    x = torch.rand(4, 4)
    for dt in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", dtype=dt), contextlib.redirect_stdout(io.StringIO()):
            got, want = c(x), f(x)
        assert got.dtype == want.dtype == dt
        torch.testing.assert_close(got, want)
    assert bytegraph.counters["stats"]["graphs_reused"] == 0
    assert len(be.graphs) == 4
