"""Callables: user functions (inlined), closures, bound methods, partials, cells.

Calling a Python function never runs it: the interpreter inlines its bytecode in
a child frame (`tx.inline`). `bind_args` maps call arguments onto the code
object's parameters the way CPython does, using Values for defaults.

Defaults and closure cells of functions that exist in the caller's world are
read through Sources (the function's `__defaults__`, each cell's contents), so
changing a default or rebinding a closed-over variable invalidates the entry.
"""
import functools
import inspect
import types

from ..exc import Unsupported, UserError
from ..sources import AttrSource, ItemSource, ObjectSource, CellContentsSource
from .base import Value, ConstValue, NONE, wrap, register_wrapper, POLICY
from .containers import TupleValue, DictValue


CO_VARARGS = inspect.CO_VARARGS
CO_VARKEYWORDS = inspect.CO_VARKEYWORDS
CO_GENERATOR = inspect.CO_GENERATOR


def bind_args(code, name, defaults, kwdefaults, args, kwargs):
    """Return {param name: Value} for a call, following CPython's binding rules."""
    nargs = code.co_argcount
    nkw = code.co_kwonlyargcount
    npos_only = code.co_posonlyargcount
    names = code.co_varnames
    bound = {}
    pos_names = names[:nargs]
    for i, v in enumerate(args[:nargs]):
        bound[pos_names[i]] = v
    extra = args[nargs:]
    flags = code.co_flags
    idx = nargs + nkw
    if flags & CO_VARARGS:
        bound[names[idx]] = TupleValue(list(extra))
        idx += 1
    elif extra:
        raise UserError(TypeError(f"{name}() takes {nargs} positional arguments but {len(args)} were given"))
    kwonly = names[nargs:nargs + nkw]
    varkw = {}
    for k, v in kwargs.items():
        if (k in pos_names[npos_only:] or k in kwonly):
            if k in bound:
                raise UserError(TypeError(f"{name}() got multiple values for argument {k!r}"))
            bound[k] = v
        elif flags & CO_VARKEYWORDS:
            varkw[k] = v
        else:
            raise UserError(TypeError(f"{name}() got an unexpected keyword argument {k!r}"))
    if flags & CO_VARKEYWORDS:
        bound[names[idx]] = DictValue(varkw)
    ndef = len(defaults)
    for i, p in enumerate(pos_names):
        if p not in bound:
            j = i - (nargs - ndef)
            if j < 0:
                raise UserError(TypeError(f"{name}() missing required argument {p!r}"))
            bound[p] = defaults[j]
    for p in kwonly:
        if p not in bound:
            if p not in kwdefaults:
                raise UserError(TypeError(f"{name}() missing keyword-only argument {p!r}"))
            bound[p] = kwdefaults[p]
    return bound


class CellValue(Value):
    """A closure cell. From the caller's world it has a source; new ones hold a Value."""
    mutable = True

    def __init__(self, contents=None, source=None, real=None):
        self.contents = contents
        self.source = source
        self.real = real          # the real cell object, for caller-world cells
        self.loaded = contents is not None or real is None

    def get(self, tx):
        if not self.loaded:
            try:
                obj = self.real.cell_contents
            except ValueError:
                raise UserError(NameError("free variable referenced before assignment"))
            self.contents = wrap(tx, obj, CellContentsSource(self.source, None))
            self.loaded = True
        if self.contents is None:
            raise UserError(NameError("free variable referenced before assignment"))
        return self.contents

    def set(self, tx, value):
        self.contents = value
        self.loaded = True
        if self.source is not None:
            tx.side_effects.cell_write(self)

    def reconstruct(self, cg):
        """The real cell (a graph break hands it to the resume function, so closures made
        before the break keep sharing it); a cell the trace made is created once."""
        if self.real is not None:
            return self.source.expr(cg) if self.source is not None else cg.const(self.real, "cell")
        if self.source is not None:
            return self.source.expr(cg)
        new = id(self) not in cg._temps
        name = cg.mutable(self, lambda: f"{cg.const(types.CellType, 'CellType')}()")
        if new and self.contents is not None:
            cg.lines.append(f"{name}.cell_contents = {cg.expr(self.contents)}")
        return name


@register_wrapper(types.CellType)
def wrap_cell(tx, cell, source):
    """A real closure cell: one Value per cell object (wrap's identity map), so a function's
    closure and a resume function's cell variable that are the same cell see one state."""
    return CellValue(source=source, real=cell)


class UserFnValue(Value):
    """A Python function object that exists outside the trace."""
    by_code = False        # guarded by code/globals/closure, not identity (see wrap_function)

    def __init__(self, fn, source=None):
        self.fn = fn
        self.source = source

    def truth(self, tx):          # functions are always true
        return True

    def python_type(self):
        return types.FunctionType

    def as_python(self):
        return self.fn

    def identity_key(self):
        from .containers import _IdentityKey
        return _IdentityKey(self.fn, self)

    def fn_source(self):
        return self.source if self.source is not None else ObjectSource(self.fn, self.fn.__name__)

    def defaults(self, tx):
        """Guard the defaults tuple's identity (reassigning __defaults__ makes a new tuple);
        immutable members then need no guard of their own, mutable ones are wrapped."""
        fn = self.fn
        if not fn.__defaults__:
            return []
        src = AttrSource(self.fn_source(), "__defaults__")
        if self.by_code:       # a per-call function: each default guarded by what it is
            tx.guards.add_len(src, tuple, len(fn.__defaults__))
            return [wrap(tx, d, ItemSource(src, i)) for i, d in enumerate(fn.__defaults__)]
        tx.guards.add_identity(src, fn.__defaults__)
        return [_default_value(tx, d, ItemSource(src, i)) for i, d in enumerate(fn.__defaults__)]

    def kwdefaults(self, tx):
        fn = self.fn
        if not fn.__kwdefaults__:
            return {}
        src = AttrSource(self.fn_source(), "__kwdefaults__")
        if self.by_code:
            tx.guards.add_dict_keys(src, dict, list(fn.__kwdefaults__))
        else:
            tx.guards.add_identity(src, fn.__kwdefaults__)
        return {k: wrap(tx, d, ItemSource(src, k)) for k, d in fn.__kwdefaults__.items()}

    def closure(self, tx):
        if not self.fn.__closure__:
            return ()
        if self.by_code:
            src = AttrSource(self.fn_source(), "__closure__")
            return tuple(wrap(tx, c, ItemSource(src, i)) for i, c in enumerate(self.fn.__closure__))
        return tuple(wrap(tx, c, ObjectSource(c, f"cell_{n}"))
                     for n, c in zip(self.fn.__code__.co_freevars, self.fn.__closure__))

    def call(self, tx, args, kwargs):
        override = POLICY.lookup_override(self.fn)
        if override is not None:
            return override(tx, self, args, kwargs)
        return self.inline_call(tx, args, kwargs)

    def inline_call(self, tx, args, kwargs):
        """Inline the function's own code (also what an override falls back to)."""
        fn = self.fn
        d = tx.direct_call
        direct = d is self or (type(d) is BoundMethodValue and d.fn is self)
        bound = bind_args(fn.__code__, fn.__name__, self.defaults(tx), self.kwdefaults(tx), args, kwargs)
        tx.guards.add_identity(AttrSource(self.fn_source(), "__code__"), fn.__code__)
        return tx.inline(fn.__code__, fn.__globals__, bound, self.closure(tx), fn.__qualname__, direct,
                         getattr(fn, "__bytegraph_cells__", ()))

    def getattr(self, tx, name):
        if name in ("__name__", "__qualname__", "__module__", "__doc__"):
            return ConstValue(getattr(self.fn, name))
        if name == "__class__":
            return _class_value(types.FunctionType)
        if name in ("__dict__", "__annotations__", "__defaults__", "__kwdefaults__", "__wrapped__",
                    "__code__", "__globals__", "__closure__") or name in self.fn.__dict__:
            try:
                return wrap(tx, getattr(self.fn, name), AttrSource(self.fn_source(), name))
            except AttributeError as e:
                raise UserError(e)
        raise UserError(AttributeError(f"function {self.fn.__name__!r} has no attribute {name!r}"))

    def reconstruct(self, cg):
        return self.source.expr(cg) if self.source is not None else cg.const(self.fn, self.fn.__name__)

    def __repr__(self):
        return f"UserFn({self.fn.__qualname__})"


def _class_value(cls):
    from .objects import ClassValue
    return ClassValue(cls)


def _default_value(tx, d, source):
    from .base import CONST_TYPES
    if type(d) in CONST_TYPES:
        return ConstValue(d)
    return wrap(tx, d, source)


def _make_function(code, globals_, qualname, defaults, kwdefaults, closure, attrs):
    fn = types.FunctionType(code, globals_, code.co_name, defaults, closure)
    fn.__qualname__ = qualname
    fn.__kwdefaults__ = kwdefaults or None
    fn.__dict__.update(attrs)
    return fn


class NestedFnValue(Value):
    """A function created by MAKE_FUNCTION during the trace (closures, lambdas, comprehensions)."""

    def __init__(self, code, globals_, qualname, defaults, kwdefaults, closure):
        self.code = code
        self.globals = globals_
        self.qualname = qualname
        self.defaults_ = defaults or []
        self.kwdefaults_ = kwdefaults or {}
        self.closure_ = closure or ()
        self.attrs = DictValue({})     # the function's __dict__ (functools.wraps writes here)

    def truth(self, tx):          # functions are always true
        return True

    def python_type(self):
        return types.FunctionType

    def call(self, tx, args, kwargs):
        d = tx.direct_call          # inlined for exactly this call: a stop may resume inside it
        direct = d is self or (type(d) is BoundMethodValue and d.fn is self)
        bound = bind_args(self.code, self.code.co_name, self.defaults_, self.kwdefaults_, args, kwargs)
        return tx.inline(self.code, self.globals, bound, self.closure_, self.qualname, direct)

    def reconstruct(self, cg):
        """The real function, made once (a graph break hands it on): same code, globals,
        defaults and closure cells (shared with the resume function's cell variables)."""
        def build():
            closure = "(" + "".join(cg.expr(c) + ", " for c in self.closure_) + ")" if self.closure_ \
                else "None"
            defaults = "(" + "".join(cg.expr(d) + ", " for d in self.defaults_) + ")" if self.defaults_ \
                else "None"
            kw = "{" + ", ".join(f"{k!r}: {cg.expr(v)}" for k, v in self.kwdefaults_.items()) + "}"
            attrs = "{" + ", ".join(f"{k!r}: {cg.expr(v)}" for k, v in self.attrs.items.items()) + "}"
            return (f"{cg.const(_make_function, 'make_function')}({cg.const(self.code, 'code')}, "
                    f"{cg.const(self.globals, 'G')}, {self.qualname!r}, {defaults}, {kw}, {closure}, {attrs})")
        return cg.mutable(self, build)

    def getattr(self, tx, name):
        if name in self.attrs.items:
            return self.attrs.items[name]
        if name == "__class__":
            return _class_value(types.FunctionType)
        if name == "__name__":
            return ConstValue(self.code.co_name)
        if name == "__qualname__":
            return ConstValue(self.qualname)
        if name == "__module__":
            return ConstValue(self.globals.get("__name__"))
        if name == "__doc__":
            c = self.code.co_consts
            return ConstValue(c[0] if c and isinstance(c[0], str) else None)
        if name == "__dict__":
            return self.attrs
        if name == "__annotations__":
            return DictValue({})
        if name == "__code__":
            return ConstValue(self.code)
        raise UserError(AttributeError(f"function {self.code.co_name!r} has no attribute {name!r}"))

    def setattr(self, tx, name, value):
        self.attrs.items[name] = value     # like a function's __dict__ (name, doc: kept here too)

    def identity_key(self):
        from .containers import _IdentityKey
        return _IdentityKey(self, self)

    def __repr__(self):
        return f"NestedFn({self.qualname})"


class BoundMethodValue(Value):
    """obj.method where the method is a Value-callable (function) or a named container method."""

    def __init__(self, self_value, fn):
        self.self_value = self_value
        self.fn = fn              # a Value (UserFnValue / NestedFnValue / ...) or a method name

    def call(self, tx, args, kwargs):
        if isinstance(self.fn, str):
            return self.self_value.call_method(tx, self.fn, args, kwargs)
        return self.fn.call(tx, [self.self_value] + list(args), kwargs)

    def getattr(self, tx, name):
        if name == "__self__":
            return self.self_value
        if name == "__class__":
            return _class_value(types.MethodType)
        if name == "__func__" and not isinstance(self.fn, str):
            return self.fn
        if name == "__name__":
            return ConstValue(self.fn if isinstance(self.fn, str) else self.fn.getattr(tx, name).as_python())
        raise Unsupported(f"attribute {name!r} of a bound method", kind="getattr")

    def truth(self, tx):          # functions are always true
        return True

    def python_type(self):
        return types.MethodType

    def reconstruct(self, cg):
        """The real bound method (a graph break hands it to the code that calls it)."""
        if self.source is not None:
            return self.source.expr(cg)
        if isinstance(self.fn, str):            # a container's method: obj.name
            return f"{cg.expr(self.self_value)}.{self.fn}"
        return f"{cg.const(types.MethodType, 'MethodType')}({cg.expr(self.fn)}, {cg.expr(self.self_value)})"

    def __repr__(self):
        return f"BoundMethod({self.fn})"


class PartialValue(Value):
    def __init__(self, func, args, kwargs, source=None):
        self.func = func
        self.args = list(args)
        self.kwargs = dict(kwargs)
        self.source = source

    def truth(self, tx):          # functions are always true
        return True

    def python_type(self):
        return functools.partial

    def call(self, tx, args, kwargs):
        return self.func.call(tx, self.args + list(args), {**self.kwargs, **kwargs})

    def getattr(self, tx, name):
        if name == "func":
            return self.func
        if name == "args":
            return TupleValue(self.args)
        if name == "keywords":
            return DictValue(self.kwargs)
        raise Unsupported(f"attribute {name!r} of functools.partial", kind="getattr")


# --------------------------------------------------------------------------

@register_wrapper(types.FunctionType)
def wrap_function(tx, fn, source):
    by_code = source is not None and "<locals>" in fn.__qualname__ and type(source) is not ObjectSource \
        and not POLICY.user_registered(fn)
    if by_code:
        # a function made by a def inside another function is a new object per call (e.g.
        # handed to a resume function): guard what the trace depends on -- its code, its
        # globals, and (as they are read) its defaults and closure cells -- not its identity
        tx.guards.add_type(source, types.FunctionType)
        tx.guards.add_identity(AttrSource(source, "__code__"), fn.__code__)
        tx.guards.add_identity(AttrSource(source, "__globals__"), fn.__globals__)
    elif source is not None:
        tx.guards.add_identity(source, fn)
    special = POLICY.classify_function(tx, fn, source)
    if special is not None:
        return special
    v = UserFnValue(fn, source)
    v.by_code = by_code
    return v


@register_wrapper(types.MethodType)
def wrap_method(tx, m, source):
    self_v = wrap(tx, m.__self__, AttrSource(source, "__self__") if source is not None else
                  _object_source(m.__self__))
    fn_v = wrap(tx, m.__func__, AttrSource(source, "__func__") if source is not None else None)
    return BoundMethodValue(self_v, fn_v)


def _object_source(obj):
    return ObjectSource(obj, type(obj).__name__)


@register_wrapper(functools.partial)
def wrap_partial(tx, p, source):
    if source is not None:
        tx.guards.add_type(source, type(p))
    src = source if source is not None else _object_source(p)
    func = wrap(tx, p.func, AttrSource(src, "func"))
    args = [wrap(tx, a, ItemSource(AttrSource(src, "args"), i)) for i, a in enumerate(p.args)]
    kwargs = {k: wrap(tx, v, ItemSource(AttrSource(src, "keywords"), k)) for k, v in p.keywords.items()}
    return PartialValue(func, args, kwargs, source)
