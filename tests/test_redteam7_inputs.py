"""Red team 7: input tensors whose bits a compiled graph does not read, and the input gather.

A negative view (`z.conj().imag`) or a conjugate view holds the values of the tensor it views
with a bit saying "negate"/"conjugate"; a graph compiled by inductor reads the memory as if the
bit were clear (torch.compile gives the wrong sign too). Differential (eager vs bytegraph with
backend="inductor" and the eager backend): outputs and recompile counts. A graph with such an
input runs uncompiled (runtime/convert.py) and a compiling backend's entry guards the bits
(guards/guard_set.py: add_graph_state). The InputWatch probes (guards/memory.py) change one
property of a warmed input in place or by a fresh object and compare with eager."""
import pytest
import torch

import bytegraph
from differential import REFERENCE
from test_callcost5_inputs import Probe, f6, recompiles

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's cache and recompile counts")


@pytest.fixture
def fresh_inductor_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))


def lin(x):
    return x * 2 + 1


def z():
    return torch.arange(4.0) * (1 + 1j)


@pytest.mark.parametrize("backend", ["inductor", "eager"])
def test_negative_view_first_call(backend, fresh_inductor_cache):
    # was (inductor): tensor([1, 3, 5, 7]) for eager's tensor([1, -1, -3, -5])
    bytegraph.reset()
    c = bytegraph.compile(lin, backend=backend)
    n = z().conj().imag
    assert n.is_neg()
    torch.testing.assert_close(c(n), lin(n))


@pytest.mark.parametrize("backend", ["inductor", "eager"])
def test_negative_view_after_plain_is_not_a_stale_hit(backend, fresh_inductor_cache):
    bytegraph.reset()
    c = bytegraph.compile(lin, backend=backend)
    for x in (z().imag, z().conj().imag, z().imag, z().conj().imag):
        torch.testing.assert_close(c(x), lin(x))
    # a compiling backend recompiles once for the bit (then both entries hit)
    assert recompiles() == (1 if backend == "inductor" else 0)


def test_conjugate_view_inductor(fresh_inductor_cache):
    bytegraph.reset()
    c = bytegraph.compile(lin, backend="inductor")
    for x in (z(), z().conj(), z()):
        torch.testing.assert_close(c(x), lin(x))


def test_negative_view_into_graph_after_break(fresh_inductor_cache, capsys):
    def f(x, w):
        y = x + 1
        print("break")
        return y * w
    bytegraph.reset()
    c = bytegraph.compile(f, backend="inductor")
    for w in (z().imag, z().conj().imag):
        torch.testing.assert_close(c(torch.ones(4), w), f(torch.ones(4), w))


# ---------------------------------------------------------------- InputWatch, changed in place

def _mutations():
    def neg_view(p):
        p.xs[1] = torch._neg_view(p.xs[1])

    def set_other_storage(p):
        p.xs[1].set_(p.xs[0])

    def resize_zero(p):
        p.xs[0].resize_(0)

    def t_(p):
        p.xs[2].t_()

    def inference(p):
        with torch.inference_mode():
            p.xs[3] = p.xs[3].clone()

    def grad_attr(p):
        p.xs[3].grad = torch.ones(4)

    def parameter(p):
        p.xs[3] = torch.nn.Parameter(p.xs[3], requires_grad=False)

    def swap_same(p):
        torch.utils.swap_tensors(p.xs[4], torch.randn(4))

    def swap_dtype(p):
        torch.utils.swap_tensors(p.xs[4], torch.randn(4, dtype=torch.float64))

    def data_shape(p):
        p.xs[4].data = torch.randn(4, 1)

    return [neg_view, set_other_storage, resize_zero, t_, inference, grad_attr, parameter,
            swap_same, swap_dtype, data_shape]   # (a storage resized to 0 bytes crashes eager itself)


@pytest.mark.parametrize("mutate", _mutations(), ids=lambda f: f.__name__)
def test_input_changed_between_calls(mutate):
    p = Probe(f6, 6)
    mutate(p)
    try:
        want = p.fn(*p.xs)
    except Exception as e:          # eager raises: so must the compiled call
        with pytest.raises(type(e)):
            p.c(*p.xs)
        return
    p.run()
    p.run()


def test_negative_view_swapped_into_parameter_and_buffer():
    """A parameter's negative/conjugate bits are checked with its metadata when its versions
    change (guards/generation.py `_fold_bits`), a buffer's on every call: `.data =` a negative
    view must not hit a graph inductor compiled for plain memory."""
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))
            self.register_buffer("b", torch.ones(3))

        def forward(self, x):
            return x * self.w + self.b

    m, x = M(), torch.ones(3)
    c = bytegraph.compile(m, backend="inductor")
    torch.testing.assert_close(c(x), m(x))
    negv = torch.complex(torch.ones(3) * 2, torch.ones(3) * 5).conj().imag
    assert negv.is_neg()
    with torch.no_grad():
        m.w.data = negv
    assert m.w.is_neg()
    torch.testing.assert_close(c(x), m(x))
    with torch.no_grad():
        m.b.data = negv.clone()._neg_view()
    assert m.b.is_neg()
    torch.testing.assert_close(c(x), m(x))
