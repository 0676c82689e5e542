"""Opaque: a value computed by Python code the entry runs at a graph break.

`t.item()` and friends run in Python between two graphs (policy/breaks.py); the trace
goes on without knowing their result. The value can travel (be stored, returned,
printed). A scalar (`item()`) can also take part in arithmetic, comparisons and
float()/int()/bool() with constants and other scalars: the result is another Opaque,
an expression the entry evaluates where it needs it (a branch on it becomes a graph
break that tests it in Python, so the resumed code is not specialized on the number).
Anything else that needs the value stops the trace with kind "opaque", naming the
instruction that produced it (`producer`), where the converter then splits.
"""
import operator

import torch

from ..exc import Unsupported
from .base import Value, ConstValue


def producer_chain(tx):
    """(frame, instruction, step) from the innermost frame out: where the trace is now."""
    chain, f = [], tx.frame
    while f is not None:
        chain.append((f, f.inst, f.step))
        f = f.parent
    return chain


class Opaque(Value):
    param = None        # the parameter of a resume function it arrived through (see below)
    pytype = None       # int / float / bool / complex when known (an item() of a known dtype)
    bounded = True      # an int that fits a float (an item() does; a product of ints may not)
    made = "which ran in Python at a graph break"

    def __init__(self, name, desc, producer, scalar=False):
        self.name = name
        self.desc = desc
        self.producer = producer      # (frame, instruction, step) from the innermost out, at its making
        self.scalar = scalar

    def reconstruct(self, cg):
        return self.name

    def _needed(self, what, at_producer=True, specialize=True):
        e = Unsupported(f"{what} of {self.desc}, {self.made}",
                        kind="opaque", hint="the trace cannot see values computed outside it; keep "
                                            "the value a tensor (e.g. torch.where) to stay in the graph")
        e.producer = self.producer
        e.at_producer = at_producer and self.param is None
        if self.param is not None and specialize:
            e.specialize = self.param      # trace again with the parameter's value known
        raise e

    def stop_here(self, what):
        """An operation on it that may raise for some values (division, int(), round(), math):
        the trace stops at that operation, which runs in Python on the real number (inside the
        user's try blocks), instead of an expression the entry might never evaluate."""
        e = Unsupported(f"{what} of {self.desc}, {self.made} (it may raise)", kind="opaque",
                        hint="the operation runs in Python, where its error (a division by zero) "
                             "reaches the code's handlers as eagerly")
        e.producer, e.at_producer = self.producer, False
        raise e

    def python_type(self):
        self._needed("the type")

    def getattr(self, tx, name):
        self._needed(f"attribute {name!r}")

    def call(self, tx, args, kwargs):
        self._needed("a call")

    def call_method(self, tx, name, args, kwargs):
        self._needed(f"method {name!r}")

    def unpack(self, tx):
        self._needed("iterating")

    def truth(self, tx):
        # a branch on it: break at the branch itself if that is the root frame's instruction (a
        # parameter too: specialized on its value, the resume function would recompile per value)
        self._needed("the truth value", at_producer=False, specialize=False)

    def fx_arg(self, tx):
        self._needed("a graph op on the value")

    fake_arg = fx_arg

    def as_python(self):
        self._needed("the value")

    def __repr__(self):
        return f"Opaque({self.name}: {self.desc})"


class OpaqueParam(Opaque):
    """A scalar that reached a resume function as a parameter and was opaque where it came
    from (an item() result): it stays opaque, guarded on its type only, so the resumed code
    is not specialized on the number unless it needs the value (then the converter traces
    again with the value known and guarded)."""

    def __init__(self, name):
        super().__init__(name, f"parameter {name!r} (a Tensor.item() result)", None, scalar=True)
        self.param = name


class OpaqueText(Opaque):
    """A str that reached a resume function as a parameter: the text of an f-string field
    formatted at the break (`f"loss {loss}"`, which changes with the data). Guarded by type
    only; f-strings join it (`OpaqueJoin`); anything else that needs the text traces again
    with it known."""

    def __init__(self, name):
        super().__init__(name, f"parameter {name!r} (text formatted at a graph break)", None)
        self.param = name

    def python_type(self):
        return str


class OpaqueJoin(Opaque):
    """An f-string over text formatted at a break and constant pieces: joined by the entry."""

    def __init__(self, parts):
        param = next((p.param for p in parts if isinstance(p, Opaque) and p.param), None)
        # where the text is made: a tensor field formatted later by the entry (OpaqueFormat),
        # where a need of the joined text stops the trace (the earliest such field)
        made = [p.producer for p in parts if isinstance(p, Opaque) and p.producer is not None]
        producer = min(made, key=lambda c: c[0][2]) if made else None
        later = any(type(p) is OpaqueFormat for p in parts)
        super().__init__(None, "an f-string formatting a tensor" if later else
                         "an f-string of text formatted at a graph break", producer)
        if later:
            self.made = OpaqueFormat.made
        self.parts = parts
        self.param = param

    def python_type(self):
        return str

    def reconstruct(self, cg):
        return "''.join((" + "".join(cg.expr(p) + ", " for p in self.parts) + "))"


def _format_str(v, spec=""):
    return format(str(v), spec)


def _format_repr(v, spec=""):
    return format(repr(v), spec)


def _format_ascii(v, spec=""):
    return format(ascii(v), spec)


# FORMAT_VALUE's conversion (the low two bits of its argument: none, !s, !r, !a), then the
# format spec when the argument's bit 4 says one is on the stack
FORMATTERS = {0: format, 1: _format_str, 2: _format_repr, 3: _format_ascii}

_ITEM_TYPES = ((torch.bool, bool), (torch.complex64, complex), (torch.complex128, complex),
               (torch.complex32, complex))


class OpaqueFormat(Opaque):
    """An f-string field of a tensor (`f"loss {loss:.3f}"`), formatted by the entry from a copy
    of the tensor the graph returns: the text depends on the data only (see `format_later`)."""

    made = "(formatting a tensor into a string depends on its data: it stops where the field is)"

    def __init__(self, tensor, conv, spec, producer):
        super().__init__(None, "a tensor formatted into a string", producer)
        self.tensor = tensor
        self.conv = conv
        self.spec = spec

    def python_type(self):
        return str

    def reconstruct(self, cg):
        fn = FORMATTERS[self.conv]
        return f"{cg.const(fn, getattr(fn, '__name__', 'format'))}({cg.expr(self.tensor)}, {self.spec!r})"


def format_later(tensor, conv, spec):
    """Can format(tensor, spec) (after conversion `conv`) wait for the entry, reading a copy the
    graph makes now? Only where the text is a function of the values: a 0-d plain tensor
    formats its item() (any spec the item's type accepts); str()/repr() of any other tensor
    also shows its grad_fn, so only one that does not require grad, with an empty spec for
    object's __format__. A Parameter or subclass prints its own way: no."""
    fake = tensor.fake
    if tensor.cls is not torch.Tensor or fake.is_meta:
        return False
    if conv == 0 and fake.dim() == 0:
        kind = dict(_ITEM_TYPES).get(fake.dtype) or (float if fake.dtype.is_floating_point else int)
        try:
            format(kind(0), spec)          # a spec the item's type refuses: as eager, raise there
        except (TypeError, ValueError):
            return False
        return True
    if fake.requires_grad:
        return False
    if conv == 0:
        return not spec
    try:
        format("", spec)
    except (TypeError, ValueError):
        return False
    return True


def join_text(parts):
    """BUILD_STRING over Values: an OpaqueJoin when some pieces are opaque text and the rest
    constant strings, else None."""
    if not any(isinstance(p, Opaque) for p in parts):
        return None
    for p in parts:
        if not (type(p) in TEXT or type(p) is ConstValue and type(p.value) is str):
            return None
    return OpaqueJoin(list(parts))


TEXT = (OpaqueText, OpaqueJoin, OpaqueFormat)       # opaque values that are str


class OpaqueOp(Opaque):
    """fn(*operands) over scalar Opaques and constants, evaluated by the entry."""

    def __init__(self, fn, operands, producer):
        super().__init__(None, f"{getattr(fn, '__name__', fn)}(...) of a Tensor.item() result",
                         producer, scalar=True)
        self.fn = fn
        self.operands = operands

    def reconstruct(self, cg):
        return f"{cg.const(self.fn, getattr(self.fn, '__name__', 'op'))}(" + \
            ", ".join(cg.expr(o) for o in self.operands) + ")"

    def __repr__(self):
        return f"OpaqueOp({self.fn}, {self.operands})"


_NUMBERS = (int, float, bool)


# What an OpaqueOp may be: an operation on numbers that cannot raise for any values of its
# operands' kinds. The entry evaluates the expression only where the value is used, maybe never
# (`r = 1 / n` with n 0 must raise where it runs), so anything else stops there (raising_op):
# division but by a nonzero constant, int()/round() of a float (inf, nan), pow, shifts, math
# functions, any operation on a complex item() (comparisons, float(), // raise), and float
# arithmetic with an int that may be too large for a float (a product of ints is unbounded).
_COMPARE = frozenset({operator.lt, operator.le, operator.eq, operator.ne, operator.gt, operator.ge,
                      operator.truth, operator.not_, bool})
_ADD = frozenset({operator.add, operator.sub, operator.iadd, operator.isub})
_MUL = frozenset({operator.mul, operator.imul})
_SIGN = frozenset({operator.neg, operator.pos, operator.abs, abs})
_DIVISIONS = frozenset({operator.truediv, operator.floordiv, operator.mod, operator.itruediv,
                        operator.ifloordiv, operator.imod})
_FLOAT_DIVISIONS = frozenset({operator.truediv, operator.itruediv})


def _kind(o):
    """(python type, bounded: an int that fits a float) of a number operand, or None."""
    if isinstance(o, Opaque):
        return None if o.pytype is None else (o.pytype, o.bounded)
    if type(o) is ConstValue and type(o.value) in _NUMBERS:
        return type(o.value), not (type(o.value) is int and abs(o.value) >= 2 ** 1000)
    return None


def _result(fn, operands):
    """(python type, bounded) of fn(*operands) when it cannot raise for any values of the
    operands' kinds; None when it may (or a kind is unknown)."""
    kinds = [_kind(o) for o in operands]
    if not kinds or None in kinds or any(t is complex for t, _ in kinds):
        return None
    bounded = all(b for _, b in kinds)
    has_float = any(t is float for t, _ in kinds)
    if fn in _COMPARE:
        return bool, True                  # ints and floats compare exactly, whatever their size
    if fn in (min, max):
        return (float if has_float else int), bounded
    if fn is float:
        return (float, True) if bounded else None
    if fn in _ADD or fn in _MUL:
        if has_float:
            return (float, True) if bounded else None
        return int, bounded and fn in _ADD
    if fn in _SIGN and len(kinds) == 1:
        return (int if kinds[0][0] is bool else kinds[0][0]), kinds[0][1]
    if fn in (int, round) and len(kinds) == 1 and kinds[0][0] in (int, bool):
        return int, kinds[0][1]            # of an integer: no inf or nan to refuse
    if fn in _DIVISIONS and len(operands) == 2 and type(operands[1]) is ConstValue and operands[1].value != 0:
        if fn in _FLOAT_DIVISIONS or has_float:
            return (float, True) if bounded else None
        return int, kinds[0][1]
    return None


def raising_op(fn, operands):
    """Stop at fn(*operands) if it mixes scalar Opaques with numbers only and may raise (with
    another operand, a tensor, the value is needed: the caller's own refusal)."""
    if all(isinstance(o, Opaque) and o.scalar or type(o) is ConstValue and type(o.value) in _NUMBERS
           for o in operands) and _result(fn, operands) is None:
        for o in operands:
            if isinstance(o, Opaque) and o.scalar:
                o.stop_here(f"{getattr(fn, '__name__', fn)}()")


def scalar_op(fn, operands):
    """An OpaqueOp if `operands` mix scalar Opaques with number constants only, else None."""
    result = _result(fn, operands)
    if result is None:
        return None
    producer, opaque, param = None, False, None
    for o in operands:
        if isinstance(o, Opaque):
            if not o.scalar:
                return None
            opaque = True
            param = param or o.param
            producer = o.producer if producer is None else producer
        elif not (type(o) is ConstValue and type(o.value) in _NUMBERS):
            return None
    if not opaque:
        return None
    r = OpaqueOp(fn, list(operands), producer)
    r.param = param
    r.pytype, r.bounded = result
    return r


def involves_opaque(*values):
    return any(isinstance(v, Opaque) for v in values)


SCALAR_BUILTINS = (float, int, bool, abs, round, operator.truth)
