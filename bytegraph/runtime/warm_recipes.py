"""Recipes for warm start: how an object of a cache entry is found again in another process.

An entry's namespace and its graphs' call targets are persisted as *recipes*, plain data naming
where the equivalent object lives (a module by name, a function by (module, qualname), a code
object through the function that holds it, a closure cell by its function and variable, a torch
dtype, an Enum member by class and name, an immutable constant, "graph k", ...). `_Encoder`
makes them at save time and raises `Unportable` for an object with no recipe, never guessing;
`_build` resolves them in the new process. Also here: the code and function hashes that key a
record and check that the functions a recipe names are still the ones the trace saw.
"""
import enum
import hashlib
import importlib
import sys
import types
import weakref

import torch
import torch.fx

from ..codegen.entry import MISS
from .warm_graph import _CONSTS, _fake_value, _value_meta

_TORCH_SINGLETONS = (torch.dtype, torch.layout, torch.memory_format)

class Unportable(Exception):
    """An object of an entry has no recipe: the entry is not persisted."""



# --------------------------------------------------------------------------
# code and function hashes

def _const_repr(c):
    if isinstance(c, types.CodeType):
        return "code:" + code_hash(c)
    if type(c) is types.FunctionType:       # a resume function's inner resume function
        return f"function:{c.__qualname__}:" + code_hash(c.__code__)
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
        self.children = None           # the compiled function's resume functions and trampoline
        self.base_rid = None           # the record id resume functions' record ids extend
        self.own = None                # a resume function whose entries these are
        self.own_rid = None            # and its record id

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
        if self.own is not None and obj is self.own:           # a resume function's own guards
            return ("own", "fn")
        if self.own is not None and obj is self.own.__code__:
            return ("own", "code")
        if self.children is not None:
            if obj is self.children.trampoline:
                return ("trampoline",)
            found = self._resume(obj)
            if found is not None:
                return found
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
            if module is None:      # not inlined (a closure the trace made and handed on):
                module = self._module_holding(obj)     # the module of an inlined code holding it
            for qn in (qualname, obj.co_qualname):
                fn = _function_with_code(module, qn, obj)
                if fn is not None:
                    return ("code", module, qn, _functions_of(_resolve(module, qn)).index(fn))
            outer = _outer_of(module, obj.co_qualname, obj)
            if outer is not None:
                self.outers.add(outer[:3])
                return ("nested_code",) + outer
            made = self._resume_with_code(obj)
            if made is not None:        # a resume function's code (a guard on an inlined one)
                return ("code_of", self.recipe(made))
            raise Unportable(f"code object {obj.co_qualname} not reached from a function")
        site = getattr(obj, "__bytegraph_site__", None) if type(obj) is types.FunctionType else None
        if site is not None:            # runtime/resume.py site_function: a stop's call, at the user's line
            return ("site", *site, self.recipe(obj.__globals__))
        options = getattr(obj, "vmap_options", None)
        if options is not None and isinstance(getattr(obj, "body", None), torch.fx.GraphModule):
            # a torch.vmap node's target (policy/vmap.py): its body graph and options
            return ("vmap", _encode_graph(obj.body, self), self.recipe(tuple(sorted(options.items()))))
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

    def _resume(self, obj):
        """("resume", ...): a resume function of this compiled function (runtime/resume.py
        ResumeCache), made again in a new process from its key: the code it was built from, the
        offset, stack layout, dead locals, ... For a compiled one also the record id its own
        entries are stored under (they are traced and saved on their own)."""
        key = self.children.resumes.key_of(obj)
        if key is None:
            return None
        code, offset, layout, dead, compiled, opaque, inner, structural = key
        state = getattr(obj, "__bytegraph_state__", None) if compiled else None
        rfn = state.fn if state is not None else obj
        if compiled and state is None:
            raise Unportable(f"resume function {rfn.__qualname__} with no compile state")
        inner_r = None if inner is None else [self.recipe(inner[0]), inner[1], inner[2]]
        if code not in self.codes:      # not inlined by this trace (a resume function's): its module
            self.codes[code] = (rfn.__globals__.get("__name__"), code.co_qualname)
        code_r = self.recipe(code)
        if rfn.__code__.co_freevars:
            self._check_free(rfn, code, code_r)
        if code_r[0] == "code":         # the record's key covers the code it is made from
            fn = _functions_of(_resolve(code_r[1], code_r[2]))[code_r[3]]
            self.outers.add((code_r[1], code_r[2], function_hash(fn)))
        body = [code_r, offset, layout, dead, compiled, opaque, inner_r, structural,
                self.recipe(rfn.__globals__)]
        rid = None
        if compiled:
            if self.base_rid is None:
                raise Unportable("a resume function with no record id to extend")
            # made while encoding a resume function's entry, its body may name that function
            # ("own"): the owner's record id joins it, or two owners' resume functions at the
            # same offset would share one record (rid[1] stays the root's: base_rid)
            rid = ("resume", self.base_rid, repr(body if self.own_rid is None else [self.own_rid, body]))
            state.warm_id = rid       # its entries are saved under this id (runtime/warm.py)
        return ("resume", body, rid)

    def _check_free(self, rfn, code, code_r):
        """A resume function with free variables (`__class__` of a method calling super(), a
        closure variable of the code it is made from) takes its cells from the function its
        code recipe finds again (`_closure_owner`): refused unless each of its cells is that
        function's very cell, here, so the new process's cells are the equivalent ones."""
        owner = _closure_owner(code_r, lambda _r: self._live_owner(code))
        if owner is None:
            raise Unportable(f"resume function {rfn.__qualname__} (free variables of code "
                             f"not found through a function)")
        for name, cell in zip(rfn.__code__.co_freevars, rfn.__closure__ or ()):
            try:
                same = _cell_of(owner, name) is cell
            except (ValueError, TypeError, AttributeError):
                same = False
            if not same:
                raise Unportable(f"resume function {rfn.__qualname__} (free variable {name} "
                                 f"is not a cell of {owner.__qualname__})")

    def _live_owner(self, code):
        """The live resume function made of `code` (the "own" / "code_of" code recipes)."""
        made = self.own if self.own is not None and self.own.__code__ is code else \
            self._resume_with_code(code)
        state = getattr(made, "__bytegraph_state__", None)
        return state.fn if state is not None else made

    def _resume_with_code(self, code):
        if self.children is None:
            return None
        for made, _shift in list(self.children.resumes.entries.values()):
            fn = getattr(made, "__bytegraph_state__", None)
            if (fn.fn if fn is not None else made).__code__ is code:
                return made
        return None

    def _module_holding(self, code):
        """The module of an inlined code object whose co_consts (recursively) hold `code` (a
        nested function the trace built with MAKE_FUNCTION but never called), or None."""
        for outer, (module, _qualname) in self.codes.items():
            if module is not None and _code_path(outer, code) is not None:
                return module
        return None

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


def _closure_owner(code_r, other):
    """The function whose closure a resume function made from the code of recipe `code_r`
    shares: the function a ("code", ...) recipe names, or (through `other`) the resume
    function an ("own", ...) / ("code_of", ...) recipe names; None for any other code (a
    nested function's code: its cells belong to one instance, which no recipe finds)."""
    if code_r[0] == "code":
        return _functions_of(_resolve(code_r[1], code_r[2]))[code_r[3]]
    if code_r[0] in ("own", "code_of") and (code_r[0] != "own" or code_r[1] == "code"):
        return other(code_r)
    return None


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
    if kind == "site":
        from .resume import site_function
        return site_function(recipe[1], recipe[2], recipe[3], _build(recipe[4], graphs, special))
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
    if kind == "vmap":
        from ..policy.vmap import _vmap_target
        return _vmap_target(_decode_graph(recipe[1]), **dict(_build(recipe[2], graphs, special)))
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
    if kind == "own":
        fn = special["own"]
        return fn if recipe[1] == "fn" else fn.__code__
    if kind == "code_of":
        made = _build(recipe[1], graphs, special)
        state = getattr(made, "__bytegraph_state__", None)
        return (state.fn if state is not None else made).__code__
    if kind == "trampoline":
        return special["children"].trampoline
    if kind == "resume":
        code_r, offset, layout, dead, compiled, opaque, inner_r, structural, globals_r = recipe[1]
        inner = None if inner_r is None else (_build(inner_r[0], graphs, special), inner_r[1], inner_r[2])
        key = (_build(code_r, graphs, special), offset, tuple(layout), tuple(dead), compiled,
               tuple(opaque), inner, structural)
        owner = None
        # cells of the function found again (_Encoder._check_free): only `__class__` stays a free
        # variable of a resume function (the others are parameters, their cells passed in)
        if "__class__" in key[0].co_freevars:
            owner = _closure_owner(code_r, lambda r: _built_owner(r, graphs, special))
            if owner is None:
                raise LookupError("a resume function with free variables and no function")
        cells = None if owner is None else (lambda names: tuple(_cell_of(owner, n) for n in names))
        fn = special["children"].resumes.rebuild(key, _build(globals_r, graphs, special), cells)
        if compiled:
            fn.__bytegraph_state__.warm_id = recipe[2]
        return fn
    raise ValueError(f"unknown recipe {kind!r}")


def _built_owner(recipe, graphs, special):
    if recipe[0] == "own":
        return special["own"]
    made = _build(recipe[1], graphs, special)
    state = getattr(made, "__bytegraph_state__", None)
    return state.fn if state is not None else made


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
# graphs <-> node lists (a vmap node's body is one too)

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

