"""Red team 7: warm-started entries that end in a graph break (runtime/warm*.py, the resume
functions made again from their keys), when something the code after the break reads changed
between the processes without the compiled function's own source changing: a global read after
the break (set from the environment), a class attribute, the body of an inlined callee in
another module, a callee before the break. Each phase is a fresh interpreter; every call is
compared with eager, and a warm phase whose inputs changed must not return the cold results."""
import textwrap

from warm_harness import run_phase, write_module

HELPER = textwrap.dedent('''
    def post(y):
        return y * 3

    def pre(x):
        return x + 1
''')

USER_MODULE = textwrap.dedent('''
    import os
    import torch
    import bytegraph
    import w7helper

    SCALE = float(os.environ.get("W7_SCALE", "3"))

    class Cfg:
        shift = float(os.environ.get("W7_SHIFT", "1"))

    def after_global(x):
        y = x * 2
        if y.sum() > 0:              # a data-dependent branch: resume functions
            y = y + 1
        return y * SCALE

    def after_class(x):
        y = x * 2
        if y.sum() > 0:
            y = y + 1
        return y + Cfg.shift

    def after_callee(x):
        y = x * 2
        if y.sum() > 0:
            y = y + 1
        return w7helper.post(y)

    def before_callee(x):
        y = w7helper.pre(x)
        if y.sum() > 0:
            y = y + 1
        return y * 2

    def loop_print(x):
        for i in range(3):
            x = x * SCALE
            print(i)
        return x
''')

PHASE = textwrap.dedent('''
    import contextlib, io, json, sys
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    import bytegraph
    bytegraph.config.cache_dir = spec["cache_dir"]
    import w7mod as m
    x = torch.arange(8.0) - 2
    inputs = [(x.abs() + 0.1,), (-x.abs() - 0.1,), (x.abs() + 0.2,)]
    ok, sums = {}, {}
    for name in spec["fns"]:
        fn = getattr(m, name)
        compiled = bytegraph.compile(fn, backend="eager")
        good = True
        for a in inputs:
            with contextlib.redirect_stdout(io.StringIO()):
                got, want = compiled(*a), fn(*a)
            good = good and torch.allclose(got, want)
        ok[name] = good
        sums[name] = float(want.sum())
    print("RESULT" + json.dumps({"ok": ok, "sums": sums, "warm": dict(bytegraph.counters["warm"]),
                                 "frames": dict(bytegraph.counters["frames"])}))
''')

ALL = ["after_global", "after_class", "after_callee", "before_callee", "loop_print"]


def _write(work, helper=HELPER):
    write_module(work, "w7mod.py", USER_MODULE)
    write_module(work, "w7helper.py", helper)


def test_round_trip(tmp_path):
    _write(tmp_path)
    cold = run_phase(PHASE, tmp_path, ALL)
    assert cold["ok"] == dict.fromkeys(ALL, True), cold
    warm = run_phase(PHASE, tmp_path, ALL)
    assert warm["ok"] == dict.fromkeys(ALL, True), warm
    assert warm["warm"].get("hit"), warm


def test_global_read_after_break_changed(tmp_path):
    _write(tmp_path)
    cold = run_phase(PHASE, tmp_path, ["after_global", "loop_print"])
    warm = run_phase(PHASE, tmp_path, ["after_global", "loop_print"], W7_SCALE="5")
    assert warm["ok"] == {"after_global": True, "loop_print": True}, warm
    assert warm["sums"] != cold["sums"]


def test_class_attribute_read_after_break_changed(tmp_path):
    _write(tmp_path)
    run_phase(PHASE, tmp_path, ["after_class"])
    warm = run_phase(PHASE, tmp_path, ["after_class"], W7_SHIFT="-4")
    assert warm["ok"] == {"after_class": True}, warm


def test_callee_in_other_module_changed(tmp_path):
    _write(tmp_path)
    run_phase(PHASE, tmp_path, ["after_callee", "before_callee"])
    _write(tmp_path, HELPER.replace("y * 3", "y * 7").replace("x + 1", "x - 9"))
    warm = run_phase(PHASE, tmp_path, ["after_callee", "before_callee"])
    assert warm["ok"] == {"after_callee": True, "before_callee": True}, warm
