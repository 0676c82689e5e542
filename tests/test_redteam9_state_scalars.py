"""Red team 9: module-state scalars (values/known.py) probed for stale values. Differential:
eager against compiled, outputs, buffers and the RNG afterwards, graph, break and recompile
counts. Each test is a bug the probes found: a float value compared with == (0.0 passed for
-0.0, a nan failed its own call), a write through an argument aliasing a buffer (before the
buffer's first read, or only on a later call), a global or closure counter recompiled per
value."""
import copy
import math

import pytest
import torch
from torch import nn
import torch.nn.functional as F

import bytegraph
from differential import REFERENCE, assert_same, graph_count, recompiles

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's trace-time values (torch.compile "
                                                   "makes these inputs and breaks at the reads)")


def _exact(expected, actual):
    """assert_same, and the sign of every zero (assert_close calls -0.0 and 0.0 equal)."""
    assert_same(expected, actual)
    if isinstance(expected, torch.Tensor) and expected.is_floating_point():
        assert torch.equal(torch.signbit(expected), torch.signbit(actual)), (expected, actual)


def run(make, calls=3, between=None, args=None, backend="eager"):
    """Eager and compiled copies called alike (args(module, i) makes a call's arguments);
    returns (graphs, breaks, recompiles)."""
    eager = make()
    model = copy.deepcopy(eager)
    bytegraph.reset()
    compiled = bytegraph.compile(model, backend=backend)
    for i in range(calls):
        x = torch.randn(1, 2, 8, generator=torch.Generator().manual_seed(i))
        torch.manual_seed(i)
        e = eager(*(args(eager, i) if args else (x.clone(),)))
        e_rng = torch.rand(2)
        torch.manual_seed(i)
        c = compiled(*(args(model, i) if args else (x.clone(),)))
        _exact(e, c)
        assert_same(e_rng, torch.rand(2), path="rng")
        assert_same(list(eager.buffers()), list(model.buffers()), path="buffers")
        if between is not None:
            between(eager, i)
            between(model, i)
    return graph_count(), sum(bytegraph.counters["graph_break"].values()), recompiles()


def _flip_zero(m, i):
    m.n.fill_(-0.0 if i % 2 == 0 else 0.0)


class SignOf(nn.Module):
    def __init__(self):
        super().__init__()
        self.n = nn.Buffer(torch.tensor(0.0))

    def forward(self, x):
        return x * math.copysign(1.0, float(self.n))


class PadWith(nn.Module):
    def __init__(self):
        super().__init__()
        self.n = nn.Buffer(torch.tensor(0.0))

    def forward(self, x):
        return F.pad(x, (1, 1), value=self.n.item())


@pytest.mark.parametrize("make", [SignOf, PadWith])
def test_signed_zero_is_another_value(make):
    """0.0 == -0.0, but copysign and a pad's fill tell them apart: the guard compares bits."""
    graphs, breaks, recs = run(make, calls=4, between=_flip_zero)
    assert recs >= 1


def test_nan_value_passes_its_own_guard():
    """nan != nan: a value guard with == rejected the very call it was built from (the function
    then ran eagerly for good)."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.n = nn.Buffer(torch.tensor(float("nan")))

        def forward(self, x):
            return x * float(self.n) + 1

    assert run(M, calls=3) == (1, 0, 0)
    assert not bytegraph.counters["fallback"]


class WritesArgument(nn.Module):
    def __init__(self, read_first):
        super().__init__()
        self.read_first = read_first
        self.n = nn.Buffer(torch.tensor([3]))

    def forward(self, x, t):
        k = int(self.n) if self.read_first else 1
        t.add_(1)
        return x[..., :k].sum() + x[..., :int(self.n)].sum()


def _aliased_from(n):
    def args(m, i):
        x = torch.ones(1, 8)
        return x, (m.n.view(1) if i >= n else torch.tensor([0]))
    return args


@pytest.mark.parametrize("read_first", [False, True])
@pytest.mark.parametrize("aliased_from", [0, 2])
def test_write_through_an_argument_viewing_the_buffer(read_first, aliased_from):
    """The argument the graph writes is a view of the buffer: from the first call (the buffer,
    read after the write, took its value before the trace's write), or from a later call (an
    entry traced on distinct tensors took it: a guard now keeps them apart)."""
    run(lambda: WritesArgument(read_first), calls=4, args=_aliased_from(aliased_from))


def test_write_through_a_numpy_alias_of_the_buffer():
    """Two storages over one buffer: apart by address range, not by storage object (the trace
    then sees two storages and its guard rejects the call: it runs eagerly, correct)."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.n = nn.Buffer(torch.from_numpy(torch.tensor([3]).numpy()))

        def forward(self, x, t):
            k = int(self.n)
            t.add_(1)
            return x[..., :k].sum() + x[..., :int(self.n)].sum()

    def args(m, i):
        return torch.ones(1, 8), (torch.from_numpy(m.n.numpy()) if i >= 1 else torch.tensor([0]))
    run(M, calls=3, args=args)


def test_global_counter_is_learnt_unstable():
    """A global one-element tensor updated per call: one recompile, then read as data (it was
    recompiled per value up to the cache limit: its guard's source is not an argument's)."""
    g = {"T": torch.tensor(2)}
    exec("def f(x):\n    return x[..., :int(T)] * 2\n", g)
    f = g["f"]
    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager")
    for v in range(2, 9):
        g["T"].fill_(v)
        x = torch.randn(1, 8)
        assert_same(f(x), c(x))
    assert recompiles() <= 2


def test_closure_counter_is_learnt_unstable():
    def make():
        n = torch.tensor(2)

        def f(x):
            return x[..., :int(n)] * 2
        return f, n
    f, n = make()
    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager")
    for v in range(2, 9):
        n.fill_(v)
        x = torch.randn(1, 8)
        assert_same(f(x), c(x))
    assert recompiles() <= 2


class Cut(nn.Module):
    def __init__(self):
        super().__init__()
        self.n = nn.Buffer(torch.tensor(3))

    def forward(self, x):
        return x[..., :int(self.n)] * 2


def test_fullgraph_value_change_compiles_again():
    """fullgraph=True: a changed value is not learnt unstable (reading it as data is a graph
    break, which fullgraph raises on a call eager runs): each value compiles whole."""
    def change(m, i):
        m.n.fill_(2 + i % 3)
    eager = Cut()
    model = copy.deepcopy(eager)
    bytegraph.reset()
    compiled = bytegraph.compile(model, backend="eager", fullgraph=True)
    for i in range(5):
        x = torch.randn(1, 2, 8)
        assert_same(eager(x), compiled(x))
        change(eager, i)
        change(model, i)
    assert recompiles() == 2 and not bytegraph.counters["graph_break"]


def test_export_does_not_bake_a_buffer_value():
    """export's GraphModule keeps the buffer as an attribute: baking its value would make a
    load_state_dict into it a silent no-op. The read is refused, as before module-state
    scalars."""
    with pytest.raises(bytegraph.Unsupported, match="int\\(\\) of a tensor"):
        bytegraph.export(Cut())(torch.randn(1, 2, 8))


def _into_add(self, x):
    a = torch.tensor(0)
    a.add_(self.n)
    return x[..., :a]


def _into_copy(self, x):
    a = torch.tensor(0)
    a.copy_(self.n)
    return x[..., :a]


def _into_out(self, x):
    a = torch.tensor(0)
    torch.maximum(a, self.n, out=a)
    return x[..., :a]


def _into_view(self, x):
    a = torch.tensor(0)
    v = a.view(())          # made before the write: it shares a's memory
    a += self.n
    return x[..., :v] + x[..., :a + 0].sum()


@pytest.mark.parametrize("forward", [_into_add, _into_copy, _into_out, _into_view])
def test_value_written_into_a_trace_made_tensor(forward):
    """A buffer's value written into a tensor the trace made (whose fake carries a constant
    but no roots): a slice bound read it with no guard, a stale value on the next call."""
    M = type("M", (Cut,), {"forward": forward})

    def change(m, i):
        m.n.fill_(2 + i % 3)
    run(M, calls=4, between=change)


def test_float_root_given_more_elements_misses_cleanly():
    """`buf.data = ` a two-element tensor: the float value's guard reads it without raising (it
    called .item(), a guard error and a warning on every such call)."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.n = nn.Buffer(torch.tensor(2.0))

        def forward(self, x):
            return x * float(self.n.sum())

    def change(m, i):
        if i == 1:
            m.n.data = torch.tensor([1.0, 2.0])
    run(M, calls=4, between=change)
    assert not bytegraph.counters["stats"].get("guard_errors")


def test_one_element_of_a_large_storage_is_not_copied():
    """A one-element buffer set_ into a large storage (torch.load rebuilds tensors that shared
    memory so): add_root copied the whole storage on every trace. It is read as data now."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Buffer(torch.zeros(1 << 20))
            self.n = nn.Buffer(torch.empty(0).set_(self.w.untyped_storage(), 7, (), ()))
            self.n.fill_(3)

        def forward(self, x):
            return x[..., :int(self.n)] * 2

    graphs, breaks, recs = run(M, calls=2)
    assert breaks >= 1


def test_dlpack_round_trip_is_a_break_not_a_crash():
    """(Found while probing writes into a buffer; not module-state specific.) to_dlpack broke
    the graph and from_dlpack of its capsule became a node of the resume graph: the fake run
    consumed the capsule and the real run read a consumed one -- a segmentation fault."""
    def f(x):
        t = torch.from_dlpack(torch.utils.dlpack.to_dlpack(x))
        return t + 1

    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager")
    for _ in range(2):
        x = torch.ones(3)
        assert_same(f(x), c(x))
