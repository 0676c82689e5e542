"""The symbolic interpreter over CPython 3.11 bytecode."""
from . import handlers_stack, handlers_ops, handlers_control, handlers_calls  # noqa: F401 (register)
from .interpreter import Tracer, Frame

__all__ = ["Tracer", "Frame"]
