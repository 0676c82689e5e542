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

Dict version tags (`DictWatch`): of the guards checked on every call, those that read only the
contents of a module's globals dict or of a class's own `__dict__` (identity and value of an
item, `isdisjoint` of its keys, the keys of a plain dict found there) are skipped while each
such dict's CPython version tag (`ma_version_tag`, which every mutation of a dict advances) is
the one read before the last check that passed them. The tag is read through ctypes at an
offset verified by a probe at import; when the probe fails, nothing is covered this way.
"""
import ctypes
import gc
import re
import sys
import threading
import types
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


# ----------------------------------------------------------------------------- classifying guards

_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset, range,
              torch.dtype, torch.device, torch.Size)
_SCALARS = (int, float, complex, str, bytes, bool, type(None), range, torch.dtype, torch.device)


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


# ----------------------------------------------------------------------------- dict version tags

def _probe_version_offset():
    """Byte offset of a dict's `ma_version_tag` (CPython 3.11: after the object header and
    `ma_used`), or None when this interpreter does not have it where expected. The probe checks
    that `ma_used` tracks len() and that the tag grows on every kind of mutation (insert, replace,
    delete, clear, pop, popitem, update, setdefault; a class's dict through setattr/delattr)
    and stays put on reads."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11):
        return None
    word = ctypes.sizeof(ctypes.c_ssize_t)
    if word != 8:
        return None
    used_at, tag_at = 2 * word, 3 * word

    def tag(d):
        return ctypes.c_uint64.from_address(id(d) + tag_at).value

    try:
        d = {}
        last = tag(d)
        ops = (lambda d: d.__setitem__("a", 1), lambda d: d.__setitem__("a", 2),
               lambda d: d.__setitem__("b", 3), lambda d: d.__delitem__("a"),
               lambda d: d.update(c=4), lambda d: d.setdefault("e", 5), lambda d: d.pop("c"),
               lambda d: d.popitem(), lambda d: d.clear(), lambda d: d.update({"f": 6}))
        for op in ops:
            op(d)
            now = tag(d)
            if now <= last or ctypes.c_ssize_t.from_address(id(d) + used_at).value != len(d):
                return None
            last = now
        d.get("f"), "f" in d, list(d), d.copy()
        if tag(d) != last:
            return None

        class K:
            pass
        kd = _class_dict(K)
        if kd is None:
            return None
        last = tag(kd)
        K.x = 1
        k1 = tag(kd)
        del K.x
        if not (last < k1 < tag(kd)):
            return None
    except Exception:       # noqa: BLE001 -- any surprise: no dict coverage
        return None
    return tag_at


def _class_dict(cls):
    """The dict behind `cls.__dict__` (the mappingproxy's only referent)."""
    refs = gc.get_referents(type.__dict__["__dict__"].__get__(cls))
    if len(refs) == 1 and type(refs[0]) is dict:
        return refs[0]
    return None


_TAG_AT = _probe_version_offset()


def version_cell(d):
    """A ctypes view of dict `d`'s version tag (read `.value`); the caller keeps `d` alive."""
    return ctypes.c_uint64.from_address(id(d) + _TAG_AT)


def _memory_view():
    """A numpy uint64 array over the process's address space (nothing is read until indexed),
    so the version tags of many dicts are gathered by one fancy index, in C, instead of one
    Python operation per dict. None where dict tags are not readable."""
    if _TAG_AT is None or _TAG_AT % 8:
        return None
    try:
        import numpy as np
        return np, np.frombuffer((ctypes.c_uint64 * (1 << 44)).from_address(8), dtype=np.uint64)
    except Exception:       # noqa: BLE001 -- no numpy, or no such view: modules keep no tag check
        return None


_MEM = _memory_view()


def module_dicts(mod):
    """The dicts a module's attributes live in: its instance dict and its _parameters,
    _buffers and _modules. A write into any of them that bypasses
    nn.Module.__setattr__ and the tracked dicts' methods (`m.__dict__[k] = v`,
    `object.__setattr__(m, k, v)`, `dict.__setitem__(m._parameters, k, v)`) still changes its
    version tag."""
    d = object.__getattribute__(mod, "__dict__")
    return [d] + [v for k, v in d.items() if k in _MODULE_DICTS and isinstance(v, dict)]


# nn.Module's own dicts whose contents a forward call reads. Hook dicts are left out: replacing
# one goes through the instance dict (seen), and a write into one that bypasses the tracked
# dict's methods (OrderedDict.__setitem__ called unbound) is the one write not seen; each dict
# costs a likely cache miss per call (hf/cvt: 469 modules, 11 dicts each, +35 us)
_MODULE_DICTS = frozenset(("_parameters", "_buffers", "_modules"))


class ModuleTags:
    """The version tags of the dicts of an entry's tracked modules, read in one gather: the fast
    path compares them with those read when the full guards last passed. Holds the dicts (so
    their memory stays theirs); the modules themselves are held by the entry's cached locals."""
    __slots__ = ("idx", "tags", "dicts")

    def __init__(self, dicts):
        np, mem = _MEM
        self.dicts = dicts
        self.idx = np.array([(id(d) + _TAG_AT - 8) >> 3 for d in dicts], dtype=np.intp)
        self.tags = mem[self.idx].tobytes()

    def same(self):
        return _MEM[1][self.idx].tobytes() == self.tags

    def resnap(self):
        self.tags = _MEM[1][self.idx].tobytes()


# ----------------------------------------------------------------------------- object fields

def _probe_field_offsets():
    """Byte offsets of the fields `f.__code__`, `f.__defaults__`, `f.__kwdefaults__` read on a
    function and `c.cell_contents` on a cell (CPython 3.11: fixed pointer fields of
    PyFunctionObject and PyCellObject), or None when this interpreter does not keep them where
    expected. The probe reads each field through memory and compares it with the attribute,
    before and after each attribute is set (from Python, as a user would)."""
    if _TAG_AT is None or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    offsets = {"__code__": 48, "__defaults__": 56, "__kwdefaults__": 64, "cell_contents": 16}

    def read(obj, field):
        return ctypes.c_void_p.from_address(id(obj) + offsets[field]).value or 0

    def agrees(obj, field):
        v = getattr(obj, field)
        return read(obj, field) == (0 if v is None and field != "cell_contents" else id(v))

    try:
        def make():
            cell_value = (1, 2)

            def f(a, b=(3,), *, c=(4,)):
                return a, b, c, cell_value
            return f

        def other(a, b=None, *, c=None):
            return a
        f = make()
        cell = f.__closure__[0]
        fields = ("__code__", "__defaults__", "__kwdefaults__")
        if type(cell) is not types.CellType or not all(agrees(f, k) for k in fields) \
                or not agrees(cell, "cell_contents"):
            return None
        f.__code__ = other.__code__.replace(co_freevars=f.__code__.co_freevars)
        f.__defaults__ = ((5,),)
        f.__kwdefaults__ = {"c": (6,)}
        cell.cell_contents = (7, 8)
        if not (all(agrees(f, k) for k in fields) and agrees(cell, "cell_contents")):
            return None
    except Exception:       # noqa: BLE001 -- any surprise: no field coverage
        return None
    return offsets


_FIELD_AT = _probe_field_offsets()
_FIELD_GUARD = re.compile(r"\((__s\d+) := (\w+)\.(__code__|__defaults__|__kwdefaults__|cell_contents)"
                          r"\) is (\w+)")
_CELL = types.CellType
_FUNC = types.FunctionType


class FieldWatch:
    """Identity guards on a field of a function or a cell whose owner is fixed while the entry's
    cache holds (`(__s5 := f.__code__) is _code_3`, `.__defaults__`, `.__kwdefaults__`,
    `(__s9 := _cell_x_4.cell_contents) is _forward_7`): setting `__code__`, `__defaults__`,
    `__kwdefaults__` or a cell's contents is no dict write, so the dict version tags do not see
    it, but it writes one pointer field of the owner. The fields of all of them are gathered in
    one numpy fancy index and compared with the addresses of the expected objects (held by the
    entry's namespace, so no other object can have their address). An owner known when the entry
    is built (a namespace constant, or the object an earlier such guard checks) is `fixed`; an
    owner read from the entry's cache is `dynamic`: its address is taken when the cache stores
    it (EntryCache.store), with its type checked there (a field is at its offset only in a
    function/cell)."""
    __slots__ = ("fixed", "dynamic", "expected", "_const_idx")

    def __init__(self, fixed, dynamic, expected):
        np, _ = _MEM
        self.fixed = fixed            # [(owner object, field)]
        self.dynamic = dynamic        # [field] for the owners the cache passes to index()
        self.expected = np.array([id(e) for e in expected], dtype=np.uint64).tobytes()
        self._const_idx = None
        if not dynamic:
            self._const_idx = self.index(())

    def index(self, owners):
        """The gather index for the fixed owners and `owners` (the dynamic ones, in order), or
        None when an owner is not of the type whose layout the offset is for."""
        np, _ = _MEM
        addrs = []
        for owner, field in list(self.fixed) + list(zip(owners, self.dynamic)):
            if type(owner) is not (_CELL if field == "cell_contents" else _FUNC):
                return None
            addrs.append((id(owner) + _FIELD_AT[field] - 8) >> 3)
        return np.array(addrs, dtype=np.intp)

    def same(self, idx):
        """Every watched field still holds its expected object (`idx`: from the cache, or None)."""
        if idx is None:
            idx = self._const_idx
            if idx is None:
                return False
        return _MEM[1][idx].tobytes() == self.expected


# ----------------------------------------------------------------------------- parameter versions

def _readable_ranges():
    """The process's readable memory mappings [(start, end)], from /proc/self/maps (None where
    there is no such file): the probe below dereferences a candidate pointer only inside one."""
    try:
        out = []
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if parts[1][0] == "r":
                    out.append((lo, hi))
        return out
    except Exception:       # noqa: BLE001 -- no /proc: no parameter gather
        return None


def _probe_tensor_offsets():
    """(cdata, counter, version) byte offsets, or None: where a tensor object holds its
    TensorImpl's address (what `t._cdata` returns), where a TensorImpl holds the address of its
    version counter, and where that counter holds the count (`t._version`, a uint32). Found by
    searching, then verified: on tensors of several versions and on a Parameter, the read agrees
    with `_cdata`/`_version` before and after in-place ops (`add_`, `t_`, `set_`) and a
    Parameter's `.data =`; a view reads its base's counter (they share one). A candidate pointer
    is dereferenced only inside a readable mapping of /proc/self/maps."""
    if _MEM is None or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    ranges = _readable_ranges()
    if not ranges:
        return None

    def readable(addr, n):
        return any(lo <= addr and addr + n <= hi for lo, hi in ranges)

    def u64(addr):
        return ctypes.c_uint64.from_address(addr).value

    def u32(addr):
        return ctypes.c_uint32.from_address(addr).value

    try:
        with torch.inference_mode(False), torch.no_grad():
            ts = [torch.zeros(2, 3), torch.nn.Parameter(torch.zeros(3, 2)), torch.zeros(5)]
            for i, t in enumerate(ts):
                for _ in range(3 + 4 * i):
                    t.add_(1)
            size = torch._C.TensorBase.__basicsize__
            cands = None
            for t in ts:
                found = {k for k in range(8, size, 8) if u64(id(t) + k) == t._cdata}
                cands = found if cands is None else cands & found
            if not cands or len(cands) != 1:
                return None
            cdata = cands.pop()

            def pairs(t):
                impl = t._cdata
                out = set()
                # a TensorImpl is larger than 160 bytes; its version counter is among the first
                # fields (after the vtable, refcounts, storage and autograd meta)
                for k in range(8, 160, 8):
                    if not readable(impl + k, 8):
                        continue
                    w = u64(impl + k)
                    if w % 8 or w < 4096 or not readable(w, 32):
                        continue
                    for j in range(8, 32, 4):
                        if u32(w + j) == t._version:
                            out.add((k, j))
                return out
            found = None
            for t in ts:
                p = pairs(t)
                found = p if found is None else found & p
            if not found or len(found) != 1:
                return None
            counter, version = found.pop()

            def agrees(t):
                impl = u64(id(t) + cdata)
                return impl == t._cdata and u32(u64(impl + counter) + version) == t._version
            a, p, c = ts
            v = a.view(6)
            checks = [lambda: a.add_(1), lambda: a.t_(), lambda: a.set_(torch.zeros(4, 4)),
                      lambda: c.resize_(7), lambda: v.mul_(2)]
            for op in checks:
                before = a._version, c._version
                op()
                if not all(agrees(t) for t in (a, c, v)) or (a._version, c._version) == before:
                    return None
            if u64(a._cdata + counter) != u64(v._cdata + counter):
                return None
            p.data = torch.ones(4)
            p.add_(1)
            if not agrees(p):
                return None
    except Exception:       # noqa: BLE001 -- any surprise: no parameter gather
        return None
    return cdata, counter, version


_TENSOR_AT = _probe_tensor_offsets()
_MEM32 = _MEM[1].view("uint32") if _TENSOR_AT is not None else None


class ParamWatch:
    """`(p._version, p._cdata, type(p))` of an entry's parameters, gathered from memory: reading the
    getters costs about 130 ns per parameter in Python (hf/cvt: 342 parameters, 45 us a call).
    Three gathers, each read only when the previous one agreed, so no read leaves memory that
    the entry's own objects keep alive: each parameter object's TensorImpl address (the object
    is held by the entry's cache), each TensorImpl's version counter address (the impl is held by
    its parameter), each counter's count (held by its impl). All agreeing with a snapshot means
    the same `(_version, _cdata)` as that snapshot, which was taken only when it equalled a
    versions tuple that passed the metadata checks (`snap`)."""
    __slots__ = ("values", "idx", "impls", "cidx", "counters", "vidx", "versions")

    def __init__(self, values, objs, pv):
        np, mem = _MEM
        cdata, counter, version = _TENSOR_AT
        self.values = None
        # each object's TensorImpl address, then each object's type (ob_type, the word after
        # the refcount): a `p.__class__ = C` leaves the version and the impl alone
        self.idx = np.array([(id(o) + cdata - 8) >> 3 for o in objs] + [id(o) >> 3 for o in objs],
                            dtype=np.intp)
        gathered = mem[self.idx]
        if gathered.tolist() != list(pv[1::3]) + [id(t) for t in pv[2::3]]:
            return
        self.impls = gathered.tobytes()
        impls = gathered[:len(objs)]
        self.cidx = ((impls + np.uint64(counter - 8)) >> np.uint64(3)).astype(np.intp)
        counters = mem[self.cidx]
        self.counters = counters.tobytes()
        self.vidx = ((counters + np.uint64(version - 8)) >> np.uint64(2)).astype(np.intp)
        versions = _MEM32[self.vidx]
        if versions.tolist() != list(pv[0::3]):
            return
        self.versions = versions.tobytes()
        self.values = values


def params_same(cache, values):
    """The parameters among the cached `values` have the `(_version, _cdata)` of the last
    snapshot (see ParamWatch)."""
    w = cache.pwatch
    if w is None or w.values is not values:
        return False
    mem = _MEM[1]
    return mem[w.idx].tobytes() == w.impls and mem[w.cidx].tobytes() == w.counters \
        and _MEM32[w.vidx].tobytes() == w.versions


def params_snap(cache, values, objs, pv):
    """`pv`, the parameters' versions tuple, passed the checks: remember it as a gather snapshot
    if the cache still holds `values` and memory still reads `pv` (always true: a guard)."""
    if _TENSOR_AT is not None and cache.state[1] is values:
        w = ParamWatch(values, objs, pv)
        cache.pwatch = w if w.values is values else None
    return True


_CLASS_ABSENT = re.compile(r"(\w+)\.__dict__\.keys\(\)\.isdisjoint\((\w+)\)")
_DICT_ABSENT = re.compile(r"(\w+)\.keys\(\)\.isdisjoint\((\w+)\)")
# what reading one version tag costs, in units of one identity guard (measured: about 70 ns
# against 50-60 ns); a dict is watched only when the guards it lets the entry skip weigh more
_TAG_COST = 2.0


class Dyn:
    """An instance dict that a DictWatch covers without knowing it when the entry is built: the
    `__dict__` of the object at `base`, a source the generation counter keeps stable (a module's
    config object). Its identity is compared and its version tag read through a view the entry's
    cache makes when it stores the dict (EntryCache.store_dicts)."""
    __slots__ = ("base",)

    def __init__(self, base):
        self.base = base


class DictWatch:
    """Which of the guards checked on every call read nothing but the contents of dicts whose
    identity is fixed: a module's globals dict, a class's own dict, and plain dicts found in
    those by item guards that are themselves covered; and the instance dict of an object at a
    source the generation counter keeps stable (`Dyn`: compared by identity on every call).
    Each covered guard is true as long as the dicts it reads keep their version tags
    (`watched_dicts` picks the dicts worth it)."""

    def __init__(self, namespace, stable=None, typed=()):
        self.ns = namespace
        self.stable = stable        # source -> object, for sources GEN keeps stable (or None)
        self.typed = typed          # sources whose type a guard checks (on every call)
        self._memo = {}
        self._dyn = {}

    def _stable(self, src):
        """(object at src, the dicts its value depends on, what stands for the object itself
        when it is a watched dict) when its value is fixed by dict contents alone, else None."""
        r = self._memo.get(src, False)
        if r is False:
            r = self._memo[src] = self._resolve(src)
        return r

    def _dyn_of(self, base):
        dyn = self._dyn.get(base)
        if dyn is None:
            dyn = self._dyn[base] = Dyn(base)
        return dyn

    def _resolve(self, src):
        from ..sources import AttrSource, GlobalSource, ItemSource, ObjectSource, RawAttrSource
        t = type(src)
        if t is GlobalSource and type(src.base) is ObjectSource and type(src.base.obj) is dict:
            g = src.base.obj
            if type(src.key) is str and src.key in g:
                v = g[src.key]
                return v, (g,), (v if type(v) is dict else None)
            return None
        if t is AttrSource and src.key == "__dict__" and type(src.base) is ObjectSource \
                and isinstance(src.base.obj, type):
            d = _class_dict(src.base.obj)
            return (src.base.obj.__dict__, (d,), d) if d is not None else None
        if t is RawAttrSource and src.key == "__dict__" and self.stable is not None:
            obj = self.stable(src.base)
            if obj is None or isinstance(obj, torch.nn.Module):
                return None
            try:
                d = object.__getattribute__(obj, "__dict__")
            except AttributeError:
                return None
            if type(d) is not dict:
                return None
            dyn = self._dyn_of(src.base)
            return d, (dyn,), dyn
        if t is AttrSource and self.stable is not None and src.key != "__dict__":
            # an attribute found in the instance dict of such an object: its value is that
            # dict's item while the object's class (its type guard, required here, is not
            # covered: it runs on every call), the class dicts of its MRO (no data descriptor or
            # __getattribute__ added: watched) and the dict itself are unchanged
            obj = self.stable(src.base)
            if obj is None or isinstance(obj, torch.nn.Module) or src.base not in self.typed:
                return None
            klass = type(obj)
            if klass.__getattribute__ is not object.__getattribute__ \
                    or _has_data_descriptor(klass, src.key):
                return None
            try:
                d = object.__getattribute__(obj, "__dict__")
            except AttributeError:
                return None
            mro = tuple(_class_dict(k) for k in klass.__mro__)
            if type(d) is not dict or src.key not in d or any(m is None for m in mro):
                return None
            return d[src.key], (self._dyn_of(src.base),) + mro, None
        if t is ItemSource:
            base = self._stable(src.base)
            if base is None:
                return None
            obj, deps, holder = base
            if holder is None:
                return None
            d = obj if type(obj) is dict else (holder if type(holder) is dict else None)
            if d is None or type(src.key) not in (str, int) or src.key not in d:
                return None
            deps = deps if holder in deps else deps + (holder,)
            v = d[src.key]
            # a dict found in an instance dict changes with it: not watched
            nested = v if type(v) is dict and not any(type(x) is Dyn for x in deps) else None
            return v, deps, nested
        return None

    def covers(self, guard, source):
        """(the dicts `guard` reads, its weight in identity-guard units) when those dicts' version
        tags cover it, else None."""
        deps = None
        kind = guard.kind
        weight = 1.0
        if source is None:
            m = None
            if kind == "class_attr_absent":
                m = _CLASS_ABSENT.fullmatch(guard.code)
                obj = self.ns.get(m.group(1)) if m else None
                d = _class_dict(obj) if isinstance(obj, type) else None
                deps = (d,) if d is not None else None
            elif kind == "builtins_not_shadowed":
                m = _DICT_ABSENT.fullmatch(guard.code)
                obj = self.ns.get(m.group(1)) if m else None
                deps = (obj,) if type(obj) is dict else None
            if deps:
                # isdisjoint looks up each name of the smaller side
                weight = 2.0 + len(self.ns.get(m.group(2)) or ()) / 4
        else:
            st = self._stable(source)
            if st is None:
                return None
            obj, deps, holder = st
            if kind == "id":
                pass
            elif kind in ("type", "value") and type(obj) in _SCALARS:
                weight = 1.5
            elif kind in ("dict_keys", "len", "empty") and type(obj) is dict and holder is not None:
                deps = deps if holder in deps else deps + (holder,)
                weight = 1.5 + len(obj) / 4
            else:
                deps = None
        return (deps, weight) if deps else None


def watched_dicts(covered):
    """Of `covered` ({guard index: (dicts, weight)}), the dicts worth reading the tag of and the
    guards they then cover: a dict whose covered guards weigh less than reading its tag is
    dropped, with the guards that read it (repeated until nothing more is dropped)."""
    live = dict(covered)
    while True:
        benefit = {}
        for deps, w in live.values():
            for d in deps:
                benefit[id(d)] = benefit.get(id(d), 0.0) + w
        drop = {k for k, b in benefit.items() if b < _TAG_COST}
        if not drop:
            break
        live = {j: (deps, w) for j, (deps, w) in live.items()
                if not any(id(d) in drop for d in deps)}
    dicts = {}
    for deps, _ in live.values():
        for d in deps:
            dicts[id(d)] = d
    return list(dicts.values()), set(live)


_BIND = re.compile(r"\((__s\d+) :=")
_NAME = re.compile(r"\b__s\d+\b")


class Split:
    """The guards of one entry, split for the two-path entry (codegen/entry.py):
    `full` (every guard, as before), `fast` (the guards GEN does not cover, in order, with
    parameter/buffer metadata checks on cached locals) and `cached` (the locals the fast path
    reads from the cache instead of walking the module tree)."""

    dict_fast = None        # the guards neither GEN nor the dict version tags cover
    fields = None           # FieldWatch of the dict path's function/cell field guards, if any
    field_code = ""         # those guards' own code (run when the gather disagrees)
    field_binds = ()        # names they bind that later code reads ...
    field_vals = ()         # ... and the objects those names hold when the guards pass
    dict_cached = ()
    dicts = ()
    dyn_objects = ()
    distinct = ()           # per split distinct-objects guard: (cached positions, const ids)

    def __init__(self, full, fast, cached, modules):
        self.full = full
        self.fast = fast
        self.cached = cached
        self.modules = modules


class _FieldGuards:
    __slots__ = ("guards", "binds", "owners", "watch")


def _field_guards(keep, covered, cached_names, ns):
    """Which guards of `keep` (outside `covered`, the dict-covered ones) a FieldWatch can stand
    for: identity guards on a field of a function or cell whose owner is a namespace constant,
    the object an earlier such guard checks, or a local the cache holds (`cached_names`, bound by
    a covered guard). Needs at least 4 of them (a gather costs about as much as 4 guards)."""
    r = _FieldGuards()
    r.guards, r.binds, r.owners, r.watch = set(), {}, [], None
    if _FIELD_AT is None or _MEM is None:
        return r
    literal = {"True": True, "False": False, "None": None}
    fixed, dynamic, expected, picked = [], [], [], []
    for j, code in enumerate(keep):
        if j in covered:
            continue
        m = _FIELD_GUARD.fullmatch(code)
        if m is None:
            continue
        name, owner, field, exp = m.groups()
        if exp in literal:
            if exp == "None" and field != "cell_contents":
                continue        # a function's None default is a NULL field
            value = literal[exp]
        elif not _NAME.fullmatch(exp) and exp in ns:
            value = ns[exp]
        else:
            continue
        if owner in r.binds:
            fixed.append((r.binds[owner], field))
        elif _NAME.fullmatch(owner):
            if owner not in cached_names:
                continue
            dynamic.append(field)
            r.owners.append(owner)
        elif owner in ns:
            obj = ns[owner]
            if type(obj) is not (_CELL if field == "cell_contents" else _FUNC):
                continue
            fixed.append((obj, field))
        else:
            continue
        picked.append(j)
        expected.append(value)
        r.binds[name] = value
    if len(picked) < 4:
        r.binds, r.owners = {}, []
        return r
    # the gather reads fixed owners first, then the cache's: expected values in that order
    fixed_exp = [e for j, e in zip(picked, expected)
                 if _FIELD_GUARD.fullmatch(keep[j]).group(2) not in r.owners]
    dyn_exp = [e for j, e in zip(picked, expected)
               if _FIELD_GUARD.fullmatch(keep[j]).group(2) in r.owners]
    r.watch = FieldWatch(fixed, dynamic, fixed_exp + dyn_exp)
    if not dynamic and r.watch._const_idx is None:
        r.binds, r.owners, r.watch = {}, [], None
        return r
    r.guards = set(picked)
    return r


def _flat_tuple(items, chunk=32):
    """A tuple display of `items` (expressions); past `chunk` of them, built from starred
    tuples of at most `chunk`, so that evaluating it does not need a stack slot per item (the
    entry's frame stays small: codegen/entry.py guard_block)."""
    if len(items) <= chunk:
        return "(" + ", ".join(items) + ",)"
    return "(" + ", ".join("*(" + ", ".join(items[i:i + chunk]) + ",)"
                           for i in range(0, len(items), chunk)) + ",)"


_DISTINCT = re.compile(r"len\(\{(id\(.*\))\}\) == (\d+)")


def _id_items(text):
    """`id(a), id(b.c), ...` -> ['a', 'b.c', ...] (None if it is not that)."""
    items, depth, cur = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[cur:i].strip())
            cur = i + 1
    items.append(text[cur:].strip())
    if not all(it.startswith("id(") and it.endswith(")") for it in items):
        return None
    return [it[3:-1] for it in items]


def _split_distinct(rest, sp, ns):
    """On the dict path, a distinct-objects guard `len({id(a), id(b), ...}) == n` whose objects
    are mostly cached locals (hf/kosmos-2.5: 398 of 421) checks only the others: they are
    pairwise distinct and none is one of the cached objects, whose ids the cache computed when
    it stored them (after a check that found all n distinct; the cache holds them, so their
    ids stay theirs). Cached here means read from the cache's tuples or bound to a constant by
    the field gather: on this path each names the object it named at that check."""
    fixed = {n: (1, i) for i, n in enumerate(sp.cached)}
    fixed.update({n: (3, i) for i, n in enumerate(sp.dict_cached)})
    consts = dict(zip(sp.field_binds, sp.field_vals))
    out, specs = [], []
    for code in rest:
        m = _DISTINCT.fullmatch(code)
        items = _id_items(m.group(1)) if m else None
        if items is None or len(items) != int(m.group(2)):
            out.append(code)
            continue
        keep = [it for it in items if it not in fixed and it not in consts]
        cached = [fixed[it] for it in items if it in fixed]
        if len(cached) + len([it for it in items if it in consts]) < 8:
            out.append(code)
            continue
        const_objs = tuple(consts[it] for it in items if it in consts)
        ns.setdefault("_distinct_consts", []).append(const_objs)    # keeps their ids theirs
        specs.append((tuple(cached), tuple(id(o) for o in const_objs)))
        j = len(specs) - 1
        if keep:
            ids = ", ".join(f"id({it})" for it in keep) + ("," if len(keep) == 1 else "")
            fast = (f"(__dd := __c[7]) is not None and len(__du := {{{ids}}}) == {len(keep)} "
                    f"and __dd[{j}].isdisjoint(__du)")
        else:
            fast = "(__dd := __c[7]) is not None"
        out.append(f"({fast}) or ({code})")
    sp.distinct = tuple(specs)
    return out


def _heavy(watch, source):
    r = watch._stable(source) if source is not None else None
    return r is not None and isinstance(r[0], (torch.nn.Module, torch.Tensor))


def split(guards, body_text):
    """Split a GuardSet; `body_text` is the code after the guards (names it reads are cached)."""
    writes = guards.attr_writes
    cls = Classifier(guards.module_infos, writes)
    cg = guards.cg
    keep, skipped, meta, full, versioned = [], [], [], [], []
    watch = None
    if _TAG_AT is not None:
        def gen_stable(src):
            ok, obj = cls.obj(src)
            return obj if ok else None
        typed = {src for src, g in zip(guards.origins, guards.guards)
                 if src is not None and g.kind == "type"}
        watch = DictWatch(cg.namespace, gen_stable, typed)
    by_dicts = {}               # guards of `keep` the dict version tags may cover
    for i, g in enumerate(guards.guards):
        source = guards.origins[i] if i < len(guards.origins) else None
        tm = guards.tensor_meta.get(i)
        full.append(g.code)
        if tm is not None and source is not None and cls.is_state_tensor(source):
            skipped.append(g.code)
            (versioned if tm[2] else meta).append(tm[:2])
        elif cls.covered(source, g.kind):
            skipped.append(g.code)
        elif g.kind == "alias" and source is not None \
                and getattr(guards, "alias_of", {}).get(i) is not None \
                and cls.obj(source)[0] and cls.obj(guards.alias_of[i])[0]:
            # `a is b` with both sources stable (a submodule's `config` and the root's): both name
            # what they named when the full check last passed
            skipped.append(g.code)
        else:
            cov = watch.covers(g, source) if watch is not None else None
            if cov is not None and _heavy(watch, source):
                # the dict path caches what covered guards bind: a module or tensor held there
                # (a global model) would outlive its global's rebinding until the next call
                cov = None
            if cov is not None:
                by_dicts[len(keep)] = cov
            keep.append(g.code)
    # parameters/buffers, on the locals read from the cache (after the other guards, which are
    # cheaper and fail first on new inputs); a chain of checks per tensor is as fast as any
    # batched form in Python (each tensor getter dominates)
    keep.extend(code for code, _ in meta)
    if versioned:
        # parameters: their version counters and TensorImpls unchanged since the last full check
        # of their metadata (with GEN unchanged, nothing else can change it: see
        # _install_parameter_hooks); else the full check, which refreshes the versions
        # type(p) too: `p.__class__ = C` changes neither version nor TensorImpl (redteam6)
        vs = _flat_tuple([f"{e}._version, {e}._cdata, type({e})" for _, e in versioned])
        cell = [None]
        cell_name = cg.const(cell, "param_versions")
        store = cg.const(_storer(cell), "store_versions")
        checks = " and ".join(f"({c})" for c, _ in versioned)
        clause = f"(__pv := {vs}) == {cell_name}[0] or ({checks} and {store}(__pv))"
        if _TENSOR_AT is not None:
            # the same tuple gathered from memory while the cache holds the same parameters
            # (ParamWatch); the tuple itself when that gather disagrees, which then snapshots
            cg.namespace["_params_same"] = params_same
            cg.namespace["_params_snap"] = params_snap
            objs = _flat_tuple([e for _, e in versioned])
            clause = (f"_params_same(_ecache, __c[1]) or ({clause}) and "
                      f"_params_snap(_ecache, __c[1], {objs}, __pv)")
        keep.append(clause)
    full = " and ".join(f"({c})" for c in full) or "True"
    if getattr(guards, "structural", False):
        # modules guarded by structure, not identity (values/objects.py: wrap_module): the
        # cached locals and tags of the fast paths belong to the instance last checked
        return Split(full, None, (), ())
    # dict version tags pay off when they replace several guards each (a tag read costs about
    # as much as one identity guard)
    dicts, by_dicts = watched_dicts(by_dicts) if by_dicts else ([], set())
    use_dicts = len(by_dicts) >= 4
    if not skipped and not use_dicts:
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
    sp.dict_fast = None
    if use_dicts:
        # the third path: GEN and every watched dict's version unchanged; the locals the
        # covered guards bound that later code reads come from the cache too
        bound_in_dicts = set()
        for j in by_dicts:
            bound_in_dicts.update(_BIND.findall(keep[j]))
        fw = _field_guards(keep, by_dicts, bound_in_skipped | bound_in_dicts, cg.namespace)
        rest = [c for j, c in enumerate(keep) if j not in by_dicts and j not in fw.guards]
        bound_in_rest, used_rest = set(), set(_NAME.findall(body_text))
        for j, code in enumerate(keep):
            if j not in by_dicts and j not in fw.guards:
                bound_in_rest.update(_BIND.findall(code))
                used_rest.update(_NAME.findall(code))
        if fw.guards:
            # the field guards' owners read from the cache must be bound on the dict path; the
            # names they bind that later code reads are bound to what they check
            sp.fields = fw
            sp.field_code = " and ".join(f"({keep[j]})" for j in sorted(fw.guards))
            sp.field_binds = tuple(n for n in fw.binds if n in used_rest)
            sp.field_vals = tuple(fw.binds[n] for n in sp.field_binds)
            used_rest.update(fw.owners)
            bound_in_rest.update(fw.binds)
        sp.dict_cached = tuple(sorted((bound_in_dicts & used_rest) - bound_in_rest,
                                      key=lambda n: int(n[3:])))
        sp.dicts = [d for d in dicts if type(d) is dict]
        dyns = [d for d in dicts if type(d) is Dyn]
        # an instance dict is found through its object, which the generation counter keeps
        # stable: that object's local comes from the cache, to compare the dict's identity
        sp.dyn_objects = tuple(cg.bound(d.base) for d in dyns)
        if not all(_NAME.fullmatch(n) for n in sp.dyn_objects):
            raise AssertionError("internal: an instance dict's object is not bound")
        sp.cached = tuple(sorted(set(sp.cached) | set(sp.dyn_objects), key=lambda n: int(n[3:])))
        rest = _split_distinct(rest, sp, cg.namespace)      # reads the final cached tuples' order
        sp.dict_fast = " and ".join(f"({c})" for c in rest) or "True"
        sp.stats = sp.stats + (len(rest), len(dicts)) + ((len(fw.guards),) if fw.guards else ())
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


# an EntryCache that holds nothing (no generation is negative): (generation, cached locals,
# watched dicts' version tags, locals cached under them, views of instance dicts' tags, those
# dicts, the FieldWatch gather index for the owners among those locals, the ids of the cached
# objects of each distinct-objects guard the dict path splits)
NO_STATE = (-1, (), None, (), (), (), None, None)


def _storer(cell):
    def store(value):
        cell[0] = value
        return True
    return store


class EntryCache:
    """Per entry: (generation, cached locals, watched dicts' version tags, locals cached under
    them) from the last call that passed the full guards. A module whose tracked dicts were
    replaced through setattr is tracked again right away (_retrack); if that is impossible it
    is in LOST and `store` refuses, so a cached generation always covers the entry's modules."""
    __slots__ = ("state", "refs", "stats", "mtags", "fwatch", "pwatch", "distinct", "chunked",
                 "dict_chunked")

    def __init__(self, modules, stats=None, distinct=()):
        self.state = NO_STATE
        self.chunked = self.dict_chunked = False    # cached locals packed in tuples of tuples
        self.pwatch = None          # ParamWatch of the parameters among state[1]
        self.distinct = distinct    # Split.distinct: cached objects of distinct-objects guards
        self.mtags = None
        self.fwatch = None          # FieldWatch with owners read from the cache (set by codegen)
        self.refs = []
        self.stats = stats          # (guards, fast-path guards, cached locals[, dict path, dicts])
        for m, hooks in modules:
            try:
                self.refs.append((weakref.ref(m), hooks))
            except TypeError:
                pass

    def advance(self, gen, bumps, resnap=False):
        """After the entry's own epilogue: if GEN moved by exactly its own `bumps` writes since
        the cache was checked at `gen`, the cache holds for the new generation too; `resnap`:
        those writes also changed its modules' dict tags, which are read again (only for entries
        in which no user code ran between the guards and here)."""
        state = self.state
        if state[0] == gen and GEN[0] == gen + bumps:
            self.state = (gen + bumps,) + state[1:]
            if resnap and self.mtags is not None:
                self.mtags.resnap()

    def _field_index(self, owners):
        fw = self.fwatch
        return fw.index(owners) if fw is not None and owners is not None else None

    def store(self, gen, values, versions=None, dict_values=(), dyn=(), owners=None):
        """After a full check that passed; `gen` and `versions` were read before it. `dyn`:
        the instance dicts the dict path compares (their views are made here); `owners`: the
        functions/cells among the cached locals whose fields the FieldWatch reads."""
        if LOST:                    # rare: some module's tracking was undone (see _retrack)
            for r, hooks in self.refs:
                m = r()
                if m is None or m in LOST:
                    return
        if GEN[0] == gen:
            if _MEM is not None:
                dicts = []
                for r, _ in self.refs:
                    m = r()
                    if m is None:
                        return
                    dicts += module_dicts(m)
                self.mtags = ModuleTags(dicts)
            self.state = (gen, values, versions, dict_values) + self._views(dyn) \
                + (self._field_index(owners), self._distinct(values, dict_values))
            self.pwatch = None

    def clear(self):
        """A full check failed: the cache is stale; let go of what it holds."""
        self.state = NO_STATE
        self.pwatch = None

    def store_dicts(self, gen, versions, dict_values, dyn=(), owners=None):
        """After the guards GEN does not cover passed (GEN unchanged at `gen`, some watched
        dict changed): the dicts' versions read before them, and the locals they bound."""
        state = self.state
        if state[0] == gen and GEN[0] == gen:
            self.state = (gen, state[1], versions, dict_values) + self._views(dyn) \
                + (self._field_index(owners), self._distinct(state[1], dict_values))

    def _distinct(self, values, dict_values):
        """For each distinct-objects guard the dict path splits (_split_distinct): the ids of
        its cached objects, or None (the guard then runs whole) if they are not all distinct."""
        if not self.distinct:
            return None
        out = []
        if self.chunked:
            values = [x for part in values for x in part]
        if self.dict_chunked:
            dict_values = [x for part in dict_values for x in part]
        for cached, const_ids in self.distinct:
            tuples = (None, values, None, dict_values)
            ids = frozenset([id(tuples[slot][i]) for slot, i in cached] + list(const_ids))
            if len(ids) != len(cached) + len(const_ids):
                return None
            out.append(ids)
        return tuple(out)

    def _views(self, dyn):
        old_views, old = self.state[4:6]
        if len(old) == len(dyn) and all(a is b for a, b in zip(old, dyn)):
            return old_views, old
        return tuple(version_cell(d) if type(d) is dict else _NO_VIEW for d in dyn), tuple(dyn)

    def drop_dicts(self):
        state = self.state
        self.state = state[:2] + (None, ()) + state[4:6] + (None, None)


# what a view reads for an object whose __dict__ is not a plain dict (the identity compare
# fails first; this only keeps the version tuple well formed)
_NO_VIEW_DICT = {}
_NO_VIEW = version_cell(_NO_VIEW_DICT) if _TAG_AT is not None else None
