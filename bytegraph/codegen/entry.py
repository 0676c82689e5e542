"""Generate the entry function of one cache entry, as Python source.

    def __entry(<the user's parameters, same names and kinds>):
        try:
            if not (<guards>): return MISS
        except Exception as __e: return _guard_error(__e)   # counted, reported, a miss
        __g_a, __g_b = __graph_0(<input sources...>)      # one line per graph
        <Python code of a graph break; then the next graph, ...>
        <side effects replayed>
        return <the return value rebuilt from graph outputs, sources and constants>

The entry function has the user function's signature, so CPython binds the
arguments in C; a cache hit costs this one call plus its guard expression.
Objects the code needs (globals dicts, types, the compiled graph) are bound into
its namespace under short names by `Codegen.const`.

Values that are mutable and built by the trace (a new list, an instance of a user
class) are materialized once into a local (`Codegen.mutable`) so that identity is
preserved when the same object is returned twice or stored in two places.

User-owned data the guards name (nn.Modules, tensors, instances of user classes; see
holds_weakly) is bound *weakly*: the namespace holds a `weakref.ref` and the guard reads
`_name()`. When one of them dies the entry is dead (`EntryLife`): its names are rebound to a
sentinel no guard accepts, a guard that raises because of it is a silent miss, and the runtime
drops the entry (the callback it installs). So a cache entry never keeps a dropped model alive.
Everything after the guards binds strongly, so it never reads a dead reference: the epilogue
(bound after `end_guards`) and a graph break's Python part (rendered mid-trace, under `no_bind`).
"""
import inspect
import re
import types
import weakref

import torch

from ..exc import Unsupported
from ..values.base import is_trusted_module

MISS = type("MISS", (), {"__repr__": lambda self: "<cache miss>"})()
_DEAD = object()      # what a dead weak binding reads as: no guard accepts it, attribute reads raise


def _dead_ref():
    return _DEAD


def holds_weakly(obj):
    """Should an entry hold `obj` weakly? Yes for the data the user owns and may drop:
    nn.Modules, tensors, instances of classes outside torch/the standard library. No for
    functions and classes: they are small, and the trace guards a function by identity, so a
    weakly held closure made anew for each call (`f(x, lambda t: ...)`) would drop its entry
    after every call and recompile up to config.accumulated_cache_size_limit times instead of
    stopping at config.cache_size_limit. No for library objects and modules."""
    if isinstance(obj, (types.FunctionType, type)):
        return False
    if isinstance(obj, (torch.nn.Module, torch.Tensor)):
        return True
    if isinstance(obj, (types.ModuleType, types.CodeType, types.MethodType, weakref.ref)):
        return False
    mod = getattr(type(obj), "__module__", None) or ""
    return not (is_trusted_module(mod) or mod.split(".")[0] == "bytegraph")


class EntryLife:
    """The weak bindings of one entry. Passed as the callback of each weakref: the first death
    marks the entry dead, rebinds its weak names to a reader of the `_DEAD` sentinel (a thread
    still walking an old entries tuple then misses, rather than reading None), and calls
    `on_dead` (the runtime's: drop the entry from its cache)."""
    __slots__ = ("dead", "names", "ns", "on_dead", "__weakref__")

    def __init__(self):
        self.dead = False
        self.names = []
        self.ns = None
        self.on_dead = None

    def __call__(self, _ref=None):
        if self.dead:
            return
        self.dead = True
        self._rebind()
        on_dead = self.on_dead
        if on_dead is not None:
            self.on_dead = None
            try:
                on_dead()
            except Exception:       # a weakref callback must not raise (it would be printed)
                pass

    def _rebind(self):
        ns = self.ns
        if ns is not None:
            for name in self.names:
                ns[name] = _dead_ref

    def guard_error_handler(self, on_guard_error):
        """A guard that raised because a weak binding died is a plain miss, not a guard error."""
        def handler(exc):
            if self.dead:
                return MISS
            return on_guard_error(exc)
        return handler


class Codegen:
    def __init__(self):
        self.namespace = {"MISS": MISS}
        self._ids = {}               # id(obj) -> name (strong bindings)
        self._weak_ids = {}          # id(obj) -> expression `name()` (weak bindings)
        self._keep = []              # keep bound objects alive for id() stability (until finish)
        self._owned = {}             # id(obj) -> obj the trace created: bound strongly (own)
        self.weak_ok = True          # guards are being built: user objects may be bound weakly
        self.life = None             # EntryLife, once something is bound weakly
        self.lines = []              # statements of the epilogue (materialized temporaries)
        self._temps = {}             # id(value) -> temp name
        self._building = set()       # ids of values whose build() is running (mutable)
        self.temp_values = {}        # id(value) -> value (kept alive, so ids stay unique)
        self._sources = {}           # Source -> local bound on its first use
        self.used_nodes = {}         # fx Node of a computed tensor the Python code reads -> its local
        self.no_bind = False         # render sources without binding new locals (see source())
        self.hash_dependent = False  # code that is right only under this process's hashes (warm.py)

    def source(self, src):
        """Expression for a chained Source. Its first rendering binds a local (`(__sN := e)`);
        later renderings are just `__sN`. Sound because the entry function evaluates guards,
        graph arguments and epilogue in the order they were generated."""
        name = self._sources.get(src)
        if name is not None:
            return name
        raw = src.render(self)
        if self.no_bind:
            # code placed before later-rendered code (a graph break's Python part): a binding
            # made here could be read by text that runs earlier, so none is made
            return raw
        name = f"__s{len(self._sources)}"
        self._sources[src] = name
        return f"({name} := {raw})"

    def bound(self, src):
        """The local a source was bound to, if it was; else its plain expression."""
        return self._sources.get(src) or src.expr(self)

    def const(self, obj, hint="c"):
        """An expression for `obj`, bound into the namespace: a name, or `name()` for a weak
        binding (guards only, see holds_weakly)."""
        # guards may bind weakly; code the entry runs after them must not (a graph break's
        # Python part is rendered mid-trace, with no_bind set: see source())
        weak = self.weak_ok and not self.no_bind
        if weak:
            expr = self._weak_ids.get(id(obj))
            if expr is not None:
                return expr
        name = self._ids.get(id(obj))
        if name is not None:
            return name
        base = "".join(ch if ch.isalnum() else "_" for ch in str(hint))[:24] or "c"
        name = f"_{base}_{len(self._ids) + len(self._weak_ids)}"
        if weak and holds_weakly(obj) and id(obj) not in self._owned:
            if self.life is None:
                self.life = EntryLife()
            try:
                ref = weakref.ref(obj, self.life)
            except TypeError:            # not weak-referenceable: bound strongly below
                pass
            else:
                self.life.names.append(name)
                self._weak_ids[id(obj)] = expr = f"{name}()"
                self._keep.append(obj)
                self.namespace[name] = ref
                return expr
        self._ids[id(obj)] = name
        self._keep.append(obj)
        self.namespace[name] = obj
        return name

    def own(self, obj):
        """`obj` was created by the trace itself (nothing outside the entry holds it), so the
        entry owns it: bound strongly, else it would die with the trace and kill the entry."""
        self._owned[id(obj)] = obj

    def end_guards(self):
        """The guards are complete: what is bound from now on (graph, epilogue) is bound
        strongly, so code after the guards never reads a dead weak reference."""
        self.weak_ok = False

    def finish(self, ns):
        """The entry function exists: drop what only the trace needed (so that the weak
        bindings are the only references the entry holds to those objects)."""
        self._keep = []
        self._owned = {}
        self._sources = {}
        self._temps = {}
        self.temp_values = {}
        self.used_nodes = {}
        self._ids = {}
        self._weak_ids = {}
        life = self.life
        if life is not None:
            life.ns = ns
            if life.dead:           # something died during the trace: the entry is dead
                life._rebind()

    def expr(self, value):
        """Python expression that evaluates to `value` after the graph ran."""
        from ..values.tensor import TensorValue
        if isinstance(value, TensorValue):
            node = value.node
            if node.meta.get("vmap_body"):
                raise Unsupported("a tensor computed inside a torch.vmap body is used outside it",
                                  kind="vmap_escape")
            if node.op != "placeholder":
                return self.graph_output(node)
            if value.source is not None:
                return value.source.expr(self)
            raise Unsupported("internal: tensor value is neither a graph output nor an input",
                              kind="internal")
        return value.reconstruct(self)

    def graph_output(self, node):
        """The local that holds what graph node `node` computed, once the graph ran (the node
        becomes an output of its graph)."""
        name = self.used_nodes.get(node)
        if name is None:
            name = self.used_nodes[node] = f"__g_{node.name}"
        return name

    def temps(self, prefix, out):
        """A function that evaluates an expression into a new local `<prefix>N`, appending to
        `out` the materializations the expression needed first, then the assignment."""
        def temp(expr):
            name = f"{prefix}{len(out)}"
            out.extend(self.lines)
            self.lines.clear()
            out.append(f"{name} = {expr}")
            return name
        return temp

    def mutable(self, value, build, fill=None):
        """The local holding the value the trace created, `name = build()` on first use. With
        `fill`, `build()` makes it empty and `fill(name)` is a statement filling it in, run
        after the local exists: values it holds may refer back to it (a reference cycle).
        Without `fill`, a value that reaches itself cannot be built: refused."""
        name = self._temps.get(id(value))
        if name is None:
            if getattr(value, "source", None) is not None and not getattr(value, "_rebuilt", False):
                return value.source.expr(self)
            name = f"__t{len(self._temps)}"
            self._temps[id(value)] = name
            self.temp_values[id(value)] = value
            if fill is not None:
                self.lines.append(f"{name} = {build()}")
                self.lines.append(fill(name))
            else:
                self._building.add(id(value))
                try:
                    expr = build()
                finally:
                    self._building.discard(id(value))
                self.lines.append(f"{name} = {expr}")
        elif id(value) in self._building:
            raise Unsupported(f"a {value.python_type().__name__} the trace created that holds "
                              "itself (a reference cycle)", kind="reference_cycle")
        return name


def signature_source(code, defaults_name, has_defaults, kwdefaults):
    """Parameter list text matching the code object's signature."""
    names = code.co_varnames
    npos = code.co_argcount
    nposonly = code.co_posonlyargcount
    nkw = code.co_kwonlyargcount
    ndef = has_defaults
    parts = []
    for i in range(npos):
        p = names[i]
        j = i - (npos - ndef)
        if j >= 0:
            p += f"={defaults_name}[{j}]"
        parts.append(p)
        if nposonly and i == nposonly - 1:
            parts.append("/")
    idx = npos + nkw
    if code.co_flags & inspect.CO_VARARGS:
        parts.append("*" + names[idx])
        idx += 1
    elif nkw:
        parts.append("*")
    for i in range(npos, npos + nkw):
        p = names[i]
        if kwdefaults and p in kwdefaults:
            p += f"={defaults_name}_kw[{p!r}]"
        parts.append(p)
    if code.co_flags & inspect.CO_VARKEYWORDS:
        parts.append("**" + names[idx])
    return ", ".join(parts)


def _miss_on_guard_error(exc):
    return MISS


_CHUNK = 64      # cached locals per tuple: unpacking n names needs n stack slots in the frame


def _chunks(names):
    """(tuple expression, unpacking target) for `names`: flat up to _CHUNK names, else a tuple
    of tuples of at most _CHUNK (so neither building nor unpacking it needs a stack slot per
    name: the frame stays small, see guard_block)."""
    def tup(ns_):
        return ", ".join(ns_) + ("," if len(ns_) == 1 else "")
    if len(names) <= _CHUNK:
        return f"({tup(names)})", tup(names)
    parts = [f"({tup(names[i:i + _CHUNK])})" for i in range(0, len(names), _CHUNK)]
    return f"({tup(parts)})", tup(parts)


def guard_block(guards, body_text, ns, param_names=None, name="__entry"):
    """The entry's guard statements. With no guard the module generation counter covers
    (guards/generation.py), one `and` chain. Otherwise two paths: while the counter equals the
    one cached by the last call that passed every guard, the locals those guards bound (child
    modules, parameters, ...) are read from that cache and only the guards the counter does not
    cover run; else every guard runs, and passing them refreshes the cache.

    The full check runs in a function of its own (`__full_<name>`), which returns the locals the
    code after the guards reads: its thousands of guards bind as many locals, and CPython 3.11
    allocates (mmap) and frees a data-stack chunk on every call of a function whose frame
    (locals plus stack slots) exceeds 16 KB: hf/kosmos-2.5's and hf/cvt's entries (1600-2000
    locals, 400-800 stack slots for the cached tuple) paid about 20 us a call for that. For
    the same reason the cached locals are packed in tuples of at most _CHUNK."""
    if isinstance(guards, str):
        return ["    try:", f"        if not ({guards}):", "            return MISS"], []
    from ..guards.generation import GEN, NO_STATE, EntryCache, split
    sp = split(guards, body_text)
    if sp.fast is None:
        return ["    try:", f"        if not ({sp.full}):", "            return MISS"], []
    ns["_gen"] = GEN
    ns["_NO_STATE"] = NO_STATE
    ns["_ecache"] = cache = EntryCache(sp.modules, sp.stats, sp.distinct)
    guards.entry_cache = cache

    def tup(names):
        return ", ".join(names) + ("," if len(names) == 1 else "")
    names, names_target = _chunks(sp.cached)
    cache.chunked = len(sp.cached) > _CHUNK
    # while GEN is unchanged, the dicts of the modules it covers must also keep their version
    # tags: writes around nn.Module.__setattr__ and the tracked dicts' methods change only those
    from ..guards.memory import _MEM
    same = " and _ecache.mtags.same()" if _MEM is not None and sp.modules else ""
    lines = ["    try:",
             "        __c = _ecache.state",
             f"        if (__gn := __c[0]) == _gen[0]{same}:"]
    if sp.cached:
        lines.append(f"            {names_target} = __c[1]")
    if sp.dict_fast is None:
        lines += [f"            if not ({sp.fast}):",
                  "                return MISS"]
        full = ["    __gn = _gen[0]",
                f"    if not ({sp.full}):",
                "        _ecache.clear()    # stale: let go of what it holds",
                "        return None",
                f"    _ecache.store(__gn, {names})"]
    else:
        # a third path, inside the first: while the dicts whose contents the remaining guards
        # read (module globals, class dicts) keep their version tags, those guards are skipped
        from ..guards.memory import version_cell
        ns["_dv_dicts"] = tuple(sp.dicts)       # keeps them alive for the views below
        cells = []
        if _MEM is not None and len(sp.dicts) >= 4:
            # the tags of all of them in one gather (a ctypes read costs about 50 ns each)
            np, mem = _MEM
            from ..guards.memory import _TAG_AT
            ns["_dv_mem"] = mem
            ns["_dv_idx"] = np.array([(id(d) + _TAG_AT - 8) >> 3 for d in sp.dicts],
                                     dtype=np.intp)
            cells.append("_dv_mem[_dv_idx].tobytes()")
        else:
            for i, d in enumerate(sp.dicts):
                ns[f"_dv{i}"] = version_cell(d)
                cells.append(f"_dv{i}.value")
        if sp.dyn_objects:
            ns["_dv_getattr"] = object.__getattribute__
            cells += [f"id(_dv_getattr({o}, '__dict__')), __c[4][{i}].value"
                      for i, o in enumerate(sp.dyn_objects)]
        versions = "(" + tup(cells) + ")"
        dnames, dnames_target = _chunks(sp.dict_cached)
        cache.dict_chunked = len(sp.dict_cached) > _CHUNK
        dyn = (", (" + tup([f"_dv_getattr({o}, '__dict__')" for o in sp.dyn_objects]) + ")"
               if sp.dyn_objects else "")
        lines.append(f"            if (__dv := {versions}) == __c[2]:")
        if sp.dict_cached:
            lines.append(f"                {dnames_target} = __c[3]")
        owners = ""
        if sp.fields is not None:
            # functions' __code__/__defaults__ and cells' contents: one gather of those fields
            # compared with the expected objects' addresses; if it disagrees, the guards
            # themselves decide (a miss, unless the cache could not index an owner)
            fw = sp.fields.watch
            ns["_fw_mem"] = _MEM[1]
            ns["_fw_exp"] = fw.expected
            if fw.dynamic:
                cache.fwatch = fw
                owners = ", (" + tup(sp.fields.owners) + ")"
                check = "(__fi := __c[6]) is not None and _fw_mem[__fi].tobytes() == _fw_exp"
            else:
                ns["_fw_idx"] = fw._const_idx
                ns["_fw_watch"] = fw            # keeps the fixed owners alive with the entry
                check = "_fw_mem[_fw_idx].tobytes() == _fw_exp"
            lines.append(f"                if {check}:")
            if sp.field_binds:
                ns["_fw_vals"] = sp.field_vals
                lines.append(f"                    {tup(sp.field_binds)} = _fw_vals")
            else:
                lines.append("                    pass")
            lines += [f"                elif not ({sp.field_code}):",
                      "                    return MISS"]
            if dyn == "" and owners:
                dyn = ", ()"
        lines += [f"                if not ({sp.dict_fast}):",
                  "                    return MISS",
                  f"            elif not ({sp.fast}):",
                  "                _ecache.drop_dicts()",
                  "                return MISS",
                  "            else:",
                  f"                _ecache.store_dicts(__gn, __dv, {dnames}{dyn}{owners})"]
        full = ["    __gn = _gen[0]",
                # with instance dicts, the views to read them are made by this store: the next
                # call takes the middle path, which reads them before its checks
                f"    __dv = {'None' if sp.dyn_objects else versions}",
                f"    if not ({sp.full}):",
                "        _ecache.clear()    # stale: let go of what it holds",
                "        return None",
                f"    _ecache.store(__gn, {names}, __dv, {dnames}{dyn}{owners})"]
    # the full check, in a function of its own: it returns the generation it read and the
    # locals the code after the guards reads (bound by its guards)
    from ..guards.generation import _BIND, _NAME
    later = set(_NAME.findall(body_text))
    back = sorted(set(_BIND.findall(sp.full)) & later, key=lambda n: int(n[3:]))
    back_expr, back_target = _chunks(["__gn"] + back)
    params = ", ".join(param_names) if param_names is not None else "mod, *args, **kwargs"
    call = ", ".join(param_names) if param_names is not None else "mod, *args, **kwargs"
    fname = f"__full{name}"
    fsrc = "\n".join([f"def {fname}({params}):"] + full + [f"    return {back_expr}"]) + "\n"
    exec(compile(fsrc, f"<bytegraph full check {name}>", "exec"), ns)
    ns[fname].__bytegraph_source__ = fsrc
    lines += ["        else:",
              f"            if (__r := {fname}({call})) is None:",
              "                return MISS",
              f"            {back_target} = __r"]
    # after its own attribute writes (and nothing else: no graph break ran user code), the entry
    # re-reads its modules' dict tags, which those writes changed
    resnap = bool(same) and not getattr(guards, "has_break", True)
    after = [f"_ecache.advance(__gn, {sp.own_bumps}, {resnap})"] if sp.own_bumps else []
    return lines, after


_SETATTR_LINE = re.compile(r"setattr\((__s\d+), ('\w+'), (__v\d+)\)")


def _module_setattrs(body_lines, ns):
    """The epilogue's attribute writes on a caller's object (`setattr(__s3, 'x', __v0)`) call
    generation.module_setattr, which does what setattr does and is cheaper for a plain value
    written on a tracked module (hf/funnel replays six per call)."""
    from ..guards.tracking import module_setattr
    out = []
    for line in body_lines:
        if _SETATTR_LINE.fullmatch(line):
            ns["_module_setattr"] = module_setattr
            line = "_module_" + line
        out.append(line)
    return out


def build_entry(fn, cg, guards, body_lines, return_expr, name, on_guard_error=None):
    """`guards`: the GuardSet (or a guard expression). `on_guard_error(exc)` is called when
    evaluating the guards raises; what it returns (normally MISS) is the entry's result. The
    try costs nothing when nothing raises."""
    code = fn.__code__
    defaults = fn.__defaults__ or ()
    kwdefaults = fn.__kwdefaults__ or {}
    cg.namespace["__defaults"] = defaults
    cg.namespace["__defaults_kw"] = kwdefaults
    on_guard_error = on_guard_error or _miss_on_guard_error
    if cg.life is not None:
        on_guard_error = cg.life.guard_error_handler(on_guard_error)
    cg.namespace["_guard_error"] = on_guard_error
    params = signature_source(code, "__defaults", len(defaults), kwdefaults)
    if not isinstance(guards, str) and getattr(guards, "attr_writes", None):
        body_lines = _module_setattrs(body_lines, cg.namespace)
    body = [f"def {name}({params}):"]
    nparams = code.co_argcount + code.co_kwonlyargcount \
        + bool(code.co_flags & inspect.CO_VARARGS) + bool(code.co_flags & inspect.CO_VARKEYWORDS)
    head, after = guard_block(guards, "\n".join(body_lines) + "\n" + return_expr, cg.namespace,
                              code.co_varnames[:nparams], name)
    body += head
    body += ["    except Exception as __e:",
             "        return _guard_error(__e)"]
    body += [f"    {line}" for line in body_lines + after]
    body.append(f"    return {return_expr}")
    src = "\n".join(body) + "\n"
    plain = None
    # (the single-path head differs from the plain guards when split() replaced some of them,
    # e.g. input tensors' checks by a memory gather: guards/memory.py InputWatch)
    if after or len(head) > 3 or (not isinstance(guards, str)
                                  and head[1] != f"        if not ({guards.expression()}):"):
        # the same entry with one path (every guard, every call): what warm start persists, as
        # the fast path's per-entry cache and generation counter belong to this process
        plain = "\n".join(body[:1] + ["    try:", f"        if not ({guards.expression()}):",
                                       "            return MISS"] + body[1 + len(head):]) + "\n"
        if after:
            plain = plain.replace("".join(f"    {line}\n" for line in after), "")
    ns = cg.namespace
    exec(compile(src, f"<bytegraph entry {fn.__qualname__}>", "exec"), ns)
    entry = ns[name]
    # warm start re-creates entries from this text in a namespace of its own: plain setattr
    entry.__bytegraph_plain_source__ = (plain or src).replace("    _module_setattr(", "    setattr(")
    entry.__qualname__ = fn.__qualname__     # a call that does not bind raises eager's TypeError
    entry.__bytegraph_source__ = src
    entry.__bytegraph_life__ = cg.life
    cg.finish(ns)
    return entry
