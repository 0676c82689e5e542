"""Containers: tuple, list, dict, set, and iterators over them.

Items are Values. A container from the caller's world carries its Source; the
first mutation of such a container registers it with the side-effect log, and
the epilogue writes its final contents back into the same object (identity is
preserved). A container built during the trace has no source and is rebuilt in
the epilogue only if it escapes (is returned or stored somewhere visible).

Methods are small functions in per-type tables (LIST_METHODS, DICT_METHODS, ...),
so adding one is adding a row, not a branch.
"""
import itertools
import collections

import torch

from ..exc import Unsupported, UserError
from .base import Value, ConstValue, NONE, const, wrap, register_wrapper, POLICY
from ..sources import ItemSource, ReduceSource


def py_key(v):
    """A Value used as a dict key / set element -> its Python hashable key. The real object
    serves only when hashing and comparing it runs no Python code (a class whose metaclass
    defines __hash__/__eq__ in Python is refused: those would run for real, once)."""
    if v.is_const():
        key = v.as_python()
        if isinstance(key, type) and type(key) is not type:
            if _python_hash(type(key)):
                raise Unsupported("a class with a Python-level metaclass __hash__/__eq__ as a dict key",
                                  kind="dict_key")
            from .lookup import active_tracer, class_lookup
            tx = active_tracer()        # guarded: a metaclass gaining __hash__/__eq__ later
            class_lookup(tx, type(key), "__hash__")
            class_lookup(tx, type(key), "__eq__")
        return key
    if isinstance(v, TupleValue):
        return tuple(py_key(x) for x in v.items)
    key = getattr(v, "identity_key", None)
    if key is not None:
        return key()
    raise Unsupported(f"{v} as a dict key or set element", kind="dict_key")


def _python_hash(meta):
    for name in ("__hash__", "__eq__"):
        for k in meta.__mro__:
            if name in k.__dict__:
                if type(k.__dict__[name]).__name__ == "function":
                    return True
                break
    return False


def key_value(k):
    """Python key -> Value (inverse of py_key for the kinds we allow)."""
    if isinstance(k, tuple):
        return TupleValue([key_value(x) for x in k])
    if isinstance(k, _IdentityKey):
        return k.value
    if isinstance(k, type):
        from .objects import ClassValue
        return ClassValue(k)
    return const(k)


class _IdentityKey:
    """Key for objects that hash by identity (modules, functions, classes)."""
    __slots__ = ("obj", "value")

    def __init__(self, obj, value):
        self.obj = obj
        self.value = value

    def __hash__(self):
        return hash(self.obj)

    def __eq__(self, other):
        return isinstance(other, _IdentityKey) and other.obj is self.obj


class BaseSeq(Value):
    def __init__(self, items, source=None):
        self.items = list(items)
        self.source = source

    def unpack(self, tx):
        return list(self.items)

    def truth(self, tx):
        return bool(self.items)

    def is_const(self):
        return all(i.is_const() for i in self.items)

    def fx_arg(self, tx):
        return tuple(i.fx_arg(tx) for i in self.items)

    def fake_arg(self, tx):
        t = self.python_type()
        vals = [i.fake_arg(tx) for i in self.items]
        return list(vals) if t is list else tuple(vals)

    def getitem(self, tx, idx):
        if idx.is_const():
            k = idx.as_python()
            if isinstance(k, slice):
                return self.with_items(self.items[k])
            if isinstance(k, (int, bool)):
                try:
                    return self.items[k]
                except IndexError as e:
                    from ..exc import UserError
                    raise UserError(e)
        raise Unsupported(f"indexing {self} with {idx}", kind="index")

    def with_items(self, items):
        return type(self)(items)

    def call_method(self, tx, name, args, kwargs):
        fn = self.METHODS.get(name)
        if fn is None:
            raise Unsupported(f"{self.python_type().__name__}.{name}", kind="container_method")
        return fn(tx, self, *args, **kwargs)


class TupleValue(BaseSeq):
    def __init__(self, items, cls=tuple, source=None):
        super().__init__(items, source)
        self.cls = cls

    def python_type(self):
        return self.cls

    def as_python(self):
        vals = [i.as_python() for i in self.items]
        if self.cls is tuple:
            return tuple(vals)
        if hasattr(self.cls, "_make"):
            return self.cls._make(vals)
        return self.cls(vals)

    def with_items(self, items):
        # a torch.Size slice is a torch.Size (a namedtuple's slice is a plain tuple)
        return TupleValue(items, cls=torch.Size if self.cls is torch.Size else tuple)

    def fields(self):
        return getattr(self.cls, "_fields", None) or getattr(self.cls, "__match_args__", None) or ()

    def getattr(self, tx, name):
        fields = self.fields()
        if name in fields:
            return self.items[list(fields).index(name)]
        if name == "__class__":
            from .objects import ClassValue
            return ClassValue(self.cls)
        if name in NAMEDTUPLE_METHODS and hasattr(self.cls, "_fields"):
            from .functions import BoundMethodValue
            return BoundMethodValue(self, name)
        if name in self.METHODS:
            from .functions import BoundMethodValue
            return BoundMethodValue(self, name)
        if self.cls is not tuple:
            from .objects import bind_class_attr, _MISSING
            v = bind_class_attr(tx, self, self.cls, name)
            if v is not _MISSING:
                return v
        raise AttributeError(f"{self.cls.__name__!r} object has no attribute {name!r}")

    def call_method(self, tx, name, args, kwargs):
        if name in NAMEDTUPLE_METHODS and hasattr(self.cls, "_fields"):
            return NAMEDTUPLE_METHODS[name](tx, self, *args, **kwargs)
        return super().call_method(tx, name, args, kwargs)

    def fx_arg(self, tx):
        return tuple(i.fx_arg(tx) for i in self.items)

    def reconstruct(self, cg):
        if self.source is not None and not getattr(self, "_rebuilt", False):
            return self.source.expr(cg)
        inner = ", ".join(cg.expr(i) for i in self.items)
        if self.cls is tuple:
            return f"({inner},)" if len(self.items) == 1 else f"({inner})"
        cls = cg.const(self.cls, self.cls.__name__)
        if hasattr(self.cls, "_make"):
            return f"{cls}._make(({inner},))"
        return f"{cls}(({inner},))"

    def __repr__(self):
        return f"Tuple{self.items}"


def _nt_replace(tx, t, **kwargs):
    items = list(t.items)
    for k, v in kwargs.items():
        items[list(t.cls._fields).index(k)] = v
    return TupleValue(items, cls=t.cls)


def _nt_asdict(tx, t):
    return DictValue(dict(zip(t.cls._fields, t.items)))


NAMEDTUPLE_METHODS = {"_replace": _nt_replace, "_asdict": _nt_asdict}


class ListValue(BaseSeq):
    mutable = True

    def python_type(self):
        return list

    def as_python(self):
        if self.source is not None:
            raise Unsupported("a caller's list as a constant", kind="not_constant")
        return [i.as_python() for i in self.items]

    def is_const(self):
        return False

    def fx_arg(self, tx):
        return [i.fx_arg(tx) for i in self.items]

    def with_items(self, items):
        return ListValue(items)

    def getattr(self, tx, name):
        if name in self.METHODS:
            from .functions import BoundMethodValue
            return BoundMethodValue(self, name)
        raise AttributeError(f"'list' object has no attribute {name!r}")

    def mutate(self, tx):
        self.order = None                   # the caller's order no longer applies
        if self.source is not None:
            self.changed = True             # values/iterators.py: SeqIterValue._live
            tx.side_effects.mutated(self)

    def reconstruct(self, cg):
        return cg.mutable(self, lambda: "[" + ", ".join(cg.expr(i) for i in self.items) + "]")

    def replay(self, cg, target, temp):
        return f"{target}[:] = " + temp("[" + ", ".join(cg.expr(i) for i in self.items) + "]")

    def __repr__(self):
        return f"List{self.items}"


def _list_append(tx, lst, v):
    lst.mutate(tx)
    lst.items.append(v)
    return NONE


def _list_extend(tx, lst, v):
    lst.mutate(tx)
    lst.items.extend(v.unpack(tx))
    return NONE


def _list_insert(tx, lst, i, v):
    lst.mutate(tx)
    lst.items.insert(i.as_python(), v)
    return NONE


def _list_pop(tx, lst, i=None):
    lst.mutate(tx)
    return lst.items.pop(-1 if i is None else i.as_python())


def _list_clear(tx, lst):
    lst.mutate(tx)
    lst.items.clear()
    return NONE


def _list_reverse(tx, lst):
    lst.mutate(tx)
    lst.items.reverse()
    return NONE


def _all_const(lst, v):
    return v.is_const() and all(i.is_const() for i in lst.items)


def _seq_index(tx, lst, v, *rest):
    bounds = [r.as_python() for r in rest]
    if _all_const(lst, v):
        items = [i.as_python() for i in lst.items]
        try:
            return const((items if isinstance(lst, ListValue) else tuple(items)).index(v.as_python(), *bounds))
        except (ValueError, TypeError) as e:
            raise UserError(e) from None
    # CPython compares item == v (PyObject_RichCompareBool), in order, up to the first match
    for i in range(*slice(*bounds).indices(len(lst.items))) if bounds else range(len(lst.items)):
        if POLICY.equal(tx, lst.items[i], v):
            return const(i)
    if not isinstance(lst, ListValue):
        raise UserError(ValueError("tuple.index(x): x not in tuple"))
    if not v.is_const():
        raise Unsupported("list.index() not finding a non-constant (its message is the value's repr)",
                          kind="container_method")
    raise UserError(ValueError(f"{v.as_python()!r} is not in list"))


def _seq_count(tx, lst, v):
    if _all_const(lst, v):
        return const([i.as_python() for i in lst.items].count(v.as_python()))
    return const(sum(1 for i in list(lst.items) if POLICY.equal(tx, i, v)))


def _seq_contains(tx, lst, v):
    if _all_const(lst, v):
        return const(v.as_python() in [i.as_python() for i in lst.items])
    return const(any(POLICY.equal(tx, i, v) for i in list(lst.items)))


def py_eq_key(v):
    if v.is_const():
        return v.as_python()
    return _IdentityKey(v, v)


def _list_copy(tx, lst):
    return ListValue(lst.items)


def _list_sort(tx, lst, key=None, reverse=None):
    items = POLICY.sorted_items(tx, lst.items, key, reverse)
    lst.mutate(tx)
    lst.items[:] = items
    return NONE


def _list_remove(tx, lst, v):
    for i, item in enumerate(list(lst.items)):
        if item.is_const() and v.is_const():
            a, b = item.as_python(), v.as_python()
            if a is b or a == b:
                break
        elif POLICY.equal(tx, item, v):
            break
    else:
        raise UserError(ValueError("list.remove(x): x not in list"))
    lst.mutate(tx)
    del lst.items[i]
    return NONE


ListValue.METHODS = {"append": _list_append, "extend": _list_extend, "insert": _list_insert,
                     "pop": _list_pop, "clear": _list_clear, "reverse": _list_reverse,
                     "index": _seq_index, "count": _seq_count, "copy": _list_copy,
                     "sort": _list_sort, "remove": _list_remove,
                     "__len__": lambda tx, lst: const(len(lst.items)), "__contains__": _seq_contains}
TupleValue.METHODS = {"index": _seq_index, "count": _seq_count, "__contains__": _seq_contains,
                      "__len__": lambda tx, t: const(len(t.items))}


class DictValue(Value):
    mutable = True

    def __init__(self, items, cls=dict, source=None, default_factory=None):
        self.items = dict(items)      # python key -> Value
        self.cls = cls
        self.source = source
        self.default_factory = default_factory

    def python_type(self):
        return self.cls

    def truth(self, tx):
        return bool(self.items)

    def unpack(self, tx):
        return [key_value(k) for k in self.items]

    def mutate(self, tx):
        self.order = None                   # the caller's order no longer applies
        if self.source is not None:
            self.changed = True             # values/iterators.py: HashIterValue.reconstruct
            tx.side_effects.mutated(self)

    def getitem(self, tx, key):
        k = py_key(key)
        if k in self.items:
            return self.items[k]
        if self.default_factory is not None:
            v = self.default_factory.call(tx, [], {})
            self.mutate(tx)
            self.items[k] = v
            return v
        from ..exc import UserError
        raise UserError(KeyError(k))

    def setitem(self, tx, key, value):
        self.mutate(tx)
        self.items[py_key(key)] = value

    def as_python(self):
        if self.source is not None:
            raise Unsupported("a caller's dict as a constant", kind="not_constant")
        return self.cls({k: v.as_python() for k, v in self.items.items()})

    def fx_arg(self, tx):
        return {k: v.fx_arg(tx) for k, v in self.items.items()}

    def fake_arg(self, tx):
        return {k: v.fake_arg(tx) for k, v in self.items.items()}

    def call_method(self, tx, name, args, kwargs):
        fn = DICT_METHODS.get(name)
        if fn is None:
            raise Unsupported(f"dict.{name}", kind="container_method")
        return fn(tx, self, *args, **kwargs)

    def getattr(self, tx, name):
        if name == "default_factory" and self.default_factory is not None:
            return self.default_factory
        if name in DICT_METHODS:
            from .functions import BoundMethodValue
            return BoundMethodValue(self, name)
        raise Unsupported(f"attribute {name!r} of dict", kind="getattr")

    def _literal(self, cg):
        return "{" + ", ".join(f"{cg.expr(key_value(k))}: {cg.expr(v)}" for k, v in self.items.items()) + "}"

    def reconstruct(self, cg):
        def build():
            if self.cls is dict:
                return self._literal(cg)
            cls = cg.const(self.cls, self.cls.__name__)
            if self.cls is collections.defaultdict or issubclass(self.cls, collections.defaultdict):
                return f"{cls}({cg.expr(self.default_factory)}, {self._literal(cg)})"
            return f"{cls}({self._literal(cg)})"
        return cg.mutable(self, build)

    def replay(self, cg, target, temp):
        new = temp(self._literal(cg))
        return f"{target}.clear(); {target}.update({new})"

    def __repr__(self):
        return f"Dict{list(self.items)}"


def _d_get(tx, d, k, default=NONE):
    return d.items.get(py_key(k), default)


def _d_items(tx, d):
    return DictViewValue(d, "items")


def _d_keys(tx, d):
    return DictViewValue(d, "keys")


def _d_values(tx, d):
    return DictViewValue(d, "values")


class DictViewValue(Value):
    """d.keys() / d.values() / d.items() of a dict the trace holds. A view is live: it reads the
    dict as it is at each use (a key added after d.keys() is in it), has its own type (not
    subscriptable, not a list), and keys/items views are set-like: their operators, equality and
    membership are protocols/natives.py rules."""

    def __init__(self, d, kind):
        self.d = d
        self.kind = kind

    def python_type(self):
        owner = collections.OrderedDict() if issubclass(self.d.cls, collections.OrderedDict) else {}
        return type(getattr(owner, self.kind)())

    def truth(self, tx):
        return bool(self.d.items)

    def unpack(self, tx):
        d = self.d.items
        if self.kind == "keys":
            return [key_value(k) for k in d]
        if self.kind == "values":
            return list(d.values())
        return [TupleValue([key_value(k), v]) for k, v in d.items()]

    def as_python(self):
        if self.kind == "keys":
            return self.real_keys()
        return getattr({k: v.as_python() for k, v in self.d.items.items()}, self.kind)()

    def real_keys(self):
        """A real keys view with this view's keys in its order (set operations on it do what
        eager's do on the dict's view: same keys, same hashes, same order)."""
        return dict.fromkeys(self.d.items).keys()

    def getattr(self, tx, name):
        if name == "isdisjoint" and self.kind == "keys":
            from .functions import BoundMethodValue
            return BoundMethodValue(self, name)
        if name in ("mapping", "isdisjoint"):
            raise Unsupported(f"{self.python_type().__name__}.{name}", kind="container_method")
        raise UserError(AttributeError(f"{self.python_type().__name__!r} object has no attribute {name!r}"))

    def call_method(self, tx, name, args, kwargs):
        if name == "__len__" and not args and not kwargs:
            return const(len(self.d.items))
        if name == "isdisjoint" and self.kind == "keys" and len(args) == 1 and not kwargs:
            other = mirror_of(args[0])
            if other is not None:
                return const(self.real_keys().isdisjoint(other))
        raise Unsupported(f"{self.python_type().__name__}.{name}", kind="container_method")

    def reconstruct(self, cg):
        return cg.mutable(self, lambda: f"{cg.expr(self.d)}.{self.kind}()")

    def __repr__(self):
        return f"DictView.{self.kind}({list(self.d.items)})"


def _d_update(tx, d, other=None, **kw):
    d.mutate(tx)
    if other is not None:
        if isinstance(other, DictValue):
            d.items.update(other.items)
        elif getattr(other, "dict_items", None) is not None:     # an instance of a dict subclass
            from .lookup import class_lookup
            # CPython copies its storage directly only while its type keeps dict's __iter__
            if class_lookup(tx, other.cls, "__iter__")[1] is not dict:
                raise Unsupported(f"dict.update from a {other.cls.__name__} (a dict subclass with "
                                  "its own __iter__)", kind="container_method")
            d.items.update(other.dict_items.items)
        else:
            for i, pair in enumerate(other.unpack(tx)):
                kv = pair.unpack(tx)
                if len(kv) != 2:
                    raise UserError(ValueError(f"dictionary update sequence element #{i} has length "
                                               f"{len(kv)}; 2 is required"))
                k, v = kv
                d.items[py_key(k)] = v
    for k, v in kw.items():
        d.items[k] = v
    return NONE


def _d_pop(tx, d, k, *default):
    key = py_key(k)
    if key not in d.items:
        if default:
            return default[0]
        from ..exc import UserError
        raise UserError(KeyError(key))
    d.mutate(tx)
    return d.items.pop(key)


def _d_setdefault(tx, d, k, default=NONE):
    key = py_key(k)
    if key not in d.items:
        d.mutate(tx)
        d.items[key] = default
    return d.items[key]


def _d_clear(tx, d):
    d.mutate(tx)
    d.items.clear()
    return NONE


def _d_copy(tx, d):
    return DictValue(d.items, cls=d.cls, default_factory=d.default_factory)


def _d_move_to_end(tx, d, k, last=None):
    key = py_key(k)
    d.mutate(tx)
    v = d.items.pop(key)
    if last is None or last.as_python():
        d.items[key] = v
    else:
        d.items = {key: v, **d.items}
    return NONE


def _d_popitem(tx, d, last=None):
    if not d.items:
        from ..exc import UserError
        raise UserError(KeyError("popitem(): dictionary is empty"))
    d.mutate(tx)
    k = next(reversed(d.items)) if last is None or last.as_python() else next(iter(d.items))
    return TupleValue([key_value(k), d.items.pop(k)])


DICT_METHODS = {"get": _d_get, "items": _d_items, "keys": _d_keys, "values": _d_values,
                "update": _d_update, "pop": _d_pop, "setdefault": _d_setdefault, "clear": _d_clear,
                "copy": _d_copy, "popitem": _d_popitem, "move_to_end": _d_move_to_end,
                "__getitem__": lambda tx, d, k: d.getitem(tx, k),
                "__setitem__": lambda tx, d, k, v: (d.setitem(tx, k, v), NONE)[1],
                "__contains__": lambda tx, d, k: const(py_key(k) in d.items),
                "__iter__": lambda tx, d: HashIterValue(tx, d),
                "__delitem__": lambda tx, d, k: (d.mutate(tx), d.items.pop(py_key(k)), NONE)[2],
                "__len__": lambda tx, d: const(len(d.items))}


def _stable_hashes(keys):
    """Whether every key hashes the same in every process (numbers, tuples of them; a NaN
    hashes by identity): a set of them built by the same operations iterates in the same order
    anywhere."""
    return all(type(k) in (int, bool) or (type(k) in (float, complex) and k == k) or
               (type(k) is tuple and _stable_hashes(k)) for k in keys)


class SetValue(Value):
    mutable = True

    def __init__(self, items, cls=set, source=None, origin=None, real=None):
        self.items = dict.fromkeys(items)   # python keys, insertion ordered for determinism
        self.cls = cls
        self.source = source
        # a frozenset code constant: its iteration order (a set rebuilt from the same elements
        # may order colliding hashes differently)
        self.origin = origin if cls is frozenset and type(origin) is frozenset else None
        # A set's iteration order follows the history of its hash table (sizes, collisions,
        # deletions), not its contents. `real`: a set of the same keys that went through the
        # same operations as eager's (BUILD_SET, SET_ADD/SET_UPDATE, set(list), methods applied
        # to mirrored arguments), so it iterates in eager's order; None once an operation could
        # not be mirrored. `order`: a caller's set's own order, valid (and guarded) until the
        # trace changes it. A set with neither is not iterated (unpack refuses).
        self.real = origin if self.origin is not None else real
        self.order = list(items) if source is not None else None
        # a caller's set: the operations the trace applied to it, replayed on the real set in
        # the epilogue, so its table ends as eager's does (a rebuild can reorder colliding keys)
        self.log = [] if source is not None else None

    def python_type(self):
        return self.cls

    def _mirror(self):
        """`real`, if it still holds exactly `items` (a safety net: an operation that changed
        `items` without mirroring leaves a mirror that is dropped here, never used)."""
        real = self.real
        if real is not None and (len(real) != len(self.items) or any(k not in real for k in self.items)):
            real = self.real = None
        return real

    def as_python(self):
        real = self._mirror()
        if real is not None:
            return real
        return self.cls(self.items)

    def ordered(self, tx):
        """The keys in the order CPython iterates this set, or Unsupported."""
        real = self._mirror()
        if real is not None:
            return list(real)
        if len(self.items) <= 1:
            return list(self.items)
        if self.order is not None:
            tx.guards.add_code(f"tuple({tx.cg.bound(self.source)}) == "
                               f"{tx.cg.const(tuple(self.order), 'order')}", self.source, "set")
            return list(self.order)
        raise Unsupported("iterating a set whose order follows a history of hash-table operations "
                          "bytegraph does not reproduce (sorted(...) gives a fixed order)",
                          kind="set_order")

    def is_const(self):
        return self.cls is frozenset

    def truth(self, tx):
        return bool(self.items)

    def unpack(self, tx):
        if len(self.items) > 1 and self._mirror() is not None and not _stable_hashes(self.items):
            # a set the trace built iterates in this process's hash order (ids, str hashes);
            # a caller's set's order is guarded instead (`ordered`), re-checked by a warm
            # process: runtime/warm.py
            tx.hash_dependent = True
        return [key_value(k) for k in self.ordered(tx)]

    def mutate(self, tx):
        self.order = None                   # the caller's order no longer applies
        if self.source is not None:
            if self.cls is frozenset:
                raise UserError(AttributeError("'frozenset' object is immutable"))
            self.changed = True             # values/iterators.py: HashIterValue.reconstruct
            tx.side_effects.mutated(self)

    def replay(self, cg, target, temp):
        return "; ".join(f"{target}.{name}({', '.join(temp(cg.expr(a)) for a in args)})"
                         for name, args in self.log) or "pass"

    def record(self, name, args):
        """Log an operation on a caller's set (see `log`); an argument whose state at this point
        the epilogue could not rebuild stops the trace here instead."""
        if self.log is None:
            return
        snap = []
        for a in args:
            if type(a) in (ListValue, TupleValue):
                a = TupleValue(list(a.items))       # list and tuple feed set methods alike
            elif isinstance(a, SetValue):
                real = a._mirror()
                copy = a.cls(real) if real is not None else None
                if copy is None or list(copy) != list(real):
                    raise Unsupported("a set operation on a caller's set whose argument's iteration "
                                      "order bytegraph does not reproduce", kind="set_order")
                a = SetValue(list(copy), cls=a.cls, real=copy)
            elif not (a.is_const() or getattr(a, "identity_key", None) is not None):
                raise Unsupported(f"set.{name}() of a caller's set with a {a.python_type().__name__} "
                                  "argument", kind="set_order")
            snap.append(a)
        self.log.append((name, snap))

    METHODS = frozenset({"add", "discard", "remove", "update", "clear", "pop", "difference_update",
                         "intersection_update", "symmetric_difference_update", "union", "intersection",
                         "difference", "symmetric_difference", "issubset", "issuperset", "isdisjoint",
                         "copy", "__contains__", "__len__"})

    def getattr(self, tx, name):
        if name in self.METHODS:
            from .functions import BoundMethodValue
            return BoundMethodValue(self, name)
        raise AttributeError(f"{self.cls.__name__!r} object has no attribute {name!r}")

    def call_method(self, tx, name, args, kwargs):
        if name in ("add", "discard", "remove", "update", "clear", "pop", "difference_update",
                    "intersection_update", "symmetric_difference_update"):
            if name == "remove" and args and py_key(args[0]) not in self.items:
                raise UserError(KeyError(py_key(args[0])))
            if name == "pop" and not self.items:
                raise UserError(KeyError("pop from an empty set"))
            self.record(name, args)
            self.mutate(tx)
            if name == "pop":
                tx.hash_dependent = True    # which element: hash order (runtime/warm.py)
                if self.real is None and len(self.items) > 1:
                    raise Unsupported("set.pop() of a set whose order bytegraph does not reproduce",
                                      kind="set_order")
            mirrored = mirror_args(args) if self.real is not None else None
            real = set(self.items)
            res = getattr(real, name)(*_set_args(tx, name, args))
            self.items = dict.fromkeys(real)
            if mirrored is None:
                self.real = None
            else:
                res = getattr(self.real, name)(*mirrored)
            return key_value(res) if name == "pop" else NONE
        if name in ("union", "intersection", "difference", "symmetric_difference", "issubset",
                    "issuperset", "isdisjoint", "copy", "__contains__", "__len__"):
            mirrored = mirror_args(args) if self.real is not None else None
            if mirrored is not None:
                res = getattr(self.real, name)(*mirrored)
            else:
                res = getattr(self.cls(self.items), name)(*_set_args(tx, name, args))
            if isinstance(res, (set, frozenset)):
                return SetValue(res, cls=type(res), real=res if mirrored is not None else None)
            return const(res)
        raise Unsupported(f"set.{name}", kind="container_method")

    def reconstruct(self, cg):
        return cg.mutable(self, lambda: f"{cg.const(self.cls, self.cls.__name__)}("
                          f"[{', '.join(cg.expr(key_value(k)) for k in self.build_order(cg))}])")

    def build_order(self, cg):
        """Keys in an order whose one-by-one insertion into a new set iterates as eager's set
        does (the mirror's order), checked by doing it; Unsupported when none is known."""
        if len(self.items) <= 1:
            return list(self.items)
        real = self._mirror()
        if real is None:
            raise Unsupported("handing back a set whose iteration order follows a history of "
                              "hash-table operations bytegraph does not reproduce", kind="set_order")
        cg.hash_dependent = True        # checked with this process's hashes (runtime/warm.py)
        target = list(real)
        tries = [target, list(self.items), target[::-1]]
        if len(target) <= 6:        # a key displaced by a collision goes after the one it met
            tries = itertools.chain(tries, itertools.permutations(target))
        for keys in tries:
            if list(self.cls(keys)) == target:
                return list(keys)
        raise Unsupported("handing back a set whose iteration order no rebuild reproduces "
                          "(colliding hashes)", kind="set_order")

    def __repr__(self):
        return f"Set{list(self.items)}"


def mirror_of(v):
    """A real object that CPython's set operations treat as they treat `v`'s runtime object
    (same type family, same keys in the same iteration order), or None."""
    t = type(v)
    if t is ConstValue:
        return v.value
    if t is SetValue:
        return v.real
    if t is ListValue:
        return [py_key(x) for x in v.items]
    if t is TupleValue and getattr(v, "cls", tuple) is tuple:
        return tuple(py_key(x) for x in v.items)
    if t is DictViewValue and v.kind == "keys":
        return v.real_keys()
    if t is DictValue and getattr(v, "cls", dict) is dict and \
            all(type(k) in (int, str, bool, float, type(None), tuple) for k in v.items):
        return dict.fromkeys(v.items)
    return None


def mirror_args(args):
    out = [mirror_of(a) for a in args]
    return None if any(m is None for m in out) else out


def _set_args(tx, name, args):
    """The real arguments of set.<name>: an element for add/discard/remove/__contains__ (a tuple
    is one key, not an iterable of keys), else iterables."""
    if name in ("add", "discard", "remove", "__contains__"):
        return [py_key(a) for a in args]
    return [_set_arg(tx, a) for a in args]


def _set_arg(tx, a):
    if isinstance(a, SetValue):
        return set(a.items)
    if isinstance(a, DictValue):
        return set(a.items)
    if a.is_const() and not isinstance(a, BaseSeq):
        return a.as_python()
    return [py_key(x) for x in a.unpack(tx)]




# --------------------------------------------------------------------------
# wrapping caller-world containers

@register_wrapper(tuple)
def wrap_tuple(tx, obj, source):
    if source is not None:
        tx.guards.add_len(source, type(obj), len(obj))
    items = [wrap(tx, x, ItemSource(source, i) if source is not None else None)
             for i, x in enumerate(obj)]
    return TupleValue(items, cls=type(obj), source=source)


@register_wrapper(list)
def wrap_list(tx, obj, source):
    if type(obj) is not list:
        from .objects import wrap_object
        return wrap_object(tx, obj, source)
    if source is not None:
        tx.guards.add_len(source, list, len(obj))
    items = [wrap(tx, x, ItemSource(source, i) if source is not None else None)
             for i, x in enumerate(obj)]
    return ListValue(items, source=source)


def _enum_key(tx, k):
    """An Enum member whose hashing and equality run no Python code outside the enum module
    (Enum.__hash__ hashes the name; a str/int mixin uses the builtin's): the member itself is
    the key, as in the real dict. The dict-keys guard compares keys and their types, and
    members are singletons, so it pins the same members. None for any other key."""
    import enum
    if not issubclass(type(k), enum.Enum):
        return None
    value = wrap(tx, k, None)
    return k if getattr(value, "plain", False) else None


@register_wrapper(dict)
def wrap_dict(tx, obj, source):
    typ = type(obj)
    if typ not in (dict, collections.OrderedDict, collections.defaultdict):
        from .objects import wrap_object
        return wrap_object(tx, obj, source)
    if source is not None:
        tx.guards.add_dict_keys(source, typ, obj.keys())
    items = {}
    for k, v in obj.items():
        if type(k) not in (int, str, bool, float, type(None)) and not isinstance(k, tuple):
            key = _enum_key(tx, k)
            if key is not None:
                items[key] = wrap(tx, v, ItemSource(source, k) if source is not None else None)
                continue
            if not isinstance(k, type) and not (type(k).__hash__ is object.__hash__ and
                                                type(k).__eq__ is object.__eq__) or _python_hash(type(k)):
                raise Unsupported(f"dict with {type(k).__name__} keys", kind="dict_key")
            key = k if isinstance(k, type) else _IdentityKey(k, wrap(tx, k, None))
            items[key] = wrap(tx, v, ItemSource(source, k) if source is not None
                                                         else None)
            continue
        items[k] = wrap(tx, v, ItemSource(source, k) if source is not None else None)
    factory = None
    if typ is collections.defaultdict:
        from ..sources import AttrSource
        factory = wrap(tx, obj.default_factory,
                       AttrSource(source, "default_factory") if source is not None else None)
    return DictValue(items, cls=typ, source=source, default_factory=factory)


_PLAIN_ELEMENT = frozenset((int, str, bool, float, type(None)))


def _plain_element(x):
    """Hashing and comparing x runs no Python code: a builtin scalar or a tuple of them."""
    return type(x) in _PLAIN_ELEMENT or (type(x) is tuple and all(map(_plain_element, x)))


def _plain_elements(s):
    return all(map(_plain_element, s))


@register_wrapper(set, frozenset)
def wrap_set(tx, obj, source):
    for x in obj:
        if not _plain_element(x):
            raise Unsupported(f"set of {type(x).__name__}", kind="set_item")
    if source is not None:        # (type, element) pairs: {1} == {True} == {1.0} otherwise
        first = source.expr(tx.cg)
        e = tx.cg.bound(source)
        typed = frozenset((type(x), x) for x in obj)
        # elements are hashed only once they are known plain: a user __hash__ must not run
        tx.cg.namespace.setdefault("_plain_elements", _plain_elements)
        tx.guards.add_code(f"type({first}) is {tx.cg.const(type(obj), type(obj).__name__)} and "
                           f"len({e}) == {len(obj)} and _plain_elements({e}) and "
                           f"frozenset((type(v), v) for v in {e}) == {tx.cg.const(typed, 'set')}",
                           source, "set", frozenset(obj))
    return SetValue(obj, cls=type(obj), source=source)


# iterators live in values/iterators.py (they need the containers above)
from .iterators import (IteratorValue, HashIterValue, SeqIteratorValue, ListIterValue,  # noqa: E402,F401
                        SeqIterValue, _list_iter_at)
