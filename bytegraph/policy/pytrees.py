"""torch.utils._pytree's flatten / unflatten / leaves / map over trace Values.

torch's own functions decide the structure: a Value tree (plain tuples, lists, namedtuples,
constants) is turned into a Python skeleton whose leaves are `_Leaf` stand-ins, the real
pytree function runs on the skeleton, and the result is turned back into Values. The TreeSpec
is a trace-time constant (`TreeSpecValue`). A tree holding anything the skeleton cannot show
as pytree would see it (dicts, objects of registered node types, an `is_leaf` callback,
several trees for tree_map) is not modelled: the call goes on as before (a graph op).
This is what torch's associative_scan (generic mode) does around its vmapped combine_fn.
"""
import torch.utils._pytree as pytree

from ..exc import Unsupported
from ..values.base import Value, ConstValue, const
from ..values.containers import TupleValue, ListValue


class _NoModel(Exception):
    pass


class _Leaf:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class TreeSpecValue(Value):
    """A TreeSpec a modelled pytree call made: a constant."""

    def __init__(self, spec):
        self.spec = spec

    def python_type(self):
        return type(self.spec)

    def is_const(self):
        return True

    def as_python(self):
        return self.spec

    def __repr__(self):
        return f"TreeSpec({self.spec})"


def _skeleton(v):
    t = type(v)
    if t is TupleValue:
        cls = v.python_type()
        items = [_skeleton(i) for i in v.items]
        if cls is tuple:
            return tuple(items)
        if hasattr(cls, "_fields") and issubclass(cls, tuple):
            return cls(*items)
        raise _NoModel
    if t is ListValue:
        return [_skeleton(i) for i in v.items]
    if t is ConstValue:
        return _const_skeleton(v.value)
    try:
        pt = v.python_type()
    except Unsupported:
        raise _NoModel from None
    if pt in pytree.SUPPORTED_NODES or issubclass(pt, (tuple, list, dict)):
        raise _NoModel
    return _Leaf(v)


def _const_skeleton(x):
    """A constant as pytree sees it, with the containers _values can turn back into Values
    (tuples, lists, namedtuples); a constant holding any other pytree node (a dict) is not
    modelled (its leaves would come back inside a constant dict as _Leaf stand-ins)."""
    t = type(x)
    if t is tuple or t is list:
        return t(_const_skeleton(i) for i in x)
    if isinstance(x, tuple) and hasattr(t, "_fields"):
        return t(*[_const_skeleton(i) for i in x])
    if t in pytree.SUPPORTED_NODES or isinstance(x, (tuple, list, dict)):
        raise _NoModel
    return x


def _values(x):
    if type(x) is _Leaf:
        return x.value
    if type(x) is tuple:
        return TupleValue([_values(i) for i in x])
    if type(x) is list:
        return ListValue([_values(i) for i in x])
    if isinstance(x, tuple) and hasattr(type(x), "_fields"):
        return TupleValue([_values(i) for i in x], cls=type(x))
    if type(x) in pytree.SUPPORTED_NODES or isinstance(x, (tuple, list, dict)):
        raise _NoModel        # a dict (or other node) rebuilt around _Leaf stand-ins: not modelled
    return const(x)


def _spec_of(v):
    spec = v.as_python() if v.is_const() else None
    if not isinstance(spec, pytree.TreeSpec):
        raise _NoModel
    return spec


def _flatten(tx, tree, is_leaf=None):
    if is_leaf is not None and not (type(is_leaf) is ConstValue and is_leaf.value is None):
        raise _NoModel
    return pytree.tree_flatten(_skeleton(tree))


def _tree_flatten(tx, tree, is_leaf=None):
    leaves, spec = _flatten(tx, tree, is_leaf)
    return TupleValue([ListValue([_values(x) for x in leaves]), TreeSpecValue(spec)])


def _tree_leaves(tx, tree, is_leaf=None):
    leaves, _ = _flatten(tx, tree, is_leaf)
    return ListValue([_values(x) for x in leaves])


def _tree_unflatten(tx, leaves, treespec):
    spec = _spec_of(treespec)
    if type(leaves) not in (TupleValue, ListValue):
        raise _NoModel
    items = [_Leaf(v) for v in leaves.items]
    if len(items) != spec.num_leaves:
        raise _NoModel          # pytree raises: let the op path report it as before
    return _values(pytree.tree_unflatten(items, spec))


def _tree_map(tx, func, tree, *rests, is_leaf=None):
    if rests:
        raise _NoModel
    leaves, spec = _flatten(tx, tree, is_leaf)
    _values(pytree.tree_unflatten([_Leaf(None)] * len(leaves), spec))   # _NoModel before func runs
    out = [_Leaf(func.call(tx, [_values(x)], {})) for x in leaves]
    return _values(pytree.tree_unflatten(out, spec))


_MODELS = {pytree.tree_flatten: _tree_flatten, pytree.tree_leaves: _tree_leaves,
           pytree.tree_unflatten: _tree_unflatten, pytree.tree_map: _tree_map}

MODELLED = frozenset(_MODELS)
_ARITY = {_tree_flatten: 1, _tree_leaves: 1, _tree_unflatten: 2, _tree_map: 2}


def modelled_call(tx, fn, args, kwargs):
    """The Value of a modelled pytree call, or None when `fn` is not one or the tree is not
    one the model shows as pytree would (the caller goes on as it did)."""
    model = _MODELS.get(fn)
    if model is None or set(kwargs) - {"is_leaf"} or len(args) != _ARITY[model] and model is not _tree_map:
        return None
    try:
        return model(tx, *args, **kwargs)
    except _NoModel:
        return None
