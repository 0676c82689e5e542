"""Data-model red-team probes: attribute lookup on records -- enum members and classes (name,
value, methods, properties, aliases, auto(), flags, _missing_), frozen dataclasses, NamedTuples,
and instances of builtin subclasses."""
import dataclasses
import enum
import typing

import pytest
import torch

from datamodel_harness import Case, Probes, caught, enums, fn_from, run_probe

P = Probes()

# --------------------------------------------------------------------------- enums

_ENUM_ATTR = [
    ("name_value", "(c.name, c.value)", "Color.RED"),
    ("method_and_property", "(c.describe(), c.twice)", "Color.GREEN"),
    ("class_subscript", "type(c)['GREEN'] is type(c).GREEN", "Color.RED"),
    ("call_by_value", "type(c)(2)", "Color.RED"),
    ("call_bad_value", "type(c)(9)", "Color.RED"),
    ("len_and_list", "(len(type(c)), [m.name for m in type(c)])", "Auto.FIRST"),
    ("members_with_alias", "list(type(c).__members__)", "Auto.FIRST"),
    ("alias_identity", "(c is type(c).FIRST, c.name)", "Auto.ALIAS"),
    ("auto_values", "[m.value for m in type(c)]", "Auto.SECOND"),
    ("intenum_value_type", "(type(c.value).__name__, c.name, c + 0)", "N.TWO"),
    ("strenum_value_and_str", "(c.value, str(c), c.upper())", "S.A"),
    ("str_mixin_str_and_format", "(c.value, str(c), f'{c}')", "Action.A"),
    ("flag_composite_name", "((c | type(c).W).name, (c | type(c).W).value)", "Fl.R"),
    ("intflag_composite", "((c | 2).value, type(c | 2).__name__)", "IF.R"),
    ("member_class", "(type(c).__name__, c.__class__ is type(c))", "IM.ONE"),
    ("name_via_getattr", "getattr(type(c), 'GREEN').value", "Color.RED"),
]

_ENUM_SRC = """
def f(x, c):
    try:
        r = {expr}
    except (ValueError, KeyError, AttributeError) as e:
        r = (type(e).__name__, str(e))
    return x + 1, r
"""


def _enum_attr(expr, member):
    def build():
        e = vars(enums())
        return Case(fn_from(_ENUM_SRC.format(expr=expr)), (torch.ones(2), eval(member, {}, e)))
    return build


for _n, _expr, _m in _ENUM_ATTR:
    P.add(f"attr_enum_{_n}", "attribute", _enum_attr(_expr, _m))


@P("attribute")
def attr_enum_missing_hook():
    log = []

    class Mode(enum.Enum):
        A = "a"

        @classmethod
        def _missing_(cls, value):
            log.append(("missing", value))
            return cls.A

    def f(x, v):
        return x + 1, Mode(v)
    return Case(f, (torch.ones(2), "zzz"), log)


@P("attribute")
def attr_enum_member_set_attribute_fails():
    e = enums()

    def f(x, c):
        def assign():
            c.value = 5
        return x + 1, caught(assign, AttributeError)
    return Case(f, (torch.ones(2), e.Color.RED))


@P("attribute")
def attr_enum_value_drives_tensor_op():
    e = enums()

    def f(x, c):
        return x * c.value + c.twice
    return Case(f, (torch.ones(2), e.Color.RED), args2=(torch.ones(2), e.Color.GREEN))


# --------------------------------------------------------------------------- dataclasses, namedtuples

@P("attribute")
def attr_frozen_dataclass_assign_fails():
    @dataclasses.dataclass(frozen=True)
    class D:
        a: int

    def f(x, d):
        try:
            d.a = 2
            r = "assigned"
        except dataclasses.FrozenInstanceError as e:
            r = str(e)
        return x * d.a, r
    return Case(f, (torch.ones(2), D(1)))


@P("attribute")
def attr_frozen_dataclass_replace():
    @dataclasses.dataclass(frozen=True)
    class D:
        a: int
        b: int = 5

    def f(x, d):
        d2 = dataclasses.replace(d, b=7)
        return x * d2.b, (d2, d2 is d)
    return Case(f, (torch.ones(2), D(1)))


@P("attribute")
def attr_dataclass_post_init_in_fn():
    log = []

    @dataclasses.dataclass
    class D:
        a: int
        b: int = dataclasses.field(default=0)

        def __post_init__(self):
            log.append(("post_init", self.a))
            self.b = self.a * 2

    def f(x, a):
        d = D(a)
        return x * d.b, d
    return Case(f, (torch.ones(2), 3), log)


@P("attribute")
def attr_dataclass_fields_and_asdict():
    @dataclasses.dataclass
    class D:
        a: int
        b: str = "s"

    def f(x, d):
        return x + 1, ([fl.name for fl in dataclasses.fields(d)], dataclasses.asdict(d))
    return Case(f, (torch.ones(2), D(1)))


@P("attribute")
def attr_namedtuple_fields_and_methods():
    class Pt(typing.NamedTuple):
        a: int
        b: int = 0

        def total(self):
            return self.a + self.b

    def f(x, p):
        q = p._replace(b=4)
        return x * q.total(), (p._fields, q._asdict(), p[0], q)
    return Case(f, (torch.ones(2), Pt(1)))


@P("attribute")
def attr_namedtuple_assign_fails():
    class Pt(typing.NamedTuple):
        a: int

    def f(x, p):
        def assign():
            p.a = 3
        return x + 1, caught(assign, AttributeError)
    return Case(f, (torch.ones(2), Pt(1)))


# --------------------------------------------------------------------------- builtin subclasses

@P("attribute")
def attr_int_subclass_instance_attr():
    class Tagged(int):
        pass

    t = Tagged(3)
    t.label = "three"

    def f(x, t):
        t.seen = True
        return x * t, (t.label, t + 1)
    return Case(f, (torch.ones(2), t))


@P("attribute")
def attr_list_subclass_property():
    class Stack(list):
        @property
        def top(self):
            return self[-1]

    def f(x, s):
        s.append(5)
        return x * s.top, s
    return Case(f, (torch.ones(2), Stack([1])))


@pytest.mark.parametrize("name", P.params())
def test_records(name):
    run_probe(name)
