"""Differential programs: nn.Module forward passes — submodules, params, buffers, hooks, training flag, module args."""
import collections
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from differential import assert_same, check, compile_fn, graph_count, reset, tensors_like


def ids(v):
    return v if isinstance(v, str) else getattr(v, "__name__", str(v))


def check_module_state(module, *args, graphs=1):
    """Differential run of `module(*args)` on two deep copies; also compares the state_dict afterwards."""
    reset()
    m_eager, m_comp = copy.deepcopy(module), copy.deepcopy(module)
    compiled = compile_fn(m_comp, backend="eager", fullgraph=True)
    a_eager, a_comp = copy.deepcopy(args), copy.deepcopy(args)
    assert_same(m_eager(*a_eager), compiled(*a_comp))
    assert_same(a_eager, a_comp, path="args-after")
    assert_same(dict(m_eager.state_dict()), dict(m_comp.state_dict()), path="state-after")
    assert graph_count() == graphs


def check_module_arg(fn, module, *args, graphs=1):
    """Differential run of `fn(module, *args)` where the module is a compiled-function argument."""
    reset()
    m_eager, m_comp = copy.deepcopy(module), copy.deepcopy(module)
    compiled = compile_fn(fn, backend="eager", fullgraph=True)
    a_eager, a_comp = copy.deepcopy(args), copy.deepcopy(args)
    assert_same(fn(m_eager, *a_eager), compiled(m_comp, *a_comp))
    assert_same(a_eager, a_comp, path="args-after")
    assert_same(dict(m_eager.state_dict()), dict(m_comp.state_dict()), path="state-after")
    assert graph_count() == graphs


def seeded(cls, *a, **k):
    torch.manual_seed(0)
    return cls(*a, **k)


# --------------------------------------------------------------------------- module definitions
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DirectParams(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 5))
        self.bias = nn.Parameter(torch.zeros(5))
        self.scale = 0.5

    def forward(self, x):
        return (x @ self.weight + self.bias) * self.scale


class Buffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.arange(4.0))
        self.register_buffer("tmp", torch.ones(4), persistent=False)

    def forward(self, x):
        return (x - self.mean) * self.tmp


class BufferMutation(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))
        self.register_buffer("running", torch.zeros(4))

    def forward(self, x):
        self.calls += 1
        self.running.mul_(0.9).add_(x.mean(0) * 0.1)
        return x - self.running


class TrainingBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x)
        if self.training:
            return y * 2
        return y - 1


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        y = self.pool(F.relu(self.bn(self.conv(x))))
        return self.head(torch.flatten(y, 1))


class Containers(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 3)})
        self.seq = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.LayerNorm(4))

    def forward(self, x):
        x = self.blocks[0](x) + self.blocks[-1](x)
        x = self.seq(x)
        return {k: self.heads[k](x) for k in ("a", "b")}, len(self.blocks)


class SharedAndFunctional(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        a = self.lin(self.lin(x))
        b = F.linear(x, self.lin.weight, self.lin.bias)
        return a + b, self.lin.out_features, self.lin.weight.shape


class ParamIteration(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 2)
        self.b = nn.Linear(2, 2)

    def forward(self, x):
        reg = sum(p.pow(2).sum() for p in self.parameters())
        names = [n for n, _ in self.named_parameters()]
        n_children = len(list(self.children()))
        return self.b(self.a(x)), reg, names, n_children


class BaseBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x)


class MidBlock(BaseBlock):
    def forward(self, x):
        return super().forward(x) + 1


class TopBlock(MidBlock):
    def __init__(self):
        super().__init__()
        self.extra = nn.Parameter(torch.ones(4))

    def forward(self, x):
        return super().forward(x) * self.extra


class KwargsForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x, scale=1.0, *, mask=None):
        y = self.lin(x) * scale
        if mask is not None:
            y = y.masked_fill(mask, 0.0)
        return y


class GetattrLayers(nn.Module):
    def __init__(self):
        super().__init__()
        for i in range(3):
            setattr(self, f"layer{i}", nn.Linear(4, 4))
        self.act = nn.Tanh()

    def helper(self, x):
        return self.act(x) * 0.5

    def forward(self, x):
        for i in range(3):
            x = getattr(self, f"layer{i}")(x)
        if isinstance(self.act, nn.Tanh):
            x = self.helper(x)
        return x, hasattr(self, "layer2"), hasattr(self, "layer9")


class NoGradInside(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        with torch.no_grad():
            frozen = self.lin(x)
        return frozen + self.lin(x), frozen.requires_grad


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.norm = nn.LayerNorm(4)
        self.drop = nn.Dropout(0.1)

    def forward(self, ids):
        return self.drop(self.norm(self.emb(ids)))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.heads = 2

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=-1)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / (k.shape[-1] ** 0.5)
        att = att.masked_fill(torch.ones(t, t, dtype=torch.bool).tril().logical_not(), float("-inf"))
        y = att.softmax(-1) @ v
        return y.transpose(1, 2).reshape(b, t, c)


class SDPA(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class BuiltInsideForward(nn.Module):
    def forward(self, x):
        return nn.ReLU()(x) + nn.Flatten(0)(x).sum() + nn.functional.gelu(x)


class NamedOutput(nn.Module):
    Out = collections.namedtuple("Out", ["logits", "hidden"])

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        return self.Out(self.lin(x), x)


# --------------------------------------------------------------------------- module-as-function tests
MODULES_EVAL = [
    ("mlp", MLP, (2, 4)),
    ("direct_params", DirectParams, (3, 4)),
    ("buffers", Buffers, (3, 4)),
    ("conv_bn_eval", Conv, (2, 2, 5, 5)),
    ("containers", Containers, (2, 4)),
    ("shared_and_functional", SharedAndFunctional, (2, 4)),
    ("param_iteration", ParamIteration, (2, 4)),
    ("super_multilevel", TopBlock, (2, 4)),
    ("getattr_layers", GetattrLayers, (2, 4)),
    ("no_grad_inside", NoGradInside, (2, 4)),
    ("attention", Attention, (2, 3, 8)),
    ("built_inside_forward", BuiltInsideForward, (2, 4)),
    ("named_output", NamedOutput, (2, 4)),
]


@pytest.mark.parametrize("name,cls,shape", MODULES_EVAL, ids=[m[0] for m in MODULES_EVAL])
def test_module_eval(name, cls, shape):
    m = seeded(cls).eval()
    check(m, *tensors_like(shape))


def test_module_sdpa():
    check(SDPA(), *tensors_like((1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4)))


def test_module_embedding_eval():
    check(seeded(Embed).eval(), torch.tensor([[1, 2, 3], [4, 5, 9]]))


def test_module_mlp_default_train_mode():
    check(seeded(MLP), *tensors_like((2, 4)))


def test_module_kwargs_forward():
    (x,) = tensors_like((2, 4))
    check(seeded(KwargsForward), x, 2.0, kwargs={"mask": x > 0})


def test_module_repeated_calls_same_shape():
    check(seeded(MLP), *tensors_like((2, 4)), calls=[tensors_like((2, 4), seed=1)])


def test_training_branch_train():
    check(seeded(TrainingBranch).train(), *tensors_like((2, 4)))


def test_training_branch_eval():
    check(seeded(TrainingBranch).eval(), *tensors_like((2, 4)))


def test_batchnorm_train_updates_running_stats():
    check_module_state(seeded(Conv).train(), *tensors_like((2, 2, 5, 5)))


def test_buffer_mutation_in_forward():
    check_module_state(seeded(BufferMutation), *tensors_like((3, 4)))


# --------------------------------------------------------------------------- hooks
def _pre_hook(module, args):
    (x,) = args
    return (x * 2,)


def _fwd_hook(module, args, out):
    return out + 100


def _kw_pre_hook(module, args, kwargs):
    kwargs = dict(kwargs)
    kwargs["scale"] = 3.0
    return args, kwargs


def test_forward_pre_and_post_hooks():
    m = seeded(MLP)
    m.register_forward_pre_hook(_pre_hook)
    m.register_forward_hook(_fwd_hook)
    # torch.compile(module) traces the hooks and forward as separate frames (3 graphs): don't pin the count.
    check(m, *tensors_like((2, 4)), graphs=None)


def test_hooks_inlined_when_called_from_function():
    m = seeded(MLP)
    m.register_forward_pre_hook(_pre_hook)
    m.register_forward_hook(_fwd_hook)

    def fn(x):
        return m(x) * 2

    check(fn, *tensors_like((2, 4)))


def test_hook_on_submodule():
    m = seeded(MLP)
    m.fc1.register_forward_hook(lambda mod, args, out: out.relu() * -1)
    check(m, *tensors_like((2, 4)))


def test_pre_hook_with_kwargs():
    m = seeded(KwargsForward)
    m.register_forward_pre_hook(_kw_pre_hook, with_kwargs=True)
    check(m, *tensors_like((2, 4)), kwargs={"mask": None})


# --------------------------------------------------------------------------- modules passed as arguments
def ma_call(m, x):
    return m(x)


def ma_read_params(m, x):
    return x @ m.fc1.weight.t() + m.fc1.bias, m.training, m.fc2.in_features


def ma_iterate(m, x):
    for blk in m.blocks:
        x = blk(x)
    return x, [k for k in m.heads]


def ma_two_modules(m, x, other):
    return m(x) + other


def test_module_argument_call():
    check_module_arg(ma_call, seeded(MLP), *tensors_like((2, 4)))


def test_module_argument_read_params():
    check_module_arg(ma_read_params, seeded(MLP).eval(), *tensors_like((2, 4)))


def test_module_argument_iterate_containers():
    check_module_arg(ma_iterate, seeded(Containers), *tensors_like((2, 4)))


def test_module_argument_with_tensor():
    check_module_arg(ma_two_modules, seeded(MLP), *tensors_like((2, 4), (2, 3)))


def test_module_argument_buffer_mutation():
    check_module_arg(ma_call, seeded(BufferMutation), *tensors_like((3, 4)))
