"""Corpus worker: runs jobs in a child process and answers one JSON line per job.

Responsible for executing single jobs, isolated from the runner (bench/corpus/run.py),
which restarts this process after a crash or a timeout:

  * {"op": "enumerate", "name": "hf/llama"} -> which class/inputs/configs of that
    model build and run eagerly (deterministically, within the time limit), or why not.
  * {"op": "run", "name": ..., "entry": {...}, "config": "eval", "compiler": "bytegraph"}
    -> one corpus row: correct vs eager on a fresh copy, graphs, ops, first-call and
    steady times, graph-break reasons and compiler warnings, and (probe_* fields) how
    many of the compiled call's aten ops ran inside compiled graphs on a steady call.

Protocol: jobs on stdin, results on the original stdout; everything the models print
goes to stderr. Uses one thread (the machine is shared).
"""
from __future__ import annotations

import collections
import json
import os
import statistics
import sys
import time
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if not os.environ.get("PYTHONPATH"):  # this checkout's bytegraph, unless PYTHONPATH picks another
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch._subclasses.fake_tensor import FakeTensor  # noqa: E402
import torch.utils._pytree as pytree  # noqa: E402

import cases  # noqa: E402

EAGER_LIMIT_S = 5.0  # build + first eager forward of a kept model
STEADY_CALLS = {"eval": 5, "train": 3, "cache": 3, "generate": 3}


def one_line(exc):
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg[:300]}"


# ----------------------------------------------------------------------------- compilers

class Probe:
    """Where a compiled call's aten ops run. `depth`: nesting of calls of the compiled object
    (`Probed`); `graph_depth`: nesting of compiled graphs running (the callables CountingBackend
    returns). While `counting`, every top-level compiled call runs under an OpCounter, which
    files each aten op as inside a graph or outside (Python code of the compiled function
    that ran eagerly: the code at a graph break, or the whole function when it fell back)."""

    def __init__(self):
        self.depth = 0
        self.graph_depth = 0
        self.graph_calls = 0        # graph executions, any time
        self.counting = False
        self.inside = 0
        self.outside = 0
        self.outside_ops = collections.Counter()
        self.calls = []             # per top-level compiled call: (graphs compiled, graphs executed)
        self.backend = None

    def start(self):
        self.inside = self.outside = 0
        self.outside_ops.clear()
        self.calls = []


class OpCounter(TorchDispatchMode):
    """Counts aten ops (below autograd, after CompositeImplicit decompositions) into a Probe."""

    def __init__(self, probe):
        super().__init__()
        self.probe = probe

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        p = self.probe
        if any(isinstance(t, FakeTensor) for t in pytree.tree_leaves((args, kwargs))):
            # a compiler's trace-time work on fake tensors (a recompile during the probe), not
            # an op of the user's program
            return func(*args, **(kwargs or {}))
        if p.graph_depth:
            p.inside += 1
        else:
            p.outside += 1
            p.outside_ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


class Probed:
    """The compiled object as the configuration calls it: counts top-level calls into the Probe
    and, while it counts, runs them under an OpCounter. Attribute reads go to the compiled object
    and `__wrapped__` is set, so inspect.signature (used by transformers' generate on
    `self.forward`) sees the original parameters."""

    def __init__(self, fn, probe):
        self.__dict__.update(__wrapped__=fn, _probe=probe)

    def __getattr__(self, name):
        return getattr(self.__wrapped__, name)

    def __call__(self, *args, **kwargs):
        p = self._probe
        if p.depth:
            return self.__wrapped__(*args, **kwargs)
        graphs, executed = p.backend.graphs, p.graph_calls
        p.depth += 1
        try:
            if p.counting:
                with OpCounter(p):
                    return self.__wrapped__(*args, **kwargs)
            return self.__wrapped__(*args, **kwargs)
        finally:
            p.depth -= 1
            p.calls.append((p.backend.graphs - graphs, p.graph_calls - executed))


class CountingBackend:
    """A backend that counts graphs and their ops and runs each graph as captured
    (`gm.forward`), marking in its Probe that a compiled graph is running."""

    def __init__(self, probe=None):
        self.graphs = 0
        self.ops = 0
        self.probe = probe or Probe()
        self.probe.backend = self

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        self.ops += sum(1 for n in gm.graph.nodes if n.op in ("call_function", "call_method", "call_module"))
        forward, probe = gm.forward, self.probe

        def run_graph(*args):
            probe.graph_depth += 1
            probe.graph_calls += 1
            try:
                return forward(*args)
            finally:
                probe.graph_depth -= 1
        return run_graph


class Bytegraph:
    name = "bytegraph"

    def __init__(self):
        import bytegraph
        self.bg = bytegraph
        self.path = os.path.dirname(bytegraph.__file__)

    def reset(self):
        self.bg.reset()

    def compile(self, obj, backend):
        return self.bg.compile(obj, backend=backend, fullgraph=False)

    def breaks(self):
        return {str(k): v for k, v in self.bg.counters["graph_break"].items()}

    def fallbacks(self):
        """Whole-function fallbacks (the function ran eagerly): "qualname: reason" -> count, and
        counters["fallback"] (by kind)."""
        from bytegraph.observe import compile_metrics
        reasons = collections.Counter(f"{r.name}: {r.reason.splitlines()[0][:300]}"
                                      for r in compile_metrics if not r.ok and r.reason)
        return dict(reasons), {str(k): v for k, v in self.bg.counters["fallback"].items()}

    def compiles(self):
        return self.bg.counters["frames"]["total"]

    def unique_graphs(self):
        return self.bg.counters["stats"]["unique_graphs"]

    def own_warning(self, w):
        return str(w.message).startswith("bytegraph")


class TorchCompile:
    name = "torch"

    def __init__(self):
        import torch._dynamo
        from torch._dynamo.utils import counters
        self.dynamo = torch._dynamo
        self.counters = counters
        self.path = os.path.dirname(torch.__file__)

    def reset(self):
        self.dynamo.reset()
        self.counters.clear()

    def compile(self, obj, backend):
        return torch.compile(obj, backend=backend, fullgraph=False)

    def breaks(self):
        return {str(k): v for k, v in self.counters["graph_break"].items()}

    def fallbacks(self):
        return {}, {}

    def compiles(self):
        return self.counters["frames"]["total"]

    def unique_graphs(self):
        return self.counters["stats"]["unique_graphs"]

    def own_warning(self, w):
        return "_dynamo" in (w.filename or "") or "torch._dynamo" in str(w.message)


def make_compiler(name):
    return {"bytegraph": Bytegraph, "torch": TorchCompile}[name]()


# ----------------------------------------------------------------------------- running one pair

def _timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


PROBE_TOP = 8  # the most frequent aten ops run outside graphs, recorded per pair


def measure_ops(run, comp, target, built, expected, compiler, probe):
    """probe_* fields: one more steady run of the configuration with every top-level compiled call
    under an OpCounter. fraction_in_graphs = aten ops run while a compiled graph runs / all aten
    ops of the compiled calls (the configuration's own code around them -- the generate loop,
    train's backward, which the backend runs eagerly for either compiler -- is not counted).
    The run should hit the cache: compiles during it are reported in probe_recompiles and the run
    measured again (probe_recompiles_again); the mode caused them only if the timed calls before
    it compiled nothing (steady_compiles)."""
    out = {}
    try:
        for attempt in range(2):
            before = compiler.compiles()
            probe.start()
            probe.counting = True
            try:
                actual = run(comp, target, built)
            finally:
                probe.counting = False
            compiled = compiler.compiles() - before
            if attempt == 0:
                out["probe_recompiles"] = compiled
            else:
                out["probe_recompiles_again"] = compiled
            if not compiled:
                break
        total = probe.inside + probe.outside
        out.update(probe_inside=probe.inside, probe_outside=probe.outside,
                   fraction_in_graphs=round(probe.inside / total, 6) if total else None,
                   probe_graph_calls=[executed for _, executed in probe.calls],
                   probe_outside_top=dict(probe.outside_ops.most_common(PROBE_TOP)),
                   probe_mismatch=cases.compare(expected, actual))
    except Exception as e:  # noqa: BLE001
        out["probe_error"] = one_line(e)
    return out


def run_pair(name, entry, config, compiler, steady_calls=None, probe_ops=True):
    """One corpus row for (model `name`, `config`) compiled by `compiler`; `steady_calls` timed
    calls after the first (default STEADY_CALLS[config]), the last one compared again; with
    `probe_ops`, one more call measures the fraction of aten ops run inside graphs (measure_ops)."""
    steady_calls = STEADY_CALLS[config] if steady_calls is None else steady_calls
    row = {"name": name, "config": config, "compiler": compiler.name, "class": entry.get("class")}
    run = cases.CONFIGS[config]
    try:
        cases.seed_all()
        built = cases.build(name, entry)
        eager = built.model
        comp = cases.fresh_copy(eager)
        expected, _ = _timed(lambda: run(eager, eager, built))
        eager_times = [_timed(lambda: run(eager, eager, built))[1] for _ in range(steady_calls)]
    except Exception as e:  # noqa: BLE001
        row.update(status="eager_error", error=one_line(e))
        return row
    compiler.reset()
    probe = Probe()
    backend = CountingBackend(probe)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            target = cases.compile_target(config, comp, lambda obj: Probed(compiler.compile(obj, backend), probe))
            actual, first = _timed(lambda: run(comp, target, built))
            row["graphs_per_call"] = [new for new, _ in probe.calls]
            mismatch = cases.compare(expected, actual)
            times, compiles = [], []
            for _ in range(steady_calls):
                before = compiler.compiles()
                actual, t = _timed(lambda: run(comp, target, built))
                times.append(t)
                compiles.append(compiler.compiles() - before)
            row["steady_compiles"] = compiles   # compiles during each timed call: 0 when it hits the cache
            mismatch = mismatch or cases.compare(expected, actual)
            row.update(status="ok" if mismatch is None else "wrong", correct=mismatch is None,
                       mismatch=mismatch, first_call_s=round(first, 4),
                       steady_s=round(statistics.median(times), 6) if times else None)
        except Exception as e:  # noqa: BLE001
            row.update(status="error", correct=False, error=one_line(e),
                       trace=traceback.format_exc(limit=-3)[-1500:])
        # torch.compile's frames run uncompiled under an active TorchDispatchMode (the probe's
        # counting mode), so the count would say 0 ops in graphs: measured for bytegraph only
        if row["status"] in ("ok", "wrong") and probe_ops and compiler.name != "torch":
            row.update(measure_ops(run, comp, target, built, expected, compiler, probe))
    fallbacks, fallback_kinds = compiler.fallbacks()
    row.update(graphs=backend.graphs, ops=backend.ops, unique_graphs=compiler.unique_graphs(),
               eager_steady_s=round(statistics.median(eager_times), 6) if eager_times else None,
               breaks=compiler.breaks(), fallbacks=fallbacks, fallback_kinds=fallback_kinds)
    msgs = sorted({str(w.message).splitlines()[0][:300] for w in caught if compiler.own_warning(w)})
    row["warnings"] = msgs
    row["compiler_path"] = compiler.path
    return row


# ----------------------------------------------------------------------------- enumeration

def _eager_ok(config, model, built):
    """None if `config` runs eagerly and deterministically on `model`, else the reason."""
    run = cases.CONFIGS[config]
    try:
        again = cases.fresh_copy(model)
        first = run(model, model, built)
        second = run(again, again, built)
    except Exception as e:  # noqa: BLE001
        return one_line(e)
    bad = cases.compare(first, second, atol=0, rtol=0)
    return None if bad is None else f"eager not deterministic: {bad}"


def enumerate_hf(model_type):
    """Try the candidate classes of a transformers model type; the first that runs is kept."""
    import hf_models as H
    row = {"name": f"hf/{model_type}", "family": "transformers", "kept": False}
    try:
        candidates = H.candidate_classes(model_type)
        config = H.shrink_config(H.default_config(model_type))
    except Exception as e:  # noqa: BLE001
        row["reason"] = "config: " + one_line(e)
        return row
    reasons = []
    for cls_name, kind, mapping in candidates[:3]:
        t0 = time.perf_counter()
        try:
            model = H.build_model(cls_name, config)
            inputs = H.input_candidates(model, config)
        except Exception as e:  # noqa: BLE001
            reasons.append(f"{cls_name}: build: {one_line(e)}")
            continue
        errors = []
        for index, inp in enumerate(inputs):
            built = cases.Built(model, inp, {}, H._text_config(config))
            err = _eager_ok("eval", model, built)
            if err is None:
                break
            errors.append(err)
        if err is not None:
            reasons.append(f"{cls_name}: eval: {errors[0]}")  # the error of the most likely input layout
            continue
        elapsed = time.perf_counter() - t0
        if elapsed > EAGER_LIMIT_S:
            reasons.append(f"{cls_name}: slow: build + eager eval took {elapsed:.1f}s")
            continue
        entry = {"class": cls_name, "kind": kind, "mapping": mapping, "input_index": index,
                 "inputs": sorted(k for k in inp if k != "use_cache"),
                 "params": sum(p.numel() for p in model.parameters()), "configs": ["eval"], "skipped": {}}
        built.labels = H.label_inputs(kind, model, config, inp)
        err = _eager_ok("train", model, built)
        if err is not None and built.labels:
            entry["skipped"]["train_labels"] = err
            built.labels = {}
            err = _eager_ok("train", model, built)
            entry["train_labels"] = False
        if err is None:
            entry["configs"].append("train")
        else:
            entry["skipped"]["train"] = err
        H.prepare_generation(model, config)
        if mapping == "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES" and cases.cache_param(model) and "input_ids" in inp:
            err = _eager_ok("cache", model, built)
            if err is None:
                entry["configs"].append("cache")
            else:
                entry["skipped"]["cache"] = err
        if mapping in ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
                       "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES"):
            err = _eager_ok("generate", model, built)
            if err is None:
                entry["configs"].append("generate")
            else:
                entry["skipped"]["generate"] = err
        entry["eager_check_s"] = round(time.perf_counter() - t0, 2)
        row.update(kept=True, **entry)
        return row
    row["reason"] = reasons[0] if reasons else "no model class"
    row["all_reasons"] = reasons
    return row


def enumerate_diffusers(name):
    import diffusers_models as D
    row = {"name": f"diffusers/{name}", "family": "diffusers", "kept": False}
    try:
        t0 = time.perf_counter()
        model, inputs = D.build(name, seed=cases.SEED)
        built = cases.Built(model, inputs, {})
        for config in ("eval", "train"):
            err = _eager_ok(config, model, built)
            if err is not None:
                row["reason"] = f"{config}: {err}"
                return row
        row.update(kept=True, **{"class": name, "kind": None, "input_index": 0, "inputs": sorted(inputs),
                                 "params": sum(p.numel() for p in model.parameters()),
                                 "configs": ["eval", "train"], "skipped": {},
                                 "eager_check_s": round(time.perf_counter() - t0, 2)})
    except Exception as e:  # noqa: BLE001
        row["reason"] = "build: " + one_line(e)
    return row


def enumerate_one(name):
    family, _, model_name = name.partition("/")
    return enumerate_hf(model_name) if family == "hf" else enumerate_diffusers(model_name)


# ----------------------------------------------------------------------------- main loop

def main():
    torch.set_num_threads(1)
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # model prints go to stderr
    sys.stdout = sys.stderr
    compilers = {}
    for line in sys.stdin:
        job = json.loads(line)
        try:
            if job["op"] == "enumerate":
                result = enumerate_one(job["name"])
            else:
                name = job["compiler"]
                if name not in compilers:
                    compilers[name] = make_compiler(name)
                result = run_pair(job["name"], job["entry"], job["config"], compilers[name])
        except Exception as e:  # noqa: BLE001 -- keep the worker alive
            result = {"name": job.get("name"), "config": job.get("config"), "status": "worker_error",
                      "error": one_line(e)}
        proto.write(json.dumps(result) + "\n")
        proto.flush()


if __name__ == "__main__":
    main()
