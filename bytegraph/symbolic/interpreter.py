"""The symbolic interpreter: runs CPython 3.11 bytecode over Values.

Tracer holds what one conversion shares: the graph, the guards, the side-effect
log, the identity map of wrapped objects, and the global torch state it changed
(restored however the trace ends). Frame holds one function activation: its
instructions, value stack, locals, cells and instruction pointer.

The loop fetches an instruction and dispatches on its opname through the one
handler table in `table.py`. Calling a Python function pushes a child Frame and
runs it to its RETURN_VALUE (inlining); its result is a Value in the caller.
Generator functions run to completion at the call and yield an iterator over
what they yielded (enough for `sum(x for x in xs)` and `list(gen())`).

Errors: a handler raises Unsupported (cannot capture) or UserError (the user's
code raises here); both get the user's file:line of the innermost frame.
"""
import builtins as _builtins_mod
import functools
import inspect
import types
import weakref

import torch

from ..bytecode import decode, find_handler
from ..exc import Unsupported, UserError
from ..sources import LocalSource, ObjectSource, global_source
from ..values.base import NONE, ConstValue, wrap, is_trusted_module, is_static
from ..values.functions import CellValue, CO_GENERATOR
from ..values.containers import IteratorValue
from ..values.opaque import OpaqueParam, OpaqueText
from ..values.known import read_ids
from ..policy.breaks import wrap_loop_iter
from ..values.symbolic import ConstraintViolation
from ..values.lookup import tracing
from .table import HANDLERS, UNSUPPORTED


class Frame:
    __slots__ = ("code", "insts", "globals", "stack", "locals", "cells", "ip", "kw_names", "qualname",
                 "parent", "is_generator", "paused", "yielded", "done", "retval", "tx", "inst", "step",
                 "direct", "user_name")

    def __init__(self, tx, code, globals_, qualname, parent):
        self.tx = tx
        self.code = code
        self.insts = decode(code)
        self.globals = globals_
        self.qualname = qualname
        self.parent = parent
        self.stack = []
        self.locals = {}
        self.cells = {}
        self.ip = 0
        self.kw_names = None
        self.is_generator = bool(code.co_flags & CO_GENERATOR)
        self.paused = False       # a generator frame stopped at a yield
        self.yielded = None
        self.done = False
        self.retval = None
        self.inst = None
        self.step = 0             # the tracer's step number of the current instruction
        self.direct = False       # inlined for exactly the parent's current CALL (nothing around it)
        self.user_name = None     # a resume function's: the name of the function it resumes

    # -- stack helpers --------------------------------------------------------
    def push(self, v):
        self.stack.append(v)

    def pop(self):
        return self.stack.pop()

    def popn(self, n):
        if n == 0:
            return []
        vals = self.stack[-n:]
        del self.stack[-n:]
        return vals

    def local(self, name):
        """The Value of a bound local (KeyError if unbound); wraps a parameter on first read."""
        v = self.locals[name]
        if type(v) is Lazy:
            v = self.locals[name] = wrap(self.tx, v.obj, v.source)
        return v

    def jump(self, inst):
        self.ip = inst.target

    def line(self):
        """The user's line of the current instruction; in a resume function's prologue (no
        line), the line of the call it stands for (the inner resume function's call: where a
        `stacklevel=2` warning or a log record of the callee points, as eagerly)."""
        if self.inst is None:
            return self.code.co_firstlineno
        if self.code.co_name.startswith("resume_in_"):
            from ..runtime.resume import call_line
            line = call_line(self.code, self.inst.offset)
            if line is not None:
                return line
        return self.inst.line or self.code.co_firstlineno

    def location(self):
        return f"{self.code.co_filename}:{self.line()}"

    def zero_arg_super(self):
        cell = self.cells.get("__class__")
        if cell is None:
            raise Unsupported("super() without a __class__ cell", kind="super")
        cls = cell.get(self.tx).as_python()
        first = self.code.co_varnames[0]
        obj = self.cells[first].get(self.tx) if first in self.cells else self.local(first)
        return cls, obj


class Stopped(Exception):
    """The trace reached its stop_at step: tracer.stopped is the frame, about to run it."""


class Lazy:
    """A parameter of the root frame not read yet: the real object and its source."""
    __slots__ = ("obj", "source")

    def __init__(self, obj, source):
        self.obj = obj
        self.source = source


def _locate(tracer_ref):
    """The user's file:line the tracer is at. Held by its side-effect log through a weak
    reference: a strong one made a cycle (tracer -> log -> closure -> tracer), so a trace and
    the first call's arguments it binds lived until the collector ran (a generator among them
    ran its `finally` then, not when the caller dropped it)."""
    tracer = tracer_ref()
    return tracer.frame.location() if tracer is not None and tracer.frame is not None else ""


class Tracer:
    def __init__(self, graph, cg, guards, side_effects, depth_limit=64):
        self.graph = graph
        self.cg = cg
        self.guards = guards
        self.side_effects = side_effects
        side_effects.locate = functools.partial(_locate, weakref.ref(self))    # (no cycle: see _locate)
        self.wrapped = {}          # id(obj) -> (obj, Value): one Value per caller-world object
        self.global_writes = {}    # (id(globals), name) -> Value written by the trace
        self.state_stack = []      # undo actions for global torch state changed while tracing
        self.exc_info = NONE       # the exception being handled (sys.exc_info() for the trace)
        self.absent_attrs = {}     # id(ObjectValue) -> (value, names it must not have in __dict__)
        self.module_dict_absent = {}   # id(ModuleValue) -> (value, names read from its nn dicts)
        self.builtins_used = {}    # id(globals) -> (globals, builtin names read through it)
        self.class_absent = {}     # id(class) -> (class, names it must not define)
        self.class_mro = {}        # id(class) -> class whose MRO a lookup relied on
        self.frame = None
        self.depth = 0
        self.depth_limit = depth_limit
        self.grad_enabled_at_start = torch.is_grad_enabled()
        self.grad_changed = False
        self.autocasts = []        # AutocastCtx entered and not exited yet, outermost first
        # graph breaks (symbolic/breaks.py): the entry body in program order (lines, and
        # ("graph", k) where graph k runs), the cut after each break, what explain() reports
        self.allow_breaks = False
        self.body = []
        self.splits = []           # (last fx node before the break, grad mode there)
        # runtime/rerun.py: per break, (its Python part has no observable effect, the graphs so
        # far wrote into an input); whether a raise reruns the unit; the last graph whose kept
        # raise needs that rerun (-1: none)
        self.split_rerun = []
        self.rerun_ok = False
        self.relies_on_rerun = -1
        self.break_records = []
        self.adopted = set()       # ids of trace-made Values made real at a break
        self.stop_at = None        # step number to stop before (a graph break that resumes)
        self.read_ids = frozenset()  # ids of tensors a resume function was given to read (values/known.py)
        self.stopped = None        # the Frame the trace stopped in (see stop_at)
        self.steps = 0             # instructions executed so far (stop_at counts them)
        self.direct_call = None    # the callee Value of the CALL being executed
        self.specialize = ()       # opaque parameters to trace with their values known
        self.dynamic = None        # runtime/dynamic.py DynamicSpec: which inputs are symbolic
        self.state_scalars = True  # values/known.py: read module-state scalars (not in export)
        self.bound = None          # the root call's bound arguments (values/known.py)
        self.codes = {}            # code object inlined -> (module, qualname) (runtime/warm.py keys)
        self.hash_dependent = False  # the trace saw an id(), hash() or set order (runtime/warm.py)
        self.getitem_to_index = 0  # TransformGetItemToIndex blocks open (policy/vmap.py)

    def own(self, obj):
        """`obj` was created for real by the trace (a module built inside forward, a marked
        constant's result): the entry owns it and binds it strongly (Codegen.own)."""
        self.cg.own(obj)

    # -- global torch state ----------------------------------------------------
    def set_grad_mode(self, mode, scoped=True):
        """Switch grad mode in the graph; `scoped`: by a with-block (or a decorator), which an
        exception leaving it undoes (runtime/graph_state.py). Returns the node, if any."""
        if torch.is_grad_enabled() == mode:
            return None
        node = self.graph.create("call_function", torch._C._set_grad_enabled, [mode], {}, None, counts=False)
        node.meta["bytegraph_scoped"] = scoped
        torch._C._set_grad_enabled(mode)
        self.grad_changed = True
        return node

    def restore_state(self):
        while self.state_stack:
            self.state_stack.pop()()
        torch._C._set_grad_enabled(self.grad_enabled_at_start)

    # -- entry points ------------------------------------------------------------
    def run_root(self, fn, args):
        """Trace `fn` (a Python function); `args` maps each parameter name to its real value."""
        if torch._C._len_torch_function_stack():
            raise Unsupported("a TorchFunctionMode is active (e.g. torch.set_default_device)",
                              kind="torch_function_mode")
        code = fn.__code__
        if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
            raise Unsupported(f"compiling a generator or coroutine function ({fn.__qualname__})",
                              kind="generator_function")
        frame = Frame(self, code, fn.__globals__, fn.__qualname__, None)
        frame.user_name = getattr(fn, "__bytegraph_user_name__", None)     # runtime/resume.py
        sig_names = _param_names(code)
        opaque = getattr(fn, "__bytegraph_opaque__", ())      # a resume function's (runtime/resume.py)
        floats = getattr(fn, "__bytegraph_opaque_floats__", ())   # opaque when they hold a float
        strs = getattr(fn, "__bytegraph_opaque_strs__", ())       # opaque when they hold a str
        cells = getattr(fn, "__bytegraph_cells__", ())        # parameters that are cells (same)
        loop_iters = getattr(fn, "__bytegraph_loop_iters__", ())   # a loop's iterator (policy/breaks.py)
        self.read_ids = read_ids(fn, args)      # tensors to read (values/known.py: read stops)
        for name in sig_names:
            if name in loop_iters:
                it = wrap_loop_iter(self, args[name], LocalSource(name))
                if it is not None:
                    frame.locals[name] = it
                    continue
            if name in cells:
                src = LocalSource(name)
                self.guards.add_type(src, types.CellType)
                frame.cells[name] = wrap(self, args[name], src)
                continue
            if (name in opaque or name in floats and type(args[name]) is float) and name not in self.specialize:
                self.guards.add_type(LocalSource(name), type(args[name]))
                frame.locals[name] = OpaqueParam(name)
                if type(args[name]) in (int, float, bool, complex):      # (guarded just above)
                    frame.locals[name].pytype = type(args[name])
                continue
            if name in strs and type(args[name]) is str and name not in self.specialize:
                self.guards.add_type(LocalSource(name), str)
                frame.locals[name] = OpaqueText(name)
                continue
            # wrapped (and guarded) when first read: a parameter the code never reads, like
            # most locals a resume function receives, adds no guard
            frame.locals[name] = Lazy(args[name], LocalSource(name))
        if fn.__closure__:
            for name, cell in zip(code.co_freevars, fn.__closure__):
                frame.cells[name] = wrap(self, cell, ObjectSource(cell, f"cell_{name}"))
        with tracing(self):
            return self.run_frame(frame)

    def inline(self, code, globals_, bound, closure, qualname, direct=False, cell_params=()):
        if self.depth >= self.depth_limit:
            raise Unsupported(f"inlining deeper than {self.depth_limit} calls (unbounded recursion?)",
                              kind="recursion")
        frame = Frame(self, code, globals_, qualname, self.frame)
        self.codes[code] = (globals_.get("__name__"), qualname)
        frame.direct = direct and self.frame is not None and self.frame.inst is not None and \
            self.frame.inst.opname in ("CALL", "CALL_FUNCTION_EX")
        self.direct_call = None
        frame.locals.update(bound)
        for name in cell_params:         # a resume function's cells, passed as cell objects
            frame.cells[name] = frame.locals.pop(name)
        for name, cell in zip(code.co_freevars, closure):
            frame.cells[name] = cell
        if frame.is_generator:
            return GeneratorValue(frame)
        return self.run_nested(frame)

    def run_nested(self, frame):
        self.depth += 1
        try:
            return self.run_frame(frame)
        finally:
            self.depth -= 1

    def run_frame(self, frame):
        parent = self.frame
        self.frame = frame
        insts = frame.insts
        stop = self.stop_at if self.stop_at is not None else -1
        try:
            while not frame.done and not frame.paused:
                self.steps += 1
                if self.steps == stop:
                    self.stopped = frame
                    raise Stopped()
                inst = insts[frame.ip]
                frame.inst = inst
                frame.step = self.steps
                frame.ip += 1
                handler = HANDLERS.get(inst.opname)
                if handler is None:
                    reason = UNSUPPORTED.get(inst.opname, "no handler")
                    raise Unsupported(f"bytecode {inst.opname}: {reason}", kind="opcode")
                try:
                    handler(frame, inst)
                except UserError as e:
                    if isinstance(e.exc, ConstraintViolation):
                        raise e.exc from None     # the user's mark cannot hold: not their code's error
                    if not self.catch(frame, inst, e):
                        raise
        except (Unsupported, UserError) as e:
            unbacked = getattr(e, "unbacked", None)
            if unbacked and not hasattr(e, "producer"):
                # a size no value stands for: stop where the op that made it ran, so it runs in
                # Python and the code after it sees a real tensor (values/symbolic.py hint)
                e.producer = self.graph.producer_of(unbacked)
                e.at_producer = e.producer is not None
            if frame.inst is not None:          # where a graph break could stop (runtime/resume.py)
                if not hasattr(e, "frames"):
                    e.frames = []
                e.frames.append(frame)
            e.with_location(frame.location())
            if not getattr(e, "user_stack", None):
                e.user_stack = []
            e.user_stack.append(f"{frame.qualname} at {frame.location()}")
            raise
        finally:
            self.frame = parent
        return frame.retval

    # -- exceptions ------------------------------------------------------------------
    def catch(self, frame, inst, err):
        """Route a user-level exception to the frame's handler, as CPython's exception table
        would. Only UserError (an exception the user's code really raises) is catchable;
        Unsupported never is, so a try/except cannot swallow a capture failure."""
        h = find_handler(frame.code, inst.offset)
        if h is None:
            return False
        if getattr(err, "from_graph", False):
            raise Unsupported(f"catching an exception raised by a tensor op ({err.msg})",
                              kind="caught_tensor_error",
                              hint="the traced exception comes from fake tensors; its details differ")
        from ..values.objects import ExceptionInstanceValue
        del frame.stack[h.depth:]
        if h.lasti:
            frame.stack.append(ConstValue(inst.offset))
        value = getattr(err, "value", None)         # a re-raise: the value it re-raised
        frame.stack.append(value if value is not None and value.exc is err.exc else ExceptionInstanceValue(err.exc))
        frame.ip = h.target
        return True

    # -- globals -------------------------------------------------------------------
    def load_global(self, frame, name):
        g = frame.globals
        written = self.global_writes.get((id(g), name))
        if written is not None:
            return written
        trusted = is_trusted_module(g.get("__name__"))
        if name in g:
            obj = g[name]
            if trusted and is_static(obj):
                return wrap(self, obj, None)
            return wrap(self, obj, global_source(g, name))
        b = g.get("__builtins__", _builtins_mod)
        bdict = b if isinstance(b, dict) else b.__dict__
        if name in bdict:
            if bdict is not _builtins_mod.__dict__:
                # a function made by exec() with its own `__builtins__` dict: its names are not
                # guarded (a name replaced there later would hit a stale entry)
                raise Unsupported(f"builtin {name!r} read through a function's own __builtins__ "
                                  "dict", kind="custom_builtins")
            if not trusted:      # guarded (per module, at the end) as not shadowed by a global
                self.builtins_used.setdefault(id(g), (g, set()))[1].add(name)
            return wrap(self, bdict[name], None)
        raise UserError(NameError(f"name {name!r} is not defined"))

    def store_global(self, frame, name, value):
        self.global_writes[(id(frame.globals), name)] = value
        self.side_effects.global_write(frame.globals, name, value)


class GeneratorValue(IteratorValue):
    """A generator: a suspended Frame, resumed by next() up to its next yield."""

    def __init__(self, frame):
        super().__init__([])
        self.frame = frame
        self.started = False

    def next(self):
        f = self.frame
        if getattr(self, "frozen_by_break", False):     # the real one, made at a break, would not step
            raise Unsupported("stepping a generator that Python code received at a graph break",
                              kind="generator_materialized")
        if f.done:
            return None
        if self.started:
            f.stack.append(NONE)      # the value of the yield expression (.send() is not used)
        self.started = True
        f.paused = False
        f.tx.run_nested(f)
        if f.done:
            return None
        return f.yielded

    def reconstruct(self, cg):
        """A real generator in this one's state, for a graph break that hands it to Python or to
        a resume function (runtime/resume.py suspended_generator): only one paused at a yield."""
        from ..runtime.resume import suspended_generator
        return cg.mutable(self, lambda: suspended_generator(self, cg))

    def return_value(self):
        """What the generator returned (the value of `yield from` it), once exhausted."""
        return self.frame.retval if self.frame.retval is not None else NONE

    def unpack(self, tx):
        items = []
        while True:
            v = self.next()
            if v is None:
                return items
            items.append(v)

    def __repr__(self):
        return f"Generator({self.frame.qualname})"


def _param_names(code):
    n = code.co_argcount + code.co_kwonlyargcount
    if code.co_flags & inspect.CO_VARARGS:
        n += 1
    if code.co_flags & inspect.CO_VARKEYWORDS:
        n += 1
    return code.co_varnames[:n]
