"""Per-call cost of a graph break that stops the trace (a call to a disabled function between two
ops), bytegraph vs torch.compile (both backend "eager"), warm calls in one process, best of the
samples: the function with the stop minus the same ops without it.

    PYTHONPATH=$PWD .venv/bin/python bench/stop_cost.py            # bytegraph only
    PYTHONPATH=$PWD .venv/bin/python bench/stop_cost.py --torch    # and torch.compile
"""
import sys
import time

import torch

torch.set_num_threads(1)
import bytegraph  # noqa: E402


@bytegraph.disable
def ext(t):
    return t


def with_stop(x):
    y = x.sin() * 2
    y = ext(y)
    return y.cos() + 1


def plain(x):
    y = x.sin() * 2
    return y.cos() + 1


def _best(fn, x, n=2000, rounds=15):
    for _ in range(50):
        fn(x)
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn(x)
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def _torch_pair():
    import torch._dynamo

    @torch._dynamo.disable
    def ext_tc(t):
        return t

    def with_stop_tc(x):
        y = x.sin() * 2
        y = ext_tc(y)
        return y.cos() + 1
    return torch.compile(with_stop_tc, backend="eager"), torch.compile(plain, backend="eager")


def main():
    x = torch.randn(16)
    pairs = {"bytegraph": (bytegraph.compile(with_stop, backend="eager"), bytegraph.compile(plain, backend="eager"))}
    if "--torch" in sys.argv:
        pairs["torch.compile"] = _torch_pair()
    res = {}
    for _ in range(3):                      # interleaved rounds
        for name, (stop, base) in pairs.items():
            res.setdefault(name, []).append((_best(stop, x), _best(base, x)))
    for name, samples in res.items():
        stop, base = min(s for s, _ in samples), min(b for _, b in samples)
        print(f"{name}: with stop {stop:.2f} us, without {base:.2f} us, stop cost {stop - base:.2f} us")


if __name__ == "__main__":
    main()
