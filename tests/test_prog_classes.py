"""Differential programs: namedtuples, dataclasses and user classes (methods, properties, super, dunders, attrs)."""
import collections
import dataclasses
import typing

import pytest
import torch

from differential import check, tensors_like


def ids(fn):
    return fn.__name__


Point = collections.namedtuple("Point", ["x", "y"])


class Pair(typing.NamedTuple):
    first: torch.Tensor
    second: float = 1.0


@dataclasses.dataclass
class Config:
    hidden: int
    scale: float = 2.0
    name: str = "cfg"


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: int
    b: int = 3


@dataclasses.dataclass
class TensorBox:
    value: torch.Tensor
    tag: str = "box"
    items: list = dataclasses.field(default_factory=list)


class Counter:
    unit = 10

    def __init__(self, start=0):
        self.n = start

    def inc(self, k=1):
        self.n += k
        return self

    @property
    def doubled(self):
        return self.n * 2

    @staticmethod
    def add(a, b):
        return a + b

    @classmethod
    def make(cls, v):
        return cls(v * cls.unit)


class Base:
    def __init__(self, w):
        self.w = w

    def forward(self, x):
        return x * self.w

    def name(self):
        return "base"


class Mid(Base):
    def __init__(self, w, b):
        super().__init__(w)
        self.b = b

    def forward(self, x):
        return super().forward(x) + self.b

    def name(self):
        return "mid<" + super().name() + ">"


class Leaf(Mid):
    def forward(self, x):
        return super().forward(x) * 2

    def name(self):
        return "leaf<" + super().name() + ">"


class Vec:
    def __init__(self, t):
        self.t = t

    def __add__(self, other):
        return Vec(self.t + other.t)

    def __mul__(self, k):
        return Vec(self.t * k)

    def __len__(self):
        return self.t.shape[0]

    def __getitem__(self, i):
        return self.t[i]

    def __iter__(self):
        return iter(self.t.unbind(0))

    def __contains__(self, v):
        return v == "t"

    def __eq__(self, other):
        return isinstance(other, Vec)

    def __bool__(self):
        return True


class Holder:
    def __init__(self, t, k):
        self.t = t
        self.k = k


# --------------------------------------------------------------------------- namedtuples / dataclasses
def o_namedtuple(x):
    p = Point(x, 2)
    q = p._replace(y=5)
    a, b = p
    return p.x * p.y + q[1], a + b, p, q, Point._fields, p._asdict()


def o_typing_namedtuple(x):
    p = Pair(x)
    q = Pair(x * 2, second=3.0)
    return p.first * p.second + q.first * q.second, p, len(q)


def o_namedtuple_methods(x):
    p = Point._make([3, 7])
    return x * p.x, p, p.index(7), p.count(7), isinstance(p, tuple), p.y, p == Point(3, 7)


def o_dataclass(x):
    c = Config(hidden=4)
    c.scale = 3.0
    return x * c.scale + c.hidden, c, dataclasses.asdict(c)


def o_dataclass_frozen(x):
    f = Frozen(1)
    g = dataclasses.replace(f, b=10)
    return x + f.a + f.b + g.b, f, g, f == Frozen(1, 3)


def o_dataclass_tensor_field(x):
    box = TensorBox(x * 2)
    box.items.append(x + 1)
    box.value = box.value + 1
    return box, dataclasses.fields(box)[0].name


# --------------------------------------------------------------------------- user classes built inside
def o_user_class_methods(x):
    c = Counter(1)
    c.inc().inc(3)
    d = Counter.make(2)
    return x * c.n + d.n, c.doubled, Counter.add(1, 2), c.add(x, 1), Counter.unit


def o_return_user_object(x):
    h = Holder(x * 2, 3)
    h.extra = "new"
    return h


def o_setattr_getattr_hasattr(x):
    h = Holder(x, 1)
    setattr(h, "k", 5)
    setattr(h, "z", x + 1)
    return getattr(h, "k") * x, hasattr(h, "z"), hasattr(h, "nope"), getattr(h, "nope", None), h


def o_super_multilevel(x):
    leaf = Leaf(2.0, 1.0)
    mid = Mid(3.0, x)
    return leaf.forward(x), mid.forward(x), leaf.name(), isinstance(leaf, Base), type(leaf).__name__


def o_dunder_methods(x):
    v = Vec(x) + Vec(x * 2)
    w = v * 3
    rows = [r for r in w]
    return w.t, len(v), v[0], "t" in v, v == w, sum(rows), bool(v)


def o_isinstance_user(x):
    objs = [Leaf(1, 2), Base(3), Point(1, 2), Config(1)]
    kinds = [(isinstance(o, Mid), isinstance(o, (Base, tuple)), issubclass(type(o), Base)) for o in objs]
    return x + 1, kinds


def o_class_attribute_and_type(x):
    c = Counter()
    return x * Counter.unit, type(c) is Counter, c.__class__.__name__, isinstance(c, object)


def o_bound_method_variable(x):
    c = Counter(2)
    f = c.inc
    f(5)
    g = Leaf(1.0, 0.5).forward
    return g(x), c.n


class Temp:
    def __init__(self):
        self._c = 0.0

    @property
    def c(self):
        return self._c

    @c.setter
    def c(self, v):
        self._c = v * 2


def o_property_setter(x):
    t = Temp()
    t.c = 1.5
    return x * t.c, t.c, t


INSIDE = [o_namedtuple, o_typing_namedtuple, o_namedtuple_methods, o_dataclass, o_dataclass_frozen,
          o_dataclass_tensor_field, o_user_class_methods, o_return_user_object, o_setattr_getattr_hasattr,
          o_super_multilevel, o_dunder_methods, o_isinstance_user, o_class_attribute_and_type,
          o_bound_method_variable, o_property_setter]


@pytest.mark.parametrize("fn", INSIDE, ids=ids)
def test_objects_built_inside(fn):
    check(fn, *tensors_like((3, 4)))


# --------------------------------------------------------------------------- objects passed in
def p_read_attrs(h, x):
    return h.t * h.k + x


def p_mutate_attrs(h, x):
    h.k = h.k + 1
    h.t = h.t + x
    h.new_attr = "set"
    return x * h.k


def p_mutate_tensor_attr_inplace(h, x):
    h.t.add_(x)
    return h.t.sum()


def p_namedtuple_in(p, x):
    return p.x * p.y + x, p._replace(y=0)


def p_dataclass_in(c, x):
    c.scale = c.scale * 2
    return x * c.scale + c.hidden, c.name.upper()


def p_method_on_arg(c, x):
    c.inc(2)
    return x * c.doubled


def p_super_on_arg(leaf, x):
    return leaf.forward(x), leaf.name()


def test_obj_arg_read():
    x, t = tensors_like((3, 4), (3, 4))
    check(p_read_attrs, Holder(t, 3), x)


def test_obj_arg_mutate_attrs():
    x, t = tensors_like((3, 4), (3, 4))
    check(p_mutate_attrs, Holder(t, 3), x)


def test_obj_arg_mutate_tensor_inplace():
    x, t = tensors_like((3, 4), (3, 4))
    check(p_mutate_tensor_attr_inplace, Holder(t, 3), x)


def test_namedtuple_arg():
    x, t = tensors_like((3, 4), (3, 4))
    check(p_namedtuple_in, Point(t, 2.0), x)


def test_dataclass_arg():
    (x,) = tensors_like((3, 4))
    check(p_dataclass_in, Config(hidden=5), x)


def test_user_object_method_arg():
    (x,) = tensors_like((3, 4))
    check(p_method_on_arg, Counter(4), x)


def test_inherited_object_arg():
    (x,) = tensors_like((3, 4))
    check(p_super_on_arg, Leaf(2.0, 0.5), x)
