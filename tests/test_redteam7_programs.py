"""Red team 7: iterators and context managers carried across graph breaks (a `print` in the
loop body or the `with` block). Differential: outputs, stdout and argument state equal eager,
with the graph count recorded by the counting backend. No bug found; kept as regression."""
import contextlib
import io

import pytest
import torch

import bytegraph
from test_graph_breaks import Counting


def run(fn, make_args):
    bytegraph.reset()
    c = bytegraph.compile(fn, backend=Counting())
    for _ in range(2):
        ea, ca = make_args(), make_args()
        oe, oc = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(oe):
            want = fn(*ea)
        with contextlib.redirect_stdout(oc):
            got = c(*ca)
        assert oe.getvalue() == oc.getvalue()
        assert repr(got) == repr(want)
        assert repr(ca) == repr(ea)
    assert bytegraph.counters["recompiles"]["total"] == 0


def gen(n):
    for i in range(n):
        yield i * 2


@contextlib.contextmanager
def ctx(log):
    log.append("enter")
    try:
        yield 5
    finally:
        log.append("exit")


def generator_loop(x):
    out = []
    for v in gen(4):
        out.append(x * v)
        print(v)
    return out


def next_across(x):
    it = iter([1, 2, 3, 4])
    a = next(it)
    print("b")
    b = next(it)
    return x * a + b, list(it)


def dict_items(x):
    out = x
    for k, v in {"a": 1, "b": 2}.items():
        out = out * v
        print(k)
    return out


def no_grad_block(x):
    with torch.no_grad():
        y = x * 2
        print("in")
        z = y * x
    w = z * x
    return y.requires_grad, z.requires_grad, w.requires_grad, w


def enumerate_zip(x):
    out = []
    for i, (n, c) in enumerate(zip([1, 2, 3], "abc"), start=5):
        out.append((i, c, x * n))
        print(c)
    return out


def contextmanager_block(x, log):
    with ctx(log) as v:
        y = x * v
        print("inside")
        log.append("mid")
    return y


def reversed_range(x):
    for i in reversed(range(3)):
        x = x + i
        print(i)
    return x


def list_grows_while_iterated(x, items):
    for v in items:
        x = x + v
        print(v)
        if v == 1:
            items.append(9)
    return x


CASES = [
    (generator_loop, lambda: (torch.ones(2),)),
    (next_across, lambda: (torch.ones(2),)),
    (dict_items, lambda: (torch.ones(2),)),
    (no_grad_block, lambda: (torch.ones(2, requires_grad=True),)),
    (enumerate_zip, lambda: (torch.ones(2),)),
    (contextmanager_block, lambda: (torch.ones(2), [])),
    (reversed_range, lambda: (torch.ones(2),)),
    (list_grows_while_iterated, lambda: (torch.ones(2), [0, 1, 2])),
]


@pytest.mark.parametrize("fn,make_args", CASES, ids=[f.__name__ for f, _ in CASES])
def test_across_break(fn, make_args):
    run(fn, make_args)
