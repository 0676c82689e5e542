"""Red-team probes for the buffer gather (guards/memory.py: BufferWatch, docs/call_cost.md
"Parameter and buffer metadata"): on the fast paths, the metadata chains of the buffers an
entry's cache holds (type, dtype, shape, stride, requires_grad, device and, with a compiling
backend, the negative/conjugate bits) are replaced by two memory gathers of their TensorImpls'
words, compared with a snapshot. Each probe warms a compiled model until the gather is in use,
then changes one of those properties of one buffer without any module write (so the module
generation counter does not move) and checks the result against eager and the recompile count.

The backend `raw` stands for a compiler that reads its inputs' memory as plain (inductor does):
it clears a negative view's bit before running the graph, so a stale hit on a negative buffer
gives the wrong sign. They fail when the gather is replaced by `True`."""
import pytest
import torch
import torch.nn as nn

from differential import REFERENCE, assert_same, compile_fn, ModelProbe, recompiles

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's cache and recompile counts")


def raw(gm, example_inputs):
    """A compiling backend that reads memory as plain: a negative view's values come out
    negated (as a graph inductor compiled for plain inputs would compute them)."""
    def run(*args):
        return gm(*[a._neg_view() if isinstance(a, torch.Tensor) and a.is_neg() else a
                    for a in args])
    return run


class Net(nn.Module):
    """Five buffers (the gather needs at least four), read so that their shape, stride,
    dtype and values all change the result."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        for i in range(4):
            self.register_buffer(f"b{i}", torch.randn(3) + i)
        self.register_buffer("m", torch.randn(2, 3))

    def forward(self, x):
        out = x * self.b0 + self.b1 - self.b2 * 2 + self.b3.sum()
        return out + self.m.sum(0) * self.m.shape[0] + self.m.stride(0)


def _ns(c):
    return c.__dict__["_bytegraph_call"].__bytegraph_state__.entries[0].__globals__


class Probe(ModelProbe):
    def __init__(self, backend=raw, model=None):
        self.m = (model or Net()).eval()
        self.c = compile_fn(self.m, backend=backend)
        self.x = torch.randn(3)
        for _ in range(3):
            self.run()
        # the gather is what this file probes: it must be in use before each mutation
        ns = _ns(self.c)
        assert ns["_bufs_same"](ns["_ecache"], ns["_ecache"].state[1])


def _negv(values):
    """A negative view holding `values` (its memory holds their negation)."""
    t = (-values).clone()._neg_view()
    assert t.is_neg()
    torch.testing.assert_close(t.resolve_neg(), values)
    return t


def test_data_set_to_negative_view():
    p = Probe()
    with torch.no_grad():
        p.m.b1.data = _negv(p.m.b1.clone())
    assert p.m.b1.is_neg()
    p.check(1)


def test_negative_bit_set_in_place():
    # torch._C._set_neg flips the key set's Negative bit of the same TensorImpl: no version
    # change, no module write, no new object
    p = Probe()
    with torch.no_grad():
        p.m.b2.copy_(-p.m.b2)
        torch._C._set_neg(p.m.b2, True)
    assert p.m.b2.is_neg()
    p.check(1)
    torch._C._set_neg(p.m.b2, False)     # and back: the first graph again, no recompile
    p.check(0)


def test_conjugate_bit_set_in_place():
    class C(Net):
        def __init__(self):
            super().__init__()
            self.register_buffer("z", torch.randn(3, dtype=torch.complex64))

        def forward(self, x):
            return super().forward(x) + torch.view_as_real(self.z * 1).sum(-1)

    p = Probe(model=C())
    with torch.no_grad():
        torch._C._set_conj(p.m.z, True)
    assert p.m.z.is_conj()
    p.check(1)


def test_eager_backend_negative_view_same_graph():
    # the eager backend reads the bit itself: no bits guard, the same entry gives eager's result
    p = Probe(backend="eager")
    with torch.no_grad():
        p.m.b0.data = _negv(p.m.b0.clone() * 3)
    p.check(0)


@pytest.mark.parametrize("how", ["shape", "dtype", "transpose", "unsqueeze_", "as_strided_",
                                 "resize_", "requires_grad_", "swap_tensors", "class"])
def test_metadata_changed_in_place(how):
    p = Probe()
    m = p.m
    with torch.no_grad():
        if how == "shape":
            m.b3.data = torch.randn(5)
        elif how == "dtype":
            m.b0.data = m.b0.data.double()
        elif how == "transpose":
            m.m.data = torch.randn(3, 2).t()        # same shape, other strides
        elif how == "unsqueeze_":
            m.m.unsqueeze_(0)
        elif how == "as_strided_":
            m.m.as_strided_((2, 3), (1, 2))
        elif how == "resize_":
            m.b3.resize_(2)
        elif how == "requires_grad_":
            m.b1.requires_grad_()
        elif how == "swap_tensors":
            other = torch.randn(4)
            torch.utils.swap_tensors(m.b3, other)
        elif how == "class":
            class T(torch.Tensor):
                pass
            m.b0.__class__ = T
    if how == "class":
        before = recompiles()
        with torch.no_grad():
            assert_same(p.m(p.x).as_subclass(torch.Tensor), p.c(p.x).as_subclass(torch.Tensor))
        assert recompiles() - before == 1
        return
    p.check(1)


def test_data_set_to_equal_metadata_is_a_hit():
    # new storage, same metadata: no recompile, the new values
    p = Probe()
    with torch.no_grad():
        p.m.b0.data = torch.full((3,), 7.0)
        p.m.m.set_(torch.randn(2, 3))
    p.check(0)


def test_storage_offset_moved():
    # a view at another offset (the chain does not check a zero offset; the gather reads it,
    # disagrees, and the chain decides: no recompile, eager's values)
    p = Probe()
    base = torch.randn(10)
    with torch.no_grad():
        p.m.b2.data = base[4:7]
    p.check(0)
    with torch.no_grad():
        p.m.b2.data = base[1:4]
    p.check(0)


def test_buffer_replaced_then_changed():
    # a new buffer object (module write: full check, new cache tuple), then a negative bit on it
    p = Probe()
    p.m.b3 = torch.randn(3)
    p.check(0)
    ns = _ns(p.c)
    assert ns["_bufs_same"](ns["_ecache"], ns["_ecache"].state[1])
    with torch.no_grad():
        p.m.b3.copy_(-p.m.b3)
        torch._C._set_neg(p.m.b3, True)
    p.check(1)


def test_cache_cleared_then_negative():
    p = Probe()
    ns = _ns(p.c)
    ns["_ecache"].clear()
    p.check(0)
    with torch.no_grad():
        p.m.b0.data = _negv(p.m.b0.clone())
    p.check(1)


def test_inductor_negative_buffer():
    """The real compiler: `.data =` a negative view on a buffer of a model with enough buffers
    for the gather; inductor's graph reads memory as plain, so a stale hit gives the wrong
    sign."""
    p = Probe(backend="inductor")
    with torch.no_grad():
        p.m.b1.data = _negv(p.m.b1.clone() * 2)
    p.run()
    p.run()


def test_inference_mode_parameters():
    """Parameters made in inference mode have no version counter: their metadata chains take
    the buffer gather too. A negative bit set in place on one must still miss."""
    with torch.inference_mode():
        class P(nn.Module):
            def __init__(self):
                super().__init__()
                self.ps = nn.ParameterList([nn.Parameter(torch.randn(3) + i, requires_grad=False)
                                            for i in range(4)])

            def forward(self, x):
                return x * self.ps[0] + self.ps[1] - self.ps[2] * 2 + self.ps[3].sum()

        model = P()
    assert model.ps[0].is_inference()
    p = Probe(model=model)
    with torch.no_grad():
        torch._C._set_neg(model.ps[1], True)
    assert model.ps[1].is_neg()
    p.check(1)
