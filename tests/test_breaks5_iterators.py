"""enumerate / zip / reversed over lists, handed to a resume function (a graph break that stops
the trace inside the loop) as CPython's own live object at the same point, not a snapshot of
the items left (values/iterators.py: SeqIterValue._live); real such objects received by a trace
are read through __reduce__ and stepped again after the call (wrap_live_seq, replay).

Before: the resume function got `iter((items left))`, so a loop body that grew the list after
the break lost the new items (a wrong result: 2 of 4 rows). Differential: outputs, the lists
and the iterators' remaining items against eager, on two calls."""
import pytest
import torch

import bytegraph

from test_graph_breaks import Counting, assert_same


class Holder:
    pass


def enum_grow(x, lst):
    out = []
    for i, v in enumerate(lst):
        if x.sum() > i:                  # stops the trace inside the loop
            x = x - 1
        if v < 3:
            lst.append(v + 2)            # seen by the next step, as in eager
        out.append((i, v))
        x = x + v
    return x, out


def zip_grow(x, lst):
    out = []
    for a, b in zip(lst, range(10)):
        if x.sum() > b:
            x = x - 1
        if a < 5:
            lst.append(a + 2)
        out.append(b)
    return x + 1, out


def rev_shrink(x, lst):
    out = []
    for a in reversed(lst):
        if x.sum() > a:
            x = x - 1
        if len(lst) > 2:
            lst.pop(0)
        out.append(a)
    return x + 1, out


def enum_no_change(x, lst):
    for i, v in enumerate(lst, 3):
        if x.sum() > i:
            x = x - v
        x = x * 1.5
    return x


def zip_no_change(x, lst):
    for a, b in zip(lst, [1.0, 2.0, 3.0, 4.0]):
        if x.sum() > b:
            x = x - a
        x = x * 1.5
    return x


def enum_kept_type(x, lst):
    it = enumerate(lst, 10)
    for i, v in it:
        if x.sum() > v:
            x = x - 1
        if i == 11:
            break
    return x, type(it).__name__, list(it)


def enum_escapes(x, holder, lst):
    holder.it = enumerate(lst)
    for i, v in holder.it:
        if x.sum() > v:
            x = x - 1
        if i == 1:
            break
    return x


def consume_two(x, it):
    k = 0
    for row in it:
        if x.sum() > k:
            x = x - 1
        x = x + 1
        k += 1
        if k == 2:
            break
    return x


def _lists():
    return [1, 2]


CASES = [
    (enum_grow, lambda: (torch.zeros(1) + 3, _lists())),
    (zip_grow, lambda: (torch.zeros(1) + 3, _lists())),
    (rev_shrink, lambda: (torch.zeros(1) + 3, [1, 2, 3, 4])),
    (enum_no_change, lambda: (torch.ones(2), [1.0, 2.0, 3.0, 4.0, 5.0])),
    (zip_no_change, lambda: (torch.ones(2), [0.5, 0.25, 0.125])),
    (enum_kept_type, lambda: (torch.ones(2) * 2, [1, 2, 3, 4])),
]


@pytest.mark.parametrize("fn,make", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_loop_iterator_live_across_a_stop(fn, make):
    bytegraph.reset()
    c = bytegraph.compile(fn, backend=Counting())
    for _ in range(2):
        ea, ca = make(), make()
        assert_same(fn(*ea), c(*ca))
        assert_same(ea, ca)


def test_iterator_stored_on_an_object_is_advanced():
    bytegraph.reset()
    c = bytegraph.compile(enum_escapes, backend=Counting())
    for _ in range(2):
        he, hc = Holder(), Holder()
        le, lc = [1, 2, 3, 4], [1, 2, 3, 4]
        assert_same(enum_escapes(torch.ones(1) * 3, he, le), c(torch.ones(1) * 3, hc, lc))
        assert type(hc.it) is enumerate
        assert list(he.it) == list(hc.it)


@pytest.mark.parametrize("make_it", [
    lambda lst: enumerate(lst, 5),
    lambda lst: zip(lst, (7, 8, 9, 10)),
    lambda lst: zip(lst, lst[1:], strict=False),
    lambda lst: reversed(lst),
], ids=["enumerate", "zip_tuple", "zip_lists", "reversed"])
def test_real_iterator_from_the_caller(make_it):
    """The caller's enumerate/zip/reversed object: the trace reads it and the caller sees it
    advanced exactly as eager left it."""
    bytegraph.reset()
    c = bytegraph.compile(consume_two, backend=Counting())
    for _ in range(2):
        le, lc = [1, 2, 3, 4], [1, 2, 3, 4]
        ie, ic = make_it(le), make_it(lc)
        next(ie), next(ic)
        assert_same(consume_two(torch.ones(1) * 2, ie), c(torch.ones(1) * 2, ic))
        assert list(ie) == list(ic)
    assert not bytegraph.counters["fallback"], dict(bytegraph.counters["fallback"])


def escapes_with_prints(x, holder, lst):
    holder.it = zip(lst, range(100))
    for v, i in holder.it:
        print("step", i)                 # a break that keeps the trace going: steps replayed
        if x.sum() > v:                  # a stop: the resumed trace wraps the real zip
            x = x - 1
        print("after", i)
        if i == 3:
            break
    return x


def test_steps_replayed_once_across_breaks(capsys):
    bytegraph.reset()
    c = bytegraph.compile(escapes_with_prints, backend=Counting())
    for _ in range(2):
        he, hc = Holder(), Holder()
        le, lc = [1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7]
        want = escapes_with_prints(torch.ones(1) * 3, he, le)
        out_e = capsys.readouterr().out
        got = c(torch.ones(1) * 3, hc, lc)
        assert capsys.readouterr().out == out_e
        assert_same(want, got)
        assert list(he.it) == list(hc.it)


def grow_then_loop(x, lst):
    lst.append(len(lst) + 1)             # the caller's list, changed before the loop
    out = []
    for i, v in enumerate(lst):
        if i == 2:
            if x.sum() > v:              # a stop at the appended item's step
                x = x - 1
            lst.append(9)
        out.append(v)
    return x, out


def test_loop_over_a_list_the_trace_grew():
    bytegraph.reset()
    c = bytegraph.compile(grow_then_loop, backend=Counting())
    for _ in range(2):
        le, lc = [1, 2], [1, 2]
        assert_same(grow_then_loop(torch.ones(1) * 2, le), c(torch.ones(1) * 2, lc))
        assert le == lc


def grow_then_plain_loop(x, lst):
    lst.append(len(lst) + 1)
    out = []
    i = 0
    for v in lst:
        if i == 2:
            if x.sum() > v:
                x = x - 1
            lst.append(9)
        out.append(v)
        i += 1
    return x, out


def test_plain_loop_over_a_list_the_trace_grew():
    """The same for a plain list iterator (it was rebuilt with __setstate__ before the list was
    written back: the index clamped to the old length, an item twice)."""
    bytegraph.reset()
    c = bytegraph.compile(grow_then_plain_loop, backend=Counting())
    for _ in range(2):
        le, lc = [1, 2], [1, 2]
        assert_same(grow_then_plain_loop(torch.ones(1) * 2, le), c(torch.ones(1) * 2, lc))
        assert le == lc
