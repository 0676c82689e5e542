"""Data-model red-team probes: in-place operators (__iop__, fallback to __op__/__rop__, mutable
and immutable builtins, attribute/subscript targets) and unary operators (-x, +x, ~x, abs)."""
import collections
import operator

import pytest
import torch

from datamodel_harness import OPS, Case, Probes, enums, fn_from, klass, run_probe, table_probe

P = Probes()

# --------------------------------------------------------------------------- per-operator table


def _v_mutates_self(op, name):
    log = []
    A = klass(log, "A", {f"__i{name}__": "self", f"__{name}__": "tag"})
    f = fn_from(f"def f(x, a):\n    orig = a\n    a {op}= 3\n    return x + a.n, a is orig, orig.n")
    return Case(f, (torch.ones(2), A()), log)


def _v_ni_falls_back(op, name):
    log = []
    A = klass(log, "A", {f"__i{name}__": "ni", f"__{name}__": "tag"})
    f = fn_from(f"def f(x, a):\n    a {op}= 3\n    return (x + 1 if a == {f'A.__{name}__'!r} else x - 1), a")
    return Case(f, (torch.ones(2), A()), log)


def _v_all_ni(op, name):
    log = []
    A = klass(log, "A", {f"__i{name}__": "ni", f"__{name}__": "ni"})
    B = klass(log, "B", {f"__r{name}__": "ni"})
    f = fn_from(f"def f(x, a, b):\n    try:\n        a {op}= b\n    except TypeError as e:\n"
                f"        return x - 1, str(e)\n    return x + 1, a")
    return Case(f, (torch.ones(2), A(), B()), log)


VARIANTS = [("mutates_self", _v_mutates_self), ("ni_falls_back_to_op", _v_ni_falls_back),
            ("all_ni_typeerror", _v_all_ni)]

for _op, _name in OPS:
    for _suffix, _variant in VARIANTS:
        P.add(f"inplace_{_name}_{_suffix}", "inplace",
              (lambda v, o, n: lambda: v(o, n))(_variant, _op, _name))


# --------------------------------------------------------------------------- builtins and specials

_IP_SRC = """
def f(x, a, b):
    alias = a
    try:
        a {op}= b
    except Exception as e:
        return x - 1, (type(e).__name__, str(e)), alias
    return x + 1, a, a is alias
"""

_IP_BUILTIN = [
    ("list_iadd_tuple_mutates_arg", "+", [1], (2, 3)),
    ("list_imul_mutates_arg", "*", [1, 2], 2),
    ("list_iadd_int_typeerror", "+", [1], 5),
    ("list_iadd_str_extends_chars", "+", ["a"], "bc"),
    ("tuple_iadd_rebinds", "+", (1,), (2,)),
    ("str_iadd", "+", "ab", "c"),
    ("bytes_iadd", "+", b"a", b"b"),
    ("int_iadd_bool", "+", 3, True),
    ("float_ifloordiv", "//", 7.5, 2),
    ("complex_ipow", "**", 1j, 2),
    ("set_ior_mutates_arg", "|", {1}, {2}),
    ("set_iand_mutates_arg", "&", {1, 2}, {2, 3}),
    ("set_isub_mutates_arg", "-", {1, 2}, {2}),
    ("set_ixor_mutates_arg", "^", {1, 2}, {2, 3}),
    ("set_ior_list_typeerror", "|", {1}, [2]),
    ("frozenset_ior_rebinds", "|", frozenset({1}), {2}),
    ("dict_ior_dict_mutates_arg", "|", {"a": 1}, {"a": 2, "b": 3}),
    ("dict_ior_pairs_mutates_arg", "|", {"a": 1}, [("b", 2)]),
    ("int_ilshift", "<<", 3, 4),
    ("none_iadd_typeerror", "+", None, 1),
]

for _n, _op, _a, _b in _IP_BUILTIN:
    P.add(f"inplace_builtin_{_n}", "inplace", table_probe(_IP_SRC.format(op=_op), _a, _b))


@P("inplace")
def inplace_missing_iop_then_rop():
    log = []
    A = klass(log, "A")
    B = klass(log, "B", {"__radd__": "tag"})

    def f(x, a, b):
        a += b
        return (x + 1 if a == "B.__radd__" else x - 1), a
    return Case(f, (torch.ones(2), A(), B()), log)


@P("inplace")
def inplace_same_class_iadd_ni_no_reflection():
    log = []
    A = klass(log, "A", {"__iadd__": "ni", "__add__": "ni", "__radd__": "tag"})

    def f(x, a, b):
        try:
            a += b
        except TypeError as e:
            return x - 1, str(e)
        return x + 1, a
    return Case(f, (torch.ones(2), A(), A()), log)


@P("inplace")
def inplace_subclass_rop_before_iop_fallback():
    # __iadd__ runs first; only after it returns NotImplemented does the subclass' __radd__ win.
    log = []
    A = klass(log, "A", {"__iadd__": "ni", "__add__": "tag", "__radd__": "tag"})
    S = klass(log, "S", {"__radd__": "tag"}, bases=(A,))

    def f(x, a, s):
        a += s
        return x + 1, a
    return Case(f, (torch.ones(2), A(), S()), log)


@P("inplace")
def inplace_iop_returns_other_object():
    log = []

    class A:
        def __iadd__(self, other):
            log.append("iadd")
            return [other]

    def f(x, a):
        b = a
        a += 5
        return x + 1, a, a is b
    return Case(f, (torch.ones(2), A()), log)


@P("inplace")
def inplace_iop_returns_none():
    class A:
        def __imul__(self, other):
            self.v = other

    def f(x, a):
        a *= 3
        return x + 1, a
    return Case(f, (torch.ones(2), A()))


@P("inplace")
def inplace_iop_raises():
    log = []
    A = klass(log, "A", {"__isub__": "raise", "__sub__": "tag"})

    def f(x, a):
        try:
            a -= 1
        except ValueError as e:
            return x - 1, str(e)
        return x + 1, a
    return Case(f, (torch.ones(2), A()), log)


@P("inplace")
def inplace_list_subclass_keeps_type_and_identity():
    class MyList(list):
        pass

    def f(x, a):
        b = a
        a += [x.shape[0]]
        return x + 1, a, a is b
    return Case(f, (torch.ones(2), MyList([1])))


@P("inplace")
def inplace_list_subclass_iadd_override():
    log = []

    class MyList(list):
        def __iadd__(self, other):
            log.append(("iadd", list(other)))
            self.append("marker")
            return self

    def f(x, a):
        a += [1, 2]
        return x + len(a), a
    return Case(f, (torch.ones(2), MyList()), log)


@P("inplace")
def inplace_int_subclass_falls_back_to_int_add():
    class MyInt(int):
        pass

    def f(x, a):
        a += 1
        return x + a, a
    return Case(f, (torch.ones(2), MyInt(4)))


@P("inplace")
def inplace_property_target_get_then_set():
    log = []

    class O:
        def __init__(self):
            self._v = 1

        @property
        def v(self):
            log.append(("get", self._v))
            return self._v

        @v.setter
        def v(self, value):
            log.append(("set", value))
            self._v = value

    def f(x, o):
        o.v += 10
        return x * o.v
    return Case(f, (torch.ones(2), O()), log)


@P("inplace")
def inplace_subscript_target_getitem_then_setitem():
    log = []

    class Box:
        def __init__(self):
            self.d = {"k": 2}

        def __getitem__(self, k):
            log.append(("getitem", k))
            return self.d[k]

        def __setitem__(self, k, v):
            log.append(("setitem", k, v))
            self.d[k] = v

    def f(x, b):
        b["k"] *= 5
        return x * b["k"]
    return Case(f, (torch.ones(2), Box()), log)


@P("inplace")
def inplace_list_attr_through_setattr_override():
    log = []

    class O:
        def __init__(self):
            object.__setattr__(self, "items", [1])

        def __setattr__(self, name, value):
            log.append(("setattr", name, len(value)))
            object.__setattr__(self, name, value)

    def f(x, o):
        o.items += [2]
        return x * len(o.items), o.items
    return Case(f, (torch.ones(2), O()), log)


@P("inplace")
def inplace_class_attr_via_instance_creates_instance_attr():
    class K:
        count = 10

    def f(x, k):
        k.count += 1
        return x + k.count
    return Case(f, (torch.ones(2), K()), state=lambda: K.count)


@P("inplace")
def inplace_class_attr_on_class():
    class K:
        count = 10

    def f(x, k):
        type(k).count += 1
        return x + k.count
    return Case(f, (torch.ones(2), K()), state=lambda: K.count)


@P("inplace")
def inplace_tensor_iadd_user_radd_rebinds():
    log = []
    R = klass(log, "R", {"__radd__": "tag"})

    def f(x, r):
        y = x
        x += r
        return y * 2, x
    return Case(f, (torch.ones(2), R()), log)


@P("inplace")
def inplace_user_iadd_stores_tensor():
    class Acc:
        def __init__(self):
            self.parts = []

        def __iadd__(self, t):
            self.parts.append(t * 2)
            return self

    def f(x, acc):
        acc += x
        acc += x + 1
        return sum(acc.parts)
    return Case(f, (torch.ones(2), Acc()))


@P("inplace")
def inplace_tuple_of_tensors_iadd():
    def f(x, t):
        alias = t
        t += (x * 2,)
        return t, alias is t
    return Case(f, (torch.ones(2), (torch.zeros(2),)))


@P("inplace")
def inplace_flag_ior():
    e = enums()

    def f(x, fl):
        fl |= e.Fl.W
        return x + fl.value, fl
    return Case(f, (torch.ones(2), e.Fl.R))


@P("inplace")
def inplace_intenum_iadd_is_int():
    e = enums()

    def f(x, n):
        n += 1
        return x * n, n
    return Case(f, (torch.ones(2), e.N.ONE))


@P("inplace")
def inplace_operator_iadd_function_path():
    log = []
    A = klass(log, "A", {"__iadd__": "ni", "__add__": "ni"})
    B = klass(log, "B", {"__radd__": "tag"})

    def f(x, a, b):
        r = operator.iadd(a, b)
        return (x + 1 if r == "B.__radd__" else x - 1), r
    return Case(f, (torch.ones(2), A(), B()), log)


@P("inplace")
def inplace_deque_iadd():
    def f(x, d):
        d += [x.shape[0]]
        return x + len(d), d
    return Case(f, (torch.ones(2), collections.deque([1])))


# --------------------------------------------------------------------------- unary

_UNARY = [("-", "__neg__"), ("+", "__pos__"), ("~", "__invert__"), ("abs", "__abs__")]


def _apply(op, v):
    return f"abs({v})" if op == "abs" else f"{op}{v}"


def _unary_user(op, dunder):
    def build():
        log = []
        A = klass(log, "A", {dunder: "tag"}, unary=(dunder,))
        f = fn_from(f"def f(x, a):\n    r = {_apply(op, 'a')}\n"
                    f"    return (x + 1 if r == {f'A.{dunder}'!r} else x - 1), r")
        return Case(f, (torch.ones(2), A()), log)
    return build


def _unary_missing(op, dunder):
    def build():
        A = klass([], "A", {})
        f = fn_from(f"def f(x, a):\n    try:\n        r = {_apply(op, 'a')}\n    except TypeError as e:\n"
                    f"        r = str(e)\n    return x + 1, r")
        return Case(f, (torch.ones(2), A()))
    return build


def _unary_raises(op, dunder):
    def build():
        log = []
        A = klass(log, "A", {dunder: "raise"}, unary=(dunder,))
        f = fn_from(f"def f(x, a):\n    try:\n        r = {_apply(op, 'a')}\n    except ValueError as e:\n"
                    f"        r = 'caught ' + str(e)\n    return x + 1, r")
        return Case(f, (torch.ones(2), A()), log)
    return build


for _op, _d in _UNARY:
    _n = _d.strip("_")
    P.add(f"unary_{_n}_user", "unary", _unary_user(_op, _d))
    P.add(f"unary_{_n}_missing_typeerror", "unary", _unary_missing(_op, _d))
    P.add(f"unary_{_n}_raises", "unary", _unary_raises(_op, _d))

_UNARY_VALUES = [
    ("neg_true_is_int", "-a", True),
    ("invert_true", "~a", True),
    ("pos_true_is_int", "+a", True),
    ("abs_negative_zero", "abs(a)", -0.0),
    ("neg_zero_float", "-a", 0.0),
    ("neg_big_int", "-a", 2 ** 70),
    ("abs_complex", "abs(a)", 3 - 4j),
    ("invert_float_typeerror", "~a", 1.5),
    ("neg_str_typeerror", "-a", "s"),
    ("neg_none_typeerror", "-a", None),
    ("abs_list_typeerror", "abs(a)", [1]),
]

_UNARY_SRC = """
def f(x, a):
    try:
        r = {expr}
    except TypeError as e:
        r = str(e)
    return (x + 1 if r else x - 1), r
"""

for _n, _expr, _a in _UNARY_VALUES:
    P.add(f"unary_builtin_{_n}", "unary", table_probe(_UNARY_SRC.format(expr=_expr), _a))

_UNARY_ENUM = [
    ("neg_intenum_is_int", "-a", "N.ONE"),
    ("pos_intenum_is_int", "+a", "N.TWO"),
    ("invert_intflag", "~a", "IF.R"),
    ("invert_flag", "~a", "Fl.R"),
    ("abs_int_mixin", "abs(a)", "IM.ONE"),
    ("neg_plain_enum_typeerror", "-a", "Color.RED"),
    ("neg_plain_enum_value", "-a.value", "Color.GREEN"),
]

for _n, _expr, _a in _UNARY_ENUM:
    P.add(f"unary_enum_{_n}", "unary",
          (lambda e, a: lambda: Case(fn_from(_UNARY_SRC.format(expr=e)), (torch.ones(2), eval(a, {}, vars(enums())))))(
              _expr, _a))


@P("unary")
def unary_int_subclass_plain_is_int():
    class MyInt(int):
        pass

    def f(x, a):
        r = -a
        return x * r, r
    return Case(f, (torch.ones(2), MyInt(3)))


@P("unary")
def unary_int_subclass_override():
    log = []

    class MyInt(int):
        def __neg__(self):
            log.append("neg")
            return MyInt(int(self) * -10)

    def f(x, a):
        r = -a
        return x * r, r
    return Case(f, (torch.ones(2), MyInt(3)), log)


@P("unary")
def unary_neg_returns_tensor():
    class Wrap:
        def __init__(self, t):
            self.t = t

        def __neg__(self):
            return self.t * -1

    def f(x, w):
        return -w + x
    return Case(f, (torch.ones(2), Wrap(torch.arange(2.0))))


@P("unary")
def unary_pos_returns_self_identity():
    class A:
        def __pos__(self):
            return self

    def f(x, a):
        return x + 1, (+a) is a
    return Case(f, (torch.ones(2), A()))


@P("unary")
def unary_instance_dict_dunder_ignored():
    class A:
        pass
    a = A()
    a.__neg__ = lambda: "inst"

    def f(x, a):
        try:
            r = -a
        except TypeError as e:
            r = str(e)
        return x + 1, r
    return Case(f, (torch.ones(2), a))


@P("unary")
def unary_operator_neg_function_path():
    log = []
    A = klass(log, "A", {"__neg__": "tag"}, unary=("__neg__",))

    def f(x, a):
        r = operator.neg(a)
        return (x + 1 if r == "A.__neg__" else x - 1), r
    return Case(f, (torch.ones(2), A()), log)


@P("unary")
def unary_abs_via_getattr_not_used():
    log = []

    class A:
        def __getattr__(self, name):
            log.append(name)
            return lambda: 5

    def f(x, a):
        try:
            r = abs(a)
        except TypeError as e:
            r = str(e)
        return x + 1, r
    return Case(f, (torch.ones(2), A()), log)


@pytest.mark.parametrize("name", P.params())
def test_inplace_unary(name):
    run_probe(name)
