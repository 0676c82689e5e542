"""Python's data model over Values, implemented once, in CPython's order.

`special.py` finds a special method on a value's type (a static MRO walk with
guards) and calls it the way CPython would: a dunder written in Python is
inlined like any user function; a dunder implemented in C is folded (run for
real) only when its arguments are immutable constants, modelled structurally
for containers the trace built, or refused. `operators.py` builds the
operators on top: binary and in-place operators with reflection, rich
comparisons, truth, membership, hashing and unary operators.

Opcode handlers and builtin functions call these; value kinds never do.
"""
from .operators import (binary_op, compare_op, contains_op, unary_op, truth, hash_value,  # noqa: F401
                        is_same, equal, iterate, check_hashable, INPLACE_TO_BINARY)
from . import natives  # noqa: F401  (registers the container rules)
