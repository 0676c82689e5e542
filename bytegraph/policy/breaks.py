"""Graph breaks that keep the trace going: run one call in Python between two graphs.

Some calls cannot go into a graph but do not stop the trace either, because what the
rest of the function does does not depend on what they do: `print`, an explicit
`graph_break()`, and reading a tensor's values (`.item()`, `.tolist()`, `.numpy()`)
when the result only travels (printed, stored, returned). At such a call the tracer
ends the current graph (a cut after the newest node), and appends to the entry's body,
in program order:

1. the call's arguments, evaluated into a temporary (before anything is written back);
2. the side effects logged so far, replayed (so the call sees the state eager would);
3. the grad mode of this point of the program, if the trace ever changed it;
4. the call itself; its result is an `Opaque` value named by a local of the entry.

Tracing then continues into the next graph. A value the Python code produced is opaque
to the trace: using it in any way that needs its value (a branch, arithmetic, a tensor
op) stops the trace with kind "opaque", naming the instruction that produced it, so the
converter can split there with a resume function instead (runtime/convert.py).

Objects the trace created and that the Python code received become real objects at the
break; from then on they are caller-world objects (mutations are replayed on them), or,
where the value family cannot follow that (instances of user classes), frozen: mutating
one later stops the trace.
"""
import linecache

import torch

from ..exc import Unsupported
from ..side_effects import SideEffects
from ..sources import Source, TempSource
from ..values.base import NONE, ConstValue, Value, register_wrapper, wrap
from ..values.tensor import TensorValue
from ..values.opaque import Opaque, producer_chain
from ..values.containers import BaseSeq, DictValue
from ..values.functions import CellValue


class BreakRecord:
    """One graph break, as explain() reports it."""

    def __init__(self, reason, filename, lineno, stack, hint=""):
        self.reason = reason
        self.filename = filename
        self.lineno = lineno
        self.line = linecache.getline(filename, lineno).strip() if lineno else ""
        self.stack = stack            # "qualname at file:line", outermost first
        self.hint = hint

    @property
    def location(self):
        return f"{self.filename}:{self.lineno}"

    def __str__(self):
        s = f"{self.reason}\n    at {self.location}"
        if self.line:
            s += f": {self.line}"
        if len(self.stack) > 1:
            s += "\n    inlined call stack (outermost first):\n      " + "\n      ".join(self.stack)
        if self.hint:
            s += f"\n    hint: {self.hint}"
        return s

    __repr__ = __str__


def frame_stack(tx):
    """(filename, line, ["qualname at file:line" outermost first]) of the tracer's frames."""
    frames = []
    f = tx.frame
    while f is not None:
        frames.append(f)
        f = f.parent
    frames.reverse()
    stack = [f"{f.qualname} at {f.location()}" for f in frames]
    inner = frames[-1] if frames else None
    if inner is None:
        return "?", 0, stack
    line = inner.line()
    return inner.code.co_filename, line, stack


def record_break(tx, reason, hint=""):
    filename, line, stack = frame_stack(tx)
    rec = BreakRecord(reason, filename, line, stack, hint)
    tx.break_records.append(rec)
    return rec


def _printable(v, depth=0):
    """Can print() show v without running user code (whose effects the trace would miss)?"""
    if depth > 4:
        return False
    if isinstance(v, (TensorValue, Opaque)):
        return True
    if type(v) is ConstValue:
        return True
    if isinstance(v, BaseSeq) and type(v).__name__ in ("ListValue", "TupleValue") and \
            getattr(v, "cls", tuple) in (tuple, list):
        return all(_printable(i, depth + 1) for i in v.items)
    if isinstance(v, DictValue) and getattr(v, "cls", dict) is dict:
        return all(_printable(i, depth + 1) for i in v.items.values()) and \
            all(type(k) in (str, int) for k in v.items)
    if type(v).__name__ == "DictViewValue":
        return _printable(v.d, depth + 1)
    return False


def printable_call(args, kwargs):
    if not all(_printable(a) for a in args):
        return False
    for k, v in kwargs.items():
        if k not in ("sep", "end", "flush") or type(v) is not ConstValue:
            return False
    return True


def run_in_python(tx, fn_obj, args, kwargs, reason, hint="", opaque_desc=None):
    """Break the graph here and run fn_obj(*args, **kwargs) in Python (see module docstring).
    Returns the Opaque result (opaque_desc given) or None (the result is dropped)."""
    if not tx.allow_breaks:
        raise Unsupported(reason, kind="graph_break", hint=hint)
    if type(tx.side_effects) is not SideEffects:
        raise Unsupported(f"{reason} inside a function whose effects are being watched "
                          "(an lru_cache'd call)", kind="graph_break_watched")
    cg = tx.cg
    k = len(tx.splits)
    cg.no_bind = True
    try:
        fn = cg.const(fn_obj, getattr(fn_obj, "__name__", "fn")) if fn_obj is not None else None
        parts = [(None, cg.expr(a)) for a in args] + [(n, cg.expr(v)) for n, v in kwargs.items()]
        lines = list(cg.lines)
        cg.lines.clear()
        values, applies = tx.side_effects.replay(cg)
        tx.side_effects.clear()
    finally:
        cg.no_bind = False
    if values or applies:
        # the arguments are read before the writes, as the program order has it
        for i, (n, p) in enumerate(parts):
            lines.append(f"__p{k}_{i} = {p}")
            parts[i] = (n, f"__p{k}_{i}")
    parts = [p if n is None else f"{n}={p}" for n, p in parts]
    _adopt_materialized(tx)
    # autocast regions open here: the graph so far closes them, the Python code runs inside
    # real ones (as eagerly), the next graph opens them again
    for ctx in reversed(tx.autocasts):
        ctx.exit_node(tx)
    tx.body.append(("graph", k))
    # (runtime/rerun.py: can a raise after this break still rerun the unit?)
    pure = fn_obj in PURE_CALLS and all(isinstance(a, (TensorValue, ConstValue))
                                        for a in [*args, *kwargs.values()])   # (no message callable)
    tx.split_rerun.append((pure and not values and not applies and not tx.grad_changed
                           and not tx.autocasts, tx.graph.mutates_inputs()))
    tx.splits.append((tx.graph.last_node(), torch.is_grad_enabled()))
    tx.body += lines + values + applies
    if tx.grad_changed:
        tx.body.append(f"{cg.const(torch, 'torch')}._C._set_grad_enabled({torch.is_grad_enabled()})")
    record_break(tx, reason, hint)
    call = f"{fn}({', '.join(parts)})" if fn is not None else None
    name = f"__b{k}" if opaque_desc is not None else None
    if call is not None and name is not None:
        call = f"{name} = {call}"
    if call is not None:
        tx.body += in_real_autocast(tx, [call])
    for ctx in tx.autocasts:
        ctx.enter_node(tx)
    if opaque_desc is None:
        return None
    out = Opaque(name, opaque_desc, producer_chain(tx), scalar=opaque_desc == "Tensor.item()")
    if out.scalar and isinstance(args[0], TensorValue):     # what item() gives, by the dtype
        dt = args[0].fake.dtype
        out.pytype = bool if dt == torch.bool else float if dt.is_floating_point else \
            complex if dt.is_complex else int
    return out


# calls a keep-going break may run whose only effect is their result (or their exception), given
# tensors and constants: a rerun of the unit that makes them again is not observable
PURE_CALLS = frozenset({None, torch.Tensor.item, torch.Tensor.tolist, torch._check_tensor_all,
                        torch._check_tensor_all_with})


def split_only(tx, reason, hint=""):
    """An explicit graph_break(): cut the graph, run nothing."""
    run_in_python(tx, None, [], {}, reason, hint)
    return NONE


def graph_break():
    """Split the graph here (a no-op when run eagerly), like torch._dynamo.graph_break()."""
    return None


def _graph_break_override(tx, fn_value, args, kwargs):
    if args or kwargs:
        raise Unsupported("graph_break() takes no arguments", kind="call")
    return split_only(tx, "explicit graph_break()", "remove the graph_break() call to fuse "
                                                    "the graphs around it")


_READ_HINT = "the value leaves the graph; keep it as a tensor (or use torch.where) to stay in one graph"


def tensor_read(tx, tensor, name, args, kwargs):
    """t.item() / t.tolist() / t.numpy(): run in Python at a graph break; the result is
    opaque to the rest of the trace."""
    method = getattr(torch.Tensor, name)
    return run_in_python(tx, method, [tensor] + list(args), kwargs, f"Tensor.{name}() reads tensor data",
                         _READ_HINT, opaque_desc=f"Tensor.{name}()")


class GradRestore:
    """The real context manager a resume function gets in place of a `with torch.no_grad()`
    (enable_grad, set_grad_enabled) a graph break stopped inside: its __exit__ restores the
    grad mode from before the with statement (modelled by the tracer, see _grad_restore_exit)."""

    def __init__(self, prev):
        self.prev = prev

    def __exit__(self, *exc):
        torch._C._set_grad_enabled(self.prev)
        return False


class AutocastResume(torch.autocast):
    """An autocast region a graph break stopped inside, handed to the resume function not
    entered: its prologue enters it (BEFORE_WITH, bytecode/resume.py), so the with-block goes
    on inside it, in the graph (the tracer models it as the autocast it is) and eagerly."""

    def __init__(self, args):
        device_type, dtype, enabled, cache = args
        super().__init__(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache)
        self.args = args


def _wrap_autocast_resume(tx, obj, source):
    from .calls import AutocastCtx
    tx.guards.add_type(source, AutocastResume)
    tx.guards.add_code(f"{source.expr(tx.cg)}.args == {tx.cg.const(obj.args, 'autocast_args')}", source,
                       "autocast_args", obj.args)
    return AutocastCtx(obj.args)


register_wrapper(AutocastResume)(_wrap_autocast_resume)


def exit_of_modelled(ctx, cg):
    """Expression for the real __exit__ of a context manager the tracer models (for an
    autocast region: the region itself, entered again by the resume function), or refuse."""
    from .calls import GradModeCtx, AutocastCtx, GenCtxValue
    if type(ctx) is GenCtxValue and ctx.func is not None:      # its generator's state (GeneratorHandoff)
        from ..runtime.resume import handoff
        return handoff(ctx, cg)
    if type(ctx) is GradModeCtx:
        return f"{cg.const(GradRestore, 'GradRestore')}({ctx.prev!r}).__exit__"
    if type(ctx) is AutocastCtx:
        return f"{cg.const(AutocastResume, 'AutocastResume')}({cg.const(ctx.args, 'autocast_args')})"
    raise Unsupported(f"a graph break that stops the trace inside a with-block over {ctx}",
                      kind="graph_break_with")


def in_real_autocast(tx, lines):
    """`lines` run inside real autocast regions, one per region the trace has open (the
    graph before them closed those; see run_in_python)."""
    if not tx.autocasts:
        return lines
    cg = tx.cg
    enter = cg.const(torch.amp.autocast_mode._enter_autocast, "enter_autocast")
    leave = cg.const(torch.amp.autocast_mode._exit_autocast, "exit_autocast")
    k = len(tx.splits)
    out = [f"__ac{k}_{i} = {enter}(*{cg.const(ctx.args, 'autocast_args')})" for i, ctx in enumerate(tx.autocasts)]
    out += ["try:", *("    " + x for x in lines), "finally:"]
    out += [f"    {leave}(__ac{k}_{i})" for i in reversed(range(len(tx.autocasts)))]
    return out


def _grad_restore_exit(tx, fn_value, args, kwargs):
    from .calls import GradModeCtx
    prev = args[0].getattr(tx, "prev").as_python()
    GradModeCtx(prev).enter(tx)
    return ConstValue(False)


def _tensor_check(position):
    """torch._check_tensor_all(cond, message) / _check_tensor_all_with(error_type, cond, message)
    on a tensor the graph computes: the check reads the tensor's values, so it runs in Python
    between two graphs (raising there as eagerly), and the trace goes on after it: a split,
    not a stop (transformers' `torch_compilable_check` with a tensor condition). A condition
    that is not a tensor inlines the function as it is."""
    def override(tx, fn_value, args, kwargs):
        fn = fn_value.fn
        cond = args[position] if len(args) > position else kwargs.get("cond")
        if not isinstance(cond, TensorValue):
            return fn_value.inline_call(tx, args, kwargs)
        if _in_graph(tx, args, kwargs, position, cond):
            return NONE
        run_in_python(tx, fn, args, kwargs, f"torch.{fn.__name__}() reads the condition tensor",
                      "the check needs the tensor's values; it runs between two graphs")
        return NONE
    return override


def _in_graph(tx, args, kwargs, position, cond):
    """With no message (transformers passes none while tracing) and a builtin exception class,
    the check is a node of the graph (policy/checks.py check_all): no split."""
    from .checks import check_all
    if set(kwargs) - {"cond", "message", "error_type"} or len(args) > position + 2:
        return False
    message = args[position + 1] if len(args) > position + 1 else kwargs.get("message")
    if message is not None and not (isinstance(message, ConstValue) and message.value is None):
        return False
    exc = RuntimeError
    if position:
        kind = args[0] if args else kwargs.get("error_type")
        if kind is None or not kind.is_const():
            return False
        exc = kind.as_python()
        if not isinstance(exc, type):
            return False
    return check_all(tx, cond, exc)


# torch's own checks are Python functions over a tensor's values (see _tensor_check)
TENSOR_CHECKS = {torch._check_tensor_all: _tensor_check(0), torch._check_tensor_all_with: _tensor_check(1)}

OVERRIDES = {graph_break: _graph_break_override, GradRestore.__exit__: _grad_restore_exit,
             **TENSOR_CHECKS}


def _adopt_materialized(tx):
    """Objects the trace made and the Python code just received now exist for real, in entry
    locals: later mutations must be replayed on them (or, if their family cannot log
    mutations, stop the trace)."""
    cg = tx.cg
    for vid, name in list(cg._temps.items()):
        if vid in tx.adopted:
            continue
        value = cg.temp_values.get(vid)
        if value is None:
            continue
        tx.adopted.add(vid)
        if hasattr(value, "mutate") or type(value) is CellValue:   # writes logged on a source
            value.source = TempSource(name)
        else:
            _freeze(value)


# What changes a value whose family cannot log its changes on a real object (an iterator's
# steps, a new instance's attributes, a bytearray's methods): refused once Python code holds the
# real one, so the trace stops there and the change runs in Python on that object (it was lost:
# the trace changed its own value, the real object kept the state of the break)
_FREEZE = ("next", "unpack", "setattr", "delattr", "call_method")


def _freeze(value):
    value.frozen_by_break = True
    for name in _FREEZE:
        if callable(getattr(type(value), name, None)) and getattr(type(value), name) is not getattr(Value, name, None):
            setattr(value, name, _refuse_change(value, name))
    from ..values.objects import NewObjectValue       # (values.objects imports policy: lazily)
    if type(value) is NewObjectValue:
        value.getattr = _refuse_dict_view(value, value.getattr)
    items = getattr(value, "dict_items", None)       # a dict subclass's items (a Counter's)
    if items is not None and hasattr(items, "mutate"):
        items.mutate = _refuse_change(value, "item assignment")


def _refuse_change(value, name):
    def refuse(*args, **kwargs):
        raise Unsupported(f"changing {value!r} ({name}), which Python code received at a graph break",
                          kind="frozen_by_break")
    return refuse


def _refuse_dict_view(value, getattr_):
    def checked(tx, name):
        if name == "__dict__":            # a live view: writes through it change the instance
            _refuse_change(value, "__dict__")()
        return getattr_(tx, name)
    return checked


# -- loops whose body stops the trace: one step per entry ----------------------------------

_TUPLE_ITER = type(iter(()))


def _has_next(it):
    """Would next() on this tuple iterator give an item (read through __reduce__, no step)?"""
    r = it.__reduce__()
    return len(r) == 3 and r[2] < len(r[1][0])


def _peek(it):
    """The item next() on this tuple iterator would give, without stepping it."""
    r = it.__reduce__()
    return r[1][0][r[2]]


class PeekSource(Source):
    """_peek(base): the next item of a stepped loop's iterator (LoopIterParam). Bound once, by
    the guards that first render it, so later uses in the entry see that item even after the
    replay stepped the iterator."""
    __slots__ = ("base",)

    def __init__(self, base):
        self.base = base

    def render(self, cg):
        return f"{cg.const(_peek, 'loop_peek')}({self.base.expr(cg)})"

    def name_hint(self):
        return f"next item of {self.base.name_hint()}"

    def __eq__(self, other):
        return type(other) is PeekSource and other.base == self.base

    def __hash__(self):
        return hash(("peek", self.base))


class LoopIterParam(Value):
    """The iterator of a `for` loop over a tuple of like tensors whose body stopped the trace,
    as a resume function receives it (runtime/resume.py: a parameter in
    `__bytegraph_loop_iters__`). The trace does not unroll what is left: it takes one step
    (guarded on there being a next item and on that item, read through __reduce__, not on the
    position; the step is replayed as `next(it)`), and the loop's next FOR_ITER on it stops the
    trace there, so `next()` runs in the entry and every iteration resumes the same resume
    function (one compiled unit per loop position, shared by every iteration, instead of a
    resume level per iteration)."""

    def __init__(self, tx, obj, source):
        self.tx = tx
        self.obj = obj
        self.source = source
        self.stepped = False

    def python_type(self):
        return type(self.obj)

    def next(self):
        if self.stepped:
            raise Unsupported("a step of a loop whose body stops the trace (runs in Python; the body "
                              "resumes in the same compiled unit every iteration)", kind="loop_step")
        self.stepped = True
        tx, src = self.tx, self.source
        has = tx.cg.const(_has_next, "loop_has_next")
        if not _has_next(self.obj):
            tx.guards.add_code(f"not {has}({src.expr(tx.cg)})", src, "loop_done")
            return None
        tx.guards.add_code(f"{has}({src.expr(tx.cg)})", src, "loop_has_next")
        item = wrap(tx, _peek(self.obj), PeekSource(src))
        tx.side_effects.mutated(self)
        return item

    def replay(self, cg, target, temp):
        return f"next({target})"         # the step the trace took (not sticky: replayed once)

    def unpack(self, tx):
        raise Unsupported("unpacking a loop's iterator whose body stops the trace", kind="loop_step")

    def __repr__(self):
        return f"LoopIterParam({self.source})"


def loop_step_iter(v):
    """Is `v` a loop iterator a stop hands on as a LoopIterParam: one already, or the iterator
    GET_ITER made over a tuple (only the loop's stack holds it) whose items left are tensors
    that would pass one another's tensor guards (type, dtype, device, sizes, strides, storage
    offset, requires_grad: else each iteration's resume entry would miss and recompile anyway).
    Rows of one tensor (`for row in t.nonzero()`, views with a size-1 dimension) are compared
    without their offset: under automatic dynamic their iterator is marked `from_tuple` and the
    next row gets a symbolic offset (docs/graph_breaks.md "Rows of one tensor, stepped")."""
    if type(v) is LoopIterParam:
        return True
    from ..values.containers import IteratorValue
    if type(v) is not IteratorValue or not getattr(v, "from_tuple", False):
        return False
    items = v.items[v.pos:]
    if not items or not all(type(i) is TensorValue for i in items):
        return False
    rows = getattr(v, "rows", False)
    return len({_guard_meta(i.fake, rows) for i in items}) == 1


def _guard_meta(fake, rows=False):
    """What a tensor guard compares (symbolic sizes by their expression). A row of a tensor (a
    view with a size-1 dimension: `for row in t.nonzero()`) is compared without its storage
    offset: the resume function's trace gives the next row a symbolic offset (and strides;
    runtime/dynamic.py `layout_free`), so one entry takes every row: `rows`, under automatic
    dynamic only (symbolic/handlers_control.py `_rows_stepped`)."""
    row = rows and fake._is_view() and 1 in fake.shape and fake.layout is torch.strided
    return (type(fake), fake.dtype, str(fake.device), str(tuple(fake.shape)), str(fake.stride()),
            None if row else str(fake.storage_offset()), fake.requires_grad)


def wrap_loop_iter(tx, obj, source):
    """A resume function's loop-iterator parameter (see LoopIterParam); None when the object is
    not the tuple iterator the entry made (the parameter is then wrapped as usual)."""
    if type(obj) is not _TUPLE_ITER or not tx.allow_breaks:
        return None
    tx.guards.add_type(source, _TUPLE_ITER)
    return LoopIterParam(tx, obj, source)
