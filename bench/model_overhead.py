"""Per-call overhead of a compiled real model: bytegraph beside torch.compile (issue 11, "Why").

Both compilers get a backend that runs the captured graph once, at compile time, and then
returns that precomputed output on every call. A compiled call then costs only what the
compiler adds around the graph: guards, fetching inputs and parameters, rebuilding outputs.
Models come from the zoo (tests/zoo.py) and the transformers/diffusers corpus
(bench/corpus), in eval mode under no_grad, with the corpus's seeded inputs. The table gives
microseconds per call, module and parameter counts, the ratio, and the least-squares slope of
microseconds against module count for each compiler.

    .venv/bin/python bench/model_overhead.py                       # default model list
    .venv/bin/python bench/model_overhead.py --models zoo/gpt2_lm hf/cvt --out -
    .venv/bin/python bench/model_overhead.py --label after --out bench/results/model_overhead.md

`--label` names the run; `--out FILE` appends the run's section to FILE (`-` prints only).
`--steady` gives both compilers the eager backend instead (the real graph runs on every call):
steady call time with real graphs, issue 11's last acceptance item.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "corpus"))
import common  # noqa: E402
from common import fmt, log  # noqa: E402

sys.path.insert(0, os.path.join(common.REPO, "tests"))
import torch  # noqa: E402

# the 3 corpus models with the most modules among those both compilers capture whole in eval
# (phi4_multimodal 841, cvt 469, janus 371), then a spread of sizes down to the zoo's small ones
DEFAULT_MODELS = (
    "hf/phi4_multimodal", "hf/cvt", "hf/janus", "hf/kosmos-2.5", "hf/mobilevit",
    "diffusers/UNet1DModel", "hf/funnel", "diffusers/UNet2DConditionModel", "hf/mobilenet_v2",
    "zoo/t5", "zoo/bert", "zoo/gpt2_lm", "zoo/llama_lm", "zoo/mlp_sequential",
)


def precomputed_backend(gm, example_inputs):
    """Run the graph once now; every call returns that output (pure call overhead)."""
    out = gm(*example_inputs)
    return lambda *args: out


def build(name):
    """(model, args, kwargs) for a model name: `zoo/<entry>` or a corpus name (`hf/...`)."""
    family, _, rest = name.partition("/")
    if family == "zoo":
        import zoo
        entry = zoo.get(rest)
        model, make_inputs = entry.build()
        inputs = make_inputs(0)
        if entry.arg_names is not None:
            return model.eval(), (), dict(zip(entry.arg_names, inputs))
        return model.eval(), tuple(inputs), {}
    import cases
    entries = {e["name"]: e for e in cases.load_models(
        os.path.join(common.REPO, cases.MODELS_JSON))["kept"]}
    built = cases.build(name, entries[name])
    return built.model.eval(), (), dict(built.inputs)


def contenders(steady=False):
    import bytegraph
    backend = "eager" if steady else precomputed_backend
    return {
        "bytegraph": (lambda m: bytegraph.compile(m, backend=backend, fullgraph=True),
                      bytegraph.reset),
        "torch.compile": (lambda m: torch.compile(m, backend=backend, fullgraph=True),
                          _dynamo_reset),
    }


def _dynamo_reset():
    import torch._dynamo
    torch._dynamo.reset()


def measure(name, calls, samples, steady=False):
    model, args, kwargs = build(name)
    n_mod = sum(1 for _ in model.modules())
    n_par = sum(1 for _ in model.parameters()) + sum(1 for _ in model.buffers())
    fns, failed = {}, {}
    with torch.no_grad():
        for cname, (compile_fn, reset) in contenders(steady).items():
            reset()
            try:
                fn = compile_fn(copy.deepcopy(model))
                fn(*args, **kwargs)
                fns[cname] = fn
            except Exception as e:  # noqa: BLE001
                log(f"    {cname} failed: {type(e).__name__}: {str(e)[:200]}")
                failed[cname] = common.Failed(e)
        res = common.interleaved_per_call_us(fns, args, kwargs, calls=calls, samples=samples)
    res.update(failed)
    return n_mod, n_par, res


def slope(points):
    """Least-squares slope and intercept of y against x."""
    pts = [(x, y) for x, y in points if common.ok(y)]
    if len(pts) < 2:
        return None, None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    b = sum((x - mx) * (y - my) for x, y in pts) / sxx
    return b, my - b * mx


def report(rows, label, argv, steady=False):
    env = common.environment(argv)
    headers = ["model", "modules", "params+buffers", "bytegraph us/call", "torch.compile us/call",
               "bytegraph/torch.compile"]
    table = []
    for name, n_mod, n_par, res in rows:
        bg, tc = res.get("bytegraph"), res.get("torch.compile")
        table.append([name, n_mod, n_par, fmt(bg, ".1f"), fmt(tc, ".1f"),
                      fmt(common.ratio(bg, tc), ".2f")])
    lines = [f"## {label}", "", common.env_markdown(env), "", common.markdown_table(headers, table), ""]
    for cname in ("bytegraph", "torch.compile"):
        b, a = slope([(n_mod, res.get(cname)) for _, n_mod, _, res in rows])
        if b is not None:
            lines.append(f"- {cname}: slope **{b:.3f} us per module** (intercept {a:.1f} us), "
                         f"least squares over {len(rows)} models")
    ratios = [common.ratio(r.get("bytegraph"), r.get("torch.compile")) for *_, r in rows]
    ratios = [x for x in ratios if x is not None]
    if ratios:
        goal = "every model <= 1.00" if steady else "every model <= 0.33"
        lines.append(f"- bytegraph/torch.compile: geomean {common.geomean(ratios):.2f}, "
                     f"max {max(ratios):.2f} (goal: {goal})")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS))
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--label", default="run")
    ap.add_argument("--steady", action="store_true",
                    help="eager backend: the graph runs on every call (steady call time)")
    ap.add_argument("--out", default=os.path.join(common.REPO, "bench", "results", "model_overhead.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in args.models:
        log(f"[{name}]")
        try:
            n_mod, n_par, res = measure(name, args.calls, args.samples, args.steady)
        except Exception as e:  # noqa: BLE001
            log(f"    skipped: {type(e).__name__}: {str(e)[:200]}")
            continue
        rows.append((name, n_mod, n_par, res))
        log(f"    modules={n_mod} params+buffers={n_par}  "
            + "  ".join(f"{k}={fmt(v, '.1f')}us" for k, v in res.items()))
    text = report(rows, args.label, sys.argv if argv is None else ["bench/model_overhead.py"] + argv,
                  args.steady)
    print(text)
    if args.out != "-":
        new = not os.path.exists(args.out)
        with open(args.out, "a") as f:
            if new:
                f.write("# Model call overhead: bytegraph vs torch.compile (bench/model_overhead.py)\n\n"
                        "Backend: returns a precomputed output, so each figure is pure call overhead "
                        "(guards, fetching inputs and parameters, rebuilding outputs). Eval mode, "
                        "no_grad, torch threads = 1, median of samples, contenders interleaved.\n\n")
            f.write(text + "\n")


if __name__ == "__main__":
    main()
