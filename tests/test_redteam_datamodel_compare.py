"""Data-model red-team probes: rich comparisons (== != < <= > >=): reflection, subclass priority,
identity fallback for ==/!=, __ne__ derived from __eq__, chains, builtins, enums, tensors in
branch conditions, sorting/max driven by __lt__/__gt__."""
import dataclasses
import functools
import operator
import typing

import pytest
import torch

from datamodel_harness import Case, Probes, enums, fn_from, klass, run_probe, table_probe

P = Probes()

CMPS = [("==", "eq", "eq"), ("!=", "ne", "ne"), ("<", "lt", "gt"), ("<=", "le", "ge"),
        (">", "gt", "lt"), (">=", "ge", "le")]   # (symbol, dunder stem, reflected stem)

_SRC = """
def f(x, a, b):
    try:
        r = a {op} b
    except TypeError as e:
        r = str(e)
    return (x + 1 if r == {label!r} else x - 1), r
"""


def _fn(op, label):
    return fn_from(_SRC.format(op=op, label=label))


def _v_reflected_from_int(op, d, rd):
    log = []
    B = klass(log, "B", {f"__{rd}__": "tag"})
    return Case(_fn(op, f"B.__{rd}__"), (torch.ones(2), 3, B()), log)


def _v_ni_then_reflected(op, d, rd):
    log = []
    A = klass(log, "A", {f"__{d}__": "ni"})
    B = klass(log, "B", {f"__{rd}__": "tag"})
    return Case(_fn(op, f"B.__{rd}__"), (torch.ones(2), A(), B()), log)


def _v_both_ni(op, d, rd):
    # == / != fall back to identity; ordering raises TypeError.
    log = []
    A = klass(log, "A", {f"__{d}__": "ni"})
    B = klass(log, "B", {f"__{rd}__": "ni"})
    return Case(_fn(op, ""), (torch.ones(2), A(), B()), log)


def _v_same_class_reflects(op, d, rd):
    # Unlike arithmetic, comparisons try the reflected method even for operands of one type.
    log = []
    A = klass(log, "A", {f"__{d}__": "ni", f"__{rd}__": "tag"} if d != rd else {f"__{d}__": "ni"})
    return Case(_fn(op, f"A.__{rd}__"), (torch.ones(2), A(), A()), log)


def _v_subclass_inherited_first(op, d, rd):
    # A right operand of a subclass type goes first even when it only inherits the method.
    log = []
    A = klass(log, "A", {f"__{d}__": "tag", f"__{rd}__": "tag"})
    S = klass(log, "S", bases=(A,))
    return Case(_fn(op, f"A.__{rd}__"), (torch.ones(2), A(), S()), log)


def _v_tensor_left(op, d, rd):
    log = []
    R = klass(log, "R", {f"__{rd}__": "tag"})
    f = fn_from(f"def f(x, r):\n    y = x {op} r\n    return (x + 1 if y == {f'R.__{rd}__'!r} else x - 1), y")
    return Case(f, (torch.ones(2), R()), log)


VARIANTS = [("reflected_from_int", _v_reflected_from_int), ("ni_then_reflected", _v_ni_then_reflected),
            ("both_ni", _v_both_ni), ("same_class_reflects", _v_same_class_reflects),
            ("subclass_inherited_first", _v_subclass_inherited_first),
            ("tensor_left_reflected", _v_tensor_left)]

for _op, _d, _rd in CMPS:
    for _suffix, _variant in VARIANTS:
        P.add(f"cmp_{_d}_{_suffix}", "compare", (lambda v, o, d, rd: lambda: v(o, d, rd))(_variant, _op, _d, _rd))


# --------------------------------------------------------------------------- builtins

_BUILTIN = [
    ("int_eq_float", "a == b", 1, 1.0),
    ("true_eq_one", "a == b", True, 1),
    ("int_eq_complex", "a == b", 1, 1 + 0j),
    ("nan_eq_nan", "a == b", float("nan"), float("nan")),
    ("nan_ne_nan", "a != b", float("nan"), float("nan")),
    ("negzero_eq_zero", "a == b", -0.0, 0.0),
    ("float_sum_eq", "a + 0.2 == b", 0.1, 0.3),
    ("tuple_lt_tuple", "a < b", (1, 2), (1, 3)),
    ("list_lt_longer", "a < b", [1, 2], [1, 2, 0]),
    ("tuple_eq_list", "a == b", (1,), [1]),
    ("str_lt_str", "a < b", "a", "b"),
    ("str_lt_int", "a < b", "a", 1),
    ("none_lt_int", "a < b", None, 1),
    ("none_eq_none", "a == b", None, None),
    ("complex_lt", "a < b", 1j, 2j),
    ("set_lt_subset", "a < b", {1}, {1, 2}),
    ("set_le_equal", "a <= b", {1}, {1}),
    ("set_gt_disjoint", "a > b", {1}, {2}),
    ("frozenset_eq_set", "a == b", frozenset({1}), {1}),
    ("bytes_eq_str", "a == b", b"a", "a"),
    ("dict_eq_float_values", "a == b", {"a": 1}, {"a": 1.0}),
    ("dict_lt_dict", "a < b", {"a": 1}, {"a": 2}),
    ("range_eq_range", "a == b", range(3), range(0, 3)),
    ("tuple_nested_lt", "a < b", (1, (2, "x")), (1, (2, "y"))),
    ("list_lt_mixed_types", "a < b", [1, "a"], [1, 2]),
    ("bool_lt_int", "a < b", False, 1),
    ("int_ge_float_inf", "a >= b", 10 ** 30, float("inf")),
]

_BSRC = """
def f(x, a, b):
    try:
        r = {expr}
    except TypeError as e:
        r = str(e)
    return (x + 1 if r is True else x - 1), r
"""

for _n, _expr, _a, _b in _BUILTIN:
    P.add(f"cmp_builtin_{_n}", "compare", table_probe(_BSRC.format(expr=_expr), _a, _b))

_ENUM = [
    ("issue_str_mixin_eq_str", "'a' == b", "Action.A"),
    ("issue_int_eq_intenum", "1 == b", "N.ONE"),
    ("strenum_eq_str", "b == 'a'", "S.A"),
    ("str_ne_strenum", "'b' != b", "S.A"),
    ("plain_enum_eq_value", "b == 1", "Color.RED"),
    ("plain_enum_eq_itself", "b == b", "Color.RED"),
    ("flag_eq_int", "b == 1", "Fl.R"),
    ("intflag_eq_int", "b == 1", "IF.R"),
    ("int_mixin_eq_int", "1 == b", "IM.ONE"),
    ("plain_enum_lt", "b < b", "Color.RED"),
    ("intenum_lt_int", "b < 2", "N.ONE"),
    ("strenum_lt_str", "b < 'b'", "S.A"),
    ("intenum_eq_float", "b == 1.0", "N.ONE"),
    ("alias_eq_canonical", "b == Auto.FIRST", "Auto.ALIAS"),
    ("flag_composite_eq", "(b | Fl.W) == (Fl.W | Fl.R)", "Fl.R"),
    ("intenum_eq_true", "b == True", "N.ONE"),
]


def _enum_probe(expr, b):
    def build():
        e = vars(enums())
        f = fn_from(_BSRC.format(expr=expr).replace("def f(x, a, b)", "def f(x, b)"), env=e)
        return Case(f, (torch.ones(2), eval(b, {}, e)))
    return build


for _n, _expr, _b in _ENUM:
    P.add(f"cmp_enum_{_n}", "compare", _enum_probe(_expr, _b))


# --------------------------------------------------------------------------- specials

@P("compare")
def cmp_issue_user_eq_always_true():
    class O:
        def __eq__(self, other):
            return True

    def g(x, o):
        return x + 1 if 3 == o else x - 1
    return Case(g, (torch.ones(2), O()))


@P("compare")
def cmp_ne_derived_from_eq():
    log = []

    class A:
        def __eq__(self, other):
            log.append("eq")
            return True

    def f(x, a, b):
        r = a != b
        return (x + 1 if r else x - 1), r
    return Case(f, (torch.ones(2), A(), A()), log)


@P("compare")
def cmp_ne_derived_from_non_bool_eq():
    class A:
        def __eq__(self, other):
            return "yes"

    def f(x, a):
        r = a != 5
        return (x + 1 if r else x - 1), r
    return Case(f, (torch.ones(2), A()))


@P("compare")
def cmp_ne_explicit_not_inverse():
    class A:
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return True

    def f(x, a):
        r = (a == 1, a != 1)
        return x + 1, r
    return Case(f, (torch.ones(2), A()))


@P("compare")
def cmp_default_eq_is_identity():
    class O:
        pass
    o = O()

    def f(x, a, b, c):
        r = (a == b, a == c, a != c)
        return (x + 1 if r[0] else x - 1), r
    return Case(f, (torch.ones(2), o, o, O()))


@P("compare")
def cmp_eq_returns_non_bool_in_branch():
    class A:
        def __eq__(self, other):
            return []

    def f(x, a):
        if a == 1:
            return x + 1
        return x - 1
    return Case(f, (torch.ones(2), A()))


@P("compare")
def cmp_eq_returns_object_with_bool():
    log = []

    class Verdict:
        def __bool__(self):
            log.append("bool")
            return False

    class A:
        def __eq__(self, other):
            return Verdict()

    def f(x, a):
        return x + 1 if a == 2 else x - 1
    return Case(f, (torch.ones(2), A()), log)


@P("compare")
def cmp_eq_raises():
    log = []
    A = klass(log, "A", {"__eq__": "raise"})

    def f(x, a):
        try:
            r = a == 1
        except ValueError as e:
            r = str(e)
        return x + 1, r
    return Case(f, (torch.ones(2), A()), log)


@P("compare")
def cmp_eq_side_effect_counter():
    class A:
        def __init__(self):
            self.calls = 0

        def __eq__(self, other):
            self.calls += 1
            return self.calls > 1

    def f(x, a):
        first = a == 0
        second = a == 0
        return (x + 1 if second else x - 1), (first, second)
    return Case(f, (torch.ones(2), A()))


@P("compare")
def cmp_list_eq_identity_shortcut():
    log = []

    class A:
        def __eq__(self, other):
            log.append("eq")
            return False

    a = A()

    def f(x, l1, l2):
        r = (l1 == l2, [a] == [A()])
        return (x + 1 if r[0] else x - 1), r
    return Case(f, (torch.ones(2), [a], [a]), log)


@P("compare")
def cmp_tuple_eq_nan_same_object():
    nan = float("nan")

    def f(x, t1, t2):
        r = (t1 == t2, (nan,) == (float("nan"),))
        return (x + 1 if r[0] else x - 1), r
    return Case(f, (torch.ones(2), (nan,), (nan,)))


@P("compare")
def cmp_str_subclass_eq_reflected_first():
    log = []

    class MyStr(str):
        def __eq__(self, other):
            log.append(("MyStr.__eq__", other))
            return False

        __hash__ = str.__hash__

    def f(x, s):
        r = "a" == s
        return (x + 1 if r else x - 1), r
    return Case(f, (torch.ones(2), MyStr("a")), log)


@P("compare")
def cmp_int_subclass_gt_reflected_first():
    log = []

    class MyInt(int):
        def __gt__(self, other):
            log.append(("gt", other))
            return True

    def f(x, m):
        r = 100 < m
        return (x + 1 if r else x - 1), r
    return Case(f, (torch.ones(2), MyInt(1)), log)


@P("compare")
def cmp_int_subclass_plain_compares_as_int():
    class MyInt(int):
        pass

    def f(x, m):
        r = (m == 3, m < 4, 3 == m)
        return (x + 1 if all(r) else x - 1), r
    return Case(f, (torch.ones(2), MyInt(3)))


@P("compare")
def cmp_chain_evaluates_middle_once():
    log = []

    class M:
        def __gt__(self, other):
            log.append(("gt", other))
            return True

        def __lt__(self, other):
            log.append(("lt", other))
            return True

    def f(x, m):
        r = 1 < m < 3
        return (x + 1 if r else x - 1), r
    return Case(f, (torch.ones(2), M()), log)


@P("compare")
def cmp_chain_short_circuits():
    log = []

    class M:
        def __gt__(self, other):
            log.append(("gt", other))
            return False

        def __lt__(self, other):
            log.append(("lt", other))
            return True

    def f(x, m):
        r = 1 < m < 3
        return (x + 1 if r else x - 1), r
    return Case(f, (torch.ones(2), M()), log)


@P("compare")
def cmp_chain_returns_last_non_bool():
    class M:
        def __lt__(self, other):
            return "truthy"

        def __gt__(self, other):
            return ["also"]

    def f(x, m):
        r = 0 < m < 5
        return x + 1, r
    return Case(f, (torch.ones(2), M()))


@P("compare")
def cmp_chain_with_tensor_shape():
    def f(x, lo, hi):
        if lo < x.shape[0] <= hi:
            return x + 1
        return x - 1
    return Case(f, (torch.ones(3), 1, 3), args2=(torch.ones(3), 3, 5))


@P("compare")
def cmp_shape_eq_intenum_branch():
    e = enums()

    def f(x, n):
        if x.shape[0] == n:
            return x + 1
        return x - 1
    return Case(f, (torch.ones(2), e.N.TWO), args2=(torch.ones(2), e.N.ONE))


@P("compare")
def cmp_dim_eq_user_object_branch():
    log = []

    class O:
        def __eq__(self, other):
            log.append(("eq", other))
            return other == 1

    def f(x, o):
        return x + 1 if x.dim() == o else x - 1
    return Case(f, (torch.ones(2), O()), log)


@P("compare")
def cmp_size_eq_tuple_and_list():
    def f(x):
        r = (x.shape == (2, 3), x.shape == [2, 3], x.shape == torch.Size([2, 3]), x.shape < (3,))
        return x + 1, r
    return Case(f, (torch.ones(2, 3),))


@P("compare")
def cmp_dtype_device_eq_strings():
    def f(x):
        r = (x.dtype == torch.float32, x.dtype == "float32", x.device == "cpu",
             x.device == torch.device("cpu"), x.dtype != torch.float64)
        return x + 1, r
    return Case(f, (torch.ones(2),))


@P("compare")
def cmp_tensor_eq_in_branch_data_dependent():
    def f(x, y):
        if (x == y).all():
            return x + 1
        return x - 1
    return Case(f, (torch.ones(2), torch.ones(2)), args2=(torch.ones(2), torch.zeros(2)))


@P("compare")
def cmp_dataclass_eq_and_order():
    @dataclasses.dataclass(order=True)
    class D:
        a: int
        b: str = "z"

    def f(x, d1, d2):
        r = (d1 == d2, d1 < d2, d1 == (d1.a, d1.b), d1 != d2)
        return (x + 1 if r[1] else x - 1), r
    return Case(f, (torch.ones(2), D(1), D(1, "zz")))


@P("compare")
def cmp_dataclass_different_classes_ni():
    @dataclasses.dataclass
    class D:
        a: int

    @dataclasses.dataclass
    class E:
        a: int

    def f(x, d, e):
        try:
            lt = d < e
        except TypeError as err:
            lt = str(err)
        return x + 1, (d == e, lt)
    return Case(f, (torch.ones(2), D(1), E(1)))


@P("compare")
def cmp_namedtuple_vs_tuple():
    class Pt(typing.NamedTuple):
        a: int
        b: int

    def f(x, p):
        r = (p == (1, 2), p < (1, 3), (1, 2) == p)
        return (x + 1 if r[0] else x - 1), r
    return Case(f, (torch.ones(2), Pt(1, 2)))


@P("compare")
def cmp_total_ordering_derived():
    log = []

    @functools.total_ordering
    class V:
        def __init__(self, v):
            self.v = v

        def __eq__(self, other):
            log.append(("eq", self.v, other.v))
            return self.v == other.v

        def __lt__(self, other):
            log.append(("lt", self.v, other.v))
            return self.v < other.v

    def f(x, a, b):
        r = (a <= b, a >= b, a > b)
        return x + 1, r
    return Case(f, (torch.ones(2), V(1), V(2)), log)


@P("compare")
def cmp_operator_lt_function_path_reflects():
    log = []
    A = klass(log, "A", {"__lt__": "ni"})
    B = klass(log, "B", {"__gt__": "tag"})

    def f(x, a, b):
        r = operator.lt(a, b)
        return (x + 1 if r == "B.__gt__" else x - 1), r
    return Case(f, (torch.ones(2), A(), B()), log)


@P("compare")
def cmp_operator_eq_identity_fallback():
    log = []
    A = klass(log, "A", {"__eq__": "ni"})

    def f(x, a, b):
        r = (operator.eq(a, a), operator.eq(a, b), operator.ne(a, b))
        return x + 1, r
    return Case(f, (torch.ones(2), A(), A()), log)


@P("compare")
def cmp_sorted_calls_lt():
    log = []

    class V:
        def __init__(self, v):
            self.v = v

        def __lt__(self, other):
            log.append((self.v, other.v))
            return self.v < other.v

    def f(x, items):
        s = sorted(items)
        return x * s[0].v, [i.v for i in s]
    return Case(f, (torch.ones(2), [V(3), V(1), V(2)]), log)


@P("compare")
def cmp_max_uses_gt_reflected():
    log = []

    class V:
        def __init__(self, v):
            self.v = v

        def __lt__(self, other):
            log.append(("lt", self.v, other.v))
            return self.v < other.v

    def f(x, a, b):
        m = max(a, b)
        return x * m.v, m is b
    return Case(f, (torch.ones(2), V(1), V(2)), log)


@P("compare")
def cmp_eq_hash_none_still_compares():
    class A:
        __hash__ = None

        def __eq__(self, other):
            return isinstance(other, A)

    def f(x, a):
        r = (a == A(), a == 1)
        return (x + 1 if r[0] else x - 1), r
    return Case(f, (torch.ones(2), A()))


@P("compare")
def cmp_metaclass_eq_on_classes():
    log = []

    class Meta(type):
        def __eq__(cls, other):
            log.append("meta eq")
            return True

        __hash__ = type.__hash__

    class K(metaclass=Meta):
        pass

    def f(x, k):
        r = k == int
        return (x + 1 if r else x - 1), r
    return Case(f, (torch.ones(2), K), log)


@P("compare")
def cmp_enum_member_methods_and_compare():
    e = enums()

    def f(x, c):
        r = (c.describe(), c.twice, c is e.Color.RED, c == e.Color.GREEN)
        return x * c.twice, r
    return Case(f, (torch.ones(2), e.Color.RED), args2=(torch.ones(2), e.Color.GREEN))


@P("compare")
def cmp_is_vs_eq_small_values():
    def f(x, a, b):
        r = (a is b, a == b, a is not None)
        return (x + 1 if r[1] else x - 1), r
    return Case(f, (torch.ones(2), [1], [1]))


@pytest.mark.parametrize("name", P.params())
def test_compare(name):
    run_probe(name)
