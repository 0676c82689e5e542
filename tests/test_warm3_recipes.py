"""Warm start (runtime/warm.py, warm_recipes.py) of entries that hold a nested function's code
object the trace built but never inlined (found again through the enclosing function's code,
checked by its hash), and of entries whose trace iterated a caller's set of strings (the
observed order is a guard, re-checked in the new process: another hash seed may reject the
entry, never reuse it wrongly). Each phase is a fresh interpreter; every call is compared with
eager."""
import os
import subprocess
import sys
import textwrap

from warm_harness import run_phase, write_module


USER_MODULE = textwrap.dedent('''
    import torch

    WEIGHTS = {"alpha": 1.0, "beta": 10.0, "gamma": 100.0, "delta": 1000.0}

    def helper(s):
        def scale(y):
            return y * s
        return scale

    def outer(x):                   # the nested code object sits in an inlined helper
        g = helper(2.0)
        return x + 1, g

    def own(x):                     # ... in the compiled function itself
        def shift(y):
            return y - 1
        return x * 2, shift

    def ordered(x, kinds):          # the result depends on the set's iteration order
        out = x
        for i, k in enumerate(kinds):
            out = out * 0.5 + WEIGHTS[k] * (i + 1)
        return out

    def built(x):                   # a set the trace builds of strings: this process's order
        out = x
        for i, k in enumerate(set(["alpha", "beta", "gamma", "delta"])):
            out = out * 0.5 + WEIGHTS[k] * (i + 1)
        return out
''')

PHASE = textwrap.dedent('''
    import json, sys
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    import bytegraph
    bytegraph.config.cache_dir = spec["cache_dir"]
    import w3mod as m
    x = torch.randn(4)
    kinds = set(["alpha", "beta", "gamma", "delta"])
    def check(name, fn, args):
        compiled = bytegraph.compile(fn, backend="eager")
        ok = True
        for _ in range(2):
            got, want = compiled(*args), fn(*args)
            if isinstance(want, tuple):         # (tensor, function): call the function too
                ok = ok and torch.allclose(got[0], want[0]) and torch.allclose(got[1](x), want[1](x))
                ok = ok and got[1].__qualname__ == want[1].__qualname__
            else:
                ok = ok and torch.allclose(got, want)
        return ok
    calls = {"outer": (m.outer, (x,)), "own": (m.own, (x,)), "ordered": (m.ordered, (x, kinds)),
             "built": (m.built, (x,))}
    ok = {name: check(name, *calls[name]) for name in spec["fns"]}
    print("RESULT" + json.dumps({"ok": ok, "warm": dict(bytegraph.counters["warm"]),
                                 "frames": dict(bytegraph.counters["frames"]),
                                 "order": list(kinds)}))
''')


def _phase(work, fns, seed):
    return run_phase(PHASE, work, fns, PYTHONHASHSEED=str(seed))


def _write(work, text):
    write_module(work, "w3mod.py", text)


def _seeds_with_two_orders():
    """Two hash seeds under which the set iterates in different orders."""
    code = 'print(list(set(["alpha", "beta", "gamma", "delta"])))'
    first = None
    for seed in range(40):
        env = dict(os.environ, PYTHONHASHSEED=str(seed))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env).stdout
        if first is None:
            first = (seed, out)
        elif out != first[1]:
            return first[0], seed
    raise AssertionError("no two seeds with different orders")


def test_nested_code_round_trip(tmp_path):
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ["outer", "own"], 0)
    assert cold["ok"] == {"outer": True, "own": True}, cold
    assert not cold["warm"].get("unportable") and cold["warm"].get("saved") == 2, cold
    warm = _phase(tmp_path, ["outer", "own"], 0)
    assert warm["ok"] == {"outer": True, "own": True}, warm
    assert warm["warm"].get("hit") == 2 and warm["frames"].get("total", 0) == 0, warm


def test_nested_code_enclosing_source_changed_misses(tmp_path):
    # the nested function's body changes (in the inlined helper, and in the compiled function
    # itself): both records miss, both functions are traced again and match eager
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ["outer", "own"], 0)
    assert cold["ok"] == {"outer": True, "own": True} and cold["warm"].get("saved") == 2, cold
    _write(tmp_path, USER_MODULE.replace("return y * s", "return y * s + 3")
           .replace("return y - 1", "return y - 7"))
    warm = _phase(tmp_path, ["outer", "own"], 0)
    assert warm["ok"] == {"outer": True, "own": True}, warm
    assert not warm["warm"].get("hit") and warm["warm"].get("miss") == 2, warm
    assert warm["frames"]["total"] == 2, warm


def test_caller_set_order_same_seed_hits(tmp_path):
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ["ordered"], 5)
    assert cold["ok"] == {"ordered": True}, cold
    assert not cold["warm"].get("unportable") and cold["warm"].get("saved"), cold
    warm = _phase(tmp_path, ["ordered"], 5)
    assert warm["order"] == cold["order"], (cold, warm)
    assert warm["ok"] == {"ordered": True}, warm
    assert warm["warm"].get("hit") == 1 and warm["frames"].get("total", 0) == 0, warm


def test_caller_set_order_other_seed_rejected(tmp_path):
    # another hash seed iterates the caller's set in another order: the stored order guard
    # rejects the entry, the function is traced again (correct); the record then holds both
    # orders, and a third process under either seed hits
    a, b = _seeds_with_two_orders()
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ["ordered"], a)
    assert cold["ok"] == {"ordered": True} and cold["warm"].get("saved"), cold
    warm = _phase(tmp_path, ["ordered"], b)
    assert warm["order"] != cold["order"], (cold, warm)
    assert warm["ok"] == {"ordered": True}, warm
    assert warm["warm"].get("rejected") == 1 and warm["frames"]["total"] == 1, warm
    for seed in (a, b):
        again = _phase(tmp_path, ["ordered"], seed)
        assert again["ok"] == {"ordered": True}, again
        assert again["warm"].get("hit") == 1 and again["frames"].get("total", 0) == 0, again


def test_built_string_set_not_persisted(tmp_path):
    # the trace built the set and iterated it in this process's hash order: not persisted
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ["built"], 0)
    assert cold["ok"] == {"built": True}, cold
    assert cold["warm"].get("unportable") == 1 and not cold["warm"].get("saved"), cold
    warm = _phase(tmp_path, ["built"], 1)
    assert warm["ok"] == {"built": True} and not warm["warm"].get("hit"), warm
