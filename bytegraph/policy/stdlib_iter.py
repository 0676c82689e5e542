"""Iteration helpers of the standard library for the trace: itertools, collections.deque,
operator's getters, heapq's selections.

itertools objects are lazy (`LazyIterValue`: items computed on demand by pulling from the
source iterators), as CPython's are: infinite iterators (`count`, `cycle`, `repeat()`) work
under `zip`, `islice`, `takewhile` and loops that `break`, and generators interleave with the
consumer exactly. A deque is a sequence Value with a maxlen; a caller-world deque is
length- and maxlen-guarded and written back in place after the graph.
"""
import collections
import heapq
import itertools
import operator

from ..exc import Unsupported, UserError
from ..values.base import Value, NONE, const, wrap, register_wrapper
from ..values.containers import TupleValue, ListValue, IteratorValue, BaseSeq
from ..values.functions import BoundMethodValue
from ..protocols import operators as ops
from ..protocols.special import native, NI, MISSING
from ..sources import ItemSource
from ..values.objects import wrap_object


def _py(v, what):
    """The trace-time Python value of a constant argument, or refuse naming `what`."""
    try:
        return v.as_python()
    except Unsupported:
        raise Unsupported(f"{what} must be a trace-time constant (got {v})", kind="not_constant")


# ------------------------------------------------------------------------------------------
# operator.itemgetter / attrgetter / methodcaller, heapq

class GetterValue(Value):
    """operator.itemgetter / attrgetter built in the trace (dotted attrgetter paths included)."""

    def __init__(self, kind, keys):
        self.kind = kind
        self.keys = keys

    def python_type(self):
        return operator.itemgetter if self.kind == "item" else operator.attrgetter

    def _one(self, tx, obj, key):
        from .builtins import get_item
        if self.kind == "item":
            return get_item(tx, obj, key)
        for part in _py(key, "an attrgetter name").split("."):
            from ..symbolic.handlers_stack import load_attr
            obj = load_attr(tx, obj, part)
        return obj

    def call(self, tx, args, kwargs):
        if len(args) != 1 or kwargs:
            raise UserError(TypeError(f"{self.python_type().__name__} expected 1 argument, got {len(args)}"))
        got = [self._one(tx, args[0], k) for k in self.keys]
        return got[0] if len(got) == 1 else TupleValue(got)


class MethodCallerValue(Value):
    def __init__(self, name, args, kwargs):
        self.name = name
        self.args = args
        self.kwargs = kwargs

    def python_type(self):
        return operator.methodcaller

    def call(self, tx, args, kwargs):
        from ..symbolic.handlers_stack import get_method
        return get_method(tx, args[0], self.name).call(tx, list(self.args), dict(self.kwargs))


def _make_methodcaller(tx, args, kwargs):
    if not args:
        raise UserError(TypeError("methodcaller needs at least one argument, the method name"))
    return MethodCallerValue(_py(args[0], "a method name"), args[1:], kwargs)


def _nlargest(largest):
    def handler(tx, fn_value, args, kwargs):
        from .builtins import sorted_items
        n, it = _py(args[0], "n"), args[1]
        key = args[2] if len(args) > 2 else kwargs.get("key")
        items = sorted_items(tx, _as_iter(tx, it).unpack(tx), key, const(largest))
        return ListValue(items[:max(n, 0)])
    return handler


# ------------------------------------------------------------------------------------------
# itertools: lazy iterators

_PULL_LIMIT = 1_000_000


class LazyIterValue(IteratorValue):
    """An iterator whose items are computed on demand by `step()` (None when exhausted)."""
    lazy = True

    def __init__(self, step, cls, infinite=False):
        super().__init__([])
        self.step = step
        self.cls = cls
        self.infinite = infinite
        self.exhausted = False

    def python_type(self):
        return self.cls

    def next(self):
        if self.exhausted:
            return None
        v = self.step()
        if v is None:
            self.exhausted = True
        return v

    def unpack(self, tx):
        if self.infinite:
            raise Unsupported(f"consuming an infinite {self.cls.__name__} iterator", kind="iter")
        out = []
        while True:
            v = self.next()
            if v is None:
                return out
            out.append(v)
            if len(out) > _PULL_LIMIT:
                raise Unsupported("an iterator with more than a million items", kind="iter")

    def __repr__(self):
        return f"LazyIter({self.cls.__name__})"


class EnumerateValue(LazyIterValue):
    """enumerate() over an on-demand iterator (a generator, an itertools object, a zip over
    lists): numbered as it pulls, and an `enumerate` to type() and isinstance() (before, it was
    modelled as a zip of a count and the iterator, and `type(e)` answered zip). Not handed to
    Python at a graph break (a resume function would meet a real enumerate over a real zip,
    which it cannot read live): such a stop moves one frame out."""

    def __init__(self, tx, inner, start):
        self.inner = inner
        self.count = start

        def next_():
            v = inner.next()
            if v is None:
                return None
            from .builtins import binary_op
            n = self.count
            self.count = binary_op(tx, operator.add, n, const(1))
            return TupleValue([n, v])
        super().__init__(next_, enumerate, infinite=getattr(inner, "infinite", False))


def _as_iter(tx, v):
    from .builtins import BUILTINS
    return BUILTINS[iter](tx, v)


def is_lazy(v):
    """An iterator whose items are produced on demand (itertools objects, generators)."""
    return isinstance(v, IteratorValue) and type(v) is not IteratorValue


def _count(tx, args, kwargs):
    return count_from(tx, args[0] if args else kwargs.get("start", const(0)),
                      args[1] if len(args) > 1 else kwargs.get("step", const(1)))


def count_from(tx, start, step=const(1)):
    state = [start]

    def next_():
        from .builtins import binary_op
        v = state[0]
        state[0] = binary_op(tx, operator.add, v, step)
        return v
    return LazyIterValue(next_, itertools.count, infinite=True)


def _cycle(tx, args, kwargs):
    src = _as_iter(tx, args[0])
    saved, pos = [], [None]

    def next_():
        if pos[0] is None:
            v = src.next()
            if v is not None:
                saved.append(v)
                return v
            if not saved:
                return None
            pos[0] = 0
        v = saved[pos[0] % len(saved)]
        pos[0] += 1
        return v
    return LazyIterValue(next_, itertools.cycle, infinite=True)


def _repeat(tx, args, kwargs):
    obj = args[0] if args else kwargs["object"]
    times = args[1] if len(args) > 1 else kwargs.get("times")
    if times is None:
        return LazyIterValue(lambda: obj, itertools.repeat, infinite=True)
    left = [max(_py(times, "repeat's times"), 0)]

    def next_():
        if left[0] <= 0:
            return None
        left[0] -= 1
        return obj
    return LazyIterValue(next_, itertools.repeat)


def _chain(tx, args, kwargs):
    return _chain_of(tx, iter(args))


def _chain_from_iterable(tx, its):
    outer = _as_iter(tx, its)
    return _chain_of(tx, iter(lambda: outer.next(), None))


def _chain_of(tx, sources):
    cur = [None]

    def next_():
        while True:
            if cur[0] is None:
                nxt = next(sources, None)
                if nxt is None:
                    return None
                cur[0] = _as_iter(tx, nxt)
            v = cur[0].next()
            if v is not None:
                return v
            cur[0] = None
    return LazyIterValue(next_, itertools.chain)


def _islice(tx, args, kwargs):
    src = _as_iter(tx, args[0])
    bounds = [_py(a, "islice bounds") for a in args[1:]]
    sl = slice(*bounds) if len(bounds) > 1 else slice(bounds[0] if bounds else None)
    start, stop, step = sl.start or 0, sl.stop, sl.step or 1
    if start < 0 or (stop is not None and stop < 0) or step <= 0:
        raise UserError(ValueError("Indices for islice() must be None or an integer: 0 <= x <= sys.maxsize."))
    state = {"i": 0, "next": start}

    def next_():
        while stop is None or state["next"] < stop:
            v = src.next()
            if v is None:
                return None
            i = state["i"]
            state["i"] += 1
            if i == state["next"]:
                state["next"] += step
                return v
        return None
    return LazyIterValue(next_, itertools.islice)


def _accumulate(tx, args, kwargs):
    from .builtins import binary_op
    src = _as_iter(tx, args[0])
    func = args[1] if len(args) > 1 else kwargs.get("func")
    if func is not None and func.is_const() and func.as_python() is None:
        func = None
    initial = kwargs.get("initial")
    state = {"acc": None if initial is None or initial.is_const() and initial.as_python() is None
             else initial, "started": False}

    def next_():
        if not state["started"] and state["acc"] is not None:
            state["started"] = True
            return state["acc"]
        state["started"] = True
        v = src.next()
        if v is None:
            return None
        acc = state["acc"]
        state["acc"] = v if acc is None else (func.call(tx, [acc, v], {}) if func is not None
                                              else binary_op(tx, operator.add, acc, v))
        return state["acc"]
    return LazyIterValue(next_, itertools.accumulate)


def _predicate_iter(kind):
    """takewhile / dropwhile / filterfalse, and the builtin filter (kind "filter")."""
    def make(tx, args, kwargs):
        pred, src = args[0], _as_iter(tx, args[1])
        state = {"flag": False}

        def test(v):
            if kind in ("filter", "filterfalse") and pred.is_const() and pred.as_python() is None:
                return ops.truth(tx, v)
            return ops.truth(tx, pred.call(tx, [v], {}))

        def next_():
            if kind == "takewhile":
                if state["flag"]:
                    return None
                v = src.next()
                if v is None or test(v):
                    return v
                state["flag"] = True
                return None
            while True:
                v = src.next()
                if v is None:
                    return None
                if kind == "dropwhile":
                    if state["flag"] or not test(v):
                        state["flag"] = True
                        return v
                elif test(v) == (kind == "filter"):
                    return v
        return LazyIterValue(next_, filter if kind == "filter" else getattr(itertools, kind))
    return make


lazy_filter = _predicate_iter("filter")


def _compress(tx, args, kwargs):
    data, sel = _as_iter(tx, args[0]), _as_iter(tx, args[1])

    def next_():
        while True:
            d, s = data.next(), sel.next()
            if d is None or s is None:
                return None
            if ops.truth(tx, s):
                return d
    return LazyIterValue(next_, itertools.compress)


def _starmap(tx, args, kwargs):
    fn, src = args[0], _as_iter(tx, args[1])

    def next_():
        t = src.next()
        return None if t is None else fn.call(tx, t.unpack(tx), {})
    return LazyIterValue(next_, itertools.starmap)


def _pairwise(tx, args, kwargs):
    src = _as_iter(tx, args[0])
    prev = [None]

    def next_():
        if prev[0] is None:
            prev[0] = src.next()
            if prev[0] is None:
                return None
        v = src.next()
        if v is None:
            return None
        pair = TupleValue([prev[0], v])
        prev[0] = v
        return pair
    return LazyIterValue(next_, itertools.pairwise)


def zip_rows(tx, its, longest=False, fill=NONE):
    """Lazy zip / zip_longest over Value iterables."""
    srcs = [_as_iter(tx, a) for a in its]
    live = [True] * len(srcs)

    def next_():
        if not srcs:
            return None
        row = []
        for i, s in enumerate(srcs):
            v = s.next() if live[i] else None
            if v is None:
                if not longest:
                    return None
                live[i] = False
                v = fill
            row.append(v)
        if longest and not any(live):
            return None
        return TupleValue(row)
    endless = [getattr(s, "infinite", False) for s in srcs]
    return LazyIterValue(next_, itertools.zip_longest if longest else zip,
                         infinite=bool(srcs) and (any(endless) if longest else all(endless)))


def _zip_longest(tx, args, kwargs):
    return zip_rows(tx, args, longest=True, fill=kwargs.get("fillvalue", NONE))


def _product(tx, args, kwargs):
    pools = [_as_iter(tx, a).unpack(tx) for a in args]
    pools *= _py(kwargs["repeat"], "repeat") if "repeat" in kwargs else 1
    return IteratorValue([TupleValue(list(p)) for p in itertools.product(*pools)])


def _index_combinatoric(fn):
    """combinations / permutations / combinations_with_replacement over a finite input: the
    index tuples come from the real itertools on range(n)."""
    def make(tx, args, kwargs):
        pool = _as_iter(tx, args[0]).unpack(tx)
        r = args[1] if len(args) > 1 else kwargs.get("r")
        rr = [] if r is None else [_py(r, "r")]
        try:
            picks = list(fn(range(len(pool)), *rr))
        except (TypeError, ValueError) as e:
            raise UserError(e)
        return IteratorValue([TupleValue([pool[i] for i in idx]) for idx in picks])
    return make


def _groupby(tx, args, kwargs):
    src = _as_iter(tx, args[0])
    key = args[1] if len(args) > 1 else kwargs.get("key")
    if key is not None and key.is_const() and key.as_python() is None:
        key = None
    st = {"cur": None, "curkey": None, "tgt": _UNSET, "gen": 0}

    def keyof(v):
        return v if key is None else key.call(tx, [v], {})

    def advance():
        v = src.next()
        if v is None:
            st["cur"] = None
            return False
        st["cur"], st["curkey"] = v, keyof(v)
        return True

    def same(a, b):
        return ops.equal(tx, a, b)

    def next_():
        st["gen"] += 1
        if st["tgt"] is not _UNSET:          # skip the rest of the current group
            while st["cur"] is not None and same(st["curkey"], st["tgt"]):
                if not advance():
                    break
        if st["cur"] is None and not (st["tgt"] is _UNSET and advance()):
            return None
        st["tgt"] = st["curkey"]
        return TupleValue([st["curkey"], _grouper(st["gen"], st["tgt"])])

    def _grouper(gen, tgt):
        def gnext():
            if st["gen"] != gen or st["cur"] is None or not same(st["curkey"], tgt):
                return None
            v = st["cur"]
            advance()
            return v
        return LazyIterValue(gnext, itertools.groupby)
    return LazyIterValue(next_, itertools.groupby)


_UNSET = object()


def _tee(tx, args, kwargs):
    items = _as_iter(tx, args[0]).unpack(tx)
    n = _py(args[1], "n") if len(args) > 1 else 2
    return TupleValue([IteratorValue(list(items)) for _ in range(n)])



def lazy_map(tx, fn, its):
    """map(fn, *its) when an argument is an on-demand iterator."""
    rows = zip_rows(tx, its)

    def next_():
        row = rows.next()
        return None if row is None else fn.call(tx, row.items, {})
    return LazyIterValue(next_, map, infinite=rows.infinite)


# ------------------------------------------------------------------------------------------
# collections.deque

class DequeValue(BaseSeq):
    mutable = True

    def __init__(self, items, maxlen=None, source=None):
        super().__init__(items, source)
        self.maxlen = maxlen
        self._trim(right=True)

    def _trim(self, right):
        if self.maxlen is not None and len(self.items) > self.maxlen:
            extra = len(self.items) - self.maxlen
            if right:
                del self.items[:extra]
            else:
                del self.items[len(self.items) - extra:]

    def python_type(self):
        return collections.deque

    def is_const(self):
        return False

    def as_python(self):
        raise Unsupported("a deque as a constant", kind="not_constant")

    def with_items(self, items):
        return DequeValue(items, self.maxlen)

    def mutate(self, tx):
        if self.source is not None:
            tx.side_effects.mutated(self)

    def getattr(self, tx, name):
        if name == "maxlen":
            return const(self.maxlen)
        if name in self.METHODS:
            return BoundMethodValue(self, name)
        raise UserError(AttributeError(f"'collections.deque' object has no attribute {name!r}"))

    def getitem(self, tx, idx):
        k = _py(idx, "a deque index")
        if isinstance(k, slice):
            raise UserError(TypeError("sequence index must be integer, not 'slice'"))
        return super().getitem(tx, idx)

    def reconstruct(self, cg):
        return cg.mutable(self, lambda: f"{cg.const(collections.deque, 'deque')}(["
                          + ", ".join(cg.expr(i) for i in self.items) + f"], {self.maxlen!r})")

    def replay(self, cg, target, temp):
        new = temp("[" + ", ".join(cg.expr(i) for i in self.items) + "]")
        return f"{target}.clear(); {target}.extend({new})"

    def __repr__(self):
        return f"Deque{self.items}"


def _dq(fn):
    def method(tx, d, *args, **kwargs):
        d.mutate(tx)
        out = fn(tx, d, *args, **kwargs)
        return NONE if out is None else out
    return method


def _dq_pop(left):
    def pop(tx, d):
        if not d.items:
            raise UserError(IndexError("pop from an empty deque"))
        return d.items.pop(0 if left else -1)
    return pop


def _dq_extendleft(tx, d, it):
    for v in _as_iter(tx, it).unpack(tx):
        d.items.insert(0, v)
        d._trim(right=False)


def _dq_rotate(tx, d, n=None):
    k = 1 if n is None else _py(n, "rotate's n")
    if d.items:
        k %= len(d.items)
        d.items[:] = d.items[-k:] + d.items[:-k] if k else d.items


DequeValue.METHODS = {
    "append": _dq(lambda tx, d, v: (d.items.append(v), d._trim(right=True))[1]),
    "appendleft": _dq(lambda tx, d, v: (d.items.insert(0, v), d._trim(right=False))[1]),
    "extend": _dq(lambda tx, d, it: (d.items.extend(_as_iter(tx, it).unpack(tx)), d._trim(right=True))[1]),
    "extendleft": _dq(_dq_extendleft),
    "pop": _dq(_dq_pop(False)), "popleft": _dq(_dq_pop(True)),
    "clear": _dq(lambda tx, d: d.items.clear()),
    "rotate": _dq(_dq_rotate),
    "reverse": _dq(lambda tx, d: d.items.reverse()),
    "copy": lambda tx, d: DequeValue(list(d.items), d.maxlen),
    "index": ListValue.METHODS["index"], "count": ListValue.METHODS["count"],
    "remove": _dq(lambda tx, d, v: ListValue.METHODS["remove"](tx, d, v)),
    "__len__": lambda tx, d: const(len(d.items)),
}


# C-level special methods of deque, for the protocol layer (operators, `in`, ==)
def _deque_items(v):
    return v.items if isinstance(v, DequeValue) else None


@native([collections.deque], "__contains__")
def _dq_contains(tx, d, item):
    xs = _deque_items(d)
    return MISSING if xs is None else const(any(ops.equal(tx, x, item) for x in xs))


@native([collections.deque], "__len__")
def _dq_len(tx, d):
    xs = _deque_items(d)
    return MISSING if xs is None else const(len(xs))


def _dq_equality(negate):
    def rule(tx, a, b):
        xs, ys = _deque_items(a), _deque_items(b)
        if xs is None:
            return MISSING
        if ys is None:
            return NI
        same = len(xs) == len(ys) and all(ops.equal(tx, x, y) for x, y in zip(xs, ys))
        return const(same != negate)
    return rule


native([collections.deque], "__eq__")(_dq_equality(False))
native([collections.deque], "__ne__")(_dq_equality(True))


@native([collections.deque], "__iadd__")
def _dq_iadd(tx, d, other):
    if not isinstance(d, DequeValue):
        return MISSING
    d.mutate(tx)
    d.items.extend(ops.iterate(tx, other))
    d._trim(right=True)
    return d


@native([collections.deque], "__add__")
def _dq_add(tx, a, b):
    if not isinstance(a, DequeValue):
        return MISSING
    if not isinstance(b, DequeValue):
        raise UserError(TypeError(f'can only concatenate deque (not "{b.python_type().__name__}") to deque'))
    return DequeValue(a.items + b.items, a.maxlen)


@native([collections.deque], "__mul__", "__rmul__")
def _dq_mul(tx, d, n):
    if not isinstance(d, DequeValue) or not (n.is_const() and isinstance(n.as_python(), int)):
        return MISSING
    return DequeValue(d.items * n.as_python(), d.maxlen)


@native([collections.deque], "__imul__")
def _dq_imul(tx, d, n):
    if not isinstance(d, DequeValue) or not (n.is_const() and isinstance(n.as_python(), int)):
        return MISSING
    d.mutate(tx)
    d.items[:] = d.items * n.as_python()
    d._trim(right=True)
    return d


def _make_deque(tx, args, kwargs):
    it = args[0] if args else kwargs.get("iterable")
    maxlen = args[1] if len(args) > 1 else kwargs.get("maxlen")
    m = None if maxlen is None else _py(maxlen, "maxlen")
    if m is not None and (type(m) is not int or m < 0):
        raise UserError(ValueError("maxlen must be non-negative"))
    return DequeValue([] if it is None else _as_iter(tx, it).unpack(tx), m)


@register_wrapper(collections.deque)
def _wrap_deque(tx, dq, source):
    if type(dq) is not collections.deque:
        return wrap_object(tx, dq, source)
    if source is None:
        raise Unsupported("a deque reached without a source", kind="deque")
    tx.guards.add_len(source, collections.deque, len(dq))
    tx.guards.add_code(f"{tx.cg.bound(source)}.maxlen == {dq.maxlen!r}", source, "deque_maxlen", dq.maxlen)
    return DequeValue([wrap(tx, x, ItemSource(source, i)) for i, x in enumerate(dq)], dq.maxlen, source)


CONSTRUCTORS = {
    itertools.count: _count,
    itertools.cycle: _cycle,
    itertools.repeat: _repeat,
    itertools.chain: _chain,
    itertools.islice: _islice,
    itertools.accumulate: _accumulate,
    itertools.takewhile: _predicate_iter("takewhile"),
    itertools.dropwhile: _predicate_iter("dropwhile"),
    itertools.filterfalse: _predicate_iter("filterfalse"),
    itertools.compress: _compress,
    itertools.starmap: _starmap,
    itertools.pairwise: _pairwise,
    itertools.zip_longest: _zip_longest,
    itertools.product: _product,
    itertools.combinations: _index_combinatoric(itertools.combinations),
    itertools.permutations: _index_combinatoric(itertools.permutations),
    itertools.combinations_with_replacement: _index_combinatoric(itertools.combinations_with_replacement),
    itertools.groupby: _groupby,
    collections.deque: _make_deque,
    operator.itemgetter: lambda tx, args, kwargs: GetterValue("item", args),
    operator.attrgetter: lambda tx, args, kwargs: GetterValue("attr", args),
    operator.methodcaller: _make_methodcaller,
}
OVERRIDES = {heapq.nlargest: _nlargest(True), heapq.nsmallest: _nlargest(False)}
BUILTIN_HANDLERS = {itertools.tee: lambda tx, *args, **kwargs: _tee(tx, args, kwargs)}
CLASSMETHOD_HANDLERS = {(itertools.chain, "from_iterable"): _chain_from_iterable}
