"""Objects: classes, user-class instances, nn.Modules, Python modules, super().

Attribute lookup follows Python's order (data descriptors on the type, then the
instance dict, then class attributes, then nn.Module's parameter/buffer/child
dicts), done statically so that no user __getattr__ or property runs for real
while tracing (the guarded MRO walk itself is values/lookup.py). Properties and
methods are inlined.

Instances that exist in the caller's world carry a Source and a type guard
(identity for nn.Modules); reading an attribute wraps it with an AttrSource.
Writes to them are recorded in the side-effect log and replayed after the graph.
Instances created during the trace (NewObjectValue) are plain attribute maps;
the epilogue rebuilds them only if they escape.
"""
import copy
import enum
import functools
import types
import weakref
from collections import OrderedDict

import torch

from ..exc import Unsupported, UserError
from ..sources import AttrSource, ObjectSource, ModuleDictSource, RawAttrSource
from .base import (POLICY, Value, ConstValue, NONE, const, wrap, register_wrapper, is_trusted_module, is_static)
from .containers import TupleValue, ListValue, DictValue, IteratorValue, _IdentityKey
from .functions import BoundMethodValue, UserFnValue

from .lookup import (_MISSING, active_tracer, static_lookup, class_attr_source, class_lookup, _guard_not_defined,  # noqa: F401
                     _member_source, _is_data_descriptor, _delete_through_descriptor, python_setattr,
                     _check_slot_store, _set_through_property)

_module_getattr = torch.nn.Module.__getattr__


def bind_class_attr(tx, self_value, cls, name, start=0):
    """Resolve a non-instance attribute `name` of an instance of `cls` (methods, properties...)."""
    attr, owner = class_lookup(tx, cls, name, start)
    if attr is _MISSING:
        return _MISSING
    src = _member_source(tx, owner, name, attr)
    if isinstance(attr, staticmethod):
        return wrap(tx, attr.__func__, None)
    if isinstance(attr, classmethod):
        cls_v = self_value if isinstance(self_value, ClassValue) else ClassValue(cls)
        return BoundMethodValue(cls_v, wrap(tx, attr.__func__, None))
    if isinstance(attr, property):
        if attr.fget is None:
            raise UserError(AttributeError(f"property {name!r} has no getter"))
        return wrap(tx, attr.fget, None).call(tx, [self_value], {})
    if isinstance(attr, types.FunctionType):
        return BoundMethodValue(self_value, _function_value(tx, attr, src))
    if isinstance(attr, (types.BuiltinFunctionType, types.WrapperDescriptorType,
                         types.MethodDescriptorType)):
        if name == "__new__" and type(attr) is types.BuiltinFunctionType:
            return wrap(tx, attr, None)          # a type's tp_new (object.__new__): not bound
        return BoundMethodValue(self_value, wrap(tx, attr, None))
    if isinstance(attr, functools._lru_cache_wrapper):         # a cached method (runtime/stdlib.py)
        return POLICY.bind_cached_method(tx, self_value, attr, src)
    get = descriptor_get(tx, attr)
    if get is not None and not isinstance(attr, (type, types.ModuleType)):
        return _call_descriptor_get(tx, attr, get, src, self_value, cls, name)
    return wrap(tx, attr, src)


def _call_descriptor_get(tx, attr, get, src, self_value, cls, name):
    """type(attr).__get__(attr, instance, cls), as CPython's lookup calls it: a __get__ written in
    Python is inlined; one of a trusted module (enum's member properties) is run for real on an
    immutable instance; anything else is refused."""
    if isinstance(get, types.FunctionType):
        if isinstance(self_value, ImmutableValue) and is_trusted_module(get.__module__):
            try:
                return wrap(tx, get(attr, self_value.obj, cls), None)
            except Exception as e:
                raise UserError(e)
        return wrap(tx, get, None).call(tx, [wrap(tx, attr, src), self_value, ClassValue(cls)], {})
    raise Unsupported(f"descriptor {type(attr).__name__} for attribute {name!r}", kind="descriptor")


def descriptor_get(tx, attr):
    """`type(attr).__get__` (None when it has none), guarded: a descriptor class gaining or
    replacing __get__ later changes what reading the attribute does (redteam6)."""
    get, owner = class_lookup(tx, type(attr), "__get__")
    if get is _MISSING:
        return None
    _member_source(tx, owner, "__get__", get)
    return get


def _function_value(tx, fn, src):
    """A function found on a class is inlined (its identity is guarded through `src`), unless a
    user registry (allow_in_graph, disallow_in_graph, disable) names it, or the policy models
    it (nn.Module.to: a conversion that changes nothing is the module itself)."""
    if fn is torch.nn.Module.to or POLICY.user_registered(fn):
        return POLICY.classify_function(tx, fn, src)
    return UserFnValue(fn, src)


class ClassValue(Value):
    def __init__(self, cls, source=None):
        self.cls = cls
        self.source = source

    def python_type(self):
        return type(self.cls)

    def as_python(self):
        return self.cls

    def is_const(self):
        return True

    def identity_key(self):
        return _IdentityKey(self.cls, self)

    def fx_arg(self, tx):
        return self.cls

    fake_arg = fx_arg

    def getattr(self, tx, name):
        if name == "apply" and issubclass(self.cls, torch.autograd.Function):
            return AutogradApplyValue(self.cls)
        if name in ("__name__", "__qualname__", "__module__", "__mro__", "__bases__"):
            return wrap(tx, getattr(self.cls, name), None)
        # type.__getattribute__: a data descriptor of the metaclass first, then the class's MRO
        # (descriptors called with instance None), then the metaclass's other attributes
        meta = type(self.cls)
        if meta is not type and class_lookup(tx, meta, "__getattribute__")[0] is not \
                type.__dict__["__getattribute__"]:
            raise Unsupported(f"reading {self.cls.__name__}.{name}: its metaclass "
                              f"{meta.__name__} overrides __getattribute__", kind="metaclass")
        mattr, mowner = (_MISSING, None) if meta is type else class_lookup(tx, meta, name)
        if mattr is not _MISSING and _is_data_descriptor(mattr):
            return self._meta_attr(tx, mattr, mowner, name)
        attr, owner = class_lookup(tx, self.cls, name)
        if attr is _MISSING:
            if mattr is not _MISSING:
                return self._meta_attr(tx, mattr, mowner, name)
            # the metaclass's __getattr__ answers what neither lookup found (guarded when absent)
            hook, howner = (_MISSING, None) if meta is type else class_lookup(tx, meta, "__getattr__")
            if hook is not _MISSING:
                if not isinstance(hook, types.FunctionType):
                    raise Unsupported(f"reading {self.cls.__name__}.{name} through the metaclass "
                                      f"{meta.__name__}'s __getattr__", kind="metaclass")
                fn = _function_value(tx, hook, _member_source(tx, howner, "__getattr__", hook))
                return BoundMethodValue(self, fn).call(tx, [ConstValue(name)], {})
            raise UserError(AttributeError(f"type object {self.cls.__name__!r} has no attribute {name!r}"))
        src = _member_source(tx, owner, name, attr)
        if isinstance(attr, staticmethod):
            return wrap(tx, attr.__func__, None)
        if isinstance(attr, classmethod):
            return BoundMethodValue(self, wrap(tx, attr.__func__, None))
        if isinstance(attr, types.FunctionType):
            return _function_value(tx, attr, src)
        get = descriptor_get(tx, attr)
        if isinstance(attr, property):
            return wrap(tx, attr, src)                     # a property read on its class is itself
        if isinstance(get, types.FunctionType) and not is_trusted_module(get.__module__):
            return wrap(tx, get, None).call(tx, [wrap(tx, attr, src), NONE, self], {})
        if get is not None and not isinstance(attr, (type, types.ModuleType, types.BuiltinFunctionType,
                                                     types.MethodDescriptorType, types.WrapperDescriptorType)):
            return wrap(tx, getattr(self.cls, name), None)    # a C or trusted descriptor on the class
        return wrap(tx, attr, src)

    def _meta_attr(self, tx, attr, owner, name):
        """An attribute found on the metaclass, bound to this class as its instance."""
        src = _member_source(tx, owner, name, attr)
        if isinstance(attr, types.FunctionType):
            return BoundMethodValue(self, _function_value(tx, attr, src))
        if owner.__module__ == "enum" or (hasattr(type(attr), "__get__") and is_trusted_module(
                type(attr).__module__) and not isinstance(attr, property)):
            try:                                          # enum's class properties (__members__)
                return wrap(tx, getattr(self.cls, name), None)
            except AttributeError as e:
                raise UserError(e)
        if isinstance(attr, property):
            if attr.fget is None:
                raise UserError(AttributeError(f"property {name!r} of {type(self.cls).__name__!r} object "
                                               "has no getter"))
            return wrap(tx, attr.fget, None).call(tx, [self], {})
        get = descriptor_get(tx, attr)
        if isinstance(get, types.FunctionType):
            return wrap(tx, get, None).call(tx, [wrap(tx, attr, src), self, ClassValue(type(self.cls))], {})
        if get is not None:
            raise Unsupported(f"metaclass descriptor {type(attr).__name__} for {name!r}", kind="descriptor")
        return wrap(tx, attr, src)

    def truth(self, tx):
        """A class is true unless its metaclass defines __bool__ or __len__ (guarded lookups:
        `if typ:` over the exception class a with-statement's __exit__ gets)."""
        meta = type(self.cls)
        if meta is not type and any(class_lookup(tx, meta, n)[0] is not _MISSING for n in ("__bool__", "__len__")):
            raise Unsupported(f"truth value of {self} (its metaclass {meta.__name__} defines __bool__ "
                              "or __len__)", kind="truth")
        return True

    def unpack(self, tx):
        meta = type(self.cls)
        if isinstance(self.cls, enum.EnumMeta):
            return [wrap(tx, m, None) for m in self.cls]   # members are fixed at class creation
        it = bind_class_attr(tx, self, meta, "__iter__") if meta is not type else _MISSING
        if it is _MISSING:
            raise UserError(TypeError(f"'{meta.__name__}' object is not iterable"))
        return it.call(tx, [], {}).unpack(tx)

    def call(self, tx, args, kwargs):
        return POLICY.construct(tx, self, args, kwargs)

    def reconstruct(self, cg):
        return cg.const(self.cls, self.cls.__name__)

    def __repr__(self):
        return f"Class({self.cls.__name__})"


class AutogradApplyValue(Value):
    """MyFunction.apply for a custom torch.autograd.Function: one graph node whose target is the
    bound `apply`, so running the graph runs the user's forward and autograd uses their
    backward (backends that trace autograd, like inductor's AOT, trace through it)."""

    _targets = weakref.WeakKeyDictionary()    # Function class -> its graph target

    def __init__(self, cls):
        self.cls = cls

    def call(self, tx, args, kwargs):
        from .tensor import graph_call
        return graph_call(tx, "call_function", self.target(self.cls), list(args), kwargs)

    @classmethod
    def target(cls, fn_cls):
        """A plain function forwarding to fn_cls.apply, named in the user's module: fx prints a
        bound `apply` as `torch.autograd.function.apply`, which does not exist."""
        t = cls._targets.get(fn_cls)
        if t is None:
            def t(*args, **kwargs):
                return fn_cls.apply(*args, **kwargs)
            t.__name__ = t.__qualname__ = f"{fn_cls.__name__}_apply"
            # fx writes a function from a torch module as its dotted name (torch.distributions.
            # dirichlet._Dirichlet_apply, which does not exist): name a torch Function's elsewhere
            mod = fn_cls.__module__ or ""
            t.__module__ = __name__ if mod == "torch" or mod.startswith("torch.") else mod
            t.__bytegraph_autograd_function__ = fn_cls     # backends that lower must keep it whole
            cls._targets[fn_cls] = t
        return t



class _InstanceBase(Value):
    """Shared attribute logic for caller-world and trace-created instances."""

    mutable = True

    def python_type(self):
        return self.cls

    def identity_key(self):
        # guarded: a class gaining __hash__ (or __hash__ = None) later changes what the key means
        h = class_lookup(active_tracer(), self.cls, "__hash__")[0]
        if h is None:
            raise UserError(TypeError(f"unhashable type: {self.cls.__name__!r}"))
        if h is not object.__hash__ and not isinstance(self, ModuleValue):
            raise Unsupported(f"{self.cls.__name__} hashes by value (a user __hash__) as a dict key or "
                              "set element", kind="dict_key")
        if isinstance(self, ModuleValue) and not self.identity_guarded:
            self.pin()               # a dict key / set element: specializes on that very module
        return _IdentityKey(self.obj if isinstance(self, ObjectValue) else self, self)

    def getattr(self, tx, name, fallback=True):
        cls = self.cls
        if name == "__class__":
            return ClassValue(cls)
        if name == "__dict__":
            return self.instance_dict(tx)
        attr, _ = static_lookup(cls, name)
        if isinstance(attr, property) or (attr is not _MISSING and _is_data_descriptor(attr)
                                          and hasattr(type(attr), "__get__")
                                          and type(attr).__name__ != "member_descriptor"):
            try:
                return bind_class_attr(tx, self, cls, name)
            except UserError as e:    # a property raising AttributeError falls back to __getattr__
                if not fallback or not isinstance(e.exc, AttributeError) or \
                        class_lookup(tx, cls, "__getattr__")[0] in (_MISSING, _module_getattr):
                    raise
                return self.missing_attr(tx, name)
        v = self.instance_attr(tx, name)
        if v is not _MISSING:
            # the instance attribute wins only while no class makes `name` a data descriptor
            if attr is _MISSING:
                _guard_not_defined(tx, cls.__mro__, name)
            else:
                class_lookup(tx, cls, name)
            return v
        self.note_absent(tx, name)
        v = bind_class_attr(tx, self, cls, name)
        if v is not _MISSING:
            return v
        if not fallback:
            raise UserError(AttributeError(f"{cls.__name__!r} object has no attribute {name!r}"))
        return self.missing_attr(tx, name)

    def note_absent(self, tx, name):
        """The trace relies on `name` not being an instance attribute (caller-world objects)."""

    def missing_attr(self, tx, name):
        getattr_fn = bind_class_attr(tx, self, self.cls, "__getattr__")
        if getattr_fn is not _MISSING:
            return getattr_fn.call(tx, [ConstValue(name)], {})
        raise UserError(AttributeError(f"{self.cls.__name__!r} object has no attribute {name!r}"))

    def call(self, tx, args, kwargs):
        fn = bind_class_attr(tx, self, self.cls, "__call__")
        if fn is _MISSING:
            raise UserError(TypeError(f"{self.cls.__name__!r} object is not callable"))
        return fn.call(tx, args, kwargs)

    def unpack(self, tx):
        it = bind_class_attr(tx, self, self.cls, "__iter__")
        if it is _MISSING:
            if class_lookup(tx, self.cls, "__getitem__")[0] is not _MISSING:
                raise Unsupported(f"iterating a {self.cls.__name__} through __getitem__ (the old "
                                  "sequence protocol)", kind="iterate")
            raise UserError(TypeError(f"{self.cls.__name__!r} object is not iterable"))
        return it.call(tx, [], {}).unpack(tx)



def traced_dict(tx, d):
    """The DictValue the trace made for the real dict `d` (e.g. obj.__dict__ read directly),
    if any: once it exists, it is the truth about d's contents for the rest of the trace."""
    if d is None:
        return None
    hit = tx.wrapped.get(id(d))
    if hit is not None and hit[0] is d and isinstance(hit[1], DictValue):
        return hit[1]
    return None



class NewObjectValue(_InstanceBase):
    """An instance of a user class created during the trace. Instances of dict subclasses
    (transformers' ModelOutput) also carry their dict contents in `dict_items`."""

    def __init__(self, cls):
        self.cls = cls
        self.attrs = {}
        self.dict_items = DictValue({}) if issubclass(cls, dict) else None

    def unpack(self, tx):
        if self.dict_items is not None and class_lookup(tx, self.cls, "__iter__")[1] in (dict, OrderedDict):
            return self.dict_items.unpack(tx)
        return super().unpack(tx)

    def instance_attr(self, tx, name):
        return self.attrs.get(name, _MISSING)

    def instance_dict(self, tx):
        if not self.cls.__dictoffset__:
            raise UserError(AttributeError(f"{self.cls.__name__!r} object has no attribute '__dict__'"))
        if _has_value_slots(self.cls):
            # attrs holds slot values beside the __dict__ entries: no live view of the dict alone
            raise Unsupported(f"__dict__ of a {self.cls.__name__} (a class with __slots__ and a "
                              "__dict__) made by the trace", kind="getattr")
        d = DictValue({})
        d.items = self.attrs          # a live view: writes through it are attribute writes
        return d

    def setattr(self, tx, name, value):
        setter, _ = class_lookup(tx, self.cls, "__setattr__")
        if setter is not object.__setattr__ and setter is not _MISSING:
            return bind_class_attr(tx, self, self.cls, "__setattr__").call(tx, [ConstValue(name), value], {})
        if not _set_through_property(tx, self, name, value):
            _check_slot_store(self.cls, name)
            self.attrs[name] = value

    def delattr(self, tx, name):
        if _delete_through_descriptor(tx, self, name):
            return
        if name not in self.attrs:
            raise UserError(AttributeError(name))
        del self.attrs[name]

    def reconstruct(self, cg):
        # made empty first, then filled: an attribute may refer back to the object (a cycle,
        # like torch.distributions' Transform and its _InverseTransform)
        def attrs():
            return "{" + ", ".join(f"{k!r}: {cg.expr(v)}" for k, v in self.attrs.items()) + "}"

        def build():
            cls = cg.const(self.cls, self.cls.__name__)
            if self.dict_items is not None:
                return f"{cg.const(_rebuild_dict_object, 'rebuild_dict')}({cls}, " \
                       f"{self.dict_items._literal(cg)}, {attrs()})"
            return f"{cg.const(_new_object, 'new_object')}({cls})"
        if self.dict_items is not None:
            return cg.mutable(self, build)
        return cg.mutable(self, build, lambda name: f"{cg.const(_fill_object, 'fill')}({name}, {attrs()})")

    def __repr__(self):
        return f"NewObject({self.cls.__name__})"


def _rebuild_object(cls, attrs):
    obj = object.__new__(cls)
    _fill_object(obj, attrs)
    return obj


def _new_object(cls):
    return object.__new__(cls)


def _fill_object(obj, attrs):
    cls = type(obj)
    d = getattr(obj, "__dict__", None)
    if d is not None and not any(_slot_of(cls, k) for k in attrs):
        d.update(attrs)
    else:
        for k, v in attrs.items():       # __slots__: the slot descriptors store them
            object.__setattr__(obj, k, v)
    return obj


def _has_value_slots(cls):
    """Does some class of cls's MRO declare __slots__ that store values (beyond __dict__ and
    __weakref__)?"""
    for c in cls.__mro__:
        slots = c.__dict__.get("__slots__", ())
        slots = (slots,) if isinstance(slots, str) else slots
        if any(n not in ("__dict__", "__weakref__") for n in slots):
            return True
    return False


def _slot_of(cls, name):
    for c in cls.__mro__:
        slots = c.__dict__.get("__slots__", ())
        if name == slots or not isinstance(slots, str) and name in slots:
            return True
    return False


def _rebuild_dict_object(cls, items, attrs):
    """An instance of a dict subclass with these items and attributes, built without running
    the subclass's __init__/__setitem__ (the trace already ran them)."""
    base = next(b for b in cls.__mro__ if b in (dict, OrderedDict))
    obj = base.__new__(cls)
    for k, v in items.items():
        base.__setitem__(obj, k, v)
    obj.__dict__.update(attrs)
    return obj


class ObjectValue(_InstanceBase):
    """An instance from the caller's world, read through its Source."""

    def __init__(self, obj, source):
        self.obj = obj
        self.cls = type(obj)
        self.source = source
        self.pending = {}        # attribute writes made by the trace, replayed in the epilogue

    def instance_attr(self, tx, name):
        if name in self.pending:
            v = self.pending[name]
            if v is _DELETED:           # deleted by the trace: the lookup goes on to the class
                return _MISSING
            return v
        d = _raw_dict(self.obj)
        traced = traced_dict(tx, d)
        if traced is not None:          # the trace wrote through obj.__dict__: read its state
            return traced.items.get(name, _MISSING)
        if d is not None and name in d:
            return wrap(tx, d[name], self.attr_source(name))
        attr, _ = static_lookup(self.cls, name)
        if type(attr).__name__ == "member_descriptor":   # __slots__
            try:
                return wrap(tx, attr.__get__(self.obj, self.cls), self.attr_source(name))
            except AttributeError:
                return _MISSING
        return _MISSING

    def attr_source(self, name):
        return AttrSource(self.source, name)

    def setattr(self, tx, name, value):
        setter, _ = class_lookup(tx, self.cls, "__setattr__")
        if setter not in (object.__setattr__, torch.nn.Module.__setattr__):
            if not python_setattr(self.cls) or isinstance(self, ModuleValue):
                raise Unsupported(f"custom __setattr__ on {self.cls.__name__}", kind="setattr")
            # a __setattr__ written in Python (transformers' configs): inlined; its own store
            # (object.__setattr__ / super().__setattr__) comes back to store() below
            bind_class_attr(tx, self, self.cls, "__setattr__").call(tx, [ConstValue(name), value], {})
            return
        self.store(tx, name, value)

    def store(self, tx, name, value):
        """object.__setattr__(obj, name, value): a data descriptor's setter, or an instance
        store logged as a side effect (replayed in program order)."""
        if _set_through_property(tx, self, name, value):
            return
        _check_slot_store(self.cls, name)
        self.pending[name] = value
        traced = traced_dict(tx, _raw_dict(self.obj))
        if traced is not None:
            traced.items[name] = value
        tx.side_effects.attr_write(self, name, value)

    def delattr(self, tx, name):
        deleter, _ = class_lookup(tx, self.cls, "__delattr__")
        if deleter not in (object.__delattr__, torch.nn.Module.__delattr__):
            if not python_setattr(self.cls) or isinstance(self, ModuleValue):
                raise Unsupported(f"custom __delattr__ on {self.cls.__name__}", kind="setattr")
            bind_class_attr(tx, self, self.cls, "__delattr__").call(tx, [ConstValue(name)], {})
            return
        self.delete(tx, name)

    def delete(self, tx, name):
        """object.__delattr__(obj, name)."""
        if _delete_through_descriptor(tx, self, name):
            return
        if self.instance_attr(tx, name) is _MISSING:
            raise UserError(AttributeError(name))
        self.pending[name] = _DELETED
        traced = traced_dict(tx, _raw_dict(self.obj))
        if traced is not None:
            traced.items.pop(name, None)
        tx.side_effects.attr_write(self, name, _DELETED)

    def as_python(self):
        return self.obj

    def note_absent(self, tx, name):
        if name not in self.pending and _raw_dict(self.obj) is not None:
            tx.absent_attrs.setdefault(id(self), (self, set()))[1].add(name)

    def instance_dict(self, tx):
        raw = _raw_dict(self.obj)
        if raw is None and not isinstance(self, ModuleValue):
            # a class with __slots__ and no __dict__ (the lookup raises, as obj.__dict__ does)
            raise UserError(AttributeError(f"{self.cls.__name__!r} object has no attribute '__dict__'"))
        if self.pending and (isinstance(self, ModuleValue) or raw is None):
            raise Unsupported("reading __dict__ after writing attributes", kind="getattr")
        synced = traced_dict(tx, raw) is not None      # setattr kept it up to date
        d = wrap(tx, raw, self.attr_source("__dict__"))
        if self.pending and not synced:
            if not isinstance(d, DictValue):
                raise Unsupported("reading __dict__ after writing attributes", kind="getattr")
            for name, value in self.pending.items():    # the writes so far (replayed as attr writes)
                if _slot_of(self.cls, name):
                    continue
                if value is _DELETED:
                    d.items.pop(name, None)
                else:
                    d.items[name] = value
        return d

    def __repr__(self):
        return f"Object({self.cls.__name__} @ {self.source.name_hint()})"


_DELETED = object()


class ModuleValue(ObjectValue):
    """An nn.Module from the caller's world (identity-guarded, except a module argument of a
    function compiled on a caller's behalf: see wrap_module)."""

    identity_guarded = True
    guards = None

    def pin(self):
        """Guard the module's identity after all (a decision rests on which instance it is)."""
        self.identity_guarded = True
        self.guards.add_identity(self.source, self.obj)

    def instance_attr(self, tx, name):
        v = super().instance_attr(tx, name)
        if v is not _MISSING:
            return v
        mod = self.obj
        for dname in ("_parameters", "_buffers", "_modules"):
            d = mod.__dict__.get(dname)
            traced = traced_dict(tx, d)
            if traced is not None:      # the trace wrote into mod._buffers & co: read its state
                if name in traced.items:
                    return traced.items[name]
                continue
            if d is not None and name in d:
                if name not in self.pending:
                    # found through nn.Module.__getattr__: only while the instance dict does not
                    # hold `name` (`m.__dict__[name] = t` shadows it; redteam6)
                    tx.module_dict_absent.setdefault(id(self), (self, set()))[1].add(name)
                return wrap(tx, d[name], ModuleDictSource(self.source, (dname, name)))
        return _MISSING

    def missing_attr(self, tx, name):
        getattr_fn, _ = class_lookup(tx, self.cls, "__getattr__")
        if getattr_fn is not _module_getattr and getattr_fn is not _MISSING:
            return super().missing_attr(tx, name)
        raise UserError(AttributeError(f"{self.cls.__name__!r} object has no attribute {name!r}"))

    def call(self, tx, args, kwargs):
        from .modules import call_module
        return call_module(tx, self, args, kwargs)

    def call_method(self, tx, name, args, kwargs):
        from .modules import MODULE_METHODS
        fn = MODULE_METHODS.get(name)
        if fn is not None and _is_torch_nn_method(tx, self.cls, name):
            return fn(tx, self, *args, **kwargs)
        return self.getattr(tx, name).call(tx, args, kwargs)

    def unpack(self, tx):
        from .modules import module_items
        return module_items(tx, self)

    def truth(self, tx):
        return True


def _is_torch_nn_method(tx, cls, name):
    """Is cls.<name> torch.nn's own (not a user override)? Then MODULE_METHODS may model it.
    Guarded: a subclass overriding it later must miss."""
    owner = class_lookup(tx, cls, name)[1]
    return owner is not None and (owner.__module__ or "").startswith("torch.nn")


class PyModuleValue(Value):
    """A Python module (torch, math, a user module)."""

    def __init__(self, module, source=None):
        self.module = module
        self.source = source

    def reconstruct(self, cg):
        return self.source.expr(cg) if self.source is not None else cg.const(self.module, "module")

    def python_type(self):
        return types.ModuleType

    def as_python(self):
        return self.module

    def is_const(self):
        return True

    def getattr(self, tx, name):
        try:
            attr = getattr(self.module, name)
        except AttributeError as e:
            raise UserError(e)
        if is_trusted_module(self.module.__name__) and is_static(attr):
            return wrap(tx, attr, None)
        src = AttrSource(self.source if self.source is not None else
                         ObjectSource(self.module, self.module.__name__), name)
        return wrap(tx, attr, src)

    def __repr__(self):
        return f"PyModule({self.module.__name__})"


class SuperValue(Value):
    """super() bound to (class, instance)."""

    def __init__(self, cls, obj):
        self.cls = cls
        self.obj = obj

    def getattr(self, tx, name):
        cls = self.obj.cls if isinstance(self.obj, ClassValue) else self.obj.python_type()
        start = cls.__mro__.index(self.cls) + 1
        attr, owner = class_lookup(tx, cls, name, start)
        if attr is _MISSING:
            raise UserError(AttributeError(f"'super' object has no attribute {name!r}"))
        if attr is object.__init__ or attr is torch.nn.Module.__init__:
            return _NoOpInit()
        return bind_class_attr(tx, self.obj, cls, name, start)


class _NoOpInit(Value):
    def call(self, tx, args, kwargs):
        return NONE


def wrap_object(tx, obj, source):
    """Fallback wrapper: instances of user classes."""
    cls = type(obj)
    base = _scalar_base(obj)
    if issubclass(cls, enum.Enum) or base is not None:
        if source is not None and base is None:
            tx.guards.add_identity(source, obj)          # Enum members are singletons
        elif source is not None:
            tx.guards.add_type(source, cls)
            conv = _SCALAR_CORE[base]
            tx.guards.add_code(f"{tx.cg.const(conv, 'core')}({source.expr(tx.cg)}) == "
                               f"{tx.cg.const(conv(obj), 'v')}", source, "value", conv(obj),
                               f"{tx.cg.const(conv, 'core')}({tx.cg.bound(source)})")
        return ImmutableValue(obj, source or ObjectSource(obj, cls.__name__), _plain_dunders(tx, cls))
    if source is None:
        source = ObjectSource(obj, cls.__name__)
    tx.guards.add_type(source, cls)
    hook, owner = class_lookup(tx, cls, "__getattribute__")     # guarded: one added later
    if isinstance(hook, types.FunctionType):
        return DynamicAttrObjectValue(obj, source)
    if hook is not _MISSING and owner.__module__ != "builtins":   # builtins' is the generic lookup
        return SealedObjectValue(obj, source)
    return ObjectValue(obj, source)


class SealedObjectValue(Value):
    """An object whose type has a C-level __getattribute__ (a numpy ufunc): held by reference
    so it can be stored and passed on, but reading an attribute or calling it stops the trace
    there (a graph break runs that instruction in Python)."""

    def __init__(self, obj, source):
        self.obj = obj
        self.source = source

    def python_type(self):
        return type(self.obj)

    def _refuse(self, what, kind):
        raise Unsupported(f"{what} {type(self.obj).__name__} {getattr(self.obj, '__name__', '')} "
                          f"({type(self.obj).__name__} has a C-level __getattribute__)", kind=kind)

    def getattr(self, tx, name):
        self._refuse(f"attribute {name!r} of", "getattr")

    def call(self, tx, args, kwargs):
        if _is_numpy_ufunc(self.obj):
            r = fold_numpy_ufunc(tx, self.obj, args, kwargs)
            if r is not None:
                return r
        self._refuse("call to", "call")


def _is_numpy_ufunc(obj):
    t = type(obj)
    return t.__name__ == "ufunc" and t.__module__ == "numpy"


def numpy_float(v):
    """A numpy float64 scalar Value -> its Python float (None for anything else). torch reads a
    float64 scalar exactly as the float it subclasses wherever it takes a number (operators,
    Scalar and float arguments, a scalar bound to a Tensor parameter); only the functions that
    infer a dtype from their data (torch.tensor, as_tensor, asarray) tell them apart."""
    if isinstance(v, ImmutableValue) and _is_numpy_float64(v.obj):
        return float(v.obj)
    return None


def _is_numpy_float64(obj):
    t = type(obj)
    return t.__name__ == "float64" and t.__module__ == "numpy"


def fold_numpy_ufunc(tx, ufunc, args, kwargs):
    """np.log(c), np.exp(c), ... on trace-time constant numbers: a ufunc is a pure function of
    its scalar inputs, so it is run now and its result is a constant. Only positional Python
    ints/floats/bools and numpy float64 constants, no keyword (out=, where=, dtype=...), a
    float64 result, and no floating-point warning (run with errors raised: a warning or an
    error eager would show makes the call stay in Python). None: not foldable."""
    import numpy as np
    if kwargs:
        return None
    real = []
    for a in args:
        f = numpy_float(a)
        if f is not None:
            real.append(a.obj)
        elif type(a) is ConstValue and type(a.value) in (int, float, bool):
            real.append(a.value)
        else:
            return None
    try:
        with np.errstate(all="raise"):
            r = ufunc(*real)
    except Exception:
        return None
    if not _is_numpy_float64(r):
        return None
    return ImmutableValue(r, ObjectSource(r, "float64"), True)


# Immutable builtins whose instances of subclasses keep an immutable "core" value; the C-level
# dunders of the base read only that core (float by repr, so -0.0 and nan compare exactly).
_SCALAR_CORE = {int: int.__index__, str: str.__str__, float: float.__repr__, bytes: bytes.__bytes__,
                complex: complex.__repr__}
# dunders that C code called on a constant may call back into; "plain" means none is written
# in Python outside the trusted enum module, so the real object may be handed to C code
_CALLBACK_DUNDERS = frozenset({"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__",
                               "__str__", "__repr__", "__format__", "__index__", "__int__", "__float__",
                               "__bool__", "__len__", "__complex__"})


def _scalar_base(obj):
    """The immutable builtin base of an instance of a subclass of one (bool is final)."""
    for base in _SCALAR_CORE:            # by type: isinstance would read obj.__class__, user code
        if issubclass(type(obj), base) and type(obj) is not base:
            return base
    return None


def _plain_dunders(tx, cls):
    """Do the dunders C code may call back into resolve to C or to the enum module? (guarded)"""
    plain = True
    for name in _CALLBACK_DUNDERS:
        attr, owner = class_lookup(tx, cls, name)
        if isinstance(attr, types.FunctionType) and owner.__module__ != "enum":
            if attr is vars(enum.Enum).get(name):        # EnumType copies Enum's into mixin enums
                _member_source(tx, owner, name, attr)     # (guarded to stay that function)
            else:
                plain = False
        elif attr is not _MISSING and not isinstance(attr, types.FunctionType):
            _member_source(tx, owner, name, attr)
    return plain


class ImmutableValue(ObjectValue):
    """An immutable instance from the caller's world or from folding: an Enum member (guarded
    by identity) or an instance of a subclass of int/str/float/bytes/complex (type and core value
    guarded). Its attributes are read like any object's (properties inlined, instance dict
    sourced); the protocol layer may hand the real object to the C-level dunders of its builtin
    base, which read only the immutable core. `plain`: no dunder C code could call back into is
    written in Python (outside enum), so the object is a constant usable as a dict key."""

    def __init__(self, obj, source, plain):
        super().__init__(obj, source)
        self.plain = plain

    def is_const(self):
        return self.plain

    def identity_key(self):
        if self.plain:
            return self.obj
        return super().identity_key()

    def fx_arg(self, tx):
        if _is_numpy_float64(self.obj) and self.plain:
            return float(self.obj)           # see numpy_float; data-inferring calls refuse it
        if type(self.obj).__module__.partition(".")[0] == "numpy":
            # a numpy scalar (np.float64 subclasses float): torch infers float64 from it where a
            # float gives the default dtype (torch.tensor), and the graph's code cannot spell it
            raise Unsupported(f"a numpy scalar ({type(self.obj).__name__}) as a graph op argument",
                              kind="graph_arg")
        if self.plain:
            return self.obj
        return super().fx_arg(tx)

    fake_arg = fx_arg


class DynamicAttrObjectValue(ObjectValue):
    """An object whose class defines __getattribute__ in Python (e.g. transformers'
    PretrainedConfig, which maps attribute aliases). Every attribute read calls it, inlined, as
    CPython does (an AttributeError then falls back to __getattr__); `object.__getattribute__`
    inside it is the generic lookup. Guards read attributes with object.__getattribute__, so
    they run none of the user's code."""

    def getattr(self, tx, name):
        if name in self.pending:
            return ObjectValue.instance_attr(self, tx, name)
        hook = bind_class_attr(tx, self, self.cls, "__getattribute__")
        try:
            return hook.call(tx, [ConstValue(name)], {})
        except UserError as e:
            if not isinstance(e.exc, AttributeError) or class_lookup(tx, self.cls, "__getattr__")[0] is _MISSING:
                raise
            return self.missing_attr(tx, name)

    def attr_source(self, name):
        return RawAttrSource(self.source, name)


def generic_getattr(tx, v, name):
    """object.__getattribute__(v, name): the lookup without a __getattribute__ hook and without
    the __getattr__ fallback."""
    if isinstance(v, _InstanceBase):
        return _InstanceBase.getattr(v, tx, name, fallback=False)
    return v.getattr(tx, name)


def _raw_dict(obj):
    try:
        return object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return None


@register_wrapper(torch.nn.Module)
def wrap_module(tx, mod, source):
    if source is None:
        source = ObjectSource(mod, type(mod).__name__)
    tx.guards.note_module(source, mod)       # tracks its mutations (guards/generation.py)
    structural = getattr(tx, "structural", False) and _from_argument(source)
    if structural:
        # a function compiled on a caller's behalf (runtime/resume.py: STRUCTURAL), and a module
        # it was passed (or one reached from it): every read is guarded on its source, so the
        # entry serves any instance of the same structure; no generation fast path
        tx.guards.structural = True
    else:
        tx.guards.add_identity(source, mod)
    tx.guards.add_type(source, type(mod))    # `m.__class__ = ...` keeps the identity
    value = ModuleValue(mod, source)
    if structural:
        value.identity_guarded, value.guards = False, tx.guards
    return value


def _from_argument(source):
    """Is `source` an argument of the compiled function, or reached from one?"""
    from ..sources import LocalSource, _Chained
    while isinstance(source, _Chained):
        source = source.base
    return type(source) is LocalSource


@register_wrapper(type)
def wrap_class(tx, cls, source):
    if source is not None:
        tx.guards.add_identity(source, cls)
    return ClassValue(cls, source)


@register_wrapper(types.ModuleType)
def wrap_pymodule(tx, module, source):
    if source is not None:
        tx.guards.add_identity(source, module)
    return PyModuleValue(module, source)



class ExceptionInstanceValue(Value):
    """An exception the traced code raised and is now handling (a real exception object)."""

    def __init__(self, exc):
        self.exc = exc

    def python_type(self):
        return type(self.exc)

    def as_python(self):
        return self.exc

    def getattr(self, tx, name):
        try:
            v = getattr(self.exc, name)
        except AttributeError as e:
            raise UserError(e)
        if self.source is not None:         # a real one: read through it (a bound method too)
            return wrap(tx, v, AttrSource(self.source, name))
        # one the trace made (re-created per call): a value of the trace-time object would be
        # baked into the entry (a bound `add_note` adding to the first call's exception)
        if v is not None and type(v) not in (str, int, float, bool, tuple, type) and not isinstance(v, BaseException):
            raise Unsupported(f"attribute {name!r} of an exception the trace made", kind="getattr")
        return wrap(tx, v, None)

    def reconstruct(self, cg):
        if self.source is not None:
            return self.source.expr(cg)
        # an exception the traced code raised: a fresh one per call, as eager raises anew
        return cg.mutable(self, lambda: f"{cg.const(_fresh_exception, 'fresh_exc')}({cg.const(self.exc, 'exc')})")

    def __repr__(self):
        return f"Exception({self.exc!r})"


def _fresh_exception(exc):
    """A copy of an exception the trace made (same type, args, attributes, cause, context)."""
    e = copy.copy(exc)
    e.__cause__, e.__context__ = exc.__cause__, exc.__context__
    e.__suppress_context__ = exc.__suppress_context__
    e.__traceback__ = None
    return e


@register_wrapper(BaseException)
def wrap_exception(tx, exc, source):
    """A real exception from the caller (the one a resume function's handler is handling)."""
    if source is not None:
        tx.guards.add_type(source, type(exc))
    v = ExceptionInstanceValue(exc)
    v.source = source
    return v
