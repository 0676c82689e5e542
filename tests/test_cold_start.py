"""Cold start (issue 11): what a fresh process imports on the way to its first compiled call.

Each check runs in a new interpreter (subprocess), since this test process has long since
imported torch._dynamo. `import bytegraph` must load neither torch._dynamo nor sympy (make_fx,
which needs sympy, loads on first use). The first static trace does load torch._dynamo: torch
2.13's own meta kernels import it (docs/architecture.md, "Cold start"); the canary test below
fails when a torch upgrade stops doing that, which is the moment to revisit the static path.
"""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_fresh(code):
    """Run `code` in a new interpreter from the repo root; return the JSON of its last line."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


FIRST_CALLS = r"""
import json, sys
import bytegraph
out = {"import": {m: m in sys.modules for m in
                  ("torch._dynamo", "sympy", "torch.fx.experimental.symbolic_shapes",
                   "bytegraph.dispatch_trace")}}
import torch
torch.manual_seed(0)

def f(x):
    return x.sin() + 1

x = torch.randn(8)
cf = bytegraph.compile(f, backend="eager")
out["fn"] = [torch.equal(cf(x), f(x)), torch.equal(cf(x), f(x))]

m = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU())
cm = bytegraph.compile(m, backend="eager")
xb = torch.randn(3, 8)
with torch.no_grad():
    out["module"] = [torch.equal(cm(xb), m(xb)), torch.equal(cm(xb), m(xb))]
y = cm(xb)
out["module_grad"] = y.requires_grad and torch.equal(y, m(xb))

def g(x):                       # data-dependent output size: traced again with a ShapeEnv
    return x[x > 0].sum() * 2

xg = torch.randn(16)
cg = bytegraph.compile(g, backend="eager")
out["data_dependent"] = bool(torch.allclose(cg(xg), g(xg)))
out["unique_graphs"] = bytegraph.counters["stats"]["unique_graphs"]
out["graph_breaks"] = sum(bytegraph.counters["graph_break"].values())

from bytegraph import make_fx   # loaded on first use
gm = make_fx(f)(x)
out["make_fx"] = torch.equal(gm(x), f(x))
print(json.dumps(out))
"""


def test_import_loads_neither_dynamo_nor_sympy_and_first_calls_match_eager():
    out = run_fresh(FIRST_CALLS)
    assert out["import"] == {"torch._dynamo": False, "sympy": False,
                             "torch.fx.experimental.symbolic_shapes": False,
                             "bytegraph.dispatch_trace": False}
    assert out["fn"] == [True, True]
    assert out["module"] == [True, True]
    assert out["module_grad"] is True
    assert out["data_dependent"] is True
    # f, the module under no_grad and again with grad (a recompile on grad mode), g
    assert out["unique_graphs"] == 4 and out["graph_breaks"] == 0
    assert out["make_fx"] is True


CANARY = r"""
import json, sys
import torch
torch.empty(3, device="meta").sin()
print(json.dumps({"dynamo": "torch._dynamo" in sys.modules}))
"""


def test_torch_meta_kernels_still_import_dynamo():
    """Canary for docs/architecture.md "Cold start": in torch 2.13 the Meta kernel of
    aten.sin is a Python ref wrapped in torch._disable_dynamo, which imports torch._dynamo on
    its first call, so no static metadata propagation can keep torch._dynamo out. If this
    fails, torch stopped doing that: revisit FakeTensorMode's other imports of torch._dynamo."""
    assert run_fresh(CANARY) == {"dynamo": True}
