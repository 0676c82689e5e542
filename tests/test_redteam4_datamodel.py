"""redteam4: the data model through compiled code -- Enum/Flag/IntFlag/str-Enum members as values,
keys and in comparisons; frozen/ordered dataclasses, NamedTuple, properties and cached_property
with side effects, __slots__, __getattr__, __index__, __bool__/__len__, user __eq__/__hash__ in
dicts/sets/lists, __iter__ generators, functools.partial and lru_cache, data descriptors."""
import dataclasses
import enum
import functools
import typing

import pytest
import torch

from redteam4_harness import X, check

P = {}


def probe(f):
    P[f.__name__] = f
    return f


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


class IntP(enum.IntFlag):
    A = 1
    B = 2
    C = 4


class Mode(str, enum.Enum):
    TRAIN = "train"
    EVAL = "eval"


@probe
def enum_flag():
    def f(x, c, p):
        d = {Color.RED: 1, Color.GREEN: 2}
        rw = Perm.R | Perm.W
        return (x + d.get(c, 0), p in rw, p & Perm.W, bool(p & Perm.X), c is Color.RED, c == 1,
                list(Perm), rw.value, ~p, Perm.R in (p | Perm.R))
    return f, lambda i: (X(i), [Color.RED, Color.BLUE, Color.GREEN][i],
                         [Perm.R, Perm.W | Perm.X, Perm(0)][i]), lambda: None


@probe
def intflag():
    def f(x, p):
        return x * int(p), p | 8, p & IntP.A, p == 3, IntP(3) in [p], p + 1
    return f, lambda i: (X(i), [IntP.A, IntP.A | IntP.B, IntP.C][i]), lambda: None


@probe
def str_enum():
    def f(x, m):
        if m == "train":
            x = x + 1
        return x, m.value, m is Mode.TRAIN, {m: 1}, f"{m}", m.upper(), str(m)
    return f, lambda i: (X(i), [Mode.TRAIN, Mode.EVAL, Mode.TRAIN][i]), lambda: None


@probe
def enum_iteration():
    def f(x):
        out = [c.name for c in Color]
        return x + len(Color), out, Color["RED"], Color(2), Color.RED.name, list(Color.__members__)
    return f, lambda i: (X(i),), lambda: None


@dataclasses.dataclass(frozen=True, order=True)
class Pt:
    a: int
    b: int = 0


@dataclasses.dataclass
class Acc:
    xs: list = dataclasses.field(default_factory=list)
    n: int = 0


@probe
def dataclasses_frozen_order():
    acc = Acc()

    def f(x, p, q):
        q.xs.append(p.a)
        q.n += 1
        p2 = dataclasses.replace(p, b=5)
        try:
            p.a = 3
            err = None
        except dataclasses.FrozenInstanceError as e:
            err = type(e).__name__
        return (x + p.a, p2, p < p2, p == Pt(p.a, p.b), hash(p) == hash(Pt(p.a, p.b)), err,
                dataclasses.astuple(p2), dataclasses.asdict(q), {p: 1})
    return f, lambda i: (X(i), Pt(i, 1), acc), lambda: acc


class NT(typing.NamedTuple):
    a: int
    b: torch.Tensor


@probe
def named_tuple():
    def f(x, nt):
        a, b = nt
        nt2 = nt._replace(a=a + 1)
        return nt2, nt2.b + x, nt._asdict(), nt2 == (a + 1, b), len(nt), nt[0], type(nt2).__name__
    return f, lambda i: (X(i), NT(i, X(i))), lambda: None


class Counting:
    def __init__(self):
        self.n = 0

    @property
    def p(self):
        self.n += 1
        return self.n

    @functools.cached_property
    def cp(self):
        self.n += 10
        return self.n


@probe
def property_and_cached_property_side_effects():
    o = Counting()

    def f(x):
        return x + o.p + o.cp + o.p + o.cp
    return f, lambda i: (X(i),), lambda: o


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a = 1


@probe
def slots():
    o = Slotted()

    def f(x):
        o.a += 1
        try:
            v = o.b
        except AttributeError as e:
            v = str(e)
            o.b = 0
        try:
            o.c = 1
            v2 = None
        except AttributeError as e:
            v2 = str(e)
        return x + o.a, v, v2
    return f, lambda i: (X(i),), lambda: (o.a, getattr(o, "b", None))


class Dyn:
    def __init__(self):
        self.calls = []

    def __getattr__(self, n):
        self.calls.append(n)
        if n.startswith("z"):
            raise AttributeError(n)
        return len(n)


@probe
def dunder_getattr():
    o = Dyn()

    def f(x):
        return x + o.abc + o.de, hasattr(o, "zz"), getattr(o, "zq", 7), hasattr(o, "q")
    return f, lambda i: (X(i),), lambda: list(o.calls)


class Idx:
    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


@probe
def dunder_index():
    def f(x, i):
        lst = [10, 20, 30]
        return x[i], lst[i], lst[i:], range(5)[i], hex(i), [1, 2][Idx(1)]
    return f, lambda i: (torch.arange(5.0), Idx(i)), lambda: None


class Truthy:
    def __init__(self, v):
        self.v = v
        self.n = 0

    def __bool__(self):
        self.n += 1
        return self.v

    def __len__(self):
        return 5


@probe
def dunder_bool_counts_calls():
    o = Truthy(True)

    def f(x, flag):
        o.v = flag
        if o:
            x = x + 1
        return x, not o, bool(o) and 3, o or 4, len(o)
    return f, lambda i: (X(i), bool(i % 2)), lambda: o.n


class Mod3:
    def __init__(self, k):
        self.k = k

    def __eq__(self, o):
        return isinstance(o, Mod3) and self.k % 3 == o.k % 3

    def __hash__(self):
        return self.k % 3


@probe
def user_eq_hash_in_containers():
    def f(x, a, b):
        d = {a: 1}
        d[b] = 2
        s = {a, b}
        return (x + len(d), len(s), d[a], a in [b], a in {b}, [Mod3(1), Mod3(2)].index(Mod3(4)),
                [Mod3(1), Mod3(4)].count(Mod3(7)))
    return f, lambda i: (X(i), Mod3(1), Mod3(1 + 3 * (i % 2) + (i == 2))), lambda: None


class Gen:
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        for i in range(self.n):
            yield i * 2


@probe
def dunder_iter_generator():
    o = Gen(3)

    def f(x):
        a, *b = o
        return x + sum(o), a, b, list(o), dict(zip(o, "abc")), max(o), 4 in o
    return f, lambda i: (X(i),), lambda: None


@probe
def functools_partial():
    def g(a, b, c=3):
        return a * b + c
    p = functools.partial(g, 2, c=10)

    def f(x):
        return p(x), p.args, p.keywords, functools.partial(p, 3)()
    return f, lambda i: (X(i),), lambda: None


@probe
def functools_lru_cache():
    calls = []

    @functools.lru_cache(maxsize=None)
    def h(n):
        calls.append(n)
        return n * 2

    def f(x, n):
        return x + h(n) + h(n)
    return f, lambda i: (X(i), i % 2), lambda: (list(calls), h.cache_info())


@probe
def data_descriptor_with_log():
    class Desc:
        def __init__(self):
            self.log = []

        def __set_name__(self, owner, name):
            self.name = name

        def __get__(self, obj, typ=None):
            self.log.append("get")
            return 1 if obj is None else obj.__dict__.get("_" + self.name, 0)

        def __set__(self, obj, v):
            self.log.append("set")
            obj.__dict__["_" + self.name] = v * 2

    class Holder:
        d = Desc()
    o = Holder()

    def f(x):
        o.d = 3
        o.d = o.d + 1
        return x + o.d, Holder.d
    return f, lambda i: (X(i),), lambda: (list(Holder.__dict__["d"].log), vars(o))


@pytest.mark.parametrize("name", list(P))
def test_probe(name):
    check(P[name])
