"""Zoo tests for torch.nn layers, losses and small stacks (entries in tests/zoo.py).

Each entry: compile with fullgraph=True, backend="eager"; two calls with different
input values must match eager (outputs, gradients where flagged, buffers) and
produce exactly one graph. A few entries also run through backend="inductor".
"""
import pytest

import zoo

NN = zoo.entries("nn")
INDUCTOR = [e for e in NN if e.inductor]


@pytest.mark.parametrize("entry", NN, ids=[e.name for e in NN])
def test_nn_eager_backend(entry):
    zoo.check_entry(entry, backend="eager")


@pytest.mark.parametrize("entry", INDUCTOR, ids=[e.name for e in INDUCTOR])
def test_nn_inductor(entry):
    zoo.check_entry(entry, backend="inductor")
