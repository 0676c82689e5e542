"""torch._check_tensor_all / _check_tensor_all_with on a tensor the graph computes: the check
runs in Python between two graphs and the trace goes on (a split, not a stop: one trace, no
resume function). Differential: outputs, side effects, the exception a failing check raises
(type and message) and where (the side effects before it happened, those after it did not)."""
import pytest
import torch

import bytegraph
from differential import REFERENCE, assert_same

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's split counts")


def checked(x, log):
    y = x.sin()
    log.append("before")
    torch._check_tensor_all(y > -0.5)
    log.append("between")
    z = y.cos()
    torch._check_tensor_all_with(ValueError, z < 0.9, lambda: f"z too large: {z.max():.3f}")
    log.append("after")
    return z + 1


def run(x):
    bytegraph.reset()
    compiled = bytegraph.compile(checked, backend="eager")
    theirs, mine = [], []
    try:
        expected = checked(x, theirs)
    except Exception as e:          # noqa: BLE001
        with pytest.raises(type(e)) as got:
            compiled(x, mine)
        assert str(got.value) == str(e)
    else:
        assert_same(expected, compiled(x, mine))
    assert mine == theirs
    return bytegraph.counters["frames"]["total"]


def test_passing_checks_are_one_trace():
    assert run(torch.tensor([0.5, 1.0, 1.2])) == 1


@pytest.mark.parametrize("x", [[-1.0, 0.5], [0.1, 0.2]], ids=["first_fails", "second_fails"])
def test_failing_check_raises_where_eager_does(x):
    run(torch.tensor(x))


def test_python_bool_condition_is_not_split():
    def f(x):
        torch._check_tensor_all_with(ValueError, True, lambda: "never")
        return x * 2
    bytegraph.reset()
    compiled = bytegraph.compile(f, backend="eager")
    with pytest.raises(TypeError) as got:       # a tensor is required, as eagerly
        compiled(torch.ones(2))
    with pytest.raises(TypeError) as want:
        f(torch.ones(2))
    assert str(got.value) == str(want.value)
