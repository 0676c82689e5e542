"""Module tracking: the process-wide generation counter `GEN` and what bumps it.

`GEN[0]` is bumped by every mutation of a *tracked* nn.Module (one a trace has read):
- `Module.__setattr__` / `Module.__delattr__` (so `m.x = ...`, `del m.x`, `train()`/`eval()`,
  `m.__class__ = ...`, `load_state_dict(assign=True)`): installed once, on the first trace that
  reads a module, as thin wrappers of torch's own functions on `torch.nn.Module` (subclasses that
  override them and call `super()` reach them too);
- writes into its `_parameters`, `_buffers`, `_modules` dicts and its hook dicts
  (`register_parameter`, `register_forward_hook`, a handle's `remove()`, `m._modules[k] = ...`):
  tracking swaps those dicts for `TrackedDict` / `TrackedOrderedDict`, subclasses whose mutating
  methods bump the counter. They pickle and copy as the plain dict/OrderedDict they replace, so
  pickle, deepcopy and state_dict see what they saw before. A hook dict is swapped only while it
  is empty (a RemovableHandle holds a weak reference to its dict; an empty one has nothing to
  remove), else the module's hook guards stay on every call.
- `p.data = t`, `p.requires_grad = b`, `requires_grad_()`, `detach_()` on an nn.Parameter
  (properties/wrappers on torch.nn.Parameter, `_install_parameter_hooks`); the other in-place
  metadata changes bump the tensor's own version counter, which the fast path compares.

A module is tracked only when its class uses these (no `__setattr__`, `__delattr__` or
`__getattribute__` of its own that could bypass them) and none of its dicts is held elsewhere
(a shallow copy's shared dict); an untracked module keeps its guards.
What is deliberately not tracked: writes that bypass Python-level methods (`m.__dict__[k] = v`,
`object.__setattr__(m, ...)`, `dict.__setitem__(m._parameters, ...)`, TensorBase's methods
called unbound); buffers' metadata is checked on every call, by a memory gather of their
TensorImpls' words (guards/memory.py BufferWatch, docs/call_cost.md).
Also here: `module_setattr`, the epilogue's cheap replay of a forward's `self.x = v`.
"""
import sys
import threading
import weakref
from collections import OrderedDict

import torch

GEN = [0]
_lock = threading.Lock()
_gen_lock = threading.Lock()
_installed = []
_NN_DICTS = ("_parameters", "_buffers", "_modules")
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
               "_forward_hooks_always_called")


def _bump():
    # under a lock: a read-modify-write interrupted by a thread switch could otherwise store an
    # older value and make a generation an entry cached current again
    with _gen_lock:
        GEN[0] += 1


def _tracking_methods(base):
    """Mutating methods of `base` that bump the counter after doing what base does."""
    def wrap(name):
        orig = getattr(base, name)

        def method(self, *args, **kwargs):
            try:
                return orig(self, *args, **kwargs)
            finally:
                _bump()
        method.__name__ = name
        method.__qualname__ = f"Tracked{base.__name__}.{name}"
        return method
    names = ["__setitem__", "__delitem__", "pop", "popitem", "clear", "update", "setdefault",
             "__ior__"]
    if base is OrderedDict:
        names.append("move_to_end")
    return {n: wrap(n) for n in names}


class TrackedDict(dict):
    """A module's `_parameters`/`_buffers`/`_modules`: a dict whose writes bump GEN."""
    __slots__ = ()
    locals().update(_tracking_methods(dict))

    def __reduce__(self):
        return (dict, (dict(self),))

    def copy(self):
        return dict(self)


class TrackedOrderedDict(OrderedDict):
    """A module's hook dict: an OrderedDict whose writes bump GEN."""
    locals().update(_tracking_methods(OrderedDict))

    def __reduce__(self):
        return (OrderedDict, (list(self.items()),))

    def copy(self):
        return OrderedDict(self)


_TRACKED_TYPES = (TrackedDict, TrackedOrderedDict)
_orig = {}


def _install():
    """Wrap torch.nn.Module.__setattr__/__delattr__ (once per process)."""
    with _lock:
        if _installed:
            return
        M = torch.nn.Module
        setattr_, delattr_ = M.__setattr__, M.__delattr__
        _orig["setattr"], _orig["delattr"] = setattr_, delattr_

        def __setattr__(self, name, value):
            tracked = type(self.__dict__.get("_parameters")) is TrackedDict
            setattr_(self, name, value)
            if tracked:
                if name in _RETRACK:
                    _retrack(self, name)
                _bump()

        def __delattr__(self, name):
            tracked = type(self.__dict__.get("_parameters")) is TrackedDict
            delattr_(self, name)
            if tracked:
                if name in _RETRACK:
                    _retrack(self, name)
                _bump()
        for f, o in ((__setattr__, setattr_), (__delattr__, delattr_)):
            f.__qualname__, f.__module__, f.__doc__ = o.__qualname__, o.__module__, o.__doc__
            f.__wrapped__ = o
        M.__setattr__ = __setattr__
        _orig["wrapper"] = __setattr__
        M.__delattr__ = __delattr__
        _install_parameter_hooks()
        _installed.append(True)


# values whose assignment to a module attribute torch's __setattr__ hands to object.__setattr__
# (not a Parameter, Module or Buffer; None is excluded: it may unregister a parameter/child)
_PLAIN_VALUES = frozenset((int, float, bool, str, bytes, complex))
_MODULE_DICT = torch.nn.Module.__dict__["__dict__"].__get__     # a module's own instance dict


def module_setattr(m, name, value):
    """`setattr(m, name, value)`, as an entry's epilogue replays a forward's `self.x = v`
    (hf/funnel: six per call). nn.Module.__setattr__ costs 3-5 us for a plain value; when it
    provably ends in `object.__setattr__` storing into the instance dict, this stores there and
    bumps GEN as the wrapped __setattr__ would, else it calls setattr. Provably: `type(m)`'s
    __setattr__ is bytegraph's wrapper of torch's, no class of its MRO but nn.Module and object
    defines __setattr__ or __dict__ (torch's function calls `super().__setattr__` and reads
    `self.__dict__`), `m` is tracked and its `_parameters`/`_modules`/`_buffers` do not hold
    `name` (torch would (un)register it or raise), the value is a plain scalar (neither a
    Parameter, Module nor Buffer), `name` is not one that re-tracks, and the first class of the
    MRO defining `name` does not hold a data descriptor (object.__setattr__ would call it)."""
    cls = type(m)
    if type(value) in _PLAIN_VALUES and type(name) is str and name not in _RETRACK \
            and cls.__setattr__ is _orig.get("wrapper") and isinstance(m, torch.nn.Module):
        d = _MODULE_DICT(m)
        params, mods, bufs = d.get("_parameters"), d.get("_modules"), d.get("_buffers")
        if type(params) is TrackedDict and type(mods) is TrackedDict \
                and type(bufs) is TrackedDict \
                and name not in params and name not in mods and name not in bufs:
            M = torch.nn.Module
            found = False
            for k in cls.__mro__:
                kd = k.__dict__
                if k is not M and k is not object and ("__setattr__" in kd or "__dict__" in kd):
                    break
                if not found and name in kd:
                    found = True
                    t = type(kd[name])
                    if hasattr(t, "__set__") or hasattr(t, "__delete__"):
                        break
            else:
                d[name] = value
                _bump()
                return
    setattr(m, name, value)


def _install_parameter_hooks():
    """Make the metadata changes of a Parameter that leave its version counter alone bump GEN:
    `p.data = t` and `p.requires_grad = b` (properties on torch.nn.Parameter that read and write
    through TensorBase's own descriptors) and `requires_grad_()` / `detach_()` (wrappers of
    TensorBase's methods). Everything else that changes a tensor's metadata in place (`set_`,
    `resize_`, `as_strided_`, `t_`, `squeeze_`, ... also through torch.ops) bumps its version
    counter, and `torch.utils.swap_tensors` changes `_cdata`: the fast path compares both."""
    P, TB = torch.nn.Parameter, torch._C.TensorBase

    def descriptor(name):
        d = TB.__dict__[name]

        def fset(self, value):
            d.__set__(self, value)
            _bump()
        return property(d.__get__, fset, None, d.__doc__)

    def method(name):
        orig = getattr(TB, name)

        def m(self, *args, **kwargs):
            try:
                return orig(self, *args, **kwargs)
            finally:
                _bump()
        m.__name__, m.__qualname__, m.__doc__ = name, f"Parameter.{name}", orig.__doc__
        return m
    for name in ("data", "requires_grad"):
        if name not in P.__dict__:
            setattr(P, name, descriptor(name))
    for name in ("requires_grad_", "detach_"):
        if name not in P.__dict__:
            setattr(P, name, method(name))


# assigning one of these replaces what tracking installed (or the class that allowed it)
_RETRACK = frozenset(_NN_DICTS + _HOOK_DICTS + ("__dict__", "__class__"))
# tracked modules that could not be tracked fully again after such an assignment: an entry's
# cache naming one of them is not refilled (EntryCache.store), so its guards run on every call
LOST = weakref.WeakSet()


def _retrack(mod, name):
    tracked, hooks = track(mod, assigned=name)
    if tracked and hooks:
        LOST.discard(mod)
    else:
        LOST.add(mod)


def class_is_trackable(cls):
    M = torch.nn.Module
    return (cls.__setattr__ is M.__setattr__ and cls.__delattr__ is M.__delattr__
            and cls.__getattribute__ is object.__getattribute__)


# references to a dict read from a module's __dict__ inside track(): that __dict__, the local
# and getrefcount's argument. More means something else holds the dict (a shallow copy of the
# module, `copy.copy(m)`, shares it; a user variable `params = m._parameters`): swapping it for
# a tracked copy would cut that sharing, so the module is left untracked (guards every call).
_OWN_REFS = 3


def track(mod, assigned=None):
    """Make `mod`'s mutations bump GEN. Returns (tracked, hooks_tracked). `assigned`: the dict
    attribute just assigned through the tracked setattr (its caller's references are expected)."""
    _install()
    if not class_is_trackable(type(mod)):
        return False, False
    d = object.__getattribute__(mod, "__dict__")
    swapped = False
    tracked = True
    for name in _NN_DICTS:
        v = d.get(name)
        if type(v) is dict and (name == assigned or sys.getrefcount(v) <= _OWN_REFS):
            d[name] = TrackedDict(v)
            swapped = True
        elif type(v) is not TrackedDict:
            tracked = False
    hooks = True
    for name in _HOOK_DICTS:
        v = d.get(name)
        if v is None or type(v) is TrackedOrderedDict:
            continue
        if type(v) in (OrderedDict, dict) and not v and (name == assigned
                                                         or sys.getrefcount(v) <= _OWN_REFS):
            d[name] = TrackedOrderedDict()
            swapped = True
        else:
            hooks = False
    if swapped:
        _bump()          # guards of older entries may have read the dicts' types
    return tracked, tracked and hooks


def is_tracked(mod):
    d = object.__getattribute__(mod, "__dict__")
    return all(type(d.get(n)) is TrackedDict for n in _NN_DICTS) and class_is_trackable(type(mod))
