"""Red-team probes for the parameter gather (guards/generation.py: ParamWatch, docs/call_cost.md):
on the fast path, the tuple `(p._version, p._cdata, ...)` of an entry's parameters is replaced,
while the entry's cache holds the same parameters, by three memory gathers (each parameter's
TensorImpl address, each impl's version counter address, each counter's count) compared with a
snapshot. Each probe warms a compiled model until the gather is in use, then changes exactly
what it reads -- the version count (in-place metadata ops, value writes), the TensorImpl
(swap_tensors), the counter object -- and checks the result against eager and the recompile
count. They fail when the gather is replaced by `True`."""
import pytest
import torch
import torch.nn as nn

from differential import REFERENCE, assert_same, compile_fn, ModelProbe, recompiles

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's cache and recompile counts")


class Net(nn.Module):
    def __init__(self, grad=True):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.inner = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.w = nn.Parameter(torch.randn(3, 2), requires_grad=grad)
        self.v = nn.Parameter(torch.randn(6), requires_grad=grad)

    def forward(self, x):
        y = self.inner(self.lin(x))
        return y.sum(-1, keepdim=True) * self.w.sum() + self.w.shape[0] * self.w.stride(0) \
            + self.v.sum() + self.v.shape[0]


def _entries(c):
    return c.__dict__["_bytegraph_call"].__bytegraph_state__.entries


class Probe(ModelProbe):
    def __init__(self, model):
        torch.manual_seed(0)
        self.m = model.eval()
        self.c = compile_fn(self.m, backend="eager")
        self.x = torch.randn(2, 4)
        for _ in range(3):
            self.run()
        # the gather is what this file probes: it must be in use before each mutation
        ns = _entries(self.c)[0].__globals__
        if "_params_same" in ns:
            assert ns["_params_same"](ns["_ecache"], ns["_ecache"].state[1])


@pytest.fixture
def probe():
    return Probe(Net())


def test_gather_offsets_found():
    from bytegraph.guards import generation
    if generation._MEM is not None and sys_has_proc():
        assert generation._TENSOR_AT is not None


def sys_has_proc():
    import os
    return os.path.exists("/proc/self/maps")


def test_transpose_in_place(probe):
    with torch.no_grad():
        probe.m.w.t_()
    probe.check(1)


def test_transpose_back_keeps_working(probe):
    with torch.no_grad():
        probe.m.w.t_()
    probe.check(1)
    with torch.no_grad():
        probe.m.w.t_()
    probe.check(0)                      # the first entry serves again


def test_set_to_other_shape(probe):
    with torch.no_grad():
        probe.m.v.set_(torch.randn(5))
    probe.check(1)


def test_set_through_aten_same_shape_new_values(probe):
    with torch.no_grad():
        torch.ops.aten.set_.source_Tensor(probe.m.w, torch.randn(3, 2))
    probe.check(0)


def test_as_strided_in_place(probe):
    with torch.no_grad():
        torch.ops.aten.as_strided_(probe.m.w, (2, 3), (1, 2))
    probe.check(1)


def test_squeeze_unsqueeze_deep_parameter(probe):
    with torch.no_grad():
        probe.m.inner[0].bias.unsqueeze_(0)
    before = recompiles()
    with torch.no_grad():
        expected = probe.m(probe.x)
        actual = probe.c(probe.x)
    assert_same(expected, actual)
    assert recompiles() - before == 1


def test_resize_in_place_without_grad():
    p = Probe(Net(grad=False))
    with torch.no_grad():
        p.m.v.resize_(8).fill_(0.5)
    p.check(1)


def test_value_write_only_refreshes(probe):
    with torch.no_grad():
        probe.m.w.add_(1.0)
        probe.m.inner[0].weight.mul_(2.0)
    probe.check(0)
    with torch.no_grad():
        probe.m.w.t_()              # after the refreshed snapshot, a metadata change is still seen
    probe.check(1)


def test_swap_tensors_other_shape(probe):
    other = nn.Parameter(torch.randn(2, 3))
    torch.utils.swap_tensors(probe.m.w, other)
    probe.check(1)


def test_swap_tensors_same_shape_other_stride(probe):
    other = nn.Parameter(torch.randn(2, 3).t())
    torch.utils.swap_tensors(probe.m.w, other)
    probe.check(1)


def test_swap_tensors_same_metadata(probe):
    other = nn.Parameter(torch.randn(3, 2))
    torch.utils.swap_tensors(probe.m.w, other)
    probe.check(0)


def test_swap_then_in_place_on_the_new_impl(probe):
    other = nn.Parameter(torch.randn(3, 2))
    torch.utils.swap_tensors(probe.m.w, other)
    probe.check(0)
    with torch.no_grad():
        probe.m.w.t_()
    probe.check(1)


def test_view_shares_the_counter(probe):
    # an in-place op through a view bumps the parameter's (shared) counter: values change, the
    # gather disagrees, the tuple path refreshes it without a recompile
    with torch.no_grad():
        probe.m.w.view(6).add_(3.0)
    probe.check(0)


def test_replaced_parameter_then_in_place_change(probe):
    probe.m.w = nn.Parameter(torch.randn(3, 2))
    probe.check(0)
    with torch.no_grad():
        probe.m.w.t_()
    probe.check(1)
    old = probe.m.v
    probe.m.v = nn.Parameter(torch.randn(6))
    probe.check(0)
    with torch.no_grad():
        old.resize_(2) if not old.requires_grad else old.t_()   # the replaced one: no effect
    probe.check(0)


def test_data_assignment_still_seen(probe):
    probe.m.w.data = torch.randn(2, 3)
    probe.check(1)


def test_cache_cleared_drops_the_watch(probe):
    ns = _entries(probe.c)[0].__globals__
    cache = ns["_ecache"]
    probe.m.lin.weight = nn.Parameter(torch.randn(4, 4))    # a full check that passes: new locals
    probe.check(0)
    assert cache.pwatch is None or cache.pwatch.values is cache.state[1]
    cache.clear()
    assert cache.pwatch is None
    probe.check(0)
