"""bytegraph: a pure-Python JIT graph-capture compiler for PyTorch.

    model = bytegraph.compile(model)     # same arguments and backends as torch.compile

It interprets the function's CPython bytecode symbolically, records the tensor
work into a torch.fx graph, guards every assumption, caches the result and hands
the graph to a backend ("eager", "inductor", "aten" or any callable
backend(gm, example_inputs)).
"""
from . import values as _values  # noqa: F401  (registers value wrappers)
from . import policy as _policy  # noqa: F401  (installs the call policy into values)
from . import runtime as _runtime  # noqa: F401
from .policy import calls as _registry
from .runtime.api import compile, reset, disable, set_stance, graph_break, error_on_graph_break
from .backends import register_backend, list_backends
from .config import config
from .exc import Unsupported, BackendCompilerFailed
from .observe import counters, compile_metrics

allow_in_graph = _registry.allow_in_graph
disallow_in_graph = _registry.disallow_in_graph


from .observe.explain import explain, ExplainOutput
from .export import export, ExportResult
from .runtime.dynamic import mark_dynamic, maybe_mark_dynamic, mark_static
from .runtime.warm import save_cache, load_cache
from .values.symbolic import ConstraintViolation


def __getattr__(name):
    # make_fx lives in dispatch_trace, whose tracer imports sympy and the symbolic-shapes
    # module (about 0.3 s): loaded on first use, not by `import bytegraph` (docs/architecture.md,
    # "Cold start")
    if name == "make_fx":
        from .dispatch_trace import make_fx
        globals()["make_fx"] = make_fx
        return make_fx
    raise AttributeError(f"module 'bytegraph' has no attribute {name!r}")


__all__ = ["compile", "reset", "disable", "set_stance", "allow_in_graph", "disallow_in_graph",
           "register_backend", "list_backends", "config", "counters", "compile_metrics",
           "Unsupported", "BackendCompilerFailed", "make_fx", "explain", "graph_break",
           "error_on_graph_break", "export", "ExportResult", "mark_dynamic", "maybe_mark_dynamic",
           "mark_static", "ConstraintViolation", "save_cache", "load_cache"]
