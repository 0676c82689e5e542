"""Observability: counters (torch._dynamo-compatible keys), compile metrics and logging."""
from .counters import counters, compile_metrics, log, graph_log, break_log, recompile_log, CompileRecord, configure_logging

configure_logging()

__all__ = ["counters", "compile_metrics", "log", "graph_log", "break_log", "recompile_log", "CompileRecord", "configure_logging"]
