"""Issue 7 acceptance: the model zoo with graph breaks inserted into forward (tests/zoo_breaks.py).

Each case builds a zoo entry with a `print`, a `logger.info` and a data-dependent `.item()`
branch inserted in the model (variant "outer"), inside one inner layer ("inner"), or both,
and runs it eagerly and compiled with bytegraph (counting eager backend), three calls (seed 0,
seed 0 again, seed 1). Asserted, in this order:
  1. correctness: outputs (the entry's tolerances), stdout with the log records interleaved,
     buffers, and the gradients of every parameter for a loss over the outputs;
  2. the first call compiles exactly the oracle's number of graphs (tests/graph_break_programs
     region_counts().flat, run on the same wrapped model on the path the compiled program takes),
     and the identical second call compiles nothing and recompiles nothing.

The set: every torch.nn entry in the outer and inner variants, five transformers entries of
different shapes (decoder, encoder, vision; the slowest ones left out) in both, and the "both"
variant on a few; bench/zoo_breaks.py runs every entry in every variant (and torch.compile).
test_break_reproducer holds the smallest programs that show each cause of a zoo mismatch.
"""
import pytest
import torch
import torch.nn as nn

import bytegraph
import graph_break_programs as G
import zoo
import zoo_breaks as Z
from differential import assert_same

HF_SUBSET = ("gpt2_lm", "llama_lm", "bert", "distilbert", "resnet_cls")
BOTH_SUBSET = ("mlp_sequential", "lstm_2layer_batch_first", "linear", "gpt2_lm")


def _cases():
    cases = [(e, v) for e in zoo.entries("nn") for v in ("outer", "inner")]
    cases += [(zoo.get(n), v) for n in HF_SUBSET for v in ("outer", "inner")]
    cases += [(zoo.get(n), "both") for n in BOTH_SUBSET]
    return cases


CASES = _cases()


@pytest.mark.parametrize("entry,variant", CASES, ids=[f"{e.name}-{v}" for e, v in CASES])
def test_zoo_with_breaks(entry, variant):
    r = Z.run(entry, variant)
    where = f"{entry.name}[{variant}] (inner layer: {r.layer})"
    assert not r.errors, f"WRONG result for {where}:\n" + "\n".join(
        f"- {what}: {detail}" for what, detail in r.errors)
    assert r.graphs_second == 0 and r.recompiles_second == 0, (
        f"{where}: the second identical call compiled {r.graphs_second} graphs, "
        f"{r.recompiles_second} recompiles")
    assert r.graphs == r.expected, (
        f"{where}: {r.graphs} graphs, the oracle expects {r.expected} "
        f"(breaks executed: {r.oracle_breaks}); bytegraph's break sites: {r.break_sites}; "
        f"units that fell back: {r.failed_units}")


# --------------------------------------------------------------------------------------------
# minimal reproducers of the zoo's graph-count mismatches (each: 2 regions, so 2 graphs)

class _Inner(nn.Module):
    def forward(self, x):
        y = x.sin()
        if y.sum().item() > 0:
            y = y + 1
        return y.cos()


class _ModuleCall(nn.Module):
    """A break inside a submodule called as `self.inner(...)`."""

    def __init__(self):
        super().__init__()
        self.inner = _Inner()

    def forward(self, x):
        return self.inner(x * 2) * 3


def _inner_fn(x):
    return _Inner.forward(None, x)


def _star_call(x):
    """A break inside a function called as `f(*args)`."""
    args = (x * 2,)
    return _inner_fn(*args) * 3


def _module_local(x):
    """A module object is a live local where the trace stops."""
    import math
    y = x.sin()
    if y.sum().item() > 0:
        y = y + 1
    return y.cos() * math.pi


def _cell_frame(x):
    """The break's caller has a cell variable (a comprehension over its local), as
    TransformerEncoderLayer.forward and transformers' capture_outputs wrapper do."""
    k = 2.0
    ys = [x * k for _ in range(2)]
    return _inner_fn(ys[0]) * 3


def _try_finally_call(x):
    """The call that leads to the break sits in a try/finally of its caller, as in transformers'
    capture_outputs wrapper (utils/output_capturing.py) around every model's forward."""
    try:
        out = _inner_fn(x * 2)
    finally:
        pass
    return out * 3


def _sequential():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), _Inner(), nn.Linear(8, 8))


REPRODUCERS = {
    "module_call": _ModuleCall,
    "star_args_call": lambda: _star_call,
    "module_object_local": lambda: _module_local,
    "cell_variable_in_caller": lambda: _cell_frame,
    "call_inside_try_finally": lambda: _try_finally_call,
    "break_inside_nn_sequential": _sequential,
}


@pytest.mark.parametrize("name", list(REPRODUCERS))
def test_break_reproducer(name):
    fn = REPRODUCERS[name]()
    x = torch.randn(8, generator=torch.Generator().manual_seed(0))
    env = G.Env(fn=fn, inputs=lambda: ((x,), {}))
    expected = G.region_counts(G.Program(name, lambda: env, 0, "zoo", "zoo")).flat
    backend = Z.CountingBackend()
    compiled = bytegraph.compile(fn, backend=backend)
    assert_same(fn(x), compiled(x))
    assert backend.graphs == expected == 2, (
        f"{name}: {backend.graphs} graphs, the oracle expects {expected}; "
        f"fallbacks: {dict(bytegraph.counters['fallback'])}")
