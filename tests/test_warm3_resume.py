"""Warm start (runtime/warm.py, warm_recipes.py "resume" / "trampoline") of entries that end in
a graph break with resume functions: the resume function is made again from its key (the code
it was built from, offset, stack layout, ...) and its own entries are stored under a record id
that extends the root's; its hash (the generated code, which holds the whole original code)
is checked on load. Each phase is a fresh interpreter; every call is compared with eager."""
import textwrap

from warm_harness import assert_edit_misses, run_phase, write_module


USER_MODULE = textwrap.dedent('''
    import torch
    import bytegraph

    def branch(x):                   # a data-dependent branch in the compiled function
        y = x * 2
        if y.sum() > 0:
            y = y + 1
        else:
            y = y - 1
        return torch.sin(y) * 3

    def helper(y):
        if y.sum() > 0:              # ... in an inlined frame: the root's resume function
            return y + 1             # calls the helper's (plain) resume function first
        return y - 1

    def nested(x):
        return helper(x * 2) * 3

    def _side(t):
        return t.sum().item()

    side = bytegraph.disable(_side)

    def through(x):                  # a call the trace cannot enter: run by the trampoline
        s = side(x)
        return x * s + 1
''')

PHASE = textwrap.dedent('''
    import json, sys
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    import bytegraph
    bytegraph.config.cache_dir = spec["cache_dir"]
    import w3rmod as m
    x = torch.randn(8)
    inputs = [(x.abs() + 0.1,), (-x.abs() - 0.1,), (x.abs() + 0.2,)]
    ok = {}
    for name in spec["fns"]:
        fn = getattr(m, name)
        compiled = bytegraph.compile(fn, backend="eager")
        ok[name] = all(torch.allclose(compiled(*a), fn(*a)) for a in inputs)
    print("RESULT" + json.dumps({"ok": ok, "warm": dict(bytegraph.counters["warm"]),
                                 "frames": dict(bytegraph.counters["frames"])}))
''')


def _phase(work, fns):
    return run_phase(PHASE, work, fns)


def _write(work, text):
    write_module(work, "w3rmod.py", text)


ALL = ["branch", "nested", "through"]


def test_resume_entries_round_trip(tmp_path):
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ALL)
    assert cold["ok"] == dict.fromkeys(ALL, True), cold
    assert not cold["warm"].get("unportable"), cold
    traced = cold["frames"]["total"]
    assert traced >= 7, cold        # 3 roots, both branches' resume functions of 2, 1 after side
    warm = _phase(tmp_path, ALL)
    assert warm["ok"] == dict.fromkeys(ALL, True), warm
    assert warm["frames"].get("total", 0) == 0, warm
    # one hit per compiled function (each state loads all its stored entries at once)
    assert warm["warm"].get("hit") == cold["warm"]["miss"] and not warm["warm"].get("rejected"), warm


def test_resume_code_after_break_changed_misses(tmp_path):
    # the code after the break changes (in the compiled function, in the inlined helper): the
    # stored records miss, everything is traced again and matches eager
    assert_edit_misses(_phase, _write, tmp_path, USER_MODULE, ["branch", "nested"],
                       ("y = y + 1", "y = y + 5"), ("return y + 1 ", "return y + 7 "))


def test_resume_code_before_break_changed_misses(tmp_path):
    assert_edit_misses(_phase, _write, tmp_path, USER_MODULE, ["branch", "through"],
                       ("y = x * 2", "y = x * 4"), ("x * s + 1", "x * s + 2"))


def test_resume_disabled_callee_changed(tmp_path):
    # the function the trampoline runs changes: the entries hold it by name, the call gives
    # the new result (it is never traced)
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ["through"])
    assert cold["ok"] == {"through": True}, cold
    _write(tmp_path, USER_MODULE.replace("return t.sum().item()", "return t.max().item() * 2"))
    warm = _phase(tmp_path, ["through"])
    assert warm["ok"] == {"through": True}, warm
