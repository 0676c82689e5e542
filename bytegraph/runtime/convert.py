"""Convert one call of a Python function into a cache entry.

trace (symbolic interpreter) -> fx GraphModule -> backend -> generated entry
function (guards + graph call + epilogue). If the trace stops on something it
cannot capture, the result is an *eager entry*: the guards gathered so far
(which fully determine that the trace would stop at the same place) and a
marker telling the runtime to run the original function.
"""
import inspect
import logging
import time
import weakref

import torch
import torch.fx

from ..guards.reasons import describe as describe_failure
from ..values.symbolic import ConstraintViolation, hint
from .. import symbolic  # noqa: F401  (registers the opcode handlers)
from ..backends.registry import eager as eager_backend
from ..codegen.entry import Codegen, build_entry, MISS
from ..exc import Unsupported, UserError, BackendCompilerFailed
from ..graph import GraphBuilder
from ..graph.builder import NEEDS_SHAPE_ENV, _storage_key
from ..graph.segments import partition, as_python
from ..policy.breaks import BreakRecord
from .resume import break_tail, choose_stop, is_read_stop, raise_stop, STRUCTURAL
from .warm import GraphInfo
from .graph_reuse import same_graph_key, family_key, shape_facts
from .graph_state import compiling, restoring_call
from . import rerun as _rerun
from ..guards import GuardSet
from ..observe import counters, compile_metrics, CompileRecord, log, graph_log, break_log
from ..side_effects import SideEffects
from ..symbolic.interpreter import Tracer, Stopped
from ..values.containers import BaseSeq, DictValue, SetValue
from ..values.known import guard_all_roots, guard_apart
from ..values.objects import ObjectValue, ModuleValue

EAGER = type("EAGER", (), {"__repr__": lambda self: "<run eagerly>"})()


def bind_call(fn, args, kwargs):
    # the function's own parameters: functools.wraps copies __wrapped__, which signature()
    # would otherwise follow to the decorated function's (different) parameters
    sig = inspect.signature(fn, follow_wrapped=False)
    ba = sig.bind(*args, **kwargs)
    ba.apply_defaults()
    return dict(ba.arguments)


_MUTABLE_VALUES = (BaseSeq, DictValue, SetValue, ObjectValue)

def location_of(fn):
    code = getattr(fn, "__code__", None)
    if code is None:
        return "?"
    return f"{code.co_filename}:{code.co_firstlineno}"


class _TraceFailed(Exception):
    def __init__(self, exc, cg, guards, gb=None):
        self.exc, self.cg, self.guards, self.gb = exc, cg, guards, gb


_NO_BREAK = frozenset({"internal", "recursion", NEEDS_SHAPE_ENV, "torch_function_mode", "generator_function",
                       "iter_mutated", "logging_exc_info"})


def _break_point(e, allow_breaks, tried=()):
    """The step to stop the trace before, for a graph break at `e` (None: no break); not one
    of `tried` (steps whose stop could not be resumed from: the next frame out is tried)."""
    if not allow_breaks or isinstance(e, UserError) and not raise_stop(e) or e.kind in _NO_BREAK:
        return None
    chains = []
    if not getattr(e, "at_producer", False):
        chains.append(getattr(e, "frames", None))
    chains.append(getattr(e, "producer", None))        # a value computed at a break (values/opaque.py)
    for chain in chains:
        if chain:
            stop = choose_stop([(f, f.inst, f.step) for f in chain] if not isinstance(chain[0], tuple)
                               else chain, e.kind, tried)
            if stop is not None:
                return stop
    return None


def _eager_entry(fn, failed, record, t0, name, on_guard_error):
    """Raise _TraceStopped with an entry that runs fn eagerly for calls passing the guards
    the failed trace gathered (which decide that it fails the same way)."""
    e, cg, guards = failed.exc, failed.cg, failed.guards
    record.trace_s = time.perf_counter() - t0
    record.reason = str(e)
    if not isinstance(e, UserError):      # counted by the runtime (fallback, by e.kind)
        record.breaks = [_record_of(e)]
    compile_metrics.append(record)
    if failed.gb is not None and failed.gb.symbols:
        # what the trace assumed about its symbols up to the failure (the failing condition
        # itself among them): without it the entry would run every size eagerly
        try:
            guards.add_shape_env(failed.gb)
        except Unsupported:
            pass                # wider than needed, still correct: the entry runs fn eagerly
    entry = build_entry(fn, cg, guards, [], "EAGER", name, on_guard_error)
    entry.__bytegraph_guards__ = guards
    raise _TraceStopped(e, entry, record)


def _record_of(e):
    """explain()'s record of a break that stopped the trace: where the exception arose, or,
    when the stop is where a value it needed was produced, there."""
    hint = e.hint or "this runs in Python; the code around it is compiled in separate graphs"
    msg = e.msg
    if isinstance(e, UserError):          # raise_stop: an exception leaving the function
        msg = f"{type(e.exc).__name__} raised out of the compiled function (Python raises it after the graph)"
        hint = "an exception that leaves the function ends the graph before it; eager raises it there too"
    if getattr(e, "at_producer", False) and e.producer:
        chain = list(reversed(e.producer))          # outermost first
        stack = [f"{f.qualname} at {f.code.co_filename}:{inst.line}" for f, inst, _ in chain]
        f, inst, _ = chain[-1]
        return BreakRecord(msg, f.code.co_filename, inst.line, stack, hint)
    filename, _, line = (e.location or "?:0").rpartition(":")
    stack = list(reversed(getattr(e, "user_stack", None) or []))
    return BreakRecord(msg, filename, int(line) if line.isdigit() else 0, stack, hint)


def _trace(fn, bound, shape_env, allow_breaks, stop_at=None, specialize=(), dynamic=None,
           state_scalars=True, rerun=False):
    """One symbolic run of fn over the bound arguments: (cg, guards, builder, tracer, result,
    grad mode at start, grad mode at end). Unsupported asking for a ShapeEnv propagates as is;
    any other stop is wrapped with the guards gathered so far. `state_scalars=False`: read no
    module-state scalar's value (values/known.py; export). `rerun`: the entry reruns the unit
    when one of its first graphs raises, which the trace may rely on (runtime/rerun.py)."""
    cg = Codegen()
    cg.namespace["EAGER"] = EAGER
    guards = GuardSet(cg)
    guards.add_global_state()
    # the trace read this code object: a function whose __code__ is replaced afterwards (IPython's
    # autoreload, hot-reload tools) must miss, as its inlined callees do (values/functions.py)
    guards.add_code(f"{cg.const(fn, 'fn')}.__code__ is {cg.const(fn.__code__, 'code')}", None, "code",
                    fn.__qualname__)
    if fn.__defaults__:
        guards.add_code(f"{cg.const(fn, 'fn')}.__defaults__ is __defaults", None, "defaults", fn.__qualname__)
    if fn.__kwdefaults__:
        # the entry's signature bound these values when it was defined: an in-place edit of
        # __kwdefaults__ must miss, so each value is checked by identity
        kw = cg.const(fn, 'fn') + ".__kwdefaults__"
        checks = [f"{kw} is __defaults_kw", f"len({kw}) == {len(fn.__kwdefaults__)}"]
        checks += [f"{kw}[{k!r}] is {cg.const(v, 'kwdefault')}" for k, v in fn.__kwdefaults__.items()]
        guards.add_code(" and ".join(checks), None, "defaults", fn.__qualname__)
    gb = GraphBuilder(shape_env=shape_env or (dynamic is not None and dynamic.needs_shape_env(bound)))
    tracer = Tracer(gb, cg, guards, SideEffects())
    tracer.dynamic = dynamic
    tracer.state_scalars = state_scalars
    tracer.bound = bound
    tracer.allow_breaks = allow_breaks
    tracer.structural = fn in STRUCTURAL      # modules passed in: guarded by structure (resume.py)
    tracer.stop_at = stop_at
    tracer.specialize = specialize
    tracer.rerun_ok = rerun
    grad_at_start = torch.is_grad_enabled()
    try:
        try:
            try:
                result = tracer.run_root(fn, bound)
            except Stopped:                  # at stop_at: a graph break ends the entry there
                result = None
            grad_at_end = torch.is_grad_enabled()
        finally:
            tracer.restore_state()
    except BaseException as e:
        gb.release_real_tensors()         # a failed trace's builder outlives it in the exception
        if not isinstance(e, Unsupported) or e.kind == NEEDS_SHAPE_ENV and not shape_env:
            raise
        e.graph_ops = gb.num_ops         # (a user exception after tensor work: resume.py raise_stop)
        raise _TraceFailed(e, cg, guards, gb)
    return cg, guards, gb, tracer, result, grad_at_start, grad_at_end


def _replay(tracer, cg):
    """The side-effect lines after the epilogue's own (cg.lines moved into the tail first)."""
    cg.lines = []
    return tracer.side_effects.replay(cg)


class _NoResume(Exception):
    def __init__(self, why):
        self.why = why


def _finish_trace(traced, stopped_by, fn, record, t0, name, on_guard_error, children):
    """The guards a finished trace adds for what it saw, and the entry's tail: the epilogue
    (returning the result, replaying side effects), or at a graph break the lines that run
    the stopped instruction in Python and call the resume function (_NoResume when the stop
    point cannot be resumed from)."""
    cg, guards, gb, tracer, result, grad_at_start, grad_at_end = traced
    if gb.mutates_inputs():
        # the graph writes into an input: two inputs that are one object would make placeholders
        # the graph (and backends) treat as independent alias each other
        guards.add_distinct([src for src, t in gb.inputs if isinstance(t, torch.Tensor)])
    if tracer.side_effects:
        # a write through one caller object is invisible to reads through another only while
        # they are distinct objects: guard that the ones the trace saw as distinct stay so
        guards.add_distinct([v.source for _, v in tracer.wrapped.values()
                             if v.source is not None and isinstance(v, _MUTABLE_VALUES)], "distinct_objects")
    for value, names in tracer.absent_attrs.values():
        guards.add_absent(value.source, names)
        if isinstance(value, ModuleValue):    # a module's attributes also live in these dicts
            for dname in ("_parameters", "_buffers", "_modules"):
                if dname in value.obj.__dict__:
                    guards.add_code(f"{cg.bound(value.source)}.{dname}.keys().isdisjoint("
                                    f"{cg.const(frozenset(names), 'names')})", value.source, "absent_attrs",
                                    tuple(sorted(names)))
    for value, names in tracer.module_dict_absent.values():
        if value.source is not None:
            guards.add_absent(value.source, names)
    for klass, names in tracer.class_absent.values():
        guards.add_code(f"{cg.const(klass, klass.__name__)}.__dict__.keys().isdisjoint("
                        f"{cg.const(frozenset(names), 'names')})", None, "class_attr_absent",
                        (klass.__qualname__, tuple(sorted(names))))
    for klass in tracer.class_mro.values():
        # `type.__mro__` hands back the class's own tuple, replaced only when `__bases__` is
        # assigned: `is` holds on every call but then, and the comparison decides after that
        k, mro = cg.const(klass, klass.__name__), cg.const(klass.__mro__, 'mro')
        guards.add_code(f"({k}.__mro__ is {mro} or {k}.__mro__ == {mro})", None, "class_mro", klass.__qualname__)
    for g, names in tracer.builtins_used.values():
        guards.add_code(f"{cg.const(g, 'G')}.keys().isdisjoint({cg.const(frozenset(names), 'names')})",
                        None, "builtins_not_shadowed", tuple(sorted(names)))
    cg.end_guards()     # the graph and the epilogue bind strongly (codegen.entry: weak bindings)

    # the epilogue: everything it reads is evaluated before anything is written back
    if stopped_by is None:
        try:
            tail, after = cg.lines + [f"__r = {cg.expr(result)}"], []
            values, applies = _replay(tracer, cg)
        except Unsupported as why:     # a value Python cannot be handed as eager would (a set)
            _retrace_at_producer(why)
            why.location = why.location or record.location
            _eager_entry(fn, _TraceFailed(why, cg, guards, gb), record, t0, name, on_guard_error)
    else:
        tracer.break_records.append(_record_of(stopped_by.exc))
        tracer.read_stop = is_read_stop(stopped_by.exc, tracer)
        try:
            tail, after = break_tail(tracer, cg, children.resumes, children.trampoline)
            tail = cg.lines + tail
            values, applies = _replay(tracer, cg)
        except Unsupported as why:
            _retrace_at_producer(why)
            raise _NoResume(why)     # the stop point cannot be resumed from
    return tail + values + applies, after


class _Retrace(Exception):
    def __init__(self, why):
        self.why = why


def _retrace_at_producer(why):
    """An effect refused when the entry's tail replays it, which names where the trace must stop
    instead (a log record whose tensor an op wrote into afterwards: policy/stdlib.py
    TensorLogEmission): trace again, stopping there."""
    if getattr(why, "at_producer", False) and getattr(why, "producer", None):
        raise _Retrace(why)


def _trace_breaks(attempt, fn, record, t0, name, on_guard_error, children, allow_breaks):
    """The trace of one call with its graph breaks: (tail, after, traced, whether a break stopped
    it), or _TraceStopped with an eager entry (see convert)."""
    stopped_by, tried, why_not = None, [], None
    try:
        traced = attempt(None)
    except _TraceFailed as failed:
        traced, stopped_by = None, failed
    while True:
        if traced is None:
            # a graph break: trace again up to just before the instruction chosen to run in
            # Python (the innermost frame's first; a frame further out when a stop deeper in
            # could not be resumed from)
            while traced is None:
                stop = _break_point(stopped_by.exc, allow_breaks and children is not None, tried)
                if stop is None:
                    break
                tried.append(stop)
                try:
                    traced = attempt(stop)
                except _TraceFailed:
                    traced = None
                if traced is not None and traced[3].stopped is None:
                    traced = None
            if traced is None:
                if why_not is not None:
                    stopped_by.exc.msg += f" (and no graph break there: {why_not.msg})"
                _eager_entry(fn, stopped_by, record, t0, name, on_guard_error)
        try:
            tail, after = _finish_trace(traced, stopped_by, fn, record, t0, name, on_guard_error, children)
            return tail, after, traced, stopped_by is not None
        except _Retrace as again:
            cg, guards, gb = traced[0], traced[1], traced[2]
            stopped_by, traced = _TraceFailed(again.why, cg, guards, gb), None
        except _NoResume as no:
            why_not = why_not or no.why
            traced = None          # the stop point cannot be resumed from: try one further out


def convert(fn, args, kwargs, backend, backend_name, entry_index, on_guard_error=None,
            allow_breaks=True, children=None, dynamic=None):
    """Trace fn(*args, **kwargs) and return (entry function, CompileRecord). `on_guard_error`:
    see codegen.entry.build_entry; `allow_breaks=False` (fullgraph): the first graph break
    stops the trace; `children` (resumes, trampoline: runtime/resume.py) compile the code
    a graph break that stops the trace hands on to."""
    record = CompileRecord(name=fn.__qualname__, location=location_of(fn))
    counters["frames"]["total"] += 1
    t0 = time.perf_counter()
    bound = bind_call(fn, args, kwargs)
    name = f"__entry_{entry_index}"
    specialize = set()

    def attempt(stop_at):
        while True:
            try:
                try:
                    return _trace(fn, bound, False, allow_breaks, stop_at, specialize, dynamic,
                                  rerun=rerun_ok)
                except Unsupported as e:
                    if e.kind != NEEDS_SHAPE_ENV:
                        raise
                    # an op with a data-dependent output size: trace again with a ShapeEnv
                    # (unbacked sizes). Static traces never build one, so they never import
                    # its machinery.
                    return _trace(fn, bound, True, allow_breaks, stop_at, specialize, dynamic,
                                  rerun=rerun_ok)
            except _TraceFailed as failed:
                name = getattr(failed.exc, "specialize", None)
                if name is None or name in specialize:
                    raise
                specialize.add(name)       # an opaque parameter whose value the code needs

    for rerun_ok in (True, False):
        tail, after, traced, stopped = _trace_breaks(attempt, fn, record, t0, name, on_guard_error,
                                                     children, allow_breaks)
        tracer, gb = traced[3], traced[2]
        how = _rerun.plan(tracer, gb)
        if tracer.relies_on_rerun < (how[1] if how is not None else 0):
            break
        # the trace kept a raise that only a rerun handles, and then made the graph holding it
        # one that cannot be rerun (a write into an input after it): trace again without
        log.info("%s (%s): a graph cannot be rerun; tracing again without relying on it",
                 fn.__qualname__, record.location)
    cg, guards, gb, tracer, result, grad_at_start, grad_at_end = traced
    if grad_at_end != grad_at_start:
        tail.append(f"{cg.const(torch, 'torch')}._C._set_grad_enabled({grad_at_end})")
    tail += after
    record.trace_s = time.perf_counter() - t0
    forced = gb.specialized_marks()
    if forced:
        raise ConstraintViolation(f"bytegraph: a dimension marked dynamic ({', '.join(sorted(forced))}) "
                                  f"was specialized to a constant while tracing {fn.__qualname__} "
                                  f"({record.location})")
    if gb.reads:                    # values/known.py: data reads outside any op the trace made
        guard_all_roots(guards, gb)
    guard_apart(guards, gb)
    gb.forget_roots()               # the backends see no values on the placeholders' fakes
    body, graphs = _compile_graphs(tracer, gb, cg, guards, backend, backend_name, grad_at_start, record,
                                   children.graphs if children is not None else None, how)
    guards.add_shape_env(gb)        # after the backend, which may add guards of its own
    guards.attr_writes = [(v.source, n) for k, v, n, _ in tracer.side_effects.writes if k == "attr"]
    guards.has_break = stopped    # user code runs inside the entry's call
    entry = build_entry(fn, cg, guards, body + tail, "__r", name, on_guard_error)
    gb.release_real_tensors()
    entry.__bytegraph_guards__ = guards
    entry.__bytegraph_graphs__, entry.__bytegraph_codes__ = graphs, tracer.codes   # runtime/warm.py
    entry.__bytegraph_hash_dependent__ = tracer.hash_dependent or cg.hash_dependent
    record.ok = True
    record.guards = len(guards)
    counters["frames"]["ok"] += 1
    compile_metrics.append(record)
    for rec in tracer.break_records:
        _note_break(rec)
    record.breaks = list(tracer.break_records)
    log.info("compiled %s (%s): %d ops in %d graphs, %d breaks, %d guards, trace %.1f ms, "
             "backend %.1f ms", fn.__qualname__, record.location, gb.num_ops, record.graphs,
             len(record.breaks), len(guards), record.trace_s * 1e3, record.backend_s * 1e3)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("cache entry of %s:\n%s", fn.__qualname__, entry.__bytegraph_source__)
    if graph_log.isEnabledFor(logging.DEBUG):
        for g in graphs:
            graph_log.debug("graph of %s:\n%s", fn.__qualname__, g.gm.code)
    return entry, record


_logged_breaks = set()


def _note_break(rec):
    """Count a graph break; log it once per (place, reason) on `bytegraph.graph_breaks`."""
    counters["graph_break"][rec.reason] += 1
    key = (rec.location, rec.reason)
    if key not in _logged_breaks:
        _logged_breaks.add(key)
        break_log.info("graph break: %s", rec)


def _example(node):
    """A real tensor with the metadata of an intermediate a later graph takes as input (its
    values do not exist at compile time; backends only need the metadata). Symbolic sizes
    take their trace-time values, read without adding guards."""
    fake = node.meta["example_value"]
    if not isinstance(fake, torch.Tensor):
        return fake
    t = torch.empty_strided([hint(s) for s in fake.shape], [hint(s) for s in fake.stride()],
                            dtype=fake.dtype, device=fake.device)
    return t.requires_grad_(fake.requires_grad) if fake.requires_grad else t


def _static_examples(gb, seg, examples):
    """Fill in real stand-ins for a static graph's intermediate inputs (the None entries). False
    when the stand-ins cannot be trusted: an intermediate shares a storage with another input
    of the graph (a view of it, or two views of one tensor) and the trace writes into that
    storage. A backend that functionalizes (aot_autograd, inductor) reads aliasing from its
    example inputs and compiles for exactly that structure (which input is the `_base` of which);
    given unrelated stand-ins it compiled `x.add_(1); return v * 2` (v = x[0], from the graph
    before a break) as if v kept its old values, and views like the trace's fakes do not match
    what a compiled graph before the break hands over either. The caller then runs that graph as
    it is (its ops in eager), which is right whatever aliases."""
    fakes = [gb.placeholders[ref].meta.get("example_value") if kind == "input" else ref.meta["example_value"]
             for kind, ref in seg.inputs]
    seen, risky = {}, False
    for i, fake in enumerate(fakes):
        if examples[i] is None:
            examples[i] = _example(seg.inputs[i][1])
        if isinstance(fake, torch.Tensor):
            key = _storage_key(fake)
            other = seen.setdefault(key, i)
            if other != i and "node" in (seg.inputs[i][0], seg.inputs[other][0]) \
                    and key in gb.mutated_storages:
                risky = True
    return not risky


def _forget_source_when_freed(gm):
    """torch.fx registers each GraphModule's generated source in linecache and in its loader's
    eval cache, and never removes it: a small leak per graph that never ends in a process that
    keeps compiling. Remove both when the GraphModule is freed."""
    forward = getattr(type(gm), "forward", None) if gm is not None else None
    key = getattr(getattr(forward, "__code__", None), "co_filename", "")
    if key.startswith("<eval_with_key>"):
        weakref.finalize(gm, _forget_source, key)


def _forget_source(key):
    import linecache
    linecache.cache.pop(key, None)
    try:
        from torch.fx.graph_module import _loader
        _loader.eval_cache.pop(key, None)
    except (ImportError, AttributeError):
        pass


def _drop_unused_size_reads(gb, cuts, used):
    """Symbolic-size nodes nothing reads (`x.shape` reads every dim; a branch on `n > 2` is a
    guard, not graph work): removed, so backends see only the work."""
    from ..values.symbolic import SYM_TYPES
    for node in reversed(list(gb.graph.nodes)):
        if node.op != "placeholder" and not node.users and node not in cuts and node not in used \
                and node.meta.get("counts") is False and isinstance(node.meta.get("example_value"), SYM_TYPES):
            gb.graph.erase_node(node)


def _family_key(gm, example_inputs, grad, gb, key):
    """The key of a graph across the traces of its family, and, for a symbolic graph, (its
    symbols, the ShapeEnv's facts about them) to check again after the backend ran; (None, None)
    when it is not shared. A static trace's graph: its own key. A symbolic trace's graph: by
    graph_reuse.family_key, its sizes as expressions and what this trace's ShapeEnv knows of
    them; one that mentions no symbol at all (no symbolic size anywhere in it) is static and
    keyed as a static trace's graph is."""
    if not gb.symbols:
        return key, None
    found = family_key(gm, example_inputs, grad, gb.shape_env)
    if found is None:
        return None, None
    fkey, (symbols, rename) = found
    if not symbols:
        return same_graph_key(gm, example_inputs, grad, False), None
    return fkey, (symbols, fkey[-1], rename)


def _compile_graphs(tracer, gb, cg, guards, backend, backend_name, grad_at_start, record, family=None,
                    rerun=None):
    """Cut the trace's graph at its breaks, compile each piece, and return the entry body
    (graph calls interleaved with the breaks' Python code) and a GraphInfo per graph. A piece
    the same as one compiled before (runtime/graph_reuse.py) reuses it: from this trace, or from
    `family` (the graphs of the compiled function and its resume functions; a symbolic graph by
    graph_reuse.family_key, its sizes and what this trace's ShapeEnv knows of them). `rerun`
    (runtime/rerun.py plan): the entry reruns its unit when one of its first graphs raises
    (run before anything observable the entry does)."""
    if gb.symbols:
        _drop_unused_size_reads(gb, {cut for cut, _ in tracer.splits}, cg.used_nodes)
    segments = partition(gb, [cut for cut, _ in tracer.splits], cg.used_nodes)
    modes = [grad_at_start] + [mode for _, mode in tracer.splits]
    calls, graphs = {}, []
    compiled_here, regions = {}, 0         # graphs of this trace already compiled, by same_graph_key
    for k, seg in enumerate(segments):
        if seg is None:
            continue
        py = as_python(seg, lambda i: gb.inputs[seg.inputs[i][1]][0].expr(cg) if seg.inputs[i][0] == "input"
                       else f"__g_{seg.inputs[i][1].name}", lambda f: cg.const(f, "symop"))
        if py is not None:          # sizes only: Python, not a graph (graph/segments.py)
            calls[k] = py
            continue
        gm = torch.fx.GraphModule(torch.nn.Module(), seg.graph)
        if gb.symbols:          # a backend that traces again finds the symbols' fake mode
            gm.meta["bytegraph_fake_mode"] = gb.fake_mode
        _forget_source_when_freed(gm)
        # a symbolic graph's intermediates are passed as their fakes: a real stand-in would
        # have concrete sizes, which a backend that traces again would bake in
        example_inputs = [gb.inputs[ref][1] if kind == "input" else
                          ref.meta["example_value"] if gb.symbols else None
                          for kind, ref in seg.inputs]
        seg_backend = backend
        if backend is not eager_backend and any(isinstance(x, torch.Tensor) and (x.is_neg() or x.is_conj())
                                                for x in example_inputs):
            # a compiled graph reads the memory of a negative / conjugate view as if the bit were
            # not set (inductor returned `x * 2` of `z.conj().imag` with the wrong sign; so does
            # torch.compile); GuardSet.add_graph_state guards the bits
            log.info("graph %d of %s runs uncompiled: an input is a negative or conjugate view", k,
                     record.location)
            seg_backend = eager_backend
            counters["stats"]["graphs_uncompiled"] += 1
        if not gb.symbols and not _static_examples(gb, seg, example_inputs):
            # the backend would compile it for inputs that do not alias as these will
            log.info("graph %d of %s runs uncompiled: an input it takes from the graph before "
                     "shares storage with another, and the trace writes into it", k, record.location)
            if seg_backend is backend:
                counters["stats"]["graphs_uncompiled"] += 1
            seg_backend = eager_backend
        key = same_graph_key(gm, example_inputs, modes[k], bool(gb.symbols)) if seg_backend is backend else None
        info = fkey = facts = None
        if key is not None:
            info = compiled_here.get(key)
            if family is not None:
                fkey, facts = _family_key(gm, example_inputs, modes[k], gb, key)
            if info is None and fkey is not None:
                info = family.get(fkey)
                if info is not None:
                    compiled_here[key] = info
                    graphs.append(info)
        regions += 1
        if info is not None:
            compiled = info.compiled
            counters["stats"]["graphs_reused"] += 1
        else:
            t1 = time.perf_counter()
            try:
                with torch.set_grad_enabled(modes[k]), compiling(gm):
                    compiled = seg_backend(gm, example_inputs)
            except Exception as e:
                raise BackendCompilerFailed(backend_name, e) from e
            record.backend_s += time.perf_counter() - t1
            if not callable(compiled):
                raise BackendCompilerFailed(backend_name, TypeError(
                    f"backend returned {type(compiled).__name__}, expected a callable"))
            info = GraphInfo(compiled, gm, example_inputs, modes[k], bool(gb.symbols))
            if key is not None:
                compiled_here[key] = info
                if fkey is not None and (facts is None or shape_facts(gb.shape_env, facts[0], facts[2]) == facts[1]):
                    family[fkey] = info         # (a symbolic graph: the backend assumed nothing more)
            graphs.append(info)
            counters["stats"]["unique_graphs"] += 1
        args = ", ".join(gb.inputs[ref][0].expr(cg) if kind == "input" else f"__g_{ref.name}"
                         for kind, ref in seg.inputs)
        via = restoring_call(gm, exact=rerun is not None and k < rerun[1])
        call = f"{cg.const(compiled, 'graph')}({args})" if via is None else \
            f"{cg.const(via, 'restoring')}({cg.const(compiled, 'graph')}{', ' if args else ''}{args})"
        if seg.outputs:
            call = "".join(f"__g_{n.name}, " for n in seg.outputs) + "= " + call
        calls[k] = call
        counters["stats"]["calls_captured"] += seg.num_ops
    if graphs:
        guards.add_graph_state(gb.device_types(), backend is not eager_backend)
    record.graphs = len(graphs)
    record.ops = gb.num_ops
    record.graph = graphs[0].gm if regions == 1 else None
    body, covered = [], 0
    for item in tracer.body + [("graph", len(tracer.splits))]:
        if type(item) is tuple:
            if item[1] in calls:
                body.append(calls[item[1]])
            if rerun is not None and item[1] < rerun[1]:
                covered = len(body)
        else:
            body.append(item)
    if covered:
        # the first graphs run before anything observable the entry does (the breaks between
        # them run pure Python): when one raises, the unit runs again (runtime/rerun.py)
        body[:covered] = _rerun.wrap(cg, body[:covered], rerun[0])
    return body, graphs


class _TraceStopped(Exception):
    def __init__(self, exc, entry, record):
        self.exc = exc
        self.entry = entry
        self.record = record


def first_failing_guard(entry, args, kwargs):
    """Name the first guard of `entry` that fails for this call (slow path, for messages)."""
    gs = getattr(entry, "__bytegraph_guards__", None)
    if gs is None:
        return "?"
    try:
        bound = bind_call(entry, args, kwargs)
    except TypeError:
        return "the call's arguments no longer bind the same way"
    ns = dict(gs.cg.namespace)
    ns.update(bound)
    for g in gs.guards:
        try:
            ok = eval(g.code, ns)
        except Exception as e:
            return f"{g.source_desc}: {g.kind} guard raised {type(e).__name__}"
        if not ok:
            return describe_failure(g, ns)
    return "none (all guards pass)"


