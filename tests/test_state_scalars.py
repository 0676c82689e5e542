"""Module-state scalars (values/known.py): one-element buffers read as numbers at trace time,
under a value guard. Differential: eager against compiled, outputs and buffers, graph, break and
recompile counts. The pattern is transformers' audio codecs (encodec, mimi, wavtokenizer, dac):
a convolution's padding computed from 0-d int64 buffers."""
import copy

import pytest
import torch
from torch import nn
import torch.nn.functional as F

import bytegraph
from differential import REFERENCE, assert_same, graph_count, recompiles

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's trace-time values (torch.compile "
                                                   "makes these inputs and breaks at the reads)")


class CodecConv(nn.Module):
    """transformers' EncodecConv1d, reduced: the padding from stride/kernel buffers."""

    def __init__(self, stride, k, mode="reflect"):
        super().__init__()
        self.conv = nn.Conv1d(2, 2, k, stride)
        self.mode = mode
        self.stride = nn.Buffer(torch.tensor(stride), persistent=False)
        self.kernel_size = nn.Buffer(torch.tensor(k), persistent=False)
        self.padding_total = nn.Buffer(torch.tensor(k - stride), persistent=False)

    def forward(self, x):
        length = x.shape[-1]
        n_frames = (length - self.kernel_size + self.padding_total) / self.stride + 1
        n_frames = torch.ceil(n_frames).to(torch.int64) - 1
        extra = n_frames * self.stride + self.kernel_size - self.padding_total - length
        right = self.padding_total // 2
        left = self.padding_total - right
        pads = (left, right + extra)
        if self.mode != "reflect":
            return self.conv(F.pad(x, pads))
        biggest = max(left, right + extra)
        fill = 0
        if length <= biggest:
            fill = biggest - length + 1
            x = F.pad(x, (0, fill))
        x = F.pad(x, pads, self.mode)
        return self.conv(x[..., :x.shape[-1] - fill])


def _codec():
    torch.manual_seed(0)
    return nn.Sequential(CodecConv(2, 4), CodecConv(3, 7), CodecConv(1, 3, "constant"))


def run(make, calls=3, between=None, backend="eager", shape=(1, 2, 17)):
    """Eager and compiled copies called alike; returns (graphs, breaks, recompiles)."""
    eager = make()
    model = copy.deepcopy(eager)
    bytegraph.reset()
    compiled = bytegraph.compile(model, backend=backend)
    for i in range(calls):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(i))
        assert_same(eager(x), compiled(x))
        assert_same(list(eager.buffers()), list(model.buffers()), path="buffers")
        if between is not None:
            between(eager, i)
            between(model, i)
    c = bytegraph.counters
    return graph_count(), sum(c["graph_break"].values()), recompiles()


@pytest.mark.parametrize("backend", ["eager", "aten", "inductor"])
def test_codec_padding_is_one_graph(backend):
    assert run(_codec, backend=backend) == (1, 0, 0)


def test_codec_gradients_match():
    eager = _codec()
    model = copy.deepcopy(eager)
    bytegraph.reset()
    compiled = bytegraph.compile(model, backend="aten")
    x = torch.randn(1, 2, 17)
    eager(x).square().sum().backward()
    compiled(x).square().sum().backward()
    assert_same([p.grad for p in eager.parameters()], [p.grad for p in model.parameters()])
    assert graph_count() == 1


def test_value_change_recompiles():
    """A changed value misses the entry; from then on the function reads it as data (like
    automatic dynamic after a size change): one recompile, breaks at its reads."""
    def change(m, i):
        with torch.no_grad():
            m[1].stride.fill_(2 + i % 2)
    graphs, breaks, recs = run(_codec, calls=5, between=change)
    assert breaks >= 1 and recs == 1


def test_write_through_data_alias_is_seen():
    """`.data` writes bump no version counter: the value guard reads the value itself."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.n = nn.Buffer(torch.tensor(2))

        def forward(self, x):
            return x[..., :self.n].sum(-1)

    def change(m, i):
        m.n.data.fill_(3 + i % 2)
    run(M, calls=5, between=change)


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.step = nn.Buffer(torch.tensor(0))

    def forward(self, x):
        n = int(self.step) % 3 + 1
        self.step += 1
        return x[..., :n] * 2


def test_counter_changed_per_call_stops_being_a_constant():
    """A value that changes on every call is read as data after its first change (a break),
    not compiled again per value."""
    graphs, breaks, recs = run(Counter, calls=8)
    assert breaks >= 1
    assert recs <= 3


def test_write_in_the_trace_forgets_the_value():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            t = torch.tensor([3])
            self.a = nn.Buffer(t)
            self.b = nn.Buffer(t.view(()))       # the same storage

        def forward(self, x):
            first = x[..., :int(self.a)].sum()
            self.b.add_(-1)
            return first + x[..., :int(self.a)].sum()
    run(M, calls=3)


def test_value_derived_before_a_write_stays():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Buffer(torch.tensor(2))

        def forward(self, x):
            k = self.b + 1
            self.b.add_(1)
            return x[..., :int(k)].sum() + x[..., :int(self.b)].sum()
    run(M, calls=3)


def test_bool_float_and_item_reads():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Buffer(torch.tensor(0.5))
            self.on = nn.Buffer(torch.tensor(True))

        def forward(self, x):
            if self.on:
                return x * float(self.scale) + self.scale.item() + self.scale.tolist()
            return x

    def flip(m, i):
        m.on.fill_(bool(i % 2))
    run(M, calls=4, between=flip)
    assert run(M, calls=2) == (1, 0, 0)


def test_data_dependent_op_on_a_value_keeps_its_old_treatment():
    """nonzero() of a buffer: its size is not read off the value (no guard, no recompile)."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Buffer(torch.tensor(1))

        def forward(self, x):
            return x * self.b.nonzero().numel()

    def flip(m, i):
        m.b.fill_(i % 2)
    graphs, breaks, recs = run(M, calls=4, between=flip)
    assert recs == 0


def test_tuple_results_carry_their_roots():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Buffer(torch.tensor(2))
            self.c = nn.Buffer(torch.tensor([3]))

        def forward(self, x):
            p, q = torch.broadcast_tensors(self.b, self.c)
            return x[..., :int(p)].sum() + x[..., :q.item()].sum()

    def change(m, i):
        m.b.fill_(1 + i % 3)
    run(M, calls=5, between=change)


def test_arguments_and_parameters_are_not_read():
    """Only module buffers (and globals) are state: an argument's or a parameter's value is
    data, read at a break as before."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.tensor(2.0), requires_grad=False)

        def forward(self, x, n):
            return x[..., :int(n)] * float(self.p)

    eager = M()
    model = copy.deepcopy(eager)
    bytegraph.reset()
    compiled = bytegraph.compile(model, backend="eager")
    for n in (2, 3, 2):
        x = torch.randn(1, 2, 8)
        assert_same(eager(x, torch.tensor(n)), compiled(x, torch.tensor(n)))
    assert sum(bytegraph.counters["graph_break"].values()) >= 1


def test_shared_submodule_change_seen_by_both():
    shared = CodecConv(2, 4)
    a = nn.Sequential(shared, nn.ReLU())
    b = nn.Sequential(nn.Tanh(), shared)
    bytegraph.reset()
    ca, cb = bytegraph.compile(a, backend="eager"), bytegraph.compile(b, backend="eager")
    x = torch.randn(1, 2, 17)
    for stride in (2, 3, 2):
        with torch.no_grad():
            shared.stride.fill_(stride)
        assert_same(a(x), ca(x))
        assert_same(b(x), cb(x))


def test_recompile_reason_names_the_value():
    import logging
    records = []

    class H(logging.Handler):
        def emit(self, r):
            records.append(r.getMessage())
    log = logging.getLogger("bytegraph.recompiles")
    h = H()
    log.addHandler(h)
    old = log.level
    log.setLevel(logging.INFO)
    try:
        def change(m, i):
            with torch.no_grad():
                m[0].kernel_size.fill_(5)
        run(_codec, calls=2, between=change)
    finally:
        log.removeHandler(h)
        log.setLevel(old)
    assert any("the value of" in r and "kernel_size changed: 4 -> 5" in r for r in records), records
