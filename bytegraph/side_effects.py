"""The side-effect log: mutations the trace made to objects that outlive the call.

Tensor mutation of inputs happens inside the graph (in-place ops on
placeholders), so it is not logged here. Logged are Python-level effects on
caller-world objects: attribute writes, global writes, closure-cell writes, and
containers (lists, dicts) whose contents changed. The epilogue replays them after
the graph runs: attribute/global/cell writes in program order, then each mutated
container's final contents written back into the same object.
"""


class SideEffects:
    def __init__(self):
        self.writes = []          # ("attr", objvalue, name, value) / ("global", g, name, value) / ("cell", cell)
        self.containers = {}      # id(value) -> mutated caller-world container Value

    def attr_write(self, obj_value, name, value):
        self.writes.append(("attr", obj_value, name, value))

    def global_write(self, globals_dict, name, value):
        self.writes.append(("global", globals_dict, name, value))

    def cell_write(self, cell_value):
        self.writes.append(("cell", cell_value, None, None))

    def mutated(self, container_value):
        self.containers[id(container_value)] = container_value

    def __bool__(self):
        return bool(self.writes or self.containers)

    def values(self):
        """Every Value the epilogue will need (so tensors among them become graph outputs)."""
        for kind, a, name, value in self.writes:
            if kind == "cell":
                yield a.contents
            elif value is not None:
                yield value
        for c in self.containers.values():
            yield c

    def replay(self, cg):
        """Epilogue lines, in order."""
        from .values.objects import _DELETED
        from .sources import global_source
        lines = []
        seen_cells = set()
        for kind, a, name, value in self.writes:
            if kind == "attr":
                target = a.source.expr(cg)
                if value is _DELETED:
                    lines.append(f"delattr({target}, {name!r})")
                else:
                    lines.append(f"setattr({target}, {name!r}, {cg.expr(value)})")
            elif kind == "global":
                lines.append(f"{global_source(a, name).expr(cg)} = {cg.expr(value)}")
            elif kind == "cell":
                if id(a) in seen_cells:
                    continue
                seen_cells.add(id(a))
                lines.append(f"{a.source.expr(cg)}.cell_contents = {cg.expr(a.contents)}")
        for c in self.containers.values():
            lines.append(c.replay(cg, c.source.expr(cg)))
        return lines
