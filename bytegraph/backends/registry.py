"""The backend registry and the built-in backends: eager, inductor, aten."""
import torch

_BACKENDS = {}


def register_backend(compiler_fn=None, name=None, tags=()):
    """Register a backend; usable as @register_backend, @register_backend(name="x") or a call.
    A name can be registered once (as in torch); registering the same callable again is a no-op."""
    if isinstance(compiler_fn, str):
        compiler_fn, name = None, compiler_fn
    if name is not None and not isinstance(name, str):
        raise TypeError(f"register_backend(name=...) expects a str, got {type(name).__name__}")
    if not isinstance(tags, (tuple, list, set, frozenset)):
        raise TypeError(f"register_backend(tags=...) expects a sequence of str, got {type(tags).__name__}")
    if compiler_fn is None:
        return lambda fn: register_backend(fn, name=name, tags=tags)
    if not callable(compiler_fn):
        raise TypeError(f"register_backend expects a callable backend(gm, example_inputs) -> "
                        f"callable, got {type(compiler_fn).__name__}")
    key = name if name is not None else getattr(compiler_fn, "__name__", None)
    if not isinstance(key, str):
        raise TypeError(f"register_backend could not name {compiler_fn!r}; pass name=\"...\"")
    if not key.strip():
        raise ValueError("register_backend(name=...) expects a non-empty name")
    known = _BACKENDS.get(key)
    if known is not None and known is not compiler_fn:
        raise ValueError(f"a backend named {key!r} is already registered ({known!r}); register "
                         f"{compiler_fn!r} under another name")
    _BACKENDS[key] = compiler_fn
    return compiler_fn


def list_backends(exclude_tags=None):
    if exclude_tags is not None and not isinstance(exclude_tags, (tuple, list, set, frozenset)):
        raise TypeError(f"list_backends(exclude_tags=...) expects a sequence of str or None, got "
                        f"{type(exclude_tags).__name__}")
    return sorted(_BACKENDS)


def lookup_backend(backend):
    """Name or callable -> (callable, display name)."""
    if isinstance(backend, str):
        fn = _BACKENDS.get(backend)
        if fn is None:
            raise ValueError(f"unknown backend {backend!r}; known backends: {list_backends()} "
                             f"(or pass a callable backend(gm, example_inputs))")
        return fn, backend
    if callable(backend):
        return backend, getattr(backend, "__name__", type(backend).__name__)
    raise TypeError(f"backend must be a registered name or a callable backend(gm, example_inputs), "
                    f"got {type(backend).__name__}")


@register_backend(name="eager")
def eager(gm, example_inputs):
    """Run the captured graph as it is. gm.forward skips nn.Module.__call__'s overhead."""
    return gm.forward


@register_backend(name="inductor")
def inductor(gm, example_inputs):
    """torch._inductor.compile_fx. A static graph (every input a plain tensor) is compiled
    under a TracingContext whose fake mode has a ShapeEnv, from fakes of that mode with static
    shapes: inductor's FX graph cache (and AOT autograd's) then applies to it -- without a
    ShapeEnv both bypass ("No shape env") -- and no size becomes symbolic. A graph with
    symbolic sizes already runs under the trace's own context (backends/calling.py)."""
    from torch._guards import TracingContext
    from torch._inductor.compile_fx import compile_fx
    if TracingContext.try_get() is not None or not all(
            type(x) in (torch.Tensor, torch.nn.Parameter) for x in example_inputs):
        return compile_fx(gm, example_inputs)
    from torch._guards import tracing
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv
    mode = FakeTensorMode(shape_env=ShapeEnv())
    fakes = [mode.from_tensor(x, static_shapes=True) for x in example_inputs]
    with tracing(TracingContext(mode)):
        return compile_fx(gm, fakes)


@register_backend(name="aten")
def aten(gm, example_inputs):
    """Lower the graph to aten ops with bytegraph.make_fx (fake mode) and run that.

    A graph that calls a custom torch.autograd.Function runs as captured instead: lowering
    would replace the user's backward with the derivative of the forward's aten ops. So does a
    graph with data-dependent output shapes (nonzero, x[mask]), which fake lowering cannot
    trace."""
    if any(getattr(n.target, "__bytegraph_autograd_function__", None) is not None
           for n in gm.graph.nodes if n.op == "call_function"):
        return gm.forward
    from ..dispatch_trace import DataDependentError
    from ..dispatch_trace.backend import aten_backend
    try:
        return aten_backend(gm, example_inputs)
    except DataDependentError as e:     # nonzero & co cannot be lowered with fake tensors
        from ..observe import log
        log.info("aten backend: running the graph unlowered (%s)", e)
        return gm.forward
