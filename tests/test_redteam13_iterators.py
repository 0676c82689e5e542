"""Red-team probes of the in-graph raises (policy/checks.py checks, policy/scalar_index.py
selects): a caller's iterator the trace stepped before the raising point must be left consumed
as eager leaves it (the graph raises before the epilogue that would replay the steps runs), so
such a raise is refused while any stepped caller iterator is pending.

PYTEST_DONT_REWRITE: the programs' own `assert` statements must stay Python's."""
import pytest
import torch

import bytegraph
from differential import REFERENCE, reset


def _outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except Exception as e:
        return type(e), str(e)


def check_over_iterator(x, it):
    for a in it:
        x = x + a
        assert x.sum() > 0, "negative"
    return x


def raise_over_iterator(x, it):
    for a in it:
        x = x + a
        if x.sum() < 0:
            raise ValueError("negative")
    return x


def index_over_iterator(x, it):
    for a in it:
        x = x[a]
    return x


def _iters(make):
    return make(), make()


@pytest.mark.parametrize("backend", ["eager", "aten"])
@pytest.mark.parametrize("fn,x,items", [
    (check_over_iterator, torch.tensor([1.0, 1.0]), [1.0, -5.0, 3.0, 4.0]),
    (raise_over_iterator, torch.tensor([1.0, 1.0]), [1.0, -5.0, 3.0, 4.0]),
    (index_over_iterator, torch.arange(24.).reshape(2, 3, 4), [torch.tensor(1), torch.tensor(7), torch.tensor(0)]),
], ids=["assert", "raise", "index"])
@pytest.mark.parametrize("kind", [list, tuple])
def test_iterator_argument_consumed_before_a_raise(fn, x, items, kind, backend):
    reset()
    compiled = bytegraph.compile(fn, backend=backend)
    for _ in range(2):                      # a fresh trace, then a cache hit
        want_it, got_it = iter(kind(items)), iter(kind(items))
        want, got = _outcome(fn, x.clone(), want_it), _outcome(compiled, x.clone(), got_it)
        assert want[0] == got[0] and (want[0] == "ok" or want[1] == got[1]), (want, got)
        assert list(want_it) == list(got_it)


def check_after_a_break(x, it):
    for a in it:
        x = x + a
        bytegraph.graph_break()             # the rest of the loop runs in resume functions
        assert x.sum() > 0, "negative"
        x = x * 2
    return x


def check_after_a_break_and_a_step(x, it):
    bytegraph.graph_break()                 # the loop itself runs in a resume function
    for a in it:
        x = x + a
        assert x.sum() > 0, "negative"
    return x


@pytest.mark.parametrize("fn", [check_after_a_break, check_after_a_break_and_a_step],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("items", [[1.0, -5.0, 3.0, 4.0], [1.0, 2.0], [-9.0, 1.0]], ids=["mid", "ok", "first"])
def test_iterator_argument_in_resume_functions(fn, items):
    reset()
    compiled = bytegraph.compile(fn, backend="eager")
    for _ in range(2):
        want_it, got_it = iter(items), iter(items)
        want, got = _outcome(fn, torch.ones(2), want_it), _outcome(compiled, torch.ones(2), got_it)
        assert want[0] == got[0] and (want[0] == "ok" or want[1] == got[1]), (want, got)
        if want[0] == "ok":
            torch.testing.assert_close(got[1], want[1])
        assert list(want_it) == list(got_it)
