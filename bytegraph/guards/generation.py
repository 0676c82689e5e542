"""Which guards an entry may skip on a cache hit, and the per-entry cache that lets it.

`split(guards)` sorts a trace's guards into those the module generation counter covers
(guards/tracking.py: skipped while `GEN` is unchanged) and those checked on every call;
codegen/entry.py builds the two-path entry from it. `Classifier` says which sources are stable
while GEN is unchanged. `EntryCache` holds, per entry, the generation, the cached locals and
the snapshots the fast paths compare (guards/memory.py readers).

Dict version tags (`DictWatch`): of the guards checked on every call, those that read only the
contents of a module's globals dict or of a class's own `__dict__` (identity and value of an
item, `isdisjoint` of its keys, the keys of a plain dict found there) are skipped while each
such dict's CPython version tag (`ma_version_tag`, which every mutation of a dict advances) is
the one read before the last check that passed them. The tag is read through ctypes at an
offset verified by a probe at import; when the probe fails, nothing is covered this way.
"""
import re
import weakref

import torch

from .memory import (_CELL, _FIELD_AT, _FUNC, _IMPL_AT, _MEM, _RG_AT, _TAG_AT,
                     _TENSOR_AT, DictSnap, FieldWatch, InputWatch, ModuleTags, _class_dict, bufs_same,
                     bufs_snap, module_dicts, params_same, params_snap, version_cell)
from .tracking import _NN_DICTS, _RETRACK, _TRACKED_TYPES, GEN, LOST, is_tracked
# the tracking and memory names callers and tests know from this module (before the split)
from .memory import (_MEM32, ParamWatch, _probe_field_offsets,  # noqa: F401,E402
                     _probe_tensor_offsets, _probe_version_offset)
from .tracking import (_HOOK_DICTS, TrackedDict, TrackedOrderedDict, _bump,  # noqa: F401,E402
                       _install, class_is_trackable, module_setattr, track)

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



def _fold_bits(code, bound, *groups):
    """Append the bits guard `code` of the tensor bound to the local `bound` (GuardSet.bits_of)
    to that tensor's metadata checks in one of `groups` ((checks, local) lists); False when none
    there is on that local."""
    for group in groups:
        for k, (checks, e) in enumerate(group):
            if e == bound:
                group[k] = (f"{checks} and {code}", e)
                return True
    return False


_RAW_ABSENT = re.compile(r"\w+\(__s\d+, '__dict__'\)\.keys\(\)\.isdisjoint\((\w+)\)")
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
        elif kind == "absent_attrs":
            # names absent from the raw instance dict of an object the generation counter keeps
            # stable: true while that dict (compared by identity, `Dyn`) keeps its tag and no
            # class of its MRO gains a `__dict__` descriptor (their dicts are watched); its type
            # guard (required) runs on every call
            obj = self.stable(source) if self.stable is not None else None
            m = _RAW_ABSENT.fullmatch(guard.code)
            if obj is None or m is None or isinstance(obj, torch.nn.Module) \
                    or source not in self.typed:
                return None
            try:
                d = object.__getattribute__(obj, "__dict__")
            except AttributeError:
                return None
            mro = tuple(_class_dict(k) for k in type(obj).__mro__)
            if type(d) is not dict or any(k is None for k in mro):
                return None
            deps = (self._dyn_of(source),) + mro
            weight = 2.0 + len(self.ns.get(m.group(1)) or ()) / 4
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


_FIELD_GUARD = re.compile(r"\((__s\d+) := (\w+)\.(__code__|__defaults__|__kwdefaults__|cell_contents)"
                          r"\) is (\w+)")
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


_DICT_GUARD = re.compile(r"type\(\((__s\d+) := (\w+)\((__s\d+), '__dict__'\)\)\) is (\w+) and "
                         r"tuple\(\1\.keys\(\)\) == (\w+)")
_KEY = r"('(?:[^'\\\n]|\\.)*'|-?\d+)"
_ITEM_IS = re.compile(r"\((__s\d+) := (__s\d+)\[" + _KEY + r"\]\) is (None|True|False)")
_ITEM_TYPED = re.compile(r"type\(\((__s\d+) := (__s\d+)\[" + _KEY + r"\]\)\) is (\w+) and (.*)")
_SCALAR_TYPES = (int, float, str, bytes, bool, complex)
_MIN_SNAP = 8       # a DictSnap (a call, a getattr, a tag read) costs about as much as 4 guards


def _dict_snaps(rest, ns, later):
    """On the dict path, the guards on an object's raw instance dict that no dict tag covers (a
    sub-config found in a watched config's dict is no stable source): `type(D :=
    object.__getattribute__(X, '__dict__')) is dict and tuple(D.keys()) == K` and the guards on
    its items that hold an immutable scalar (`D[k] is None/True/False`; `type(D[k]) is int and
    ...` with an exact scalar type, whose remaining checks read only that item and constants).
    Each such group becomes one clause at the dict guard's place: the dict read once and
    compared, with its tag, to a DictSnap of the last check that passed; else the group's own
    guards decide and, passing, snapshot the dict and the tag read before them. An item guard
    whose local other code reads (`later`, the other guards) stays as it was."""
    if _TAG_AT is None:
        return rest
    groups = {}         # dict local -> (index of its dict guard, [indices of its item guards])
    for j, code in enumerate(rest):
        m = _DICT_GUARD.fullmatch(code)
        if m is not None and ns.get(m.group(2)) is object.__getattribute__ \
                and ns.get(m.group(4)) is dict and m.group(1) not in groups:
            groups[m.group(1)] = (j, [])
            continue
        m = _ITEM_IS.fullmatch(code)
        if m is None:
            m = _ITEM_TYPED.fullmatch(code)
            if m is None or ns.get(m.group(4)) not in _SCALAR_TYPES \
                    or set(_NAME.findall(m.group(5))) - {m.group(1)}:
                continue
        g = groups.get(m.group(2))
        if g is not None:
            g[1].append((j, m.group(1)))
    out = list(rest)
    drop = set()
    for local, (at, items) in groups.items():
        mine = {k for k, _ in items}
        others = " ".join(c for k, c in enumerate(rest) if k != at and k not in mine) + " " + later
        used = set(_NAME.findall(others))
        items = [k for k, bound in items if bound not in used]
        if len(items) + 1 < _MIN_SNAP:
            continue
        snap = f"_dict_snap_{local}"
        ns[snap] = DictSnap()
        m = _DICT_GUARD.fullmatch(rest[at])
        read = f"{m.group(2)}({m.group(3)}, '__dict__')"
        checks = " and ".join(f"({rest[k]})" for k in [at] + items)
        out[at] = (f"{snap}.same({local} := {read}) or ((__sdr := {snap}.read({local})) and "
                   f"{checks} and {snap}.snap(__sdr, {local}))")
        drop.update(items)
    return [c for k, c in enumerate(out) if k not in drop]


def _heavy(watch, source):
    r = watch._stable(source) if source is not None else None
    return r is not None and isinstance(r[0], (torch.nn.Module, torch.Tensor))


# fewer tensor arguments than this keep their chains: three gathers and a call cost about as
# much as four inputs' checks (measured on f1/f4/f16, bench/bench_core.py)
_MIN_INPUTS = 4
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _buffer_watchable(exp):
    """A buffer's metadata a BufferWatch can read: an exact Tensor (or a Parameter made in
    inference mode: neither overrides the getters the chain calls), not requiring grad, at most
    5 dims (sizes and strides inline in the TensorImpl)."""
    return type(exp) is tuple and len(exp) == 6 and exp[0] in (torch.Tensor, torch.nn.Parameter) \
        and exp[4] is False and len(exp[2]) <= 5


def _input_watch(guards):
    """{guard index: code or None}: the metadata checks of the entry's tensor arguments that an
    InputWatch can read from memory (exact torch.Tensor, not requiring grad, at most 5 dims, an
    argument of the entry itself), replaced by one clause at the first one's place (None: the
    others, dropped). The clause is `<gather agrees> or (<their checks> and <snapshot>)`: the
    checks decide whenever the gather does not agree. Evaluating all of them there is safe:
    arguments are always bound and each chain starts with its type check."""
    if _IMPL_AT is None:
        return {}
    from ..sources import LocalSource
    picked = []
    for i, g in enumerate(guards.guards):
        source = guards.origins[i] if i < len(guards.origins) else None
        tm = guards.tensor_meta.get(i)
        exp = g.expected
        if g.kind != "tensor" or tm is None or type(source) is not LocalSource \
                or not _IDENT.fullmatch(source.name) or source.name.startswith("__") \
                or tm[1] != source.name or not g.code.startswith(f"type({source.name}) is ") \
                or type(exp) is not tuple or len(exp) != 6 or exp[0] is not torch.Tensor \
                or exp[4] is not False or len(exp[2]) > 5:
            continue
        picked.append((i, source.name, exp[2], g.code))
    if len(picked) < _MIN_INPUTS:
        return {}
    w = InputWatch([shape for _, _, shape, _ in picked])
    name = guards.cg.const(w, "inputs")
    names = [n for _, n, _, _ in picked]
    ids = "(" + ", ".join(f"id({n})" for n in names) + ")"
    checks = " and ".join(f"({code})" for _, _, _, code in picked)
    clause = f"({name}.same({ids}) or ({checks} and {name}.snap(({', '.join(names)},))))"
    out = {i: None for i, _, _, _ in picked}
    out[picked[0][0]] = clause
    return out


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
    gathered = {}               # locals of the buffers a BufferWatch may read (in order)
    inputs = _input_watch(guards)   # tensor arguments' checks: one memory gather for all
    for i, g in enumerate(guards.guards):
        source = guards.origins[i] if i < len(guards.origins) else None
        tm = guards.tensor_meta.get(i)
        if i in inputs:
            if inputs[i] is not None:
                full.append(inputs[i])
                keep.append(inputs[i])
            continue
        code = g.code
        full.append(code)
        if i in guards.bits_of and source is not None and cls.is_state_tensor(source) \
                and _fold_bits(code, guards.bits_of[i], versioned, meta):
            # a parameter's / buffer's negative and conjugate bits (compiling backends) join its
            # metadata checks: for a parameter they run when its versions tuple changes, as its
            # dtype and strides do, not on every call (hf/cvt: 842 getters a call)
            skipped.append(code)
            continue
        if tm is not None and source is not None and cls.is_state_tensor(source):
            skipped.append(g.code)
            (versioned if tm[2] else meta).append(tm[:2])
            if not tm[2] and _buffer_watchable(g.expected):
                gathered[tm[1]] = None
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
            keep.append(code)
    # parameters/buffers, on the locals read from the cache (after the other guards, which are
    # cheaper and fail first on new inputs); a chain of checks per tensor is as fast as any
    # batched form in Python (each tensor getter dominates)
    buf_at = None
    if _IMPL_AT is not None and len(gathered) >= _MIN_INPUTS:
        # buffers (plain tensors: no version counter stands for their metadata): their chains
        # only when the gather of their TensorImpls' words (BufferWatch) disagrees
        cg.namespace["_bufs_same"] = bufs_same
        cg.namespace["_bufs_snap"] = bufs_snap
        chains = " and ".join(f"({c})" for c, e in meta if e in gathered)
        buf_at = len(keep)
        keep.append(f"_bufs_same(_ecache, __c[1]) or ({chains} and "
                    f"_bufs_snap(_ecache, __c[1], {_flat_tuple(list(gathered))}))")
        keep.extend(code for code, e in meta if e not in gathered)
    else:
        keep.extend(code for code, _ in meta)
    if versioned:
        # parameters: their version counters and TensorImpls unchanged since the last full check
        # of their metadata (with GEN unchanged, nothing else can change it: see
        # _install_parameter_hooks); else the full check, which refreshes the versions
        # type(p) too: `p.__class__ = C` changes neither version nor TensorImpl (redteam6)
        # and requires_grad: `torch.Tensor.requires_grad_(p, b)` called unbound bumps nothing
        vs = _flat_tuple([f"{e}._version, {e}._cdata, type({e}), {e}.requires_grad"
                          for _, e in versioned])
        cell = [None]
        cell_name = cg.const(cell, "param_versions")
        store = cg.const(_storer(cell), "store_versions")
        checks = " and ".join(f"({c})" for c, _ in versioned)
        clause = f"(__pv := {vs}) == {cell_name}[0] or ({checks} and {store}(__pv))"
        if _RG_AT is not None:
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
    if buf_at is not None and not set(gathered) <= set(cached):
        # the gather reads objects the cache's tuple holds; any other: the chains (not expected)
        keep[buf_at] = " and ".join(f"({c})" for c, e in meta if e in gathered)
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
        rest = _dict_snaps(rest, cg.namespace, body_text + " " + sp.field_code)
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
    __slots__ = ("state", "refs", "stats", "mtags", "fwatch", "pwatch", "bwatch", "distinct",
                 "chunked", "dict_chunked")

    def __init__(self, modules, stats=None, distinct=()):
        self.state = NO_STATE
        self.chunked = self.dict_chunked = False    # cached locals packed in tuples of tuples
        self.pwatch = None          # ParamWatch of the parameters among state[1]
        self.bwatch = None          # BufferWatch of the buffers among state[1]
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
            self.pwatch = self.bwatch = None

    def clear(self):
        """A full check failed: the cache is stale; let go of what it holds."""
        self.state = NO_STATE
        self.pwatch = self.bwatch = None

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
