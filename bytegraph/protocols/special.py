"""Finding and calling special methods (`type(v).__op__(v, *args)`) over Values.

CPython looks special methods up on the *type*, never the instance. `call_special` does
the same with a static MRO walk (guarded: the owner's member stays the same object and no
earlier class defines the name), then calls what it found the way CPython would:

- a function written in Python is inlined like any user function (side effects and all);
- a function of the trusted `enum` module on constant arguments is run for real (it is
  deterministic, and immutable members make its result a constant);
- a method implemented in C is
  * modelled structurally by a NATIVE rule when the trace built the container it works on
    (a list's `__eq__` compares items through the protocol, so user `__eq__`s run inlined),
  * folded (run for real) when every argument is an immutable constant and the method can
    call back into no Python code,
  * answered NotImplemented when it is a binary method of a builtin type and the other
    operand is of a type that builtin cannot handle (what the C slot would return),
  * refused otherwise.
"""
import types

import torch

from ..values.symbolic import SymValue
from ..warn_filters import front_filter
from ..exc import Unsupported, UserError
from ..values.base import ConstValue, CONST_TYPES, wrap
from ..values.containers import TupleValue, IteratorValue
from ..values.objects import class_lookup, bind_class_attr, ImmutableValue, ClassValue, _MISSING as MISSING

NI = ConstValue(NotImplemented)

C_LEVEL = (types.WrapperDescriptorType, types.MethodDescriptorType, types.BuiltinFunctionType,
           types.MethodWrapperType, types.ClassMethodDescriptorType)

# builtin types whose C binary methods return NotImplemented for operands they do not know
_CLOSED_BUILTINS = (int, float, complex, bool, str, bytes, tuple, list, dict, set, frozenset, type(None),
                    range, slice)
_NUMBERS = (int, float, complex)
# C methods that call back into the other operand's Python dunders (`%` formatting, sequence
# repetition through __index__): never assumed NotImplemented, never folded on non-builtins
_CALLBACK_BINARY = frozenset({"__mod__", "__rmod__", "__mul__", "__rmul__", "__imul__", "__format__"})
# builtin types with no user-visible state beyond their value: C methods owned by them may be
# folded on ImmutableValues (subclass instances, enum members), which hand over their core value
_SCALAR_OWNERS = frozenset({int, float, complex, bool, str, bytes, object})

NATIVE = {}       # (builtin type, dunder) -> fn(tx, self, *args) -> Value (NI allowed) or MISSING


def native(owners, *names):
    def deco(fn):
        for o in owners:
            for n in names:
                NATIVE[(o, n)] = fn
        return fn
    return deco


def is_ni(v):
    return type(v) is ConstValue and v.value is NotImplemented


def type_of(v):
    return v.python_type()


def lookup(tx, cls, name):
    """(attr, owner) for `name` on cls's MRO, guarded; (MISSING, None) if absent."""
    return class_lookup(tx, cls, name)


def is_python_level(attr):
    return isinstance(attr, types.FunctionType)


def call_special(tx, v, name, args, found=None):
    """type(v).<name>(v, *args) with CPython's semantics; MISSING when the type lacks it."""
    cls = type_of(v)
    attr, owner = found if found is not None else lookup(tx, cls, name)
    if attr is MISSING:
        return MISSING
    if attr is None:                    # a dunder set to None blocks the operation
        raise UserError(TypeError("'NoneType' object is not callable"))
    if isinstance(attr, C_LEVEL):
        return _call_c(tx, owner, name, attr, v, args)
    if is_python_level(attr) and owner.__module__ == "enum" and _foldable(owner, name, [v, *args]):
        return fold(tx, attr, [v, *args])
    return bind_class_attr(tx, v, cls, name).call(tx, list(args), {})


def _call_c(tx, owner, name, attr, v, args):
    rule = NATIVE.get((owner, name))
    if rule is not None:
        r = rule(tx, v, *args)
        if r is not MISSING:
            return r
    if _foldable(owner, name, [v, *args]):
        return fold(tx, attr, [v, *args])
    if len(args) == 1 and owner in _CLOSED_BUILTINS and name not in _CALLBACK_BINARY and \
            not _knows(owner, type_of(args[0])):
        return NI
    raise Unsupported(f"{owner.__name__}.{name} on {v} and {', '.join(map(str, args))}", kind="operator")


def _knows(owner, other):
    """Could a C binary method of builtin `owner` do more than return NotImplemented for an
    operand of type `other`? (Instances of the owner, and numbers for numeric owners.)"""
    if issubclass(other, owner):
        return True
    if owner in _NUMBERS or owner is bool:
        return issubclass(other, _NUMBERS)
    return issubclass(other, torch.Tensor)


def _foldable(owner, name, values):
    """May this C method (or enum function) be run for real on these values' objects?"""
    scalar = owner in _SCALAR_OWNERS or owner.__module__ == "enum"
    for v in values:
        if is_plain_constant(v) or is_sym_constant(v):
            continue
        if isinstance(v, ImmutableValue) and (v.plain or (scalar and name not in _CALLBACK_BINARY)):
            continue
        if isinstance(v, ClassValue) and owner.__module__ == "enum":
            continue            # an Enum class: members fixed at creation, identity guarded
        return False
    return True


def is_plain_constant(v):
    """A builtin immutable constant, or a plain tuple of them: no user code can run on it."""
    if type(v) is ConstValue:
        return type(v.value) in CONST_TYPES
    return type(v) is TupleValue and v.python_type() is tuple and all(is_plain_constant(i) for i in v.items)


def is_sym_constant(v):
    """A symbolic size (or a plain tuple holding some): folding it specializes it, which the
    ShapeEnv guards (values/symbolic.py)."""
    if isinstance(v, SymValue):
        return True
    return type(v) is TupleValue and v.python_type() in (tuple, torch.Size) and \
        all(is_plain_constant(i) or is_sym_constant(i) for i in v.items)


def fold(tx, fn, values):
    """Run fn on the real immutable objects; its result is a constant of this trace."""
    # read the values first: specializing a size dim marked dynamic raises ConstraintViolation,
    # which is the user's error to see, not one of fn's
    objs = [v.obj if isinstance(v, ImmutableValue) else v.as_python() for v in values]
    with front_filter("error"):         # (not catch_warnings: warn_filters.py)
        try:
            res = fn(*objs)
            if isinstance(res, types.GeneratorType):        # e.g. iterating an Enum class
                res = IteratorValue([wrap(tx, x, None) for x in res])
        except Warning as w:     # a warning is a side effect each call must show: not a constant
            raise Unsupported(f"{getattr(fn, '__qualname__', fn)} warns ({w})", kind="warning")
        except Exception as e:
            exc = e
        else:
            exc = None
    if exc is not None:
        raise UserError(exc)
    return res if isinstance(res, IteratorValue) else wrap(tx, res, None)
