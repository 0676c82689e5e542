"""redteam4: dict views and iterators the trace holds. d.keys()/values()/items() are live views
of their own type (not lists): they see later changes of the dict, compare as sets (keys, items)
or by identity (values), support the set operators, are not subscriptable, and are handed back as
views. A list's iterator reads the list at each step, as CPython's does, and an
exhausted list iterator stays exhausted when the list grows.
(enumerate(a list) still snapshots the list: see the redteam4 report.)"""
import pytest
import torch
import torch.nn as nn

import bytegraph
from redteam4_harness import X, check

P = {}


def probe(fullgraph=False):
    def deco(f):
        P[f.__name__] = (f, fullgraph)
        return f
    return deco


def _d():
    return {1: 1, 2: 2, 3: 3}


def _mk(body, full=False):
    def build():
        return body, lambda i: (X(i), _d()), lambda: None
    build.__name__ = body.__name__
    return probe(full)(build)


def views_are_live(x, d):
    k, v, it = d.keys(), d.values(), d.items()
    d[4] = 4
    return x, list(k), list(v), list(it), len(k)


def views_equality(x, d):
    return (x, d.keys() == {1, 2, 3}, d.items() == {(1, 1), (2, 2), (3, 3)}, d.values() == d.values(),
            d.keys() == [1, 2, 3], d.keys() != frozenset({1}), {3, 2, 1} == d.keys())


def views_types(x, d):
    return x, isinstance(d.keys(), list), type(d.items()).__name__, isinstance(d.values(), list)


def views_set_operators(x, d):
    return (x, d.keys() - {1}, d.keys() & {2, 9}, d.keys() | {7, 15}, {7, 23} | d.keys(),
            d.keys() ^ {1, 31}, 2 in d.keys(), (2, 2) in d.items(), (2, 3) in d.items(), 2 in d.values(),
            d.keys().isdisjoint({5}), d.keys().isdisjoint([1]), d.keys() <= {1, 2, 3, 4})


def views_not_subscriptable(x, d):
    try:
        return x, d.keys()[0]
    except TypeError as e:
        return x, str(e)


def views_returned(x, d):
    k = d.keys()
    return x, k, d.values(), d.items(), k


def views_reversed(x, d):
    return x, list(reversed(d.keys())), list(reversed(d.values())), list(reversed(d))


def view_len_after_pop(x, d):
    k = d.keys()
    d.pop(1)
    return x + len(k), bool(k), len(d.values())


def views_misc_builtins(x, d):
    return (x, sorted(d.items()), dict(d.items()), max(d.values()), sum(d.values()), tuple(d.keys()),
            set(d.keys()), list(zip(d.keys(), d.values())))


def items_loop_with_values_update(x, d):
    for k, v in d.items():
        d[k] = v * 10
        x = x + v
    return x, d


def keys_loop_adding_raises(x, d):
    try:
        for k in d.keys():
            d[k + 10] = 0
    except RuntimeError as e:
        return x, str(e), d
    return x, d


def values_loop_deleting_raises(x, d):
    try:
        for v in d.values():
            del d[v]
    except RuntimeError as e:
        return x, str(e), d
    return x, d


for _body in (views_are_live, views_equality, views_types, views_set_operators, views_not_subscriptable,
              views_returned, views_reversed, view_len_after_pop, views_misc_builtins,
              items_loop_with_values_update, keys_loop_adding_raises, values_loop_deleting_raises):
    _mk(_body)
P["views_misc_builtins_fullgraph"] = (P["views_misc_builtins"][0], True)


@probe()
def views_printed_and_joined():
    def f(x, d):
        print(d.keys(), d.values(), d.items())
        return x, "".join(d.keys()), sorted(d.values()), tuple(d.items())
    return f, lambda i: (X(i), {"a": 1, "b": 2, "c": 0}), lambda: None


@probe()
def view_across_break():
    def f(x, d):
        out = []
        for k, v in d.items():
            print(k)
            out.append(v)
        ks = d.keys()
        bytegraph.graph_break()
        d["z"] = 0
        return x, out, list(ks), ks
    return f, lambda i: (X(i), {"a": 1, "b": 2}), lambda: None


@probe(fullgraph=True)
def module_dict_views():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.Linear(2, 2)})

        def forward(self, x):
            for k, m in self.layers.items():
                x = m(x)
            names = dict(self.named_parameters()).keys()
            return x, list(self.layers.keys()), names == {"layers.a.weight"}, sorted(names)
    torch.manual_seed(0)
    m = M()
    return m, lambda i: (X(i),), lambda: None


@probe()
def kwargs_items():
    def f(x, **kw):
        for k, v in kw.items():
            x = x * v
        return x, tuple(kw.keys()), kw.keys() == {"a", "b"}
    return (lambda x: f(x, a=2, b=3)), lambda i: (X(i),), lambda: None


# ----------------------------------------------------------------------------- iterators
def enumerate_list_appending(x, d):
    lst = [1, 2]
    out = []
    for i, v in enumerate(lst):
        if v < 3:
            lst.append(v + 2)
        out.append(i)
    return x, out, lst


def list_iterator_exhausted_then_grown(x, d):
    lst = [1, 2]
    it = iter(lst)
    r = list(it)
    lst.append(5)
    return x, r, next(it, None), list(it)


def list_iterator_partly_consumed_then_insert(x, d):
    lst = [1, 2, 3]
    it = iter(lst)
    next(it)
    lst.insert(0, 0)
    return x, list(it)


for _body in (list_iterator_exhausted_then_grown,
              list_iterator_partly_consumed_then_insert):
    _mk(_body)


def enumerate_caller_list_with_break():     # BUG (report): enumerate(list) snapshots the list
    L = [1, 2, 3]

    def f(x, lst):
        for i, v in enumerate(lst, 5):
            print(i, v)
            x = x + i * v
            if v == 2:
                lst.append(9)
        return x
    return f, lambda i: (X(i), L), lambda: L


@probe()
def enumerate_item_break():
    def f(x):
        lst = [x, x * 2, x * 3]
        return [t.sum().item() + i for i, t in enumerate(lst)]
    return f, lambda i: (X(i),), lambda: None


def enumerate_next_then_break():      # BUG (report): crosses the break as a tuple iterator
    def f(x, lst):
        e = enumerate(lst)
        a = next(e)
        bytegraph.graph_break()
        return x, a, list(e), type(e).__name__
    return f, lambda i: (X(i), [1, 2, 3]), lambda: None


@probe()
def caller_list_iterator_exhausted():
    L = [1, 2]
    IT = iter(L)

    def f(x, it):
        n = sum(1 for _ in it)
        return x + n
    return f, lambda i: (X(i), IT), lambda: (L.append(7), next(IT, None))[1]


@probe()
def ordered_dict_views():
    import collections

    def f(x):
        od = collections.OrderedDict(a=1, b=2)
        od.move_to_end("a")
        k = od.keys()
        od["c"] = 3
        return x, list(k), type(k).__name__, list(reversed(od.keys())), od.keys() == {"a", "b", "c"}, k
    return f, lambda i: (X(i),), lambda: None


@probe()
def defaultdict_and_counter_views():
    import collections

    def f(x):
        dd = collections.defaultdict(list)
        dd["a"].append(1)
        v = dd.values()
        dd["b"].append(2)
        c = collections.Counter("hello")
        return x, list(v), type(dd.keys()).__name__, sorted(c.items()), list(c.keys()), c.most_common(2)
    return f, lambda i: (X(i),), lambda: None


def list_of_items_then_delete(x, d):
    for k, v in list(d.items()):
        if v > 1:
            del d[k]
    return x, d, d.keys() - {1}


def view_against_view(x, d):
    k = d.keys()
    return x, k & d.keys(), k == d.keys(), d.items() & {(1, 1)}


def view_unhashable(x, d):
    try:
        return x, hash(d.keys())
    except TypeError as e:
        return x, str(e)


def view_as_dict_key(x, d):
    try:
        return x, {d.keys(): 1}
    except TypeError as e:
        return x, str(e)


def view_constructors(x, d):
    d2 = dict(d)
    d2.update(d.items())
    return x, d2, dict.fromkeys(d.keys(), 0), len(set(d.items()))


def view_match_statement(x, d):
    match d.keys():
        case [a, b, c]:
            r = ("seq", a, b, c)
        case _:
            r = "other"
    return x, r


def enumerate_after_clear(x, d):
    lst = [1, 2, 3]
    e = enumerate(lst)
    lst.clear()
    return x, list(e)


def enumerate_iter_identity(x, d):
    e = enumerate([1, 2, 3])
    return x, iter(e) is e, next(e), list(e)


def reversed_list_after_append(x, d):
    lst = [1, 2, 3]
    r = reversed(lst)
    lst.append(4)
    return x, list(r)


def dict_iter_value_change(x, d):
    it = iter(d)
    d[1] = 5
    return x, list(it)


def dict_iter_add_then_next(x, d):
    it = iter(d)
    d[9] = 2
    try:
        next(it)
    except RuntimeError as e:
        return x, str(e)
    return x


def set_iter_add_discard_same_size(x, d):
    s = {1, 2}
    it = iter(s)
    s.add(3)
    s.discard(3)
    return x, list(it)


for _body in (list_of_items_then_delete, view_against_view, view_unhashable, view_as_dict_key,
              view_constructors, view_match_statement, enumerate_iter_identity,
              reversed_list_after_append, dict_iter_value_change, dict_iter_add_then_next,
              set_iter_add_discard_same_size):
    _mk(_body)


@probe(fullgraph=True)
def views_in_comprehensions_and_tensors():
    def f(x, d):
        a = [k for k in d.keys() if k != "a"]
        b = {k: v for k, v in d.items()}
        c = any(v > 1 for v in d.values())
        m = list(map(lambda kv: kv[1] * 2, d.items()))
        return (x * len(d.keys()), a, b, c, [*d.keys()], (*d.values(),), torch.tensor(list(d.values())),
                m, list(zip(d.keys(), d.values())), list(enumerate(d.keys())), min(d.items()),
                sorted(d, key=d.get))
    return f, lambda i: (X(i), {"a": 3.0, "b": 2.0}), lambda: None


@pytest.mark.parametrize("name", list(P))
def test_probe(name):
    build, full = P[name]
    check(build, fullgraph=full)


def test_items_loop_stays_one_graph():
    def f(x, d):
        for k, v in d.items():
            x = x * v
        return x, list(d.keys())
    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager", fullgraph=True)
    got = c(torch.ones(2), {"a": 2, "b": 3})
    assert torch.equal(got[0], torch.full((2,), 6.0)) and got[1] == ["a", "b"]
