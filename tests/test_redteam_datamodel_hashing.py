"""Data-model red-team probes: hashing (user __hash__ results and their normalisation, __hash__ =
None and implicit None from __eq__, dataclasses/namedtuples, dict/set keys that are enums, numbers
of equal value, builtin subclasses, tensors)."""
import dataclasses
import typing

import pytest
import torch

from datamodel_harness import Case, Probes, caught, enums, klass, run_probe

P = Probes()




def _hash_case(log, obj):
    def f(x, o):
        try:
            h = hash(o)
        except TypeError as e:
            return x - 1, str(e)
        return x + 1, h
    return Case(f, (torch.ones(2), obj), log)


@P("hashing")
def hash_user_hash_called():
    log = []
    A = klass(log, "A", {"__hash__": lambda s, _: 12345}, unary=("__hash__",))
    return _hash_case(log, A())


@P("hashing")
def hash_minus_one_becomes_minus_two():
    A = klass([], "A", {"__hash__": lambda s, _: -1}, unary=("__hash__",))
    return _hash_case(None, A())


@P("hashing")
def hash_huge_int_reduced():
    A = klass([], "A", {"__hash__": lambda s, _: 2 ** 64 + 5}, unary=("__hash__",))
    return _hash_case(None, A())


@P("hashing")
def hash_bool_result_is_int():
    A = klass([], "A", {"__hash__": lambda s, _: True}, unary=("__hash__",))
    return _hash_case(None, A())


@P("hashing")
def hash_non_int_typeerror():
    A = klass([], "A", {"__hash__": lambda s, _: "h"}, unary=("__hash__",))
    return _hash_case(None, A())


@P("hashing")
def hash_int_subclass_result():
    class MyInt(int):
        pass
    A = klass([], "A", {"__hash__": lambda s, _: MyInt(77)}, unary=("__hash__",))
    return _hash_case(None, A())


@P("hashing")
def hash_none_typeerror():
    return _hash_case(None, klass([], "A", __hash__=None)())


@P("hashing")
def hash_eq_without_hash_is_unhashable():
    return _hash_case(None, klass([], "A", __eq__=lambda s, o: True)())


@P("hashing")
def hash_subclass_of_eq_class_restores_hash():
    A = klass([], "A", __eq__=lambda s, o: True)
    B = klass([], "B", bases=(A,), __hash__=lambda s: 99)
    return _hash_case(None, B())


@P("hashing")
def hash_subclass_defining_eq_loses_inherited_hash():
    A = klass([], "A", __hash__=lambda s: 5)
    B = klass([], "B", bases=(A,), __eq__=lambda s, o: False)
    return _hash_case(None, B())


@P("hashing")
def hash_raises():
    log = []
    A = klass(log, "A", {"__hash__": "raise"}, unary=("__hash__",))

    def f(x, a):
        try:
            return x + 1, {a: 1}
        except ValueError as e:
            return x - 1, str(e)
    return Case(f, (torch.ones(2), A()), log)


@P("hashing")
def hash_unhashable_as_dict_key_and_set_item():
    A = klass([], "A", __hash__=None)

    def f(x, a):
        r = (caught(lambda: {a: 1}, TypeError), caught(lambda: {a}, TypeError),
             caught(lambda: {}[a], TypeError, KeyError))
        return x + 1, r
    return Case(f, (torch.ones(2), A()))


@P("hashing")
def hash_tuple_containing_list():
    def f(x, t):
        r = (caught(lambda: hash(t), TypeError), caught(lambda: {t: 1}, TypeError),
             hash((1, (2, 3))) == hash((1, (2, 3))))
        return x + 1, r
    return Case(f, (torch.ones(2), (1, [2])))


@P("hashing")
def hash_frozenset_vs_set():
    def f(x, s):
        r = (caught(lambda: hash(frozenset(s)) == hash(frozenset(sorted(s))), TypeError),
             caught(lambda: hash(s), TypeError))
        return x + 1, r
    return Case(f, (torch.ones(2), {3, 1, 2}))


@P("hashing")
def hash_dataclass_eq_is_unhashable():
    @dataclasses.dataclass
    class D:
        a: int

    return _hash_case(None, D(1))


@P("hashing")
def hash_frozen_dataclass_hash_of_fields():
    @dataclasses.dataclass(frozen=True)
    class D:
        a: int
        b: str

    def f(x, d):
        r = (hash(d) == hash((1, "q")), {d: 1}[D(1, "q")])
        return x + 1, r
    return Case(f, (torch.ones(2), D(1, "q")))


@P("hashing")
def hash_dataclass_unsafe_hash():
    @dataclasses.dataclass(unsafe_hash=True)
    class D:
        a: int

    def f(x, d):
        s = {d}
        d.a = 2
        r = (d in s, D(1) in s, D(2) in s)
        return x + 1, r
    return Case(f, (torch.ones(2), D(1)))


@P("hashing")
def hash_namedtuple_equals_tuple_hash():
    class Pt(typing.NamedTuple):
        a: int
        b: int

    def f(x, p):
        d = {(1, 2): "tuple"}
        r = (hash(p) == hash((1, 2)), d[p], {p: "nt"}[(1, 2)])
        return x + 1, r
    return Case(f, (torch.ones(2), Pt(1, 2)))


@P("hashing")
def hash_numbers_equal_value_collapse_dict():
    def f(x, a, b, c):
        d = {a: "int", b: "bool", c: "float"}
        return x * len(d), d
    return Case(f, (torch.ones(2), 1, True, 1.0))


@P("hashing")
def hash_numbers_equal_value_collapse_set():
    def f(x, a, b, c):
        s1 = {a, b, c}
        s2 = {b, a}
        return x * len(s1), (s1, s2, [type(v).__name__ for v in s1], [type(v).__name__ for v in s2])
    return Case(f, (torch.ones(2), 1, True, 1.0))


@P("hashing")
def hash_dict_key_keeps_first_object():
    class MyInt(int):
        pass

    def f(x, m):
        d = {}
        d[m] = "sub"
        d[1] = "int"
        return x + 1, d, [type(k).__name__ for k in d]
    return Case(f, (torch.ones(2), MyInt(1)))


@P("hashing")
def hash_intenum_and_int_same_key():
    e = enums()

    def f(x, n):
        d = {n: "enum", 1: "int"}
        d2 = {1: "int", n: "enum"}
        return x * len(d), d, d2
    return Case(f, (torch.ones(2), e.N.ONE))


@P("hashing")
def hash_str_mixin_and_str_same_key():
    e = enums()

    def f(x, a):
        d = {a: 1, "a": 2}
        return x + 1, d, d["a"]
    return Case(f, (torch.ones(2), e.Action.A))


@P("hashing")
def hash_strenum_key_lookup_by_str():
    e = enums()

    def f(x, d):
        return x + d["b"], list(d)
    return Case(f, (torch.ones(2), {e.S.B: 5, e.S.A: 1}))


@P("hashing")
def hash_plain_enum_and_value_distinct_keys():
    e = enums()

    def f(x, c):
        d = {c: "member", 1: "value"}
        return x * len(d), d, (hash(c) == hash(c.name))
    return Case(f, (torch.ones(2), e.Color.RED))


@P("hashing")
def hash_enum_key_lookup_guarded():
    e = enums()
    table = {e.Color.RED: 1.0, e.Color.GREEN: 2.0}

    def f(x, c):
        return x * table[c]
    return Case(f, (torch.ones(2), e.Color.RED), args2=(torch.ones(2), e.Color.GREEN))


@P("hashing")
def hash_flag_composite_key():
    e = enums()

    def f(x, fl):
        d = {e.Fl.R | e.Fl.W: "rw"}
        return x + 1, d.get(fl, "missing"), d.get(e.Fl.W | e.Fl.R, "missing")
    return Case(f, (torch.ones(2), e.Fl.R), args2=(torch.ones(2), e.Fl.R | e.Fl.W))


@P("hashing")
def hash_str_subclass_key_with_eq_override():
    log = []

    class MyStr(str):
        __hash__ = str.__hash__

        def __eq__(self, other):
            log.append(("eq", str(self), other))
            return str.__eq__(self, other)

    def f(x, d, k):
        r = (d.get(k), k in d)
        return x + 1, r
    return Case(f, (torch.ones(2), {MyStr("a"): 1}, "a"), log)


@P("hashing")
def hash_calls_counted_per_operation():
    log = []
    A = klass(log, "A", {"__hash__": lambda s, _: 42}, unary=("__hash__",))

    def f(x, a, d):
        d[a] = 1
        v = d[a]
        c = a in d
        g = d.get(a)
        d.pop(a)
        return x + v, (c, g, len(d))
    return Case(f, (torch.ones(2), A(), {}), log)


@P("hashing")
def hash_key_mutated_after_insert():
    class K:
        def __init__(self, v):
            self.v = v

        def __hash__(self):
            return hash(self.v)

        def __eq__(self, other):
            return isinstance(other, K) and self.v == other.v

    def f(x, k):
        d = {k: "x"}
        k.v = 2
        r = (k in d, K(1) in d, K(2) in d, list(d.values()))
        return x + 1, r
    return Case(f, (torch.ones(2), K(1)))


@P("hashing")
def hash_set_add_and_discard_user_objects():
    log = []
    A = klass(log, "A", {"__hash__": lambda s, _: s.n, "__eq__": lambda s, o: s.n == o.n},
              unary=("__hash__",))

    def f(x, s, a, b):
        s.add(a)
        s.add(b)
        s.discard(A())
        return x * len(s), len(s)
    b = A()
    b.n = 1
    return Case(f, (torch.ones(2), set(), A(), b), log)


@P("hashing")
def hash_nan_identity_in_set():
    nan = float("nan")

    def f(x, n, s):
        r = (n in s, float("nan") in s, len({n, n}), len({float("nan"), float("nan")}))
        return x + 1, r
    return Case(f, (torch.ones(2), nan, {nan}))


@P("hashing")
def hash_tensor_key_identity():
    def f(x, y):
        d = {x: "x", y: "y"}
        return x + 1, (d[x], d[y], len(d), x in {y})
    return Case(f, (torch.ones(2), torch.ones(2)))


@P("hashing")
def hash_setdefault_and_fromkeys_user_keys():
    log = []
    A = klass(log, "A", {"__hash__": lambda s, _: 1}, unary=("__hash__",))

    def f(x, a):
        d = dict.fromkeys([a, a], 0)
        d.setdefault(a, []).__class__
        return x + len(d), d[a]
    return Case(f, (torch.ones(2), A()), log)


@P("hashing")
def hash_metaclass_hash_for_class_keys():
    log = []

    class Meta(type):
        def __hash__(cls):
            log.append("meta hash")
            return 3

    class K(metaclass=Meta):
        pass

    def f(x, k):
        d = {k: 1}
        return x + d[k], hash(k)
    return Case(f, (torch.ones(2), K), log)


@pytest.mark.parametrize("name", P.params())
def test_hashing(name):
    run_probe(name)
