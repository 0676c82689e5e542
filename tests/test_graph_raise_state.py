"""A graph that switches grad mode or autocast inside it and raises midway (an index out of
range read from a tensor, an in-graph check) leaves that thread-local state as eager leaves it:
eager's `with` blocks restore it on the way out (runtime/graph_state.py). Differential: the
exception, its message and the state after it, eager against compiled, for several backends;
and the entry survives a warm start."""
import textwrap

import pytest
import torch

import bytegraph
from warm_harness import run_phase, write_module


def _state():
    return (torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"),
            torch.get_autocast_dtype("cpu"), torch.is_autocast_cache_enabled())


def _raised(fn, *args):
    try:
        fn(*args)
    except Exception as e:
        return type(e), str(e)
    return None


def no_grad_index(x, e):
    y = x * 2
    with torch.no_grad():
        z = y[e]
    return z + 1


def enable_grad_index(x, e):
    y = x * 2
    with torch.enable_grad():
        z = (y * 3)[e]
    return z + 1


def nested_modes(x, e):
    y = x.sin()
    with torch.no_grad():
        with torch.enable_grad():
            y = y * 2
            with torch.no_grad():
                y = y[e]
    return y


def autocast_index(x, e):
    y = x @ x.t()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = (y @ y)[e]
    return z.float() + 1


def autocast_outer_open(x, e):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = x @ x.t()
        with torch.autocast("cpu", enabled=False):
            z = y.float()[e]
    return z


CASES = [no_grad_index, enable_grad_index, nested_modes, autocast_index, autocast_outer_open]


@pytest.mark.parametrize("backend", ["eager", "aten"])
@pytest.mark.parametrize("fn", CASES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("outer", ["grad", "no_grad"])
def test_state_after_a_raising_graph(fn, backend, outer):
    x = torch.randn(4, 4, requires_grad=True)
    ctx = torch.no_grad if outer == "no_grad" else torch.enable_grad
    compiled = bytegraph.compile(fn, backend=backend)
    with ctx():
        before = _state()
        good = torch.tensor(1)
        torch.testing.assert_close(compiled(x, good), fn(x, good))
        bad = torch.tensor(9)
        want = _raised(fn, x, bad)
        assert _state() == before
        got = _raised(compiled, x, bad)
        assert got is not None and got[0] is want[0], (got, want)
        assert _state() == before
        # and the compiled function still works, in the same state
        torch.testing.assert_close(compiled(x, good), fn(x, good))
        assert _state() == before


def test_autocast_nesting_restored():
    # after the raise, a later autocast block at top level clears the cast cache on exit as
    # eager's does (the nesting count is back where it was)
    x = torch.randn(4, 4)
    compiled = bytegraph.compile(autocast_index, backend="eager")
    compiled(x, torch.tensor(0))
    with pytest.raises(IndexError):
        compiled(x, torch.tensor(9))
    assert torch.autocast_increment_nesting() == 1
    assert torch.autocast_decrement_nesting() == 0


WARM_MODULE = textwrap.dedent('''
    import torch

    def f(x, e):
        y = x * 2
        with torch.no_grad():
            z = y[e]
        return z + 1
''')

WARM_PHASE = textwrap.dedent('''
    import json, sys
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    import bytegraph
    bytegraph.config.cache_dir = spec["cache_dir"]
    import graphstate_mod as m
    compiled = bytegraph.compile(m.f, backend="eager")
    x = torch.randn(4, requires_grad=True)
    ok = torch.allclose(compiled(x, torch.tensor(1)), m.f(x, torch.tensor(1)))
    try:
        compiled(x, torch.tensor(7))
        raised = False
    except IndexError:
        raised = True
    ok = ok and raised and torch.is_grad_enabled()
    print("RESULT" + json.dumps({"ok": ok, "warm": dict(bytegraph.counters["warm"]),
                                 "frames": dict(bytegraph.counters["frames"])}))
''')


def test_warm_start_keeps_the_restoring_call(tmp_path):
    write_module(tmp_path, "graphstate_mod.py", WARM_MODULE)
    cold = run_phase(WARM_PHASE, tmp_path, ["f"])
    assert cold["ok"] and not cold["warm"].get("unportable"), cold
    warm = run_phase(WARM_PHASE, tmp_path, ["f"])
    assert warm["ok"], warm
    assert warm["warm"].get("hit") and warm["frames"].get("total", 0) == 0, warm


def plain_switch_then_raise(x, e):
    y = x * 2
    torch.set_grad_enabled(False)          # no block: eager keeps grad mode off after the raise
    z = y[e]
    torch.set_grad_enabled(True)
    return z


def set_grad_block_then_raise(x, e):
    y = x * 2
    with torch.set_grad_enabled(False):    # a block: eager restores grad mode on the raise
        z = y[e]
    return z


@pytest.mark.parametrize("fn", [plain_switch_then_raise, set_grad_block_then_raise],
                         ids=lambda f: f.__name__)
def test_plain_switch_is_kept_and_block_undone(fn):
    x = torch.randn(4, requires_grad=True)
    compiled = bytegraph.compile(fn, backend="eager")
    try:
        torch.testing.assert_close(compiled(x, torch.tensor(1)), fn(x, torch.tensor(1)))
        want = (_raised(fn, x, torch.tensor(9)), _state())
        torch.set_grad_enabled(True)
        got = (_raised(compiled, x, torch.tensor(9)), _state())
        assert got == want
    finally:
        torch.set_grad_enabled(True)
