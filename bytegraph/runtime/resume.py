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
import types
import weakref

import torch

from ..bytecode.decode import decode, find_handler
from ..bytecode.resume import resume_code, NULL as CODE_NULL
from ..exc import Unsupported
from ..policy.calls import _in, _disabled
from ..symbolic.table import NULL
from ..symbolic.interpreter import Lazy
from ..values.opaque import Opaque
from ..values.base import is_trusted_module

_POP_JUMPS = {"POP_JUMP_FORWARD_IF_TRUE": True, "POP_JUMP_BACKWARD_IF_TRUE": True,
              "POP_JUMP_FORWARD_IF_FALSE": False, "POP_JUMP_BACKWARD_IF_FALSE": False}


def stop_index(code, index):
    """Where to stop the trace for a break raised while the root frame ran instruction
    `index`: the index of the instruction to run in Python, or None (no break there)."""
    insts = decode(code)
    inst = insts[index]
    if inst.opname == "CALL" and index and insts[index - 1].opname == "PRECALL":
        return index - 1
    if inst.opname == "CALL_FUNCTION_EX" or inst.opname in _POP_JUMPS:
        return index
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
    code = fn.__code__
    if code.co_flags & 0x2A0:          # generator, coroutine, async generator
        return False
    return not is_trusted_module(getattr(fn, "__module__", None))


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

    def get(self, fn, code, offset, layout, dead, compiled=True, opaque=()):
        """(callable, byte offset of the original code in the resume code). `compiled=False`:
        the plain function (exception handlers after a break run as Python). `opaque`: the
        positions of parameters that get item() results (values/opaque.py, OpaqueParam)."""
        key = (code, offset, layout, dead, compiled, opaque)
        hit = self.entries.get(key)
        if hit is None:
            name = f"resume_in_{code.co_name}_at_{decode_line(code, offset)}"
            rcode, params, shift = resume_code(code, offset, [CODE_NULL if n else None for n in layout],
                                               dead, name)
            rfn = types.FunctionType(rcode, fn.__globals__, name, None, fn.__closure__)
            rfn.__bytegraph_opaque__ = frozenset(params[i] for i in opaque)
            hit = self.entries[key] = (self.compile_fn(rfn) if compiled else rfn, shift)
        return hit


def decode_line(code, offset):
    for inst in decode(code):
        if inst.offset == offset:
            return inst.line
    return code.co_firstlineno


def _guarded(line, h, inst, below, layout, local_args, stack_args, fn, code, cg, resumes, dead, insts):
    """`line` inside try: an exception it raises goes where CPython's exception table sends
    it -- the handler's code, with the stack cut to the handler's depth, the raising offset
    (if the handler wants it) and the exception pushed -- run as plain Python (handlers
    after a break are not compiled)."""
    kept = sum(1 for n in layout[:h.depth] if not n)          # stack values below the cut
    exc_layout = layout[:h.depth] + ((False,) if h.lasti else ()) + (False,)
    r_exc, shift = resumes.get(fn, code, insts[h.target].offset, exc_layout, dead, compiled=False)
    extra = [str((inst.offset + shift) // 2)] if h.lasti else []
    args = ", ".join(local_args + stack_args[:kept] + extra + ["__x"])
    return ["__x = None",
            "try:",
            f"    {line}",
            "except BaseException as __e:",
            "    __x = __e",
            "if __x is not None:",
            f"    return {cg.const(r_exc, 'handler')}({args})"]


def _local_arg(frame, name, cg, temp):
    v = frame.locals.get(name)
    if v is None:
        return "None"
    if type(v) is Lazy:          # a parameter the trace never read: passed on as it came
        return v.source.expr(cg)
    return temp(cg.expr(v))


def break_tail(tracer, fn, cg, resumes, trampoline):
    """Entry lines that end a trace stopped before a root instruction (see module docstring).
    Returns (lines evaluated before the side effects, lines after them)."""
    frame = tracer.stopped
    code = frame.code
    if code.co_cellvars:
        raise Unsupported("a graph break in a function whose locals are captured by closures",
                          kind="graph_break_cells")
    inst = frame.insts[frame.ip]
    handler = find_handler(code, inst.offset)
    stack = list(frame.stack)
    insts = frame.insts
    if inst.opname == "PRECALL":
        argc = inst.arg
        items = stack[len(stack) - argc - 2:]
        below = stack[:len(stack) - argc - 2]
        if items[0] is NULL:
            callee, args = items[1], items[2:]
        else:
            callee, args = items[0], items[1:]
        kwnames = frame.kw_names or ()
        after = insts[frame.ip + 2].offset        # PRECALL, CALL, then the next instruction
        op = ("call", callee, args[:len(args) - len(kwnames)], dict(zip(kwnames, args[len(args) - len(kwnames):])))
    elif inst.opname == "CALL_FUNCTION_EX":
        has_kw = inst.arg & 1
        kw = stack.pop() if has_kw else None
        star = stack.pop()
        callee = stack.pop()
        if stack and stack[-1] is NULL:
            stack.pop()
        below = stack
        after = insts[frame.ip + 1].offset
        op = ("call_ex", callee, star, kw)
    else:
        below = stack[:-1]
        op = ("branch", stack[-1], _POP_JUMPS[inst.opname])
        after = None
    varnames = list(code.co_varnames)
    dead = tuple(v for v in varnames if v not in frame.locals)
    pre = []

    def temp(expr):
        name = f"__k{len(pre)}"
        pre.extend(cg.lines)
        cg.lines.clear()
        pre.append(f"{name} = {expr}")
        return name

    local_args = [_local_arg(frame, v, cg, temp) for v in varnames]
    stack_args = [temp(cg.expr(v)) for v in below if v is not NULL]
    layout = tuple(v is NULL for v in below)
    # parameters that receive scalars the trace saw as opaque stay opaque (values/opaque.py)
    values = [frame.locals.get(v) for v in varnames] + [v for v in below if v is not NULL]
    opaque = tuple(i for i, v in enumerate(values) if isinstance(v, Opaque) and v.scalar)
    post = []
    if op[0] == "branch":
        cond = temp(cg.expr(op[1]))
        target = insts[inst.target].offset
        fall = insts[frame.ip + 1].offset
        jump_if = op[2]
        r_jump, _ = resumes.get(fn, code, target, layout, dead, opaque=opaque)
        r_fall, _ = resumes.get(fn, code, fall, layout, dead, opaque=opaque)
        args = ", ".join(local_args + stack_args)
        test = f"{'' if jump_if else 'not '}{cond}"
        if handler is not None:      # bool() of the tensor can raise (more than one element)
            post += _guarded(f"__c = {test}", handler, inst, below, layout, local_args, stack_args,
                             fn, code, cg, resumes, dead, insts)
            test = "__c"
        post.append(f"if {test}:")
        post.append(f"    return {cg.const(r_jump, 'resume')}({args})")
        post.append(f"return {cg.const(r_fall, 'resume')}({args})")
        return pre, post
    tramp = cg.const(trampoline, "trampoline")
    if op[0] == "call":
        _, callee, args, kwargs = op
        parts = [temp(cg.expr(a)) for a in args] + [f"{k}={temp(cg.expr(v))}" for k, v in kwargs.items()]
        call = f"{tramp}({temp(cg.expr(callee))})({', '.join(parts)})"
    else:
        _, callee, star, kw = op
        call = f"{tramp}({temp(cg.expr(callee))})(*{temp(cg.expr(star))}" + \
            (f", **{temp(cg.expr(kw))})" if kw is not None else ")")
    if type(callee).__name__ == "_TensorRead" and callee.name == "item":
        opaque += (len(values),)       # the item() result itself
    r, _ = resumes.get(fn, code, after, layout + (False,), dead, opaque=opaque)
    if handler is None:
        post.append(f"__c = {call}")
    else:
        post += _guarded(f"__c = {call}", handler, inst, below, layout, local_args, stack_args,
                         fn, code, cg, resumes, dead, insts)
    post.append(f"return {cg.const(r, 'resume')}({', '.join(local_args + stack_args + ['__c'])})")
    return pre, post
