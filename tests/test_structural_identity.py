"""Layers compiled once for all their instances (runtime/resume.py: STRUCTURAL) must still
answer identity questions per instance: `self is SOME_GLOBAL_MODULE` pins the instance."""
import torch

import bytegraph

FIRST = []


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        if x.abs().max() > 0.5:          # a data-dependent stop in every layer: split per layer
            x = x * 2
        if self is FIRST[0]:
            x = x + 100
        return self.lin(x)


class Stack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([Layer() for _ in range(4)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_identity_of_a_shared_layer_against_a_global_module():
    torch.manual_seed(0)
    m = Stack()
    x = torch.randn(2, 4)
    for k in (1, 3, 0, 2, 1):
        FIRST[:] = [m.layers[k]]
        want = m(x)
        got = bytegraph.compile(m, backend="eager")(x)
        assert torch.allclose(want, got), k
