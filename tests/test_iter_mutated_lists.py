"""enumerate / zip / reversed over a list the loop changes: CPython's iterators read the list
live. The trace's items are computed up front, so a step after the list changed runs the frame
eagerly (values/containers.py SeqIterValue); next() of a container is eager's TypeError; a
deleted instance attribute falls back to the class attribute (red team redteam4)."""
import contextlib
import io

import pytest
import torch

import bytegraph


def enumerate_appends_with_print(x, lst):
    out = []
    for i, v in enumerate(lst):
        print("i", i)
        if v < 3:
            lst.append(v + 2)
        out.append(i)
        x = x + v
    return x, out


def enumerate_appends(x, lst):
    out = []
    for i, v in enumerate(lst):
        if v < 3:
            lst.append(v + 2)
        out.append(i)
        x = x + v
    return x, out


def zip_appends(x, lst):
    out = []
    for a, b in zip(lst, range(10)):
        if a < 5:
            lst.append(a + 2)
        out.append(b)
    return x + 1, out


def reversed_then_pop(x, lst):
    r = reversed(lst)
    lst.pop()
    return x + 1, list(r)


def next_of_list(x):
    try:
        return x + next([1, 2, 3]), ""
    except TypeError as e:
        return x - 1, str(e)


def next_of_dict(x):
    try:
        return x + next({"a": 1}), ""
    except TypeError as e:
        return x - 1, str(e)


@pytest.mark.parametrize("fn", [enumerate_appends_with_print, enumerate_appends, zip_appends,
                                reversed_then_pop], ids=lambda f: f.__name__)
def test_iterator_over_a_changing_list(fn):
    with contextlib.redirect_stdout(io.StringIO()) as want_out:
        want_list = [1, 2]
        want = fn(torch.zeros(1), want_list)
    with contextlib.redirect_stdout(io.StringIO()) as got_out:
        got_list = [1, 2]
        got = bytegraph.compile(fn, backend="eager")(torch.zeros(1), got_list)
    assert torch.equal(want[0], got[0]) and want[1] == got[1]
    assert want_list == got_list and want_out.getvalue() == got_out.getvalue()


@pytest.mark.parametrize("fn", [next_of_list, next_of_dict], ids=lambda f: f.__name__)
def test_next_of_a_container_raises(fn):
    want, got = fn(torch.ones(1)), bytegraph.compile(fn, backend="eager")(torch.ones(1))
    assert torch.equal(want[0], got[0]) and want[1] == got[1]


class K:
    a = 10


def test_deleted_instance_attribute_reads_the_class_attribute():
    o1, o2 = K(), K()
    o1.a = o2.a = 1

    def f(x, o):
        r = x + o.a
        del o.a
        return r + o.a
    want = f(torch.ones(1), o1)
    got = bytegraph.compile(f, backend="eager")(torch.ones(1), o2)
    assert torch.equal(want, got) and vars(o1) == vars(o2)


def map_calls_per_step(x):
    out = []

    def g(v):
        out.append(v)
        return v
    m = map(g, [1, 2])
    out.append("x")           # eager: map has not called g yet
    for v in m:
        x = x + v
    return x, out


def map_over_growing_list(x, lst):
    out = []
    for v in map(lambda a: a * 2, lst):
        if v < 6:
            lst.append(v)
        out.append(v)
    return x + 1, out


def test_map_calls_its_function_at_each_step():
    want, got = map_calls_per_step(torch.zeros(1)), bytegraph.compile(map_calls_per_step, backend="eager")(torch.zeros(1))
    assert torch.equal(want[0], got[0]) and want[1] == got[1]


def test_map_reads_its_list_live():
    a, b = [1, 2], [1, 2]
    want = map_over_growing_list(torch.zeros(1), a)
    got = bytegraph.compile(map_over_growing_list, backend="eager")(torch.zeros(1), b)
    assert torch.equal(want[0], got[0]) and want[1] == got[1] and a == b


def filter_calls_per_step(x):
    out = []

    def g(v):
        out.append(v)
        return v > 1
    m = filter(g, [1, 2, 3])
    out.append("x")
    for v in m:
        x = x + v
    return x, out


def filter_over_growing_list(x, lst):
    out = []
    for v in filter(None, lst):
        if v < 4:
            lst.append(v + 2)
        out.append(v)
    return x + 1, out


def test_filter_calls_its_predicate_at_each_step():
    want = filter_calls_per_step(torch.zeros(1))
    got = bytegraph.compile(filter_calls_per_step, backend="eager")(torch.zeros(1))
    assert torch.equal(want[0], got[0]) and want[1] == got[1]


def test_filter_reads_its_list_live():
    a, b = [1, 2], [1, 2]
    want = filter_over_growing_list(torch.zeros(1), a)
    got = bytegraph.compile(filter_over_growing_list, backend="eager")(torch.zeros(1), b)
    assert torch.equal(want[0], got[0]) and want[1] == got[1] and a == b
