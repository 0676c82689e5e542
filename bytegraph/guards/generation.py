"""The module generation counter: one comparison instead of hundreds of structure guards.

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
called unbound); buffers' metadata is checked on every call (docs/call_cost.md).

`split(guards)` sorts a trace's guards into those the counter covers (skipped while it is
unchanged) and those checked on every call; codegen/entry.py builds the two-path entry.
"""
import re
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
        M.__delattr__ = __delattr__
        _install_parameter_hooks()
        _installed.append(True)


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


# ----------------------------------------------------------------------------- classifying guards

_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset, range,
              torch.dtype, torch.device, torch.Size)


class ModuleInfo:
    __slots__ = ("mod", "tracked", "hooks_tracked")

    def __init__(self, mod, tracked, hooks_tracked):
        self.mod = mod
        self.tracked = tracked
        self.hooks_tracked = hooks_tracked


def _has_data_descriptor(cls, name):
    for k in cls.__mro__:
        if name in k.__dict__:
            t = type(k.__dict__[name])
            return hasattr(t, "__set__") or hasattr(t, "__delete__")
    return False


class Classifier:
    """Which guards the generation counter covers. A source is *stable* when, while GEN is
    unchanged and the guards checked on every call pass, it names the same object as when the
    entry last passed its full guards: a child, parameter, buffer or instance attribute of a
    tracked module whose own identity is guarded (every module a trace reads is), or an item of a
    tracked dict reached that way."""

    def __init__(self, modules, written=()):
        self.modules = modules          # Source -> ModuleInfo
        self.written = set(written)     # (module Source, attribute) the entry's epilogue writes
        self.written_modules = {src for src, _ in self.written}
        self._memo = {}

    def obj(self, src):
        """(True, object at src) for a stable source, else (False, None)."""
        r = self._memo.get(src)
        if r is None:
            r = self._memo[src] = self._resolve(src)
        return r

    def _resolve(self, src):
        from ..sources import AttrSource, ItemSource, ModuleDictSource
        t = type(src)
        if t is ModuleDictSource:
            info = self.modules.get(src.base)
            dname, key = src.key
            if info is not None and info.tracked and dname in _NN_DICTS:
                d = info.mod.__dict__[dname]
                if key in d:
                    return True, d[key]
            return False, None
        if t is AttrSource:
            info = self.modules.get(src.base)
            if info is not None and info.tracked and (src.base, src.key) not in self.written:
                d = info.mod.__dict__
                if src.key in d and src.key != "__dict__" \
                        and not _has_data_descriptor(type(info.mod), src.key):
                    return True, d[src.key]
            return False, None
        if t is ItemSource:
            ok, base = self.obj(src.base)
            if ok and type(base) in _TRACKED_TYPES and src.key in base:
                return True, base[src.key]
            if ok and type(base) is tuple and type(src.key) is int and -len(base) <= src.key < len(base):
                return True, base[src.key]          # an item of an immutable tuple
        return False, None

    def covered(self, source, kind):
        """Is a guard of this kind on this source true as long as GEN is unchanged?"""
        if source is None:
            return False
        if kind in ("no_hooks", "absent_attrs"):
            info = self.modules.get(source)
            if info is None:
                return False
            if kind == "no_hooks":
                return info.hooks_tracked
            return info.tracked and source not in self.written_modules
        ok, obj = self.obj(source)
        if not ok:
            return False
        if kind in ("id", "value"):
            return True
        if kind == "type":
            if isinstance(obj, torch.nn.Module):
                return is_tracked(obj)
            return type(obj) in _IMMUTABLE
        if kind in ("len", "dict_keys", "empty"):
            return type(obj) in _TRACKED_TYPES or type(obj) is tuple
        return False

    def is_state_tensor(self, source):
        """A parameter or buffer of a tracked module (its metadata is checked from the cache)."""
        ok, obj = self.obj(source)
        return ok and isinstance(obj, torch.Tensor)


_BIND = re.compile(r"\((__s\d+) :=")
_NAME = re.compile(r"\b__s\d+\b")


class Split:
    """The guards of one entry, split for the two-path entry (codegen/entry.py):
    `full` (every guard, as before), `fast` (the guards GEN does not cover, in order, with
    parameter/buffer metadata checks on cached locals) and `cached` (the locals the fast path
    reads from the cache instead of walking the module tree)."""

    def __init__(self, full, fast, cached, modules):
        self.full = full
        self.fast = fast
        self.cached = cached
        self.modules = modules


def split(guards, body_text):
    """Split a GuardSet; `body_text` is the code after the guards (names it reads are cached)."""
    writes = guards.attr_writes
    cls = Classifier(guards.module_infos, writes)
    cg = guards.cg
    keep, skipped, meta, full, versioned = [], [], [], [], []
    for i, g in enumerate(guards.guards):
        source = guards.origins[i] if i < len(guards.origins) else None
        tm = guards.tensor_meta.get(i)
        full.append(g.code)
        if tm is not None and source is not None and cls.is_state_tensor(source):
            skipped.append(g.code)
            (versioned if tm[2] else meta).append(tm[:2])
        elif cls.covered(source, g.kind):
            skipped.append(g.code)
        else:
            keep.append(g.code)
    # parameters/buffers, on the locals read from the cache (after the other guards, which are
    # cheaper and fail first on new inputs); a chain of checks per tensor is as fast as any
    # batched form in Python (each tensor getter dominates)
    keep.extend(code for code, _ in meta)
    if versioned:
        # parameters: their version counters and TensorImpls unchanged since the last full check
        # of their metadata (with GEN unchanged, nothing else can change it: see
        # _install_parameter_hooks); else the full check, which refreshes the versions
        vs = ", ".join(f"{e}._version, {e}._cdata" for _, e in versioned)
        cell = [None]
        cell_name = cg.const(cell, "param_versions")
        store = cg.const(_storer(cell), "store_versions")
        checks = " and ".join(f"({c})" for c, _ in versioned)
        keep.append(f"(__pv := ({vs},)) == {cell_name}[0] or ({checks} and {store}(__pv))")
    full = " and ".join(f"({c})" for c in full) or "True"
    if not skipped:
        return Split(full, None, (), ())
    bound_in_skipped = set()
    for code in skipped:
        bound_in_skipped.update(_BIND.findall(code))
    bound_in_kept = set()
    used = set()
    for code in keep:
        bound_in_kept.update(_BIND.findall(code))
        used.update(_NAME.findall(code))
    used.update(_NAME.findall(body_text))
    cached = sorted((bound_in_skipped & used) - bound_in_kept, key=lambda n: int(n[3:]))
    fast = " and ".join(f"({c})" for c in keep) or "True"
    mods = [(info.mod, info.hooks_tracked) for info in guards.module_infos.values() if info.tracked]
    sp = Split(full, fast, tuple(cached), mods)
    sp.stats = (len(guards.guards), len(keep), len(cached))
    # the entry's own writes to tracked modules bump GEN once each (a write that also changes a
    # parameter/buffer/child dict bumps more); when nothing else moved it, the entry advances
    # its cached generation past them, so a forward that sets module attributes on every call
    # keeps its fast path (guards on what it writes are not covered, see Classifier)
    own = [src for src, name in writes if src in guards.module_infos]
    sp.own_bumps = 0
    if len(own) == len(writes) and all(guards.module_infos[s].tracked for s in own) \
            and not any(name in _RETRACK for _, name in writes):
        sp.own_bumps = len(own)
    return sp


NO_STATE = (-1, ())      # an EntryCache that holds nothing (no generation is negative)


def _storer(cell):
    def store(value):
        cell[0] = value
        return True
    return store


class EntryCache:
    """Per entry: (generation, cached locals) from the last call that passed the full guards.
    A module whose tracked dicts were replaced through setattr is tracked again right away
    (_retrack); if that is impossible it is in LOST and `store` refuses, so a cached generation
    always covers the entry's modules."""
    __slots__ = ("state", "refs", "stats")

    def __init__(self, modules, stats=None):
        self.state = NO_STATE
        self.refs = []
        self.stats = stats          # (guards, guards on the fast path, cached locals)
        for m, hooks in modules:
            try:
                self.refs.append((weakref.ref(m), hooks))
            except TypeError:
                pass

    def advance(self, gen, bumps):
        """After the entry's own epilogue: if GEN moved by exactly its own `bumps` writes since
        the cache was checked at `gen`, the cache holds for the new generation too."""
        state = self.state
        if state[0] == gen and GEN[0] == gen + bumps:
            self.state = (gen + bumps, state[1])

    def store(self, gen, values):
        if LOST:                    # rare: some module's tracking was undone (see _retrack)
            for r, hooks in self.refs:
                m = r()
                if m is None or m in LOST:
                    return
        if GEN[0] == gen:
            self.state = (gen, values)
