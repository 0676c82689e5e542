"""Diagnostic: what an entry's rerun machinery (runtime/rerun.py) costs per call on the way that
does not raise, in thread CPU time above eager, for bytegraph and torch.compile in one process:
`dropout` (a random draw in training: the entry snapshots the CPU generator before its graph),
`plain` (no draw: only the `try`). Each contender 41 rounds of 400 calls, interleaved, GC off;
the minimum per contender. Run it for two checkouts one after the other to compare.

    PYTHONPATH=$PWD .venv/bin/python bench/rerun_cost.py LABEL
"""
import gc
import sys
import time

import torch
import torch.nn.functional as F

import bytegraph


def dropout(x):
    return F.dropout(x, 0.1, training=True) + 1


def plain(x):
    return x * 2 + 1


def main(label):
    torch.set_num_threads(1)
    x = torch.randn(8)
    out = []
    for fn in (dropout, plain):
        c = bytegraph.compile(fn, backend="eager", fullgraph=True)
        tc = torch.compile(fn, backend="eager", fullgraph=True)
        for _ in range(3):
            c(x)
            tc(x)
        cases = {"eager": fn, "bg": c, "tc": tc}
        res = {k: [] for k in cases}
        gc.disable()
        for _ in range(41):
            for k, h in cases.items():
                t0 = time.thread_time()
                for _ in range(400):
                    h(x)
                res[k].append((time.thread_time() - t0) / 400 * 1e6)
        gc.enable()
        m = {k: min(v) for k, v in res.items()}
        out.append(f"{fn.__name__}: eager {m['eager']:.2f} bg +{m['bg'] - m['eager']:.2f} "
                   f"tc +{m['tc'] - m['eager']:.2f} us")
    print(label, " | ".join(out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
