"""Opcode handlers: jumps, iteration, with-blocks, return, raise, generators.

Branch conditions must be known at trace time (Python values, tensor metadata);
a branch on tensor data raises Unsupported (data_dependent).
"""
from ..exc import Unsupported, UserError
from ..values.base import NONE, ConstValue
from ..values.containers import IteratorValue
from ..values.builtins import BUILTINS
from .table import handler


@handler("JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
def _jump(f, inst):
    f.ip = inst.target


def _pop_jump(test):
    def h(f, inst):
        v = f.stack.pop()
        if test(f, v):
            f.ip = inst.target
    return h


def _is_none(f, v):
    return v.is_const() and type(v) is ConstValue and v.value is None


handler("POP_JUMP_FORWARD_IF_TRUE", "POP_JUMP_BACKWARD_IF_TRUE")(_pop_jump(lambda f, v: v.truth(f.tx)))
handler("POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_BACKWARD_IF_FALSE")(
    _pop_jump(lambda f, v: not v.truth(f.tx)))
handler("POP_JUMP_FORWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NONE")(_pop_jump(_is_none))
handler("POP_JUMP_FORWARD_IF_NOT_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE")(
    _pop_jump(lambda f, v: not _is_none(f, v)))


@handler("JUMP_IF_TRUE_OR_POP")
def _jump_if_true_or_pop(f, inst):
    if f.stack[-1].truth(f.tx):
        f.ip = inst.target
    else:
        f.stack.pop()


@handler("JUMP_IF_FALSE_OR_POP")
def _jump_if_false_or_pop(f, inst):
    if not f.stack[-1].truth(f.tx):
        f.ip = inst.target
    else:
        f.stack.pop()


@handler("GET_ITER")
def _get_iter(f, inst):
    f.stack.append(BUILTINS[iter](f.tx, f.stack.pop()))


@handler("FOR_ITER")
def _for_iter(f, inst):
    it = f.stack[-1]
    v = it.next()
    if v is None:
        f.stack.pop()
        f.ip = inst.target
    else:
        f.stack.append(v)


@handler("RETURN_VALUE")
def _return_value(f, inst):
    f.retval = f.stack.pop()
    f.done = True


@handler("RETURN_GENERATOR")
def _return_generator(f, inst):
    f.stack.append(NONE)     # popped by the POP_TOP that follows


@handler("YIELD_VALUE")
def _yield_value(f, inst):
    if f.yields is None:
        raise Unsupported("yield outside a generator", kind="generator")
    f.yields.append(f.stack.pop())
    f.stack.append(NONE)     # the value .send() would deliver


@handler("RAISE_VARARGS")
def _raise(f, inst):
    args = f.popn(inst.arg)
    exc = None
    if args:
        v = args[0]
        from ..runtime.registry import ExceptionValue
        if isinstance(v, ExceptionValue):
            exc = v.as_exception()
        elif v.is_const() and isinstance(v.as_python(), type):
            exc = v.as_python()()
    raise UserError(exc if isinstance(exc, BaseException) else RuntimeError("raise in traced code"))


class _ExitValue:
    """The bound __exit__ BEFORE_WITH leaves on the stack; CALL runs it."""

    def __init__(self, ctx, user_exit=None):
        self.ctx = ctx
        self.user_exit = user_exit

    def call(self, tx, args, kwargs):
        if self.user_exit is not None:
            return self.user_exit.call(tx, args, kwargs)
        return self.ctx.exit(tx)


@handler("BEFORE_WITH")
def _before_with(f, inst):
    ctx = f.stack.pop()
    tx = f.tx
    if hasattr(ctx, "enter") and hasattr(ctx, "exit"):
        f.stack.append(_ExitValue(ctx))
        f.stack.append(ctx.enter(tx))
        return
    from ..values.objects import _InstanceBase, bind_class_attr, _MISSING
    if isinstance(ctx, _InstanceBase):
        enter = bind_class_attr(tx, ctx, ctx.cls, "__enter__")
        exit_ = bind_class_attr(tx, ctx, ctx.cls, "__exit__")
        if enter is _MISSING or exit_ is _MISSING:
            raise UserError(TypeError(f"{ctx.cls.__name__!r} object does not support the context "
                                      "manager protocol"))
        if ctx.cls.__module__ == "contextlib":
            raise Unsupported("contextlib context managers", kind="with")
        f.stack.append(_ExitValue(ctx, exit_))
        f.stack.append(enter.call(tx, [], {}))
        return
    raise Unsupported(f"with-block over {ctx}", kind="with")
