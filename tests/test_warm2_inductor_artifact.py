"""Warm start with backend="inductor": the stored inductor artifact (AOT autograd's bundled
entry, backends/registry.py `inductor_artifact`) and its key. Each phase runs in a fresh
interpreter; every call is compared with eager in the same process. A warm process either
rebuilds the compiled graph from the artifact (counters["warm"]["inductor_artifact"]) or, when
the artifact's key does not match (graph, inductor config, torch version, thread count) or the
artifact cannot be loaded, has inductor compile the graph again -- never runs a stale one."""
import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USER_MODULE = textwrap.dedent('''
    import torch

    def f(x, w):
        return torch.relu(x @ w) * 2.5 + 1

    def f_edited(x, w):
        return torch.relu(x @ w) * 4.0 + 1

    def pair(x):
        y = torch.sin(x)
        return y * 3, (x.cos() - y).sum(1)

    def cases():
        torch.manual_seed(0)
        return {"f": (f, (torch.randn(4, 6), torch.randn(6, 5))),
                "pair": (pair, (torch.randn(3, 7),))}
''')

PHASE = textwrap.dedent('''
    import json, sys
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    exec(spec.get("setup", ""))
    import bytegraph
    bytegraph.config.cache_dir = spec["cache_dir"]
    import usermod
    cases = usermod.cases()
    out = {"ok": {}, "types": {}}
    grad = spec.get("grad", False)
    for name in spec["fns"]:
        fn, args = cases[name]
        compiled = bytegraph.compile(fn, backend="inductor")
        with torch.set_grad_enabled(grad):
            for _ in range(2):
                got = compiled(*args)
                want = getattr(usermod, spec.get("want", {}).get(name, name))(*args)
                flat_got = got if isinstance(got, tuple) else (got,)
                flat_want = want if isinstance(want, tuple) else (want,)
                ok = type(got) is type(want) and len(flat_got) == len(flat_want) and all(
                    torch.allclose(a, b) for a, b in zip(flat_got, flat_want))
                out["ok"][name] = ok and out["ok"].get(name, True)
    out["warm"] = dict(bytegraph.counters["warm"])
    out["frames"] = dict(bytegraph.counters["frames"])
    if "torch._dynamo.utils" in sys.modules:
        c = sys.modules["torch._dynamo.utils"].counters
        out["inductor"] = {**dict(c["inductor"]), **dict(c["aot_autograd"])}
    print("RESULT" + json.dumps(out))
''')


def _phase(work, **spec):
    spec.setdefault("dir", str(work / "src"))
    spec.setdefault("cache_dir", str(work / "cache"))
    env = dict(os.environ, PYTHONPATH=ROOT, TORCHINDUCTOR_CACHE_DIR=str(work / "inductor"))
    env.pop("BYTEGRAPH_CACHE_DIR", None)
    p = subprocess.run([sys.executable, "-c", PHASE, json.dumps(spec)], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


@pytest.fixture
def cold(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "usermod.py").write_text(USER_MODULE)
    res = _phase(tmp_path, fns=["f", "pair"])
    assert res["ok"] == {"f": True, "pair": True}, res
    assert res["warm"].get("saved") == 2 and res["frames"]["total"] == 2, res
    return tmp_path


def _records(work):
    """(path, payload) of every cache file."""
    out = []
    for name in sorted(os.listdir(work / "cache")):
        path = work / "cache" / name
        data = path.read_bytes()
        magic, _, rest = data.partition(b"\n")
        out.append((path, magic + b"\n", pickle.loads(rest)))
    return out


def _graphs(payload):
    for rec in payload["records"]:
        for entry in rec["entries"]:
            for g in entry["graphs"]:
                yield g


def _rewrite(work, change):
    for path, magic, payload in _records(work):
        for rec in payload["records"]:
            for entry in rec["entries"]:
                entry["graphs"] = [change(list(g)) for g in entry["graphs"]]
        path.write_bytes(magic + pickle.dumps(payload, protocol=4))


def test_warm_uses_artifact(cold):
    # the cold process stored one artifact per graph; the warm one rebuilds both graphs from
    # them: no trace, no inductor compile, and the same results (and output types) as eager
    arts = [g[4] for _, _, p in _records(cold) for g in _graphs(p)]
    assert len(arts) == 2 and all(a and a["blob"] for a in arts), arts
    res = _phase(cold, fns=["f", "pair"])
    assert res["ok"] == {"f": True, "pair": True}, res
    assert res["warm"].get("hit") == 2 and res["warm"].get("inductor_artifact") == 2, res
    assert res["frames"].get("total", 0) == 0, res
    ind = res.get("inductor", {})
    assert not ind.get("fxgraph_cache_miss") and not ind.get("autograd_cache_miss"), res
    assert not ind.get("autograd_cache_hit"), res      # inductor's caches are not even consulted


def test_inductor_config_change_invalidates(cold):
    # another inductor setting: the artifact is stale; inductor compiles the graph again
    setup = "import torch._inductor.config as c; c.fallback_random = True; c.cpp.simdlen = 0"
    res = _phase(cold, fns=["f", "pair"], setup=setup)
    assert res["ok"] == {"f": True, "pair": True}, res
    assert res["warm"].get("inductor_artifact_stale") == 2, res
    assert not res["warm"].get("inductor_artifact"), res
    assert res["warm"].get("hit") == 2 and res["frames"].get("total", 0) == 0, res
    assert res["inductor"].get("autograd_cache_miss") == 2, res


def test_thread_count_change_invalidates(cold):
    # inductor's C++ kernels specialize on the thread count: part of the key
    res = _phase(cold, fns=["f"], setup=f"torch.set_num_threads({torch.get_num_threads() + 1})")
    assert res["ok"] == {"f": True}, res
    assert res["warm"].get("inductor_artifact_stale") == 1 and not res["warm"].get("inductor_artifact"), res


def test_torch_version_change_invalidates(cold):
    # another torch version string: the whole file is foreign (its header), nothing is loaded
    res = _phase(cold, fns=["f"], setup="torch.__version__ = '0.0.1+other'")
    assert res["ok"] == {"f": True}, res
    assert not res["warm"].get("inductor_artifact") and not res["warm"].get("hit"), res
    assert res["warm"].get("corrupt") == 1 and res["frames"]["total"] == 1, res


def test_torch_version_in_artifact_key(monkeypatch):
    # the artifact's own key names the torch build too (not only the file header)
    from bytegraph.backends import registry
    env = registry._artifact_env()
    monkeypatch.setattr(torch, "__version__", "0.0.1+other")
    assert registry._artifact_env() != env
    assert registry.load_inductor_artifact(env, b"never unpickled") is None


def test_graph_change_invalidates(cold):
    # the stored graph differs from the one the artifact was compiled from (the constant 2.5
    # became 4.0 in the record): the stale artifact is not run; the graph is compiled again
    # from its nodes, and the result is the stored graph's (f_edited's)
    def change(g):
        g[1] = _tuples(json.loads(json.dumps(g[1]).replace("2.5", "4.0")))
        return g
    _rewrite(cold, change)
    res = _phase(cold, fns=["f"], want={"f": "f_edited"})
    assert res["ok"] == {"f": True}, res
    assert res["warm"].get("inductor_artifact_stale") == 1 and not res["warm"].get("inductor_artifact"), res


def _tuples(x):
    """JSON turned the record's tuples into lists: make every list a tuple except the payloads
    of ("tuple" | "list" | "dict", [...]) nodes, as warm.py encodes them."""
    if isinstance(x, list):
        if len(x) == 2 and x[0] in ("tuple", "list", "dict") and isinstance(x[1], list):
            return (x[0], [_tuples(v) for v in x[1]])
        return tuple(_tuples(v) for v in x)
    return x


def test_corrupt_artifact_falls_back(cold):
    # an artifact that cannot be loaded is ignored (counted); inductor compiles the graph
    def change(g):
        g[4] = dict(g[4], blob=b"\x80\x04not a pickle")
        return g
    _rewrite(cold, change)
    res = _phase(cold, fns=["f", "pair"])
    assert res["ok"] == {"f": True, "pair": True}, res
    assert res["warm"].get("inductor_artifact_failed") == 2 and res["warm"].get("hit") == 2, res
    assert res["frames"].get("total", 0) == 0, res


# counts inductor's ISA probes (a build and a subprocess load of a probe library per ISA) in
# the phase, in a counter the phase reports
_COUNT_PROBES = textwrap.dedent('''
    import torch._inductor.cpu_vec_isa as _V
    import bytegraph as _bg
    _orig = _V.VecISA.check_build
    def _counted(self, code):
        _bg.counters["warm"]["test_isa_probes"] += 1
        return _orig(self, code)
    _V.VecISA.check_build = _counted
''')


def test_warm_reuses_probed_isas(cold):
    # the cold process stored the ISAs its probes found; the warm one, on the same machine and
    # settings, takes them for the ISAs this CPU reports and skips the probes. A stored list
    # that differs from what the CPU reports (another machine's) makes it probe as usual.
    isas = [g[4].get("isas") for _, _, p in _records(cold) for g in _graphs(p)]
    assert all(isinstance(i, list) and i for i in isas), isas
    res = _phase(cold, fns=["f", "pair"], setup=_COUNT_PROBES)
    assert res["ok"] == {"f": True, "pair": True}, res
    assert res["warm"].get("inductor_artifact") == 2 and not res["warm"].get("test_isa_probes"), res

    def change(g):
        g[4] = dict(g[4], isas=["an ISA this CPU does not report"])
        return g
    _rewrite(cold, change)
    res = _phase(cold, fns=["f", "pair"], setup=_COUNT_PROBES)
    assert res["ok"] == {"f": True, "pair": True}, res
    assert res["warm"].get("inductor_artifact") == 2 and res["warm"].get("test_isa_probes"), res


def test_missing_artifact_uses_inductor_caches(cold):
    # a record without artifacts (an older bytegraph, an unpicklable entry): the graph goes to
    # compile_fx, which inductor's AOT autograd cache serves from the cold process's compile
    def change(g):
        g[4] = None
        return g
    _rewrite(cold, change)
    res = _phase(cold, fns=["f", "pair"])
    assert res["ok"] == {"f": True, "pair": True}, res
    assert res["warm"].get("hit") == 2 and not res["warm"].get("inductor_artifact"), res
    assert res["inductor"].get("autograd_cache_hit") == 2, res


def test_grad_mode_graph(tmp_path):
    # a graph compiled with grad enabled on inputs that do not require grad is an inference
    # graph too; its artifact serves a warm process under the same grad mode
    src = tmp_path / "src"
    src.mkdir()
    (src / "usermod.py").write_text(USER_MODULE)
    cold = _phase(tmp_path, fns=["f"], grad=True)
    assert cold["ok"] == {"f": True} and cold["warm"].get("saved") == 1, cold
    res = _phase(tmp_path, fns=["f"], grad=True)
    assert res["ok"] == {"f": True}, res
    assert res["warm"].get("inductor_artifact") == 1 and res["frames"].get("total", 0) == 0, res


TRAIN_MODULE = textwrap.dedent('''
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 4)

        def forward(self, x):
            return (torch.tanh(self.lin(x)) * 3,)
''')

TRAIN_PHASE = textwrap.dedent('''
    import json, sys
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    import bytegraph
    bytegraph.config.cache_dir = spec["cache_dir"]
    import usermod
    torch.manual_seed(0)
    net = usermod.Net()
    x = torch.randn(5, 6, requires_grad=True)
    compiled = bytegraph.compile(net, backend="inductor")
    ok = True
    for _ in range(2):
        (want,) = net(x)
        gw = torch.autograd.grad(want.sum(), [x, *net.parameters()])
        (got,) = compiled(x)
        gg = torch.autograd.grad(got.sum(), [x, *net.parameters()])
        ok = ok and torch.allclose(got, want) and all(torch.allclose(a, b) for a, b in zip(gg, gw))
    print("RESULT" + json.dumps({"ok": ok, "warm": dict(bytegraph.counters["warm"]),
                                 "frames": dict(bytegraph.counters["frames"])}))
''')


def test_training_graph_artifact(tmp_path):
    # a graph whose inputs require grad: AOT autograd's training path hands back no
    # serializable entry, so no artifact is stored; the warm process compiles the stored graph
    # through compile_fx (no trace) and its gradients equal eager's
    src = tmp_path / "src"
    src.mkdir()
    (src / "usermod.py").write_text(TRAIN_MODULE)
    spec = dict(dir=str(src), cache_dir=str(tmp_path / "cache"))
    env = dict(os.environ, PYTHONPATH=ROOT, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"))
    env.pop("BYTEGRAPH_CACHE_DIR", None)
    out = []
    for _ in range(2):
        p = subprocess.run([sys.executable, "-c", TRAIN_PHASE, json.dumps(spec)], capture_output=True,
                           text=True, cwd=ROOT, env=env, timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        out.append(json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")][-1][6:]))
    cold, warm = out
    assert cold["ok"] and cold["warm"].get("saved"), cold
    assert warm["ok"], warm
    assert warm["warm"].get("hit") == 1 and warm["frames"].get("total", 0) == 0, warm
    assert not warm["warm"].get("inductor_artifact"), warm
