"""Builtin functions and Python operators over Values.

BUILTINS maps a builtin function object (len, isinstance, zip, ...) to a handler
`(tx, *args, **kwargs) -> Value`. Operators (`binary_op`, `compare_op`,
`unary_op`) route to the graph when a tensor is involved, compute directly on
constants, work structurally on containers, and otherwise inline the user's
dunder method.

A builtin with no handler may still be called on constants if it is known to be
pure (PURE_MODULES / PURE_BUILTINS); its result is then a constant.
"""
import bisect
import collections
import sys
import functools
import math
import operator

import torch

from ..exc import Unsupported, UserError
from ..values.base import (Value, RealCallableValue, ConstValue, NONE, const, wrap, INTROSPECTION_TYPES,
                           CONST_TYPES)
from ..values.containers import (TupleValue, ListValue, DictValue, SetValue, IteratorValue, BaseSeq, py_key,
                                 ListIterValue, HashIterValue, DictViewValue)
from ..values.tensor import TensorValue, graph_call
from ..values.known import known
from ..protocols import (binary_op, compare_op, contains_op, unary_op, truth, is_same, hash_value,
                         INPLACE_TO_BINARY)
from ..protocols.operators import real_identity, NO_IDENTITY, length, Ordered
from ..protocols.special import call_special, MISSING
from ..protocols.natives import dict_view_of
from ..values.containers import DICT_METHODS, SeqIterValue
from ..values.iterators import EndsRaising
from ..values.functions import BoundMethodValue, UserFnValue
from .breaks import printable_call, run_in_python
from .vmap import index_under_mode
from .scalar_index import select_scalar_indices, index_with_ints  # noqa: F401 (the graph's node)
from ..values.opaque import Opaque, raising_op, scalar_op
from ..values.symbolic import size_value, SymValue, sym_op, is_sym_operand
from ..values.objects import (ClassValue, DynamicAttrObjectValue, ModuleValue, NewObjectValue, ObjectValue,
                              PyModuleValue, SuperValue, _InstanceBase, _MISSING, bind_class_attr,
                              class_lookup, generic_getattr, static_lookup)

PURE_MODULES = frozenset({"math", "cmath", "operator", "_operator", "string"})
PURE_BUILTINS = frozenset({abs, bin, chr, divmod, format, hash, hex, oct, ord, pow, repr, round,
                           ascii, callable, sys.getrecursionlimit, sys.getdefaultencoding})
PURE_TYPES = (str, bytes, int, float, complex, bool, frozenset, torch.Size, torch.dtype, torch.device,
              tuple, range, slice, torch.finfo, torch.iinfo, *INTROSPECTION_TYPES)


class BuiltinValue(RealCallableValue):
    """A builtin/C function (not from torch) called with trace-time semantics."""

    def call(self, tx, args, kwargs):
        handler = BUILTINS.get(self.fn)
        objclass = getattr(self.fn, "__objclass__", None)
        if handler is None and objclass in (dict, collections.OrderedDict) and args:
            return _dict_subclass_method(tx, self.fn.__name__, args[0], args[1:], kwargs)
        if handler is None:
            owner = getattr(self.fn, "__self__", None)
            if isinstance(owner, type):           # dict.fromkeys & co: a new object per access
                handler = BUILTIN_CLASSMETHODS.get((owner, self.fn.__name__))
        if handler is not None:
            return handler(tx, *args, **kwargs)
        return call_on_constants(tx, self.fn, args, kwargs)

    def __repr__(self):
        return f"Builtin({getattr(self.fn, '__qualname__', self.fn)})"


_READONLY_DICT_METHODS = frozenset({"get", "keys", "items", "values", "__getitem__", "__contains__",
                                    "__len__", "copy"})


def _dict_subclass_method(tx, name, self_value, args, kwargs):
    """dict.<method>(obj, ...) on an instance of a dict subclass: through the Values it maps to
    (a guarded view for a caller's object: read-only methods only)."""
    if name not in DICT_METHODS:
        raise Unsupported(f"dict.{name} on a dict subclass", kind="call_builtin")
    if isinstance(self_value, ObjectValue) and name not in _READONLY_DICT_METHODS:
        raise Unsupported(f"mutating a dict subclass ({name})", kind="side_effect")
    view = dict_view_of(tx, self_value)
    if view is None:
        raise Unsupported(f"dict.{name} on {self_value}", kind="call_builtin")
    return DICT_METHODS[name](tx, view, *args, **kwargs)


# pure only without `key=` (a callable they would call)
_PURE_WITHOUT_KEY = frozenset({bisect.bisect_left, bisect.bisect_right})


def _is_pure(fn, kwargs=None):
    if fn in PURE_BUILTINS or fn in _PURE_WITHOUT_KEY and not (kwargs and "key" in kwargs):
        return True
    mod = getattr(fn, "__module__", None)
    if mod in PURE_MODULES:
        return True
    owner = getattr(fn, "__self__", None)
    if owner is not None and type(owner) in PURE_TYPES:
        name = getattr(fn, "__name__", "")
        return not name.startswith("_") or name in ("__getitem__", "__contains__", "__len__")
    objclass = getattr(fn, "__objclass__", None)
    if objclass is not None and objclass in PURE_TYPES:
        return True
    return False


def _plain_data(v):
    """Values a pure builtin may see as real objects: constants and containers of them (never a
    user object, whose dunders would run for real while tracing)."""
    if type(v) is ConstValue or isinstance(v, (ClassValue, PyModuleValue, RealCallableValue)):
        return True
    if isinstance(v, (TupleValue, ListValue)):
        return all(_plain_data(i) for i in v.items)
    if isinstance(v, DictValue):
        return all(_plain_data(i) for i in v.items.values())
    if type(v) is DictViewValue:
        return v.kind == "keys" or _plain_data(v.d)
    return isinstance(v, SetValue)


_SYM_BUILTINS = {min: torch.sym_min, max: torch.sym_max, abs: operator.abs}
_SYM_MATH = {getattr(math, n): getattr(torch, f"_sym_{n}") for n in (
    "sqrt", "cos", "cosh", "sin", "sinh", "tan", "tanh", "asin", "acos", "atan", "log2")}


def _has_sym_value(v):
    return isinstance(v, SymValue) or type(v) in (TupleValue, ListValue) and \
        any(isinstance(i, SymValue) for i in v.items)


def _specialized(v):
    """A value with its symbolic sizes replaced by their (guarded) numbers (a list: a copy, for
    a pure function that only reads it)."""
    if isinstance(v, SymValue):
        return const(v.as_python())
    if type(v) is TupleValue and any(isinstance(i, SymValue) for i in v.items):
        return TupleValue([_specialized(i) for i in v.items], cls=v.cls)
    if type(v) is ListValue and any(isinstance(i, SymValue) for i in v.items):
        return ListValue([_specialized(i) for i in v.items])
    return v


def _sym_builtin(fn, args):
    """A builtin on symbolic sizes that stays symbolic (min/max of two, abs, operator.*,
    math.prod of a shape)."""
    if fn is math.prod and len(args) == 1 and type(args[0]) is TupleValue:
        items = args[0].items
        if not all(map(is_sym_operand, items)):
            return None
        tx = next(i.tx for i in items if isinstance(i, SymValue))
        r = const(1)
        for i in items:
            r = sym_op(tx, operator.mul, [r, i]) if isinstance(i, SymValue) or isinstance(r, SymValue) \
                else const(r.value * i.value)
        return r
    if not all(map(is_sym_operand, args)):
        return None
    tx = next(a.tx for a in args if isinstance(a, SymValue))
    if fn in (min, max) and not all(a.python_type() is int for a in args):
        return None         # min(n, 4.5) is n or 4.5, not a float of both: compare (guarded)
    if fn in _SYM_BUILTINS and (fn is abs or len(args) == 2):
        return sym_op(tx, _SYM_BUILTINS[fn], args)
    if fn is operator.index and len(args) == 1 and args[0].python_type() is int:
        return args[0]
    if fn in _SYM_MATH and len(args) == 1:
        return sym_op(tx, _SYM_MATH[fn], args)       # math.sqrt(n): torch._sym_sqrt stays symbolic
    if fn is divmod and len(args) == 2:               # (a // b, a % b), as int and float define it
        q, r = sym_op(tx, operator.floordiv, args), sym_op(tx, operator.mod, args)
        return None if q is None or r is None else TupleValue([q, r])
    if getattr(fn, "__module__", "") in ("operator", "_operator", "math") or fn in (round, pow, divmod):
        # SymInt/SymFloat implement these (__floor__, __trunc__, __round__, ...); one that needs
        # the number asks the ShapeEnv for it, which guards it
        return sym_op(tx, fn, args)
    return None


def call_on_constants(tx, fn, args, kwargs):
    if not _is_pure(fn, kwargs):
        raise Unsupported(f"call to {getattr(fn, '__qualname__', fn)!s}", kind="call_builtin")
    if not kwargs and any(isinstance(a, Opaque) for a in args):
        raising_op(fn, args)
        r = scalar_op(fn, args)        # a pure function of item() results: computed by the entry
        if r is not None:
            return r
    if any(_has_sym_value(a) for a in args):
        r = None if kwargs else _sym_builtin(fn, args)
        if r is not None:
            return r
        # anything else needs the numbers: specialize them (the ShapeEnv guards each value)
        args = [_specialized(a) for a in args]
    if not all(_plain_data(a) for a in args) or not all(_plain_data(v) for v in kwargs.values()):
        if any(isinstance(a, TensorValue) for a in args) and getattr(fn, "__module__", "") in (
                "operator", "_operator", "math"):
            return graph_call(tx, "call_function", fn, list(args), dict(kwargs))
        raise Unsupported(f"{getattr(fn, '__qualname__', fn)} on a non-constant argument",
                          kind="call_builtin")
    try:
        pargs = [a.as_python() for a in args]
        pkw = {k: v.as_python() for k, v in kwargs.items()}
    except Unsupported:
        if any(isinstance(a, TensorValue) for a in args) and getattr(fn, "__module__", "") in (
                "operator", "_operator", "math"):
            return graph_call(tx, "call_function", fn, list(args), dict(kwargs))
        raise Unsupported(f"{getattr(fn, '__qualname__', fn)} with non-constant arguments",
                          kind="call_builtin")
    try:
        res = fn(*pargs, **pkw)
    except Exception as e:
        raise UserError(e)
    return wrap(tx, res, None)


# --------------------------------------------------------------------------
# operators

def get_item(tx, obj, idx):
    if isinstance(obj, TensorValue):
        if tx.getitem_to_index:
            r = index_under_mode(tx, obj, idx)
            if r is not None:
                return r
        if isinstance(idx, SymValue) and idx.python_type() is int and obj.fake.dim():
            # x[n] is x.select(0, n); Tensor.__getitem__ would read n through __index__, which
            # specializes it
            return graph_call(tx, "call_function", torch.select, [obj, const(0), idx], {})
        selected = select_scalar_indices(tx, obj, idx)
        if selected is not None:
            return selected
        return graph_call(tx, "call_function", operator.getitem, [obj, idx], {})
    getitem = getattr(obj, "getitem", None)
    if getitem is not None:
        return getitem(tx, idx)
    if type(obj) is ConstValue and idx.is_const():
        try:
            return wrap(tx, obj.value[idx.as_python()], None)
        except Exception as e:
            raise UserError(e)
    if isinstance(obj, ClassValue):           # the metaclass's __getitem__, else __class_getitem__
        r = call_special(tx, obj, "__getitem__", [idx])
        if r is not MISSING:
            return r
        return obj.getattr(tx, "__class_getitem__").call(tx, [idx], {})
    return obj.call_method(tx, "__getitem__", [idx], {})


# --------------------------------------------------------------------------
# builtin function handlers

BUILTINS = {}
BUILTIN_CLASSMETHODS = {}     # (class, name) -> handler, for builtin classmethods like dict.fromkeys


def handles(*fns):
    def deco(h):
        for f in fns:
            BUILTINS[f] = h
        return h
    return deco


@handles(object.__getattribute__)
def _object_getattribute(tx, v, name):
    return generic_getattr(tx, v, name.as_python())


@handles(len)
def _len(tx, v):
    if isinstance(v, TensorValue):
        if v.fake.dim() == 0:
            raise UserError(TypeError("len() of a 0-d tensor"))
        return size_value(tx, v, 0)
    items = getattr(v, "items", None)
    if isinstance(items, (list, dict)) and not isinstance(v, IteratorValue):
        return const(len(items))
    if type(v) is ConstValue:
        try:
            return const(len(v.value))
        except TypeError as e:
            raise UserError(e)
    if isinstance(v, ClassValue) or (isinstance(v, _InstanceBase) and not isinstance(v, ModuleValue)):
        return const(length(tx, v))
    return v.call_method(tx, "__len__", [], {})


def _isinstance_check(tx, v, cls):
    if isinstance(v, ObjectValue):
        if isinstance(v, DynamicAttrObjectValue) or class_lookup(tx, v.cls, "__class__")[0] is not \
                object.__dict__["__class__"]:   # isinstance would read obj.__class__: user code
            raise Unsupported(f"isinstance() of a {v.cls.__name__}, whose __class__ is computed", kind="isinstance")
        return isinstance(v.obj, cls)
    if isinstance(v, TensorValue):
        return issubclass(v.cls, cls) if isinstance(cls, type) else any(issubclass(v.cls, c) for c in cls)
    t = v.python_type()
    try:
        return issubclass(t, cls)
    except TypeError:
        return False


def _classinfo(classes):
    if isinstance(classes, tuple):
        return [c for x in classes for c in _classinfo(x)]
    args = getattr(classes, "__args__", None) if type(classes).__name__ in ("UnionType", "_UnionGenericAlias") else None
    return _classinfo(args) if args else [classes]


def _guard_abc_registry(tx, v, classes):
    """isinstance/issubclass against an ABC depends on its registry (ABC.register): guarded by
    the global ABC cache token, which every register() bumps. Runtime-checkable Protocols read
    the object's attributes for real: refused."""
    import abc
    for c in _classinfo(classes):
        if getattr(c, "_is_protocol", False) and getattr(c, "_is_runtime_protocol", False):
            raise Unsupported(f"isinstance against the runtime-checkable Protocol {c.__name__}",
                              kind="isinstance")
        if isinstance(c, abc.ABCMeta):
            tx.guards.add_code(f"{tx.cg.const(abc.get_cache_token, 'abc_token')}() == "
                               f"{abc.get_cache_token()}", None, "abc_registry")


@handles(isinstance)
def _isinstance(tx, v, cls):
    classes = cls.as_python()
    _guard_abc_registry(tx, v, classes)
    return const(_isinstance_check(tx, v, classes))


@handles(issubclass)
def _issubclass(tx, a, b):
    classes = b.as_python()
    _guard_abc_registry(tx, a, classes)
    try:
        return const(issubclass(a.as_python(), classes))
    except TypeError as e:
        raise UserError(e)


@handles(hasattr)
def _hasattr(tx, v, name):
    try:
        v.getattr(tx, name.as_python())
        return const(True)
    except UserError as e:
        if isinstance(e.exc, AttributeError):
            return const(False)
        raise
    except AttributeError:
        return const(False)


@handles(getattr)
def _getattr(tx, v, name, *default):
    try:
        return v.getattr(tx, name.as_python())
    except UserError as e:
        if default and isinstance(e.exc, AttributeError):
            return default[0]
        raise
    except AttributeError as e:
        if default:
            return default[0]
        raise UserError(e)


@handles(setattr)
def _setattr(tx, v, name, value):
    v.setattr(tx, name.as_python(), value)
    return NONE


@handles(object.__setattr__)
def _object_setattr(tx, v, name, value):
    if isinstance(v, NewObjectValue):
        if getattr(v, "frozen_by_break", False):       # Python holds the real one (policy/breaks.py)
            return v.setattr(tx, name.as_python(), value)
        v.attrs[name.as_python()] = value
        return NONE
    if isinstance(v, ObjectValue) and not isinstance(v, ModuleValue):   # bypasses the class's __setattr__
        v.store(tx, name.as_python(), value)
        return NONE
    v.setattr(tx, name.as_python(), value)
    return NONE


@handles(delattr)
def _delattr(tx, v, name):
    v.delattr(tx, name.as_python())
    return NONE


@handles(object.__delattr__)
def _object_delattr(tx, v, name):
    if isinstance(v, ObjectValue) and not isinstance(v, ModuleValue):   # bypasses the class's __delattr__
        v.delete(tx, name.as_python())
        return NONE
    v.delattr(tx, name.as_python())
    return NONE


@handles(type)
def _type(tx, v, *rest):
    if rest:
        raise Unsupported("type() with 3 arguments", kind="call_builtin")
    return ClassValue(v.python_type())


@handles(callable)
def _callable(tx, v):
    if isinstance(v, _InstanceBase):
        return const(class_lookup(tx, v.cls, "__call__")[0] is not _MISSING)
    if isinstance(v, (TensorValue, BaseSeq, DictValue, SetValue, IteratorValue)):
        return const(False)
    try:
        return const(callable(v.as_python()))
    except Unsupported:
        return const(hasattr(type(v), "call") and type(v).call is not Value.call)


@handles(iter)
def _iter(tx, v):
    if isinstance(v, IteratorValue):
        return v
    if type(v) is ListValue:
        return ListIterValue(v)
    if type(v) in (DictValue, SetValue):
        return HashIterValue(tx, v)
    if type(v) is DictViewValue:
        return HashIterValue(tx, v.d, v)
    return IteratorValue(v.unpack(tx))


_NOT_ITERATORS = (list, tuple, dict, set, frozenset, str, bytes, bytearray, range,
                  type({}.keys()), type({}.values()), type({}.items()))


@handles(next)
def _next(tx, it, *default):
    if not isinstance(it, IteratorValue):
        t = it.python_type() if hasattr(it, "python_type") else None
        if t in _NOT_ITERATORS:
            raise UserError(TypeError(f"'{t.__name__}' object is not an iterator"))
        it = _iter(tx, it)
    v = it.next()
    if v is None:
        if default:
            return default[0]
        raise UserError(StopIteration())
    return v


@handles(range)
def _range(tx, *args):
    return ConstValue(range(*[a.as_python() for a in args]))


@handles(enumerate)
def _enumerate(tx, it, start=None):
    if type(it) is SeqIterValue and it.cls is zip and it.cols is not None and it.source is None \
            and not it.nested and not it.done and not it.owned \
            and (start is None or type(start) is ConstValue and type(start.value) is int):
        return _enumerate_zip(it, 0 if start is None else start.value)
    if _lazy([it]):
        from .stdlib_iter import EnumerateValue
        return EnumerateValue(tx, it, start or const(0))
    s = 0 if start is None else start.as_python()
    rows = [TupleValue([const(i + s), v]) for i, v in enumerate(it.unpack(tx))]
    return SeqIterValue(rows, enumerate, [it], [("list", it, 0)], s) if type(it) is ListValue \
        else IteratorValue(rows)


def _enumerate_zip(z, start):
    """enumerate() over a zip of lists the trace made: one iterator that is rebuilt live at a
    graph break as `enumerate(zip(...), n)` (values/iterators.py SeqIterValue `nested`); the
    zip becomes its own (stepping it apart refuses)."""
    z._check()
    p = z.pos
    cols = [(c[0], c[1], c[2] + p) if c[0] == "list" else (c[0], c[1][p:]) for c in z.cols]
    rows = [TupleValue([const(start + i), row]) for i, row in enumerate(z.items[p:])]
    e = SeqIterValue(rows, enumerate, [lst for lst, _ in z.lists], cols, start, strict=z.strict, nested=True)
    e.lists = z.lists           # the lists as the zip saw them made (its _check's reference)
    z.owned = True
    return e


def _lazy(vs):
    """Is any of these an on-demand iterator (a generator, itertools.count & co)? Then zip, map,
    filter and enumerate pull from it lazily, as CPython's do (runtime/stdlib_iter.py)."""
    from .stdlib_iter import is_lazy
    return any(is_lazy(v) for v in vs)


@handles(zip)
def _zip(tx, *its, strict=None):
    if _lazy(its) and not (strict is not None and strict.as_python()):
        from .stdlib_iter import zip_rows
        return zip_rows(tx, its)
    cols = [it.unpack(tx) for it in its]
    rows = [TupleValue(list(row)) for row in zip(*cols)]
    if strict is not None and strict.as_python() and len({len(c) for c in cols}) > 1:
        # CPython yields the common rows, then raises naming the first argument that ran out
        # early or, when the first ran out, the first one still holding items (redteam6)
        n = len(rows)
        i = next(k for k, c in enumerate(cols) if len(c) == n)
        how = "shorter"
        if i == 0:
            i, how = next(k for k, c in enumerate(cols) if len(c) > n), "longer"
        plural = " " if i == 1 else "s 1-"
        return EndsRaising(rows, UserError(ValueError(
            f"zip() argument {i + 1} is {how} than argument{plural}{i}")))
    lists = [it for it in its if type(it) is ListValue]
    if not lists:
        return IteratorValue(rows)
    live = [("list", it, 0) if type(it) is ListValue else ("items", col) for it, col in zip(its, cols)]
    return SeqIterValue(rows, zip, lists, live, strict=bool(strict is not None and strict.as_python()))


@handles(reversed)
def _reversed(tx, v):
    items = list(reversed(v.unpack(tx)))
    return SeqIterValue(items, type(reversed([])), [v], [("rev", v, len(items) - 1)]) \
        if type(v) is ListValue else IteratorValue(items)


@handles(map)
def _map(tx, fn, *its):
    # fn runs at each step, as CPython's map calls it (its side effects interleave with the
    # loop body's), over iterators that read lists live
    from .stdlib_iter import lazy_map
    return lazy_map(tx, fn, its)


@handles(filter)
def _filter(tx, fn, it):
    # the predicate runs at each step over an iterator that reads a list live (as map above)
    from .stdlib_iter import lazy_filter
    return lazy_filter(tx, [fn, it], {})


@handles(list)
def _list(tx, it=None):
    return ListValue([] if it is None else it.unpack(tx))


@handles(tuple)
def _tuple(tx, it=None):
    if isinstance(it, TupleValue) and it.cls is tuple:
        return it
    return TupleValue([] if it is None else it.unpack(tx))


@handles(dict)
def _dict(tx, arg=None, **kwargs):
    d = DictValue({})
    DICT_METHODS["update"](tx, d, arg, **kwargs)
    return d


def _new_set(tx, cls, it):
    """set(it) / frozenset(it), with a mirror built the way CPython builds it (containers.SetValue)."""
    from ..values.containers import mirror_of
    if it is None:
        return SetValue([], cls=cls, real=cls())
    mirror = mirror_of(it)
    keys = [py_key(x) for x in it.unpack(tx)]
    return SetValue(keys, cls=cls, real=cls(mirror) if mirror is not None else None)


@handles(set)
def _set(tx, it=None):
    return _new_set(tx, set, it)


@handles(frozenset)
def _frozenset(tx, it=None):
    return _new_set(tx, frozenset, it)


def _builtin_constants(v):
    """A builtin constant, or a tuple/list of them: bytes() of it runs no user code."""
    if type(v) is ConstValue:
        return type(v.value) in CONST_TYPES
    return type(v) in (TupleValue, ListValue) and all(map(_builtin_constants, v.items))


@handles(bytes)
def _bytes(tx, *args, **kwargs):
    """bytes(n), bytes(str, encoding), bytes([ints]) of constants (a size: its guarded number)."""
    args = [_specialized(a) for a in args]
    kwargs = {k: _specialized(v) for k, v in kwargs.items()}
    if not all(map(_builtin_constants, [*args, *kwargs.values()])):
        raise Unsupported("bytes() of a non-constant argument", kind="construct")
    try:
        return const(bytes(*[a.as_python() for a in args], **{k: v.as_python() for k, v in kwargs.items()}))
    except Exception as e:
        raise UserError(e)


@handles(bytearray)
def _bytearray(tx, *args, **kwargs):
    """bytearray() of the arguments bytes() takes (the same rules, and the same errors): a new
    bytearray, built afresh by every call of the entry (values/bytearrays.py)."""
    from ..values.bytearrays import BytearrayValue
    return BytearrayValue(_bytes(tx, *args, **kwargs).as_python())


@handles(hash)
def _hash(tx, v):
    tx.hash_dependent = True        # ids and str hashes differ between processes (runtime/warm.py)
    if isinstance(v, TensorValue):
        raise Unsupported("hash() of a tensor (its id)", kind="id")
    if isinstance(v, SetValue) and v.cls is frozenset:
        return const(hash(frozenset(v.items)))
    r = hash_value(tx, v)
    if not (r.is_const() and isinstance(r.as_python(), int)):
        raise UserError(TypeError("__hash__ method should return an integer"))
    return const(_hash_result(int(r.as_python())))


def _hash_result(h):
    """What hash() makes of a __hash__ result (CPython's slot_tp_hash): kept as is when it
    fits a Py_ssize_t (-1 becomes -2), else reduced by int's own hash."""
    if -(1 << 63) <= h < (1 << 63):
        return -2 if h == -1 else h
    return hash(h)


def _reduce_builtin(name, pyfn):
    def handler(tx, *args, key=None, default=None):
        items = args[0].unpack(tx) if len(args) == 1 else list(args)
        if not items:
            if default is not None:
                return default
            raise UserError(ValueError(f"{name}() arg is an empty sequence"))
        if any(isinstance(i, TensorValue) and not i.roots for i in items):
            if key is not None or len(args) == 1 and not all(isinstance(i, TensorValue) for i in items):
                raise Unsupported(f"{name}() over tensors", kind="data_dependent")
            # max(a, b) of tensors compares by truth value: data-dependent
            raise Unsupported(f"{name}() of tensors depends on their values", kind="data_dependent")
        if key is None and len(items) == 2 and any(isinstance(i, SymValue) for i in items):
            r = _sym_builtin(pyfn, items)         # min(n, 6) of a symbolic size stays symbolic
            if r is not None:
                return r
        keys = items if key is None else [key.call(tx, [i], {}) for i in items]
        best = pyfn(range(len(items)), key=lambda j: Ordered(tx, keys[j]))
        return items[best]
    return handler


BUILTINS[min] = _reduce_builtin("min", min)
BUILTINS[max] = _reduce_builtin("max", max)


@handles(sum)
def _sum(tx, it, start=None):
    acc = const(0) if start is None else start
    for v in it.unpack(tx):
        acc = binary_op(tx, operator.add, acc, v)
    return acc


def _short_circuit(tx, it, stop_on):
    """any()/all(): pull items until one's truth is `stop_on` (later items are never produced,
    so a generator's remaining side effects do not happen, as in CPython)."""
    it = _iter(tx, it)
    while True:
        v = it.next()
        if v is None:
            return const(not stop_on)
        if truth(tx, v) == stop_on:
            return const(stop_on)


@handles(any)
def _any(tx, it):
    return _short_circuit(tx, it, True)


@handles(all)
def _all(tx, it):
    return _short_circuit(tx, it, False)


def sorted_items(tx, items, key=None, reverse=None):
    """CPython's sort over the items (or their keys), comparing through the protocol."""
    keys = [key.call(tx, [i], {}) if key is not None and not (
        key.is_const() and key.as_python() is None) else i for i in items]
    order = sorted(range(len(items)), key=lambda j: Ordered(tx, keys[j]),
                   reverse=bool(reverse.as_python()) if reverse is not None else False)
    return [items[j] for j in order]


@handles(sorted)
def _sorted(tx, it, key=None, reverse=None):
    return ListValue(sorted_items(tx, it.unpack(tx), key, reverse))


@handles(abs)
def _abs(tx, v):
    if isinstance(v, TensorValue):
        return graph_call(tx, "call_function", operator.abs, [v], {})
    return call_on_constants(tx, abs, [v], {})


@handles(round)
def _round(tx, v, nd=None):
    if isinstance(v, TensorValue):
        raise Unsupported("round() of a tensor", kind="data_dependent")
    return call_on_constants(tx, round, [v] + ([nd] if nd is not None else []), {})


def _number_protocol(tx, pytype, v):
    """int(obj) / float(obj) of a user object: its __int__ / __float__, else __index__ (inlined);
    a result of exactly the type asked for is returned, anything else refused. None when the
    type defines neither."""
    for name in (f"__{pytype.__name__}__", "__index__"):
        r = call_special(tx, v, name, [])
        if r is MISSING:
            continue
        want = int if name == "__index__" else pytype
        if type(r) is ConstValue and type(r.value) is want:
            return r if want is pytype else const(float(r.value))
        raise Unsupported(f"{pytype.__name__}() of {v}: {name} returned {r}", kind="call_builtin")
    return None


def _scalar_conv(pytype):
    def handler(tx, v=None, *rest):
        if v is None:
            return const(pytype())
        if isinstance(v, TensorValue):
            c = known(tx, v) if v.roots and not rest else None
            if c is not None:               # a module-state scalar (values/known.py)
                return const(pytype(c))
            raise Unsupported(f"{pytype.__name__}() of a tensor depends on its data", kind="data_dependent")
        if isinstance(v, Opaque):
            raising_op(pytype, [v, *rest])
            r = scalar_op(pytype, [v, *rest])
            return r if r is not None else v._needed(f"{pytype.__name__}()")
        if isinstance(v, SymValue) and not rest:
            if pytype is v.python_type() and pytype is not bool:
                return v
            if pytype is float:
                return sym_op(tx, torch.sym_float, [v])
            if pytype is int and v.python_type() is float:
                return sym_op(tx, torch.sym_int, [v])
        if type(v) is ConstValue:
            more = [r.as_python() for r in rest]    # an opaque base: Unsupported, not the user's error
            try:
                return const(pytype(v.value, *more))
            except Exception as e:
                raise UserError(e)
        if pytype is bool:
            return const(truth(tx, v))
        if pytype in (int, float) and isinstance(v, _InstanceBase) and not rest:
            r = _number_protocol(tx, pytype, v)
            if r is not None:
                return r
        if pytype is str:
            if isinstance(v, _InstanceBase):
                m = bind_class_attr_(tx, v, "__str__") or bind_class_attr_(tx, v, "__repr__")
                if m is None:
                    raise Unsupported(f"str() of {v.cls.__name__} uses object's default", kind="repr")
                return m.call(tx, [], {})
        try:
            return const(pytype(v.as_python()))
        except Unsupported:
            raise
        except Exception as e:
            raise UserError(e)
    return handler


for _t in (int, float, bool, str, complex):
    BUILTINS[_t] = _scalar_conv(_t)


def _dunder_text(name):
    """repr()/str() of a user object runs its own __repr__/__str__ (inlined); the defaults, which
    print an address, are not captured."""
    def handler(tx, v, *rest):
        if isinstance(v, _InstanceBase):
            m = bind_class_attr_(tx, v, name)
            if m is not None:
                return m.call(tx, [], {})
            raise Unsupported(f"{name[2:-2]}() of {v.cls.__name__} uses object's default", kind="repr")
        if isinstance(v, TensorValue):
            raise Unsupported(f"{name[2:-2]}() of a tensor depends on its data", kind="data_dependent")
        return call_on_constants(tx, repr if name == "__repr__" else str, [v] + list(rest), {})
    return handler


def bind_class_attr_(tx, v, name):
    """The user-defined (Python) dunder `name` of v's class bound to v, or None."""
    m = bind_class_attr(tx, v, v.cls, name)
    if m is _MISSING or not (isinstance(m, BoundMethodValue) and isinstance(m.fn, UserFnValue)):
        return None
    return m


BUILTINS[repr] = _dunder_text("__repr__")


@handles(print)
def _print(tx, *args, **kwargs):
    if printable_call(args, kwargs):
        run_in_python(tx, print, args, kwargs, "print()", _PRINT_HINT)
        return NONE
    raise Unsupported("print() of values whose printing runs user code", kind="print", hint=_PRINT_HINT)


_PRINT_HINT = "printing is a side effect the graph cannot hold; move it out of the compiled function"


@handles(id)
def _id(tx, v):
    """Caller-world objects have their real id; a value made by the trace gets its Value's id,
    which is just as unique and stable for the trace (it is never observable outside it)."""
    tx.hash_dependent = True        # a value of this process only (runtime/warm.py)
    if isinstance(v, TensorValue):
        raise Unsupported("id() of a tensor (a run-time object)", kind="id")
    if isinstance(v, ObjectValue):       # specializes on that very object
        tx.guards.add_identity(v.source, v.obj)
        return const(id(v.obj))
    ident = real_identity(v)
    if ident is not NO_IDENTITY:
        return const(id(ident))
    return const(id(v))


@handles(super)
def _super(tx, *args):
    if not args:
        cls, obj = tx.frame.zero_arg_super()
    else:
        cls, obj = args[0].as_python(), args[1]
    return SuperValue(cls, obj)


@handles(divmod)
def _divmod(tx, a, b):
    if isinstance(a, TensorValue) or isinstance(b, TensorValue):
        return TupleValue([binary_op(tx, operator.floordiv, a, b), binary_op(tx, operator.mod, a, b)])
    return call_on_constants(tx, divmod, [a, b], {})


def _dict_fromkeys(tx, keys, value=NONE):
    return DictValue({py_key(k): value for k in keys.unpack(tx)})


BUILTIN_CLASSMETHODS[(dict, "fromkeys")] = _dict_fromkeys


@handles(tuple.__new__)
def _tuple_new(tx, cls, it=None):
    return TupleValue([] if it is None else it.unpack(tx), cls=cls.as_python())


@handles(functools.reduce)
def _reduce(tx, fn, it, *init):
    items = it.unpack(tx)
    if not init and not items:
        raise UserError(TypeError("reduce() of empty iterable with no initial value"))
    acc = init[0] if init else items.pop(0)
    for v in items:
        acc = fn.call(tx, [acc, v], {})
    return acc


@handles(operator.getitem)
def _op_getitem(tx, a, b):
    return get_item(tx, a, b)


@handles(operator.contains)
def _op_contains(tx, a, b):
    return contains_op(tx, b, a)


@handles(operator.not_)
def _op_not(tx, a):
    return unary_op(tx, operator.not_, a)


@handles(operator.is_)
def _op_is(tx, a, b):
    return const(is_same(a, b, tx))


@handles(operator.is_not)
def _op_is_not(tx, a, b):
    return const(not is_same(a, b, tx))


def _register_operator_module():
    binops = [operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv,
              operator.mod, operator.pow, operator.matmul, operator.and_, operator.or_, operator.xor,
              operator.lshift, operator.rshift] + list(INPLACE_TO_BINARY)
    for op in binops:
        BUILTINS[op] = functools.partial(lambda op, tx, a, b: binary_op(tx, op, a, b), op)
    for op in (operator.lt, operator.le, operator.eq, operator.ne, operator.gt, operator.ge):
        BUILTINS[op] = functools.partial(lambda op, tx, a, b: compare_op(tx, op, a, b), op)
    for op in (operator.neg, operator.pos, operator.invert, operator.abs):
        BUILTINS[op] = functools.partial(lambda op, tx, a: unary_op(tx, op, a), op)


_register_operator_module()


# --------------------------------------------------------------------------
# dict subclasses (collections.Counter, user dicts), object's own slots, vars()

def _dict_items_of(v):
    """The DictValue holding the items of a dict or trace-created dict-subclass instance."""
    if isinstance(v, DictValue):
        return v
    if isinstance(v, NewObjectValue) and v.dict_items is not None:
        return v.dict_items
    return None


@handles(dict.__init__)
def _dict_init(tx, self_value, *args, **kwargs):
    items = _dict_items_of(self_value)
    if items is None:
        raise Unsupported(f"dict.__init__ on {self_value}", kind="call_builtin")
    if len(args) > 1:
        raise UserError(TypeError(f"dict expected at most 1 argument, got {len(args)}"))
    DICT_METHODS["update"](tx, items, args[0] if args else None, **kwargs)
    return NONE


@handles(dict.__getitem__)
def _dict_getitem(tx, self_value, key):
    """d[key] through dict's own __getitem__: a missing key calls the subclass's __missing__
    (collections.Counter, user dicts), as CPython's dict_subscript does."""
    if isinstance(self_value, DictValue):
        return self_value.getitem(tx, key)
    if not isinstance(self_value, _InstanceBase):
        raise Unsupported(f"dict.__getitem__ on {self_value}", kind="call_builtin")
    if _dict_subclass_method(tx, "__contains__", self_value, [key], {}).as_python():
        return _dict_subclass_method(tx, "__getitem__", self_value, [key], {})
    missing = bind_class_attr(tx, self_value, self_value.cls, "__missing__")
    if missing is not _MISSING:
        return missing.call(tx, [key], {})
    raise UserError(KeyError(py_key(key)))


@handles(__import__("_collections")._count_elements)
def _count_elements(tx, mapping, iterable):
    """collections.Counter's helper: mapping[elem] = mapping.get(elem, 0) + 1 for each elem."""
    for elem in iterable.unpack(tx):
        current = mapping.call_method(tx, "get", [elem, const(0)], {})
        mapping.call_method(tx, "__setitem__", [elem, binary_op(tx, operator.add, current, const(1))], {})
    return NONE


@handles(object.__new__)
def _object_new(tx, cls, *args, **kwargs):
    from .stdlib import new_instance
    if not isinstance(cls, ClassValue):
        raise Unsupported(f"object.__new__({cls})", kind="construct")
    klass = cls.cls
    if klass.__module__ == "builtins" or any(k.__module__ == "builtins" and k is not object
                                              for k in klass.__mro__):
        raise Unsupported(f"object.__new__ of {klass.__name__}", kind="construct")
    if (args or kwargs) and class_lookup(tx, klass, "__init__")[0] is object.__init__:
        raise UserError(TypeError(f"{klass.__name__}() takes no arguments"))
    return new_instance(klass)


@handles(vars)
def _vars(tx, *args):
    if not args:
        raise Unsupported("vars() without an argument", kind="call_builtin")
    try:
        return args[0].getattr(tx, "__dict__")
    except UserError as e:
        if isinstance(e.exc, AttributeError):
            raise UserError(TypeError("vars() argument must have __dict__ attribute")) from None
        raise
