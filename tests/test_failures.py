"""Failure behaviour: graph breaks, fullgraph errors with locations, the user's own exceptions,
bytegraph's internal errors, failing backends -- the user's program never breaks because of
bytegraph, and nothing the user owns is touched by a failed compile."""
import os
import warnings

import pytest
import torch
import torch.nn as nn

import bytegraph
import bytegraph.symbolic.interpreter as interp
from differential import assert_same, compile_fn, counters, graph_count, tensors_like

THIS_FILE = os.path.basename(__file__)


def line_of(fn, needle):
    """Absolute line number of the first source line of `fn` containing `needle`."""
    import inspect
    lines, start = inspect.getsourcelines(fn)
    for i, text in enumerate(lines):
        if needle in text:
            return start + i
    raise AssertionError(f"{needle!r} not in {fn.__name__}")


def graph_breaks():
    return sum(counters()["graph_break"].values())


# --------------------------------------------------------------------------
# unsupported constructs

def brk_print(x):
    y = x * 2
    print("inside brk_print")
    return y + 1


def brk_item(x):
    if x.sum().item() > 0:
        return x + 1
    return x - 1


def brk_tolist(x):
    vals = x.tolist()
    return x * len(vals) + sum(vals)


BREAKS = [(brk_print, "print(\"", "print"), (brk_item, ".item()", "item"),
          (brk_tolist, ".tolist()", "tolist")]


@pytest.mark.parametrize("fn,needle,word", BREAKS, ids=[b[2] for b in BREAKS])
def test_graph_break_runs_eagerly_without_warning(fn, needle, word, capsys):
    c = compile_fn(fn, backend="eager", fullgraph=False)
    for seed in range(3):
        x, = tensors_like((3,), seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            expected = fn(x.clone())
            actual = c(x.clone())
        assert_same(expected, actual)
    assert graph_breaks() >= 1
    assert any(word in reason for reason in counters()["graph_break"]), dict(counters()["graph_break"])
    if fn is brk_print:   # the side effect happened exactly once per call (3 eager + 3 compiled)
        assert capsys.readouterr().out.count("inside brk_print") == 6


@pytest.mark.parametrize("fn,needle,word", BREAKS, ids=[b[2] for b in BREAKS])
def test_graph_break_fullgraph_raises_with_location(fn, needle, word):
    c = compile_fn(fn, backend="eager", fullgraph=True)
    x, = tensors_like((3,))
    with pytest.raises(bytegraph.Unsupported) as info:
        c(x)
    msg = str(info.value)
    assert word in msg
    assert f"{THIS_FILE}:{line_of(fn, needle)}" in msg, msg


def test_graph_break_in_inlined_helper_reports_helper_line():
    def helper(t):
        return t.tolist()

    def f(x):
        return x * len(helper(x))
    with pytest.raises(bytegraph.Unsupported) as info:
        compile_fn(f, backend="eager", fullgraph=True)(torch.ones(3))
    assert f"{THIS_FILE}:{line_of(helper, 'tolist')}" in str(info.value)


def test_graph_break_entry_is_reused_not_retraced():
    c = compile_fn(brk_item, backend="eager")
    x, = tensors_like((3,))
    assert_same(brk_item(x), c(x))
    first = counters()["frames"]["total"]      # the function and the code after its graph break
    for _ in range(4):
        assert_same(brk_item(x), c(x))
    assert counters()["frames"]["total"] == first


# --------------------------------------------------------------------------
# the user's own exceptions surface unchanged

def user_matmul(x, y):
    return x @ y


def user_raise(x):
    if x.shape[0] > 2:
        raise ValueError("too long")
    return x


def user_keyerror(x, d):
    return x + d["missing"]


class Boom(Exception):
    pass


def user_custom(x):
    raise Boom("custom")


USER_ERRORS = [
    (user_matmul, lambda: tensors_like((2, 3), (2, 3)), RuntimeError),
    (user_raise, lambda: tensors_like((4,)), ValueError),
    (user_keyerror, lambda: (torch.ones(2), {"a": torch.ones(2)}), KeyError),
    (user_custom, lambda: (torch.ones(2),), Boom),
]


@pytest.mark.parametrize("fullgraph", [False, True])
@pytest.mark.parametrize("fn,make_args,exc", USER_ERRORS, ids=[u[0].__name__ for u in USER_ERRORS])
def test_user_exception_surfaces(fn, make_args, exc, fullgraph):
    with pytest.raises(exc) as eager_info:
        fn(*make_args())
    c = compile_fn(fn, backend="eager", fullgraph=fullgraph)
    with pytest.raises(exc) as comp_info:
        c(*make_args())
    assert type(comp_info.value) is type(eager_info.value)
    assert str(comp_info.value) == str(eager_info.value)
    with pytest.raises(exc):      # and again (cached path)
        c(*make_args())


def test_user_exception_then_valid_call_compiles():
    c = compile_fn(user_raise, backend="eager", fullgraph=True)
    with pytest.raises(ValueError):
        c(torch.ones(4))
    x, = tensors_like((2,))
    assert_same(user_raise(x), c(x))


# --------------------------------------------------------------------------
# bytegraph's own bugs

def _internal_boom(*a, **k):
    raise RuntimeError("internal kaboom")


def victim(x):
    return x.cos() + 1


def test_internal_error_warns_once_and_runs_eagerly(monkeypatch):
    monkeypatch.setattr(interp.Tracer, "run_root", _internal_boom)
    c = compile_fn(victim, backend="eager")
    x, = tensors_like((3,))
    with pytest.warns(UserWarning) as rec:
        assert_same(victim(x), c(x))
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 1
    assert "victim" in msgs[0] and "kaboom" in msgs[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, = tensors_like((5,))          # new shape: still eager, no new warning, no retrace
        assert_same(victim(y), c(y))
        assert_same(victim(x), c(x))
    assert counters()["frames"]["total"] == 1


def test_internal_error_fullgraph_raises_unsupported(monkeypatch):
    monkeypatch.setattr(interp.Tracer, "run_root", _internal_boom)
    c = compile_fn(victim, backend="eager", fullgraph=True)
    with pytest.raises(bytegraph.Unsupported, match="kaboom"):
        c(torch.ones(3))


def test_internal_error_in_opcode_handler(monkeypatch):
    from bytegraph.symbolic.table import HANDLERS
    monkeypatch.setitem(HANDLERS, "BINARY_OP", _internal_boom)
    c = compile_fn(victim, backend="eager")
    x, = tensors_like((3,))
    with pytest.warns(UserWarning, match="victim"):
        assert_same(victim(x), c(x))


def test_internal_error_via_convert(monkeypatch):
    import bytegraph.runtime.api as api
    monkeypatch.setattr(api, "convert", _internal_boom)
    c = compile_fn(victim, backend="eager")
    x, = tensors_like((3,))
    with pytest.warns(UserWarning, match="victim"):
        assert_same(victim(x), c(x))


# --------------------------------------------------------------------------
# backends

def failing_backend(gm, example_inputs):
    raise ValueError("boom")


def test_backend_failure_raises_backend_compiler_failed():
    c = compile_fn(victim, backend=failing_backend)
    with pytest.raises(bytegraph.BackendCompilerFailed) as info:
        c(torch.ones(3))
    msg = str(info.value)
    assert "failing_backend" in msg and "ValueError" in msg and "boom" in msg
    assert isinstance(info.value.inner_exception, ValueError)


def test_registered_failing_backend_named_in_message():
    bytegraph.register_backend(failing_backend, name="bg_test_failing")
    c = compile_fn(victim, backend="bg_test_failing")
    with pytest.raises(bytegraph.BackendCompilerFailed, match="bg_test_failing"):
        c(torch.ones(3))


def test_backend_failure_suppressed():
    c = compile_fn(victim, backend=failing_backend)
    x, = tensors_like((3,))
    with bytegraph.config.patch(suppress_errors=True):
        with pytest.warns(UserWarning, match="boom"):
            assert_same(victim(x), c(x))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert_same(victim(x), c(x))


def test_backend_returns_non_callable():
    c = compile_fn(victim, backend=lambda gm, ex: 42)
    with pytest.raises(bytegraph.BackendCompilerFailed, match="int"):
        c(torch.ones(3))


def test_backend_failure_leaves_cache_empty_and_retries():
    calls = []

    def flaky(gm, ex):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first time")
        return gm.forward
    c = compile_fn(victim, backend=flaky)
    with pytest.raises(bytegraph.BackendCompilerFailed):
        c(torch.ones(3))
    x, = tensors_like((3,))
    assert_same(victim(x), c(x))
    assert len(calls) == 2 and graph_count() == 1


# --------------------------------------------------------------------------
# a failed compile mutates nothing the user owns

def mutate_then_break(x, log):
    log.append(len(log))
    log.extend([7, 8])
    y = x + 1
    if y.sum().item() > 100:     # graph break after the mutations
        return y
    return y * 2


def test_failed_trace_does_not_mutate_list_argument():
    x, = tensors_like((3,))
    eager_log, comp_log = [1], [1]
    c = compile_fn(mutate_then_break, backend="eager")
    assert_same(mutate_then_break(x, eager_log), c(x, comp_log))
    assert eager_log == comp_log == [1, 1, 7, 8]
    assert_same(mutate_then_break(x, eager_log), c(x, comp_log))
    assert eager_log == comp_log


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.calls = 0
        self.history = []
        self.register_buffer("steps", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        self.history.append(self.calls)
        self.steps += 1
        self.lin.tag = "seen"
        y = self.lin(x)
        print("break", end="")          # graph break after all the state changes
        return y


def test_failed_trace_does_not_mutate_module_state(capsys):
    torch.manual_seed(0)
    eager_m = Counting()
    comp_m = Counting()
    comp_m.load_state_dict(eager_m.state_dict())
    c = compile_fn(comp_m, backend="eager")
    x, = tensors_like((2, 3))
    for _ in range(2):
        assert_same(eager_m(x), c(x))
        assert comp_m.calls == eager_m.calls
        assert comp_m.history == eager_m.history
        assert_same(eager_m.steps, comp_m.steps)
        assert comp_m.lin.tag == "seen"
    assert graph_breaks() >= 1


def test_failed_trace_does_not_mutate_global_state():
    state = {"n": 0}

    def f(x):
        state["n"] += 1
        torch.manual_seed(123)            # refused: changes global state
        return x + state["n"]
    c = compile_fn(f, backend="eager")
    x, = tensors_like((3,))
    out = c(x)
    assert state["n"] == 1
    assert_same(x + 1, out)
    out = c(x)
    assert state["n"] == 2
    assert_same(x + 2, out)


def test_internal_error_does_not_mutate_arguments(monkeypatch):
    from bytegraph.symbolic.table import HANDLERS
    monkeypatch.setitem(HANDLERS, "BINARY_OP", _internal_boom)
    x, = tensors_like((3,))
    eager_log, comp_log = [1], [1]
    c = compile_fn(mutate_then_break, backend="eager")
    with pytest.warns(UserWarning):
        assert_same(mutate_then_break(x, eager_log), c(x, comp_log))
    assert eager_log == comp_log


def test_failed_trace_does_not_mutate_tensor_dict_iterator_or_rng():
    def f(x, d, it):
        x.add_(1)
        d["k"] = next(it)
        d.pop("a")
        y = torch.rand(3)
        print(end="")                 # graph break after all of it
        return x + y + d["k"]
    c = compile_fn(f, backend="eager")
    for _ in range(2):
        xe, xc = torch.zeros(3), torch.zeros(3)
        de, dc = {"a": 1}, {"a": 1}
        ite, itc = iter([5, 6]), iter([5, 6])
        torch.manual_seed(0)
        expected = f(xe, de, ite)
        torch.manual_seed(0)
        actual = c(xc, dc, itc)
        assert_same(expected, actual)
        assert_same(xe, xc)
        assert de == dc == {"k": 5}
        assert list(ite) == list(itc) == [6]
    assert graph_breaks() >= 1
