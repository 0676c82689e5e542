"""Call one corpus pair compiled a few times and print, after each call, the traces
(`counters["frames"]`), recompiles, graphs compiled and breaks; then the break reasons. The
recompile reasons go to the `bytegraph.recompiles` log (printed). For a quick look at one pair;
the corpus runner (run.py) measures every pair.

    PYTHONPATH=$PWD .venv/bin/python bench/corpus/pair_calls.py hf/vits eval 3
"""
import collections
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402,F401
import bytegraph  # noqa: E402
import cases  # noqa: E402


def main(name, config, calls=3):
    entry = [e for e in cases.load_models()["kept"] if e["name"] == name][0]
    built = cases.build(name, entry)
    cases.seed_all()
    model = cases.fresh_copy(built.model)
    target = cases.compile_target(config, model, lambda m: bytegraph.compile(m, backend="eager"))
    c = bytegraph.counters
    for i in range(calls):
        cases.seed_all()
        cases.CONFIGS[config](model, target, built)
        print(f"call {i}: traces={c['frames']['total']} recompiles={c['recompiles']['total']} "
              f"graphs={c['stats']['unique_graphs']} breaks={sum(c['graph_break'].values())}", flush=True)
    for reason, n in collections.Counter(dict(c["graph_break"])).most_common(12):
        print(f"  {n} x {reason}")


if __name__ == "__main__":
    logging.basicConfig(format="%(name)s: %(message)s")
    logging.getLogger("bytegraph.recompiles").setLevel(logging.INFO)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
