"""Reading CPython and torch object fields straight from memory, for the entry's fast paths.

Each layout fact is verified by a probe at import (`_probe_version_offset`,
`_probe_field_offsets`, `_probe_tensor_offsets`); when a probe fails the matching reader is
None and the guards it would stand for run as Python checks. Readers:
- a dict's `ma_version_tag` (`version_cell`, one ctypes view; `_MEM`, a numpy view of the
  address space for gathers);
- `ModuleTags`: the tags of the tracked modules' instance and `_parameters`/`_buffers`/
  `_modules` dicts in one gather (writes that bypass tracking still change them);
- `FieldWatch`: functions' `__code__`/`__defaults__`/`__kwdefaults__` and cells' contents,
  pointer fields compared with the expected objects' addresses in one gather;
- `ParamWatch`: parameters' `(_version, _cdata, type)` in three chained gathers;
- `InputWatch`, `BufferWatch`: the metadata words of input tensors and of the buffers an
  entry's cache holds (type, sizes, strides, offset, dtype/device, dispatch keys).
Every gather reads only memory of objects the entry (or its cache) keeps alive.
"""
import ctypes
import gc
import sys
import types

import torch

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


class DictSnap:
    """One instance dict that the guards checked on every call read items of (a sub-config found
    in a config's instance dict: hf/phi4_multimodal's vision config, 30 guards): the dict object
    and its version tag, read *before* the checks that last passed on it. While the object's
    `__dict__` is that same dict with that tag, its keys and items are the ones those checks
    saw, so each of its guards would pass again. `state` is replaced as one tuple (dict, view of
    its tag, tag); it holds the dict, so the view reads live memory."""
    __slots__ = ("state",)

    def __init__(self):
        self.state = (None, None, None)

    def same(self, d):
        st = self.state
        return d is st[0] and st[1].value == st[2]

    @staticmethod
    def read(d):
        """(d, view, tag) read now, before the checks (an unused triple if `d` is no dict)."""
        if type(d) is not dict:
            return (None, None, None)
        view = version_cell(d)
        return (d, view, view.value)

    def snap(self, r, d):
        """The checks passed on `d`: remember `r` (read before them) if it is of that dict."""
        if r[0] is d:
            self.state = r
        return True


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


def _f32(*size, **kw):
    """A zero CPU float32 tensor whatever the process's default dtype and device (the probes
    run at import, which may happen under `set_default_dtype(torch.float64)`)."""
    return torch.zeros(*size, dtype=torch.float32, device="cpu", **kw)


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
            ts = [_f32(2, 3), torch.nn.Parameter(_f32(3, 2)), _f32(5)]
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
            checks = [lambda: a.add_(1), lambda: a.t_(), lambda: a.set_(_f32(4, 4)),
                      lambda: c.resize_(7), lambda: v.mul_(2)]
            for op in checks:
                before = a._version, c._version
                op()
                if not all(agrees(t) for t in (a, c, v)) or (a._version, c._version) == before:
                    return None
            if u64(a._cdata + counter) != u64(v._cdata + counter):
                return None
            p.data = _f32(4) + 1
            p.add_(1)
            if not agrees(p):
                return None
    except Exception:       # noqa: BLE001 -- any surprise: no parameter gather
        return None
    return cdata, counter, version


_TENSOR_AT = _probe_tensor_offsets()
_MEM32 = _MEM[1].view("uint32") if _TENSOR_AT is not None else None


class ParamWatch:
    """`(p._version, p._cdata, type(p), p.requires_grad)` of an entry's parameters, gathered
    from memory: reading the getters costs about 170 ns per parameter in Python (hf/cvt: 342
    parameters, 45 us a call). Three gathers, each read only when the previous one agreed, so no
    read leaves memory that the entry's own objects keep alive: each parameter object's
    TensorImpl address and type (the object is held by the entry's cache), each TensorImpl's
    version-counter and AutogradMeta addresses (the impl is held by its parameter), each
    counter's count and the word of each AutogradMeta holding its `requires_grad_` flag (held
    by their impl; a parameter with no AutogradMeta reads a zero word of this watch). All
    agreeing with a snapshot means the same tuple as that snapshot, which was taken only when
    it equalled a versions tuple that passed the metadata checks (`snap`). The flag is read
    because `torch.Tensor.requires_grad_(p, False)` called unbound changes neither the version
    nor the module generation counter."""
    __slots__ = ("values", "idx", "impls", "cidx", "counters", "vidx", "versions", "zero")

    def __init__(self, values, objs, pv):
        np, mem = _MEM
        cdata, counter, version = _TENSOR_AT
        n = len(objs)
        self.values = None
        # each object's TensorImpl address, then each object's type (ob_type, the word after
        # the refcount): a `p.__class__ = C` leaves the version and the impl alone
        self.idx = np.array([(id(o) + cdata - 8) >> 3 for o in objs] + [id(o) >> 3 for o in objs],
                            dtype=np.intp)
        gathered = mem[self.idx]
        if gathered.tolist() != list(pv[1::4]) + [id(t) for t in pv[2::4]]:
            return
        self.impls = gathered.tobytes()
        impls = gathered[:n]
        self.cidx = np.concatenate([(impls + np.uint64(counter - 8)) >> np.uint64(3),
                                    (impls + np.uint64(_IMPL_AT[0] - 8)) >> np.uint64(3)]
                                   ).astype(np.intp)
        words = mem[self.cidx]
        self.counters = words.tobytes()
        counters, metas = words[:n], words[n:]
        self.zero = np.zeros(1, dtype=np.uint32)      # what a parameter with no AutogradMeta reads
        word, bit = _RG_AT
        zero = np.uint64(self.zero.ctypes.data)
        flags = np.where(metas == 0, zero, metas + np.uint64(word))
        self.vidx = (np.concatenate([counters + np.uint64(version), flags]) - np.uint64(8)
                     ) >> np.uint64(2)
        self.vidx = self.vidx.astype(np.intp)
        versions = _MEM32[self.vidx]
        if versions[:n].tolist() != list(pv[0::4]) \
                or [bool((w >> bit) & 1) for w in versions[n:].tolist()] != list(pv[3::4]):
            return
        self.versions = versions.tobytes()
        self.values = values


def params_same(cache, values):
    """The parameters among the cached `values` have the `(_version, _cdata, type,
    requires_grad)` of the last snapshot (see ParamWatch)."""
    w = cache.pwatch
    if w is None or w.values is not values:
        return False
    mem = _MEM[1]
    return mem[w.idx].tobytes() == w.impls and mem[w.cidx].tobytes() == w.counters \
        and _MEM32[w.vidx].tobytes() == w.versions


def params_snap(cache, values, objs, pv):
    """`pv`, the parameters' versions tuple, passed the checks: remember it as a gather snapshot
    if the cache still holds `values` and memory still reads `pv` (always true: a guard)."""
    if _RG_AT is not None and cache.state[1] is values:
        w = ParamWatch(values, objs, pv)
        cache.pwatch = w if w.values is values else None
    return True


# ----------------------------------------------------------------------------- input tensors

def _probe_impl_offsets():
    """Byte offsets in a TensorImpl, or None: (autograd_meta_, sizes_and_strides_) and the two
    words after it that hold `data_type_`, `device_opt_` and the flag bits (sizes/strides
    policies among them), and `key_set_`. torch 2.13's layout (c10/core/TensorImpl.h):
    `sizes_and_strides_` is `size_` then 5 inline sizes and 5 inline strides, followed by
    `storage_offset_`, `numel_`, one word of dtype/device/bitfields and the dispatch key set.
    Found by searching and verified on tensors of 0-5 dims (contiguous, transposed, expanded,
    with a storage offset), of four dtypes, on the meta device, requiring grad or not."""
    if _TENSOR_AT is None:
        return None

    def u64(addr):
        return ctypes.c_uint64.from_address(addr).value

    try:
        with torch.inference_mode(False), torch.no_grad():
            base = _f32(60)
            ts = [_f32(()), _f32(3), _f32(2, 3).t(), _f32(4).expand(3, 4),
                  _f32(1, 2, 3, 4), _f32(2, 1, 2, 3, 2).transpose(1, 3),
                  base[7:].view(53), base[5:29].view(2, 3, 4)]
            sizes_at = None
            for k in range(8, 160, 8):
                if all(u64(t._cdata + k) == t.dim()
                       and all(u64(t._cdata + k + 8 + 8 * d) == s for d, s in enumerate(t.shape))
                       and all(u64(t._cdata + k + 48 + 8 * d) == s
                               for d, s in enumerate(t.stride())) for t in ts):
                    if sizes_at is not None:
                        return None
                    sizes_at = k
            if sizes_at is None or any(u64(t._cdata + sizes_at + 88) != t.storage_offset()
                                       for t in ts):
                return None
            word, keys = sizes_at + 104, sizes_at + 112
            plain, grad = _f32(3), _f32(3, requires_grad=True)
            late = _f32(3)
            autograd = [k for k in range(8, sizes_at, 8)
                        if u64(plain._cdata + k) == 0 and u64(grad._cdata + k) != 0
                        and u64(late._cdata + k) == 0]
            late.requires_grad_()
            autograd = [k for k in autograd if u64(late._cdata + k) != 0]
            if len(autograd) != 1:
                return None
            meta = torch.zeros(3, device="meta")
            dts = [torch.zeros(3, dtype=dt) for dt in (torch.float32, torch.float64,
                                                       torch.int64, torch.bool)]
            for t in ts + dts + [meta, grad]:
                if u64(t._cdata + keys) != torch._C._dispatch_keys(t).raw_repr():
                    return None
            other = _f32(5)      # held: a temporary's impl is freed before the read
            if len({u64(t._cdata + word) & 0xffff for t in dts}) != len(dts) \
                    or u64(meta._cdata + word) == u64(dts[0]._cdata + word) \
                    or u64(other._cdata + word) != u64(dts[0]._cdata + word):
                return None
    except Exception:       # noqa: BLE001 -- any surprise: input tensors keep their checks
        return None
    return autograd[0], sizes_at, word, keys


_IMPL_AT = _probe_impl_offsets()


def _probe_requires_grad():
    """(offset of the aligned uint32 word, bit) in an AutogradMeta (the object a TensorImpl's
    autograd-meta pointer names) holding its `requires_grad_` flag, or None. Found as the one
    byte that is 1 while each of three tensors requires grad and 0 after `requires_grad_(False)`
    (a Parameter, a leaf made with requires_grad=True, one whose flag was set late), and
    verified after flipping it back and forth; read only inside a readable mapping."""
    if _IMPL_AT is None:
        return None
    ranges = _readable_ranges()

    def u8(addr):
        return ctypes.c_uint8.from_address(addr).value

    try:
        autograd = _IMPL_AT[0]
        with torch.inference_mode(False):
            ts = [torch.nn.Parameter(_f32(3)), _f32(2, requires_grad=True),
                  _f32(4).requires_grad_()]
            metas = [ctypes.c_uint64.from_address(t._cdata + autograd).value for t in ts]
            if not all(m and any(lo <= m and m + 256 <= hi for lo, hi in ranges) for m in metas):
                return None
            on = [{k for k in range(8, 256) if u8(m + k) == 1} for m in metas]
            for t in ts:
                t.requires_grad_(False)
            if [ctypes.c_uint64.from_address(t._cdata + autograd).value for t in ts] != metas:
                return None
            off = [{k for k in range(8, 256) if u8(m + k) == 0} for m in metas]
            cands = set.intersection(*on) & set.intersection(*off)
            if len(cands) != 1:
                return None
            k = cands.pop()
            for flag in (True, False, True):
                for t in ts:
                    t.requires_grad_(flag)
                if any(u8(m + k) != int(flag) for m in metas):
                    return None
    except Exception:       # noqa: BLE001 -- any surprise: no parameter gather
        return None
    return k & ~3, 8 * (k & 3)


_RG_AT = _probe_requires_grad()


def _impl_fields(ndims):
    """For tensors of these dims (at most 5 each): the byte offsets (less 8: `_MEM` starts at
    address 8) of the TensorImpl words compared, the tensor each belongs to, and where each
    tensor's autograd-meta word is. Per tensor: autograd-meta pointer, `size_`, the inline sizes
    and strides, storage offset, the dtype/device/policy word, the dispatch key set (which holds
    the negative and conjugate bits)."""
    np, _ = _MEM
    autograd, sizes_at, word, keys = _IMPL_AT
    offs, rep, starts = [], [], []
    for j, nd in enumerate(ndims):
        o = [autograd, sizes_at] + [sizes_at + 8 + 8 * d for d in range(nd)] \
            + [sizes_at + 48 + 8 * d for d in range(nd)] + [sizes_at + 88, word, keys]
        starts.append(len(offs))
        offs += [x - 8 for x in o]
        rep += [j] * len(o)
    return (np.array(offs, dtype=np.uint64), np.array(rep, dtype=np.intp),
            np.array(starts, dtype=np.intp))


class InputWatch:
    """The metadata checks of an entry's tensor arguments (exact `torch.Tensor`, not requiring
    grad, at most 5 dims), read from memory for all of them at once: the chain `type(x) is T and
    x.dtype is .. and x.shape == .. and x.stride() == .. and x.requires_grad is False and
    x.is_cpu` costs about 285 ns per input in Python (each getter checks for
    __torch_function__, shape and stride() allocate); three gathers cost about as much as
    four inputs' chains.

    What is compared, per input, against a snapshot of an input that passed the chain (`snap`):
    the object's type word (`ob_type` is torch.Tensor; read first, so the next read stays inside
    a tensor object); then, at the TensorImpl the object holds (alive while the object is), the
    autograd-meta pointer (null: requires_grad is False, with no AutogradMeta to flip it), `size_`
    and the inline sizes and strides, the storage offset, the word holding dtype, device and the
    sizes/strides policy bits, and the dispatch key set. Equal words are equal metadata, so the
    chain would pass; a disagreeing gather (another shape, a view at another offset, a tensor that
    once required grad) runs the chain itself, which decides and, when it passes, re-snapshots.
    The entry holds no input: the index arrays are remembered with the inputs' ids and rebuilt
    from the ids when they differ (fresh tensors every call). Offsets: `_probe_impl_offsets`."""
    __slots__ = ("n", "texp", "rep", "offs", "starts", "fexp", "index", "snaps")

    def __init__(self, shapes):
        np, _ = _MEM
        self.n = len(shapes)
        self.texp = np.array([id(torch.Tensor)] * self.n, dtype=np.uint64).tobytes()
        self.offs, self.rep, self.starts = _impl_fields([len(s) for s in shapes])
        self.fexp = None        # the fields' snapshot
        # (ids, type-word index, impl-word index, impl addresses, fields index), replaced as one
        # object (another thread never sees the index of other ids)
        self.index = (None,)
        self.snaps = 0

    def _index(self, ids):
        """Gather indices for the objects with these ids, after checking they are exact tensors
        (None if not): (type words, impl words, the impls' addresses, their fields)."""
        np, mem = _MEM
        tidx = np.array(ids, dtype=np.intp) >> 3            # ob_type: address id + 8
        if mem[tidx].tobytes() != self.texp:
            return None
        cidx = tidx + ((_TENSOR_AT[0] - 8) >> 3)
        impls = mem[cidx]
        fidx = ((impls[self.rep] + self.offs) >> np.uint64(3)).view(np.intp)
        return tidx, cidx, impls, fidx

    def same(self, ids):
        """The entry's arguments with these ids (alive: they are its arguments) have the
        snapshot's metadata. Fresh tensors (other ids) are indexed anew when there are at least
        _FRESH_MIN of them (building the index costs about as much as eight inputs' checks)."""
        fexp = self.fexp
        if fexp is None:
            return False
        mem = _MEM[1]
        ix = self.index
        if ids == ix[0]:
            return mem[ix[1]].tobytes() == self.texp and mem[ix[2]].tobytes() == ix[3] \
                and mem[ix[4]].tobytes() == fexp
        if self.n < _FRESH_MIN:
            return False
        ix = self._index(ids)
        if ix is None or mem[ix[3]].tobytes() != fexp:
            return False
        self.index = (ids, ix[0], ix[1], ix[2].tobytes(), ix[3])
        return True

    def snap(self, xs):
        """`xs` just passed their checks: remember their metadata words, if none has autograd
        meta (requires_grad False with no AutogradMeta that could start requiring grad). At most
        _MAX_SNAPS times per entry: inputs that keep failing the gather (new ids every call with
        few inputs, views at moving offsets) then just keep their checks. Returns True."""
        if self.snaps >= _MAX_SNAPS:
            return True
        self.snaps += 1
        if len(xs) != self.n:
            return True
        ids = tuple(map(id, xs))
        ix = self._index(ids)
        if ix is None or ix[2].tolist() != [x._cdata for x in xs]:
            return True
        fields = _MEM[1][ix[3]]
        if fields[self.starts].any():
            self.fexp = None
            return True
        self.fexp = fields.tobytes()
        self.index = (ids, ix[0], ix[1], ix[2].tobytes(), ix[3])
        return True


_FRESH_MIN = 8
_MAX_SNAPS = 32


class BufferWatch:
    """The metadata checks of the buffers (and inference-mode parameters) an entry's cache holds,
    read from memory: their chains (`type(b) is T and b.dtype is .. and b.shape == .. and
    b.stride() == .. and b.requires_grad is False and b.is_cpu`, and with a compiling backend
    `b.is_neg() is False`) cost about 400 ns per buffer in Python, on every call (hf/cvt: 79
    BatchNorm statistics). A plain tensor has no version counter that metadata changes go
    through (`.data =` rewrites its TensorImpl's fields in place), so what is compared is the
    fields themselves, the same words as InputWatch: two gathers, the second only when the first
    agreed: (1) each object's type word and TensorImpl address (the objects are held by the
    cache's tuple `values`); (2) at those impls (alive: held by their objects), the autograd-meta
    pointer (null: requires_grad is False with no AutogradMeta to flip), `size_`, the inline
    sizes and strides, the storage offset, the dtype/device/policy word and the dispatch key
    set, whose Negative and Conjugate keys are `is_neg()`/`is_conj()` (`torch._C._set_neg`,
    `.data =` a negative view, an in-place `_neg_view` swapped in all change it). Equal words
    are equal metadata, so the chains would pass. Made (`bufs_snap`) right after the chains
    passed, from the objects they checked; a disagreeing gather runs the chains, which decide."""
    __slots__ = ("values", "idx", "heads", "fidx", "fields")

    def __init__(self, values, objs):
        np, mem = _MEM
        self.values = values
        self.fields = None          # no snapshot: the chains run (a buffer with autograd meta)
        n = len(objs)
        ids = [id(o) for o in objs]
        # ob_type is at id + 8 (index id >> 3, _MEM starting at 8); the impl at id + cdata
        self.idx = np.array([i >> 3 for i in ids] + [(i + _TENSOR_AT[0] - 8) >> 3 for i in ids],
                            dtype=np.intp)
        heads = mem[self.idx]
        ndims = [o.dim() for o in objs]
        if heads[n:].tolist() != [o._cdata for o in objs] or max(ndims, default=0) > 5:
            return
        offs, rep, starts = _impl_fields(ndims)
        self.fidx = ((heads[n:][rep] + offs) >> np.uint64(3)).view(np.intp)
        fields = mem[self.fidx]
        if fields[starts].any():
            return
        self.heads = heads.tobytes()
        self.fields = fields.tobytes()


def bufs_same(cache, values):
    """The buffers among the cached `values` have the metadata words of the last snapshot."""
    w = cache.bwatch
    if w is None or w.values is not values or w.fields is None:
        return False
    mem = _MEM[1]
    return mem[w.idx].tobytes() == w.heads and mem[w.fidx].tobytes() == w.fields


def bufs_snap(cache, values, objs):
    """The chains of `objs` (the buffers among `values`) just passed: snapshot their words if
    the cache still holds `values` (once per tuple when a buffer has autograd meta). True."""
    w = cache.bwatch
    if cache.state[1] is values and (w is None or w.values is not values or w.fields is not None):
        cache.bwatch = BufferWatch(values, objs)
    return True
