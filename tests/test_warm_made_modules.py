"""Warm start of entries holding a stateless module the trace built for real (transformers'
`ACT2FN[name](x)` makes a new activation module on every call): the module is built again in
the warm process from its class and arguments (runtime/warm.py recipe "made_module"). Each
phase is a fresh interpreter; every call is compared with eager."""
import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USER_MODULE = textwrap.dedent('''
    import torch

    ACTS = {"silu": (torch.nn.SiLU, {}), "leaky": (torch.nn.LeakyReLU, {"negative_slope": 0.3})}

    def act(name):
        cls, kwargs = ACTS[name]
        return cls(**kwargs)

    def f(x):
        return act("silu")(x) + act("leaky")(x - 1)
''')

PHASE = textwrap.dedent('''
    import json, sys
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    import bytegraph
    bytegraph.config.cache_dir = spec["cache_dir"]
    import madmod as m
    x = torch.randn(6)
    torch.manual_seed(0)
    compiled = bytegraph.compile(m.f, backend="eager")
    ok = all(torch.allclose(compiled(x), m.f(x)) for _ in range(2))
    rng = torch.rand(3).tolist()          # no random numbers consumed by building modules
    print("RESULT" + json.dumps({"ok": ok, "rng": rng, "warm": dict(bytegraph.counters["warm"]),
                                 "frames": dict(bytegraph.counters["frames"])}))
''')


def _phase(work):
    spec = dict(dir=str(work / "src"), cache_dir=str(work / "cache"))
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("BYTEGRAPH_CACHE_DIR", None)
    p = subprocess.run([sys.executable, "-c", PHASE, json.dumps(spec)], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")][-1][6:])


def test_stateless_modules_built_in_forward_warm(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "madmod.py").write_text(USER_MODULE)
    cold = _phase(tmp_path)
    assert cold["ok"], cold
    assert not cold["warm"].get("unportable") and cold["warm"].get("saved"), cold
    warm = _phase(tmp_path)
    assert warm["ok"], warm
    assert warm["warm"].get("hit") == 1 and warm["frames"].get("total", 0) == 0, warm
    assert warm["rng"] == cold["rng"]
