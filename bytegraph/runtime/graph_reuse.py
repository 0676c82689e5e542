"""Which graphs of a compiled function can share one backend compile.

A loop whose body breaks unrolls into one graph per iteration, and the iterations' graphs are
usually the same; a resume function compiled for each iteration of a `for` loop makes the same
graphs again. `same_graph_key` says when two GraphModules are interchangeable for the backend:
the same nodes (by position; targets and non-plain constants by identity, which the graphs keep
alive), the same grad mode and global switches a compiler may bake in, and example inputs alike
in everything a backend may specialize on. runtime/convert.py compiles each distinct key once.
"""
import struct

import torch
from torch import _C

from ..guards.guard_set import backend_switches


def same_graph_key(gm, example_inputs, grad, symbolic):
    """What makes two graphs of one trace interchangeable for the backend: the same code over the
    same global objects, the same grad mode, and example inputs alike in everything a backend may
    specialize on (type, dtype, device, layout, sizes, strides, offset, requires_grad, which
    inputs share storage; a symbolic size by its expression). A loop whose body stops the trace
    unrolls into one graph per iteration: those are compiled once. None: never shared (graphs
    holding attributes). Keys are computed at compile time, under the global state the backend
    compiles under (an entry compiled again under bfloat16 autocast is not float16's)."""
    index, nodes = {}, []
    for n in gm.graph.nodes:
        if n.op == "get_attr":
            return None
        index[n] = len(index)
        target = None if n.op == "placeholder" else n.target      # called positionally: names do not matter
        nodes.append((n.op, _plain(target, index), _plain(n.args, index), _plain(n.kwargs, index)))
    metas, storages = [], {}
    for x in example_inputs:
        if isinstance(x, torch.Tensor):
            if x.layout is not torch.strided or x.is_nested:
                return None
            try:
                sid = storages.setdefault(x.untyped_storage()._cdata, len(storages))
            except Exception:
                return None
            metas.append((type(x), x.dtype, x.device, tuple(map(str, x.shape)), tuple(map(str, x.stride())),
                          str(x.storage_offset()), x.requires_grad, x.is_leaf, x._is_view(), x.is_conj(),
                          x.is_neg(), sid))
        else:
            metas.append((type(x), str(x)))
    return tuple(nodes), grad, symbolic, tuple(metas), _global_state()


_PLAIN = (int, float, bool, str, complex, type(None), type(...), torch.dtype, torch.device, torch.layout,
          torch.memory_format)


_bits = struct.Struct("<d").pack


def _plain(x, index):
    """A node's target or argument as a comparable key: nodes by position, plain constants by
    type and repr (floats by their bits), containers item by item, any other object by identity (the graph holds it)."""
    if isinstance(x, torch.fx.Node):
        return ("node", index[x])
    t = type(x)
    if t is float:          # by bits: repr spells every nan `nan`, whatever its sign
        return (t, _bits(x))
    if t is complex:
        return (t, _bits(x.real), _bits(x.imag))
    if t in _PLAIN:
        return (t, repr(x))
    if t in (tuple, list):
        return (t, tuple(_plain(i, index) for i in x))
    if t in (dict, torch.fx.immutable_collections.immutable_dict):
        return (t, tuple((k, _plain(v, index)) for k, v in x.items()))
    if t is torch.fx.immutable_collections.immutable_list:
        return (t, tuple(_plain(i, index) for i in x))
    if t is slice:
        return (t, _plain((x.start, x.stop, x.step), index))
    return ("id", id(x))


def _global_state():
    """Switches a backend may read when it compiles (the ones guards/guard_set.py guards per
    entry, and the dispatch state): a graph compiled under other values is not reused."""
    return (torch.is_inference_mode_enabled(), torch.get_default_dtype(),
            torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            _C._is_any_autocast_enabled(), _autocast_state(),
            tuple(fn(*args) for fn, _, *args in backend_switches(False)))


def _autocast_state():
    """Each device's autocast switch and dtype (a graph compiled under bfloat16 autocast is not one
    compiled under float16), and the autocast cache switch."""
    return (tuple((d, _C.is_autocast_enabled(d), _C.get_autocast_dtype(d)) for d in _C._autocast_supported_devices()),
            _C.is_autocast_cache_enabled())
