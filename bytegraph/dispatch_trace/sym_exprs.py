"""Turn ShapeEnv sympy expressions into FX nodes (symbolic tracing mode).

In symbolic mode every SymInt/SymFloat/SymBool that reaches an aten op (or is
returned by the traced function) carries a sympy expression over the input
symbols (``s0``, ``s1`` ...).  Instead of intercepting every Python operator on
SymInts, we rebuild the value from that expression: each free symbol maps to a
graph node that reads it (``aten.sym_size.int(arg, dim)`` etc.) and each sympy
operator becomes an ``operator.*`` / ``torch.sym_*`` call_function node.  The
result is equivalent to the size arithmetic the user wrote, already simplified
by the ShapeEnv.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, Optional

import sympy
import torch
from torch.utils._sympy import functions as F


_OPAQUE_UNARY = {f"OpaqueUnaryFn_{n}": getattr(math, n) for n in (
    "sqrt", "exp", "log", "log2", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
    "asinh")}
_BITWISE = {F.BitwiseFn_bitwise_and: operator.and_, F.BitwiseFn_bitwise_or: operator.or_,
            F.BitwiseFn_bitwise_xor: operator.xor}


class UnsupportedSymExpr(Exception):
    """Raised for sympy constructs we cannot express as graph nodes."""


def _is_int_expr(e: sympy.Expr) -> bool:
    return bool(getattr(e, "is_integer", False))


class SymExprEmitter:
    """Emit nodes for sympy expressions, memoized per expression.

    ``symbol_node(sym)`` returns the node for a free symbol (or raises
    ``KeyError`` if the symbol has no known source); ``call(target, args)``
    creates a call_function node and returns it.
    """

    def __init__(self, symbol_node: Callable[[sympy.Symbol], Any],
                 call: Callable[[Any, tuple], Any],
                 make_val: Optional[Callable[[sympy.Basic], Any]] = None) -> None:
        self._symbol_node = symbol_node
        self._call = call
        self._make_val = make_val
        self._cache: dict = {}

    def emit(self, e: sympy.Basic) -> Any:
        hit = self._cache.get(e)
        if hit is not None:
            return hit
        out = self._emit(e)
        # every emitted node (including intermediates) gets meta["val"]
        if self._make_val is not None and hasattr(out, "meta") and "val" not in out.meta:
            out.meta["val"] = self._make_val(e)
        self._cache[e] = out
        return out

    # -- helpers -------------------------------------------------------------
    def _node(self, fn, args, expr):
        """call_function node for an intermediate value whose sympy form is ``expr``."""
        node = self._call(fn, args)
        if self._make_val is not None and hasattr(node, "meta"):
            node.meta["val"] = self._make_val(expr)
        return node

    def _fold(self, fn, exprs, combine):
        acc_e = exprs[0]
        acc = self.emit(acc_e)
        for e in exprs[1:]:
            acc_e = combine(acc_e, e)
            acc = self._node(fn, (acc, self.emit(e)), acc_e)
        return acc

    def _const(self, e):
        if e is sympy.true:
            return True
        if e is sympy.false:
            return False
        if e.is_Integer:
            return int(e)
        if e.is_Rational:
            return float(e)
        if e.is_Float:
            return float(e)
        if e in (sympy.oo, -sympy.oo):
            return math.inf if e is sympy.oo else -math.inf
        raise UnsupportedSymExpr(f"constant {e!r}")

    def _emit(self, e):
        if e.is_number or e in (sympy.true, sympy.false):
            return self._const(e)
        if isinstance(e, sympy.Symbol):
            return self._symbol_node(e)
        if isinstance(e, sympy.Add):
            # put positive terms first so "s0 - 1" reads as sub, not add(-1*..)
            pos, neg = [], []
            for t in e.args:
                c, rest = t.as_coeff_Mul()
                if c.is_number and c < 0:
                    neg.append(-t)
                else:
                    pos.append(t)
            if not pos:
                return self._call(operator.neg, (self.emit(sympy.Add(*neg)),))
            acc = self._fold(operator.add, pos, operator.add)
            acc_e = sympy.Add(*pos)
            for t in neg:
                acc_e = acc_e - t
                acc = self._node(operator.sub, (acc, self.emit(t)), acc_e)
            return acc
        if isinstance(e, sympy.Mul):
            num, den = [], []
            for t in e.args:
                if t.is_Rational and not t.is_Integer:
                    if t.p != 1:
                        num.append(sympy.Integer(t.p))
                    den.append(sympy.Integer(t.q))
                elif isinstance(t, sympy.Pow) and t.exp.is_Integer and t.exp < 0:
                    den.append(t.base ** (-t.exp))
                else:
                    num.append(t)
            # constants last: "s0 * 2" rather than "2 * s0"
            num.sort(key=lambda t: 1 if t.is_number else 0)
            acc = self._fold(operator.mul, num, operator.mul) if num else 1
            acc_e = sympy.Mul(*num) if num else sympy.Integer(1)
            # integer-valued expressions divide exactly: keep them ints
            exact = _is_int_expr(e)
            div = operator.floordiv if exact else operator.truediv
            for d in den:
                acc_e = F.FloorDiv(acc_e, d) if exact else acc_e / d
                acc = self._node(div, (acc, self.emit(d)), acc_e)
            return acc
        if isinstance(e, sympy.Pow):
            return self._call(operator.pow, (self.emit(e.base), self.emit(e.exp)))
        if isinstance(e, (F.PowByNatural, F.FloatPow)):
            return self._call(operator.pow, tuple(self.emit(a) for a in e.args))
        if isinstance(e, F.FloorDiv):  # includes CleanDiv
            return self._call(operator.floordiv, tuple(self.emit(a) for a in e.args))
        if isinstance(e, F.CeilDiv):
            ea, eb = e.args
            a, b = self.emit(ea), self.emit(eb)
            neg_a = self._node(operator.neg, (a,), -ea)
            q = self._node(operator.floordiv, (neg_a, b), F.FloorDiv(-ea, eb))
            return self._call(operator.neg, (q,))
        if isinstance(e, F.ModularIndexing):
            eb, ed, _ = e.args
            base, div, mod = (self.emit(x) for x in e.args)
            q = self._node(operator.floordiv, (base, div), F.FloorDiv(eb, ed))
            return self._call(operator.mod, (q, mod))
        if isinstance(e, (F.Mod, F.PythonMod, sympy.Mod)):
            return self._call(operator.mod, tuple(self.emit(a) for a in e.args))
        if isinstance(e, (F.Max, sympy.Max)):
            return self._fold(torch.sym_max, list(e.args), F.Max)
        if isinstance(e, (F.Min, sympy.Min)):
            return self._fold(torch.sym_min, list(e.args), F.Min)
        if isinstance(e, (F.IntTrueDiv, F.FloatTrueDiv)):
            return self._call(operator.truediv, tuple(self.emit(a) for a in e.args))
        if isinstance(e, F.ToFloat):
            return self._call(torch.sym_float, (self.emit(e.args[0]),))
        if isinstance(e, F.TruncToInt):
            return self._call(torch.sym_int, (self.emit(e.args[0]),))
        if isinstance(e, F.FloorToInt):
            return self._call(math.floor, (self.emit(e.args[0]),))
        if isinstance(e, F.CeilToInt):
            return self._call(math.ceil, (self.emit(e.args[0]),))
        if isinstance(e, F.Identity):
            return self.emit(e.args[0])
        opaque = _OPAQUE_UNARY.get(type(e).__name__)
        if opaque is not None:          # OpaqueUnaryFn_sqrt & co: the math function of a SymFloat
            return self._call(opaque, (self.emit(e.args[0]),))
        if isinstance(e, sympy.Abs):
            return self._call(operator.abs, (self.emit(e.args[0]),))
        if isinstance(e, F.RoundToInt):
            return self._call(round, (self.emit(e.args[0]),))
        if isinstance(e, F.TruncToFloat):
            return self._call(torch.sym_float, (self._call(torch.sym_int, (self.emit(e.args[0]),)),))
        bitwise = _BITWISE.get(type(e))
        if bitwise is not None:
            return self._call(bitwise, tuple(self.emit(a) for a in e.args))
        rel = {
            sympy.Eq: operator.eq, sympy.Ne: operator.ne,
            sympy.StrictLessThan: operator.lt, sympy.LessThan: operator.le,
            sympy.StrictGreaterThan: operator.gt, sympy.GreaterThan: operator.ge,
        }.get(type(e))
        if rel is not None:
            return self._call(rel, (self.emit(e.lhs), self.emit(e.rhs)))
        if isinstance(e, sympy.And):
            return self._fold(operator.and_, list(e.args), sympy.And)
        if isinstance(e, sympy.Or):
            return self._fold(operator.or_, list(e.args), sympy.Or)
        if isinstance(e, sympy.Not):
            return self._call(torch.sym_not, (self.emit(e.args[0]),))
        raise UnsupportedSymExpr(f"{type(e).__name__}: {e}")
