"""Per-layer data-dependent breaks: one compiled unit per layer type, not per layer (issue 7).

A model whose N identical layers each stop the trace (`if x.abs().max() > t:` in forward) used
to resume level after level, one graph per layer. The stop now moves out to the parent's call
of a layer whose class has other instances in the model (runtime/resume.py:
_split_at_module_call); the layer's forward is compiled as its own unit through the trampoline,
and that unit guards the module it is passed by type and by what it reads, not by identity
(values/objects.py: wrap_module), so every layer reuses its entries.

Differential: outputs, gradients and the layers' buffers (written by forward) against eager on
every call; graph counts bounded independently of N and not above torch.compile's. The
soundness probes pass instances of one class that differ in what the trace read (a constant
attribute, a child's type, a buffer's shape, training mode, hooks, identity used as a key)."""
import copy

import pytest
import torch
from torch import nn

import bytegraph

from test_graph_breaks import Counting


class Gate(nn.Module):
    def __init__(self, t=1.0, width=8):
        super().__init__()
        self.lin = nn.Linear(width, width)
        self.t = t
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x):
        x = self.lin(x)
        if x.abs().max() > self.t:
            x = x * 0.5
        self.seen = self.seen + 1
        return torch.relu(x) + 1


class Block(nn.Module):
    def __init__(self, t=1.0):
        super().__init__()
        self.a = Gate(t)
        self.b = Gate(t)

    def forward(self, x):
        return self.b(self.a(x) - 1) - 1


class Net(nn.Module):
    def __init__(self, n, layer=Block):
        super().__init__()
        self.layers = nn.ModuleList(layer() for _ in range(n))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x.sum()


def _close(a, b):
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    else:
        assert a == b


def differential(model, make_input, calls=3, train=False, backend=None):
    """Run `model` eagerly and a deep copy compiled; compare outputs, buffers and (train)
    gradients on every call. Returns the graphs compiled on the first call and in all."""
    bytegraph.reset()
    be = backend or Counting()
    eager = model
    mine = copy.deepcopy(model)
    c = bytegraph.compile(mine, backend=be)
    first = None
    for i in range(calls):
        x = make_input(i)
        if train:
            e = eager(x)
            e.backward()
            r = c(x.clone())
            r.backward()
            for (n, p), (_, q) in zip(eager.named_parameters(), mine.named_parameters()):
                _close(p.grad, q.grad)
        else:
            with torch.no_grad():
                e = eager(x)
                r = c(x.clone())
        _close(e, r)
        for (n, b), (_, q) in zip(eager.named_buffers(), mine.named_buffers()):
            _close(b, q)
        if first is None:
            first = len(be.graphs)
    assert not bytegraph.counters["fallback"], dict(bytegraph.counters["fallback"])
    return first, len(be.graphs)


def _torch_graphs(model, make_input, calls=3):
    import torch._dynamo
    torch._dynamo.reset()
    be = Counting()
    c = torch.compile(copy.deepcopy(model), backend=be)
    with torch.no_grad():
        for i in range(calls):
            c(make_input(i))
    return len(be.graphs)


def _inputs(seed_scale):
    def make(i):
        g = torch.Generator().manual_seed(100 + i)
        return torch.randn(3, 8, generator=g) * seed_scale
    return make


@pytest.mark.parametrize("n", [4, 8])
def test_layers_share_one_unit(n):
    torch.manual_seed(0)
    model = Net(n)
    first, total = differential(model, _inputs(1.0))
    # per layer type: the gate's graphs before/after its branch (each direction), the block's
    # regions between its gates, the loop's root -- independent of the number of layers
    assert total <= 8, total
    # torch.compile runs Net.forward eagerly (a break inside its for loop skips the frame);
    # bytegraph compiles the loop's last region too (the final `x.sum()`): one graph more
    assert total <= _torch_graphs(model, _inputs(1.0)) + 1, total


def test_layer_count_does_not_change_graph_count():
    counts = []
    for n in (4, 12):
        torch.manual_seed(0)
        model = Net(n)
        # inputs that always take the branch: the same paths for any depth
        counts.append(differential(model, _inputs(100.0))[1])
    assert counts[0] == counts[1], counts


def test_train_gradients_and_buffers():
    torch.manual_seed(0)
    model = Net(4).train()
    differential(model, _inputs(1.0), train=True)


def test_instances_differ_in_constant_attribute():
    torch.manual_seed(0)
    model = Net(4)
    model.layers[1].a.t = 1e9          # never takes the branch
    model.layers[2].b.t = -1.0         # always takes it
    model.layers[3].a.t = 2            # an int: a different type
    differential(model, _inputs(3.0))


def test_instances_differ_in_child_type():
    torch.manual_seed(0)
    model = Net(4)
    model.layers[2].a.lin = nn.Identity()
    model.layers[3].b.lin = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
    differential(model, _inputs(2.0))


def test_instances_differ_in_buffer_and_training():
    torch.manual_seed(0)
    model = Net(4)
    model.layers[1].a.seen = torch.zeros(3, 1)     # a buffer of another shape
    model.layers[2].eval()
    model.layers[3].b.train(False)
    differential(model, _inputs(2.0))


def test_instance_with_hook():
    torch.manual_seed(0)
    model = Net(4)
    calls = []
    model.layers[2].a.register_forward_hook(lambda m, i, o: o * 2)
    bytegraph.reset()
    eager = model
    mine = copy.deepcopy(model)
    mine.layers[2].b.register_forward_pre_hook(lambda m, i: calls.append(1))
    eager.layers[2].b.register_forward_pre_hook(lambda m, i: calls.append(1))
    c = bytegraph.compile(mine, backend=Counting())
    with torch.no_grad():
        for i in range(3):
            x = _inputs(2.0)(i)
            _close(eager(x), c(x.clone()))
    assert len(calls) == 6


class KeyedGate(Gate):
    """Reads a registry keyed by the module itself: the entry must specialize on identity."""
    registry = {}

    def forward(self, x):
        x = self.lin(x)
        if x.abs().max() > self.t:
            x = x * 0.5
        return x * KeyedGate.registry.get(self, 1.0)


class KeyedBlock(Block):
    def __init__(self, t=1.0):
        nn.Module.__init__(self)
        self.a = KeyedGate(t)
        self.b = KeyedGate(t)


def test_module_as_dict_key_pins_identity():
    torch.manual_seed(0)
    model = Net(4, KeyedBlock)
    KeyedGate.registry.clear()
    mine = copy.deepcopy(model)
    KeyedGate.registry[model.layers[1].b] = 3.0
    KeyedGate.registry[mine.layers[1].b] = 3.0
    KeyedGate.registry[model.layers[3].a] = -2.0
    KeyedGate.registry[mine.layers[3].a] = -2.0
    bytegraph.reset()
    c = bytegraph.compile(mine, backend=Counting())
    try:
        with torch.no_grad():
            for i in range(3):
                x = _inputs(2.0)(i)
                _close(model(x), c(x.clone()))
    finally:
        KeyedGate.registry.clear()


class SameChild(nn.Module):
    """Compares two of its children by identity."""
    def __init__(self, shared):
        super().__init__()
        self.p = Gate()
        self.q = self.p if shared else Gate()

    def forward(self, x):
        y = self.p(x)
        if self.p is self.q:
            return y + 1
        return self.q(y) - 1


def test_child_identity_comparison():
    torch.manual_seed(0)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([SameChild(False), SameChild(True), SameChild(False),
                                         SameChild(True)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    differential(M(), _inputs(2.0))


class ListBlock(nn.Module):
    """Iterates a ModuleList of its own: the unit guards the list's keys, on every instance."""
    def __init__(self):
        super().__init__()
        self.gates = nn.ModuleList([Gate(), Gate()])

    def forward(self, x):
        for g in self.gates:
            x = g(x) - 1
        return x


def test_layers_iterating_their_own_module_list():
    torch.manual_seed(0)
    model = Net(6, ListBlock)
    first, total = differential(model, _inputs(100.0))
    assert total <= 8, total


def test_parametrized_layers_do_not_split():
    """torch's parametrizations make a class per instance: no shared unit, still correct."""
    from torch.nn.utils import parametrizations
    torch.manual_seed(0)
    model = Net(4)
    for block in model.layers:
        parametrizations.weight_norm(block.a.lin)
    differential(model, _inputs(2.0))
