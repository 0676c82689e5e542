"""Data-model red-team probes: the protocol outcome changes between the two calls (a dunder is
replaced, added or deleted on the class, an argument of another type with equal value arrives,
an instance attribute starts shadowing a descriptor). The second call must not reuse a cache entry
whose protocol resolution no longer holds."""
import pytest
import torch

from datamodel_harness import Case, Probes, enums, klass, run_probe

P = Probes()


@P("binary")
def guard_binary_dunder_replaced_on_class():
    log = []
    A = klass(log, "A", {"__add__": "tag"})

    def f(x, a):
        r = a + 1
        return (x + 1 if r == "A.__add__" else x - 1), r

    def between():
        A.__add__ = lambda self, o: "replaced"
    return Case(f, (torch.ones(2), A()), log, between=between)


@P("binary")
def guard_binary_reflected_added_on_class():
    log = []
    A = klass(log, "A", {"__mul__": "ni"})
    B = klass(log, "B")

    def f(x, a, b):
        try:
            r = a * b
        except TypeError as e:
            r = str(e)
        return x + 1, r

    def between():
        B.__rmul__ = lambda self, o: "now reflected"
    return Case(f, (torch.ones(2), A(), B()), log, between=between)


@P("binary")
def guard_binary_int_then_int_subclass_with_radd():
    log = []

    class LogInt(int):
        def __radd__(self, o):
            log.append("radd")
            return "radd"

    def f(x, n):
        r = 1 + n
        return (x + 1 if r == 2 else x - 1), r
    return Case(f, (torch.ones(2), 1), log, args2=(torch.ones(2), LogInt(1)))


@P("inplace")
def guard_inplace_iadd_deleted_from_class():
    log = []
    A = klass(log, "A", {"__iadd__": "self", "__add__": "tag"})

    def f(x, a):
        a += 1
        return x + 1, a

    def between():
        del A.__iadd__
    return Case(f, (torch.ones(2), A()), log, between=between)


@P("compare")
def guard_compare_int_then_intenum_equal_value():
    e = enums()

    def f(x, n):
        return x + 1 if 1 == n else x - 1
    return Case(f, (torch.ones(2), 1), args2=(torch.ones(2), e.N.ONE))


@P("compare")
def guard_compare_str_then_str_enum_equal_value():
    e = enums()

    def f(x, a):
        return x + 1 if "a" == a else x - 1
    return Case(f, (torch.ones(2), "a"), args2=(torch.ones(2), e.Action.A))


@P("compare")
def guard_compare_plain_enum_then_other_member():
    e = enums()

    def f(x, c):
        return x + 1 if c == e.Color.RED else x - 1
    return Case(f, (torch.ones(2), e.Color.RED), args2=(torch.ones(2), e.Color.GREEN))


@P("compare")
def guard_compare_eq_added_on_class():
    class O:
        pass

    def f(x, o):
        return x + 1 if 3 == o else x - 1

    def between():
        O.__eq__ = lambda self, other: True
    return Case(f, (torch.ones(2), O()), between=between)


@P("compare")
def guard_compare_identity_of_instance():
    class K:
        pass
    on, off = K(), K()

    def f(x, a):
        return x + 1 if a is on else x - 1
    return Case(f, (torch.ones(2), off), args2=(torch.ones(2), on))


@P("compare")
def guard_compare_lt_replaced_on_class():
    class V:
        def __lt__(self, other):
            return True

    def f(x, v):
        return x + 1 if v < 0 else x - 1

    def between():
        V.__lt__ = lambda self, other: False
    return Case(f, (torch.ones(2), V()), between=between)


@P("truth")
def guard_truth_bool_deleted_len_takes_over():
    class A:
        def __bool__(self):
            return True

        def __len__(self):
            return 0

    def f(x, a):
        return x + 1 if a else x - 1

    def between():
        del A.__bool__
    return Case(f, (torch.ones(2), A()), between=between)


@P("truth")
def guard_truth_state_read_by_bool():
    class A:
        def __init__(self):
            self.on = True

        def __bool__(self):
            return self.on

    a = A()

    def f(x, a):
        return x + 1 if a else x - 1

    def between():
        a.on = False
    return Case(f, (torch.ones(2), a), between=between)


@P("truth")
def guard_truth_enum_member_with_bool():
    import enum

    class Switch(enum.Enum):
        OFF = 0
        ON = 1

        def __bool__(self):
            return self is Switch.ON

    def f(x, s):
        return x + 1 if s else x - 1
    return Case(f, (torch.ones(2), Switch.OFF), args2=(torch.ones(2), Switch.ON))


@P("membership")
def guard_membership_contains_replaced():
    class C:
        def __contains__(self, item):
            return False

    def f(x, c):
        return x + 1 if 3 in c else x - 1

    def between():
        C.__contains__ = lambda self, item: True
    return Case(f, (torch.ones(2), C()), between=between)


@P("membership")
def guard_membership_tuple_of_str_then_str_enum():
    e = enums()

    def f(x, a):
        return x + 1 if a in ("a", "b") else x - 1
    return Case(f, (torch.ones(2), "z"), args2=(torch.ones(2), e.Action.A))


@P("hashing")
def guard_hashing_hash_replaced_changes_dict_hit():
    class K:
        def __hash__(self):
            return 1

        def __eq__(self, other):
            return True

    table = {1: "one", 2: "two"}

    def f(x, k):
        r = table.get(k, "none")
        return x + 1, r

    def between():
        K.__hash__ = lambda self: 2
    return Case(f, (torch.ones(2), K()), between=between)


@P("attribute")
def guard_attribute_instance_shadows_non_data_descriptor():
    class NonData:
        def __get__(self, obj, owner=None):
            return "descriptor"

    class K:
        v = NonData()

    k = K()

    def f(x, k):
        return x + 1, k.v

    def between():
        k.__dict__["v"] = "instance"
    return Case(f, (torch.ones(2), k), between=between)


@P("attribute")
def guard_attribute_descriptor_becomes_data_descriptor():
    class D:
        def __get__(self, obj, owner=None):
            return "descriptor"

    class K:
        v = D()

    k = K()
    k.__dict__["v"] = "instance"

    def f(x, k):
        return x + 1, k.v

    def between():
        D.__set__ = lambda self, obj, value: None
    return Case(f, (torch.ones(2), k), between=between)


@P("attribute")
def guard_attribute_getattr_added_on_class():
    class K:
        pass

    def f(x, k):
        return x + 1, getattr(k, "missing", "default")

    def between():
        K.__getattr__ = lambda self, name: "dynamic " + name
    return Case(f, (torch.ones(2), K()), between=between)


@P("attribute")
def guard_attribute_metaclass_attr_changed():
    class Meta(type):
        mode = "a"

    class K(metaclass=Meta):
        pass

    def f(x, k):
        return x + 1 if k.mode == "a" else x - 1

    def between():
        Meta.mode = "b"
    return Case(f, (torch.ones(2), K), between=between)


@P("attribute")
def guard_attribute_property_replaced():
    class K:
        @property
        def p(self):
            return 1

    def f(x, k):
        return x * k.p

    def between():
        K.p = property(lambda self: 5)
    return Case(f, (torch.ones(2), K()), between=between)


@pytest.mark.parametrize("name", P.params())
def test_guards(name):
    run_probe(name)
