"""Threads stress test (a script, not a timed test): T threads call F compiled functions with
varying shapes for D seconds, each result checked against eager on the same thread.

Pass criteria (docs/reliability.md): zero errors, zero wrong results, and for every function
the number of compiles equals the number of distinct guard sets it saw (here: distinct shapes,
each a new cache entry; no compile is repeated, none is lost).

    .venv/bin/python bench/threads.py                          # 8 threads x 4 functions, 60 s
    .venv/bin/python bench/threads.py --seconds 10 --backend aten
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import bytegraph  # noqa: E402


def make(i):
    def fn(x, y):
        z = torch.tanh(x * (i + 1)) + y.sin()
        return z.sum(-1, keepdim=True) * z if i % 2 else z @ z.transpose(-1, -2)
    fn.__name__ = fn.__qualname__ = f"fn{i}"
    return fn


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--functions", type=int, default=4)
    p.add_argument("--shapes", type=int, default=6, help="distinct shapes per function (<= cache_size_limit)")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--backend", default="eager")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    fns = [make(i) for i in range(args.functions)]
    backend_calls = [0] * args.functions
    count_lock = threading.Lock()

    def counting(i):
        from bytegraph.backends.registry import lookup_backend
        inner, _ = lookup_backend(args.backend)

        def backend(gm, example_inputs):
            with count_lock:
                backend_calls[i] += 1
            return inner(gm, example_inputs)
        return backend
    compiled = [bytegraph.compile(f, backend=counting(i)) for i, f in enumerate(fns)]
    shapes = [(2 + s, 3 + s % 3) for s in range(args.shapes)]
    seen = [set() for _ in fns]
    errors, wrong, calls = [], [], [0] * args.threads
    stop = time.monotonic() + args.seconds
    barrier = threading.Barrier(args.threads)

    def worker(k):
        rng = random.Random(k)
        barrier.wait()
        while time.monotonic() < stop:
            i = rng.randrange(len(fns))
            shape = shapes[rng.randrange(len(shapes))]
            seen[i].add(shape)
            x, y = torch.randn(shape), torch.randn(shape)
            try:
                got = compiled[i](x, y)
                want = fns[i](x, y)
                if not torch.allclose(got, want, atol=1e-5, rtol=1e-4):
                    wrong.append((i, shape))
            except Exception as e:      # noqa: BLE001 -- counted and reported
                errors.append(f"{type(e).__name__}: {e}")
            calls[k] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    ok = not errors and not wrong
    print(f"{args.threads} threads x {args.functions} functions x {args.shapes} shapes, backend "
          f"{args.backend!r}: {sum(calls)} calls in {took:.1f} s; errors {len(errors)}, wrong "
          f"results {len(wrong)}")
    for i, c in enumerate(compiled):
        st = c.__bytegraph_state__
        line = (f"  fn{i}: distinct guard sets (shapes) seen {len(seen[i])}, compiles "
                f"{st.compiles}, backend calls {backend_calls[i]}, cache entries {len(st.entries)}")
        print(line)
        ok &= st.compiles == backend_calls[i] == len(seen[i]) == len(st.entries)
    print(f"  counters: frames {dict(bytegraph.counters['frames'])}, fallback "
          f"{dict(bytegraph.counters['fallback'])}, recompiles {bytegraph.counters['recompiles']['total']}")
    for e in errors[:5]:
        print("  error:", e)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
