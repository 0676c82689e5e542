"""Indexing with a 0-d integer tensor the graph computes (`x[e]`, `x[..., e, ...]`): torch's
indexing turns such an index into the int it holds and selects with it, so the graph does the
same with `e.item()` (an unbacked symbol) and one `index_with_ints` node. While a compiling
backend lowers that node, each symbolic index goes through `bytegraph::index_in_range` first,
which raises eager's IndexError for an index out of range (a compiled select never checks a
symbolic index: it would read or write outside the tensor) and hands back the index made
non-negative (so the view's storage offset is a known function of it)."""

import torch

from ..exc import Unsupported
from .checks import escapes
from ..runtime.rerun import covers
from ..graph.builder import NEEDS_SHAPE_ENV
from ..values.base import ConstValue, const
from ..values.containers import TupleValue
from ..values.known import known
from ..values.symbolic import SymSliceValue, SymValue
from ..values.tensor import TensorValue, graph_call

# a 0-d tensor of these dtypes indexes as the int it holds (uint8 and bool index as masks).
# uint64 is left out: eager reads it as an int64 and refuses a value past 2**63 with its own
# RuntimeError, which `item()` (a Python int) would not reproduce; it stops as before.
_SCALAR_INDEX_DTYPES = frozenset({torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16,
                                  torch.uint32})


def _scalar_index(v):
    return isinstance(v, TensorValue) and v.fake.dim() == 0 and v.fake.dtype in _SCALAR_INDEX_DTYPES


def select_scalar_indices(tx, obj, idx):
    """`x[e]` or `x[..., e, ...]` with `e` a 0-d integer tensor: torch's indexing turns `e` into
    the int it holds (`e.item()`) before anything else, so the graph does the same: one node
    `index_with_ints(x, (..., e.item(), ...))`, the item an unbacked symbol instead of a stop.
    Returns None when no component is such a tensor, or when the index holds a component that is
    not a constant, a symbolic int, a slice or a non-mask tensor (the caller indexes as before)."""
    parts = list(idx.items) if type(idx) is TupleValue else [idx]
    if not any(_scalar_index(p) for p in parts):
        return None
    for p in parts:
        ok = isinstance(p, TensorValue) and p.fake.dtype not in (torch.bool, torch.uint8) or \
            isinstance(p, SymSliceValue) or isinstance(p, SymValue) and p.python_type() is int or \
            isinstance(p, ConstValue) and (p.value is None or type(p.value) in (int, slice, type(Ellipsis)))
        if not ok:
            return None
    ints = []
    for p in parts:
        if _scalar_index(p):
            c = known(tx, p) if p.roots else None
            ints.append(const(int(c.item())) if c is not None else None)
    checked = None in ints          # an index read in the graph: it may raise there
    # (where a raise reruns the unit eagerly, runtime/rerun.py, eager's handlers take it)
    covered = checked and (escapes(tx.frame, tx.frame.inst.offset) and not tx.side_effects.deferred()
                           or covers(tx))
    if checked and not covered and not escapes(tx.frame, tx.frame.inst.offset, through_finally=True):
        # the graph raises eager's IndexError after the traced region, outside the user's
        # try/with block that would have caught it (policy/checks.py; a `finally` block, as
        # transformers' output-capturing wrappers keep around forward, is let through: its code
        # is skipped on such a raise, as it is for any op that raises inside a graph)
        raise Unsupported("indexing with a 0-d integer tensor inside a try or with block (an "
                          "index out of range would raise outside it)", kind="data_dependent")
    if checked and not covered and tx.side_effects.deferred():
        # the index is checked when the graph runs (eager's IndexError), but the Python side
        # effects before it are replayed after the graph: a raise would lose them
        raise Unsupported("indexing with a 0-d integer tensor may raise after Python side "
                          "effects the graph would defer", kind="data_dependent")
    if tx.graph.shape_env is None and checked:
        raise Unsupported("indexing with a 0-d integer tensor reads its value (an unbacked "
                          "symbol)", kind=NEEDS_SHAPE_ENV)
    ints = iter(ints)
    parts = [_int_index(tx, p, next(ints)) if _scalar_index(p) else p for p in parts]
    return graph_call(tx, "call_function", index_with_ints, [obj, TupleValue(parts)], {})


def _int_index(tx, p, value):
    """The int a 0-d index tensor stands for: its known value, else its item() in the graph."""
    return value if value is not None else graph_call(tx, "call_method", "item", [p], {})


def _index_in_range(index, size, position):
    """`index` (a 0-d int64 tensor) as eager's indexing checks an int at `position` of the
    index against a dimension of `size`: eager's IndexError when out of range, else the index
    made non-negative (a new 0-d tensor)."""
    i = int(index)
    if not -size <= i < size:
        raise IndexError(f"index {i} is out of bounds for dimension {position} with size {size}")
    return torch.scalar_tensor(i + size if i < 0 else i, dtype=torch.int64)


# the low-level registration (torch.library.custom_op costs ~6 ms at import)
_LIB = torch.library.Library("bytegraph", "DEF")
_LIB.define("index_in_range(Tensor index, SymInt size, int position) -> Tensor")
_LIB.impl("index_in_range", _index_in_range, "CompositeExplicitAutograd")
torch.library.register_fake("bytegraph::index_in_range",
                            lambda index, size, position: torch.empty((), dtype=torch.int64), lib=_LIB)
# its only output may go unused (`x[e]` whose result is dropped still raises in eager)
torch.fx.node.has_side_effect(torch.ops.bytegraph.index_in_range.default)


def _checked(i, size, position):
    """The symbolic index `i` checked in the graph (index_in_range) and read back: a new
    unbacked symbol known to lie in [0, size)."""
    n = torch.ops.bytegraph.index_in_range(torch.scalar_tensor(i, dtype=torch.int64), size, position).item()
    torch._check(n >= 0)
    torch._check(n < size)
    return n


def index_with_ints(t, index):
    """`t[index]` (a tuple) where some ints came from 0-d integer tensors. Run on real ints it is
    exactly that indexing (eager's own errors and messages). While tracing, where those ints are
    symbols that Tensor.__getitem__ refuses, each is checked in the graph as eager checks it
    (left to right; eager names the index's position and the dimension's size), then the
    tensor is selected at each (the last dim first, so the earlier dims keep their numbers), as
    torch's indexing does with an int, and indexed with the rest."""
    if not any(isinstance(i, torch.SymInt) for i in index):
        return t[index]
    spans = [0 if i is None else None if i is Ellipsis else
             i.dim() if isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) else 1
             for i in index]
    if None in spans:
        spans[spans.index(None)] = t.dim() - sum(s for s in spans if s is not None)
    picks, d = [], 0
    for position, (i, span) in enumerate(zip(index, spans)):
        if isinstance(i, torch.SymInt):
            picks.append((d, _checked(i, t.size(d), position)))
        d += span
    for d, i in reversed(picks):
        t = t.select(d, i)
    rest = tuple(i for i in index if not isinstance(i, torch.SymInt))
    return t[rest] if rest else t
