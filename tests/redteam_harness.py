"""Shared harness of the red-team program probes (tests/test_redteam_programs*.py).

A probe runs a real-world program eagerly and through bytegraph.compile(backend="eager",
fullgraph=False); the contract is eager-identical results, argument/state mutation, stdout,
warnings and exceptions. Probes that expose a bytegraph bug are listed in BUGS (strict xfail).
"""
import abc
import collections
import collections.abc
import contextlib
import copy
import dataclasses
import enum
import functools
import io
import itertools
import logging
import math
import operator
import os
import random
import sys
import time
import typing
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bytegraph
from differential import assert_same, tensors_like  # noqa: F401  (assert_same used by manual probes)

# --------------------------------------------------------------------------- harness


def _tname(t):
    return f"{t.__module__}.{t.__qualname__}"


def cmp(e, a, path="out", atol=1e-5):
    """eager-vs-compiled equality; classes are compared by qualified name (each side builds its own)."""
    assert _tname(type(e)) == _tname(type(a)), f"{path}: type {type(e)} != {type(a)}"
    if isinstance(e, torch.Tensor):
        assert (e.dtype, e.shape, e.requires_grad) == (a.dtype, a.shape, a.requires_grad), \
            f"{path}: {(e.dtype, e.shape, e.requires_grad)} != {(a.dtype, a.shape, a.requires_grad)}"
        assert e.stride() == a.stride(), f"{path}: stride {e.stride()} != {a.stride()}"
        assert e.is_conj() == a.is_conj() and e.is_inference() == a.is_inference(), f"{path}: conj/inference"
        torch.testing.assert_close(a, e, atol=atol, rtol=atol, equal_nan=True, msg=lambda m: f"{path}: {m}")
        return
    if isinstance(e, dict):
        assert list(e) == list(a), f"{path}: keys {list(e)} != {list(a)}"
        for k in e:
            cmp(e[k], a[k], f"{path}[{k!r}]", atol)
        if not hasattr(e, "__dict__"):
            return
    if isinstance(e, (list, tuple)):
        assert len(e) == len(a), f"{path}: len {len(e)} != {len(a)}"
        for i, (x, y) in enumerate(zip(e, a)):
            cmp(x, y, f"{path}[{i}]", atol)
        return
    if isinstance(e, (set, frozenset)):
        assert len(e) == len(a) and all(not isinstance(v, torch.Tensor) for v in e), path
        assert e == a, f"{path}: {e} != {a}"
        return
    if isinstance(e, float) and e != e:
        assert a != a, f"{path}: nan vs {a}"
        return
    if isinstance(e, (int, float, complex, str, bytes, bool, type(None), torch.dtype, torch.device, range, slice)):
        if isinstance(e, float):
            assert repr(e) == repr(a), f"{path}: {e!r} != {a!r}"
        assert e == a, f"{path}: {e!r} != {a!r}"
        return
    if isinstance(e, type):
        assert _tname(e) == _tname(a), f"{path}: {e} != {a}"
        return
    if hasattr(e, "__dict__") and not callable(e) and not hasattr(e, "__next__"):
        cmp(vars(e), vars(a), f"{path}.__dict__", atol)
        return
    if hasattr(type(e), "__slots__"):
        for s in type(e).__slots__:
            cmp(getattr(e, s, "<unset>"), getattr(a, s, "<unset>"), f"{path}.{s}", atol)
        return
    assert repr(e).split(" at 0x")[0] == repr(a).split(" at 0x")[0], f"{path}: {e!r} != {a!r}"


def _run(fn, args, kwargs):
    buf = io.StringIO()
    with warnings.catch_warnings(record=True) as w, contextlib.redirect_stdout(buf):
        warnings.simplefilter("always")
        try:
            r = ("ok", fn(*args, **kwargs))
        except Exception as e:
            r = ("exc", type(e), str(e))
    return r, buf.getvalue(), [str(x.message) for x in w]


def same(build, ncalls=2, atol=1e-5, copy_args=True):
    """build() -> (fn, args[, kwargs[, state_fn]]), called once per mode under the same seed, so each
    side gets fresh but identical state. Compares outputs, args after, stdout, warnings, state_fn()."""
    res = {}
    for mode in ("eager", "compiled"):
        bytegraph.reset()
        torch.manual_seed(0)
        b = build()
        fn, args = b[0], b[1]
        kwargs = b[2] if len(b) > 2 else {}
        state = b[3] if len(b) > 3 else (lambda: None)
        if mode == "compiled":
            fn = bytegraph.compile(fn, backend="eager")
        calls = []
        for i in range(ncalls):
            a, k = (copy.deepcopy(args), copy.deepcopy(kwargs)) if copy_args else (args, kwargs)
            torch.manual_seed(100 + i)
            r, out, ws = _run(fn, a, k)
            calls.append((r, a, k, out, ws, state()))
        res[mode] = calls
    for i, (e, c) in enumerate(zip(res["eager"], res["compiled"])):
        bw = [m for m in c[4] if m.startswith("bytegraph")]
        assert not bw, f"call {i}: bytegraph warning: {bw}"
        assert e[0][0] == c[0][0], f"call {i}: eager {e[0][:3]} vs compiled {c[0][:3]}"
        if e[0][0] == "exc":
            assert _tname(e[0][1]) == _tname(c[0][1]) and e[0][2] == c[0][2], f"call {i}: {e[0]} vs {c[0]}"
        else:
            cmp(e[0][1], c[0][1], f"call{i}.out", atol)
        cmp(e[1], c[1], f"call{i}.args", atol)
        cmp(e[2], c[2], f"call{i}.kwargs", atol)
        assert e[3] == c[3], f"call {i}: stdout {e[3]!r} vs {c[3]!r}"
        assert e[4] == c[4], f"call {i}: warnings {e[4]} vs {c[4]}"
        cmp(e[5], c[5], f"call{i}.state", atol)



def both(f, calls, setup=lambda i: None, cmp=None):
    """calls: list of arg tuples; setup(i) run before call i on each side. Returns (eager, compiled)."""
    out = {}
    for mode in ("e", "c"):
        bytegraph.reset()
        g = bytegraph.compile(f, backend="eager") if mode == "c" else f
        res = []
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            for i, a in enumerate(calls):
                setup(i)
                res.append(g(*a))
        bw = [str(m.message) for m in w if str(m.message).startswith("bytegraph")]
        assert not bw, bw
        out[mode] = res
    return out["e"], out["c"]

def eq(e, c):
    cmp(e, c)


def registrars(P, M):
    def probe(f):
        P[f.__name__] = f
        return f

    def manual(f):
        M[f.__name__] = f
        return f
    return probe, manual


# name -> one-line diagnosis: marks that probe strict-xfail. Every bug these probes found so far
# (fake-op warnings leaking, __repr__/__hash__ run at trace time, generator functions, FakeTensor
# messages in caught exceptions, abstract classes, property -> __getattr__, metaclass __call__,
# value-hashed keys, _base/_version/id()/get_rng_state/get_num_threads/tensor attributes) is fixed.
BUGS = {}


def params(d):
    return [pytest.param(name, id=name, marks=[pytest.mark.xfail(strict=True, reason="BUG: " + BUGS[name])]
                         if name in BUGS else []) for name in d]


# --------------------------------------------------------------------------- guard probes
def E(f):
    """Identity 'compiler': the eager side of a guard probe."""
    return f


def C(f):
    return bytegraph.compile(f, backend="eager")


def diff_probe(probe):
    """A guard probe builds its own state and returns observations; run it eagerly and compiled
    (each from scratch, same seed) and compare the observations."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bytegraph.reset()
        torch.manual_seed(0)
        expected = probe(E)
        bytegraph.reset()
        torch.manual_seed(0)
        actual = probe(C)
    assert_same(expected, actual)
