"""Red-team probes: the compiled nn.Module wrapper (OptimizedModule), training, the backend contract.

Every test is differential: two identical models built from the same seed, one eager and one
compiled, compared on outputs, grads, parameters after optimizer steps, buffers and state.
Bugs are strict xfails whose reason starts with "BUG:".
"""
import copy
import functools
import io
import pickle

import pytest
import torch
import torch.nn as nn

import bytegraph
from differential import assert_same


def compile_eager(m, **kw):
    kw.setdefault("backend", "eager")
    return bytegraph.compile(m, **kw)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def bn_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.0), nn.Linear(8, 2))


def pair(factory=mlp, **kw):
    e = factory()
    c0 = factory()
    return e, c0, compile_eager(c0, **kw)


def X(*shape, seed=1):
    torch.manual_seed(seed)
    return torch.randn(*shape) if shape else torch.randn(6, 4)


def same_params(a, b, atol=1e-5):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert_same(sa[k], sb[k], atol=atol, rtol=atol, path=k)


def run_steps(model, opt_cls, steps=4, seed=5, **okw):
    opt = opt_cls(model.parameters(), **okw)
    torch.manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(6, 4)
        opt.zero_grad(set_to_none=True)
        model(x).pow(2).mean().backward()
        opt.step()


# --------------------------------------------------------------------------------------------
# training loops

@pytest.mark.parametrize("opt_cls,kw", [(torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
                                        (torch.optim.Adam, dict(lr=1e-2)),
                                        (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1))])
def test_train_steps_match_eager(opt_cls, kw):
    e, c0, c = pair(bn_net)
    run_steps(e, opt_cls, **kw)
    run_steps(c, opt_cls, **kw)
    same_params(e, c0)


def test_grad_accumulation():
    e, c0, c = pair()
    for m in (e, c):
        for i in range(3):
            (m(X(seed=i)) * (i + 1)).sum().backward()
    for p, q in zip(e.parameters(), c0.parameters()):
        assert_same(p.grad, q.grad)


def test_zero_grad_set_to_none_and_zero():
    e, c0, c = pair()
    c(X()).sum().backward()
    c.zero_grad(set_to_none=False)
    assert all(torch.count_nonzero(p.grad) == 0 for p in c0.parameters())
    c.zero_grad()
    assert all(p.grad is None for p in c0.parameters())


def test_no_grad_eval_interleaved_with_training():
    e, c0, c = pair(bn_net)
    oe = torch.optim.SGD(e.parameters(), lr=0.1)
    oc = torch.optim.SGD(c.parameters(), lr=0.1)
    for i in range(4):
        x = X(seed=i)
        for m, o in ((e, oe), (c, oc)):
            o.zero_grad()
            m(x).sum().backward()
            o.step()
        with torch.no_grad():
            a, b = e(x), c(x)
        assert not b.requires_grad
        assert_same(a, b)
        a, b = e(x), c(x)
        assert b.requires_grad
        assert_same(a, b)
    same_params(e, c0)


def test_inference_mode_then_training():
    e, c0, c = pair()
    c(X())
    with torch.inference_mode():
        a, b = e(X()), c(X())
    assert b.is_inference()
    assert_same(a, b)
    c(X()).sum().backward()
    e(X()).sum().backward()
    for p, q in zip(e.parameters(), c0.parameters()):
        assert_same(p.grad, q.grad)


def test_train_eval_toggle_batchnorm_running_stats():
    e, c0, c = pair(bn_net)
    for i in range(6):
        for m in (e, c):
            m.train(i % 2 == 0)
        x = X(seed=i)
        assert_same(e(x), c(x), atol=1e-6)
    assert c.training == c0.training == e.training
    same_params(e, c0, atol=1e-6)
    assert torch.equal(e[1].num_batches_tracked, c0[1].num_batches_tracked)


def test_dropout_rng_matches_eager_backend():
    torch.manual_seed(0)
    e = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    c = compile_eager(copy.deepcopy(e))
    torch.manual_seed(9)
    a = e(X())
    torch.manual_seed(9)
    b = c(X())
    assert_same(a, b)


def test_freeze_layer_after_compile():
    e, c0, c = pair()
    c(X()).sum()
    for m in (e, c0):
        m[0].requires_grad_(False)
    e(X()).sum().backward()
    c(X()).sum().backward()
    assert c0[0].weight.grad is None and c0[0].bias.grad is None
    assert_same(e[2].weight.grad, c0[2].weight.grad)


def test_requires_grad_false_everything_after_compile():
    e, c0, c = pair()
    c(X())
    assert c.requires_grad_(False) is c
    e.requires_grad_(False)
    a, b = e(X()), c(X())
    assert not b.requires_grad
    assert_same(a, b)


def test_input_requires_grad_input_grads():
    e, c0, c = pair()
    xa = X().requires_grad_()
    xb = X().requires_grad_()
    e(xa).sum().backward()
    c(xb).sum().backward()
    assert_same(xa.grad, xb.grad)


def test_full_backward_hook_on_submodule():
    e, c0, c = pair()
    got = {"e": [], "c": []}
    e[2].register_full_backward_hook(lambda m, gi, go: got["e"].append(go[0].clone()))
    c0[2].register_full_backward_hook(lambda m, gi, go: got["c"].append(go[0].clone()))
    e(X()).pow(2).sum().backward()
    c(X()).pow(2).sum().backward()
    assert len(got["c"]) == 1
    assert_same(got["e"], got["c"])
    assert_same(e[0].weight.grad, c0[0].weight.grad)


def test_gpt2_tiny_training_matches_eager():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=32,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                  bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    e = transformers.GPT2LMHeadModel(cfg)
    c0 = copy.deepcopy(e)
    c = compile_eager(c0)
    ids = torch.randint(0, 100, (2, 8))
    oe = torch.optim.AdamW(e.parameters(), 1e-3)
    oc = torch.optim.AdamW(c.parameters(), 1e-3)
    for _ in range(2):
        for m, o in ((e, oe), (c, oc)):
            o.zero_grad()
            out = m(ids, labels=ids)
            out.loss.backward()
            o.step()
    assert type(out).__name__ == "CausalLMOutputWithCrossAttentions"
    for p, q in zip(e.parameters(), c0.parameters()):
        assert_same(p, q, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# dtype / state changes after compile

@pytest.mark.parametrize("conv", ["to64", "double", "half"])
def test_dtype_conversion_after_compile(conv):
    e, c0, c = pair(bn_net)
    c(X())
    e(X())
    for m in (e, c):
        if conv == "to64":
            assert m.to(torch.float64) is m
        elif conv == "double":
            m.double()
        else:
            m.half()
    dt = c0[0].weight.dtype
    assert dt == e[0].weight.dtype
    x = X().to(dt)
    a, b = e(x), c(x)
    assert b.dtype == dt
    assert_same(a, b, atol=1e-2 if dt == torch.float16 else 1e-6)


def test_dtype_conversion_with_param_overwrite_future():
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        e, c0, c = pair()
        c(X())
        e.double()
        c.double()
        assert_same(e(X().double()), c(X().double()))
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(False)


def test_load_state_dict_after_compile():
    e, c0, c = pair(bn_net)
    c(X())
    with torch.no_grad():
        for p in e.parameters():
            p.mul_(-2).add_(1)
    c.load_state_dict(e.state_dict())
    same_params(e, c0)
    e.eval()
    c.eval()
    assert_same(e(X()), c(X()))


def test_parameter_object_replaced_after_compile():
    e, c0, c = pair()
    c(X())
    torch.manual_seed(3)
    w = torch.randn(2, 8)
    e[2].weight = nn.Parameter(w.clone())
    c0[2].weight = nn.Parameter(w.clone())
    assert_same(e(X()), c(X()))


def test_state_dict_save_load_roundtrip():
    e, c0, c = pair(bn_net)
    c(X())
    buf = io.BytesIO()
    torch.save(c.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf)
    assert list(sd) == list(e.state_dict())
    e.load_state_dict(sd)
    same_params(e, c0)


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)
        self.scale = 1.0

    def forward(self, x):
        x = self.a(x) * self.scale
        if hasattr(self, "extra"):
            x = x + self.extra
        if "c" in self._modules:
            x = self.c(x)
        return self.b(x)

    def helper(self):
        return self.scale * 10


def gated():
    torch.manual_seed(0)
    return Gated()


def test_attribute_set_on_wrapper_reaches_original():
    e, c0, c = pair(gated)
    c(X())
    c.scale = 3.0
    e.scale = 3.0
    assert c0.scale == 3.0
    assert_same(e(X()), c(X()))
    assert c.helper() == 30.0
    c.foo = 7
    assert c0.foo == 7 and hasattr(c, "foo") and "foo" in dir(c)
    del c.foo
    assert not hasattr(c0, "foo")


def test_add_replace_remove_submodule_after_compile():
    e, c0, c = pair(gated)
    c(X())
    torch.manual_seed(2)
    la = nn.Linear(4, 4)
    e.c = la
    c.c = copy.deepcopy(la)
    assert_same(e(X()), c(X()))
    torch.manual_seed(3)
    lb = nn.Linear(4, 2)
    e.b = lb
    c.b = copy.deepcopy(lb)
    assert_same(e(X()), c(X()))
    del e.c
    del c.c
    assert_same(e(X()), c(X()))
    e.add_module("c", nn.Identity())
    c.add_module("c", nn.Identity())
    assert_same(e(X()), c(X()))


def test_plain_tensor_attribute_set_after_compile():
    e, c0, c = pair(gated)
    c(X())
    e.extra = torch.ones(4)
    c.extra = torch.ones(4)
    assert_same(e(X()), c(X()))


def test_register_buffer_on_original_after_compile():
    e, c0, c = pair(gated)
    c(X())
    e.register_buffer("extra", torch.ones(4))
    c0.register_buffer("extra", torch.ones(4))
    assert_same(e(X()), c(X()))


def test_getattr_default_then_register_parameter():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(4, 4)

        def forward(self, x):
            return self.l(x) * getattr(self, "gain", 1.0)

    torch.manual_seed(0)
    e = M()
    torch.manual_seed(0)
    c0 = M()
    c = compile_eager(c0)
    c(X())
    e.register_parameter("gain", nn.Parameter(torch.full((4,), 2.0)))
    c0.register_parameter("gain", nn.Parameter(torch.full((4,), 2.0)))
    assert_same(e(X()), c(X()))


def test_register_buffer_and_parameter_on_wrapper():
    e, c0, c = pair(gated)
    c(X())
    e.register_buffer("extra", torch.ones(4))
    c.register_buffer("extra", torch.ones(4))
    assert "extra" in c0._buffers
    e.register_parameter("p", nn.Parameter(torch.ones(1)))
    c.register_parameter("p", nn.Parameter(torch.ones(1)))
    assert list(e.state_dict()) == list(c.state_dict())
    assert_same(e(X()), c(X()))


# --------------------------------------------------------------------------------------------
# hooks

def test_hooks_registered_after_compile_modify_inputs_and_outputs():
    e, c0, c = pair()
    c(X())
    for m in (e, c):
        m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
        m.register_forward_hook(lambda mod, args, out: out + 1)
    assert_same(e(X()), c(X()))


def test_hook_handle_remove():
    e, c0, c = pair()
    hs = [m.register_forward_hook(lambda mod, args, out: out * 5) for m in (e, c)]
    assert_same(e(X()), c(X()))
    for h in hs:
        h.remove()
    assert_same(e(X()), c(X()))
    assert_same(mlp()(X()), c(X()))


def test_hooks_with_kwargs():
    outs = []
    for m in pair()[::2]:
        m.register_forward_pre_hook(lambda mod, a, k: ((a[0] * 2,), k), with_kwargs=True)
        m.register_forward_hook(lambda mod, a, k, o: o * 3, with_kwargs=True)
        outs.append(m(X()))
    assert_same(*outs)


def test_hook_prepend_order():
    e, c0, c = pair()
    c(X())
    for m in (e, c):
        m.register_forward_hook(lambda mod, a, o: o + 1)
        m.register_forward_hook(lambda mod, a, o: o * 2, prepend=True)
    assert_same(e(X()), c(X()))


def test_submodule_hook_after_compile():
    e, c0, c = pair()
    c(X())
    e[0].register_forward_hook(lambda m, a, o: o * 0)
    c0[0].register_forward_hook(lambda m, a, o: o * 0)
    assert_same(e(X()), c(X()))


def test_global_module_forward_hook():
    e, c0, c = pair()
    c(X())
    h = nn.modules.module.register_module_forward_hook(
        lambda m, a, o: o * 2 if isinstance(m, nn.Linear) else o)
    try:
        assert_same(e(X()), c(X()))
    finally:
        h.remove()
    assert_same(e(X()), c(X()))


class Boom(nn.Module):
    def forward(self, x):
        raise ValueError("boom")


def test_forward_hook_always_call_on_exception():
    seen = {"e": 0, "c": 0}
    for key, m in (("e", Boom()), ("c", compile_eager(Boom()))):
        m.register_forward_hook(lambda mod, a, o, key=key: seen.__setitem__(key, seen[key] + 1),
                                always_call=True)
        with pytest.raises(ValueError, match="boom"):
            m(X())
    assert seen == {"e": 1, "c": 1}


# --------------------------------------------------------------------------------------------
# wrapper identity and nn.Module API

def test_parameters_and_state_dict_identity():
    c0 = mlp()
    c = compile_eager(c0)
    assert isinstance(c, nn.Module)
    assert all(a is b for a, b in zip(c.parameters(), c0.parameters()))
    assert [n for n, _ in c.named_parameters()] == [n for n, _ in c0.named_parameters()]
    sd = c.state_dict(keep_vars=True)
    assert list(sd) == list(c0.state_dict())
    assert all(sd[k] is v for k, v in c0.state_dict(keep_vars=True).items())
    assert c.get_parameter("0.weight") is c0[0].weight
    assert "Linear" in repr(c)


def test_kwargs_vs_positional_forward_and_methods():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(4, 4)

        def forward(self, x, scale=1.0):
            return self.l(x) * scale

        def extra(self):
            return 5

    torch.manual_seed(0)
    e = M()
    torch.manual_seed(0)
    c = compile_eager(M())
    assert_same(e(X(), scale=2.0), c(X(), scale=2.0))
    assert_same(e(X(), 3.0), c(X(), 3.0))
    assert_same(e(x=X()), c(x=X()))
    assert_same(e.forward(X()), c.forward(X()))
    assert c.extra() == 5


def test_dict_output_and_identity_passthrough():
    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(4, 2)

        def forward(self, x, *, y=None):
            return {"a": self.l(x), "b": self.l(x) if y is None else y}

    torch.manual_seed(0)
    e = D()
    torch.manual_seed(0)
    c = compile_eager(D())
    x = X()
    a, b = e(x, y=x), c(x, y=x)
    assert_same(a, b)
    assert b["b"] is x


@pytest.mark.parametrize("dynamic", [None, False, True])
def test_batch_sizes(dynamic):
    e, c0, c = pair(dynamic=dynamic)
    for n in (1, 2, 3, 5, 8):
        assert_same(e(torch.ones(n, 4) * n), c(torch.ones(n, 4) * n))


def test_train_eval_return_and_flags():
    e, c0, c = pair(bn_net)
    assert c.eval() is c
    assert not c0.training and not c0[1].training and not c.training
    assert c.train() is c
    assert c0.training and c0[1].training


def test_deepcopy_then_use():
    e, c0, c = pair(bn_net)
    c(X())
    e(X())
    d = copy.deepcopy(c)
    assert d._orig_mod is not c0
    d.eval()
    assert c0.training
    e.eval()
    assert_same(e(X()), d(X()))


def test_deepcopy_then_train_independently():
    e, c0, c = pair()
    c(X())
    d = copy.deepcopy(c)
    run_steps(d, torch.optim.SGD, lr=0.1)
    run_steps(e, torch.optim.SGD, lr=0.1)
    same_params(e, d)
    same_params(mlp(), c0)


def test_pickle_and_torch_save_module():
    e, c0, c = pair()
    c(X())
    p = pickle.loads(pickle.dumps(c))
    assert isinstance(p, nn.Module)
    assert_same(e(X()), p(X()))
    buf = io.BytesIO()
    torch.save(c, buf)
    buf.seek(0)
    d = torch.load(buf, weights_only=False)
    assert_same(e(X()), d(X()))


def test_copy_copy_shares_original():
    c = compile_eager(mlp())
    cc = copy.copy(c)
    assert cc._orig_mod is c._orig_mod
    assert_same(c(X()), cc(X()))


def test_two_compiled_modules_share_submodule():
    torch.manual_seed(0)
    shared = nn.Linear(4, 4)
    m1 = nn.Sequential(shared, nn.ReLU())
    m2 = nn.Sequential(shared, nn.Tanh())
    c1, c2 = compile_eager(m1), compile_eager(m2)
    c1(X())
    c2(X())
    with torch.no_grad():
        shared.weight.mul_(2)
    assert_same(m1(X()), c1(X()))
    assert_same(m2(X()), c2(X()))
    (c1(X()).sum() + c2(X()).sum()).backward()
    g = shared.weight.grad.clone()
    shared.weight.grad = None
    (m1(X()).sum() + m2(X()).sum()).backward()
    assert_same(shared.weight.grad, g)


def test_compile_submodule_of_compiled_module():
    e, c0, c = pair()
    c(X())
    sub = compile_eager(c0[0])
    assert_same(e[0](X()), sub(X()))
    assert_same(e(X()), c(X()))


def test_recursive_compile_function_calling_compiled_module():
    e, c0, c = pair()
    f = compile_eager(lambda t: c(t) * 2)
    assert_same(e(X()) * 2, f(X()))
    f(X()).sum().backward()
    (e(X()) * 2).sum().backward()
    assert_same(e[0].weight.grad, c0[0].weight.grad)


def test_compile_compiled_module_again():
    e, c0, c = pair()
    cc = compile_eager(c)
    assert_same(e(X()), cc(X()))


def test_monkeypatched_instance_forward_after_compile():
    e, c0, c = pair()
    c(X())
    e.forward = lambda t: t * 5
    c0.forward = lambda t: t * 5
    assert_same(e(X()), c(X()))


def test_model_apply_on_children():
    seen_e, seen_c = [], []
    e, c0, c = pair()
    e.apply(lambda m: seen_e.append(type(m).__name__))
    c.apply(lambda m: seen_c.append(type(m).__name__))
    assert seen_e[:-1] == seen_c[:-1] == ["Linear", "ReLU", "Linear"]


def test_model_apply_reaches_top_level_module():
    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)

    torch.manual_seed(0)
    e = nn.Linear(4, 4)
    torch.manual_seed(0)
    c0 = nn.Linear(4, 4)
    c = compile_eager(c0)
    e.apply(init)
    c.apply(init)
    assert_same(e.weight, c0.weight)


def test_modules_contains_original():
    c0 = nn.Linear(4, 4)
    c = compile_eager(c0)
    assert any(m is c0 for m in c.modules())


class WithExtraState(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(2, 2)
        self.k = 3

    def forward(self, x):
        return self.l(x) * self.k

    def get_extra_state(self):
        return {"k": self.k}

    def set_extra_state(self, st):
        self.k = st["k"]


def test_state_dict_keeps_extra_state():
    e = WithExtraState()
    c = compile_eager(WithExtraState())
    assert list(c.state_dict()) == list(e.state_dict())


class CustomTrain(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.bn(self.l(x))

    def train(self, mode=True):   # common pattern: keep BatchNorm frozen in training
        super().train(mode)
        self.bn.eval()
        return self


def test_original_train_override_is_used():
    torch.manual_seed(0)
    e = CustomTrain()
    torch.manual_seed(0)
    c0 = CustomTrain()
    c = compile_eager(c0)
    e.train()
    c.train()
    assert c0.bn.training == e.bn.training
    assert_same(e(X()), c(X()))
    same_params(e, c0)


def test_batchnorm_load_old_state_dict():
    sd = nn.BatchNorm1d(4).state_dict()
    del sd["num_batches_tracked"]
    sd._metadata = {"": {"version": 1}}
    nn.BatchNorm1d(4).load_state_dict(sd)
    compile_eager(nn.BatchNorm1d(4)).load_state_dict(sd)


# --------------------------------------------------------------------------------------------
# backends

def test_custom_backend_receives_graphmodule_and_real_inputs():
    log = []

    def be(gm, example_inputs):
        assert isinstance(gm, torch.fx.GraphModule)
        ph = [n for n in gm.graph.nodes if n.op == "placeholder"]
        assert isinstance(example_inputs, list)
        assert len(ph) == len(example_inputs)
        for n, t in zip(ph, example_inputs):
            assert type(t) in (torch.Tensor, nn.Parameter)
            fake = n.meta.get("example_value", n.meta.get("val"))
            if fake is not None:
                assert tuple(fake.shape) == tuple(t.shape)
        log.append([tuple(t.shape) for t in example_inputs])
        return gm.forward

    e, c0, c = pair(backend=be)
    assert_same(e(X()), c(X()))
    assert (6, 4) in log[0] and (8, 4) in log[0]


def test_backend_returned_callable_runs_and_is_cached():
    n = {"compile": 0, "run": 0}

    def be(gm, ex):
        n["compile"] += 1

        def run(*args):
            n["run"] += 1
            return gm(*args)
        return run

    e, c0, c = pair(backend=be)
    for _ in range(3):
        assert_same(e(X()), c(X()))
    assert n == {"compile": 1, "run": 3}


def test_backend_returns_gm_module_itself():
    e, c0, c = pair(backend=lambda gm, ex: gm)
    assert_same(e(X()), c(X()))
    c(X()).sum().backward()
    e(X()).sum().backward()
    assert_same(e[0].weight.grad, c0[0].weight.grad)


def test_backend_graph_returns_sequence_and_wrapper_modifies_outputs():
    def be(gm, ex):
        def run(*args):
            outs = gm(*args)
            assert isinstance(outs, (tuple, list))
            return type(outs)(o * 2 for o in outs)
        return run

    e, c0, c = pair(backend=be)
    assert_same(e(X()) * 2, c(X()))


def test_register_backend_then_compile_by_name():
    calls = []

    @bytegraph.register_backend(name="redteam_counting")
    def counting(gm, ex):
        calls.append(len(ex))
        return gm.forward

    assert "redteam_counting" in bytegraph.list_backends()
    e, c0, c = pair(backend="redteam_counting")
    assert_same(e(X()), c(X()))
    assert len(calls) == 1


def test_backend_failure_raises_backend_compiler_failed():
    def be(gm, ex):
        raise RuntimeError("nope")

    c = bytegraph.compile(mlp(), backend=be)
    with pytest.raises(bytegraph.BackendCompilerFailed):
        c(X())


def _train_pair(backend, steps=3, **kw):
    e = mlp()
    run_steps(e, torch.optim.SGD, steps=steps, lr=0.1)
    c0 = mlp()
    c = bytegraph.compile(c0, backend=backend, **kw)
    run_steps(c, torch.optim.SGD, steps=steps, lr=0.1)
    same_params(e, c0)


def test_aten_backend_training():
    _train_pair("aten")


def test_aten_backend_training_batchnorm():
    e, c0 = bn_net(), bn_net()
    c = bytegraph.compile(c0, backend="aten")
    run_steps(e, torch.optim.Adam, lr=1e-2)
    run_steps(c, torch.optim.Adam, lr=1e-2)
    same_params(e, c0)


def test_inductor_backend_training():
    _train_pair("inductor")


def test_inductor_with_options_and_mode():
    _train_pair("inductor", options={"max_autotune": False}, steps=2)
    e, c0 = mlp(), mlp()
    c = bytegraph.compile(c0, backend="inductor", mode="max-autotune-no-cudagraphs")
    assert_same(e(X()), c(X()), atol=1e-5)


# --------------------------------------------------------------------------------------------
# the compile API

def test_disable_true_returns_original():
    m = mlp()
    assert bytegraph.compile(m, disable=True) is m

    def f(x):
        return x + 1
    assert bytegraph.compile(f, disable=True) is f


def test_fullgraph_unsupported_raises():
    def f(x):
        print("side effect")
        return x + 1

    with pytest.raises(bytegraph.Unsupported):
        bytegraph.compile(f, backend="eager", fullgraph=True)(X())


def test_compile_same_function_twice_independent():
    def f(x):
        return x.relu() + 1

    a = compile_eager(f)
    b = compile_eager(f)
    assert_same(f(X()), a(X()))
    assert_same(f(X()), b(X()))
    assert a.__bytegraph_state__ is not b.__bytegraph_state__


class K:
    @staticmethod
    def s(x):
        return x.sin() + 1

    @classmethod
    def cm(cls, x):
        return x.cos() * 2


def test_compile_lambda_staticmethod_classmethod_partial():
    assert_same(X() * 3, compile_eager(lambda t: t * 3)(X()))
    assert_same(K.s(X()), compile_eager(K.s)(X()))
    assert_same(K.cm(X()), compile_eager(K.cm)(X()))
    e, c0, _ = pair()
    p = compile_eager(functools.partial(c0.forward))
    assert_same(e(X()), p(X()))


def test_decorator_form_with_options():
    @bytegraph.compile(backend="eager", dynamic=False)
    def f(x, y):
        return x @ y.T

    assert_same(X() @ X(seed=2).T, f(X(), X(seed=2)))


def test_invalid_mode_raises():
    with pytest.raises(ValueError):
        bytegraph.compile(mlp(), mode="fastest")
