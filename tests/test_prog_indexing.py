"""Differential programs: tensor indexing, slicing and index assignment (local and input mutation)."""
import pytest
import torch

from differential import check, tensors_like


def ids(fn):
    return fn.__name__


# --------------------------------------------------------------------------- reads
def ix_int(x):
    return x[0], x[-1], x[1, 2], x[0][1]


def ix_slices(x):
    return x[1:], x[:-1], x[::2], x[1:3, 1:], x[:, 2:], x[-2:, :-1]


def ix_step_slices(x):
    return x[::2, 1::2], x[0:4:3], x[:, ::3]


def ix_none(x):
    return x[None], x[:, None], x[..., None], x[None, :, None]


def ix_ellipsis(x):
    return x[..., 0], x[...], x[0, ...], x[..., 1:3]


def ix_mixed(x):
    return x[0, 1:3, None], x[..., None, 2], x[None, 1, ..., ::2]


def ix_bool_mask_tensor(x):
    m = x > 0
    return torch.where(m, x, 0.0).sum(), x[torch.tensor([True, False, True])]


def ix_long_tensor(x):
    idx = torch.tensor([2, 0, 1])
    return x[idx], x[:, idx], x[idx, idx]


def ix_list(x):
    return x[[0, 2]], x[:, [1, 3]], x[[0, 1], [2, 3]]


def ix_input_index_tensor(x, i):
    return x[i], x[:, i]


def ix_slice_object(x):
    s = slice(1, None, 2)
    return x[s], x[:, s], x[slice(None), slice(0, 2)]


def ix_computed_bounds(x):
    n = x.shape[0] // 2
    return x[:n], x[n:], x[x.size(1) - 2:]


def ix_tuple_key(x):
    key = (0, slice(1, 3))
    return x[key], x[(slice(None), 1)]


def ix_dim_3d(x):
    y = x.reshape(2, 3, 2)
    return y[:, 1], y[1, :, 0], y[..., -1], y[:, None, :, 1]


def ix_chained(x):
    return x[1:][0], x[:, 1:][:, 0][::2], x.t()[1][2:]


def ix_index_bool_list(x):
    return x[[True, False, True]]


def ix_scalar_tensor_index(x):
    i = torch.tensor(1)
    return x[i], x[:, i]


READS = [ix_int, ix_slices, ix_step_slices, ix_none, ix_ellipsis, ix_mixed, ix_bool_mask_tensor,
         ix_long_tensor, ix_list, ix_slice_object, ix_computed_bounds, ix_tuple_key, ix_dim_3d,
         ix_chained, ix_index_bool_list, ix_scalar_tensor_index]


@pytest.mark.parametrize("fn", READS, ids=ids)
def test_index_reads(fn):
    check(fn, *tensors_like((3, 4)))


def test_index_with_input_tensor():
    (x,) = tensors_like((3, 4))
    check(ix_input_index_tensor, x, torch.tensor([2, 1, 1]))


# --------------------------------------------------------------------------- writes on locals
def w_local_int(x):
    y = x.clone()
    y[0] = 0.0
    y[1, 2] = 5.0
    return y


def w_local_slice(x):
    y = torch.zeros(3, 4)
    y[:, 1:3] = x[:, :2]
    y[2:] = 1.0
    return y


def w_local_mask(x):
    y = x.clone()
    y[y < 0] = 0.0
    return y


def w_local_tensor_value(x):
    y = torch.zeros_like(x)
    y[0] = x[1] * 2
    y[..., -1] = torch.arange(3.0)
    return y


def w_local_index_tensor(x):
    y = x.clone()
    y[torch.tensor([0, 2])] = -1.0
    y[:, [1, 3]] = 7.0
    return y


def w_local_augmented(x):
    y = x.clone()
    y[0] += 1
    y[:, 1] *= 3
    y[1:, 2:] -= x[:2, :2]
    return y


def w_local_none_ellipsis(x):
    y = x.clone()
    y[..., 0] = 9.0
    y[None, 1] = 4.0
    return y


def w_local_int_dtype(x):
    y = torch.zeros(4, dtype=torch.int64)
    y[1] = 3
    y[2:] = torch.tensor([5, 6])
    return y, x.sum()


LOCAL_WRITES = [w_local_int, w_local_slice, w_local_mask, w_local_tensor_value, w_local_index_tensor,
                w_local_augmented, w_local_none_ellipsis, w_local_int_dtype]


@pytest.mark.parametrize("fn", LOCAL_WRITES, ids=ids)
def test_index_writes_local(fn):
    check(fn, *tensors_like((3, 4)))


# --------------------------------------------------------------------------- writes on inputs (mutation)
def w_input_int(x):
    x[0] = 1.0
    return x.sum()


def w_input_slice_from_other(x, y):
    x[:, :2] = y[:, 2:]
    return x * 2


def w_input_mask(x, y):
    x[x > 0] = 0.0
    return y + 1


def w_input_aug(x, y):
    x[1] += y[1]
    y[0, 0] = -5.0
    return (x, y)


def w_input_no_return(x, y):
    x[..., 1] = y[..., 3]


def w_input_index_tensor(x, y):
    x[torch.tensor([2, 0])] = y[:2]
    return x.mean()


INPUT_WRITES = [w_input_slice_from_other, w_input_mask, w_input_aug, w_input_no_return, w_input_index_tensor]


@pytest.mark.parametrize("fn", INPUT_WRITES, ids=ids)
def test_index_writes_input(fn):
    check(fn, *tensors_like((3, 4), (3, 4), seed=1))


def test_index_write_input_int():
    check(w_input_int, *tensors_like((3, 4)))


def w_input_view_write(x):
    v = x.view(-1)
    v[0] = 100.0
    row = x[1]
    row.fill_(2.0)
    return x + 0


def test_index_write_through_view():
    check(w_input_view_write, *tensors_like((3, 4)))


def test_new_with_a_size_is_a_size():
    # fx keeps a torch.Size argument as a plain tuple, and x.new((4,)) is the data [4.]: a wrong
    # result (x.new(size) in torch.distributions' Exponential.rsample) before the node became
    # new_empty
    def f(x, s):
        return (x.new(s).fill_(2) + 1, x.new(x.shape).fill_(1), x.new(torch.Size([])).fill_(3),
                x.new((2,)), x.new(s, device="cpu").fill_(0))
    check(f, torch.randn(3), torch.Size([4]), graphs=1)
