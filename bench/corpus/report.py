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

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench", "results")


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
    return ran(r) and r.get("correct") and r.get("graphs") == 1


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def reason(r):
    """One short failure reason for a bytegraph row that is not a correct single graph."""
    if r.get("status") not in ("ok", "wrong"):
        return f"{r.get('status')}: {r.get('error', '')}"
    if not r.get("correct"):
        return f"wrong result: {r.get('mismatch')}"
    if r.get("graphs", 0) == 0:
        msgs = list(r.get("breaks") or {}) or r.get("warnings") or ["(no reason recorded)"]
        return "no graph (runs eagerly): " + msgs[0]
    msgs = list(r.get("breaks") or {}) or r.get("warnings") or ["(no reason recorded)"]
    return f"{r['graphs']} graphs: " + msgs[0]


def _norm(msg):
    """Group reasons that differ only by numbers, addresses, file lines, names in quotes."""
    msg = re.sub(r"0x[0-9a-f]+", "0x..", msg)
    msg = re.sub(r"\(([^()]*\.py):\d+\)", r"(\1)", msg)
    msg = re.sub(r"\d+(\.\d+)?", "N", msg)
    return msg[:220]


def summary(bg, tc):
    keys = sorted(set(bg) | set(tc))
    both = [k for k in keys if ran(bg.get(k)) and ran(tc.get(k))]
    lines = ["| | bytegraph | torch.compile |", "|---|---:|---:|"]
    for label, fn in (("pairs run", lambda rows: sum(ran(r) for r in rows.values())),
                      ("correct", lambda rows: sum(bool(ran(r) and r.get("correct")) for r in rows.values())),
                      ("correct, one graph", lambda rows: sum(bool(single(r)) for r in rows.values())),
                      ("correct, no graph (ran eagerly)",
                       lambda rows: sum(bool(ran(r) and r.get("correct") and r.get("graphs") == 0)
                                        for r in rows.values())),
                      ("wrong result", lambda rows: sum(r.get("status") == "wrong" for r in rows.values())),
                      ("error / timeout / crash",
                       lambda rows: sum(r.get("status") not in ("ok", "wrong", "eager_error") for r in rows.values()))):
        lines.append(f"| {label} | {fn(bg)} | {fn(tc)} |")
    first = geomean([bg[k]["first_call_s"] / tc[k]["first_call_s"] for k in both
                     if bg[k].get("first_call_s") and tc[k].get("first_call_s")])
    steady = geomean([bg[k]["steady_s"] / tc[k]["steady_s"] for k in both
                      if bg[k].get("steady_s") and tc[k].get("steady_s")])
    one_both = [k for k in both if single(bg[k]) and single(tc[k])]
    first1 = geomean([bg[k]["first_call_s"] / tc[k]["first_call_s"] for k in one_both])
    steady1 = geomean([bg[k]["steady_s"] / tc[k]["steady_s"] for k in one_both])
    lines += ["", f"Pairs both ran: {len(both)}. Geomean bytegraph/torch.compile: first call (compile) "
              f"**{first:.2f}x**, steady call **{steady:.2f}x**; over the {len(one_both)} pairs where both made "
              f"one correct graph: first call **{first1:.2f}x**, steady call **{steady1:.2f}x**."]
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
        elif t.get("graphs", 0) >= 1 and (b.get("graphs", 0) == 0 or b.get("graphs", 0) > t["graphs"]):
            out.append((k, f"bytegraph {b.get('graphs')} graphs vs torch {t['graphs']}: {reason(b)}"))
    return out


def not_kept_groups(models):
    groups = collections.defaultdict(list)
    for r in models.get("not_kept", []):
        why = r.get("reason", "?")
        why = re.sub(r"^[A-Za-z0-9_]+: (build|eval|slow): ", r"\1: ", why)
        groups[_norm(why)].append(r["name"].split("/", 1)[1])
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))


def main():
    models = _load("corpus_models.json") or {}
    bgd, tcd = _load("corpus_bytegraph.json"), _load("corpus_torch.json")
    bg, tc = _rows(bgd), _rows(tcd)
    kept = models.get("kept", [])
    out = ["# Corpus: bytegraph vs torch.compile on real transformers / diffusers models", "",
           "Generated by `bench/corpus/run.py` (see bench/corpus/README.md). Both compilers use a",
           "graph-counting backend that runs each captured graph as is (`gm.forward`), so only capture",
           "differs. Correct = outputs (eval/cache/generate) or loss and every gradient (train) match eager",
           "on a fresh copy with the same weights (atol=rtol=1e-4), on the first and the last call.", ""]
    for label, d in (("bytegraph", bgd), ("torch.compile", tcd)):
        if d:
            m = d["meta"]
            out.append(f"- {label}: run {m.get('date')}, {m.get('total_s')} s, PYTHONPATH={m.get('pythonpath') or '-'}"
                       f", args `{' '.join(m.get('argv', []))}`")
    fam = collections.Counter(e.get("family") for e in kept)
    out += [f"- models kept: {len(kept)} ({dict(fam)}), not kept: {len(models.get('not_kept', []))}", "",
            "## Summary", ""]
    out += summary(bg, tc)
    w = worse(bg, tc)
    out += ["", f"## Where bytegraph does worse than torch.compile ({len(w)} pairs)", ""]
    out += [f"- `{n}:{c}`: {why[:200]}" for (n, c), why in w]
    groups = collections.defaultdict(list)
    for k, r in sorted(bg.items()):
        if not single(r) and r.get("status") != "eager_error":
            groups[_norm(reason(r))].append(f"{k[0]}:{k[1]}")
    out += ["", "## bytegraph: pairs not captured as one correct graph, grouped by reason", ""]
    for why, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        out.append(f"- **{len(names)}** -- {why}: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}")
    out += ["", "## Per pair", "",
            "| model | config | class | bytegraph | graphs | first s | steady ms | torch | graphs | first s "
            "| steady ms |", "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|"]

    def cell(r):
        if r is None:
            return "-", "", "", ""
        st = "ok" if ran(r) and r.get("correct") else r.get("status", "?")
        steady = f"{r['steady_s'] * 1e3:.2f}" if r.get("steady_s") else ""
        return st, str(r.get("graphs", "")), str(r.get("first_call_s", "")), steady
    for k in sorted(set(bg) | set(tc)):
        cls = (bg.get(k) or tc.get(k)).get("class", "")
        out.append(f"| {k[0]} | {k[1]} | {cls} | " + " | ".join(cell(bg.get(k))) + " | "
                   + " | ".join(cell(tc.get(k))) + " |")
    out += ["", f"## Model types not kept ({len(models.get('not_kept', []))}), grouped by cause", ""]
    for why, names in not_kept_groups(models):
        out.append(f"- **{len(names)}** -- {why}: {', '.join(names)}")
    with open(os.path.join(RESULTS, "corpus.md"), "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
