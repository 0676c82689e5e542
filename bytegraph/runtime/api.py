"""compile(), the per-function cache, recompiles, stances, reset/disable.

The hot path is the wrapper `compiled(*args, **kwargs)`: walk this function's cache entries,
call each generated entry with the caller's arguments, return the first result
that is not MISS. An entry returns EAGER when its trace could not be captured
(the original function runs). Everything else is the miss path: deciding and
compiling happen under one process-wide lock; the graph or the eager function then
runs outside it, so user code never holds the lock.

Fallback policy (the user's program never breaks because of bytegraph):
- Unsupported construct: eager for calls that pass the guards gathered so far;
  counted in counters["graph_break"]; raised as Unsupported when fullgraph=True.
- The user's code raises while tracing: run eagerly, so the real exception surfaces (if eager
  does not raise, the trace was wrong: a warning, or Unsupported under fullgraph=True).
- bytegraph's own bug: one warning naming the function and file:line, then eager
  for this function from then on (fullgraph=True raises Unsupported instead).
- A cache guard that raises: a miss, counted in counters["stats"]["guard_errors"], one
  warning per function; guards that reject (or raise on) the call they were built from
  make the function eager, with a warning.
- Backend failure: BackendCompilerFailed naming the backend (like torch.compile);
  config.suppress_errors=True turns it into a warning and eager.
"""
import functools
import threading
import types
import warnings
import weakref

import torch

from ..config import config
from ..exc import Unsupported, UserError, BackendCompilerFailed
from ..observe import counters, compile_metrics, log
from ..codegen.entry import MISS
from ..policy import calls as registry
from ..policy.breaks import graph_break  # noqa: F401  (public API)
from .resume import ResumeCache, Trampoline
from .convert import convert, EAGER, _TraceStopped, first_failing_guard, location_of

_compile_lock = threading.RLock()
_all_states = weakref.WeakSet()
_stance = {"name": "default"}
_STANCES = ("default", "force_eager", "eager_on_recompile", "fail_on_recompile")


class CompileState:
    """Cache and settings of one compiled callable."""

    def __init__(self, fn, backend, backend_name, fullgraph):
        self.fn = fn
        self.backend = backend
        self.backend_name = backend_name
        self.fullgraph = fullgraph
        self.entries = ()            # generated entry functions, newest last
        self.limit_option = "cache_size_limit"
        self.broken = False          # an internal error: run eagerly from now on
        self.limit_warned = False
        self.guard_error_warned = False
        # what graph breaks that stop the trace hand on to (runtime/resume.py)
        self.children = _Children(self._child)
        _all_states.add(self)

    def _child(self, fn):
        child = CompileState(fn, self.backend, self.backend_name, False)
        child.limit_option = "resume_cache_size_limit"
        return _function_wrapper(fn, child)

    def reset(self):
        self.entries = ()
        self.broken = False
        self.limit_warned = False
        self.guard_error_warned = False

    def guard_error(self, exc):
        """An entry's guards raised: count it, warn once per function, treat it as a miss. A
        guard that raises is a bytegraph bug or an object changed in a way no guard foresaw;
        either way it must not turn into silent recompiles. If the entry was just built for
        this very call, _miss then runs the function eagerly from now on."""
        counters["stats"]["guard_errors"] += 1
        if not self.guard_error_warned:
            self.guard_error_warned = True
            fn = self.fn
            warnings.warn(f"bytegraph: a cache guard of {fn.__qualname__} ({location_of(fn)}) raised "
                          f"{type(exc).__name__}: {exc}; treated as a cache miss. Guard errors are "
                          f"counted in bytegraph.counters['stats']['guard_errors'] (warned once per "
                          f"function)", stacklevel=4)
        return MISS


class _Children:
    def __init__(self, compile_fn):
        self.resumes = ResumeCache(compile_fn)
        self.trampoline = Trampoline(compile_fn)


def _run_with_stance(state, args, kwargs):
    stance = _stance["name"]
    if stance == "force_eager":
        return state.fn(*args, **kwargs)
    entries = state.entries
    for entry in entries:
        r = entry(*args, **kwargs)
        if r is not MISS:
            return state.fn(*args, **kwargs) if r is EAGER else r
    if entries:
        if stance == "eager_on_recompile":
            return state.fn(*args, **kwargs)
        if stance == "fail_on_recompile":
            reason = first_failing_guard(entries[-1], args, kwargs)
            raise RuntimeError(f"bytegraph: {state.fn.__qualname__} would recompile "
                               f"(stance 'fail_on_recompile'); guard: {reason}")
    return _miss(state, args, kwargs, entries)


def _miss(state, args, kwargs, walked=()):
    """The slow path; `walked` is the entries tuple the caller already tried. The lock covers
    deciding and compiling only: user code (a graph, or the function run eagerly) never runs
    while it is held."""
    fn = state.fn
    while True:
        current = state.entries
        for entry in current[len(walked):] if current[:len(walked)] == walked else current:
            r = entry(*args, **kwargs)       # entries another thread added meanwhile
            if r is not MISS:
                return fn(*args, **kwargs) if r is EAGER else r
        walked = current
        with _compile_lock:
            if state.entries is walked:
                action, payload = _decide(state, args, kwargs)
                break
    if action == "eager":
        return fn(*args, **kwargs)
    if action == "user_error":
        return _user_error(state, payload, args, kwargs)
    entry = payload
    r = entry(*args, **kwargs)
    if r is MISS:   # guards that do not hold on the very call they were made for: a bytegraph bug
        state.broken = True
        warnings.warn(f"bytegraph: guards of {fn.__qualname__} reject the call they were built from "
                      f"({first_failing_guard(entry, args, kwargs)}); running it eagerly", stacklevel=3)
        return fn(*args, **kwargs)
    return fn(*args, **kwargs) if r is EAGER else r


def _decide(state, args, kwargs):
    """Under the compile lock: ("entry", new entry) | ("eager", None) | ("user_error", stop)."""
    fn = state.fn
    if state.broken:
        return "eager", None
    limit = getattr(config, state.limit_option)
    if len(state.entries) >= limit:
        if not state.limit_warned:
            state.limit_warned = True
            reason = first_failing_guard(state.entries[-1], args, kwargs)
            warnings.warn(f"bytegraph: {fn.__qualname__} ({location_of(fn)}) hit "
                          f"config.{state.limit_option}={limit}; running it "
                          f"eagerly from now on. Last guard failure: {reason}", stacklevel=4)
        return "eager", None
    if state.entries:
        reason = first_failing_guard(state.entries[-1], args, kwargs)
        counters["recompiles"]["total"] += 1
        counters["recompiles"][fn.__qualname__] += 1
        log.info("recompiling %s: %s", fn.__qualname__, reason)
    else:
        reason = ""
    try:
        forced = _error_on_break["on"]
        allow_breaks = not state.fullgraph if forced is None else not forced
        entry, record = convert(fn, args, kwargs, state.backend, state.backend_name, len(state.entries),
                                state.guard_error, allow_breaks, state.children)
        record.guard_failure = reason
    except _TraceStopped as stop:
        exc = stop.exc
        stop.record.guard_failure = reason
        if isinstance(exc, UserError):
            return "user_error", stop
        forced = _error_on_break["on"]
        if state.fullgraph if forced is None else forced:
            raise Unsupported(exc.msg + _call_chain(exc), kind=exc.kind, hint=exc.hint,
                              location=exc.location) from None
        log.info("graph break in %s: %s", fn.__qualname__, exc)
        state.entries = state.entries + (stop.entry,)
        return "eager", None
    except BackendCompilerFailed as e:
        if not config.suppress_errors:
            raise
        warnings.warn(f"bytegraph: {e}; running {fn.__qualname__} eagerly", stacklevel=4)
        state.broken = True
        return "eager", None
    except Exception as e:  # a bytegraph bug: never break the user's program for it
        if state.fullgraph:
            raise Unsupported(f"internal error while compiling {fn.__qualname__}: "
                              f"{type(e).__name__}: {e}", kind="internal",
                              location=location_of(fn)) from e
        counters["frames"]["internal_error"] += 1
        warnings.warn(f"bytegraph: internal error while compiling {fn.__qualname__} "
                      f"({location_of(fn)}): {type(e).__name__}: {e}. Running it eagerly.",
                      stacklevel=4)
        state.broken = True
        return "eager", None
    state.entries = state.entries + (entry,)
    return "entry", entry


def _call_chain(exc):
    stack = getattr(exc, "user_stack", None)
    if not stack or len(stack) < 2:
        return ""
    return "\n  while tracing (innermost last):\n    " + "\n    ".join(reversed(stack))


def _user_error(state, stop, args, kwargs):
    """The trace says the user's code raises here. Run it eagerly: if it does raise, that is the
    user's exception, surfaced unchanged; if it does not, the trace was wrong -- a bytegraph bug,
    which is reported rather than hidden (fullgraph=True: Unsupported)."""
    fn, exc = state.fn, stop.exc
    log.info("%s raised while tracing (%s); running eagerly", fn.__qualname__, exc)
    result = fn(*args, **kwargs)
    with _compile_lock:
        state.broken = True
    msg = (f"bytegraph's trace of {fn.__qualname__} raised {exc.msg} ({exc.location}) but the "
           f"function itself did not; running it eagerly from now on")
    if state.fullgraph:
        raise Unsupported(msg, kind="internal", location=location_of(fn))
    warnings.warn("bytegraph: " + msg, stacklevel=4)
    return result


# --------------------------------------------------------------------------
# public API

def _resolve_backend(backend):
    from ..backends import lookup_backend
    return lookup_backend(backend)


def compile(model=None, *, backend="inductor", fullgraph=False, dynamic=None, options=None,
            mode=None, disable=False):
    """Compile a function or nn.Module; same calling conventions as torch.compile."""
    if not isinstance(fullgraph, bool):
        raise TypeError(f"compile(fullgraph=...) expects a bool, got {type(fullgraph).__name__}")
    if dynamic is not None and not isinstance(dynamic, bool):
        raise TypeError(f"compile(dynamic=...) expects None or a bool, got {type(dynamic).__name__}")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"compile(options=...) expects a dict or None, got {type(options).__name__}")
    if mode is not None and mode not in ("default", "reduce-overhead", "max-autotune",
                                         "max-autotune-no-cudagraphs"):
        raise ValueError(f"compile(mode=...) got unknown mode {mode!r}")
    if not isinstance(disable, bool):
        raise TypeError(f"compile(disable=...) expects a bool, got {type(disable).__name__}")
    backend_fn, backend_name = _resolve_backend(backend)
    if options and backend_name == "inductor":
        backend_fn = _inductor_with_options(backend_fn, options)
    if model is None:
        return functools.partial(compile, backend=backend, fullgraph=fullgraph, dynamic=dynamic,
                                 options=options, mode=mode, disable=disable)
    if disable:
        return model
    return _compile_callable(model, backend_fn, backend_name, fullgraph, (backend, fullgraph, dynamic,
                                                                          options, mode))


def _inductor_with_options(inductor_backend, options):
    def backend(gm, example_inputs):
        from torch._inductor import config as ind_config
        with ind_config.patch(options):
            return inductor_backend(gm, example_inputs)
    return backend


def _compile_callable(model, backend_fn, backend_name, fullgraph, spec):
    if isinstance(model, torch.nn.Module):
        from .module import OptimizedModule
        return OptimizedModule(model, backend_fn, backend_name, fullgraph, spec)
    if getattr(model, "__bytegraph_state__", None) is not None:
        model = model.__bytegraph_state__.fn     # re-compiling a compiled function
    if isinstance(model, types.FunctionType):
        return _function_wrapper(model, CompileState(model, backend_fn, backend_name, fullgraph))
    if isinstance(model, types.MethodType):
        inner = _compile_callable(model.__func__, backend_fn, backend_name, fullgraph, spec)
        return types.MethodType(inner, model.__self__)
    if isinstance(model, functools.partial):
        inner = _compile_callable(model.func, backend_fn, backend_name, fullgraph, spec)
        return functools.partial(inner, *model.args, **model.keywords)
    if isinstance(model, (types.BuiltinFunctionType, types.MethodDescriptorType)):
        raise TypeError(f"bytegraph.compile expects a Python function, method or nn.Module; "
                        f"{model!r} is a builtin with no bytecode to trace")
    if callable(model):
        call = getattr(type(model), "__call__", None)
        if isinstance(call, types.FunctionType):
            inner = _compile_callable(call, backend_fn, backend_name, fullgraph, spec)
            return functools.wraps(call)(functools.partial(inner, model))
    raise TypeError(f"bytegraph.compile expects a callable (function, method, functools.partial, "
                    f"nn.Module or object with __call__), got {type(model).__name__}")


def _function_wrapper(fn, state):
    # The cache walk of _run, inlined: one Python call less on every hit.
    stance = _stance

    @functools.wraps(fn)
    def compiled(*args, **kwargs):
        if stance["name"] == "default":
            entries = state.entries
            for entry in entries:
                r = entry(*args, **kwargs)
                if r is not MISS:
                    return state.fn(*args, **kwargs) if r is EAGER else r
            return _miss(state, args, kwargs, entries)
        return _run_with_stance(state, args, kwargs)

    compiled.__bytegraph_state__ = state
    compiled._torchdynamo_orig_callable = fn
    return compiled


def reset():
    """Drop every cache entry and counter (like torch._dynamo.reset())."""
    with _compile_lock:
        for state in list(_all_states):
            state.reset()
        counters.clear()
        compile_metrics.clear()


def disable(fn=None, recursive=True):
    """Run `fn` eagerly, always; a call to it inside compiled code stops the trace there."""
    if fn is None:
        return functools.partial(disable, recursive=recursive)
    state = getattr(fn, "__bytegraph_state__", None)
    if state is not None:
        fn = state.fn
    if hasattr(fn, "_orig_mod") and isinstance(getattr(fn, "_orig_mod"), torch.nn.Module):
        return fn._orig_mod
    if not callable(fn):
        raise TypeError(f"bytegraph.disable expects a callable, got {type(fn).__name__}")

    @functools.wraps(fn)
    def disabled(*args, **kwargs):
        return fn(*args, **kwargs)

    registry.mark_disabled(disabled)
    disabled.__bytegraph_disabled__ = fn
    return disabled


_error_on_break = {"on": None}     # None: follow fullgraph; True/False: forced for a region


class error_on_graph_break:
    """`with bytegraph.error_on_graph_break(True):` / `@bytegraph.error_on_graph_break(False)`:
    while active, a graph break raises Unsupported (True) or splits the graph (False),
    whatever `fullgraph` says. Read when a function is compiled."""

    def __init__(self, error_on_break):
        if not isinstance(error_on_break, bool):
            raise TypeError(f"error_on_graph_break expects a bool, got {type(error_on_break).__name__}")
        self.value = error_on_break
        self._saved = []

    def __enter__(self):
        self._saved.append(_error_on_break["on"])
        _error_on_break["on"] = self.value
        return None

    def __exit__(self, *exc):
        _error_on_break["on"] = self._saved.pop()
        return False

    def __call__(self, fn):
        if not callable(fn):
            raise TypeError(f"error_on_graph_break(...) decorates a callable, got {type(fn).__name__}")

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            with error_on_graph_break(self.value):
                return fn(*args, **kwargs)
        return inner


def set_stance(stance="default"):
    """'default' | 'force_eager' | 'eager_on_recompile' | 'fail_on_recompile' (torch.compiler.set_stance)."""
    if stance not in _STANCES:
        raise ValueError(f"unknown stance {stance!r}; expected one of {_STANCES}")
    prev = _stance["name"]
    _stance["name"] = stance

    class _Restore:
        def __enter__(self):
            return None

        def __exit__(self, *exc):
            _stance["name"] = prev
            return False

        def __call__(self, f):
            @functools.wraps(f)
            def inner(*a, **k):
                saved = _stance["name"]
                _stance["name"] = stance
                try:
                    return f(*a, **k)
                finally:
                    _stance["name"] = saved
            _stance["name"] = prev
            return inner

    return _Restore()
