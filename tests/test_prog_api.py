"""Differential programs: the compile() API surface — decorator forms, methods, partials, callables, modules."""
import functools

import torch
import torch.nn as nn

from differential import assert_same, check, compile_fn, graph_count, reset, tensors_like


def _fn(x, y):
    return torch.relu(x) * y + 1


def test_decorator_with_options():
    reset()

    @compile_fn(backend="eager", fullgraph=True)
    def f(x, y):
        return _fn(x, y)

    x, y = tensors_like((3, 4), (3, 4))
    assert_same(_fn(x, y), f(x, y))
    assert graph_count() == 1


def test_factory_form():
    reset()
    f = compile_fn(backend="eager")(_fn)
    x, y = tensors_like((3, 4), (3, 4))
    assert_same(_fn(x, y), f(x, y))
    assert graph_count() == 1


def test_direct_form_cache_hit_on_same_shapes():
    reset()
    f = compile_fn(_fn, backend="eager", fullgraph=True)
    for seed in range(3):
        x, y = tensors_like((3, 4), (3, 4), seed=seed)
        assert_same(_fn(x, y), f(x, y))
    assert graph_count() == 1


def test_compiled_function_keeps_name():
    reset()
    f = compile_fn(_fn, backend="eager", fullgraph=True)
    assert f.__name__ == _fn.__name__
    x, y = tensors_like((3, 4), (3, 4))
    assert_same(_fn(x, y), f(x, y))


class Scaler:
    def __init__(self, k):
        self.k = k
        self.calls = 0

    def apply(self, x):
        self.calls += 1
        return x * self.k

    def __call__(self, x):
        return torch.tanh(x) + self.k


def test_bound_method():
    reset()
    eager_obj, comp_obj = Scaler(3.0), Scaler(3.0)
    f = compile_fn(comp_obj.apply, backend="eager", fullgraph=True)
    (x,) = tensors_like((3, 4))
    assert_same(eager_obj.apply(x), f(x))
    assert comp_obj.calls == eager_obj.calls == 1
    assert graph_count() == 1


def test_functools_partial():
    p = functools.partial(_fn, y=torch.full((3, 4), 2.0))
    check(p, *tensors_like((3, 4)))


def test_callable_object():
    check(Scaler(0.5), *tensors_like((3, 4)))


def test_lambda():
    check(lambda x: x.sin() * 2, *tensors_like((3, 4)))


def test_compiled_called_inside_compiled():
    reset()
    inner = compile_fn(lambda t: t * 3, backend="eager", fullgraph=True)

    def outer(x):
        return inner(x) + 1

    # the eager reference run compiles `inner` on its own (1 graph); compiled `outer` inlines it (1 graph)
    check(outer, *tensors_like((3, 4)), graphs=2)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)
        self.register_buffer("shift", torch.ones(2))
        self.label = "net"

    def forward(self, x):
        y = self.fc2(torch.relu(self.fc1(x))) + self.shift
        return y * 2 if self.training else y


def _net():
    torch.manual_seed(0)
    return Net()


def test_module_output_matches():
    m = _net()
    check(m, *tensors_like((2, 4)))


def test_module_state_dict_keys():
    reset()
    m = _net()
    cm = compile_fn(m, backend="eager", fullgraph=True)
    # torch.compile's wrapper prefixes the keys with "_orig_mod."; accept either spelling
    keys = [k.removeprefix("_orig_mod.") for k in cm.state_dict().keys()]
    assert keys == list(m.state_dict().keys())
    (x,) = tensors_like((2, 4))
    assert_same(m(x), cm(x))


def test_module_training_toggle():
    reset()
    m = _net()
    cm = compile_fn(m, backend="eager", fullgraph=True)
    (x,) = tensors_like((2, 4))
    assert cm.training and m.training
    assert_same(m(x), cm(x))
    cm.eval()
    assert not cm.training and not m.training
    assert_same(m(x), cm(x))
    cm.train()
    assert cm.training and m.training
    assert_same(m(x), cm(x))


def test_module_attribute_passthrough():
    reset()
    m = _net()
    cm = compile_fn(m, backend="eager", fullgraph=True)
    assert cm.fc1 is m.fc1
    assert cm.label == "net"
    assert cm.fc2.out_features == 2
    assert [n.removeprefix("_orig_mod.") for n, _ in cm.named_parameters()] == [n for n, _ in m.named_parameters()]
    assert all(a is b for a, b in zip(cm.parameters(), m.parameters()))
    (x,) = tensors_like((2, 4))
    assert_same(m(x), cm(x))
    assert graph_count() == 1


def test_module_forward_method():
    reset()
    m = _net().eval()
    f = compile_fn(m.forward, backend="eager", fullgraph=True)
    (x,) = tensors_like((2, 4))
    assert_same(m(x), f(x))
    assert graph_count() == 1


class Maker:
    base = 2.0

    @classmethod
    def build(cls, x):
        return x * cls.base

    @staticmethod
    def helper(x, k=1.0):
        return x - k


def test_classmethod_and_staticmethod():
    check(Maker.build, *tensors_like((3, 4)))
    check(Maker.helper, *tensors_like((3, 4)), kwargs={"k": 0.5})


def test_compiled_module_with_kwargs_and_repeated_calls():
    m = _net().eval()
    check(lambda x, scale=1.0: m(x) * scale, *tensors_like((2, 4)), kwargs={"scale": 3.0},
          calls=[tensors_like((2, 4), seed=1)])
