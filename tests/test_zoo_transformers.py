"""Zoo tests for HF transformers architectures (tiny random configs, see tests/zoo.py).

Each model: compile with fullgraph=True, backend="eager"; two calls with different
input values must return the same ModelOutput as eager, the same parameter
gradients after backward of the summed outputs, and exactly one graph. Two
models also run through backend="inductor".
"""
import pytest

import zoo

HF = zoo.entries("transformers")
INDUCTOR = [e for e in HF if e.inductor]


@pytest.mark.parametrize("entry", HF, ids=[e.name for e in HF])
def test_transformers_eager_backend(entry):
    zoo.check_entry(entry, backend="eager")


@pytest.mark.parametrize("entry", INDUCTOR, ids=[e.name for e in INDUCTOR])
def test_transformers_inductor(entry):
    zoo.check_entry(entry, backend="inductor")
