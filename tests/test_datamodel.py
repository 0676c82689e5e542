"""The data-model cases that once gave silently wrong results, and the protocol rules behind them.

Each function compares the compiled result with eager's and asserts one graph with fullgraph=True
(the operator is resolved at trace time, in CPython's order, and guarded).
"""
import enum

import pytest
import torch

from differential import check, compile_fn, graph_count, reset


class Action(str, enum.Enum):
    A = "a"
    B = "b"


class N(enum.IntEnum):
    ONE = 1
    TWO = 2


class AlwaysEq:
    def __eq__(self, other):
        return True


def f_str_enum_eq(x, a):
    return x + 1 if "a" == a else x - 1


def g_user_eq_reflected(x, o):
    return x + 1 if 3 == o else x - 1


def h_int_enum_eq(x, n):
    return x + 1 if 1 == n else x - 1


def i_str_enum_in_tuple(x, a):
    return x + 1 if a in ("a", "b") else x - 1


def j_str_enum_ne(x, a):
    return x + 1 if a != "a" else x - 1


def k_int_enum_arith(x, n):
    return x * (n + 1) if n >= 2 else x


WHY = [(f_str_enum_eq, Action.A), (g_user_eq_reflected, AlwaysEq()), (h_int_enum_eq, N.ONE),
       (i_str_enum_in_tuple, Action.A), (j_str_enum_ne, Action.A), (k_int_enum_arith, N.TWO)]


@pytest.mark.parametrize("fn,arg", WHY, ids=[w[0].__name__ for w in WHY])
def test_why(fn, arg):
    check(fn, torch.randn(3), arg, graphs=1)


@pytest.mark.parametrize("fn,args", [(f_str_enum_eq, (Action.A, Action.B)), (h_int_enum_eq, (N.ONE, N.TWO)),
                                     (j_str_enum_ne, (Action.A, "a", "b"))])
def test_enum_argument_changes_recompile(fn, args):
    x = torch.randn(3)
    reset()
    c = compile_fn(fn, backend="eager")
    for a in args * 2:
        assert torch.equal(c(x, a), fn(x, a))
    assert graph_count() == len(args)


def test_reflected_subclass_goes_first():
    log = []

    class Base:
        def __add__(self, other):
            log.append("Base.__add__")
            return NotImplemented

        def __radd__(self, other):
            log.append("Base.__radd__")
            return 1

    class Sub(Base):
        def __radd__(self, other):
            log.append("Sub.__radd__")
            return 2

    def fn(x):
        return x * (Base() + Sub())

    eager = fn(torch.ones(2))
    elog, log[:] = list(log), []
    check(fn, torch.ones(2))
    assert eager.tolist() == [2.0, 2.0] and elog == ["Sub.__radd__"] and log == elog * 2  # eager + compiled


def test_ne_derived_from_eq_and_identity_fallback():
    class E:
        def __init__(self, v):
            self.v = v

        def __eq__(self, other):
            return isinstance(other, E) and other.v == self.v

    class Plain:
        pass

    p = Plain()

    def fn(x):
        a, b, c = E(1), E(1), E(2)
        return x + (a != b) + 2 * (a != c) + 4 * (p == p) + 8 * (Plain() == p)

    check(fn, torch.zeros(2))


def test_not_implemented_both_sides_raises():
    class A:
        def __lt__(self, other):
            return NotImplemented

    def fn(x):
        try:
            A() < A()
        except TypeError:
            return x - 1
        return x + 1

    check(fn, torch.zeros(2))


def test_truth_bool_then_len():
    class L:
        def __len__(self):
            return 0

    class B:
        def __bool__(self):
            return False

        def __len__(self):
            return 3

    def fn(x):
        return x + (1 if L() else 2) + (10 if B() else 20) + (100 if object() else 200)

    check(fn, torch.zeros(2))


def test_membership_contains_iter_order():
    class C:
        def __contains__(self, item):
            return item == 3

    class It:
        def __iter__(self):
            return iter([AlwaysEq()])

    def fn(x):
        return x + (3 in C()) + 2 * (5 in It()) + 4 * (Action.B in ["b"]) + 8 * (N.TWO in {2: "x"})

    check(fn, torch.zeros(2))


def test_enum_members_attributes_and_flags():
    class Perm(enum.IntFlag):
        R = 4
        W = 2

    class Color(enum.Enum):
        RED = 1

        @property
        def double(self):
            return self.value * 2

    def fn(x, p):
        rw = Perm.R | p
        return x * rw.value + Color.RED.double + (Perm.W in rw) + len(Color.RED.name)

    check(fn, torch.zeros(2), Perm.W)


def test_str_subclass_value_guarded():
    class S(str):
        pass

    def fn(x, s):
        return x + 1 if s == "a" else x - 1

    x = torch.zeros(2)
    reset()
    c = compile_fn(fn, backend="eager", fullgraph=True)
    for s in (S("a"), S("b"), S("a")):
        assert torch.equal(c(x, s), fn(x, s))
    assert graph_count() == 2
