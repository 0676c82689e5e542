"""Diagnostic: per-call overhead above eager of bench_core.py's tiny functions (f1, f4, f16),
in thread CPU time, for bytegraph and (with `tc`) torch.compile in one process.

Thread time is less disturbed than wall time on a loaded machine (bench_core.py's wall-clock
medians moved 0.02-0.25 for f16 between runs at load 8-10). Each contender: 61 rounds of 400
calls, interleaved, GC off; the minimum per contender; overhead = minimum - eager's minimum.

    PYTHONPATH=$PWD .venv/bin/python bench/tiny_overhead.py LABEL [tc]
"""
import gc
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import f1, f4, f16  # noqa: E402

import bytegraph  # noqa: E402


def main(argv):
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    out = []
    for name, fn, n in (("f1", f1, 1), ("f4", f4, 4), ("f16", f16, 16)):
        args = tuple(torch.randn(2, generator=g) for _ in range(n))
        c = bytegraph.compile(fn, backend="eager", fullgraph=True)
        tc = torch.compile(fn, backend="eager", fullgraph=True) if "tc" in argv else None
        for _ in range(3):
            c(*args)
            if tc:
                tc(*args)
        cases = {"eager": fn, "bg": c}
        if tc:
            cases["tc"] = tc
        res = {k: [] for k in cases}
        gc.disable()
        for _ in range(61):
            for k, f in cases.items():
                t0 = time.thread_time_ns()
                for _ in range(400):
                    f(*args)
                res[k].append((time.thread_time_ns() - t0) / 400 / 1e3)
        gc.enable()
        e = min(res["eager"])
        s = f"{name}: eager {e:.2f} bg +{min(res['bg']) - e:.2f}"
        if tc:
            s += (f" tc +{min(res['tc']) - e:.2f} ratio "
                  f"{(min(res['bg']) - e) / (min(res['tc']) - e):.3f}")
        out.append(s)
    print(argv[0] if argv else "", " | ".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
