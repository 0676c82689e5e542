"""Calling nn.Modules and their container protocol (ModuleList, Sequential, ModuleDict).

`call_module` reproduces Module.__call__: global and per-module forward
pre-hooks, forward, forward hooks. A hook dict that is empty at trace time is
guarded as empty; a non-empty one is guarded on its keys and each hook's
identity, and the hooks are inlined. Backward hooks are not captured.
"""
import torch
from torch.nn.modules import module as _module_mod

from ..exc import Unsupported
from ..sources import AttrSource, ItemSource, ModuleDictSource, ObjectSource
from .base import ConstValue, NONE, const, wrap
from .containers import TupleValue, ListValue, DictValue, IteratorValue

_GLOBAL_HOOKS = ("_global_backward_pre_hooks", "_global_backward_hooks", "_global_forward_pre_hooks",
                 "_global_forward_hooks", "_global_forward_hooks_always_called",
                 "_global_forward_hooks_with_kwargs")


def _guard_global_hooks(tx):
    for name in _GLOBAL_HOOKS:
        d = getattr(_module_mod, name, None)
        if d is None:
            continue
        if d:
            raise Unsupported(f"global module hooks ({name})", kind="hooks")
        tx.guards.add_empty(ObjectSource(d, name))


_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_backward_pre_hooks")


def _hooks(tx, mv, dname):
    """Guard and return [(hook_id, hook Value)] of a non-empty mod.<dname>."""
    d = mv.obj.__dict__.get(dname)
    if not d:
        return []
    src = AttrSource(mv.source, dname)
    tx.guards.add_dict_keys(src, type(d), list(d.keys()))
    return [(k, wrap(tx, h, ItemSource(src, k))) for k, h in d.items()]


def _guard_no_hooks(tx, mv):
    """One guard that all of the module's hook dicts that are empty now stay empty."""
    mod = mv.obj
    empty = [n for n in _HOOK_DICTS if n in mod.__dict__ and not mod.__dict__[n]]
    if not empty:
        return
    e = tx.cg.bound(mv.source)
    tx.guards.add_code("not (" + " or ".join(f"{e}.{n}" for n in empty) + ")", mv.source, "no_hooks",
                       tuple(empty))


def call_module(tx, mv, args, kwargs):
    mod = mv.obj
    cls = type(mod)
    if cls.__call__ is not torch.nn.Module.__call__:
        from .objects import bind_class_attr
        return bind_class_attr(tx, mv, cls, "__call__").call(tx, args, kwargs)
    _guard_global_hooks(tx)
    for dname in ("_backward_hooks", "_backward_pre_hooks"):
        if mod.__dict__.get(dname):
            raise Unsupported(f"module backward hooks on {cls.__name__}", kind="hooks")
    _guard_no_hooks(tx, mv)
    pre = _hooks(tx, mv, "_forward_pre_hooks")
    post = _hooks(tx, mv, "_forward_hooks")
    with_kwargs_pre = set(mod.__dict__.get("_forward_pre_hooks_with_kwargs", ()))
    with_kwargs_post = set(mod.__dict__.get("_forward_hooks_with_kwargs", ()))
    if with_kwargs_pre or with_kwargs_post:
        for dname in ("_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs"):
            d = mod.__dict__[dname]
            tx.guards.add_dict_keys(AttrSource(mv.source, dname), type(d), list(d.keys()))
    args = list(args)
    kwargs = dict(kwargs)
    for hid, hook in pre:
        if hid in with_kwargs_pre:
            res = hook.call(tx, [mv, TupleValue(args), DictValue(kwargs)], {})
            if not (res.is_const() and res.as_python() is None):
                a, k = res.unpack(tx)
                args, kwargs = a.unpack(tx), dict(k.items)
        else:
            res = hook.call(tx, [mv, TupleValue(args)], {})
            if not (res.is_const() and res.as_python() is None):
                args = res.unpack(tx) if isinstance(res, TupleValue) else [res]
    forward = mv.getattr(tx, "forward")
    # no hooks: Module.__call__ is forward(...), so a graph break inside forward can resume
    # there and hand its result straight to the caller (runtime/resume.py)
    tx.direct_call = forward if tx.direct_call is mv and not pre and not post else None
    out = forward.call(tx, args, kwargs)
    for hid, hook in post:
        if hid in with_kwargs_post:
            res = hook.call(tx, [mv, TupleValue(args), DictValue(kwargs), out], {})
        else:
            res = hook.call(tx, [mv, TupleValue(args), out], {})
        if not (res.is_const() and res.as_python() is None):
            out = res
    return out


# --------------------------------------------------------------------------
# container protocol

def _children(tx, mv, dname="_modules"):
    d = mv.obj.__dict__[dname]
    tx.guards.add_dict_keys(AttrSource(mv.source, dname), type(d), list(d.keys()))
    return [(k, wrap(tx, v, ModuleDictSource(mv.source, (dname, k)))) for k, v in d.items()]


def module_items(tx, mv):
    mod = mv.obj
    if isinstance(mod, (torch.nn.ModuleList, torch.nn.Sequential)):
        return [v for _, v in _children(tx, mv)]
    if isinstance(mod, torch.nn.ModuleDict):
        return [ConstValue(k) for k, _ in _children(tx, mv)]
    if isinstance(mod, torch.nn.ParameterList):
        return [v for _, v in _children(tx, mv, "_parameters")]
    if isinstance(mod, torch.nn.ParameterDict):
        return [ConstValue(k) for k, _ in _children(tx, mv, "_parameters")]
    from .objects import bind_class_attr, _MISSING
    it = bind_class_attr(tx, mv, type(mod), "__iter__")
    if it is _MISSING:
        raise Unsupported(f"iterating over {type(mod).__name__}", kind="iter")
    return it.call(tx, [], {}).unpack(tx)


def _len(tx, mv):
    mod = mv.obj
    if isinstance(mod, (torch.nn.ParameterList, torch.nn.ParameterDict)):
        return const(len(_children(tx, mv, "_parameters")))
    if isinstance(mod, (torch.nn.ModuleList, torch.nn.Sequential, torch.nn.ModuleDict)):
        return const(len(_children(tx, mv)))
    from .objects import bind_class_attr
    return bind_class_attr(tx, mv, type(mod), "__len__").call(tx, [], {})


def _getitem(tx, mv, idx):
    mod = mv.obj
    key = idx.as_python()
    if isinstance(mod, (torch.nn.ModuleDict, torch.nn.ParameterDict)):
        dname = "_parameters" if isinstance(mod, torch.nn.ParameterDict) else "_modules"
        return dict(_children(tx, mv, dname))[key]
    if isinstance(mod, (torch.nn.ModuleList, torch.nn.Sequential, torch.nn.ParameterList)):
        dname = "_parameters" if isinstance(mod, torch.nn.ParameterList) else "_modules"
        items = [v for _, v in _children(tx, mv, dname)]
        if isinstance(key, slice):
            if isinstance(mod, torch.nn.Sequential):
                return wrap(tx, mod[key], None)
            return ListValue(items[key])
        return items[key]
    from .objects import bind_class_attr
    return bind_class_attr(tx, mv, type(mod), "__getitem__").call(tx, [idx], {})


def _walk(tx, mv, kind, prefix="", recurse=True, memo=None):
    """[(qualified name, Value)] for parameters / buffers / modules, as torch orders them."""
    memo = set() if memo is None else memo
    out = []
    mod = mv.obj
    if kind == "modules":
        if id(mod) not in memo:
            memo.add(id(mod))
            out.append((prefix, mv))
    else:
        dname = "_parameters" if kind == "parameters" else "_buffers"
        for k, v in _children(tx, mv, dname):
            obj = mod.__dict__[dname][k]
            if obj is None or id(obj) in memo:
                continue
            memo.add(id(obj))
            out.append((prefix + ("." if prefix else "") + k, v))
    if recurse or kind == "modules":
        for k, child in _children(tx, mv):
            if child.is_const() and child.as_python() is None:
                continue
            out.extend(_walk(tx, child, kind, prefix + ("." if prefix else "") + k, recurse, memo))
    return out


def _named(kind, named):
    def method(tx, mv, *args, **kwargs):
        recurse = True
        if "recurse" in kwargs:
            recurse = kwargs["recurse"].as_python()
        items = _walk(tx, mv, kind, recurse=recurse)
        if named:
            return IteratorValue([TupleValue([ConstValue(n), v]) for n, v in items])
        return IteratorValue([v for _, v in items])
    return method


def _children_method(named):
    def method(tx, mv):
        items = [(k, v) for k, v in _children(tx, mv) if not (v.is_const() and v.as_python() is None)]
        if named:
            return IteratorValue([TupleValue([ConstValue(k), v]) for k, v in items])
        return IteratorValue([v for _, v in items])
    return method


MODULE_METHODS = {
    "__len__": _len, "__getitem__": _getitem,
    "__iter__": lambda tx, mv: IteratorValue(module_items(tx, mv)),
    "parameters": _named("parameters", False), "named_parameters": _named("parameters", True),
    "buffers": _named("buffers", False), "named_buffers": _named("buffers", True),
    "modules": _named("modules", False), "named_modules": _named("modules", True),
    "children": _children_method(False), "named_children": _children_method(True),
    "keys": lambda tx, mv: ListValue([ConstValue(k) for k, _ in _children(tx, mv)]),
    "values": lambda tx, mv: ListValue([v for _, v in _children(tx, mv)]),
    "items": lambda tx, mv: ListValue([TupleValue([ConstValue(k), v]) for k, v in _children(tx, mv)]),
}
