"""Opcode handlers: calls (PRECALL/KW_NAMES/CALL, CALL_FUNCTION_EX) and MAKE_FUNCTION."""
from ..exc import Unsupported
from ..values.containers import DictValue, TupleValue
from ..values.functions import NestedFnValue
from .table import handler, NULL


@handler("KW_NAMES")
def _kw_names(f, inst):
    f.kw_names = inst.argval


@handler("CALL")
def _call(f, inst):
    argc = inst.arg
    stack = f.stack
    args = stack[len(stack) - argc:] if argc else []
    if stack[-argc - 2] is NULL:
        fn = stack[-argc - 1]
    else:
        fn = stack[-argc - 2]
        args = [stack[-argc - 1]] + args
    del stack[len(stack) - argc - 2:]
    kwargs = {}
    if f.kw_names:
        n = len(f.kw_names)
        kwargs = dict(zip(f.kw_names, args[-n:]))
        args = args[:-n]
        f.kw_names = None
    f.tx.direct_call = fn      # a user function inlined for exactly this call (runtime/resume.py)
    stack.append(fn.call(f.tx, args, kwargs))


@handler("CALL_FUNCTION_EX")
def _call_function_ex(f, inst):
    kwargs = f.stack.pop() if inst.arg & 1 else None
    args = f.stack.pop()
    fn = f.stack.pop()
    if f.stack and f.stack[-1] is NULL:
        f.stack.pop()
    if kwargs is not None and not isinstance(kwargs, DictValue):
        raise Unsupported("** with a non-dict mapping", kind="call")
    kw = {k: v for k, v in kwargs.items.items()} if kwargs is not None else {}
    unpacked = args.unpack(f.tx)
    f.tx.direct_call = fn      # see _call
    f.stack.append(fn.call(f.tx, unpacked, kw))


@handler("MAKE_FUNCTION")
def _make_function(f, inst):
    flags = inst.arg
    code = f.stack.pop().as_python()
    closure = f.stack.pop().items if flags & 0x08 else ()
    if flags & 0x04:
        f.stack.pop()                    # annotations: not needed to run the function
    kwdefaults = dict(f.stack.pop().items) if flags & 0x02 else {}
    defaults = f.stack.pop().items if flags & 0x01 else []
    qualname = f"{f.qualname}.<locals>.{code.co_name}"
    f.stack.append(NestedFnValue(code, f.globals, qualname, defaults, kwdefaults, tuple(closure)))
