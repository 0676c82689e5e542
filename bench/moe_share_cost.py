"""Per-call cost of graphs shared across traces: thread-CPU time per warm call of the
switch_transformers-style MoE of tests/test_breaks13_shared_experts.py (4 layers of 4 experts),
for bytegraph (symbolic graphs shared across traces, or not with `noshare`), torch.compile and
eager, in one process, interleaved rounds, minimum per contender.

    PYTHONPATH=$PWD .venv/bin/python bench/moe_share_cost.py [noshare]
"""
import gc
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import torch
torch.set_num_threads(1)
import bytegraph
import bytegraph.runtime.convert as C
import test_breaks13_shared_experts as T

if "noshare" in sys.argv:
    C.family_key = lambda *a: None
xs = [T._inputs(s) for s in range(4)]
def model():
    torch.manual_seed(0)
    return T.Model()
n = [0]
def counting(gm, ex):
    n[0] += 1
    return gm.forward
fns = {"bytegraph": bytegraph.compile(model(), backend=counting),
       "torch": torch.compile(model(), backend="eager"), "eager": model()}
with torch.no_grad():
    for f in fns.values():
        for _ in range(3):
            for x in xs: f(x)
    traces = bytegraph.counters["frames"]["total"]
    best = {k: float("inf") for k in fns}
    gc.disable()
    for r in range(20):
        for k, f in fns.items():
            t = time.thread_time()
            for _ in range(5):
                for x in xs: f(x)
            best[k] = min(best[k], (time.thread_time() - t) / 20)
    assert bytegraph.counters["frames"]["total"] == traces
print(sys.argv[1:], "graphs", n[0], {k: round(v * 1e3, 3) for k, v in best.items()},
      "bytegraph/torch", round(best["bytegraph"] / best["torch"], 3))
