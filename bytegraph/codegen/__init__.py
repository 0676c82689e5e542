"""Code generation: the entry function that guards, runs the graph and rebuilds results."""
from .entry import Codegen, build_entry

__all__ = ["Codegen", "build_entry"]
