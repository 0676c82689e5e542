"""Graph building: the torch.fx graph a trace records, with FakeTensor propagation."""
from .builder import GraphBuilder

__all__ = ["GraphBuilder"]
