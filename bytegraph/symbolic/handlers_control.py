"""Opcode handlers: jumps, iteration, with-blocks, return, raise, generators, match.

Branch conditions must be known at trace time (Python values, tensor metadata);
a branch on tensor data raises Unsupported (data_dependent).
"""
from ..exc import Unsupported, UserError
from ..values.base import NONE, ConstValue
from ..values.containers import IteratorValue, TupleValue
from ..values.tensor import TensorValue
from ..policy.builtins import BUILTINS
from ..policy.breaks import exit_of_modelled
from ..policy.checks import check_branch
from ..protocols import truth
from ..values.objects import ExceptionInstanceValue
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


def _branch(jump_when):
    """POP_JUMP_IF_TRUE / _FALSE: the jump is taken when the condition's truth is `jump_when`. A
    tensor condition whose value the trace does not know may still be a check that only
    decides whether to raise (policy/checks.py)."""
    def h(f, inst):
        v = f.stack.pop()
        try:
            take = bool(truth(f.tx, v)) == jump_when
        except Unsupported as e:
            if e.kind != "data_dependent":
                raise
            take = check_branch(f, inst, v, jump_when)
            if take is None:
                raise
        if take:
            f.ip = inst.target
    return h


handler("POP_JUMP_FORWARD_IF_TRUE", "POP_JUMP_BACKWARD_IF_TRUE")(_branch(True))
handler("POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_BACKWARD_IF_FALSE")(_branch(False))
handler("POP_JUMP_FORWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NONE")(_pop_jump(_is_none))
handler("POP_JUMP_FORWARD_IF_NOT_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE")(
    _pop_jump(lambda f, v: not _is_none(f, v)))


@handler("JUMP_IF_TRUE_OR_POP")
def _jump_if_true_or_pop(f, inst):
    if truth(f.tx, f.stack[-1]):
        f.ip = inst.target
    else:
        f.stack.pop()


@handler("JUMP_IF_FALSE_OR_POP")
def _jump_if_false_or_pop(f, inst):
    if not truth(f.tx, f.stack[-1]):
        f.ip = inst.target
    else:
        f.stack.pop()


def _rows_stepped(tx):
    """A loop over a tensor's rows is stepped (one resume function for every row) under
    automatic dynamic only: the rows' offsets and strides are symbolic there (runtime/dynamic.py
    `layout_free`); with static ones every row would recompile the stepped entry."""
    return tx.dynamic is not None and tx.dynamic.mode is None


@handler("GET_ITER")
def _get_iter(f, inst):
    v = f.stack.pop()
    it = BUILTINS[iter](f.tx, v)
    rows = _rows_stepped(f.tx)
    if type(it) is IteratorValue and (type(v) is TupleValue or type(v) is TensorValue and rows):
        # only this loop's stack holds it (policy/breaks.py: loop_step_iter); a tensor's
        # iterator is iter(t.unbind(0)), a tuple iterator too
        it.from_tuple = True
        it.rows = rows               # its items may differ in storage offset (loop_step_iter)
    f.stack.append(it)


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
    f.yielded = f.stack.pop()
    f.paused = True          # GeneratorValue.next resumes here


@handler("GET_YIELD_FROM_ITER")
def _get_yield_from_iter(f, inst):
    f.stack.append(BUILTINS[iter](f.tx, f.stack.pop()))


@handler("SEND")
def _send(f, inst):
    """`yield from it` inside a generator we run to completion: forward it's next item, or
    finish the delegation (push its return value, None) and jump past the loop."""
    f.stack.pop()                 # the value sent in: always None here
    it = f.stack[-1]
    v = it.next()
    if v is None:
        ret = getattr(it, "return_value", None)
        f.stack[-1] = ret() if ret is not None else NONE
        f.ip = inst.target
    else:
        f.stack.append(v)


@handler("RAISE_VARARGS")
def _raise(f, inst):
    args = f.popn(inst.arg)
    if not args:                                  # bare `raise`: re-raise the handled exception
        current = f.tx.exc_info
        if not isinstance(current, ExceptionInstanceValue):
            raise UserError(RuntimeError("No active exception to reraise"))
        raise _raising(current)
    exc = _as_exception(args[0])
    if inst.arg == 2:
        cause = args[1]
        exc.__cause__ = None if cause.is_const() and cause.as_python() is None else _as_exception(cause)
        exc.__suppress_context__ = True
    current = f.tx.exc_info          # raised while handling another: CPython chains it
    if isinstance(current, ExceptionInstanceValue) and current.exc is not exc:
        exc.__context__ = current.exc
    raise UserError(exc)


def _as_exception(v):
    from ..policy.calls import ExceptionValue
    if isinstance(v, ExceptionValue):
        return v.as_exception()
    if isinstance(v, ExceptionInstanceValue):
        return v.exc
    if v.is_const() and isinstance(v.as_python(), type) and issubclass(v.as_python(), BaseException):
        return v.as_python()()
    return TypeError("exceptions must derive from BaseException")


# --------------------------------------------------------------------------
# exception handlers (reached through the exception table, see Tracer.catch)

class SavedExcInfo:
    """The stack slot PUSH_EXC_INFO fills: the exception state before the except block (what
    POP_EXCEPT restores), and the exception the block handles (what a resume function entered
    inside the block must make current again, runtime/resume.py)."""
    __slots__ = ("prev", "handled")

    def __init__(self, prev, handled):
        self.prev = prev
        self.handled = handled


@handler("PUSH_EXC_INFO")
def _push_exc_info(f, inst):
    exc = f.stack.pop()
    f.stack.append(SavedExcInfo(f.tx.exc_info, exc))
    f.stack.append(exc)
    f.tx.exc_info = exc


@handler("POP_EXCEPT")
def _pop_except(f, inst):
    saved = f.stack.pop()
    f.tx.exc_info = saved.prev if type(saved) is SavedExcInfo else saved


@handler("CHECK_EXC_MATCH")
def _check_exc_match(f, inst):
    typ = f.stack.pop().as_python()
    exc = f.stack[-1]
    f.stack.append(ConstValue(isinstance(exc.exc, typ)))


@handler("RERAISE")
def _reraise(f, inst):
    exc = f.stack.pop()
    if inst.arg:
        f.stack.pop()     # lasti: CPython restores f_lasti from it; we report the handler's line
    raise _raising(exc)


def _raising(value):
    """The UserError re-raising the exception `value` holds: a handler that catches it gets
    `value` itself (Tracer.catch), so a caller's exception keeps its source (the resume
    function of a handler re-raises the very object eager does, runtime/resume.py raise_stop)."""
    e = UserError(value.exc)
    e.value = value
    return e


@handler("WITH_EXCEPT_START")
def _with_except_start(f, inst):
    exc = f.stack[-1]
    exit_fn = f.stack[-4]
    from ..values.objects import ClassValue
    res = exit_fn.call(f.tx, [ClassValue(type(exc.exc)), exc, NONE], {})
    f.stack.append(res)


def bind_exit(ctx):
    """type(ctx).__exit__ bound to ctx, as the with statement looks it up."""
    cls = type(ctx)
    return cls.__exit__.__get__(ctx, cls)


class _ExitValue:
    """The bound __exit__ BEFORE_WITH leaves on the stack; CALL runs it."""
    source = None           # (a resume function's GeneratorHandoff parameter wraps as one)

    def __init__(self, ctx, user_exit=None):
        self.ctx = ctx
        self.user_exit = user_exit

    def call(self, tx, args, kwargs):
        if self.user_exit is not None:
            return self.user_exit.call(tx, args, kwargs)
        from ..policy.calls import GenCtxValue
        if type(self.ctx) is GenCtxValue and len(args) == 3:     # a generator sees the exception
            return self.ctx.exit(tx, args[1])
        return self.ctx.exit(tx)

    def reconstruct(self, cg):
        """The real bound __exit__ a resume function finds on its stack when a graph break
        stopped the trace inside this with-block (runtime/resume.py)."""
        if self.user_exit is not None:
            return f"{cg.const(bind_exit, 'bind_exit')}({cg.expr(self.ctx)})"
        return exit_of_modelled(self.ctx, cg)


class _CachedPropertyLock:
    """`with self.lock:` in Python 3.11's `functools.cached_property.__get__`: the trace takes
    no lock. The lock only serialises concurrent first reads of the property (a second thread
    would wait, then find the value cached); one thread's trace observes nothing of it, and
    Python 3.12 removed the lock from cached_property. A graph break inside the block refuses
    (policy/breaks.py exit_of_modelled), so the resume never runs without the real lock held."""

    def enter(self, tx):
        return ConstValue(True)          # RLock.__enter__ returns acquire()'s result

    def exit(self, tx):
        return ConstValue(False)

    def __repr__(self):
        return "cached_property's lock"


def _is_cached_property_lock(f, ctx):
    import functools
    get = getattr(functools.cached_property, "__get__", None)
    if getattr(get, "__code__", None) is not f.code:
        return False
    try:
        obj = ctx.as_python()
    except Exception:
        return False
    return type(obj) is _RLOCK_TYPE


_RLOCK_TYPE = type(__import__("threading").RLock())


@handler("BEFORE_WITH")
def _before_with(f, inst):
    ctx = f.stack.pop()
    tx = f.tx
    if _is_cached_property_lock(f, ctx):
        ctx = _CachedPropertyLock()
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
        f.stack.append(_ExitValue(ctx, exit_))
        f.stack.append(enter.call(tx, [], {}))
        return
    raise Unsupported(f"with-block over {ctx}", kind="with")


# --------------------------------------------------------------------------
# structural pattern matching (the subject's shape is a trace-time fact)

@handler("MATCH_SEQUENCE")
def _match_sequence(f, inst):
    from ..values.containers import BaseSeq
    v = f.stack[-1]
    is_seq = isinstance(v, BaseSeq) or (type(v) is ConstValue and isinstance(v.value, (tuple, range)))
    f.stack.append(ConstValue(is_seq))


@handler("MATCH_MAPPING")
def _match_mapping(f, inst):
    from ..values.containers import DictValue
    f.stack.append(ConstValue(isinstance(f.stack[-1], DictValue)))


@handler("GET_LEN")
def _get_len(f, inst):
    f.stack.append(BUILTINS[len](f.tx, f.stack[-1]))


@handler("MATCH_KEYS")
def _match_keys(f, inst):
    from ..values.containers import TupleValue, py_key
    keys = f.stack[-1].unpack(f.tx)
    subject = f.stack[-2]
    if all(py_key(k) in subject.items for k in keys):
        f.stack.append(TupleValue([subject.items[py_key(k)] for k in keys]))
    else:
        f.stack.append(NONE)


@handler("MATCH_CLASS")
def _match_class(f, inst):
    from ..values.containers import TupleValue
    names = f.stack.pop().as_python()
    cls = f.stack.pop()
    subject = f.stack.pop()
    isinst = BUILTINS[isinstance](f.tx, subject, cls).as_python()
    if not isinst:
        f.stack.append(NONE)
        return
    klass = cls.as_python()
    positional = getattr(klass, "__match_args__", ())
    if inst.arg > len(positional):
        raise Unsupported("match on a class with more positional patterns than __match_args__",
                          kind="match")
    attrs = list(positional[:inst.arg]) + list(names)
    f.stack.append(TupleValue([subject.getattr(f.tx, a) for a in attrs]))
