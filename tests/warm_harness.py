"""Shared pieces of the warm-start tests that run a phase script in a fresh interpreter: write
the user module, run the script with a cache directory, read its RESULT line."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_phase(script, work, fns, **env_extra):
    """Run `script` in a fresh interpreter on the module under work/src, cache in work/cache."""
    spec = dict(dir=str(work / "src"), cache_dir=str(work / "cache"), fns=fns)
    env = dict(os.environ, PYTHONPATH=ROOT, **env_extra)
    env.pop("BYTEGRAPH_CACHE_DIR", None)
    p = subprocess.run([sys.executable, "-c", script, json.dumps(spec)], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")][-1][6:])


def write_module(work, filename, text):
    """work/src/<filename> holds `text`, with no stale bytecode beside it."""
    src = work / "src"
    src.mkdir(exist_ok=True)
    (src / filename).write_text(text)
    cache = src / "__pycache__"
    if cache.exists():
        for p in cache.iterdir():
            p.unlink()


def assert_edit_misses(phase, write, work, text, fns, *edits):
    """Cold run of `fns` on the module `text`; then, with each (old, new) of `edits` replaced in
    it, a warm process: every call correct, no stored entry hit, as many frames compiled as cold."""
    write(work, text)
    cold = phase(work, fns)
    assert cold["ok"] == dict.fromkeys(fns, True), cold
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    write(work, text)
    warm = phase(work, fns)
    assert warm["ok"] == dict.fromkeys(fns, True), warm
    assert not warm["warm"].get("hit"), warm
    assert warm["frames"]["total"] == cold["frames"]["total"], (cold, warm)
    return cold, warm
