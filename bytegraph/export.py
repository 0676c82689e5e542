"""export(fn)(*args, **kwargs): one graph with the caller's signature, like torch._dynamo.export.

The function is traced once, with graph breaks refused (a break raises Unsupported with the
construct and the user's file:line). The traced graph is rewritten into a standalone
torch.fx.GraphModule:

- its placeholders are the leaves of `(args, kwargs)` flattened as a pytree, and torch's own
  pytree codegen (`torch.fx.graph._PyTreeCodeGen`) gives it a `forward` with the caller's
  parameter names that flattens its arguments and rebuilds the output structure, so
  `gm(*args, **kwargs)` returns what `fn(*args, **kwargs)` returns;
- parameters and buffers of the exported module are attributes of the GraphModule (under
  their qualified names); other tensors the function reads (globals, closures) are baked in
  as constants; non-tensor inputs are specialized, and their guards are returned; a
  one-element buffer's value is not read at trace time (values/known.py is off): the graph
  reads the attribute, so a GraphModule given other buffers (load_state_dict) computes with
  them, and such a read is a break (refused) as for any tensor;
- a side effect that cannot live in the graph (a Python attribute, global or container
  write) raises Unsupported; in-place writes into input tensors are graph ops and are kept.

With `aten_graph=True` the graph is lowered with bytegraph.make_fx (given decompositions),
keeping the same signature. The result is a plain GraphModule: it pickles (torch.save /
torch.load), deep-copies, and runs without bytegraph.
"""
import collections
import inspect
import re

import torch
import torch.fx
import torch.utils._pytree as pytree
from torch.fx.graph import _PyTreeCodeGen, _PyTreeInfo

from .guards.guard_set import readable
from .exc import Unsupported, UserError
from .graph.builder import NEEDS_SHAPE_ENV
from .policy.vmap import export_vmap_body
from .sources import LocalSource, ModuleDictSource
from .values.base import ConstValue
from .values.containers import TupleValue, ListValue, DictValue
from .values.objects import NewObjectValue, _rebuild_dict_object, _rebuild_object
from .values.tensor import TensorValue

ExportResult = collections.namedtuple("ExportResult", ["graph_module", "guards"])

_TRACING_MODES = ("real", "fake", "symbolic")


def export(fn, *, aten_graph=False, decomposition_table=None, tracing_mode="real", dynamic_shapes=None):
    """`export(fn)(*args, **kwargs) -> ExportResult(graph_module, guards)`."""
    if not callable(fn) or isinstance(fn, type):
        raise TypeError(f"export expects a function or nn.Module, got {type(fn).__name__}")
    if not isinstance(aten_graph, bool):
        raise TypeError(f"export(aten_graph=...) expects a bool, got {type(aten_graph).__name__}")
    if decomposition_table is not None and not isinstance(decomposition_table, dict):
        raise TypeError("export(decomposition_table=...) expects a dict of op -> function or None, "
                        f"got {type(decomposition_table).__name__}")
    if tracing_mode not in _TRACING_MODES:
        raise ValueError(f"export(tracing_mode=...) expects one of {_TRACING_MODES}, got {tracing_mode!r}")
    if dynamic_shapes is not None and not isinstance(dynamic_shapes, (dict, list, tuple)):
        raise TypeError("export(dynamic_shapes=...) expects None, a dict {argument name: {dim: Dim "
                        "or name}} or a list/tuple with one such entry per positional argument, got "
                        f"{type(dynamic_shapes).__name__}")

    def run(*args, **kwargs):
        return _export(fn, args, kwargs, aten_graph, decomposition_table, tracing_mode, dynamic_shapes)
    return run


def _dims_of(name, spec, value):
    """{dim: (min, max, strict)} from one argument's entry of dynamic_shapes."""
    if spec is None:
        return {}
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"export(dynamic_shapes=...): argument {name!r} is not a tensor; only tensor "
                         f"arguments can have dynamic dims (other inputs are specialized)")
    if isinstance(spec, dict):
        items = spec.items()
    elif isinstance(spec, (list, tuple)):
        items = enumerate(spec)
    else:
        raise TypeError(f"export(dynamic_shapes=...): the entry for {name!r} must be a dict {{dim: Dim}} "
                        f"or a list with one entry per dim, got {type(spec).__name__}")
    dims = {}
    for d, dim in items:
        if dim is None:
            continue
        if type(d) is not int or not -value.dim() <= d < value.dim():
            raise ValueError(f"export(dynamic_shapes=...): dim {d!r} of {name!r} is not a dimension of "
                             f"its {value.dim()}-d tensor")
        lo, hi = getattr(dim, "min", None), getattr(dim, "max", None)
        lo = lo if type(lo) is int and lo > 2 else None          # sizes below 2 are never symbolic
        hi = hi if type(hi) is int and hi < 2 ** 62 else None
        dims[d % value.dim()] = (lo, hi, True)
    return dims


def _dynamic_spec(dynamic_shapes, params, args, kwargs):
    """A DynamicSpec giving each named argument's tensor its export dims (or None)."""
    if dynamic_shapes is None:
        return None
    from .runtime.dynamic import DynamicSpec
    values = {p.name: a for p, a in zip(params, args)}
    values.update(kwargs)
    if isinstance(dynamic_shapes, dict):
        unknown = [k for k in dynamic_shapes if k not in values]
        if unknown:
            raise ValueError(f"export(dynamic_shapes=...) names {unknown}, which are not arguments of "
                             f"this call (arguments: {list(values)})")
        entries = dynamic_shapes
    else:
        if len(dynamic_shapes) != len(args):
            raise ValueError(f"export(dynamic_shapes=...) has {len(dynamic_shapes)} entries for "
                             f"{len(args)} positional arguments")
        entries = {p.name: e for p, e in zip(params, dynamic_shapes)}
    spec = DynamicSpec(False)
    spec.explicit = {f"L['{k}']": _dims_of(k, e, values[k]) for k, e in entries.items()}
    return spec


def _target(fn):
    """(the Python function to trace, the module or None, the leading bound arguments)."""
    state = getattr(fn, "__bytegraph_state__", None)
    if state is not None:
        fn = state.fn
    orig = getattr(fn, "_orig_mod", None)
    if isinstance(orig, torch.nn.Module):
        fn = orig
    if isinstance(fn, torch.nn.Module):
        forward = type(fn).forward
        if not inspect.isfunction(forward):
            raise Unsupported(f"export of {type(fn).__name__}: its forward is not a Python function",
                              kind="export")
        return forward, fn, (fn,)
    if inspect.ismethod(fn) and inspect.isfunction(fn.__func__):
        owner = fn.__self__
        return fn.__func__, owner if isinstance(owner, torch.nn.Module) else None, (owner,)
    if inspect.isfunction(fn):
        return fn, None, ()
    raise TypeError(f"export expects a Python function, method or nn.Module, got {type(fn).__name__}")


def _export(fn, args, kwargs, aten_graph, decomposition_table, tracing_mode, dynamic_shapes=None):
    from .runtime.convert import _trace, _TraceFailed, bind_call
    func, module, lead = _target(fn)
    params = _parameters(func)[len(lead):]
    _check_call_shape(func, params, args, kwargs)
    spec = _dynamic_spec(dynamic_shapes, params, args, kwargs)
    bound = bind_call(func, lead + tuple(args), kwargs)
    try:
        try:
            cg, guards, gb, tracer, result, _, _ = _trace(func, bound, False, False, dynamic=spec,
                                                          state_scalars=False)
        except Unsupported as e:
            if e.kind != NEEDS_SHAPE_ENV:
                raise
            cg, guards, gb, tracer, result, _, _ = _trace(func, bound, True, False, dynamic=spec,
                                                          state_scalars=False)
    except _TraceFailed as failed:
        e = failed.exc
        if isinstance(e, UserError) and not getattr(e, "from_graph", False):
            raise e.exc
        raise Unsupported(f"export: {e.msg}" + _chain(e), kind=e.kind, hint=e.hint,
                          location=e.location) from None
    lasting = _lasting_effect(tracer.side_effects, func)
    if lasting is not None:
        what, where = lasting
        raise Unsupported(f"export: {what} cannot be expressed in the graph", kind="export_side_effect",
                          hint="return the value instead, or mutate a tensor in place", location=where)

    names = [p.name for p in params[:len(args)]] + list(kwargs)
    flat, in_spec = pytree.tree_flatten((tuple(args), dict(kwargs)))
    graph, root, out_spec = _rebuild(gb, cg, result, module, flat, names)
    gm = torch.fx.GraphModule(root, graph)
    forced = gb.specialized_marks()
    if forced:
        from .values.symbolic import ConstraintViolation
        raise ConstraintViolation(f"export: dims given as dynamic ({', '.join(sorted(forced))}) were "
                                  f"specialized to constants while tracing {func.__qualname__}")
    narrowed = _narrowed_marks(gb, spec)
    if narrowed:
        from .values.symbolic import ConstraintViolation
        raise ConstraintViolation(f"export: dims given as dynamic were constrained while tracing "
                                  f"{func.__qualname__}, so the graph would not hold for every size "
                                  f"dynamic_shapes allows: {'; '.join(narrowed)}")
    guards.add_shape_env(gb)
    gb.release_real_tensors()
    if aten_graph:
        if gb.unbacked_at:
            # a real-mode lowering bakes in the value the graph reads (`W[x.argmax()]` became
            # `select(W, 0, 0)` for every x); a symbolic one cannot record the read
            raise Unsupported("export(aten_graph=True): the graph reads a tensor's value (an "
                              "item(), an unbacked symbol), which lowering would bake in",
                              kind="data_dependent")
        gm = _lower(gm, flat, decomposition_table, "symbolic" if gb.symbols else tracing_mode)
    gm.graph._codegen = _PyTreeCodeGen(_PyTreeInfo(names, in_spec, out_spec))
    gm.recompile()
    return ExportResult(gm, [readable(g.code) for g in guards.guards])


def _narrowed_marks(gb, spec):
    """What the trace assumed about a dim given as dynamic beyond the range dynamic_shapes gave
    it (a branch on the size, a divisibility, a tighter bound): the graph is then wrong, or
    fails, for other sizes the caller declared, so export refuses as torch.export does."""
    if spec is None or not gb.marked or gb.shape_env is None:
        return []
    from .values.symbolic import finite
    env, out = gb.shape_env, []
    for sym, desc in gb.marked.items():
        source, dim = gb.symbols[sym]
        lo, hi, _ = spec.explicit.get(source.name_hint(), {}).get(dim, (None, None, True))
        vr = env.var_to_range.get(sym)
        if vr is not None:
            lo = 2 if lo is None else lo            # sizes 0 and 1 are never symbolic
            if vr.lower > lo or (finite(vr.upper) and (hi is None or vr.upper < hi)):
                out.append(f"{desc} must be in [{vr.lower}, {vr.upper}]")
        out += [f"{desc}: {g.expr}" for g in env.guards if sym in g.expr.free_symbols]
    return out


def _parameters(func):
    """The parameters the graph's forward is named after: the function's own, or, for a
    `functools.wraps` decorator that takes `(*args, **kwargs)` (transformers' `forward`s),
    those of the function it wraps. Only names come from here; the trace runs `func` itself."""
    own = list(inspect.signature(func, follow_wrapped=False).parameters.values())
    kinds = {p.kind for p in own}
    if inspect.Parameter.VAR_POSITIONAL in kinds and getattr(func, "__wrapped__", None) is not None:
        try:
            return list(inspect.signature(func).parameters.values())
        except (TypeError, ValueError):
            pass
    return own


_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None))


def _lasting_effect(effects, func):
    """(what, file:line) of the first Python side effect the exported graph would lose, or None.

    Dropped, because the caller cannot observe them: writes to an attribute or global whose
    final value is the very value it had before the call (transformers' output-capturing
    context variable is set and reset inside its `forward`), and mutations of the `**kwargs`
    dict, which CPython builds afresh for every call."""
    last = {}
    for write in effects.writes:
        kind, target, name, value = write
        obj = getattr(target, "obj", None) if kind == "attr" else target if kind == "global" else None
        if obj is None:
            return effects.note_of(write)
        last[(id(obj), name)] = (obj, name, value, write)
    for obj, name, value, write in last.values():
        if not _restores(obj, name, value):
            return effects.note_of(write)
    code = func.__code__
    varkw = None
    if code.co_flags & inspect.CO_VARKEYWORDS:
        varkw = LocalSource(code.co_varnames[code.co_argcount + code.co_kwonlyargcount
                                             + bool(code.co_flags & inspect.CO_VARARGS)])
    for c in effects.containers.values():
        if varkw is None or getattr(c, "source", None) != varkw:
            return effects.note_of(c)
    return None


def _restores(obj, name, value):
    """The final write leaves `obj`'s `name` (an instance-dict entry, or a global) as it was."""
    if type(value) is not ConstValue:
        return False
    before_dict = obj if isinstance(obj, dict) else getattr(obj, "__dict__", None)
    if not isinstance(before_dict, dict) or name not in before_dict:
        return False
    before, after = before_dict[name], value.value
    return after is before or (type(after) is type(before) and type(after) in _IMMUTABLE
                               and after == before and repr(after) == repr(before))


def _check_call_shape(func, params, args, kwargs):
    """Reject calls the function itself would reject. Extra keyword arguments a `**kwargs`
    takes become named parameters of the graph's forward; extra positional arguments taken
    by `*args` are refused (the forward could not name them)."""
    kinds = inspect.Parameter
    positional = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    if len(args) > len(positional):
        raise Unsupported(f"export of {func.__qualname__} with extra positional arguments (*args)",
                          kind="export")
    named = {p.name for p in params if p.kind not in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD)}
    extra = [k for k in kwargs if k not in named]
    if extra and not any(p.kind == kinds.VAR_KEYWORD for p in params):
        raise TypeError(f"{func.__qualname__}() got unexpected keyword arguments {extra}")
    for p in params:
        if p.kind == kinds.POSITIONAL_ONLY and p.name in kwargs:
            raise TypeError(f"{func.__qualname__}() got positional-only argument {p.name!r} as a keyword")


def _chain(e):
    stack = getattr(e, "user_stack", None)
    return "" if not stack or len(stack) < 2 else "\n  while tracing (innermost last):\n    " + \
        "\n    ".join(reversed(stack))


def _qualified_name(source, module):
    """'lin.weight' for a parameter/buffer source under the exported module's `self`."""
    parts = []
    while isinstance(source, ModuleDictSource):
        parts.append(source.key[1])
        source = source.base
    if module is not None and parts and source == LocalSource("self"):
        return ".".join(reversed(parts))
    return None


def _rebuild(gb, cg, result, module, flat, names):
    """The export graph over the flat inputs; returns (graph, root module, output spec)."""
    graph = torch.fx.Graph()
    root = torch.nn.Module()
    leaf_of = {id(x): i for i, x in enumerate(flat) if isinstance(x, torch.Tensor)}
    placeholders = []
    spec_names = _leaf_names(flat, names)
    for i, name in enumerate(spec_names):
        placeholders.append(graph.placeholder(name))
    env = {}
    consts = 0
    for (source, tensor), node in zip(gb.inputs, gb.placeholders):
        i = leaf_of.get(id(tensor))
        if i is not None:
            env[node] = placeholders[i]
            continue
        qual = _qualified_name(source, module)
        if qual is not None:
            _set_attr(root, qual, tensor)
        else:
            qual = f"_tensor_constant{consts}"
            consts += 1
            root.register_buffer(qual, tensor, persistent=False)
        env[node] = graph.get_attr(qual)
    for node in gb.graph.nodes:
        if node.op == "placeholder" or node.op == "output":
            continue
        env[node] = new = graph.node_copy(node, lambda n: env[n])
        body = export_vmap_body(node, root)
        if body is not None:
            new.op, new.target = "call_module", body
    leaves, template = [], _template(result, placeholders, env, leaf_of)
    out_flat, out_spec = pytree.tree_flatten(template, is_leaf=lambda x: isinstance(x, _Leaf))
    if not _rebuilt_alike(template, out_flat, out_spec):
        raise Unsupported("export: the output holds state its pytree flattening does not carry (an "
                          "attribute of a registered output class that is not one of its items, or "
                          "one that disagrees with its item), so the graph could not return it",
                          kind="export")
    graph.output([x.value for x in out_flat])
    return graph, root, out_spec


def _rebuilt_alike(template, flat, spec):
    """Does rebuilding the output from its flat leaves (what the graph's forward does) give the
    object the function returned? A registered class's flatten may drop attributes."""
    try:
        back = pytree.tree_unflatten(flat, spec)
    except Exception:  # noqa: BLE001 - a class that cannot rebuild itself from placeholders
        return False
    return _alike(template, back)


def _constant(x):
    return x.value if isinstance(x, _Leaf) and not isinstance(x.value, torch.fx.Node) else x


def _alike(a, b):
    a, b = _constant(a), _constant(b)
    if isinstance(a, _Leaf) or isinstance(b, _Leaf):      # a graph node: the same tensor
        return isinstance(a, _Leaf) and isinstance(b, _Leaf) and a.value is b.value
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_alike, a, b))
    if isinstance(a, dict) and (list(a) != list(b) or not all(_alike(a[k], b[k]) for k in a)):
        return False
    da, db = getattr(a, "__dict__", None), getattr(b, "__dict__", None)
    if isinstance(da, dict) or isinstance(db, dict):
        return (isinstance(da, dict) and isinstance(db, dict) and da.keys() == db.keys()
                and all(_alike(da[k], db[k]) for k in da))
    return isinstance(a, dict) or a is b or a == b


class _Leaf:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _template(v, placeholders, env, leaf_of):
    """The output with each tensor replaced by a _Leaf holding its fx node (constants too)."""
    if isinstance(v, TensorValue):
        node = v.node
        if node in env:
            return _Leaf(env[node])
        raise Unsupported("export: the output holds a tensor the graph does not produce", kind="export")
    if type(v) is ConstValue:
        return _Leaf(v.value)
    if type(v) is TupleValue and getattr(v, "cls", tuple) is tuple:
        return tuple(_template(i, placeholders, env, leaf_of) for i in v.items)
    if type(v) is ListValue:
        return [_template(i, placeholders, env, leaf_of) for i in v.items]
    if type(v) is TupleValue:
        cls = v.cls
        if hasattr(cls, "_fields"):
            return cls(*[_template(i, placeholders, env, leaf_of) for i in v.items])
    if type(v) is DictValue and getattr(v, "cls", dict) is dict:
        return {k: _template(i, placeholders, env, leaf_of) for k, i in v.items.items()}
    if type(v) is NewObjectValue and v.cls in pytree.SUPPORTED_NODES:
        # a class its library registered as a pytree node (transformers' ModelOutput): build
        # the object as the trace left it, with leaves in place of tensors, and let the
        # library's own flatten give the structure the graph's forward rebuilds
        attrs = {k: _template(a, placeholders, env, leaf_of) for k, a in v.attrs.items()}
        if v.dict_items is not None:
            items = {k: _template(i, placeholders, env, leaf_of) for k, i in v.dict_items.items.items()}
            return _rebuild_dict_object(v.cls, items, attrs)
        return _rebuild_object(v.cls, attrs)
    raise Unsupported(f"export: an output of kind {type(v).__name__} (tensors, constants, tuples, "
                      "lists, dicts, namedtuples and registered pytree classes can be exported)", kind="export")


def _leaf_names(flat, names):
    out, seen = [], set()
    for i, _ in enumerate(flat):
        base = f"arg{i}"
        out.append(base)
    # name leaves after the parameter they come from when each parameter is one leaf
    if len(flat) == len(names):
        out = [re.sub(r"\W", "_", n) for n in names]
    result = []
    for n in out:
        m, k = n, 1
        while m in seen:
            m = f"{n}_{k}"
            k += 1
        seen.add(m)
        result.append(m)
    return result


def _set_attr(root, qual, tensor):
    *path, name = qual.split(".")
    mod = root
    for p in path:
        sub = getattr(mod, p, None)
        if not isinstance(sub, torch.nn.Module):
            sub = torch.nn.Module()
            mod.add_module(p, sub)
        mod = sub
    if isinstance(tensor, torch.nn.Parameter):
        mod.register_parameter(name, tensor)
    else:
        mod.register_buffer(name, tensor)


def _lower(gm, flat, decomposition_table, tracing_mode):
    """The same graph at the aten level (bytegraph.make_fx), over the same flat inputs."""
    from .dispatch_trace import make_fx

    def run_flat(*leaves):
        return gm(*leaves)
    gm = make_fx(run_flat, decomposition_table=decomposition_table, tracing_mode=tracing_mode)(*flat)
    gm.__dict__.pop("shape_env", None)   # symbolic mode keeps its ShapeEnv there: not picklable
    # symbolic mode's shape checks call torch._check, a Python function that torch.load's
    # re-tracing of the module cannot record: the aten assert op records as a node
    checks = [n for n in gm.graph.nodes if n.op == "call_function" and n.target is torch._check]
    for n in checks:
        n.target = torch.ops.aten._assert_scalar.default
        n.args = (n.args[0], "a shape the exported graph was specialized to")
    if checks:
        gm.recompile()
    return gm
