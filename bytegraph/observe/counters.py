"""Counters and per-compile records.

`counters` mirrors torch._dynamo.utils.counters: a defaultdict(Counter) whose keys
("frames", "stats", "recompiles", "graph_break", "unimplemented") tests and tools
read. `compile_metrics` keeps one CompileRecord per conversion (what was compiled,
how long each stage took, what it produced) for explain() and the benchmarks.
"""
import collections
import dataclasses
import logging

counters = collections.defaultdict(collections.Counter)
log = logging.getLogger("bytegraph")


@dataclasses.dataclass
class CompileRecord:
    name: str                    # qualified name of the compiled function
    location: str                # file:line of its definition
    ok: bool = False
    graphs: int = 0
    ops: int = 0                 # call nodes in the captured graph
    guards: int = 0
    trace_s: float = 0.0
    backend_s: float = 0.0
    reason: str = ""             # why it fell back or recompiled
    guard_failure: str = ""      # the guard that failed, when this is a recompile


compile_metrics: list = []
