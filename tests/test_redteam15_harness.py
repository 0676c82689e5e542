"""Harness of the session-15 red-team probes (tests/test_redteam15_*.py); also a self-check.

A probe is `probe(C) -> observations`: it builds its own state, wraps its functions with C
(identity eagerly, bytegraph.compile(backend="eager") compiled), calls them (usually twice, on
fresh equal inputs) and returns what it saw. `check(probe)` runs it eagerly and compiled, each
after bytegraph.reset() and the same seed, and compares the observations, stdout, log records of
the "rt15" loggers (message formatted at emit time and again afterwards, pathname, lineno,
funcName), warnings (category, message, filename, lineno), and asserts no bytegraph warning
(internal error, fallback warning) and no recompile in the compiled run.
"""
import contextlib
import io
import logging
import os
import warnings

import torch

import bytegraph
from redteam_harness import cmp

LOGGER = "rt15"


class Keep(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []
        self.now = []

    def emit(self, record):
        self.records.append(record)
        self.now.append(record.getMessage())


def qual(t):
    return f"{t.__module__}.{t.__qualname__}"


def exc_view(e, depth=2):
    if e is None:
        return None
    view = (qual(type(e)), str(e), repr(e.args) if not any(isinstance(a, torch.Tensor) for a in e.args)
            else tuple(a.clone() if isinstance(a, torch.Tensor) else repr(a) for a in e.args),
            e.__suppress_context__, e.__traceback__ is not None)
    if depth:
        view += (exc_view(e.__context__, depth - 1), exc_view(e.__cause__, depth - 1))
    return view


def outcome(f, *args, **kwargs):
    try:
        return ("ok", f(*args, **kwargs))
    except Exception as e:  # noqa: BLE001 -- compared with eager's
        return ("exc",) + exc_view(e)


def C_eager(f):
    return f


def C_compiled(f):
    return bytegraph.compile(f, backend="eager")


def observe(probe, mode, warn_filter="always"):
    bytegraph.reset()
    torch.manual_seed(0)
    h = Keep()
    lg = logging.getLogger(LOGGER)
    lg.addHandler(h)
    old_level, old_prop = lg.level, lg.propagate
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    buf = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as ws, contextlib.redirect_stdout(buf):
            if warn_filter:
                warnings.simplefilter(warn_filter)
            obs = probe(C_eager if mode == "eager" else C_compiled)
    finally:
        lg.removeHandler(h)
        lg.setLevel(old_level)
        lg.propagate = old_prop
    recompiles = sum(bytegraph.counters["recompiles"].values())
    fallback = dict(bytegraph.counters["fallback"])
    recs = [(r.name, r.levelname, now, r.getMessage(), r.pathname, r.lineno, r.funcName)
            for r, now in zip(h.records, h.now)]
    wl = [(qual(w.category), str(w.message), w.filename, w.lineno) for w in ws]
    return obs, buf.getvalue(), recs, wl, recompiles, fallback


def check(probe, recompiles_ok=False, warn_filter="always", max_recompiles=0):
    e = observe(probe, "eager", warn_filter)
    c = observe(probe, "compiled", warn_filter)
    if os.environ.get("RT15_VERBOSE"):
        print(f"\n[rt15] {probe.__name__}: fallback={c[5]} recompiles={c[4]}")
    internal = [w for w in c[3] if w[1].startswith("bytegraph")]
    assert not internal, f"bytegraph warning: {internal}"
    cmp(e[0], c[0], "obs")
    assert e[1] == c[1], f"stdout: eager {e[1]!r} vs compiled {c[1]!r}"
    assert e[2] == c[2], f"log records: eager {e[2]} vs compiled {c[2]}"
    assert e[3] == c[3], f"warnings: eager {e[3]} vs compiled {c[3]}"
    if not recompiles_ok:
        assert c[4] <= max_recompiles, f"{c[4]} recompile(s) on equal fresh inputs"
    return e, c


def x4(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, generator=g)


def calls(C, fn, make, n=2):
    """fn compiled once, called n times on make() arguments: [(outcome, args after)]."""
    cf = C(fn)
    out = []
    for i in range(n):
        args = make(i)
        out.append((outcome(cf, *args), list(args)))
    return out


@bytegraph.disable
def dis(x):
    return x + 0.5


def test_harness_self_check():
    def probe(C):
        def f(x, log):
            log.append(x.sum().item())
            return x * 2
        return calls(C, f, lambda i: (x4(i), []))
    check(probe)
