"""Red team 15, family 2: generators the traced code made, handed to Python (returned after some
next() calls, stored in a global, passed to a disabled function or to sum/list/zip at a break;
generator expressions, yield from, send, close afterwards): runtime/resume.py
suspended_generator / _generator_parts. Also division by zero on a number read at a stop
(family 1's "exception in the block after the stop", without the with)."""
import contextlib
import inspect

import pytest
import torch

import bytegraph
from test_redteam15_harness import calls, check, dis, outcome, x4

P = {}


def probe(f):
    P[f.__name__] = f
    return f


def mk(i):
    return (x4(), [])


def counter(x, log):
    log.append("start")
    try:
        for i in range(3):
            log.append(i)
            x = x + i
            got = yield x
            if got is not None:
                log.append(("sent", got))
                x = x * got
    finally:
        log.append("gen-finally")
    log.append("end")


def drain(g, log):
    """What Python sees stepping g afterwards."""
    out = []
    while True:
        try:
            out.append(next(g))
        except StopIteration as e:
            out.append(("stop", e.value))
            break
    out.append(inspect.getgeneratorstate(g))
    return out


@probe
def returned_after_two_steps(C):
    def f(x, log):
        g = counter(x * 2, log)
        a = next(g)
        b = next(g)
        return a + b, g
    res = []
    for o, args in calls(C, f, mk):
        first, g = o[1]
        res.append((first, drain(g, args[1]), args[1]))
    return res


@probe
def returned_then_send(C):
    def f(x, log):
        g = counter(x, log)
        a = next(g)
        return a, g
    res = []
    for o, args in calls(C, f, mk):
        a, g = o[1]
        v = g.send(3.0)
        res.append((a, v, g.gi_running, inspect.getgeneratorstate(g), args[1]))
        g.close()
        res.append(list(args[1]))
    return res


@probe
def returned_then_close_runs_finally_once(C):
    def f(x, log):
        g = counter(x, log)
        next(g)
        return g
    res = []
    for o, args in calls(C, f, mk):
        g = o[1]
        g.close()
        g.close()
        res.append((list(args[1]), inspect.getgeneratorstate(g)))
    return res


@probe
def returned_then_throw(C):
    def f(x, log):
        g = counter(x, log)
        next(g)
        return g
    res = []
    for o, args in calls(C, f, mk):
        g = o[1]
        res.append(outcome(g.throw, KeyError("thrown")))
        res.append(list(args[1]))
    return res


GLOBAL_GEN = {}


@probe
def stored_in_global_then_break(C):
    GLOBAL_GEN.clear()
    GLOBAL_GEN["g"] = None

    def f(x, log):
        g = counter(x, log)
        v = next(g)
        GLOBAL_GEN["g"] = g
        bytegraph.graph_break()
        w = next(g)
        return v + w
    cf = C(f)
    res = []
    for i in range(2):
        log = []
        o = outcome(cf, x4(), log)
        res.append((o, list(log)))
        GLOBAL_GEN["g"] = None        # eager: the generator is freed here and its finally runs
        res.append(list(log))
    return res


@bytegraph.disable
def consume_two(g):
    return [next(g), next(g)]


@probe
def passed_to_disabled_then_continued(C):
    def f(x, log):
        g = counter(x, log)
        a = next(g)
        rest = consume_two(g)
        log.append("back")
        try:
            more = next(g)
        except StopIteration:
            more = None
        return a, rest, more
    return calls(C, f, mk)


@probe
def sum_list_zip_at_break(C):
    def f(x, log):
        g1 = (x * i for i in range(3))
        g2 = counter(x, log)
        next(g2)
        z = list(zip(g1, g2))
        s = sum(dis(v) for v in [x, x + 1])
        return z, s
    return calls(C, f, mk)


def inner_gen(x, log):
    log.append("inner-start")
    r = yield x
    log.append(("inner-got", r))
    yield x + 1
    return "inner-ret"


def outer_gen(x, log):
    res = yield from inner_gen(x, log)
    log.append(("outer-res", res))
    yield x * 10


@probe
def yield_from_handed_over(C):
    def f(x, log):
        g = outer_gen(x, log)
        a = next(g)
        return a, g
    res = []
    for o, args in calls(C, f, mk):
        a, g = o[1]
        res.append((a, g.send(5), drain(g, args[1]), args[1]))
    return res


@probe
def genexpr_partially_consumed_returned(C):
    def f(x, log):
        g = (x * i for i in range(4))
        a = next(g)
        b = next(g)
        return a + b, g
    res = []
    for o, args in calls(C, f, mk):
        a, g = o[1]
        res.append((a, list(g)))
    return res


@probe
def generator_local_tensor_mutated_after_handoff(C):
    def gen(buf):
        while True:
            buf.add_(1)
            yield buf.clone()

    def f(x, log):
        b = x * 1
        g = gen(b)
        first = next(g)
        return first, g, b
    res = []
    for o, args in calls(C, f, mk):
        first, g, b = o[1]
        second = next(g)
        res.append((first, second, b))
    return res


@probe
def generator_closure_over_cell(C):
    def f(x, log):
        k = 2

        def gen():
            nonlocal k
            while True:
                k += 1
                yield x * k
        g = gen()
        a = next(g)
        k = 100
        return a, g
    res = []
    for o, args in calls(C, f, mk):
        a, g = o[1]
        res.append((a, next(g)))
    return res


@probe
def unstarted_generator_returned(C):
    def f(x, log):
        g = counter(x * 3, log)
        log.append("made")
        return g
    res = []
    for o, args in calls(C, f, mk):
        g = o[1]
        res.append((list(args[1]), drain(g, args[1]), args[1]))
    return res


@probe
def exhausted_generator_returned(C):
    def f(x, log):
        g = (x * i for i in range(2))
        vals = list(g)
        return vals, g
    res = []
    for o, args in calls(C, f, mk):
        vals, g = o[1]
        res.append((vals, outcome(next, g), inspect.getgeneratorstate(g)))
    return res


@probe
def generator_method_on_object(C):
    class Walker:
        def __init__(self, n):
            self.n = n
            self.seen = []

        def walk(self, x):
            for i in range(self.n):
                self.seen.append(i)
                yield x + i

    def f(x, log):
        w = Walker(3)
        g = w.walk(x)
        a = next(g)
        return a, g, w
    res = []
    for o, args in calls(C, f, mk):
        a, g, w = o[1]
        res.append((a, list(g), w.seen))
    return res


@probe
def generator_paused_in_try_except(C):
    def gen(log):
        try:
            raise KeyError("k")
        except KeyError as e:
            yield str(e)
            log.append(("ctx", repr(inspect.currentframe() is not None)))
        yield "after"

    def f(x, log):
        g = gen(log)
        a = next(g)
        return x + len(a), g
    res = []
    for o, args in calls(C, f, mk):
        y, g = o[1]
        res.append((y, list(g), args[1]))
    return res


# ------------------------------------------------------ numbers read at a stop, then divided


@probe
def zero_division_unused_result(C):
    def f(x, log):
        n = int(x.sum().item() > 100)
        r = 1 / n                 # eager: ZeroDivisionError
        log.append("after")
        return x * 2
    return calls(C, f, mk)


@probe
def zero_division_caught(C):
    def f(x, log):
        n = x.sum().item()
        try:
            r = 1 / (n - n)
            log.append(r)
        except ZeroDivisionError as e:
            log.append(("caught", str(e)))
        return x * 2
    return calls(C, f, mk)


@probe
def zero_division_in_contextmanager_block(C):
    @contextlib.contextmanager
    def cm(log):
        try:
            yield
        except ZeroDivisionError:
            log.append("swallowed")

    def f(x, log):
        with cm(log):
            n = int(x.sum().item() > 100)
            r = 1 / n
            log.append("after")
        return x * 2
    return calls(C, f, mk)


@pytest.mark.parametrize("name", list(P))
def test_generators(name):
    check(P[name])
