"""redteam4: sets and dicts through compiled code -- iteration order of sets the trace builds,
returns, carries across graph breaks or mutates in the caller (ints that collide mod 8), set
methods that raise (remove of a missing key, pop of an empty set), and dicts/sets changed while
being iterated (CPython raises RuntimeError on the next step; a same-size key change is refused).
"""
import os
import subprocess
import sys

import pytest
import torch

import bytegraph
from redteam4_harness import X, check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P = {}


def probe(f):
    P[f.__name__] = f
    return f


def _collide(*ks):
    s = set()
    for k in ks:
        s.add(k)
    return s


@probe
def built_set_pop():
    def f(x):
        s = _collide(31, 23, 15, 7)
        a = s.pop()
        b = s.pop()
        return x + a - b, s
    return f, lambda i: (X(i),), lambda: None


@probe
def caller_set_pop():
    S = _collide(31, 7, 23, 15)

    def f(x, s):
        return x + s.pop()
    return f, lambda i: (X(i), S), lambda: S


@probe
def caller_set_clear_add():
    S = {7, 15}

    def f(x, s):
        s.clear()
        s.add(31)
        s.add(23)
        s.add(7)
        return x + len(s)
    return f, lambda i: (X(i), S), lambda: S


@probe
def setcomp_collide():
    def f(x):
        s = {k * 8 + 7 for k in range(4)}
        s.discard(15)
        s.add(39)
        return x, list(s), sorted(s)
    return f, lambda i: (X(i),), lambda: None


@probe
def dict_fromkeys_set():
    def f(x):
        d = dict.fromkeys(_collide(31, 23, 15, 7), 0)
        return x + 1, d, list(d)
    return f, lambda i: (X(i),), lambda: None


@probe
def set_across_breaks():
    def f(x):
        s = set()
        s.add(15)
        print("hi")
        s.add(7)
        s.add(23)
        y = x.sum().item()
        s.discard(15)
        s.add(31)
        return x + y, list(s)
    return f, lambda i: (X(i),), lambda: None


GSET = set()


@probe
def global_set():
    GSET.clear()
    GSET.add(31)
    GSET.add(7)

    def f(x):
        GSET.add(15)
        GSET.discard(31)
        GSET.add(23)
        return x + len(GSET)
    return f, lambda i: (X(i),), lambda: GSET


@probe
def frozenset_ops():
    def f(x, fs):
        a = fs | {7, 15}
        b = frozenset([23, 31]) | fs
        c = fs - {7}
        return x, a, b, c, list(a), list(b)
    return f, lambda i: (X(i), frozenset([31, 23] if i % 2 else [23, 31])), lambda: None


@probe
def set_xor_and():
    S = _collide(31, 7, 23, 15)

    def f(x, s):
        return (x, list(s ^ {7, 15, 39}), list(s & {15, 7, 23}), list(s.intersection([23, 15, 7])),
                list(s.symmetric_difference([39, 7])))
    return f, lambda i: (X(i), S), lambda: None


@probe
def caller_set_inplace_misc():
    S = _collide(31, 7, 23, 15, 39)

    def f(x, s):
        s &= {7, 15, 23, 47}
        s ^= {55, 7}
        s.intersection_update([15, 55, 23])
        s.difference_update([23])
        s.symmetric_difference_update({63, 71})
        return x + len(s)
    return f, lambda i: (X(i), S), lambda: S


@probe
def set_strings():
    def f(x, names):
        s = set(names)
        s.add("zeta")
        return x, s, ",".join(s)
    return f, lambda i: (X(i), ["alpha", "beta", "gamma", "delta"][i:]), lambda: None


@probe
def set_remove_missing():
    S = {1, 2}

    def f(x, s):
        try:
            s.remove(99)
        except KeyError as e:
            return x + 1, str(e), s
        return x
    return f, lambda i: (X(i), S), lambda: S


@probe
def empty_set_pop():
    def f(x):
        s = set()
        try:
            s.pop()
        except KeyError as e:
            return x, repr(e)
    return f, lambda i: (X(i),), lambda: None


@probe
def caller_set_remove_missing_then_mutate():
    S = {3, 11}

    def f(x, s):
        s.add(19)
        try:
            s.remove(4)
        except KeyError:
            s.add(27)
        return x + len(s)
    return f, lambda i: (X(i), S), lambda: S


@probe
def set_copy():
    S = _collide(31, 7, 23, 15)

    def f(x, s):
        c = s.copy()
        s.add(39)
        s.discard(7)
        c.add(47)
        return x, list(c), c
    return f, lambda i: (X(i), S), lambda: S


class _O:
    pass


@probe
def attr_set():
    o = _O()
    o.s = set()

    def f(x):
        o.s.add(15)
        o.s.add(7)
        o.s = o.s | {23}
        return x
    return f, lambda i: (X(i),), lambda: o


@probe
def sets_in_list_break():
    def f(x):
        out = []
        for i in range(3):
            out.append({i * 8 + 7, 7})
            bytegraph.graph_break()
        return x, out
    return f, lambda i: (X(i),), lambda: None


@probe
def set_reductions():
    S = _collide(31, 7, 23, 15)

    def f(x, s):
        return x, min(s), max(s), sorted(s, key=lambda v: -v), sum(s), any(s), tuple(s)
    return f, lambda i: (X(i), S), lambda: None


@probe
def enumerate_set():
    def f(x):
        s = _collide(31, 7, 23, 15)
        for i, v in enumerate(s):
            x = x + i * v
        return x, list(zip(s, "abcd"))
    return f, lambda i: (X(i),), lambda: None


@probe
def set_update_dict():
    def f(x):
        s = set()
        s.update({31: 0, 7: 1})
        s.update((23, 15))
        t = set("hello world")
        return x, list(s), "".join(sorted(t)), len(t)
    return f, lambda i: (X(i),), lambda: None


@probe
def caller_dict_of_sets():
    D = {"a": {7}}

    def f(x, d):
        d["a"].add(15)
        d["b"] = {31, 23}
        d["a"] |= {23}
        return x
    return f, lambda i: (X(i), D), lambda: D


@probe
def set_of_tensors():
    a, b = torch.ones(2), torch.zeros(2)

    def f(x, y):
        return [t + 1 for t in {x, y}]
    return f, lambda i: (a, b), lambda: None


@probe
def caller_pop_print():
    S = _collide(31, 7, 23, 15)

    def f(x, s):
        v = s.pop()
        print(v)
        s.add(v + 8)
        return x + v, s
    return f, lambda i: (X(i), S), lambda: S


# ----------------------------------------------------------- containers changed during iteration
def _d():
    return {1: 1, 2: 2, 3: 3}


@probe
def set_add_during_iter():
    def f(x):
        s = {1, 2, 3}
        try:
            for v in s:
                s.add(v + 10)
        except RuntimeError as e:
            return x, str(e), s
        return x
    return f, lambda i: (X(i),), lambda: None


@probe
def set_discard_during_iter():
    def f(x, d):
        s = set(d)
        try:
            for k in s:
                s.discard(k)
        except RuntimeError as err:
            return x, str(err), s
        return x, s
    return f, lambda i: (X(i), _d()), lambda: None


@probe
def set_next_after_add():
    def f(x, d):
        s = set(d)
        it = iter(s)
        next(it)
        s.add(99)
        try:
            next(it)
        except RuntimeError as err:
            return x, str(err), s
        return x, s
    return f, lambda i: (X(i), _d()), lambda: None


@probe
def set_add_on_last_step():
    def f(x):
        s = {1, 2, 3}
        n = 0
        try:
            for v in s:
                n += 1
                if n == 3:
                    s.add(99)
        except RuntimeError as e:
            return x + n, str(e)
        return x
    return f, lambda i: (X(i),), lambda: None


@probe
def caller_dict_add_during_iter():
    def f(x, d):
        try:
            for k in d:
                d[k + 10] = 1
        except RuntimeError as e:
            return x, str(e), d
        return x, d
    return f, lambda i: (X(i), _d()), lambda: None


@probe
def caller_dict_del_during_iter():
    def f(x, d):
        try:
            for k in d:
                del d[k]
        except RuntimeError as e:
            return x, str(e), d
        return x, d
    return f, lambda i: (X(i), _d()), lambda: None


@probe
def dict_replace_key_during_iter():
    # same size, other keys: CPython walks the changed table (refused, runs eagerly)
    def f(x, d):
        try:
            for k, v in d.items():
                d.pop(k)
                d[k + 10] = v
        except RuntimeError as e:
            return x, str(e), d
        return x, d
    return f, lambda i: (X(i), _d()), lambda: None


@probe
def dict_set_existing_during_iter():
    def f(x, d):
        for k in d:
            d[k] = d[k] * 2
            x = x + d[k]
        return x, d
    return f, lambda i: (X(i), _d()), lambda: None


@probe
def built_dict_add_during_iter():
    def f(x, d):
        e = {}
        for k in d:
            e[k] = 1
        try:
            for k in e:
                e[k * 100] = 1
        except RuntimeError as err:
            return x, str(err), e
        return x, e
    return f, lambda i: (X(i), _d()), lambda: None


@probe
def dict_iter_break_in_loop():
    def f(x, d):
        for k in d:
            print(k)
            x = x + d[k]
        return x
    return f, lambda i: (X(i), _d()), lambda: None


@probe
def dict_iter_break_then_add():
    def f(x, d):
        try:
            for k in d:
                bytegraph.graph_break()
                d[k * 7] = 0
        except RuntimeError as e:
            return x, str(e), d
        return x, d
    return f, lambda i: (X(i), _d()), lambda: None


@probe
def list_append_during_iter():
    def f(x):
        lst = [1, 2, 3]
        for v in lst:
            if v < 3:
                lst.append(v + 10)
        return x, lst
    return f, lambda i: (X(i),), lambda: None


@probe
def list_remove_during_iter():
    def f(x):
        lst = [1, 2, 3, 4]
        out = []
        for v in lst:
            out.append(v)
            lst.remove(v)
        return x, lst, out
    return f, lambda i: (X(i),), lambda: None


@pytest.mark.parametrize("name", list(P))
def test_probe(name):
    check(P[name])


def test_dict_iter_unchanged_stays_one_graph():
    def f(x, d):
        for k in d:
            d[k] = d[k] + 1
            x = x * d[k]
        return x
    d1, d2 = _d(), _d()
    want = f(torch.ones(2), d1)
    bytegraph.reset()
    got = bytegraph.compile(f, backend="eager", fullgraph=True)(torch.ones(2), d2)
    assert torch.equal(got, want) and d1 == d2


STRINGS = """
import torch, bytegraph
def f(x, names, s):
    t = set(names)
    t.add("omega")
    t.discard(names[0])
    s.update(t)
    s.discard("kappa")
    u = {n.upper() for n in t} | {"Z"}
    print(",".join(t))
    return x + len(t), list(t), list(u), dict.fromkeys(u)
names = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
S1, S2 = {"kappa", "lambda", "mu"}, {"kappa", "lambda", "mu"}
want = f(torch.ones(2), names, S1)
got = bytegraph.compile(f, backend="eager")(torch.ones(2), names, S2)
print("RESULT", torch.equal(want[0], got[0]) and want[1:] == got[1:] and list(S1) == list(S2))
print("RESULT", list(want[3]) == list(got[3]))
"""


@pytest.mark.parametrize("seed", [0, 7, 46, 1234])
def test_string_sets_under_hash_seeds(seed):
    env = dict(os.environ, PYTHONHASHSEED=str(seed), PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", STRINGS], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("RESULT True") == 2, p.stdout
