"""Graph breaks that stop the trace: run one instruction in Python, resume in compiled code.

When the trace meets something whose outcome the rest of the function depends on (a
branch on tensor data, a call bytegraph cannot trace and that may change anything, an
attribute or operator it cannot model), it cannot go on. The converter then traces again
up to just *before* that instruction (choose_stop: in the innermost frame from which
every frame out to the compiled one can be resumed), and ends the entry with:

1. the live stack values and locals of every active frame, evaluated into temporaries;
2. the side effects logged so far, replayed;
3. the instruction, in Python: the call (a Python callee goes through the trampoline, so
   it is compiled in its turn), the branch (`if cond:`), or one instruction as a builtin
   call (`setattr`, `operator.imul`, ...), inside a `try` routed to the handler of the
   innermost frame whose instruction sits in a try/with block;
4. `return resume(<locals>, <stack>, ...)`: the root frame's resume function (built from
   the rest of its code by bytecode/resume.py, compiled through the same runtime), which
   first calls the inner frames' resume functions, innermost first -- each such call
   covered by the caller's own try/with handler when its original call was.

What stays uncompiled: code called from inside C functions (a `sorted` key, a hook
called by torch), and the callees of the Python code run at the break that are not
themselves a call the entry makes (e.g. what `print` calls).
"""
import math
import operator
import sysconfig
import types
import weakref

import torch

from ..bytecode.decode import decode, find_handler
from ..bytecode.resume import resume_code, local_params, NULL as CODE_NULL, EXC as CODE_EXC, WITH as CODE_WITH
from ..exc import Unsupported, UserError
from ..policy.calls import _in, _disabled
from ..symbolic.table import NULL
from ..symbolic.interpreter import Lazy
from ..symbolic.handlers_control import SavedExcInfo, _ExitValue
from ..policy.calls import AutocastCtx
from ..policy.breaks import in_real_autocast, loop_step_iter
from ..values.opaque import FORMATTERS, Opaque, TEXT as _TEXT   # text: opaque in the next resume function too
from ..values.containers import IteratorValue
from ..values.known import read_candidates
from ..values.objects import ExceptionInstanceValue, ModuleValue, ObjectValue
from ..values.tensor import TensorMethodValue
from ..values.base import Value, is_trusted_module, register_wrapper

_MISSING_CAUSE = object()
_POP_JUMPS = {"POP_JUMP_FORWARD_IF_TRUE": True, "POP_JUMP_BACKWARD_IF_TRUE": True,
              "POP_JUMP_FORWARD_IF_FALSE": False, "POP_JUMP_BACKWARD_IF_FALSE": False}


def _stop_step(frame, inst, step):
    """The step to stop before when `inst` (run at `step`) is where Python takes over."""
    insts = frame.insts
    if inst.opname == "CALL" and inst.index and insts[inst.index - 1].opname == "PRECALL":
        return step - 1
    if inst.opname == "CALL_FUNCTION_EX" or inst.opname in _ONE_STEP or inst.opname in _POP_JUMPS:
        return step
    return None


# Instructions a stop can run alone in Python (besides calls and branches), as a call of a
# builtin: opname -> (values they pop, (inst, popped) -> (function, operands, what they
# push: "v" a value, "n" NULL)). A string operand is a literal. LOAD_METHOD runs as
# LOAD_ATTR does (NULL, then the attribute), which the CALL after it treats alike.
_ONE_STEP = {
    "LOAD_ATTR": (1, lambda i, s: (getattr, [s[0], i.argval], ("v",))),
    "LOAD_METHOD": (1, lambda i, s: (getattr, [s[0], i.argval], ("n", "v"))),
    "STORE_ATTR": (2, lambda i, s: (setattr, [s[1], i.argval, s[0]], ())),
    "BINARY_OP": (2, lambda i, s: (i.argval, s, ("v",))),           # operator.add, operator.iadd...
    "COMPARE_OP": (2, lambda i, s: (i.argval, s, ("v",))),
    "BINARY_SUBSCR": (2, lambda i, s: (operator.getitem, s, ("v",))),
    "STORE_SUBSCR": (3, lambda i, s: (operator.setitem, [s[1], s[2], s[0]], ())),
    # a with-statement over a context manager whose __enter__ the trace cannot run (a
    # generator-based one it did not make: its generator is real): entered in Python, the
    # with-block resumes in compiled code with the real bound __exit__ on its stack
    "BEFORE_WITH": (1, lambda i, s: (enter_with, s, ("v", "v"))),
    # an f-string field the trace cannot format (a tensor's value): formatted in Python, the
    # rest of the f-string and the code after it resume with the real string
    "FORMAT_VALUE": (lambda i: 2 if i.arg & 4 else 1, lambda i, s: (FORMATTERS[i.arg & 3], s, ("v",))),
    # an exception leaving the compiled function (no frame of the trace handles it): the graph
    # before it runs, then Python raises it (raise_stop); nothing resumes after
    "RAISE_VARARGS": (lambda i: i.arg, lambda i, s: (raise_exception, s, ())),
    "RERAISE": (1, lambda i, s: (reraise, s, ())),
}


def raise_exception(exc, cause=_MISSING_CAUSE):
    """RAISE_VARARGS 1 / 2 in Python: `raise exc` / `raise exc from cause`."""
    if cause is _MISSING_CAUSE:
        raise exc
    raise exc from cause


def reraise(exc):
    """RERAISE in Python: raises `exc` again leaving its __context__ as it was (CPython's RERAISE
    restores the exception; a `raise` statement would chain the exception being handled)."""
    context, suppress = exc.__context__, exc.__suppress_context__
    try:
        raise exc
    finally:
        exc.__context__, exc.__suppress_context__ = context, suppress


_RAISES = (raise_exception, reraise)


def raise_stop(exc):
    """Is the trace's failure a user exception a raise statement (or a handler's re-raise) sent
    out of every frame of the trace after tensor work? The converter then stops before that
    instruction: the graph so far runs and Python raises it, as eagerly, instead of the whole
    call running eagerly (with no tensor work before it, it still does). Not a bare `raise` (the exception being handled is the trace's), and not an error
    a tensor op raised on fake tensors."""
    frames = getattr(exc, "frames", None)
    if not isinstance(exc, UserError) or getattr(exc, "from_graph", False) or not frames:
        return False
    if not getattr(exc, "graph_ops", 0):
        return False              # no tensor work before it: the call runs eagerly ("user_error")
    inst = frames[0].inst
    return inst is not None and (inst.opname == "RERAISE" or inst.opname == "RAISE_VARARGS" and inst.arg >= 1)


def _special(mgr, name):
    """type(mgr).<name> bound to mgr, as CPython looks special methods up (on the type, then
    its __get__), or None."""
    cls = type(mgr)
    for klass in cls.__mro__:
        if name in klass.__dict__:
            attr = klass.__dict__[name]
            get = getattr(type(attr), "__get__", None)
            return attr if get is None else get(attr, mgr, cls)
    return None


def enter_with(mgr):
    """BEFORE_WITH in Python: (the bound __exit__, what __enter__ returned), with CPython
    3.11's errors when either is missing."""
    enter = _special(mgr, "__enter__")
    if enter is None:
        raise TypeError(f"{type(mgr).__name__!r} object does not support the context manager protocol")
    exit_ = _special(mgr, "__exit__")
    if exit_ is None:
        raise TypeError(f"{type(mgr).__name__!r} object does not support the context manager "
                        f"protocol (missed __exit__ method)")
    return exit_, enter()


def is_read_stop(exc, tracer):
    """Is the trace's stop a read stop (values/known.py): before the call whose int list holds a
    tensor to read, in the innermost frame where the trace refused it? (A stop moved out to a
    call further out runs that call in Python as any stop does; so does one whose stack holds
    nothing to read, which would resume at the same refusal.)"""
    frames = getattr(exc, "frames", None)
    if exc.kind != "read_values" or not frames:
        return False
    f = frames[0]
    if f.inst is None or f.inst.opname != "CALL" or _stop_step(f, f.inst, f.step) != tracer.stop_at:
        return False
    # Not inside a try or with block (of any frame out to the root): the op would then run in a
    # graph, and an error it raises only on real values (a zero size) would not reach the
    # handler, which a stop's Python call does (break_tail's `guarded`)
    g = tracer.stopped
    while g is not None:
        if find_handler(g.code, g.insts[g.ip].offset if g is tracer.stopped else g.inst.offset) is not None:
            return False
        g = g.parent
    return bool(read_candidates(tracer, tracer.stopped.stack))


def _resumable(frame):
    """Can a resume function be made from this frame's code and state (and is it worth it)?"""
    if frame.is_generator or _long_comprehension(frame):
        return False
    # (other free variables are parameters of the resume function, their cells passed in, made
    # once by the entry when the trace made them: a comprehension over the function's locals)
    cell = frame.cells.get("__class__")
    return "__class__" not in frame.code.co_freevars or getattr(cell, "real", None) is not None


def _long_comprehension(frame):
    """A comprehension (a function of its one iterator, `.0`) whose loop has many items: resuming
    inside it makes a resume function and a graph per item that stops, so the stop moves out to
    the comprehension's call, which runs it in Python (the trampoline does not compile a `.0`
    function) -- what every comprehension that stops did before session 13."""
    code = frame.code
    return code.co_argcount == 1 and code.co_varnames[0] == ".0" and \
        any(isinstance(v, IteratorValue) and _length(v) >= _SPLIT_MIN_ITEMS for v in frame.stack)


# Refusals at an attribute load that a stop there cannot help: the attribute itself is what
# the trace cannot hold (a tensor's `backward`, `register_hook`, `data_ptr`: the resume
# function would get the real bound method and trace into it)
_NO_ATTR_STOP = frozenset({"tensor_method"})


def choose_stop(chain, kind=None, tried=()):
    """`chain`: (frame, instruction, step) from the innermost frame out, as a trace stopped
    (`kind`: the refusal's kind).
    The step to stop before: the innermost frame whose instruction can run in Python and
    from which every frame out to the root can be resumed (each was inlined for exactly its
    parent's call); else None. A try/with block around the instruction or around a call on
    the way out is kept: see break_tail. Steps in `tried` (stops that could not be resumed
    from) are passed over, for one further out."""
    _note_repeat_stop(chain)
    for d, (frame, inst, step) in enumerate(chain):
        if is_trusted_module(frame.globals.get("__name__")) and d < len(chain) - 1:
            continue           # inside library code (logging, torch): run the user's call to it
        outer = chain[d:]
        if not all(_resumable(f) for f, _, _ in outer):
            continue
        if any(not f.direct for f, _, _ in outer[:-1]):
            continue
        if d == 0 and kind in _NO_ATTR_STOP and inst.opname in ("LOAD_ATTR", "LOAD_METHOD"):
            continue
        if d < len(chain) - 1 and (_split_at_call(frame, chain[d + 1:])
                                   or _split_at_module_call(frame, chain)):
            continue
        stop = step if inst.opname == "FOR_ITER" and kind == "loop_step" else _stop_step(frame, inst, step)
        if stop is not None and stop not in tried:
            return stop
    return None


# Resuming inside costs about one graph per iteration; the split, about the callee's
# regions (per argument variant) plus the parent's: ~6 for one break. Split from this many.
_SPLIT_MIN_ITEMS = 6


def _length(it):
    """Items of the loop's iterator in all (0 when unknown: a generator), the same at every
    resume level of the loop (the decision must not change half way through it)."""
    try:
        return getattr(it, "start", 0) + len(it.items)
    except (AttributeError, TypeError):
        return 0


# Plain functions that stopped the trace again after resuming inside them (a second stop in
# one call: hf/encodec's `_pad1d` stops at max(), at an `if` and at a pad): where a loop further
# out calls them once per iteration, resuming inside costs a graph per region per call, and the
# split below pays from the next call on. One stop per call (hf/mimi's `_pad1d`) resumes inside:
# one graph per call either way, and the split would add the helper's own graphs.
_REPEAT_STOPS = weakref.WeakSet()


def _note_repeat_stop(chain):
    frame = chain[0][0]
    origin = _origin(frame.code)
    if origin is not None and len(chain) > 1:
        _REPEAT_STOPS.add(origin[0])


def _split_at_call(frame, outer):
    """Stop at the parent's call instead of inside `frame` (the callee then runs as its own
    compiled unit, through the trampoline)? Only where resuming inside gives more graphs:
    the call happens in every iteration of a `for` loop (its iterator is on the stack of
    the parent, or of a frame further out for a callee that stops more than once per call:
    `_REPEAT_STOPS`; `outer`: the frames from the parent out), where
    resuming level after level makes one graph (and one compile) per iteration while the
    callee's own unit is compiled once and reused for every call -- when enough iterations
    are left for that to pay. The callee must be a plain function that
    unit can serve (not a closure, not a method of a module: the unit would guard on the
    module's identity and recompile per layer)."""
    def long_loop(f):
        return any(_length(v) >= _SPLIT_MIN_ITEMS for v in f.stack if isinstance(v, IteratorValue))
    if not (long_loop(outer[0][0]) or frame.code in _REPEAT_STOPS and any(long_loop(f) for f, _, _ in outer)):
        return False
    if frame.code.co_freevars or frame.code.co_cellvars or frame.is_generator or not frame.direct:
        return False
    if is_trusted_module(frame.globals.get("__name__")):
        return False
    first = frame.locals.get(frame.code.co_varnames[0]) if frame.code.co_argcount else None
    return not isinstance(first, (ModuleValue, ObjectValue))


# Functions compiled on a caller's behalf whose traces guard the nn.Modules passed in as
# arguments by type and by what they read, not by identity (values/objects.py: wrap_module), so
# one compiled unit serves every instance of a layer: module methods the trampoline compiles,
# and the resume functions of their traces (and of those resume functions' traces).
STRUCTURAL = weakref.WeakSet()


def _split_at_module_call(frame, chain):
    """Stop at the parent's call of a module method instead of inside it, when the module's
    class has other instances with the same tree of types in the tree of the outermost module
    of the trace (the layers of a model): the method then runs as its own compiled unit through the trampoline, and that
    unit guards the module by structure, not identity (values/objects.py: wrap_module), so
    every instance reuses its entries -- one set of graphs per layer type instead of one per
    layer. A class with a single instance keeps resuming inside (fewer graphs)."""
    if frame.is_generator or not frame.direct or not frame.code.co_argcount:
        return False
    if any(n != "__class__" for n in frame.code.co_freevars):
        return False
    first = frame.locals.get(frame.code.co_varnames[0])
    if type(first) is not ModuleValue or first.source is None:
        return False
    mod = first.obj
    fwd = getattr(type(mod), frame.code.co_name, None)
    if type(fwd) is not types.FunctionType or fwd.__code__ is not frame.code or not _compilable(fwd):
        return False
    if not _plain_module_call(mod) or is_trusted_module(frame.globals.get("__name__")):
        return False
    root = _root_module(chain)
    return root is not None and root is not mod and _instances(root, mod) >= 2


def _root_module(chain):
    """The module of the outermost frame that has one as its first argument."""
    for frame, _, _ in reversed(chain):
        code = frame.code
        if code.co_argcount:
            v = frame.locals.get(code.co_varnames[0])
            if type(v) is ModuleValue:
                return v.obj
    return None


def _shape(mod):
    """The types in a module's tree, by name: what a shared unit's type guards would check
    (torch's parametrizations make a class per instance: such layers cannot share a unit)."""
    return tuple((name, type(m)) for name, m in mod.named_modules())


def _instances(root, mod):
    """Instances of mod's class in root's tree with the same tree of types (mod included)."""
    cls = type(mod)
    try:
        mine = _shape(mod)
        return sum(1 for m in root.modules() if type(m) is cls and _shape(m) == mine)
    except Exception:           # a module tree torch cannot walk: no split
        return 0


class Trampoline:
    """Calls the entry makes into Python code: compiled through the runtime (one compiled
    unit per function, cached weakly, with the caller's backend)."""

    def __init__(self, compile_fn):
        self.compile_fn = compile_fn
        self.cache = weakref.WeakKeyDictionary()

    def _compiled(self, fn, module=False):
        c = self.cache.get(fn)
        if c is None:
            if module:
                STRUCTURAL.add(fn)
            c = self.cache[fn] = self.compile_fn(fn)
        return c

    def __call__(self, target):
        if type(target) is types.FunctionType:
            return self._compiled(target) if _compilable(target) else target
        if type(target) is types.MethodType and type(target.__func__) is types.FunctionType:
            if _compilable(target.__func__):
                return types.MethodType(self._compiled(target.__func__, isinstance(target.__self__, torch.nn.Module)),
                                        target.__self__)
            return target
        if isinstance(target, torch.nn.Module) and _plain_module_call(target):
            fwd = type(target).forward
            if type(fwd) is types.FunctionType and _compilable(fwd):
                return types.MethodType(self._compiled(fwd, True), target)
        return target


def _compilable(fn):
    if getattr(fn, "__bytegraph_state__", None) is not None or _in(_disabled, fn):
        return False
    local = fn.__qualname__.rpartition("<locals>.")[2] if "<locals>" in fn.__qualname__ else None
    if local is not None and (fn.__closure__ or "." not in local):
        # a function made per call (a closure, or a lambda / def without free variables; not a
        # method of a class defined in a function): its own cache would start anew each call
        return False
    code = fn.__code__
    if code.co_flags & 0x2A0:          # generator, coroutine, async generator
        return False
    if not all(n.isidentifier() for n in code.co_varnames[:code.co_argcount]):
        return False           # a comprehension's `.0`: no entry can take it; it runs as it is
    if code.co_filename.startswith(_STDLIB) and "site-packages" not in code.co_filename:
        return False           # the standard library (logging, copy, ...) runs as it is
    return not is_trusted_module(getattr(fn, "__module__", None))


_STDLIB = sysconfig.get_paths()["stdlib"]


def _plain_module_call(m):
    """Module.__call__ would only call forward: no hooks of any kind, torch's own __call__, and
    the class's forward (not one assigned on the instance, `m.forward = f`: redteam6)."""
    from torch.nn.modules import module as mm
    d = m.__dict__
    if type(m).__call__ is not torch.nn.Module.__call__ or "forward" in d \
            or d.get("_compiled_call_impl") is not None:
        return False
    if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks:
        return False
    return not (mm._global_forward_hooks or mm._global_forward_pre_hooks or mm._global_backward_hooks
                or mm._global_backward_pre_hooks or getattr(mm, "_global_forward_hooks_always_called", None))


# resume code -> (the code it was built from, byte offset of that code's body in it, the
# offset it resumes at and its inner call's offset there, both in that code)
# offset it resumes at and its inner call's offset there, both in that code). By identity:
# code objects compare by value, and a weak dictionary would drop a live code's entry when an
# equal one (from an earlier compile of the same function) dies.
_ORIGIN = {}


def _set_origin(code, origin):
    key = id(code)

    def forget(ref):
        if _ORIGIN.get(key, (None,))[0] is ref:
            del _ORIGIN[key]
    _ORIGIN[key] = (weakref.ref(code, forget), origin)


def _origin(code):
    hit = _ORIGIN.get(id(code))
    return hit[1] if hit is not None and hit[0]() is code else None


def call_line(code, offset):
    """For an instruction of a resume function's prologue (before `offset` reaches the original
    code): the line of the original call the prologue makes again (its inner resume function's
    call); else None."""
    origin = _origin(code)
    if origin is None or origin[3] is None or offset >= origin[1]:
        return None
    return decode_line(origin[0], origin[3])


def _canonical(code, offset, dead, inner):
    """A stop in the body of a resume function is a stop in the code it was built from, at
    the same instruction with the same stack: (that code, its offset, the dead locals and
    the inner call's offset renamed to it), so a loop whose body stops the trace reuses one
    resume function (and its cache) per loop position instead of nesting a new one per
    iteration. A stop after the inner call of the prologue (an outer frame of a nested
    break, waiting for the inner resume function) is the stop after the original call the
    code was built for. None when the code keeps `__class__` as a free variable (its
    parameter list differs from the original's)."""
    origin = _origin(code)
    if origin is None or "__class__" in code.co_freevars:
        return None
    base, shift, built_offset, built_call = origin
    mine, theirs = local_params(code), local_params(base)
    if len(mine) != len(theirs):
        return None
    if offset < shift:          # after the prologue's inner call
        if inner is None or inner[2] >= shift or built_call is None:
            return None
        offset, call = built_offset, built_call
    else:
        offset, call = offset - shift, None if inner is None else inner[2] - shift
        if call is not None and call < 0:
            return None
    rename = dict(zip(mine, theirs))
    inner = inner if inner is None else (inner[0], inner[1], call)
    return base, offset, tuple(rename[d] for d in dead), inner


class ResumeCache:
    """Resume functions of one compiled function and of everything compiled on its behalf
    (its resume functions share it), by (original code, resume offset, stack layout, dead
    locals, ...); each is compiled once, through the runtime."""

    def __init__(self, compile_fn):
        self.compile_fn = compile_fn
        self.entries = {}

    def get(self, frame, offset, layout, dead, compiled=True, opaque=(), inner=None, structural=False):
        """(callable, byte offset of the original code in the resume code) for `frame`'s code.
        `compiled=False`: the plain function (exception handlers after a break, and the
        resume functions of inlined frames, which the root's resume function calls first).
        `opaque`: positions of parameters that get item() results (values/opaque.py).
        `inner`: (function, number of arguments) to call first (bytecode/resume.py)."""
        code = frame.code
        # Not inside a for loop: its iterator reaches the resume function at a new position
        # each iteration, which the resumed trace specializes on (it unrolls the items left),
        # so one shared function would only recompile per iteration up to its cache limit.
        # A loop over a tuple of like tensors whose body stops is stepped one iteration per entry
        # (its iterator is a LoopIterParam, never unrolled): its positions share one function.
        # A frame that also has an unrolled loop keeps a function per iteration (shared, the
        # outer loop's positions would fill one cache: a recompile per outer item).
        looping = any(isinstance(v, IteratorValue) and not loop_step_iter(v) for v in frame.stack)
        base = None if looping else _canonical(code, offset, dead, inner)
        if base is not None:
            code, offset, dead, inner = base
        structural = structural and compiled        # of the trace that stopped: see STRUCTURAL
        key = (code, offset, layout, dead, compiled, opaque, inner, structural)
        hit = self.entries.get(key)
        if hit is None:
            hit = self._make(key, frame.globals, lambda names: tuple(frame.cells[n].real for n in names))
        return hit

    def _make(self, key, globals_, cells):
        code, offset, layout, dead, compiled, opaque, inner, structural = key
        name = f"resume_in_{code.co_name}_at_{decode_line(code, offset)}"
        rcode, params, shift = resume_code(code, offset, [_SLOT[k] for k in layout],
                                           dead, name, inner)
        _set_origin(rcode, (code, shift, offset, None if inner is None else inner[2]))
        closure = cells(rcode.co_freevars) or None          # __class__
        rfn = types.FunctionType(rcode, globals_, name, None, closure)
        rfn.__bytegraph_cells__ = frozenset(rcode.co_cellvars)
        rfn.__bytegraph_user_name__ = code.co_name       # what log records name (policy/stdlib.py)
        rfn.__bytegraph_opaque__ = frozenset(params[i] for i in opaque if type(i) is int and i >= 0)
        rfn.__bytegraph_opaque_floats__ = frozenset(params[-1 - i] for i in opaque if type(i) is int and i < 0)
        # loop iterators stepped one iteration per entry: "i<position>" (policy/breaks.py)
        rfn.__bytegraph_loop_iters__ = frozenset(params[int(i[1:])] for i in opaque
                                                 if type(i) is str and i[0] == "i")
        # text formatted at a break: "s<position>" (opaque while it is a str)
        rfn.__bytegraph_opaque_strs__ = frozenset(params[int(i[1:])] for i in opaque
                                                  if type(i) is str and i[0] == "s")
        # tuples and lists holding tensors to read: "r<position>" (values/known.py: read stops)
        rfn.__bytegraph_read__ = frozenset(params[int(i[1:])] for i in opaque if type(i) is str and i[0] == "r")
        if structural:
            STRUCTURAL.add(rfn)
        hit = self.entries[key] = (self.compile_fn(rfn) if compiled else rfn, shift)
        return hit

    def key_of(self, fn):
        """The key of a resume function this cache made (`fn` as the entry holds it), or None."""
        for key, (made, _shift) in list(self.entries.items()):
            if made is fn:
                return key
        return None

    def rebuild(self, key, globals_, cells=None):
        """The resume function of `key` (warm start, runtime/warm.py: the same key a trace in
        another process used), made as `get` makes it. `cells(names)`: the cells of its free
        variables, taken from the function its code belongs to (warm_recipes._closure_owner);
        None when its code has none."""
        hit = self.entries.get(key)
        if hit is None:
            def no_cells(names):
                if names:
                    raise LookupError("a resume function with free variables")
                return ()
            hit = self._make(key, globals_, cells or no_cells)
        return hit[0]


_SLOT = {"v": None, "n": CODE_NULL, "x": CODE_EXC, "a": CODE_WITH, "i": None}


def decode_line(code, offset):
    for inst in decode(code):
        if inst.offset == offset:
            return inst.line
    return code.co_firstlineno


def _cell_arg(frame, name, cg, temp):
    """A cell variable's cell (real, or made once for a cell the trace created)."""
    cell = frame.cells.get(name)
    if cell is None:                  # MAKE_CELL not reached yet: an empty cell
        return f"{cg.const(types.CellType, 'CellType')}()"
    return temp(cg.expr(cell))


def _local_arg(frame, name, cg, temp):
    v = frame.locals.get(name)
    if v is None:
        return "None"
    if type(v) is Lazy:          # a parameter the trace never read: passed on as it came
        return v.source.expr(cg)
    return temp(cg.expr(v))


def break_tail(tracer, cg, resumes, trampoline):
    """Entry lines that end a trace stopped before an instruction (see module docstring).
    Returns (lines evaluated before the side effects are replayed, lines after them)."""
    frame = tracer.stopped
    structural = getattr(tracer, "structural", False)
    chain = []
    f = frame
    while f is not None:
        chain.append(f)
        f = f.parent
    pre = []
    temp = cg.temps("__k", pre)

    inst = frame.insts[frame.ip]
    below, op, after = _split_stack(frame, inst)
    read = getattr(tracer, "read_stop", False)
    if read:                          # the call is not run here: its callee and arguments stay
        below = list(frame.stack)
    for ctx in reversed(tracer.autocasts):   # open autocast regions: the graph closes them, the
        ctx.exit_node(tracer)                # instruction runs inside real ones, resumes reopen them
    # per frame, innermost first: (argument expressions, layout, dead locals, opaque flags)
    states = [_frame_state(frame, below, cg, temp)]
    for f in chain[1:]:
        states.append(_frame_state(f, list(f.stack), cg, temp))

    def resume_chain(start, first_offset, first_state):
        """The resume function of chain[-1] (the root: compiled), which calls those of the
        frames in from it (plain), innermost first, down to chain[start], which continues
        at `first_offset` with `first_state` (arguments, layout, opaque flags); and the
        argument list it takes: per frame from the root in, its locals and stack values."""
        fn_inner, n_inner = None, 0
        args_all, flags_all = [], []
        for j in range(start, len(chain)):
            f = chain[j]
            fargs, layout, dead, flags = states[j]
            if j == start:
                offset = first_offset
                fargs, layout, flags = first_state
            else:
                offset = f.insts[f.ip].offset       # after its call: the callee's result pushed
            args_all = fargs + args_all
            flags_all = flags + flags_all
            root = j == len(chain) - 1
            # item() results by position; a call's result, by -1 - position (opaque if a float);
            # a loop iterator stepped per entry, "i<position>"
            opaque = tuple(i if o is True else f"i{i}" if o == "iter" else f"s{i}" if o == "str"
                           else f"r{i}" if o == "read" else -1 - i for i, o in enumerate(flags_all) if o) \
                if root else ()
            inner = (fn_inner, n_inner, f.inst.offset) if fn_inner is not None else None
            fn_inner, shift = resumes.get(f, offset, layout, dead, compiled=root, opaque=opaque,
                                          inner=inner, structural=structural)
            n_inner = len(args_all)
            if j == start:
                first_shift = shift
        return cg.const(fn_inner, "resume"), ", ".join(args_all), first_shift

    def guarded(lines):
        """`lines` inside a try: an exception it raises goes where CPython would send it --
        the handler of the innermost frame whose instruction (the break's, or the call on
        the way out) sits in a try/with block, with that frame's stack cut to the handler's
        depth, the raising offset (if the handler wants it) and the exception pushed, the
        frames out from it resumed after their calls."""
        for k, f in enumerate(chain):
            at = inst if k == 0 else f.inst
            h = find_handler(f.code, at.offset)
            if h is not None:
                break
        else:
            return lines
        args, layout, dead, flags = states[k]
        nlocals = len(local_params(f.code))
        kept = nlocals + sum(1 for x in layout[:h.depth] if x != "n")     # values below the cut
        exc_layout = layout[:h.depth] + (("v",) if h.lasti else ()) + ("v",)
        first_args = args[:kept] + (["__lasti"] if h.lasti else []) + ["__x"]
        first_flags = flags[:kept] + [False] * (1 + h.lasti)
        r_exc, call_args, shift = resume_chain(k, f.insts[h.target].offset,
                                               (first_args, exc_layout, first_flags))
        lasti = [f"__lasti = {(at.offset + shift) // 2}"] if h.lasti else []
        return ["__x = None",
                "try:",
                *("    " + x for x in lines),
                "except BaseException as __e:",
                "    __x = __e",
                "if __x is not None:",
                *("    " + x for x in lasti),
                f"    return {r_exc}({call_args})"]

    post = []
    if read:
        # nothing runs in Python: the resume function starts at the call itself (at its KW_NAMES,
        # which sets the keyword names the CALL reads) with the whole stack, the tuples and
        # lists holding the tensors to read marked (values/known.py)
        start = frame.ip - 1 if frame.ip and frame.insts[frame.ip - 1].opname == "KW_NAMES" else frame.ip
        args0, layout0, _, flags0 = states[0]
        reads = {id(v) for v in read_candidates(tracer, below)}
        values = [v for v in below if v is not NULL]
        nlocals = len(flags0) - len(values)
        flags0 = flags0[:nlocals] + ["read" if id(v) in reads else o for v, o in zip(values, flags0[nlocals:])]
        r, args, _ = resume_chain(0, frame.insts[start].offset, (args0, layout0, flags0))
        post.append(f"return {r}({args})")
        return pre, post
    if op[0] == "branch":
        cond = temp(cg.expr(op[1]))
        target = frame.insts[inst.target].offset
        fall = frame.insts[frame.ip + 1].offset
        args0, layout0, _, flags0 = states[0]
        r_jump, args, _ = resume_chain(0, target, (args0, layout0, flags0))
        r_fall, _, _ = resume_chain(0, fall, (args0, layout0, flags0))
        test = f"{'' if op[2] else 'not '}{cond}"
        # bool() of the tensor can raise (more than one element)
        g = guarded([f"__c = {test}"])
        if len(g) > 1:
            post += g
            test = "__c"
        post.append(f"if {test}:")
        post.append(f"    return {r_jump}({args})")
        post.append(f"return {r_fall}({args})")
        return pre, post
    if op[0] == "for_iter":
        # next() in Python; the body (iterator and item pushed) or the code after the loop resumes
        it = temp(_expr(cg, op[1]))
        args0, layout0, _, flags0 = states[0]
        done = cg.const(_LOOP_DONE, "loop_done")
        r_exit, exit_args, _ = resume_chain(0, frame.insts[inst.target].offset, (args0, layout0, flags0))
        r_body, args, _ = resume_chain(0, after, (args0 + [it, "__c"], layout0 + ("i", "v"),
                                                  flags0 + ["iter", False]))
        post += guarded(in_real_autocast(tracer, [f"__c = next({it}, {done})"]))
        post.append(f"if __c is {done}:")
        post.append(f"    return {r_exit}({exit_args})")
        post.append(f"return {r_body}({args})")
        return pre, post
    tramp = cg.const(trampoline, "trampoline")
    callee = op[1]
    if op[0] == "call":
        _, _, args, kwargs = op
        parts = [temp(cg.expr(a)) for a in args] + [f"{k}={temp(cg.expr(v))}" for k, v in kwargs.items()]
        call = f"{cg.const(_at_site(frame, inst), 'at_site')}({tramp}({temp(_expr(cg, callee))}), {', '.join(parts)})"
    elif op[0] == "call_ex":
        _, _, star, kw = op
        call = f"{cg.const(_at_site(frame, inst), 'at_site')}({tramp}({temp(_expr(cg, callee))}), " \
            f"*{temp(cg.expr(star))}" + (f", **{temp(cg.expr(kw))})" if kw is not None else ")")
    is_item = type(callee).__name__ == "_TensorRead" and callee.name == "item"
    pushed = ("v",)                   # what the instruction leaves on the stack
    if op[0] == "python":             # one instruction as a call of a Python builtin
        _, fn, operands, pushed = op
        parts = [repr(a) if type(a) is str else temp(cg.expr(a)) for a in operands]
        call = f"{cg.const(fn, getattr(fn, '__name__', 'op'))}({', '.join(parts)})"
    if op[0] == "python" and op[1] in _RAISES:
        if op[1] is raise_exception and any("x" in st[1] for st in states):
            # inside an except block of the trace: `raise` would chain the exception it handles
            raise Unsupported("a raise inside an except block, run in Python", kind="graph_break_raise")
        exc = op[2][0]
        if op[1] is reraise and exc.source is None and isinstance(exc, ExceptionInstanceValue) and \
                (exc.exc.__context__ is not None or exc.exc.__cause__ is not None):
            # one the trace made, chained to another the trace made: that one's traceback (eager's
            # frames) cannot be made
            raise Unsupported("re-raising a chained exception the trace made", kind="graph_break_raise")
        post += guarded(in_real_autocast(tracer, [call]))
        return pre, post
    args0, layout0, _, flags0 = states[0]
    # the values it pushes: `__c`, or `__c0, __c` for BEFORE_WITH (exit, enter's result)
    results = ["__c0", "__c"][-pushed.count("v"):] if "v" in pushed else []
    # what a call returns is opaque to the resumed code when it is a float (np.random.uniform in
    # hf/vits' LayerDrop): guarded by type, not specialized per value unless the code needs it
    # A number computed at the stop from item() results (`1 / n`, `int(v * 10)` stopped there
    # because they may raise: values/opaque.py raising_op) is one too, int or float
    from_items = op[0] in ("call", "python") and any(isinstance(a, Opaque) and a.scalar for a in op[2]) and \
        (op[0] == "python" or getattr(callee, "fn", getattr(callee, "cls", None)) in _NUMERIC)
    made = True if is_item or from_items else "float" if op[0] in ("call", "call_ex") else False
    if op[0] == "python" and op[1] in FORMATTERS.values():
        # an f-string field formatted at the break (a tensor's value): its text changes with the
        # data, so it stays opaque too (guarded by type): its BUILD_STRING is done by the entry
        made = "str"
    args0, flags0 = args0 + results, flags0 + [False] * (len(results) - 1) + [made] * bool(results)
    r, args, _ = resume_chain(0, after, (args0, layout0 + pushed, flags0))
    post += guarded(in_real_autocast(tracer, [f"{', '.join(results)} = {call}" if results else call]))
    post.append(f"return {r}({args})")
    return pre, post


_SITES = {}


def _at_site(frame, inst):
    """A function `(fn, *args, **kwargs) -> fn(*args, **kwargs)` whose frame shows the user's
    file, line and function name and has the user's module globals: the caller that code run
    at a stop finds when it looks at its caller's frame (a log record's site, a warning's
    location and registry, `stacklevel=2` in a library function) is the user's line, as
    eagerly, not the entry; a traceback through the call shows that line too."""
    return site_function(frame.code.co_filename, inst.line or 1, frame.user_name or frame.code.co_name,
                         frame.globals)


def site_function(filename, line, name, globals_):
    """_at_site's function for one site (also what warm start rebuilds, runtime/warm_recipes.py)."""
    key = (filename, line, name, id(globals_))
    fn = _SITES.get(key)
    if fn is None or fn.__globals__ is not globals_:
        ns = {}
        exec(compile("\n" * (line - 1) + "def _site(__fn, *args, **kwargs): return __fn(*args, **kwargs)",
                     filename, "exec"), ns)
        code = ns["_site"].__code__.replace(co_name=name, co_qualname=name)
        fn = _SITES[key] = types.FunctionType(code, globals_, name)
        fn.__bytegraph_site__ = (filename, line, name)
    return fn


_NUMERIC = frozenset({int, float, round, abs, pow, divmod, *(getattr(math, n) for n in dir(math)
                                                              if callable(getattr(math, n)))})

_LOOP_DONE = type("LoopDone", (), {"__repr__": lambda self: "<loop done>"})()


# generator functions resuming a traced generator at a yield: (id(code), offset, layout, dead)
# -> (weak reference to the code, function); by identity, as _ORIGIN
_GENERATORS = {}


def _started(gen):
    next(gen)            # runs the prologue up to the original YIELD_VALUE: suspended there
    return gen


def suspended_generator(gen, cg):
    """Expression for a real generator in the state of the traced generator `gen`
    (interpreter.GeneratorValue), paused at a yield: a generator function made from its code
    (bytecode/resume.py, `generator=True`) whose prologue rebuilds its locals and stack and
    jumps to that YIELD_VALUE, called and stepped once (nothing but the prologue runs), so it
    is suspended at the same instruction with the same exception table around it: next(),
    send(), throw() and close() go on as they would have on the original. One not stepped yet
    starts at its first instruction."""
    fn, args, step, _layout = _generator_parts(gen, cg)
    made = f"{cg.const(fn, fn.__name__)}({', '.join(args)})"
    return f"{cg.const(_started, 'started')}({made})" if step else made


def _generator_parts(gen, cg):
    """(generator function, argument expressions, whether to step it once, stack layout)."""
    f = gen.frame
    code = f.code
    if not gen.started:       # not stepped yet: a new generator whose first next() starts the body
        at = next(i for i in f.insts if i.opname == "RESUME").index + 1
        offset, stack, step = f.insts[at].offset, [], False
    elif f.done or not f.paused or f.inst is None or f.inst.opname != "YIELD_VALUE":
        raise Unsupported(f"a generator the trace made, handed to Python {'after it finished' if f.done else 'mid-step'}",
                          kind="generator_state")
    else:
        offset, stack, step = f.inst.offset, list(f.stack) + [f.yielded], True
    args, layout, dead, _flags = _frame_state(f, stack, cg, lambda e: e)
    if any(k not in ("v", "n", "x") for k in layout):
        raise Unsupported("a generator paused with a loop iterator or an autocast exit on its stack",
                          kind="generator_state")
    key = (id(code), offset, layout, dead)
    hit = _GENERATORS.get(key)
    fn = hit[1] if hit is not None and hit[0]() is code else None
    if fn is None:
        rcode, _params, _shift = resume_code(code, offset, [_SLOT[k] for k in layout], dead,
                                             code.co_name, generator=True)
        cells = [getattr(f.cells.get(n), "real", None) for n in rcode.co_freevars]     # __class__
        if None in cells:
            raise Unsupported("a generator method using super() handed to Python", kind="generator_state")
        fn = types.FunctionType(rcode, f.globals, code.co_name, None, tuple(cells) or None)
        fn.__qualname__ = code.co_qualname
        fn.__bytegraph_resumes__ = (code, offset, dead, layout)     # (wrap_handoff)

        def forget(ref, key=key):
            if _GENERATORS.get(key, (None,))[0] is ref:
                del _GENERATORS[key]
        _GENERATORS[key] = (weakref.ref(code, forget), fn)
    return fn, args, step, layout


class GeneratorHandoff:
    """What a resume function gets for a `with cm():` over a @contextmanager whose generator the
    trace ran to its yield (policy/calls.py GenCtxValue), in the with-block's __exit__ slot:
    the generator's state (its function resuming at the yield, and the arguments: locals, then
    the stack with the yielded value), not a real generator. A compiled resume function's trace
    rebuilds the traced generator from it (wrap_handoff), so the block's exit, normal or by an
    exception, runs the rest of the generator in the trace, and no real generator ever exists.
    Run as Python (a plain resume function, a rerun), calling it makes the real context manager
    over a real generator at that yield and calls its __exit__, as eager does; `context()`
    makes it where the code holds the object itself (the same one for both)."""
    __slots__ = ("make", "state", "started", "func", "args", "kwds", "cm")

    def __init__(self, make, state, started, func, args, kwds):
        self.make, self.state, self.started = make, state, started
        self.func, self.args, self.kwds = func, args, kwds
        self.cm = None

    def context(self):
        if self.cm is None:
            from ..policy.calls import _generator_context
            gen = self.make(*self.state)
            self.cm = _generator_context(self.func, self.args, self.kwds, _started(gen) if self.started else gen)
        return self.cm

    def __call__(self, typ, value, tb):
        return self.context().__exit__(typ, value, tb)


def handoff(ctx, cg):
    """Expression for the GeneratorHandoff of GenCtxValue `ctx` (one per trace)."""
    def build():
        fn, args, step, _layout = _generator_parts(ctx.gen, cg)
        rest = "None, None" if step else f"{cg.expr(ctx.args)}, {cg.expr(ctx.kwargs)}"
        return (f"{cg.const(GeneratorHandoff, 'GeneratorHandoff')}({cg.const(fn, fn.__name__)}, "
                f"({''.join(a + ', ' for a in args)}), {step}, {cg.expr(ctx.func)}, {rest})")
    return cg.mutable(ctx, build)


class _HandoffCall(Value):
    """A GeneratorHandoff the trace does not model (a generator with cells or an exception on
    its stack, or made real already): calling it stops the trace, so Python calls it."""

    def __init__(self, obj, source):
        self.obj, self.source = obj, source

    def call(self, tx, args, kwargs):
        raise Unsupported("the exit of a @contextmanager whose generator runs in Python", kind="call")


def wrap_handoff(tx, obj, source):
    """A resume function's GeneratorHandoff parameter: the with-block's __exit__, modelled over
    the traced generator rebuilt at its yield (locals and stack read from the handoff), unless
    Python made the real context manager already (then its real bound __exit__)."""
    from ..policy.calls import GenCtxValue
    from ..sources import AttrSource, ItemSource
    from ..symbolic.interpreter import Frame, GeneratorValue
    from ..values.base import wrap
    tx.guards.add_type(source, GeneratorHandoff)
    cg = tx.cg
    code, offset, dead, layout = obj.make.__bytegraph_resumes__
    names = local_params(code)
    # modelled: not made real yet, at its yield, with only values on its stack and no cells
    symbolic = obj.cm is None and obj.started and set(layout) == {"v"} and not code.co_cellvars \
        and not code.co_freevars and len(obj.state) == len(names) + len(layout)
    s = source.expr(cg)
    modelled = obj.cm is None and obj.started
    tx.guards.add_code(f"{s}.make is {cg.const(obj.make, 'generator_resume')} and "
                       f"({s}.cm is None and {s}.started) is {modelled}", source, "handoff",
                       (obj.make.__qualname__, modelled))
    if not symbolic:            # its exit is a stop: it runs in Python (the handoff, called)
        return _HandoffCall(obj, source)
    f = Frame(tx, code, obj.make.__globals__, code.co_qualname, tx.frame)
    state = AttrSource(source, "state")
    n = len(obj.state)
    for i, name in enumerate(names):
        if name not in dead:
            f.locals[name] = Lazy(obj.state[i], ItemSource(state, i))
    f.stack = [wrap(tx, obj.state[i], ItemSource(state, i)) for i in range(len(names), n - 1)]
    f.yielded = wrap(tx, obj.state[n - 1], ItemSource(state, n - 1))     # (a handoff made again)
    yield_at = next(i for i in f.insts if i.offset == offset)
    f.inst, f.ip, f.paused = yield_at, yield_at.index + 1, True
    gen = GeneratorValue(f)
    gen.started = True
    tx.codes[code] = (f.globals.get("__name__"), code.co_qualname)
    ctx = GenCtxValue(gen, wrap(tx, obj.func, AttrSource(source, "func")), None, None)
    return _ExitValue(ctx)


def _split_stack(frame, inst):
    """(stack values below what the instruction consumes, the operation, resume offset)."""
    stack = list(frame.stack)
    insts = frame.insts
    if inst.opname == "PRECALL":
        argc = inst.arg
        items = stack[len(stack) - argc - 2:]
        below = stack[:len(stack) - argc - 2]
        callee, args = (items[1], items[2:]) if items[0] is NULL else (items[0], items[1:])
        kwnames = frame.kw_names or ()
        npos = len(args) - len(kwnames)
        after = insts[frame.ip + 2].offset        # PRECALL, CALL, then the next instruction
        return below, ("call", callee, args[:npos], dict(zip(kwnames, args[npos:]))), after
    if inst.opname == "CALL_FUNCTION_EX":
        kw = stack.pop() if inst.arg & 1 else None
        star = stack.pop()
        callee = stack.pop()
        if stack and stack[-1] is NULL:
            stack.pop()
        return stack, ("call_ex", callee, star, kw), insts[frame.ip + 1].offset
    if inst.opname == "FOR_ITER":           # a loop stepped per entry: next() runs in Python
        return stack[:-1], ("for_iter", stack[-1]), insts[frame.ip + 1].offset
    one = _ONE_STEP.get(inst.opname)
    if one is not None:
        n, make = one
        n = n(inst) if callable(n) else n
        fn, operands, pushed = make(inst, stack[len(stack) - n:])
        after = insts[frame.ip + 1].offset if frame.ip + 1 < len(insts) else None     # (a raise: none)
        return stack[:len(stack) - n], ("python", fn, operands, pushed), after
    return stack[:-1], ("branch", stack[-1], _POP_JUMPS[inst.opname]), None


def _frame_state(frame, stack, cg, temp):
    """(argument expressions, stack layout, dead locals, opaque flags) of one frame."""
    code = frame.code
    varnames = local_params(code)
    values = [frame.locals.get(v) for v in varnames] + [v for v in stack if v is not NULL]
    args = ["None" if v == "__class__" and v in code.co_freevars      # stays a free variable
            else _cell_arg(frame, v, cg, temp) if v in code.co_cellvars or v in code.co_freevars
            else _local_arg(frame, v, cg, temp) for v in varnames] + \
        [temp(_expr(cg, v.handled if type(v) is SavedExcInfo else v)) for v in stack if v is not NULL]
    flags = ["iter" if loop_step_iter(v) else "str" if type(v) in _TEXT else isinstance(v, Opaque) and v.scalar
             for v in values]
    layout = tuple("n" if v is NULL else "x" if type(v) is SavedExcInfo else "a" if _autocast_exit(v)
                   else "i" if loop_step_iter(v) else "v" for v in stack)
    dead = tuple(v for v in varnames if v not in frame.locals and v not in code.co_cellvars
                 and v not in code.co_freevars)
    return args, layout, dead, flags


def _expr(cg, v):
    """cg.expr(v), and a bound tensor method (`x.add` on the stack before its call) as the
    real bound method of the tensor."""
    if type(v) is TensorMethodValue:
        return f"getattr({cg.expr(v.tensor)}, {v.name!r})"
    return cg.expr(v)


def _autocast_exit(v):
    """The __exit__ of an autocast region on the stack (its slot gets the region, to enter)."""
    return type(v) is _ExitValue and type(v.ctx) is AutocastCtx




register_wrapper(GeneratorHandoff)(wrap_handoff)
