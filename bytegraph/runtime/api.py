"""compile(), the per-function cache, recompiles, stances, reset/disable, and the fallback policy.

The hot path is the wrapper `compiled(*args, **kwargs)`: walk this function's cache entries,
call each generated entry with the caller's arguments, return the first result that is not
MISS. An entry returns EAGER when the original function must run (its trace stopped on
something it could not capture, or on the user's own exception). Everything else is the miss
path: deciding and compiling happen under this function's lock (CompileState.lock); the graph or
the eager function then runs outside it, so user code never holds a lock.

Fallback policy (the user's program never breaks because of bytegraph, and no failure is
retried in a loop). Each fallback is counted in counters["fallback"][kind] and logged once per
function at INFO; the ones that mean a bytegraph bug or a limit also warn once per function
(docs/reliability.md lists the kinds):
- An unsupported construct the trace can neither split the graph at nor resume after (the kind is
  the construct's, Unsupported.kind): an eager entry under the guards gathered so far; raised as
  Unsupported when fullgraph=True. (Graph breaks that split the graph are not fallbacks: they
  are counted in counters["graph_break"].)
- The user's code raises while tracing ("user_error"): an eager entry under its guards, so the
  same inputs run eagerly without retracing and the real exception surfaces. If eager does not
  raise, the trace was wrong ("trace_mismatch"): a warning (Unsupported under fullgraph) and eager
  from then on.
- The trace runs out of stack or memory ("resource_error"): an eager entry when the trace could
  build one, else eager from then on; one warning.
- bytegraph's own bug ("internal_error"): one warning naming the function and file:line, then
  eager for this function (fullgraph=True raises Unsupported instead).
- A cache guard that raises ("guard_error"): a miss, counted, one warning per function; guards that
  reject (or raise on) the call they were built from make the function eager ("bad_guards").
- Backend failure, timeout (config.backend_timeout) or non-callable result ("backend_error",
  "backend_timeout"): BackendCompilerFailed naming the backend (like torch.compile), nothing
  cached; config.suppress_errors=True turns it into a warning and eager.
- Limits: config.cache_size_limit live entries (config.resume_cache_size_limit for code compiled
  on an entry's behalf) ("cache_limit"), per function; config.accumulated_cache_size_limit
  compiles of all functions together since reset ("accumulated_limit", one warning per process),
  then eager for whatever misses its cache.
- Generator / async functions ("generator_function"): never traced, eager (as torch.compile).

Threads. Each compiled callable has its own lock: misses of one function with the same guards
compile once (a waiting thread re-walks the entries the first one added); different functions
trace concurrently. Tracing touches only thread-local torch state (grad mode, autocast, the
dispatch-mode stack holding each trace's own FakeTensorMode). Backends run one at a time under
one process-wide lock, as torch.compile runs them (inductor's config and caches are process-wide);
the built-in eager backend needs no lock. A compiled function called by code that runs during a
compile on the same thread (a backend, a hook) runs eagerly, as under torch.compile: so no thread
ever waits for a second function's lock while holding one (no lock-order deadlock).

Memory. Entries hold the user objects their guards name weakly (codegen.entry): when one dies,
the entry is dropped. compile_metrics keeps summaries (the GraphModule only with
config.keep_graphs) and at most config.compile_metrics_limit records.
"""
import functools
import inspect
import threading
import types
import warnings
import weakref

import torch

from ..backends.calling import guarded_backend, with_options
from ..config import config
from ..exc import Unsupported, UserError, BackendCompilerFailed
from ..observe import counters, compile_metrics, log, recompile_log
from ..codegen.entry import MISS
from ..guards.reasons import plain, STATE_KINDS
from ..guards.guard_set import GuardSet, Guard
from ..policy import calls as registry
from ..policy.breaks import graph_break  # noqa: F401  (public API)
from .resume import ResumeCache, Trampoline
from .convert import convert, EAGER, _TraceStopped, first_failing_guard, location_of, bind_call
from .dynamic import DynamicSpec, note_changes, root_of
from . import warm
from ..sources import LocalSource
from ..values.symbolic import ConstraintViolation

_all_states = weakref.WeakSet()
_stance = {"name": "default"}
_STANCES = ("default", "force_eager", "eager_on_recompile", "fail_on_recompile")
_MODES = ("default", "lite", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_tls = threading.local()        # .compiling: compiles in progress on this thread
_RESOURCE_ERRORS = (RecursionError, MemoryError)


# compiles of every function since reset() (config.accumulated_cache_size_limit), and whether the
# limit's warning was given (once per process until reset)
_accumulated = {"compiles": 0, "warned": False}
_accumulated_lock = threading.Lock()
_SYMFLOAT_BACKENDS = ("eager", "aten")     # run graphs with SymFloat inputs (runtime/dynamic.py)


class CompileState:
    """Cache and settings of one compiled callable."""

    def __init__(self, fn, backend, backend_name, fullgraph, dynamic=None):
        self.fn = fn
        self.dynamic_mode = dynamic  # compile(dynamic=...); self.dynamic: see _clear
        self.name = fn.__qualname__
        self.raw_backend = backend   # what children (below) are compiled with
        self.backend = guarded_backend(backend, backend_name)
        self.backend_name = backend_name
        self.fullgraph = fullgraph
        self.lock = threading.RLock()
        self.entries = ()            # generated entry functions, newest last
        self.generation = 0          # bumped by reset(): a compile that began before does not install
        self.limit_option = "cache_size_limit"      # the config option bounding self.entries
        # what graph breaks that stop the trace hand on to (runtime/resume.py)
        self.children = _Children(self._child)
        self._clear()
        _all_states.add(self)

    def _child(self, fn):
        child = CompileState(fn, self.raw_backend, self.backend_name, False, self.dynamic_mode)
        child.limit_option = "resume_cache_size_limit"
        child.children = self.children      # resume functions of resume functions: one cache
        child.dynamic.family = self.children.unstable_state
        return _function_wrapper(fn, child)

    def _clear(self):
        self.broken = False          # eager from now on (an internal error, a wrong trace, ...)
        self.compiles = 0            # traces of this function since reset
        self.installed = 0           # entries installed since reset (later misses are recompiles)
        self.invalidated = 0         # entries dropped because an object they guard died
        self.limit_warned = False
        self.reported = set()        # fallback kinds already logged / warned for this function
        self.dynamic = DynamicSpec(self.dynamic_mode, self.backend_name in _SYMFLOAT_BACKENDS)
        self.dynamic.family = self.children.unstable_state
        self.warm_tried = False      # entries stored on disk were looked up (runtime/warm.py)

    def reset(self):
        self.generation += 1
        self.entries = ()
        self.children.unstable_state.clear()
        self._clear()

    def guard_error_handler(self):
        """The entries' handler for a guard that raised (weak: entries do not keep the state
        alive). A raising guard is a bytegraph bug or an object changed in a way no guard
        foresaw; either way it must not turn into silent recompiles. If the entry was just built
        for this very call, _miss then runs the function eagerly from now on."""
        state_ref = weakref.ref(self)

        def on_guard_error(exc):
            if type(exc) is KeyError and _raised_in_entry(exc):
                # a dict item the guards read is gone (a deleted global or class member): the
                # guard on it is simply false
                counters["stats"]["guard_key_absent"] += 1
                return MISS
            counters["stats"]["guard_errors"] += 1
            state = state_ref()
            if state is not None:
                _fallback(state, "guard_error",
                          f"a cache guard of {state.name} ({location_of(state.fn)}) raised "
                          f"{type(exc).__name__}: {exc}; treated as a cache miss. Guard errors are "
                          f"counted in bytegraph.counters['stats']['guard_errors'] (warned once per "
                          f"function)", warn=True, stacklevel=5)
            return MISS
        return on_guard_error


def _raised_in_entry(exc):
    """Was `exc` raised by the generated guard text itself (a subscript of a globals dict, a
    class's `__dict__` or another plain dict in the entry or its full check), not inside anything
    it called? Guards subscript only such mappings, so a KeyError there means the key is absent."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.startswith(("<bytegraph entry ",
                                                      "<bytegraph full check "))


def _fallback(state, kind, reason, warn=False, stacklevel=4):
    """Count a fallback; log it (INFO) the first time per function and kind, and warn once per
    function and kind when `warn` (a bytegraph bug or a limit, not the user's code)."""
    counters["fallback"][kind] += 1
    if kind in state.reported:
        log.debug("%s: %s: %s", state.name, kind, reason)
        return
    state.reported.add(kind)
    log.info("%s: %s: %s", state.name, kind, reason)
    if warn:
        warnings.warn(f"bytegraph: {reason}", stacklevel=stacklevel)


def _run_eager(state, args, kwargs):
    counters["stats"]["eager_runs"] += 1
    return state.fn(*args, **kwargs)


class _Children:
    def __init__(self, compile_fn):
        self.resumes = ResumeCache(compile_fn)
        self.trampoline = Trampoline(compile_fn)
        # static graphs compiled for this function and its resume functions, by what makes
        # them interchangeable (runtime/graph_reuse.py: same_graph_key); held by their entries
        self.graphs = weakref.WeakValueDictionary()
        # module buffers seen to change, by class (runtime/dynamic.py unstable_state)
        self.unstable_state = weakref.WeakKeyDictionary()


def _run_with_stance(state, args, kwargs):
    stance = _stance["name"]
    if stance == "force_eager":
        return state.fn(*args, **kwargs)
    entries = state.entries
    for entry in entries:
        r = entry(*args, **kwargs)
        if r is not MISS:
            return _run_eager(state, args, kwargs) if r is EAGER else r
    if entries:
        if stance == "eager_on_recompile":
            return state.fn(*args, **kwargs)
        if stance == "fail_on_recompile":
            reason = _recompile_reason(state, args, kwargs, learn=False)
            raise RuntimeError(f"bytegraph: {state.name} would recompile "
                               f"(stance 'fail_on_recompile'); guard: {reason}")
    return _miss(state, args, kwargs, entries)


def _miss(state, args, kwargs, walked=()):
    """The slow path; `walked` is the entries tuple the caller already tried. The lock covers
    deciding and compiling only: user code (a graph, or the function run eagerly) never runs
    while it is held."""
    if state.broken:
        return _run_eager(state, args, kwargs)
    if getattr(_tls, "compiling", 0):
        _fallback(state, "reentrant", f"{state.name} was called by code running during a compile "
                                      f"on this thread; running it eagerly")
        return _run_eager(state, args, kwargs)
    while True:
        current = state.entries
        for entry in current[len(walked):] if current[:len(walked)] == walked else current:
            r = entry(*args, **kwargs)       # entries another thread added meanwhile
            if r is not MISS:
                return _run_eager(state, args, kwargs) if r is EAGER else r
        walked = current
        if state.limit_warned and len(current) >= getattr(config, state.limit_option):
            return _run_eager(state, args, kwargs)      # at the limit: no lock needed
        with state.lock:
            if state.entries is walked:
                _tls.compiling = getattr(_tls, "compiling", 0) + 1
                try:
                    action, payload = "warm", None
                    if not walked and not state.warm_tried and warm.enabled():
                        state.warm_tried = True    # first miss: stored entries (runtime/warm.py)
                        payload = warm.load(state, args)
                    if not payload:
                        action, payload = _decide(state, args, kwargs)
                finally:
                    _tls.compiling -= 1
                break
    if action == "warm":
        return _warm_call(state, payload, args, kwargs)
    if action == "eager":
        return _run_eager(state, args, kwargs)
    if action == "user_error":
        return _user_error(state, payload, args, kwargs)
    entry = payload
    r = entry(*args, **kwargs)
    if r is MISS:
        life = getattr(entry, "__bytegraph_life__", None)
        if life is not None and life.dead:     # an object it guards died meanwhile: not a bug
            return _run_eager(state, args, kwargs)
        # guards that do not hold on the very call they were made for: a bytegraph bug
        state.broken = True
        _fallback(state, "bad_guards", f"guards of {state.name} reject the call they were built "
                                       f"from ({first_failing_guard(entry, args, kwargs)}); "
                                       f"running it eagerly", warn=True)
        return _run_eager(state, args, kwargs)
    return _run_eager(state, args, kwargs) if r is EAGER else r


def _warm_call(state, entries, args, kwargs):
    """Install entries rebuilt from disk and let their guards take this call, else trace."""
    with state.lock:
        generation = state.generation
        fresh = [e for e in entries if _install(state, e, generation, count=False)]
    for entry in fresh:
        r = entry(*args, **kwargs)
        if r is not MISS:
            counters["warm"]["hit"] += 1
            return _run_eager(state, args, kwargs) if r is EAGER else r
    counters["warm"]["rejected"] += 1
    return _miss(state, args, kwargs, state.entries)


def _decide(state, args, kwargs):
    """Under the function's lock: ("entry", new entry) | ("eager", None) |
    ("user_error", (message, location, eager entry))."""
    fn = state.fn
    if state.broken:
        return "eager", None
    what = _deferred_body(fn)
    if what is not None and not state.fullgraph:      # as torch.compile: accepted, runs eagerly
        state.broken = True
        _fallback(state, "generator_function", f"{state.name} is {what}: its body runs when "
                  f"iterated or awaited, outside the call, so it runs eagerly")
        return "eager", None
    try:
        # the function's own parameters, not those of what functools.wraps says it wraps
        inspect.signature(fn, follow_wrapped=False).bind(*args, **kwargs)
    except TypeError:       # the call does not bind: eager raises the user's TypeError
        return "eager", None
    _drop_dead(state)
    limit = getattr(config, state.limit_option)
    if len(state.entries) >= limit:
        if not state.limit_warned:
            state.limit_warned = True
            reason = _recompile_reason(state, args, kwargs, learn=False) if state.entries else "-"
            _fallback(state, "cache_limit", f"{state.name} ({location_of(fn)}) has "
                      f"{len(state.entries)} cache entries, config.{state.limit_option}={limit}; "
                      f"running it eagerly from now on. Last recompile reason: {reason}",
                      warn=True, stacklevel=5)
        return "eager", None
    if _accumulated["compiles"] >= config.accumulated_cache_size_limit:
        state.broken = True
        first, _accumulated["warned"] = not _accumulated["warned"], True
        _fallback(state, "accumulated_limit", f"{_accumulated['compiles']} compiles since "
                  f"bytegraph.reset(), config.accumulated_cache_size_limit="
                  f"{config.accumulated_cache_size_limit}: {state.name} ({location_of(fn)}) and "
                  f"every function that misses its cache from now on run eagerly (cached entries "
                  f"keep serving)", warn=first, stacklevel=5)
        return "eager", None
    if state.invalidated >= limit and "churn" not in state.reported:
        _fallback(state, "churn", f"{state.invalidated} cache entries of {state.name} "
                  f"({location_of(fn)}) were dropped because an object they guard was freed (a "
                  f"new nn.Module or object per call?); each such call recompiles, up to "
                  f"config.accumulated_cache_size_limit={config.accumulated_cache_size_limit}",
                  warn=True, stacklevel=5)
    if state.installed:
        reason = _recompile_reason(state, args, kwargs)
        counters["recompiles"]["total"] += 1
        counters["recompiles"][state.name] += 1
        recompile_log.info("recompiling %s (%s): %s", state.name, location_of(fn), reason)
    else:
        reason = ""
    state.compiles += 1
    with _accumulated_lock:
        _accumulated["compiles"] += 1
    generation = state.generation
    try:
        return _convert_and_install(state, args, kwargs, reason, generation)
    finally:
        _clear_shape_env_caches()


def _recompile_reason(state, args, kwargs, learn=True):
    """Why no entry took this call, in user terms; under dynamic=None this is also where a
    changed size or int argument becomes dynamic for the next trace (runtime/dynamic.py)."""
    if not state.entries:
        return "the objects its cache entries guarded were freed"
    last = state.entries[-1]
    changes = []
    gs = getattr(last, "__bytegraph_guards__", None)
    if gs is not None:
        try:
            bound = bind_call(state.fn, args, kwargs)
        except TypeError:
            bound = None
        if bound is not None:
            # fullgraph: a changed module-state scalar is compiled again per value (up to the
            # cache limit), not read as data, which would be a graph break (values/known.py)
            changes, _ = note_changes(state.dynamic, gs, bound, learn,
                                      learn_unstable=not _fullgraph(state))
    return "; ".join(changes) if changes else first_failing_guard(last, args, kwargs)


def _fullgraph(state):
    """Does a graph break raise for this compile? error_on_graph_break(...) overrides fullgraph."""
    forced = _error_on_break["on"]
    return state.fullgraph if forced is None else forced


def _convert_and_install(state, args, kwargs, reason, generation):
    fn = state.fn
    fullgraph = _fullgraph(state)
    try:
        entry, record = convert(fn, args, kwargs, state.backend, state.backend_name, state.compiles - 1,
                                state.guard_error_handler(), not fullgraph, state.children,
                                state.dynamic)
        record.guard_failure = reason
        compile_metrics.seal(record)
    except _TraceStopped as stop:
        exc = stop.exc
        stop.record.guard_failure = reason
        compile_metrics.seal(stop.record)
        if isinstance(exc, UserError) and isinstance(exc.exc, _RESOURCE_ERRORS):
            return _resource_error(state, exc.exc, stop.entry, generation)
        if isinstance(exc, UserError):
            _fallback(state, "user_error", f"{exc.msg} while tracing ({exc.location}); calls that "
                                           f"pass its guards run eagerly")
            _install(state, stop.entry, generation)
            return "user_error", (exc.msg, exc.location, stop.entry)
        if fullgraph:
            raise Unsupported(exc.msg + _call_chain(exc), kind=exc.kind, hint=exc.hint,
                              location=exc.location) from None
        # the trace stopped and could not resume after the break: counted by the construct's kind
        _fallback(state, exc.kind, f"graph break that stops the trace, so it runs eagerly: {exc}")
        _install(state, stop.entry, generation)
        return "eager", None
    except BackendCompilerFailed as e:
        timed_out = isinstance(e.inner_exception, TimeoutError)
        kind = "backend_timeout" if timed_out else "backend_error"
        if not config.suppress_errors:
            counters["fallback"][kind] += 1
            raise
        state.broken = True
        _fallback(state, kind, f"{e}; running {state.name} eagerly", warn=True, stacklevel=6)
        return "eager", None
    except _RESOURCE_ERRORS as e:
        return _resource_error(state, e, None, generation)
    except ConstraintViolation:
        raise                   # the user's mark_dynamic() cannot hold: their error to see
    except Exception as e:  # a bytegraph bug: never break the user's program for it
        if state.fullgraph:
            raise Unsupported(f"internal error while compiling {state.name}: "
                              f"{type(e).__name__}: {e}", kind="internal",
                              location=location_of(fn)) from e
        counters["frames"]["internal_error"] += 1
        state.broken = True
        _fallback(state, "internal_error", f"internal error while compiling {state.name} "
                  f"({location_of(fn)}): {type(e).__name__}: {e}. Running it eagerly.",
                  warn=True, stacklevel=6)
        return "eager", None
    if not _install(state, entry, generation):
        return "eager", None
    warm.after_install(state)
    return "entry", entry


_shape_env_caches = []


def _clear_shape_env_caches():
    """torch memoizes ShapeEnv methods in process-wide functools caches keyed by the ShapeEnv
    (some unbounded), and only clears them when a ShapeEnv's version counter moves -- so every
    trace's ShapeEnv (and what it references) would stay alive forever. The caches only speed up
    one trace; clear them after each compile."""
    if not _shape_env_caches:
        from torch.fx.experimental.symbolic_shapes import ShapeEnv
        for attr in vars(ShapeEnv).values():
            clear = getattr(attr, "cache_clear", None)
            if callable(clear):
                _shape_env_caches.append(clear)
    for clear in _shape_env_caches:
        clear()


def _resource_error(state, exc, entry, generation):
    """The trace ran out of stack or memory. With an eager entry (the trace stopped cleanly),
    calls that pass its guards run eagerly; without one, the function runs eagerly from now on."""
    what = "stack" if isinstance(exc, RecursionError) else "memory"
    if state.fullgraph:
        raise Unsupported(f"ran out of {what} while tracing {state.name}: {type(exc).__name__}: {exc}",
                          kind="resource", location=location_of(state.fn))
    if entry is not None:
        _install(state, entry, generation)
        scope = "calls that pass its guards run eagerly"
    else:
        state.broken = True
        scope = "running it eagerly from now on"
    _fallback(state, "resource_error", f"ran out of {what} while tracing {state.name} "
              f"({location_of(state.fn)}): {type(exc).__name__}; {scope}", warn=True, stacklevel=7)
    return "eager", None


class _GuardsView:
    """What an installed entry keeps of its GuardSet: the guards and the namespace (the
    GuardSet's bookkeeping references the objects the trace saw)."""
    __slots__ = ("guards", "cg", "sizes", "layouts", "ints", "state_values")
    expression = GuardSet.expression
    __len__ = GuardSet.__len__

    def __init__(self, gs):
        # a guard's source and expected value stay only when they hold no caller object
        # (sources rooted at an argument; plain values): entries bind caller objects weakly
        self.guards = [g if _portable(g) else Guard(g.code, g.source_desc, g.kind, fetch=g.fetch,
                                                     expected=g.expected if plain(g.expected) else None,
                                                     label=g.label)
                       for g in gs.guards]
        self.cg = gs.cg
        self.sizes = [(src, shape) for src, shape in gs.sizes if isinstance(root_of(src), LocalSource)]
        self.layouts = [x for x in gs.layouts if isinstance(root_of(x[0]), LocalSource)]
        self.ints = [(src, v) for src, v in gs.ints if isinstance(root_of(src), LocalSource)]
        # module-state scalars (values/known.py) of a global or a closure cell too: their roots
        # (the globals dict, the cell) are held by the function already
        self.state_values = [(src, v) for src, v in gs.state_values if isinstance(root_of(src), LocalSource)
                             or type(getattr(root_of(src), "obj", None)) in (dict, types.CellType)]


def _portable(g):
    root = root_of(g.source) if g.source is not None else None
    if root is not None and not isinstance(root, LocalSource) and not (
            type(getattr(root, "obj", None)) is dict and "__name__" in root.obj):   # a module's globals
        return False
    # state guards' expected values hold torch._C getters and plain values only
    return g.kind in ("tensor", "value", "type", "shape_range", "shape_env") + STATE_KINDS or plain(g.expected)


def _install(state, entry, generation, count=True):
    """Add a new entry (under the function's lock). False when it must not serve: reset() ran
    while it was compiled, or an object its guards name already died."""
    gs = getattr(entry, "__bytegraph_guards__", None)
    if isinstance(gs, GuardSet):
        entry.__bytegraph_guards__ = _GuardsView(gs)
    if state.generation != generation:
        return False
    life = getattr(entry, "__bytegraph_life__", None)
    if life is not None:
        if life.dead:
            return False
        life.on_dead = _invalidator(state, entry)
    state.entries = state.entries + (entry,)
    state.installed += count
    return True


def _invalidator(state, entry):
    """The callback an entry's weak bindings call when an object they name dies: drop the entry.
    It may run on any thread at any allocation (GC), so it takes no lock; an entry a concurrent
    install puts back is dead (it only misses) and _drop_dead removes it on the next compile."""
    state_ref, entry_ref = weakref.ref(state), weakref.ref(entry)

    def on_dead():
        st, e = state_ref(), entry_ref()
        if st is None or e is None:
            return
        entries = st.entries
        if any(x is e for x in entries):
            st.entries = tuple(x for x in entries if x is not e)
            st.invalidated += 1
            counters["stats"]["invalidated_entries"] += 1
    return on_dead


def _drop_dead(state):
    entries = state.entries
    alive = tuple(e for e in entries if not getattr(getattr(e, "__bytegraph_life__", None), "dead", False))
    if len(alive) != len(entries):
        state.entries = alive


def _call_chain(exc):
    stack = getattr(exc, "user_stack", None)
    if not stack or len(stack) < 2:
        return ""
    return "\n  while tracing (innermost last):\n    " + "\n    ".join(reversed(stack))


def _user_error(state, info, args, kwargs):
    """The trace says the user's code raises here. Run it eagerly: if it does raise, that is the
    user's exception, surfaced unchanged (and the eager entry installed in _decide serves the
    next such call without a retrace); if it does not, the trace was wrong -- a bytegraph bug,
    which is reported rather than hidden (fullgraph=True: Unsupported)."""
    msg, location, entry = info
    result = _run_eager(state, args, kwargs)
    with state.lock:
        state.entries = tuple(e for e in state.entries if e is not entry)
        state.broken = True
    text = (f"bytegraph's trace of {state.name} raised {msg} ({location}) but the function itself "
            f"did not; running it eagerly from now on")
    if state.fullgraph:
        counters["fallback"]["trace_mismatch"] += 1
        raise Unsupported(text, kind="internal", location=location_of(state.fn))
    _fallback(state, "trace_mismatch", text, warn=True)
    return result


# --------------------------------------------------------------------------
# public API

def _resolve_backend(backend):
    from ..backends import lookup_backend
    return lookup_backend(backend)


def _check_compile_args(fullgraph, dynamic, options, mode, disable):
    if not isinstance(fullgraph, bool):
        raise TypeError(f"compile(fullgraph=...) expects a bool, got {type(fullgraph).__name__}")
    if dynamic is not None and not isinstance(dynamic, bool):
        raise TypeError(f"compile(dynamic=...) expects None or a bool, got {type(dynamic).__name__}")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"compile(options=...) expects a dict or None, got {type(options).__name__}")
    if options:
        bad = [k for k in options if not isinstance(k, str)]
        if bad:
            raise TypeError(f"compile(options=...) keys must be option names (str), got {bad[0]!r}")
    if mode is not None:
        if not isinstance(mode, str):
            raise TypeError(f"compile(mode=...) expects None or one of {_MODES}, got "
                            f"{type(mode).__name__}")
        if mode not in _MODES:
            raise ValueError(f"compile(mode=...) got unknown mode {mode!r}; expected one of {_MODES}")
        if options:
            raise ValueError("compile() takes mode= or options=, not both (as torch.compile)")
    if not isinstance(disable, bool):
        raise TypeError(f"compile(disable=...) expects a bool, got {type(disable).__name__}")


def compile(model=None, *, backend="inductor", fullgraph=False, dynamic=None, options=None,
            mode=None, disable=False):
    """Compile a function or nn.Module; same calling conventions as torch.compile.

    Compiling an already compiled callable compiles its original with the new settings (a new,
    independent cache), as torch.compile does; compiling a bytegraph.disable'd function returns
    it unchanged (it stays eager)."""
    _check_compile_args(fullgraph, dynamic, options, mode, disable)
    backend_fn, backend_name = _resolve_backend(backend)
    if options:
        backend_fn = with_options(backend_fn, backend_name, options)
    if model is None:
        return functools.partial(compile, backend=backend, fullgraph=fullgraph, dynamic=dynamic,
                                 options=options, mode=mode, disable=disable)
    if disable:
        return model
    return _compile_callable(model, backend_fn, backend_name, fullgraph, (backend, fullgraph, dynamic,
                                                                          options, mode))


_DEFERRED_BODIES = ((inspect.CO_COROUTINE, "an async def (coroutine) function"),
                    (inspect.CO_ASYNC_GENERATOR, "an async generator function"),
                    (inspect.CO_GENERATOR, "a generator function"))


def _deferred_body(fn):
    """What `fn` is if calling it only creates a generator or coroutine (its body runs later,
    outside the call: nothing to capture), else None."""
    flags = fn.__code__.co_flags
    for flag, what in _DEFERRED_BODIES:
        if flags & flag:
            return what
    return None


def _compile_callable(model, backend_fn, backend_name, fullgraph, spec):
    if isinstance(model, type):
        raise TypeError(f"bytegraph.compile expects a function, method or nn.Module instance, got "
                        f"the class {model.__qualname__}; compile an instance "
                        f"(bytegraph.compile({model.__name__}(...))) or a function")
    if getattr(model, "__bytegraph_disabled__", None) is not None:
        return model                             # bytegraph.disable wins, as in torch
    if isinstance(model, torch.nn.Module):
        from .module import OptimizedModule
        if isinstance(model, OptimizedModule):   # re-compiling: the original, new settings
            model = model.__dict__["_orig_mod"]
        return OptimizedModule(model, backend_fn, backend_name, fullgraph, spec)
    state = getattr(model, "__bytegraph_state__", None)
    if isinstance(state, CompileState):
        model = state.fn                         # re-compiling a compiled function
    if isinstance(model, types.FunctionType):
        return _function_wrapper(model, CompileState(model, backend_fn, backend_name, fullgraph, spec[2]))
    if isinstance(model, types.MethodType):
        inner = _compile_callable(model.__func__, backend_fn, backend_name, fullgraph, spec)
        return types.MethodType(inner, model.__self__)
    if isinstance(model, functools.partial):
        inner = _compile_callable(model.func, backend_fn, backend_name, fullgraph, spec)
        return functools.partial(inner, *model.args, **model.keywords)
    if isinstance(model, (types.BuiltinFunctionType, types.MethodDescriptorType,
                          types.WrapperDescriptorType, types.MethodWrapperType)):
        raise TypeError(f"bytegraph.compile expects a Python function, method or nn.Module; "
                        f"{model!r} is a builtin with no bytecode to trace")
    if callable(model):
        call = getattr(type(model), "__call__", None)
        if isinstance(call, types.FunctionType):
            inner = _compile_callable(call, backend_fn, backend_name, fullgraph, spec)
            return functools.wraps(call)(functools.partial(inner, model))
        raise TypeError(f"bytegraph.compile expects a Python function, method, functools.partial, "
                        f"nn.Module or an object whose class defines __call__ in Python; "
                        f"{type(model).__name__}.__call__ is not Python code")
    raise TypeError(f"bytegraph.compile expects a callable (function, method, functools.partial, "
                    f"nn.Module or object with __call__), got {type(model).__name__}")


def _function_wrapper(fn, state):
    # The cache walk of _run_with_stance, inlined: one Python call less on every hit.
    stance = _stance

    @functools.wraps(fn)
    def compiled(*args, **kwargs):
        if stance["name"] == "default":
            entries = state.entries
            for entry in entries:
                r = entry(*args, **kwargs)
                if r is not MISS:
                    return _run_eager(state, args, kwargs) if r is EAGER else r
            return _miss(state, args, kwargs, entries)
        return _run_with_stance(state, args, kwargs)

    compiled.__bytegraph_state__ = state
    compiled._torchdynamo_orig_callable = fn
    return compiled


def reset():
    """Drop every cache entry and counter (like torch._dynamo.reset()). A compile running on
    another thread meanwhile finishes but does not install its entry."""
    for state in list(_all_states):
        state.reset()
    with _accumulated_lock:
        _accumulated.update(compiles=0, warned=False)
    counters.clear()
    compile_metrics.clear()


_disabled_memo = weakref.WeakValueDictionary()     # (id(fn), recursive) -> its disable() wrapper


def disable(fn=None, recursive=True):
    """Run `fn` eagerly, always; a call to it inside compiled code stops the trace there.
    Disabling the same function twice returns the same wrapper."""
    if not isinstance(recursive, bool):
        raise TypeError(f"disable(recursive=...) expects a bool, got {type(recursive).__name__}")
    if fn is None:
        return functools.partial(disable, recursive=recursive)
    state = getattr(fn, "__bytegraph_state__", None)
    if isinstance(state, CompileState):
        fn = state.fn
    orig = getattr(fn, "_orig_mod", None) if isinstance(fn, torch.nn.Module) else None
    if isinstance(orig, torch.nn.Module):
        return orig
    if not callable(fn):
        raise TypeError(f"bytegraph.disable expects a callable, got {type(fn).__name__}")
    if getattr(fn, "__bytegraph_disabled__", None) is not None:
        return fn
    key = (id(fn), recursive)
    known = _disabled_memo.get(key)
    if known is not None and known.__bytegraph_disabled__ is fn:
        return known

    @functools.wraps(fn)
    def disabled(*args, **kwargs):
        return fn(*args, **kwargs)

    registry.mark_disabled(disabled)
    disabled.__bytegraph_disabled__ = fn
    _disabled_memo[key] = disabled
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
    if not isinstance(stance, str):
        raise TypeError(f"set_stance expects a stance name (str), one of {_STANCES}; "
                        f"got {type(stance).__name__}")
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
            if not callable(f):
                _stance["name"] = prev
                raise TypeError(f"set_stance(...) used as a decorator expects a callable, got "
                                f"{type(f).__name__}")

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
