"""Data-model red-team probes: binary operators (forward, reflected, subclass priority,
NotImplemented, builtins, builtin subclasses, enums, tensors with user operands)."""
import pytest
import torch

from datamodel_harness import OPS, Case, Probes, enums, fn_from, klass, run_probe, table_probe

P = Probes()

# --------------------------------------------------------------------------- per-operator table
# Each variant: (suffix, build(op, name) -> Case). `r` is the operator's result; the tensor branch
# depends on it, and r itself is returned too.

_BRANCH = """
def f(x, a, b):
    {body}
    return (x + 1 if r == {label!r} else x - 1), r
"""
_CATCH = "try:\n        r = a {op} b\n    except TypeError as e:\n        r = str(e)"


def _fn(op, label, body=None):
    return fn_from(_BRANCH.format(body=body or f"r = a {op} b", label=label))


def _v_reflected_from_int(op, name):
    log = []
    B = klass(log, "B", {f"__r{name}__": "tag"})
    return Case(_fn(op, f"B.__r{name}__"), (torch.ones(2), 3, B()), log)


def _v_ni_then_reflected(op, name):
    log = []
    A = klass(log, "A", {f"__{name}__": "ni"})
    B = klass(log, "B", {f"__r{name}__": "tag"})
    return Case(_fn(op, f"B.__r{name}__"), (torch.ones(2), A(), B()), log)


def _v_both_ni(op, name):
    log = []
    A = klass(log, "A", {f"__{name}__": "ni"})
    B = klass(log, "B", {f"__r{name}__": "ni"})
    return Case(_fn(op, "", _CATCH.format(op=op)), (torch.ones(2), A(), B()), log)


def _v_same_class_no_reflection(op, name):
    # CPython never tries the reflected method when both operands have the same type.
    log = []
    A = klass(log, "A", {f"__{name}__": "ni", f"__r{name}__": "tag"})
    return Case(_fn(op, "", _CATCH.format(op=op)), (torch.ones(2), A(), A()), log)


def _v_subclass_override_first(op, name):
    log = []
    A = klass(log, "A", {f"__{name}__": "tag", f"__r{name}__": "tag"})
    S = klass(log, "S", {f"__r{name}__": "tag"}, bases=(A,))
    return Case(_fn(op, f"S.__r{name}__"), (torch.ones(2), A(), S()), log)


def _v_subclass_inherited_not_first(op, name):
    # The subclass does not override the reflected method: the left operand goes first.
    log = []
    A = klass(log, "A", {f"__{name}__": "ni", f"__r{name}__": "tag"})
    S = klass(log, "S", bases=(A,))
    return Case(_fn(op, f"A.__r{name}__"), (torch.ones(2), A(), S()), log)


def _v_tensor_left(op, name):
    # Tensor.__op__ turns the TypeError into NotImplemented, so the user's __rop__ runs.
    log = []
    R = klass(log, "R", {f"__r{name}__": "tag"})
    f = fn_from(f"def f(x, r):\n    y = x {op} r\n    return (x + 1 if y == {f'R.__r{name}__'!r} else x - 1), y")
    return Case(f, (torch.ones(2), R()), log)


VARIANTS = [("reflected_from_int", _v_reflected_from_int),
            ("ni_then_reflected", _v_ni_then_reflected), ("both_ni_typeerror", _v_both_ni),
            ("same_class_no_reflection", _v_same_class_no_reflection),
            ("subclass_override_first", _v_subclass_override_first),
            ("subclass_inherited_not_first", _v_subclass_inherited_not_first),
            ("tensor_left_reflected", _v_tensor_left)]

for _op, _name in OPS:
    for _suffix, _variant in VARIANTS:
        P.add(f"bin_{_name}_{_suffix}", "binary",
              (lambda v, o, n: lambda: v(o, n))(_variant, _op, _name))


# --------------------------------------------------------------------------- builtins
# (name, expression over a and b, a, b): the Python result is returned and picks the branch.

_BUILTIN = [
    ("int_plus_bool", "a + b", 3, True),
    ("bool_plus_bool_is_int", "a + b", True, True),
    ("bool_and_bool_is_bool", "a & b", True, False),
    ("bool_or_int_is_int", "a | b", True, 2),
    ("bool_xor_bool", "a ^ b", True, True),
    ("int_truediv_is_float", "a / b", 6, 3),
    ("int_floordiv_negative", "a // b", -7, 2),
    ("int_mod_negative", "a % b", -7, 3),
    ("float_mod_negative", "a % b", -7.5, 2),
    ("int_pow_negative_is_float", "a ** b", 2, -1),
    ("negative_pow_fraction_is_complex", "a ** b", -8, 0.5),
    ("zero_pow_zero", "a ** b", 0, 0),
    ("int_pow_big", "a ** b", 3, 80),
    ("float_floordiv_zero", "a // b", 1.0, 0.0),
    ("int_mod_zero", "a % b", 5, 0),
    ("int_truediv_zero", "a / b", 1, 0),
    ("str_concat", "a + b", "ab", "cd"),
    ("str_times_int", "a * b", "ab", 3),
    ("int_times_str", "a * b", 2, "xy"),
    ("str_times_negative", "a * b", "ab", -2),
    ("str_mod_tuple", "a % b", "%s-%d", ("q", 7)),
    ("str_mod_dict", "a % b", "%(k)s!", {"k": 5}),
    ("str_plus_int", "a + b", "a", 1),
    ("bytes_concat", "a + b", b"ab", b"\x00"),
    ("bytes_mod", "a % b", b"%d:%s", (3, b"z")),
    ("tuple_concat", "a + b", (1, 2), (3,)),
    ("tuple_times_zero", "a * b", (1, 2), 0),
    ("tuple_plus_list", "a + b", (1,), [2]),
    ("list_concat", "a + b", [1], [2, 3]),
    ("list_times_negative", "a * b", [1, 2], -1),
    ("list_plus_tuple", "a + b", [1], (2,)),
    ("dict_or_override", "a | b", {"k": 1, "j": 2}, {"k": 3, "z": 4}),
    ("dict_or_list", "a | b", {"k": 1}, [("k", 2)]),
    ("set_minus_set", "a - b", {1, 2, 3}, {2}),
    ("set_and_frozenset_is_set", "a & b", {1, 2}, frozenset({2, 3})),
    ("frozenset_or_set_is_frozenset", "a | b", frozenset({1}), {2}),
    ("set_xor", "a ^ b", {1, 2}, {2, 3}),
    ("set_plus_set", "a + b", {1}, {2}),
    ("complex_times_int", "a * b", 1 + 2j, 3),
    ("complex_pow", "a ** b", 1 + 1j, 2),
    ("complex_floordiv", "a // b", 1 + 1j, 2),
    ("none_plus_int", "a + b", None, 1),
    ("int_lshift_negative", "a << b", 1, -1),
    ("int_lshift_big", "a << b", 1, 70),
    ("negative_rshift", "a >> b", -1, 5),
    ("float_pow_overflow", "a ** b", 1e308, 2),
    ("float_plus_int_is_float", "a + b", 1, 2.0),
    ("int_plus_complex", "a + b", 1, 1j),
    ("float_and_int", "a & b", 1.0, 1),
    ("str_matmul", "a @ b", "a", "b"),
]

_BUILTIN_SRC = """
def f(x, a, b):
    try:
        r = {expr}
    except Exception as e:
        r = (type(e).__name__, str(e))
    return (x + 1 if r else x - 1), r
"""

for _n, _expr, _a, _b in _BUILTIN:
    P.add(f"bin_builtin_{_n}", "binary", table_probe(_BUILTIN_SRC.format(expr=_expr), _a, _b))


# --------------------------------------------------------------------------- builtin subclasses

def _subclasses(log):
    class MyInt(int):
        pass

    class LogInt(int):
        def __add__(self, o):
            log.append(("LogInt.__add__", type(o).__name__))
            return LogInt(int(self) + int(o))

        def __radd__(self, o):
            log.append(("LogInt.__radd__", type(o).__name__))
            return LogInt(int(o) + int(self))

    class MyFloat(float):
        def __rmul__(self, o):
            log.append(("MyFloat.__rmul__", type(o).__name__))
            return "rmul"

    class MyStr(str):
        def __add__(self, o):
            log.append(("MyStr.__add__", o))
            return MyStr(str.__add__(self, o) + "!")

    class MyList(list):
        def __radd__(self, o):
            log.append(("MyList.__radd__", len(o)))
            return "radd"

    class MyTuple(tuple):
        pass

    class MyDict(dict):
        pass

    class MySet(set):
        pass

    class MyFrozen(frozenset):
        pass

    class MyBytes(bytes):
        pass

    class MyComplex(complex):
        pass

    return locals()


def _sub_probe(expr, a, b):
    def build():
        log = []
        ns = _subclasses(log)
        A, B = eval(a, {}, ns), eval(b, {}, ns)
        return Case(fn_from(_BUILTIN_SRC.format(expr=expr)), (torch.ones(2), A, B), log)
    return build


_SUB = [
    ("int_sub_plain_result_is_int", "a + b", "MyInt(7)", "3"),
    ("int_sub_plain_right", "a * b", "2", "MyInt(4)"),
    ("int_sub_plain_pair", "a - b", "MyInt(2)", "MyInt(5)"),
    ("int_sub_override_left", "a + b", "LogInt(2)", "3"),
    ("int_sub_override_reflected_first", "a + b", "3", "LogInt(2)"),
    ("int_sub_override_vs_plain_sub", "a + b", "MyInt(1)", "LogInt(2)"),
    ("int_sub_override_bool_left", "a + b", "True", "LogInt(5)"),
    ("float_sub_rmul_first", "a * b", "2.0", "MyFloat(1.5)"),
    ("float_sub_rmul_int_left", "a * b", "3", "MyFloat(1.5)"),
    ("str_sub_override_add", "a + b", "MyStr('a')", "'b'"),
    ("str_sub_reflected_absent", "a + b", "'b'", "MyStr('a')"),
    ("list_sub_radd_first", "a + b", "[1]", "MyList([2])"),
    ("list_sub_plain_add_left", "a + b", "MyList([2])", "[1]"),
    ("tuple_sub_concat_is_tuple", "a + b", "MyTuple((1,))", "(2,)"),
    ("dict_sub_or", "a | b", "MyDict(k=1)", "{'j': 2}"),
    ("dict_or_dict_sub", "a | b", "{'j': 2}", "MyDict(k=1)"),
    ("set_sub_or", "a | b", "MySet({1})", "{2}"),
    ("frozenset_sub_and", "a & b", "MyFrozen({1, 2})", "{2}"),
    ("bytes_sub_concat", "a + b", "MyBytes(b'a')", "b'b'"),
    ("complex_sub_mul", "a * b", "MyComplex(1, 1)", "2"),
]

for _n, _expr, _a, _b in _SUB:
    P.add(f"bin_subclass_{_n}", "binary", _sub_probe(_expr, _a, _b))


# --------------------------------------------------------------------------- enums

_ENUM = [
    ("intenum_plus_int", "a + b", "N.ONE", "1"),
    ("intenum_times_str", "a * b", "N.TWO", "'ab'"),
    ("intenum_plus_intenum", "a + b", "N.ONE", "N.TWO"),
    ("flag_or", "a | b", "Fl.R", "Fl.W"),
    ("flag_and_disjoint", "a & b", "Fl.R", "Fl.W"),
    ("flag_xor", "a ^ b", "Fl.R | Fl.W", "Fl.W"),
    ("flag_or_int", "a | b", "Fl.R", "2"),
    ("intflag_or_int", "a | b", "IF.R", "8"),
    ("int_or_intflag", "a | b", "8", "IF.W"),
    ("intflag_plus_int", "a + b", "IF.R", "1"),
    ("strenum_plus_str", "a + b", "S.A", "'b'"),
    ("str_plus_strenum", "a + b", "'z'", "S.B"),
    ("str_mixin_plus_str", "a + b", "Action.A", "'x'"),
    ("str_mixin_mod", "a % b", "Action.A", "()"),
    ("plain_enum_plus_int", "a + b", "Color.RED", "1"),
    ("plain_enum_value_plus_int", "a.value + b", "Color.RED", "1"),
    ("int_mixin_plus_int", "a + b", "IM.ONE", "1"),
    ("int_mixin_lshift", "a << b", "IM.TWO", "3"),
    ("auto_value_plus", "a.value + b", "Auto.SECOND", "10"),
    ("alias_value_times", "a.value * b", "Auto.ALIAS", "7"),
]


def _enum_probe(expr, a, b):
    def build():
        ns = vars(enums())
        A, B = eval(a, {}, ns), eval(b, {}, ns)
        return Case(fn_from(_BUILTIN_SRC.format(expr=expr)), (torch.ones(2), A, B))
    return build


for _n, _expr, _a, _b in _ENUM:
    P.add(f"bin_enum_{_n}", "binary", _enum_probe(_expr, _a, _b))


# --------------------------------------------------------------------------- special cases

@P("binary")
def bin_str_mod_prefers_str_over_rmod():
    # str % o: str's own formatting wins (o is no str subclass); it calls o.__str__, not __rmod__.
    log = []

    class O:
        def __rmod__(self, other):
            log.append("rmod")
            return "rmod"

        def __str__(self):
            log.append("str")
            return "O!"

    def f(x, o):
        r = "<%s>" % o
        return (x + 1 if r == "<O!>" else x - 1), r
    return Case(f, (torch.ones(2), O()), log)


@P("binary")
def bin_list_times_index():
    log = []

    class I:
        def __index__(self):
            log.append("index")
            return 2

    def f(x, i):
        r = [1, 2] * i
        return x * len(r), r
    return Case(f, (torch.ones(2), I()), log)


@P("binary")
def bin_list_times_rmul_before_index():
    log = []

    class I:
        def __index__(self):
            log.append("index")
            return 2

        def __rmul__(self, other):
            log.append(("rmul", len(other)))
            return "rmul"

    def f(x, i):
        r = [1, 2] * i
        return (x + 1 if r == "rmul" else x - 1), r
    return Case(f, (torch.ones(2), I()), log)


@P("binary")
def bin_index_times_list_after_mul_ni():
    log = []

    class I:
        def __index__(self):
            log.append("index")
            return 3

        def __mul__(self, other):
            log.append("mul")
            return NotImplemented

    def f(x, i):
        r = i * ["a"]
        return x * len(r), r
    return Case(f, (torch.ones(2), I()), log)


@P("binary")
def bin_dunder_raises_propagates():
    log = []
    A = klass(log, "A", {"__add__": "raise"})

    def f(x, a):
        y = x * 2
        return y + (a + 1)
    return Case(f, (torch.ones(2), A()), log)


@P("binary")
def bin_dunder_raises_caught():
    log = []
    A = klass(log, "A", {"__mul__": "raise"})

    def f(x, a):
        try:
            r = a * 2
        except ValueError as e:
            r = "caught " + str(e)
        return x + 1, r
    return Case(f, (torch.ones(2), A()), log)


@P("binary")
def bin_reflected_raises_after_ni():
    log = []
    A = klass(log, "A", {"__sub__": "ni"})
    B = klass(log, "B", {"__rsub__": "raise"})

    def f(x, a, b):
        try:
            return x, a - b
        except ValueError as e:
            return x - 1, str(e)
    return Case(f, (torch.ones(2), A(), B()), log)


@P("binary")
def bin_dunder_mutates_self_and_other():
    log = []

    class Acc:
        def __init__(self):
            self.total = 0

        def __add__(self, other):
            self.total += other.total + 1
            other.total -= 1
            log.append(("add", self.total, other.total))
            return self.total

    def f(x, a, b):
        r = a + b
        r2 = b + a
        return x * r, r2
    return Case(f, (torch.ones(2), Acc(), Acc()), log)


@P("binary")
def bin_dunder_returns_tensor():
    log = []

    class Scale:
        def __init__(self, k):
            self.k = k

        def __mul__(self, other):
            log.append(("mul", type(other).__name__))
            return other * self.k

        __rmul__ = __mul__

    def f(x, s):
        return s * x, x * s
    return Case(f, (torch.ones(2), Scale(3)), log)


@P("binary")
def bin_user_left_tensor_right_ni():
    log = []
    A = klass(log, "A", {"__add__": "ni"})

    def f(x, a):
        try:
            r = a + x
        except TypeError as e:
            r = str(e)
        return x + 1, r
    return Case(f, (torch.ones(2), A()), log)


@P("binary")
def bin_tensor_plus_int_subclass():
    class MyInt(int):
        pass

    def f(x, i):
        return x + i, x * i
    return Case(f, (torch.ones(2), MyInt(3)))


@P("binary")
def bin_tensor_times_intenum():
    e = enums()

    def f(x, n):
        return x * n, n * x
    return Case(f, (torch.ones(2), e.N.TWO), args2=(torch.ones(2), e.N.ONE))


@P("binary")
def bin_tensor_plus_bool():
    def f(x, b):
        return x + b, b - x
    return Case(f, (torch.ones(2, dtype=torch.int64), True), args2=(torch.ones(2, dtype=torch.int64), False))


@P("binary")
def bin_tensor_matmul_rmatmul_user():
    log = []

    class M:
        def __rmatmul__(self, other):
            log.append(("rmatmul", tuple(other.shape)))
            return other.sum()

    def f(x, m):
        return x @ m
    return Case(f, (torch.ones(2, 3), M()), log)


@P("binary")
def bin_pow_reflected_from_float():
    log = []
    B = klass(log, "B", {"__rpow__": "tag"})

    def f(x, b):
        r = 2.5 ** b
        return (x + 1 if r == "B.__rpow__" else x - 1), r
    return Case(f, (torch.ones(2), B()), log)


@P("binary")
def bin_reflected_on_metaclass_attr_not_used():
    # __radd__ found on the metaclass is not a method of the instance's type.
    log = []

    class Meta(type):
        def __radd__(cls, other):
            log.append("meta radd")
            return "meta"

    class K(metaclass=Meta):
        pass

    def f(x, k):
        try:
            r = 1 + k
        except TypeError as e:
            r = str(e)
        return x + 1, r
    return Case(f, (torch.ones(2), K()), log)


@P("binary")
def bin_class_operand_uses_metaclass_dunder():
    log = []

    class Meta(type):
        def __or__(cls, other):
            log.append(("meta or", other))
            return "meta|" + str(other)

    class K(metaclass=Meta):
        pass

    def f(x, k):
        r = k | 5
        return (x + 1 if r == "meta|5" else x - 1), r
    return Case(f, (torch.ones(2), K), log)


@P("binary")
def bin_instance_dict_dunder_ignored():
    # Operators look dunders up on the type, never in the instance __dict__.
    log = []

    class A:
        pass
    a = A()
    a.__add__ = lambda other: log.append("instance add") or "inst"

    def f(x, a):
        try:
            r = a + 1
        except TypeError as e:
            r = str(e)
        return x + 1, r
    return Case(f, (torch.ones(2), a), log)


@P("binary")
def bin_dunder_is_none_typeerror():
    class A:
        __add__ = None

    def f(x, a):
        try:
            r = a + 1
        except TypeError as e:
            r = str(e)
        return x + 1, r
    return Case(f, (torch.ones(2), A()))


@P("binary")
def bin_dunder_via_getattr_not_used():
    log = []

    class A:
        def __getattr__(self, name):
            log.append(("getattr", name))
            return lambda *a: "dyn"

    def f(x, a):
        try:
            r = a + 1
        except TypeError as e:
            r = str(e)
        return x + 1, r
    return Case(f, (torch.ones(2), A()), log)


@P("binary")
def bin_dataclass_no_add():
    import dataclasses

    @dataclasses.dataclass
    class D:
        v: int

    def f(x, d):
        try:
            r = d + d
        except TypeError as e:
            r = str(e)
        return x + d.v, r
    return Case(f, (torch.ones(2), D(2)))


@P("binary")
def bin_namedtuple_concat_is_tuple():
    import collections
    Pt = collections.namedtuple("Pt", "a b")

    def f(x, p):
        r = p + (3,)
        return x * r[2], r
    return Case(f, (torch.ones(2), Pt(1, 2)))


@P("binary")
def bin_namedtuple_times_int():
    import typing

    class Pair(typing.NamedTuple):
        a: int
        b: int

    def f(x, p):
        r = p * 2
        return x * len(r), r
    return Case(f, (torch.ones(2), Pair(1, 2)))


@P("binary")
def bin_add_returns_notimplemented_constant():
    # A dunder that returns NotImplemented from a helper still means "try the other side".
    log = []

    def nope(self, other):
        log.append("helper")
        return NotImplemented

    class A:
        __add__ = nope

    class B:
        def __radd__(self, other):
            log.append("B radd")
            return 42

    def f(x, a, b):
        r = a + b
        return x + r, r
    return Case(f, (torch.ones(2), A(), B()), log)


@pytest.mark.parametrize("name", P.params())
def test_binary(name):
    run_probe(name)
