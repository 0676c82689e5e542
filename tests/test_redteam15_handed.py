"""Red team 15, family 4: objects, iterators, closure cells, bytearrays, dicts and lists the trace
created, stored into caller state (a global, an attribute of an argument, a list argument), then a
keep-going break (graph_break(), print(tensor), print(t.item())), then changed by the traced code
(policy/breaks.py _adopt_materialized / _freeze)."""
import collections
import itertools

import pytest
import torch

import bytegraph
from test_redteam15_harness import calls, check, outcome, x4

P = {}


def probe(f):
    P[f.__name__] = f
    return f


class Holder:
    pass


class Point:
    def __init__(self):
        self.v = 1


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a = 1


class Bag:
    def __init__(self):
        self.items = []

    def add(self, v):
        self.items.append(v)
        self.count = len(self.items)


def keep(x):
    bytegraph.graph_break()


def keep_print(x):
    print(x)


def keep_item(x):
    print(x.sum().item())


BREAKS = {"graph_break": keep, "print_tensor": keep_print, "print_item": keep_item}


def _fresh_holder(i):
    return (x4(), Holder(), [])


def with_breaks(name, body):
    for b, fn in BREAKS.items():
        def p(C, fn=fn):
            return body(C, fn)
        p.__name__ = f"{name}[{b}]"
        P[p.__name__] = p


def obs_holder(res):
    return [(o, vars(h), lst) for o, (x, h, lst) in res]


def _object_setattr(C, brk):
    def f(x, h, lst):
        p = Point()
        h.p = p
        y = x * 2
        brk(y)
        object.__setattr__(p, "v", 5)
        setattr(p, "w", 6)
        return y + p.v
    return [(o, vars(h.p)) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("object_setattr_builtin", _object_setattr)


def _vars_write(C, brk):
    def f(x, h, lst):
        p = Point()
        lst.append(p)
        y = x * 2
        brk(y)
        vars(p)["v"] = 9
        p.__dict__.update(z=3)
        return y + p.v
    return [(o, vars(lst[0])) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("vars_write", _vars_write)


def _delattr(C, brk):
    def f(x, h, lst):
        p = Point()
        p.extra = 2
        h.p = p
        y = x * 2
        brk(y)
        del p.extra
        return y + hasattr(p, "extra")
    return [(o, vars(h.p)) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("delattr", _delattr)


def _method_mutates(C, brk):
    def f(x, h, lst):
        b = Bag()
        h.b = b
        y = x * 2
        brk(y)
        b.add(y)
        b.add(3)
        return y + b.count
    return [(o, vars(h.b)) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("method_mutates", _method_mutates)


def _iterator_consumed(C, brk):
    def f(x, h, lst):
        it = iter([1, 2, 3, 4])
        h.it = it
        y = x * 2
        brk(y)
        for a in it:
            if a == 2:
                break
        b = list(zip(it, "a"))
        return y + a, b
    return [(o, list(h.it)) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("iterator_consumed", _iterator_consumed)


def _enumerate_map(C, brk):
    def f(x, h, lst):
        e = enumerate("abc")
        m = map(lambda v: v * 2, [1, 2, 3])
        lst.extend([e, m])
        y = x * 2
        brk(y)
        first = next(e)
        second = next(m)
        return y + second, first
    return [(o, list(lst[0]), list(lst[1])) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("enumerate_map", _enumerate_map)


def _count_islice(C, brk):
    def f(x, h, lst):
        c = itertools.count(5)
        h.c = c
        y = x * 2
        brk(y)
        a = next(c)
        s = list(itertools.islice(c, 2))
        return y + a, s
    return [(o, next(h.c)) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("count_islice", _count_islice)


def _cell_nonlocal(C, brk):
    def f(x, h, lst):
        n = 1

        def get():
            return n

        h.get = get
        y = x * 2
        brk(y)
        n = 10
        return y + get()
    return [(o, h.get()) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("cell_nonlocal", _cell_nonlocal)


def _bytearray(C, brk):
    def f(x, h, lst):
        ba = bytearray(b"ab")
        lst.append(ba)
        y = x * 2
        brk(y)
        ba[0] = 122
        ba += b"cd"
        ba.append(33)
        return y + len(ba)
    return [(o, bytes(lst[0])) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("bytearray", _bytearray)


def _dict_list(C, brk):
    def f(x, h, lst):
        d = {"a": 1}
        l2 = [1]
        h.d, h.l2 = d, l2
        y = x * 2
        brk(y)
        d["b"] = y
        d.pop("a")
        l2.append(y.sum())
        l2.sort(key=lambda v: -float(v))
        return y
    return [(o, h.d, h.l2) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("dict_list", _dict_list)


def _deque_counter(C, brk):
    def f(x, h, lst):
        q = collections.deque([1, 2])
        cnt = collections.Counter("aab")
        h.q, h.cnt = q, cnt
        y = x * 2
        brk(y)
        q.appendleft(0)
        cnt["c"] += 5
        return y + len(q)
    return [(o, list(h.q), dict(h.cnt)) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("deque_counter", _deque_counter)


def _slots(C, brk):
    def f(x, h, lst):
        s = Slotted()
        h.s = s
        y = x * 2
        brk(y)
        s.b = 7
        s.a += 1
        return y + s.a
    return [(o, h.s.a, h.s.b) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("slots", _slots)


def _generator_stepped(C, brk):
    def f(x, h, lst):
        g = (i * 2 for i in range(5))
        h.g = g
        y = x * 2
        brk(y)
        a = next(g)
        b = next(g)
        return y + a + b
    return [(o, list(h.g)) for o, (x, h, lst) in calls(C, f, _fresh_holder)]


with_breaks("generator_stepped", _generator_stepped)


def _object_in_global_then_identity(C, brk):
    G = {"p": None}

    def f(x, h, lst):
        p = Point()
        G["p"] = p
        h.p = p
        y = x * 2
        brk(y)
        p.v += 1
        return p
    res = []
    for o, (x, h, lst) in calls(C, f, _fresh_holder, n=4):
        res.append((o[1] is h.p, o[1] is G["p"], vars(o[1])))
    return res


with_breaks("object_identity", _object_in_global_then_identity)


@pytest.mark.parametrize("name", list(P))
def test_handed(name):
    check(P[name], max_recompiles=2 if name.startswith("object_identity") else 0)
