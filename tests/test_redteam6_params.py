"""redteam6: a compiled module's parameters changed between calls in ways the parameter fast
path (guards/generation.py: versions, TensorImpls and types gathered from memory) must see:
`p.__class__ = C` (changes neither version nor TensorImpl), `.data =` / `requires_grad` through
the Parameter hooks, `Module.to` with and without swapping tensors, `load_state_dict(assign=True)`,
a parameter replaced by a buffer or a plain tensor, parametrization, a plain tensor registered in
`_parameters`, Python attributes and `.grad` of a parameter read by forward, a tensor written
into the module's instance dict (shadowing the parameter). Each probe runs the
module eagerly and compiled (backend="eager") a few times, mutates both alike, and compares the
next call (result, or exception type)."""
import pytest
import torch

import bytegraph


class Tagged(torch.nn.Parameter):
    pass


class M(torch.nn.Module):
    def __init__(self, plain=False):
        super().__init__()
        if plain:
            self._parameters["w"] = torch.randn(3, 3)
        else:
            self.w = torch.nn.Parameter(torch.randn(3, 3))
        self.register_buffer("b", torch.randn(3))

    def forward(self, x):
        r = x @ self.w + self.b
        if self.w.requires_grad:
            r = r + 1
        if isinstance(self.w, Tagged):
            r = r * 3
        if getattr(self.w, "tag", 0):
            r = r - 5
        if self.w.grad is not None:
            r = r + self.w.grad.sum()
        return r, self.w.dtype, tuple(self.w.shape)


def _swap_to_double(m):
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        m.to(torch.float64)
    finally:
        torch.__future__.set_swap_module_params_on_conversion(False)


def _parametrize(m):
    import torch.nn.utils.parametrize as P

    class Sym(torch.nn.Module):
        def forward(self, X):
            return X.triu() + X.triu(1).T
    P.register_parametrization(m, "w", Sym())


def _to_buffer(m):
    del m.w
    m.register_buffer("w", torch.randn(3, 4))


def _to_plain(m):
    del m.w
    m.w = torch.randn(3, 4)


def _set_grad(m):
    m.w.grad = torch.ones(3, 3)


def _set_tag(m):
    m.w.tag = 1


def _no_grad_set(m):
    with torch.no_grad():
        m.w.set_(torch.randn(3, 2))


MUTATIONS = {
    "class_assigned": lambda m: setattr(m.w, "__class__", Tagged),
    "data_other_shape": lambda m: setattr(m.w, "data", torch.randn(3, 4)),
    "data_other_dtype": lambda m: setattr(m.w, "data", torch.randn(3, 3, dtype=torch.float64)),
    "requires_grad_false": lambda m: m.w.requires_grad_(False),
    "requires_grad_attr": lambda m: setattr(m.w, "requires_grad", False),
    "to_double": lambda m: m.to(torch.float64),
    "to_double_swapping": _swap_to_double,
    "load_state_dict_assign": lambda m: m.load_state_dict(
        {"w": torch.nn.Parameter(torch.randn(3, 3, dtype=torch.float64)),
         "b": torch.randn(3, dtype=torch.float64)}, assign=True),
    "param_to_buffer": _to_buffer,
    "param_to_plain_tensor": _to_plain,
    "parametrize": _parametrize,
    "grad_set": _set_grad,
    "python_attr_on_param": _set_tag,
    "set_under_no_grad": _no_grad_set,
    # bypasses Module.__setattr__: seen by the instance dict's version tag, and now guarded on
    # the full path too (the parameter was found through nn.Module.__getattr__)
    "instance_dict_shadow": lambda m: m.__dict__.__setitem__("w", torch.randn(3, 4)),
    "instance_dict_shadow_same_shape": lambda m: m.__dict__.__setitem__("w", torch.ones(3, 3)),
}


def _outcome(fn, x):
    try:
        r = fn(x)
    except Exception as e:      # noqa: BLE001 -- the exception type is the outcome
        return ("exc", type(e).__name__)
    return ("ok", r[0].detach().tolist(), r[1], r[2])


def _run(mutate, plain, compiled, xs):
    bytegraph.reset()
    torch.manual_seed(0)
    m = M(plain)
    fn = bytegraph.compile(m, backend="eager") if compiled else m
    out = [_outcome(fn, xs[0]) for _ in range(3)]
    mutate(m)
    out += [_outcome(fn, x) for x in xs[1:]]
    return out


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_parameter_changed_between_calls(name):
    xs = [torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3, dtype=torch.float64)]
    assert _run(MUTATIONS[name], False, True, xs) == _run(MUTATIONS[name], False, False, xs)


@pytest.mark.parametrize("name", ["data_other_shape", "requires_grad_false", "python_attr_on_param"])
def test_plain_tensor_in_parameters_changed(name):
    xs = [torch.randn(2, 3), torch.randn(2, 3)]
    assert _run(MUTATIONS[name], True, True, xs) == _run(MUTATIONS[name], True, False, xs)


def test_class_assigned_without_the_memory_gather(monkeypatch):
    from bytegraph.guards import generation
    monkeypatch.setattr(generation, "_TENSOR_AT", None)     # the versions tuple path
    test_parameter_changed_between_calls("class_assigned")


@pytest.mark.parametrize("cache", [False, True], ids=["no_cache_dir", "cache_dir"])
def test_module_to_swapping_after_inductor_compile(cache, tmp_path):
    """inductor's fake mode kept weak references to the parameters it converted, so
    swap_tensors refused them: `Module.to` under swap raised "Couldn't swap Linear.weight"
    (eager and torch.compile swap fine)."""
    bytegraph.reset()
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    x = torch.randn(3, 4)
    with bytegraph.config.patch(cache_dir=str(tmp_path) if cache else None):
        c = bytegraph.compile(m, backend="inductor")
        torch.testing.assert_close(c(x), m(x))
        torch.__future__.set_swap_module_params_on_conversion(True)
        try:
            m.to(torch.float64)
        finally:
            torch.__future__.set_swap_module_params_on_conversion(False)
        torch.testing.assert_close(c(x.double()), m(x.double()))
