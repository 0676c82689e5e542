"""redteam5: containers the trace builds or mutates -- tuples as set elements (`s.add((5, 6))` took the
tuple for an iterable of keys), list/tuple index/count/remove/__contains__ comparing items with
`==` as CPython does (a user __eq__ ran nowhere: count() was wrong), and iterators/sets probes
around the recent set-order and live-iterator work that no other test covers."""
import pytest
import torch

from redteam4_harness import X, check

P = {}


def probe(f):
    P[f.__name__] = f
    return f


@probe
def tuple_set_built():
    def f(x):
        s = {(1, 2), (3, 4)}
        s.add((5, 6))
        s.discard((1, 2))
        return x, list(s), s, s.__contains__((3, 4)), (3, 4) in s
    return f, lambda i: (X(i),), lambda: None


@probe
def tuple_set_caller():
    S = {(1, 2), (3, 4)}

    def f(x, s):
        s.add((5, 6))
        s.remove((1, 2))
        return x + len(s)
    return f, lambda i: (X(i), S), lambda: S


@probe
def tuple_set_remove_missing():
    def f(x, s):
        try:
            s.remove((9, 9))
        except KeyError as e:
            return x, repr(e)
        return x
    return f, lambda i: (X(i), {(1, 2)}), lambda: None


@probe
def frozenset_in_set():
    def f(x):
        s = {frozenset({1, 2})}
        s.add(frozenset({3}))
        s.discard(frozenset({2, 1}))
        return x, list(s)
    return f, lambda i: (X(i),), lambda: None


@probe
def set_add_unhashable():
    def f(x, s):
        try:
            s.add([1])
        except TypeError as e:
            return x, str(e)
        return x
    return f, lambda i: (X(i), {1}), lambda: None


class E:
    n = 0

    def __eq__(self, o):
        E.n += 1
        return o == 3


def _e_state():
    return E.n


@probe
def list_index_user_eq():
    def f(x):
        E.n = 0
        return x + [1, 2, E(), 4].index(3), (1, E()).index(3)
    return f, lambda i: (X(i),), _e_state


@probe
def list_count_user_eq():
    def f(x):
        E.n = 0
        return x + [1, E(), 3, E()].count(3) + (3 in [E()]) + [E()].__contains__(3)
    return f, lambda i: (X(i),), _e_state


@probe
def list_remove_user_eq():
    def f(x):
        E.n = 0
        lst = [1, E(), 4]
        lst.remove(3)
        return x + len(lst)
    return f, lambda i: (X(i),), _e_state


@probe
def list_index_missing():
    def f(x, lst):
        try:
            return x + lst.index(7)
        except ValueError as e:
            return x, str(e)
    return f, lambda i: (X(i), [1, 2]), lambda: None


@probe
def list_remove_nan_identity():
    nan = float("nan")

    def f(x, lst):
        lst.remove(nan)
        return x + len(lst)
    return f, lambda i: (X(i), [1.0, nan]), lambda: None


@probe
def tensors_in_list_index():
    a, b = torch.ones(2), torch.zeros(2)

    def f(x):
        lst = [a, b]
        return x + lst.index(a), lst.count(a)
    return f, lambda i: (X(i),), lambda: None


@probe
def modules_in_list_index():
    m1, m2 = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)

    def f(x):
        lst = [m1, m2]
        return lst[lst.index(m2)](x), lst.count(m1), m2 in lst
    return f, lambda i: (X(i),), lambda: None


@probe
def zip_uneven_consumes_extra():
    def f(x, a):
        ia = iter(a)
        r = list(zip(ia, [1, 2]))
        return x + len(r), list(ia)
    return f, lambda i: (X(i), [10, 20, 30, 40]), lambda: None


@probe
def enumerate_caller_iterator():
    L = [1, 2, 3, 4]
    its = {}

    def f(x, it):
        for i, v in enumerate(it):
            x = x + v * i
            if i == 1:
                break
        return x

    def args(i):
        it = iter(L)
        next(it)
        its["it"] = it
        return (X(i), it)
    return f, args, lambda: list(its["it"])


@probe
def filter_fn_side_effect_partial():
    seen = []

    def f(x, lst):
        def p(v):
            seen.append(v)
            return v % 2
        it = filter(p, lst)
        return x + next(it), len(seen)
    return f, lambda i: (X(i), [2, 4, 3, 5]), lambda: list(seen)


@probe
def set_copy_mutate_both():
    S = {1, 9}

    def f(x, s):
        c = s.copy()
        c.add(17)
        s.add(25)
        return x, c
    return f, lambda i: (X(i), S), lambda: S


@probe
def set_pop_after_remove_caller():
    S = {8, 16, 24, 0}

    def f(x, s):
        s.remove(16)
        v = s.pop()
        s.add(16)
        return x + v
    return f, lambda i: (X(i), S), lambda: S


@probe
def dict_pop_in_items_loop():
    def f(x, d):
        try:
            for k, v in d.items():
                d.pop(k)
        except RuntimeError as e:
            return x, str(e), d
        return x + 1, d
    return f, lambda i: (X(i), {"a": 1, "b": 2}), lambda: None


@pytest.mark.parametrize("name", sorted(P))
def test_containers(name):
    check(P[name], ncalls=2)


@pytest.mark.parametrize("name", ["tuple_set_caller", "list_index_missing", "modules_in_list_index",
                                  "frozenset_in_set"])
def test_containers_fullgraph(name):
    check(P[name], ncalls=2, fullgraph=True)
