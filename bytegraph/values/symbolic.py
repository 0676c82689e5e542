"""Symbolic sizes: SymInt/SymFloat/SymBool values flowing through the traced Python code.

A trace with dynamic dimensions (docs/dynamic_shapes.md) runs its fake tensors under a
ShapeEnv: a dynamic dimension is a symbol (`s0`), a size read from such a tensor is a
`torch.SymInt`, and Python arithmetic on it yields new symbolic expressions. `SymValue` is
the interpreter's Value for one: an fx node that computes it at run time plus the SymInt that
stands for it while tracing, so `x.view(b, -1, h)`, `x.shape[0] // 2`, `torch.arange(n)` and
slices by a size all stay symbolic in the graph.

Anything that needs the concrete number (a `range()` to unroll, a dict key, a value handed to
code outside the graph) *specializes* it: `as_python()` returns the trace-time value and the
ShapeEnv records the guard `s0 == 4`, so the entry is only reused for that value, never wrong.
A branch on a comparison (`if n > 2:`) records that comparison as a guard instead. A dimension
the user marked dynamic must not be specialized: that raises `ConstraintViolation` naming the
user's line.

SymValue subclasses ConstValue, so code that only knows constants still works (and
specializes, through the `value` property) -- the symbolic paths are opt-in where they matter:
operators (protocols/operators.py), graph calls (values/tensor.py), slices and shapes.
"""
import math

import torch

from ..exc import Unsupported, UserError
from .base import ConstValue

SYM_TYPES = (torch.SymInt, torch.SymFloat, torch.SymBool)
_PY_TYPE = {torch.SymInt: int, torch.SymFloat: float, torch.SymBool: bool}
_NUMBERS = (int, float, bool)


class ConstraintViolation(RuntimeError):
    """A dimension marked with mark_dynamic() was forced to a constant by the traced code."""


def is_symbolic(v):
    """A SymInt/SymFloat/SymBool whose value is not a known constant."""
    return isinstance(v, SYM_TYPES) and not v.node.is_constant() and \
        not getattr(v.node.expr, "is_number", False)


def plain(v):
    """A Sym type whose expression is a number -> that number; anything else as is."""
    if isinstance(v, SYM_TYPES) and not is_symbolic(v):
        return _PY_TYPE[type(v)](v)
    return v


def has_sym(obj):
    if isinstance(obj, SYM_TYPES):
        return True
    if isinstance(obj, (list, tuple)):
        return any(has_sym(x) for x in obj)
    return False


def any_symbolic(obj):
    """Some Sym value in `obj` (a Sym or a list/tuple of them) is not a known number."""
    if isinstance(obj, (list, tuple)):
        return any(any_symbolic(x) for x in obj)
    return is_symbolic(obj)


def hint(v):
    """The trace-time value of a symbolic number, without adding a guard."""
    if isinstance(v, SYM_TYPES):
        h = v.node.hint
        if h is None:
            raise Unsupported("a data-dependent size with no trace-time value", kind="data_dependent")
        return h
    return v


class SymValue(ConstValue):
    """A symbolic int/float/bool: (fx node, Sym object). See the module docstring."""

    def __init__(self, tx, node, sym, source=None):
        self.tx = tx
        self.node = node
        self.sym = sym
        self.source = source

    # -- as a constant: specialize (the ShapeEnv guards the value) ---------------
    @property
    def value(self):
        return self.as_python()

    def as_python(self):
        marked = self.tx.graph.marked_in(self.sym)
        if marked:
            raise_specialized(self.tx, marked, "its value was needed as a Python constant")
        return _PY_TYPE[type(self.sym)](self.sym)      # records `s == value` in the ShapeEnv

    def python_type(self):
        return _PY_TYPE[type(self.sym)]

    def truth(self, tx):
        return bool(self.sym)              # records the comparison (`s > 2`) as a guard

    # -- in the graph -----------------------------------------------------------
    def fx_arg(self, tx):
        return self.node

    def fake_arg(self, tx):
        return self.sym

    def reconstruct(self, cg):
        if self.source is not None:
            return self.source.expr(cg)
        return cg.graph_output(self.node)         # the graph computes it and returns it

    def __repr__(self):
        return f"Sym({self.sym})"


def raise_specialized(tx, symbols, why):
    where = tx.frame.location() if tx.frame is not None else "?"
    names = ", ".join(sorted(symbols))
    raise ConstraintViolation(f"bytegraph: a dimension marked dynamic ({names}) was specialized to "
                              f"a constant at {where}: {why}. Remove the mark_dynamic() call, or "
                              f"use maybe_mark_dynamic() to allow specialization")


def check_marks(tx, why):
    """Raise if the trace has just forced a dimension marked dynamic to a constant."""
    forced = tx.graph.specialized_marks()
    if forced:
        raise_specialized(tx, forced, why)


def wrap_sym(tx, node, sym, source=None):
    """A Sym result -> SymValue, or a ConstValue when it is a known number."""
    if not is_symbolic(sym):
        if node is not None and not node.users and node.op != "placeholder":
            tx.graph.graph.erase_node(node)
        return ConstValue(plain(sym))
    node.meta["example_value"] = sym
    return SymValue(tx, node, sym, source)


def wrap_int_input(tx, value, source):
    """An int argument made dynamic: a SymInt placeholder, guarded on its type (the ShapeEnv's
    range and guards cover the value). None when the ShapeEnv specializes it (0 and 1)."""
    made = tx.graph.add_sym_input(source, value)
    if made is None:
        return None
    tx.guards.add_type(source, int)
    tx.guards.ints.append((source, None))     # symbolic: a new value is no change to report
    return SymValue(tx, made[0], made[1], source)


def is_sym_operand(v):
    return isinstance(v, SymValue) or (type(v) is ConstValue and type(v.value) in _NUMBERS)


def sym_op(tx, op, operands):
    """op(*operands) where some operand is a SymValue and the others plain numbers: a graph
    node computing it (state-free; not counted as tensor work). None if not applicable."""
    if not any(isinstance(o, SymValue) for o in operands) or not all(map(is_sym_operand, operands)):
        return None
    fakes = [o.sym if isinstance(o, SymValue) else o.value for o in operands]
    try:
        result = op(*fakes)
    except TypeError:
        return None          # a Sym type lacks this operation (~n of a SymInt): specialize instead
    except (ZeroDivisionError, OverflowError, ValueError) as e:
        raise UserError(e)
    if not isinstance(result, SYM_TYPES + _NUMBERS):
        return None                     # the caller specializes instead
    if not is_symbolic(result):
        return ConstValue(plain(result))
    args = [o.node if isinstance(o, SymValue) else o.value for o in operands]
    node = tx.graph.create("call_function", op, args, {}, result, counts=False)
    return SymValue(tx, node, result)


class SymSliceValue(ConstValue):
    """slice(a, b, c) with a symbolic bound: a graph argument (x[:, :n]); as a constant, the
    bounds specialize."""

    def __init__(self, parts):
        self.parts = parts

    @property
    def value(self):
        return self.as_python()

    def as_python(self):
        return slice(*[p.as_python() for p in self.parts])

    def python_type(self):
        return slice

    def fx_arg(self, tx):
        return slice(*[p.fx_arg(tx) if isinstance(p, SymValue) else p.as_python() for p in self.parts])

    def fake_arg(self, tx):
        return slice(*[p.sym if isinstance(p, SymValue) else p.as_python() for p in self.parts])

    def __repr__(self):
        return f"SymSlice({self.parts})"


def size_value(tx, tensor_value, dim):
    """tensor.shape[dim] as a Value: a constant, or a SymValue read by a `size` node."""
    s = tensor_value.fake.shape[dim]
    if not is_symbolic(s):
        return ConstValue(plain(s))
    node = tx.graph.create("call_method", "size", [tensor_value.node, dim], {}, s, counts=False)
    return SymValue(tx, node, s)


def shape_value(tx, tensor_value):
    """tensor.shape: a constant torch.Size, or a torch.Size tuple of constants and SymValues."""
    shape = tensor_value.fake.shape
    if not any(is_symbolic(s) for s in shape):
        return ConstValue(torch.Size([plain(s) for s in shape]))
    from .containers import TupleValue
    return TupleValue([size_value(tx, tensor_value, d) for d in range(len(shape))], cls=torch.Size)


# --------------------------------------------------------------------------
# rendering ShapeEnv expressions as guard code

def sym_printer(names):
    """A printer of sympy expressions to Python code, with each symbol replaced by the
    expression that fetches its value in the entry function (`names`: symbol -> code)."""
    from torch.utils._sympy.printers import PythonPrinter

    class _Printer(PythonPrinter):
        def _print_Symbol(self, expr):
            text = names.get(expr)
            if text is None:
                raise Unsupported(f"a shape guard on {expr}, which no input provides",
                                  kind="symbolic_guard")
            return text
    return _Printer()


def render_sym(printer, v):
    """Code for a size/stride that is an int or a SymInt."""
    if isinstance(v, SYM_TYPES):
        if not is_symbolic(v):
            return repr(plain(v))
        return f"({printer.doprint(v.node.expr)})"
    return repr(v)


def finite(bound):
    try:
        return math.isfinite(float(bound))
    except (TypeError, ValueError):
        return False
