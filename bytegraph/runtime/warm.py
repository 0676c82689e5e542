"""Warm start from disk: persist cache entries, and install them in a fresh process.

A *record* holds, for one compiled function (and backend), the entries that can be rebuilt in
another process: each entry's generated source, its namespace as *recipes* (how to find each
object again: a module by name, a function by (module, qualname), a module's globals dict, a
torch dtype, an immutable constant, "graph k", ...), its fx graphs as plain node lists with the
metadata of their example inputs, and the key that decides whether the record still applies: a
hash of the function's code and of every code object the trace inlined, the torch, Python and
bytegraph versions, and the backend. An entry whose namespace holds an object with no recipe (an
nn.Module or tensor the guards pin by identity, a closure cell, a user instance, a resume
function) is not persisted: counted in counters["warm"]["unportable"], never guessed.

Loading happens on a function's first miss: the record is checked against the live code, its
recipes are resolved, its graphs are compiled by the backend (from example inputs rebuilt with
torch.empty_strided), and the stored source is executed into the rebuilt namespace. The entry's
own guards then decide whether it serves the call; when they reject it, the function is traced
as usual. Any failure on the way ignores the record; a file that cannot be read (truncated,
random bytes, another format or torch version) is ignored with one warning per file.
"""
import enum
import functools
import hashlib
import importlib
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
from .warm_graph import _CONSTS, _Graph, _GRAPH_FILE, _example, _fake_value, _marshal, _value_meta

FORMAT = 3
_MAGIC = b"bytegraph-warm-cache\n"
_TORCH_SINGLETONS = (torch.dtype, torch.layout, torch.memory_format)

_store = {}                  # record id -> record (load_cache, and files read on a first miss)
_warned = set()              # files already warned about
_lock = threading.Lock()
_version = {}


class Unportable(Exception):
    """An object of an entry has no recipe: the entry is not persisted."""


# --------------------------------------------------------------------------
# versions and code hashes

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


def _const_repr(c):
    if isinstance(c, types.CodeType):
        return "code:" + code_hash(c)
    if isinstance(c, (frozenset, set)):
        return type(c).__name__ + repr(sorted(_const_repr(x) for x in c))
    if isinstance(c, tuple):
        return "(" + ",".join(_const_repr(x) for x in c) + ")"
    return f"{type(c).__qualname__}:{c!r}"


_code_hashes = weakref.WeakKeyDictionary()     # code object -> code_hash (equal codes, equal hashes)


def code_hash(code):
    """A hash of what a code object does (not where it is: line numbers are left out).
    Memoized per code object: a load re-checks every inlined function."""
    try:
        return _code_hashes[code]
    except KeyError:
        pass
    h = hashlib.sha256(code.co_code + b"\0" + code.co_exceptiontable)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                   code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                   code.co_flags, code.co_name, code.co_qualname)).encode())
    for c in code.co_consts:
        h.update(b"\0" + _const_repr(c).encode())
    out = _code_hashes[code] = h.hexdigest()
    return out


def _stable_repr(v):
    """A repr that is the same in every process: functions and classes by name, containers by
    their members, other objects by type when their repr names an address (the trace guards
    what it reads of them)."""
    if isinstance(v, (tuple, list)):
        return type(v).__name__ + "(" + ",".join(_stable_repr(x) for x in v) + ")"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k!r}:{_stable_repr(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (types.FunctionType, type, types.BuiltinFunctionType)):
        return f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', '?')}"
    text = repr(v)
    return type(v).__qualname__ if " at 0x" in text else f"{type(v).__qualname__}:{text}"


def function_hash(fn):
    """code_hash plus the (stable) reprs of the defaults."""
    kw = sorted((fn.__kwdefaults__ or {}).items())
    return hashlib.sha256(f"{code_hash(fn.__code__)}|{_stable_repr(fn.__defaults__)}|"
                          f"{_stable_repr(kw)}".encode()).hexdigest()


def _resolve(module, qualname):
    obj = sys.modules.get(module)
    if obj is None:
        obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _functions_of(obj):
    """The plain functions an attribute stands for (a property has up to three)."""
    if isinstance(obj, property):
        return [f for f in (obj.fget, obj.fset, obj.fdel) if f is not None]
    if isinstance(obj, (types.MethodType, staticmethod, classmethod)):
        obj = obj.__func__
    out = []
    while isinstance(obj, types.FunctionType):
        out.append(obj)
        obj = getattr(obj, "__wrapped__", None)
    return out


def _function_with_code(module, qualname, code):
    """The function at (module, qualname) whose code is `code` (identity), else None."""
    if module is None or "<" in qualname:
        return None
    try:
        obj = _resolve(module, qualname)
    except Exception:
        return None
    for fn in _functions_of(obj):
        if fn.__code__ is code:
            return fn
    return None


def _code_path(code, target):
    """Indices through co_consts from `code` to the nested code object `target`, or None."""
    for i, c in enumerate(code.co_consts):
        if c is target:
            return [i]
        if isinstance(c, types.CodeType):
            rest = _code_path(c, target)
            if rest is not None:
                return [i] + rest
    return None


def _outer_of(module, qualname, code):
    """(module, outer qualname, outer function hash, path) for a code object defined inside a
    module-level function (`deco.<locals>.wrapper`): found again through the outer function's
    code, whose hash covers it."""
    if module is None or "<locals>" not in qualname:
        return None
    outer_name = qualname.split(".<locals>", 1)[0]
    if "<" in outer_name:
        return None
    try:
        fns = _functions_of(_resolve(module, outer_name))
    except Exception:
        return None
    for fn in fns:
        path = _code_path(fn.__code__, code)
        if path is not None:
            return (module, outer_name, function_hash(fn), fns.index(fn), tuple(path))
    return None


def _nested_codes(code, out):
    for c in code.co_consts:
        if isinstance(c, types.CodeType) and c not in out:
            out.add(c)
            _nested_codes(c, out)


# --------------------------------------------------------------------------
# recipes: how to find a namespace object again in another process

def _is_const(obj):
    if type(obj) in _CONSTS:
        return True
    if type(obj) in (tuple, frozenset):
        return all(_is_const(x) for x in obj)
    return False


class _Encoder:
    """Recipes for the objects of one save (the module-attribute index is built once)."""

    def __init__(self, graphs=(), codes=None):
        self.graphs = {id(compiled): k for k, (compiled, *_rest) in enumerate(graphs)}
        self.codes = codes or {}       # code object -> (module, qualname) where the trace met it
        self.outers = set()            # (module, qualname, hash) of functions nested codes came from
        self.classes = ()              # classes of the namespace (class attributes are looked up there)
        self._cells = None             # id -> recipe of the inlined functions' cells and defaults
        self.static_weak = {}          # weak name -> ("returns", recipe): a module-level object

    def recipe(self, obj):
        from .convert import EAGER
        if obj is MISS:
            return ("sentinel", "MISS")
        if obj is EAGER:
            return ("sentinel", "EAGER")
        if type(obj) in (tuple, dict) and obj and self.codes:
            found = self._cell(obj)          # some function's __defaults__ / __kwdefaults__
            if found is not None:
                return found
        if _is_const(obj):
            return ("const", obj)
        if type(obj) is tuple:
            return ("tuple", [self.recipe(x) for x in obj])
        if type(obj) is frozenset:
            # membership only: generated code that iterates a set is not persisted (hash_dependent)
            return ("frozenset", [self.recipe(x) for x in obj])
        if id(obj) in self.graphs:
            return ("graph", self.graphs[id(obj)])
        if isinstance(obj, torch._ops._OpNamespace) and getattr(torch.ops, obj.name, None) is obj:
            return ("torch_ops", obj.name)
        if isinstance(obj, torch._ops.OpOverloadPacket):
            ns, _, name = obj._qualified_op_name.partition("::")
            if getattr(getattr(torch.ops, ns, None), name, None) is obj:
                return ("torch_op", ns, name)
        if isinstance(obj, types.ModuleType):
            if sys.modules.get(obj.__name__) is obj:
                return ("module", obj.__name__)
            raise Unportable(f"module {obj.__name__} not in sys.modules")
        if isinstance(obj, _TORCH_SINGLETONS):
            name = str(obj).rpartition(".")[2]
            if getattr(torch, name, None) is obj:
                return ("torch", name)
        if isinstance(obj, torch.device):
            return ("device", str(obj))
        if isinstance(obj, enum.Enum):
            found = self._enum_member(obj)
            if found is not None:
                return found
        if type(obj) is dict and isinstance(obj.get("__name__"), str) and \
                getattr(sys.modules.get(obj["__name__"]), "__dict__", None) is obj:
            return ("globals", obj["__name__"])
        if isinstance(obj, types.CodeType):
            module, qualname = self.codes.get(obj, (None, ""))
            for qn in (qualname, obj.co_qualname):
                fn = _function_with_code(module, qn, obj)
                if fn is not None:
                    return ("code", module, qn, _functions_of(_resolve(module, qn)).index(fn))
            outer = _outer_of(module, obj.co_qualname, obj)
            if outer is not None:
                self.outers.add(outer[:3])
                return ("nested_code",) + outer
            raise Unportable(f"code object {obj.co_qualname} not reached from a function")
        if isinstance(obj, (types.FunctionType, type, types.BuiltinFunctionType)) or callable(obj):
            module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
            if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
                try:
                    found = _resolve(module, qualname)
                    if found is obj:
                        return ("attr", module, qualname)
                    fns = _functions_of(found)
                    if obj in fns:          # a decorated function, under its wrapper's name
                        return ("func", module, qualname, fns.index(obj))
                except Exception:
                    pass
        if isinstance(obj, types.CellType) and self.codes:
            found = self._cell(obj)
            if found is not None:
                return found
        if isinstance(obj, torch.nn.Module):
            from ..policy.calls import MADE_MODULES
            made = MADE_MODULES.get(obj)
            if made is not None:       # a stateless module the trace built (nn.ReLU()(x))
                cls, args, kwargs = made
                return ("made_module", self.recipe(cls), [self.recipe(a) for a in args],
                        {k: self.recipe(v) for k, v in kwargs.items()})
        if isinstance(obj, (types.CellType, torch.nn.Module, torch.Tensor)):
            raise Unportable(f"{type(obj).__name__} {_short(obj)} has no recipe")
        owner = getattr(obj, "__objclass__", None)      # a slot wrapper / method descriptor
        if isinstance(owner, type) and vars(owner).get(getattr(obj, "__name__", None)) is obj:
            return ("classattr", self.recipe(owner), obj.__name__)
        for cls in self.classes:                         # a class attribute (a dict, a list)
            for name, value in vars(cls).items():
                if value is obj:
                    return ("classattr", self.recipe(cls), name)
        found = self._module_attr(obj)
        if found is not None:
            return ("attr",) + found
        raise Unportable(f"{type(obj).__name__} {_short(obj)} has no recipe")

    def _enum_member(self, obj):
        """("enum", class recipe, name): an Enum member, found again by its class and its
        (canonical) name -- members are the class's singletons, in every process."""
        cls = type(obj)
        if not isinstance(cls, enum.EnumMeta) or cls._member_map_.get(obj.name) is not obj:
            return None
        try:
            return ("enum", self.recipe(cls), obj.name)
        except Unportable:
            return None

    def _cell(self, cell):
        """("cell", module, qualname, k, name): a closure cell of a module-level function the
        trace inlined (a decorator's wrapper holding the decorated function), by its place;
        ("cell", module, qualname, k, "__defaults__" / "__kwdefaults__"): its defaults."""
        if self._cells is None:
            self._cells = self._index_cells()
        return self._cells.get(id(cell))

    def _index_cells(self):
        found = {}
        for code, (module, qualname) in self.codes.items():
            for qn in (qualname, code.co_qualname):
                if module is None or "<" in qn:
                    continue
                try:
                    fns = _functions_of(_resolve(module, qn))
                except Exception:
                    continue
                for k, fn in enumerate(fns):
                    _index_fn(found, fn, ("cell", module, qn, k))
        # functions a class holds (a class decorator's replacement `forward`, whose qualname
        # names the decorator's scope): by the class and the attribute
        for cls in self.classes:
            place = None
            for attr, value in list(vars(cls).items()):
                for k, fn in enumerate(_functions_of(value)):
                    if place is None:
                        try:
                            place = self.recipe(cls)
                        except Unportable:
                            break
                    _index_fn(found, fn, ("classcell", place, attr, k))
        return found

    def _module_attr(self, obj):
        """(module, name) of a module-level object of an imported module (e.g. torch's global
        hook dicts), preferring the shortest module name. The index is rebuilt when modules
        were imported since, or when what it names is no longer that object."""
        # first the modules the trace ran code of (cheap), then an index of every module
        own = getattr(obj, "__module__", None)
        mods = sorted({m for m, _ in self.codes.values() if m} | {"torch.nn.modules.module", "types"}
                      | ({own} if isinstance(own, str) else set()), key=lambda m: (len(m), m))
        for mname in mods:
            d = getattr(sys.modules.get(mname), "__dict__", None) or {}
            for name, value in d.items():
                if value is obj and not (name.startswith("__") and name.endswith("__")):
                    return (mname, name)
        if _attr_index.get("n") != len(sys.modules):
            _build_attr_index()
        found = _attr_index["index"].get(id(obj))
        if found is not None and getattr(sys.modules.get(found[0]), found[1], None) is not obj:
            _build_attr_index()         # stale: names were rebound since
            found = _attr_index["index"].get(id(obj))
        if found is not None and getattr(sys.modules.get(found[0]), found[1], None) is obj:
            return found
        return None   # (an object bound to a module global after the index was built: unportable)

    def arg(self, a):
        """A graph node argument as plain data."""
        if isinstance(a, torch.fx.Node):
            return ("node", a.name)
        if isinstance(a, (tuple, list)) and not hasattr(a, "_fields"):    # fx's immutable_list too
            return ("tuple" if isinstance(a, tuple) else "list", [self.arg(x) for x in a])
        if isinstance(a, dict):
            return ("dict", [(self.arg(k), self.arg(v)) for k, v in a.items()])
        if type(a) is slice:
            return ("slice", self.arg(a.start), self.arg(a.stop), self.arg(a.step))
        if type(a) in _CONSTS:
            return ("const", a)
        if a is Ellipsis:
            return ("ellipsis",)
        return ("obj", self.recipe(a))


def _index_fn(found, fn, place):
    """Index fn's closure cells and defaults tuples under `place` + (free variable name or
    "__defaults__" / "__kwdefaults__"), keeping earlier entries."""
    if type(fn) is not types.FunctionType:     # isinstance() believes a faked __class__
        return
    if fn.__closure__:
        for name, c in zip(fn.__code__.co_freevars, fn.__closure__):
            found.setdefault(id(c), place + (name,))
    for name in ("__defaults__", "__kwdefaults__"):
        if getattr(fn, name):
            found.setdefault(id(getattr(fn, name)), place + (name,))


def _cell_of(fn, name):
    if name in ("__defaults__", "__kwdefaults__"):
        return getattr(fn, name)
    return fn.__closure__[fn.__code__.co_freevars.index(name)]


_attr_index = {}


def _build_attr_index():
    index = {}
    for mname, mod in sorted(list(sys.modules.items()), key=lambda kv: (len(kv[0]), kv[0])):
        d = getattr(mod, "__dict__", None)
        if not isinstance(mod, types.ModuleType) or type(d) is not dict:
            continue
        for name, value in list(d.items()):
            if not (name.startswith("__") and name.endswith("__")):
                index.setdefault(id(value), (mname, name))
    _attr_index.update(index=index, n=len(sys.modules))


def _short(obj):
    try:
        text = repr(obj)
    except Exception:
        text = object.__repr__(obj)
    return text if len(text) < 80 else text[:77] + "..."


def _build(recipe, graphs, special):
    kind = recipe[0]
    if kind == "const":
        return recipe[1]
    if kind == "tuple":
        return tuple(_build(r, graphs, special) for r in recipe[1])
    if kind == "frozenset":
        return frozenset(_build(r, graphs, special) for r in recipe[1])
    if kind == "returns":
        obj = _build(recipe[1], graphs, special)
        return lambda: obj
    if kind == "sentinel":
        return special[recipe[1]]
    if kind == "graph":
        return graphs[recipe[1]]
    if kind == "module":
        return sys.modules.get(recipe[1]) or importlib.import_module(recipe[1])
    if kind == "torch":
        obj = getattr(torch, recipe[1])
        if not isinstance(obj, _TORCH_SINGLETONS):
            raise TypeError(f"torch.{recipe[1]} is not a dtype/layout/memory format")
        return obj
    if kind == "torch_ops":
        return getattr(torch.ops, recipe[1])
    if kind == "torch_op":
        return getattr(getattr(torch.ops, recipe[1]), recipe[2])
    if kind == "device":
        return torch.device(recipe[1])
    if kind == "globals":
        mod = sys.modules.get(recipe[1]) or importlib.import_module(recipe[1])
        return mod.__dict__
    if kind == "attr":
        return _resolve(recipe[1], recipe[2])
    if kind == "classattr":
        return vars(_build(recipe[1], graphs, special))[recipe[2]]
    if kind == "made_module":
        from ..policy.calls import make_module_again
        mod = make_module_again(_build(recipe[1], graphs, special),
                                [_build(r, graphs, special) for r in recipe[2]],
                                {k: _build(r, graphs, special) for k, r in recipe[3].items()})
        if mod is None:
            raise TypeError("the module has parameters now")
        return mod
    if kind == "enum":
        cls = _build(recipe[1], graphs, special)
        if not isinstance(cls, enum.EnumMeta):
            raise TypeError(f"{cls!r} is not an Enum class")
        return cls._member_map_[recipe[2]]
    if kind == "func":
        return _functions_of(_resolve(recipe[1], recipe[2]))[recipe[3]]
    if kind == "cell":
        return _cell_of(_functions_of(_resolve(recipe[1], recipe[2]))[recipe[3]], recipe[4])
    if kind == "classcell":
        cls = _build(recipe[1], graphs, special)
        return _cell_of(_functions_of(vars(cls)[recipe[2]])[recipe[3]], recipe[4])
    if kind == "nested_code":
        fn = _functions_of(_resolve(recipe[1], recipe[2]))[recipe[4]]
        if function_hash(fn) != recipe[3]:
            raise LookupError(f"{recipe[1]}.{recipe[2]} changed")
        code = fn.__code__
        for i in recipe[5]:
            code = code.co_consts[i]
        return code
    if kind == "code":
        return _functions_of(_resolve(recipe[1], recipe[2]))[recipe[3]].__code__
    raise ValueError(f"unknown recipe {kind!r}")


def _decode_arg(a, env):
    kind = a[0]
    if kind == "node":
        return env[a[1]]
    if kind in ("tuple", "list"):
        items = [_decode_arg(x, env) for x in a[1]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {_decode_arg(k, env): _decode_arg(v, env) for k, v in a[1]}
    if kind == "slice":
        return slice(*(_decode_arg(x, env) for x in a[1:]))
    if kind == "const":
        return a[1]
    if kind == "ellipsis":
        return Ellipsis
    return _build(a[1], None, None)


# --------------------------------------------------------------------------
# graphs and entries -> records (what convert attaches to an entry: warm_graph.GraphInfo)

def _encode_graph(gm, enc):
    nodes = []
    for n in gm.graph.nodes:
        if n.op in ("get_attr", "call_module"):
            raise Unportable(f"graph node {n.op} {n.target}")
        target = n.target if n.op != "call_function" else enc.recipe(n.target)
        nodes.append((n.op, n.name, target, enc.arg(n.args), enc.arg(n.kwargs),
                      _value_meta(n.meta.get("example_value"))))
    if list(gm.parameters()) or list(gm.buffers()):
        raise Unportable("graph holds tensors")
    return nodes


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
    env, blob = found
    return {"env": env, "graph": _graph_key(nodes, info.inputs, info.grad), "blob": blob}


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


def _decode_graph(nodes):
    from torch._subclasses.fake_tensor import FakeTensorMode
    mode = FakeTensorMode()        # the example values' mode (a trace's is also its own)
    g = torch.fx.Graph()
    env = {}
    for op, name, target, args, kwargs, value in nodes:
        if op == "call_function":
            target = _build(target, None, None)
        node = env[name] = g.create_node(op, target, _decode_arg(args, env), _decode_arg(kwargs, env),
                                         name=name)
        if value is not None:
            node.meta["example_value"] = _fake_value(value, mode)
    return torch.fx.GraphModule(torch.nn.Module(), g)


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
    if _function_with_code(fn.__module__, fn.__qualname__, fn.__code__) is not fn:
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
    return {"id": record_id(state, tag), "hash": function_hash(fn), "entries": entries}


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
    if _is_module_call(state):
        if not args or not isinstance(args[0], torch.nn.Module):
            return None
        try:
            tag = tuple(_Encoder().recipe(type(args[0])))
        except Unportable:
            return None
    rid = record_id(state, tag)
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
            compiled = load_inductor_artifact(art["env"], art["blob"])
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
        with torch.set_grad_enabled(grad):
            compiled = state.backend(gm, [_example(m) for m in inputs])
        if not callable(compiled):
            raise TypeError("the backend returned a non-callable")
        graphs.append(compiled)
    special = {"MISS": MISS, "EAGER": EAGER}
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
