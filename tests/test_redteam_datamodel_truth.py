"""Data-model red-team probes: truth (__bool__, then __len__, else True; `if`, `not`, `and`/`or`
returning operands, any/all/filter) and membership (`in`/`not in` via __contains__, then __iter__,
then __getitem__; element __eq__ order and identity shortcut; dict/set membership with user
__hash__/__eq__; unhashable items; enums; tensors)."""
import collections
import dataclasses
import operator
import typing

import pytest
import torch

from datamodel_harness import Case, Probes, enums, fn_from, klass, run_probe, table_probe

P = Probes()

# --------------------------------------------------------------------------- truth: user classes


def _truth_case(log, obj, body="return (x + 1 if o else x - 1)"):
    f = fn_from(f"def f(x, o):\n    {body}")
    return Case(f, (torch.ones(2), obj), log)


@P("truth")
def truth_bool_only():
    log = []
    A = klass(log, "A", {"__bool__": lambda s, _: False}, unary=("__bool__",))
    return _truth_case(log, A())


@P("truth")
def truth_len_only_zero():
    log = []
    A = klass(log, "A", {"__len__": lambda s, _: 0}, unary=("__len__",))
    return _truth_case(log, A())


@P("truth")
def truth_len_only_nonzero():
    log = []
    A = klass(log, "A", {"__len__": lambda s, _: 3}, unary=("__len__",))
    return _truth_case(log, A())


@P("truth")
def truth_bool_wins_over_len():
    log = []
    A = klass(log, "A", {"__bool__": lambda s, _: True, "__len__": lambda s, _: 0},
              unary=("__bool__", "__len__"))
    return _truth_case(log, A())


@P("truth")
def truth_neither_is_true():
    return _truth_case([], klass([], "A")())


@P("truth")
def truth_bool_returns_int_typeerror():
    A = klass([], "A", {"__bool__": lambda s, _: 1}, unary=("__bool__",))
    return _truth_case(None, A(), "try:\n        return x + 1 if o else x - 1\n"
                                  "    except TypeError as e:\n        return x, str(e)")


@P("truth")
def truth_len_negative_valueerror():
    A = klass([], "A", {"__len__": lambda s, _: -1}, unary=("__len__",))
    return _truth_case(None, A(), "try:\n        return x + 1 if o else x - 1\n"
                                  "    except ValueError as e:\n        return x, str(e)")


@P("truth")
def truth_len_returns_float_typeerror():
    A = klass([], "A", {"__len__": lambda s, _: 1.5}, unary=("__len__",))
    return _truth_case(None, A(), "try:\n        return x + 1 if o else x - 1\n"
                                  "    except TypeError as e:\n        return x, str(e)")


@P("truth")
def truth_len_returns_bool():
    A = klass([], "A", {"__len__": lambda s, _: False}, unary=("__len__",))
    return _truth_case(None, A())


@P("truth")
def truth_bool_is_none_typeerror():
    A = klass([], "A", __bool__=None)
    return _truth_case(None, A(), "try:\n        return x + 1 if o else x - 1\n"
                                  "    except TypeError as e:\n        return x, str(e)")


@P("truth")
def truth_bool_raises():
    log = []
    A = klass(log, "A", {"__bool__": "raise"}, unary=("__bool__",))
    return _truth_case(log, A(), "try:\n        return x + 1 if o else x - 1\n"
                                 "    except ValueError as e:\n        return x, str(e)")


@P("truth")
def truth_not_calls_bool():
    log = []
    A = klass(log, "A", {"__bool__": lambda s, _: False}, unary=("__bool__",))
    return _truth_case(log, A(), "r = not o\n    return (x + 1 if r else x - 1), r")


@P("truth")
def truth_and_returns_operand():
    log = []
    A = klass(log, "A", {"__bool__": lambda s, _: s.n == 0}, unary=("__bool__",))

    def f(x, a, b):
        r = a and b
        return x + 1, r is a, r is b
    b = A()
    b.n = 1
    return Case(f, (torch.ones(2), A(), b), log)


@P("truth")
def truth_or_returns_first_truthy():
    log = []
    A = klass(log, "A", {"__bool__": lambda s, _: s.n == 1}, unary=("__bool__",))

    def f(x, a, b):
        r = a or b
        return x + 1, r is a, r is b
    b = A()
    b.n = 1
    return Case(f, (torch.ones(2), A(), b), log)


@P("truth")
def truth_and_result_tested_again():
    log = []
    A = klass(log, "A", {"__bool__": lambda s, _: True}, unary=("__bool__",))

    def f(x, a, b):
        r = a and b
        if r:
            return x + 1
        return x - 1
    return Case(f, (torch.ones(2), A(), A()), log)


@P("truth")
def truth_if_and_calls_each_once():
    log = []

    class A:
        def __init__(self, tag, v):
            self.tag, self.v = tag, v

        def __bool__(self):
            log.append(self.tag)
            return self.v

    def f(x, a, b, c):
        if a and b or c:
            return x + 1
        return x - 1
    return Case(f, (torch.ones(2), A("a", True), A("b", False), A("c", True)), log)


@P("truth")
def truth_or_with_none_returns_tensor_identity():
    def f(x, d):
        y = d or x
        return y, y is x
    return Case(f, (torch.ones(2), None))


@P("truth")
def truth_while_loop_state_changing_bool():
    class Countdown:
        def __init__(self, n):
            self.n = n

        def __bool__(self):
            self.n -= 1
            return self.n >= 0

    def f(x, c):
        while c:
            x = x * 2
        return x
    return Case(f, (torch.ones(2), Countdown(3)))


@P("truth")
def truth_builtin_bool_and_operator_paths():
    log = []
    A = klass(log, "A", {"__len__": lambda s, _: 0}, unary=("__len__",))

    def f(x, a):
        r = (bool(a), operator.truth(a), operator.not_(a))
        return x + 1, r
    return Case(f, (torch.ones(2), A()), log)


@P("truth")
def truth_any_all_short_circuit():
    log = []

    class A:
        def __init__(self, tag, v):
            self.tag, self.v = tag, v

        def __bool__(self):
            log.append(self.tag)
            return self.v

    def f(x, items):
        r = (any(items), all(items))
        return (x + 1 if r[0] else x - 1), r
    return Case(f, (torch.ones(2), [A("a", False), A("b", True), A("c", False)]), log)


@P("truth")
def truth_filter_none_uses_truth():
    log = []
    A = klass(log, "A", {"__len__": lambda s, _: s.n}, unary=("__len__",))
    items = [A(), A(), A()]
    items[1].n = 2

    def f(x, items):
        kept = list(filter(None, items))
        return x * len(kept), [k is items[1] for k in kept]
    return Case(f, (torch.ones(2), items), log)


@P("truth")
def truth_metaclass_bool_on_class():
    log = []

    class Meta(type):
        def __bool__(cls):
            log.append("meta bool")
            return False

    class K(metaclass=Meta):
        pass

    return _truth_case(log, K)


@P("truth")
def truth_bool_via_getattr_not_used():
    log = []

    class A:
        def __getattr__(self, name):
            log.append(name)
            return lambda: False

    return _truth_case(log, A())


@P("truth")
def truth_instance_dict_bool_ignored():
    class A:
        pass
    a = A()
    a.__bool__ = lambda: False
    return _truth_case(None, a)


# --------------------------------------------------------------------------- truth: builtins, subclasses, enums

_VALUES = [("zero", 0), ("zero_float", 0.0), ("neg_zero", -0.0), ("zero_complex", 0j), ("empty_str", ""),
           ("empty_bytes", b""), ("empty_tuple", ()), ("empty_list", []), ("empty_dict", {}),
           ("empty_set", set()), ("empty_frozenset", frozenset()), ("none", None), ("empty_range", range(0)),
           ("str_zero", "0"), ("list_of_zero", [0]), ("nan", float("nan"))]

_VSRC = """
def f(x, a):
    r = (bool(a), not a, a or "dflt", a and "second")
    return (x + 1 if a else x - 1), r
"""

for _n, _v in _VALUES:
    P.add(f"truth_builtin_{_n}", "truth", table_probe(_VSRC, _v))


def _subclass_truth(make):
    def build():
        log = []
        return Case(fn_from(_VSRC), (torch.ones(2), make(log)), log)
    return build


def _mylist_bool(log):
    class MyList(list):
        def __bool__(self):
            log.append("bool")
            return True
    return MyList()


def _myint_len(log):
    class MyInt(int):
        def __len__(self):
            log.append("len")
            return 0
    return MyInt(5)


def _mystr_len(log):
    class MyStr(str):
        def __len__(self):
            log.append("len")
            return 3
    return MyStr("")


def _mydict_len(log):
    class MyDict(dict):
        def __len__(self):
            log.append("len")
            return 0
    return MyDict(a=1)


def _myfloat_plain(log):
    class MyFloat(float):
        pass
    return MyFloat(0.0)


for _n, _make in [("list_subclass_bool_override", _mylist_bool), ("int_subclass_len_ignored", _myint_len),
                  ("str_subclass_len_override", _mystr_len), ("dict_subclass_len_override", _mydict_len),
                  ("float_subclass_plain", _myfloat_plain)]:
    P.add(f"truth_{_n}", "truth", _subclass_truth(_make))

for _n, _member in [("plain_enum_value_zero", "Color.ZERO"), ("intenum_zero", "N.ZERO"),
                    ("intenum_one", "N.ONE"), ("strenum_empty", "S.EMPTY"), ("flag_empty", "Fl(0)"),
                    ("flag_member", "Fl.R"), ("intflag_zero", "IF(0)"), ("str_mixin", "Action.A")]:
    P.add(f"truth_enum_{_n}", "truth",
          (lambda m: lambda: Case(fn_from(_VSRC), (torch.ones(2), eval(m, {}, vars(enums())))))(_member))


@P("truth")
def truth_enum_with_bool_method():
    import enum

    class Switch(enum.Enum):
        OFF = "off"
        ON = "on"

        def __bool__(self):
            return self is Switch.ON

    return Case(fn_from(_VSRC), (torch.ones(2), Switch.OFF), args2=(torch.ones(2), Switch.ON))


@P("truth")
def truth_empty_namedtuple_and_dataclass():
    E = collections.namedtuple("E", [])

    @dataclasses.dataclass
    class D:
        a: int = 0

    def f(x, e, d):
        r = (bool(e), bool(d))
        return x + 1, r
    return Case(f, (torch.ones(2), E(), D()))


@P("truth")
def truth_tensor_metadata():
    def f(x, y):
        r = (bool(x.shape), bool(y.shape), bool(x.numel()), bool(y.numel()))
        return (x + 1 if y.shape else x - 1), r
    return Case(f, (torch.ones(2), torch.ones(0)))


@P("truth")
def truth_tensor_value_branch():
    def f(x):
        if x.sum():
            return x + 1
        return x - 1
    return Case(f, (torch.ones(2),), args2=(torch.zeros(2),))


# --------------------------------------------------------------------------- membership: user protocols

def _in_case(log, container, item, body="r = item in c"):
    f = fn_from(f"def f(x, item, c):\n    {body}\n    return (x + 1 if r else x - 1), r")
    return Case(f, (torch.ones(2), item, container), log)


@P("membership")
def in_contains_called():
    log = []
    C = klass(log, "C", {"__contains__": lambda s, o: o == 2})
    return _in_case(log, C(), 2)


@P("membership")
def in_contains_non_bool_coerced():
    C = klass([], "C", {"__contains__": lambda s, o: [o]})
    return _in_case(None, C(), 0)


@P("membership")
def not_in_contains_inverted():
    log = []
    C = klass(log, "C", {"__contains__": lambda s, o: "yes"})
    return _in_case(log, C(), 0, "r = item not in c")


@P("membership")
def in_iter_fallback_stops_at_match():
    log = []

    class C:
        def __iter__(self):
            for i in range(5):
                log.append(("yield", i))
                yield i

    return _in_case(log, C(), 2)


@P("membership")
def in_getitem_fallback_index_error_stops():
    log = []

    class C:
        def __getitem__(self, i):
            log.append(("getitem", i))
            if i >= 3:
                raise IndexError(i)
            return i * 10

    return _in_case(log, C(), 25)


@P("membership")
def in_contains_wins_over_iter():
    log = []
    C = klass(log, "C", {"__contains__": lambda s, o: False, "__iter__": lambda s, _: iter([1, 2])},
              unary=("__iter__",))
    return _in_case(log, C(), 1)


@P("membership")
def in_contains_none_typeerror():
    C = klass([], "C", __contains__=None, __iter__=lambda s: iter([1]))
    return _in_case(None, C(), 1, "try:\n        r = item in c\n    except TypeError as e:\n        r = str(e)")


@P("membership")
def in_iter_none_with_getitem_typeerror():
    C = klass([], "C", __iter__=None, __getitem__=lambda s, i: i)
    return _in_case(None, C(), 1, "try:\n        r = item in c\n    except TypeError as e:\n        r = str(e)")


@P("membership")
def in_not_a_container_typeerror():
    return _in_case(None, klass([], "C")(), 1, "try:\n        r = item in c\n    except TypeError as e:\n"
                                               "        r = str(e)")


@P("membership")
def in_contains_raises():
    log = []
    C = klass(log, "C", {"__contains__": "raise"})
    return _in_case(log, C(), 1, "try:\n        r = item in c\n    except ValueError as e:\n        r = str(e)")


@P("membership")
def in_list_item_eq_reflected_per_element():
    log = []
    A = klass(log, "A", {"__eq__": lambda s, o: o == 2})
    return _in_case(log, [1, 2, 3], A())


@P("membership")
def in_tuple_element_eq_called_first():
    log = []
    E = klass(log, "E", {"__eq__": lambda s, o: False})
    I = klass(log, "I", {"__eq__": lambda s, o: True})
    return _in_case(log, (E(), E()), I())


@P("membership")
def in_list_identity_shortcut():
    log = []
    A = klass(log, "A", {"__eq__": lambda s, o: False})
    a = A()
    return _in_case(log, [A(), a], a)


@P("membership")
def in_list_nan_identity():
    nan = float("nan")

    def f(x, n, c):
        r = (n in c, float("nan") in c, n in [float("nan")])
        return (x + 1 if r[0] else x - 1), r
    return Case(f, (torch.ones(2), nan, [nan]))


@P("membership")
def in_element_eq_raises():
    log = []
    A = klass(log, "A", {"__eq__": "raise"})
    return _in_case(log, [0, A()], 5, "try:\n        r = item in c\n    except ValueError as e:\n        r = str(e)")


@P("membership")
def in_generator_consumed_partially():
    def f(x, n):
        g = (i for i in range(5))
        r = n in g
        return x + 1, (r, next(g))
    return Case(f, (torch.ones(2), 2))


@P("membership")
def in_metaclass_iter_on_class():
    log = []

    class Meta(type):
        def __iter__(cls):
            log.append("meta iter")
            return iter([1, 2])

    class K(metaclass=Meta):
        pass

    return _in_case(log, K, 2)


@P("membership")
def in_operator_contains_function_path():
    log = []
    C = klass(log, "C", {"__contains__": lambda s, o: True})
    return _in_case(log, C(), 7, "r = operator.contains(c, item)")


@P("membership")
def in_list_subclass_contains_override():
    log = []

    class MyList(list):
        def __contains__(self, o):
            log.append(("contains", o))
            return False

    return _in_case(log, MyList([1, 2]), 1)


@P("membership")
def in_dict_subclass_contains_override():
    log = []

    class MyDict(dict):
        def __contains__(self, k):
            log.append(("contains", k))
            return True

    def f(x, d):
        r = ("zz" in d, d.get("zz", "default"), "zz" in d.keys())
        return x + 1, r
    return Case(f, (torch.ones(2), MyDict(a=1)), log)


# --------------------------------------------------------------------------- membership: hashing containers

def _hashed(log, h, name="K"):
    class K:
        def __init__(self, tag):
            self.tag = tag

        def __hash__(self):
            log.append((name, "hash", self.tag))
            return h

        def __eq__(self, other):
            log.append((name, "eq", self.tag, getattr(other, "tag", other)))
            return isinstance(other, K)
    K.__name__ = K.__qualname__ = name
    return K


@P("membership")
def in_dict_user_hash_eq_on_collision():
    log = []
    K = _hashed(log, 7)
    return _in_case(log, {K("stored"): 1}, K("probe"))


@P("membership")
def in_dict_user_hash_no_eq_when_hash_differs():
    log = []
    K = _hashed(log, 7)
    J = _hashed(log, 8, "J")
    return _in_case(log, {K("stored"): 1}, J("probe"))


@P("membership")
def in_dict_same_key_object_no_eq():
    log = []
    K = _hashed(log, 7)
    k = K("same")
    return _in_case(log, {k: 1}, k)


@P("membership")
def in_set_user_hash_eq():
    log = []
    K = _hashed(log, 3)
    return _in_case(log, {K("a")}, K("b"))


@P("membership")
def in_frozenset_int_hash_collision_with_user():
    log = []
    K = _hashed(log, 5)
    return _in_case(log, frozenset({5, 6}), K("k"))


@P("membership")
def in_dict_unhashable_list_typeerror():
    return _in_case(None, {1: 2}, [1], "try:\n        r = item in c\n    except TypeError as e:\n        r = str(e)")


@P("membership")
def in_set_unhashable_dict_typeerror():
    return _in_case(None, {1}, {}, "try:\n        r = item in c\n    except TypeError as e:\n        r = str(e)")


@P("membership")
def in_set_hash_none_typeerror():
    A = klass([], "A", __hash__=None)
    return _in_case(None, {1}, A(), "try:\n        r = item in c\n    except TypeError as e:\n        r = str(e)")


@P("membership")
def in_list_unhashable_fine():
    return _in_case(None, [[1], [2]], [2])


@P("membership")
def in_dict_keys_values_items():
    def f(x, d, k):
        r = (k in d.keys(), 1.0 in d.values(), (k, 1) in d.items(), (k, 2) in d.items())
        return x + 1, r
    return Case(f, (torch.ones(2), {"a": 1}, "a"))


@P("membership")
def in_dict_int_bool_float_keys_equivalent():
    def f(x, d):
        r = (True in d, 1.0 in d, 1 + 0j in d, "1" in d)
        return x + 1, r
    return Case(f, (torch.ones(2), {1: "one"}))


@P("membership")
def in_frozen_dataclass_in_set():
    @dataclasses.dataclass(frozen=True)
    class Pt:
        a: int
        b: int

    def f(x, s):
        r = (Pt(1, 2) in s, Pt(2, 1) in s, (1, 2) in s)
        return x + 1, r
    return Case(f, (torch.ones(2), {Pt(1, 2)}))


@P("membership")
def in_namedtuple_in_list_of_tuples():
    class Pt(typing.NamedTuple):
        a: int
        b: int

    def f(x, items):
        r = (Pt(1, 2) in items, (1, 2) in {Pt(1, 2)})
        return (x + 1 if r[0] else x - 1), r
    return Case(f, (torch.ones(2), [(1, 2)]))


# --------------------------------------------------------------------------- membership: builtins, enums, tensors

_BUILTIN_IN = [
    ("substring", "'ab'", "'cab'"),
    ("empty_substring", "''", "'x'"),
    ("int_in_str_typeerror", "1", "'abc'"),
    ("int_in_bytes", "1", "b'\\x01'"),
    ("empty_in_bytes", "b''", "b'abc'"),
    ("byte_out_of_range", "256", "b'a'"),
    ("in_range_step", "4", "range(0, 10, 2)"),
    ("float_in_range", "2.0", "range(3)"),
    ("float_frac_in_range", "2.5", "range(3)"),
    ("none_in_list", "None", "[0, None]"),
    ("tuple_in_set", "(1, 2)", "{(1, 2)}"),
]

_BSRC = """
def f(x):
    try:
        r = {item} in {c}
    except (TypeError, ValueError) as e:
        r = (type(e).__name__, str(e))
    return (x + 1 if r is True else x - 1), r
"""

for _n, _item, _c in _BUILTIN_IN:
    P.add(f"in_builtin_{_n}", "membership", table_probe(_BSRC.format(item=_item, c=_c)))

_ENUM_IN = [
    ("str_mixin_in_str_tuple", "Action.A", "('a', 'b')"),
    ("str_in_str_mixin_tuple", "'b'", "(Action.A, Action.B)"),
    ("strenum_in_list", "S.A", "['a']"),
    ("intenum_in_list", "N.ONE", "[1]"),
    ("plain_enum_in_value_list", "Color.RED", "[1]"),
    ("int_in_intenum_set", "1", "{N.ONE}"),
    ("str_in_str_mixin_dict", "'a'", "{Action.A: 1}"),
    ("member_in_enum_class", "Color.RED", "Color"),
    ("value_in_enum_class", "1", "Color"),
    ("flag_in_flag", "Fl.R", "Fl.R | Fl.W"),
    ("flag_not_in_flag", "Fl.X", "Fl.R | Fl.W"),
    ("intflag_in_intflag", "IF.W", "IF(3)"),
    ("plain_enum_in_set", "Color.GREEN", "{Color.GREEN}"),
    ("alias_in_members_list", "Auto.ALIAS", "[Auto.FIRST]"),
]


def _enum_in(item, c):
    def build():
        e = vars(enums())
        f = fn_from(_BSRC.format(item="item", c="c").replace("def f(x)", "def f(x, item, c)"))
        return Case(f, (torch.ones(2), eval(item, {}, e), eval(c, {}, e)))
    return build


for _n, _item, _c in _ENUM_IN:
    P.add(f"in_enum_{_n}", "membership", _enum_in(_item, _c))


@P("membership")
def in_issue_str_enum_literal_tuple():
    e = enums()

    def f(x, a):
        return x + 1 if a in ("a", "b") else x - 1
    return Case(f, (torch.ones(2), e.Action.A), args2=(torch.ones(2), e.S.B))


@P("membership")
def in_tensor_identity_in_list():
    def f(x, y):
        r = (x in [x], x in (y, x))
        return x + 1, r
    return Case(f, (torch.ones(2), torch.zeros(2)))


@P("membership")
def in_tensor_ambiguous_eq():
    def f(x, y):
        try:
            r = x in [y]
        except RuntimeError as e:
            r = str(e)
        return x + 1, r
    return Case(f, (torch.ones(2), torch.ones(2)))


@P("membership")
def in_tensor_dict_key_by_identity():
    def f(x, d):
        return x + d.get(x, 0), (x in d, x.clone() in d)
    return Case(f, (torch.ones(2), {}))


@P("membership")
def in_value_in_tensor_data_dependent():
    def f(x):
        if 1.0 in x:
            return x + 1
        return x - 1
    return Case(f, (torch.ones(2),), args2=(torch.zeros(2),))


@pytest.mark.parametrize("name", P.params())
def test_truth_membership(name):
    run_probe(name)
