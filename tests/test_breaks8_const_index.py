"""Slice bounds from one-element integer tensors the trace made from constants (issue 7: hf/vits'
WaveNet: `num_channels_tensor = torch.IntTensor([self.hidden_size])`, then
`in_act[:, :num_channels_tensor[0], :]` in every layer).

`torch.IntTensor([16])` (a legacy CPU tensor type over a flat list of numbers) is
`torch.tensor(data, dtype=torch.int32, device="cpu")` in the graph (policy/calls.py:
`_legacy_tensor`; before: a break), and a slice bound that is a one-element integer tensor whose
fake carries its value (FakeTensorMode keeps the value of small tensors built from constants
and drops it on a write) is that int (symbolic/handlers_ops.py: `_known_index`; before: a
break). A tensor that came in (an argument, a buffer) has no such value: still a break.

Differential: outputs against eager, graph counts.
"""
import torch
from torch import nn

from differential import check


def gated(a, b, n):
    act = a + b
    return torch.tanh(act[:, :n, :]) * torch.sigmoid(act[:, n:, :])


class WaveNet(nn.Module):
    def __init__(self, hidden=4, layers=3):
        super().__init__()
        self.hidden = hidden
        self.ins = nn.ModuleList(nn.Conv1d(hidden, 2 * hidden, 3, padding=1) for _ in range(layers))
        self.outs = nn.ModuleList(nn.Conv1d(hidden, hidden, 1) for _ in range(layers))

    def forward(self, x):
        n = torch.IntTensor([self.hidden])
        out = torch.zeros_like(x)
        for conv_in, conv_out in zip(self.ins, self.outs):
            h = conv_in(x)
            acts = gated(h, torch.zeros_like(h), n[0])
            x = x + conv_out(acts)
            out = out + x
        return out


def test_wavenet_slices_by_a_made_int_tensor_are_one_graph():
    torch.manual_seed(0)
    model = WaveNet()
    x = torch.randn(2, 4, 10)
    check(model, x, graphs=1)


def test_legacy_constructors_match_eager():
    def fn(x):
        a = torch.IntTensor([3, 1])
        b = torch.LongTensor((2,))
        c = torch.FloatTensor([1.5, 2])
        return a, b, c, x[:, : b[0]] * c[0]
    check(fn, torch.randn(3, 6), graphs=1)


def test_two_element_made_tensor_is_not_known():
    """FakeTensorMode keeps the values of one-element tensors only: a bound read from a longer
    one stays a break (correct)."""
    def fn(x):
        a = torch.IntTensor([3, 1])
        return x[:, a[1]:] * 2
    check(fn, torch.randn(3, 6), fullgraph=False, graphs=None)


def test_written_made_tensor_uses_its_new_value():
    def fn(x):
        n = torch.IntTensor([4])
        m = n[0]
        m.add_(1)                     # n is [5] now
        a = x[:, :n[0]]
        n.mul_(2)                     # m is 10 now
        return a.sum(1), x[:, :m].sum(1)
    check(fn, torch.randn(3, 12), graphs=1)


def test_argument_tensor_bound_stays_a_break():
    """An input tensor's value is data: not a trace-time bound (here the function runs eagerly:
    BUILD_SLICE cannot run alone at a stop), correct for two different values."""
    def fn(x, n):
        return x[:, :n[0]].sum(1) + 1
    check(fn, torch.randn(3, 8), torch.IntTensor([3]), fullgraph=False, graphs=None,
          calls=[(torch.randn(3, 8), torch.IntTensor([6]))])


def test_float_and_bool_made_tensors_are_not_indices():
    """torch.tensor([2.0]) cannot be a slice bound (eager raises TypeError); a bool tensor is
    not taken as an int either."""
    import pytest

    def fn(x):
        return x[:, : torch.FloatTensor([2.0])[0]]
    with pytest.raises(TypeError):
        fn(torch.randn(2, 4))
    from differential import compile_fn, reset
    reset()
    with pytest.raises(TypeError):
        compile_fn(fn, backend="eager")(torch.randn(2, 4))
