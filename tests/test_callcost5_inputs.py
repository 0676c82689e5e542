"""Red-team probes for the input-tensor gather (guards/memory.py: InputWatch, docs/call_cost.md):
an entry with at least four tensor arguments (exact torch.Tensor, not requiring grad) checks
their type, dtype, shape, strides, requires_grad and device by gathering, from memory, each
object's type word, its TensorImpl's address and that impl's autograd-meta pointer, sizes,
strides, storage offset, dtype/device/policy word and dispatch key set, compared with a
snapshot. Each probe warms a compiled function until the gather is in use, then changes
exactly one of those properties -- on the same tensor object (so the gather's cached index is
what runs) or with a fresh object -- and checks the result against eager and the recompile
count. They fail when the gather is replaced by `True` once it has a snapshot."""
import pytest
import torch

from differential import REFERENCE, assert_same, compile_fn, counters

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's cache and recompile counts")


def recompiles():
    return counters()["recompiles"]["total"]


def _meta_sum(x):
    # every property the guards check changes the result
    return (x.sum() * x.shape[-1] + x.stride(0) * 10 + x.dim() * 100
            + (1.0 if x.dtype == torch.float32 else 2.0) + (3.0 if x.requires_grad else 0.0)
            + (0.0 if type(x) is torch.Tensor else 7.0))


def f6(a, b, c, d, e, g):
    out = _meta_sum(a)
    for x in (b, c, d, e, g):
        out = out + _meta_sum(x)
    return out


def f9(a, b, c, d, e, g, h, i, j):
    out = _meta_sum(a)
    for x in (b, c, d, e, g, h, i, j):
        out = out + _meta_sum(x)
    return out


class MyT(torch.Tensor):
    pass


def _watch(c):
    from bytegraph.guards.memory import InputWatch
    return [v for e in c.__bytegraph_state__.entries for v in e.__globals__.values()
            if type(v) is InputWatch]


class Probe:
    def __init__(self, fn, n, two_d=2):
        torch.manual_seed(0)
        self.fn = fn
        self.c = compile_fn(fn, backend="eager")
        self.xs = [torch.randn(3, 3) if i == two_d else torch.randn(4) for i in range(n)]
        for _ in range(3):
            self.run()
        ws = _watch(self.c)
        if ws:       # on CPython 3.11 + torch 2.13 the probe finds the layout
            w = ws[0]
            assert w.fexp is not None and w.same(tuple(map(id, self.xs)))
        self.watch = ws[0] if ws else None

    def run(self, xs=None):
        xs = self.xs if xs is None else xs
        expected = self.fn(*xs)
        actual = self.c(*xs)
        assert_same(expected, actual)

    def check(self, n, xs=None):
        before = recompiles()
        for _ in range(3):
            self.run(xs)
        assert recompiles() - before == n


def test_layout_found():
    from bytegraph.guards import memory
    if memory._TENSOR_AT is not None:
        assert memory._IMPL_AT is not None
    p = Probe(f6, 6)
    assert p.watch is not None or memory._IMPL_AT is None


def test_layout_found_under_another_default_dtype():
    """The memory probes run when bytegraph is imported, which a program (or a test worker)
    may do under set_default_dtype(torch.float64): they must not depend on it (they did: the
    fast input checks were then off for the whole process)."""
    import os
    import subprocess
    import sys
    code = ("import torch; torch.set_default_dtype(torch.float64)\n"
            "from bytegraph.guards import memory\n"
            "print(memory._TENSOR_AT is None or memory._IMPL_AT is not None)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "True", out.stderr


@pytest.fixture
def p6():
    return Probe(f6, 6)


def test_dtype_through_data(p6):
    x = p6.xs[3]
    x.data = x.data.double()
    p6.check(1)


def test_shape_through_data(p6):
    p6.xs[3].data = torch.randn(5)
    p6.check(1)


def test_resize_in_place(p6):
    p6.xs[3].resize_(6)
    p6.check(1)


def test_unsqueeze_in_place(p6):
    p6.xs[3].unsqueeze_(0)
    p6.check(1)


def test_transpose_in_place_changes_strides_only(p6):
    p6.xs[2].t_()                   # (3, 3): same shape, other strides
    p6.check(1)
    p6.xs[2].t_()                   # back: the first entry again
    p6.check(0)


def test_as_strided_in_place(p6):
    p6.xs[2].as_strided_((3, 3), (1, 3))
    p6.check(1)


def test_set_to_other_shape(p6):
    p6.xs[4].set_(torch.randn(2, 2))
    p6.check(1)


def test_requires_grad_in_place(p6):
    p6.xs[1].requires_grad_()
    p6.check(1)


def test_requires_grad_attribute(p6):
    p6.xs[5].requires_grad = True
    p6.check(1)


def test_class_assignment(p6):
    p6.xs[0].__class__ = MyT
    p6.check(1)


def test_subclass_instance_fresh_object(p6):
    xs = list(p6.xs)
    xs[1] = xs[1].as_subclass(MyT)
    p6.check(1, xs)


def test_swap_tensors_other_shape(p6):
    torch.utils.swap_tensors(p6.xs[3], torch.randn(7))
    p6.check(1)


def test_swap_tensors_same_metadata(p6):
    torch.utils.swap_tensors(p6.xs[3], torch.randn(4))
    p6.check(0)


def test_storage_offset_view_keeps_result(p6):
    base = torch.randn(10)
    p6.xs[3].set_(base.untyped_storage(), 3, (4,), (1,))
    p6.check(0)                     # the trace saw offset 0 and does not depend on it
    p6.xs[3].set_(base.untyped_storage(), 5, (4,), (2,))
    p6.check(1)


def test_inference_tensor(p6):
    with torch.inference_mode():
        t = torch.randn(4)
    xs = list(p6.xs)
    xs[3] = t                       # other dispatch keys, same dtype/shape/strides
    before = recompiles()
    p6.run(xs)
    p6.run(xs)
    assert recompiles() - before <= 1


def test_autograd_meta_without_grad():
    x = torch.randn(4, requires_grad=True)
    x.requires_grad_(False)         # an AutogradMeta that says False: no snapshot of it
    p = Probe(f6, 6)
    xs = list(p.xs)
    xs[2] = x
    before = recompiles()
    for _ in range(3):
        p.run(xs)
    x.requires_grad_(True)
    for _ in range(3):
        p.run(xs)
    assert recompiles() - before >= 1


def test_reused_id_other_shape(p6):
    old_id = id(p6.xs[3])
    p6.xs[3] = None
    found = None
    keep = []
    for _ in range(200):
        t = torch.randn(5)
        if id(t) == old_id:
            found = t
            break
        keep.append(t)
    if found is None:
        pytest.skip("no tensor object reused the freed address")
    p6.xs[3] = found
    p6.check(1)


# fresh tensors every call (at least _FRESH_MIN inputs): the index is built from their ids

def _fresh(p, change=None):
    xs = [torch.randn(3, 3) if i == 2 else torch.randn(4) for i in range(len(p.xs))]
    if change is not None:
        xs = change(xs)
    return xs


@pytest.fixture
def p9():
    return Probe(f9, 9)


def test_fresh_inputs_same_metadata(p9):
    before = recompiles()
    for _ in range(3):
        xs = _fresh(p9)
        p9.run(xs)
        if p9.watch is not None:
            assert p9.watch.index[0] == tuple(map(id, xs))    # the gather took them
    assert recompiles() == before


@pytest.mark.parametrize("change", [
    lambda xs: xs[:4] + [xs[4].double()] + xs[5:],
    lambda xs: xs[:4] + [torch.randn(5)] + xs[5:],
    lambda xs: xs[:2] + [xs[2].t()] + xs[3:],
    lambda xs: xs[:4] + [xs[4].requires_grad_()] + xs[5:],
    lambda xs: xs[:4] + [xs[4].as_subclass(MyT)] + xs[5:],
    lambda xs: xs[:4] + [torch.randn(1, 4)] + xs[5:],
], ids=["dtype", "shape", "stride", "requires_grad", "subclass", "ndim"])
def test_fresh_inputs_changed(p9, change):
    before = recompiles()
    for _ in range(3):
        p9.run(_fresh(p9, change))
    assert recompiles() - before == 1


def test_warm_start_text_keeps_the_checks():
    # warm start persists the entry's plain text: the gather (a per-process object) is not in it
    from bytegraph.runtime import warm
    p = Probe(f6, 6)
    state = p.c.__bytegraph_state__
    entry = state.entries[0]
    assert ".same((id(" in entry.__bytegraph_source__
    assert ".same((id(" not in entry.__bytegraph_plain_source__
    rec = warm._encode_entry(state, entry)
    assert ".same((id(" not in rec["source"] and "stride()" in rec["source"]
