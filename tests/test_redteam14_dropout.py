"""Red-team probes of dropout that eager skips (session 13's `_dropout_is_identity`,
policy/calls.py): aten's dropout returns its input itself when not training, when p == 0 or
when the input has no element. The fake run under a ShapeEnv goes through the python
dispatcher's decomposition, which returns a copy: a symbolic trace then made a new tensor where
eager has the same one, and a write into the result missed the input. Session 13 handled
`F.dropout`; `torch.dropout` (aten's op, the one F.dropout calls) still copied. Differential:
identity of the result, the input after a write through the result, for each backend, static
and dynamic."""
import pytest
import torch
import torch.nn.functional as F

import bytegraph
from differential import REFERENCE, assert_same

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's dropout modelling (torch.compile copies too)")


def _run(f, make, backend, dynamic, calls=2):
    bytegraph.reset()
    compiled = bytegraph.compile(f, backend=backend, dynamic=dynamic)
    for i in range(calls):          # the second call has new sizes: automatic dynamic
        a, b = make(i), make(i)
        assert_same(f(*a), compiled(*b))
        assert_same(a, b, path="args-after")


def _x(i):
    return (torch.randn(3, 4 + i, generator=torch.Generator().manual_seed(i)),)


def aten_eval(x):
    y = torch.dropout(x, 0.5, False)
    y.add_(1)
    return y is x, x * 2


def aten_p0(x):
    y = torch.dropout(x, 0.0, True)
    y.add_(1)
    return y is x, x * 2


def aten_keywords(x):
    y = torch.dropout(x, p=0.25, train=False)
    y.mul_(3)
    return y is x, x + 0


def vf_eval(x):
    y = torch._VF.dropout(x * 1, 0.5, False)
    y.add_(1)
    return y is x


@pytest.mark.parametrize("backend", ["eager", "inductor", "aten"])
@pytest.mark.parametrize("dynamic", [None, True], ids=["auto", "dynamic"])
@pytest.mark.parametrize("f", [aten_eval, aten_p0, aten_keywords, vf_eval], ids=lambda f: f.__name__)
def test_aten_dropout_that_eager_skips_hands_back_its_input(f, backend, dynamic):
    _run(f, _x, backend, dynamic)


def empty_train(x):
    y = F.dropout(x, 0.5, True)
    z = torch.dropout(x, 0.5, True)
    return y is x, z is x, y.shape


@pytest.mark.parametrize("backend", ["eager", "inductor"])
@pytest.mark.parametrize("dynamic", [None, True], ids=["auto", "dynamic"])
def test_dropout_of_an_empty_tensor_is_its_input(backend, dynamic):
    _run(empty_train, lambda i: (torch.randn(0, 3 + i),), backend, dynamic)


def aten_train(x):
    return torch.dropout(x, 0.5, True) is x


def aten_bad_p(x):
    return torch.dropout(x, 1.5, False)


def test_aten_dropout_still_draws_and_checks_p():
    bytegraph.reset()
    compiled = bytegraph.compile(aten_train, backend="eager")
    assert compiled(torch.ones(8)) is False
    compiled = bytegraph.compile(aten_bad_p, backend="eager")
    with pytest.raises(RuntimeError) as want:
        aten_bad_p(torch.ones(3))
    with pytest.raises(RuntimeError) as got:
        compiled(torch.ones(3))
    assert str(got.value) == str(want.value)


def numpy_p(x, p):
    y = F.dropout(x, p, training=False)
    y.add_(1)
    return y is x, x * 2


@pytest.mark.parametrize("backend", ["eager", "inductor"])
@pytest.mark.parametrize("dynamic", [None, True], ids=["auto", "dynamic"])
def test_a_numpy_probability_is_a_number(backend, dynamic):
    """p a numpy float64 argument (an ImmutableValue, not a ConstValue): the identity was not
    seen, and a symbolic trace copied `x` (inductor lost the write through the result)."""
    import numpy as np
    _run(numpy_p, lambda i: (torch.ones(2 + i, 3), np.float64(0.5)), backend, dynamic)
