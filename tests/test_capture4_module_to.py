"""nn.Module.to(...) inside a compiled forward that converts nothing (switch_transformers'
router does `self.classifier = self.classifier.to(self.dtype)` every call): the call is the
module itself, in one graph; a real conversion, grads present, or the torch.__future__ flags
on keep eager's behaviour. Mimicked without importing transformers."""
import torch

import bytegraph
from differential import check, counters, graph_count


class Router(torch.nn.Module):
    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.classifier = torch.nn.Linear(4, 3)
        self.dtype = dtype
        self.register_buffer("scale", torch.ones(3))
        self.register_buffer("steps", torch.zeros(3, dtype=torch.int64))

    def forward(self, h):
        h = h.to(self.dtype)
        self.classifier = self.classifier.to(self.dtype)
        me = self.to(h.device)
        me2 = self.to(device="cpu", dtype=self.dtype)
        return self.classifier(h) * self.scale + self.steps, me is self, me2 is self


def test_noop_module_to_is_one_graph():
    check(Router(), torch.randn(2, 4), graphs=1)


def test_noop_module_to_in_training_with_backward():
    m = Router().train()
    x = torch.randn(2, 4)
    bytegraph.reset()
    cm = bytegraph.compile(m)
    for _ in range(2):
        m.zero_grad(set_to_none=True)
        out, same, same2 = cm(x)
        assert same and same2
        out.sum().backward()
    ref = Router()
    ref.load_state_dict(m.state_dict())
    ref(x)[0].sum().backward()
    torch.testing.assert_close(m.classifier.weight.grad, ref.classifier.weight.grad)
    assert graph_count() == 1


def test_module_to_with_grads_present_stays_correct():
    m = Router()
    m.classifier.weight.grad = torch.ones_like(m.classifier.weight)
    x = torch.randn(2, 4)
    bytegraph.reset()
    cm = bytegraph.compile(m)
    e = Router()
    e.load_state_dict(m.state_dict())
    e.classifier.weight.grad = torch.ones_like(e.classifier.weight)
    torch.testing.assert_close(cm(x)[0], e(x)[0])
    torch.testing.assert_close(m.classifier.weight.grad, e.classifier.weight.grad)
    m.classifier.weight.grad = None      # the guard on `.grad is None` now lets a new entry in
    torch.testing.assert_close(cm(x)[0], e(x)[0])


def test_module_to_real_conversion_stays_eager_correct():
    m = Router(dtype=torch.float64)
    x = torch.randn(2, 4)
    bytegraph.reset()
    cm = bytegraph.compile(m)
    e = Router(dtype=torch.float64)
    e.load_state_dict(m.state_dict())
    r, ex = cm(x), e(x)
    torch.testing.assert_close(r[0], ex[0])
    assert m.classifier.weight.dtype == e.classifier.weight.dtype == torch.float64
    assert m.scale.dtype == torch.float64 and m.steps.dtype == torch.int64
    torch.testing.assert_close(cm(x)[0], e(x)[0])   # now a no-op: converted already


def test_module_to_after_dtype_change_recompiles():
    m = Router()
    x = torch.randn(2, 4)
    bytegraph.reset()
    cm = bytegraph.compile(m)
    cm(x)
    m.classifier.double()                # the next call's .to(float32) converts back
    e = Router()
    e.load_state_dict(m.state_dict())
    e.classifier.double()
    torch.testing.assert_close(cm(x)[0], e(x)[0])
    assert m.classifier.weight.dtype == torch.float32


def test_module_to_swap_flag_guarded():
    m = Router()
    x = torch.randn(2, 4)
    bytegraph.reset()
    cm = bytegraph.compile(m)
    cm(x)
    n = graph_count()
    w = m.classifier.weight
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        e = Router()
        e.load_state_dict(m.state_dict())
        torch.testing.assert_close(cm(x)[0], e(x)[0])
    finally:
        torch.__future__.set_swap_module_params_on_conversion(False)
    assert m.classifier.weight is w
    assert graph_count() >= n


class Experts(torch.nn.ModuleDict):
    """A mixture of experts looping over the experts a routing mask hits (switch_transformers):
    the loop is over a nonzero() result, whose length is data-dependent."""

    def __init__(self):
        super().__init__({f"expert_{i}": torch.nn.Linear(4, 4) for i in range(3)})

    def forward(self, h, mask):
        out = torch.zeros_like(h)
        hit = torch.greater(mask.sum(dim=0), 0).nonzero()
        for idx in hit:
            rows = torch.where(mask[:, idx[0]])[0]
            out.index_add_(0, rows, self[f"expert_{idx[0]}"](h[rows]))
        return out


def test_iterating_a_data_dependent_length_breaks_instead_of_failing():
    m = Experts()
    h = torch.randn(5, 4)
    mask = torch.tensor([[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 1]], dtype=torch.bool)
    bytegraph.reset()
    cm = bytegraph.compile(m)
    torch.testing.assert_close(cm(h, mask), m(h, mask))
    torch.testing.assert_close(cm(h, mask), m(h, mask))
    assert not counters()["fallback"].get("internal_error")
    assert any("data-dependent" in k for k in counters()["graph_break"])
