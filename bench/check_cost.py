"""Per-call cost of two session-13 capture features, bytegraph vs torch.compile (both backend
"eager") vs eager, warm calls in one process, interleaved rounds, minimum per contender:

- `check`: `assert x.isnan().sum() == 0, "nan"` between two ops. bytegraph keeps the check in
  its one graph (a `check_tensor` node); torch.compile stops at the assert (two graphs and the
  `bool()` in Python).
- `read`: `F.interpolate(x, size=(int(n), 8))` style -- a size the graph computes, read in Python
  (bytegraph: a read stop whose resume function guards the value; torch.compile: a graph break
  at the `.item()`-like read).
- `plain`: the same ops with neither, for the base cost.

    PYTHONPATH=$PWD .venv/bin/python bench/check_cost.py
"""
import gc
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
import bytegraph  # noqa: E402


def plain(x):
    y = x.sin() * 2
    return y.cos() + 1


def check(x):
    y = x.sin() * 2
    assert y.isnan().sum() == 0, "nan in y"
    return y.cos() + 1


def read(x):
    n = (x.abs() > -1).sum(dim=-1)[0, 0] // 4          # always x.shape[-1] // 4: a graph value
    y = F.interpolate(x.sin(), size=(n,), mode="nearest")
    return y.cos() + 1


def main():
    x = torch.randn(1, 4, 32)
    progs = {"plain": plain, "check": check, "read": read}
    rows = []
    for pname, fn in progs.items():
        graphs = {"bytegraph": [0], "torch": [0]}

        def counting(key):
            def be(gm, ex):
                graphs[key][0] += 1
                return gm.forward
            return be
        fns = {"bytegraph": bytegraph.compile(fn, backend=counting("bytegraph")),
               "torch": torch.compile(fn, backend=counting("torch")), "eager": fn}
        for f in fns.values():
            for _ in range(5):
                torch.testing.assert_close(f(x), fn(x))
        best = {k: float("inf") for k in fns}
        gc.disable()
        for _ in range(15):
            for k, f in fns.items():
                t = time.thread_time()
                for _ in range(300):
                    f(x)
                best[k] = min(best[k], (time.thread_time() - t) / 300)
        gc.enable()
        rows.append((pname, graphs["bytegraph"][0], graphs["torch"][0],
                     *(best[k] * 1e6 for k in ("bytegraph", "torch", "eager"))))
    print("| program | graphs bytegraph | graphs torch.compile | bytegraph us | torch.compile us | eager us |"
          " bytegraph - eager | torch.compile - eager |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for p, gb, gt, b, t, e in rows:
        print(f"| {p} | {gb} | {gt} | {b:.1f} | {t:.1f} | {e:.1f} | {b - e:.1f} | {t - e:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
