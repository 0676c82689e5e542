"""A stop in a plain helper called, a few calls deep, from every iteration of a `for` loop
(issue 7: hf/encodec's and hf/wavtokenizer's static `_pad1d`, called from each conv layer's
forward, which the encoder's layer loop calls; the layers are weight-normed, a class per
instance, so they cannot share a compiled unit).

Resuming inside the helper cost a graph per stop region per layer; the stop now moves out to
the helper's call when a `for` loop with enough items is running in any frame from its caller
out (runtime/resume.py: _split_at_call), and the helper is one compiled unit reused by every
layer. Differential: outputs, gradients and arguments against eager on two calls; graph counts
below the resume-inside counts and not above torch.compile's."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bytegraph

from test_graph_breaks import Counting, assert_same
from test_graph_breaks_loops import measure, _torch_graphs


class PadConv(nn.Module):
    """Conv with data-dependent padding computed from buffers (encodec's EncodecConv1d)."""

    def __init__(self, c, k, wn=True):
        super().__init__()
        conv = nn.Conv1d(c, c, k)
        self.conv = nn.utils.parametrizations.weight_norm(conv) if wn else conv
        # a parameter, not a buffer: a buffer's value is read at trace time (values/known.py)
        # and these tests are about the stops the data reads make
        self.total = nn.Parameter(torch.tensor(k - 1), requires_grad=False)

    @staticmethod
    def _pad(x, pads, mode="reflect"):
        length = x.shape[-1]
        left, right = pads
        if mode != "reflect":
            return F.pad(x, pads)
        biggest = max(left, right)                 # stops: max() of tensors
        extra = 0
        if length <= biggest:                      # stops: bool() of a tensor
            extra = biggest - length + 1
            x = F.pad(x, (0, extra))
        padded = F.pad(x, pads, mode)              # stops: pad with tensor paddings
        return padded[..., :padded.shape[-1] - extra]

    def forward(self, x):
        right = self.total // 2
        x = self._pad(x, (self.total - right, right))
        return F.elu(self.conv(x))


class Stack(nn.Module):
    def __init__(self, n, c=4, wn=True):
        super().__init__()
        self.layers = nn.ModuleList(PadConv(c, 3 + 2 * (i % 3), wn) for i in range(n))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x) + x
        return x


def _make(n, wn=True):
    torch.manual_seed(0)
    m = Stack(n, wn=wn)
    return m, lambda: (torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(1)),)


@pytest.mark.parametrize("wn", [True, False], ids=["weight_norm", "plain"])
def test_helper_stops_under_layer_loop_split_at_helper_call(wn):
    counts = {}
    for n in (8, 16):
        m, make = _make(n, wn)
        traces, graphs = measure(m, make)
        theirs, _ = _torch_graphs(m, *make())
        counts[n] = graphs
        # resuming inside made 2 graphs per layer (measured: 17 for 8 layers, 33 for 16); the
        # split makes one per layer (the region between two helper calls) plus the helper's
        # own (and, for the plain layers, the variants of their shared forward unit)
        # (the first layer resumes inside: the helper's second stop in one call is what shows
        # that splitting pays, runtime/resume.py: _REPEAT_STOPS)
        # (session 13: the pad with tensor paddings is a read stop, one graph more for the
        # weight-norm layers: 14 for 8 layers, torch.compile's count)
        assert graphs <= n + (6 if wn else 8), (n, graphs, theirs)
    assert counts[16] - counts[8] <= 8, counts


class OneStopConv(PadConv):
    @staticmethod
    def _pad(x, pads, mode="reflect"):
        return F.pad(x, pads, mode)                # one stop per call: pad with tensor paddings


class OneStopStack(Stack):
    def __init__(self, n, c=4):
        super().__init__(0)
        self.layers = nn.ModuleList(OneStopConv(c, 3 + 2 * (i % 3)) for i in range(n))


@pytest.mark.parametrize("n", [8, 16])
def test_helper_with_one_stop_per_call_resumes_inside(n):
    """hf/mimi's `_pad1d`: one stop per call, one graph per layer when resuming inside; the
    split would add the helper's own graphs (per shape and stride variant) on top."""
    torch.manual_seed(0)
    m = OneStopStack(n)
    traces, graphs = measure(m, lambda: (torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(1)),))
    assert graphs == n + 1, (n, traces, graphs)


def test_helper_split_gradients_match_eager():
    m, make = _make(8)
    (x,) = make()
    xe, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
    bytegraph.reset()
    c = bytegraph.compile(m, backend=Counting())
    for _ in range(2):
        m.zero_grad()
        m(xe).square().sum().backward()
        ge = [p.grad.clone() for p in m.parameters() if p.requires_grad]
        m.zero_grad()
        c(xc).square().sum().backward()
        gc = [p.grad.clone() for p in m.parameters() if p.requires_grad]
        assert_same(ge, gc)
        assert_same(xe.grad, xc.grad)
        xe.grad = xc.grad = None


def helper(x):
    if x.sum() > 0:
        x = x - 1
    if x.mean() > 1:
        x = x * 2
    return x


def mid(x, w):
    return helper(x * w) + 1


def deep_loop(x, ws):
    for w in ws:
        x = mid(x, w)
    return x


@pytest.mark.parametrize("n", [3, 10, 30])
def test_helper_two_calls_deep_in_loop(n):
    """The loop is two frames out: resuming inside made two graphs per iteration; from
    _SPLIT_MIN_ITEMS items on, `mid` (the outermost plain function under the loop) is split
    at the loop's call and compiled once."""
    make = lambda: (torch.full((3,), 5.0), [torch.full((3,), 1.01 + 0.01 * i) for i in range(n)])
    traces, graphs = measure(deep_loop, make)
    if n >= 6:
        assert graphs <= 4, (n, traces, graphs)
    else:
        assert graphs == 2 * n + 1, (n, traces, graphs)
