"""The public API: bad input gets clear errors; backends, config, allow/disallow/disable, and the
compiled nn.Module wrapper behave like the original module."""
import copy
import pickle

import pytest
import torch
import torch.fx
import torch.nn as nn

import bytegraph
from differential import assert_same, compile_fn, counters, graph_count, tensors_like


def _f(x):
    return torch.relu(x) * 2 + 1


# --------------------------------------------------------------------------
# argument validation

def test_compile_non_callable():
    with pytest.raises(TypeError, match="callable"):
        bytegraph.compile(42)


def test_compile_builtin_rejected():
    with pytest.raises(TypeError):
        bytegraph.compile(len)


def test_unknown_backend_lists_known():
    with pytest.raises(ValueError) as info:
        bytegraph.compile(_f, backend="no_such_backend")
    msg = str(info.value)
    assert "no_such_backend" in msg and "eager" in msg and "inductor" in msg


@pytest.mark.parametrize("kw", [dict(fullgraph="yes"), dict(options=3), dict(dynamic="x"),
                                dict(backend=3), dict(disable="no")])
def test_bad_compile_arguments(kw):
    with pytest.raises(TypeError):
        bytegraph.compile(_f, **kw)


def test_bad_mode():
    with pytest.raises(ValueError):
        bytegraph.compile(_f, mode="fastest")


def test_disable_true_returns_original():
    assert bytegraph.compile(_f, disable=True) is _f


def test_config_type_and_name_checks():
    with pytest.raises(TypeError):
        bytegraph.config.cache_size_limit = "8"
    with pytest.raises(TypeError):
        bytegraph.config.suppress_errors = 1
    with pytest.raises(AttributeError):
        bytegraph.config.no_such_option = 1
    with pytest.raises(AttributeError):
        bytegraph.config.no_such_option  # noqa: B018
    with pytest.raises(TypeError):
        bytegraph.config.patch(cache_size_limit=2.5)
    with pytest.raises(AttributeError):
        bytegraph.config.patch(bogus=1)
    assert bytegraph.config.cache_size_limit == 8


def test_config_patch_restores():
    old = bytegraph.config.cache_size_limit
    with bytegraph.config.patch(cache_size_limit=3, suppress_errors=True):
        assert bytegraph.config.cache_size_limit == 3
        assert bytegraph.config.suppress_errors is True
    assert bytegraph.config.cache_size_limit == old
    assert bytegraph.config.suppress_errors is False

    @bytegraph.config.patch(cache_size_limit=5)
    def inside():
        return bytegraph.config.cache_size_limit
    assert inside() == 5
    assert bytegraph.config.cache_size_limit == old
    with pytest.raises(KeyError):
        with bytegraph.config.patch(cache_size_limit=4):
            raise KeyError("x")
    assert bytegraph.config.cache_size_limit == old


def test_config_set_and_restore():
    old = bytegraph.config.cache_size_limit
    try:
        bytegraph.config.cache_size_limit = 1
        c = compile_fn(_f, backend="eager")
        c(torch.ones(2))
        with pytest.warns(UserWarning):
            assert_same(_f(torch.ones(3)), c(torch.ones(3)))
    finally:
        bytegraph.config.cache_size_limit = old


# --------------------------------------------------------------------------
# backends

def test_list_backends_builtin():
    names = bytegraph.list_backends()
    for n in ("eager", "inductor", "aten"):
        assert n in names


def test_register_backend_decorator_forms():
    seen = []

    @bytegraph.register_backend
    def bg_plain_backend(gm, example_inputs):
        seen.append(("plain", type(gm), [type(t) for t in example_inputs]))
        return gm.forward

    @bytegraph.register_backend(name="bg_named")
    def _named(gm, example_inputs):
        seen.append(("named",))
        return gm.forward

    names = bytegraph.list_backends()
    assert "bg_plain_backend" in names and "bg_named" in names
    x, = tensors_like((3,))
    assert_same(_f(x), compile_fn(_f, backend="bg_plain_backend")(x))
    assert_same(_f(x), compile_fn(_f, backend="bg_named")(x))
    assert seen[0][0] == "plain" and issubclass(seen[0][1], torch.fx.GraphModule)
    assert seen[0][2] == [torch.Tensor]
    assert seen[1] == ("named",)


def test_custom_backend_receives_graph_and_its_callable_is_used():
    compiles, runs = [], []

    def backend(gm, example_inputs):
        assert isinstance(gm, torch.fx.GraphModule)
        assert isinstance(example_inputs, list)
        assert all(isinstance(t, torch.Tensor) for t in example_inputs)
        compiles.append([tuple(t.shape) for t in example_inputs])

        def run(*args):
            runs.append(len(args))
            return gm.forward(*args)
        return run

    def f(x, y):
        return x @ y + 1
    c = compile_fn(f, backend=backend, fullgraph=True)
    x, y = tensors_like((2, 3), (3, 4))
    for _ in range(3):
        assert_same(f(x, y), c(x, y))
    assert compiles == [[(2, 3), (3, 4)]]
    assert runs == [2, 2, 2]


def test_backend_output_used_verbatim():
    """The backend's callable really runs: make it return something different."""
    def backend(gm, ex):
        return lambda *args: tuple(o * 0 for o in gm.forward(*args))
    c = compile_fn(_f, backend=backend)
    assert torch.equal(c(torch.ones(3)), torch.zeros(3))


# --------------------------------------------------------------------------
# allow_in_graph / disallow_in_graph / disable

def _graph_inspector(store):
    def backend(gm, ex):
        store.append([(n.op, n.target) for n in gm.graph.nodes])
        return gm.forward
    return backend


def my_opaque(x):
    return torch.sin(x) + torch.cos(x) * 2


def test_allow_in_graph_one_node():
    bytegraph.allow_in_graph(my_opaque)
    graphs = []

    def f(x):
        return my_opaque(x) + 1
    c = compile_fn(f, backend=_graph_inspector(graphs), fullgraph=True)
    x, = tensors_like((3,))
    assert_same(f(x), c(x))
    calls = [t for op, t in graphs[0] if op == "call_function"]
    assert calls.count(my_opaque) == 1
    assert torch.sin not in calls and torch.cos not in calls


def test_disallow_in_graph_torch_sin():
    def f(x):
        return torch.sin(x) + 1
    try:
        bytegraph.disallow_in_graph(torch.sin)
        c = compile_fn(f, backend="eager")
        x, = tensors_like((3,))
        assert_same(f(x), c(x))
        assert sum(counters()["graph_break"].values()) >= 1
        with pytest.raises(bytegraph.Unsupported, match="sin"):
            compile_fn(f, backend="eager", fullgraph=True)(x)
    finally:
        bytegraph.allow_in_graph(torch.sin)   # undo: removes from the disallowed table
        from bytegraph.policy import calls as registry
        registry._allowed.discard(torch.sin)
    bytegraph.reset()
    c = compile_fn(f, backend="eager", fullgraph=True)
    assert_same(f(torch.ones(2)), c(torch.ones(2)))


def test_disable_runs_eagerly_and_stops_trace():
    calls = []

    @bytegraph.disable
    def side(x):
        calls.append(1)
        return x * 3

    x, = tensors_like((3,))
    assert_same(x * 3, side(x))

    def f(x):
        return side(x) + 1
    c = compile_fn(f, backend="eager")
    assert_same(f(x), c(x))
    assert sum(counters()["graph_break"].values()) >= 1
    with pytest.raises(bytegraph.Unsupported, match="disable"):
        compile_fn(f, backend="eager", fullgraph=True)(x)


def test_disable_compiled_function_returns_original_behaviour():
    c = compile_fn(_f, backend="eager")
    d = bytegraph.disable(c)
    x, = tensors_like((3,))
    assert_same(_f(x), d(x))
    assert counters()["frames"]["total"] == 0


def test_disable_non_callable():
    with pytest.raises(TypeError):
        bytegraph.disable(5)


# --------------------------------------------------------------------------
# compiled nn.Module wrapper

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 2)
        self.scale = 1.5

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x)))) * self.scale


def _net():
    torch.manual_seed(0)
    return Net()


def test_module_wrapper_attributes_pass_through():
    m = _net()
    c = compile_fn(m, backend="eager")
    assert c.scale == 1.5 and c.fc1 is m.fc1
    c.scale = 3.0
    assert m.scale == 3.0
    c.extra = 7
    assert m.extra == 7
    del c.extra
    assert not hasattr(m, "extra")
    assert c._orig_mod is m


def test_module_wrapper_parameters_and_state_dict():
    m = _net()
    c = compile_fn(m, backend="eager")
    assert [n for n, _ in c.named_parameters()] == [n for n, _ in m.named_parameters()]
    assert all(a is b for a, b in zip(c.parameters(), m.parameters()))
    assert list(c.state_dict().keys()) == list(m.state_dict().keys())
    assert [n for n, _ in c.named_buffers()] == [n for n, _ in m.named_buffers()]


def test_module_wrapper_train_eval():
    m = _net()
    c = compile_fn(m, backend="eager")
    x, = tensors_like((5, 4))
    assert m.training
    c.eval()
    assert not m.training and not m.bn.training and not c.training
    assert_same(m(x), c(x))
    c.train()
    assert m.training and m.bn.training
    e_m = copy.deepcopy(m)
    assert_same(e_m(x), c(x))
    assert_same(e_m.bn.running_mean, m.bn.running_mean)


def test_module_wrapper_load_state_dict():
    m = _net().eval()
    c = compile_fn(m, backend="eager")
    x, = tensors_like((5, 4))
    c(x)
    torch.manual_seed(1)
    other = Net().eval()
    c.load_state_dict(other.state_dict())
    assert_same(other(x), c(x))
    assert torch.equal(m.fc1.weight, other.fc1.weight)


def test_module_wrapper_pickle_and_deepcopy():
    m = _net().eval()
    c = compile_fn(m, backend="eager")
    x, = tensors_like((5, 4))
    expected = c(x)
    for clone in (pickle.loads(pickle.dumps(c)), copy.deepcopy(c)):
        assert type(clone) is type(c)
        assert clone._orig_mod is not m
        assert_same(expected, clone(x))
        assert list(clone.state_dict()) == list(m.state_dict())
        with torch.no_grad():
            clone.fc2.bias.add_(1)          # independent copy
        assert not torch.equal(clone.fc2.bias, m.fc2.bias)
        assert_same(clone._orig_mod(x), clone(x))
    assert_same(m(x), c(x))


def test_module_wrapper_hooks_run():
    m = _net().eval()
    c = compile_fn(m, backend="eager")
    x, = tensors_like((5, 4))
    c(x)
    seen = []
    h1 = c.register_forward_pre_hook(lambda mod, inp: (seen.append("pre"), (inp[0] * 2,))[1])
    h2 = c.register_forward_hook(lambda mod, inp, out: (seen.append("post"), out + 100)[1])
    try:
        expected = m(x)
        assert seen == ["pre", "post"]
        actual = c(x)
        assert seen == ["pre", "post", "pre", "post"]
        assert_same(expected, actual)
    finally:
        h1.remove()
        h2.remove()
    assert_same(m(x), c(x))


def test_module_wrapper_graph_count():
    m = _net().eval()
    c = compile_fn(m, backend="eager", fullgraph=True)
    x, = tensors_like((5, 4))
    for _ in range(3):
        assert_same(m(x), c(x))
    assert graph_count() == 1


def test_compile_method_and_recompile_compiled_function():
    c = compile_fn(_f, backend="eager")
    cc = compile_fn(c, backend="eager")
    x, = tensors_like((3,))
    assert_same(_f(x), cc(x))
    m = _net().eval()
    cm = compile_fn(m.forward, backend="eager")
    assert_same(m(x.reshape(1, 3).expand(2, 3).repeat(1, 2)[:, :4]), cm(x.reshape(1, 3).expand(2, 3).repeat(1, 2)[:, :4]))
