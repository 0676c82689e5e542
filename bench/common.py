"""Shared benchmark utilities: contenders, interleaved timing, environment, markdown.

Responsible for *how* things are measured, not *what*: the three contenders
(eager, bytegraph, torch.compile -- all compilers with backend="eager" so the
captured graph runs as-is and only capture/guard overhead differs), a timer
that runs many calls per sample with the GC off, round-robin interleaving of
contenders across repetitions (rotating the order each round), and the
environment header / tables written to bench/results/*.md.
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import math
import os
import platform
import shlex
import statistics
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402

ALL_CONTENDERS = ("eager", "bytegraph", "torch.compile")


class Failed:
    """A measurement that could not be taken (printed as `fail (ExcType)`)."""

    def __init__(self, exc):
        self.exc_type = type(exc).__name__
        self.message = str(exc).splitlines()[0][:200] if str(exc) else ""

    def __str__(self):
        return f"fail ({self.exc_type})"

    __repr__ = __str__


def ok(x):
    """True for an actual measurement (a number), False for None / "n/a" / Failed."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# ----------------------------------------------------------------------------- contenders

class Contender:
    """One way of running a function: `prepare(fn)` -> callable, `reset()` clears caches."""

    name = "?"
    available = True
    why_unavailable = ""

    def reset(self):
        pass

    def prepare(self, fn, compile_config=None):
        return fn

    def graph_count(self):
        return None


class Eager(Contender):
    name = "eager"


class TorchCompile(Contender):
    name = "torch.compile"

    def __init__(self, fullgraph=True):
        import torch._dynamo
        from torch._dynamo.utils import counters
        self._dynamo = torch._dynamo
        self._counters = counters
        self.fullgraph = fullgraph

    def reset(self):
        self._dynamo.reset()
        self._counters.clear()

    def prepare(self, fn, compile_config=None):
        return torch.compile(fn, backend="eager", fullgraph=self.fullgraph)

    def graph_count(self):
        return self._counters["stats"]["unique_graphs"]


class Bytegraph(Contender):
    name = "bytegraph"

    def __init__(self, fullgraph=True):
        self.fullgraph = fullgraph
        try:
            import bytegraph
            self._bg = bytegraph
            for attr in ("compile", "reset"):
                if not hasattr(bytegraph, attr):
                    raise AttributeError(f"bytegraph has no attribute {attr!r}")
        except Exception as e:  # noqa: BLE001 -- bytegraph may not work yet
            self.available = False
            self.why_unavailable = f"{type(e).__name__}: {e}"

    def reset(self):
        self._bg.reset()

    def prepare(self, fn, compile_config=None):
        return self._bg.compile(fn, backend="eager", fullgraph=self.fullgraph)

    def graph_count(self):
        counters = getattr(self._bg, "counters", None)
        try:
            return counters["stats"]["unique_graphs"]
        except Exception:  # noqa: BLE001
            return None


def make_contenders(only=None, skip=()):
    """Contenders in ALL_CONTENDERS order; eager is always kept (it is the baseline).

    only/skip: iterables of names; "torch" is accepted for "torch.compile".
    """
    def norm(names):
        return {("torch.compile" if n in ("torch", "torch_compile") else n) for n in names}
    only = norm(only) if only else None
    skip = norm(skip)
    out = {}
    for name in ALL_CONTENDERS:
        if name != "eager" and ((only is not None and name not in only) or name in skip):
            continue
        out[name] = {"eager": Eager, "bytegraph": Bytegraph, "torch.compile": TorchCompile}[name]()
    return out


def config_for(contender_name, compile_config):
    """Context for a contender's compiling call (torch._dynamo config overrides)."""
    if contender_name == "torch.compile" and compile_config is not None:
        return compile_config()
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------- timing

def time_calls_ns(fn, args, kwargs, n):
    """Wall time of `n` back-to-back calls fn(*args, **kwargs), in ns per call (GC off)."""
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn(*args, **kwargs)
        t1 = time.perf_counter_ns()
    finally:
        if gc_was:
            gc.enable()
    return (t1 - t0) / n


def interleaved_per_call_us(callables, args, kwargs=None, calls=2000, samples=7, warmup=3):
    """Median per-call time in us for each of `callables` (name -> callable).

    Runs `warmup` calls of each, then `samples` rounds; each round times `calls`
    calls of every contender, round-robin, rotating the starting contender each
    round so that none always runs first. A contender that raises is reported
    as Failed and dropped from later rounds.
    """
    kwargs = kwargs or {}
    results = {}
    live = {}
    for name, fn in callables.items():
        try:
            for _ in range(warmup):
                fn(*args, **kwargs)
            live[name] = fn
            results[name] = []
        except Exception as e:  # noqa: BLE001
            results[name] = Failed(e)
    names = list(live)
    for r in range(samples):
        order = names[r % len(names):] + names[:r % len(names)] if names else []
        for name in order:
            if isinstance(results[name], Failed):
                continue
            try:
                results[name].append(time_calls_ns(live[name], args, kwargs, calls) / 1e3)
            except Exception as e:  # noqa: BLE001
                results[name] = Failed(e)
    return {k: (statistics.median(v) if isinstance(v, list) else v) for k, v in results.items()}


def wall_s(fn):
    """(seconds, result-or-Failed) of a single call."""
    t0 = time.perf_counter()
    try:
        res = fn()
    except Exception as e:  # noqa: BLE001
        if os.environ.get("BENCH_TRACEBACK"):
            traceback.print_exc()
        return time.perf_counter() - t0, Failed(e)
    return time.perf_counter() - t0, res


def geomean(xs):
    xs = [x for x in xs if ok(x) and x > 0]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


# ----------------------------------------------------------------------------- reporting

def environment(argv=None):
    argv = sys.argv if argv is None else argv
    return {
        "command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable, REPO)
                                                     if sys.executable.startswith(REPO)
                                                     else sys.executable] + list(argv)),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version() + f" ({platform.python_implementation()})",
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, nproc={os.cpu_count()}, "
                   f"torch threads={torch.get_num_threads()}",
        "platform": platform.platform(),
    }


def env_markdown(env):
    return "\n".join(f"- **{k}**: `{v}`" for k, v in env.items())


def fmt(x, spec=".1f", none="-"):
    if x is None:
        return none
    if isinstance(x, Failed):
        return str(x)
    if isinstance(x, str):
        return x
    return format(x, spec)


def ratio(a, b):
    return a / b if ok(a) and ok(b) and b != 0 else None


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def log(*a):
    print(*a, flush=True)
