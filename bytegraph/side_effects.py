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
        self.locate = None        # () -> the user's file:line now (set by the tracer)
        self.first = None         # (what, file:line) of the first effect (export refuses effects)
        self.notes = {}           # id(write tuple) / id(container) -> (what, file:line), for export
        self.steps = {}           # id(sticky iterator) -> its position when logged or last replayed

    def _note(self, what, key, fresh=False):
        note = None if fresh else self.notes.get(key)
        if note is None:
            note = self.notes[key] = (what, self.locate() if self.locate is not None else "")
        if self.first is None:
            self.first = note

    def attr_write(self, obj_value, name, value):
        self._add(("attr", obj_value, name, value), f"setting attribute {name!r} of a Python object")

    def global_write(self, globals_dict, name, value):
        self._add(("global", globals_dict, name, value), f"writing global {name!r}")

    def cell_write(self, cell_value):
        self._add(("cell", cell_value, None, None), "writing a closure variable")

    def mutated(self, container_value):
        self._note(f"mutating a {type(container_value).__name__.replace('Value', '').lower() or 'Python'} "
                   "object from outside the function (or emitting a warning/log record)", id(container_value))
        self.containers[id(container_value)] = container_value
        if getattr(container_value, "sticky", False):
            self.steps.setdefault(id(container_value), _position(container_value))

    def _add(self, write, what):
        self.writes.append(write)
        self._note(what, id(write), fresh=True)

    def note_of(self, item):
        """(what, file:line) of a write tuple or a mutated container."""
        return self.notes.get(id(item), ("a Python side effect", ""))

    def first_effect(self):
        return self.first or ("a Python side effect", "")

    def clear(self):
        """After a graph break replayed everything logged so far."""
        self.writes = []
        self.containers = {k: c for k, c in self.containers.items() if getattr(c, "sticky", False)}
        self.notes = {k: n for k, n in self.notes.items() if k in self.containers}
        self.steps = {k: _position(c) for k, c in self.containers.items()}

    def __bool__(self):
        return bool(self.writes or self.containers)

    def deferred(self):
        """Whether the epilogue has effects to replay that a raise inside the graph would lose.
        A caller's iterator (sticky: a loop's, kept logged across breaks) counts once the trace
        stepped it since it was wrapped or last replayed: eager has consumed those items when
        it raises, while the compiled call would hand it back unmoved. (A resume function's
        loop iterator may be the caller's own object, `for a in it` over an iterator argument,
        so it is not exempt; one stepped only before the resume function was entered is.)"""
        return bool(self.writes) or any(
            not getattr(c, "sticky", False) or self.steps.get(k) != _position(c)
            for k, c in self.containers.items())

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
        """Epilogue lines. Phase 1 evaluates every value to write into a temporary, phase 2
        applies the writes: no write can change what a later value expression reads."""
        from .values.objects import _DELETED, python_setattr
        from .sources import global_source
        values, applies = [], []
        temp = cg.temps("__v", values)

        seen_cells = set()
        for kind, a, name, value in self.writes:
            if kind == "attr":
                target = a.source.expr(cg)
                # a Python __setattr__ / __delattr__ of the class ran in the trace: only the
                # store is left
                raw = "object.__" if python_setattr(a.cls) else ""
                if value is _DELETED:
                    applies.append(f"{raw}delattr{'__' if raw else ''}({target}, {name!r})")
                else:
                    applies.append(f"{raw}setattr{'__' if raw else ''}({target}, {name!r}, "
                                   f"{temp(cg.expr(value))})")
            elif kind == "global":
                applies.append(f"{global_source(a, name).render(cg)} = {temp(cg.expr(value))}")
            elif kind == "cell":
                if id(a) in seen_cells:
                    continue
                seen_cells.add(id(a))
                applies.append(f"{a.source.expr(cg)}.cell_contents = {temp(cg.expr(a.contents))}")
        for c in self.containers.values():
            applies.append(c.replay(cg, c.source.expr(cg), temp))
        values.extend(cg.lines)
        cg.lines.clear()
        return values, applies


def _position(it):
    """A sticky iterator's step state (what its replay writes back)."""
    return it.pos, getattr(it, "done", False)
