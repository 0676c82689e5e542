"""Core benchmark: eager vs bytegraph vs torch.compile (all backend="eager").

Responsible for the three headline measurements, taken in one process with the
contenders interleaved round-robin (see bench/common.py):
  1. per-call overhead above eager on tiny functions (1/4/16 tensor inputs) and
     a 4-layer MLP  -- goal: bytegraph overhead <= 1/3 of torch.compile's;
  2. first-call (compile + run) wall time over the model zoo (tests/zoo.py)
     -- goal: bytegraph total <= 1/2 of torch.compile's;
  3. steady-state per-call time over the zoo -- goal: geomean bytegraph <= torch.compile.
Writes a markdown report (command line, versions, machine, date, tables).

    .venv/bin/python bench/bench_core.py --quick --skip bytegraph
    .venv/bin/python bench/bench_core.py --out bench/results/core.md
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Failed, fmt, log, ok, ratio  # noqa: E402

sys.path.insert(0, os.path.join(common.REPO, "tests"))
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import zoo  # noqa: E402

COMPILERS = ("bytegraph", "torch.compile")


# ----------------------------------------------------------------------------- tiny functions

def f1(a):
    return a + 1


def f4(a, b, c, d):
    return a + b + c + d


def f16(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15):
    return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14
            + a15)


def mlp4():
    torch.manual_seed(0)
    layers = []
    for _ in range(4):
        layers += [nn.Linear(16, 16), nn.ReLU()]
    return nn.Sequential(*layers).eval()


def overhead_cases():
    g = torch.Generator().manual_seed(0)
    t = lambda *s: torch.randn(*s, generator=g)  # noqa: E731 -- inputs do not require grad
    return [
        ("f1: a + 1 (1 input, shape (2,))", f1, (t(2),)),
        ("f4: a+b+c+d (4 inputs)", f4, tuple(t(2) for _ in range(4))),
        ("f16: sum of 16 inputs", f16, tuple(t(2) for _ in range(16))),
        ("mlp4: 4x(Linear(16,16)+ReLU), batch 2", mlp4(), (t(2, 16),)),
    ]


def bench_overhead(contenders, calls, samples):
    rows = []
    for label, fn, args in overhead_cases():
        log(f"[overhead] {label}")
        callables = {}
        for name, c in contenders.items():
            if not c.available:
                continue
            try:
                c.reset()
                target = copy.deepcopy(fn) if isinstance(fn, nn.Module) else fn
                callables[name] = c.prepare(target)
            except Exception as e:  # noqa: BLE001
                callables[name] = _raiser(e)
        res = common.interleaved_per_call_us(callables, args, calls=calls, samples=samples)
        res = {name: (res[name] if c.available else "n/a") for name, c in contenders.items()}
        rows.append((label, res))
        log("    " + "  ".join(f"{k}={fmt(v, '.2f')}us" for k, v in res.items()))
    return rows


def _raiser(exc):
    def f(*a, **k):
        raise exc
    return f


def overhead_table(rows, contenders):
    headers = ["case"] + [f"{n} us/call" for n in contenders]
    comp = [n for n in COMPILERS if n in contenders]
    headers += [f"{n} overhead us" for n in comp]
    if len(comp) == 2:
        headers.append("bytegraph/torch.compile overhead (goal <= 0.33)")
    out = []
    for label, res in rows:
        e = res.get("eager")
        over = {n: (res[n] - e if ok(res[n]) and ok(e) else res[n]) for n in comp}
        row = [label] + [fmt(res.get(n), ".2f") for n in contenders]
        row += [fmt(over[n], ".2f") for n in comp]
        if len(comp) == 2:
            row.append(fmt(ratio(over["bytegraph"], over["torch.compile"]), ".2f"))
        out.append(row)
    return common.markdown_table(headers, out)


# ----------------------------------------------------------------------------- zoo

def bench_zoo(contenders, entries, samples, target_sample_s):
    """Per entry: first-call wall time per compiler, then steady per-call times."""
    first_rows, steady_rows = [], []
    # One throw-away compile per compiler so that one-time imports/initialisation
    # are not charged to the first zoo entry.
    for name in COMPILERS:
        c = contenders.get(name)
        if c is not None and c.available:
            try:
                c.reset()
                c.prepare(f4)(*(torch.ones(2) for _ in range(4)))
            except Exception as e:  # noqa: BLE001
                log(f"[zoo] warm-up of {name} failed: {type(e).__name__}: {e}")
    for i, entry in enumerate(entries):
        log(f"[zoo {i + 1}/{len(entries)}] {entry.name}")
        try:
            model, make_inputs = entry.build()
        except Exception as e:  # noqa: BLE001
            log(f"    build failed: {type(e).__name__}: {e}")
            continue
        inputs = make_inputs(0)
        call_args, call_kwargs = _split(entry, inputs)
        t_eager, _ = common.wall_s(lambda: model(*call_args, **call_kwargs))
        first = {"eager": t_eager}
        graphs = {}
        callables = {"eager": model}
        order = [n for n in COMPILERS if n in contenders]
        if i % 2:
            order.reverse()  # alternate which compiler compiles first
        for name in order:
            c = contenders[name]
            if not c.available:
                first[name] = "n/a"
                continue
            try:
                c.reset()
                compiled = c.prepare(copy.deepcopy(model))
            except Exception as e:  # noqa: BLE001
                first[name] = Failed(e)
                continue
            with common.config_for(name, entry.torch_compile_config):
                secs, res = common.wall_s(lambda: compiled(*call_args, **call_kwargs))
                graphs[name] = c.graph_count()
                if not isinstance(res, Failed):
                    try:  # warm-up, still under the compile config in case of a recompile
                        for _ in range(2):
                            compiled(*call_args, **call_kwargs)
                    except Exception as e:  # noqa: BLE001
                        res = Failed(e)
            first[name] = res if isinstance(res, Failed) else secs
            if not isinstance(res, Failed):
                callables[name] = compiled
        first_rows.append((entry.name, first, graphs))
        log("    first call: " + "  ".join(f"{k}={fmt(v, '.3f')}s" for k, v in first.items())
            + f"  graphs={graphs}")

        try:  # steady eager per-call estimate sizes the samples (~target_sample_s each)
            for _ in range(3):
                model(*call_args, **call_kwargs)
            est = common.time_calls_ns(model, call_args, call_kwargs, 5) / 1e9
        except Exception:  # noqa: BLE001
            est = t_eager
        calls = max(3, min(5000, int(target_sample_s / max(est, 1e-7))))
        per_call = common.interleaved_per_call_us(callables, call_args, call_kwargs,
                                                  calls=calls, samples=samples, warmup=1)
        for name in contenders:
            if name not in per_call:
                per_call[name] = first[name] if isinstance(first[name], (Failed, str)) else None
        for name in COMPILERS:  # recompiles during the steady phase would show here
            c = contenders.get(name)
            if c is not None and c.available and ok(per_call.get(name)):
                n = c.graph_count()
                if n is not None and graphs.get(name) is not None and n != graphs[name]:
                    log(f"    WARNING: {name} graph count changed {graphs[name]} -> {n}")
        steady_rows.append((entry.name, per_call, calls))
        log("    steady: " + "  ".join(f"{k}={fmt(v, '.1f')}us" for k, v in per_call.items())
            + f"  ({calls} calls/sample)")
    return first_rows, steady_rows


def _split(entry, inputs):
    if entry.arg_names is not None:
        return (), dict(zip(entry.arg_names, inputs))
    return tuple(inputs), {}


def first_call_table(rows, contenders):
    comp = [n for n in COMPILERS if n in contenders]
    headers = ["entry", "eager first call ms"] + [f"{n} first call s" for n in comp]
    if len(comp) == 2:
        headers.append("bytegraph/torch.compile")
    headers += [f"{n} graphs" for n in comp]
    out = []
    totals = {n: 0.0 for n in comp}
    complete = {n: True for n in comp}
    for name, first, graphs in rows:
        row = [name, fmt(first["eager"] * 1e3 if ok(first["eager"]) else first["eager"], ".2f")]
        row += [fmt(first[n], ".3f") for n in comp]
        if len(comp) == 2:
            row.append(fmt(ratio(first["bytegraph"], first["torch.compile"]), ".2f"))
        row += [fmt(graphs.get(n), "d") for n in comp]
        for n in comp:
            if ok(first[n]):
                totals[n] += first[n]
            else:
                complete[n] = False
        out.append(row)
    def total(n):
        if not any(ok(f[n]) for _, f, _ in rows):
            return "n/a"
        return f"**{totals[n]:.2f}**" + ("" if complete[n] else " (incomplete)")
    total_row = ["**sum**", ""] + [total(n) for n in comp]
    if len(comp) == 2:
        both = [(f["bytegraph"], f["torch.compile"]) for _, f, _ in rows
                if ok(f["bytegraph"]) and ok(f["torch.compile"])]
        r = ratio(sum(b for b, _ in both), sum(t for _, t in both)) if both else None
        total_row.append(f"**{fmt(r, '.2f')}** (entries where both ran; goal <= 0.5)")
    total_row += [""] * len(comp)
    out.append(total_row)
    return common.markdown_table(headers, out)


def steady_table(rows, contenders):
    names = list(contenders)
    comp = [n for n in COMPILERS if n in contenders]
    headers = ["entry"] + [f"{n} us/call" for n in names] + [f"{n}/eager" for n in comp]
    if len(comp) == 2:
        headers.append("bytegraph/torch.compile")
    headers.append("calls/sample")
    out = []
    ratios = {k: [] for k in comp + ["bg/tc"]}
    for name, per_call, calls in rows:
        row = [name] + [fmt(per_call.get(n), ".1f") for n in names]
        for n in comp:
            r = ratio(per_call.get(n), per_call.get("eager"))
            ratios[n].append(r)
            row.append(fmt(r, ".2f"))
        if len(comp) == 2:
            r = ratio(per_call.get("bytegraph"), per_call.get("torch.compile"))
            ratios["bg/tc"].append(r)
            row.append(fmt(r, ".2f"))
        row.append(str(calls))
        out.append(row)
    gm = ["**geomean**"] + [""] * len(names) + [f"**{fmt(common.geomean(ratios[n]), '.2f')}**"
                                                for n in comp]
    if len(comp) == 2:
        gm.append(f"**{fmt(common.geomean(ratios['bg/tc']), '.2f')}** (goal <= 1)")
    gm.append("")
    out.append(gm)
    return common.markdown_table(headers, out)


# ----------------------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="zoo subset (entries flagged quick) and fewer repetitions")
    p.add_argument("--only", default=None,
                   help="comma list of contenders besides eager (bytegraph, torch)")
    p.add_argument("--skip", default="", help="comma list of contenders to skip (bytegraph, torch)")
    p.add_argument("--sections", default="overhead,zoo", help="comma list: overhead, zoo")
    p.add_argument("--entries", default=None, help="comma list of zoo entry names")
    p.add_argument("--family", default=None, choices=["nn", "transformers"])
    p.add_argument("--calls", type=int, default=None, help="calls per overhead sample")
    p.add_argument("--samples", type=int, default=None, help="samples (median taken)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: the kernels are tiny, and OpenMP "
                        "barriers on a busy 2-core box add ms-scale noise)")
    p.add_argument("--out", default=os.path.join(common.REPO, "bench", "results", "core.md"))
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    env = common.environment()
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    skip = [s.strip() for s in args.skip.split(",") if s.strip()]
    contenders = common.make_contenders(only, skip)
    sections = {s.strip() for s in args.sections.split(",")}
    calls = args.calls or (500 if args.quick else 2000)
    samples = args.samples or (3 if args.quick else 7)
    zoo_samples = args.samples or (3 if args.quick else 5)

    if args.entries:
        entries = [zoo.get(n.strip()) for n in args.entries.split(",") if n.strip()]
    else:
        entries = zoo.entries(args.family)
        if args.quick:
            entries = [e for e in entries if e.quick]

    log("contenders: " + ", ".join(
        n + ("" if c.available else f" (unavailable: {c.why_unavailable})")
        for n, c in contenders.items()))
    t0 = time.perf_counter()
    parts = ["# Core benchmark: eager vs bytegraph vs torch.compile", "", common.env_markdown(env), ""]
    parts.append("- **contenders**: " + ", ".join(
        f"`{n}`" + ("" if c.available else f" (unavailable: {c.why_unavailable})")
        for n, c in contenders.items()))
    parts.append('- compilers use `backend="eager"`, `fullgraph=True`; default grad mode '
                 "(inputs do not require grad; module parameters do); contenders interleaved "
                 "round-robin each sample, starting contender rotated; median of samples; GC off "
                 "while timing.")
    parts.append("")

    if "overhead" in sections:
        rows = bench_overhead(contenders, calls, samples)
        parts += ["## 1. Per-call overhead above eager", "",
                  f"{calls} calls per sample, median of {samples} samples.", "",
                  overhead_table(rows, contenders), ""]
    if "zoo" in sections and entries:
        first_rows, steady_rows = bench_zoo(contenders, entries, zoo_samples, 0.02)
        parts += ["## 2. First call (compile + run) over the zoo", "",
                  f"{len(entries)} entries from tests/zoo.py; each compiler reset before its "
                  "first call; which compiler goes first alternates per entry; `graphs` = "
                  "unique graphs after the first call.", "",
                  first_call_table(first_rows, contenders), "",
                  "## 3. Steady per-call time over the zoo", "",
                  f"After warm-up; ~20 ms of eager calls per sample, median of {zoo_samples} "
                  "samples (forward only, default grad mode).", "",
                  steady_table(steady_rows, contenders), ""]
    parts.append(f"_Total benchmark wall time: {time.perf_counter() - t0:.1f} s._")
    text = "\n".join(parts) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
