"""torch._check_tensor_all(cond) / torch._check_tensor_all_with(exc, cond) without a message
(transformers' `torch_compilable_check` while tracing; hf/vits, hf/prophetnet) is a check node
in the graph: no split, eager's exception class and message when an element is false."""
import pytest
import torch

import bytegraph

from test_breaks13_shared_experts import Counting


def _outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except Exception as e:  # noqa: BLE001
        return type(e).__name__, str(e)


def _same(a, b):
    assert a[0] == b[0], (a, b)
    if a[0] == "ok":
        torch.testing.assert_close(a[1], b[1])
    else:
        assert a[1] == b[1]


def _breaks():
    return sum(bytegraph.counters["graph_break"].values())


def plain(x):
    y = x.sin() * 2
    torch._check_tensor_all(y > -1.5)
    return y.cos() + 1


def with_error_type(x):
    y = x.sin() * 2
    torch._check_tensor_all_with(ValueError, y > -1.5)
    return y.cos() + 1


def with_none_message(x):
    y = x.sin() * 2
    torch._check_tensor_all(y > -1.5, None)
    return y.cos() + 1


def in_try(x):
    y = x.sin() * 2
    try:
        torch._check_tensor_all(y > -1.5)
        z = y.cos()
    except RuntimeError as e:
        z = y.abs() + len(str(e))
    return z + 1


def via_helper(x):
    def check(cond):
        if torch.compiler.is_compiling():
            torch._check_tensor_all(cond)
        elif not bool(cond.all()):
            raise RuntimeError("eager path")
    y = x.sin() * 2
    check(y > -1.5)
    return y.cos() + 1


@pytest.mark.parametrize("fn", [plain, with_error_type, with_none_message, in_try])
@pytest.mark.parametrize("backend", ["eager", "aten"])
def test_one_graph_and_eagers_outcome(fn, backend):
    bytegraph.reset()
    be = Counting() if backend == "eager" else "aten"
    compiled = bytegraph.compile(fn, backend=be)
    good = torch.full((4,), 0.1)
    bad = torch.tensor([0.1, -1.2, 0.3, 0.0])
    for x in (good, bad, good, bad):
        _same(_outcome(compiled, x), _outcome(fn, x))
    assert _breaks() == 0
    if backend == "eager":
        assert be.graphs == 1
    assert bytegraph.counters["frames"]["total"] == 1


def test_the_helper_transformers_uses():
    bytegraph.reset()
    be = Counting()
    compiled = bytegraph.compile(via_helper, backend=be)
    for x in (torch.full((3,), 0.2), torch.tensor([0.2, -1.0, 0.1])):
        got = _outcome(compiled, x)
        assert got[0] == ("ok" if x.min() > -0.7 else "RuntimeError")
        if got[0] == "ok":
            torch.testing.assert_close(got[1], x.sin().mul(2).cos() + 1)
    assert (be.graphs, _breaks()) == (1, 0)


def message_callable(x):
    y = x.sin() * 2
    torch._check_tensor_all(y > -1.5, lambda: "custom")
    return y.cos() + 1


def not_bool(x):
    y = x.sin() * 2
    torch._check_tensor_all(y)
    return y.cos() + 1


@pytest.mark.parametrize("fn", [message_callable, not_bool])
def test_other_forms_still_run_in_python(fn):
    bytegraph.reset()
    compiled = bytegraph.compile(fn, backend="eager")
    for x in (torch.full((4,), 0.1), torch.tensor([0.1, -1.2, 0.3, 0.0])):
        _same(_outcome(compiled, x), _outcome(fn, x))
    assert _breaks() >= 1


def side_effect_first(x, log):
    log.append("before")
    y = x.sin() * 2
    torch._check_tensor_all(y > -1.5)
    log.append("after")
    return y + 1


def test_python_effects_before_a_failing_check_are_eagers():
    bytegraph.reset()
    compiled = bytegraph.compile(side_effect_first, backend="eager")
    for x in (torch.full((4,), 0.1), torch.tensor([0.1, -1.2, 0.3, 0.0])):
        want_log, got_log = [], []
        _same(_outcome(compiled, x, got_log), _outcome(side_effect_first, x, want_log))
        assert got_log == want_log


def test_inductor():
    bytegraph.reset()
    compiled = bytegraph.compile(plain, backend="inductor")
    for x in (torch.full((4,), 0.1), torch.tensor([0.1, -1.2, 0.3, 0.0])):
        _same(_outcome(compiled, x), _outcome(plain, x))
