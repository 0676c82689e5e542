"""A with-statement over a generator-based context manager the trace did not make (issue 7:
hf/pe_audio's `with torch.no_grad(), torch.backends.cudnn.flags(enabled=False):`).

Its generator is real (made by a torch function, or passed in), so the trace cannot step it:
the call that makes it runs in Python (a generator made at trace time would be one object
shared by every call), the with-statement's BEFORE_WITH runs in Python (runtime/resume.py:
`enter_with`), the with-block resumes in compiled code with the real bound __exit__ on its
stack, and the __exit__ call runs in Python. The block's tensor work is a graph. Before, the
whole function (or the module's forward) ran eagerly.

Differential: outputs, gradients, the generator's own side effects (in order) and the global
flags against eager, on two calls; graph counts not above torch.compile's.
"""
import contextlib

import pytest
import torch
from torch import nn

import bytegraph
from differential import not_compiled

from test_graph_breaks import Counting, run_both, assert_same


def run_cm(fn, make, graphs=None, fallback_ok=False):
    """run_both for (tensor, context manager, log) arguments: outputs and logs compared (the
    context managers themselves hold generators, which compare by identity)."""
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(fn, backend=be)
    counts = []
    for _ in range(2):
        ea, ca = make(), make()
        assert_same(fn(*ea), c(*ca))
        assert_same(ea[0], ca[0])
        assert ea[2] == ca[2], (ea[2], ca[2])
        counts.append(len(be.graphs) + not_compiled())
    assert fallback_ok or not bytegraph.counters["fallback"], dict(bytegraph.counters["fallback"])
    if graphs is not None:
        assert counts[0] == graphs, f"{counts[0]} graphs, expected {graphs}"
    assert counts[1] == counts[0], "the second call compiled again"


@contextlib.contextmanager
def logged(log, value=5):
    log.append("enter")
    try:
        yield value
    except ValueError as e:
        log.append(f"caught {e}")
    finally:
        log.append("exit")


def with_passed_in(x, cm, log):
    x = x * 3
    with cm as v:
        log.append("body")
        y = x + v
    return y * 2


def test_passed_in_generator_context():
    """The block and the code around it are graphs (3: before, block, after); the generator's
    appends land in eager's order."""
    def make():
        log = []
        return torch.arange(4.0), logged(log), log
    run_cm(with_passed_in, make, graphs=3)


def raising_in_block(x, cm, log):
    with cm:
        y = x.sin()
        log.append(y.sum().item() > -10)
        raise ValueError("boom")
    return y + 1


def test_exception_in_block_reaches_the_generator():
    """An exception raised in the resumed block goes to the real __exit__, which throws it into
    the generator; the generator swallows it (`except ValueError`), so the function goes on after
    the with-statement, as in eager. (The handler's WITH_EXCEPT_START cannot run alone at a stop
    yet: the resume function of the block falls back to eager there -- correct, not compiled.)"""
    def make():
        log = []
        return torch.arange(4.0), logged(log), log
    run_cm(raising_in_block, make, fallback_ok=True)


def test_exception_not_swallowed_propagates():
    def make():
        log = []

        @contextlib.contextmanager
        def strict():
            log.append("in")
            try:
                yield
            finally:
                log.append("out")
        return torch.arange(4.0), strict(), log

    def fn(x, cm, log):
        with cm:
            y = x * 2
            raise KeyError("k")
        return y
    bytegraph.reset()
    c = bytegraph.compile(fn, backend=Counting())
    for _ in range(2):
        ea, ca = make(), make()
        with pytest.raises(KeyError):
            fn(*ea)
        with pytest.raises(KeyError):
            c(*ca)
        assert ea[2] == ca[2] == ["in", "out"]


def cudnn_flags_block(x, w):
    h = x * 2
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=False):
        inside = torch.backends.cudnn.enabled
        h = torch.nn.functional.conv1d(h, w)
    return h.relu() + 1, inside, torch.backends.cudnn.enabled


def test_torch_contextmanager_factory_runs_in_python():
    """torch.backends.cudnn.flags(...) makes a generator: called in Python on every call (not once
    at trace time), entered and left in Python; the flags read inside the block are eager's."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, 3, generator=g)
    make = lambda: (torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(1)), w.clone())
    before = torch.backends.cudnn.enabled
    c, be = run_both(cudnn_flags_block, make, graphs=3)
    assert torch.backends.cudnn.enabled == before
    assert not bytegraph.counters["fallback"], dict(bytegraph.counters["fallback"])


class Embedder(nn.Module):
    """hf/pe_audio's PeAudioEncoderEmbedder: a frozen codec under no_grad and cudnn.flags, then a
    trainable projection."""

    def __init__(self):
        super().__init__()
        self.codec = nn.Sequential(nn.Conv1d(2, 4, 3), nn.GroupNorm(2, 4), nn.SiLU(), nn.Conv1d(4, 4, 3))
        self.proj = nn.Linear(4, 6)

    def forward(self, x):
        with torch.no_grad(), torch.backends.cudnn.flags(enabled=False):
            h = self.codec(x)
        return self.proj(h.transpose(1, 2))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = Embedder()
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.embed(x).tanh()).sum(1)


def _ops(graphs):
    return sum(1 for gm in graphs for n in gm.graph.nodes if n.op in ("call_function", "call_method", "call_module"))


def _torch_graphs(model, x):
    import torch._dynamo
    torch._dynamo.reset()
    be = Counting()
    torch.compile(model, backend=be)(x)
    torch._dynamo.reset()
    return be.graphs


@pytest.mark.parametrize("train", [False, True])
def test_module_with_flags_context(train):
    """Two graphs: the codec (the with-block) and everything after it (before: the embedder ran
    eagerly, one graph). Outputs and gradients equal eager's. torch.compile makes one graph here
    holding only the head's linear (it breaks at the flags call and runs the embedder eagerly):
    one graph fewer, most ops outside graphs."""
    torch.manual_seed(0)
    model = Model()
    x = torch.randn(2, 2, 12, generator=torch.Generator().manual_seed(3))
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(model, backend=be)
    for _ in range(2):
        model.zero_grad()
        with torch.set_grad_enabled(train):
            expected = model(x.clone())
        if train:
            expected.sum().backward()
            grads = [p.grad.clone() if p.grad is not None else None for p in model.parameters()]
            model.zero_grad()
        with torch.set_grad_enabled(train):
            actual = c(x.clone())
        assert_same(expected, actual)
        if train:
            actual.sum().backward()
            assert_same(grads, [p.grad for p in model.parameters()])
    graphs = len(be.graphs) + not_compiled()
    assert not bytegraph.counters["fallback"], dict(bytegraph.counters["fallback"])
    assert graphs == 2, graphs
    targets = [str(n.target) for gm in be.graphs for n in gm.graph.nodes]
    assert sum("conv1d" in t for t in targets) == 2 and sum("linear" in t for t in targets) == 2, targets
    with torch.set_grad_enabled(train):
        theirs = _torch_graphs(model, x)
    assert _ops(be.graphs) > _ops(theirs)


def test_enter_with_errors_match_cpython():
    from bytegraph.runtime.resume import enter_with

    class NoExit:
        def __enter__(self):
            return self

    class NoEnter:
        def __exit__(self, *a):
            return False
    for obj in (NoExit(), NoEnter(), object()):
        with pytest.raises(TypeError) as ours:
            enter_with(obj)
        with pytest.raises(TypeError) as theirs:
            with obj:
                pass
        assert str(ours.value) == str(theirs.value)
