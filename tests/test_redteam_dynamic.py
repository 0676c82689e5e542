"""Red-team probes of dynamic shapes (docs/dynamic_shapes.md), part 1: symbolic sizes and int
arguments through Python (arithmetic, formatting, torch.Size values, factories, views, indexing,
slicing, int arguments, Python state). Harness and FAILING list: tests/redteam_dynamic_harness.py.
"""
import math
import operator
import warnings

import pytest
import torch
import torch.nn.functional as F

import bytegraph
from differential import assert_same

from redteam_dynamic_harness import *  # noqa: F401,F403  (diff, marked, R, SIZES, ...)

PROBES, probe = registry()

# --------------------------------------------------------------------------- Python ints from sizes

@probe
def truediv_pow_bool():
    def f(x):
        n = x.shape[0]
        return x * (n / 2), n / 2, n ** 2, 2 ** n, n ** 0.5, bool(n), not n, n and 5, n or 7
    diff(f, WITH_01)


@probe
def mod_floordiv_neg():
    def f(x):
        n = x.shape[0]
        return x * (n % 3), n % 3, -n // 2, -n % 3, n // -2, x[: n // 2]
    diff(f, WITH_01)


@probe
def chained_comparisons():
    def f(x):
        n = x.shape[0]
        return (2 < n < 8), (1 <= n <= 4 < 100), n == 4, n != 4, n > 2.5, n == 4.0, n == True  # noqa: E712
    diff(f, WITH_01)


@probe
def min_max_of_three():
    def f(x):
        n = x.shape[0]
        return min(n, 5, 3 * n - 4), max(n, 5, 20 - n), x.sum() * min(n, 5, 3), max(x.shape), sorted(x.shape)
    diff(f, WITH_01)


@probe
def sum_prod_of_shape():
    def f(x):
        return sum(x.shape), sum(x.shape, 10), math.prod(x.shape), x.numel(), len(x)
    diff(f, SIZES, compiles=1)


@probe
def shape_equality():
    def f(x, y):
        return (x.shape == torch.Size([7, 6]), x.shape[1:] == (6,), x.shape[1:] == y.shape[1:],
                x.shape == y.shape, tuple(x.shape), list(x.shape))

    def g(x, y):
        return x.shape == (4, 6), x.shape[1:] == y.shape[1:], x.shape == y.shape, tuple(x.shape)
    calls = [(R(4, 6), R(3, 6)), (R(5, 6), R(5, 6)), (R(5, 7), R(5, 6)), (R(8, 6), R(2, 6)), (R(7, 6), R(7, 6))]
    diff(f, calls)
    diff(g, calls)


@probe
def size_method_after_specialization():
    def f(x):
        if x.shape[0] == 4:
            return x.size(), x.size(0) + 1, x.numel() + 1
        return x.size()

    def g(x, y):
        return x.shape == (4, 6), x.size() == y.size()
    diff(f, [R(4, 6), R(5, 6), R(4, 6), R(7, 6)])
    diff(g, [(R(4, 6), R(3, 6)), (R(4, 6), R(4, 6)), (R(5, 6), R(5, 6))])


@probe
def isinstance_type_bit_length():
    def f(x):
        n = x.shape[0]
        return (isinstance(n, int), type(n) is int, type(n).__name__, type(x.shape).__name__,
                isinstance(x.shape, tuple), n.bit_length(), x * n.bit_length())
    diff(f, SIZES)


@probe
def int_protocols_of_size():
    def f(x):
        n = x.shape[0]
        return (n & 1, n | 2, n ^ 3, n << 1, n >> 1, -n, +n, abs(-n), round(n / 3), round(n / 4, 1),
                math.gcd(n, 6), math.isqrt(n), float(n).is_integer(), int.__add__(n, 1), [0] * n, n in (4, 5), n in [3, 4, 5], n in {4: 1, 7: 2},
                range(3, 10).__contains__(n), 5 in range(n), range(0, 20).index(n), [2, 4, 7].count(n),
                x.shape.index(6), x.shape.count(4), n * 1.5, n // 2.0, n % 2.5, complex(n), divmod(n, 2.5))
    diff(f, SIZES)


@probe
def invert_size():
    def f(x):
        return ~x.shape[0], x * 2
    diff(f, SIZES)


@probe
def size_in_range():
    def f(x):
        n = x.shape[0]
        return n in range(3, 10), n not in range(3, 10), n in range(0, 20, 4)

    def branch(x):
        if x.shape[0] in range(3, 10):
            return x + 1
        return x - 1

    def int_arg(x, n):
        return x * (n in range(3, 10))
    calls = [R(4, 6), R(7, 6), R(2, 6), R(12, 6), R(3, 6), R(8, 6)]
    diff(f, calls)
    diff(branch, calls)
    diff(branch, calls, dynamic=None)
    diff(int_arg, [(R(2), 4), (R(2), 7), (R(2), 2), (R(2), 12)], dynamic=None)


@probe
def sequence_ops_with_size():
    def f(x):
        n = x.shape[0]
        return "a" * n, hash(n) == hash(int(n)), bytes(n), n * (1, 2), b"ab" * n
    diff(f, SIZES)


@probe
def bytearray_of_size():
    def f(x):
        return bytearray(x.shape[0]), x + 1
    diff(f, SIZES)


@probe
def min_max_with_float():
    def f(x):
        n = x.shape[0]
        return max(n, 4.5), min(n, 4.5)

    def typed(x):
        m = max(x.shape[0], 4.5)
        return x * m if type(m) is int else x

    def int_arg(x, n):
        return max(n, 4.5), min(n, 4.5)
    diff(f, SIZES)
    diff(typed, [R(4, 6), R(7, 6), R(5, 6)])
    diff(int_arg, [(R(2), 3), (R(2), 5), (R(2), 7)], dynamic=None)


_IS_SRC = """
def f(x):
    n = x.shape[0]
    return n is 4, n is not 4
"""


@probe
def identity_of_small_int_size():
    ns = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        exec(compile(_IS_SRC, "<is-program>", "exec"), ns)
    diff(ns["f"], SIZES)


@probe
def comparisons_and_symbool_arithmetic():
    def f(x):
        n = x.shape[0]
        return ((n > 3) + (n > 5), (n > 3) * 2, sum([n > 3, n > 5]), [n > 3, n > 5].count(True),
                any(k > 5 for k in x.shape), all(k > 3 for k in x.shape), x.shape < (5, 0), tuple(x.shape) > (4, 6),
                max(x.shape, (5, 5)), sorted([x.shape, (5, 5)]), x.shape[0] in x.shape, 6 in x.shape,
                n if n > 4 else -n, abs(n - 5), max(n, 4), min([n, 5]), sorted([n, 5, 3]), bool(n - 4))
    diff(f, SIZES)


@probe
def symbool_negation():
    def f(x):
        return -(x.shape[0] > 3), x + 1
    diff(f, SIZES)


@probe
def dunder_methods_of_size():
    def f(x):
        n = x.shape[0]
        return n.__eq__(4), n.__lt__(5), n.__bool__(), (n / 3).__floor__()
    diff(f, SIZES)


@probe
def stdlib_numeric_helpers_on_size():
    import bisect

    def f(x):
        n = x.shape[0]
        return bisect.bisect([2, 4, 8], n), bisect.bisect_left([2, 4, 8], n), math.fsum([n, 0.5])
    diff(f, SIZES)


@probe
def list_contains_method_static():
    def f(x):
        return [4, 7].__contains__(x.shape[0]), x + 1
    diff(f, [R(4, 6), R(7, 6)], dynamic=False)


@probe
def statistics_mean_static():
    import statistics

    def f(x):
        return statistics.mean([x.shape[0], 2]), x + 1
    diff(f, [R(4, 6), R(7, 6)], dynamic=False)


@probe
def index_protocol_of_size():
    def f(x):
        n = x.shape[0]
        return operator.index(n), n.__index__(), x * 2
    diff(f, SIZES)


@probe
def str_of_sizes():
    def f(x):
        n = x.shape[0]
        return f"n={n} {x.shape}", str(n), repr(n), "{}".format(x.size()), str(x.shape)
    diff(f, SIZES)


@probe
def format_spec_of_size():
    def f(x):
        return f"{x.shape[0]:03d}", x + 1
    diff(f, SIZES)


@probe
def percent_format_of_size():
    def f(x):
        return "%d rows" % x.shape[0], x + 1
    diff(f, SIZES)


@probe
def range_of_size():
    def f(x):
        n = x.shape[0]
        return list(range(n)), list(range(1, n, 2)), len(range(n)), sum(range(n)), x * n
    diff(f, [R(4, 6), R(7, 6), R(1, 6), R(0, 6), R(4, 6), R(9, 6)], compiles=5)


@probe
def size_as_dict_key_and_set():
    def f(x):
        n = x.shape[0]
        d = {n: 1, "a": n}
        return d, d.get(4, -1), n in d, {x.shape: 1}, {x.shape[0], x.shape[1]}, frozenset(x.shape)
    diff(f, SIZES)


@probe
def containers_of_sizes_returned():
    def f(x):
        n = x.shape[0]
        return [i * n for i in range(3)], {"n": n, "half": n // 2, "t": (n, n + 1)}, (n,) * 2
    diff(f, SIZES, compiles=1)


@probe
def closure_over_size_returned():
    def f(x, n):
        return x * n, (lambda: n * 2 + x.shape[0])
    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager", dynamic=True)
    for n, b in ((3, 4), (4, 5), (7, 9)):
        x = R(b)
        e, a = f(x, n), c(x, n)
        assert_same(e[0], a[0])
        assert e[1]() == a[1]() and type(a[1]()) is int
    assert compiles() == 1


# --------------------------------------------------------------------------- torch.Size values

@probe
def size_returned():
    def f(x):
        return x.shape, x.size(), torch.Size([x.shape[0], 2]), torch.Size((x.shape[0],)) + torch.Size([3])
    diff(f, SIZES)


@probe
def size_slice_type():
    def f(x):
        return x.shape[1:], x.shape[:-1], x.shape[::-1]
    diff(f, SIZES)


@probe
def size_concat_type():
    def f(x):
        return x.shape[:1] + x.shape[1:]
    diff(f, SIZES)


@probe
def size_plus_tuple():
    def f(x):
        return x.reshape(x.shape + (1,)), x.shape + (1,)
    diff(f, SIZES)


@probe
def tuple_plus_size():
    def f(x):
        return (1,) + x.shape
    diff(f, SIZES)


@probe
def size_times_int():
    def f(x):
        return x.shape * 2, 2 * x.shape
    diff(f, SIZES)


@probe
def size_mul_and_likes():
    def f(x):
        return (torch.zeros(x.shape), torch.zeros(*x.shape), torch.empty_like(x).shape,
                x.reshape(x.shape), torch.zeros(x.size(), dtype=torch.int64), x.new_ones(x.shape[0], x.shape[1]),
                x.size(-1), x.size(dim=0), x.shape[-2])
    diff(f, SIZES)


# --------------------------------------------------------------------------- factories and views

@probe
def full_and_new_factories():
    def f(x):
        n = x.shape[0]
        return (torch.full((n,), n), torch.full((n, 2), n / 2), x.new_zeros(n), x.new_ones((n, n)),
                x.new_full((n,), n), x.new_empty(n).shape, torch.eye(n), torch.ones(n, n).tril())

    def specializing(x):
        n = x.shape[0]
        return torch.triu_indices(n, n), torch.linspace(0, 1, n)
    diff(f, WITH_01, compiles=3)
    diff(specializing, [R(4, 6), R(7, 6), R(1, 6), R(0, 6), R(4, 6), R(9, 6)], compiles=5)


@probe
def arange_of_sizes():
    def f(x):
        n = x.shape[0]
        return torch.arange(n, 2 * n), torch.arange(0, n, 2), torch.arange(n).float() / n
    diff(f, SIZES, compiles=1)


@probe
def arange_float_size():
    def f(x):
        return torch.arange(x.shape[0] * 1.0)
    diff(f, SIZES)


@probe
def expand_and_repeat():
    def f(x):
        n = x.shape[0]
        return x[:1].expand(n, -1), x.sum(0).expand(n, 6), x.repeat(n, 1), x[0].repeat(n), x.expand(3, *x.shape).sum(0)
    diff(f, SIZES)


@probe
def split_chunk_narrow_by_size():
    def f(x):
        n = x.shape[0] // 2
        return torch.split(x, n), x.chunk(n), x.narrow(0, 0, n), x.narrow(0, n, x.shape[0] - n)
    diff(f, [R(10, 2), R(12, 2), R(9, 2), R(7, 2), R(16, 2)])


@probe
def split_by_int_argument():
    def f(x, n):
        return torch.split(x, n), x.chunk(n), x.split([n, x.shape[0] - n]), x.tensor_split(n)
    diff(f, [(R(10, 2), 3), (R(10, 2), 4), (R(12, 2), 5), (R(9, 2), 2)])


@probe
def unflatten_and_views():
    def f(x):
        n = x.shape[1]
        return x.unflatten(1, (2, n // 2)), x.view(-1, n), x.view(x.shape[0] * n), x.flatten().view(n, -1)
    diff(f, SIZES, compiles=1)


@probe
def view_by_int_argument_divisibility():
    def f(x, n):
        return x.view(n, -1)
    diff(f, [(R(12), 3), (R(12), 4), (R(12), 6), (R(10), 5), (R(18), 6)], compiles=1)


@probe
def view_by_two_inputs():
    def f(x, y):
        return x.view(y.shape[0], -1, x.shape[-1]), x.shape[0] // y.shape[0]
    diff(f, [(R(6, 2), R(3)), (R(8, 2), R(4)), (R(9, 2), R(3)), (R(10, 2), R(5)), (R(12, 2), R(4))], compiles=1)


@probe
def pad_by_size():
    def f(x):
        return F.pad(x, (x.shape[0], 1))
    diff(f, [R(4, 6), R(5, 6), R(7, 2), R(3, 3)])


@probe
def pad_constant_then_sizes():
    def f(x):
        return F.pad(x, (1, 2)), F.pad(x, (0, 0, 1, 1), value=3.0)
    diff(f, [R(s, 6) for s in (4, 6, 9, 7, 8, 5)], compiles=1)


@probe
def interpolate_by_size():
    def f(x):
        return F.interpolate(x, size=x.shape[-1] * 2)
    diff(f, [R(2, 3, 4), R(2, 3, 7), R(2, 3, 5), R(3, 3, 9)])


@probe
def interpolate_scale_and_adaptive_pool():
    def f(x):
        h = x.shape[-2]
        return F.interpolate(x, scale_factor=2), F.adaptive_avg_pool2d(x, (h // 2, 3))
    diff(f, [R(1, 2, 4, 6), R(1, 2, 8, 6), R(2, 2, 6, 5), R(1, 2, 10, 3)])


@probe
def numel_with_zero_dim():
    def f(x):
        if x.numel() == 0:
            return x.new_zeros(1)
        return x.sum(0) / x.numel()
    diff(f, [R(0, 3), R(0, 5)])


@probe
def numel_branch_sizes():
    def f(x):
        if x.numel() == 0:
            return x.new_zeros(1)
        return x.sum(0, keepdim=True) / x.numel()
    diff(f, [R(4, 3), R(5, 3), R(7, 3), R(1, 3), R(8, 3)])


# --------------------------------------------------------------------------- indexing and slicing

@probe
def index_and_slice_by_size():
    def f(x):
        n = x.shape[0]
        return x[n - 1], x[-n:], x[::n - 1], x[n // 2], x[: n - 1], x[1:n:2]
    diff(f, SIZES)


@probe
def index_by_int_argument():
    def f(x, n):
        return x[n], x[n:], x[-n], x[:, n]
    diff(f, [(R(6, 4), 2), (R(6, 4), 3), (R(6, 4), -1), (R(6, 4), -3), (R(7, 5), 4), (R(6, 4), 0), (R(6, 4), 1)])


@probe
def slice_clamping_by_int_argument():
    def f(x, n):
        return x[:n], x[n:], x[n:-1], x[-n:]
    calls = [(R(6), 2), (R(6), 3), (R(6), 9), (R(6), -2), (R(6), -9), (R(3), 5)]
    diff(f, calls)
    diff(f, calls, dynamic=None)


@probe
def symbolic_slice_step():
    def f(x, k):
        return x[::k], x[1::k], x[:k * 2:k]
    diff(f, [(R(10, 2), 2), (R(10, 2), 3), (R(13, 2), 4), (R(7, 2), 5)])


@probe
def python_list_indexed_by_int():
    def f(x, n):
        table = [10, 20, 30, 40, 50, 60, 70]
        return x * table[n], table[n:], table[-n]
    diff(f, [(R(2), 2), (R(2), 3), (R(2), 5), (R(2), -2)])


# --------------------------------------------------------------------------- int arguments

NS = [4, 7, -2, -5, 5, -1, 2, 3, 0, 1, -3, 9, -4, 10]


@probe
def negative_int_arguments():
    def f(x, n):
        return x * n, x[:n], x.roll(n, 0), torch.full((2,), n), n < 0, abs(n), -n
    diff(f, [(R(6, 2), 3), (R(6, 2), -2), (R(6, 2), 4), (R(6, 2), -5), (R(6, 2), 0), (R(6, 2), 1), (R(6, 2), -1)])
    diff(f, [(R(6, 2), 3), (R(6, 2), 4), (R(6, 2), -2), (R(6, 2), -5), (R(6, 2), 5)], dynamic=None)


@probe
def mod_branch_negative_int():
    def f(x, n):
        if n % 3 == 1:
            return x + 1
        return x - 1
    diff(f, [(R(2), n) for n in NS], compiles=2)


@probe
def floordiv_branch_negative_int():
    def f(x, n):
        if n // 3 == 1:
            return x + 1
        return x - 1
    diff(f, [(R(2), n) for n in NS], compiles=2)


@probe
def arithmetic_values_negative_int():
    def f(x, n):
        return x * (n // 3), x * (n % 3), x * (n // -2), x * (n % -3), x * (n / 3), n / 3, n * 0.5, n ** 2
    diff(f, [(R(2), n) for n in NS], compiles=1)


@probe
def int_argument_becomes_bool_float_tensor():
    def f(x, n):
        return x * n, n + 1, type(n).__name__, n
    for dynamic in (None, True):
        diff(f, [(R(3), 2), (R(3), 5), (R(3), True), (R(3), False), (R(3), 3)], dynamic=dynamic)
        diff(f, [(R(3), 2), (R(3), 5), (R(3), 2.5), (R(3), 3.0), (R(3), 7)], dynamic=dynamic)
        diff(f, [(R(3), 2), (R(3), 5), (R(3), torch.tensor(3)), (R(3), 4)], dynamic=dynamic)


@probe
def int_argument_broadcasts_at_one():
    def f(x, n):
        return torch.ones(n, 3) + x, torch.ones(n, 3) + torch.ones(x.shape[0], 3)
    diff(f, [(R(5, 3), 5), (R(6, 3), 6), (R(6, 3), 1), (R(1, 3), 4), (R(7, 3), 7)])


@probe
def int_argument_in_range_unrolled():
    def f(x, n):
        out = x
        for i in range(n):
            out = out * 2 + i
        return out, n
    diff(f, [(R(3), 2), (R(3), 3), (R(3), 4), (R(3), 3), (R(3), 0), (R(3), 1), (R(3), -1)], dynamic=None)


@probe
def int_arguments_keyword_default():
    def g(x, *, n=3):
        return x * n + x.shape[0]

    def defaults(x, n=3):
        return x[:n] * n
    diff(lambda x, n: g(x, n=n), [(R(3), 2), (R(4), 5), (R(5), 7), (R(6), 8)], dynamic=None, compiles=2)
    diff(defaults, [(R(8),), (R(8), 4), (R(9), 5), (R(9),), (R(10), 6)], dynamic=None)


@probe
def scalar_ops_with_int_argument():
    def f(x, n):
        return (x + n, x * (n / 3), x.pow(n), torch.clamp(x, max=n), x.masked_fill(x > 0, n),
                x.long() + n, (x.long() * n).dtype, x.long() // n, torch.full((2,), n / 2),
                torch.tensor([n, 1]), torch.tensor(n), torch.as_tensor(n))
    diff(f, [(R(5) * 10, 3), (R(5) * 10, 4), (R(5) * 10, 7), (R(5) * 10, -2)])


@probe
def int_outputs_types():
    def f(x, n):
        return n, n + 1, n / 2, n > 3, x.shape[0] * n, float(x.shape[0]), x.shape[0] == n
    for backend in ("eager", "aten"):
        diff(f, [(R(4, 3), 2), (R(5, 3), 3), (R(7, 2), 5), (R(3, 2), 3)], backend=backend, compiles=1)


# --------------------------------------------------------------------------- Python state

@probe
def sizes_into_list_argument():
    def f(x, out):
        out.append(x.shape[0])
        out.extend(x.shape)
        out.insert(0, x.shape[1] * 2)
        return x + 1
    diff(f, [(R(4, 5), []), (R(5, 6), [1]), (R(9, 2), [])])


@probe
def sizes_into_dict_argument():
    def f(x, d):
        d[x.shape[0]] = 1
        d["v"] = x.shape[1]
        return x + 1
    diff(f, [(R(4, 5), {}), (R(5, 6), {}), (R(9, 2), {"v": 0})])


class _Holder:
    def __init__(self):
        self.n = None


@probe
def sizes_into_object_attributes():
    def f(x, o):
        o.n = x.shape[0]
        o.s = x.shape
        o.l = [x.shape[1]]
        return x + 1
    diff(f, [(R(4, 5), _Holder()), (R(5, 6), _Holder()), (R(9, 2), _Holder())], compiles=1)


_G = {"n": 0}
_GN = 0


@probe
def sizes_into_globals_and_closure_list():
    def run(C):
        global _GN
        _G.clear()
        _GN = 0
        seen = []

        def f(x):
            global _GN
            seen.append(x.shape[0])
            _G[x.shape[1]] = x.shape[0]
            _GN = x.shape[0] * 2
            return x + _GN
        c = C(f)
        outs = [c(R(b, s)) for b, s in ((4, 3), (5, 3), (7, 2), (4, 3))]
        return outs, list(seen), dict(_G), _GN
    states(run)


@probe
def print_warn_raise_with_sizes():
    def f(x, n):
        print("shape", x.shape, x.shape[0], x.size(1) * 2, f"n={n}")
        warnings.warn(f"size {x.shape[0]}")
        if x.shape[0] > 6:
            raise ValueError(f"too big: {x.shape} {x.shape[0]}")
        return x * n
    diff(f, [(R(4, 3), 2), (R(5, 3), 3), (R(7, 2), 5), (R(9, 2), 1)], fullgraph=False,
         fallbacks=("user_error",))


_ASSERT_SRC = """
def f(x, y):
    assert x.shape[0] == y.shape[0], f"mismatch {x.shape[0]} vs {y.shape[0]}"
    return x + y
"""


@probe
def assert_on_sizes():
    ns = {}
    exec(compile(_ASSERT_SRC, "<assert-program>", "exec"), ns)   # pytest rewrites this module's asserts
    f = ns["f"]
    diff(f, [(R(4, 3), R(4, 3)), (R(5, 3), R(5, 3)), (R(7, 3), R(6, 3)), (R(8, 3), R(8, 3))],
         fullgraph=False, fallbacks=("user_error",))


# --------------------------------------------------------------------------- the test

@pytest.mark.parametrize("name", list(PROBES))
def test_probe(name):
    run_probe(PROBES, name)
