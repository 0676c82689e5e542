"""Graph breaks side by side: bytegraph vs torch.compile (both backend="eager").

1. For about 30 programs of tests/graph_break_programs (every position and kind), the graphs
   each compiler compiles on the first call (a counting backend), the breaks each reports
   (bytegraph.explain / torch._dynamo.explain), whether the compiled result matched eager
   (the acceptance harness's comparison), and the expected count of the acceptance suite.
2. The run-time cost of a graph break: per-call time of a function with one break, and with a
   break inside a 10-iteration loop, minus the per-call time of the same function without the
   break (and minus eager), for both compilers in the same run (interleaved, best of several samples).

Writes bench/results/graph_breaks.md (or --out).

    .venv/bin/python bench/graph_breaks.py [--quick] [--out PATH]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(os.path.dirname(BENCH), "tests"))

from common import (Failed, env_markdown, environment, fmt, log, markdown_table,  # noqa: E402
                    time_calls_ns)

import torch  # noqa: E402
import torch._dynamo  # noqa: E402

import bytegraph  # noqa: E402
import graph_break_programs as G  # noqa: E402

SUBSET = [
    "grid_top__print", "grid_top__item_arith", "grid_top__if_tensor", "grid_top__disabled_tensor",
    "grid_top__numpy", "grid_top__c_function", "grid_for_range__print", "grid_for_list__tolist",
    "grid_for_enumerate__item_if", "grid_for_zip__graph_break", "grid_for_range__item_print",
    "loop_over_list_that_grows", "grid_while_counter__disabled_list",
    "grid_no_grad__print", "grid_enable_grad__item_print", "grid_autocast__graph_break",
    "grid_cm_class__print", "grid_cm_generator__if_bare", "grid_try_body__disabled_raise",
    "grid_except_handler__logging", "grid_finally__tolist", "grid_helper_d1__print",
    "grid_helper_d2__item_arith", "grid_helper_d3__graph_break", "grid_helper_in_loop__print",
    "se_global_list", "se_nonlocal_closure", "id_same_list_twice", "five_kinds",
    "while_tensor_condition", "cm_suppresses_disabled_raise", "ModModuleListPrint",
    "ModDepth2", "ModBufferUpdate",
]


class Counting:
    def __init__(self):
        self.n = 0

    def __call__(self, gm, example_inputs):
        self.n += 1
        return gm.forward


@contextlib.contextmanager
def dynamo_graph_break():
    saved = bytegraph.graph_break
    bytegraph.graph_break = torch._dynamo.graph_break
    try:
        yield
    finally:
        bytegraph.graph_break = saved


def _quiet(fn):
    with warnings.catch_warnings(), contextlib.redirect_stdout(open(os.devnull, "w")):
        warnings.simplefilter("ignore")
        return fn()


def _first_call(prog, compile_fn):
    """(graphs on the first call, correct?) for one compiler."""
    import test_graph_break_programs as H
    env = prog.make()
    env.reset()
    args, kwargs = env.inputs()
    eager = _quiet(lambda: G.run_env(env, env.fn, args, kwargs))
    env.reset()
    env = prog.make()
    env.reset()
    backend = Counting()
    compiled = compile_fn(env.fn, backend)
    args, kwargs = env.inputs()
    got = _quiet(lambda: G.run_env(env, compiled, args, kwargs))
    env.reset()
    try:
        H.assert_same_run(eager, got, "first", 2e-2 if "autocast" in prog.position else 1e-5)
        correct = "yes"
    except AssertionError:
        correct = "NO"
    return backend.n, correct


def _breaks(prog, explain):
    env = prog.make()
    env.reset()
    args, kwargs = env.inputs()
    try:
        out = _quiet(lambda: explain(env.fn)(*args, **kwargs))
        return len(out.break_reasons)
    except Exception as e:  # noqa: BLE001
        return Failed(e)
    finally:
        env.reset()


def program_table():
    progs = {p.name: p for p in G.all_programs()}
    rows = []
    for name in SUBSET:
        prog = progs[name]
        log(f"  {name}")
        r = G.region_counts(prog)
        bytegraph.reset()
        bg_graphs, bg_ok = _first_call(prog, lambda fn, be: bytegraph.compile(fn, backend=be))
        bytegraph.reset()
        bg_breaks = _breaks(prog, bytegraph.explain)
        bytegraph.reset()
        with dynamo_graph_break():
            torch._dynamo.reset()
            tc_graphs, tc_ok = _first_call(prog, lambda fn, be: torch.compile(fn, backend=be))
            torch._dynamo.reset()
            tc_breaks = _breaks(prog, torch._dynamo.explain)
            torch._dynamo.reset()
        rows.append([name, prog.position, prog.kind, prog.expected_graphs, r.split_at_call,
                     bg_graphs, fmt(bg_breaks, "d"), bg_ok, tc_graphs, fmt(tc_breaks, "d"), tc_ok])
    return rows


# ------------------------------------------------------------------------ run-time cost

def make_fns(gb):
    def one_break(x):
        y = x.sin() + 1
        gb()
        return y.cos() * 2

    def no_break(x):
        y = x.sin() + 1
        return y.cos() * 2

    def loop_break(x):
        for i in range(10):
            x = x * 1.01 + 0.1
            gb()
        return x

    def loop_no_break(x):
        for i in range(10):
            x = x * 1.01 + 0.1
        return x
    return {"one_break": one_break, "no_break": no_break, "loop_break": loop_break,
            "loop_no_break": loop_no_break}


def best_per_call_us(callables, args, calls, repeats, warmup=5):
    """Best (minimum) per-call time in us of each callable over `repeats` samples of `calls`
    calls, the callables interleaved round-robin within each repeat (timeit's best-of)."""
    for fn in callables.values():
        for _ in range(warmup):
            fn(*args)
    best = {k: float("inf") for k in callables}
    names = list(callables)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            best[name] = min(best[name], time_calls_ns(callables[name], args, {}, calls) / 1e3)
    return best


def cost_table(calls, samples):
    x = torch.randn(16)
    bg = make_fns(bytegraph.graph_break)
    tc = make_fns(torch._dynamo.graph_break)
    eager = make_fns(lambda: None)
    bytegraph.reset()
    torch._dynamo.reset()
    counts = {}
    callables = {}
    for key in bg:
        b_be, t_be = Counting(), Counting()
        callables[f"eager:{key}"] = eager[key]
        callables[f"bytegraph:{key}"] = bytegraph.compile(bg[key], backend=b_be)
        callables[f"torch.compile:{key}"] = torch.compile(tc[key], backend=t_be)
        counts[key] = (b_be, t_be)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = best_per_call_us(callables, (x,), calls, samples)
    rows = []
    for brk, base in (("one_break", "no_break"), ("loop_break", "loop_no_break")):
        for comp in ("bytegraph", "torch.compile"):
            t_b, t_n, t_e = (times[f"{comp}:{brk}"], times[f"{comp}:{base}"], times[f"eager:{brk}"])
            cnt = counts[brk][0 if comp == "bytegraph" else 1].n
            diff = t_b - t_n if all(isinstance(v, float) for v in (t_b, t_n)) else None
            over = t_b - t_e if all(isinstance(v, float) for v in (t_b, t_e)) else None
            rows.append([brk, comp, cnt, fmt(t_b), fmt(t_n), fmt(t_e), fmt(diff), fmt(over)])
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "graph_breaks.md"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = environment()
    log("programs:")
    prows = program_table()
    log("cost of a break:")
    calls, samples = (200, 5) if args.quick else (500, 15)
    crows = cost_table(calls, samples)
    text = ["# Graph breaks: bytegraph vs torch.compile", "", env_markdown(env), "",
            "## Graphs and breaks on the first call", "",
            "`expected`: the acceptance suite's count (regions between breaks holding tensor work, "
            "inlined calls flattened); `split model`: the count when a callee that breaks splits "
            "its caller at the call (tests/graph_break_programs.py). Breaks: each compiler's "
            "explain(). Correct: the acceptance harness's comparison with eager (outputs, stdout, "
            "state, identity, grads) on the first call.", "",
            markdown_table(["program", "position", "kind", "expected", "split model",
                            "bytegraph graphs", "bytegraph breaks", "bytegraph correct",
                            "torch.compile graphs", "torch.compile breaks", "torch.compile correct"],
                           prows), "",
            "## Run-time cost of a break (us per call, best of the samples)", "",
            f"x = float[16], {calls} calls per sample, best of {samples} samples, interleaved. "
            "`with break - without`: the compiled function minus the same compiled function "
            "without the break; `with break - eager`: minus eager running the same code.", "",
            markdown_table(["function", "compiler", "graphs", "with break", "without break",
                            "eager", "with break - without", "with break - eager"], crows), ""]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
