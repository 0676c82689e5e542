"""Warm start from disk: persist cache entries, and install them in a fresh process.

A *record* holds, for one compiled function (and backend), the entries that can be rebuilt in
another process: each entry's generated source, its namespace as *recipes* (how to find each
object again: a module by name, a function by (module, qualname), a module's globals dict, a
torch dtype, an immutable constant, "graph k", ...), its fx graphs as plain node lists with the
metadata of their example inputs, and the key that decides whether the record still applies: a
hash of the function's code and of every code object the trace inlined, the torch, Python and
bytegraph versions, and the backend. An entry whose namespace holds an object with no recipe (a
tensor the guards pin by identity, a closure cell of a local function, a user instance) is not
persisted: counted in counters["warm"]["unportable"], never guessed. An entry that ends in a
graph break names its resume function by its resume-cache key; the resume function's own
entries are a record of their own (its CompileState's `warm_id`, set by the recipe).

Loading happens on a function's first miss: the record is checked against the live code, its
recipes are resolved, its graphs are compiled by the backend (from example inputs rebuilt with
torch.empty_strided), and the stored source is executed into the rebuilt namespace. The entry's
own guards then decide whether it serves the call; when they reject it, the function is traced
as usual. Any failure on the way ignores the record; a file that cannot be read (truncated,
random bytes, another format or torch version) is ignored with one warning per file.
The recipes themselves and the code hashes live in warm_recipes.py, the graph metadata helpers
in warm_graph.py.
"""
import enum
import functools
import hashlib
import io
import marshal
import os
import pickle
import re
import sys
import threading
import types
import warnings
import weakref

import torch
import torch.fx

from ..config import config
from ..observe import counters, log
from ..codegen.entry import MISS
from ..guards.generation import track
from .warm_graph import GraphInfo  # noqa: F401  (convert.py attaches these to entries)
from .warm_graph import _Graph, _GRAPH_FILE, _example, _marshal
from .graph_state import compiling
from .warm_recipes import code_hash, function_hash  # noqa: F401  (the key's hashes)
from .warm_recipes import _encode_graph, _decode_graph  # noqa: F401  (graphs <-> node lists)
from .warm_recipes import (Unportable, _Encoder, _build, _decode_arg, _function_with_code,
                           _functions_of, _nested_codes, _outer_of, _resolve)

FORMAT = 3
_MAGIC = b"bytegraph-warm-cache\n"

_store = {}                  # record id -> record (load_cache, and files read on a first miss)
_warned = set()              # files already warned about
_lock = threading.Lock()
_version = {}


# --------------------------------------------------------------------------
# versions

def _bytegraph_version():
    """Package version + FORMAT + a hash of the package's sources (an edited bytegraph may
    generate different entries)."""
    if "v" not in _version:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        h = hashlib.sha256()
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = dirpath[len(root):].replace(os.sep, "/").lstrip("/")
            for name in sorted(filenames):
                if name.endswith(".py"):
                    h.update(f"{rel}/{name}".encode())
                    with open(os.path.join(dirpath, name), "rb") as f:
                        h.update(f.read())
        _version["v"] = f"0.1.0+f{FORMAT}+{h.hexdigest()[:16]}"
    return _version["v"]


def environment():
    """What a record was written under; any difference makes its file foreign."""
    return {"format": FORMAT, "torch": str(torch.__version__), "python": sys.version,
            "bytegraph": _bytegraph_version()}


# --------------------------------------------------------------------------
# graphs and entries -> records (what convert attaches to an entry: warm_graph.GraphInfo)

def _graph_record(state, info, enc):
    """(kind, payload, example inputs' metadata, grad mode) of one graph: for the eager
    backend its generated forward ("forward"), for any other its node list ("nodes"), which
    the backend compiles again."""
    from ..backends.registry import eager
    nodes = _encode_graph(info.gm, enc)            # (also checks that the graph is portable)
    forward = _encode_forward(info.gm, enc) if state.raw_backend is eager else None
    if forward is not None:         # size-generic Python: a symbolic graph needs no examples
        return ("forward", forward, info.inputs, info.grad)
    if info.inputs is None or None in info.inputs:
        raise Unportable("a graph with symbolic sizes or an input with no example metadata "
                         "(persisted for the eager backend only)")
    return ("nodes", nodes, info.inputs, info.grad, _artifact_record(state, info, nodes))


def _graph_key(nodes, inputs, grad):
    """A hash of a graph record: what an inductor artifact was compiled from."""
    return hashlib.sha256(repr((nodes, inputs, grad)).encode()).hexdigest()   # plain data: a stable repr


def _artifact_record(state, info, nodes):
    """The inductor backend's compiled artifact of this graph (backends/registry.py
    `inductor_artifact`) with the hash of the graph record it belongs to, or None."""
    from ..backends.registry import inductor, inductor_artifact
    if state.raw_backend is not inductor:
        return None
    try:
        found = inductor_artifact(info.compiled)
    except Exception as e:      # not picklable, ...: the warm process compiles the graph again
        log.info("warm start: no inductor artifact for a graph of %s: %s: %s", state.name,
                 type(e).__name__, e)
        return None
    if found is None:
        return None
    env, blob, isas = found
    return {"env": env, "graph": _graph_key(nodes, info.inputs, info.grad), "blob": blob, "isas": isas}


def _encode_forward(gm, enc):
    """The GraphModule's generated `forward` (fx's codegen output, already run when the graph
    was compiled) and recipes of the globals it names: rebuilt without fx for the eager
    backend, which only needs a callable equivalent to gm.forward."""
    src = gm.code
    glb = gm.forward.__globals__
    used = set(re.findall(r"\b[A-Za-z_]\w*", src))
    try:
        names = {k: enc.recipe(v) for k, v in glb.items()
                 if k in used and k not in ("__builtins__", "forward")}
    except Unportable:
        return None             # rebuilt from the node list instead
    return src, names, _marshal(src, _GRAPH_FILE)


def _forward_of(code):
    src, names, compiled = code
    ns = {k: _build(r, None, None) for k, r in names.items()}
    exec(marshal.loads(compiled), ns)
    return types.MethodType(ns["forward"], _Graph(src))


_SPECIAL = ("__builtins__", "__defaults", "__defaults_kw", "_guard_error", "__adopt")


def _adoptable(entry, enc):
    """The entry's source with its nn.Module identity guards made *adoptable*, the recipes of
    those modules' classes, and the weak names replaced. In this process an entry pins each
    nn.Module its guards name by identity (`L['model'] is _Net_7()`); every attribute, parameter
    and submodule it reads is guarded by its source path, and the trace was checked not to have
    observed an id, hash or set order. In a new process the first call whose guards all pass
    adopts the modules it finds at those source paths (`__adopt(L['model'], 0)`: the class must
    be the same and two names must be two distinct objects, as they were here); from then on
    the guard is identity again. Any other weakly bound object, or a weak name used anywhere
    but in its identity guards, makes the entry unportable."""
    source = getattr(entry, "__bytegraph_plain_source__", None) or entry.__bytegraph_source__
    life = getattr(entry, "__bytegraph_life__", None)
    if life is None:
        return source, [], set()
    if life.dead:
        raise Unportable("an object its guards name was freed")
    guards = getattr(getattr(entry, "__bytegraph_guards__", None), "guards", None) or []
    ns = entry.__globals__
    adopt, static = [], {}
    for n in life.names:
        obj = ns[n]()
        if not isinstance(obj, torch.nn.Module):
            # a module-level object (os.environ): found again by its module attribute; an
            # Enum member (a dict key): by its class and name
            member = enc._enum_member(obj) if isinstance(obj, enum.Enum) else None
            if member is not None:
                static[n] = ("returns", member)
                continue
            found = enc._module_attr(obj) if obj is not None else None
            if found is None:
                raise Unportable(f"{n}: its guards pin a {type(obj).__name__} by identity")
            static[n] = ("returns", ("attr",) + found)
            continue
        suffix = f" is {n}()"
        for g in guards:
            if g.kind == "id" and g.code.endswith(suffix):
                old = f"({g.code})"
                if source.count(old) != 1:
                    raise Unportable(f"{n}: identity guard not found once in the source")
                source = source.replace(old, f"(__adopt({g.code[:-len(suffix)]}, {len(adopt)}))")
        adopt.append(enc.recipe(type(obj)))
    left = (set(life.names) - set(static)).intersection(re.findall(r"\b_\w+", source))
    if left:
        raise Unportable(f"{sorted(left)[0]}: a pinned object is used beyond its identity guard")
    enc.static_weak = static
    return source, adopt, set(life.names) - set(static)


class _Adopter:
    """The modules one warm entry adopted (weakly), by adoption index. While not all are
    adopted, calls go through `call`, which undoes a partial adoption when the guards miss."""

    def __init__(self, types_):
        self.types = types_
        self.refs = [None] * len(types_)
        self.done = not types_
        self.lock = threading.Lock()

    def adopt(self, obj, k):
        ref = self.refs[k]
        if ref is not None:
            return ref() is obj
        if type(obj) is not self.types[k] or any(r is not None and r() is obj for r in self.refs):
            return False
        try:
            self.refs[k] = weakref.ref(obj)
        except TypeError:
            return False
        # the entry's guards check that the module dicts are the tracked kind, as a trace
        # leaves them (guards/generation.py): track the adopted tree as a trace would
        for m in obj.modules():
            track(m)
        return True

    def wrap(self, raw, state):
        state_ref = weakref.ref(state)

        @functools.wraps(raw)
        def adopting(*args, **kwargs):
            if self.done:
                return raw(*args, **kwargs)
            with self.lock:
                if self.done:
                    return raw(*args, **kwargs)
                ok = False
                try:
                    r = raw(*args, **kwargs)
                    ok = r is not MISS
                    return r
                except BaseException:
                    ok = True           # the guards passed: the adoption stands
                    raise
                finally:
                    if ok:
                        self.done = True
                        _unwrap(state_ref(), adopting, raw)
                    else:
                        self.refs = [None] * len(self.types)
        return adopting


def _unwrap(state, wrapper, raw):
    """All adopted: the cache walks the plain entry again (no wrapper call per hit)."""
    if state is not None:
        with state.lock:
            if any(e is wrapper for e in state.entries):
                state.entries = tuple(raw if e is wrapper else e for e in state.entries)


def _entry_file(fn):
    return f"<bytegraph entry {fn.__qualname__}>"


def record_id(state, tag=None):
    """What a record is looked up by. `tag`: for a compiled nn.Module (every OptimizedModule
    runs the same `_module_call`), the recipe of the module's class."""
    fn = state.fn
    return (fn.__module__, fn.__qualname__, state.backend_name, state.fullgraph, state.dynamic_mode, tag)


def _is_module_call(state):
    from .module import _module_call
    return state.fn is _module_call


_MODULE_GUARD = "(__adopt(mod, 0))"


def _entry_record(state, entry):
    """Plain data for one entry, or None (logged, counted) when it cannot be persisted."""
    cached = getattr(entry, "__bytegraph_warm_record__", None)
    if cached is not None:
        return cached
    try:
        rec = _encode_entry(state, entry)
    except Unportable as why:
        counters["warm"]["unportable"] += 1
        log.debug("warm start: an entry of %s is not persisted: %s", state.name, why)
        rec = False
    try:
        entry.__bytegraph_warm_record__ = rec
    except AttributeError:
        pass
    return rec


def _encode_entry(state, entry):
    graphs = getattr(entry, "__bytegraph_graphs__", None)
    if graphs is None:
        raise Unportable("an entry with no graph record (an eager entry)")
    if getattr(entry, "__bytegraph_hash_dependent__", True):
        raise Unportable("the trace observed id(), hash() or a set's iteration order, which "
                         "differ between processes")
    inlined = getattr(entry, "__bytegraph_codes__", {}) or {}
    # the root's own code object is in the namespace too (convert.py guards fn.__code__)
    enc = _Encoder(graphs, {state.fn.__code__: (state.fn.__module__, state.fn.__qualname__), **inlined})
    ns = entry.__globals__
    name = entry.__name__
    enc.classes = [v for v in ns.values() if isinstance(v, type)]
    source, adopt, weak = _adoptable(entry, enc)
    enc.children = state.children
    own = getattr(state, "warm_id", None)       # a resume function's: (.., root's id, ..)
    enc.own = state.fn if own is not None else None
    enc.own_rid = own
    enc.base_rid = own[1] if own is not None else \
        record_id(state, tuple(adopt[0]) if _is_module_call(state) and adopt else None)
    namespace = {}
    used = set(re.findall(r"\b[A-Za-z_]\w*", source))     # the persisted source's global names
    for k, v in ns.items():
        if k in _SPECIAL or k == name or k in weak or k not in used:
            continue
        try:
            namespace[k] = enc.static_weak[k] if k in enc.static_weak else enc.recipe(v)
        except Unportable as why:
            raise Unportable(f"{k}: {why}") from None
    codes = []
    covered = set()
    _nested_codes(state.fn.__code__, covered)
    pending = []
    for code, (module, qualname) in inlined.items():
        if code is state.fn.__code__:
            continue
        fn, qn = _function_with_code(module, qualname, code), qualname
        if fn is None:
            fn, qn = _function_with_code(module, code.co_qualname, code), code.co_qualname
        if fn is None:
            pending.append((code, qualname))
            continue
        codes.append((module, qn, function_hash(fn)))
        _nested_codes(code, covered)
    for code, qualname in pending:
        if code in covered:
            continue
        outer = _outer_of(inlined[code][0], code.co_qualname, code)
        made = enc._resume_with_code(code) if outer is None else None
        if made is not None:    # an inner resume function: its recipe adds the hash of the
            enc.recipe(made)    # code it is made from (enc.outers)
            continue
        if outer is None:
            raise Unportable(f"inlined code {qualname} cannot be found again by (module, qualname)")
        codes.append(outer[:3])
    codes.extend(enc.outers)
    return {"name": name, "source": source, "namespace": namespace, "adopt": adopt,
            "code": _marshal(source, _entry_file(state.fn)),
            "graphs": [_graph_record(state, g, enc) for g in graphs],
            "codes": sorted(set(codes))}


def _state_record(state):
    """The record of one compiled function, or None when nothing of it can be persisted."""
    fn = state.fn
    from ..backends.registry import _BACKENDS
    if _BACKENDS.get(state.backend_name) is not state.raw_backend:
        return None         # a callable or options-patched backend: no name to key it by
    rid = getattr(state, "warm_id", None)       # a resume function (warm_recipes._resume)
    if rid is None and _function_with_code(fn.__module__, fn.__qualname__, fn.__code__) is not fn:
        return None
    entries = [r for r in (_entry_record(state, e) for e in state.entries) if r]
    tag = None
    if _is_module_call(state):
        entries = [e for e in entries if _MODULE_GUARD in e["source"]]
        tags = {tuple(e["adopt"][0]) for e in entries}
        if len(tags) != 1:
            return None
        tag = tags.pop()
    if not entries:
        return None
    return {"id": rid or record_id(state, tag), "hash": function_hash(fn), "entries": entries}


# --------------------------------------------------------------------------
# files

def _write(path, records):
    buf = io.BytesIO()
    buf.write(_MAGIC)
    pickle.dump({"env": environment(), "records": records}, buf, protocol=4)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


class _PlainUnpickler(pickle.Unpickler):
    """Records are plain data: no class outside these builtins is ever loaded."""
    _ALLOWED = {"frozenset", "set", "complex", "slice"}

    def find_class(self, module, name):
        if module == "builtins" and name in self._ALLOWED:
            return getattr(__import__("builtins"), name)
        raise pickle.UnpicklingError(f"class {module}.{name} is not allowed in a cache file")


def _read(path):
    """The records of a file, or None: a missing file silently, anything unreadable or foreign
    with one warning per file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        return _corrupt(path, f"cannot be read ({e})")
    if not data.startswith(_MAGIC):
        return _corrupt(path, "is not a bytegraph cache file")
    try:
        payload = _PlainUnpickler(io.BytesIO(data[len(_MAGIC):])).load()
        env, records = payload["env"], payload["records"]
        if not isinstance(env, dict) or not isinstance(records, list):
            raise ValueError("bad layout")
    except Exception as e:
        return _corrupt(path, f"is truncated or corrupt ({type(e).__name__})")
    here = environment()
    if env != here:
        what = [k for k in here if env.get(k) != here[k]]
        return _corrupt(path, f"was written by another version ({', '.join(what)} differ"
                              f"{': torch ' + str(env.get('torch')) if 'torch' in what else ''})")
    return records


def _corrupt(path, why):
    counters["warm"]["corrupt"] += 1
    key = os.path.abspath(path)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"bytegraph: ignoring cache file {path}: it {why}", stacklevel=2)
    else:
        log.debug("warm start: ignoring cache file %s: it %s", path, why)
    return None


def cache_dir():
    d = config.cache_dir
    if d is None:
        d = os.environ.get("BYTEGRAPH_CACHE_DIR") or None
    return d


def _file_for(rid):
    h = hashlib.sha256(repr(rid).encode()).hexdigest()[:24]
    return os.path.join(cache_dir(), f"{h}.bgc")


def save_cache(path):
    """Write the persistable entries of every compiled function to one file."""
    from .api import _all_states
    records = [r for r in (_state_record(s) for s in list(_all_states)) if r]
    _write(path, records)
    return len(records)


def load_cache(path):
    """Read a file written by save_cache (or an automatic one); its records are used on each
    function's first miss. Returns how many records were read."""
    records = _read(path)
    if not records:
        return 0
    with _lock:
        for r in records:
            if isinstance(r, dict) and "id" in r:
                _store[r["id"]] = r
    return len(records)


def after_install(state):
    """Automatic mode: rewrite this function's file after a successful compile."""
    if cache_dir() is None:
        return
    try:
        record = _state_record(state)
        if record is None:
            return
        os.makedirs(cache_dir(), exist_ok=True)
        _write(_file_for(record["id"]), [record])
        counters["warm"]["saved"] += 1
    except Exception as e:          # never break the user's program for a cache write
        log.info("warm start: could not save %s: %s: %s", state.name, type(e).__name__, e)


def enabled():
    return bool(_store) or cache_dir() is not None


# --------------------------------------------------------------------------
# load

def _find(state, args):
    tag = None
    rid = getattr(state, "warm_id", None)       # a resume function (warm_recipes._resume)
    if rid is None and _is_module_call(state):
        if not args or not isinstance(args[0], torch.nn.Module):
            return None
        try:
            tag = tuple(_Encoder().recipe(type(args[0])))
        except Unportable:
            return None
    rid = rid or record_id(state, tag)
    with _lock:
        rec = _store.get(rid)
    if rec is None and cache_dir() is not None:
        records = _read(_file_for(rid))
        for r in records or ():
            if isinstance(r, dict) and r.get("id") == rid:
                rec = r
    return rec


def _check_codes(rec_codes):
    for module, qualname, h in rec_codes:
        fns = []
        try:
            fns = _functions_of(_resolve(module, qualname))
        except Exception:
            pass
        if not any(function_hash(f) == h for f in fns):
            return f"inlined {module}.{qualname} changed or is gone"
    return None


def load(state, args=()):
    """Entries rebuilt from a matching record (not installed), or () on a miss."""
    try:
        rec = _find(state, args)
        if rec is None:
            counters["warm"]["miss"] += 1
            return ()
        if rec.get("hash") != function_hash(state.fn):
            why = f"the code of {state.name} changed"
        else:
            why = next(filter(None, (_check_codes(e["codes"]) for e in rec["entries"])), None)
        if why is not None:
            counters["warm"]["miss"] += 1
            log.info("warm start: stored entries of %s not used: %s", state.name, why)
            return ()
        return [_rebuild(state, e) for e in rec["entries"]]
    except Exception as e:
        counters["warm"]["miss"] += 1
        log.info("warm start: stored entries of %s not used: %s: %s", state.name, type(e).__name__, e)
        return ()


def _load_artifact(state, art, nodes, inputs, grad):
    """The compiled graph rebuilt from its stored inductor artifact, or None: no artifact,
    another backend, a stale one (its graph or settings differ: counted as
    `inductor_artifact_stale`) or one that failed to load (logged); the caller then has the
    backend compile the graph again."""
    from ..backends.registry import inductor, load_inductor_artifact
    if not art or state.raw_backend is not inductor:
        return None
    if art.get("graph") != _graph_key(nodes, inputs, grad):
        counters["warm"]["inductor_artifact_stale"] += 1
        log.info("warm start: inductor artifact of %s not used: its graph differs", state.name)
        return None
    from ..backends.calling import _backend_lock
    try:
        with _backend_lock, torch.set_grad_enabled(grad):
            compiled = load_inductor_artifact(art["env"], art["blob"], art.get("isas"))
    except Exception as e:
        counters["warm"]["inductor_artifact_failed"] += 1
        log.info("warm start: inductor artifact of %s not loaded: %s: %s", state.name,
                 type(e).__name__, e)
        return None
    if compiled is None:
        counters["warm"]["inductor_artifact_stale"] += 1
        log.info("warm start: inductor artifact of %s not used: inductor's settings or torch "
                 "differ", state.name)
        return None
    counters["warm"]["inductor_artifact"] += 1
    return compiled


def _rebuild(state, erec):
    from .convert import EAGER
    graphs = []
    for kind, payload, inputs, grad, *extra in erec["graphs"]:
        if kind == "forward":           # the eager backend's gm.forward, without fx's codegen
            graphs.append(_forward_of(payload))
            continue
        compiled = _load_artifact(state, extra[0] if extra else None, payload, inputs, grad)
        if compiled is not None:
            graphs.append(compiled)
            continue
        gm = _decode_graph(payload)
        with torch.set_grad_enabled(grad), compiling(gm):
            compiled = state.backend(gm, [_example(m) for m in inputs])
        if not callable(compiled):
            raise TypeError("the backend returned a non-callable")
        graphs.append(compiled)
    special = {"MISS": MISS, "EAGER": EAGER, "children": state.children, "own": state.fn}
    ns = {k: _build(r, graphs, special) for k, r in erec["namespace"].items()}
    fn = state.fn
    ns["__defaults"] = fn.__defaults__ or ()
    ns["__defaults_kw"] = fn.__kwdefaults__ or {}
    ns["_guard_error"] = state.guard_error_handler()
    adopter = _Adopter([_build(r, graphs, special) for r in erec["adopt"]])
    ns["__adopt"] = adopter.adopt
    exec(marshal.loads(erec["code"]), ns)
    entry = ns[erec["name"]]
    entry.__qualname__ = fn.__qualname__
    entry.__bytegraph_source__ = erec["source"]
    entry.__bytegraph_life__ = None
    entry.__bytegraph_warm_record__ = erec
    if not adopter.done:
        entry = adopter.wrap(entry, state)
        entry.__bytegraph_life__ = None
        entry.__bytegraph_warm_record__ = erec
    return entry
