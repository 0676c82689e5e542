"""Export over the model zoo: bytegraph.export beside torch.export.export, same models, same inputs.

For every zoo entry (tests/zoo.py): export with the entry's first inputs, then call the result on
two input seeds and compare with eager (the entry's tolerances). Both exporters first export a
Linear layer once, so neither entry time includes one-time imports. Reports, per compiler: how many
entries export, how many of those match eager, and the export time (wall seconds, median over the
entries both export). torch.export's result is called through `.module()`.

    .venv/bin/python bench/export_zoo.py [--only NAME,NAME] [--out bench/results/export_zoo.md]
"""
import argparse
import copy
import os
import statistics
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import bytegraph  # noqa: E402
import zoo  # noqa: E402
from common import env_markdown, environment, markdown_table  # noqa: E402
from differential import assert_same  # noqa: E402


def _call_args(entry, inputs):
    if entry.arg_names is not None:
        return (), dict(zip(entry.arg_names, inputs))
    return tuple(inputs), {}


def _bytegraph(model, args, kwargs):
    return bytegraph.export(model)(*args, **kwargs).graph_module


def _torch(model, args, kwargs):
    return torch.export.export(model, args, kwargs).module()


def run_one(entry, exporter):
    model, make_inputs = entry.build()
    args, kwargs = _call_args(entry, make_inputs(0))
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = exporter(copy.deepcopy(model), args, kwargs)
    except Exception as e:  # noqa: BLE001 - a refusal is a measured outcome
        return {"exported": False, "why": f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"}
    seconds = time.perf_counter() - t0
    try:
        for seed in (0, 1):
            inputs = make_inputs(seed)
            a, k = _call_args(entry, inputs)
            assert_same(entry.call(model, inputs), exported(*a, **k), entry.atol, entry.rtol,
                        path=entry.name)
        match, why = True, ""
    except Exception as e:  # noqa: BLE001
        match, why = False, f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    return {"exported": True, "match": match, "seconds": seconds, "why": why}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "export_zoo.md"))
    a = ap.parse_args()
    only = {n for n in a.only.split(",") if n}
    entries = [e for e in zoo.entries() if not only or e.name in only]
    torch.set_num_threads(1)
    warm = torch.nn.Linear(2, 2)                 # pay each exporter's one-time imports first
    for exporter in (_bytegraph, _torch):
        exporter(warm, (torch.randn(1, 2),), {})
    rows = {}
    for e in entries:
        rows[e.name] = {"bytegraph": run_one(e, _bytegraph), "torch.export": run_one(e, _torch)}
        r = rows[e.name]
        print(e.name, {k: (v["exported"], v.get("match"), round(v.get("seconds", 0), 2)) for k, v in r.items()},
              flush=True)
    summary = []
    both = [n for n, r in rows.items() if r["bytegraph"].get("match") and r["torch.export"].get("match")]
    for c in ("bytegraph", "torch.export"):
        exp = [n for n, r in rows.items() if r[c]["exported"]]
        match = [n for n in exp if rows[n][c]["match"]]
        med = statistics.median(rows[n][c]["seconds"] for n in both) if both else float("nan")
        total = sum(rows[n][c]["seconds"] for n in both)
        summary.append([c, f"{len(exp)}/{len(rows)}", f"{len(match)}/{len(rows)}", f"{med:.3f}", f"{total:.1f}"])
    lines = ["# Export over the model zoo: bytegraph.export vs torch.export.export", "",
             env_markdown(environment()), "",
             markdown_table(["exporter", "exports", "matches eager", "median export s (both match)",
                             f"total export s ({len(both)} both match)"], summary), "",
             "## Entries where either exporter fails or mismatches", ""]
    bad = [[n, r["bytegraph"].get("why") or "ok", r["torch.export"].get("why") or "ok"]
           for n, r in rows.items()
           if not (r["bytegraph"].get("match") and r["torch.export"].get("match"))]
    lines.append(markdown_table(["entry", "bytegraph", "torch.export"], bad) if bad else "(none)")
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[:8]))


if __name__ == "__main__":
    main()
