"""Warm start of entries whose graph holds a torch.vmap node (policy/vmap.py): the node's
target is a closure over the body's GraphModule, persisted as a recipe of its own (the body's
node list and the vmap options, runtime/warm_recipes.py "vmap"). Before session 10 such
entries were unportable (hf/falcon_mamba, mamba, jamba: traced again in every process). With
inductor, the vmap nodes are inlined as aten graphs before compiling, so inductor's caches and
the stored artifact apply to them too.

Each phase runs in a fresh interpreter and compares every call with eager; an edit of the
vmapped function's source makes the stored entry a miss."""
import textwrap

import pytest

from warm_harness import run_phase, write_module, assert_edit_misses

USER_MODULE = textwrap.dedent('''
    import torch

    def body(a, b):
        return (a * b).sin() + b.sum()

    def pair(a, b):
        return a + b, (a - b) * 2

    def simple(x, y):
        return torch.vmap(body, in_dims=(0, None))(x, y).cos() * 2

    def two_outputs(x, y):
        s, d = torch.vmap(pair, in_dims=(1, 1), out_dims=(0, 1))(x, y)
        return s * 3, d

    def nested(x, y):
        def row(r):
            return torch.vmap(body, in_dims=(0, None))(r, y)
        return torch.vmap(row)(x).tanh()

    def build(name):
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
    import vmapmod as m
    torch.manual_seed(0)
    args = {"simple": (torch.randn(4, 3), torch.randn(3)),
            "two_outputs": (torch.randn(3, 5), torch.randn(3, 5)),
            "nested": (torch.randn(2, 4, 3), torch.randn(3))}
    ok = {}
    with torch.no_grad():
        for name in spec["fns"][1:]:
            fn = m.build(name)
            compiled = bytegraph.compile(fn, backend=backend)
            for _ in range(2):
                got, want = compiled(*args[name]), fn(*args[name])
                got = got if isinstance(got, tuple) else (got,)
                want = want if isinstance(want, tuple) else (want,)
                ok[name] = ok.get(name, True) and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, want))
    print("RESULT" + json.dumps({"ok": ok, "warm": dict(bytegraph.counters["warm"]),
                                 "frames": dict(bytegraph.counters["frames"])}))
''')

ALL = ["simple", "two_outputs", "nested"]


def _phase(work, fns, backend="eager"):
    return run_phase(PHASE, work, [backend] + fns, TORCHINDUCTOR_CACHE_DIR=str(work / "inductor"))


def _write(work, text):
    write_module(work, "vmapmod.py", text)


@pytest.mark.parametrize("backend", ["eager", "inductor"])
def test_vmap_entries_round_trip(tmp_path, backend):
    _write(tmp_path, USER_MODULE)
    cold = _phase(tmp_path, ALL, backend)
    assert cold["ok"] == dict.fromkeys(ALL, True), cold
    assert not cold["warm"].get("unportable"), cold
    warm = _phase(tmp_path, ALL, backend)
    assert warm["ok"] == dict.fromkeys(ALL, True), warm
    assert warm["warm"].get("hit") == len(ALL) and warm["frames"].get("total", 0) == 0, warm
    if backend == "inductor":
        # the vmap nodes are inlined as aten graphs before inductor (policy/vmap.py
        # inline_vmaps): its caches apply, and each graph is rebuilt from its stored artifact
        assert warm["warm"].get("inductor_artifact") == len(ALL), warm


def test_vmapped_body_edit_misses(tmp_path):
    assert_edit_misses(_phase, _write, tmp_path, USER_MODULE, ["simple"],
                       ("return (a * b).sin() + b.sum()", "return (a * b).cos() + b.sum()"))
