"""Value: what the symbolic interpreter keeps on its stack and in its locals.

Every Value may carry a Source (where it came from in the caller's world); a
value built during the trace has none. The protocol below is what opcode
handlers use; each Value family overrides the parts that make sense for it, and
anything it does not support raises Unsupported with a precise message.

`wrap(tx, obj, source)` turns a real Python object into a Value, installing the
guards that make the specialization sound. It is a registry keyed by type (walked
along the MRO), not an isinstance ladder; value families register themselves.
This module also holds the trust rule for torch/stdlib modules (is_trusted_module).
"""
import collections
import dataclasses
import inspect
import types

import torch

from ..exc import Unsupported


class CallPolicy:
    """What values/ needs from the call policy (bytegraph/policy/), which sits above it and
    installs these at import: values never import policy. Each entry is a function:

    - classify_function(tx, fn, source) -> Value or None: a torch op, a user-registered or
      otherwise special function (None: inline it);
    - user_registered(fn) -> bool: allow_in_graph / disallow_in_graph / disable name it;
    - lookup_override(fn) -> handler or None: a Python function the policy models itself;
    - construct(tx, class_value, args, kwargs) -> Value: calling a class;
    - call_on_constants(tx, fn, args, kwargs) -> Value: a builtin method on constants;
    - sorted_items(tx, items, key, reverse) -> list: CPython's sort through the protocol;
    - bind_cached_method(tx, self_value, wrapper, source) -> Value: an lru_cache'd method;
    - tensor_read(tx, tensor_value, name, args, kwargs) -> Value: t.item()/.tolist()/.numpy()
      (a graph break that runs it in Python);
    - equal(tx, a, b) -> bool: PyObject_RichCompareBool(a, b, Py_EQ) through the protocol.
    """
    __slots__ = ("classify_function", "user_registered", "lookup_override", "construct",
                 "call_on_constants", "sorted_items", "bind_cached_method", "tensor_read", "equal")


POLICY = CallPolicy()


class Value:
    source = None
    mutable = False

    # -- what it is ----------------------------------------------------------
    def python_type(self):
        raise Unsupported(f"python_type of {self}")

    def is_const(self):
        return False

    def as_python(self):
        """The real Python object, when this value is fully known at trace time."""
        raise Unsupported(f"{self} is not a trace-time constant", kind="not_constant")

    # -- protocol used by handlers ------------------------------------------
    def getattr(self, tx, name):
        raise Unsupported(f"attribute {name!r} of {self}", kind="getattr")

    def setattr(self, tx, name, value):
        raise Unsupported(f"setting attribute {name!r} on {self}", kind="setattr")

    def delattr(self, tx, name):
        raise Unsupported(f"deleting attribute {name!r} of {self}", kind="delattr")

    def call(self, tx, args, kwargs):
        raise Unsupported(f"calling {self}", kind="call")

    def call_method(self, tx, name, args, kwargs):
        return self.getattr(tx, name).call(tx, args, kwargs)

    def unpack(self, tx):
        """The items of an iterable, as a list of Values."""
        raise Unsupported(f"iterating over {self}", kind="iter")

    def truth(self, tx):
        raise Unsupported(f"truth value of {self}", kind="truth")

    # -- graph / output conversion -------------------------------------------
    def fx_arg(self, tx):
        raise Unsupported(f"{self} cannot be an argument of a graph op", kind="graph_arg")

    def fake_arg(self, tx):
        raise Unsupported(f"{self} cannot be an argument of a graph op", kind="graph_arg")

    def reconstruct(self, cg):
        if self.source is not None:
            return self.source.expr(cg)
        raise Unsupported(f"returning or storing {self} out of the compiled region", kind="reconstruct")

    def __repr__(self):
        return f"{type(self).__name__}()"


# --------------------------------------------------------------------------
# constants

# introspection results that are fixed facts of already-guarded objects
INTROSPECTION_TYPES = (inspect.Signature, inspect.Parameter, types.MappingProxyType, dataclasses.Field,
                       type({}.keys()), type({}.values()), type({}.items()),
                       type(collections.OrderedDict().keys()), type(collections.OrderedDict().values()),
                       type(collections.OrderedDict().items()))
# views of mutable mappings: constants only when the trace computed them (signature parameters)
_LIVE_VIEWS = frozenset({types.MappingProxyType, type({}.keys()), type({}.values()), type({}.items()),
                         type(collections.OrderedDict().keys()), type(collections.OrderedDict().values()),
                         type(collections.OrderedDict().items())})
CONST_TYPES = frozenset({int, float, bool, str, type(None), bytes, complex, type(Ellipsis),
                         type(NotImplemented), torch.dtype, torch.device, torch.Size,
                         torch.layout, torch.memory_format, types.CodeType, range, slice,
                         torch.finfo, torch.iinfo, *INTROSPECTION_TYPES})


class ConstValue(Value):
    """An immutable Python constant known at trace time."""

    def __init__(self, value, source=None):
        self.value = value
        self.source = source

    def python_type(self):
        return type(self.value)

    def is_const(self):
        return True

    def as_python(self):
        return self.value

    def getattr(self, tx, name):
        try:
            attr = getattr(self.value, name)
        except AttributeError:
            raise
        return wrap(tx, attr, None)

    def call_method(self, tx, name, args, kwargs):
        return POLICY.call_on_constants(tx, getattr(self.value, name), args, kwargs)

    def unpack(self, tx):
        v = self.value
        if type(v) in (str, bytes, range, torch.Size, tuple):
            return [ConstValue(x) for x in v]
        if isinstance(v, INTROSPECTION_TYPES):
            return [wrap(tx, x, None) for x in v]
        raise Unsupported(f"iterating over {type(v).__name__}", kind="iter")

    def truth(self, tx):
        return bool(self.value)

    def fx_arg(self, tx):
        return self.value

    def fake_arg(self, tx):
        return self.value

    def reconstruct(self, cg):
        v = self.value
        if type(v) in (int, str, bool, type(None)) or (type(v) is float and v == v and abs(v) != float("inf")):
            return repr(v)
        return cg.const(v, type(v).__name__)

    def __repr__(self):
        return f"Const({self.value!r})"


NONE = ConstValue(None)


class RealCallableValue(Value):
    """A real callable (builtin or torch function) held by reference: constant, hashable by
    identity, usable as a graph argument; subclasses define what calling it means."""

    def __init__(self, fn, source=None):
        self.fn = fn
        self.source = source

    def python_type(self):
        return type(self.fn)

    def as_python(self):
        return self.fn

    def is_const(self):
        return True

    def identity_key(self):
        from .containers import _IdentityKey
        return _IdentityKey(self.fn, self)

    def fx_arg(self, tx):
        return self.fn

    fake_arg = fx_arg

    def getattr(self, tx, name):
        return wrap(tx, getattr(self.fn, name), None)

    by_source = False        # guarded by type, not identity: the entry reads it again

    def reconstruct(self, cg):
        if self.by_source:
            return self.source.expr(cg)
        return cg.const(self.fn, getattr(self.fn, "__name__", "fn"))


def const(v):
    return NONE if v is None else ConstValue(v)


# --------------------------------------------------------------------------
# trusted modules

# Modules whose functions, classes and submodules are trusted not to be rebound (as Dynamo
# trusts torch's internals): reading those needs no guard. Their constants and mutable values
# (flags such as torch.backends.cudnn.enabled, registries, hook dicts) are still guarded.
_TRUSTED_ROOTS = frozenset({"torch", "dataclasses", "typing", "inspect", "collections", "functools",
                            "itertools", "operator", "math", "copy", "contextlib", "enum", "abc",
                            "types", "weakref", "warnings", "re", "numbers", "builtins"})


def is_trusted_module(modname):
    return bool(modname) and modname.split(".")[0] in _TRUSTED_ROOTS


def is_static(obj):
    """Code-like objects of a trusted module: functions, classes, modules."""
    return issubclass(type(obj), (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                                  types.MethodDescriptorType, types.WrapperDescriptorType))


# --------------------------------------------------------------------------
# wrapping real objects

_wrappers = {}          # type -> fn(tx, obj, source) -> Value


def register_wrapper(*types_):
    def deco(fn):
        for t in types_:
            _wrappers[t] = fn
        return fn
    return deco


def _lookup_wrapper(typ):
    for t in typ.__mro__:
        fn = _wrappers.get(t)
        if fn is not None:
            return fn
    return None


def wrap(tx, obj, source):
    """Real object -> Value. With a source, installs the guards the Value relies on."""
    if source is not None:
        hit = tx.wrapped.get(id(obj))
        if hit is not None and hit[0] is obj and _aliasable(obj):
            value = hit[1]
            if value.source is not None and value.source != source:
                tx.guards.add_same_object(source, value.source)
            return value
    typ = type(obj)
    if (typ is int or typ is float) and source is not None and tx.dynamic is not None \
            and tx.graph.shape_env is not None and tx.dynamic.scalar_dynamic(source, obj):
        from .symbolic import wrap_int_input
        value = wrap_int_input(tx, obj, source)
        if value is not None:
            return value
    if typ is torch.Size and source is not None and tx.dynamic is not None \
            and tx.graph.shape_env is not None and tx.dynamic.size_dynamic(source):
        from .symbolic import wrap_size_input
        return wrap_size_input(tx, obj, source)
    if typ in CONST_TYPES:
        if source is not None:
            if typ in _LIVE_VIEWS:
                raise Unsupported(f"a {typ.__name__} from the caller (a live view of a mutable "
                                  "mapping)", kind="live_view")
            tx.guards.add_value(source, obj)
        return ConstValue(obj, source)
    fn = _lookup_wrapper(typ)
    if fn is None:
        from .objects import wrap_object
        fn = wrap_object
    value = fn(tx, obj, source)
    if source is not None and _aliasable(obj):
        tx.wrapped[id(obj)] = (obj, value)
    return value


def _aliasable(obj):
    return type(obj) not in CONST_TYPES and not issubclass(type(obj), (types.FunctionType,
                                                                       types.BuiltinFunctionType, type))
