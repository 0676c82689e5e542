"""Corpus report: bench/results/corpus.md from the corpus JSON files.

Responsible for the side-by-side summary of bench/results/corpus_bytegraph.json and
corpus_torch.json (pairs built / correct / single-graph, where bytegraph does worse,
geomean time ratios), bytegraph failures grouped by reason, the graph-break section
(issue 7: per pair not captured whole, the share of tensor ops run inside graphs and the
graph count beside torch.compile's), the per-pair table, and the model types not kept
(from corpus_models.json) grouped by cause.
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
    """Correct and captured whole: one graph per call signature (cases.FULL_GRAPHS), every tensor op
    inside where the fraction was measured (cases.whole)."""
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
    frac = r.get("fraction_in_graphs")
    if r["graphs"] == FULL_GRAPHS[r["config"]] and frac is not None and frac < 1:
        return f"{r['graphs']} graphs but {frac:.1%} of the ops inside: " + _cause(r, ("fraction",))
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
    ("correct, captured whole (one graph per call signature, every measured op inside)",
     lambda rows: sum(bool(single(r)) for r in rows.values())),
    ("correct, one graph per call signature but ops outside it",
     lambda rows: sum(bool(ran(r) and r.get("correct") and not single(r)
                           and r.get("graphs") == FULL_GRAPHS[r["config"]]) for r in rows.values())),
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

        def vs_eager(rows):
            return geomean([rows[k]["steady_s"] / rows[k]["eager_steady_s"] for k in both
                            if rows[k].get("steady_s") and rows[k].get("eager_steady_s")])
        lines.append(f"- steady call / eager call of the same run (independent of the machine's load when each "
                     f"compiler ran), geomean over the same {len(both)} pairs: {label} **{vs_eager(bg):.3f}x**, "
                     f"torch.compile **{vs_eager(tc):.3f}x**.")
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


FRACTION_GOAL = 0.95   # issue 7: share of a pair's tensor ops that run inside graphs


def _graphs_cell(r):
    per = r.get("graphs_per_call")
    g = str(r.get("graphs", ""))
    return f"{g} ({'+'.join(map(str, per))})" if per and len(per) > 1 else g


def _top(counts):
    return max(counts.items(), key=lambda kv: kv[1])[0]


def _cause(r, misses=()):
    """The main reason a split pair misses its goals: for a low fraction, its most frequent
    whole-function fallback (the function ran eagerly; "qualname: " dropped so that one cause in
    several classes groups together); else its most frequent graph break; else what it recorded."""
    if r.get("fallbacks") and ("graphs" not in misses or not r.get("breaks")):
        return "fallback: " + _top(r["fallbacks"]).partition(": ")[2]
    if r.get("breaks"):
        return "break: " + _top(r["breaks"])
    return reason(r)


def _misses(r, t):
    """Which goals of issue 7 a split pair misses: fraction in graphs, graph count vs torch.compile."""
    out = []
    frac = r.get("fraction_in_graphs")
    if frac is None or frac < FRACTION_GOAL:
        out.append("fraction" if frac is not None else "fraction not measured")
    if t is None or not ran(t) or t.get("graphs") is None:
        out.append("no torch.compile row")
    elif r.get("graphs", 0) > t["graphs"]:
        out.append("graphs")
    return out


def _frac(r):
    f = r.get("fraction_in_graphs")
    return "-" if f is None else f"{f:.3f}"


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return float("nan") if not n else (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2)


def graph_breaks(label, bg, tc):
    """Issue 7's corpus acceptance: every pair that is not captured as one graph per call signature,
    with the share of its aten ops run inside graphs on a steady call and its graphs beside
    torch.compile's; then the counts, and the pairs missing a goal grouped by cause."""
    split = {k: r for k, r in sorted(bg.items()) if ran(r) and not single(r)}
    measured = {k: r for k, r in split.items() if r.get("fraction_in_graphs") is not None}
    fracs = [r["fraction_in_graphs"] for r in measured.values()]
    meets_f = [k for k, r in measured.items() if r["fraction_in_graphs"] >= FRACTION_GOAL]
    meets_g = [k for k, r in split.items() if "graphs" not in _misses(r, tc.get(k))
               and "no torch.compile row" not in _misses(r, tc.get(k))]
    both = [k for k, r in split.items() if not _misses(r, tc.get(k))]
    probed = [r for r in bg.values() if ran(r)]
    all_fracs = [r["fraction_in_graphs"] for r in probed if r.get("fraction_in_graphs") is not None]
    recompiled = [f"{r['name']}:{r['config']}" for r in probed if r.get("probe_recompiles")
                  and not (r.get("steady_compiles") or [0])[-1]]
    every_call = [f"{r['name']}:{r['config']}" for r in probed if (r.get("steady_compiles") or [0])[-1]]
    probe_wrong = [f"{r['name']}:{r['config']}" for r in probed if r.get("probe_mismatch")]
    probe_err = [f"{r['name']}:{r['config']}: {r['probe_error']}" for r in probed if r.get("probe_error")]
    out = ["", f"## Graph breaks ({label})", "",
           "Measured on one steady call (after the compiling call and the timed calls; it must hit the cache) "
           "of every pair: each aten op of the compiled calls (seen by a `TorchDispatchMode`) is counted "
           "inside a graph when a compiled graph is running (the backend's callable sets a flag), else outside "
           "(Python code run at a graph break, or a whole function that fell back). `fraction` = inside / "
           "(inside + outside). Only the compiled object's calls are counted: not the `generate` loop around "
           "the compiled forward, nor train's `backward()` (the counting backend runs graphs as captured, so "
           "autograd runs backward eagerly for both compilers). Goals (issue 7), for every pair not captured "
           f"as one graph per call signature: fraction >= {FRACTION_GOAL:.0%}, graphs <= torch.compile's.", "",
           f"- pairs run: {len(probed)}; fraction measured on {len(all_fracs)}; over all of them: "
           f"median {_median(all_fracs):.4f}, geomean {geomean(all_fracs):.4f} (zeros left out: "
           f"{sum(f == 0 for f in all_fracs)}), "
           f"{sum(f >= FRACTION_GOAL for f in all_fracs)} at >= {FRACTION_GOAL:.0%}",
           f"- pairs whose last timed call (no counting mode) compiled again: {len(every_call)}"
           + (f" ({', '.join(every_call)})" if every_call else "")
           + f"; measured calls that compiled when the timed call before them did not (the counting mode "
           f"changing what is guarded): {len(recompiled)}" + (f" ({', '.join(recompiled)})" if recompiled else "")
           + f"; that returned a result different from eager: {len(probe_wrong)}"
           + (f" ({', '.join(probe_wrong)})" if probe_wrong else "")
           + f"; measurement errors: {len(probe_err)}" + (f" ({'; '.join(probe_err)})" if probe_err else ""),
           f"- **{len(split)}** pairs not captured as one graph per call signature; fraction measured on "
           f"{len(measured)}: median **{_median(fracs):.4f}**, geomean **{geomean(fracs):.4f}** over the "
           f"{sum(f > 0 for f in fracs)} above zero ({sum(f == 0 for f in fracs)} at zero: the compiled "
           f"function ran eagerly as a whole)",
           f"- fraction >= {FRACTION_GOAL:.0%}: **{len(meets_f)}** / {len(split)}; graphs <= torch.compile's: "
           f"**{len(meets_g)}** / {len(split)}; both goals: **{len(both)}** / {len(split)}", ""]
    miss = collections.defaultdict(list)
    for k, r in split.items():
        m = _misses(r, tc.get(k))
        if m:
            miss[_norm(_cause(r, m))].append((k, r, m))
    out += [f"### Pairs missing a goal ({sum(len(v) for v in miss.values())}), grouped by cause", ""]
    for why, items in sorted(miss.items(), key=lambda kv: -len(kv[1])):
        names = ", ".join(f"`{n}:{c}` ({_frac(r)}, {r.get('graphs')} vs {(tc.get((n, c)) or {}).get('graphs')} "
                          f"graphs; misses {' + '.join(m)})" for (n, c), r, m in items)
        out.append(f"- **{len(items)}** -- {why}: {names}")
    out += ["", "### Every pair not captured whole", "",
            "`graphs`: bytegraph's graphs (per top-level compiled call of the first run when there are several); "
            "`outside`: the most frequent aten ops run outside graphs.", "",
            "| pair | fraction | inside / outside ops | bytegraph graphs | torch graphs | goals | breaks (count) "
            "| fallbacks | outside |", "|---|---:|---:|---:|---:|---|---|---|---|"]
    for k, r in split.items():
        t = tc.get(k)
        m = _misses(r, t)
        brk = "; ".join(f"{why[:110]} ({n})" for why, n in sorted((r.get("breaks") or {}).items(),
                                                                  key=lambda kv: -kv[1])[:3])
        fb = "; ".join(why[:140] for why in (r.get("fallbacks") or {}))[:300]
        top = ", ".join(f"{op.removeprefix('aten.')} {n}" for op, n in list((r.get("probe_outside_top") or {}).items())[:4])
        cells = [f"{k[0]}:{k[1]}", _frac(r),
                 f"{r.get('probe_inside', '')} / {r.get('probe_outside', '')}", _graphs_cell(r),
                 str((t or {}).get("graphs", "-")), "ok" if not m else "miss " + ", ".join(m), brk, fb, top]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return out


def not_kept_groups(models):
    groups = collections.defaultdict(list)
    for r in models.get("not_kept", []):
        why = r.get("reason", "?")
        why = re.sub(r"^[A-Za-z0-9_]+: (build|eval|slow): ", r"\1: ", why)
        groups[_norm(why)].append(r["name"].split("/", 1)[1])
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))


SOURCES = (("bytegraph", "corpus_bytegraph.json"), ("bytegraph (main)", "corpus_bytegraph_main.json"))


def _cell(r, fraction=False):
    if r is None:
        return ["-", "", "", ""] + [""] * fraction
    st = "ok" if ran(r) and r.get("correct") else r.get("status", "?")
    steady = f"{r['steady_s'] * 1e3:.2f}" if r.get("steady_s") else ""
    return [st, str(r.get("graphs", "")), str(r.get("first_call_s", "")), steady] + \
        ([_frac(r)] if fraction else [])


def _run_line(label, d):
    m = d["meta"]
    paths = sorted({r.get("compiler_path", "?") for r in d.get("rows", [])})
    return (f"- {label}: run {m.get('date')}, {m.get('total_s')} s for the pairs of that invocation, "
            f"PYTHONPATH={m.get('pythonpath') or '-'}, code from {', '.join(paths)}"
            f"{' (checkout commit ' + m['commit'] + ')' if m.get('commit') else ''}, "
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
           "Whole capture = one graph per distinct call signature (eval/train 1, cache 2, generate 3) and, where",
           "measured (bytegraph rows; section Graph breaks), every tensor op of the compiled calls inside graphs.", ""]
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
    for label, bg in sources:
        out += graph_breaks(label, bg, tc)
    head = ["model", "config", "class"]
    for label, _ in sources:
        head += [label, "graphs", "first s", "steady ms", "in graphs"]
    head += ["torch", "graphs", "first s", "steady ms"]
    out += ["", "## Per pair", "", "`in graphs`: the fraction of the compiled calls' aten ops run inside graphs "
            "on a steady call (section Graph breaks).", "", "| " + " | ".join(head) + " |",
            "|---|---|---|" + "---|---:|---:|---:|---:|" * len(sources) + "---|---:|---:|---:|"]
    keys = sorted(set(tc).union(*(set(bg) for _, bg in sources)))
    for k in keys:
        r0 = next(r for r in [tc.get(k)] + [bg.get(k) for _, bg in sources] if r)
        cells = [k[0], k[1], r0.get("class", "")]
        for _, bg in sources:
            cells += _cell(bg.get(k), fraction=True)
        cells += _cell(tc.get(k))
        out.append("| " + " | ".join(cells) + " |")
    out += ["", f"## Model types not kept ({len(models.get('not_kept', []))}), grouped by cause", ""]
    for why, names in not_kept_groups(models):
        out.append(f"- **{len(names)}** -- {why}: {', '.join(names)}")
    with open(os.path.join(RESULTS, "corpus.md"), "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
