"""Red-team probes of runtime/graph_state.py: the thread-local state a graph that raises
midway leaves behind, eager against compiled (exception, message, grad mode, autocast state and
nesting)."""
import pytest
import torch

import bytegraph
from differential import reset


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
