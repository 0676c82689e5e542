"""Diagnostic (not a benchmark): guard count, kinds and guard-only evaluation time per zoo entry.

    .venv/bin/python bench/guard_cost.py gpt2_lm llama_lm linear

Compiles each entry (backend="eager"), then times its first cache entry's guard
expression alone, evaluated in the entry's namespace on the same inputs: every guard (what a
call pays when the module generation counter moved, docs/call_cost.md) and the entry's own
guard block on the fast path (the guards the counter does not cover, parameters and child
modules read from the entry's cache; with the watched globals/class dicts unchanged, the
guards their version tags cover are skipped too).
"""
import collections
import copy
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import zoo  # noqa: E402

import bytegraph  # noqa: E402


def guard_cost(name, reps=2000):
    entry = zoo.get(name)
    model, make_inputs = entry.build()
    compiled = bytegraph.compile(copy.deepcopy(model), backend="eager", fullgraph=True)
    inputs = make_inputs(0)
    entry.call(compiled, inputs)
    state = compiled.__dict__["_bytegraph_call"].__bytegraph_state__
    guards = state.entries[0].__bytegraph_guards__
    ns = dict(state.entries[0].__globals__)
    exec(f"def __g(mod, *args, **kwargs):\n    return {guards.expression()}\n", ns)
    mod = compiled.__dict__["_orig_mod"]
    if entry.arg_names is not None:
        call = lambda: ns["__g"](mod, **dict(zip(entry.arg_names, inputs)))  # noqa: E731
    else:
        call = lambda: ns["__g"](mod, *inputs)  # noqa: E731
    assert call() is True
    full = _best(call, reps)
    # the entry's guard block alone (fast path once the entry's cache is filled)
    src = state.entries[0].__bytegraph_source__
    lines = src.splitlines()
    cut = next(i for i, line in enumerate(lines) if line.startswith("    except Exception"))
    head = lines[0].replace(lines[0][4:lines[0].index("(")], "__gb", 1)
    exec("\n".join([head] + lines[1:cut] + ["    except Exception:", "        raise",
                                              "    return True"]) + "\n", ns)
    if entry.arg_names is not None:
        block = lambda: ns["__gb"](mod, **dict(zip(entry.arg_names, inputs)))  # noqa: E731
    else:
        block = lambda: ns["__gb"](mod, *inputs)  # noqa: E731
    block()
    fast = _best(block, reps)
    cache = ns.get("_ecache")
    stats = cache.stats if cache is not None else (len(guards), len(guards), 0)
    kinds = collections.Counter(g.kind for g in guards.guards).most_common(6)
    dicts = (f"; with the watched dicts unchanged {stats[3]} guards and {stats[4]} version tags"
             if len(stats) > 3 else "")
    print(f"{name}: {len(guards)} guards, all {full:.1f} us; fast path {stats[1]} guards, "
          f"{stats[2]} cached locals{dicts}, {fast:.1f} us; top kinds: {kinds}")


def _best(fn, reps):
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps * 1e6)
    return best


if __name__ == "__main__":
    torch.set_num_threads(1)
    for n in sys.argv[1:] or ["gpt2_lm", "bert", "linear"]:
        guard_cost(n)
