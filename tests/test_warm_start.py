"""Warm start from disk (runtime/warm.py), each phase in a fresh interpreter.

A cold process compiles the functions of a small user module with a cache directory set; a warm
process (same module, or an edited copy) compiles them again. Differential: every call's result
is compared with eager in the same process; the counters say whether the stored entries were used
(a hit means no trace: counters["frames"]["total"] == 0)."""
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USER_MODULE = textwrap.dedent('''
    import functools
    import torch
    import torch.nn.functional as F

    SCALE = 2.0

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)
        return wrapper

    @deco
    def decorated(x, k=2):
        return x * k

    def h(x):
        return decorated(x) + 1

    def helper(x):
        return x * SCALE

    def f(x, y=3):
        return F.relu(helper(x) + y).sum(0)

    def g(opts, x):
        return opts["a"] * x + torch.tanh(x).mean()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(5, 3)

        def forward(self, x):
            return torch.sigmoid(self.lin(x))

    def run_model(model, x):
        return model(x).relu()

    def cases():
        torch.manual_seed(0)
        x = torch.randn(4, 5)
        net = Net()
        return {"f": (f, (x,)), "g": (g, ({"a": 2}, x)), "net": (net, (x,)),
                "run_model": (run_model, (net, x)), "h": (h, (x,))}
''')

PHASE = textwrap.dedent('''
    import json, sys, warnings
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    if spec.get("fake_torch"):
        torch.__version__ = spec["fake_torch"]
    import bytegraph
    if spec.get("cache_dir"):
        bytegraph.config.cache_dir = spec["cache_dir"]
    import usermod
    cases = usermod.cases()
    out = {"ok": {}, "warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if spec.get("load"):
            out["loaded"] = bytegraph.load_cache(spec["load"])
        for name in spec["fns"]:
            fn, args = cases[name]
            for _ in range(spec.get("compiles", 1)):
                compiled = bytegraph.compile(fn, backend=spec.get("backend", "eager"),
                                             dynamic=spec.get("dynamic"))
                for a in (args if spec.get("many") else [args]):
                    got = compiled(*a)
                    want = fn(*a)
                    out["ok"][name] = bool(torch.allclose(got, want)) and out["ok"].get(name, True)
        if spec.get("save"):
            out["saved"] = bytegraph.save_cache(spec["save"])
    out["warnings"] = [str(w.message) for w in caught if "bytegraph" in str(w.message)]
    out["warm"] = dict(bytegraph.counters["warm"])
    out["frames"] = dict(bytegraph.counters["frames"])
    if "torch._dynamo.utils" in sys.modules:       # inductor's own cache counters
        c = sys.modules["torch._dynamo.utils"].counters
        out["inductor"] = {**dict(c["inductor"]), **dict(c["aot_autograd"])}
    print("RESULT" + json.dumps(out))
''')


def _phase(workdir, **spec):
    spec.setdefault("dir", str(workdir / "src"))
    env = dict(os.environ, PYTHONPATH=ROOT, **spec.pop("env", {}))
    env.pop("BYTEGRAPH_CACHE_DIR", None)
    p = subprocess.run([sys.executable, "-c", PHASE, json.dumps(spec)], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def _write_module(workdir, text=USER_MODULE):
    src = workdir / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "usermod.py").write_text(text)
    shutil.rmtree(src / "__pycache__", ignore_errors=True)


ALL = ["f", "g", "net", "run_model", "h"]


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """One cold process: compiles every case with a cache directory."""
    work = tmp_path_factory.mktemp("cold")
    _write_module(work)
    res = _phase(work, cache_dir=str(work / "cache"), fns=ALL)
    return work, res


@pytest.fixture
def warm_dir(cold, tmp_path):
    """A private copy of the cold process's module and cache."""
    work, _ = cold
    shutil.copytree(work / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(work / "cache", tmp_path / "cache")
    return tmp_path


def test_cold_saves_functions(cold):
    _, res = cold
    assert all(res["ok"].values()), res
    assert res["warm"].get("saved", 0) == 5, res
    assert res["frames"]["total"] == 5


def test_warm_function_no_trace(warm_dir):
    res = _phase(warm_dir, cache_dir=str(warm_dir / "cache"), fns=["f", "g"])
    assert res["ok"] == {"f": True, "g": True}
    assert res["warm"].get("hit") == 2, res
    assert res["frames"].get("total", 0) == 0, res
    assert not res["warnings"]


def test_modules_warm(warm_dir):
    # nn.Modules pinned by identity are adopted by the first call whose guards pass
    res = _phase(warm_dir, cache_dir=str(warm_dir / "cache"), fns=["net", "run_model"])
    assert res["ok"] == {"net": True, "run_model": True}
    assert res["warm"].get("hit") == 2 and res["frames"].get("total", 0) == 0, res


def test_module_structure_changed_rejected(warm_dir):
    _write_module(warm_dir, USER_MODULE.replace("torch.nn.Linear(5, 3)", "torch.nn.Linear(5, 4)"))
    res = _phase(warm_dir, cache_dir=str(warm_dir / "cache"), fns=["net", "run_model"])
    assert res["ok"] == {"net": True, "run_model": True}
    assert res["warm"].get("rejected") == 2 and not res["warm"].get("hit"), res
    assert res["frames"]["total"] == 2


def test_set_order_not_persisted(tmp_path):
    # iterating a set of str follows str hashes, which differ between processes
    _write_module(tmp_path, USER_MODULE + textwrap.dedent('''
        def s(x):
            for name in {"a", "b", "c"}:
                x = x * 2 + len(name) if name == "a" else x - 1
            return x
        _cases = cases
        def cases():
            c = _cases()
            c["s"] = (s, (torch.ones(3),))
            return c
    '''))
    res = _phase(tmp_path, cache_dir=str(tmp_path / "cache"), fns=["s"])
    assert res["ok"] == {"s": True} and res["warm"].get("unportable") == 1, res
    assert not res["warm"].get("saved"), res


def test_edited_function_misses(warm_dir):
    _write_module(warm_dir, USER_MODULE.replace("return F.relu(helper(x) + y).sum(0)",
                                                "return F.relu(helper(x) - y).sum(0)"))
    res = _phase(warm_dir, cache_dir=str(warm_dir / "cache"), fns=["f"])
    assert res["ok"] == {"f": True}
    assert res["warm"].get("miss") == 1 and not res["warm"].get("hit"), res
    assert res["frames"]["total"] == 1


def test_edited_inlined_helper_misses(warm_dir):
    _write_module(warm_dir, USER_MODULE.replace("return x * SCALE", "return x * SCALE + 1"))
    res = _phase(warm_dir, cache_dir=str(warm_dir / "cache"), fns=["f", "g"])
    assert res["ok"] == {"f": True, "g": True}
    assert res["warm"].get("miss") == 1 and res["warm"].get("hit") == 1, res   # g does not use it
    assert res["frames"]["total"] == 1


def test_decorated_helper(warm_dir):
    # a functools.wraps decorator: the wrapper's closure cell and the wrapped function are
    # found again through the module-level name
    res = _phase(warm_dir, cache_dir=str(warm_dir / "cache"), fns=["h"])
    assert res["ok"] == {"h": True} and res["warm"].get("hit") == 1, res
    assert res["frames"].get("total", 0) == 0, res
    _write_module(warm_dir, USER_MODULE.replace("return x * k", "return x * k - 1"))
    res = _phase(warm_dir, cache_dir=str(warm_dir / "cache"), fns=["h"])
    assert res["ok"] == {"h": True} and res["warm"].get("miss") == 1, res
    assert res["frames"]["total"] == 1


def test_guarded_global_changed_rejected(warm_dir):
    _write_module(warm_dir, USER_MODULE.replace("SCALE = 2.0", "SCALE = 3.0"))
    res = _phase(warm_dir, cache_dir=str(warm_dir / "cache"), fns=["f"])
    assert res["ok"] == {"f": True}
    assert res["warm"].get("rejected") == 1 and not res["warm"].get("hit"), res
    assert res["frames"]["total"] == 1


def test_other_torch_version_misses(warm_dir):
    res = _phase(warm_dir, cache_dir=str(warm_dir / "cache"), fns=["f"], fake_torch="9.9.9")
    assert res["ok"] == {"f": True}
    assert not res["warm"].get("hit") and res["frames"]["total"] == 1, res
    assert len(res["warnings"]) == 1 and "another version" in res["warnings"][0], res


def test_other_backend_misses(warm_dir):
    res = _phase(warm_dir, cache_dir=str(warm_dir / "cache"), fns=["f"], backend="aten")
    assert res["ok"] == {"f": True}
    assert res["warm"].get("miss") == 1 and not res["warm"].get("hit"), res
    assert res["frames"]["total"] == 1


def _corrupt_all(cache, how):
    for name in os.listdir(cache):
        path = cache / name
        data = path.read_bytes()
        if how == "truncated":
            path.write_bytes(data[:len(data) // 2])
        elif how == "random":
            path.write_bytes(os.urandom(len(data)))
        elif how == "format":       # a file of another (older) format
            path.write_bytes(b"bytegraph-warm-cache\n" + pickle.dumps({"env": {"format": 0}, "records": []}))


@pytest.mark.parametrize("how", ["truncated", "random", "format"])
def test_corrupt_file_one_warning(warm_dir, how):
    _corrupt_all(warm_dir / "cache", how)
    res = _phase(warm_dir, cache_dir=str(warm_dir / "cache"), fns=["f"], compiles=2)
    assert res["ok"] == {"f": True}
    # the first compile ignores the file (one warning) and traces, then rewrites the file,
    # which the second compile of the same function uses
    assert res["frames"]["total"] == 1 and res["warm"].get("hit") == 1, res
    assert len(res["warnings"]) == 1 and "ignoring cache file" in res["warnings"][0], res
    assert res["warm"].get("corrupt") == 1, res


def test_save_load_round_trip(tmp_path):
    _write_module(tmp_path)
    path = str(tmp_path / "all.bgc")
    cold = _phase(tmp_path, fns=["f", "g"], save=path)
    assert cold["ok"] == {"f": True, "g": True} and cold["saved"] == 2, cold
    res = _phase(tmp_path, fns=["f", "g"], load=path)
    assert res["loaded"] == 2
    assert res["ok"] == {"f": True, "g": True}
    assert res["warm"].get("hit") == 2 and res["frames"].get("total", 0) == 0, res


def test_inductor_warm_hits_fx_graph_cache(tmp_path):
    # backend="inductor": the warm process rebuilds the compiled graph from the artifact the
    # cold one stored (AOT autograd's bundled entry: no compile, no lookup in inductor's
    # caches); tests/test_warm2_inductor_artifact.py covers its key and the fallback to
    # inductor's own caches
    _write_module(tmp_path)
    env = {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    spec = dict(cache_dir=str(tmp_path / "cache"), fns=["f"], backend="inductor", env=env)
    cold = _phase(tmp_path, **dict(spec, env=dict(env)))
    assert cold["ok"] == {"f": True} and cold["warm"].get("saved") == 1, cold
    assert cold["inductor"].get("autograd_cache_miss") == 1, cold
    res = _phase(tmp_path, **spec)
    assert res["ok"] == {"f": True}
    assert res["warm"].get("hit") == 1 and res["frames"].get("total", 0) == 0, res
    assert res["warm"].get("inductor_artifact") == 1, res
    assert not res.get("inductor", {}).get("fxgraph_cache_miss"), res
    assert not res.get("inductor", {}).get("autograd_cache_miss"), res


DYNAMIC = USER_MODULE + textwrap.dedent('''
    def d(x):
        return torch.relu(x).sum(0) * x.shape[0]
    _cases = cases
    def cases():
        c = _cases()
        c["d"] = (d, [(torch.randn(n, 3),) for n in SIZES])
        return c
''')


def test_dynamic_entry_warm(tmp_path):
    # an entry whose graph has symbolic sizes is persisted for the eager backend (its generated
    # forward is size-generic); the warm process serves a new size with no trace
    _write_module(tmp_path, DYNAMIC.replace("SIZES", "(4, 5)"))
    spec = dict(cache_dir=str(tmp_path / "cache"), fns=["d"], dynamic=True, many=True)
    cold = _phase(tmp_path, **spec)
    assert cold["ok"] == {"d": True} and cold["warm"].get("saved"), cold
    assert cold["frames"]["total"] == 1 and not cold["warm"].get("unportable"), cold
    _write_module(tmp_path, DYNAMIC.replace("SIZES", "(7, 2)"))
    res = _phase(tmp_path, **spec)
    assert res["ok"] == {"d": True}
    assert res["warm"].get("hit") == 1 and res["frames"].get("total", 0) == 0, res


CLASS_DECORATED = textwrap.dedent('''
    class Registry:
        def __init__(self):
            self.impls = {"double": lambda x: x * 2}
        def get(self, name):
            return self.impls[name]

    REGISTRY = Registry()

    def use_registry(registry=REGISTRY):
        # a class decorator whose replacement forward closes over a user object (transformers'
        # use_experts_implementation): the cell is found again through the class
        def wrap(cls):
            original = cls.forward
            @functools.wraps(original)
            def forward(self, x):
                return registry.get("double")(original(self, x)) + torch.ops.aten.relu(x).sum()
            cls.forward = forward
            return cls
        return wrap

    @use_registry()
    class Experts(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(5, 5)
        def forward(self, x):
            return self.lin(x)

    _cases2 = cases
    def cases():
        c = _cases2()
        torch.manual_seed(0)
        c["experts"] = (Experts(), (torch.randn(4, 5),))
        return c
''')


def test_class_decorator_closure_cell_warm(tmp_path):
    _write_module(tmp_path, USER_MODULE + CLASS_DECORATED)
    cold = _phase(tmp_path, cache_dir=str(tmp_path / "cache"), fns=["experts"])
    assert cold["ok"] == {"experts": True} and cold["warm"].get("saved") == 1, cold
    res = _phase(tmp_path, cache_dir=str(tmp_path / "cache"), fns=["experts"])
    assert res["ok"] == {"experts": True} and res["warm"].get("hit") == 1, res
    assert res["frames"].get("total", 0) == 0, res


ENV_READER = textwrap.dedent('''
    import os

    def env_scaled(x):
        # os.environ is bound by identity in the entry: found again as the module attribute
        if os.environ.get("BG_WARM_FLAG", "0") == "1":
            return x * 3
        return x - 1

    _cases3 = cases
    def cases():
        c = _cases3()
        c["env_scaled"] = (env_scaled, (torch.ones(3),))
        return c
''')


def test_module_level_object_pinned_by_identity_warm(tmp_path):
    _write_module(tmp_path, USER_MODULE + ENV_READER)
    cold = _phase(tmp_path, cache_dir=str(tmp_path / "cache"), fns=["env_scaled"])
    assert cold["ok"] == {"env_scaled": True} and cold["warm"].get("saved") == 1, cold
    res = _phase(tmp_path, cache_dir=str(tmp_path / "cache"), fns=["env_scaled"])
    assert res["ok"] == {"env_scaled": True} and res["warm"].get("hit") == 1, res
    # the environment changed: the entry's guards reject it and the result follows the new value
    res = _phase(tmp_path, cache_dir=str(tmp_path / "cache"), fns=["env_scaled"],
                 env={"BG_WARM_FLAG": "1"})
    assert res["ok"] == {"env_scaled": True} and not res["warm"].get("hit"), res
