"""Red team 11 on a torch.Size argument, which fx keeps as a plain tuple (x.new((4,)) is the data
[4.], x.new(torch.Size([4])) a size): torch.Tensor(x.shape) made the data tensor [n, 3] (a wrong
result), and x.new(size, dtype=...) -- a TypeError in eager -- ran as new_empty. Differential:
shapes, dtypes, data once filled, exceptions; what held (new_tensor, torch.tensor of a size,
x.new(*size), sizes built by + and slicing) stays pinned here."""
import pytest
import torch

import bytegraph
from differential import assert_same, reset


CASES = {
    "Tensor(size)": lambda x: torch.Tensor(x.shape).fill_(1),
    "Tensor(size[1:])": lambda x: torch.Tensor(x.shape[1:]).fill_(1),
    "Tensor(size + tuple)": lambda x: torch.Tensor(x.shape + (2,)).fill_(1),
    "Tensor(size, device)": lambda x: torch.Tensor(x.shape, device="cpu").fill_(1),
    "type(x)(size)": lambda x: type(x)(x.shape).fill_(1),
    "Tensor(Size([]))": lambda x: torch.Tensor(torch.Size([])).fill_(1),
    "Tensor(*size)": lambda x: torch.Tensor(*x.shape).fill_(1),
    "Tensor(tuple)": lambda x: torch.Tensor(tuple(x.shape)),
    "new(size)": lambda x: x.new(x.shape).fill_(1),
    "new(size, device)": lambda x: x.new(x.shape, device="cpu").fill_(1),
    "new(size[::-1])": lambda x: x.new(x.shape[::-1]).fill_(1),
    "new(tuple)": lambda x: x.new(tuple(x.shape)),
    "new(Size([]))": lambda x: x.new(torch.Size([])).fill_(2),
    "new_tensor(size)": lambda x: x.new_tensor(x.shape),
    "tensor(size)": lambda x: torch.tensor(x.shape),
    "tensor(size, float)": lambda x: torch.tensor(x.shape, dtype=torch.float32),
    "as_tensor(size)": lambda x: torch.as_tensor(x.shape),
}


@pytest.mark.parametrize("dynamic", [None, True])
@pytest.mark.parametrize("name", list(CASES))
def test_size_argument_keeps_its_meaning(name, dynamic):
    fn = CASES[name]
    reset()
    compiled = bytegraph.compile(fn, backend="eager", dynamic=dynamic)
    for n in (4, 5, 6):
        x = torch.randn(n, 3)
        want, got = fn(x), compiled(x)
        assert type(got) is type(want) and got.dtype == want.dtype
        assert_same(want, got)


@pytest.mark.parametrize("fn", [
    lambda x: x.new(x.shape, dtype=torch.int64),
    lambda x: x.new(x.shape, x.shape),
    lambda x: torch.nn.Parameter(x.shape),
], ids=["new_dtype", "new_two_sizes", "parameter"])
def test_size_argument_errors_as_eager(fn):
    reset()
    compiled = bytegraph.compile(fn, backend="eager")
    x = torch.randn(4, 3)
    with pytest.raises(Exception) as want:
        fn(x)
    with pytest.raises(Exception) as got:
        compiled(x)
    assert type(got.value) is type(want.value) and str(got.value) == str(want.value)
