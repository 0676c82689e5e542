"""Harness of the dynamic-shape red-team probes (tests/test_redteam_dynamic*.py; not collected).

Every probe is differential: eager and compiled run on deep copies of the same inputs and must
agree on outputs, arguments afterwards and exceptions (type); a probe fails on any bytegraph
fallback it did not expect, and asserts compile counts where they are the point. Probes that
expose a bytegraph bug are listed in FAILING with a diagnosis and skipped (never xfailed), so
the files stay green; delete a FAILING entry once the bug is fixed.
"""
import contextlib
import copy
import io
import warnings

import pytest
import torch

import bytegraph
from differential import assert_same, counters


R = torch.randn


# --------------------------------------------------------------------------- harness

def _call(fn, args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            result = ("ok", fn(*args))
        except Exception as e:  # noqa: BLE001 - eager's own exceptions are part of the contract
            result = ("exc", type(e), e)
    return result, out.getvalue(), [str(m.message) for m in w if not str(m.message).startswith("bytegraph")]


def diff(fn, calls, dynamic=True, backend="eager", fullgraph=True, compiles=None, atol=1e-5,
         fallbacks=()):
    """Run every call (a tuple of arguments, or one argument) eagerly and compiled; compare.

    compiles: expected counters["frames"]["ok"] at the end (None: not checked). fallbacks: the
    fallback kinds allowed (e.g. "user_error" when eager itself raises on some call)."""
    bytegraph.reset()
    compiled = bytegraph.compile(fn, backend=backend, dynamic=dynamic, fullgraph=fullgraph)
    for i, args in enumerate(calls):
        if not isinstance(args, tuple):
            args = (args,)
        eager_args, comp_args = copy.deepcopy(args), copy.deepcopy(args)
        (e, e_out, e_warn), (c, c_out, c_warn) = _call(fn, eager_args), _call(compiled, comp_args)
        if c[0] == "exc" and e[0] == "ok":
            raise AssertionError(f"call {i}: compiled raised {c[1].__name__}: {c[2]}")
        assert e[0] == c[0], f"call {i}: eager raised {e[1].__name__}: {e[2]}, compiled did not"
        if e[0] == "exc":
            assert e[1] is c[1], f"call {i}: eager raised {e[1].__name__}, compiled {c[1].__name__}: {c[2]}"
        else:
            assert_same(e[1], c[1], atol, atol, path=f"call{i}")
        assert_same(eager_args, comp_args, atol, atol, path=f"call{i}.args-after")
        assert e_out == c_out, f"call {i}: stdout {e_out!r} != {c_out!r}"
        if backend == "eager":        # compiling backends import torch internals that warn once
            assert e_warn == c_warn, f"call {i}: warnings {e_warn} != {c_warn}"
    unexpected = {k: v for k, v in counters()["fallback"].items() if v and k not in fallbacks}
    assert not unexpected, f"bytegraph fell back: {unexpected}"
    assert not counters()["frames"]["internal_error"], "internal error"
    if compiles is not None:
        assert counters()["frames"]["ok"] == compiles, \
            f"expected {compiles} compile(s), got {counters()['frames']['ok']}"
    return compiled


def states(probe, dynamic=True, backend="eager"):
    """A probe building its own state and returning observations, run eagerly and compiled (each
    from scratch, same seed): the observations must agree."""
    def compile_(f):
        return bytegraph.compile(f, backend=backend, dynamic=dynamic)
    bytegraph.reset()
    torch.manual_seed(0)
    expected = probe(lambda f: f)
    bytegraph.reset()
    torch.manual_seed(0)
    actual = probe(compile_)
    assert_same(expected, actual)
    assert not any(counters()["fallback"].values()), dict(counters()["fallback"])


def marked(fn, args, mark, later=()):
    """Mark args[0] with mark(t), compile (dynamic=None) and run args then each of `later`:
    'ran' when every call agreed with eager, 'violation' when ConstraintViolation was raised."""
    bytegraph.reset()
    c = bytegraph.compile(fn, backend="eager")
    mark(args[0])
    try:
        for a in [args] + list(later):
            assert_same(fn(*a), c(*a))
    except bytegraph.ConstraintViolation:
        return "violation"
    assert not any(counters()["fallback"].values()), dict(counters()["fallback"])
    return "ran"


def compiles():
    return counters()["frames"]["ok"]


def registry():
    """(probes by name, the decorator that registers one): one registry per test file."""
    probes = {}

    def probe(f):
        probes[f.__name__] = f
        return f
    return probes, probe


def run_probe(probes, name):
    if name in FAILING:
        pytest.skip("BUG: " + FAILING[name])
    probes[name]()


# name -> diagnosis. Skipped (not xfailed) so the file stays green; see the module docstring.
FAILING = {}


SIZES = [R(4, 6), R(7, 6), R(2, 6), R(9, 6), R(4, 6), R(3, 6), R(16, 6)]
WITH_01 = SIZES + [R(1, 6), R(0, 6), R(5, 6)]


