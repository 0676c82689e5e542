"""Cold start: time from process start to the return of the first compiled call, in fresh processes.

Each sample is a new Python process (`python -c CHILD`) that imports torch and the compiler,
compiles a small function (or a Linear+ReLU module) and calls it once. The parent records the
wall clock just before it spawns the child; the child reports, on its last line, the wall clock
when the first compiled call returned plus its own split (import of torch, import of the
compiler, first call) and which of the heavy modules ended up loaded. Contenders alternate
sample by sample; the figures are medians over `--runs` processes each. Columns: total (process
start to first call return), torch (import torch), import (import of the compiler: 0 for
torch.compile, already part of torch), compile() (the call that wraps the function; torch.compile
imports torch._dynamo there), 1st call (trace + backend + run).

    .venv/bin/python bench/cold_start.py                      # bytegraph vs torch.compile, eager
    .venv/bin/python bench/cold_start.py --inductor           # also backend="inductor"
    .venv/bin/python bench/cold_start.py --repo /work/main    # time another checkout's bytegraph

`--repo` is the directory the children run in (cwd is first on sys.path, so it picks the
bytegraph that is imported). The machine is shared: compare figures taken in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import sys, time, json
t0 = time.time()
import torch
t1 = time.time()
COMPILER, BACKEND, WHAT = sys.argv[1], sys.argv[2], sys.argv[3]
if COMPILER == "bytegraph":
    import bytegraph
    compile_ = bytegraph.compile
else:
    compile_ = torch.compile
t2 = time.time()
torch.manual_seed(0)
if WHAT == "fn":
    def f(x):
        return x.sin() + 1
    target, x = f, torch.randn(8)
else:
    target = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
    x = torch.randn(2, 8)
compiled = compile_(target, backend=BACKEND)
t3 = time.time()
out = compiled(x)
t4 = time.time()
ok = bool(torch.allclose(out, target(x)))
print(json.dumps(dict(t_end=t4, torch=t1 - t0, compiler_import=t2 - t1, wrap=t3 - t2,
                      first_call=t4 - t3,
                      ok=ok, dynamo="torch._dynamo" in sys.modules, sympy="sympy" in sys.modules)))
"""


def one(compiler, backend, what, cwd):
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, compiler, backend, what], cwd=cwd,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{compiler}/{backend}/{what} failed:\n{proc.stderr[-2000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    rec["total"] = rec.pop("t_end") - start
    return rec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per contender (median)")
    ap.add_argument("--repo", default=REPO, help="directory the children run in (which bytegraph)")
    ap.add_argument("--what", default="fn", choices=("fn", "module"),
                    help="fn: x.sin() + 1; module: Linear(8, 8) + ReLU")
    ap.add_argument("--inductor", action="store_true", help='also time backend="inductor"')
    ap.add_argument("--only", default="bytegraph,torch.compile", help="comma list of compilers")
    args = ap.parse_args(argv)

    backends = ["eager"] + (["inductor"] if args.inductor else [])
    contenders = [(c, b) for b in backends for c in args.only.split(",")]
    samples = {c: [] for c in contenders}
    for i in range(args.runs):
        order = contenders[i % len(contenders):] + contenders[:i % len(contenders)]
        for c in order:
            samples[c].append(one(c[0], c[1], args.what, args.repo))

    print(f"cold start, {args.what}, {args.runs} fresh processes each, medians in seconds "
          f"(repo {args.repo}, torch {torch_version()}, python {sys.version.split()[0]}, "
          f"nproc {os.cpu_count()})")
    print(f"{'compiler':14} {'backend':9} {'total':>6} {'torch':>6} {'import':>6} {'compile()':>9} "
          f"{'1st call':>8}  torch._dynamo sympy ok")
    for (compiler, backend), recs in samples.items():
        med = {k: statistics.median(r[k] for r in recs)
               for k in ("total", "torch", "compiler_import", "wrap", "first_call")}
        flags = " ".join("yes" if all(r[k] for r in recs) else ("no" if not any(r[k] for r in recs)
                         else "mixed") for k in ("dynamo", "sympy", "ok"))
        print(f"{compiler:14} {backend:9} {med['total']:6.2f} {med['torch']:6.2f} "
              f"{med['compiler_import']:6.2f} {med['wrap']:9.2f} {med['first_call']:8.2f}  {flags}")


def torch_version():
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                         capture_output=True, text=True)
    return out.stdout.strip()


if __name__ == "__main__":
    main()
