"""Custom torch.autograd.Function: captured as one node; its own backward is what autograd uses."""
import pytest
import torch

from differential import compile_fn, reset, graph_count, REFERENCE


class _Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x ** 2 + 100.0      # not the true derivative: proves this backward runs


def _f(x):
    return _Cube.apply(x * 2).sum()


BACKENDS = ["eager", "inductor"] + ([] if REFERENCE else ["aten"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_custom_function_uses_its_backward(backend):
    x1 = torch.randn(4, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    expected = _f(x1)
    expected.backward()
    reset()
    actual = compile_fn(_f, backend=backend, fullgraph=True)(x2)
    actual.backward()
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(x2.grad, x1.grad)
    assert graph_count() == 1
