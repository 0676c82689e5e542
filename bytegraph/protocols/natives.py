"""C-level special methods of builtin containers and `object`, modelled over Values.

The trace's containers hold Values, so their C methods cannot be run for real: each rule
here does what the C method does, calling back into the protocol (item comparisons go
through `==`, so a user `__eq__` on an item is inlined). A rule returns NotImplemented
exactly where the C method does, and MISSING to decline (the caller then refuses or
folds constants).
"""
import collections
import operator

from ..exc import Unsupported, UserError
from ..values.base import ConstValue, const
from ..values.base import wrap
from ..values.containers import (BaseSeq, TupleValue, ListValue, DictValue, SetValue, DictViewValue,
                                 py_key, mirror_of)
from ..values.objects import ObjectValue, NewObjectValue
from ..sources import RawDictItemSource
from .special import native, NI, MISSING, type_of, call_special, is_ni
from . import operators as ops

_ORDER = (operator.lt, operator.le, operator.gt, operator.ge)
_ORDER_NAMES = {"__lt__": operator.lt, "__le__": operator.le, "__gt__": operator.gt, "__ge__": operator.ge}


# --------------------------------------------------------------------------
# object

@native([object], "__eq__")
def _object_eq(tx, a, b):
    return const(True) if ops.is_same(a, b) else NI


@native([object], "__ne__")
def _object_ne(tx, a, b):
    r = call_special(tx, a, "__eq__", [b])
    if r is MISSING or is_ni(r):
        return NI
    return const(not ops.truth(tx, r))


@native([object], "__lt__", "__le__", "__gt__", "__ge__")
def _object_order(tx, a, b):
    return NI


# --------------------------------------------------------------------------
# list and tuple

def _seq_items(v, typ):
    """The items of a list/tuple Value of exactly the sequence kind `typ`, else None."""
    if isinstance(v, BaseSeq) and issubclass(type_of(v), typ):
        return v.items
    if type(v) is ConstValue and isinstance(v.value, typ):
        return [ConstValue(x) for x in v.value]
    return None


def _seq_compare(op):
    def rule(tx, a, b):
        typ = list if issubclass(type_of(a), list) else tuple
        xs, ys = _seq_items(a, typ), _seq_items(b, typ)
        if xs is None:
            return MISSING
        if ys is None:
            return NI
        if op in (operator.eq, operator.ne) and len(xs) != len(ys):
            return const(op is operator.ne)
        for x, y in zip(xs, ys):
            if not ops.equal(tx, x, y):
                if op is operator.eq:
                    return const(False)
                if op is operator.ne:
                    return const(True)
                return ops.compare_op(tx, op, x, y)
        return const(op(len(xs), len(ys)))
    return rule


for _name, _op in {"__eq__": operator.eq, "__ne__": operator.ne, **_ORDER_NAMES}.items():
    native([list, tuple], _name)(_seq_compare(_op))


@native([list, tuple], "__add__")
def _seq_add(tx, a, b):
    typ = list if issubclass(type_of(a), list) else tuple
    xs, ys = _seq_items(a, typ), _seq_items(b, typ)
    if xs is None or ys is None:
        if xs is not None:
            raise UserError(TypeError(f'can only concatenate {typ.__name__} (not '
                                      f'"{type_of(b).__name__}") to {typ.__name__}'))
        return MISSING
    return ListValue(xs + ys) if typ is list else TupleValue(xs + ys)


@native([list, tuple], "__mul__", "__rmul__")
def _seq_repeat(tx, a, n):
    typ = list if issubclass(type_of(a), list) else tuple
    xs = _seq_items(a, typ)
    if xs is None:
        return MISSING
    if not (n.is_const() and isinstance(n.as_python(), int)):
        if type(n) is ConstValue:
            return NI
        return MISSING
    items = xs * n.as_python()
    return ListValue(items) if typ is list else TupleValue(items)


@native([list], "__iadd__")
def _list_iadd(tx, a, b):
    if not isinstance(a, ListValue):
        return MISSING
    new = ops.iterate(tx, b)
    a.mutate(tx)
    a.items.extend(new)
    return a


@native([list], "__imul__")
def _list_imul(tx, a, n):
    if not isinstance(a, ListValue) or not (n.is_const() and isinstance(n.as_python(), int)):
        return MISSING
    a.mutate(tx)
    a.items[:] = a.items * n.as_python()
    return a


@native([list, tuple], "__contains__")
def _seq_contains(tx, a, item):
    typ = list if issubclass(type_of(a), list) else tuple
    xs = _seq_items(a, typ)
    if xs is None:
        return MISSING
    return const(any(ops.equal(tx, x, item) for x in xs))


@native([list, tuple], "__len__")
def _seq_len(tx, a):
    typ = list if issubclass(type_of(a), list) else tuple
    xs = _seq_items(a, typ)
    return MISSING if xs is None else const(len(xs))


# --------------------------------------------------------------------------
# dict

def dict_view_of(tx, v):
    """The Values a dict-like Value maps to: a trace dict, the dict part of a trace-created
    dict-subclass instance, or a guarded view of a caller's dict-subclass instance."""
    if isinstance(v, DictValue):
        return v
    if isinstance(v, NewObjectValue) and v.dict_items is not None:
        return v.dict_items
    if isinstance(v, ObjectValue) and isinstance(v.obj, dict) and not v.pending:
        obj, src = v.obj, v.source
        keys = list(dict.keys(obj))
        if not all(type(k) in (str, int) for k in keys):
            raise Unsupported("dict subclass with non-str/int keys", kind="dict_key")
        tx.guards.add_code(f"tuple({tx.cg.const(dict.keys, 'dict_keys')}({src.expr(tx.cg)})) == "
                           f"{tx.cg.const(tuple(keys), 'keys')}", src, "dict_keys", tuple(keys))   # a constant (runtime/warm.py)
        return DictValue({k: wrap(tx, dict.__getitem__(obj, k), RawDictItemSource(src, k)) for k in keys})
    return None


def set_keys_of(v):
    if isinstance(v, SetValue):
        return set(v.items)
    if type(v) is ConstValue and isinstance(v.value, (set, frozenset)):
        return set(v.value)
    return None


@native([dict], "__eq__")
def _dict_eq(tx, a, b):
    da, db = dict_view_of(tx, a), dict_view_of(tx, b)
    if da is None:
        return MISSING
    if db is None:
        return NI
    same = da.items.keys() == db.items.keys() and all(
        ops.equal(tx, v, db.items[k]) for k, v in da.items.items())
    return const(same)


def _dict_eq_ne(tx, a, b, name):
    r = _dict_eq(tx, a, b)
    if name == "__ne__" and r is not MISSING and not is_ni(r):
        return const(not r.value)
    return r


native([dict], "__ne__")(lambda tx, a, b: _dict_eq_ne(tx, a, b, "__ne__"))


def _dict_union(owner, reflected):
    """dict.__or__ builds a plain dict; OrderedDict.__or__ builds type(self) (modelled only for
    OrderedDict itself, whose constructor runs no user code)."""
    def rule(tx, a, b):
        da, db = dict_view_of(tx, a), dict_view_of(tx, b)
        if da is None or (owner is not dict and type_of(a) is not owner):
            return MISSING
        if db is None:
            return NI
        first, second = (db, da) if reflected else (da, db)
        return DictValue({**first.items, **second.items}, cls=owner)
    return rule


for _owner in (dict, collections.OrderedDict):
    native([_owner], "__or__")(_dict_union(_owner, False))
    native([_owner], "__ror__")(_dict_union(_owner, True))


@native([dict, collections.OrderedDict], "__ior__")
def _dict_ior(tx, a, b):
    if not isinstance(a, DictValue):
        return MISSING
    return a.call_method(tx, "update", [b], {}) and a


@native([dict], "__contains__")
def _dict_contains(tx, a, k):
    d = dict_view_of(tx, a)
    if d is None:
        return MISSING
    ops.check_hashable(tx, k)            # an unhashable key raises, as in Python
    return const(py_key(k) in d.items)


@native([dict], "__len__")
def _dict_len(tx, a):
    d = dict_view_of(tx, a)
    return MISSING if d is None else const(len(d.items))


# --------------------------------------------------------------------------
# dict views (values/containers.py DictViewValue)

_KEYS, _VALUES, _ITEMS = type({}.keys()), type({}.values()), type({}.items())


def _view(v, *kinds):
    return v if isinstance(v, DictViewValue) and v.kind in kinds else None


@native([_KEYS, _VALUES, _ITEMS], "__len__")
def _view_len(tx, a):
    v = _view(a, "keys", "values", "items")
    return MISSING if v is None else const(len(v.d.items))


@native([_KEYS], "__contains__")
def _keys_contains(tx, a, k):
    v = _view(a, "keys")
    if v is None:
        return MISSING
    ops.check_hashable(tx, k)
    return const(py_key(k) in v.d.items)


@native([_ITEMS], "__contains__")
def _items_contains(tx, a, item):
    v = _view(a, "items")
    if v is None:
        return MISSING
    if type(item) is ConstValue and type(item.value) is tuple:
        pair = [ConstValue(x) for x in item.value]
    elif type(item) is TupleValue and item.cls is tuple:
        pair = item.items
    else:
        return MISSING
    if len(pair) != 2:
        return const(False)
    ops.check_hashable(tx, pair[0])
    k = py_key(pair[0])
    if k not in v.d.items:
        return const(False)
    return const(ops.equal(tx, v.d.items[k], pair[1]))


def _keys_rule(fn, reflected=False):
    """A set operator or comparison of a keys view, run on a real keys view with the same keys
    in the same order against the other operand's mirror (exactly eager's operation)."""
    def rule(tx, a, b):
        v = _view(a, "keys")
        if v is None:
            return MISSING
        other = mirror_of(b)
        if other is None:
            return MISSING
        try:
            res = fn(other, v.real_keys()) if reflected else fn(v.real_keys(), other)
        except TypeError as e:
            raise UserError(e) from None
        if isinstance(res, (set, frozenset)):
            return SetValue(res, cls=type(res), real=res)
        return const(res)
    return rule


for _name, _fn in {"__and__": operator.and_, "__or__": operator.or_, "__sub__": operator.sub,
                   "__xor__": operator.xor, "__eq__": operator.eq, "__ne__": operator.ne,
                   **_ORDER_NAMES}.items():
    native([_KEYS], _name)(_keys_rule(_fn))
for _name, _fn in {"__rand__": operator.and_, "__ror__": operator.or_, "__rsub__": operator.sub,
                   "__rxor__": operator.xor}.items():
    native([_KEYS], _name)(_keys_rule(_fn, reflected=True))


# --------------------------------------------------------------------------
# set and frozenset

def _set_rule(owner, fn, reflected=False):
    """A set operator of `owner` (set or frozenset): the result is exactly `owner`, whatever
    subclass the operand is."""
    def rule(tx, a, b):
        ka, kb = set_keys_of(a), set_keys_of(b)
        if ka is None:
            return MISSING
        if kb is None:
            return NI
        ra, rb = mirror_of(a), mirror_of(b)
        if isinstance(a, SetValue) and isinstance(b, SetValue) and ra is not None and rb is not None:
            res = fn(rb, ra) if reflected else fn(ra, rb)     # the same operation on mirrors
            if isinstance(res, (set, frozenset)):
                return SetValue(res, cls=owner, real=res if type(res) is owner else None)
            return const(res)
        res = fn(kb, ka) if reflected else fn(ka, kb)
        if isinstance(res, (set, frozenset)):
            return SetValue(res, cls=owner)
        return const(res)
    return rule


for _owner in (set, frozenset):
    for _name, _fn in {"__and__": operator.and_, "__or__": operator.or_, "__sub__": operator.sub,
                       "__xor__": operator.xor, "__eq__": operator.eq, "__ne__": operator.ne,
                       **_ORDER_NAMES}.items():
        native([_owner], _name)(_set_rule(_owner, _fn))
    for _name, _fn in {"__rand__": operator.and_, "__ror__": operator.or_, "__rsub__": operator.sub,
                       "__rxor__": operator.xor}.items():
        native([_owner], _name)(_set_rule(_owner, _fn, reflected=True))


def _set_inplace(fn, ifn):
    def rule(tx, a, b):
        kb = set_keys_of(b)
        if not isinstance(a, SetValue) or a.cls is not set:
            return MISSING
        if kb is None:
            return NI
        rb = mirror_of(b) if isinstance(b, SetValue) else None
        a.record(_INPLACE_METHOD[fn], [b])
        a.mutate(tx)
        a.items = dict.fromkeys(fn(set(a.items), kb))
        a.real = ifn(a.real, rb) if a.real is not None and rb is not None else None
        return a
    return rule


_INPLACE_METHOD = {operator.and_: "__iand__", operator.or_: "__ior__", operator.sub: "__isub__",
                   operator.xor: "__ixor__"}

for _name, (_fn, _ifn) in {"__iand__": (operator.and_, operator.iand),
                           "__ior__": (operator.or_, operator.ior),
                           "__isub__": (operator.sub, operator.isub),
                           "__ixor__": (operator.xor, operator.ixor)}.items():
    native([set], _name)(_set_inplace(_fn, _ifn))


@native([set, frozenset], "__contains__")
def _set_contains(tx, a, k):
    ka = set_keys_of(a)
    if ka is None:
        return MISSING
    ops.check_hashable(tx, k)
    return const(py_key(k) in ka)


@native([set, frozenset], "__len__")
def _set_len(tx, a):
    ka = set_keys_of(a)
    return MISSING if ka is None else const(len(ka))


