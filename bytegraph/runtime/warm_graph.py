"""Warm start, the graph side: what a record keeps of a compiled graph's inputs and nodes
(shape/stride/dtype metadata of example values, rebuilt as empty or fake tensors), the
GraphModule stand-in a warm load builds for the eager backend, and marshalled code."""
import marshal

import torch

_CONSTS = (int, float, complex, str, bytes, bool, type(None))


class GraphInfo:
    """One compiled graph of an entry: the GraphModule, the metadata of its example inputs
    (None when one cannot be rebuilt), the grad mode it was compiled under."""
    __slots__ = ("compiled", "gm", "inputs", "grad", "__weakref__")

    def __init__(self, compiled, gm, example_inputs, grad, symbolic):
        self.compiled, self.gm, self.grad = compiled, gm, grad
        self.inputs = None if symbolic else [_input_meta(x) for x in example_inputs]

    def __iter__(self):
        return iter((self.compiled, self.gm, self.inputs, self.grad))


def _input_meta(x):
    if isinstance(x, torch.Tensor):
        if x.layout is not torch.strided or x.is_quantized or type(x) not in (torch.Tensor, torch.nn.Parameter):
            return None
        return ("tensor", tuple(x.shape), tuple(x.stride()), str(x.dtype).rpartition(".")[2],
                str(x.device), bool(x.requires_grad))
    if type(x) in _CONSTS:
        return ("const", x)
    return None


def _example(meta):
    if meta[0] == "const":
        return meta[1]
    _, shape, stride, dtype, device, requires_grad = meta
    t = torch.empty_strided(shape, stride, dtype=getattr(torch, dtype), device=device)
    return t.requires_grad_(True) if requires_grad else t


_GRAPH_FILE = "<bytegraph warm graph>"


def _marshal(source, filename):
    """The compiled code of `source`, marshalled: a load skips Python's compiler. (Marshal is
    specific to the Python version, which the file header pins.)"""
    return marshal.dumps(compile(source, filename, "exec"))


class _Graph(torch.nn.Module):
    """What a warm load rebuilds for the eager backend: the stored `forward` bound to an empty
    module (the graph has no attributes: get_attr / call_module nodes are not persisted)."""

    def __init__(self, source):
        super().__init__()
        self.code = source


def _value_meta(v):
    """A node's example value as plain data (tensors by their metadata), or None when it has
    none we can describe. Compiling backends read it: inductor's AOT-autograd cache only
    accepts a graph whose tensor nodes carry an example value, as a trace leaves them."""
    if isinstance(v, torch.Tensor):
        if v.layout is not torch.strided or v.is_quantized or v.is_sparse or not all(
                type(d) is int for d in (*v.shape, *v.stride(), v.storage_offset())):
            return None
        return ("tensor", tuple(v.shape), tuple(v.stride()), v.storage_offset(),
                str(v.dtype).rpartition(".")[2], str(v.device), bool(v.requires_grad))
    if type(v) in _CONSTS:
        return ("const", v)
    if type(v) in (tuple, list):
        items = [_value_meta(x) for x in v]
        return None if None in items else (type(v).__name__, items)
    return None


def _fake_value(meta, mode):
    kind = meta[0]
    if kind == "const":
        return meta[1]
    if kind in ("tuple", "list"):
        items = [_fake_value(m, mode) for m in meta[1]]
        return tuple(items) if kind == "tuple" else items
    _, shape, stride, offset, dtype, device, requires_grad = meta
    with mode:
        size = offset + 1 + sum((n - 1) * st for n, st in zip(shape, stride)) if all(shape) else offset
        t = torch.empty(size, dtype=getattr(torch, dtype), device=device).as_strided(shape, stride, offset)
    return t.requires_grad_(True) if requires_grad else t
