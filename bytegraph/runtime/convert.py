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

import torch
import torch.fx

from .. import symbolic  # noqa: F401  (registers the opcode handlers)
from ..backends.registry import eager as eager_backend
from ..codegen.entry import Codegen, build_entry, MISS
from ..exc import Unsupported, UserError, BackendCompilerFailed
from ..graph import GraphBuilder
from ..graph.builder import NEEDS_SHAPE_ENV
from ..guards import GuardSet
from ..observe import counters, compile_metrics, CompileRecord, log, graph_log
from ..side_effects import SideEffects
from ..symbolic.interpreter import Tracer
from ..values.tensor import TensorValue
from ..values.containers import BaseSeq, DictValue, SetValue
from ..values.objects import NewObjectValue, ObjectValue, ModuleValue
from ..values.functions import CellValue

EAGER = type("EAGER", (), {"__repr__": lambda self: "<run eagerly>"})()


def bind_call(fn, args, kwargs):
    # the function's own parameters: functools.wraps copies __wrapped__, which signature()
    # would otherwise follow to the decorated function's (different) parameters
    sig = inspect.signature(fn, follow_wrapped=False)
    ba = sig.bind(*args, **kwargs)
    ba.apply_defaults()
    return dict(ba.arguments)


def _collect_outputs(value, out, seen):
    """Tensor Values (computed by the graph) reachable from `value`, in first-seen order."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, TensorValue):
        if value.node.op != "placeholder":
            out.append(value)
        return
    if isinstance(value, BaseSeq):
        for v in value.items:
            _collect_outputs(v, out, seen)
    elif isinstance(value, DictValue):
        for v in value.items.values():
            _collect_outputs(v, out, seen)
        if value.default_factory is not None:
            _collect_outputs(value.default_factory, out, seen)
    elif isinstance(value, NewObjectValue):
        for v in value.attrs.values():
            _collect_outputs(v, out, seen)
        if value.dict_items is not None:
            _collect_outputs(value.dict_items, out, seen)
    elif isinstance(value, CellValue) and value.contents is not None:
        _collect_outputs(value.contents, out, seen)


_MUTABLE_VALUES = (BaseSeq, DictValue, SetValue, ObjectValue)

def location_of(fn):
    code = getattr(fn, "__code__", None)
    if code is None:
        return "?"
    return f"{code.co_filename}:{code.co_firstlineno}"


class _TraceFailed(Exception):
    def __init__(self, exc, cg, guards):
        self.exc, self.cg, self.guards = exc, cg, guards


def _trace(fn, bound, shape_env):
    """One symbolic run of fn over the bound arguments: (cg, guards, builder, tracer, result,
    grad mode at start, grad mode at end). Unsupported asking for a ShapeEnv propagates as is;
    any other stop is wrapped with the guards gathered so far."""
    cg = Codegen()
    cg.namespace["EAGER"] = EAGER
    guards = GuardSet(cg)
    guards.add_global_state()
    if fn.__defaults__:
        guards.add_code(f"{cg.const(fn, 'fn')}.__defaults__ is __defaults", None, "defaults")
    if fn.__kwdefaults__:
        # the entry's signature bound these values when it was defined: an in-place edit of
        # __kwdefaults__ must miss, so each value is checked by identity
        kw = cg.const(fn, 'fn') + ".__kwdefaults__"
        checks = [f"{kw} is __defaults_kw", f"len({kw}) == {len(fn.__kwdefaults__)}"]
        checks += [f"{kw}[{k!r}] is {cg.const(v, 'kwdefault')}" for k, v in fn.__kwdefaults__.items()]
        guards.add_code(" and ".join(checks), None, "defaults")
    gb = GraphBuilder(shape_env=shape_env)
    tracer = Tracer(gb, cg, guards, SideEffects())
    grad_at_start = torch.is_grad_enabled()
    try:
        try:
            result = tracer.run_root(fn, bound)
            grad_at_end = torch.is_grad_enabled()
        finally:
            tracer.restore_state()
    except Unsupported as e:
        if e.kind == NEEDS_SHAPE_ENV and not shape_env:
            raise
        raise _TraceFailed(e, cg, guards)
    return cg, guards, gb, tracer, result, grad_at_start, grad_at_end


def convert(fn, args, kwargs, backend, backend_name, entry_index, on_guard_error=None):
    """Trace fn(*args, **kwargs) and return (entry function, CompileRecord). `on_guard_error`:
    see codegen.entry.build_entry."""
    record = CompileRecord(name=fn.__qualname__, location=location_of(fn))
    counters["frames"]["total"] += 1
    t0 = time.perf_counter()
    bound = bind_call(fn, args, kwargs)
    name = f"__entry_{entry_index}"
    try:
        try:
            cg, guards, gb, tracer, result, grad_at_start, grad_at_end = _trace(fn, bound, shape_env=False)
        except Unsupported as e:
            if e.kind != NEEDS_SHAPE_ENV:
                raise
            # an op with a data-dependent output size: trace again with a ShapeEnv (unbacked
            # sizes). Static traces never build one, so they never import its machinery.
            cg, guards, gb, tracer, result, grad_at_start, grad_at_end = _trace(fn, bound, shape_env=True)
    except _TraceFailed as failed:
        e, cg, guards = failed.exc, failed.cg, failed.guards
        record.trace_s = time.perf_counter() - t0
        record.reason = str(e)
        if not isinstance(e, UserError):
            counters["graph_break"][e.msg] += 1
        compile_metrics.append(record)
        entry = build_entry(fn, cg, guards.expression(), None, [], "EAGER", name, on_guard_error)
        entry.__bytegraph_guards__ = guards
        raise _TraceStopped(e, entry, record)

    if gb.mutates_inputs():
        # the graph writes into an input: two inputs that are one object would make placeholders
        # the graph (and backends) treat as independent alias each other
        guards.add_distinct([src for src, _ in gb.inputs])
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
                                    f"{cg.const(frozenset(names), 'names')})", value.source, "absent_attrs")
    for klass, names in tracer.class_absent.values():
        guards.add_code(f"{cg.const(klass, klass.__name__)}.__dict__.keys().isdisjoint("
                        f"{cg.const(frozenset(names), 'names')})", None, "class_attr_absent")
    for g, names in tracer.builtins_used.values():
        guards.add_code(f"{cg.const(g, 'G')}.keys().isdisjoint({cg.const(frozenset(names), 'names')})",
                        None, "builtins_not_shadowed")
    cg.end_guards()     # the graph and the epilogue bind strongly (codegen.entry: weak bindings)

    # graph outputs: every computed tensor the epilogue needs
    outputs, seen = [], set()
    _collect_outputs(result, outputs, seen)
    for v in tracer.side_effects.values():
        _collect_outputs(v, outputs, seen)
    graph_call_expr = None
    if gb.num_ops:
        for i, v in enumerate(outputs):
            cg.outputs[id(v)] = i
        gb.output([v.node for v in outputs])
        gm = torch.fx.GraphModule(torch.nn.Module(), gb.graph)
        example_inputs = [t for _, t in gb.inputs]
        record.trace_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        try:
            compiled = backend(gm, example_inputs)
        except Exception as e:
            raise BackendCompilerFailed(backend_name, e) from e
        record.backend_s = time.perf_counter() - t1
        if not callable(compiled):
            raise BackendCompilerFailed(backend_name, TypeError(
                f"backend returned {type(compiled).__name__}, expected a callable"))
        guards.add_graph_state(gb.device_types(), backend is not eager_backend)
        gname = cg.const(compiled, "graph")
        graph_call_expr = f"{gname}({', '.join(src.expr(cg) for src, _ in gb.inputs)})"
        counters["stats"]["unique_graphs"] += 1
        counters["stats"]["calls_captured"] += gb.num_ops
        record.graphs = 1
        record.ops = gb.num_ops
        record.graph = gm
    elif outputs:
        raise Unsupported("internal: computed tensors without graph ops", kind="internal")
    else:
        record.trace_s = time.perf_counter() - t0
    # everything the epilogue reads is evaluated before anything is written back
    ret = cg.expr(result)
    lines = cg.lines + [f"__r = {ret}"]
    cg.lines = []
    values, applies = tracer.side_effects.replay(cg)
    lines += values + applies
    if grad_at_end != grad_at_start:
        lines.append(f"{cg.const(torch, 'torch')}._C._set_grad_enabled({grad_at_end})")
    ret = "__r"
    entry = build_entry(fn, cg, guards.expression(), graph_call_expr, lines, ret, name, on_guard_error)
    entry.__bytegraph_guards__ = guards
    record.ok = True
    record.guards = len(guards)
    counters["frames"]["ok"] += 1
    compile_metrics.append(record)
    log.info("compiled %s (%s): %d ops, %d guards, trace %.1f ms, backend %.1f ms", fn.__qualname__,
             record.location, gb.num_ops, len(guards), record.trace_s * 1e3, record.backend_s * 1e3)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("cache entry of %s:\n%s", fn.__qualname__, entry.__bytegraph_source__)
    if graph_log.isEnabledFor(logging.DEBUG) and record.graphs:
        graph_log.debug("graph of %s:\n%s", fn.__qualname__, record.graph.code)
    return entry, record


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
            return f"{g.source_desc}: {g.kind} guard failed ({g.code})"
    return "none (all guards pass)"
