"""Red-team probes of runtime/graph_state.py: the thread-local state a graph that raises
midway leaves behind, eager against compiled (exception, message, grad mode, autocast state and
nesting)."""
import textwrap

import pytest
import torch

import bytegraph
from differential import reset
from warm_harness import run_phase, write_module


def _nesting():
    n = torch.autocast_increment_nesting() - 1
    torch.autocast_decrement_nesting()
    return n


def _state():
    return (torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"),
            torch.get_autocast_dtype("cpu"), torch.is_autocast_cache_enabled(), _nesting())


def _run(fn, *args):
    torch.set_grad_enabled(True)
    try:
        fn(*args)
        out = None
    except Exception as e:
        out = type(e), str(e)
    state = _state()
    torch.set_grad_enabled(True)
    torch.set_autocast_enabled("cpu", False)
    torch.set_autocast_cache_enabled(True)
    while _nesting() > 0:
        torch.autocast_decrement_nesting()
    return out, state


def plain_grad_then_autocast(x, e):
    torch.set_grad_enabled(False)           # a plain switch: eager keeps it
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = (x @ x.T)[e]                    # raises: eager's block leaves autocast off
    return y


def autocast_then_plain_grad(x, e):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.set_grad_enabled(False)
        y = (x @ x.T)[e]
    return y


@pytest.mark.parametrize("backend", ["eager", "aten"])
@pytest.mark.parametrize("fn", [plain_grad_then_autocast, autocast_then_plain_grad],
                         ids=lambda f: f.__name__)
def test_plain_grad_switch_keeps_autocast_restored(fn, backend):
    x = torch.randn(4, 3)
    reset()
    compiled = bytegraph.compile(fn, backend=backend)
    for e in (torch.tensor(1), torch.tensor(9), torch.tensor(9)):
        assert _run(fn, x, e) == _run(compiled, x, e)


WARM_MODULE = textwrap.dedent('''
    import torch

    def f(x, e):
        torch.set_grad_enabled(False)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = (x @ x.T)[e]
        torch.set_grad_enabled(True)
        return y

    def g(x):
        y = x * 2
        assert y.sum() > 0, "negative sum"
        if y.max() > 100:
            raise ValueError("too big")
        return y + 1
''')

WARM_PHASE = textwrap.dedent('''
    import json, sys
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    import bytegraph
    bytegraph.config.cache_dir = spec["cache_dir"]
    import redteam13_mod as m
    backend = spec["fns"][0]
    f = bytegraph.compile(m.f, backend=backend)
    g = bytegraph.compile(m.g, backend=backend)
    x = torch.randn(4, 3)
    ok = torch.allclose(f(x, torch.tensor(1)).float(), m.f(x, torch.tensor(1)).float())
    try:
        f(x, torch.tensor(7))
        ok = False
    except IndexError:
        ok = ok and torch.is_grad_enabled() is False and not torch.is_autocast_enabled("cpu")
    torch.set_grad_enabled(True)
    errors = []
    for v in (torch.ones(3), -torch.ones(3), torch.full((3,), 90.0)):
        try:
            ok = ok and torch.equal(g(v), m.g(v))
        except Exception as e:
            errors.append([type(e).__name__, str(e)])
    ok = ok and errors == [["AssertionError", "negative sum"], ["ValueError", "too big"]]
    print("RESULT" + json.dumps({"ok": ok, "errors": errors, "warm": dict(bytegraph.counters["warm"]),
                                 "frames": dict(bytegraph.counters["frames"])}))
''')


@pytest.mark.parametrize("backend", ["eager", "aten"])
def test_warm_start_of_checks_and_autocast_only_restore(tmp_path, backend):
    write_module(tmp_path, "redteam13_mod.py", WARM_MODULE)
    cold = run_phase(WARM_PHASE, tmp_path, [backend])
    assert cold["ok"] and not cold["warm"].get("unportable"), cold
    warm = run_phase(WARM_PHASE, tmp_path, [backend])
    assert warm["ok"], warm
    assert warm["warm"].get("hit") and warm["frames"].get("total", 0) == 0, warm
