"""Reliability under load, faults and bad input (docs/reliability.md): failures are remembered
(no retrace storms), memory is bounded (entries hold guarded objects weakly, metrics keep
summaries), compiles are thread-safe, and every fault leaves the cache consistent and the
program running. Differential where a result is involved: compiled == eager."""
import gc
import logging
import sys
import threading
import time
import warnings
import weakref

import pytest
import torch
import torch.nn as nn

import bytegraph
from bytegraph.graph.builder import GraphBuilder
import bytegraph.policy.calls as registry
from bytegraph.runtime import api
from bytegraph.symbolic.interpreter import Tracer
from differential import assert_same, compile_fn, counters


def _state(compiled):
    if isinstance(compiled, nn.Module):
        return compiled.__dict__["_bytegraph_call"].__bytegraph_state__
    return compiled.__bytegraph_state__


def _lock_is_free(state):
    """True when no thread holds the function's lock (probed from another thread: an RLock is
    re-entrant for its owner)."""
    box = []

    def probe():
        got = state.lock.acquire(blocking=False)
        if got:
            state.lock.release()
        box.append(got)
    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return box[0]


def _consistent(compiled):
    st = _state(compiled)
    assert _lock_is_free(st)
    assert getattr(api._tls, "compiling", 0) == 0
    assert all(callable(e) and hasattr(e, "__bytegraph_guards__") for e in st.entries)
    return st


def frames():
    return counters()["frames"]["total"]


# --------------------------------------------------------------------------
# repeated failures are remembered

def raises_for_big(x, n):
    if n > 2:
        raise ValueError(f"n={n} is too big")
    return x * n


def test_user_exception_traces_once():
    c = compile_fn(raises_for_big, backend="eager")
    x = torch.ones(3)
    for _ in range(200):
        with pytest.raises(ValueError, match="n=5 is too big"):
            c(x, 5)
    assert frames() == 1
    assert counters()["fallback"]["user_error"] == 1
    assert counters()["stats"]["eager_runs"] == 200
    assert_same(raises_for_big(x, 2), c(x, 2))       # other inputs still compile
    assert counters()["frames"]["ok"] == 1 and frames() == 2
    with pytest.raises(ValueError):
        c(x, 5)
    assert frames() == 2


def test_user_exception_fullgraph_traces_once():
    c = compile_fn(raises_for_big, backend="eager", fullgraph=True)
    for _ in range(20):
        with pytest.raises(ValueError):
            c(torch.ones(3), 7)
    assert frames() == 1


def _countdown(x, n):
    return x if n == 0 else _countdown(x + 1, n - 1)


def test_trace_stop_traces_once():
    """A construct the trace can neither split the graph at nor resume after (here: recursion
    deeper than the inlining limit) runs the function eagerly, remembered under the guards:
    one trace, one fallback, counted by the construct's kind."""
    def f(x):
        return _countdown(x, 100)
    c = compile_fn(f, backend="eager")
    x = torch.ones(3)
    for _ in range(50):
        assert_same(f(x), c(x))
    assert frames() == 1 and dict(counters()["fallback"]) == {"recursion": 1}
    assert counters()["stats"]["eager_runs"] == 50


def test_graph_break_traces_once():
    """A graph break that splits the function is not a fallback: the function and the code
    after the break are each traced once."""
    def f(x):
        return x + 1 if x.sum().item() > 0 else x - 1
    c = compile_fn(f, backend="eager")
    x = torch.ones(3)
    assert_same(f(x), c(x))
    first = frames()
    for _ in range(50):
        assert_same(f(x), c(x))
    assert frames() == first and not counters()["fallback"]
    assert sum(counters()["graph_break"].values()) >= 1


def test_internal_error_traces_once(monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("internal kaboom")
    monkeypatch.setattr(Tracer, "run_root", boom)

    def f(x):
        return x.cos()
    c = compile_fn(f, backend="eager")
    with pytest.warns(UserWarning, match="kaboom"):
        c(torch.ones(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in range(2, 30):
            assert_same(f(torch.ones(n)), c(torch.ones(n)))
    assert frames() == 1 and counters()["fallback"]["internal_error"] == 1


def test_trace_mismatch_is_reported_and_remembered(monkeypatch):
    """The trace claims the user's code raises, eager does not: warned, eager from then on."""
    from bytegraph.exc import UserError

    def fake_raise(*a, **k):
        raise UserError(ValueError("not really"))
    monkeypatch.setattr(Tracer, "run_root", fake_raise)

    def f(x):
        return x + 1
    c = compile_fn(f, backend="eager")
    with pytest.warns(UserWarning, match="did not"):
        assert_same(f(torch.ones(2)), c(torch.ones(2)))
    st = _consistent(c)
    assert st.broken and st.entries == ()
    assert_same(f(torch.ones(2)), c(torch.ones(2)))
    assert frames() == 1 and counters()["fallback"]["trace_mismatch"] == 1


def test_bad_call_does_not_break_the_function():
    def f(x, y):
        return x + y
    c = compile_fn(f, backend="eager")
    with pytest.raises(TypeError) as info:
        c(torch.ones(2))
    with pytest.raises(TypeError) as eager_info:
        f(torch.ones(2))
    assert str(info.value) == str(eager_info.value)
    assert not _state(c).broken
    x, y = torch.ones(2), torch.ones(2)
    assert_same(f(x, y), c(x, y))
    with pytest.raises(TypeError, match=r"f\(\) takes 2 positional arguments but 3"):
        c(x, y, y)                                   # the entry raises eager's message


def test_accumulated_limit_stops_recompiles():
    def f(x):
        return x * 2
    c = compile_fn(f, backend="eager", dynamic=False)
    with bytegraph.config.patch(accumulated_cache_size_limit=3, cache_size_limit=100):
        with pytest.warns(UserWarning, match="accumulated_cache_size_limit"):
            for n in range(1, 10):
                assert_same(f(torch.ones(n)), c(torch.ones(n)))
    assert frames() == 3 and counters()["fallback"]["accumulated_limit"] == 1


def test_cache_limit_is_not_retried_under_the_lock():
    def f(x):
        return x * 2
    c = compile_fn(f, backend="eager", dynamic=False)
    with bytegraph.config.patch(cache_size_limit=2):
        with pytest.warns(UserWarning, match="cache_size_limit"):
            for n in range(1, 6):
                c(torch.ones(n))
        st = _state(c)
        st.lock.acquire()                 # held by this thread: another thread must not need it
        try:
            box = []
            t = threading.Thread(target=lambda: box.append(c(torch.ones(9))))
            t.start()
            t.join(10)
            assert not t.is_alive() and box
        finally:
            st.lock.release()
    assert counters()["fallback"]["cache_limit"] == 1


# --------------------------------------------------------------------------
# bounded memory

class Big(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 64)

    def forward(self, x):
        return torch.relu(self.lin(x))


def _step(m, x):
    return m(x).sum()


@pytest.mark.parametrize("backend", ["eager", "aten"])
def test_dropped_module_is_freed_and_its_entry_dropped(backend):
    c = compile_fn(_step, backend=backend)
    m = Big()
    ref = weakref.ref(m)
    x = torch.randn(2, 64)
    assert_same(_step(m, x), c(m, x))
    assert len(_state(c).entries) == 1
    del m
    gc.collect()
    assert ref() is None
    assert _state(c).entries == ()
    assert counters()["stats"]["invalidated_entries"] == 1
    m2 = Big()
    assert_same(_step(m2, x), c(m2, x))             # a new model compiles (a recompile)
    assert counters()["recompiles"]["total"] == 1


_GLOBAL_MODEL = None


def _global_step(x):
    return _GLOBAL_MODEL(x) * 2


def test_dropped_global_model_is_freed():
    global _GLOBAL_MODEL
    _GLOBAL_MODEL = Big()
    ref = weakref.ref(_GLOBAL_MODEL)
    c = compile_fn(_global_step, backend="eager")
    x = torch.randn(2, 64)
    assert_same(_global_step(x), c(x))
    _GLOBAL_MODEL = Big()                          # replaced: the old one must not be kept
    gc.collect()
    assert ref() is None
    assert_same(_global_step(x), c(x))
    _GLOBAL_MODEL = None


def test_dropped_compiled_module_frees_everything():
    m = Big()
    ref = weakref.ref(m)
    c = compile_fn(m, backend="eager")
    c(torch.randn(2, 64))
    sref = weakref.ref(_state(c))
    del m, c
    gc.collect()
    assert ref() is None and sref() is None


def test_dead_entry_on_another_thread_misses_not_none():
    """An entry whose guarded object died reads a sentinel, never None, from its weak names."""
    class Holder:
        pass

    def f(x, h):
        return x + 1 if h.m is None else h.m(x)
    c = compile_fn(f, backend="eager")
    h = Holder()
    h.m = Big()
    x = torch.randn(2, 64)
    assert_same(f(x, h), c(x, h))
    entry = _state(c).entries[0]
    h.m = None
    gc.collect()
    assert entry.__bytegraph_life__.dead
    assert entry(x, h) is bytegraph.codegen.entry.MISS      # a stale walk of the old entries
    assert_same(f(x, h), c(x, h))
    assert counters()["stats"]["guard_errors"] == 0


class _Gelu(nn.GELU):
    """transformers' activation shape: a torch.nn subclass with no __init__ of its own."""


class _BuildsLossInForward(nn.Module):
    """hf/electra:train's shape: a loss module constructed inside forward on every call."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 4)

    def forward(self, x, labels):
        h = _Gelu()(self.lin(x))
        return nn.CrossEntropyLoss()(h, labels)


def test_module_built_inside_forward_keeps_its_entry():
    """The trace builds such a module once, for real, and the entry reads it: the entry owns it
    and binds it strongly. (Bound weakly, it died with the trace, so every call recompiled.)"""
    m = _BuildsLossInForward()
    c = compile_fn(m, backend="eager", fullgraph=True)
    x, labels = torch.randn(3, 8), torch.tensor([0, 3, 1])
    for _ in range(3):
        assert_same(m(x, labels), c(x, labels))
    gc.collect()
    assert len(_state(c).entries) == 1
    assert counters()["stats"]["unique_graphs"] == 1
    assert counters()["recompiles"]["total"] == 0
    assert counters()["stats"]["invalidated_entries"] == 0
    ref = weakref.ref(m)
    del m, c
    gc.collect()
    assert ref() is None                         # the owned module does not pin the model


class _Settings:
    def __init__(self):
        self.scale = 3.0


def _settings():
    return _Settings()                           # a fresh object per call


_settings._dynamo_marked_constant = True


def test_marked_constant_result_is_owned_by_the_entry():
    """A marked constant is called once at trace time; its result is a constant of the entry,
    which must keep it alive even when the library does not."""
    def f(x):
        return x * _settings().scale
    c = compile_fn(f, backend="eager", fullgraph=True)
    for _ in range(3):
        assert_same(f(torch.ones(2)), c(torch.ones(2)))
    gc.collect()
    assert len(_state(c).entries) == 1
    assert counters()["stats"]["unique_graphs"] == 1
    assert counters()["stats"]["invalidated_entries"] == 0


def test_graph_break_code_binds_strongly():
    """A graph break's Python part is rendered mid-trace (Codegen.no_bind): it runs after the
    guards, so it must not read a weak binding (a guard-only name may be dead by then)."""
    from bytegraph.codegen.entry import Codegen
    cg = Codegen()
    obj = Big()
    weak = cg.const(obj, "m")
    assert weak.endswith("()")                  # a guard's binding
    cg.no_bind = True
    strong = cg.const(obj, "m")
    cg.no_bind = False
    assert not strong.endswith("()") and cg.namespace[strong] is obj


def test_compile_metrics_keep_break_records():
    """compile_metrics stores records compactly; their graph-break records survive the trip."""
    def f(x):
        y = x + 1
        bytegraph.graph_break()
        return y * 2
    out = bytegraph.explain(f)(torch.ones(2))
    assert out.graph_count == 2 and out.graph_break_count == 1
    rec = out.break_reasons[0]
    assert "graph_break()" in rec.reason and rec.lineno == f.__code__.co_firstlineno + 2
    assert rec.line == "bytegraph.graph_break()"
    stored = [b for r in bytegraph.compile_metrics for b in r.breaks]
    assert [(b.reason, b.filename, b.lineno, b.line, b.hint, b.stack) for b in stored] == \
        [(rec.reason, rec.filename, rec.lineno, rec.line, rec.hint, rec.stack)]


def test_compile_metrics_keep_summaries_not_graphs():
    def f(x):
        return x.sin() + 1
    c = compile_fn(f, backend="inductor")
    c(torch.ones(3))
    rec = bytegraph.compile_metrics[-1]
    assert rec.ok and rec.ops == 2
    del c
    gc.collect()
    assert rec.graph is None                     # the record does not keep the graph alive
    bytegraph.reset()
    with bytegraph.config.patch(keep_graphs=True):
        c = compile_fn(f, backend="inductor")
        c(torch.ones(3))
    del c
    gc.collect()
    assert isinstance(bytegraph.compile_metrics[-1].graph, torch.fx.GraphModule)


def test_compile_metrics_bounded():
    with bytegraph.config.patch(compile_metrics_limit=5):
        for n in range(1, 13):
            compile_fn(lambda x: x + 1, backend="eager")(torch.ones(n))
        assert len(bytegraph.compile_metrics) == 5
        assert bytegraph.compile_metrics.total == 12
        assert len(bytegraph.compile_metrics.since(10)) == 2


def test_disable_same_function_twice_registers_once():
    def helper(x):
        return x + 1
    before = len(registry._disabled)
    d1 = bytegraph.disable(helper)
    d2 = bytegraph.disable(helper)
    assert d1 is d2 and len(registry._disabled) == before + 1
    assert bytegraph.disable(d1) is d1


def test_registries_hold_functions_weakly():
    """allow_in_graph / disallow_in_graph / disable do not keep the user's functions alive."""
    def make():
        def helper(x):
            return x + 1
        return helper
    before = [len(t) for t in (registry._allowed, registry._disallowed, registry._disabled)]
    a, b, c = make(), make(), make()
    bytegraph.allow_in_graph(a)
    bytegraph.disallow_in_graph(b)
    d = bytegraph.disable(c)
    assert a in registry._allowed and b in registry._disallowed and d in registry._disabled
    refs = [weakref.ref(f) for f in (a, b, c, d)]
    del a, b, c, d
    gc.collect()
    assert all(r() is None for r in refs)
    assert [len(t) for t in (registry._allowed, registry._disallowed, registry._disabled)] == before
    e, g = make(), make()
    assert bytegraph.allow_in_graph([e, g]) == [e, g]    # a list registers each, as torch's
    assert e in registry._allowed and g in registry._allowed
    del e, g
    gc.collect()
    assert len(registry._allowed) == before[0]
    bytegraph.disallow_in_graph(torch.cos)        # not weakly referenceable: held, and found
    try:
        assert torch.cos in registry._disallowed
    finally:
        registry._disallowed.discard(torch.cos)
    assert torch.cos not in registry._disallowed


# --------------------------------------------------------------------------
# faults: each leaves the cache consistent and the program running

def victim(x):
    return x.cos() + 1


def test_backend_raises():
    def bad(gm, ex):
        raise ValueError("backend boom")
    c = compile_fn(victim, backend=bad)
    x = torch.ones(3)
    for _ in range(2):
        with pytest.raises(bytegraph.BackendCompilerFailed, match="backend boom"):
            c(x)
        assert _consistent(c).entries == ()
    assert counters()["fallback"]["backend_error"] == 2
    with bytegraph.config.patch(suppress_errors=True):
        c2 = compile_fn(victim, backend=bad)
        with pytest.warns(UserWarning, match="backend boom"):
            assert_same(victim(x), c2(x))
        assert_same(victim(x), c2(x))
        assert _consistent(c2).broken


def test_backend_returns_non_callable():
    for result in (None, 42, "gm"):
        c = compile_fn(victim, backend=lambda gm, ex, r=result: r)
        with pytest.raises(bytegraph.BackendCompilerFailed, match="expected a callable"):
            c(torch.ones(3))
        assert _consistent(c).entries == ()
    c = compile_fn(victim, backend=lambda gm, ex: gm.forward)
    assert_same(victim(torch.ones(3)), c(torch.ones(3)))


def test_backend_hangs_past_timeout():
    release = threading.Event()
    started = threading.Event()

    def hangs(gm, ex):
        started.set()
        release.wait(30)
        return gm.forward
    try:
        c = compile_fn(victim, backend=hangs)
        x = torch.ones(3)
        with bytegraph.config.patch(backend_timeout=0.3):
            t0 = time.monotonic()
            with pytest.raises(bytegraph.BackendCompilerFailed) as info:
                c(x)
            assert time.monotonic() - t0 < 10
            assert isinstance(info.value.inner_exception, TimeoutError)
            assert "backend_timeout" in str(info.value)
            assert _consistent(c).entries == ()
            assert counters()["fallback"]["backend_timeout"] == 1
            # another function's compile is not blocked by the abandoned backend thread
            other = compile_fn(lambda y: y * 3, backend=lambda gm, ex: gm.forward)
            assert_same(x * 3, other(x))
            with bytegraph.config.patch(suppress_errors=True):
                c2 = compile_fn(victim, backend=hangs)
                with pytest.warns(UserWarning, match="did not return"):
                    assert_same(victim(x), c2(x))
    finally:
        release.set()


def test_backend_timeout_keeps_grad_mode():
    seen = []

    def records(gm, ex):
        seen.append(torch.is_grad_enabled())
        return gm.forward
    with bytegraph.config.patch(backend_timeout=20.0):
        with torch.no_grad():
            compile_fn(victim, backend=records)(torch.ones(3))
        compile_fn(victim, backend=records)(torch.ones(3))
    assert seen == [False, True]


@pytest.mark.parametrize("where", ["trace", "backend"])
def test_keyboard_interrupt_during_compile(monkeypatch, where):
    def interrupt(*a, **k):
        raise KeyboardInterrupt
    if where == "trace":
        monkeypatch.setattr(Tracer, "run_root", interrupt)
        c = compile_fn(victim, backend="eager")
    else:
        c = compile_fn(victim, backend=interrupt)
    x = torch.ones(3)
    grad = torch.is_grad_enabled()
    with pytest.raises(KeyboardInterrupt):
        c(x)
    st = _consistent(c)
    assert st.entries == () and not st.broken and torch.is_grad_enabled() == grad
    monkeypatch.undo()
    if where == "backend":
        c = compile_fn(victim, backend="eager")
    assert_same(victim(x), c(x))
    assert len(_state(c).entries) == 1


def _deep(x, n):
    return x if n == 0 else _deep(x + 1, n - 1)


def deep_user(x, n):
    return _deep(x, n)


def test_recursion_error_in_deep_user_code():
    c = compile_fn(deep_user, backend="eager")
    x = torch.ones(2)
    with pytest.raises(RecursionError):
        deep_user(x, 100000)
    for _ in range(3):
        with pytest.raises(RecursionError):
            c(x, 100000)
    _consistent(c)
    assert frames() == 1
    assert_same(deep_user(x, 5), c(x, 5))


def test_recursion_error_from_a_deep_caller_stack():
    """The trace itself runs out of stack (the caller is deep): eager's result, a warning that
    says so (not a 'trace was wrong' bug report), and no retrace for these inputs."""
    def f(x):
        return _deep(x, 30)
    c = compile_fn(f, backend="eager")
    x = torch.ones(2)

    def descend(k):
        return c(x) if k == 0 else descend(k - 1)
    depth = sys.getrecursionlimit() - 120
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert_same(f(x), descend(depth))
    msgs = [str(w.message) for w in caught if "bytegraph" in str(w.message)]
    assert len(msgs) == 1 and "ran out of stack" in msgs[0], msgs
    assert frames() == 1 and counters()["fallback"]["resource_error"] == 1
    _consistent(c)
    assert_same(f(x), c(x))


def test_memory_error_in_fake_propagation(monkeypatch):
    orig = GraphBuilder._run_classified

    def oom(self, fn, target, fake_args, fake_kwargs):
        def raiser(*a, **k):
            raise MemoryError("fake OOM")
        return orig(self, raiser, target, fake_args, fake_kwargs)
    monkeypatch.setattr(GraphBuilder, "_run_classified", oom)
    c = compile_fn(victim, backend="eager")
    x = torch.ones(3)
    with pytest.warns(UserWarning, match="ran out of memory"):
        assert_same(victim(x), c(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(victim(x), c(x))
    st = _consistent(c)
    assert frames() == 1 and not st.broken and len(st.entries) == 1
    monkeypatch.undo()
    assert_same(victim(torch.ones(5)), c(torch.ones(5)))     # other inputs compile again
    assert counters()["frames"]["ok"] == 1


def test_memory_error_fullgraph_raises_unsupported(monkeypatch):
    def oom(*a, **k):
        raise MemoryError("no memory")
    monkeypatch.setattr(Tracer, "run_root", oom)
    c = compile_fn(victim, backend="eager", fullgraph=True)
    with pytest.raises(bytegraph.Unsupported, match="ran out of memory"):
        c(torch.ones(3))
    _consistent(c)


# --------------------------------------------------------------------------
# threads

def _tf(i):
    def f(x, y):
        return (x * (i + 1)).sin() + y.cos() * i
    f.__name__ = f.__qualname__ = f"tf{i}"
    return f


def test_threads_compile_once_per_guard_set_and_results_match():
    fns = [_tf(i) for i in range(4)]
    compiled = [compile_fn(f, backend="eager", dynamic=False) for f in fns]
    shapes = [(n,) for n in range(1, 5)]
    errors, wrong, used = [], [], set()
    barrier = threading.Barrier(8)

    def worker(k):
        try:
            barrier.wait()
            for j in range(64):
                i, shape = (j + k) % 4, shapes[(j // 4 + k) % 4]
                used.add((i, shape))
                x, y = torch.randn(shape), torch.randn(shape)
                got = compiled[i](x, y)
                if not torch.allclose(got, fns[i](x, y)):
                    wrong.append((i, shape))
        except Exception as e:      # noqa: BLE001
            errors.append(repr(e))
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not wrong
    assert len(used) == 4 * len(shapes)
    for c in compiled:
        st = _consistent(c)
        assert len(st.entries) == st.compiles == len(shapes)
    assert counters()["frames"]["ok"] == 4 * len(shapes)


def test_same_guards_under_contention_compile_once():
    calls = []

    def slow_backend(gm, ex):
        calls.append(1)
        time.sleep(0.2)
        return gm.forward
    c = compile_fn(victim, backend=slow_backend)
    barrier = threading.Barrier(6)
    out = []

    def go():
        barrier.wait()
        out.append(c(torch.ones(4)))
    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(calls) == 1 and len(out) == 6
    for o in out:
        assert_same(victim(torch.ones(4)), o)


def test_different_functions_do_not_wait_for_each_other():
    """A compile stuck in its backend does not hold up another function's compile."""
    release, started = threading.Event(), threading.Event()

    def stuck(gm, ex):
        started.set()
        release.wait(30)
        return gm.forward
    slow = compile_fn(victim, backend=stuck)
    t = threading.Thread(target=lambda: slow(torch.ones(3)))
    t.start()
    try:
        assert started.wait(30)
        t0 = time.monotonic()

        def other(x):
            return x.tan() * 2
        assert_same(other(torch.ones(3)), compile_fn(other, backend="eager")(torch.ones(3)))
        assert time.monotonic() - t0 < 20 and t.is_alive()
    finally:
        release.set()
        t.join(30)


def test_reentrant_call_during_compile_runs_eagerly():
    def inner(x):
        return x + 10
    c_inner = compile_fn(inner, backend="eager")
    seen = []

    def backend(gm, ex):
        seen.append(c_inner(torch.ones(2)))     # user code running during a compile
        return gm.forward
    c = compile_fn(victim, backend=backend)
    assert_same(victim(torch.ones(3)), c(torch.ones(3)))
    assert_same(inner(torch.ones(2)), seen[0])
    assert counters()["fallback"]["reentrant"] == 1
    assert_same(inner(torch.ones(2)), c_inner(torch.ones(2)))   # and compiles normally later
    assert len(_state(c_inner).entries) == 1


def test_make_fx_record_module_stack_patches_nothing():
    from bytegraph import make_fx
    aten = torch.ops.aten
    seen = []

    class Inner(nn.Module):
        def forward(self, x):
            seen.append(torch.nn.Module.__call__ is torch.nn.Module._wrapped_call_impl)
            return torch.relu(x)

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return self.inner(x) + 1
    results = []

    def trace():
        gm = make_fx(Outer(), record_module_stack=True)(torch.randn(3))
        relu = next(n for n in gm.graph.nodes if n.target is aten.relu.default)
        results.append(list(relu.meta["nn_module_stack"].values()))
    threads = [threading.Thread(target=trace) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert seen and all(seen)
    assert results == [[("inner", Inner)]] * 4


def test_reset_while_compiling_on_another_thread():
    release, started = threading.Event(), threading.Event()

    def stuck(gm, ex):
        started.set()
        release.wait(30)
        return gm.forward
    c = compile_fn(victim, backend=stuck)
    t = threading.Thread(target=lambda: c(torch.ones(3)))
    t.start()
    assert started.wait(30)
    bytegraph.reset()
    release.set()
    t.join(30)
    assert _consistent(c).entries == ()          # the stale compile did not install
    assert_same(victim(torch.ones(3)), compile_fn(victim, backend="eager")(torch.ones(3)))


# --------------------------------------------------------------------------
# counters and logging of fallbacks

class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_fallbacks_logged_once_per_function():
    def f(x, n):
        if n > 1:
            raise KeyError(n)
        return x
    c = compile_fn(f, backend="eager", dynamic=False)
    log = logging.getLogger("bytegraph")
    handler, level = _Records(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        for n in (2, 3, 4):
            with pytest.raises(KeyError):
                c(torch.ones(1), n)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    user = [r for r in handler.records if "user_error" in r.getMessage()]
    assert len(user) == 1 and "KeyError" in user[0].getMessage()
    assert counters()["fallback"]["user_error"] == 3
