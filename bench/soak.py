"""Soak test of bytegraph's memory and retrace behaviour (a script, not a timed test).

Sections (docs/reliability.md has the figures):
  functions  compile and call N distinct small functions, drop them: RSS back near the start?
  breaks     the same with B functions that each stop at a graph break and resume in compiled
             resume functions: are those freed too?
  modules    compile and call M distinct nn.Modules (1 MiB of parameters each), both as
             compiled modules and through one shared compiled function, drop them: freed?
  calls      one compiled function called C times: RSS growth (noise only?) and time
  storm      a function that raises for some inputs, called S times with them: traces once?
  weakcost   (not in the default run) hit-path cost of the weak bindings, per zoo entry

RSS is read from /proc/self/status after gc.collect() and malloc_trim(0) (glibc keeps freed
heap pages otherwise, which would look like a leak). Exit status 1 if a check fails.

    .venv/bin/python bench/soak.py                       # all sections, full sizes (~3 min)
    .venv/bin/python bench/soak.py --sections storm,calls --calls 100000
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import time
import weakref

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import bytegraph  # noqa: E402

MB = 1024 * 1024
try:
    _libc = ctypes.CDLL("libc.so.6")
except OSError:
    _libc = None


def rss_mb():
    gc.collect()
    if _libc is not None:
        _libc.malloc_trim(0)
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def log(msg):
    print(msg, flush=True)


def make_function(i):
    """A distinct small function (its own code object and globals entry)."""
    ns = {"torch": torch}
    exec(f"def f_{i}(x, y):\n    return torch.relu(x * {i % 97 + 1}) + y * {i % 13}\n", ns)
    return ns[f"f_{i}"]


def make_breaking_function(i):
    """A distinct small function with a graph break that stops the trace: a branch on a
    tensor's value, so each compile also makes resume functions (their own compiled states)."""
    ns = {"torch": torch}
    exec(f"def g_{i}(x, y):\n    z = torch.relu(x * {i % 97 + 1}) + y\n"
         f"    if z.sum().item() > {i % 7}:\n        return z * 2\n    return z - 1\n", ns)
    return ns[f"g_{i}"]


def section_functions(n, backend, make=make_function, label="functions"):
    from bytegraph.runtime import api
    x, y = torch.randn(4), torch.randn(4)
    start = rss_mb()
    t0 = time.perf_counter()
    compiled = []
    states = weakref.WeakSet()        # (weak references that die with their object leave no trace)
    for i in range(n):
        fn = make(i)
        c = bytegraph.compile(fn, backend=backend)
        for args in ((x, y), (-x, -y)):
            if not torch.allclose(c(*args), fn(*args)):
                raise AssertionError(f"wrong result for {fn.__name__}")
        compiled.append(c)
        states.add(c.__bytegraph_state__)
    peak = rss_mb()
    took = time.perf_counter() - t0
    all_states = len(api._all_states)
    del compiled, c, fn
    end = rss_mb()
    alive = len(states)
    alive_all = len(api._all_states)
    log(f"{label}: {n} compiled+called in {took:.1f} s; RSS start {start:.0f} MB, with all "
        f"{n} alive {peak:.0f} MB, after dropping {end:.0f} MB (delta {end - start:+.0f} MB); "
        f"states still alive: {alive} (all compile states, resume functions included: "
        f"{all_states} -> {alive_all}); compile_metrics kept {len(bytegraph.compile_metrics)} "
        f"records of {getattr(bytegraph.compile_metrics, 'total', '?')}; graph breaks "
        f"{sum(bytegraph.counters['graph_break'].values())}")
    return end - start <= 50 and alive == 0 and alive_all == 0


class Block(nn.Module):
    def __init__(self, i):
        super().__init__()
        self.lin = nn.Linear(512, 512)          # 1 MiB of float32 parameters
        self.scale = float(i % 5 + 1)

    def forward(self, x):
        return torch.relu(self.lin(x)) * self.scale


def shared_step(m, x):
    return m(x).sum()


def section_modules(n, backend):
    x = torch.randn(2, 512)
    start = rss_mb()
    t0 = time.perf_counter()
    step = bytegraph.compile(shared_step, backend=backend)
    modules, compiled = weakref.WeakSet(), []
    for i in range(n):
        m = Block(i)
        c = bytegraph.compile(m, backend=backend)
        with torch.no_grad():
            if not torch.allclose(c(x), m(x)):
                raise AssertionError(f"wrong result for module {i}")
            if not torch.allclose(step(m, x), shared_step(m, x)):
                raise AssertionError(f"wrong result for shared step {i}")
        modules.add(m)
        compiled.append(c)
    del m, c
    peak = rss_mb()
    took = time.perf_counter() - t0
    del compiled
    end = rss_mb()
    alive = len(modules)
    entries = len(step.__bytegraph_state__.entries)
    log(f"modules: {n} modules (1 MiB each) compiled+called in {took:.1f} s; RSS start "
        f"{start:.0f} MB, all alive {peak:.0f} MB, after dropping {end:.0f} MB (delta "
        f"{end - start:+.0f} MB); modules still alive: {alive}; live entries of the shared "
        f"compiled step: {entries}")
    return end - start <= 50 and alive == 0


def tiny(x):
    return x + 1


def section_calls(n):
    x = torch.ones(2)
    bytegraph.reset()
    c = bytegraph.compile(tiny, backend="eager")
    c(x)
    marks = []
    step = max(n // 10, 1)
    start = rss_mb()
    t0 = time.perf_counter()
    done = 0
    while done < n:
        k = min(step, n - done)
        for _ in range(k):
            c(x)
        done += k
        marks.append(rss_mb())
    took = time.perf_counter() - t0
    growth = max(marks) - start
    log(f"calls: {n} calls of one compiled function in {took:.1f} s ({took / n * 1e6:.2f} us/call "
        f"incl. the add); RSS start {start:.1f} MB, per-tenth "
        f"[{', '.join(f'{m:.1f}' for m in marks)}] MB; max growth {growth:+.1f} MB; "
        f"frames compiled: {bytegraph.counters['frames']['total']}")
    return growth <= 5


def raises_for_some(x, n):
    if n % 2:
        raise ValueError(f"odd n={n}")
    return x * n


def section_storm(n):
    bytegraph.reset()
    c = bytegraph.compile(raises_for_some, backend="eager")
    x = torch.ones(3)
    t0 = time.perf_counter()
    raised = 0
    for _ in range(n):
        try:
            c(x, 3)
        except ValueError:
            raised += 1
    took = time.perf_counter() - t0
    traces = bytegraph.counters["frames"]["total"]
    log(f"storm: {n} calls that raise: {raised} raised, traced {traces} time(s) in {took:.2f} s; "
        f"fallback counters {dict(bytegraph.counters['fallback'])}")
    return raised == n and traces == 1


def section_weakcost(names):
    """What the weak bindings cost on the hit path: each zoo entry's guard expression as
    generated (weak references read with `_name()`) vs the same expression with each weak
    reference replaced by its object, timed interleaved in this process (min of 40 x 200)."""
    import copy
    import re
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    import zoo
    for name in names:
        e = zoo.get(name)
        model, make_inputs = e.build()
        c = bytegraph.compile(copy.deepcopy(model), backend="eager", fullgraph=True)
        inputs = make_inputs(0)
        e.call(c, inputs)
        entry = c.__dict__["_bytegraph_call"].__bytegraph_state__.entries[0]
        expr = entry.__bytegraph_guards__.expression()
        life = entry.__bytegraph_life__
        weak_names = list(life.names) if life is not None else []
        ns_weak, ns_strong, expr_strong = dict(entry.__globals__), dict(entry.__globals__), expr
        for n in weak_names:
            ns_strong[n] = ns_strong[n]()
            expr_strong = re.sub(rf"\b{n}\(\)", n, expr_strong)
        exec(f"def __g(mod, *args, **kwargs):\n    return {expr}\n", ns_weak)
        exec(f"def __g(mod, *args, **kwargs):\n    return {expr_strong}\n", ns_strong)
        mod = c.__dict__["_orig_mod"]
        kw = dict(zip(e.arg_names, inputs)) if e.arg_names is not None else {}
        pos = () if e.arg_names is not None else tuple(inputs)
        calls = {"weak": lambda: ns_weak["__g"](mod, *pos, **kw),
                 "strong": lambda: ns_strong["__g"](mod, *pos, **kw)}
        assert all(f() is True for f in calls.values())
        best = dict.fromkeys(calls, float("inf"))
        for rep in range(40):
            for k in (("weak", "strong") if rep % 2 else ("strong", "weak")):
                t = time.perf_counter()
                for _ in range(200):
                    calls[k]()
                best[k] = min(best[k], (time.perf_counter() - t) / 200 * 1e6)
        log(f"weakcost {name}: {len(entry.__bytegraph_guards__)} guards, {len(weak_names)} weak "
            f"bindings; guards {best['weak']:.1f} us with weak references, {best['strong']:.1f} us "
            f"with strong ones (delta {best['weak'] - best['strong']:+.1f} us)")
    return True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sections", default="functions,breaks,modules,calls,storm")
    p.add_argument("--functions", type=int, default=5000)
    p.add_argument("--breaks", type=int, default=1000, help="functions with a graph break")
    p.add_argument("--modules", type=int, default=200)
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--storm", type=int, default=10_000)
    p.add_argument("--backend", default="eager")
    p.add_argument("--zoo", default="gpt2_lm,bert,mlp_sequential", help="zoo entries for --sections weakcost")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    # warm up lazy imports and caches so that "start" is a steady state
    warm = bytegraph.compile(make_function(10**6), backend=args.backend)
    warm(torch.randn(4), torch.randn(4))
    bytegraph.compile(Block(0), backend=args.backend)(torch.randn(2, 512))
    del warm
    bytegraph.reset()
    log(f"bytegraph {bytegraph.__file__}; torch {torch.__version__}; backend {args.backend!r}")
    ok = True
    if "functions" in sections:
        ok &= section_functions(args.functions, args.backend)
    if "breaks" in sections:
        ok &= section_functions(args.breaks, args.backend, make_breaking_function, "breaks")
    if "modules" in sections:
        ok &= section_modules(args.modules, args.backend)
    if "calls" in sections:
        ok &= section_calls(args.calls)
    if "storm" in sections:
        ok &= section_storm(args.storm)
    if "weakcost" in sections:
        ok &= section_weakcost([n.strip() for n in args.zoo.split(",") if n.strip()])
    log("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
