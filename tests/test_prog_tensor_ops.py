"""Differential programs: torch.* / F.* / Tensor methods, operators, attributes, factories, grad modes."""
import pytest
import torch
import torch.nn.functional as F

from differential import check, tensors_like


def ids(fn):
    return fn.__name__


# --------------------------------------------------------------------------- binary operators
def op_add(x, y):
    return x + y


def op_sub(x, y):
    return x - y


def op_mul(x, y):
    return x * y


def op_truediv(x, y):
    return x / (y.abs() + 1)


def op_floordiv(x, y):
    return x // (y.abs() + 1)


def op_mod(x, y):
    return x % (y.abs() + 1)


def op_pow(x, y):
    return x.abs() ** 2 + 2 ** y


def op_scalar_mix(x, y):
    return 3 - x * 2.5 + 1 / (y.abs() + 1) - 0.5


def op_compare(x, y):
    return x < y, x <= y, x > y, x >= y, x == y, x != y


def op_compare_scalar(x, y):
    return (x > 0) & (y < 0.5), 0 < x


def op_bool_bitwise(x, y):
    a, b = x > 0, y > 0
    return a & b, a | b, a ^ b, ~a


def op_int_bitwise(x, y):
    a = (x * 10).to(torch.int64)
    b = (y * 10).to(torch.int64)
    return a & b, a | b, a ^ b, ~a, a << 2, b >> 1


def op_neg_pos_abs(x, y):
    return -x, +y, abs(x - y)


BINARY = [op_add, op_sub, op_mul, op_truediv, op_floordiv, op_mod, op_pow, op_scalar_mix,
          op_compare, op_compare_scalar, op_bool_bitwise, op_int_bitwise, op_neg_pos_abs]


@pytest.mark.parametrize("fn", BINARY, ids=ids)
def test_binary_operators(fn):
    check(fn, *tensors_like((3, 4), (3, 4)))


def op_matmul(x, w):
    return x @ w


def op_matmul_vec(x, w):
    return x @ w[:, 0], w.t() @ x.t()


def op_imatmul(x, w):
    y = x.clone()
    y @= w
    return y


@pytest.mark.parametrize("fn", [op_matmul, op_matmul_vec, op_imatmul], ids=ids)
def test_matmul(fn):
    check(fn, *tensors_like((3, 4), (4, 4)))


# --------------------------------------------------------------------------- in-place operators
def ip_local_arith(x, y):
    z = x.clone()
    z += y
    z -= 1
    z *= y
    z /= 2
    return z


def ip_local_floordiv_mod_pow(x, y):
    z = x.abs() + 1
    z //= 0.5
    z %= 3
    z **= 2
    return z


def ip_local_bool(x, y):
    m = x > 0
    m |= y > 0
    m &= x < 1
    m ^= y > 1
    return m


def ip_local_int_shift(x, y):
    a = (x * 10).to(torch.int32)
    a <<= 2
    a >>= 1
    a |= 1
    return a


def ip_input_add(x, y):
    x += y
    return x * 2


def ip_input_mul_(x, y):
    x.mul_(2).add_(y)
    return x.sum()


def ip_input_no_return(x, y):
    x.sub_(1)
    y.zero_()
    return (x + y).sum()


def ip_input_clamp_(x, y):
    x.clamp_(min=-0.5, max=0.5)
    return x + y


INPLACE = [ip_local_arith, ip_local_floordiv_mod_pow, ip_local_bool, ip_local_int_shift,
           ip_input_add, ip_input_mul_, ip_input_no_return, ip_input_clamp_]


@pytest.mark.parametrize("fn", INPLACE, ids=ids)
def test_inplace(fn):
    check(fn, *tensors_like((3, 4), (3, 4)))


# --------------------------------------------------------------------------- torch.* / Tensor methods
def m_unary_math(x):
    return x.exp(), torch.log(x.abs() + 1), x.abs().sqrt(), torch.tanh(x), x.sigmoid(), torch.sin(x).cos()


def m_reductions(x):
    return x.sum(), x.sum(dim=1), x.mean(0, keepdim=True), x.amax(-1), x.prod(1), x.std(), x.var(0)


def m_max_dim(x):
    values, idx = x.max(dim=1)
    r = torch.min(x, 0)
    return values, idx, r.values, r.indices


def m_arg_topk_sort(x):
    v, i = x.topk(2, dim=1)
    s, si = torch.sort(x, dim=0, descending=True)
    return x.argmax(), x.argmin(dim=1), v, i, s, si


def m_shape_ops(x):
    return (x.reshape(4, 3), x.view(-1), x.permute(1, 0), x.transpose(0, 1), x.T,
            x.unsqueeze(0).squeeze(0), x.flatten(), x.t().contiguous())


def m_expand_repeat(x):
    r = x[:, :1]
    return r.expand(3, 5), x.repeat(2, 1), r.expand_as(x), x.unsqueeze(1).expand(-1, 2, -1)


def m_split_chunk(x):
    a, b = x.chunk(2, dim=1)
    c = torch.split(x, [1, 2], dim=0)
    return a, b, c, x.unbind(0)


def m_cat_stack(x):
    return torch.cat([x, x * 2], dim=0), torch.stack((x, -x), dim=1), torch.hstack([x, x])


def m_where_clamp(x):
    return torch.where(x > 0, x, torch.zeros_like(x)), x.clamp(-0.5, 0.5), torch.maximum(x, x.sum(0))


def m_cumsum_flip_roll(x):
    return x.cumsum(1), x.flip(0), torch.roll(x, 1, dims=1), x.tril(), torch.triu(x, 1)


def m_gather_scatter(x):
    idx = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [1, 1, 1, 1]])
    g = x.gather(1, idx)
    s = torch.zeros(3, 4).scatter(1, idx[:, :2], 1.0)
    return g, s, x.index_select(1, torch.tensor([0, 2]))


def m_masked_fill(x):
    return x.masked_fill(x < 0, 0.0), x.masked_fill(torch.tensor(True), -1.0)


def m_einsum_bmm(x):
    b = x.unsqueeze(0).expand(2, 3, 4)
    return torch.einsum("ij,kj->ik", x, x), torch.bmm(b, b.transpose(1, 2)), torch.outer(x[0], x[1])


def m_addmm_baddbmm(x):
    return torch.addmm(x[:, :3], x, x.t()[:, :3]), torch.addcmul(x, x, x, value=0.5)


def m_dtype_conversions(x):
    return x.to(torch.float64), x.int(), x.long(), x.double(), x.half(), x.bool(), x.type_as(torch.ones(1, dtype=torch.int16))


def m_new_and_like(x):
    return (x.new_zeros(2, 2), x.new_ones((3,)), x.new_full((2,), 7.0), torch.ones_like(x),
            torch.full_like(x, 3), torch.empty_like(x).fill_(1.5), x.new_tensor([1.0, 2.0]))


def m_clone_detach(x):
    y = x.clone()
    z = x.detach()
    y.add_(1)
    return y + z, y, z.requires_grad


def m_norms(x):
    return x.norm(), torch.linalg.vector_norm(x, dim=1), F.normalize(x, dim=-1), x.abs().pow(0.5)


def m_chained_methods(x):
    return x.mul(2).add(1).relu().sum(dim=0).div(3).neg().exp()


def m_torch_functional_variants(x):
    return torch.add(x, 1, alpha=2), torch.sub(x, x, alpha=0.5), torch.mul(x, 3), torch.div(x, 2, rounding_mode="floor")


def m_allclose_eq(x):
    return torch.equal(x, x.clone()), x.any(), x.all(), (x > 0).sum(), torch.isfinite(x).all()


METHODS = [m_unary_math, m_reductions, m_max_dim, m_arg_topk_sort, m_shape_ops, m_expand_repeat,
           m_split_chunk, m_cat_stack, m_where_clamp, m_cumsum_flip_roll, m_gather_scatter,
           m_masked_fill, m_einsum_bmm, m_addmm_baddbmm, m_dtype_conversions, m_new_and_like,
           m_clone_detach, m_norms, m_chained_methods, m_torch_functional_variants]


@pytest.mark.parametrize("fn", METHODS, ids=ids)
def test_torch_and_methods(fn):
    check(fn, *tensors_like((3, 4)))


# --------------------------------------------------------------------------- torch.nn.functional
def f_activations(x):
    return F.relu(x), F.gelu(x), F.silu(x), F.leaky_relu(x, 0.1), F.elu(x), F.softplus(x), F.hardtanh(x)


def f_softmax(x):
    return F.softmax(x, dim=-1), F.log_softmax(x, dim=1), x.softmax(0)


def f_linear(x):
    w = torch.ones(5, 4) * 0.1
    b = torch.arange(5.0)
    return F.linear(x, w, b), F.linear(x, w)


def f_layer_norm(x):
    return F.layer_norm(x, (4,)), F.layer_norm(x, x.shape[-1:], torch.ones(4) * 2, torch.zeros(4))


def f_dropout_eval(x):
    # both hand back x itself, as in eager (no node); the sum keeps one graph
    return F.dropout(x, p=0.5, training=False), F.dropout(x, p=0.0), x.sum()


def f_pad(x):
    return F.pad(x, (1, 2)), F.pad(x, (1, 1, 2, 0), value=3.0)


def f_losses(x):
    target = torch.tensor([0, 3, 1])
    return F.cross_entropy(x, target), F.mse_loss(x, x * 0.5), F.l1_loss(x, torch.zeros_like(x), reduction="sum")


def f_embedding(x):
    table = x
    idx = torch.tensor([[0, 2], [1, 1]])
    return F.embedding(idx, table), F.one_hot(torch.tensor([0, 2, 1]), 4)


FUNCTIONAL = [f_activations, f_softmax, f_linear, f_layer_norm, f_dropout_eval, f_pad, f_losses, f_embedding]


@pytest.mark.parametrize("fn", FUNCTIONAL, ids=ids)
def test_functional(fn):
    check(fn, *tensors_like((3, 4)))


def f_conv_pool(x, w):
    y = F.conv2d(x, w, padding=1)
    return F.max_pool2d(y, 2), F.avg_pool2d(y, kernel_size=2, stride=1), F.adaptive_avg_pool2d(y, 1)


def f_interpolate_batchnorm(x, w):
    up = F.interpolate(x, scale_factor=2, mode="nearest")
    bn = F.batch_norm(x, torch.zeros(2), torch.ones(2), training=False)
    return up, bn


@pytest.mark.parametrize("fn", [f_conv_pool, f_interpolate_batchnorm], ids=ids)
def test_functional_conv(fn):
    check(fn, *tensors_like((1, 2, 6, 6), (3, 2, 3, 3)))


# --------------------------------------------------------------------------- tensor attributes
def a_shape_dtype_device(x):
    return x + 1, x.shape, x.dtype, x.device, x.ndim


def a_size_dim_numel(x):
    return x * x.size(0), x.size(), x.size(-1), x.dim(), x.numel()


def a_transpose_attr(x):
    return x.T + x.mT.transpose(0, 1).t(), x.T.shape


def a_requires_grad_flag(x):
    return x * 2, x.requires_grad, x.is_floating_point(), x.is_contiguous(), x.t().is_contiguous()


def a_dtype_props(x):
    y = x.to(torch.int64)
    return y + 1, y.dtype.is_floating_point, x.dtype == torch.float32, x.element_size(), x.dtype.itemsize


def a_size_arithmetic(x):
    n = x.shape[0] * 2
    return x.new_zeros(n), x.shape + (1,), x.shape[1:], x.view(*x.shape[:-1], -1, 2), len(x.shape)


def a_size_unpack(x):
    b, c, d = x.shape
    return x.reshape(b * c, d), torch.Size([b, d]), x.new_ones(x.shape[::-1])


def a_size_compare(x):
    same = x.shape == (2, 3, 4)
    return x.sum(), same, x.shape[-1] == 4, torch.Size((2, 3)) + x.shape[2:], x.size()[0] % 2


ATTRS = [a_shape_dtype_device, a_size_dim_numel, a_requires_grad_flag, a_dtype_props]


@pytest.mark.parametrize("fn", ATTRS + [a_transpose_attr], ids=ids)
def test_attributes(fn):
    check(fn, *tensors_like((3, 4)))


@pytest.mark.parametrize("fn", [a_size_arithmetic, a_size_unpack, a_size_compare], ids=ids)
def test_size_arithmetic(fn):
    check(fn, *tensors_like((2, 3, 4)))


def a_requires_grad_input(x):
    return x * 2, x.requires_grad, x.detach().requires_grad, (x * 2).requires_grad


def test_requires_grad_input():
    (x,) = tensors_like((3, 4))
    check(a_requires_grad_input, x.requires_grad_())


# --------------------------------------------------------------------------- factories
def fac_basic(x):
    return x + torch.ones(3, 4), torch.zeros(2, 3), torch.full((2, 2), 3.5), torch.eye(3), torch.eye(2, 3)


def fac_dtypes(x):
    return (torch.zeros(3, dtype=torch.int64), torch.ones(2, 2, dtype=torch.bool),
            torch.full((3,), 7, dtype=torch.int32), torch.arange(5, dtype=torch.float64), x.sum())


def fac_arange_linspace(x):
    return torch.arange(5), torch.arange(1, 10, 3), torch.arange(0.0, 1.0, 0.25), torch.linspace(0, 1, 5) + x[0, 0]


def fac_tensor_literal(x):
    return x[0] * torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([[1, 2], [3, 4]]), torch.tensor(3.5), torch.tensor([True, False])


def fac_empty_fill(x):
    e = torch.empty(3, 4).fill_(2.0)
    z = torch.empty((2,), dtype=torch.int64)
    z.fill_(5)
    return x + e, z


def fac_device_kwargs(x):
    a = torch.ones(3, 4, device=x.device, dtype=x.dtype)
    b = torch.zeros(4, device="cpu")
    c = torch.arange(4, device=torch.device("cpu"), dtype=torch.float32)
    return x * a + b + c


def fac_from_shape(x):
    return torch.ones(x.shape), torch.zeros(x.size(0), x.size(1) * 2), torch.full(x.shape[1:], float(x.ndim))


def fac_tensor_of_python_values(x):
    n = x.shape[0]
    vals = [float(i) * 0.5 for i in range(n)]
    return x + torch.tensor(vals).unsqueeze(1)


FACTORIES = [fac_basic, fac_dtypes, fac_arange_linspace, fac_tensor_literal, fac_empty_fill,
             fac_device_kwargs, fac_from_shape, fac_tensor_of_python_values]


@pytest.mark.parametrize("fn", FACTORIES, ids=ids)
def test_factories(fn):
    check(fn, *tensors_like((3, 4)))


# --------------------------------------------------------------------------- grad modes / autocast
def g_no_grad(x):
    with torch.no_grad():
        y = x * 2
    z = x * 3
    return y, z, y.requires_grad, z.requires_grad


def g_enable_grad_inside_no_grad(x):
    with torch.no_grad():
        a = x + 1
        with torch.enable_grad():
            b = x + 2
        c = x + 3
    return a, b, c


def g_set_grad_enabled_ctx(x):
    with torch.set_grad_enabled(False):
        a = x.sin()
    b = x.cos()
    return a, b, torch.is_grad_enabled()


def g_set_grad_enabled_call(x):
    torch.set_grad_enabled(False)
    a = x * 2
    torch.set_grad_enabled(True)
    b = x * 2
    return a, b


def g_is_grad_enabled_branch(x):
    with torch.no_grad():
        if torch.is_grad_enabled():
            y = x + 100
        else:
            y = x - 100
    return y


def g_autocast_bf16(x):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = x @ x.t()
        z = torch.mm(x, x.t())
    w = x @ x.t()
    return y, z, w, y.dtype


def g_autocast_linear(x):
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        y = F.linear(x, torch.ones(2, 4))
    return y.float() + 1, y.requires_grad


def g_inference_readonly(x):
    with torch.no_grad():
        y = x.relu().sum(0)
    return y * 2


GRAD = [g_no_grad, g_enable_grad_inside_no_grad, g_set_grad_enabled_ctx, g_set_grad_enabled_call,
        g_is_grad_enabled_branch, g_autocast_bf16, g_autocast_linear, g_inference_readonly]


@pytest.mark.parametrize("fn", GRAD, ids=ids)
def test_grad_modes_requires_grad_input(fn):
    (x,) = tensors_like((3, 4))
    check(fn, x.requires_grad_(), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("fn", [g_no_grad, g_autocast_bf16], ids=ids)
def test_grad_modes_plain_input(fn):
    check(fn, *tensors_like((3, 4)), atol=1e-2, rtol=1e-2)
