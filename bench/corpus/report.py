"""Corpus report: bench/results/corpus.md from the corpus JSON files.

Responsible for the side-by-side summary of bench/results/corpus_bytegraph.json and
corpus_torch.json (pairs built / correct / single-graph, where bytegraph does worse,
geomean time ratios), bytegraph failures grouped by reason, the per-pair table, and
the model types not kept (from corpus_models.json) grouped by cause.
"""
from __future__ import annotations

import collections
import json
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench", "results")
sys.path.insert(0, HERE)

from cases import FULL_GRAPHS, whole  # noqa: E402


def _load(name):
    path = os.path.join(RESULTS, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _rows(data):
    return {(r["name"], r["config"]): r for r in (data or {}).get("rows", [])}


def ran(r):
    """The pair was built and run (the compiled call returned, right or wrong)."""
    return r is not None and r.get("status") in ("ok", "wrong")


def single(r):
    """Correct and captured whole: one graph per call signature (cases.FULL_GRAPHS)."""
    return whole(r)


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def reason(r):
    """One short failure reason for a bytegraph row that is not a correct single graph."""
    if r.get("status") not in ("ok", "wrong"):
        return f"{r.get('status')}: {r.get('error', '')}"
    if not r.get("correct"):
        return f"wrong result: {r.get('mismatch')}"
    msgs = list(r.get("breaks") or {}) or r.get("warnings") or ["(no reason recorded)"]
    if r.get("graphs", 0) == 0:
        return "no graph (runs eagerly): " + msgs[0]
    return f"{r['graphs']} graphs (whole capture: {FULL_GRAPHS[r['config']]}): " + msgs[0]


def _norm(msg):
    """Group reasons that differ only by numbers, addresses, file lines, names in quotes."""
    msg = re.sub(r"while compiling \S+ \([^)]*\)", "while compiling <fn> (<file>)", msg)
    msg = re.sub(r"0x[0-9a-f]+", "0x..", msg)
    msg = re.sub(r"\(([^()]*\.py):\d+\)", r"(\1)", msg)
    msg = re.sub(r"\d+(\.\d+)?", "N", msg)
    return msg[:220]


COUNTS = (
    ("pairs attempted", len),
    ("pairs built (eager ran)", lambda rows: sum(r.get("status") != "eager_error" for r in rows.values())),
    ("pairs run (compiled call returned)", lambda rows: sum(ran(r) for r in rows.values())),
    ("correct", lambda rows: sum(bool(ran(r) and r.get("correct")) for r in rows.values())),
    ("correct, one graph (per call signature)", lambda rows: sum(bool(single(r)) for r in rows.values())),
    ("correct, no graph (ran eagerly)",
     lambda rows: sum(bool(ran(r) and r.get("correct") and r.get("graphs") == 0) for r in rows.values())),
    ("wrong result", lambda rows: sum(r.get("status") == "wrong" for r in rows.values())),
    ("error / timeout / crash",
     lambda rows: sum(r.get("status") not in ("ok", "wrong", "eager_error") for r in rows.values())),
)


def summary(sources, tc):
    """The side-by-side count table and, per bytegraph source, the geomean time ratios."""
    lines = ["| | " + " | ".join(label for label, _ in sources) + " | torch.compile |",
             "|---|" + "---:|" * (len(sources) + 1)]
    for label, fn in COUNTS:
        lines.append(f"| {label} | " + " | ".join(str(fn(bg)) for _, bg in sources) + f" | {fn(tc)} |")
    lines.append("")
    for label, bg in sources:
        both = [k for k in sorted(set(bg) & set(tc)) if ran(bg[k]) and ran(tc[k])]
        one_both = [k for k in both if single(bg[k]) and single(tc[k])]

        def ratio(keys, field):
            return geomean([bg[k][field] / tc[k][field] for k in keys if bg[k].get(field) and tc[k].get(field)])
        lines.append(f"- {label} / torch.compile, geomean over the {len(both)} pairs both ran: first call "
                     f"**{ratio(both, 'first_call_s'):.2f}x**, steady call **{ratio(both, 'steady_s'):.2f}x**; "
                     f"over the {len(one_both)} pairs both captured whole: first call "
                     f"**{ratio(one_both, 'first_call_s'):.2f}x**, steady call **{ratio(one_both, 'steady_s'):.2f}x**.")
    return lines


def worse(bg, tc):
    """Pairs where bytegraph does worse than torch.compile: wrong/failed where torch is correct, or
    more graphs / no graph where torch captured."""
    out = []
    for k in sorted(set(bg) | set(tc)):
        b, t = bg.get(k), tc.get(k)
        if not (ran(t) and t.get("correct")) or b is None:
            continue
        if not (ran(b) and b.get("correct")):
            out.append((k, reason(b)))
        elif t.get("graphs", 0) >= 1 and (b.get("graphs", 0) == 0 or b.get("graphs", 0) > t["graphs"]
                                          or (single(t) and not single(b))):
            out.append((k, f"bytegraph {b.get('graphs')} graphs vs torch {t['graphs']}: {reason(b)}"))
    return out


def not_kept_groups(models):
    groups = collections.defaultdict(list)
    for r in models.get("not_kept", []):
        why = r.get("reason", "?")
        why = re.sub(r"^[A-Za-z0-9_]+: (build|eval|slow): ", r"\1: ", why)
        groups[_norm(why)].append(r["name"].split("/", 1)[1])
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))


SOURCES = (("bytegraph", "corpus_bytegraph.json"), ("bytegraph (main)", "corpus_bytegraph_main.json"))


def _cell(r):
    if r is None:
        return ["-", "", "", ""]
    st = "ok" if ran(r) and r.get("correct") else r.get("status", "?")
    steady = f"{r['steady_s'] * 1e3:.2f}" if r.get("steady_s") else ""
    return [st, str(r.get("graphs", "")), str(r.get("first_call_s", "")), steady]


def _run_line(label, d):
    m = d["meta"]
    paths = sorted({r.get("compiler_path", "?") for r in d.get("rows", [])})
    return (f"- {label}: run {m.get('date')}, {m.get('total_s')} s for the pairs of that invocation, "
            f"PYTHONPATH={m.get('pythonpath') or '-'}, code from {', '.join(paths)}, "
            f"args `{' '.join(m.get('argv', []))}`")


def main():
    models = _load("corpus_models.json") or {}
    tcd = _load("corpus_torch.json")
    tc = _rows(tcd)
    loaded = [(label, _load(name)) for label, name in SOURCES]
    loaded = [(label, d) for label, d in loaded if d] or [("bytegraph", None)]
    sources = [(label, _rows(d)) for label, d in loaded]
    kept = models.get("kept", [])
    out = ["# Corpus: bytegraph vs torch.compile on real transformers / diffusers models", "",
           "Generated by `bench/corpus/run.py` (see bench/corpus/README.md). Both compilers use a",
           "graph-counting backend that runs each captured graph as is (`gm.forward`), so only capture",
           "differs. Correct = outputs (eval/cache/generate) or loss and every gradient (train) match eager",
           "on a fresh copy with the same weights (atol=rtol=1e-4), on the first and the last call.",
           "Whole capture = one graph per distinct call signature (eval/train 1, cache 2, generate 3).", ""]
    for label, d in loaded + [("torch.compile", tcd)]:
        if d:
            out.append(_run_line(label, d))
    fam = collections.Counter(e.get("family") for e in kept)
    out += [f"- models kept: {len(kept)} ({dict(fam)}), not kept: {len(models.get('not_kept', []))}", "",
            "## Summary", ""]
    out += summary(sources, tc)
    for label, bg in sources:
        w = worse(bg, tc)
        out += ["", f"## Where {label} does worse than torch.compile ({len(w)} pairs)", ""]
        out += [f"- `{n}:{c}`: {why[:200]}" for (n, c), why in w]
        groups = collections.defaultdict(list)
        for k, r in sorted(bg.items()):
            if not single(r) and r.get("status") != "eager_error":
                groups[_norm(reason(r))].append(f"{k[0]}:{k[1]}")
        out += ["", f"## {label}: pairs not captured whole and correct, grouped by reason", ""]
        for why, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            out.append(f"- **{len(names)}** -- {why}: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}")
    head = ["model", "config", "class"]
    for label, _ in sources + [("torch", None)]:
        head += [label, "graphs", "first s", "steady ms"]
    out += ["", "## Per pair", "", "| " + " | ".join(head) + " |", "|---|---|---|" + "---|---:|---:|---:|" *
            (len(sources) + 1)]
    keys = sorted(set(tc).union(*(set(bg) for _, bg in sources)))
    for k in keys:
        r0 = next(r for r in [tc.get(k)] + [bg.get(k) for _, bg in sources] if r)
        cells = [k[0], k[1], r0.get("class", "")]
        for _, bg in sources:
            cells += _cell(bg.get(k))
        cells += _cell(tc.get(k))
        out.append("| " + " | ".join(cells) + " |")
    out += ["", f"## Model types not kept ({len(models.get('not_kept', []))}), grouped by cause", ""]
    for why, names in not_kept_groups(models):
        out.append(f"- **{len(names)}** -- {why}: {', '.join(names)}")
    with open(os.path.join(RESULTS, "corpus.md"), "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
