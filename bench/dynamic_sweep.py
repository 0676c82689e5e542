"""Dynamic-shape sweeps (issue "Dynamic shapes"), bytegraph beside torch.compile in one process.

For each case (3 transformers models from the corpus -- a decoder, an encoder and an
encoder-decoder -- at 8 sequence lengths, and a plain function at 8 batch sizes), and for each
setting dynamic=None (automatic), False and True, it counts the compiles (traces that produced a
cache entry) and the graphs the backend was handed, and checks every output against eager.

    .venv/bin/python bench/dynamic_sweep.py [--backend eager|inductor] [--only gpt2,bert,t5,batch,batchfn]
        [--no-torch] [--out bench/results/dynamic_sweep.md]
    .venv/bin/python bench/dynamic_sweep.py --overhead     # per-call overhead, static vs symbolic
    .venv/bin/python bench/dynamic_sweep.py --backend inductor --isolate --fresh-cache   # fair compile times
    .venv/bin/python bench/dynamic_sweep.py --only gpt2,bert,t5 --settings None --preload-symbolic --repeat 5
        # the dynamic recompile's CPU time, first run in the process and best of 5, compilers taking turns

Compiles are counted from each compiler's own counters: bytegraph.counters["frames"]["ok"],
torch._dynamo's counters["frames"]["ok"]; backend graphs by wrapping the backend.
"""
import argparse
import json
import os
import sys
import time
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "corpus"))
sys.path.insert(0, os.path.dirname(HERE))

import bytegraph  # noqa: E402

SEQS = (5, 8, 11, 16, 23, 32, 45, 64)
BATCHES = (2, 3, 5, 8, 13, 21, 34, 55)


def _hf(model_type, class_name):
    import hf_models as H
    config = H.shrink_config(H.default_config(model_type))
    model = H.build_model(class_name, config, seed=0).eval()
    vocab = H.vocab_of(config)
    return model, vocab


def case_gpt2():
    model, vocab = _hf("gpt2", "GPT2Model")

    def inputs(t):
        g = torch.Generator().manual_seed(t)
        return (), {"input_ids": torch.randint(0, vocab, (2, t), generator=g)}
    return model, inputs, SEQS


def case_bert():
    model, vocab = _hf("bert", "BertModel")

    def inputs(t):
        g = torch.Generator().manual_seed(t)
        return (), {"input_ids": torch.randint(0, vocab, (2, t), generator=g),
                    "attention_mask": torch.ones(2, t, dtype=torch.long)}
    return model, inputs, SEQS


def case_t5():
    model, vocab = _hf("t5", "T5Model")

    def inputs(t):
        g = torch.Generator().manual_seed(t)
        return (), {"input_ids": torch.randint(0, vocab, (2, t), generator=g),
                    "decoder_input_ids": torch.randint(0, vocab, (2, max(t // 2, 2)), generator=g)}
    return model, inputs, SEQS


class Batch(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(16, 32)
        self.b = torch.nn.Linear(32, 8)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.b(h).softmax(-1) * x.shape[0]


def case_batch():
    torch.manual_seed(0)
    model = Batch().eval()

    def inputs(b):
        return (torch.randn(b, 16, generator=torch.Generator().manual_seed(b)),), {}
    return model, inputs, BATCHES


def _batch_fn(x, w, b):
    return torch.nn.functional.gelu(x @ w + b).sum(-1) / x.shape[0]


def case_batchfn():
    w, b = torch.randn(16, 32), torch.randn(32)

    def inputs(n):
        return (torch.randn(n, 16, generator=torch.Generator().manual_seed(n)), w, b), {}
    return _batch_fn, inputs, BATCHES


CASES = {"gpt2": case_gpt2, "bert": case_bert, "t5": case_t5, "batch": case_batch,
         "batchfn": case_batchfn}


def _leaves(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict) or hasattr(out, "to_tuple"):
        out = out.to_tuple() if hasattr(out, "to_tuple") else tuple(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _leaves(o)]
    return []


def _same(a, b):
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(x.shape == y.shape and torch.allclose(x, y, atol=1e-4, rtol=1e-4)
                                      for x, y in zip(la, lb))


def sweep(which, compiler, dynamic, backend, fresh_cache=False):
    if fresh_cache:        # inductor's on-disk caches from earlier runs would favour one side
        import tempfile
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="dynsweep_")
    model, inputs, sizes = CASES[which]()
    graphs = [0]

    def counting(gm, example_inputs):
        graphs[0] += 1
        if backend == "inductor":
            from torch._inductor.compile_fx import compile_fx
            return compile_fx(gm, example_inputs)
        return gm.forward

    if compiler == "bytegraph":
        bytegraph.reset()
        counters = bytegraph.counters
        c = bytegraph.compile(model, backend=counting, dynamic=dynamic)
    else:
        import torch._dynamo as dynamo
        from torch._dynamo.utils import counters
        dynamo.reset()
        counters.clear()
        c = torch.compile(model, backend=counting, dynamic=dynamic)
    ok, t0, times, cpu = True, time.perf_counter(), [], []
    with torch.no_grad():
        for s in sizes:
            args, kwargs = inputs(s)
            expected = model(*args, **kwargs)
            t1, c1 = time.perf_counter(), time.process_time()
            out = c(*args, **kwargs)
            times.append(time.perf_counter() - t1)
            cpu.append(time.process_time() - c1)
            ok &= _same(expected, out)
    # the second call is the first size change: under dynamic=None, the dynamic recompile
    return {"compiles": counters["frames"]["ok"], "graphs": graphs[0], "correct": ok,
            "seconds": time.perf_counter() - t0, "second_call": times[1], "second_cpu": cpu[1]}


def _fresh(fn):
    """A copy of a function (or of a module, with a copy of its class's forward) whose code
    object is its own: each compiler caches entries on the code object, so the static and the
    dynamic variant of one case must not share it."""
    import copy
    import types
    if isinstance(fn, torch.nn.Module):
        cls = type(fn)
        m = copy.copy(fn)
        m.__class__ = type(cls.__name__, (cls,), {"forward": _fresh(cls.forward)})
        return m
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__,
                              fn.__closure__)


def overhead(compilers, rounds=15, n=2000):
    """Per-call overhead above eager (us, eager backend, tiny tensors), static and symbolic, for
    a 1-input function, a 4-input function and an MLP module. Every variant (eager, and each
    compiler static and dynamic) is compiled first, then timed in turns: `rounds` rounds, each
    timing `n` calls of every variant one after the other, so that a change in the machine's
    load hits all of them alike; each variant's time is its best round, in this thread's CPU time
    (time.thread_time: on a shared machine, wall time also counts the time other processes
    held the core)."""
    def f1(x):
        return x * 2 + 1

    def f4(a, b, c, d):
        return a * b + c - d * a.shape[0]
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    cases = [("fn, 1 input", f1, lambda k: (torch.randn(k, 4),)),
             ("fn, 4 inputs", f4, lambda k: tuple(torch.randn(k, 4) for _ in range(4))),
             ("MLP", mlp, lambda k: (torch.randn(k, 8),))]
    rows = []
    for name, fn, make in cases:
        bytegraph.reset()
        if "torch.compile" in compilers:
            import torch._dynamo as dynamo
            dynamo.reset()
        variants = [("eager", fn)]
        with torch.no_grad():
            for comp in compilers:
                for dyn in (False, True):
                    f = _fresh(fn)
                    c = (bytegraph.compile(f, backend="eager", dynamic=dyn) if comp == "bytegraph"
                         else torch.compile(f, backend="eager", dynamic=dyn))
                    for k in (5, 7):           # compiled, and for dynamic a second size served
                        c(*make(k))
                    variants.append((f"{comp} {'dynamic' if dyn else 'static'}", c))
            args = make(5)
            best = {v: float("inf") for v, _ in variants}
            for _ in range(rounds):
                for v, f in variants:
                    t0 = time.thread_time()
                    for _ in range(n):
                        f(*args)
                    best[v] = min(best[v], (time.thread_time() - t0) / n * 1e6)
        over = {v: best[v] - best["eager"] for v in best}
        row = [name, f"{best['eager']:.1f}"] + [f"{over[v]:.2f}" for v, _ in variants[1:]]
        if "bytegraph static" in over and over["bytegraph static"] > 0:
            row.append(f"{over['bytegraph dynamic'] / over['bytegraph static']:.2f}")
        if "torch.compile dynamic" in over:
            row.append(f"{over['bytegraph dynamic'] / over['torch.compile dynamic']:.2f}")
        rows.append(row)
        print(" | ".join(row), flush=True)
    head = ["case", "eager us"] + [f"{c} {'dynamic' if d else 'static'}" for c in compilers for d in (False, True)]
    head.append("bytegraph dynamic / static")
    if "torch.compile" in compilers:
        head.append("bytegraph dynamic / torch.compile dynamic")
    return "\n".join([f"per-call overhead above eager, us of thread CPU time (eager backend; best of "
                      f"{rounds} interleaved rounds of {n} calls)", "",
                      "| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                     ["| " + " | ".join(r) + " |" for r in rows])


def _isolated(which, dynamic, comp, a):
    """The sweep in a fresh interpreter: inductor's in-process kernel caches would otherwise hand
    the second compiler the kernels the first one built."""
    import subprocess
    cmd = [sys.executable, os.path.abspath(__file__), "--one", f"{which},{dynamic},{comp}",
           "--backend", a.backend] + (["--fresh-cache"] if a.fresh_cache else []) + \
          (["--preload-symbolic"] if a.preload_symbolic else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600).stdout
    line = [x for x in out.splitlines() if x.startswith("RESULT ")]
    if not line:
        raise RuntimeError("no result from the subprocess")
    return json.loads(line[-1][len("RESULT "):])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--isolate", action="store_true",
                    help="each sweep in a fresh subprocess (fair inductor compile times)")
    ap.add_argument("--overhead", action="store_true", help="per-call overhead table instead of sweeps")
    ap.add_argument("--backend", default="eager", choices=["eager", "inductor"])
    ap.add_argument("--only", default="gpt2,bert,t5,batch,batchfn")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--settings", default="None,False,True", help="the dynamic= settings to sweep")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each sweep N times, the compilers taking turns; the CPU column then "
                         "also gives the best second call")
    ap.add_argument("--fresh-cache", action="store_true",
                    help="a new TORCHINDUCTOR_CACHE_DIR per sweep (compile times without warm caches)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--preload-symbolic", action="store_true",
                    help="import sympy and torch's ShapeEnv before timing (torch.compile's first "
                         "call loads them; bytegraph's static first call does not)")
    a = ap.parse_args()
    if a.preload_symbolic:
        from torch.fx.experimental.symbolic_shapes import ShapeEnv
        ShapeEnv()
    warnings.simplefilter("ignore")
    rows = []
    compilers = ["bytegraph"] + ([] if a.no_torch else ["torch.compile"])
    if a.overhead:
        text = overhead(compilers)
        print(text)
        if a.out:
            with open(a.out, "a") as f:
                f.write(f"\n## {time.strftime('%Y-%m-%d %H:%M')} `{' '.join(sys.argv[1:])}`\n\n{text}\n")
        return
    if a.one:                       # one sweep, in this (fresh) process: print its result as JSON
        which, dyn, comp = a.one.split(",")
        r = sweep(which, comp, {"None": None, "True": True, "False": False}[dyn], a.backend, a.fresh_cache)
        print("RESULT " + json.dumps(r))
        return
    settings = [{"None": None, "False": False, "True": True}[x] for x in a.settings.split(",")]
    for which in a.only.split(","):
        for dynamic in settings:
            row = [which, str(dynamic)]
            got = {comp: [] for comp in compilers}
            # with --repeat, the compilers take turns (bytegraph, torch.compile, bytegraph, ...):
            # in one process the one-time costs (lazy imports, sympy's caches) fall on whichever
            # traces symbolically first, and load changes hit both alike
            for _ in range(a.repeat):
                for comp in compilers:
                    try:
                        got[comp].append(_isolated(which, dynamic, comp, a) if a.isolate else
                                         sweep(which, comp, dynamic, a.backend, a.fresh_cache))
                    except Exception as e:          # reported, not hidden
                        got[comp].append(f"error: {type(e).__name__}: {str(e)[:80]}")
            best = {}
            for comp in compilers:
                rs = got[comp]
                err = next((r for r in rs if isinstance(r, str)), None)
                if err is not None:
                    row.append(err)
                    continue
                r = rs[0]
                ok = all(x["correct"] for x in rs)
                best[comp] = min(x["second_cpu"] for x in rs)
                cpu = f"{r['second_cpu']:.2f}" + (f" (best {best[comp]:.2f})" if a.repeat > 1 else "")
                row.append(f"{r['compiles']} / {r['graphs']} / {'yes' if ok else 'NO'} / "
                           f"{r['seconds']:.1f} / {r['second_call']:.2f} / {cpu}")
            if a.repeat > 1 and len(best) == 2 and best.get("torch.compile"):
                row.append(f"{best['bytegraph'] / best['torch.compile']:.2f}")
            print(" | ".join(row), flush=True)
            rows.append(row)
    cpu_head = "2nd call CPU s" + (f" (first run; best of {a.repeat})" if a.repeat > 1 else "")
    head = ["case", "dynamic"] + [f"{c}: compiles / graphs / correct / total s / 2nd call s / {cpu_head}"
                                   for c in compilers]
    if a.repeat > 1 and len(compilers) == 2:
        head.append("best 2nd call CPU, bytegraph / torch.compile")
    lines = [f"backend={a.backend}, {len(SEQS)} sequence lengths {SEQS} (batch 2) or {len(BATCHES)} "
             f"batch sizes {BATCHES}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "a") as f:
            f.write(f"\n## {time.strftime('%Y-%m-%d %H:%M')} `{' '.join(sys.argv[1:])}`\n\n{text}\n")


if __name__ == "__main__":
    main()
