"""Backends: the registry of compilers a captured graph can be handed to.

Contract (identical to torch.compile's): `backend(gm: torch.fx.GraphModule,
example_inputs: list[torch.Tensor]) -> callable`. The callable takes the graph's
inputs positionally and returns a tuple of outputs.
"""
from .registry import register_backend, list_backends, lookup_backend

__all__ = ["register_backend", "list_backends", "lookup_backend"]
