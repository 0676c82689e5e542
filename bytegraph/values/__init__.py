"""Values: what the symbolic interpreter pushes on its stack (importing registers the wrappers)."""
from . import base, tensor, containers, functions, objects, modules  # noqa: F401
from .base import Value, ConstValue, wrap

__all__ = ["Value", "ConstValue", "wrap"]
