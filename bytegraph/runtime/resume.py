"""Graph breaks that stop the trace: run one instruction in Python, resume in compiled code.

When the trace meets something whose outcome the rest of the function depends on (a
branch on tensor data, a call bytegraph cannot trace and that may change anything), it
cannot go on. The converter then traces again up to just *before* that instruction of
the compiled function's own frame (the root frame; a break deeper in inlined calls stops
at the root's call that led there), and ends the entry with:

1. the live stack values and locals of the root frame, evaluated into temporaries;
2. the side effects logged so far, replayed;
3. the instruction, in Python: the call (a Python callee goes through the trampoline, so
   it is compiled in its turn, as its own unit), or the branch (`if cond:`);
4. `return resume(<locals>, <stack>)`: a resume function built from the rest of the code
   (bytecode/resume.py), compiled through the same runtime, with its own cache.

Why split at the root's call rather than resuming inside the inlined frame: the callee
then has one compiled unit (its own cache, shared by every caller), and a nested break
costs one more Python call instead of a chain of resume functions per inlining depth.

What stays uncompiled: code called from inside C functions (a `sorted` key, a hook
called by torch), and the callees of the Python code run at the break that are not
themselves a call the entry makes (e.g. what `print` calls).
"""
import operator
import sysconfig
import types
import weakref

import torch

from ..bytecode.decode import decode, find_handler
from ..bytecode.resume import resume_code, NULL as CODE_NULL, EXC as CODE_EXC
from ..exc import Unsupported
from ..policy.calls import _in, _disabled
from ..symbolic.table import NULL
from ..symbolic.interpreter import Lazy
from ..symbolic.handlers_control import SavedExcInfo
from ..values.opaque import Opaque
from ..values.base import is_trusted_module

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
}


def _resumable(frame):
    """Can a resume function be made from this frame's code and state?"""
    if frame.is_generator:
        return False
    return all(getattr(frame.cells.get(n), "real", None) is not None for n in frame.code.co_freevars)


def choose_stop(chain):
    """`chain`: (frame, instruction, step) from the innermost frame out, as a trace stopped.
    The step to stop before: the innermost frame whose instruction can run in Python and
    from which every frame out to the root can be resumed (each was inlined for exactly its
    parent's CALL, outside any try/with in the parent); else None."""
    for d, (frame, inst, step) in enumerate(chain):
        if is_trusted_module(frame.globals.get("__name__")) and d < len(chain) - 1:
            continue           # inside library code (logging, torch): run the user's call to it
        outer = chain[d:]
        if not all(_resumable(f) for f, _, _ in outer):
            continue
        if any(not f.direct or find_handler(p.code, pi.offset) is not None
               for (f, _, _), (p, pi, _) in zip(outer, outer[1:])):
            continue
        if d < len(chain) - 1 and find_handler(frame.code, inst.offset) is not None:
            continue           # a try/with around a break in an inlined frame: stop further out
        stop = _stop_step(frame, inst, step)
        if stop is not None:
            return stop
    return None


class Trampoline:
    """Calls the entry makes into Python code: compiled through the runtime (one compiled
    unit per function, cached weakly, with the caller's backend)."""

    def __init__(self, compile_fn):
        self.compile_fn = compile_fn
        self.cache = weakref.WeakKeyDictionary()

    def _compiled(self, fn):
        c = self.cache.get(fn)
        if c is None:
            c = self.cache[fn] = self.compile_fn(fn)
        return c

    def __call__(self, target):
        if type(target) is types.FunctionType:
            return self._compiled(target) if _compilable(target) else target
        if type(target) is types.MethodType and type(target.__func__) is types.FunctionType:
            if _compilable(target.__func__):
                return types.MethodType(self._compiled(target.__func__), target.__self__)
            return target
        if isinstance(target, torch.nn.Module) and _plain_module_call(target):
            fwd = type(target).forward
            if type(fwd) is types.FunctionType and _compilable(fwd):
                return types.MethodType(self._compiled(fwd), target)
        return target


def _compilable(fn):
    if getattr(fn, "__bytegraph_state__", None) is not None or _in(_disabled, fn):
        return False
    if fn.__closure__ and "<locals>" in fn.__qualname__:
        return False           # a closure made per call: its own cache would start anew each call
    code = fn.__code__
    if code.co_flags & 0x2A0:          # generator, coroutine, async generator
        return False
    if code.co_filename.startswith(_STDLIB) and "site-packages" not in code.co_filename:
        return False           # the standard library (logging, copy, ...) runs as it is
    return not is_trusted_module(getattr(fn, "__module__", None))


_STDLIB = sysconfig.get_paths()["stdlib"]


def _plain_module_call(m):
    """Module.__call__ would only call forward: no hooks of any kind."""
    from torch.nn.modules import module as mm
    if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks:
        return False
    return not (mm._global_forward_hooks or mm._global_forward_pre_hooks or mm._global_backward_hooks
                or mm._global_backward_pre_hooks or getattr(mm, "_global_forward_hooks_always_called", None))


class ResumeCache:
    """Resume functions of one compiled function, by (code, resume offset, stack layout,
    dead locals); each is compiled once, through the runtime."""

    def __init__(self, compile_fn):
        self.compile_fn = compile_fn
        self.entries = {}

    def get(self, frame, offset, layout, dead, compiled=True, opaque=(), inner=None):
        """(callable, byte offset of the original code in the resume code) for `frame`'s code.
        `compiled=False`: the plain function (exception handlers after a break, and the
        resume functions of inlined frames, which the root's resume function calls first).
        `opaque`: positions of parameters that get item() results (values/opaque.py).
        `inner`: (function, number of arguments) to call first (bytecode/resume.py)."""
        code = frame.code
        key = (code, offset, layout, dead, compiled, opaque, inner)
        hit = self.entries.get(key)
        if hit is None:
            name = f"resume_in_{code.co_name}_at_{decode_line(code, offset)}"
            rcode, params, shift = resume_code(code, offset, [_SLOT[k] for k in layout],
                                               dead, name, inner)
            closure = tuple(frame.cells[n].real for n in rcode.co_freevars) or None   # __class__
            rfn = types.FunctionType(rcode, frame.globals, name, None, closure)
            rfn.__bytegraph_cells__ = frozenset(rcode.co_cellvars)
            rfn.__bytegraph_opaque__ = frozenset(params[i] for i in opaque)
            hit = self.entries[key] = (self.compile_fn(rfn) if compiled else rfn, shift)
        return hit


_SLOT = {"v": None, "n": CODE_NULL, "x": CODE_EXC}


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
    chain = []
    f = frame
    while f is not None:
        chain.append(f)
        f = f.parent
    pre = []
    temp = cg.temps("__k", pre)

    inst = frame.insts[frame.ip]
    below, op, after = _split_stack(frame, inst)
    # per frame, innermost first: (argument expressions, layout, dead locals, opaque flags)
    states = [_frame_state(frame, below, cg, temp)]
    for f in chain[1:]:
        states.append(_frame_state(f, list(f.stack), cg, temp))
    handler = find_handler(frame.code, inst.offset) if len(chain) == 1 else None

    def resume_chain(first_offset, first_layout, result=None, result_opaque=False):
        """The root's resume function (compiled), which calls the inner frames' resume
        functions (plain) first, innermost out, and the argument list it takes: per frame
        from the root in, its locals and stack values (then `result`, the value the
        instruction run in Python pushed)."""
        fn_inner, n_inner = None, 0
        args_all, flags_all = [], []
        for j, f in enumerate(chain):
            fargs, layout, dead, flags = states[j]
            if j == 0:
                offset, layout = first_offset, first_layout
                fargs = fargs + ([result] if result else [])
                flags = flags + ([result_opaque] if result else [])
            else:
                offset = f.insts[f.ip].offset       # after its CALL: the callee's result pushed
            args_all = fargs + args_all
            flags_all = flags + flags_all
            root = j == len(chain) - 1
            opaque = tuple(i for i, o in enumerate(flags_all) if o) if root else ()
            fn_inner, _ = resumes.get(f, offset, layout, dead, compiled=root, opaque=opaque,
                                      inner=(fn_inner, n_inner) if fn_inner is not None else None)
            n_inner = len(args_all)
        return cg.const(fn_inner, "resume"), ", ".join(args_all)

    post = []
    if op[0] == "branch":
        cond = temp(cg.expr(op[1]))
        target = frame.insts[inst.target].offset
        fall = frame.insts[frame.ip + 1].offset
        layout = states[0][1]
        r_jump, args = resume_chain(target, layout)
        r_fall, _ = resume_chain(fall, layout)
        test = f"{'' if op[2] else 'not '}{cond}"
        if handler is not None:      # bool() of the tensor can raise (more than one element)
            post += _guarded(f"__c = {test}", handler, inst, frame, states[0], cg, resumes)
            test = "__c"
        post.append(f"if {test}:")
        post.append(f"    return {r_jump}({args})")
        post.append(f"return {r_fall}({args})")
        return pre, post
    tramp = cg.const(trampoline, "trampoline")
    callee = op[1]
    if op[0] == "call":
        _, _, args, kwargs = op
        parts = [temp(cg.expr(a)) for a in args] + [f"{k}={temp(cg.expr(v))}" for k, v in kwargs.items()]
        call = f"{tramp}({temp(cg.expr(callee))})({', '.join(parts)})"
    elif op[0] == "call_ex":
        _, _, star, kw = op
        call = f"{tramp}({temp(cg.expr(callee))})(*{temp(cg.expr(star))}" + \
            (f", **{temp(cg.expr(kw))})" if kw is not None else ")")
    is_item = type(callee).__name__ == "_TensorRead" and callee.name == "item"
    pushed = ("v",)                   # what the instruction leaves on the stack
    if op[0] == "python":             # one instruction as a call of a Python builtin
        _, fn, operands, pushed = op
        parts = [repr(a) if type(a) is str else temp(cg.expr(a)) for a in operands]
        call = f"{cg.const(fn, getattr(fn, '__name__', 'op'))}({', '.join(parts)})"
    r, args = resume_chain(after, states[0][1] + pushed, "__c" if "v" in pushed else None, is_item)
    line = f"__c = {call}" if pushed else call
    if handler is None:
        post.append(line)
    else:
        post += _guarded(line, handler, inst, frame, states[0], cg, resumes)
    post.append(f"return {r}({args})")
    return pre, post


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
    one = _ONE_STEP.get(inst.opname)
    if one is not None:
        n, make = one
        fn, operands, pushed = make(inst, stack[len(stack) - n:])
        return stack[:len(stack) - n], ("python", fn, operands, pushed), insts[frame.ip + 1].offset
    return stack[:-1], ("branch", stack[-1], _POP_JUMPS[inst.opname]), None


def _frame_state(frame, stack, cg, temp):
    """(argument expressions, stack layout, dead locals, opaque flags) of one frame."""
    code = frame.code
    varnames = _local_names(code)
    values = [frame.locals.get(v) for v in varnames] + [v for v in stack if v is not NULL]
    args = ["None" if v == "__class__" and v in code.co_freevars      # stays a free variable
            else _cell_arg(frame, v, cg, temp) if v in code.co_cellvars or v in code.co_freevars
            else _local_arg(frame, v, cg, temp) for v in varnames] + \
        [temp(cg.expr(v.handled if type(v) is SavedExcInfo else v)) for v in stack if v is not NULL]
    flags = [isinstance(v, Opaque) and v.scalar for v in values]
    layout = tuple("n" if v is NULL else "x" if type(v) is SavedExcInfo else "v" for v in stack)
    dead = tuple(v for v in varnames if v not in frame.locals and v not in code.co_cellvars
                 and v not in code.co_freevars)
    return args, layout, dead, flags


def _local_names(code):
    """The resume function's parameters before the stack slots (bytecode/resume.py): the
    original's local slots in order -- locals, cell variables, free variables."""
    return list(code.co_varnames) + [c for c in code.co_cellvars if c not in code.co_varnames] + \
        list(code.co_freevars)


def _guarded(line, h, inst, frame, state, cg, resumes):
    """`line` inside try: an exception it raises goes where CPython's exception table sends
    it -- the handler's code, with the stack cut to the handler's depth, the raising offset
    (if the handler wants it) and the exception pushed -- compiled like any resume
    function. Root frame only."""
    args, layout, dead, _ = state
    nlocals = len(_local_names(frame.code))
    kept = sum(1 for k in layout[:h.depth] if k != "n")       # stack values below the cut
    exc_layout = layout[:h.depth] + (("v",) if h.lasti else ()) + ("v",)
    r_exc, shift = resumes.get(frame, frame.insts[h.target].offset, exc_layout, dead)
    extra = [str((inst.offset + shift) // 2)] if h.lasti else []
    call_args = ", ".join(args[:nlocals + kept] + extra + ["__x"])
    return ["__x = None",
            "try:",
            f"    {line}",
            "except BaseException as __e:",
            "    __x = __e",
            "if __x is not None:",
            f"    return {cg.const(r_exc, 'handler')}({call_args})"]


