"""Warm start: first-call time of a cold process vs a warm one (runtime/warm.py), in subprocesses.

For each case (a few zoo models from tests/zoo.py and eval pairs of the corpus CI sample,
bench/corpus) and each contender, two fresh processes run one after the other with the same
cache directories: *cold* (empty caches) and *warm* (the caches the cold one left). Each child
builds the model (seeded), compiles it, and times the first compiled call only (trace + backend
+ run; model building and imports are outside the figure -- torch.compile(model) imports
torch._dynamo and inductor in that untimed call, so the bytegraph/inductor child imports them
before its timer too), checks it against eager, and reports
bytegraph's counters. Before the compiled call each child times the model's own eager first
and second call (the eager first call is the reference output): a compiled first call cannot
cost less than the eager run it contains, so "floor" (eager 2nd call / cold) is the lowest
warm/cold any warm start can reach on that case. Contenders:

- `bytegraph/eager`, `bytegraph/inductor`: bytegraph.config.cache_dir set (and, for inductor,
  TORCHINDUCTOR_CACHE_DIR: inductor's own FX-graph/AOT caches make the backend step cheap);
- `torch.compile/inductor`: torch.compile with its default caches, TORCHINDUCTOR_CACHE_DIR set.

    .venv/bin/python bench/warm_start.py                    # all cases, all contenders
    .venv/bin/python bench/warm_start.py --cases linear,bert --corpus 0 --contenders bytegraph/eager
    .venv/bin/python bench/warm_start.py --cases none --corpus 2      # corpus eval pairs only

A bytegraph/inductor warm process normally rebuilds its graphs from the artifacts the cold one
stored (docs/warm_start.md, "Inductor: the stored artifact"): its warm counters show
`inductor_artifact` and the inductor-caches column "-" (inductor's caches not consulted).

Each child runs torch with one intra-op thread (`--threads`): on a shared machine a contended
thread pool makes a single call vary by 100x. The "inductor caches" column shows inductor's FX
graph cache and AOT autograd cache outcomes in the warm process.

The machine is shared: compare figures of one run only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ZOO_CASES = ["linear", "mlp_sequential", "cnn_sequential", "transformer_encoder_layer", "bert", "llama_lm"]
CORPUS_CASES = 3          # eval pairs taken from the corpus CI sample (first N, sorted)
CONTENDERS = ["bytegraph/eager", "bytegraph/inductor", "torch.compile/inductor"]

CHILD = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
sys.path.insert(0, os.path.join(spec["repo"], "tests"))
sys.path.insert(0, os.path.join(spec["repo"], "bench", "corpus"))
import torch
torch.set_num_threads(spec["threads"])
import bytegraph
compiler, backend = spec["contender"].split("/")
if compiler == "bytegraph":
    bytegraph.config.cache_dir = spec["cache_dir"]
    if backend == "inductor":     # imports stay outside the figure: torch.compile(...) makes its own
        import torch._dynamo, torch._inductor.compile_fx   # noqa: E401,F401  (in the untimed call)
kind, name = spec["case"].split(":", 1)
if kind == "zoo":
    import zoo
    entry = zoo.get(name)
    model, make_inputs = entry.build()
    inputs = make_inputs(0)
    model.eval()
    call = lambda m: entry.call(m, inputs)
    flat = lambda out: zoo.float_leaves(out)
else:
    import cases
    name, config = name.rsplit(":", 1)
    models = cases.load_models(os.path.join(spec["repo"], cases.MODELS_JSON))
    entry = next(e for e in models["kept"] if e["name"] == name)
    built = cases.build(name, entry)
    model = built.model.eval()
    call = lambda m: m(**built.inputs)
    flat = lambda out: [t for t in cases.flatten(out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
with torch.no_grad():
    t0 = time.perf_counter()
    expected = call(model)          # eager's own first call in this fresh process
    eager_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    call(model)                     # and its second: what any compiled call at least costs here
    eager_second = time.perf_counter() - t0
    compiled = (bytegraph.compile if compiler == "bytegraph" else torch.compile)(model, backend=backend)
    t0 = time.perf_counter()
    got = call(compiled)
    first = time.perf_counter() - t0
ok = all(torch.allclose(a, b, atol=1e-4, rtol=1e-4) for a, b in zip(flat(expected), flat(got)))
fx = {}
if "torch._dynamo.utils" in sys.modules:
    c = sys.modules["torch._dynamo.utils"].counters
    fx = {k: v for k, v in {**c["inductor"], **c["aot_autograd"]}.items() if "cache" in k}
print("RESULT" + json.dumps(dict(first=first, ok=ok, eager_first=eager_first, eager_second=eager_second, warm=dict(bytegraph.counters["warm"]),
                                 frames=dict(bytegraph.counters["frames"]), fx=fx)))
"""


def corpus_cases(n):
    sys.path.insert(0, os.path.join(REPO, "bench", "corpus"))
    import cases
    sample = cases.ci_sample(cases.load_models(os.path.join(REPO, cases.MODELS_JSON)))
    return [f"corpus:{name}:{config}" for name, config, _ in sample if config == "eval"][:n]


def run_child(case, contender, cache_dir, inductor_dir, threads):
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=inductor_dir, PYTHONPATH=REPO)
    env.pop("BYTEGRAPH_CACHE_DIR", None)
    spec = dict(repo=REPO, case=case, contender=contender, cache_dir=cache_dir, threads=threads)
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=1800)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")]
    if p.returncode != 0 or not lines:
        return {"error": (p.stderr or p.stdout)[-400:]}
    return json.loads(lines[-1][len("RESULT"):])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=None, help="comma-separated zoo names ('none': no zoo case)")
    ap.add_argument("--corpus", type=int, default=CORPUS_CASES, help="corpus eval pairs to add")
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--json", default=None, help="write the rows here")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads in each child (1: steadier on a shared machine)")
    args = ap.parse_args(argv)
    zoo_names = ZOO_CASES if args.cases is None else [c for c in args.cases.split(",") if c and c.lower() != "none"]
    case_list = [c if ":" in c else f"zoo:{c}" for c in zoo_names] + corpus_cases(args.corpus)
    contenders = args.contenders.split(",")
    rows = []
    for case in case_list:
        for contender in contenders:
            tmp = tempfile.mkdtemp(prefix="bg_warm_")
            try:
                cache, ind = os.path.join(tmp, "bytegraph"), os.path.join(tmp, "inductor")
                cold = run_child(case, contender, cache, ind, args.threads)
                warm = run_child(case, contender, cache, ind, args.threads)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            row = dict(case=case, contender=contender, cold=cold, warm=warm)
            rows.append(row)
            print(_line(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print()
    print(markdown(rows))


def _line(row):
    c, w = row["cold"], row["warm"]
    if "error" in c or "error" in w:
        return f"{row['case']:45s} {row['contender']:24s} ERROR {c.get('error') or w.get('error')}"
    return (f"{row['case']:45s} {row['contender']:24s} cold {c['first'] * 1e3:9.1f} ms  warm "
            f"{w['first'] * 1e3:9.1f} ms  ({100 * w['first'] / c['first']:5.1f}%)  ok {c['ok']}/{w['ok']}  "
            f"eager 1st/2nd {w['eager_first'] * 1e3:.1f}/{w['eager_second'] * 1e3:.1f} ms  "
            f"warm counters {w['warm']} traces {w['frames'].get('total', 0)} inductor caches {_fx(w)}")


def _fx(res):
    """Inductor's FX graph / AOT autograd cache outcomes in a process ("-" when inductor did not run)."""
    fx = res.get("fx") or {}
    short = {"fxgraph_cache_hit": "fx hit", "fxgraph_cache_miss": "fx miss", "fxgraph_cache_bypass": "fx bypass",
             "autograd_cache_hit": "aot hit", "autograd_cache_miss": "aot miss",
             "autograd_cache_bypass": "aot bypass"}
    return ", ".join(f"{short[k]} {fx[k]}" for k in short if fx.get(k)) or "-"


def markdown(rows):
    out = ["| case | contender | cold first call (ms) | warm first call (ms) | warm/cold | correct (cold/warm) "
           "| eager 1st / 2nd call (ms, warm process) | floor: eager 2nd/cold | warm traces | inductor caches (warm) |",
           "|---|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for r in rows:
        c, w = r["cold"], r["warm"]
        if "error" in c or "error" in w:
            out.append(f"| {r['case']} | {r['contender']} | error | error | - | - | - | - | - | - |")
            continue
        traces = w["frames"].get("total", 0) if r["contender"].startswith("bytegraph") else "-"
        out.append(f"| {r['case']} | {r['contender']} | {c['first'] * 1e3:.1f} | {w['first'] * 1e3:.1f} | "
                   f"{100 * w['first'] / c['first']:.1f}% | {c['ok']}/{w['ok']} | "
                   f"{w['eager_first'] * 1e3:.1f} / {w['eager_second'] * 1e3:.1f} | "
                   f"{100 * w['eager_second'] / c['first']:.1f}% | {traces} | {_fx(w)} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
