"""Corpus runner: bytegraph vs torch.compile on real transformers / diffusers models.

Responsible for scheduling jobs onto an isolated worker process (bench/corpus/worker.py),
enforcing a per-pair timeout (a hang or crash kills only that worker, which is
restarted), and writing results incrementally:

  python bench/corpus/run.py --enumerate                 # -> bench/results/corpus_models.json
  python bench/corpus/run.py --compiler torch            # -> bench/results/corpus_torch.json
  python bench/corpus/run.py --compiler bytegraph        # -> bench/results/corpus_bytegraph.json
  options: --filter REGEX (on "name:config"), --configs eval,train, --limit N, --out PATH,
           --timeout S, --resume (skip pairs already in the output); every run rewrites bench/results/corpus.md (bench/corpus/report.py).

A run restricted by --filter/--configs/--limit merges its rows into the existing
output file (rows of the same (model, configuration) are replaced).
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(REPO, "bench", "results")
sys.path.insert(0, HERE)

import cases  # noqa: E402

WORKER_LOG = os.path.join(tempfile.gettempdir(), "corpus_worker.log")  # what the models print
RECYCLE_AFTER = 60  # jobs per worker process (bounds memory from imported model modules)


class Worker:
    """A worker child process; `ask(job, timeout)` -> result dict, or None after a timeout/crash."""

    def __init__(self):
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "worker.py")], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(WORKER_LOG, "a"),
                                     text=True, bufsize=1)
        self.lines = queue.Queue()
        self.jobs = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def ask(self, job, timeout):
        self.jobs += 1
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            line = self.lines.get(timeout=timeout)
        except (queue.Empty, BrokenPipeError, OSError):
            return None
        return json.loads(line) if line else None

    def stop(self):
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass


class Pool:
    """One worker at a time, replaced after a failure or RECYCLE_AFTER jobs."""

    def __init__(self):
        self.worker = None

    def ask(self, job, timeout):
        if self.worker is None or self.worker.jobs >= RECYCLE_AFTER:
            self.close()
            self.worker = Worker()
        t0 = time.perf_counter()
        result = self.worker.ask(job, timeout)
        if result is None:
            crashed = self.worker.proc.poll() is not None
            self.close()
            what = f"crash (exit {self.worker_exit})" if crashed else f"timeout after {timeout}s"
            return {"status": "timeout" if not crashed else "crash", "error": what,
                    "wall_s": round(time.perf_counter() - t0, 2)}
        result["wall_s"] = round(time.perf_counter() - t0, 2)
        return result

    def close(self):
        if self.worker is not None:
            self.worker.stop()
            self.worker_exit = self.worker.proc.returncode
            self.worker = None


def _write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _commit():
    """This checkout's commit (and "+dirty" with uncommitted changes), or "?"."""
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no", "bytegraph"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head + ("+dirty" if dirty else "")) or "?"
    except Exception:  # noqa: BLE001
        return "?"


def _meta():
    import platform
    return {"python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "argv": sys.argv[1:], "pythonpath": os.environ.get("PYTHONPATH", ""), "commit": _commit()}


def do_enumerate(args):
    import diffusers_models
    import hf_models
    names = [f"hf/{t}" for t in hf_models.model_types()] + [f"diffusers/{n}" for n in diffusers_models.NAMES]
    if args.filter:
        names = [n for n in names if re.search(args.filter, n)]
    if args.limit:
        names = names[:args.limit]
    out = args.out or os.path.join(RESULTS, "corpus_models.json")
    old = {}
    if os.path.exists(out) and (args.filter or args.limit):
        data = json.load(open(out))
        old = {r["name"]: r for r in data["kept"] + data["not_kept"]}
    pool = Pool()
    rows = dict(old)
    try:
        for i, name in enumerate(names):
            row = pool.ask({"op": "enumerate", "name": name}, args.timeout)
            row.setdefault("name", name)
            if "kept" not in row:
                row.update(kept=False, reason=f"{row.get('status')}: {row.get('error')}")
            rows[name] = row
            print(f"[{i + 1}/{len(names)}] {name}: {'kept ' + row['class'] if row['kept'] else row['reason'][:150]}",
                  flush=True)
            if i % 10 == 9 or i == len(names) - 1:
                ordered = sorted(rows.values(), key=lambda r: r["name"])
                _write_json(out, {"meta": _meta(), "kept": [r for r in ordered if r["kept"]],
                                  "not_kept": [r for r in ordered if not r["kept"]]})
    finally:
        pool.close()


def do_run(args):
    models = cases.load_models()
    pairs = cases.all_pairs(models)
    configs = args.configs.split(",") if args.configs else None
    pairs = [p for p in pairs if (not configs or p[1] in configs)
             and (not args.filter or re.search(args.filter, f"{p[0]}:{p[1]}"))]
    # The CI sample first, then the few cache/generate pairs, then eval, then train: an
    # interrupted run (continued later with --resume) still covers every configuration.
    first = {(n, c) for n, c, _ in cases.ci_sample(models)}
    order = {c: i for i, c in enumerate(("cache", "generate", "eval", "train"))}
    pairs.sort(key=lambda p: ((p[0], p[1]) not in first, order[p[1]], p[0]))
    if args.limit:
        pairs = pairs[:args.limit]
    out = args.out or os.path.join(RESULTS, f"corpus_{args.compiler}.json")
    rows = {}
    if os.path.exists(out) and (args.filter or args.configs or args.limit or args.resume):
        rows = {(r["name"], r["config"]): r for r in json.load(open(out))["rows"]}
    if args.resume:
        pairs = [p for p in pairs if (p[0], p[1]) not in rows]
    pool = Pool()
    t_start = time.perf_counter()
    try:
        for i, (name, config, entry) in enumerate(pairs):
            job = {"op": "run", "name": name, "config": config, "entry": entry, "compiler": args.compiler}
            row = pool.ask(job, args.timeout)
            row.update(name=name, config=config, compiler=args.compiler)
            row.setdefault("correct", False)
            rows[(name, config)] = row
            print(f"[{i + 1}/{len(pairs)}] {name}:{config} {row.get('status')} graphs={row.get('graphs')} "
                  f"first={row.get('first_call_s')} {(row.get('error') or row.get('mismatch') or '')[:120]}",
                  flush=True)
            if i % 5 == 4 or i == len(pairs) - 1:
                meta = dict(_meta(), compiler=args.compiler, total_s=round(time.perf_counter() - t_start, 1))
                _write_json(out, {"meta": meta, "rows": sorted(rows.values(), key=lambda r: (r["name"], r["config"]))})
    finally:
        pool.close()
    print(f"done: {len(pairs)} pairs in {time.perf_counter() - t_start:.0f}s", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--enumerate", action="store_true", help="build-check every model type")
    p.add_argument("--compiler", choices=("bytegraph", "torch"))
    p.add_argument("--filter", help="regex on 'name:config' (or the model name with --enumerate)")
    p.add_argument("--configs", help="comma-separated subset of eval,train,cache,generate")
    p.add_argument("--limit", type=int)
    p.add_argument("--out")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds per job")
    p.add_argument("--resume", action="store_true", help="skip pairs already in the output file")
    p.add_argument("--no-report", action="store_true")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the worker is stopped too
    os.makedirs(RESULTS, exist_ok=True)
    if args.enumerate:
        do_enumerate(args)
    elif args.compiler:
        do_run(args)
    else:
        p.error("give --enumerate or --compiler")
    if not args.no_report:
        import report
        report.main()


if __name__ == "__main__":
    main()
