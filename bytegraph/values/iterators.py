"""Iterators the trace holds: over a fixed list of Values, and those that follow a container
the code may change (dict/set size checks, live list iterators, enumerate/zip/reversed over
lists); wrapping the caller's list/tuple/range iterators."""
from ..exc import Unsupported, UserError
from .base import Value, ConstValue, wrap, register_wrapper
from ..sources import ItemSource, ReduceSource
from .containers import ListValue, TupleValue, DictValue, SetValue, DictViewValue  # noqa: F401


class IteratorValue(Value):
    """An iterator over a fixed list of Values (lists, ranges, zip, map, generators...)."""
    mutable = True

    def __init__(self, items):
        self.items = list(items)
        self.pos = 0

    def next(self):
        if self.pos >= len(self.items):
            return None
        v = self.items[self.pos]
        self.pos += 1
        return v

    def unpack(self, tx):
        rest = self.items[self.pos:]
        self.pos = len(self.items)
        return rest

    def python_type(self):
        return type(iter([]))

    def reconstruct(self, cg):
        """A real iterator over the items not consumed yet (a graph break inside a loop hands
        the loop's iterator to the resume function). Only this exact family: generators and
        lazy itertools have state a tuple cannot carry."""
        if type(self) is not IteratorValue:
            return super().reconstruct(cg)
        return cg.mutable(self, lambda: "iter((" + "".join(cg.expr(i) + ", " for i in self.items[self.pos:]) + "))")

    def __repr__(self):
        return f"Iterator({len(self.items) - self.pos} left)"


class _CheckedIterValue(IteratorValue):
    """An iterator whose `_check()` runs before every step (its container may have changed)."""

    def next(self):
        self._check()
        return super().next()

    def unpack(self, tx):
        self._check()
        return super().unpack(tx)


class HashIterValue(_CheckedIterValue):
    """iter(a dict) / iter(a set) the trace holds: CPython's dict and set iterators check the
    container's size on every step and raise RuntimeError once it changed (even after the last
    item); a change that keeps the size (a key removed, another added) makes them walk the new
    table, which the trace does not model: refused."""

    def __init__(self, tx, container, view=None):
        super().__init__((view or container).unpack(tx))
        self.container = container
        self.keys0 = tuple(container.items)

    def _check(self):
        c = self.container
        if len(c.items) != len(self.keys0):
            if c.cls in (set, frozenset):
                raise UserError(RuntimeError("Set changed size during iteration"))
            if c.cls.__iter__ is dict.__iter__:
                raise UserError(RuntimeError("dictionary changed size during iteration"))
            raise Unsupported(f"a {c.cls.__name__} changed size during iteration", kind="iter")
        if tuple(c.items) != self.keys0:
            raise Unsupported(f"a {c.cls.__name__}'s keys changed during iteration over it "
                              "(CPython walks the changed table)", kind="iter")

    def reconstruct(self, cg):
        self._check()
        return cg.mutable(self, lambda: "iter((" + "".join(cg.expr(i) + ", " for i in self.items[self.pos:]) + "))")


class SeqIteratorValue(IteratorValue):
    """A real tuple/list/range iterator from the caller (a resume function's loop iterator):
    its items are read through __reduce__ (no element is consumed by guards), and its final
    position is written back with __setstate__ after the call."""
    mutable = True
    sticky = True       # stays in the side-effect log after a graph break replays it

    def __init__(self, items, start, source):
        super().__init__(items)
        self.start = start
        self.source = source

    def replay(self, cg, target, temp):
        return f"{target}.__setstate__({self.start + self.pos})"

    def reconstruct(self, cg):
        return self.source.expr(cg)


class ListIterValue(IteratorValue):
    """iter(a_list): reads the list as it is at each step, as CPython's list iterator does
    (a loop over a list the body appends to sees the new items)."""

    def __init__(self, lst, pos=0, source=None):
        self.lst = lst
        self.pos = pos
        self.source = source

    @property
    def items(self):
        return self.lst.items

    # CPython's list iterator lets go of its list once it reports the end: items appended later
    # are never seen (`done`)
    done = False

    def next(self):
        if self.done:
            return None
        v = super().next()
        if v is None:
            self.done = True
        return v

    def unpack(self, tx):
        rest = [] if self.done else super().unpack(tx)
        self.done = True
        return rest

    def reconstruct(self, cg):
        if self.source is not None:
            return self.source.expr(cg)
        if self.done:
            return cg.mutable(self, lambda: "iter(())")
        return cg.mutable(self, lambda: f"{cg.const(_list_iter_at, 'list_iter')}({cg.expr(self.lst)}, {self.pos})")

    def replay(self, cg, target, temp):
        if self.done:       # past any length (clamped), then one step: exhausted for good
            return f"{target}.__setstate__({1 << 62}); next({target}, None)"
        return f"{target}.__setstate__({self.pos})"

    def __repr__(self):
        return f"ListIter({self.pos}/{len(self.lst.items)})"


ListIterValue.sticky = True


def _list_iter_at(lst, pos):
    it = iter(lst)
    it.__setstate__(pos)
    return it


class SeqIterValue(_CheckedIterValue):
    """enumerate / zip / reversed over lists the trace holds. CPython's iterators read their list
    at each step; the trace's items are computed when the iterator is made, which is exact while
    the lists stay unchanged: a step after a change is refused (Unsupported, kind
    "iter_mutated", which runs the frame eagerly: no graph break there, since the iterator a
    resume function would get is a snapshot). TODO (docs/status.md): hand resume functions the
    real iterator at its position over the real list, once the tracer can wrap real
    enumerate/zip/reversed objects (their __reduce__)."""

    def __init__(self, items, cls, lists):
        super().__init__(items)
        self.cls = cls
        self.lists = [(lst, list(lst.items)) for lst in lists]

    def _check(self):
        for lst, items0 in self.lists:
            if len(lst.items) != len(items0) or any(a is not b for a, b in zip(lst.items, items0)):
                raise Unsupported(f"a {self.cls.__name__}() step after its list changed (CPython's "
                                  "iterator reads the list live)", kind="iter_mutated")

    def python_type(self):
        return self.cls

    def reconstruct(self, cg):
        self._check()
        return cg.mutable(self, lambda: "iter((" + "".join(cg.expr(i) + ", " for i in
                                                        self.items[self.pos:]) + "))")


_SEQ_ITERS = (type(iter(())), type(iter([])), type(iter(range(0))))


def wrap_seq_iterator(tx, obj, source):
    if source is None:
        raise Unsupported(f"a {type(obj).__name__} made outside the trace", kind="iter")
    red = obj.__reduce__()
    tx.guards.add_type(source, type(obj))
    state = ReduceSource(source, None)
    if len(red) < 3:                       # exhausted: reduces to iter(())
        tx.guards.add_code(f"len({state.expr(tx.cg)}) == 2", source, "iterator_exhausted")
        value = SeqIteratorValue([], 0, source)
    else:
        seq, start = red[1][0], red[2]
        tx.guards.add_code(f"len({state.expr(tx.cg)}) == 3 and {state.expr(tx.cg)}[2] == {start}",
                           source, "iterator_position", start)
        seq_value = wrap(tx, seq, ItemSource(ItemSource(state, 1), 0))
        if isinstance(seq_value, ListValue):
            value = ListIterValue(seq_value, start, source)
            tx.side_effects.mutated(value)
            return value
        items = seq_value.unpack(tx) if not isinstance(seq_value, ConstValue) else \
            [ConstValue(x) for x in seq_value.value]
        value = SeqIteratorValue(items[start:], start, source)
    tx.side_effects.mutated(value)
    return value


for _t in _SEQ_ITERS:
    register_wrapper(_t)(wrap_seq_iterator)
