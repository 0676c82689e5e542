"""Static class-attribute lookup and stores through descriptors, with the guards they rely on.

CPython finds an attribute of an instance or class by walking the type's MRO; the trace does the
same walk statically (no user `__getattr__`, property or descriptor runs for real while tracing)
and records what the answer rests on: the owner's member stays the same object, no earlier class
defines the name, the class's MRO stays the same. Stores and deletes through data descriptors
(a property's setter/deleter, a `__set__`/`__delete__` written in Python) are inlined here too.
Values of objects (values/objects.py) build attribute reads on top of this.
"""
import contextlib
import threading
import types

import torch

from ..exc import Unsupported, UserError
from ..sources import AttrSource, ItemSource, ObjectSource
from .base import wrap, is_trusted_module, is_static, CONST_TYPES

_MISSING = object()
_ACTIVE = threading.local()     # the Tracer running on this thread (Tracer.run_root)


@contextlib.contextmanager
def tracing(tx):
    """Mark `tx` as the trace running on this thread, for the few lookups reached without it
    (hashing a dict key: `_InstanceBase.identity_key`, containers.py_key)."""
    outer = getattr(_ACTIVE, "tx", None)
    _ACTIVE.tx = tx
    try:
        yield
    finally:
        _ACTIVE.tx = outer


def active_tracer():
    """The trace running on this thread; refuses when there is none (a guard would be lost)."""
    tx = getattr(_ACTIVE, "tx", None)
    if tx is None:
        raise Unsupported("a class lookup outside a trace cannot be guarded", kind="internal")
    return tx


def static_lookup(cls, name):
    for k in cls.__mro__:
        d = k.__dict__
        if name in d:
            return d[name], k
    return _MISSING, None


def class_attr_source(klass, name):
    """klass.__dict__[name]: the raw member (a staticmethod/classmethod/property object, not
    what the descriptor returns)."""
    return ItemSource(AttrSource(ObjectSource(klass, klass.__name__), "__dict__"), name)


def class_lookup(tx, cls, name, start=0):
    """Static MRO lookup of `name` on cls (from cls.__mro__[start]), with the guards it relies
    on: no class before the owner defines the name (and none at all when it is missing), and
    the owner's member stays the same object. Classes of trusted modules (torch, stdlib) are
    trusted not to change, as Dynamo trusts torch internals -- except torch.nn's, whose classes
    users subclass and patch (`nn.Module.flag = ...`, `nn.Linear.forward = ...`); their dicts
    are cheap to watch by version tag (guards/generation.py)."""
    mro = cls.__mro__[start:]
    for i, k in enumerate(mro):
        if name in k.__dict__:
            _guard_not_defined(tx, mro[:i], name)
            if i or start:
                _guard_mro(tx, cls)
            return k.__dict__[name], k
    _guard_not_defined(tx, mro, name)
    _guard_mro(tx, cls)
    return _MISSING, None


def _guard_mro(tx, cls):
    """The lookup walked past cls's own dict: it relies on cls's MRO, which assigning
    `cls.__bases__` replaces (no class dict changes). Collected per class; convert emits one
    `cls.__mro__ == (...)` guard per class."""
    if not _trusted_class(cls):
        tx.class_mro.setdefault(id(cls), cls)


def _guard_not_defined(tx, classes, name):
    """The trace relies on these classes not defining `name`. Collected per class; convert emits
    one `K.__dict__.keys().isdisjoint(names)` guard per class at the end of the trace."""
    for k in classes:
        if not _trusted_class(k):
            tx.class_absent.setdefault(id(k), (k, set()))[1].add(name)


def _trusted_class(k):
    m = k.__module__ or ""
    return is_trusted_module(m) and not (m == "torch.nn" or m.startswith("torch.nn."))


def _member_source(tx, owner, name, attr):
    """Source for owner.__dict__[name], identity-guarded; None for code of trusted modules."""
    if _trusted_class(owner) and (is_static(attr) or isinstance(
            attr, (staticmethod, classmethod, property))):
        return None
    src = class_attr_source(owner, name)
    if not isinstance(attr, tuple(CONST_TYPES)):
        tx.guards.add_identity(src, attr)
    return src


def _is_data_descriptor(attr):
    t = type(attr)
    return not isinstance(attr, types.FunctionType) and (hasattr(t, "__set__") or hasattr(t, "__delete__"))


def _delete_through_descriptor(tx, obj, name):
    """del obj.name where the class makes `name` a data descriptor: a property's fdel or a
    __delete__ written in Python, inlined. Returns whether it did."""
    attr, owner = class_lookup(tx, obj.cls, name)
    if attr is _MISSING or type(attr).__name__ == "member_descriptor" or not _is_data_descriptor(attr):
        return False
    if isinstance(attr, property):
        if attr.fdel is None:
            raise UserError(AttributeError(f"property {name!r} of {obj.cls.__qualname__!r} object has no deleter"))
        _member_source(tx, owner, name, attr)
        wrap(tx, attr.fdel, None).call(tx, [obj], {})
        return True
    deleter = getattr(type(attr), "__delete__", None)
    if not isinstance(deleter, types.FunctionType):
        raise Unsupported(f"deleting {name!r} through a {type(attr).__name__}", kind="descriptor")
    src = _member_source(tx, owner, name, attr)
    wrap(tx, deleter, None).call(tx, [wrap(tx, attr, src), obj], {})
    return True


def python_setattr(cls):
    """Does `cls` (not a Module) define __setattr__ or __delattr__ in Python, and neither in C
    (other than object's)? Its instances' attribute writes are then traced through them and
    replayed with object.__setattr__ / object.__delattr__: the traced hooks already ran."""
    if issubclass(cls, torch.nn.Module):
        return False
    hooks = [static_lookup(cls, "__setattr__")[0], static_lookup(cls, "__delattr__")[0]]
    return all(h in (object.__setattr__, object.__delattr__) or type(h) is types.FunctionType for h in hooks) \
        and any(type(h) is types.FunctionType for h in hooks)


def _check_slot_store(cls, name):
    """A class with __slots__ and no __dict__ refuses unknown attribute names (at the store, so
    the user's try/except sees it)."""
    if "__dict__" in dir(cls) or static_lookup(cls, "__setattr__")[0] not in (object.__setattr__, _MISSING):
        return
    if type(static_lookup(cls, name)[0]).__name__ != "member_descriptor":
        raise UserError(AttributeError(f"{cls.__name__!r} object has no attribute {name!r}"))


def _set_through_property(tx, obj, name, value):
    """obj.name = value where the class makes `name` a data descriptor: run its setter (a
    property's fset, or a __set__ written in Python, inlined). Returns whether it did; slots
    (member descriptors) are plain instance storage."""
    attr, owner = class_lookup(tx, obj.cls, name)
    if attr is _MISSING or type(attr).__name__ == "member_descriptor":
        return False
    if isinstance(attr, property):
        if attr.fset is None:
            raise UserError(AttributeError(f"property {name!r} of {obj.cls.__qualname__!r} object has no setter"))
        _member_source(tx, owner, name, attr)
        wrap(tx, attr.fset, None).call(tx, [obj, value], {})
        return True
    setter = getattr(type(attr), "__set__", None)
    if setter is None:
        return False
    if not isinstance(setter, types.FunctionType):
        raise Unsupported(f"setting {name!r} through a {type(attr).__name__}", kind="descriptor")
    src = _member_source(tx, owner, name, attr)
    wrap(tx, setter, None).call(tx, [wrap(tx, attr, src), obj, value], {})
    return True
