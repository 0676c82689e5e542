"""First-call cost of a loop whose body has a graph break, bytegraph vs torch.compile.

Each (contender, iterations) runs in a fresh process with empty inductor caches: compile `f`, call it once (timed: trace +
backend compiles + run), count backend compiles, check the result against eager, then time a
steady call. The break is the compiler's own `graph_break()` (bytegraph.graph_break /
torch._dynamo.graph_break). Usage:

    .venv/bin/python bench/loop_breaks.py [--iters 10,100] [--backend inductor]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r'''
import json, sys, time
import torch
torch.set_num_threads(1)
contender, n, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if contender == "bytegraph":
    import bytegraph
    brk, compile_ = bytegraph.graph_break, bytegraph.compile
else:
    import torch._dynamo
    brk, compile_ = torch._dynamo.graph_break, torch.compile
compiles = [0]
def counting(gm, example_inputs):
    compiles[0] += 1
    if backend == "eager":
        return gm.forward
    from torch._inductor import compile_fx
    return compile_fx.compile_fx(gm, example_inputs)
def f(x):
    for i in range(N):
        x = torch.sin(x) * 2 + 1
        brk()
        x = torch.cos(x) - 1
    return x
N = n
x = torch.randn(64)
c = compile_(f, backend=counting)
t0 = time.perf_counter()
got = c(x)
first = time.perf_counter() - t0
ok = bool(torch.allclose(got, f(x)))
t0 = time.perf_counter()
for _ in range(20):
    c(x)
steady = (time.perf_counter() - t0) / 20
print("RESULT" + json.dumps(dict(first_s=first, steady_s=steady, compiles=compiles[0], ok=ok)))
'''


def run(contender, n, backend):
    with tempfile.TemporaryDirectory() as cache:         # inductor's caches start empty
        p = subprocess.run([sys.executable, "-c", CHILD, contender, str(n), backend], capture_output=True,
                           text=True, cwd=ROOT, timeout=1800,
                           env=dict(os.environ, PYTHONPATH=ROOT, TORCHINDUCTOR_CACHE_DIR=cache))
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")]
    if not lines:
        return {"error": p.stderr[-500:]}
    return json.loads(lines[-1][len("RESULT"):])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", default="10,100")
    ap.add_argument("--backend", default="inductor", choices=["inductor", "eager"])
    args = ap.parse_args()
    print(f"| iterations | contender | backend compiles | first call s | steady call ms | correct |")
    print("|---:|---|---:|---:|---:|---|")
    for n in [int(s) for s in args.iters.split(",")]:
        for contender in ("bytegraph", "torch.compile"):
            r = run(contender, n, args.backend)
            if "error" in r:
                print(f"| {n} | {contender} | error: {r['error'][-200:]!r} | | | |")
                continue
            print(f"| {n} | {contender} | {r['compiles']} | {r['first_s']:.2f} | {r['steady_s'] * 1e3:.2f} | "
                  f"{r['ok']} |", flush=True)


if __name__ == "__main__":
    main()
