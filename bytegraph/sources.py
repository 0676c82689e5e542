"""Sources: where a traced value came from in the caller's world.

A Source renders a Python expression that fetches the value again at call time,
inside the generated entry function. Roots are the entry function's parameters
(LocalSource) or objects bound into its namespace (ObjectSource: globals dicts,
closure cells, the compiled function). Guards and the epilogue both use these
expressions, so "how to get it" is written once. Chained sources are rendered once per entry
function: the first use binds a local with `:=`, later uses read the local
(Codegen.source), so a guard on `m._modules['a']._modules['b']._parameters['w']`
costs one dict lookup, not a walk from the root.

nn.Module children, parameters and buffers get their own sources that read the
module's `_modules` / `_parameters` / `_buffers` dicts directly: plain dict
lookups, where `mod.name` would go through the Python-level Module.__getattr__.
"""


class Source:
    __slots__ = ()

    def expr(self, cg) -> str:
        """The expression, rendered through the codegen's source cache (see Codegen.source)."""
        return cg.source(self)

    def render(self, cg) -> str:
        raise NotImplementedError

    def name_hint(self) -> str:
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} {self.name_hint()}>"


class LocalSource(Source):
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def expr(self, cg):
        return self.name

    render = expr

    def name_hint(self):
        return f"L['{self.name}']"

    def __eq__(self, other):
        return type(other) is type(self) and other.name == self.name

    def __hash__(self):
        return hash((type(self).__name__, self.name))


class TempSource(LocalSource):
    """A local of the entry function holding an object made real at a graph break."""
    __slots__ = ()

    def name_hint(self):
        return self.name


class ObjectSource(Source):
    """An object captured by reference at compile time (a globals dict, a cell, ...)."""
    __slots__ = ("obj", "desc")

    def __init__(self, obj, desc):
        self.obj = obj
        self.desc = desc

    def expr(self, cg):
        return cg.const(self.obj, self.desc)

    render = expr

    def name_hint(self):
        return self.desc

    # equal when they capture the same object, so repeated reads of one global or cell
    # share their guards and their cached locals
    def __eq__(self, other):
        return type(other) is ObjectSource and other.obj is self.obj

    def __hash__(self):
        return id(self.obj)


class _Chained(Source):
    __slots__ = ("base", "key")

    def __init__(self, base, key):
        self.base = base
        self.key = key

    def __eq__(self, other):
        return type(other) is type(self) and other.base == self.base and other.key == self.key

    def __hash__(self):
        return hash((type(self).__name__, self.base, self.key))


class AttrSource(_Chained):
    __slots__ = ()

    def render(self, cg):
        return f"{self.base.expr(cg)}.{self.key}"

    def name_hint(self):
        return f"{self.base.name_hint()}.{self.key}"


class ReduceSource(_Chained):
    """base.__reduce__(): the state of a builtin iterator, read without advancing it."""
    __slots__ = ()

    def render(self, cg):
        return f"{self.base.expr(cg)}.__reduce__()"

    def name_hint(self):
        return f"{self.base.name_hint()}.__reduce__()"


class RawAttrSource(_Chained):
    """object.__getattribute__(base, key): an attribute read bypassing a Python-level
    __getattribute__ (so guards do not run user code)."""
    __slots__ = ()

    def render(self, cg):
        return f"{cg.const(object.__getattribute__, 'getattribute')}({self.base.expr(cg)}, {self.key!r})"

    def name_hint(self):
        return f"{self.base.name_hint()}.{self.key}"


class ItemSource(_Chained):
    """base[key] for a constant key (int, str, ...)."""
    __slots__ = ()

    def render(self, cg):
        k = repr(self.key) if type(self.key) in (int, str, bool) else cg.const(self.key, "key")
        return f"{self.base.expr(cg)}[{k}]"

    def name_hint(self):
        return f"{self.base.name_hint()}[{self.key!r}]"


class RawDictItemSource(_Chained):
    """dict.__getitem__(base, key): an item of a dict subclass, bypassing its overrides."""
    __slots__ = ()

    def render(self, cg):
        return f"{cg.const(dict.__getitem__, 'dict_getitem')}({self.base.expr(cg)}, {self.key!r})"

    def name_hint(self):
        return f"{self.base.name_hint()}[{self.key!r}]"


class GlobalSource(_Chained):
    """A module global: base is an ObjectSource on the globals dict."""
    __slots__ = ()

    def render(self, cg):
        return f"{self.base.expr(cg)}[{self.key!r}]"

    def name_hint(self):
        return f"G['{self.key}']"


class CellContentsSource(_Chained):
    __slots__ = ()

    def render(self, cg):
        return f"{self.base.expr(cg)}.cell_contents"

    def name_hint(self):
        return f"{self.base.name_hint()}.cell_contents"


class ModuleDictSource(_Chained):
    """mod._modules[key] / mod._parameters[key] / mod._buffers[key]; key=(dictname, name)."""
    __slots__ = ()

    def render(self, cg):
        d, name = self.key
        return f"{self.base.expr(cg)}.{d}[{name!r}]"

    def name_hint(self):
        return f"{self.base.name_hint()}.{self.key[1]}"


class SizeSource(_Chained):
    """A tensor's size, stride or offset, the value of a symbol: key is the dim (an int),
    ("stride", dim) or ("offset",)."""
    __slots__ = ()

    def render(self, cg):
        return f"{self.base.expr(cg)}{size_accessor(self.key)}"

    def name_hint(self):
        return f"{self.base.name_hint()}{size_accessor(self.key)}"


def size_accessor(key):
    if type(key) is int:
        return f".size({key})"
    if key[0] == "stride":
        return f".stride({key[1]})"
    return ".storage_offset()"


class CallSource(Source):
    """base() for a pure zero-argument call (dereferencing a weakref)."""
    __slots__ = ("base",)

    def __init__(self, base):
        self.base = base

    def render(self, cg):
        return f"{self.base.expr(cg)}()"

    def name_hint(self):
        return f"{self.base.name_hint()}()"

    def __eq__(self, other):
        return type(other) is CallSource and other.base == self.base

    def __hash__(self):
        return hash(("call", self.base))


def global_source(globals_dict, name):
    mod = globals_dict.get("__name__", "?")
    return GlobalSource(ObjectSource(globals_dict, f"G_{mod}"), name)
