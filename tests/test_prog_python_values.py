"""Differential programs: Python scalars, strings, None, f-strings, unpacking and their mix with tensors."""
import pytest
import torch

from differential import check, tensors_like


def ids(fn):
    return fn.__name__


# --------------------------------------------------------------------------- int / float / bool arithmetic
def v_int_arith(x):
    a, b = 17, 5
    return x * (a + b - a * b), a // b, a % b, a ** 2, -a // b, -a % b, divmod(a, b)


def v_float_arith(x):
    a, b = 7.5, 2.0
    return x + a / b, a // b, a % b, a ** 0.5, divmod(a, b), -a


def v_bit_ops(x):
    a, b = 0b1100, 0b1010
    return x + (a & b), a | b, a ^ b, ~a, a << 3, a >> 2


def v_mixed_int_float_bool(x):
    t = True
    return x * (t + 1), t * 2.5, 3 + 0.5, int(t), True + True, 7 / 2, 8 / 4


def v_comparison_chain(x):
    a, b, c = 1, 2, 3
    return x + 1, a < b < c, a < c < b, a == 1 != b, 1 <= a <= 1, a is not None


def v_comparisons_mixed(x):
    return x.sum(), 1 == 1.0, 2 > 1.5, "a" < "b", (1, 2) < (1, 3), [1, 2] == [1, 2], None is None


def v_augmented_python(x):
    n = 3
    n += 4
    n *= 2
    n -= 1
    n //= 2
    n **= 2
    n %= 7
    f = 1.0
    f /= 4
    b = 6
    b &= 3
    b |= 8
    b ^= 1
    b <<= 1
    b >>= 2
    return x * n + f, n, f, b


def v_python_scalar_from_shape(x):
    n = x.shape[0]
    m = x.shape[1]
    return x.reshape(n * m), n * m, n / m, n // m, n - m


def v_none_handling(x):
    y = None
    if y is None:
        y = x * 2
    z = None
    return y, z, z is None, y is not None


def v_bool_ops(x):
    a, b = True, False
    return x + 1, a and b, a or b, not a, a and 3, b or "fallback", 0 or None, [] or [1]


def v_and_or_tensors(x):
    y = None
    z = y or x
    w = x.shape[0] > 1 and x
    return z + 1, w * 2


def v_int_float_conversions(x):
    return x * 2, int(3.9), float(3), int("12"), float("2.5"), bool(0), bool([1]), int(-2.5), round(2.675, 2)


def v_abs_round(x):
    return x.sum(), abs(-3), abs(-2.5), round(3.5), round(4.5), round(-1.25, 1), round(7)


def v_constants_in_tensor_ops(x):
    scale = 2 ** -1
    eps = 1e-6
    n = x.shape[-1]
    return (x * scale + eps) / (n ** 0.5)


def v_float_special(x):
    inf = float("inf")
    return x.clamp(max=inf), inf > 1e308, -inf < 0, float("nan") != float("nan")


def v_int_methods(x):
    n = 10
    return x + n.bit_length(), (3.0).is_integer(), (2.5).as_integer_ratio()


SCALARS = [v_int_arith, v_float_arith, v_bit_ops, v_mixed_int_float_bool, v_comparison_chain,
           v_comparisons_mixed, v_augmented_python, v_python_scalar_from_shape, v_none_handling,
           v_bool_ops, v_and_or_tensors, v_int_float_conversions, v_abs_round,
           v_constants_in_tensor_ops, v_float_special, v_int_methods]


@pytest.mark.parametrize("fn", SCALARS, ids=ids)
def test_scalars(fn):
    check(fn, *tensors_like((3, 4)))


def v_only_python(a, b):
    return a * b + a // b, a % b, a ** 2, divmod(a, b), a < b < 100


def test_python_only_no_graph():
    check(v_only_python, 7, 3, graphs=0)


def v_python_arg_and_tensor(x, n, scale):
    return x * n * scale, n + 1, scale * 2


def test_python_scalar_args():
    (x,) = tensors_like((3, 4))
    check(v_python_arg_and_tensor, x, 3, 0.5)


# --------------------------------------------------------------------------- strings
def s_fstring(x):
    n = x.shape[0]
    name = f"{n}_x"
    tag = f"layer{n:03d}-{1.5:.2f}-{'ab'!r}"
    return x + 1, name, tag


def s_format_join_split(x):
    s = "{}-{}".format("a", 3)
    parts = "a,b,c".split(",")
    joined = "/".join(parts)
    named = "{name}:{val}".format(name="k", val=2)
    return x * len(parts), s, parts, joined, named


def s_methods(x):
    s = "Hello World"
    return (x.sum(), s.upper(), s.lower(), s.startswith("Hell"), s.endswith("x"), s.replace("o", "0"),
            s.strip("Hd"), s.find("W"), s.count("l"), s.title(), s.isalpha(), "  pad ".strip())


def s_concat_mul_index(x):
    a = "ab" + "cd"
    b = "-" * 3
    return x + len(a), a, b, a[1], a[1:3], a[::-1], "c" in a, a * 2


def s_string_keys_dispatch(x):
    mode = "relu"
    ops = {"relu": torch.relu, "tanh": torch.tanh}
    return ops[mode](x), mode.upper()


def s_str_conversion(x):
    n = 42
    return x + 1, str(n), str(1.5), str(True), str(None), repr("a"), str((1, 2))


def s_string_compare_branch(x):
    act = "gelu"
    if act == "gelu":
        return torch.nn.functional.gelu(x)
    return x


def s_str_arg(x, mode):
    if mode.startswith("sc"):
        return x * 2, mode + "!"
    return x, mode


STRINGS = [s_fstring, s_format_join_split, s_methods, s_concat_mul_index, s_string_keys_dispatch,
           s_str_conversion, s_string_compare_branch]


@pytest.mark.parametrize("fn", STRINGS, ids=ids)
def test_strings(fn):
    check(fn, *tensors_like((3, 4)))


def test_string_argument():
    (x,) = tensors_like((3, 4))
    check(s_str_arg, x, "scale")


# --------------------------------------------------------------------------- unpacking
def u_star(x):
    a, *b = [1, 2, 3, 4]
    *c, d = (x, x * 2, x * 3)
    return x * a, b, c, d


def u_nested(x):
    (a, b), c = (1, 2), 3
    p, (q, (r, s)) = x, (x + 1, (2, "z"))
    return x * (a + b + c), p + q * r, s


def u_star_middle(x):
    first, *mid, last = range(6)
    return x + first + last, mid


def u_star_in_literals(x):
    xs = [1, 2]
    ys = (3, 4)
    d1, d2 = {"a": 1}, {"b": 2, "a": 3}
    return x.sum(), [*xs, 1], (*ys, *xs), {*xs, 5}, {**d1, **d2}, {**d1, "c": x}


def u_swap(x):
    a, b = x, x * 2
    a, b = b, a
    return a - b


def u_tensor_unpack(x):
    a, b, c = x
    r0, *rest = x.unbind(1)
    return a + b - c, r0, rest


def u_for_unpack(x):
    total = x
    for i, (name, scale) in enumerate([("a", 1.0), ("b", 2.0)]):
        total = total + scale * i
    return total, name


UNPACK = [u_star, u_nested, u_star_middle, u_star_in_literals, u_swap, u_tensor_unpack, u_for_unpack]


@pytest.mark.parametrize("fn", UNPACK, ids=ids)
def test_unpacking(fn):
    check(fn, *tensors_like((3, 4)))
