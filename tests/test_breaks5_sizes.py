"""Regions between graph breaks that only read symbolic sizes (dynamic shapes) run as Python,
not as a graph (graph/segments.py: as_python): `n = x.shape[-1]` before a stop or a print
needs the size in Python, and a graph holding only `size()` calls and integer arithmetic is a
compile with no tensor work (hf/encodec's `_pad1d` unit made four such graphs). Differential:
outputs and stdout against eager over several sizes; graph counts."""
import contextlib
import io

import torch

import bytegraph

from test_graph_breaks import Counting, assert_same


def run(fn, make_args, sizes):
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(fn, backend=be, dynamic=True)
    for s in sizes:
        ea, ca = make_args(s), make_args(s)
        oe, oc = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(oe):
            re_ = fn(*ea)
        with contextlib.redirect_stdout(oc):
            rc = c(*ca)
        assert oe.getvalue() == oc.getvalue()
        assert_same(re_, rc)
        assert_same(ea, ca)
    return be.graphs


def size_then_stop(x, a, b):
    n = x.shape[-1] + 1
    k = x.shape[0] // 2
    m = max(a, b)                 # stops: max() of tensors depends on their values
    return x[..., :n - 1] * m + k


def test_sizes_before_a_stop_need_no_graph():
    make = lambda s: (torch.arange(3.0 * s).reshape(3, s), torch.tensor(2.0), torch.tensor(3.0))
    graphs = run(size_then_stop, make, [5, 7, 9])
    assert len(graphs) == 1, [g.code for g in graphs]
    assert not any("size" in g.code and "mul" not in g.code for g in graphs)


def size_print(x):
    n = x.shape[-1] * 2
    print("n", n, x.shape[0] - 1)
    return x.sum(-1) * n


def test_sizes_before_a_print_need_no_graph():
    graphs = run(size_print, lambda s: (torch.arange(2.0 * s).reshape(2, s),), [4, 6, 8])
    assert len(graphs) == 1, [g.code for g in graphs]


def stride_arith_then_stop(x, a, b):
    s = x.stride(0) + x.size(1) * x.dim() - x.numel() // x.size(0)
    m = max(a, b)
    return x * m + s


def test_strides_and_arithmetic_need_no_graph():
    make = lambda s: (torch.ones(s, s + 1), torch.tensor(1.0), torch.tensor(-1.0))
    graphs = run(stride_arith_then_stop, make, [3, 5, 7])
    assert len(graphs) == 1, [g.code for g in graphs]
