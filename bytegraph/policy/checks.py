"""Checks on tensor data kept in the graph: `assert <tensor condition>[, "message"]` and
`if <tensor condition>: raise ValueError("message")` (a builtin exception built from string
constants). Eager only reads the condition to decide whether to raise; the code past it is the
same either way. So instead of stopping the trace at `bool()`, the graph records one
`check_tensor` node, which raises eager's exception when the condition has the value that
makes eager raise, and the trace goes on down the branch that does not raise.

This is exact where the graph runs op by op (the eager backend): the ops before the check ran,
the ones after it did not, as in eager. It refuses (the branch stops the trace as before) when
the exception would not simply leave the compiled function -- but where a raise makes the entry
run its unit again eagerly (runtime/rerun.py `covers`: the entry's first graphs, before any write
into an input), which raises and handles the exception as eager does, a covering block, a
generator or pending Python effects do not stop it:
- a `try` or `with` block of any frame on the inlined call stack covers the raise (but for a
  `no_grad`/`enable_grad`/`set_grad_enabled`/autocast block opened since the last graph break:
  runtime/graph_state.py undoes its switch when the graph raises), or a frame on it is a
  generator (its exception goes to whoever resumed it);
- the epilogue holds Python side effects the graph would defer past the raise, or the graph
  wrote into a caller's tensor before the check (a compiling backend, which functionalizes
  the graph, applies such writes at its end, which a raise never reaches);
- the exception is not one of a few builtin classes that no builtin swallows (AttributeError
  ends `hasattr`, IndexError and StopIteration end iterations; those are left to the break).
Under a compiling backend the check is `bytegraph::check_tensor`, run where the backend
schedules it: a graph that raises may then leave later tensor writes applied, the limit
docs/graph_breaks.md states for every op that raises inside a compiled graph."""

import builtins
import functools

import torch

from ..bytecode.decode import find_handler
from ..runtime.rerun import covers
from ..values.base import ConstValue
from ..values.containers import TupleValue
from ..values.tensor import TensorValue, graph_call

_CHECKED_EXCEPTIONS = frozenset({AssertionError, ValueError, RuntimeError, TypeError,
                                 NotImplementedError})


def _raise_block(frame, ip):
    """(exception class, its string arguments) when the code at `ip` only builds a builtin
    exception from string constants and raises it; else None."""
    insts = frame.insts
    inst = insts[ip]
    if inst.opname == "LOAD_ASSERTION_ERROR":
        cls, nulls = AssertionError, 1          # CALL reads AssertionError as the bound callable
    elif inst.opname == "LOAD_GLOBAL":
        name = inst.argval
        if name in frame.globals or getattr(builtins, name, None) not in _CHECKED_EXCEPTIONS:
            return None             # (a quick refusal: no global is looked up, so none is guarded)
        value = frame.tx.load_global(frame, name)    # guarded as not shadowed by a global
        cls = value.as_python() if value.is_const() else None
        nulls = 0 if inst.push_null else 1
    else:
        return None
    if cls not in _CHECKED_EXCEPTIONS:
        return None
    args = []
    ip += 1
    while insts[ip].opname == "LOAD_CONST" and type(insts[ip].argval) is str:
        args.append(insts[ip].argval)
        ip += 1
    if args:
        if insts[ip].opname != "PRECALL" or insts[ip].arg != len(args) - nulls or \
                insts[ip + 1].opname != "CALL" or insts[ip + 1].arg != insts[ip].arg:
            return None
        ip += 2
    elif insts[ip].opname == "PRECALL" and insts[ip].arg == 0 and nulls == 0:
        ip += 2                                  # raise ValueError()
    if insts[ip].opname != "RAISE_VARARGS" or insts[ip].arg != 1:
        return None
    return cls, tuple(args), insts[ip].offset


def escapes(frame, offset, through_finally=False):
    """Whether an exception raised at `offset` of `frame` leaves every traced frame, with nothing
    on the way but the exits of grad-mode and autocast blocks the graph itself opened (which
    runtime/graph_state.py undoes when the graph raises). `through_finally`: also `finally`
    blocks (and bare `except:` blocks that always re-raise), whose code then does not run when
    the graph raises -- the gap every op raising inside a graph has (docs/graph_breaks.md)."""
    while frame is not None:
        if frame.is_generator:
            return False
        h = find_handler(frame.code, offset)
        while h is not None:
            at = _unwinds(frame, h)
            if at is None and through_finally:
                at = _finally_end(frame.insts, h.target)
            if at is None:
                return False
            h = find_handler(frame.code, frame.insts[at].offset)
        frame = frame.parent
        if frame is not None:
            offset = frame.inst.offset
    return True


def _unwinds(frame, h):
    """When handler `h` only passes the exception on -- the re-raise that ends a handler block,
    or the exit of a modelled block opened in the trace's current graph -- the index of the
    instruction that re-raises it (where the next handler is looked up); else None."""
    insts, t = frame.insts, h.target
    ops = [i.opname for i in insts[t:t + 4]]
    if ops[:3] == ["COPY", "POP_EXCEPT", "RERAISE"]:
        return t + 2
    if ops[:2] == ["PUSH_EXC_INFO", "WITH_EXCEPT_START"] and ops[3:] == ["RERAISE"] \
            and 0 < h.depth <= len(frame.stack) and _own_block(frame.tx, frame.stack[h.depth - 1]):
        return t + 3
    return None


_SWALLOWS = frozenset({"POP_EXCEPT", "RETURN_VALUE", "CHECK_EXC_MATCH", "WITH_EXCEPT_START",
                       "YIELD_VALUE", "CHECK_EG_MATCH"})


def _finally_end(insts, t):
    """A handler block at `t` that always re-raises (a `finally` body): the index of its closing
    `RERAISE 0`, every jump before it staying inside the block and nothing that could end the
    exception's way out (POP_EXCEPT: caught; a return or a match); else None."""
    if insts[t].opname != "PUSH_EXC_INFO":
        return None
    end = next((i.index for i in insts[t + 1:] if i.opname == "RERAISE" and i.arg == 0), None)
    if end is None:
        return None
    for i in insts[t + 1:end]:
        if i.opname in _SWALLOWS or i.opname.startswith("RERAISE") or \
                getattr(i, "target", None) is not None and not t <= i.target <= end:
            return None
    return end


def _own_block(tx, exit_value):
    """A with-block over no_grad / enable_grad / set_grad_enabled / autocast, entered since the
    trace's last graph break (the graph that raises holds its switch, which graph_state undoes;
    one opened before a break is in an earlier graph)."""
    from ..policy.calls import AutocastCtx, GradModeCtx
    from ..symbolic.handlers_control import _ExitValue
    if type(exit_value) is not _ExitValue or exit_value.user_exit is not None:
        return False
    ctx = exit_value.ctx
    return type(ctx) in (GradModeCtx, AutocastCtx) and getattr(ctx, "segment", None) == len(tx.splits)


def check_branch(f, inst, v, jump_when):
    """A conditional jump on tensor value `v` whose truth the trace does not know (`jump_when`:
    the truth that takes the jump). When one way only raises a checked exception, record the
    check in the graph and return whether to take the jump (the way that does not raise);
    None when it cannot (the caller stops at the branch as before)."""
    if not isinstance(v, TensorValue) or type(v.fake.numel()) is not int or v.fake.numel() != 1:
        return None
    at_target, at_next = _raise_block(f, inst.target), _raise_block(f, f.ip)
    if (at_target is None) == (at_next is None):
        return None
    cls, args, offset = at_target or at_next
    tx = f.tx
    if tx.graph.mutates_inputs():
        # (a write into a caller's tensor before the check: a compiling backend applies it at
        # the graph's end, which a raise never reaches; eager has made it when it raises)
        return None
    if (tx.side_effects.deferred() or not escapes(f, offset)) and not covers(tx):
        # a handler, a finally or a with-block would miss the raise, or the epilogue's effects
        # would be lost -- unless the entry reruns the unit when the graph raises
        return None
    # eager raises when the truth is `jump_when` (the jump leads to the raise) or its opposite
    expect = (not jump_when) if at_target is not None else jump_when
    out = graph_call(tx, "call_function", check_tensor,
                     [v, ConstValue(expect), ConstValue(cls.__name__),
                      TupleValue([ConstValue(a) for a in args])], {})
    tx.cg.graph_output(out.node)        # an output, so no backend drops it as unused
    return at_next is not None


@functools.cache
def _eager_all_message():
    """The message torch's own tensor check raises with when it has no message of its own
    (asked on first use: torch's check imports sympy, which `import bytegraph` does not)."""
    try:
        torch._check_tensor_all(torch.zeros(1, dtype=torch.bool))
    except RuntimeError as e:
        return str(e)
    return None


def check_all(tx, cond, exc):
    """torch._check_tensor_all(cond) / _check_tensor_all_with(exc, cond) with no message, on a
    bool tensor the trace does not know the values of: eager raises `exc` with torch's fixed
    message unless every element is true. Record that as a check node (`torch.all` then
    `check_tensor`) instead of reading the values between two graphs, under the same conditions
    as check_branch. Returns whether it did."""
    if cond.fake.dtype != torch.bool or _eager_all_message() is None or tx.graph.mutates_inputs():
        return False
    if getattr(builtins, exc.__name__, None) is not exc or not issubclass(exc, Exception) \
            or issubclass(exc, Warning):
        return False
    if (tx.side_effects.deferred() or not escapes(tx.frame, tx.frame.inst.offset)) and not covers(tx):
        return False
    every = graph_call(tx, "call_function", torch.all, [cond], {})
    out = graph_call(tx, "call_function", check_tensor,
                     [every, ConstValue(True), ConstValue(exc.__name__),
                      TupleValue([ConstValue(_eager_all_message())])], {})
    tx.cg.graph_output(out.node)
    return True


def check_tensor(cond, expect, exc, args):
    """Raise builtins.`exc`(*args) unless bool(cond) is `expect`; returns a 0-d bool tensor (the
    node is a graph output, so no backend drops it). On a real tensor it is eager's own test;
    while a backend traces the graph, it is the `bytegraph::check_tensor` op."""
    if type(cond) is torch.Tensor:
        if bool(cond) is not expect:
            raise getattr(builtins, exc)(*args)
        return _PASSED
    return torch.ops.bytegraph.check_tensor(cond, expect, exc, list(args))


_PASSED = torch.ones((), dtype=torch.bool)    # what a passing check returns on real tensors (the
                                             # entry drops it; not the condition, which may be an input)


def _check_op(cond, expect, exc, args):
    if bool(cond) is not expect:
        raise getattr(builtins, exc)(*args)
    return torch.empty((), dtype=torch.bool)


_LIB = torch.library.Library("bytegraph", "FRAGMENT")
_LIB.define("check_tensor(Tensor cond, bool expect, str exc, str[] args) -> Tensor")
_LIB.impl("check_tensor", _check_op, "CompositeExplicitAutograd")
torch.library.register_fake("bytegraph::check_tensor",
                            lambda cond, expect, exc, args: torch.empty((), dtype=torch.bool), lib=_LIB)
torch.fx.node.has_side_effect(torch.ops.bytegraph.check_tensor.default)
torch.fx.node.has_side_effect(check_tensor)
