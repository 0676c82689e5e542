"""Operators in CPython's order: binary and in-place operators, rich comparisons, truth,
membership, hashing and unary operators.

- `a + b`: `type(a).__add__(a, b)`, then `type(b).__radd__(b, a)`; the reflected method goes
  first when type(b) is a proper subclass of type(a) that overrides it. NotImplemented moves on
  to the next candidate; none left is a TypeError.
- `a += b`: `type(a).__iadd__(a, b)`, then the binary operator.
- `a == b`: the reflected comparison goes first for a proper subclass on the right; after
  both sides return NotImplemented, `==`/`!=` compare identity and the ordering operators raise.
  object's own `__ne__` inverts `__eq__`.
- truth: `__bool__`, then `__len__`, else true.
- `x in c`: `__contains__`, then iteration comparing each item by identity, then `==`.

Tensors take the graph path: a tensor operand makes the operator one graph node, unless the
other operand is a user object, whose Python-level dunders decide (as Tensor's C methods
return NotImplemented for objects they do not know).
"""
import enum
import operator

import torch

from ..exc import Unsupported, UserError
from ..values.base import ConstValue, CONST_TYPES, const, RealCallableValue
from ..values.objects import (numpy_float, _InstanceBase, ClassValue, ObjectValue, PyModuleValue, ExceptionInstanceValue,
                              ModuleValue, ImmutableValue)
from ..values.functions import UserFnValue
from ..values.containers import IteratorValue, TupleValue
from ..values.tensor import TensorValue, graph_call
from ..values.opaque import Opaque, join_text, raising_op, scalar_op
from ..values.symbolic import SymValue, sym_op
from .special import MISSING, call_special, is_ni, type_of, lookup

_SYMBOL = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
           operator.floordiv: "//", operator.mod: "%", operator.pow: "** or pow()", operator.matmul: "@",
           operator.and_: "&", operator.or_: "|", operator.xor: "^", operator.lshift: "<<",
           operator.rshift: ">>", operator.lt: "<", operator.le: "<=", operator.gt: ">", operator.ge: ">="}
INPLACE_TO_BINARY = {operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
                     operator.itruediv: operator.truediv, operator.ifloordiv: operator.floordiv,
                     operator.imod: operator.mod, operator.ipow: operator.pow,
                     operator.imatmul: operator.matmul, operator.iand: operator.and_,
                     operator.ior: operator.or_, operator.ixor: operator.xor,
                     operator.ilshift: operator.lshift, operator.irshift: operator.rshift}
_REFLECTED_CMP = {operator.eq: operator.eq, operator.ne: operator.ne, operator.lt: operator.gt,
                  operator.gt: operator.lt, operator.le: operator.ge, operator.ge: operator.le}


def dunder(op):
    return f"__{op.__name__.strip('_')}__"


def rdunder(op):
    return f"__r{op.__name__.strip('_')}__"


def _plain(v):
    return type(v) is ConstValue and type(v.value) in CONST_TYPES


def _user_object(v):
    return isinstance(v, _InstanceBase)


# --------------------------------------------------------------------------
# binary and in-place operators

def binary_op(tx, op, a, b):
    if isinstance(a, Opaque) or isinstance(b, Opaque):
        return _opaque_op(INPLACE_TO_BINARY.get(op) or op, [a, b])
    if isinstance(a, SymValue) or isinstance(b, SymValue):
        r = sym_op(tx, INPLACE_TO_BINARY.get(op) or op, [a, b])    # ints are immutable: `+=` is `+`
        if r is not None:
            return r
        if _plain(a) or _plain(b):       # 'a' * n, (1,) * n: the sequence needs the number
            a, b = _number(a), _number(b)
    if _symbolic_size(a) or _symbolic_size(b):
        r = _size_op(INPLACE_TO_BINARY.get(op) or op, a, b)
        if r is not None:
            return r
    base = INPLACE_TO_BINARY.get(op)
    if isinstance(a, TensorValue) or isinstance(b, TensorValue):
        a, b = _numpy_operand(a, b), _numpy_operand(b, a)
        return _tensor_binary(tx, op, base, a, b)
    if _plain(a) and _plain(b):                     # builtin immutables: no user code anywhere
        try:
            return ConstValue(op(a.value, b.value))
        except Exception as e:
            raise UserError(e)
    if base is not None:
        r = call_special(tx, a, f"__i{base.__name__.strip('_')}__", [b])
        if r is not MISSING and not is_ni(r):
            return r
    r = _binary(tx, base or op, a, b)
    if r is MISSING:
        sym = _SYMBOL.get(base or op, op.__name__) + ("=" if base is not None else "")
        if base is operator.pow:
            sym = "**="
        raise UserError(TypeError(f"unsupported operand type(s) for {sym}: "
                                  f"'{type_of(a).__name__}' and '{type_of(b).__name__}'"))
    return r


def _numpy_operand(v, other):
    """A numpy float64 operand of a tensor operator as the Python float it subclasses: its own
    dunders return NotImplemented for a tensor (Tensor's __array_priority__), and Tensor's read
    it as that float, in value and in type promotion (a weak float scalar)."""
    if isinstance(other, TensorValue):
        f = numpy_float(v)
        if f is not None:
            return ConstValue(f)
    return v


def _number(v):
    """A symbolic size as its number (the ShapeEnv guards it); anything else as is."""
    return ConstValue(v.as_python()) if isinstance(v, SymValue) else v


def _symbolic_size(v):
    return type(v) is TupleValue and v.cls is torch.Size


def _tuple_items(v):
    if type(v) is TupleValue and v.cls in (tuple, torch.Size):
        return v.items
    if type(v) is ConstValue and type(v.value) in (tuple, torch.Size):
        return [ConstValue(x) for x in v.value]
    return None


def _size_op(op, a, b):
    """torch.Size + tuple, tuple + torch.Size, torch.Size * int of a shape with symbolic sizes:
    a torch.Size, as torch.Size's own methods give (None: not such a case)."""
    if op is operator.add:
        xs, ys = _tuple_items(a), _tuple_items(b)
        if xs is not None and ys is not None:
            return TupleValue(list(xs) + list(ys), cls=torch.Size)
    if op is operator.mul:
        seq, n = (a, b) if _symbolic_size(a) else (b, a)
        if type(n) is ConstValue and type(n.value) is int:
            return TupleValue(list(seq.items) * n.value, cls=torch.Size)
    return None


def _binary(tx, op, a, b):
    """a <op> b without the in-place step; MISSING when every candidate declined."""
    ta, tb = type_of(a), type_of(b)
    name, rname = dunder(op), rdunder(op)
    right = None
    if tb is not ta:
        rfound = lookup(tx, tb, rname)
        if rfound[0] is not MISSING:
            right = rfound
            if issubclass(tb, ta) and rfound[0] is not lookup(tx, ta, rname)[0]:
                r = call_special(tx, b, rname, [a], rfound)
                if not is_ni(r):
                    return r
                right = None
    r = call_special(tx, a, name, [b])
    if r is not MISSING and not is_ni(r):
        return r
    if right is not None:
        r = call_special(tx, b, rname, [a], right)
        if not is_ni(r):
            return r
    return MISSING


def _tensor_binary(tx, op, base, a, b):
    if _user_object(a) or _user_object(b):
        # Tensor's C methods return NotImplemented for objects they do not know: the user's
        # Python dunders decide, and nothing else can
        bop = base or op
        if _user_object(a):
            if base is not None:
                r = call_special(tx, a, f"__i{bop.__name__.strip('_')}__", [b])
                if r is not MISSING and not is_ni(r):
                    return r
            r = call_special(tx, a, dunder(bop), [b])
        else:
            r = call_special(tx, b, rdunder(bop), [a])
        if r is not MISSING and not is_ni(r):
            return r
        raise Unsupported(f"operator {bop.__name__} between a tensor and {a if _user_object(a) else b}",
                          kind="operator")
    if base is not None and not isinstance(a, TensorValue):
        op = base                                  # `n += t` for a number n is n = n + t
    return graph_call(tx, "call_function", op, [a, b], {})


# --------------------------------------------------------------------------
# rich comparisons

def compare_op(tx, op, a, b):
    if isinstance(a, Opaque) or isinstance(b, Opaque):
        return _opaque_op(op, [a, b])
    if isinstance(a, SymValue) or isinstance(b, SymValue):
        r = sym_op(tx, op, [a, b])
        if r is not None:
            return r
    if isinstance(a, TensorValue) or isinstance(b, TensorValue):
        a, b = _numpy_operand(a, b), _numpy_operand(b, a)
        if _user_object(a) or _user_object(b):
            r = _richcompare(tx, op, a, b)
            if r is not MISSING:
                return r
            raise Unsupported(f"comparison of a tensor with {a if _user_object(a) else b}", kind="operator")
        return graph_call(tx, "call_function", op, [a, b], {})
    if _plain(a) and _plain(b):
        try:
            return const(op(a.value, b.value))
        except Exception as e:
            raise UserError(e)
    r = _richcompare(tx, op, a, b)
    if r is not MISSING:
        return r
    if op is operator.eq:
        return const(is_same(a, b, tx))
    if op is operator.ne:
        return const(not is_same(a, b, tx))
    raise UserError(TypeError(f"'{_SYMBOL[op]}' not supported between instances of "
                              f"'{type_of(a).__name__}' and '{type_of(b).__name__}'"))


def _richcompare(tx, op, a, b):
    ta, tb = type_of(a), type_of(b)
    rop = _REFLECTED_CMP[op]
    reflected_first = ta is not tb and issubclass(tb, ta)
    if reflected_first:
        r = call_special(tx, b, dunder(rop), [a])
        if r is not MISSING and not is_ni(r):
            return r
    r = call_special(tx, a, dunder(op), [b])
    if r is not MISSING and not is_ni(r):
        return r
    if not reflected_first:
        r = call_special(tx, b, dunder(rop), [a])
        if r is not MISSING and not is_ni(r):
            return r
    return MISSING


def equal(tx, a, b):
    """PyObject_RichCompareBool(a, b, Py_EQ): identity first, then `==` and truth."""
    if is_same(a, b, tx):
        return True
    return truth(tx, compare_op(tx, operator.eq, a, b))


class Ordered:
    """A Value handed to CPython's own sorted()/min()/max(), so that each comparison they make
    runs through the protocol, in exactly the sequence CPython makes it."""
    __slots__ = ("tx", "v")

    def __init__(self, tx, v):
        self.tx = tx
        self.v = v

    def __lt__(self, other):
        return truth(self.tx, compare_op(self.tx, operator.lt, self.v, other.v))

    def __gt__(self, other):
        return truth(self.tx, compare_op(self.tx, operator.gt, self.v, other.v))


# --------------------------------------------------------------------------
# identity

def is_same(a, b, tx=None):
    """`a is b` for Values. Values that stand for real objects compare those objects; any other
    Value is its own identity (wrap() gives one Value per caller-world object, and ops that
    hand back an input return that input's Value, so this is exact). With `tx`, an answer
    that rests on which caller objects were passed is guarded: two caller instances found
    distinct must stay distinct (their type guards alone would not say so)."""
    if a is b:
        return True
    ia, ib = real_identity(a), real_identity(b)
    same = ia is not NO_IDENTITY and ia is ib
    if tx is not None and not same:
        if _identity_unguarded(a) and _identity_unguarded(b):
            tx.guards.add_distinct([a.source, b.source], kind="identity")
        else:
            # a module guarded by its structure only (runtime/resume.py: STRUCTURAL) compared
            # with an identity-guarded object: the answer rests on which instance it is
            for v in (a, b):
                if isinstance(v, ModuleValue) and not v.identity_guarded:
                    v.pin()
    return same


def _identity_unguarded(v):
    """A caller instance guarded by type only (modules and enum members are identity-guarded)."""
    return isinstance(v, ObjectValue) and v.source is not None \
        and not (isinstance(v, ModuleValue) and v.identity_guarded) \
        and not (isinstance(v, ImmutableValue) and isinstance(v.obj, enum.Enum))


NO_IDENTITY = object()


def real_identity(v):
    if type(v) is ConstValue:
        return v.value
    if isinstance(v, SymValue):
        return v.as_python()      # identity of an int is its value's: specialize (guarded)
    if isinstance(v, (RealCallableValue, UserFnValue)):
        return v.fn
    if isinstance(v, ClassValue):
        return v.cls
    if isinstance(v, ObjectValue):
        return v.obj
    if isinstance(v, PyModuleValue):
        return v.module
    if isinstance(v, ExceptionInstanceValue):
        return v.exc
    return NO_IDENTITY


# --------------------------------------------------------------------------
# truth, hashing, length

def truth(tx, v):
    """bool(v) as a Python bool: __bool__ (must return a bool), then __len__, else True."""
    if isinstance(v, Opaque):
        v.truth(tx)
    if not _user_object(v):
        return v.truth(tx)
    r = call_special(tx, v, "__bool__", [])
    if r is not MISSING:
        if not (r.is_const() and type(r.as_python()) is bool):
            raise UserError(TypeError(f"__bool__ should return bool, returned {type_of(r).__name__}"))
        return r.as_python()
    r = call_special(tx, v, "__len__", [])
    if r is not MISSING:
        return length_result(r) != 0
    return True


def length(tx, v):
    """len(v) for values whose length is not a fact of the Value itself."""
    r = call_special(tx, v, "__len__", [])
    if r is MISSING:
        raise UserError(TypeError(f"object of type '{type_of(v).__name__}' has no len()"))
    return length_result(r)


def length_result(r):
    if not r.is_const() or not isinstance(r.as_python(), int):
        raise UserError(TypeError(f"'{type_of(r).__name__}' object cannot be interpreted as an integer"))
    n = operator.index(r.as_python())
    if n < 0:
        raise UserError(ValueError("__len__() should return >= 0"))
    return n


def check_hashable(tx, v):
    """Raise TypeError for a value whose type sets __hash__ to None (dict keys, set elements)."""
    if lookup(tx, type_of(v), "__hash__")[0] is None:
        raise UserError(TypeError(f"unhashable type: '{type_of(v).__name__}'"))


def hash_value(tx, v):
    """hash(v): what the type's __hash__ returns (inlined, or folded on constants)."""
    check_hashable(tx, v)
    return call_special(tx, v, "__hash__", [])


def next_item(tx, it):
    """next(it) as a Value, or None when the iterator is exhausted."""
    if isinstance(it, IteratorValue):
        return it.next()
    try:
        r = call_special(tx, it, "__next__", [])
    except UserError as e:
        if isinstance(e.exc, StopIteration):
            return None
        raise
    if r is MISSING:
        raise UserError(TypeError(f"'{type_of(it).__name__}' object is not an iterator"))
    return r


def iterate(tx, v):
    """The items `for x in v` would produce, as Values."""
    return v.unpack(tx)


# --------------------------------------------------------------------------
# membership

def contains_op(tx, item, container):
    if isinstance(container, TensorValue):
        return graph_call(tx, "call_method", "__contains__", [container, item], {})
    if _plain(item) and _plain(container):
        try:
            return const(item.value in container.value)
        except Exception as e:
            raise UserError(e)
    found = lookup(tx, type_of(container), "__contains__")
    if found[0] is None:
        raise UserError(TypeError(f"'{type_of(container).__name__}' object is not a container"))
    r = call_special(tx, container, "__contains__", [item], found)
    if r is not MISSING:
        return const(truth(tx, r))
    if not _user_object(container):
        return const(any(equal(tx, x, item) for x in container.unpack(tx)))
    it = lookup(tx, type_of(container), "__iter__")
    if it[0] is MISSING or it[0] is None:
        raise UserError(TypeError(f"argument of type '{type_of(container).__name__}' is not iterable"))
    iterator = call_special(tx, container, "__iter__", [], it)
    while True:                          # stop at the first match, as CPython does
        x = next_item(tx, iterator)
        if x is None:
            return const(False)
        if equal(tx, x, item):
            return const(True)


# --------------------------------------------------------------------------
# unary operators

def _opaque_op(op, operands):
    """Arithmetic on values only the entry will know (values/opaque.py)."""
    raising_op(op, operands)
    r = scalar_op(op, operands)
    if r is None and op in (operator.add, operator.iadd):
        r = join_text(operands)         # "prefix " + text formatted at a break
    if r is None:
        o = next(o for o in operands if isinstance(o, Opaque))
        o._needed(f"{getattr(op, '__name__', op)}()")
    return r


def unary_op(tx, op, v):
    if isinstance(v, Opaque):
        return _opaque_op(op, [v])
    if isinstance(v, SymValue) and op is not operator.not_:
        r = sym_op(tx, op, [v])
        if r is not None:
            return r
    if op is operator.not_:
        if isinstance(v, TensorValue):
            return graph_call(tx, "call_function", op, [v], {})
        return const(not truth(tx, v))
    if isinstance(v, TensorValue):
        return graph_call(tx, "call_function", op, [v], {})
    if _plain(v):
        try:
            return ConstValue(op(v.value))
        except Exception as e:
            raise UserError(e)
    r = call_special(tx, v, dunder(op), [])
    if r is MISSING:
        what = "abs()" if op is operator.abs else f"unary {_UNARY_SYMBOL[op]}"
        raise UserError(TypeError(f"bad operand type for {what}: '{type_of(v).__name__}'"))
    return r


_UNARY_SYMBOL = {operator.neg: "-", operator.pos: "+", operator.invert: "~"}


