"""Counters and per-compile records.

`counters` mirrors torch._dynamo.utils.counters: a defaultdict(Counter) whose keys
("frames", "stats", "recompiles", "graph_break", "unimplemented") tests and tools
read; bytegraph adds "fallback" (one key per kind of fallback to eager, see
docs/reliability.md). Increments are plain Python: exact on one thread, and may miss
an increment when two threads compile at the same moment.

`compile_metrics` keeps one CompileRecord per conversion (what was compiled, how long
each stage took, what it produced) for explain() and the benchmarks. It is bounded: a
record holds its GraphModule only weakly (it is inspectable while the cache entry that
runs it lives) unless config.keep_graphs is set, and the list keeps the newest
config.compile_metrics_limit records.
"""
import collections
import dataclasses
import logging
import os
import weakref

from ..config import config

counters = collections.defaultdict(collections.Counter)
log = logging.getLogger("bytegraph")
graph_log = logging.getLogger("bytegraph.graph")


def configure_logging(spec=None):
    """BYTEGRAPH_LOGS=info|debug|graph[,..] (like TORCH_LOGS): INFO shows each compile, recompile
    (with the failing guard), graph break and fallback; DEBUG adds each cache entry's generated
    source; `graph` prints each captured graph's code."""
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
    _graph: object = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def graph(self):
        """The captured fx.GraphModule: held strongly with config.keep_graphs, else weakly (None
        once nothing else -- normally the cache entry -- holds it)."""
        g = self._graph
        return g() if isinstance(g, weakref.ref) else g

    @graph.setter
    def graph(self, gm):
        if gm is None or config.keep_graphs:
            self._graph = gm
        else:
            try:
                self._graph = weakref.ref(gm)
            except TypeError:
                self._graph = None


class _Metrics(list):
    """A list of CompileRecords that keeps the newest config.compile_metrics_limit of them.
    `total` counts every record ever appended (since clear()), so `since(n)` slices reliably
    even after old records were dropped."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def append(self, record):
        super().append(record)
        self.total += 1
        extra = len(self) - config.compile_metrics_limit
        if extra > 0:
            del self[:extra]

    def clear(self):
        super().clear()
        self.total = 0

    def since(self, total):
        """Records appended after `self.total` was `total` (those still kept)."""
        n = self.total - total
        return list(self[-n:]) if n > 0 else []


compile_metrics = _Metrics()
