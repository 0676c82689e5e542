"""A cache guard that raises is a miss that is counted (counters["stats"]["guard_errors"])
and reported (one warning per function), never a silent recompile; guards that raise on the
very call they were built from turn the function eager. The program always gets eager's
result."""
import warnings

import pytest
import torch

import bytegraph
from bytegraph.guards.guard_set import GuardSet
from differential import assert_same, compile_fn, counters


def _guard_errors():
    return counters()["stats"]["guard_errors"]


def _calls(fn, compiled, args_list):
    """Run each call eagerly and compiled; return the bytegraph warnings raised meanwhile."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for args in args_list:
            assert_same(fn(*args), compiled(*args))
    return [str(w.message) for w in caught if "bytegraph" in str(w.message)]


class Cfg:
    def __init__(self):
        self.k = 2


def _raise(self):
    raise RuntimeError("k is gone")


def test_monkeypatched_attribute_raises_in_guard():
    """After the first compile the class gets a property `k` that raises: the guard reading
    cfg.k raises, eager's try/except takes the fallback."""
    def f(x, cfg):
        try:
            k = cfg.k
        except RuntimeError:
            k = 5
        return x * k
    compiled = compile_fn(f, backend="eager")
    x, cfg = torch.ones(3), Cfg()
    assert _calls(f, compiled, [(x, cfg)]) == []
    Cfg.k = property(_raise)
    try:
        msgs = _calls(f, compiled, [(x, cfg)] * 3)
    finally:
        del Cfg.k
    assert _guard_errors() == 3          # the first entry raises on each of the three calls
    errors = [m for m in msgs if "raised RuntimeError: k is gone" in m]
    assert len(errors) == 1 and "f" in errors[0] and "guard_errors" in errors[0]


def test_deleted_attribute_read_with_default():
    def f(x, cfg):
        return x * getattr(cfg, "k", 7)
    compiled = compile_fn(f, backend="eager")
    x, cfg = torch.ones(3), Cfg()
    _calls(f, compiled, [(x, cfg)])
    del cfg.k
    msgs = _calls(f, compiled, [(x, cfg), (x, cfg)])
    assert _guard_errors() == 2
    assert len([m for m in msgs if "AttributeError" in m]) == 1
    assert counters()["recompiles"]["total"] == 1     # the new entry serves the second call


def test_warned_once_per_function():
    def f(x, cfg):
        return x * getattr(cfg, "k", 7)

    def g(x, cfg):
        return x + getattr(cfg, "k", 7)
    cf, cg = compile_fn(f, backend="eager"), compile_fn(g, backend="eager")
    x, c1, c2 = torch.ones(3), Cfg(), Cfg()
    _calls(f, cf, [(x, c1)])
    _calls(g, cg, [(x, c2)])
    del c1.k, c2.k
    msgs = _calls(f, cf, [(x, c1)] * 2) + _calls(g, cg, [(x, c2)] * 2)
    assert len([m for m in msgs if "raised AttributeError" in m]) == 2
    assert _guard_errors() == 4


def test_guard_that_always_raises_turns_function_eager(monkeypatch):
    """A bytegraph bug: every entry's guards raise, so each new entry rejects the call it was
    built from. One compile, then eager -- no recompile storm."""
    original = GuardSet.add_global_state

    def buggy(self):
        original(self)
        self.add_code("1 // 0 == 0", None, "buggy")
    monkeypatch.setattr(GuardSet, "add_global_state", buggy)

    def f(x):
        return x.sin() + 1
    compiled = compile_fn(f, backend="eager")
    xs = [(torch.ones(3) * i,) for i in range(5)]
    msgs = _calls(f, compiled, xs)
    assert counters()["frames"]["total"] == 1
    assert _guard_errors() == 5
    assert len([m for m in msgs if "a cache guard of" in m and "ZeroDivisionError" in m]) == 1
    assert len([m for m in msgs if "reject the call they were built from" in m]) == 1


def test_guard_error_fullgraph_and_reset(monkeypatch):
    """reset() forgets the warning; fullgraph changes nothing for a guard error (the trace
    itself succeeded)."""
    def f(x, cfg):
        return x * getattr(cfg, "k", 7)
    compiled = compile_fn(f, backend="eager", fullgraph=True)
    x = torch.ones(3)
    for _ in range(2):
        cfg = Cfg()
        _calls(f, compiled, [(x, cfg)])
        del cfg.k
        msgs = _calls(f, compiled, [(x, cfg)])
        assert len([m for m in msgs if "raised AttributeError" in m]) == 1
        bytegraph.reset()


def test_entry_source_reports_guard_errors():
    def f(x):
        return x + 1
    compiled = compile_fn(f, backend="eager")
    compiled(torch.ones(2))
    src = compiled.__bytegraph_state__.entries[0].__bytegraph_source__
    assert "except Exception as __e:" in src and "return _guard_error(__e)" in src


@pytest.mark.parametrize("module", [False, True])
def test_guard_error_through_module(module):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = Cfg()

        def forward(self, x):
            return x * getattr(self.cfg, "k", 3)
    m = M()
    compiled = compile_fn(m, backend="eager") if module else compile_fn(m.forward, backend="eager")
    x = torch.ones(3)
    assert_same(m(x), compiled(x))
    del m.cfg.k
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_same(m(x), compiled(x))
    assert _guard_errors() == 1
    assert len([w for w in caught if "raised AttributeError" in str(w.message)]) == 1
