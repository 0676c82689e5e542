"""A graph that raises: run the unit again as plain Python.

An op inside a graph may raise only on real values (an index out of range, a size read from a
tensor that turns out 0, a `check_tensor` node). Eager raises it at its place: the user's
`except` and `finally` blocks around it run, and the Python effects before it are made. The
entry makes the trace's Python effects after its graphs (the epilogue), so when the *first*
graph of an entry raises, nothing observable has happened yet -- the guards only read -- and
the entry can hand the whole call back: it returns EAGER, the runtime runs the unit (the user's
function, or a resume function's code) with the same arguments, and eager raises, catches and
cleans up as it does (`docs/graph_breaks.md`, "A graph that raises").

That holds when the graph itself changed nothing before raising (`plan`):
- it writes into no input's storage (an input, a parameter, a buffer; an op-by-op backend has
  made the writes before the raising op, a rerun would make them twice), and sets no tensor's
  `requires_grad` (`x.requires_grad_()`: not a write the builder sees): no rerun there;
- it draws random numbers only from the CPU default generator, whose state the entry takes
  before the call and puts back before the rerun (only such entries pay for the snapshot);
  another device or an explicit `torch.Generator`: no rerun;
- grad mode and autocast are put back as they were on entry (graph_state.restoring_call,
  `exact`), so the rerun starts where the graph started.
A later graph of an entry is covered as long as the keep-going breaks before it run Python with
no observable effect (`item()`, `tolist()`, `graph_break()`, a tensor check: policy/breaks.py
PURE_CALLS, recorded per break in `Tracer.split_rerun`); after a `print` or a break that replays
side effects, no rerun.

The trace relies on this (`covers`): a check or a 0-d index under a try/except, a `finally`, a
with-block or in a generator was a stop before, since its raise would have left the compiled
function unhandled; it stays in the graph now when the rerun covers the graph and nothing
written so far rules it out. A graph that then turns out not to be rerunnable (a write into an
input after the check) makes convert trace again without relying on it. (After pending Python
effects a check still stops: docs/graph_breaks.md says why.)

The runtime counts reruns (`counters["stats"]["graph_reruns"]`). A rerun is not a fallback and
warns nothing: whether eager then raises, or catches the exception in a handler of the unit and
returns, both are the user's program. (A graph that raised where eager never does, a bytegraph
bug, is therefore silent too, and its call is still right.)"""
import torch
import torch.utils._pytree as pytree

from ..observe import counters

_default_generator = torch.default_generator


def _pure_breaks(tracer):
    """How many of the trace's first breaks run Python with no observable effect (an `item()`,
    a `graph_break()`, a tensor check) after graphs that wrote into no input."""
    n = 0
    for pure, writes in tracer.split_rerun:
        if not pure or writes:
            break
        n += 1
    return n


def covers(tx):
    """Would a raise inside the graph at the trace's current point be handled by a rerun of the
    unit? If so, the trace now relies on it (convert checks the graph is rerunnable)."""
    if not getattr(tx, "rerun_ok", False) or _pure_breaks(tx) < len(tx.splits) or \
            tx.graph.mutates_inputs():
        return False
    tx.relies_on_rerun = max(tx.relies_on_rerun, len(tx.splits))
    return True


def plan(tracer, gb):
    """How the entry may rerun its unit when one of the trace's first graphs raises: (how,
    graphs), `how` "plain" or "rng" (snapshot the CPU generator first), `graphs` how many of the
    first graphs (with the breaks' Python parts between them) a raise in which reruns the unit;
    or None (no rerun). Random draws and explicit generators are looked for in the whole trace
    (a snapshot then covers every graph)."""
    if not getattr(tracer, "rerun_ok", False):
        return None
    n = _pure_breaks(tracer)
    if n == len(tracer.splits):
        graphs = n + (not gb.mutates_inputs())
    else:
        # the graph after the last pure break is covered when it wrote into no input
        graphs = n + (not tracer.split_rerun[n][1])
    if graphs == 0 or any(_changes_state(node) for node in gb.graph.nodes):
        return None
    if not gb.seeded:
        return "plain", graphs
    if set(gb.device_types()) - {"cpu", "meta"}:
        return None
    for node in gb.graph.nodes:
        if any(isinstance(a, torch.Generator) for a in pytree.tree_leaves((node.args, node.kwargs))):
            return None
    return "rng", graphs


# what a graph may change besides tensor data (which mutated_storages notes): an input's
# requires_grad flag (no version bump). A rerun would find it set (`was = x.requires_grad`).
_STATE_METHODS = frozenset({"requires_grad_"})


def _changes_state(node):
    target = node.target
    name = target if node.op == "call_method" else getattr(target, "__name__", None)
    return node.op in ("call_method", "call_function") and name in _STATE_METHODS


def wrap(cg, lines, how):
    """The entry lines `lines` (the first graphs' calls, the pure breaks between them) inside a
    try whose handler reruns the unit. A try costs nothing on the way that does not raise."""
    body = ["try:"] + [f"    {line}" for line in lines] + ["except Exception:"]
    if how == "rng":
        return [f"__rng = {cg.const(rng_state, 'rng_state')}()"] + body + \
            [f"    return {cg.const(rerun_rng, 'rerun_rng')}(__rng)"]
    return body + [f"    return {cg.const(rerun, 'rerun')}()"]


def rerun():
    """The first graph raised: have the runtime run the unit eagerly (EAGER)."""
    from .convert import EAGER
    counters["stats"]["graph_reruns"] += 1
    return EAGER


def rng_state():
    return _default_generator.get_state()


def rerun_rng(state):
    """As rerun, the CPU generator first put back where the graph found it."""
    _default_generator.set_state(state)
    return rerun()
