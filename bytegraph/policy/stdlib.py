"""The standard library as model code uses it: what calling stdlib helpers means in a trace.

Responsible for the stdlib callables and types that cannot simply be inlined as Python code
(C implementations, caches, process state, output), each with the guards its answer relies on:

- `os.environ` / `os.getenv`: each key read is guarded (the guard re-reads `environ.get(key)`,
  so absence is guarded too); iterating the environment guards all of it; writes are
  replayed after the graph.
- `copy.copy` / `copy.deepcopy`: containers, tensors, and plain objects (state in `__dict__`,
  the default reduce protocol) become new trace-time objects built from the guarded state; a
  Python `__copy__` / `__deepcopy__` is inlined; any other copy protocol is refused.
- `functools.lru_cache` / `cache` wrappers: the function the wrapper calls is inlined (guards:
  identity of the wrapper, which fixes that function, plus the usual guards on the function's
  code, defaults and cells) and the real call is replayed after the graph, so the cache sees
  eager's calls. Refused when the trace's value could differ from eager's:
  tensor arguments, side effects, or a result the trace creates (a cache hit returns the same
  object again). See CachedFnValue.
- `warnings.warn` and `logging` calls: replayed after the graph on every call, attributed to
  the user's line (docs/architecture.md, "Warnings and logging").
- `weakref.ref` of caller objects, `WeakKeyDictionary` reads (guarded per key).
- trace-created instances of classes with a Python `__getattribute__` (`new_instance`).

itertools, deque, operator's getters and heapq live in runtime/stdlib_iter.py. `CONSTRUCTORS`
(class -> builder) and `OVERRIDES` (Python function -> handler) are merged into
runtime/registry.py's tables; builtin handlers go into values/builtins.py's BUILTINS.
"""
import collections
import contextlib
import copy
import copyreg
import functools
import gc
import logging
import os
import sys
import types
import warnings
import weakref

from ..values.symbolic import SymValue
from ..values.opaque import TEXT, Opaque
from ..exc import Unsupported, UserError
from ..sources import AttrSource, ObjectSource, _Chained
from ..values.base import Value, ConstValue, RealCallableValue, NONE, const, wrap, register_wrapper
from ..values.containers import TupleValue, ListValue, DictValue, SetValue
from ..values.tensor import TensorValue, graph_call
from .builtins import BUILTINS, BUILTIN_CLASSMETHODS
from ..values.objects import (ClassValue, ObjectValue, ModuleValue, NewObjectValue, PyModuleValue,
                              _InstanceBase, static_lookup, class_lookup, bind_class_attr, _MISSING)
from ..values.functions import UserFnValue, NestedFnValue, BoundMethodValue
from ..protocols import operators as ops
from ..protocols.special import is_plain_constant
from . import stdlib_iter
from .stdlib_iter import DequeValue, _py
from ..values.containers import _IdentityKey


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
        if name == "__contains__":
            key = _py(args[0], "an os.environ key")
            if key in self.overlay:
                return const(self.overlay[key] is not _DELETED)
            present = type(key) is self.key_type and key in self.env
            tx.guards.add_value(_EnvContainsSource(self.source, key), present)
            return const(present)
        if name in ("get", "__getitem__", "pop", "setdefault"):
            key = self._key(args[0])
            value = self.read(tx, key)
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


def _mapping_method(name, value_type):
    """Mapping's Python methods reached through the protocol layer (`key in os.environ` calls
    Mapping.__contains__): answered by the Value when it models the mapping, else inlined."""
    def override(tx, fn_value, args, kwargs):
        if args and isinstance(args[0], value_type):
            return args[0].call_method(tx, name, list(args[1:]), kwargs)
        return fn_value.inline_call(tx, args, kwargs)
    return override


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


def _instance_state_copyable(tx, cls):
    """Does copy.copy/deepcopy of an instance of cls take the default path (object.__reduce_ex__,
    state = the instance __dict__, rebuilt with cls.__new__ + __dict__.update)? Returns the
    reason it does not, or None. Every fact it relies on is guarded (class_lookup's guards that
    no class defines the names; the copyreg registry not naming cls)."""
    tx.guards.add_code(f"{tx.cg.const(cls, cls.__name__)} not in "
                       f"{tx.cg.const(copyreg.dispatch_table, 'copyreg_dispatch')}", None, "copyreg",
                       cls.__qualname__)
    if cls in copyreg.dispatch_table:
        return "a copyreg reducer"
    for name, default in (("__reduce_ex__", object.__reduce_ex__), ("__reduce__", object.__reduce__),
                          ("__getstate__", object.__getstate__), ("__new__", object.__new__),
                          ("__setstate__", _MISSING), ("__getnewargs_ex__", _MISSING),
                          ("__getnewargs__", _MISSING)):
        attr = class_lookup(tx, cls, name)[0]
        if (attr.__func__ if isinstance(attr, staticmethod) else attr) is not default:
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
        return v if v.cls is frozenset else SetValue(list(v.items), cls=v.cls,
                                                     real=v.real.copy() if v.real is not None else None)
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
    method = class_lookup(tx, cls, hook)[0]
    if method is not _MISSING:
        if not isinstance(method, types.FunctionType):
            raise Unsupported(f"copy of {cls.__name__}, whose {hook} is not Python code", kind="copy")
        bound = bind_class_attr(tx, v, cls, hook)
        return bound.call(tx, [_MemoDict(memo)] if deep else [], {})
    reason = _instance_state_copyable(tx, cls)
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
    from ..values.lookup import active_tracer
    ga = class_lookup(active_tracer(), cls, "__getattribute__")[0]   # guarded: one added later
    if isinstance(ga, types.FunctionType):
        return DynamicNewObjectValue(cls)
    if not (isinstance(ga, types.WrapperDescriptorType) and ga.__objclass__.__module__ == "builtins"):
        raise Unsupported(f"instance of {cls.__name__}, whose __getattribute__ is not Python code",
                          kind="construct")
    return NewObjectValue(cls)


class DynamicNewObjectValue(NewObjectValue):
    """A trace-created instance whose class defines __getattribute__ in Python (a copied
    transformers config): attribute reads inline it, then __getattr__ on AttributeError, as
    DynamicAttrObjectValue does for caller-world ones; a Python __delattr__ is inlined too."""

    def getattr(self, tx, name):
        getattribute = bind_class_attr(tx, self, self.cls, "__getattribute__")
        try:
            return getattribute.call(tx, [ConstValue(name)], {})
        except UserError as e:
            if not isinstance(e.exc, AttributeError) or class_lookup(tx, self.cls, "__getattr__")[0] is _MISSING:
                raise
        return self.missing_attr(tx, name)

    def delattr(self, tx, name):
        if class_lookup(tx, self.cls, "__delattr__")[0] is not object.__delattr__:
            bind_class_attr(tx, self, self.cls, "__delattr__").call(tx, [ConstValue(name)], {})
            return
        super().delattr(tx, name)


# ==========================================================================================
# contextlib.ExitStack with the context managers the trace models (grad mode, autocast,
# @contextmanager generators): they have no real __enter__/__exit__ to look up on their type

def _exitstack_enter_context(tx, fn_value, args, kwargs):
    stack, cm = args[0], args[1] if len(args) > 1 else kwargs["cm"]
    if not (hasattr(cm, "enter") and hasattr(cm, "exit")):
        return fn_value.inline_call(tx, args, kwargs)
    from ..symbolic.handlers_control import _ExitValue
    result = cm.enter(tx)
    stack.call_method(tx, "_push_exit_callback", [_ExitValue(cm), const(True)], {})
    return result


def _make_method(tx, args, kwargs):
    """types.MethodType(function, obj), as contextlib.ExitStack builds its exit callbacks."""
    if len(args) != 2 or kwargs:
        raise UserError(TypeError("method expected 2 arguments"))
    return BoundMethodValue(args[1], args[0])


def _exc_info(tx):
    """sys.exc_info() with no exception being handled; a handled one would need its traceback."""
    if not (tx.exc_info.is_const() and tx.exc_info.as_python() is None):
        raise Unsupported("sys.exc_info() while handling an exception", kind="exc_info")
    return TupleValue([NONE, NONE, NONE])


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


def _check_hashable(tx, v):
    """The cache hashes its arguments: refuse tensors (eager keys them by identity, so it would
    return a result computed from their old data), raise TypeError for unhashable ones."""
    if isinstance(v, TensorValue):
        raise Unsupported("a tensor argument to an lru_cache-wrapped function (eager would return "
                          "the cached result for the same tensor object)", kind="lru_cache")
    if isinstance(v, TupleValue):
        for i in v.items:
            _check_hashable(tx, i)
    ops.check_hashable(tx, v)


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
        # the cache is keyed on values: a symbolic size is specialized (and guarded)
        allargs = [const(a.as_python()) if isinstance(a, SymValue) else a for a in allargs]
        kwargs = {k: const(v.as_python()) if isinstance(v, SymValue) else v for k, v in kwargs.items()}
        for a in allargs + list(kwargs.values()):
            _check_hashable(tx, a)
        func = cached_function(self.wrapper)
        if is_marked_constant(func):
            return call_marked_constant(tx, self.wrapper, allargs, kwargs)
        inner = wrap(tx, func, ObjectSource(func, getattr(func, "__name__", "cached_fn")))
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


def is_marked_constant(fn):
    """Library helpers declared constant for the process's lifetime (an install probe, a hardware
    capability) with the attribute torch.compile reads, `_dynamo_marked_constant` (transformers'
    is_torch_available & co). As torch.compile does, they are called once at trace time and
    their answer is a constant of the graph, unguarded: that is the library's own contract."""
    return getattr(fn, "_dynamo_marked_constant", False) is True


def call_marked_constant(tx, fn, args, kwargs):
    if not all(is_plain_constant(a) for a in list(args) + list(kwargs.values())):
        raise Unsupported(f"{getattr(fn, '__qualname__', fn)} (a marked constant) on non-constant "
                          "arguments", kind="marked_constant")
    try:
        res = fn(*[a.as_python() for a in args], **{k: v.as_python() for k, v in kwargs.items()})
    except Exception as e:
        raise UserError(e)
    tx.own(res)             # a process-lifetime constant by declaration: the entry keeps it
    return wrap(tx, res, None)


def cached_function(wrapper):
    """The function an lru_cache wrapper really calls. It is held in a C field, fixed for the
    wrapper's lifetime (assigning `__wrapped__` changes only that attribute), so the wrapper's
    identity guard pins it; found among the wrapper's GC referents (its cache dict, function,
    key marker, cache_info type and __dict__)."""
    wrapped = wrapper.__dict__.get("__wrapped__")
    referents = gc.get_referents(wrapper)
    if wrapped is not None and any(r is wrapped for r in referents):
        return wrapped
    funcs = [r for r in referents if callable(r) and not isinstance(r, type)]
    if len(funcs) != 1:
        raise Unsupported("cannot tell which function an lru_cache wrapper calls", kind="lru_cache")
    return funcs[0]


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
    line = f.line()
    return (f.code.co_filename, line, f.user_name or f.code.co_name, f.globals), 0


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
    from .calls import ExceptionValue
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
    if _turned_into_error(tx, msg_obj, cat, site):
        # eager raises at the call, and what follows it does not run: the call runs at a stop
        raise Unsupported("warnings.warn under a filter that turns it into an error", kind="warn")
    tx.side_effects.mutated(Emission(_emit_warning, (msg_obj, cat, site, beyond)))
    return NONE


def _filters_state():
    filters = warnings.filters
    return (id(filters), len(filters), id(filters[0]) if filters else None, warnings.defaultaction)


def _turned_into_error(tx, message, category, site):
    """Would the warnings filters make this warning an exception? (As the C implementation
    matches them: message text, category, module, line; a site outside the trace: any module
    and line.) Guarded on the filters list (its identity, length and first entry: what
    catch_warnings and simplefilter change) and the default action."""
    state = _filters_state()
    q = tx.cg.const(_filters_state, "warning_filters")
    tx.guards.add_code(f"{q}() == {tx.cg.const(state, 'filters_state')}", None, "torch_query", state,
                       f"{q}()", "the warnings filters")
    text = str(message)
    module = site[3].get("__name__", "<string>") if site is not None else None
    for action, msg, cat, mod, ln in warnings.filters:
        if (msg is None or msg.match(text)) and issubclass(category, cat) and \
                (mod is None or module is None or mod.match(module)) and \
                (ln == 0 or site is None or ln == site[1]):
            if action == "error":
                return True
            if module is not None and site is not None:
                return False
    return warnings.defaultaction == "error"


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
            # the record reads the exception being handled (or the stack): run at a stop, the call
            # would find the entry's (none); the function runs eagerly (runtime/convert.py _NO_BREAK)
            raise Unsupported(f"logging with {k}=", kind="logging_exc_info")
    stacklevel = _py(kwargs.pop("stacklevel", const(1)), "stacklevel")
    extra = kwargs.pop("extra", None)
    extra = None if extra is None else _py(extra, "logging extra=")
    if kwargs:
        raise UserError(TypeError(f"unexpected keyword argument {next(iter(kwargs))!r}"))
    # text formatted at a break and item() numbers are immutable values the entry holds: the
    # record takes them as they are (values/opaque.py), and so it takes tensors (the graph's
    # outputs: TensorLogEmission); other values must be constants
    def held(a):
        return _immutable_opaque(a) or isinstance(a, TensorValue)
    pmsg = msg if held(msg) else _py(msg, "a log message")
    pargs = tuple(_py(a, "a log argument") for a in args) if not any(map(held, args)) else \
        TupleValue([a if held(a) else const(_py(a, "a log argument")) for a in args])
    site, beyond = _site(tx, stacklevel, skip=_log_internal)
    logger = None
    if logger_value is not None:
        if not isinstance(logger_value, ObjectValue):
            raise Unsupported(f"logging through {logger_value}", kind="logging")
        tx.guards.add_identity(logger_value.source, logger_value.obj)
        logger = logger_value.obj
    emit_args = (logger, level, site and site[:3], beyond, pmsg, pargs, extra)
    tensors = [a for a in [msg, *args] if isinstance(a, TensorValue)]
    tx.side_effects.mutated(TensorLogEmission(tx, tensors, emit_args) if tensors else Emission(_emit_log, emit_args))
    return NONE


class TensorLogEmission(Emission):
    """A log record with tensors among its arguments, emitted after the graph with the tensors
    the graph computed. Eager formats the record when the call runs, so this holds only while
    no op after the call writes into those tensors: replay checks their version counters (a
    view's write counts too), and if one moved, the trace is refused at the log call itself
    (`producer`: the converter stops there, and Python logs the value of that moment)."""

    def __init__(self, tx, tensors, args):
        from ..values.opaque import producer_chain
        from ..graph.builder import _version
        super().__init__(_emit_log, args)
        self.tensors = [(t, _version(t.fake)) for t in tensors]
        self.producer = producer_chain(tx)

    def replay(self, cg, target, temp):
        from ..graph.builder import _version
        if any(v is None or _version(t.fake) != v for t, v in self.tensors):
            e = Unsupported("logging a tensor's value that the code then changes in place", kind="logging",
                            hint="the record needs the value of that moment: the log call runs in Python")
            e.producer, e.at_producer = self.producer, True
            raise e
        return super().replay(cg, target, temp)


def _immutable_opaque(v):
    return type(v) in TEXT or isinstance(v, Opaque) and v.scalar


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
        lg = args[0]
        if not isinstance(lg, ObjectValue):
            raise Unsupported(f"{method} of {lg}", kind="logging")
        pargs = [_py(a, "a log level") for a in args[1:]]
        result = getattr(lg.obj, method)(*pargs)
        call = ", ".join(repr(a) for a in pargs)
        tx.guards.add_code(f"{tx.cg.bound(lg.source)}.{method}({call}) == {result!r}", lg.source, "logging",
                           result, f"{tx.cg.bound(lg.source)}.{method}({call})",
                           f"{lg.source.name_hint()}.{method}({call})")
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
            tx.guards.add_code(f"len({tx.cg.bound(self.source)}) == {n}", self.source, "len", (None, n))
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
# typing: `int | None` and `list[int]` are immutable type expressions (a C-level __getattribute__
# that only forwards to their immutable origin and args): constants, guarded by equality

@register_wrapper(types.UnionType, types.GenericAlias)
def _wrap_type_expression(tx, obj, source):
    if source is not None:
        tx.guards.add_value(source, obj)
    return ConstValue(obj, source)


def _class_getitem(owner):
    """list[int] & co written in the traced code: a GenericAlias of constants."""
    def handler(tx, item):
        return ConstValue(types.GenericAlias(owner, _py(item, "a type argument")))
    return handler


# ==========================================================================================
# tables merged into runtime/registry.py

CONSTRUCTORS = {
    **stdlib_iter.CONSTRUCTORS,
    types.MethodType: _make_method,
    weakref.ref: _make_weakref,
}

OVERRIDES = {
    contextlib.ExitStack.enter_context: _exitstack_enter_context,
    copy.copy: _copy_override,
    copy.deepcopy: _deepcopy_override,
    **stdlib_iter.OVERRIDES,
    logging.getLogger: _get_logger,
    **{getattr(weakref.WeakKeyDictionary, n): _mapping_method(n, WeakKeyDictValue) for n in WeakKeyDictValue.METHODS},
    collections.abc.Mapping.__contains__: _mapping_method("__contains__", EnvironValue),
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
BUILTIN_HANDLERS = {warnings.warn: _warn, sys.exc_info: _exc_info, **stdlib_iter.BUILTIN_HANDLERS}
CLASSMETHOD_HANDLERS = {**stdlib_iter.CLASSMETHOD_HANDLERS,
                        **{(t, "__class_getitem__"): _class_getitem(t) for t in (
                            list, dict, tuple, set, frozenset, type, collections.deque,
                            collections.defaultdict, collections.OrderedDict)}}



BUILTINS.update(BUILTIN_HANDLERS)
BUILTIN_CLASSMETHODS.update(CLASSMETHOD_HANDLERS)
