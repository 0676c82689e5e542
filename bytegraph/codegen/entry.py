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
"""
import inspect

from ..exc import Unsupported

MISS = type("MISS", (), {"__repr__": lambda self: "<cache miss>"})()


class Codegen:
    def __init__(self):
        self.namespace = {"MISS": MISS}
        self._ids = {}               # id(obj) -> name
        self._keep = []              # keep bound objects alive for id() stability
        self.lines = []              # statements of the epilogue (materialized temporaries)
        self._temps = {}             # id(value) -> temp name
        self.temp_values = {}        # id(value) -> value (kept alive, so ids stay unique)
        self._sources = {}           # Source -> local bound on its first use
        self.used_nodes = {}         # fx Node of a computed tensor the Python code reads -> its local
        self.no_bind = False         # render sources without binding new locals (see source())

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
        name = self._ids.get(id(obj))
        if name is None:
            base = "".join(ch if ch.isalnum() else "_" for ch in str(hint))[:24] or "c"
            name = f"_{base}_{len(self._ids)}"
            self._ids[id(obj)] = name
            self._keep.append(obj)
            self.namespace[name] = obj
        return name

    def expr(self, value):
        """Python expression that evaluates to `value` after the graph ran."""
        from ..values.tensor import TensorValue
        if isinstance(value, TensorValue):
            node = value.node
            if node.op != "placeholder":
                name = self.used_nodes.get(node)
                if name is None:
                    name = self.used_nodes[node] = f"__g_{node.name}"
                return name
            if value.source is not None:
                return value.source.expr(self)
            raise Unsupported("internal: tensor value is neither a graph output nor an input",
                              kind="internal")
        return value.reconstruct(self)

    def mutable(self, value, build):
        name = self._temps.get(id(value))
        if name is None:
            if getattr(value, "source", None) is not None and not getattr(value, "_rebuilt", False):
                return value.source.expr(self)
            name = f"__t{len(self._temps)}"
            self._temps[id(value)] = name
            self.temp_values[id(value)] = value
            self.lines.append(f"{name} = {build()}")
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


def build_entry(fn, cg, guard_expr, body_lines, return_expr, name, on_guard_error=None):
    """`on_guard_error(exc)` is called when evaluating the guards raises; what it returns
    (normally MISS) is the entry's result. The try costs nothing when nothing raises."""
    code = fn.__code__
    defaults = fn.__defaults__ or ()
    kwdefaults = fn.__kwdefaults__ or {}
    cg.namespace["__defaults"] = defaults
    cg.namespace["__defaults_kw"] = kwdefaults
    cg.namespace["_guard_error"] = on_guard_error or _miss_on_guard_error
    params = signature_source(code, "__defaults", len(defaults), kwdefaults)
    body = [f"def {name}({params}):",
            "    try:",
            f"        if not ({guard_expr}):",
            "            return MISS",
            "    except Exception as __e:",
            "        return _guard_error(__e)"]
    body += [f"    {line}" for line in body_lines]
    body.append(f"    return {return_expr}")
    src = "\n".join(body) + "\n"
    ns = cg.namespace
    exec(compile(src, f"<bytegraph entry {fn.__qualname__}>", "exec"), ns)
    entry = ns[name]
    entry.__bytegraph_source__ = src
    return entry
