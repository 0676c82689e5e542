"""Graph breaks around generators, raises and site-reading calls (session 15).

- A stop inside `with cm():` over a @contextmanager the trace made: the resume function gets the
  real context manager over a real generator suspended at the same yield (runtime/resume.py
  `suspended_generator`, bytecode/resume.py `generator=True`), so its __exit__ goes on after
  the yield as eager's would (next, throw, close). Before, the whole call ran eagerly.
- A generator the trace made and stepped, handed to Python (returned, or passed to a call a
  stop runs): the same rebuild; one not stepped yet starts at its first instruction.
- An exception leaving the function after tensor work (a `raise`, a handler's re-raise): the
  graph before it runs and Python raises it (`raise_stop`); the caller sees eager's exception
  object, message, cause and context. Before, the call ran eagerly.
- A class as a condition (`if typ:` in an `__exit__`) is true unless its metaclass says.
- Calls run at a stop see the user's frame as their caller (`_at_site`): log records and
  warnings name the user's file, line and function, as eagerly.
- A log call with tensor arguments is emitted after the graph with the graph's tensors, unless
  an op later writes into one (then it runs at a stop, with the value of its moment).

Differential: results or the raised exception, side-effect logs, log records, warnings, and
graph counts (a counting backend) with the second call a pure cache hit.
"""
import contextlib
import logging
import warnings

import pytest
import torch

import bytegraph
from differential import assert_same, not_compiled
from test_prog_stdlib import ListHandler
from test_graph_breaks import Counting


def _outcome(fn, args):
    try:
        return ("ok", fn(*args))
    except Exception as e:        # the exception as the caller sees it
        return ("raised", type(e), str(e), type(e.__context__), str(e.__context__),
                type(e.__cause__), e.__suppress_context__)


def run(fn, make, graphs, calls=2, fallbacks=()):
    """fn eagerly and compiled on fresh equal arguments (make() -> args): equal outcomes and
    arguments after; the first call compiles `graphs` graphs, the later ones none; no eager
    fallback but of the kinds in `fallbacks` ("user_error": a unit that raises with no tensor
    work before the raise runs eagerly)."""
    bytegraph.reset()
    be = Counting()
    c = bytegraph.compile(fn, backend=be)
    counts = []
    for _ in range(calls):
        ea, ca = make(), make()
        oe, oc = _outcome(fn, ea), _outcome(c, ca)
        assert oe[0] == oc[0], (oe, oc)
        if oe[0] == "ok":
            assert_same(oe[1], oc[1])
        else:
            assert oe == oc
        assert_same(list(ea), list(ca))
        counts.append(len(be.graphs) + not_compiled())
    assert set(bytegraph.counters["fallback"]) <= set(fallbacks), dict(bytegraph.counters["fallback"])
    assert counts[0] == graphs, f"{counts[0]} graphs, expected {graphs}"
    assert counts[-1] == counts[0], "a later call compiled again"
    assert sum(bytegraph.counters["recompiles"].values()) == 0
    return c


@bytegraph.disable
def dis(x):
    return x + 0.5


@bytegraph.disable
def dis_raise(x):
    raise ValueError(f"refused {x.shape[0]}")


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


@contextlib.contextmanager
def suppressing(log):
    log.append("enter")
    try:
        yield len(log)
    except KeyError:
        log.append("suppressed")
    log.append("after")


def x4():
    torch.manual_seed(0)
    return torch.randn(4)


# ---------------------------------------------------------------------------- @contextmanager

def cm_item_branch(x, log):
    x = x.exp()
    with tracked(log, "a") as tag:
        x = x * 0.5
        if x.sum().item() > 0:
            x = x + 1
        log.append(tag)
        x = x - len(tag)
    return x.cos(), log


def test_stop_inside_contextmanager_block():
    run(cm_item_branch, lambda: (x4(), []), graphs=2)


def cm_nested(x, log):
    with tracked(log, "outer"):
        x = x + 1
        with tracked(log, "inner") as t:
            x = dis(x * 2)
            log.append(t)
            x = x.sin()
        x = x * 3
    return x


def test_stop_inside_nested_contextmanagers():
    run(cm_nested, lambda: (x4(), []), graphs=2)


def cm_raise_through(x, log):
    x = x * 2
    with tracked(log, "r"):
        x = dis(x)
        log.append(x.shape[0])
        dis_raise(x)
    return x


def test_exception_through_rebuilt_generator():
    """The rebuilt generator's except/finally run as the original's (gen.throw at its yield)."""
    run(cm_raise_through, lambda: (x4(), []), graphs=1, fallbacks=("user_error",))


def cm_suppress(x, log):
    y = x * 2
    with suppressing(log) as n:
        y = dis(y) + n
        raise KeyError("k")
    return y.tanh(), log


def test_contextmanager_suppresses_after_stop():
    run(cm_suppress, lambda: (x4(), []), graphs=2)


def cm_held(x, log):
    cm = tracked(log, "h")
    with cm:
        x = dis(x + 1)
    return x * 2, cm.args, cm.kwds


def test_contextmanager_object_rebuilt():
    """The context manager object the resume function gets has contextlib's attributes (after
    __enter__, none of func/args/kwds: eager raises AttributeError, so does the compiled call)."""
    run(cm_held, lambda: (x4(), []), graphs=1, fallbacks=("user_error",))


# ---------------------------------------------------------------------------- generators

def counter(x, log):
    log.append("start")
    for i in range(3):
        log.append(i)
        x = x + i
        yield x
    log.append("end")


def returns_stepped(x, log):
    g = counter(x * 2, log)
    first = next(g)
    return first, g


def test_stepped_generator_returned():
    """A generator stepped once, returned: the caller's later steps give eager's values."""
    def make():
        return x4(), []
    bytegraph.reset()
    c = bytegraph.compile(returns_stepped, backend=Counting())
    for _ in range(2):
        ea, ca = make(), make()
        fe, ge = returns_stepped(*ea)
        fc, gc = c(*ca)
        assert_same(fe, fc)
        assert_same(list(ge), list(gc))
        assert ea[1] == ca[1]
        assert gc.__name__ == "counter" and gc.__qualname__ == ge.__qualname__
    assert not bytegraph.counters["fallback"]


def unstarted(x, log):
    y = x * 2
    return sum(dis(v) for v in [y, y + 1])


def test_unstarted_generator_to_python():
    run(unstarted, lambda: (x4(), []), graphs=1)


def gen_closing(x, log):
    g = counter(x, log)
    a = next(g)
    b = dis(a)
    g.close()
    return b


def test_generator_closed_after_stop():
    run(gen_closing, lambda: (x4(), []), graphs=1)


# ---------------------------------------------------------------------------- raises

def raise_after_work(x, log):
    y = x * 2
    log.append(y)
    if x.shape[0] == 4:
        raise ValueError(f"bad size {x.shape[0]}")
    return y


def test_raise_after_tensor_work():
    run(raise_after_work, lambda: (x4(), []), graphs=1)


def raise_from(x, log):
    y = x.sin()
    log.append(y)
    raise RuntimeError("outer") from KeyError("cause")


def test_raise_from_keeps_cause():
    run(raise_from, lambda: (x4(), []), graphs=1)


def finally_reraises(x, log):
    try:
        y = x * 2
        dis_raise(y)
    finally:
        log.append(x + 1)
    return y


def test_finally_reraises_same_object():
    run(finally_reraises, lambda: (x4(), []), graphs=2)
    bytegraph.reset()
    seen = []

    @bytegraph.disable
    def boom(t):
        e = ValueError("mine")
        seen.append(e)
        raise e

    def f(x, log):
        try:
            y = boom(x * 2)
        finally:
            log.append(x + 1)
        return y
    c = bytegraph.compile(f)
    with pytest.raises(ValueError) as info:
        c(x4(), [])
    assert info.value is seen[-1]


def raise_in_handler(x, log):
    y = x * 2
    try:
        raise KeyError("first")
    except KeyError:
        log.append(y + 1)
        raise ValueError("second")


def test_raise_in_except_block_chains_context():
    """A raise inside an except block keeps eager's __context__ (it runs eagerly: the trace's
    handled exception cannot be made current in the entry)."""
    bytegraph.reset()
    for fn in (raise_in_handler, bytegraph.compile(raise_in_handler)):
        with pytest.raises(ValueError) as info:
            fn(x4(), [])
        assert type(info.value.__context__) is KeyError and str(info.value.__context__) == "'first'"


def helper_raises(x):
    z = x.relu()
    raise IndexError(f"helper {z.shape[0]}")


def raise_in_callee(x, log):
    log.append(x + 1)
    return helper_raises(x * 3)


def test_raise_in_inlined_callee():
    run(raise_in_callee, lambda: (x4(), []), graphs=1)


# ---------------------------------------------------------------------------- class truth

class Meta(type):
    def __len__(cls):
        return 0


class Empty(metaclass=Meta):
    pass


def class_truth(x, log):
    a = x + 1 if ValueError else x - 1
    b = a * 2 if Empty else a * 3        # len() 0 through the metaclass: false
    return b


def test_class_truth():
    bytegraph.reset()
    c = bytegraph.compile(class_truth)
    assert_same(class_truth(x4(), []), c(x4(), []))


# ---------------------------------------------------------------------------- sites

LOG = logging.getLogger("bytegraph.test.breaks15")


@pytest.fixture
def records():
    h = ListHandler()       # (name, level, message, pathname, lineno, funcName) per record
    LOG.addHandler(h)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    yield h.records
    LOG.removeHandler(h)
    LOG.setLevel(logging.NOTSET)
    LOG.propagate = True


def log_object(x, log):
    y = x * 2
    LOG.info("obj %s", log)           # a list: not a constant, the call runs at a stop
    return y + 1


def log_tensor_kept(x, log):
    y = x * 2
    LOG.info("y %s", y)
    return y + 1


def log_tensor_written(x, log):
    y = x * 2
    LOG.info("y %s", y)
    y.add_(1)
    return y


@pytest.mark.parametrize("fn, graphs", [(log_object, 2), (log_tensor_kept, 1), (log_tensor_written, 2)],
                         ids=["object", "tensor", "tensor_written"])
def test_log_records_like_eager(records, fn, graphs):
    run(fn, lambda: (x4(), ["a"]), graphs=graphs)
    assert len(records) == 4                     # eager, compiled, eager, compiled
    assert records[0] == records[1] and records[2] == records[3], records


def _lib_warns(t):
    warnings.warn("from the library", UserWarning, stacklevel=2)
    return t


@bytegraph.disable
def lib_warns(t):
    return _lib_warns(t)


def warn_at_stop(x, log):
    y = x * 2
    y = _lib_warns_direct(y)
    return y + 1


def _lib_warns_direct(t):      # a callee that stops at its warn call's caller level
    warnings.warn(f"direct {len(t)}", UserWarning, stacklevel=2)
    return t


def test_warning_location_at_stop():
    def located(fn):
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            fn(x4(), [])
        return [(str(w.message), w.filename, w.lineno) for w in ws]
    bytegraph.reset()
    assert located(warn_at_stop) == located(bytegraph.compile(warn_at_stop))


# ---------------------------------------------------------------------------- throw into a traced generator

@contextlib.contextmanager
def handles(log, mode):
    log.append("enter")
    try:
        yield mode
    except ValueError as e:
        log.append(("caught", str(e)))
        if mode == "reraise":
            raise
        if mode == "other":
            raise KeyError("replaced")
        if mode == "yield_again":
            yield "again"
    finally:
        log.append("fin")


def _with_raising(mode):
    def f(x, log):
        try:
            with handles(log, mode) as m:
                x = x * 2
                log.append(m)
                raise ValueError("in block")
        except (ValueError, KeyError, RuntimeError) as e:
            log.append(("outer", type(e).__name__, str(e)))
        return x + 1
    return f


@pytest.mark.parametrize("mode", ["suppress", "reraise", "other", "yield_again"])
def test_exception_thrown_into_traced_contextmanager(mode):
    """The with-block's exception reaches the generator (it was dropped: the generator went on
    after its yield as if none had been raised, and the outer handler ran instead)."""
    # a generator that yields again after throw(): eager leaves it to the collector, whose
    # close() runs its finally at a time the trace cannot know: refused, runs eagerly
    run(_with_raising(mode), lambda: (x4(), []), graphs=0 if mode == "yield_again" else 1,
        fallbacks=("generator_throw",))


def not_caught_by_generator(x, log):
    try:
        with tracked(log, "k"):
            x = x - 1
            raise KeyError("not for the generator")
    except KeyError:
        log.append("outer")
    return x.exp()


def test_exception_the_generator_does_not_catch():
    run(not_caught_by_generator, lambda: (x4(), []), graphs=1)


# ---------------------------------------------------------------------------- made, handed over, then changed

class Holder:
    pass


HOLD = Holder()


class Point:
    def __init__(self):
        self.v = 1


def object_changed_after_break(x):
    p = Point()
    HOLD.p = p                  # replayed at the break: Python holds the real object from there
    y = x * 2
    bytegraph.graph_break()
    p.v = 5                     # was lost: the trace changed its own copy
    p.__dict__["w"] = 7
    return y + p.v


def iterator_stepped_after_break(x):
    it = iter([1, 2, 3])
    HOLD.it = it
    y = x * 2
    bytegraph.graph_break()
    a = next(it)                # was lost: the real iterator stayed at its start
    return y + a


@pytest.mark.parametrize("fn", [object_changed_after_break, iterator_stepped_after_break])
def test_change_after_break_reaches_real_object(fn):
    seen = []
    for f in (fn, bytegraph.compile(fn, backend="eager")):
        bytegraph.reset()
        out = f(x4())
        state = (HOLD.p.v, HOLD.p.w) if fn is object_changed_after_break else next(HOLD.it)
        seen.append((out, state))
    assert_same(seen[0][0], seen[1][0])
    assert seen[0][1] == seen[1][1]
