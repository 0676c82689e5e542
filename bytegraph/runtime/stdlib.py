"""The standard library as model code uses it: what calling stdlib helpers means in a trace.

Responsible for the stdlib callables and types that cannot simply be inlined as Python code
(C implementations, caches, process state, output), each with the guards its answer relies on:

- `os.environ` / `os.getenv`: each key read is guarded (`environ.get(key)` re-read by the guard,
  absence included); writes are replayed after the graph.
- `copy.copy` / `copy.deepcopy`: containers, tensors, and plain objects (state in `__dict__`,
  the default reduce protocol) become new trace-time objects; a Python `__copy__` /
  `__deepcopy__` is inlined; any other copy protocol is refused.
- `functools.lru_cache` / `cache` wrappers: the wrapped function is inlined, the cache is not
  consulted (guards: identity of the wrapper and of its `__wrapped__`). Refused when that could
  differ from eager other than through `cache_info()`: tensor or unhashable arguments, side
  effects, or a result the trace creates (a cached call would return the same object again).
  Warnings/log records emitted inside one are emitted at trace time through the real cache,
  so `*_once` helpers emit exactly when eager would.
- `operator.itemgetter` / `attrgetter` / `methodcaller`, `heapq.nlargest` / `nsmallest`.
- `itertools` (lazy iterators: infinite `count` / `cycle` / `repeat` work under `zip`, `islice`,
  loops with `break`) and `collections.deque`.
- `warnings.warn` and `logging` calls: replayed after the graph on every call, attributed to
  the user's line (see docs/architecture.md, "Warnings and logging").
- `weakref.ref` of caller objects, `WeakKeyDictionary` reads (guarded per key).

`CONSTRUCTORS` (class -> builder), `OVERRIDES` (Python function -> handler) and the wrappers
registered here are merged into runtime/registry.py's tables.
"""
import collections
import copy
import copyreg
import functools
import heapq
import itertools
import logging
import operator
import os
import sys
import types
import warnings
import weakref

from ..exc import Unsupported, UserError
from ..sources import AttrSource, ObjectSource, _Chained
from ..values.base import Value, ConstValue, RealCallableValue, NONE, const, wrap, register_wrapper
from ..values.containers import TupleValue, ListValue, DictValue, SetValue, IteratorValue, BaseSeq
from ..values.tensor import TensorValue, graph_call
from ..values.builtins import BUILTINS, BUILTIN_CLASSMETHODS
from ..values.objects import (ClassValue, ObjectValue, ModuleValue, NewObjectValue, PyModuleValue,
                              _InstanceBase, static_lookup, bind_class_attr, _MISSING)
from ..values.functions import UserFnValue, NestedFnValue, BoundMethodValue

_MISSING_ARG = object()


def _py(v, what):
    """The trace-time Python value of a constant argument, or refuse naming `what`."""
    try:
        return v.as_python()
    except Unsupported:
        raise Unsupported(f"{what} must be a trace-time constant (got {v})", kind="not_constant")


# ==========================================================================================
# os.environ

class _EnvGetSource(_Chained):
    """environ.get(key): the value a guard re-reads (None when the key is absent)."""
    __slots__ = ()

    def render(self, cg):
        return f"{self.base.expr(cg)}.get({self.key!r})"

    def name_hint(self):
        return f"{self.base.name_hint()}.get({self.key!r})"


class _EnvContainsSource(_Chained):
    __slots__ = ()

    def render(self, cg):
        return f"({self.key!r} in {self.base.expr(cg)})"

    def name_hint(self):
        return f"({self.key!r} in {self.base.name_hint()})"


class _EnvSnapshotSource(_Chained):
    """dict(environ): the whole environment (iteration, len, copy)."""
    __slots__ = ()

    def render(self, cg):
        return f"dict({self.base.expr(cg)})"

    def name_hint(self):
        return f"dict({self.base.name_hint()})"


_DELETED = object()


class EnvironValue(Value):
    """os.environ (or os.environb). Every read is guarded by re-reading exactly that key; writes
    are kept in an overlay (later reads in the trace see them) and replayed after the graph."""
    mutable = True

    def __init__(self, env, source):
        self.env = env
        self.source = source
        self.overlay = {}          # key -> str value or _DELETED, written by the trace
        self.key_type = bytes if env is getattr(os, "environb", None) else str

    METHODS = frozenset({"get", "__getitem__", "__contains__", "__setitem__", "__delitem__", "pop",
                         "setdefault", "copy", "keys", "items", "values", "__iter__", "__len__",
                         "update"})

    def python_type(self):
        return type(self.env)

    def getattr(self, tx, name):
        if name in self.METHODS:
            return BoundMethodValue(self, name)
        raise Unsupported(f"attribute {name!r} of os.environ", kind="getattr")

    def _key(self, k):
        key = _py(k, "an os.environ key")
        if type(key) is not self.key_type:
            raise UserError(TypeError(f"{self.key_type.__name__} expected, not {type(key).__name__}"))
        return key

    def read(self, tx, key):
        """The value for `key` (None if absent), guarded."""
        if key in self.overlay:
            v = self.overlay[key]
            return None if v is _DELETED else v
        value = self.env.get(key)
        tx.guards.add_value(_EnvGetSource(self.source, key), value)
        return value

    def snapshot(self, tx):
        if self.overlay:
            raise Unsupported("iterating os.environ after writing to it", kind="environ")
        snap = dict(self.env)
        tx.guards.add_code(f"{_EnvSnapshotSource(self.source, None).render(tx.cg)} == "
                           f"{tx.cg.const(snap, 'environ')}", self.source, "environ")
        return snap

    def write(self, tx, key, value):
        self.overlay[key] = value
        tx.side_effects.mutated(self)

    def call_method(self, tx, name, args, kwargs):
        if name in ("get", "__getitem__", "__contains__", "pop", "setdefault"):
            key = self._key(args[0])
            value = self.read(tx, key)
            if name == "__contains__":
                return const(value is not None)
            if value is None:
                if name == "get":
                    return args[1] if len(args) > 1 else kwargs.get("default", NONE)
                if name == "pop" and len(args) > 1:
                    return args[1]
                if name == "setdefault":
                    self.write(tx, key, self._str(args[1]))
                    return args[1]
                raise UserError(KeyError(key))
            if name == "pop":
                self.write(tx, key, _DELETED)
            return const(value)
        if name == "__setitem__":
            self.write(tx, self._key(args[0]), self._str(args[1]))
            return NONE
        if name == "__delitem__":
            key = self._key(args[0])
            if self.read(tx, key) is None:
                raise UserError(KeyError(key))
            self.write(tx, key, _DELETED)
            return NONE
        if name == "update" and not kwargs and len(args) == 1 and isinstance(args[0], DictValue):
            for k, v in args[0].items.items():
                self.write(tx, self._key(const(k)), self._str(v))
            return NONE
        if name in ("copy", "keys", "items", "values", "__iter__", "__len__"):
            snap = self.snapshot(tx)
            if name == "__len__":
                return const(len(snap))
            d = DictValue({k: const(v) for k, v in snap.items()})
            return d if name == "copy" else d.call_method(tx, name, [], {})
        raise Unsupported(f"os.environ.{name}", kind="environ")

    def _str(self, v):
        value = _py(v, "an os.environ value")
        if type(value) is not self.key_type:
            raise UserError(TypeError(f"{self.key_type.__name__} expected, not {type(value).__name__}"))
        return value

    def unpack(self, tx):
        return [const(k) for k in self.snapshot(tx)]

    def truth(self, tx):
        return bool(self.snapshot(tx))

    def replay(self, cg, target, temp):
        stmts = [f"{target}[{k!r}] = {v!r}" if v is not _DELETED else f"{target}.pop({k!r}, None)"
                 for k, v in self.overlay.items()]
        return "; ".join(stmts)

    def __repr__(self):
        return "Environ()"


@register_wrapper(os._Environ)
def _wrap_environ(tx, env, source):
    if source is None:
        source = ObjectSource(env, "environ")
    tx.guards.add_identity(source, env)
    return EnvironValue(env, source)


# ==========================================================================================
# copy.copy / copy.deepcopy

class _MemoDict(DictValue):
    """The memo a user __deepcopy__ receives; carries the trace's own memo (id(Value) -> copy)."""

    def __init__(self, memo):
        super().__init__({})
        self.memo = memo


def _instance_state_copyable(cls, deep):
    """Does copy.copy/deepcopy of an instance of cls take the default path (object.__reduce_ex__,
    state = the instance __dict__, rebuilt with cls.__new__ + __dict__.update)? Returns the
    reason it does not, or None."""
    if cls in copyreg.dispatch_table:
        return "a copyreg reducer"
    for name, default in (("__reduce_ex__", object.__reduce_ex__), ("__reduce__", object.__reduce__),
                          ("__getstate__", object.__getstate__), ("__new__", object.__new__)):
        attr = static_lookup(cls, name)[0]
        if isinstance(attr, staticmethod):
            attr = attr.__func__
        if attr is not default:
            return f"a custom {name}"
    for name in ("__setstate__", "__getnewargs_ex__", "__getnewargs__"):
        if static_lookup(cls, name)[0] is not _MISSING:
            return f"a custom {name}"
    if any("__slots__" in k.__dict__ for k in cls.__mro__[:-1]):
        return "__slots__"
    if issubclass(cls, (dict, list, set, tuple, BaseException)):
        return f"a {cls.__mro__[-2].__name__} base class"
    return None


def copy_value(tx, v, deep, memo=None):
    """copy.deepcopy(v) (deep) or copy.copy(v) as a new trace-time Value."""
    if deep:
        memo = {} if memo is None else memo
        hit = memo.get(id(v))
        if hit is not None:
            return hit
    out = _copy_value(tx, v, deep, memo)
    if deep and out is not v:
        memo[id(v)] = out
    return out


def _copy_value(tx, v, deep, memo):
    if isinstance(v, (RealCallableValue, UserFnValue, NestedFnValue, ClassValue)):
        return v                               # functions and classes are atomic
    if type(v) is ConstValue:
        try:
            res = copy.deepcopy(v.value) if deep else copy.copy(v.value)
        except Exception as e:
            raise UserError(e)
        return v if res is v.value else const(res)
    if isinstance(v, TensorValue):
        if not deep:
            raise Unsupported("copy.copy of a tensor (an alias of its storage)", kind="copy")
        if v.fake.requires_grad or v.cls is not __import__("torch").Tensor:
            raise Unsupported("deepcopy of a tensor that requires grad or is a Parameter", kind="copy")
        return graph_call(tx, "call_method", "clone", [v], {})
    if isinstance(v, TupleValue):
        if not deep:
            return v if v.cls is tuple else TupleValue(list(v.items), cls=v.cls)
        items = [copy_value(tx, i, True, memo) for i in v.items]
        if v.cls is tuple and all(a is b for a, b in zip(items, v.items)):
            return v
        return TupleValue(items, cls=v.cls)
    if type(v) is ListValue:
        return ListValue([copy_value(tx, i, True, memo) for i in v.items] if deep else v.items)
    if isinstance(v, DequeValue):
        out = DequeValue([], v.maxlen)
        if deep:
            memo[id(v)] = out
        out.items = [copy_value(tx, i, True, memo) for i in v.items] if deep else list(v.items)
        return out
    if type(v) is DictValue or isinstance(v, DictValue) and v.cls in (dict, collections.OrderedDict,
                                                                         collections.defaultdict):
        out = DictValue({}, cls=v.cls)
        if deep:
            memo[id(v)] = out
        factory = v.default_factory
        out.default_factory = copy_value(tx, factory, True, memo) if deep and factory is not None else factory
        out.items = {k: copy_value(tx, i, True, memo) for k, i in v.items.items()} if deep else dict(v.items)
        return out
    if isinstance(v, SetValue):
        return v if v.cls is frozenset else SetValue(list(v.items), cls=v.cls)
    if isinstance(v, (ModuleValue, PyModuleValue)):
        raise Unsupported(f"{'deep' if deep else ''}copy of {v}", kind="copy")
    if isinstance(v, _InstanceBase):
        return _copy_instance(tx, v, deep, memo)
    raise Unsupported(f"{'deep' if deep else ''}copy of {v}", kind="copy")


def _copy_instance(tx, v, deep, memo):
    cls = v.cls
    hook = "__deepcopy__" if deep else "__copy__"
    if not isinstance(v, ObjectValue) or not v.pending:
        own = v.instance_attr(tx, hook)
        if own is not _MISSING:
            raise Unsupported(f"{hook} set on an instance of {cls.__name__}", kind="copy")
    method = static_lookup(cls, hook)[0]
    if method is not _MISSING:
        if not isinstance(method, types.FunctionType):
            raise Unsupported(f"copy of {cls.__name__}, whose {hook} is not Python code", kind="copy")
        bound = bind_class_attr(tx, v, cls, hook)
        return bound.call(tx, [_MemoDict(memo)] if deep else [], {})
    reason = _instance_state_copyable(cls, deep)
    if reason is not None:
        raise Unsupported(f"{'deep' if deep else ''}copy of {cls.__name__}, which has {reason}", kind="copy")
    state = v.getattr(tx, "__dict__") if isinstance(v, ObjectValue) else v.instance_dict(tx)
    out = new_instance(cls)
    if deep:
        memo[id(v)] = out
        state = copy_value(tx, state, True, memo)
    if not isinstance(state, DictValue):
        raise Unsupported(f"copy of {cls.__name__}: its __dict__ is {state}", kind="copy")
    out.attrs = dict(state.items)
    return out


def _copy_override(tx, fn_value, args, kwargs):
    return copy_value(tx, args[0], False)


def _deepcopy_override(tx, fn_value, args, kwargs):
    memo_arg = args[1] if len(args) > 1 else kwargs.get("memo")
    if memo_arg is None or memo_arg.is_const() and memo_arg.as_python() is None:
        return copy_value(tx, args[0], True)
    if isinstance(memo_arg, _MemoDict):     # a user __deepcopy__ passing its memo on
        return copy_value(tx, args[0], True, memo_arg.memo)
    raise Unsupported("copy.deepcopy with a memo dict built by the caller", kind="copy")


def new_instance(cls):
    """A trace-created instance of cls; classes with a Python __getattribute__ get one that
    runs it (transformers' configs map attribute aliases there)."""
    ga = static_lookup(cls, "__getattribute__")[0]
    if isinstance(ga, types.FunctionType):
        return DynamicNewObjectValue(cls)
    if not (isinstance(ga, types.WrapperDescriptorType) and ga.__objclass__.__module__ == "builtins"):
        raise Unsupported(f"instance of {cls.__name__}, whose __getattribute__ is not Python code",
                          kind="construct")
    return NewObjectValue(cls)


class DynamicNewObjectValue(NewObjectValue):
    """A trace-created instance whose class defines __getattribute__ in Python: attribute reads
    inline it (its `super().__getattribute__` / `object.__getattribute__` reaches the static
    lookup), then __getattr__ on AttributeError, as CPython's slot does."""

    def getattr(self, tx, name):
        getattribute = bind_class_attr(tx, self, self.cls, "__getattribute__")
        try:
            return getattribute.call(tx, [ConstValue(name)], {})
        except UserError as e:
            if not isinstance(e.exc, AttributeError) or static_lookup(self.cls, "__getattr__")[0] is _MISSING:
                raise
        return bind_class_attr(tx, self, self.cls, "__getattr__").call(tx, [ConstValue(name)], {})

    def missing_attr(self, tx, name):     # the static lookup (object.__getattribute__) part
        raise UserError(AttributeError(f"{self.cls.__name__!r} object has no attribute {name!r}"))

    def delattr(self, tx, name):
        if static_lookup(self.cls, "__delattr__")[0] is not object.__delattr__:
            bind_class_attr(tx, self, self.cls, "__delattr__").call(tx, [ConstValue(name)], {})
            return
        if name not in self.attrs:
            raise UserError(AttributeError(name))
        del self.attrs[name]


def object_getattribute(tx, v, name):
    """object.__getattribute__(v, name): the static lookup, without the __getattr__ fallback."""
    name = _py(name, "an attribute name")
    if isinstance(v, _InstanceBase):
        if isinstance(v, ModuleValue) or (not isinstance(v, DynamicNewObjectValue) and
                                          static_lookup(v.cls, "__getattr__")[0] is not _MISSING):
            raise Unsupported(f"object.__getattribute__ on {v} (its class has __getattr__)",
                              kind="getattr")
        return _InstanceBase.getattr(v, tx, name)
    return v.getattr(tx, name)


# ==========================================================================================
# functools.lru_cache / functools.cache

class _EffectWatch:
    """Stands in for tx.side_effects while a cached function is inlined: counts the state
    changes it makes and takes its emissions (warnings, log records, nested cached calls),
    which the real call replayed after the graph performs instead."""

    def __init__(self, inner):
        self.inner = inner
        self.effects = 0

    def mutated(self, value):
        if not isinstance(value, Emission):
            self.effects += 1
            self.inner.mutated(value)

    def attr_write(self, *a):
        self.effects += 1
        self.inner.attr_write(*a)

    def global_write(self, *a):
        self.effects += 1
        self.inner.global_write(*a)

    def cell_write(self, *a):
        self.effects += 1
        self.inner.cell_write(*a)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _cached_result_ok(v):
    """Results a cached call may hand back as a fresh trace value: ones without identity of
    their own (constants, tuples of them) or objects the trace knows by source (the same
    object eager's cache would return)."""
    if v.source is not None or type(v) is ConstValue or isinstance(v, (ClassValue, UserFnValue,
                                                                       RealCallableValue)):
        return True
    if isinstance(v, TupleValue):
        return all(_cached_result_ok(i) for i in v.items)
    return isinstance(v, SetValue) and v.cls is frozenset


def _check_hashable(v):
    if isinstance(v, TensorValue):
        raise Unsupported("a tensor argument to an lru_cache-wrapped function (eager would return "
                          "the cached result for the same tensor object)", kind="lru_cache")
    if isinstance(v, (ListValue, DictValue, DequeValue)) or isinstance(v, SetValue) and v.cls is set:
        raise UserError(TypeError(f"unhashable type: {v.python_type().__name__!r}"))
    if isinstance(v, TupleValue):
        for i in v.items:
            _check_hashable(i)


class CachedFnValue(Value):
    """A functools.lru_cache / cache wrapper from the caller's world. A call inlines the wrapped
    function (the trace's value) and replays the real call after the graph, so the cache sees
    exactly eager's calls (cache_info(), eviction order, a miss running the function's own
    warnings and log records)."""

    def __init__(self, wrapper, source):
        self.wrapper = wrapper
        self.source = source

    def python_type(self):
        return type(self.wrapper)

    def as_python(self):
        return self.wrapper

    def is_const(self):
        return True

    def truth(self, tx):
        return True

    def identity_key(self):
        from ..values.containers import _IdentityKey
        return _IdentityKey(self.wrapper, self)

    def getattr(self, tx, name):
        if name in ("cache_info", "cache_clear"):
            raise Unsupported(f"{name}() of an lru_cache wrapper inside a compiled region",
                              kind="lru_cache")
        d = self.wrapper.__dict__
        if name in d:
            return wrap(tx, d[name], AttrSource(self.source, name))
        if name == "__class__":
            return ClassValue(type(self.wrapper))
        raise UserError(AttributeError(f"'functools._lru_cache_wrapper' object has no attribute {name!r}"))

    def call(self, tx, args, kwargs, self_value=None):
        allargs = ([self_value] if self_value is not None else []) + list(args)
        for a in allargs + list(kwargs.values()):
            _check_hashable(a)
        inner = wrap(tx, self.wrapper.__wrapped__, AttrSource(self.source, "__wrapped__"))
        watch = _EffectWatch(tx.side_effects)
        tx.side_effects = watch
        try:
            result = inner.call(tx, allargs, kwargs)
        finally:
            tx.side_effects = watch.inner
        if watch.effects:
            raise Unsupported("an lru_cache-wrapped function with side effects (eager runs them "
                              "only on a cache miss)", kind="lru_cache")
        if not _cached_result_ok(result):
            raise Unsupported(f"an lru_cache-wrapped function returning a new {result} (eager "
                              "returns the cached object again)", kind="lru_cache")
        tx.side_effects.mutated(Emission(self.source, allargs, kwargs))
        return result

    def __repr__(self):
        return f"LruCache({getattr(self.wrapper, '__qualname__', '?')})"


@register_wrapper(functools._lru_cache_wrapper)
def _wrap_lru_cache(tx, fn, source):
    if source is None:
        source = ObjectSource(fn, getattr(fn, "__name__", "cached"))
    tx.guards.add_identity(source, fn)
    return CachedFnValue(fn, source)


def bind_cached_method(tx, self_value, wrapper, source):
    """An lru_cache wrapper found on a class (a cached method, transformers' warning_once)."""
    return _BoundCached(_wrap_lru_cache(tx, wrapper, source), self_value)


class _BoundCached(Value):
    def __init__(self, cached, self_value):
        self.cached = cached
        self.self_value = self_value

    def truth(self, tx):
        return True

    def call(self, tx, args, kwargs):
        return self.cached.call(tx, args, kwargs, self_value=self.self_value)


# ==========================================================================================
# operator.itemgetter / attrgetter / methodcaller

class GetterValue(Value):
    """operator.itemgetter / attrgetter built in the trace (dotted attrgetter paths included)."""

    def __init__(self, kind, keys):
        self.kind = kind
        self.keys = keys

    def python_type(self):
        return operator.itemgetter if self.kind == "item" else operator.attrgetter

    def _one(self, tx, obj, key):
        from ..values.builtins import get_item
        if self.kind == "item":
            return get_item(tx, obj, key)
        for part in _py(key, "an attrgetter name").split("."):
            from ..symbolic.handlers_stack import load_attr
            obj = load_attr(tx, obj, part)
        return obj

    def call(self, tx, args, kwargs):
        if len(args) != 1 or kwargs:
            raise UserError(TypeError(f"{self.python_type().__name__} expected 1 argument, got {len(args)}"))
        got = [self._one(tx, args[0], k) for k in self.keys]
        return got[0] if len(got) == 1 else TupleValue(got)


class MethodCallerValue(Value):
    def __init__(self, name, args, kwargs):
        self.name = name
        self.args = args
        self.kwargs = kwargs

    def python_type(self):
        return operator.methodcaller

    def call(self, tx, args, kwargs):
        from ..symbolic.handlers_stack import get_method
        return get_method(tx, args[0], self.name).call(tx, list(self.args), dict(self.kwargs))


def _make_methodcaller(tx, args, kwargs):
    if not args:
        raise UserError(TypeError("methodcaller needs at least one argument, the method name"))
    return MethodCallerValue(_py(args[0], "a method name"), args[1:], kwargs)


def _nlargest(largest):
    def handler(tx, fn_value, args, kwargs):
        from ..values.builtins import sorted_items
        n, it = _py(args[0], "n"), args[1]
        key = args[2] if len(args) > 2 else kwargs.get("key")
        items = sorted_items(tx, _as_iter(tx, it).unpack(tx), key, const(largest))
        return ListValue(items[:max(n, 0)])
    return handler


# ==========================================================================================
# itertools: lazy iterators

_PULL_LIMIT = 1_000_000


class LazyIterValue(IteratorValue):
    """An iterator whose items are computed on demand by `step()` (None when exhausted)."""
    lazy = True

    def __init__(self, step, cls, infinite=False):
        super().__init__([])
        self.step = step
        self.cls = cls
        self.infinite = infinite
        self.exhausted = False

    def python_type(self):
        return self.cls

    def next(self):
        if self.exhausted:
            return None
        v = self.step()
        if v is None:
            self.exhausted = True
        return v

    def unpack(self, tx):
        if self.infinite:
            raise Unsupported(f"consuming an infinite {self.cls.__name__} iterator", kind="iter")
        out = []
        while True:
            v = self.next()
            if v is None:
                return out
            out.append(v)
            if len(out) > _PULL_LIMIT:
                raise Unsupported("an iterator with more than a million items", kind="iter")

    def __repr__(self):
        return f"LazyIter({self.cls.__name__})"


def _as_iter(tx, v):
    from ..values.builtins import BUILTINS
    return BUILTINS[iter](tx, v)


def is_lazy(v):
    return isinstance(v, LazyIterValue)


def _count(tx, args, kwargs):
    start = args[0] if args else kwargs.get("start", const(0))
    step = args[1] if len(args) > 1 else kwargs.get("step", const(1))
    state = [start]

    def next_():
        from ..values.builtins import binary_op
        v = state[0]
        state[0] = binary_op(tx, operator.add, v, step)
        return v
    return LazyIterValue(next_, itertools.count, infinite=True)


def _cycle(tx, args, kwargs):
    src = _as_iter(tx, args[0])
    saved, pos = [], [None]

    def next_():
        if pos[0] is None:
            v = src.next()
            if v is not None:
                saved.append(v)
                return v
            if not saved:
                return None
            pos[0] = 0
        v = saved[pos[0] % len(saved)]
        pos[0] += 1
        return v
    return LazyIterValue(next_, itertools.cycle, infinite=True)


def _repeat(tx, args, kwargs):
    obj = args[0] if args else kwargs["object"]
    times = args[1] if len(args) > 1 else kwargs.get("times")
    if times is None:
        return LazyIterValue(lambda: obj, itertools.repeat, infinite=True)
    left = [max(_py(times, "repeat's times"), 0)]

    def next_():
        if left[0] <= 0:
            return None
        left[0] -= 1
        return obj
    return LazyIterValue(next_, itertools.repeat)


def _chain(tx, args, kwargs):
    return _chain_of(tx, iter(args))


def _chain_from_iterable(tx, its):
    outer = _as_iter(tx, its)
    return _chain_of(tx, iter(lambda: outer.next(), None))


def _chain_of(tx, sources):
    cur = [None]

    def next_():
        while True:
            if cur[0] is None:
                nxt = next(sources, None)
                if nxt is None:
                    return None
                cur[0] = _as_iter(tx, nxt)
            v = cur[0].next()
            if v is not None:
                return v
            cur[0] = None
    return LazyIterValue(next_, itertools.chain)


def _islice(tx, args, kwargs):
    src = _as_iter(tx, args[0])
    bounds = [_py(a, "islice bounds") for a in args[1:]]
    sl = slice(*bounds) if len(bounds) > 1 else slice(bounds[0] if bounds else None)
    start, stop, step = sl.start or 0, sl.stop, sl.step or 1
    if start < 0 or (stop is not None and stop < 0) or step <= 0:
        raise UserError(ValueError("Indices for islice() must be None or an integer: 0 <= x <= sys.maxsize."))
    state = {"i": 0, "next": start}

    def next_():
        while stop is None or state["next"] < stop:
            v = src.next()
            if v is None:
                return None
            i = state["i"]
            state["i"] += 1
            if i == state["next"]:
                state["next"] += step
                return v
        return None
    return LazyIterValue(next_, itertools.islice)


def _accumulate(tx, args, kwargs):
    from ..values.builtins import binary_op
    src = _as_iter(tx, args[0])
    func = args[1] if len(args) > 1 else kwargs.get("func")
    if func is not None and func.is_const() and func.as_python() is None:
        func = None
    initial = kwargs.get("initial")
    state = {"acc": None if initial is None or initial.is_const() and initial.as_python() is None
             else initial, "started": False}

    def next_():
        if not state["started"] and state["acc"] is not None:
            state["started"] = True
            return state["acc"]
        state["started"] = True
        v = src.next()
        if v is None:
            return None
        acc = state["acc"]
        state["acc"] = v if acc is None else (func.call(tx, [acc, v], {}) if func is not None
                                              else binary_op(tx, operator.add, acc, v))
        return state["acc"]
    return LazyIterValue(next_, itertools.accumulate)


def _predicate_iter(kind):
    def make(tx, args, kwargs):
        pred, src = args[0], _as_iter(tx, args[1])
        state = {"flag": False}

        def test(v):
            if kind == "filterfalse" and pred.is_const() and pred.as_python() is None:
                return v.truth(tx)
            return pred.call(tx, [v], {}).truth(tx)

        def next_():
            if kind == "takewhile":
                if state["flag"]:
                    return None
                v = src.next()
                if v is None or test(v):
                    return v
                state["flag"] = True
                return None
            while True:
                v = src.next()
                if v is None:
                    return None
                if kind == "dropwhile":
                    if state["flag"] or not test(v):
                        state["flag"] = True
                        return v
                elif not test(v):          # filterfalse
                    return v
        return LazyIterValue(next_, getattr(itertools, kind))
    return make


def _compress(tx, args, kwargs):
    data, sel = _as_iter(tx, args[0]), _as_iter(tx, args[1])

    def next_():
        while True:
            d, s = data.next(), sel.next()
            if d is None or s is None:
                return None
            if s.truth(tx):
                return d
    return LazyIterValue(next_, itertools.compress)


def _starmap(tx, args, kwargs):
    fn, src = args[0], _as_iter(tx, args[1])

    def next_():
        t = src.next()
        return None if t is None else fn.call(tx, t.unpack(tx), {})
    return LazyIterValue(next_, itertools.starmap)


def _pairwise(tx, args, kwargs):
    src = _as_iter(tx, args[0])
    prev = [None]

    def next_():
        if prev[0] is None:
            prev[0] = src.next()
            if prev[0] is None:
                return None
        v = src.next()
        if v is None:
            return None
        pair = TupleValue([prev[0], v])
        prev[0] = v
        return pair
    return LazyIterValue(next_, itertools.pairwise)


def zip_rows(tx, its, longest=False, fill=NONE):
    """Lazy zip / zip_longest over Value iterables."""
    srcs = [_as_iter(tx, a) for a in its]
    live = [True] * len(srcs)

    def next_():
        if not srcs:
            return None
        row = []
        for i, s in enumerate(srcs):
            v = s.next() if live[i] else None
            if v is None:
                if not longest:
                    return None
                live[i] = False
                v = fill
            row.append(v)
        if longest and not any(live):
            return None
        return TupleValue(row)
    return LazyIterValue(next_, itertools.zip_longest if longest else zip,
                         infinite=all(is_lazy(s) and s.infinite for s in srcs) and bool(srcs)
                         or longest and any(is_lazy(s) and s.infinite for s in srcs))


def _zip_longest(tx, args, kwargs):
    return zip_rows(tx, args, longest=True, fill=kwargs.get("fillvalue", NONE))


def _product(tx, args, kwargs):
    pools = [_as_iter(tx, a).unpack(tx) for a in args]
    pools *= _py(kwargs["repeat"], "repeat") if "repeat" in kwargs else 1
    return IteratorValue([TupleValue(list(p)) for p in itertools.product(*pools)])


def _index_combinatoric(fn):
    """combinations / permutations / combinations_with_replacement over a finite input: the
    index tuples come from the real itertools on range(n)."""
    def make(tx, args, kwargs):
        pool = _as_iter(tx, args[0]).unpack(tx)
        r = args[1] if len(args) > 1 else kwargs.get("r")
        rr = [] if r is None else [_py(r, "r")]
        return IteratorValue([TupleValue([pool[i] for i in idx]) for idx in fn(range(len(pool)), *rr)])
    return make


def _groupby(tx, args, kwargs):
    src = _as_iter(tx, args[0])
    key = args[1] if len(args) > 1 else kwargs.get("key")
    if key is not None and key.is_const() and key.as_python() is None:
        key = None
    st = {"cur": None, "curkey": None, "tgt": _UNSET, "gen": 0}

    def keyof(v):
        return v if key is None else key.call(tx, [v], {})

    def advance():
        v = src.next()
        if v is None:
            st["cur"] = None
            return False
        st["cur"], st["curkey"] = v, keyof(v)
        return True

    def same(a, b):
        from ..values.builtins import compare_op, is_same
        return is_same(a, b) or compare_op(tx, operator.eq, a, b).truth(tx)

    def next_():
        st["gen"] += 1
        if st["tgt"] is not _UNSET:          # skip the rest of the current group
            while st["cur"] is not None and same(st["curkey"], st["tgt"]):
                if not advance():
                    break
        if st["cur"] is None and not (st["tgt"] is _UNSET and advance()):
            return None
        st["tgt"] = st["curkey"]
        return TupleValue([st["curkey"], _grouper(st["gen"], st["tgt"])])

    def _grouper(gen, tgt):
        def gnext():
            if st["gen"] != gen or st["cur"] is None or not same(st["curkey"], tgt):
                return None
            v = st["cur"]
            advance()
            return v
        return LazyIterValue(gnext, itertools.groupby)
    return LazyIterValue(next_, itertools.groupby)


_UNSET = object()


def _tee(tx, args, kwargs):
    items = _as_iter(tx, args[0]).unpack(tx)
    n = _py(args[1], "n") if len(args) > 1 else 2
    return TupleValue([IteratorValue(list(items)) for _ in range(n)])


# ==========================================================================================
# collections.deque

class DequeValue(BaseSeq):
    mutable = True

    def __init__(self, items, maxlen=None, source=None):
        super().__init__(items, source)
        self.maxlen = maxlen
        self._trim(right=True)

    def _trim(self, right):
        if self.maxlen is not None and len(self.items) > self.maxlen:
            extra = len(self.items) - self.maxlen
            if right:
                del self.items[:extra]
            else:
                del self.items[len(self.items) - extra:]

    def python_type(self):
        return collections.deque

    def is_const(self):
        return False

    def as_python(self):
        raise Unsupported("a deque as a constant", kind="not_constant")

    def with_items(self, items):
        return DequeValue(items, self.maxlen)

    def mutate(self, tx):
        if self.source is not None:
            tx.side_effects.mutated(self)

    def getattr(self, tx, name):
        if name == "maxlen":
            return const(self.maxlen)
        if name in self.METHODS:
            return BoundMethodValue(self, name)
        raise UserError(AttributeError(f"'collections.deque' object has no attribute {name!r}"))

    def getitem(self, tx, idx):
        k = _py(idx, "a deque index")
        if isinstance(k, slice):
            raise UserError(TypeError("sequence index must be integer, not 'slice'"))
        return super().getitem(tx, idx)

    def reconstruct(self, cg):
        return cg.mutable(self, lambda: f"{cg.const(collections.deque, 'deque')}(["
                          + ", ".join(cg.expr(i) for i in self.items) + f"], {self.maxlen!r})")

    def replay(self, cg, target, temp):
        new = temp("[" + ", ".join(cg.expr(i) for i in self.items) + "]")
        return f"{target}.clear(); {target}.extend({new})"

    def __repr__(self):
        return f"Deque{self.items}"


def _dq(fn):
    def method(tx, d, *args, **kwargs):
        d.mutate(tx)
        out = fn(tx, d, *args, **kwargs)
        return NONE if out is None else out
    return method


def _dq_pop(left):
    def pop(tx, d):
        if not d.items:
            raise UserError(IndexError("pop from an empty deque"))
        return d.items.pop(0 if left else -1)
    return pop


def _dq_extendleft(tx, d, it):
    for v in _as_iter(tx, it).unpack(tx):
        d.items.insert(0, v)
        d._trim(right=False)


def _dq_rotate(tx, d, n=None):
    k = 1 if n is None else _py(n, "rotate's n")
    if d.items:
        k %= len(d.items)
        d.items[:] = d.items[-k:] + d.items[:-k] if k else d.items


DequeValue.METHODS = {
    "append": _dq(lambda tx, d, v: (d.items.append(v), d._trim(right=True))[1]),
    "appendleft": _dq(lambda tx, d, v: (d.items.insert(0, v), d._trim(right=False))[1]),
    "extend": _dq(lambda tx, d, it: (d.items.extend(_as_iter(tx, it).unpack(tx)), d._trim(right=True))[1]),
    "extendleft": _dq(_dq_extendleft),
    "pop": _dq(_dq_pop(False)), "popleft": _dq(_dq_pop(True)),
    "clear": _dq(lambda tx, d: d.items.clear()),
    "rotate": _dq(_dq_rotate),
    "reverse": _dq(lambda tx, d: d.items.reverse()),
    "copy": lambda tx, d: DequeValue(list(d.items), d.maxlen),
    "index": ListValue.METHODS["index"], "count": ListValue.METHODS["count"],
    "remove": _dq(lambda tx, d, v: ListValue.METHODS["remove"](tx, d, v)),
    "__len__": lambda tx, d: const(len(d.items)),
}


def _make_deque(tx, args, kwargs):
    it = args[0] if args else kwargs.get("iterable")
    maxlen = args[1] if len(args) > 1 else kwargs.get("maxlen")
    m = None if maxlen is None else _py(maxlen, "maxlen")
    if m is not None and (type(m) is not int or m < 0):
        raise UserError(ValueError("maxlen must be non-negative"))
    return DequeValue([] if it is None else _as_iter(tx, it).unpack(tx), m)


@register_wrapper(collections.deque)
def _wrap_deque(tx, dq, source):
    if type(dq) is not collections.deque:
        from ..values.objects import wrap_object
        return wrap_object(tx, dq, source)
    if source is None:
        raise Unsupported("a deque reached without a source", kind="deque")
    from ..sources import ItemSource
    tx.guards.add_len(source, collections.deque, len(dq))
    tx.guards.add_code(f"{tx.cg.bound(source)}.maxlen == {dq.maxlen!r}", source, "deque_maxlen")
    return DequeValue([wrap(tx, x, ItemSource(source, i)) for i, x in enumerate(dq)], dq.maxlen, source)


# ==========================================================================================
# warnings.warn and logging: emissions replayed after the graph

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ours(filename):
    return filename.startswith(_PKG_DIR) or filename.startswith("<bytegraph")


def _real_caller(levels):
    """At replay time: the frame `levels` frames above the compiled region's caller-side edge
    (the first frame that is not bytegraph's own)."""
    f = sys._getframe(2)
    while f is not None and _ours(f.f_code.co_filename):
        f = f.f_back
    for _ in range(levels - 1):
        if f is None:
            break
        f = f.f_back
    return f


def _site(tx, stacklevel, skip=None):
    """(filename, lineno, function name, globals dict) of the frame `stacklevel` levels up from
    the traced code that called the emitting function, or (None, levels beyond the trace)."""
    f = tx.frame
    level = max(stacklevel, 1)
    while True:
        while f is not None and (_ours(f.code.co_filename) or skip is not None and skip(f.code.co_filename)):
            f = f.parent
        if f is None or level == 1:
            break
        level -= 1
        f = f.parent
    if f is None:
        return None, level
    line = f.inst.line if f.inst is not None else f.code.co_firstlineno
    return (f.code.co_filename, line, f.code.co_name, f.globals), 0


class Emission(Value):
    """A call made after the graph, on every call of the entry: `target(*args, **kwargs)`
    (a warning, a log record, the real call of a cached function). Registered with the
    side-effect log, whose replay protocol (`source` + `replay`) it follows."""
    mutable = True

    def __init__(self, target, args, kwargs=None):
        self.source = target if not callable(target) else ObjectSource(target, target.__name__)
        self.args = [a if isinstance(a, Value) else _Bound(a) for a in args]
        self.kwargs = {k: v if isinstance(v, Value) else _Bound(v) for k, v in (kwargs or {}).items()}

    def replay(self, cg, target, temp):
        parts = [cg.expr(a) for a in self.args] + [f"{k}={cg.expr(v)}" for k, v in self.kwargs.items()]
        return f"{target}({', '.join(parts)})"


class _Bound(Value):
    """A Python object an emission passes along as it is (bound into the entry's namespace)."""

    def __init__(self, obj):
        self.obj = obj

    def reconstruct(self, cg):
        return repr(self.obj) if type(self.obj) in (int, str, bool, type(None)) else cg.const(self.obj, "a")


def _emit_warning(message, category, site, beyond):
    if beyond:
        f = _real_caller(beyond)
        site = ("sys", 1, None, sys.__dict__) if f is None else \
            (f.f_code.co_filename, f.f_lineno, None, f.f_globals)
    filename, lineno, _, g = site
    registry = g.setdefault("__warningregistry__", {})
    warnings.warn_explicit(message, category, filename, lineno, g.get("__name__", "<string>"),
                           registry, g)


def _warn(tx, message, category=None, stacklevel=None, source=None):
    msg = message
    if isinstance(message, TensorValue):
        raise Unsupported("warnings.warn with a tensor message", kind="warn")
    from ..runtime.registry import ExceptionValue
    if isinstance(message, ExceptionValue):
        msg_obj = message.as_exception()
    else:
        msg_obj = _py(msg, "a warning message")
    cat = None if category is None else _py(category, "a warning category")
    if isinstance(msg_obj, Warning):
        cat = type(msg_obj)
    elif cat is None:
        cat = UserWarning
    if not (isinstance(cat, type) and issubclass(cat, Warning)):
        raise UserError(TypeError(f"category must be a Warning subclass, not '{type(cat).__name__}'"))
    if source is not None and not (source.is_const() and source.as_python() is None):
        raise Unsupported("warnings.warn with source=", kind="warn")
    level = 1 if stacklevel is None else _py(stacklevel, "stacklevel")
    site, beyond = _site(tx, level)
    if site is not None:
        site = site[:2] + (None, site[3])
    tx.side_effects.mutated(Emission(_emit_warning, (msg_obj, cat, site, beyond)))
    return NONE


_LOG_SRCFILE = os.path.normcase(logging.addLevelName.__code__.co_filename)


def _log_internal(filename):
    return os.path.normcase(filename) == _LOG_SRCFILE or ("importlib" in filename and "_bootstrap" in filename)


def _emit_log(logger, level, site, beyond, msg, args, extra):
    if logger is None:                  # module-level logging.info(...): the root logger
        logger = logging.root
        if not logger.handlers:
            logging.basicConfig()
    if not logger.isEnabledFor(level):
        return
    if beyond:
        f = _real_caller(beyond)
        site = ("(unknown file)", 0, "(unknown function)") if f is None else \
            (f.f_code.co_filename, f.f_lineno, f.f_code.co_name)
    filename, lineno, func = site[:3]
    logger.handle(logger.makeRecord(logger.name, level, filename, lineno, msg, args, None, func, extra, None))


def _log_call(tx, logger_value, level, msg, args, kwargs):
    kwargs = dict(kwargs)
    for k in ("exc_info", "stack_info"):
        v = kwargs.pop(k, None)
        if v is not None and not (v.is_const() and not v.as_python()):
            raise Unsupported(f"logging with {k}=", kind="logging")
    stacklevel = _py(kwargs.pop("stacklevel", const(1)), "stacklevel")
    extra = kwargs.pop("extra", None)
    extra = None if extra is None else _py(extra, "logging extra=")
    if kwargs:
        raise UserError(TypeError(f"unexpected keyword argument {next(iter(kwargs))!r}"))
    if any(isinstance(a, TensorValue) for a in [msg, *args]):
        raise Unsupported("logging a tensor's value", kind="logging")
    pmsg = _py(msg, "a log message")
    pargs = tuple(_py(a, "a log argument") for a in args)
    if len(pargs) == 1 and isinstance(pargs[0], collections.abc.Mapping) and pargs[0]:
        pargs = pargs[0]              # logging's own rule for a single mapping argument
    site, beyond = _site(tx, stacklevel, skip=_log_internal)
    logger = None
    if logger_value is not None:
        from ..values.objects import ObjectValue
        if not isinstance(logger_value, ObjectValue):
            raise Unsupported(f"logging through {logger_value}", kind="logging")
        tx.guards.add_identity(logger_value.source, logger_value.obj)
        logger = logger_value.obj
    tx.side_effects.mutated(Emission(_emit_log, (logger, level, site and site[:3], beyond, pmsg, pargs, extra)))
    return NONE


def _logger_method(level):
    def override(tx, fn_value, args, kwargs):
        if not args:
            raise UserError(TypeError("missing self"))
        return _log_call(tx, args[0], level, args[1], args[2:], kwargs)
    return override


def _logger_log(tx, fn_value, args, kwargs):
    level = _py(args[1], "a log level")
    if not isinstance(level, int):
        raise UserError(TypeError("level must be an integer"))
    return _log_call(tx, args[0], level, args[2], args[3:], kwargs)


def _module_log(level):
    def override(tx, fn_value, args, kwargs):
        return _log_call(tx, None, level, args[0], args[1:], kwargs)
    return override


def _module_log_level(tx, fn_value, args, kwargs):
    return _log_call(tx, None, _py(args[0], "a log level"), args[1], args[2:], kwargs)


def _logger_query(method):
    """logger.isEnabledFor(level) / getEffectiveLevel(): logging configuration, asked again by a
    guard on every call."""
    def override(tx, fn_value, args, kwargs):
        from ..values.objects import ObjectValue
        lg = args[0]
        if not isinstance(lg, ObjectValue):
            raise Unsupported(f"{method} of {lg}", kind="logging")
        pargs = [_py(a, "a log level") for a in args[1:]]
        result = getattr(lg.obj, method)(*pargs)
        call = ", ".join(repr(a) for a in pargs)
        tx.guards.add_code(f"{tx.cg.bound(lg.source)}.{method}({call}) == {result!r}", lg.source, "logging")
        return const(result)
    return override


def _get_logger(tx, fn_value, args, kwargs):
    """logging.getLogger(name): the real logger (creating one is what eager's call does too)."""
    name = _py(args[0], "a logger name") if args else _py(kwargs.get("name", NONE), "a logger name")
    lg = logging.getLogger(name)
    return wrap(tx, lg, ObjectSource(lg, f"logger_{name}"))


# ==========================================================================================
# weakref

class NewWeakRefValue(Value):
    """weakref.ref(obj) made in the trace for a caller-world object."""

    def __init__(self, target):
        self.target = target

    def python_type(self):
        return weakref.ReferenceType

    def call(self, tx, args, kwargs):
        return self.target

    def reconstruct(self, cg):
        return f"{cg.const(weakref.ref, 'weakref_ref')}({cg.expr(self.target)})"


def _make_weakref(tx, args, kwargs):
    if len(args) != 1 or kwargs:
        raise Unsupported("weakref.ref with a callback", kind="weakref")
    target = args[0]
    if target.source is None or isinstance(target, TensorValue) or target.is_const() and \
            type(target) is ConstValue:
        raise Unsupported(f"weakref.ref to {target} (an object the trace created, a tensor or a "
                          "constant)", kind="weakref")
    return NewWeakRefValue(target)


class _CallSource(_Chained):
    """base.<method>(arg source): a guarded lookup (WeakKeyDictionary reads)."""
    __slots__ = ()

    def render(self, cg):
        method, arg = self.key
        return f"{self.base.expr(cg)}.{method}({arg.expr(cg)})"

    def name_hint(self):
        return f"{self.base.name_hint()}.{self.key[0]}({self.key[1].name_hint()})"


class WeakKeyDictValue(Value):
    """A caller-world WeakKeyDictionary: reads by caller-world keys, each guarded."""

    METHODS = frozenset({"get", "__getitem__", "__contains__", "__len__"})

    def __init__(self, d, source):
        self.d = d
        self.source = source

    def python_type(self):
        return type(self.d)

    def getattr(self, tx, name):
        if name in self.METHODS:
            return BoundMethodValue(self, name)
        raise Unsupported(f"WeakKeyDictionary.{name}", kind="weakref")

    def call_method(self, tx, name, args, kwargs):
        if name == "__len__":
            n = len(self.d)
            tx.guards.add_code(f"len({tx.cg.bound(self.source)}) == {n}", self.source, "len")
            return const(n)
        key = args[0]
        real = getattr(key, "obj", None) if key.source is not None else None
        if real is None or isinstance(key, TensorValue):
            raise Unsupported(f"WeakKeyDictionary lookup by {key}", kind="weakref")
        tx.guards.add_identity(key.source, real)
        present = real in self.d
        tx.guards.add_value(_CallSource(self.source, ("__contains__", key.source)), present)
        if name == "__contains__":
            return const(present)
        if not present:
            if name == "get":
                return args[1] if len(args) > 1 else NONE
            raise UserError(KeyError(real))
        return wrap(tx, self.d[real], _CallSource(self.source, ("__getitem__", key.source)))


@register_wrapper(weakref.WeakKeyDictionary)
def _wrap_weak_key_dict(tx, d, source):
    if source is None:
        source = ObjectSource(d, "weak_key_dict")
    tx.guards.add_type(source, type(d))
    return WeakKeyDictValue(d, source)


# ==========================================================================================
# tables merged into runtime/registry.py

CONSTRUCTORS = {
    itertools.count: _count,
    itertools.cycle: _cycle,
    itertools.repeat: _repeat,
    itertools.chain: _chain,
    itertools.islice: _islice,
    itertools.accumulate: _accumulate,
    itertools.takewhile: _predicate_iter("takewhile"),
    itertools.dropwhile: _predicate_iter("dropwhile"),
    itertools.filterfalse: _predicate_iter("filterfalse"),
    itertools.compress: _compress,
    itertools.starmap: _starmap,
    itertools.pairwise: _pairwise,
    itertools.zip_longest: _zip_longest,
    itertools.product: _product,
    itertools.combinations: _index_combinatoric(itertools.combinations),
    itertools.permutations: _index_combinatoric(itertools.permutations),
    itertools.combinations_with_replacement: _index_combinatoric(itertools.combinations_with_replacement),
    itertools.groupby: _groupby,
    collections.deque: _make_deque,
    operator.itemgetter: lambda tx, args, kwargs: GetterValue("item", args),
    operator.attrgetter: lambda tx, args, kwargs: GetterValue("attr", args),
    operator.methodcaller: _make_methodcaller,
    weakref.ref: _make_weakref,
}

OVERRIDES = {
    copy.copy: _copy_override,
    copy.deepcopy: _deepcopy_override,
    heapq.nlargest: _nlargest(True),
    heapq.nsmallest: _nlargest(False),
    logging.getLogger: _get_logger,
    logging.Logger.isEnabledFor: _logger_query("isEnabledFor"),
    logging.Logger.getEffectiveLevel: _logger_query("getEffectiveLevel"),
    logging.Logger.log: _logger_log,
    logging.log: _module_log_level,
}
for _name, _level in (("debug", logging.DEBUG), ("info", logging.INFO), ("warning", logging.WARNING),
                      ("error", logging.ERROR), ("critical", logging.CRITICAL)):
    OVERRIDES[getattr(logging.Logger, _name)] = _logger_method(_level)
    OVERRIDES[getattr(logging, _name)] = _module_log(_level)

# builtin callables (C functions): handlers in values/builtins.py's BUILTINS table
BUILTIN_HANDLERS = {
    warnings.warn: _warn,
    itertools.tee: lambda tx, *args, **kwargs: _tee(tx, args, kwargs),
}
CLASSMETHOD_HANDLERS = {
    (itertools.chain, "from_iterable"): _chain_from_iterable,
}


def lazy_map(tx, fn, its):
    """map(fn, *its) when an argument is an on-demand iterator."""
    rows = zip_rows(tx, its)

    def next_():
        row = rows.next()
        return None if row is None else fn.call(tx, row.items, {})
    return LazyIterValue(next_, map, infinite=rows.infinite)


BUILTINS.update(BUILTIN_HANDLERS)
BUILTIN_CLASSMETHODS.update(CLASSMETHOD_HANDLERS)
