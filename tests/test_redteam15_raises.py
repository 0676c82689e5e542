"""Red team 15, family 3: exceptions leaving the compiled function after tensor work (runtime/
resume.py raise_stop / raise_exception / reraise, policy/calls.py ExceptionValue.reconstruct,
values/objects.py _fresh_exception): type, message, args, attributes, __cause__, __context__,
__suppress_context__, __notes__, __traceback__ not None, identity, one object per call.

PYTEST_DONT_REWRITE
"""
import pytest
import torch

import bytegraph
from test_redteam15_harness import calls, check, dis, exc_view, outcome, x4

P = {}


def probe(f):
    P[f.__name__] = f
    return f


def mk(i):
    return (x4(), [])


def caught(cf, *args):
    """The exception object the caller catches (None if it returned)."""
    try:
        cf(*args)
    except Exception as e:  # noqa: BLE001
        return e
    return None


class Plain(Exception):
    pass


class WithInit(Exception):
    def __init__(self, code, msg="default"):
        super().__init__(f"{code}: {msg}")
        self.code = code


class WithAttrsNoInit(ValueError):
    pass


class WithStr(Exception):
    def __str__(self):
        return f"custom<{self.args}>"


@probe
def fstring_message(C):
    def f(x, log):
        y = x * 2
        log.append(y)
        raise ValueError(f"mean {y.mean().item():.3f} shape {tuple(y.shape)}")
    return calls(C, f, mk)


@probe
def custom_plain(C):
    def f(x, log):
        y = x.exp()
        log.append(y)
        raise Plain("plain", 3, None)
    return calls(C, f, mk)


@probe
def custom_with_init(C):
    def f(x, log):
        y = x + 1
        log.append(y.sum())
        raise WithInit(7, msg="seven")
    res = calls(C, f, mk)
    cf = C(f)
    e = caught(cf, x4(), [])
    return res, e.code, e.args


@probe
def attributes_set_after_creation(C):
    def f(x, log):
        y = x * 3
        log.append(y)
        e = WithAttrsNoInit("attrs")
        e.payload = {"n": 3}
        e.add_note("note from f")
        raise e
    cf = C(f)
    out = []
    for i in range(2):
        e = caught(cf, x4(), [])
        out.append((exc_view(e), e.payload, getattr(e, "__notes__", None)))
        e.payload["n"] += 100          # the caller changes what it got
        e.add_note(f"caller {i}")
    return out


@probe
def notes_shared_between_calls(C):
    def f(x, log):
        y = x * 3
        log.append(y)
        e = ValueError("n")
        e.add_note("first")
        raise e
    cf = C(f)
    notes = []
    for i in range(3):
        e = caught(cf, x4(), [])
        notes.append(list(e.__notes__))
        e.add_note(f"caller {i}")
    return notes


@probe
def custom_str(C):
    def f(x, log):
        y = x.sin()
        log.append(y)
        raise WithStr("a", 1)
    return calls(C, f, mk)


@probe
def raise_from_cause_fresh_per_call(C):
    def f(x, log):
        y = x.cos()
        log.append(y)
        raise RuntimeError("outer") from KeyError("cause")
    cf = C(f)
    es = [caught(cf, x4(), []) for _ in range(2)]
    es[0].__cause__.args = ("changed by caller",)
    return [exc_view(e) for e in es], es[0].__cause__ is es[1].__cause__


@probe
def raise_from_none(C):
    def f(x, log):
        y = x.cos()
        log.append(y)
        try:
            {}["missing"]
        except KeyError:
            raise ValueError("clean") from None
    return calls(C, f, mk)


@probe
def raise_in_finally(C):
    def f(x, log):
        y = x * 2
        try:
            log.append(y)
            raise KeyError("first")
        finally:
            log.append("fin")
            raise ValueError("from finally")
    return calls(C, f, mk)


@probe
def raise_in_except_block_after_stop(C):
    def f(x, log):
        y = x * 2
        try:
            s = y.sum().item()
            raise KeyError(f"k {s > 0}")
        except KeyError as e:
            log.append(str(e))
            raise ValueError("second") from e
    return calls(C, f, mk)


def lvl3(x):
    z = x.relu()
    raise IndexError(f"lvl3 {z.shape}")


def lvl2(x):
    return lvl3(x * 2) + 1


@probe
def raise_in_inlined_depth3(C):
    def f(x, log):
        log.append(x + 1)
        return lvl2(x - 1)
    return calls(C, f, mk)


def lvl3_handles(x, log):
    try:
        return lvl3(x)
    except IndexError as e:
        log.append(("lvl3 caught", str(e)))
        raise LookupError("rewrapped")


@probe
def raise_rewrapped_in_callee(C):
    def f(x, log):
        y = x * 2
        return lvl3_handles(y, log)
    return calls(C, f, mk)


@probe
def exception_carrying_tensor(C):
    def f(x, log):
        y = x * 2 + 1
        log.append(1)
        raise ValueError("bad tensor", y)
    cf = C(f)
    out = []
    for _ in range(2):
        e = caught(cf, x4(), [])
        t = e.args[1]
        out.append((type(t).__name__, t, t.requires_grad, str(e)))
    return out


@probe
def exception_carrying_grad_tensor(C):
    def f(x, log):
        w = x.clone().requires_grad_(True)
        y = (w * 3).sum()
        raise RuntimeError(y, w)
    cf = C(f)
    out = []
    for _ in range(2):
        e = caught(cf, x4(), [])
        y, w = e.args
        y.backward()
        out.append((y, w.grad, y.requires_grad, y.grad_fn is not None))
    return out


@probe
def bare_raise_in_handler(C):
    def f(x, log):
        y = x * 2
        try:
            dis(y)
            raise KeyError("bare")
        except KeyError:
            log.append(y.sum())
            raise
    return calls(C, f, mk)


@probe
def caller_inspects_traceback_and_context(C):
    def f(x, log):
        y = x * 2
        try:
            log.append(y)
            int("nope")
        except ValueError as e:
            log.append(str(e))
            raise TypeError("typed") 
    cf = C(f)
    out = []
    for _ in range(2):
        e = caught(cf, x4(), [])
        out.append((exc_view(e), e.__traceback__ is not None, type(e.__context__).__name__))
    return out


@probe
def keyerror_specifics(C):
    def f(x, log, d):
        y = x * 2
        log.append(y)
        return d[("a", 1)] + y
    return calls(C, f, lambda i: (x4(), [], {}))


@probe
def stopiteration_from_next(C):
    def f(x, log):
        it = iter([x])
        a = next(it)
        log.append(a * 2)
        b = next(it)
        return a + b
    return calls(C, f, mk)


@probe
def stopiteration_with_value(C):
    def f(x, log):
        y = x * 2
        log.append(y)
        raise StopIteration(y.shape[0])
    cf = C(f)
    out = []
    for _ in range(2):
        e = caught(cf, x4(), [])
        out.append((type(e).__name__, e.value, e.args))
    return out


@probe
def assert_with_message(C):
    def f(x, log):
        y = x * 2
        log.append(y)
        assert y.shape[0] == 3, f"expected 3 got {y.shape[0]}"
        return y
    return calls(C, f, mk)


@probe
def assert_on_tensor_value(C):
    def f(x, log):
        y = x * 2
        log.append(y)
        assert (y > 100).all(), "too small"
        return y
    return calls(C, f, mk)


@probe
def same_exception_object_identity(C):
    def f(x, log):
        err = ValueError("kept")
        log.append(err)
        y = x * 2
        log.append(y)
        raise err
    cf = C(f)
    out = []
    for _ in range(2):
        log = []
        try:
            cf(x4(), log)
        except ValueError as e:
            out.append((e is log[0], exc_view(e)))
    return out


@probe
def exception_stored_in_global_then_raised(C):
    g = {"e": None}

    def f(x, log):
        e = KeyError("stored")
        g["e"] = e
        y = x * 2
        log.append(y)
        raise e
    cf = C(f)
    out = []
    for _ in range(4):         # g["e"] is None, then the last exception: at most one recompile
        e = caught(cf, x4(), [])
        out.append((e is g["e"], exc_view(e)))
    return out


@probe
def raise_class_not_instance(C):
    def f(x, log):
        y = x + 1
        log.append(y)
        raise WithAttrsNoInit
    return calls(C, f, mk)


@probe
def raise_with_init_side_effects(C):
    seen = []

    class Counted(Exception):
        def __init__(self, m):
            seen.append(m)
            super().__init__(m)

    def f(x, log):
        y = x * 2
        log.append(y)
        raise Counted(f"c{y.shape[0]}")
    return calls(C, f, mk), seen


@probe
def exception_group_raised(C):
    def f(x, log):
        y = x * 2
        log.append(y)
        raise ExceptionGroup("grp", [ValueError("a"), KeyError("b")])
    cf = C(f)
    out = []
    for _ in range(2):
        e = caught(cf, x4(), [])
        out.append((type(e).__name__, str(e), [repr(s) for s in e.exceptions]))
    return out


@pytest.mark.parametrize("name", list(P))
def test_raises(name):
    check(P[name], max_recompiles=2 if name == "exception_stored_in_global_then_raised" else 0)
