"""Graphs with symbolic sizes shared across the traces of one compiled function's family
(runtime/graph_reuse.py: family_key), on a switch_transformers-style mixture of experts: a
`nonzero()` loop over the experts hit, each picked by `self[f"expert_{e[0]}"]` (a stop at the
f-string), so each (layer, expert) is its own resume entry, and the expert MLP's graph is the
same in each but for which parameters it reads (graph inputs). Differential: outputs and
gradients equal eager's, later calls choosing other experts, experts swapped or parameters
replaced afterwards are read (never a stale graph), the second call with the same input is a
pure cache hit. Also: `F.dropout` that is the identity in eager hands back its input in the trace
too (a symbolic trace's fake run made a copy: graphs of static and symbolic traces differed, and
inductor lost a write through the result), and the key refuses graphs whose ShapeEnv facts differ
or whose backend added an assumption."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bytegraph
from bytegraph.runtime.graph_reuse import family_key
from differential import REFERENCE, assert_same

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's graph counts")


class Expert(nn.Module):
    def __init__(self, d=8, h=16):
        super().__init__()
        self.wi = nn.Linear(d, h, bias=False)
        self.wo = nn.Linear(h, d, bias=False)
        self.dropout = nn.Dropout(0.0)

    def forward(self, x):
        return self.wo(self.dropout(torch.relu(self.wi(x))))


class Experts(nn.ModuleDict):
    def __init__(self, n=4):
        super().__init__()
        for i in range(n):
            self[f"expert_{i}"] = Expert()

    def forward(self, h, mask, w):          # SwitchTransformersExperts.forward's loop
        out = torch.zeros_like(h)
        hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
        for e in hit:
            idx, top = torch.where(mask[e].squeeze(0))
            cur = h[None, top].reshape(-1, h.shape[-1])
            y = self[f"expert_{e[0]}"](cur) * w[top, idx, None]
            out.index_add_(0, top, y.to(h.dtype))
        return out


class Layer(nn.Module):
    def __init__(self, n=4):
        super().__init__()
        self.router = nn.Linear(8, n)
        self.experts = Experts(n)
        self.n = n

    def forward(self, x):
        probs = self.router(x).softmax(-1)
        sel = F.one_hot(probs.argmax(-1), self.n)
        mask = sel.view(-1, 1, self.n).permute(2, 1, 0)
        return x + self.experts(x, mask, probs.max(-1).values.view(-1, 1))


class Model(nn.Module):
    def __init__(self, layers=4):
        super().__init__()
        self.layers = nn.ModuleList(Layer() for _ in range(layers))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Counting:
    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


def _models(seed=0):
    torch.manual_seed(seed)
    eager = Model()
    return eager, copy.deepcopy(eager)


def _inputs(seed):
    return torch.randn(16, 8, generator=torch.Generator().manual_seed(seed))


def _traces():
    return bytegraph.counters["frames"]["total"]


def _reused():
    return bytegraph.counters["stats"]["graphs_reused"]


def test_outputs_and_gradients_match_and_expert_graphs_are_shared():
    bytegraph.reset()
    eager, mine = _models()
    be = Counting()
    compiled = bytegraph.compile(mine, backend=be)
    x = _inputs(1)
    xe, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
    want, got = eager(xe), compiled(xc)
    assert_same(want, got)
    want.pow(2).sum().backward()
    got.pow(2).sum().backward()
    assert_same(xe.grad, xc.grad)
    for (name, pe), (_, pc) in zip(eager.named_parameters(), mine.named_parameters()):
        assert_same(pe.grad, pc.grad), name
    # the expert graphs of later (layer, expert) entries are the ones compiled for earlier ones
    # (without sharing across traces: 16 graphs, none reused)
    assert (be.graphs, _reused()) == (10, 5)     # (14, 2) before session 14 (rows stepped)
    graphs, traces, reused = be.graphs, _traces(), _reused()
    assert_same(eager(x.clone().requires_grad_()), compiled(x.clone().requires_grad_()))
    assert (be.graphs, _traces(), _reused()) == (graphs, traces, reused), "not a pure cache hit"


def _calls_match_eager(be, calls):
    """Compile the MoE with backend `be` and call it on `calls` seeded inputs, each against eager."""
    bytegraph.reset()
    eager, mine = _models()
    compiled = bytegraph.compile(mine, backend=be)
    for seed in range(calls):
        x = _inputs(seed)
        assert_same(eager(x), compiled(x))


def test_other_experts_on_later_calls():
    _calls_match_eager(Counting(), 6)
    assert _reused() > 0


@pytest.mark.parametrize("change", ["swap_module", "exchange_modules", "replace_parameter", "write_parameter"])
def test_changed_experts_are_read_not_a_stale_graph(change):
    bytegraph.reset()
    eager, mine = _models()
    compiled = bytegraph.compile(mine, backend=Counting())
    xs = [_inputs(s) for s in range(3)]
    for x in xs:
        assert_same(eager(x), compiled(x))
    for model in (eager, mine):
        torch.manual_seed(7)
        experts = model.layers[1].experts
        if change == "swap_module":
            experts["expert_2"] = Expert()
        elif change == "exchange_modules":
            a, b = experts["expert_0"], experts["expert_1"]
            experts["expert_0"], experts["expert_1"] = b, a
        elif change == "replace_parameter":
            experts["expert_3"].wi.weight = nn.Parameter(torch.randn(16, 8))
        else:
            with torch.no_grad():
                for e in experts.values():
                    e.wo.weight.mul_(3)
    for x in xs:
        want = eager(x)
        got = compiled(x)
        assert_same(want, got)


def test_pure_cache_hit_after_warm_up():
    bytegraph.reset()
    eager, mine = _models()
    be = Counting()
    compiled = bytegraph.compile(mine, backend=be)
    xs = [_inputs(s) for s in range(4)]
    for x in xs:
        compiled(x)
    graphs, traces = be.graphs, _traces()
    for x in xs:
        assert_same(eager(x), compiled(x))
    assert (be.graphs, _traces()) == (graphs, traces)


class _Specializing:
    """A backend that bakes every symbolic size of its inputs in (asking the ShapeEnv, which adds
    the guards), and refuses other sizes at run time: a graph it compiled must never serve another
    trace whose guards do not say so."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        baked = []
        for i, p in enumerate(n for n in gm.graph.nodes if n.op == "placeholder"):
            fake = p.meta.get("example_value")
            if isinstance(fake, torch.Tensor) and any(isinstance(s, torch.SymInt) for s in fake.shape):
                sizes = tuple(int(s) for s in fake.shape)      # int(): a guard on each
                baked.append((i, sizes))

        def run(*args):
            for i, sizes in baked:
                assert tuple(args[i].shape) == sizes, "a graph compiled for other sizes"
            return gm.forward(*args)
        return run


def test_a_backend_that_specializes_does_not_share():
    _calls_match_eager(_Specializing(), 4)


def _graph_over(fake):
    g = torch.fx.Graph()
    p = g.placeholder("x")
    p.meta["example_value"] = fake
    y = g.call_function(torch.sin, (p,))
    y.meta["example_value"] = torch.sin(fake)
    g.output(y)
    return torch.fx.GraphModule(torch.nn.Module(), g)


def _symbolic_graph(guard=None):
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv
    mode = FakeTensorMode(shape_env=ShapeEnv())
    real = torch.randn(5, 3)
    with mode:
        fake = mode.from_tensor(real, static_shapes=False)
        if guard is not None:
            guard(fake)
        gm = _graph_over(fake)
    return gm, [real], mode.shape_env


def test_family_key_tells_shape_facts_apart():
    a, b = _symbolic_graph(), _symbolic_graph()
    ka, kb = family_key(a[0], a[1], True, a[2]), family_key(b[0], b[1], True, b[2])
    assert ka is not None and ka[0] == kb[0]
    c = _symbolic_graph(lambda t: bool(t.shape[0] > 4))      # a guard on the size: another key
    assert family_key(c[0], c[1], True, c[2])[0] != ka[0]
    d = _symbolic_graph()
    assert family_key(d[0], d[1], False, d[2])[0] != ka[0]     # grad mode


def test_dropout_that_eager_skips_hands_back_its_input():
    def f(x):
        y = F.dropout(x, 0.5, training=False)
        z = F.dropout(y, 0.0)
        z.add_(1)
        return y is x, z is x, x * 2

    for dynamic in (None, True):
        for backend in ("eager", "inductor"):
            bytegraph.reset()
            compiled = bytegraph.compile(f, backend=backend, dynamic=dynamic)
            a, b = torch.ones(3), torch.ones(3)
            assert_same(f(a), compiled(b))
            assert_same(a, b)


def test_dropout_in_training_still_draws():
    def f(x):
        return F.dropout(x, 0.5, training=True), F.dropout(x, 0.5)

    bytegraph.reset()
    compiled = bytegraph.compile(f, backend="eager")
    torch.manual_seed(3)
    want = f(torch.ones(64))
    torch.manual_seed(3)
    got = compiled(torch.ones(64))
    assert_same(want, got)


def test_inductor_shares_and_matches():
    # inductor may add guards while it compiles (then that graph is not offered to the family);
    # the graphs it compiled without one serve the later (layer, expert) entries
    bytegraph.reset()
    torch.manual_seed(0)
    eager = Model(layers=2)
    compiled = bytegraph.compile(copy.deepcopy(eager), backend="inductor")
    for seed in range(3):
        x = _inputs(seed)
        assert_same(eager(x), compiled(x), atol=1e-4, rtol=1e-4)
    assert _reused() > 0
