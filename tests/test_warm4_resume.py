"""Warm start of resume functions that earlier sessions left unpersisted (runtime/warm_recipes.py
`_check_free`, `_closure_owner`, the record ids of `_resume`): a resume function with free
variables (`__class__` of a method calling super(), the wrapped function of a decorator's
closure) takes its cells from the function its code is found through, checked at save time to
be that function's very cells; a resume function made inside a loop from another resume
function's code gets a record id of its own (it extends its owner's). Also the resume path
with backend="inductor". Each phase is a fresh interpreter; every call is compared with eager."""
import textwrap

from warm_harness import assert_edit_misses, run_phase, write_module


USER_MODULE = textwrap.dedent('''
    import functools
    import torch

    class Base(torch.nn.Module):
        def forward(self, x):
            return x * 2

    class Child(Base):
        def forward(self, x):            # super(): its code has the free variable __class__
            y = super().forward(x)
            if y.sum() > 0:              # a break: the resume function keeps __class__
                y = y + 1
            else:
                y = y - 1
            return super().forward(y) * 3

    class Outer(torch.nn.Module):        # Child.forward inlined: its resume function is plain
        def __init__(self):
            super().__init__()
            self.child = Child()

        def forward(self, x):
            return self.child(x) + 1

    def loop(x):
        for i in range(3):
            x = x * 2
            if x.sum() > 0:              # a break in the loop body: resume functions made
                x = x + i                # from resume functions' code
            else:
                x = x - i
        return x.sin()

    def step(x, i):
        x = x * 2
        if x.sum() > 0:                  # ... in an inlined helper called in the loop
            return x + i
        return x - i

    def loop_helper(x):
        for i in range(3):
            x = step(x, i)
        return x.sin()

    def deco(f):
        @functools.wraps(f)
        def wrapper(x):
            y = f(x)
            if y.sum() > 0:              # a break in a closure whose free variable is f
                y = y + 1
            return f(y) * 2
        return wrapper

    @deco
    def decorated(x):
        return x.cos() + 1

    def branch(x):
        y = x * 2
        if y.sum() > 0:
            y = y + 1
        else:
            y = y - 1
        return torch.sin(y) * 3

    def build(name):
        if name in ("Child", "Outer"):
            torch.manual_seed(0)
            return globals()[name]().eval()
        return globals()[name]
''')

PHASE = textwrap.dedent('''
    import json, sys
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    import bytegraph
    bytegraph.config.cache_dir = spec["cache_dir"]
    backend = spec["fns"][0]
    if backend == "inductor":
        import torch._inductor.compile_fx  # noqa: F401
    import w4rmod as m
    x = torch.randn(8)
    inputs = [(x.abs() + 0.1,), (-x.abs() - 0.1,), (x.abs() + 0.2,)]
    ok = {}
    with torch.no_grad():
        for name in spec["fns"][1:]:
            fn = m.build(name)
            compiled = bytegraph.compile(fn, backend=backend)
            ok[name] = all(torch.allclose(compiled(*a), fn(*a), atol=1e-5) for a in inputs)
    print("RESULT" + json.dumps({"ok": ok, "warm": dict(bytegraph.counters["warm"]),
                                 "frames": dict(bytegraph.counters["frames"])}))
''')

ALL = ["Child", "Outer", "loop", "loop_helper", "decorated"]


def _phase(work, fns, backend="eager"):
    return run_phase(PHASE, work, [backend] + fns, TORCHINDUCTOR_CACHE_DIR=str(work / "inductor"))


def _write(work, text):
    write_module(work, "w4rmod.py", text)


def test_free_variable_and_loop_resumes_round_trip(tmp_path):
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ALL)
    assert cold["ok"] == dict.fromkeys(ALL, True), cold
    assert not cold["warm"].get("unportable"), cold
    warm = _phase(tmp_path, ALL)
    assert warm["ok"] == dict.fromkeys(ALL, True), warm
    assert warm["frames"].get("total", 0) == 0, warm
    # every compiled function and resume function found its own record: one hit each (before
    # the loop's resume functions had record ids of their own, two of them shared one record)
    assert warm["warm"].get("hit") == cold["warm"]["miss"], (cold, warm)
    assert not warm["warm"].get("rejected") and not warm["warm"].get("miss"), warm


def test_super_target_changed_misses(tmp_path):
    # the method super() reaches changes: the records (root and resume functions) miss, the
    # calls are traced again and match eager
    assert_edit_misses(_phase, _write, tmp_path, USER_MODULE, ["Child", "Outer"],
                       ("return x * 2\n", "return x * 5\n"))


def test_decorated_function_changed_misses(tmp_path):
    # the function in the wrapper's closure changes: it is inlined before and after the break,
    # so both records miss; the wrapper's cell holds the new function in the new process
    assert_edit_misses(_phase, _write, tmp_path, USER_MODULE, ["decorated"],
                       ("return x.cos() + 1", "return x.cos() + 2"))


def test_inductor_resume_round_trip(tmp_path):
    # backend="inductor": entries that end in a graph break, their resume functions (one with
    # __class__) and the graphs of each, rebuilt in a fresh process from the stored inductor
    # artifacts, with no trace
    fns = ["branch", "Child"]
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, fns, backend="inductor")
    assert cold["ok"] == dict.fromkeys(fns, True), cold
    assert not cold["warm"].get("unportable"), cold
    warm = _phase(tmp_path, fns, backend="inductor")
    assert warm["ok"] == dict.fromkeys(fns, True), warm
    assert warm["frames"].get("total", 0) == 0, warm
    assert warm["warm"].get("hit") == cold["warm"]["miss"], (cold, warm)
    assert warm["warm"].get("inductor_artifact", 0) >= 3, warm
