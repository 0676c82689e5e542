"""Corpus worker: runs jobs in a child process and answers one JSON line per job.

Responsible for executing single jobs, isolated from the runner (bench/corpus/run.py),
which restarts this process after a crash or a timeout:

  * {"op": "enumerate", "name": "hf/llama"} -> which class/inputs/configs of that
    model build and run eagerly (deterministically, within the time limit), or why not.
  * {"op": "run", "name": ..., "entry": {...}, "config": "eval", "compiler": "bytegraph"}
    -> one corpus row: correct vs eager on a fresh copy, graphs, ops, first-call and
    steady times, graph-break reasons and compiler warnings.

Protocol: jobs on stdin, results on the original stdout; everything the models print
goes to stderr. Uses one thread (the machine is shared).
"""
from __future__ import annotations

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

import cases  # noqa: E402

EAGER_LIMIT_S = 5.0  # build + first eager forward of a kept model
STEADY_CALLS = {"eval": 5, "train": 3, "cache": 3, "generate": 3}


def one_line(exc):
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg[:300]}"


# ----------------------------------------------------------------------------- compilers

class CountingBackend:
    """A backend that counts graphs and their ops and runs each graph as captured."""

    def __init__(self):
        self.graphs = 0
        self.ops = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        self.ops += sum(1 for n in gm.graph.nodes if n.op in ("call_function", "call_method", "call_module"))
        return gm.forward


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


def run_pair(name, entry, config, compiler, steady_calls=None):
    """One corpus row for (model `name`, `config`) compiled by `compiler`; `steady_calls` timed
    calls after the first (default STEADY_CALLS[config]), the last one compared again."""
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
    backend = CountingBackend()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            target = cases.compile_target(config, comp, lambda obj: compiler.compile(obj, backend))
            actual, first = _timed(lambda: run(comp, target, built))
            mismatch = cases.compare(expected, actual)
            times = []
            for _ in range(steady_calls):
                actual, t = _timed(lambda: run(comp, target, built))
                times.append(t)
            mismatch = mismatch or cases.compare(expected, actual)
            row.update(status="ok" if mismatch is None else "wrong", correct=mismatch is None,
                       mismatch=mismatch, first_call_s=round(first, 4),
                       steady_s=round(statistics.median(times), 6) if times else None)
        except Exception as e:  # noqa: BLE001
            row.update(status="error", correct=False, error=one_line(e),
                       trace=traceback.format_exc(limit=-3)[-1500:])
    row.update(graphs=backend.graphs, ops=backend.ops, unique_graphs=compiler.unique_graphs(),
               eager_steady_s=round(statistics.median(eager_times), 6) if eager_times else None,
               breaks=compiler.breaks())
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
