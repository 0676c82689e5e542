"""explain(fn)(*args): what bytegraph captures for one call, like torch._dynamo.explain.

Compiles `fn` afresh with a recording backend, runs it once on the arguments, and
reports the graphs (including those of the code after each graph break, compiled in
their turn), their ops, the graph breaks (one BreakRecord each: reason, file:line, the
line's text, the inlined call stack, a hint), and the guards. A function that ran
eagerly as a whole counts as one break with its reason.
"""
import dataclasses

from .counters import compile_metrics


@dataclasses.dataclass
class ExplainOutput:
    graphs: list
    graph_count: int
    graph_break_count: int
    break_reasons: list
    op_count: int
    ops_per_graph: list
    out_guards: list
    compile_times: str
    recompile_reasons: list = dataclasses.field(default_factory=list)

    def __str__(self):
        lines = [f"Graph Count: {self.graph_count}",
                 f"Graph Break Count: {self.graph_break_count}",
                 f"Op Count: {self.op_count}"]
        if self.break_reasons:
            lines.append("Break Reasons:")
            for i, r in enumerate(self.break_reasons):
                lines += [f"  {i + 1}. " + str(r).replace("\n", "\n  ")]
        for i, ops in enumerate(self.ops_per_graph):
            lines.append(f"Ops per Graph {i + 1}: " + ", ".join(ops))
        for r in self.recompile_reasons:
            lines.append(f"Recompiled: {r}")
        lines.append(f"Guards: {len(self.out_guards)}")
        lines.append(f"Compile Times: {self.compile_times}")
        return "\n".join(lines)


def explain(fn, *extra_args, **extra_kwargs):
    """Use as explain(fn)(*args, **kwargs)."""
    from ..runtime.api import compile as bg_compile
    if not callable(fn) or isinstance(fn, type):
        raise TypeError(f"explain expects a function, method or nn.Module instance to explain, "
                        f"as explain(fn)(*args); got {type(fn).__name__}")

    def run(*args, **kwargs):
        graphs = []

        def recording_backend(gm, example_inputs):
            graphs.append(gm)
            return gm.forward

        start = compile_metrics.total
        compiled = bg_compile(fn, backend=recording_backend)
        compiled(*args, **kwargs)
        records = compile_metrics.since(start)
        breaks = [b for r in records for b in r.breaks]
        ops = [[getattr(n.target, "__name__", str(n.target)) for n in g.graph.nodes
                if n.op in ("call_function", "call_method", "call_module")] for g in graphs]
        guards = []
        state = getattr(compiled, "__bytegraph_state__", None) or \
            getattr(getattr(compiled, "__dict__", {}).get("_bytegraph_call"), "__bytegraph_state__", None)
        if state is not None:
            for entry in state.entries:
                gs = getattr(entry, "__bytegraph_guards__", None)
                if gs is not None:
                    guards += [g.code for g in gs.guards]
        times = ", ".join(f"{r.name}: trace {r.trace_s * 1e3:.1f} ms, backend {r.backend_s * 1e3:.1f} ms"
                          for r in records)
        return ExplainOutput(graphs=graphs, graph_count=len(graphs), graph_break_count=len(breaks),
                             break_reasons=breaks, op_count=sum(len(o) for o in ops), ops_per_graph=ops,
                             out_guards=guards, compile_times=times,
                             recompile_reasons=[r.guard_failure for r in records if r.guard_failure])

    if extra_args or extra_kwargs:
        return run(*extra_args, **extra_kwargs)
    return run
