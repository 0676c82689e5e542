"""Differential programs: Python builtins (len, range, zip, sorted, min/max, map, filter, ...) and math.*."""
import math
import operator

import pytest
import torch

from differential import check, tensors_like


def ids(fn):
    return fn.__name__


def b_len(x):
    return x * len(x), len([1, 2]), len("abc"), len({"a": 1}), len(range(4)), len(x.shape), len({1, 2, 2})


def b_range_loop(x):
    acc = x
    for i in range(1, 4):
        acc = acc + i
    for j in range(10, 0, -4):
        acc = acc * 0.5 + j
    return acc


def b_enumerate(x):
    out = []
    for i, row in enumerate(x):
        out.append(row * i)
    return torch.stack(out), list(enumerate("ab", start=5))


def b_zip(x):
    ws = [1.0, 2.0, 3.0]
    total = 0
    for w, row in zip(ws, x):
        total = total + w * row
    return total, list(zip([1, 2], "ab", (True, False)))


def b_reversed(x):
    rows = [r for r in reversed(list(x.unbind(0)))]
    return torch.stack(rows), list(reversed([1, 2, 3])), tuple(reversed((4, 5)))


def b_sorted(x):
    data = [3, 1, 2]
    words = ["ccc", "a", "bb"]
    pairs = [("b", 2), ("a", 3), ("c", 1)]
    return (x.sum(), sorted(data), sorted(data, reverse=True), sorted(words, key=len),
            sorted(pairs, key=lambda p: p[1]), sorted({"b": 1, "a": 2}))


def b_min_max(x):
    return (x + max(1, 5, 3), min([4, 2, 8]), max("abc"), max([1, 7, 3], key=lambda v: -v),
            min(3.5, 2), max((1, 2), (1, 3)), min([], default=0))


def b_min_max_shape(x):
    return x.reshape(max(x.shape), min(x.shape)), max(x.shape[0], 2)


def b_sum(x):
    return sum([x, x, x]), sum(range(5)), sum([1.5, 2.5], 10), sum(x.unbind(0), torch.zeros(4))


def b_any_all(x):
    flags = [x.shape[0] > 1, x.dim() == 2]
    return x * 2, any(flags), all(flags), any([]), all([]), any(v > 3 for v in [1, 2, 5])


def b_map(x):
    doubled = list(map(lambda v: v * 2, [1, 2, 3]))
    ts = list(map(torch.relu, [x, -x]))
    summed = list(map(operator.add, [1, 2], [10, 20]))
    return doubled, ts, summed


def b_filter(x):
    evens = list(filter(lambda v: v % 2 == 0, range(6)))
    truthy = list(filter(None, [0, 1, "", "a", None]))
    return x * len(evens), evens, truthy


def b_abs_round(x):
    return abs(x), abs(-4), round(2.567, 1), round(-0.5), x * round(1.6)


def b_int_float_bool_str(x):
    return x + int(2.7), float(1), bool(x.shape[0]), str(3) + "x", int("7") * 2, float("1e-3")


def b_isinstance_tensor(x):
    a = isinstance(x, torch.Tensor)
    b = isinstance(3, (int, float))
    c = isinstance("s", (list, tuple))
    d = isinstance(True, int)
    e = isinstance(x, (list, torch.Tensor))
    return x * 2, a, b, c, d, e


def b_issubclass(x):
    return x + 1, issubclass(bool, int), issubclass(torch.nn.Linear, torch.nn.Module), issubclass(int, (str, float))


def b_hasattr_getattr(x):
    a = hasattr(x, "shape")
    b = hasattr(x, "no_such_attr")
    fn = getattr(torch, "relu")
    s = getattr(x, "shape")
    g = getattr(x, "missing", 7)
    return fn(x) + g, a, b, s


def b_getattr_method(x):
    name = "sum"
    return getattr(x, name)(dim=0), getattr(x, "mul")(2)


def b_callable_type(x):
    return x + 1, callable(torch.relu), callable(3), type(3) is int, type(x) is torch.Tensor, type(1.5).__name__


def b_divmod_pow(x):
    q, r = divmod(17, 5)
    return x * q + r, pow(2, 5), pow(2, 10, 7), pow(2.0, -1)


def b_chr_ord_hex(x):
    return x + ord("a") - 96, chr(66), hex(255), bin(5), oct(8)


def b_list_tuple_dict_set_ctors(x):
    return x.sum(), list("ab"), tuple([1, 2]), dict(a=1), set([1, 1, 2]), frozenset("aab"), list((x, x))[1]


def b_iter_next(x):
    it = iter([x, x * 2, x * 3])
    a = next(it)
    b = next(it)
    c = next(iter([]), None)
    return a + b, c


def b_id_is(x):
    y = x
    return x + 1, y is x, x is not None, [] is not []


def b_slice_builtin(x):
    s = slice(None, None, -1)
    return x[:, s.stop: 2], [1, 2, 3][s]


def b_math_constants(x):
    return x * math.pi + math.e, math.inf > 0, math.tau / 2 == math.pi


def b_math_funcs(x):
    return (x * math.sqrt(16), math.log(math.e), math.log2(8), math.log10(1000), math.ceil(2.1), math.floor(-2.1),
            math.exp(0), math.cos(0.0), math.sin(math.pi / 2), math.isclose(0.1 + 0.2, 0.3))


def b_math_int_funcs(x):
    return (x + math.prod([2, 3, 4]), math.gcd(12, 18), math.factorial(5), math.comb(5, 2),
            math.isqrt(17), math.fabs(-2), math.copysign(3, -1), math.trunc(-2.7))


def b_math_on_shape(x):
    n = x.shape[-1]
    return x / math.sqrt(n), math.ceil(n / 3), math.floor(math.log2(n))


def b_math_isnan_isinf(x):
    return x.sum(), math.isnan(float("nan")), math.isinf(math.inf), math.isfinite(1.0), math.hypot(3, 4)


def b_operator_module(x):
    return operator.mul(x, 2), operator.add(1, 2), operator.getitem([5, 6], 1), operator.neg(x), operator.itemgetter(0)((4, 5))


BUILTINS = [b_len, b_range_loop, b_enumerate, b_zip, b_reversed, b_sorted, b_min_max, b_min_max_shape, b_sum,
            b_any_all, b_map, b_filter, b_abs_round, b_int_float_bool_str, b_isinstance_tensor, b_issubclass,
            b_hasattr_getattr, b_getattr_method, b_callable_type, b_divmod_pow, b_chr_ord_hex,
            b_list_tuple_dict_set_ctors, b_iter_next, b_id_is, b_slice_builtin, b_math_constants, b_math_funcs,
            b_math_int_funcs, b_math_on_shape, b_math_isnan_isinf, b_operator_module]


@pytest.mark.parametrize("fn", BUILTINS, ids=ids)
def test_builtins(fn):
    check(fn, *tensors_like((3, 4)))


def b_math_only(a):
    return math.sqrt(a) + math.floor(2.5), math.ceil(a / 3), math.prod(range(1, a)), sorted([a, 1, 3])


def test_math_python_only_no_graph():
    check(b_math_only, 4, graphs=0)


def _param_type_checks(mod, x):
    w = mod.weight
    return (x * 2 if isinstance(w, torch.nn.Parameter) else x, type(w) is torch.nn.Parameter,
            w.__class__ is torch.nn.Parameter, type(x) is torch.Tensor,
            isinstance(x * 2, torch.nn.Parameter), isinstance(x, (int, torch.Tensor)))


def test_parameter_class_is_visible():
    """type()/isinstance/__class__ see nn.Parameter for parameters and Tensor for the rest."""
    from differential import compile_fn, assert_same
    lin = torch.nn.Linear(2, 2)
    x = torch.ones(2)
    assert_same(_param_type_checks(lin, x), compile_fn(_param_type_checks, backend="eager",
                                                        fullgraph=True)(lin, x))


def _identity_checks(a, b, mod):
    t = a.transpose(0, 1)
    c = a
    c += 1                                   # in place: still the same object as a
    return (a is b, a is c, t is a, mod.weight is mod.weight, mod.weight is mod.bias,
            a + (1 if a is b else 2), t)


def test_is_on_tensors_follows_object_identity():
    from differential import compile_fn, assert_same
    import copy
    lin = torch.nn.Linear(2, 2)
    for same in (False, True):
        x = torch.ones(2, 2)
        args = (x, x if same else torch.ones(2, 2), lin)
        e_args = copy.deepcopy(args) if not same else (x.clone(),) * 2 + (lin,)
        expected = _identity_checks(*e_args)
        actual = compile_fn(_identity_checks, backend="eager", fullgraph=True)(*args)
        assert_same(expected, actual)
