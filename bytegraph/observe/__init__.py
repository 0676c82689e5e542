"""Observability: counters (torch._dynamo-compatible keys), compile metrics and logging."""
from .counters import counters, compile_metrics, log, CompileRecord

__all__ = ["counters", "compile_metrics", "log", "CompileRecord"]
