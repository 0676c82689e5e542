"""Bytecode layer: decoding and analysis of CPython code objects.

All CPython-version quirks live here; the interpreter sees normalized instructions.
"""
from .decode import Inst, decode, find_handler, BINARY_OPS, COMPARE_OPS

__all__ = ["Inst", "decode", "find_handler", "BINARY_OPS", "COMPARE_OPS"]
