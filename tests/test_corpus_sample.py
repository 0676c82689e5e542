"""CI sample of the real-model corpus (bench/corpus): bytegraph vs eager on a seeded sample.

A FIXED, SEEDED random sample (`cases.ci_sample`: random.Random(CI_SEED), not
hand-picked) of CI_SAMPLE (model, configuration) pairs from the whole corpus list
(bench/results/corpus_models.json, `cases.all_pairs`; models whose eager check took
over CI_HEAVY_S seconds are left out to stay within the time budget) runs through bytegraph with a graph-counting eager backend. Each
pair must return what eager returns on a fresh copy with the same weights (outputs;
loss and every gradient for `train`; both decoding steps for `cache`; tokens for
`generate`), and, where the committed torch.compile results
(bench/results/corpus_torch.json) show torch.compile capturing the pair as one correct
graph (one per distinct call signature: cases.FULL_GRAPHS), bytegraph must make the
same number of graphs and run every tensor op of the compiled calls inside them
(`fraction_in_graphs` == 1, measured on a steady call by worker.measure_ops): that is the
requirement, not a wish, so this test fails while bytegraph falls back to eager there.
The steady call measured under the op-counting dispatch mode must also match eager.
"""
from __future__ import annotations

import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "bench", "corpus")
sys.path.insert(0, CORPUS)

import cases  # noqa: E402
import worker  # noqa: E402



def _sample():
    return cases.ci_sample(cases.load_models(os.path.join(REPO, cases.MODELS_JSON)))


def _torch_rows():
    path = os.path.join(REPO, "bench", "results", "corpus_torch.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {(r["name"], r["config"]): r for r in json.load(f)["rows"]}


# Pairs of the sample that torch.compile captures whole and bytegraph does not yet. Their results
# are still asserted correct above; only the capture (graph count, ops inside) is a known gap, listed with its cause
# (bench/results/corpus.md lists every such pair of the whole corpus).
CAPTURE_GAPS = {       # "name:config": why bytegraph does not capture it whole (more graphs, or ops outside)
}

PAIRS = _sample()
TORCH = _torch_rows()


@pytest.fixture(scope="module")
def compiler():
    return worker.make_compiler("bytegraph")


@pytest.mark.parametrize("name,config,entry", PAIRS, ids=[f"{n}:{c}" for n, c, _ in PAIRS])
def test_corpus_pair(name, config, entry, compiler):
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        row = worker.run_pair(name, entry, config, compiler, steady_calls=1)
    finally:
        os.chdir(cwd)
    assert row["status"] != "eager_error", f"{name}:{config}: eager failed: {row.get('error')}"
    assert row["status"] == "ok" and row["correct"], (
        f"{name}:{config}: {row['status']}: {row.get('mismatch') or row.get('error')}")
    assert "probe_error" not in row and row.get("probe_mismatch") is None, (
        f"{name}:{config}: the call under the op-counting mode: {row.get('probe_error') or row.get('probe_mismatch')}")
    ref = TORCH.get((name, config))
    if cases.whole(ref):
        want = cases.FULL_GRAPHS[config]
        gap = CAPTURE_GAPS.get(f"{name}:{config}")
        captured = row["graphs"] == want and row.get("fraction_in_graphs") == 1.0
        if gap is not None:       # correct already asserted; strict: a fixed gap must be removed
            assert not captured, f"{name}:{config} now captures whole: remove it from CAPTURE_GAPS"
            pytest.xfail(f"capture gap (correct result, {row['graphs']} graphs vs {want}, "
                         f"{row.get('fraction_in_graphs')} of the ops inside): {gap}")
        assert captured, (
            f"{name}:{config}: torch.compile makes {want} graph(s) (one per call signature), bytegraph "
            f"{row['graphs']} with {row.get('fraction_in_graphs')} of the tensor ops inside; "
            f"breaks={row['breaks']} fallbacks={row.get('fallbacks')} warnings={row['warnings']}")


def test_sample_is_large_enough():
    assert len(PAIRS) >= cases.CI_SAMPLE
