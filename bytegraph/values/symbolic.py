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
import operator

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


def _no_value(v):
    e = Unsupported("a data-dependent size with no trace-time value", kind="data_dependent",
                    hint="the size depends on tensor values (nonzero(), a boolean mask); the "
                         "op that made it runs in Python when the trace can stop there")
    e.unbacked = v.node.expr.free_symbols     # the interpreter finds the op that made it
    return e


def hint(v):
    """The trace-time value of a symbolic number, without adding a guard."""
    if isinstance(v, SYM_TYPES):
        h = v.node.hint
        if h is None:
            raise _no_value(v)
        return h
    return v


def decide(v, conv):
    """conv(v) (bool/int/float of a Sym: the ShapeEnv records the guard). A value the ShapeEnv
    cannot decide (`len(x.nonzero()) > 0`: an unbacked size) refuses as hint() does, so the
    trace stops at the op that made the size, not with torch's guard error."""
    try:
        return conv(v)
    except Exception as e:
        if type(e).__name__ != "GuardOnDataDependentSymNode" or v.node.hint is not None:
            raise
        raise _no_value(v) from None


# int/float methods that are an operator on numbers of the accepted types (other operands make
# the C method return NotImplemented, which the caller then sees through the specialized path)
_BINARY_DUNDERS = {f"__{n}__": getattr(operator, n) for n in (
    "eq", "ne", "lt", "le", "gt", "ge", "add", "sub", "mul", "floordiv", "truediv", "mod", "pow")}
_BINARY_DUNDERS.update({f"__r{n}__": (lambda op: lambda a, b: op(b, a))(getattr(operator, n)) for n in (
    "add", "sub", "mul", "floordiv", "truediv", "mod", "pow")})
_UNARY_DUNDERS = {"__neg__": operator.neg, "__pos__": operator.pos, "__abs__": operator.abs,
                  "__floor__": math.floor, "__ceil__": math.ceil, "__trunc__": math.trunc,
                  "__round__": round, "__bool__": None, "__index__": None, "__int__": None,
                  "__float__": None, "__hash__": None}


def sym_method(tx, v, name, args):
    """type(v).<name>(v, *args) for a SymValue `v`, staying symbolic; None when not modelled."""
    own = v.python_type()
    if name in _BINARY_DUNDERS:
        if len(args) != 1 or not is_sym_operand(args[0]):
            return None
        other = args[0].python_type()
        if own is bool:
            return None
        if own is int and other is float:
            return ConstValue(NotImplemented)      # int.__eq__(n, 4.5): int knows no floats
        arg = args[0]
        if other is bool:                          # True is 1 to int's methods
            if isinstance(arg, SymValue):
                return None
            arg = ConstValue(int(arg.value))
        return sym_op(tx, _BINARY_DUNDERS[name], [v, arg])
    if name not in _UNARY_DUNDERS or args or own is bool:
        return None
    if name == "__bool__":
        return ConstValue(v.truth(tx))
    if name == "__hash__":
        return ConstValue(hash(v.as_python()))        # the number (guarded)
    if name in ("__index__", "__int__") and own is int or name == "__float__" and own is float:
        return v
    if name == "__index__":
        return None                        # float has no __index__
    if name == "__int__":
        return sym_op(tx, torch.sym_int, [v])
    if name == "__float__":
        return sym_op(tx, torch.sym_float, [v])
    if own is int and name in ("__floor__", "__ceil__", "__trunc__", "__round__"):
        return v
    return sym_op(tx, _UNARY_DUNDERS[name], [v])


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
        return decide(self.sym, _PY_TYPE[type(self.sym)])   # records `s == value` in the ShapeEnv

    def python_type(self):
        return _PY_TYPE[type(self.sym)]

    def truth(self, tx):
        return decide(self.sym, bool)      # records the comparison (`s > 2`) as a guard

    # -- its type's methods (n.__eq__(4), n.__index__(), (n / 3).__floor__()) -----
    METHODS = frozenset(_BINARY_DUNDERS) | frozenset(_UNARY_DUNDERS)

    def getattr(self, tx, name):
        if name in self.METHODS:
            from .functions import BoundMethodValue
            return BoundMethodValue(self, name)
        return super().getattr(tx, name)

    def call_method(self, tx, name, args, kwargs):
        r = None if kwargs else sym_method(tx, self, name, args)
        if r is None:                      # not a case modelled here: the number (guarded)
            return ConstValue(self.as_python()).call_method(tx, name, args, kwargs)
        return r

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
    """An int (or float) from the caller made dynamic: a SymInt (SymFloat) placeholder, guarded
    on its type (the ShapeEnv's range and guards cover the value). None when the ShapeEnv
    specializes it (ints 0 and 1)."""
    made = tx.graph.add_sym_input(source, value)
    if made is None:
        return None
    tx.guards.add_type(source, type(value))
    if type(value) is float:
        tx.guards.add_finite(source)
    tx.guards.ints.append((source, None))     # symbolic: a new value is no change to report
    return SymValue(tx, made[0], made[1], source)


def wrap_size_input(tx, value, source):
    """A torch.Size from the caller (a shape live across a graph break, handed to the resume
    function) item by item: its type and length guarded, each size wrapped (and so symbolic
    where the policy says so, runtime/dynamic.py)."""
    from ..sources import ItemSource
    from .base import wrap
    from .containers import TupleValue
    tx.guards.add_len(source, torch.Size, len(value))
    return TupleValue([wrap(tx, v, ItemSource(source, i)) for i, v in enumerate(value)], cls=torch.Size,
                      source=source)


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
    except RuntimeError:
        # torch refuses a symbolic form Python has (a power of a negative base: `n ** -1`,
        # `n ** 0.5`): torch._check failed on this value, so the caller specializes
        return None
    except (ZeroDivisionError, OverflowError, ValueError) as e:
        raise UserError(e)
    if not isinstance(result, SYM_TYPES + _NUMBERS):
        return None                     # the caller specializes instead
    if not is_symbolic(result):
        return ConstValue(plain(result))
    args = [o.node if isinstance(o, SymValue) else o.value for o in operands]
    node = tx.graph.create("call_function", op, args, {}, result, counts=False)
    return SymValue(tx, node, result)


_TENSOR_KWARGS = frozenset({"dtype", "device", "requires_grad", "pin_memory"})
_DEFAULT_DTYPE = {int: torch.int64, bool: torch.bool}


def sym_tensor(tx, args, kwargs):
    """torch.tensor(n) of a symbolic number: torch.scalar_tensor(n) in the graph (same dtype
    rules), so the size stays symbolic. None when not that case."""
    if len(args) != 1 or not isinstance(args[0], SymValue) or not set(kwargs) <= _TENSOR_KWARGS:
        return None
    from .tensor import graph_call
    kwargs = dict(kwargs)
    dtype = _DEFAULT_DTYPE.get(args[0].python_type())    # a float: the default dtype, as torch.tensor
    given = kwargs.get("dtype")
    if dtype is not None and (given is None or type(given) is ConstValue and given.value is None):
        kwargs["dtype"] = ConstValue(dtype)
    return graph_call(tx, "call_function", torch.scalar_tensor, list(args), kwargs)


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
