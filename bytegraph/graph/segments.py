"""Cut one traced fx graph into the graphs that run between graph breaks.

The tracer records every tensor op of a call into one fx Graph, and marks where it
ran code in Python (a graph break): the last node created before each break.
`partition` cuts the node list at those marks. Each segment becomes its own fx
Graph whose placeholders are the caller-world inputs it reads plus the nodes of
earlier segments it reads; its outputs are its nodes that later segments or the
Python code of the entry read. A segment with no tensor work produces no graph.
"""
import dataclasses

import torch
import torch.fx


@dataclasses.dataclass
class Segment:
    graph: torch.fx.Graph
    inputs: list         # per placeholder: ("input", index into builder.inputs) | ("node", old Node)
    outputs: list        # old Nodes, in output order
    num_ops: int


def partition(gb, cut_after, used_nodes):
    """Split `gb.graph` (a GraphBuilder's graph, no output node yet) after each node of
    `cut_after` (None: a cut before any node). `used_nodes`: old nodes the entry's Python
    code reads. Returns len(cut_after) + 1 Segments (None where nothing is computed)."""
    nodes = [n for n in gb.graph.nodes if n.op != "placeholder"]
    pos = {n: i for i, n in enumerate(nodes)}
    bounds = [0 if c is None else pos[c] + 1 for c in cut_after] + [len(nodes)]
    seg_of, start = {}, 0
    for k, end in enumerate(bounds):
        for n in nodes[start:end]:
            seg_of[n] = k
        start = max(start, end)
    # which nodes leave their segment: read by a later segment or by Python code
    leaving = set(used_nodes)
    for n in nodes:
        for a in n.all_input_nodes:
            if a.op != "placeholder" and seg_of[a] != seg_of[n]:
                leaving.add(a)
    input_index = {node: i for i, node in enumerate(gb.placeholders)}
    segments, start = [], 0
    for k, end in enumerate(bounds):
        members = nodes[start:end]
        start = max(start, end)
        counted = sum(1 for n in members if n.meta.get("counts", True))
        if not members or not (counted or any(n in leaving for n in members)):
            segments.append(None)       # nothing computed that anything reads
            continue
        g = torch.fx.Graph()
        env, inputs = {}, []

        def load(old):
            new = env.get(old)
            if new is None:
                new = g.placeholder(old.name)
                new.meta.update(old.meta)
                env[old] = new
                inputs.append(("input", input_index[old]) if old.op == "placeholder" else ("node", old))
            return new

        # placeholders first, in first-use order
        for n in members:
            for a in n.all_input_nodes:
                if a.op == "placeholder" or seg_of[a] != k:
                    load(a)
        for n in members:
            env[n] = g.node_copy(n, lambda a: env[a])
        outs = [n for n in members if n in leaving]
        g.output(tuple(env[n] for n in outs))
        if gb.symbols:
            _symbol_inputs(gb, g, inputs)
        segments.append(Segment(g, inputs, outs, counted))
    return segments


def _free_symbols(value, out):
    if isinstance(value, torch.Tensor):
        for s in (*value.shape, *value.stride(), value.storage_offset()):
            _free_symbols(s, out)
    elif isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        out.update(value.node.expr.free_symbols)


def _symbol_inputs(gb, g, inputs):
    """Give the graph an int placeholder for every symbol in its inputs' sizes, first (as
    torch.compile's graphs have: backends such as inductor bind symbols from those ints, and
    its graph cache keys its guards on them)."""
    placeholders = [n for n in g.nodes if n.op == "placeholder"]
    need, have = set(), set()
    for ph in placeholders:
        v = ph.meta.get("example_value")
        _free_symbols(v, need)
        if isinstance(v, (torch.SymInt, torch.SymFloat)) and v.node.expr.is_Symbol:
            have.add(v.node.expr)
    for sym in sorted(need - have, key=str, reverse=True):
        idx = gb.symbol_input(sym)
        if idx is None:
            continue
        src_node = gb.placeholders[idx]
        first = next(iter(g.nodes))
        with g.inserting_before(first):
            ph = g.placeholder(src_node.name)
        ph.meta.update(src_node.meta)
        inputs.insert(0, ("input", idx))



_SIZE_METHODS = frozenset({"size", "stride", "storage_offset", "numel", "dim"})


def _sizes_only(seg):
    from ..values.symbolic import SYM_TYPES
    if seg.num_ops or not seg.outputs:
        return False
    for n in seg.graph.nodes:
        if n.op in ("placeholder", "output"):
            continue
        if n.kwargs or not isinstance(n.meta.get("example_value"), SYM_TYPES):
            return False
        if not all(isinstance(a, torch.fx.Node) or type(a) in (int, float, bool) for a in n.args):
            return False
        if not (n.op == "call_method" and n.target in _SIZE_METHODS and n.args
                or n.op == "call_function" and callable(n.target)):
            return False
    return True


def as_python(seg, input_expr, const):
    """A segment that only reads symbolic sizes of its inputs and does integer arithmetic on
    them (a size that a graph break's Python code or a resume function needs, under dynamic
    shapes) as one line of Python assigning its outputs (`__g_<node>`), instead of a graph: a
    backend would compile a graph with no tensor work. None when the segment holds anything
    else. `input_expr(i)`: the expression the graph call would pass as input i (asked only for
    the inputs used: an expression may define a temporary); `const(obj)` binds a function
    into the entry's namespace."""
    if not _sizes_only(seg):
        return None
    index = {n: i for i, n in enumerate(n for n in seg.graph.nodes if n.op == "placeholder")}
    env = {}

    def arg(a):
        if not isinstance(a, torch.fx.Node):
            return repr(a)
        if a not in env:
            env[a] = input_expr(index[a])
        return env[a]

    lines = []
    for n in seg.graph.nodes:
        if n.op == "placeholder":
            continue
        if n.op == "output":
            lines += [f"__g_{old.name} = {arg(new)}" for old, new in zip(seg.outputs, n.args[0])]
            break
        args = [arg(a) for a in n.args]
        if n.op == "call_method":
            env[n] = f"{args[0]}.{n.target}({', '.join(args[1:])})"
        else:
            env[n] = f"{const(n.target)}({', '.join(args)})"
    return "; ".join(lines)
