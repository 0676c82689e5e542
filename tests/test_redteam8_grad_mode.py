"""Red team 8: grad-mode switches inside compiled code under the "aten" backend (make_fx
lowering). Differential against eager: requires_grad of every result, gradients, and the
grad mode after the call.

Bug found: a graph holding a `torch._C._set_grad_enabled` node (a `with torch.no_grad():`
block, `torch.set_grad_enabled(False)`, or a graph break inside such a block) lost it when
the aten backend lowered the graph with make_fx (which runs the switch while tracing and
records nothing): tensors made under no_grad required grad (gradients flowed where eager
blocks them), `enable_grad` under an outer no_grad gave tensors without history, and a break
inside a no_grad block left grad mode disabled after the call. Such graphs now run as
captured."""
import contextlib
import io

import pytest
import torch

import bytegraph
from differential import REFERENCE, assert_same, compile_fn, reset


def no_grad_block(x):
    with torch.no_grad():
        y = x * 2
    return y, x * 3


def set_grad_calls(x):
    torch.set_grad_enabled(False)
    y = x * 2
    torch.set_grad_enabled(True)
    return y, (y * x).sum()


def break_inside_no_grad(x):
    y = x * 2
    with torch.no_grad():
        print("inside")
        z = y + 1
    return y * 3, z


def enable_grad_block(x):
    with torch.enable_grad():
        y = x * 2
    return y, x + 1


def nested_blocks(x):
    with torch.no_grad():
        a = x * 2
        with torch.enable_grad():
            b = x * a
        c = b + 1
    return a, b, c, (b * 2).sum()


_FNS = [no_grad_block, set_grad_calls, break_inside_no_grad, enable_grad_block, nested_blocks]


@pytest.mark.parametrize("outer_no_grad", [False, True])
@pytest.mark.parametrize("backend", ["eager", "aten"])
@pytest.mark.parametrize("fn", _FNS, ids=[f.__name__ for f in _FNS])
def test_grad_mode_switches(fn, backend, outer_no_grad):
    if REFERENCE and backend == "aten":
        pytest.skip("bytegraph's own backend")
    reset()
    c = compile_fn(fn, backend=backend)
    ctx = torch.no_grad if outer_no_grad else contextlib.nullcontext
    for _ in range(2):
        xe = torch.tensor([1.0, -1.0, 2.0], requires_grad=True)
        xc = xe.detach().clone().requires_grad_()
        try:
            with ctx(), contextlib.redirect_stdout(io.StringIO()):
                want = fn(xe)
                mode_e = torch.is_grad_enabled()
                got = c(xc)
                mode_c = torch.is_grad_enabled()
            assert mode_e == mode_c
            assert torch.is_grad_enabled(), "grad mode left disabled after the call"
        finally:
            torch.set_grad_enabled(True)       # a leak must not fail the tests after this one
        assert_same(want, got)
        loss_e = sum(t.sum() for t in want if t.requires_grad)
        loss_c = sum(t.sum() for t in got if t.requires_grad)
        if isinstance(loss_e, torch.Tensor):
            loss_e.backward()
            loss_c.backward()
            assert_same(xe.grad, xc.grad)
