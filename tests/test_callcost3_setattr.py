"""Red-team probes for generation.module_setattr, the epilogue's replay of a forward's module
attribute writes (`self.x = v`): it must do exactly what `setattr` does (nn.Module.__setattr__
through bytegraph's wrapper), taking its shortcut (a store into the instance dict and one GEN
bump) only when torch's function would end in that store. Each probe runs both on two equal
modules and compares the outcome: exception, instance dict, parameters/buffers/children, what a
descriptor saw, and the generation counter."""
import copy

import pytest
import torch
import torch.nn as nn

from differential import REFERENCE, assert_same, compile_fn, counters
from bytegraph.guards import generation

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's own epilogue helper")


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.register_buffer("buf", torch.zeros(2))
        self.mult = 1


class WithProperty(Plain):
    seen = []

    @property
    def mult2(self):
        return self.__dict__.get("_m2", 0)

    @mult2.setter
    def mult2(self, v):
        WithProperty.seen.append(v)
        self.__dict__["_m2"] = v * 10


class Mixin:
    def __setattr__(self, name, value):
        object.__setattr__(self, name, value * 2 if isinstance(value, int) else value)


class WithMixin(Plain, Mixin):     # torch's super().__setattr__ reaches Mixin's
    pass


class Slotted(Plain):
    __slots__ = ()


def tracked(m):
    generation._install()
    generation.track(m)
    return m


def outcome(m, fn):
    before = generation.GEN[0]
    try:
        fn()
        err = None
    except Exception as e:  # noqa: BLE001
        err = (type(e), str(e))
    d = {k: v for k, v in m.__dict__.items()
         if k not in ("_parameters", "_buffers", "_modules")}
    return (err, sorted(d), {k: v for k, v in d.items() if isinstance(v, (int, float, str))},
            sorted(m._parameters), sorted(m._buffers), sorted(m._modules),
            generation.GEN[0] - before)


CASES = [
    (Plain, "mult", 5),                 # the shortcut
    (Plain, "fresh", 2.5),              # a new attribute
    (Plain, "lin", 3),                  # a child's name: torch raises
    (Plain, "buf", 3),                  # a buffer's name: torch raises
    (Plain, "mult", None),              # None: not plain
    (Plain, "mult", torch.ones(1)),     # a tensor
    (Plain, "mult", nn.Parameter(torch.ones(1))),
    (Plain, "mult", nn.Linear(1, 1)),
    (Plain, "training", False),         # plain attribute torch reads
    (Plain, "_forward_hooks", 1),       # a name whose assignment re-tracks
    (WithProperty, "mult2", 4),         # a property in the class: its setter runs
    (WithMixin, "mult", 4),             # a __setattr__ after nn.Module in the MRO
    (Slotted, "mult", 6),
]


@pytest.mark.parametrize("cls,name,value", CASES,
                         ids=[f"{c.__name__}-{n}-{type(v).__name__}" for c, n, v in CASES])
@pytest.mark.parametrize("is_tracked", [True, False], ids=["tracked", "untracked"])
def test_module_setattr_does_what_setattr_does(cls, name, value, is_tracked):
    torch.manual_seed(0)
    a = cls()
    b = copy.deepcopy(a)
    if is_tracked:
        tracked(a)
        tracked(b)
    else:
        generation._install()
    WithProperty.seen.clear()
    ra = outcome(a, lambda: setattr(a, name, value))
    seen_a = list(WithProperty.seen)
    WithProperty.seen.clear()
    rb = outcome(b, lambda: generation.module_setattr(b, name, value))
    assert ra == rb
    assert seen_a == WithProperty.seen


def test_property_added_to_the_class_after_tracking():
    m = tracked(Plain())

    class Later(Plain):
        pass
    m2 = tracked(Later())
    generation.module_setattr(m2, "mult", 3)
    assert m2.__dict__["mult"] == 3
    seen = []
    Later.mult = property(lambda self: 0, lambda self, v: seen.append(v))
    generation.module_setattr(m2, "mult", 4)
    assert seen == [4]
    generation.module_setattr(m, "mult", 4)
    assert m.mult == 4


def test_nn_module_setattr_replaced_after_install():
    m = tracked(Plain())
    M = nn.Module
    wrapped = M.__dict__["__setattr__"]
    calls = []

    def spy(self, name, value):
        calls.append(name)
        wrapped(self, name, value)
    M.__setattr__ = spy
    try:
        generation.module_setattr(m, "mult", 9)
    finally:
        M.__setattr__ = wrapped
    assert calls == ["mult"] and m.mult == 9


# ----------------------------------------------------------------------------- in a compiled call

class Counting(nn.Module):
    """Writes plain attributes on itself and a child on every call (as hf/funnel does)."""
    def __init__(self):
        super().__init__()
        self.inner = Plain()
        self.calls = 0
        self.mode = "a"

    def forward(self, x):
        self.calls = self.calls + 1
        self.inner.mult = self.inner.mult * 2 if self.inner.mult < 64 else 1
        self.mode = "b" if self.mode == "a" else "a"
        return self.inner.lin(x) * self.inner.mult


def test_compiled_forward_writing_attributes_matches_eager():
    torch.manual_seed(0)
    m = Counting().eval()
    ref = copy.deepcopy(m)
    c = compile_fn(m, backend="eager")
    x = torch.randn(3, 2)
    for _ in range(12):
        with torch.no_grad():
            assert_same(ref(x), c(x))
        assert (m.calls, m.inner.mult, m.mode) == (ref.calls, ref.inner.mult, ref.mode)
    # a write from outside between calls is seen
    m.inner.mult = 3
    ref.inner.mult = 3
    with torch.no_grad():
        assert_same(ref(x), c(x))


def test_compiled_attribute_writer_seen_by_another_compiled_reader():
    torch.manual_seed(0)
    m = Counting().eval()
    ref = copy.deepcopy(m)
    c = compile_fn(m, backend="eager")

    def reader(mod, x):
        return x * mod.inner.mult + mod.calls

    ref_reader = reader
    cr = compile_fn(reader, backend="eager")
    x = torch.randn(3, 2)
    for _ in range(6):
        with torch.no_grad():
            assert_same(ref(x), c(x))
            assert_same(ref_reader(ref, x), cr(m, x))
