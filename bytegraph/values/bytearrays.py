"""BytearrayValue: a bytearray the trace itself created (`bytearray(n)`, `bytearray(b"ab")`,
`bytearray([1, 2])` of constants; a symbolic size is specialized, with its guard) and has not
changed since.

Its contents are known at trace time, but the object is mutable: the entry builds a fresh one on
every call (once per call, so one bytearray stored in two places is still one object), as eager
does. Reading or changing it -- a method, an index, len(), iteration -- is not modelled: it stops
the trace (the base Value's Unsupported), where the converter splits or runs the frame eagerly.
"""
from .base import Value


class BytearrayValue(Value):
    mutable = True

    def __init__(self, data):
        self.data = bytes(data)

    def python_type(self):
        return bytearray

    def truth(self, tx):
        return bool(self.data)

    def reconstruct(self, cg):
        return cg.mutable(self, lambda: f"{cg.const(bytearray, 'bytearray')}({self.data!r})")

    def __repr__(self):
        return f"BytearrayValue({len(self.data)} bytes)"
