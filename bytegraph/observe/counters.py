"""Counters and per-compile records.

`counters` mirrors torch._dynamo.utils.counters: a defaultdict(Counter) whose keys
("frames", "stats", "recompiles", "graph_break", "unimplemented") tests and tools
read. `compile_metrics` keeps one CompileRecord per conversion (what was compiled,
how long each stage took, what it produced) for explain() and the benchmarks.
"""
import collections
import dataclasses
import logging
import os

counters = collections.defaultdict(collections.Counter)
log = logging.getLogger("bytegraph")
graph_log = logging.getLogger("bytegraph.graph")
break_log = logging.getLogger("bytegraph.graph_breaks")


def configure_logging(spec=None):
    """BYTEGRAPH_LOGS=info|debug|graph[,..] (like TORCH_LOGS): INFO shows each compile, recompile
    (with the failing guard) and graph break; DEBUG adds each cache entry's generated source;
    `graph` prints each captured graph's code."""
    spec = os.environ.get("BYTEGRAPH_LOGS", "") if spec is None else spec
    parts = {p.strip().lower() for p in spec.split(",") if p.strip()}
    if not parts:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[bytegraph] %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if "debug" in parts else logging.INFO)
    if "graph" in parts:
        graph_log.setLevel(logging.DEBUG)


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
    breaks: list = dataclasses.field(default_factory=list)   # BreakRecords (policy/breaks.py)


compile_metrics: list = []
