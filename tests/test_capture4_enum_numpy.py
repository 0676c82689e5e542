"""Enum members as keys of caller dicts, and numpy float64 constants (ufunc folding, operands
of tensor operators, arguments of graph ops): the constructs diffusers' attention registry and
transformers' pegasus_x / dinov3_vit / vits run, mimicked without importing either."""
import enum

import numpy as np
import torch

import bytegraph
from differential import check, counters, graph_count


class Backend(str, enum.Enum):
    NATIVE = "native"
    FLASH = "flash"


class Plain(enum.Enum):
    A = 1
    B = 2


class Registry:
    backends = {Backend.NATIVE: torch.sin, Backend.FLASH: torch.cos}
    active = Backend.NATIVE
    scales = {Plain.A: 2.0, Plain.B: 3.0}


def test_str_enum_keyed_registry_lookup():
    def f(x):
        name = Registry.active
        fn = Registry.backends[name]
        return fn(x) * Registry.scales[Plain.B], name
    check(f, torch.randn(3), graphs=1)


def test_enum_keyed_dict_iteration_and_str_lookup():
    def f(x):
        names = []
        for k, v in Registry.scales.items():
            x = x * v + k.value
            names.append(k.name)
        hit = Registry.backends.get("flash") is torch.cos      # str.__eq__ of the mixin
        return x + hit, names, list(Registry.backends), "native" in Registry.backends
    check(f, torch.randn(3), graphs=1)


def test_enum_keyed_dict_mutation_written_back():
    reg = {Backend.NATIVE: 1.0}

    def f(x, d):
        d[Backend.FLASH] = 2.0
        return x * d[Backend.NATIVE] + d["flash"]
    check(f, torch.randn(3), reg, graphs=1)


def test_enum_keyed_dict_guard_on_keys():
    d = {Backend.NATIVE: 1.0}

    def f(x, d):
        return x + len(d) + d.get(Backend.FLASH, 0.5)
    bytegraph.reset()
    cf = bytegraph.compile(f)
    x = torch.randn(3)
    torch.testing.assert_close(cf(x, d), f(x, d))
    d2 = {Backend.NATIVE: 1.0, Backend.FLASH: 4.0}
    torch.testing.assert_close(cf(x, d2), f(x, d2))
    d3 = {"native": 1.0}                 # equal key, other type: must not reuse the entry
    torch.testing.assert_close(cf(x, d3), f(x, d3))
    assert graph_count() == 3


class Custom(enum.Enum):
    A = 1

    def __hash__(self):
        return 7


def test_enum_with_python_hash_key_still_refused():
    table = {Custom.A: 2.0}

    def f(x):
        return x * table[Custom.A]
    bytegraph.reset()
    cf = bytegraph.compile(f)
    x = torch.randn(3)
    torch.testing.assert_close(cf(x), f(x))
    assert any("keys" in k for k in counters()["graph_break"]) or \
        counters()["fallback"] or graph_count() != 1


def test_numpy_ufunc_fold_sinusoidal_positions():
    def pe(x, max_scale=10000.0):
        half = x.shape[-1] // 2
        div = torch.exp(torch.arange(half, dtype=torch.int64).type_as(x)
                        * -(np.log(float(max_scale)) / (half - 1)))
        return x[..., :half] * div, x[..., half:] * div
    check(pe, torch.randn(2, 8), graphs=1)


def test_numpy_float_as_scalar_argument():
    def jitter(x, j=1.5):
        r = np.log(j)
        h = torch.empty((1, 2)).uniform_(-r, r).exp()       # random: compare its range only
        inside = ((h >= 1 / j - 1e-6) & (h <= j + 1e-6)).all()
        return inside, h.shape, torch.clamp(x, min=-r, max=r)
    check(jitter, torch.randn(2, 2), graphs=1)


def test_numpy_constant_written_into_tensor():
    def spline(x):
        c = np.log(np.exp(1 - 1e-3) - 1)
        y = torch.nn.functional.pad(x, (1, 1))
        y[..., 0] = c
        y[..., -1] = c
        return y * np.log(7.0), np.exp(0.5) * y, y > np.log(2.0), c
    check(spline, torch.randn(2, 8), graphs=1)


def test_numpy_float_promotion_like_python_float():
    def f(x):
        return (x.half() * np.exp(2.0), x.int() + np.sqrt(4), x.bfloat16() - np.log(3) ** 2,
                np.exp(2) > x, x.long() // np.exp(1.0))
    check(f, torch.randn(2, 8), graphs=1)


def test_numpy_float_in_autograd():
    def f(w):
        return (w * np.log(5.0)).sum(), np.exp(0.5) - w
    w = torch.randn(4, requires_grad=True)
    check(f, w, graphs=1)
    bytegraph.reset()
    y, z = bytegraph.compile(f)(w)
    (y + z.sum()).backward()
    torch.testing.assert_close(w.grad, torch.full((4,), float(np.log(5.0)) - 1))


def test_numpy_float_in_tensor_data_is_refused():
    def f(x):
        return x + torch.tensor(np.log(3.0)), torch.tensor([np.log(3.0), 1.0]).dtype
    bytegraph.reset()
    cf = bytegraph.compile(f)
    x = torch.randn(2)
    r, e = cf(x), f(x)
    assert r[1] == e[1] == torch.float64
    torch.testing.assert_close(r[0], e[0])
    assert any("numpy float64" in k for k in counters()["graph_break"])


def test_numpy_ufunc_with_out_or_array_not_folded():
    def f(x):
        a = np.exp([1.0, 2.0])         # an array result: not a constant scalar
        return x * float(a.sum())
    bytegraph.reset()
    cf = bytegraph.compile(f)
    x = torch.randn(2)
    torch.testing.assert_close(cf(x), f(x))


def test_numpy_ufunc_warning_not_folded():
    import warnings

    def f(x):
        return x * float(np.log(0.0) + 1e308 < 0)
    bytegraph.reset()
    cf = bytegraph.compile(f)
    x = torch.randn(2)
    with warnings.catch_warnings(record=True) as w_eager:
        warnings.simplefilter("always")
        e = f(x)
    with warnings.catch_warnings(record=True) as w_comp:
        warnings.simplefilter("always")
        r = cf(x)
    torch.testing.assert_close(r, e)
    assert len(w_comp) == len(w_eager) == 1


class Mode(str, enum.Enum):
    REFLECT = "reflect"


class Axis(int, enum.Enum):
    TWO = 2


def test_mixin_enum_members_as_graph_op_arguments():
    # EnumType copies Enum's __str__/__repr__/__format__ into mixin enums: still plain constants
    def f(x):
        return torch.nn.functional.pad(x, (1, 1), mode=Mode.REFLECT), x.sum(dim=Axis.TWO - 1)
    check(f, torch.randn(1, 2, 4), graphs=1)


class Loud(str, enum.Enum):
    A = "a"

    def __str__(self):
        return "loud"


def test_mixin_enum_with_own_str_is_not_plain():
    def f(x):
        return x + len(str(Loud.A)), {Loud.A: 1}
    bytegraph.reset()
    cf = bytegraph.compile(f)
    x = torch.randn(2)
    r, e = cf(x), f(x)
    torch.testing.assert_close(r[0], e[0])
    assert r[1] == e[1]
