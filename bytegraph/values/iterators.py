"""Iterators the trace holds: over a fixed list of Values, and those that follow a container
the code may change (dict/set size checks, live list iterators, enumerate/zip/reversed over
lists, rebuilt live when handed to Python); wrapping the caller's list/tuple/range iterators
and enumerate/zip/reversed objects."""
from ..exc import Unsupported, UserError
from .base import Value, ConstValue, wrap, register_wrapper
from ..sources import AttrSource, ItemSource, ReduceSource
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


class EndsRaising(IteratorValue):
    """An iterator over fixed items whose step past the last raises `error` (a strict zip over
    arguments of different lengths)."""

    def __init__(self, items, error):
        super().__init__(items)
        self.error = error

    def next(self):
        v = super().next()
        if v is None:
            raise self.error
        return v

    def unpack(self, tx):
        super().unpack(tx)
        raise self.error


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
        self.view = view
        self.keys = container.unpack(tx) if view is not None else list(self.items)
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
        if self.view is not None and self.view.kind != "keys" and self.pos < len(self.items):
            # values are read at each step, as CPython's items/values iterators do (a value the
            # loop body replaced is seen by a later step: redteam6)
            self.items[self.pos:] = self.view.unpack(None)[self.pos:]

    def reconstruct(self, cg):
        """Handed to Python (a resume function's loop iterator): CPython's own iterator over the
        real container, stepped to the same point, so a change of size after the break raises
        as in eager (a tuple of the keys left did not: redteam6). The real container must be
        the one the iterator started on: a caller's container the trace changed is written back
        after this expression runs (refused); one the trace made is built fresh first."""
        self._check()
        c = self.container
        if getattr(c, "changed", False):
            raise Unsupported(f"an iterator over a caller's {c.cls.__name__} handed on after the "
                              "trace changed it", kind="iter_mutated")
        msg = _size_message(c.cls)
        if msg is None:
            raise Unsupported(f"an iterator over a {c.cls.__name__} handed on", kind="iter")
        view = None if self.view is None else self.view.kind
        return cg.mutable(self, lambda: f"{cg.const(HashIterLeft, 'hash_left')}({cg.expr(c)}, "
                                        f"{view!r}, ({''.join(cg.expr(k) + ', ' for k in self.keys)}), "
                                        f"{self.pos}, {msg!r})")


def _size_message(cls):
    if issubclass(cls, (set, frozenset)):
        return "Set changed size during iteration"
    if issubclass(cls, dict) and cls.__iter__ is dict.__iter__:
        return "dictionary changed size during iteration"
    return None


class HashIterLeft:
    """A dict/set iterator handed to Python (a resume function's loop iterator): the keys the
    iterator had when the trace made it, its position, and CPython's size check on every step
    (sticky once raised; none once exhausted); an items/values view reads the values live. The
    trace wraps it back (`wrap_hash_left`) while the container still holds those keys."""
    __slots__ = ("container", "view", "keys", "pos", "message", "size")

    def __init__(self, container, view, keys, pos, message):
        self.container, self.view, self.keys, self.pos = container, view, keys, pos
        self.message, self.size = message, len(keys)

    def __iter__(self):
        return self

    def __next__(self):
        c = self.container
        if c is None:
            raise StopIteration
        if len(c) != self.size:
            self.size = -1
            raise RuntimeError(self.message)
        if self.pos >= len(self.keys):
            self.container = None
            raise StopIteration
        k = self.keys[self.pos]
        self.pos += 1
        if self.view == "items":
            return (k, c[k])
        return c[k] if self.view == "values" else k

    def __length_hint__(self):
        return len(self.keys) - self.pos if self.container is not None else 0


@register_wrapper(HashIterLeft)
def wrap_hash_left(tx, obj, source):
    """A HashIterLeft the trace receives (a resume function's loop iterator): the iterator over
    its container again, at its position, while the container holds exactly its keys (else
    refused: the next step raises, or walks a changed table)."""
    if source is None or obj.container is None or len(obj.container) != obj.size:
        raise Unsupported("a dict/set iterator handed on after its end or a size change", kind="iter")
    if tuple(obj.container) != obj.keys:
        raise Unsupported("a dict/set iterator whose container's keys changed", kind="iter")
    s = source.expr(tx.cg)
    tx.guards.add_type(source, HashIterLeft)
    tx.guards.add_code(f"{s}.container is not None and {s}.pos == {obj.pos} and {s}.view == "
                       f"{obj.view!r} and {s}.size == len({s}.container) and tuple({s}.container) "
                       f"== {s}.keys", source, "iterator_position", obj.pos)
    c = wrap(tx, obj.container, AttrSource(source, "container"))
    if not isinstance(c, (DictValue, SetValue)) or list(c.items) != list(obj.keys):
        raise Unsupported("a dict/set iterator over a container the trace does not model", kind="iter")
    view = None if obj.view is None else c.getattr(tx, obj.view).call(tx, [], {})
    it = HashIterValue(tx, c, view)
    it.pos = obj.pos
    return it


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
        if self.pos and getattr(self.lst, "changed", False):
            # the caller's list is written back after this expression runs: an index past its
            # old length would be clamped (list iterators' __setstate__)
            raise Unsupported("a list iterator handed on over a caller's list the trace changed",
                              kind="iter_mutated")
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
    at each step; the trace's items are computed when the iterator is made (or wrapped), which
    is exact while the lists stay unchanged: a step after a change is refused (Unsupported, kind
    "iter_mutated", which runs the frame eagerly).

    Handed to Python (a resume function's loop iterator), it is rebuilt live, as CPython's own
    object at the same point: `enumerate(<list iterator at its index>, <count>)`, `zip(<one
    iterator per argument at its index>)`, `reversed(list)` at its index, over the real lists, so
    code after the break that changes a list is seen by the next step as in eager. A real such
    object the trace receives (`wrap_live_seq`) is read through `__reduce__`, and its steps are
    replayed on it after the call (`replay`).

    `cols`: per argument, ("list", ListValue, index of its list iterator) or ("items", the Values
    left), for reversed [("rev", ListValue, index)]; `count`: enumerate's next number, at
    creation. `nested`: an enumerate over a zip of `cols` (`enumerate(zip(a, b))`), rebuilt as
    one and stepped as one (the zip is the enumerate's own: used another way, it refuses)."""
    owned = False       # a zip some nested enumerate took over (policy/builtins.py _enumerate)

    def __init__(self, items, cls, lists, cols=None, count=0, source=None, strict=False, nested=False):
        super().__init__(items)
        self.nested = nested
        self.cls = cls
        self.lists = [(lst, list(lst.items)) for lst in lists]
        self.cols = cols
        self.count = count
        self.source = source
        self.strict = strict
        self.done = False           # a step reported the end
        self.replayed = (0, False)  # steps already replayed on the real object (source)

    @property
    def start(self):
        """Items the iterator had given before the trace met it (for _split_at_call's loop
        length, which must not shrink from one resume level to the next)."""
        if self.source is None or not self.cols:
            return 0
        kind, lst, index = self.cols[0][0], self.cols[0][1], self.cols[0][-1]
        if kind == "list":
            return index
        return len(self.lists[0][1]) - 1 - index if kind == "rev" else 0

    def next(self):
        v = super().next()
        if v is None:
            self.done = True
        return v

    def unpack(self, tx):
        rest = super().unpack(tx)
        self.done = True
        return rest

    def _check(self):
        if self.owned:
            raise Unsupported("a zip() stepped apart from the enumerate() over it", kind="iter")
        for lst, items0 in self.lists:
            if len(lst.items) != len(items0) or any(a is not b for a, b in zip(lst.items, items0)):
                raise Unsupported(f"a {self.cls.__name__}() step after its list changed (CPython's "
                                  "iterator reads the list live)", kind="iter_mutated")

    def python_type(self):
        return self.cls

    def reconstruct(self, cg):
        if self.owned:
            self._check()
        if self.cols is None:
            self._check()
            return cg.mutable(self, lambda: "iter((" + "".join(cg.expr(i) + ", " for i in
                                                            self.items[self.pos:]) + "))")
        return cg.mutable(self, lambda: self._live(cg))

    def _live(self, cg):
        """An expression for CPython's object at this point (see the class doc)."""
        if self.done:
            return "iter(())"
        p = self.pos
        for col in self.cols:
            if col[0] != "items" and getattr(col[1], "changed", False) and (p or col[2]):
                # the caller's list is written back after this expression runs: an index past
                # its old length would be clamped (list iterators' __setstate__)
                raise Unsupported(f"a {self.cls.__name__}() iterator handed on over a caller's "
                                  "list the trace changed", kind="iter_mutated")
        if self.cls is _REVERSED:
            _, lst, index = self.cols[0]
            return f"{cg.const(_rev_iter_at, 'rev_iter')}({cg.expr(lst)}, {index - p})"
        parts = []
        for col in self.cols:
            if col[0] == "list":
                parts.append(f"{cg.const(_list_iter_at, 'list_iter')}({cg.expr(col[1])}, {col[2] + p})")
            else:
                parts.append("iter((" + "".join(cg.expr(i) + ", " for i in col[1][p:]) + "))")
        strict = ', strict=True' if self.strict else ''
        if self.nested:
            return f"enumerate(zip({', '.join(parts)}{strict}), {self.count + p})"
        if self.cls is enumerate:
            return f"enumerate({parts[0]}, {self.count + p})"
        return f"zip({', '.join(parts)}{strict})"

    def replay(self, cg, target, temp):
        """The steps the trace took, on the real object (wrapped from the caller)."""
        k, done = self.pos, self.done
        k0, done0 = self.replayed
        self.replayed = (k, done)
        if self.cls is _REVERSED:
            _, lst, index = self.cols[0]
            if done:
                return "" if done0 else f"{target}.__setstate__(-1); next({target}, None)"
            if index - k > min(len(self.lists[0][1]), len(lst.items)) - 1 >= 0:
                raise Unsupported("a reversed() iterator whose list shrank below its position",
                                  kind="iter_mutated")
            return f"{target}.__setstate__({index - k})"
        # enumerate and zip cannot be set: step them again (list iterators only move an index:
        # exact when every list is long enough at replay time, before or after its own write)
        for col, (lst, items0) in zip([c for c in self.cols if c[0] == "list"], self.lists):
            if len(items0) == len(lst.items):
                continue
            if done or min(len(items0), len(lst.items)) < col[2] + k:
                raise Unsupported(f"a {self.cls.__name__}() iterator whose list changed length "
                                  "after its last step", kind="iter_mutated")
        steps = k - k0
        if done0 or (steps == 0 and done == done0):
            return "pass"
        return f"{cg.const(_advance, 'advance')}({target}, {steps}, {done})"

    def __repr__(self):
        return f"SeqIter({self.cls.__name__}, {len(self.items) - self.pos} left)"


SeqIterValue.sticky = True


_REVERSED = type(reversed([]))


def _rev_iter_at(lst, index):
    it = reversed(lst)
    it.__setstate__(index)
    if index < 0:
        next(it, None)          # index -1: at its end (CPython lets go of the list there)
    return it


def _advance(it, steps, done):
    for _ in range(steps):
        next(it)
    if done:
        next(it, None)


_LIST_ITER = type(iter([]))


def _live_column(tx, it, source):
    """One argument of a real enumerate/zip: a list iterator (read live: ("list", ListValue,
    index)) or a tuple/range iterator (("items", the Values left)), via __reduce__."""
    if type(it) not in _SEQ_ITERS:
        raise Unsupported(f"a {type(it).__name__} inside a real enumerate/zip", kind="iter")
    if id(it) in tx.wrapped:
        raise Unsupported("an iterator inside a real enumerate/zip that the trace also holds",
                          kind="iter")
    tx.wrapped[id(it)] = (it, _Owned())      # another path to it must not model it apart
    red = it.__reduce__()
    tx.guards.add_type(source, type(it))
    state = ReduceSource(source, None)
    if len(red) < 3:
        tx.guards.add_code(f"len({state.expr(tx.cg)}) == 2", source, "iterator_exhausted")
        return ("items", [])
    seq, index = red[1][0], red[2]
    tx.guards.add_code(f"len({state.expr(tx.cg)}) == 3 and {state.expr(tx.cg)}[2] == {index}",
                       source, "iterator_position", index)
    seq_value = wrap(tx, seq, ItemSource(ItemSource(state, 1), 0))
    if type(it) is _LIST_ITER:
        if type(seq_value) is not ListValue:
            raise Unsupported("a list iterator over a list subclass", kind="iter")
        return ("list", seq_value, index)
    items = seq_value.unpack(tx) if not isinstance(seq_value, ConstValue) else \
        [ConstValue(x) for x in seq_value.value]
    return ("items", items[index:])


class _Owned(IteratorValue):
    """The inner iterator of a real enumerate/zip the trace wrapped: modelled by that object's
    Value only (its replay steps it); reached another way, it stops the trace."""

    def __init__(self):
        super().__init__([])

    def _refuse(self, *a, **k):
        raise Unsupported("an iterator shared with a real enumerate/zip", kind="iter")

    next = unpack = reconstruct = _refuse


def wrap_live_seq(tx, obj, source):
    """A real enumerate / zip / list_reverseiterator from the caller (a resume function's loop
    iterator): read through __reduce__, stepped again on the real object after the call."""
    if source is None:
        raise Unsupported(f"a {type(obj).__name__} made outside the trace", kind="iter")
    typ = type(obj)
    tx.guards.add_type(source, typ)
    red = obj.__reduce__()
    state = ReduceSource(source, None)
    st = state.expr(tx.cg)
    if typ is _REVERSED:
        if len(red) < 3:
            raise Unsupported("an exhausted reversed() iterator", kind="iter")
        index = red[2]
        tx.guards.add_code(f"len({st}) == 3 and {st}[2] == {index}", source, "iterator_position", index)
        lst = wrap(tx, red[1][0], ItemSource(ItemSource(state, 1), 0))
        if type(lst) is not ListValue:
            raise Unsupported("reversed() over a list subclass", kind="iter")
        items = [lst.items[j] for j in range(min(index, len(lst.items) - 1), -1, -1)]
        value = SeqIterValue(items, typ, [lst], [("rev", lst, index)], source=source)
    else:
        args = red[1]
        strict = typ is zip and len(red) > 2 and bool(red[2])
        count = args[1] if typ is enumerate else 0
        shape = f"len({st}) == {len(red)} and len({st}[1]) == {len(args)}"
        if typ is enumerate:
            shape += f" and {st}[1][1] == {count!r}"
        elif strict:
            shape += f" and {st}[2] is True"
        tx.guards.add_code(shape, source, "iterator_position", (len(args), count, strict))
        inner, istate = (args[:1] if typ is enumerate else args), state
        nested = typ is enumerate and type(args[0]) is zip
        if nested:
            # enumerate(zip(...)): the zip is read through its own __reduce__ and stepped only
            # through the enumerate (its steps replayed on the enumerate move both)
            zobj, zsource = args[0], ItemSource(ItemSource(state, 1), 0)
            if id(zobj) in tx.wrapped:
                raise Unsupported("a zip inside a real enumerate that the trace also holds", kind="iter")
            tx.wrapped[id(zobj)] = (zobj, _Owned())
            zred = zobj.__reduce__()
            istate = ReduceSource(zsource, None)
            zexpr = zsource.expr(tx.cg)       # binds the zip first: the text below reads it in order
            zst = istate.expr(tx.cg)
            strict = len(zred) > 2 and bool(zred[2])
            tx.guards.add_code(f"type({zexpr}) is zip and len({zst}) == {len(zred)} and "
                               f"len({zst}[1]) == {len(zred[1])}" + (f" and {zst}[2] is True" if strict else ""),
                               zsource, "iterator_position", ("zip", len(zred[1]), strict))
            inner = zred[1]
        cols = [_live_column(tx, it, ItemSource(ItemSource(istate, 1), i)) for i, it in enumerate(inner)]
        left = [c[1].items[c[2]:] if c[0] == "list" else c[1] for c in cols]
        if strict and len({len(c) for c in left}) > 1:
            raise Unsupported("a strict zip over arguments of different lengths", kind="iter")
        if nested:
            rows = [TupleValue([ConstValue(count + i), TupleValue(list(r))]) for i, r in enumerate(zip(*left))]
        elif typ is enumerate:
            rows = [TupleValue([ConstValue(count + i), v]) for i, v in enumerate(left[0])]
        else:
            rows = [TupleValue(list(r)) for r in zip(*left)]
        value = SeqIterValue(rows, typ, [c[1] for c in cols if c[0] == "list"], cols, count,
                             source, strict, nested)
    tx.side_effects.mutated(value)
    return value



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


for _t in (enumerate, zip, _REVERSED):
    register_wrapper(_t)(wrap_live_seq)
