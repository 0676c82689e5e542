"""Red team 15, family 1: `with cm():` over a @contextlib.contextmanager whose block stops the
trace (a tensor branch, .item() arithmetic, a @bytegraph.disable call, .tolist()): the resume
function gets the generator's state (runtime/resume.py GeneratorHandoff / suspended_generator).
Differential (tests/test_redteam15_harness.py): results, exceptions, side-effect logs, stdout,
generator-side effects (finally run once), no recompile on the second equal call."""
import contextlib

import pytest
import torch

import bytegraph
from test_redteam15_harness import calls, check, dis, outcome, x4

P = {}


def probe(f):
    P[f.__name__] = f
    return f


@contextlib.contextmanager
def tracked(log, tag):
    log.append(("enter", tag))
    try:
        yield tag
    except ValueError as e:
        log.append(("caught", str(e)))
        raise
    finally:
        log.append(("exit", tag))


@bytegraph.disable
def dis_raise(x, exc=ValueError):
    raise exc(f"refused {x.shape[0]}")


VARY = [False]


def xs(i):
    return x4(i if VARY[0] else 0)


def mk(i):
    return (xs(i), [])


# ------------------------------------------------------------------ generator bodies


@probe
def loop_in_generator(C):
    @contextlib.contextmanager
    def cm(log, n):
        total = 0
        for i in range(n):
            total += i
            log.append(i)
        yield total
        for i in range(n):
            log.append(-i)

    def f(x, log):
        with cm(log, 3) as t:
            if x.sum() > 0:
                x = x + t
            else:
                x = x - t
        return x * 2
    return calls(C, f, mk)


@probe
def several_yields_one_reached(C):
    @contextlib.contextmanager
    def cm(log, flag):
        if flag:
            log.append("a")
            yield "a"
            log.append("after a")
        else:
            log.append("b")
            yield "b"
            log.append("after b")

    def f(x, log):
        with cm(log, x.shape[0] == 4) as t:
            y = x * 2
            z = y.sum().item() * 3.0
            log.append(t)
        return y + z
    return calls(C, f, mk)


@probe
def yield_inside_except(C):
    @contextmanager_factory
    def cm(log):
        try:
            raise KeyError("inner")
        except KeyError as e:
            log.append("handling")
            yield str(e)
            log.append("still handling")
        log.append("done")

    def f(x, log):
        with cm(log) as s:
            y = dis(x * 2)
            log.append(s)
        return y
    return calls(C, f, mk)


contextmanager_factory = contextlib.contextmanager


@probe
def yield_inside_finally(C):
    @contextlib.contextmanager
    def cm(log):
        try:
            log.append("try")
        finally:
            log.append("fin-before")
            yield 7
            log.append("fin-after")
        log.append("end")

    def f(x, log):
        with cm(log) as s:
            y = x * s
            if y.sum() > 0:
                y = y + 1
        return y
    return calls(C, f, mk)


@probe
def yield_inside_except_exception_in_block(C):
    @contextlib.contextmanager
    def cm(log):
        try:
            raise KeyError("inner")
        except KeyError:
            try:
                yield 1
            except ValueError as e:
                log.append(("ctx", type(e.__context__).__name__))
                raise

    def f(x, log):
        try:
            with cm(log):
                y = dis(x * 2)
                raise ValueError("in block")
        except ValueError as e:
            log.append(("outer", type(e.__context__).__name__ if e.__context__ else None))
        return x + 1
    return calls(C, f, mk)


@probe
def closure_cell_in_generator(C):
    def make():
        state = {"n": 0}

        @contextlib.contextmanager
        def cm(log):
            nonlocal_n = state["n"]
            state["n"] += 1
            yield nonlocal_n
            state["n"] += 100
        return cm, state

    def f(x, log, cm):
        with cm(log) as n:
            y = x.sum().item()
            log.append(n)
        return x + y
    cm, state = make()
    cf = C(f)
    out = []
    for i in range(2):
        state["n"] = 0              # equal state on each call
        out.append((outcome(cf, xs(i), [], cm), dict(state)))
    return out


@probe
def nonlocal_writes_in_generator(C):
    def outer(x, log):
        counter = 0

        @contextlib.contextmanager
        def cm():
            nonlocal counter
            counter += 1
            yield counter
            counter += 10

        with cm() as c:
            y = dis(x + c)
            log.append(counter)
        log.append(counter)
        return y * counter
    return calls(C, outer, mk)


class Tracker:
    def __init__(self):
        self.events = []

    @contextlib.contextmanager
    def scope(self, name):
        self.events.append(("in", name))
        try:
            yield self
        finally:
            self.events.append(("out", name))


@probe
def self_method_contextmanager(C):
    def f(x, tr):
        with tr.scope("s") as t:
            y = x * 2
            if y.max() > 0.5:
                y = y - 1
            t.events.append("body")
        return y
    return calls(C, f, lambda i: (xs(i), Tracker()))


@probe
def tensor_local_in_generator(C):
    @contextlib.contextmanager
    def cm(x, log):
        saved = x * 3
        yield saved
        log.append(saved + 1)

    def f(x, log):
        with cm(x, log) as s:
            v = s.sum().item()
            y = x + v
        return y, log
    return calls(C, f, mk)


@probe
def tensor_local_mutated_in_block(C):
    @contextlib.contextmanager
    def cm(buf, log):
        before = buf.clone()
        yield buf
        log.append((buf - before).sum())

    def f(x, log):
        with cm(x * 1, log) as b:
            b.add_(1)
            if b.sum() > 2:
                b.mul_(2)
        return b
    return calls(C, f, mk)


@probe
def nested_with_both_generators(C):
    def f(x, log):
        with tracked(log, "o") as a:
            with tracked(log, "i") as b:
                y = x * 2
                n = int(y.sum().item() > 0)
                log.append((a, b, n))
            y = y + n
        return y
    return calls(C, f, mk)


@probe
def same_cm_object_twice(C):
    def f(x, log):
        cm = tracked(log, "same")
        with cm:
            y = dis(x)
        try:
            with cm:
                y = y + 1
        except Exception as e:       # eager: AttributeError / RuntimeError from contextlib
            log.append(type(e).__name__)
        return y
    return calls(C, f, mk)


class Box:
    pass


@probe
def cm_stored_in_attribute(C):
    def f(x, box, log):
        box.cm = tracked(log, "attr")
        with box.cm as t:
            y = x * 2
            if y.sum() < 0:
                y = -y
            log.append(t)
        return y
    res = calls(C, f, lambda i: (xs(i), Box(), []))
    return [(o, a[2], sorted(vars(a[1]))) for o, a in res]


@probe
def with_in_for_loop_break_continue(C):
    def f(x, log):
        for i in range(4):
            with tracked(log, i):
                x = x + i
                if x.sum() > 3:
                    log.append("big")
                    break
                if i % 2:
                    continue
                log.append("even")
        return x
    return calls(C, f, mk)


def _helper_with(x, log):
    with tracked(log, "h"):
        v = x.tolist()
        y = x * len(v)
    return y


@probe
def with_inside_inlined_helper(C):
    def f(x, log):
        y = x + 1
        z = _helper_with(y, log)
        return z * 2
    return calls(C, f, mk)


@probe
def with_under_no_grad(C):
    def f(x, log):
        x = x.clone().requires_grad_(True)
        with torch.no_grad():
            with tracked(log, "ng"):
                y = x * 2
                if y.sum() > 0:
                    y = y + 1
                log.append(torch.is_grad_enabled())
        z = (x * y).sum()
        z.backward()
        return y, x.grad, torch.is_grad_enabled()
    return calls(C, f, mk)


@probe
def with_block_exception_caught_by_generator_after_stop(C):
    @contextlib.contextmanager
    def cm(log):
        try:
            yield
        except ZeroDivisionError:
            log.append("swallowed")

    def f(x, log):
        with cm(log):
            y = x * 2
            n = int(y.sum().item() > 100)
            r = 1 / n
        return y
    return calls(C, f, mk)


@probe
def with_block_exception_replaced(C):
    @contextlib.contextmanager
    def cm(log):
        try:
            yield
        except ValueError as e:
            log.append("replacing")
            raise TypeError("replaced") from e

    def f(x, log):
        try:
            with cm(log):
                y = dis(x * 2)
                dis_raise(y)
        except TypeError as e:
            log.append((str(e), repr(e.__cause__), repr(e.__context__)))
        return x.sum()
    return calls(C, f, mk)


@probe
def with_block_exception_escapes(C):
    def f(x, log):
        with tracked(log, "esc"):
            y = x * 2
            if y.sum() > -100:
                raise KeyError(f"escaped {y.shape[0]}")
        return y
    return calls(C, f, mk)


@probe
def return_from_inside_block(C):
    def f(x, log):
        with tracked(log, "ret"):
            y = x * 3
            if y.sum() > 0:
                return y + 1
            return y - 1
    return calls(C, f, mk)


@probe
def exit_stack_with_generator_cms(C):
    def f(x, log):
        with contextlib.ExitStack() as st:
            a = st.enter_context(tracked(log, "a"))
            b = st.enter_context(tracked(log, "b"))
            st.callback(log.append, "cb")
            y = x * 2
            if y.sum() > 0:
                y = y + 1
            log.append((a, b))
        return y
    return calls(C, f, mk)


@probe
def suppress_closing_nullcontext(C):
    class Res:
        def __init__(self, log):
            self.log = log

        def close(self):
            self.log.append("closed")

    def f(x, log):
        with contextlib.suppress(KeyError), contextlib.closing(Res(log)), contextlib.nullcontext(5) as n:
            y = dis(x * n)
            raise KeyError("s")
        return y
    return calls(C, f, mk)


@probe
def generator_finally_runs_once_on_stop_then_raise(C):
    @contextlib.contextmanager
    def cm(log):
        log.append("enter")
        try:
            yield
        finally:
            log.append("finally")

    def f(x, log):
        with cm(log):
            y = x * 2
            s = y.sum().item()
            log.append(s > 0)
            z = torch.ones(2) @ torch.ones(3)         # a shape error in the block after the stop
        return z
    return calls(C, f, mk)


@probe
def generator_yield_value_is_tensor_changed_in_block(C):
    @contextlib.contextmanager
    def cm(x, log):
        t = x.clone()
        yield t
        log.append(t.sum())

    def f(x, log):
        with cm(x, log) as t:
            t[0] = 100.0
            if t.sum() > 0:
                t += 1
        return t
    return calls(C, f, mk)


@probe
def cm_with_kwargs_and_defaults(C):
    @contextlib.contextmanager
    def cm(log, *items, scale=2.0, **kw):
        log.append((items, scale, sorted(kw)))
        yield scale * len(items)
        log.append(kw.get("tail", "none"))

    def f(x, log):
        with cm(log, 1, 2, 3, scale=0.5, tail="t") as s:
            y = x * s
            y = y + y.sum().item()
        return y
    return calls(C, f, mk)


@probe
def generator_state_via_cm_gen(C):
    import inspect

    def f(x, log):
        cm = tracked(log, "g")
        with cm:
            y = dis(x)
            log.append(inspect.getgeneratorstate(cm.gen))
        log.append(inspect.getgeneratorstate(cm.gen))
        return y
    return calls(C, f, mk)


@probe
def autocast_around_generator_with(C):
    def f(x, log):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with tracked(log, "ac"):
                y = torch.mm(x.view(2, 2), x.view(2, 2))
                if y.float().sum() > 0:
                    y = y * 2
                log.append(y.dtype)
        return y
    return calls(C, f, mk)


@pytest.mark.parametrize("name", list(P))
def test_genctx(name):
    check(P[name])


@pytest.mark.parametrize("name", list(P))
def test_genctx_varied_inputs(name):
    VARY[0] = True
    try:
        check(P[name], recompiles_ok=True)
    finally:
        VARY[0] = False
