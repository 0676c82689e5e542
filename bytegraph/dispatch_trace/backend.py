"""The "aten" compile backend: lower an FX graph to aten ops with make_fx.

``aten_backend(gm, example_inputs)`` follows the torch.compile backend
contract: it receives a torch-level ``fx.GraphModule`` plus example inputs
(real tensors, fake tensors, ints/SymInts) and returns a callable taking the
same flat inputs.  The graph is retraced with our ``make_fx`` in fake mode
(no compute at compile time) and the resulting aten graph is run directly on
the real inputs.  Autograd works because the aten graph holds forward-only,
differentiable aten ops: running it under grad mode builds the usual eager
autograd graph.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.fx as fx
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

from .tracer import make_fx

__all__ = ["aten_backend", "lower_to_aten"]


def lower_to_aten(gm: fx.GraphModule, example_inputs: list,
                  decomposition_table: Optional[dict] = None) -> fx.GraphModule:
    """Trace ``gm`` (whose placeholders may include parameters: they are just
    inputs) into an aten-level GraphModule using fake tensors."""
    from torch._guards import detect_fake_mode
    inputs = list(example_inputs)
    # A graph with symbolic sizes comes with its trace's fake mode (a TracingContext, or fake
    # inputs): real inputs are converted in that mode, which hands back the symbolic fakes
    # the trace made for them, and the graph is traced symbolically, so no size is baked in.
    # Otherwise one fresh mode for all inputs, so the trace never runs real kernels
    # (requires_grad is preserved by from_tensor).
    fm = detect_fake_mode(inputs) or FakeTensorMode()
    mode = "symbolic" if fm.shape_env is not None and _has_symbols(inputs) else "fake"
    inputs = [fm.from_tensor(x) if isinstance(x, torch.Tensor) and not isinstance(x, FakeTensor) else x
              for x in inputs]

    def run(*args):
        # Interpreter-free call: gm's own forward, flat positional inputs.
        return gm(*args)

    return make_fx(run, decomposition_table=decomposition_table, tracing_mode=mode)(*inputs)


def _has_symbols(inputs) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor as _F
    for x in inputs:
        if isinstance(x, (torch.SymInt, torch.SymFloat, torch.SymBool)):
            return True
        if isinstance(x, _F) and any(isinstance(s, torch.SymInt) for s in x.shape):
            return True
    return False


def aten_backend(gm: fx.GraphModule, example_inputs: list, **kwargs: Any) -> Callable:
    """torch.compile-style backend returning a callable running the aten graph."""
    lowered = lower_to_aten(gm, example_inputs, kwargs.get("decompositions"))

    def compiled(*args):
        return lowered(*args)

    compiled.graph_module = lowered  # type: ignore[attr-defined]
    return compiled
