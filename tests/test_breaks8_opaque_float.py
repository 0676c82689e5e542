"""A float returned by a call that stopped the trace is opaque to the resumed code (issue 7:
hf/vits' LayerDrop, `dropout_probability = np.random.uniform(0, 1)` in every encoder layer, read
only when training).

Before, the resume function after the call guarded the float's value, so every call (a new
random number) recompiled the resume functions of the loop (hf/vits:eval compiled 2 frames per
steady call, and their traces' fake-tensor work counted as ops outside graphs). Now the result
is guarded by type only when it is a float (runtime/resume.py: break_tail marks it, the
interpreter makes it an OpaqueParam as it does for item() results), and the resumed code is
specialized on it only where it needs the number (then traced again with the value guarded).

Differential: outputs against eager (numpy seeded alike), and no compile on later calls when
the value is not needed.
"""
import numpy as np
import torch
from torch import nn

import bytegraph


class LayerDrop(nn.Module):
    def __init__(self, n=3):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(n))

    def forward(self, x):
        for layer in self.layers:
            p = np.random.uniform(0, 1)
            skip = self.training and p < 0.5
            if not skip:
                x = layer(x).tanh()
        return x


def _run(model, calls=4):
    bytegraph.reset()
    c = bytegraph.compile(model, backend="eager")
    compiles = []
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    for i in range(calls):
        np.random.seed(i)
        expected = model(x.clone())
        np.random.seed(i)
        before = bytegraph.counters["frames"]["total"]
        actual = c(x.clone())
        compiles.append(bytegraph.counters["frames"]["total"] - before)
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    return compiles


def test_unread_random_float_does_not_recompile():
    torch.manual_seed(0)
    compiles = _run(LayerDrop().eval())
    assert compiles[0] > 0 and compiles[1:] == [0, 0, 0], compiles


def test_read_random_float_is_correct():
    """Training reads the float (a branch on it): the resumed code needs the number and is
    specialized on it (correct; recompiles per value as before)."""
    torch.manual_seed(0)
    _run(LayerDrop().train(), calls=3)


def scaled(x):
    p = float(np.random.uniform(0.5, 1.5))
    return x * p + 1


def test_float_in_tensor_arithmetic():
    bytegraph.reset()
    c = bytegraph.compile(scaled, backend="eager")
    x = torch.randn(3)
    for i in range(3):
        np.random.seed(i)
        expected = scaled(x)
        np.random.seed(i)
        torch.testing.assert_close(c(x), expected, rtol=0, atol=0)


def int_result(x):
    n = int(np.random.randint(1, 4))
    for _ in range(n):
        x = x + 1
    return x


def test_int_result_still_specialized():
    """Only floats are opaque: an int from a stopped call is a number the resumed code uses as
    before (a range over it)."""
    bytegraph.reset()
    c = bytegraph.compile(int_result, backend="eager")
    x = torch.zeros(2)
    for i in range(4):
        np.random.seed(i)
        expected = int_result(x)
        np.random.seed(i)
        torch.testing.assert_close(c(x), expected, rtol=0, atol=0)
