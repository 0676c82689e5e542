"""Opaque: a value computed by Python code the entry runs at a graph break.

`t.item()` and friends run in Python between two graphs (policy/breaks.py); the trace
goes on without knowing their result. The value can travel (be stored, returned,
printed). A scalar (`item()`) can also take part in arithmetic, comparisons and
float()/int()/bool() with constants and other scalars: the result is another Opaque,
an expression the entry evaluates where it needs it (a branch on it becomes a graph
break that tests it in Python, so the resumed code is not specialized on the number).
Anything else that needs the value stops the trace with kind "opaque", naming the
instruction that produced it (`producer`), where the converter then splits.
"""
import operator

from ..exc import Unsupported
from .base import Value, ConstValue


def producer_chain(tx):
    """(frame, instruction, step) from the innermost frame out: where the trace is now."""
    chain, f = [], tx.frame
    while f is not None:
        chain.append((f, f.inst, f.step))
        f = f.parent
    return chain


class Opaque(Value):
    param = None        # the parameter of a resume function it arrived through (see below)

    def __init__(self, name, desc, producer, scalar=False):
        self.name = name
        self.desc = desc
        self.producer = producer      # (frame, instruction, step) from the innermost out, at its making
        self.scalar = scalar

    def reconstruct(self, cg):
        return self.name

    def _needed(self, what, at_producer=True):
        e = Unsupported(f"{what} of {self.desc}, which ran in Python at a graph break",
                        kind="opaque", hint="the trace cannot see values computed outside it; keep "
                                            "the value a tensor (e.g. torch.where) to stay in the graph")
        e.producer = self.producer
        e.at_producer = at_producer and self.param is None
        if self.param is not None:
            e.specialize = self.param      # trace again with the parameter's value known
        raise e

    def python_type(self):
        self._needed("the type")

    def getattr(self, tx, name):
        self._needed(f"attribute {name!r}")

    def call(self, tx, args, kwargs):
        self._needed("a call")

    def call_method(self, tx, name, args, kwargs):
        self._needed(f"method {name!r}")

    def unpack(self, tx):
        self._needed("iterating")

    def truth(self, tx):
        # a branch on it: break at the branch itself if that is the root frame's instruction
        self._needed("the truth value", at_producer=False)

    def fx_arg(self, tx):
        self._needed("a graph op on the value")

    fake_arg = fx_arg

    def as_python(self):
        self._needed("the value")

    def __repr__(self):
        return f"Opaque({self.name}: {self.desc})"


class OpaqueParam(Opaque):
    """A scalar that reached a resume function as a parameter and was opaque where it came
    from (an item() result): it stays opaque, guarded on its type only, so the resumed code
    is not specialized on the number unless it needs the value (then the converter traces
    again with the value known and guarded)."""

    def __init__(self, name):
        super().__init__(name, f"parameter {name!r} (a Tensor.item() result)", None, scalar=True)
        self.param = name


class OpaqueText(Opaque):
    """A str that reached a resume function as a parameter: the text of an f-string field
    formatted at the break (`f"loss {loss}"`, which changes with the data). Guarded by type
    only; f-strings join it (`OpaqueJoin`); anything else that needs the text traces again
    with it known."""

    def __init__(self, name):
        super().__init__(name, f"parameter {name!r} (text formatted at a graph break)", None)
        self.param = name

    def python_type(self):
        return str


class OpaqueJoin(Opaque):
    """An f-string over text formatted at a break and constant pieces: joined by the entry."""

    def __init__(self, parts):
        param = next((p.param for p in parts if isinstance(p, Opaque) and p.param), None)
        super().__init__(None, "an f-string of text formatted at a graph break", None)
        self.parts = parts
        self.param = param

    def python_type(self):
        return str

    def reconstruct(self, cg):
        return "''.join((" + "".join(cg.expr(p) + ", " for p in self.parts) + "))"


def join_text(parts):
    """BUILD_STRING over Values: an OpaqueJoin when some pieces are opaque text and the rest
    constant strings, else None."""
    if not any(isinstance(p, Opaque) for p in parts):
        return None
    for p in parts:
        if not (type(p) in (OpaqueText, OpaqueJoin) or type(p) is ConstValue and type(p.value) is str):
            return None
    return OpaqueJoin(list(parts))


class OpaqueOp(Opaque):
    """fn(*operands) over scalar Opaques and constants, evaluated by the entry."""

    def __init__(self, fn, operands, producer):
        super().__init__(None, f"{getattr(fn, '__name__', fn)}(...) of a Tensor.item() result",
                         producer, scalar=True)
        self.fn = fn
        self.operands = operands

    def reconstruct(self, cg):
        return f"{cg.const(self.fn, getattr(self.fn, '__name__', 'op'))}(" + \
            ", ".join(cg.expr(o) for o in self.operands) + ")"

    def __repr__(self):
        return f"OpaqueOp({self.fn}, {self.operands})"


_NUMBERS = (int, float, bool)


def scalar_op(fn, operands):
    """An OpaqueOp if `operands` mix scalar Opaques with number constants only, else None."""
    producer, opaque, param = None, False, None
    for o in operands:
        if isinstance(o, Opaque):
            if not o.scalar:
                return None
            opaque = True
            param = param or o.param
            producer = o.producer if producer is None else producer
        elif not (type(o) is ConstValue and type(o.value) in _NUMBERS):
            return None
    if not opaque:
        return None
    r = OpaqueOp(fn, list(operands), producer)
    r.param = param
    return r


def involves_opaque(*values):
    return any(isinstance(v, Opaque) for v in values)


SCALAR_BUILTINS = (float, int, bool, abs, round, operator.truth)
