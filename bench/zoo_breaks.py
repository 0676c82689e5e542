"""The model zoo with graph breaks inserted: bytegraph vs the oracle vs torch.compile.

For every zoo entry (tests/zoo.py) and every variant of tests/zoo_breaks.py (outer: a print, a
logger.info and an .item() branch around the model; inner: the same around one inner layer;
both), runs tests/zoo_breaks.run for bytegraph (eager vs compiled: outputs, stdout with the
log records, buffers, parameter gradients; graphs on the first call, compiles on an identical
second call) and for torch.compile with a counting backend on the same wrapped model, and
prints one row each: correct, graphs bytegraph / expected (the region oracle of
tests/graph_break_programs.py) / torch.compile, breaks. Writes bench/results/zoo_breaks.md
(or --out) with the table, the totals, every wrong result and every graph-count mismatch.

    .venv/bin/python bench/zoo_breaks.py [--variants outer,inner,both] [--entries a,b]
                                         [--family nn|transformers] [--no-torch-compile]
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import sys
import time
import traceback
import warnings

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(os.path.dirname(BENCH), "tests"))

from common import env_markdown, environment, log, markdown_table  # noqa: E402

import zoo  # noqa: E402
import zoo_breaks as Z  # noqa: E402


def _run(entry, variant, compiler, with_oracle):
    t0 = time.perf_counter()
    try:
        r = Z.run(entry, variant, compiler, with_oracle=with_oracle)
    except Exception as e:  # noqa: BLE001 - a harness failure is reported, not fatal
        r = Z.ZooRun(entry.name, variant, compiler)
        r.errors.append(("harness", "".join(traceback.format_exception(e))[-2000:]))
        r.compiled_raised = f"harness: {type(e).__name__}: {e}"
    return r, time.perf_counter() - t0


def _yes(r):
    if not r.errors:
        return "yes"
    return "raised" if r.compiled_raised else "WRONG"


def cause(r):
    """A diagnosis of a bytegraph graph-count mismatch (the grouping key of the report). It reads
    the failed units and the counts; the rules were checked by hand on the runs they name."""
    if r.expected is None:
        return "oracle: no count"
    if r.graphs_second:
        return "the second identical call compiled again"
    if any("PyModule" in u for u in r.failed_units):
        return ("a unit fell back: a module object (`import torch` in transformers' "
                "merge_with_config_defaults wrapper) is live where the trace stops")
    if r.failed_units:
        where = r.failed_units[-1].split("(", 1)[-1].split(")", 1)[0]
        return (f"a unit fell back: no frame of the stop's chain can be resumed ({where}: cell "
                f"variables, i.e. a closure or comprehension over its locals)")
    if r.graphs < r.expected:
        return ("the stop moved out past torch.nn code (the model's own forward, e.g. "
                "nn.Sequential's, is entered through `forward(*args, **kwargs)` from bytegraph's "
                "module entry, so it is not resumed in place); the torch module then runs "
                "uncompiled (the trampoline does not compile torch code)")
    return ("split at a caller's call instead of resuming in place (the call is an "
            "`f(*args, **kwargs)`, CALL_FUNCTION_EX, or sits in a try/finally of the caller, as in "
            "transformers' capture_outputs wrapper): the caller's code after it is one more graph")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default=",".join(Z.VARIANTS))
    ap.add_argument("--entries", default="")
    ap.add_argument("--family", default=None)
    ap.add_argument("--no-torch-compile", action="store_true")
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "zoo_breaks.md"))
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)   # the .item() advice, per run
    env = environment()
    entries = zoo.entries(args.family)
    if args.entries:
        wanted = args.entries.split(",")
        entries = [zoo.get(n) for n in wanted]
    variants = args.variants.split(",")
    rows, results = [], []
    t_start = time.perf_counter()
    for entry in entries:
        for variant in variants:
            bg, t_bg = _run(entry, variant, "bytegraph", True)
            tc = None
            if not args.no_torch_compile:
                tc, _ = _run(entry, variant, "torch.compile", False)
            results.append((entry, bg, tc))
            row = [entry.name, entry.family, variant, bg.layer or "", _yes(bg), bg.graphs,
                   bg.expected if bg.expected is not None else "?",
                   "ok" if bg.graphs_ok else "MISMATCH", bg.graphs_second, bg.breaks,
                   bg.oracle_breaks, bg.fallbacks,
                   tc.graphs if tc else "-", _yes(tc) if tc else "-", tc.breaks if tc else "-",
                   f"{t_bg:.1f}"]
            rows.append(row)
            log(" | ".join(str(c) for c in row))
    total_s = time.perf_counter() - t_start
    headers = ["entry", "family", "variant", "inner layer", "bytegraph correct", "bytegraph graphs",
               "expected", "graph count", "2nd call graphs", "bytegraph break sites",
               "oracle breaks", "fallbacks", "torch.compile graphs", "torch.compile correct",
               "torch.compile breaks", "bytegraph s"]
    report = render(env, headers, rows, results, variants, total_s, not args.no_torch_compile)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(report)
    log(f"\nwrote {args.out}")
    log(report.split("## Table")[0])


def render(env, headers, rows, results, variants, total_s, with_tc):
    n = len(results)
    wrong = [(e, bg) for e, bg, _ in results if bg.errors]
    count_ok = sum(bg.graphs_ok and not bg.errors for _, bg, _ in results)
    mism = [(e, bg) for e, bg, _ in results if not bg.graphs_ok]
    lines = ["# Model zoo with graph breaks (issue 7 acceptance)", "", env_markdown(env), "",
             f"Variants: {', '.join(variants)}; entries: {n // max(len(variants), 1)}; "
             f"runs: {n}; wall time {total_s:.0f} s.", "",
             "Each run: the model with a `print`, a `logger.info` and an `.item()` branch "
             "inserted (tests/zoo_breaks.py), eager vs bytegraph (`backend` = a counting eager "
             "backend), three calls (seed 0, seed 0 again, seed 1): outputs, stdout with log "
             "records, buffers, parameter gradients. *expected* is the region oracle of "
             "tests/graph_break_programs.py (`flat`) on the same wrapped model, on the path the "
             "compiled program takes (`torch.compiler.is_compiling()` answering True). *graph "
             "count* is ok when the first call compiles exactly *expected* graphs and the "
             "identical second call compiles none. torch.compile runs the same wrapped model "
             "with a counting backend (its correctness is compared the same way).", "",
             "## Totals", "",
             f"- bytegraph correct: {n - len(wrong)}/{n} (wrong or raised: {len(wrong)})",
             f"- bytegraph graph count as expected: {count_ok}/{n} (mismatches: {len(mism)})"]
    for v in variants:
        vr = [bg for _, bg, _ in results if bg.variant == v]
        lines.append(f"  - {v}: correct {sum(not b.errors for b in vr)}/{len(vr)}, graph count "
                     f"ok {sum(b.graphs_ok for b in vr)}/{len(vr)}")
    if with_tc:
        tcs = [(bg, tc) for _, bg, tc in results if tc is not None]
        tc_ok = sum(not tc.errors for _, tc in tcs)
        tc_graphs = sum(tc.graphs for _, tc in tcs if tc.graphs >= 0)
        bg_graphs = sum(bg.graphs for bg, _ in tcs if bg.graphs >= 0)
        fewer = sum(bg.graphs < tc.graphs for bg, tc in tcs)
        same = sum(bg.graphs == tc.graphs for bg, tc in tcs)
        more = sum(bg.graphs > tc.graphs for bg, tc in tcs)
        tc_exp = sum(tc.graphs == bg.expected for bg, tc in tcs)
        lines += [f"- torch.compile correct: {tc_ok}/{len(tcs)}",
                  f"- graphs, all runs: bytegraph {bg_graphs}, torch.compile {tc_graphs}, "
                  f"expected {sum(bg.expected or 0 for bg, _ in tcs)}",
                  f"- per run, bytegraph vs torch.compile: fewer graphs {fewer}, same {same}, "
                  f"more {more}; torch.compile equal to expected: {tc_exp}/{len(tcs)}"]
    diverge = sorted({bg.entry for _, bg, _ in results
                      if bg.eager_breaks is not None and bg.eager_breaks != bg.oracle_breaks})
    lines.append(f"- transformers entries whose eager path executes a break the compiled path "
                 f"skips (`is_compiling()` checks, e.g. `padding_mask.all()` in masking_utils): "
                 f"{', '.join(diverge) or 'none'}")
    lines += ["", "## Wrong results", ""]
    if not wrong:
        lines.append("None.")
    for e, bg in wrong:
        lines.append(f"- **{e.name} [{bg.variant}]** (layer {bg.layer}):")
        for what, detail in bg.errors:
            lines.append(f"  - {what}: `{detail.splitlines()[0][:300] if detail else ''}`")
    lines += ["", "## Graph-count mismatches, by cause", ""]
    groups = collections.defaultdict(list)
    for e, bg in mism:
        groups[cause(bg)].append(bg)
    for c, rs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"- {c} ({len(rs)}): " + ", ".join(
            f"{r.entry}[{r.variant}] {r.graphs}/{r.expected}" for r in rs))
    if not groups:
        lines.append("None.")
    lines += ["", "## Table", "", markdown_table(headers, rows), ""]
    lines += ["## Break sites and fallbacks of the mismatches", ""]
    for e, bg in mism:
        lines.append(f"- {bg.entry}[{bg.variant}] layer={bg.layer}: graphs {bg.graphs}, expected "
                     f"{bg.expected}; sites: {'; '.join(bg.break_sites) or '-'}; fell back: "
                     f"{'; '.join(bg.failed_units) or '-'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
