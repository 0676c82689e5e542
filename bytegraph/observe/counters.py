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
import array
import collections
import dataclasses
import functools
import logging
import os
import threading
import weakref

from ..config import config

counters = collections.defaultdict(collections.Counter)
log = logging.getLogger("bytegraph")
graph_log = logging.getLogger("bytegraph.graph")
break_log = logging.getLogger("bytegraph.graph_breaks")
recompile_log = logging.getLogger("bytegraph.recompiles")


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
    breaks: list = dataclasses.field(default_factory=list)   # BreakRecords (policy/breaks.py)
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


_STR_FIELDS = ("name", "location", "reason", "guard_failure")
_INT_FIELDS = ("ok", "graphs", "ops", "guards")
_FLOAT_FIELDS = ("trace_s", "backend_s")


class _Metrics:
    """The CompileRecords of the process (a read-only sequence: len, index, slice, iterate),
    keeping the newest config.compile_metrics_limit. `total` counts every record appended since
    clear(), so `since(n)` slices reliably even after old records were dropped.

    Finished records are stored compactly -- numbers in arrays, strings in one byte buffer --
    and rebuilt on access: a compile leaves no small Python objects behind, which would pin
    the allocator's memory pages of everything else that compile allocated (RSS would not
    return after compiled functions are dropped). A record is finished when the runtime
    `seal`s it; until then the record object itself is kept (and may still be updated)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        self.total = 0
        self._first = 0                       # total index of the first kept record
        self._ints = array.array("q")         # len(_INT_FIELDS) per record
        self._floats = array.array("d")
        self._spans = array.array("q")        # start of each record's strings in _blob
        self._blob = bytearray()
        self._pending = {}                    # total index -> CompileRecord not sealed yet
        self._graphs = {}                     # total index -> GraphModule or weakref to it

    def append(self, record):
        with self._lock:
            index = self.total
            self.total += 1
            self._pending[index] = record
            record._index = index
            self._store(index, record)
            self._trim()

    def seal(self, record):
        """`record` is final: store it compactly (its graph stays reachable, weakly unless
        config.keep_graphs)."""
        with self._lock:
            index = getattr(record, "_index", None)
            if self._pending.pop(index, None) is None:
                return
            self._rewrite(index, record)
            graph = record._graph
            if graph is not None:
                if isinstance(graph, weakref.ref):
                    graph = weakref.ref(graph(), functools.partial(self._graph_freed, index)) \
                        if graph() is not None else None
                if graph is not None:
                    self._graphs[index] = graph

    def _graph_freed(self, index, _ref):
        self._graphs.pop(index, None)

    def _store(self, index, record):
        self._ints.extend(int(getattr(record, f)) for f in _INT_FIELDS)
        self._floats.extend(float(getattr(record, f)) for f in _FLOAT_FIELDS)
        self._spans.append(len(self._blob))
        self._blob += _encode(record)

    def _rewrite(self, index, record):
        """Replace the stored copy of a record appended earlier (its fields changed since)."""
        i = index - self._first
        if i < 0:
            return
        n_int, n_float = len(_INT_FIELDS), len(_FLOAT_FIELDS)
        self._ints[i * n_int:(i + 1) * n_int] = array.array("q", (int(getattr(record, f)) for f in _INT_FIELDS))
        self._floats[i * n_float:(i + 1) * n_float] = array.array("d", (float(getattr(record, f))
                                                                         for f in _FLOAT_FIELDS))
        start = self._spans[i]
        end = self._spans[i + 1] if i + 1 < len(self._spans) else len(self._blob)
        data = _encode(record)
        self._blob[start:end] = data
        delta = len(data) - (end - start)
        if delta:
            for j in range(i + 1, len(self._spans)):
                self._spans[j] += delta

    def _trim(self):
        limit = config.compile_metrics_limit
        extra = len(self._spans) - limit
        if extra <= 0:
            return
        cut = self._spans[extra] if extra < len(self._spans) else len(self._blob)
        del self._ints[:extra * len(_INT_FIELDS)]
        del self._floats[:extra * len(_FLOAT_FIELDS)]
        del self._spans[:extra]
        del self._blob[:cut]
        for j in range(len(self._spans)):
            self._spans[j] -= cut
        for index in range(self._first, self._first + extra):
            self._pending.pop(index, None)
            self._graphs.pop(index, None)
        self._first += extra

    def __len__(self):
        return len(self._spans)

    def _record(self, i):
        index = self._first + i
        pending = self._pending.get(index)
        if pending is not None:
            return pending
        n_int, n_float = len(_INT_FIELDS), len(_FLOAT_FIELDS)
        start = self._spans[i]
        end = self._spans[i + 1] if i + 1 < len(self._spans) else len(self._blob)
        strs = bytes(self._blob[start:end]).decode("utf-8").split("\0")
        ints = self._ints[i * n_int:(i + 1) * n_int]
        floats = self._floats[i * n_float:(i + 1) * n_float]
        n_str = len(_STR_FIELDS)
        rec = CompileRecord(**dict(zip(_STR_FIELDS, strs[:n_str])), **dict(zip(_FLOAT_FIELDS, floats)),
                            **{f: (bool(v) if f == "ok" else v) for f, v in zip(_INT_FIELDS, ints)},
                            breaks=_decode_breaks(strs[n_str:]))
        rec._graph = self._graphs.get(index)
        return rec

    def __getitem__(self, key):
        with self._lock:
            if isinstance(key, slice):
                return [self._record(i) for i in range(*key.indices(len(self._spans)))]
            n = len(self._spans)
            i = key + n if key < 0 else key
            if not 0 <= i < n:
                raise IndexError("compile_metrics index out of range")
            return self._record(i)

    def __iter__(self):
        return iter(self[:])

    def __bool__(self):
        return bool(len(self))

    def since(self, total):
        """Records appended after `self.total` was `total` (those still kept)."""
        n = self.total - total
        return self[-n:] if n > 0 else []

    def __repr__(self):
        return f"compile_metrics({len(self)} records kept of {self.total})"


_BREAK_FIELDS = ("reason", "filename", "lineno", "line", "hint", "stack")


def _clean(text):
    return str(text).replace("\0", " ").replace("\1", " ")


def _encode(record):
    """The record's strings, then six per graph break (the stack's frames joined by \\1), all
    joined by \\0."""
    parts = [_clean(getattr(record, f)) for f in _STR_FIELDS]
    for b in record.breaks:
        parts += [_clean(b.reason), _clean(b.filename), str(b.lineno), _clean(b.line), _clean(b.hint),
                  "\1".join(_clean(frame) for frame in b.stack)]
    return "\0".join(parts).encode("utf-8")


def _decode_breaks(fields):
    if not fields:
        return []
    from ..policy.breaks import BreakRecord      # (observe sits below policy: imported late)
    out = []
    n = len(_BREAK_FIELDS)
    for i in range(0, len(fields), n):
        reason, filename, lineno, line, hint, stack = fields[i:i + n]
        rec = BreakRecord.__new__(BreakRecord)     # not __init__: it would re-read the line
        rec.reason, rec.filename, rec.lineno, rec.line, rec.hint = reason, filename, int(lineno), line, hint
        rec.stack = stack.split("\1") if stack else []
        out.append(rec)
    return out


compile_metrics = _Metrics()
