"""Behaviour tests for bytegraph.dispatch_trace.make_fx (differential vs eager)."""

import copy
import operator

import pytest
import torch
import torch.fx as fx
import torch.utils._pytree as pytree
from torch._subclasses.fake_tensor import FakeTensor

from bytegraph.dispatch_trace import (
    DataDependentError, aten_backend, core_decompositions, make_fx)

aten = torch.ops.aten
MODES = ["real", "fake", "symbolic"]


def clone(x):
    return pytree.tree_map_only(torch.Tensor, lambda t: t.clone(), x)


def call_targets(gm):
    return [n.target for n in gm.graph.nodes if n.op == "call_function"]


def check_same(fn, args, mode="real", **kw):
    """Trace fn on clones, run graph and eager on fresh clones, compare
    outputs and input mutations; return the GraphModule."""
    gm = make_fx(fn, tracing_mode=mode, **kw)(*clone(args))
    a_eager, a_graph = clone(args), clone(args)
    expected = fn(*a_eager)
    got = gm(*a_graph)
    torch.testing.assert_close(got, expected, equal_nan=True)
    torch.testing.assert_close(a_graph, a_eager, equal_nan=True)
    return gm


# --- basics: pytrees, placeholders ------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_pytree_inputs_and_outputs(mode):
    def f(d, xs, scale):
        a = d["a"] * scale + xs[0]
        return {"sum": a + xs[1], "pair": (a.relu(), [xs[1].neg()])}

    args = ({"a": torch.randn(3, 4)}, [torch.randn(3, 4), torch.randn(3, 4)], 2.5)
    gm = check_same(f, args, mode)
    phs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    assert len(phs) == len(pytree.tree_leaves(args)) == 4
    # scalar leaf is a placeholder but specialized: changing it has no effect
    assert phs[3].meta["val"] == 2.5
    out = gm({"a": args[0]["a"]}, args[1], 100.0)
    torch.testing.assert_close(out, f(*args))
    assert pytree.tree_structure(out) == pytree.tree_structure(f(*args))


@pytest.mark.parametrize("mode", MODES)
def test_graph_is_aten_only(mode):
    gm = check_same(lambda x: torch.nn.functional.gelu(x @ x.t()).sum(0), (torch.randn(4, 4),), mode)
    for t in call_targets(gm):
        assert isinstance(t, torch._ops.OpOverload) and t.namespace == "aten" or \
            mode == "symbolic" and t.__module__ in ("_operator", "torch"), t


# --- mutation and aliasing ---------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_input_mutation_replayed(mode):
    def f(x, y):
        x.add_(1)
        y[0].mul_(2)          # mutation through a view
        return x * y

    gm = check_same(f, (torch.randn(3), torch.randn(2, 3)), mode)
    targets = call_targets(gm)
    assert aten.add_.Tensor in targets and aten.mul_.Tensor in targets
    # in-place op is applied to the placeholder itself
    add_node = next(n for n in gm.graph.nodes if n.target is aten.add_.Tensor)
    assert add_node.args[0].op == "placeholder"


@pytest.mark.parametrize("mode", MODES)
def test_mutation_seen_by_earlier_view(mode):
    def f(x):
        v = x.view(-1)
        x.mul_(3)
        return v + 1, x

    check_same(f, (torch.randn(2, 2),), mode)


@pytest.mark.parametrize("mode", MODES)
def test_aliasing_outputs(mode):
    def f(x):
        v = x.view(-1)
        return x, v, v, x[0]

    gm = make_fx(f, tracing_mode=mode)(torch.randn(2, 3))
    x = torch.randn(2, 3)
    out = gm(x)
    assert out[0] is x  # returning an input returns it unchanged
    assert out[1] is out[2]
    assert out[1].data_ptr() == x.data_ptr() and out[3].data_ptr() == x.data_ptr()
    torch.testing.assert_close(out, f(x))


@pytest.mark.parametrize("mode", MODES)
def test_list_and_tuple_returning_ops(mode):
    def f(x):
        a, b = torch.split(x, [1, 3], dim=1)
        rows = x.unbind(0)
        vals, idx = torch.topk(x, 2)
        return [a, b], rows, vals, idx, torch.max(x, 1)

    gm = check_same(f, (torch.randn(3, 4),), mode)
    assert operator.getitem in call_targets(gm)
    assert isinstance(gm(torch.randn(3, 4))[4], torch.return_types.max)


@pytest.mark.parametrize("mode", MODES)
def test_scalar_outputs(mode):
    def f(x):
        return x + 1, x.dim(), 2.5, True, x.shape[0], None

    gm = check_same(f, (torch.randn(5, 2),), mode)
    out = gm(torch.randn(5, 2))
    assert out[1:] == (2, 2.5, True, 5, None)


def test_real_mode_trace_mutates_inputs_like_eager():
    x = torch.zeros(3)
    make_fx(lambda t: t.add_(1))(x)
    assert torch.equal(x, torch.ones(3))  # trace ran the real op


# --- constants, parameters, factories ----------------------------------------------
CONST = torch.randn(3)


@pytest.mark.parametrize("mode", MODES)
def test_tensor_constants_become_attributes(mode):
    local = torch.arange(3.0)

    def f(x):
        t = torch.tensor([1.0, 2.0, 3.0])
        t.add_(1)             # must not corrupt the stored constant
        return x + CONST + local + t

    gm = check_same(f, (torch.randn(3),), mode)
    attrs = [n.target for n in gm.graph.nodes if n.op == "get_attr"]
    assert len(attrs) == 3 and all(a.startswith("_tensor_constant") for a in attrs)
    assert any(getattr(gm, a) is CONST for a in attrs)
    assert aten.lift_fresh_copy.default in call_targets(gm)
    x = torch.randn(3)
    torch.testing.assert_close(gm(x), gm(x))  # stable across runs


@pytest.mark.parametrize("mode", MODES)
def test_module_params_are_get_attr_with_qualified_names(mode):
    linear = torch.nn.Linear(4, 3)
    seq = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())

    def f(x):
        return seq(linear(x))

    gm = check_same(f, (torch.randn(2, 4),), mode)
    attrs = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    assert attrs == {"linear.weight", "linear.bias", "seq.0.weight", "seq.0.bias"}
    assert gm.get_parameter("linear.weight") is linear.weight
    # fn being the module itself: names relative to it
    gm2 = make_fx(seq, tracing_mode=mode)(torch.randn(2, 3))
    assert {n.target for n in gm2.graph.nodes if n.op == "get_attr"} == {"0.weight", "0.bias"}


@pytest.mark.parametrize("mode", MODES)
def test_buffers_mutated_like_eager(mode):
    bn = torch.nn.BatchNorm1d(4).train()
    ref = copy.deepcopy(bn)
    gm = make_fx(bn, tracing_mode=mode)(torch.randn(8, 4))
    assert "running_mean" in {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    if mode == "real":
        ref = copy.deepcopy(bn)  # real trace already updated bn once (like eager)
    x = torch.randn(8, 4)
    torch.testing.assert_close(gm(x), ref(x))
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    assert int(bn.num_batches_tracked) == int(ref.num_batches_tracked)


@pytest.mark.parametrize("mode", MODES)
def test_factories_respect_dtype_and_device(mode):
    def f(x):
        a = torch.ones(3, dtype=torch.float64, device="cpu")
        b = torch.arange(3, dtype=torch.int32)
        c = torch.full((3,), 7, dtype=torch.int64)
        d = torch.zeros_like(x, dtype=torch.float16)
        return a, b, c, d, x + a.float()

    gm = check_same(f, (torch.randn(3),), mode)
    out = gm(torch.randn(3))
    assert [o.dtype for o in out[:4]] == [torch.float64, torch.int32, torch.int64, torch.float16]
    assert all(o.device.type == "cpu" for o in out)
    ones = next(n for n in gm.graph.nodes if n.target is aten.ones.default)
    assert ones.meta["val"].dtype == torch.float64


# --- random ops -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_random_ops_draw_fresh_numbers_and_follow_seed(mode):
    def f(x):
        return x + torch.randn(3), torch.rand_like(x)

    x = torch.randn(3)
    state = torch.get_rng_state()
    gm = make_fx(f, tracing_mode=mode)(x)
    consumed = not torch.equal(state, torch.get_rng_state())
    assert consumed == (mode == "real")  # only a real trace runs the RNG
    assert aten.randn.default in call_targets(gm) and aten.rand_like.default in call_targets(gm)
    torch.manual_seed(123)
    expected = f(x)
    torch.manual_seed(123)
    got = gm(x)
    torch.testing.assert_close(got, expected)
    assert not torch.equal(gm(x)[1], gm(x)[1])  # fresh numbers per run


# --- decompositions -------------------------------------------------------------------
def test_user_decomposition_table_recursive():
    def gelu_decomp(x, approximate="none"):
        return x * torch.sigmoid(1.702 * x)   # sigmoid decomposes again below

    def sigmoid_decomp(x):
        return 1 / (1 + torch.exp(-x))

    table = {aten.gelu.default: gelu_decomp, aten.sigmoid.default: sigmoid_decomp}
    gm = make_fx(lambda x: torch.nn.functional.gelu(x), decomposition_table=table)(torch.randn(4))
    targets = call_targets(gm)
    assert aten.gelu.default not in targets and aten.sigmoid.default not in targets
    assert aten.exp.default in targets
    x = torch.randn(4)
    torch.testing.assert_close(gm(x), gelu_decomp(x))


@pytest.mark.parametrize("mode", MODES)
def test_core_decompositions(mode):
    def f(x):
        return torch.nn.functional.hardswish(x) + torch.nn.functional.silu(x)

    gm = check_same(f, (torch.randn(4, 4),), mode, decomposition_table=core_decompositions())
    targets = call_targets(gm)
    assert aten.hardswish.default not in targets and aten.silu.default not in targets
    assert aten.hardswish.default in core_decompositions()


def test_composite_implicit_ops_decompose():
    # aten.linear is CompositeImplicitAutograd: it never reaches the graph
    gm = make_fx(lambda x, w: torch.nn.functional.linear(x, w))(torch.randn(2, 3), torch.randn(4, 3))
    assert aten.linear.default not in call_targets(gm)


# --- data-dependent ops ------------------------------------------------------------------
DATA_DEP = {
    "item": (lambda x: x.sum().item(), "_local_scalar_dense"),
    "nonzero": (lambda x: x.nonzero(), "nonzero"),
    "unique": (lambda x: torch.unique(x), "unique"),
    "tolist": (lambda x: x.tolist(), "_local_scalar_dense"),
    "bool": (lambda x: x + 1 if bool(x.sum() > 0) else x - 1, "_local_scalar_dense"),
}


@pytest.mark.parametrize("mode", ["fake", "symbolic"])
@pytest.mark.parametrize("case", sorted(DATA_DEP))
def test_data_dependent_ops_raise_in_fake_modes(mode, case):
    fn, opname = DATA_DEP[case]
    with pytest.raises(DataDependentError, match=opname) as ei:
        make_fx(fn, tracing_mode=mode)(torch.tensor([1.0, 0.0, 2.0]))
    assert isinstance(ei.value, RuntimeError)
    assert "data-dependent" in str(ei.value)


@pytest.mark.parametrize("case", sorted(DATA_DEP))
def test_data_dependent_ops_work_in_real_mode(case):
    fn, _ = DATA_DEP[case]
    x = torch.tensor([1.0, 0.0, 2.0])
    gm = make_fx(fn)(x.clone())
    torch.testing.assert_close(gm(x.clone()), fn(x.clone()))


def test_item_value_baked_in_real_mode():
    gm = make_fx(lambda x: torch.full((2,), x.max().item()))(torch.tensor([1.0, 5.0]))
    assert torch.equal(gm(torch.tensor([7.0, 9.0])), torch.tensor([5.0, 5.0]))


# --- symbolic shapes ----------------------------------------------------------------------
def test_symbolic_graph_generalizes_to_other_sizes():
    def f(x, y):
        n = x.size(0) * 2
        z = torch.cat([x, y]).view(n, -1)
        return z.sum(1), torch.ones(n + 1), x.size(0), x.shape[1] // 2

    gm = make_fx(f, tracing_mode="symbolic")(torch.randn(3, 4), torch.randn(3, 4))
    targets = call_targets(gm)
    assert aten.sym_size.int in targets and operator.mul in targets
    for rows, cols in [(3, 4), (5, 6), (7, 2)]:
        x, y = torch.randn(rows, cols), torch.randn(rows, cols)
        torch.testing.assert_close(gm(x, y), f(x, y))
    sym_nodes = [n for n in gm.graph.nodes if n.target is aten.sym_size.int]
    assert all(isinstance(n.meta["val"], torch.SymInt) for n in sym_nodes)


def test_symbolic_compound_size_expressions():
    def f(x):
        n = torch.sym_max(x.size(0), x.size(1)) * 3 + x.size(0) * x.size(1) - x.size(1) // 2
        return torch.zeros(n), x.reshape(x.size(1) // 2, -1)

    gm = make_fx(f, tracing_mode="symbolic")(torch.randn(4, 6))
    for n in gm.graph.nodes:
        if n.op != "output":
            assert "val" in n.meta, n   # intermediates of size arithmetic too
    for shape in [(4, 6), (5, 8), (3, 10)]:
        x = torch.randn(*shape)
        out, ref = gm(x), f(x)
        assert out[0].shape == ref[0].shape and out[1].shape == ref[1].shape, shape
    # (7, 2) breaks what the trace assumed (the reshape's view logic relied on size(1) // 2 != 1):
    # the graph raises instead of running on an assumption that no longer holds
    with pytest.raises(RuntimeError):
        gm(torch.randn(7, 2))


def test_fake_graph_is_static():
    gm = make_fx(lambda x: torch.ones(x.size(0) * 2), tracing_mode="fake")(torch.randn(3))
    assert aten.sym_size.int not in call_targets(gm)
    assert gm(torch.randn(5)).shape == (6,)


def test_symbolic_inputs_are_fake_and_use_no_data_memory():
    seen = []

    def f(x):
        seen.append(x)
        return x * 2

    make_fx(f, tracing_mode="symbolic")(torch.randn(1000, 1000))
    assert isinstance(seen[0], FakeTensor)
    assert isinstance(seen[0].shape[0], torch.SymInt)


# --- node metadata --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_meta_val_and_tensor_meta_on_every_node(mode):
    lin = torch.nn.Linear(4, 4)

    def f(x, k):
        a, b = lin(x).chunk(2, dim=1)
        return (a * k).softmax(-1), b.shape[0] * 2, torch.ones(x.size(0) + 1)

    x = torch.randn(3, 4)
    gm = make_fx(f, tracing_mode=mode)(x, 3)
    interp = fx.Interpreter(gm)
    real_vals = {}
    orig_run_node = interp.run_node

    def run_node(n):
        r = orig_run_node(n)
        real_vals[n] = r
        return r

    interp.run_node = run_node
    interp.run(x, 3)
    for n in gm.graph.nodes:
        if n.op == "output":
            continue
        assert "val" in n.meta, n
        val, real = n.meta["val"], real_vals[n]
        if isinstance(real, torch.Tensor):
            assert isinstance(val, FakeTensor), n
            assert "tensor_meta" in n.meta, n
            tm = n.meta["tensor_meta"]
            assert tm.dtype == real.dtype
            if mode != "symbolic":
                assert tuple(val.shape) == tuple(real.shape) == tuple(tm.shape), n
            else:
                assert len(val.shape) == real.dim()
        elif isinstance(real, (list, tuple)):
            assert isinstance(val, (list, tuple)) and len(val) == len(real), n
        elif isinstance(real, bool):            # runtime checks of symbolic assumptions
            assert isinstance(val, (bool, torch.SymBool)), n
        elif isinstance(real, int):
            assert isinstance(val, (int, torch.SymInt)), n


def test_record_module_stack():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)
            self.act = torch.nn.ReLU()

        def forward(self, x):
            return self.act(self.lin(x))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.head = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.block(x) * 2)

    net = Net()
    gm = make_fx(net, record_module_stack=True)(torch.randn(3, 4))
    stacks = {n.name: n.meta.get("nn_module_stack") for n in gm.graph.nodes}
    relu = next(n for n in gm.graph.nodes if n.target is aten.relu.default)
    assert list(relu.meta["nn_module_stack"].values()) == [
        ("block", Block), ("block.act", torch.nn.ReLU)]
    mul = next(n for n in gm.graph.nodes if n.target is aten.mul.Tensor)
    assert "nn_module_stack" not in mul.meta  # computed in Net.forward itself
    addmms = [n for n in gm.graph.nodes if n.target is aten.addmm.default]
    assert list(addmms[-1].meta["nn_module_stack"].values()) == [("head", torch.nn.Linear)]
    # off by default, and Module.__call__ is restored
    gm2 = make_fx(net)(torch.randn(3, 4))
    assert all("nn_module_stack" not in n.meta for n in gm2.graph.nodes)
    assert torch.nn.Module.__call__ is torch.nn.Module._wrapped_call_impl
    assert stacks


# --- autograd --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_autograd_forward_only_graph_and_grads(mode):
    w = torch.randn(4, 4, requires_grad=True)

    def f(x, y):
        return ((x @ w).tanh() * y).sum(), y.exp()

    x = torch.randn(3, 4, requires_grad=True)
    y = torch.randn(3, 4, requires_grad=True)
    gm = make_fx(f, tracing_mode=mode)(x, y)
    names = [str(t) for t in call_targets(gm)]
    assert not any("backward" in n for n in names), names

    def grads(fn):
        xs, ys = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
        w.grad = None
        a, b = fn(xs, ys)
        (a + b.sum()).backward()
        return a, b, xs.grad, ys.grad, w.grad.clone()

    torch.testing.assert_close(grads(gm), grads(f))


# --- argument validation ---------------------------------------------------------------------
def test_bad_arguments():
    with pytest.raises(TypeError, match="callable"):
        make_fx(42)
    with pytest.raises(ValueError, match="tracing_mode"):
        make_fx(lambda x: x, tracing_mode="bogus")
    with pytest.raises(TypeError, match="tracing_mode"):
        make_fx(lambda x: x, tracing_mode=1)
    with pytest.raises(TypeError, match="decomposition_table"):
        make_fx(lambda x: x, decomposition_table=[aten.add.Tensor])
    with pytest.raises(TypeError, match="OpOverload"):
        make_fx(lambda x: x, decomposition_table={"add": lambda x: x})
    with pytest.raises(TypeError, match="not callable"):
        make_fx(lambda x: x, decomposition_table={aten.add.Tensor: 3})
    with pytest.raises(TypeError, match="pre_dispatch"):
        make_fx(lambda x: x, pre_dispatch="yes")
    with pytest.raises(TypeError, match="record_module_stack"):
        make_fx(lambda x: x, record_module_stack=None)


@pytest.mark.parametrize("mode", MODES)
def test_pre_dispatch_flag_accepted(mode):
    gm = check_same(lambda x: x.sin() + 1, (torch.randn(3),), mode, pre_dispatch=True)
    assert aten.sin.default in call_targets(gm)


def test_generator_argument():
    def f(x):
        g = torch.Generator().manual_seed(0)
        return x + torch.randn(3, generator=g)

    gm = make_fx(f)(torch.randn(3))
    assert any(n.op == "get_attr" and n.target.startswith("_generator") for n in gm.graph.nodes)
    x = torch.randn(3)
    assert gm(x).shape == (3,)


# --- aten backend -----------------------------------------------------------------------------
class _Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x, y):
        return (torch.nn.functional.gelu(self.lin(x)) * y).sum(-1), y.relu()


def test_aten_backend_module_params_and_grads():
    torch.manual_seed(0)
    mod = _Small()
    gm = fx.symbolic_trace(mod)
    x, y = torch.randn(2, 4, requires_grad=True), torch.randn(2, 3, requires_grad=True)
    compiled = aten_backend(gm, [x, y])
    lowered = compiled.graph_module
    assert all(isinstance(t, torch._ops.OpOverload) for t in call_targets(lowered)
               if t is not operator.getitem)

    def grads(fn):
        mod.zero_grad()
        xs, ys = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
        a, b = fn(xs, ys)
        (a.sum() + b.sum()).backward()
        return a, b, xs.grad, ys.grad, mod.lin.weight.grad.clone(), mod.lin.bias.grad.clone()

    torch.testing.assert_close(grads(compiled), grads(mod))


def test_aten_backend_params_as_placeholders_and_fake_inputs():
    def f(x, w, b):
        return torch.nn.functional.linear(x, w, b).softmax(-1)

    gm = fx.symbolic_trace(f)
    x, w, b = torch.randn(5, 4), torch.randn(3, 4, requires_grad=True), torch.randn(3, requires_grad=True)
    compiled = aten_backend(gm, [x, w, b])
    out = compiled(x, w, b)
    torch.testing.assert_close(out, f(x, w, b))
    gw, gb = torch.autograd.grad(out[:, 0].sum(), [w, b])
    ew, eb = torch.autograd.grad(f(x, w, b)[:, 0].sum(), [w, b])
    torch.testing.assert_close((gw, gb), (ew, eb))
    # example inputs may already be fake
    from torch._subclasses.fake_tensor import FakeTensorMode
    fm = FakeTensorMode()
    compiled2 = aten_backend(gm, [fm.from_tensor(t) for t in (x, w, b)])
    torch.testing.assert_close(compiled2(x, w, b), f(x, w, b))
