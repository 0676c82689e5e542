"""Data-model red-team probes: attribute lookup (data descriptors before the instance dict,
non-data descriptors after, slots, properties, __getattr__/__getattribute__/__setattr__/__delattr__,
__set_name__, __init_subclass__, class vs instance attributes, metaclass attributes,
cached_property, super()). Enum members, dataclasses, NamedTuples: test_redteam_datamodel_records.py."""
import functools

import pytest
import torch

from datamodel_harness import Case, Probes, caught, run_probe

P = Probes()




def _descriptors(log):
    class Data:
        def __set_name__(self, owner, name):
            self.name = name

        def __get__(self, obj, owner=None):
            log.append(("Data.get", obj is None, owner.__name__))
            return "data" if obj is not None else self

        def __set__(self, obj, value):
            log.append(("Data.set", value))
            obj.__dict__["_" + self.name] = value

        def __delete__(self, obj):
            log.append("Data.delete")
            obj.__dict__.pop("_" + self.name, None)

    class NonData:
        def __get__(self, obj, owner=None):
            log.append(("NonData.get", obj is None, owner.__name__))
            return "nondata"

    class SetOnly:
        def __set__(self, obj, value):
            log.append(("SetOnly.set", value))

    class K:
        d = Data()
        nd = NonData()
        so = SetOnly()

    return K


@P("attribute")
def attr_data_descriptor_beats_instance_dict():
    log = []
    K = _descriptors(log)
    k = K()
    k.__dict__["d"] = "instance"

    def f(x, k):
        r = k.d
        return (x + 1 if r == "data" else x - 1), r
    return Case(f, (torch.ones(2), k), log)


@P("attribute")
def attr_instance_dict_beats_non_data_descriptor():
    log = []
    K = _descriptors(log)
    k = K()
    k.__dict__["nd"] = "instance"

    def f(x, k):
        r = k.nd
        return (x + 1 if r == "instance" else x - 1), r
    return Case(f, (torch.ones(2), k), log)


@P("attribute")
def attr_non_data_descriptor_without_instance_entry():
    log = []
    K = _descriptors(log)

    def f(x, k):
        r = k.nd
        return (x + 1 if r == "nondata" else x - 1), r
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_descriptor_class_access_gets_none():
    log = []
    K = _descriptors(log)

    def f(x, k):
        r = (type(k).nd, type(k).d is K.__dict__["d"])
        return x + 1, r
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_data_descriptor_set_and_delete():
    log = []
    K = _descriptors(log)

    def f(x, k):
        k.d = 7
        stored = k.__dict__["_d"]
        del k.d
        return x * stored, sorted(k.__dict__)
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_set_only_descriptor_get_falls_to_dict():
    log = []
    K = _descriptors(log)
    k = K()
    k.__dict__["so"] = "instance"

    def f(x, k, k2):
        k.so = 3
        r = (k.so, type(k2.so).__name__)
        return x + 1, r
    return Case(f, (torch.ones(2), k, K()), log)


@P("attribute")
def attr_set_name_called_for_class_made_in_fn():
    log = []

    class Field:
        def __set_name__(self, owner, name):
            log.append(("set_name", owner.__name__, name))
            self.name = name

    def f(x):
        class Rec:
            speed = Field()
        return x + 1, Rec.speed.name
    return Case(f, (torch.ones(2),), log)


@P("attribute")
def attr_set_name_from_class_made_outside():
    log = []
    K = _descriptors(log)

    def f(x, k):
        return x + 1, type(k).__dict__["d"].name
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_init_subclass_for_class_made_in_fn():
    log = []

    class Base:
        def __init_subclass__(cls, tag=None, **kw):
            super().__init_subclass__(**kw)
            log.append(("init_subclass", cls.__name__, tag))
            cls.tag = tag

    def f(x):
        class Child(Base, tag="t"):
            pass
        return x + 1, Child.tag
    return Case(f, (torch.ones(2),), log)


# --------------------------------------------------------------------------- properties

def _prop_class(log):
    class K:
        def __init__(self):
            self._v = 1

        @property
        def v(self):
            log.append("get v")
            return self._v

        @v.setter
        def v(self, value):
            log.append(("set v", value))
            self._v = value

        @v.deleter
        def v(self):
            log.append("del v")
            self._v = None

        @property
        def ro(self):
            return "ro"

        @property
        def broken(self):
            log.append("get broken")
            raise AttributeError("inner")

        def __getattr__(self, name):
            log.append(("getattr", name))
            return "fallback:" + name
    return K


@P("attribute")
def attr_property_get_set_delete():
    log = []
    K = _prop_class(log)

    def f(x, k):
        a = k.v
        k.v = 5
        b = k.v
        del k.v
        return x * (a + b), k._v
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_property_without_setter():
    log = []
    K = _prop_class(log)

    def f(x, k):
        def assign():
            k.ro = 2
        return x + 1, caught(assign, AttributeError)
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_property_attributeerror_falls_to_getattr():
    log = []
    K = _prop_class(log)

    def f(x, k):
        r = k.broken
        return x + 1, r
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_property_shadows_instance_dict():
    log = []
    K = _prop_class(log)
    k = K()
    k.__dict__["v"] = "instance"

    def f(x, k):
        return x + 1, k.v
    return Case(f, (torch.ones(2), k), log)


@P("attribute")
def attr_property_override_with_super():
    class Base:
        @property
        def size(self):
            return 2

    class Child(Base):
        @property
        def size(self):
            return super().size * 10

    def f(x, c):
        return x * c.size
    return Case(f, (torch.ones(2), Child()))


@P("attribute")
def attr_cached_property_writes_instance_dict():
    log = []

    class K:
        @functools.cached_property
        def heavy(self):
            log.append("compute")
            return 3

    def f(x, k):
        return x * k.heavy, sorted(k.__dict__)
    return Case(f, (torch.ones(2), K()), log)


# --------------------------------------------------------------------------- __getattr__ / __getattribute__ / __setattr__

@P("attribute")
def attr_getattr_only_for_missing():
    log = []
    K = _prop_class(log)

    def f(x, k):
        r = (k._v, k.missing)
        return x + 1, r
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_getattribute_sees_every_access():
    log = []

    class K:
        def __init__(self):
            self.a = 1

        def __getattribute__(self, name):
            log.append(("getattribute", name))
            return object.__getattribute__(self, name)

        def method(self):
            return self.a + 1

    def f(x, k):
        return x * k.method(), k.a
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_getattribute_attributeerror_then_getattr():
    log = []

    class K:
        def __getattribute__(self, name):
            log.append(("getattribute", name))
            if name == "ghost":
                raise AttributeError(name)
            return object.__getattribute__(self, name)

        def __getattr__(self, name):
            log.append(("getattr", name))
            return 42

    def f(x, k):
        return x + k.ghost
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_hasattr_getattr_default():
    log = []

    class K:
        def __getattr__(self, name):
            log.append(("getattr", name))
            if name.startswith("ok"):
                return 1
            raise AttributeError(name)

    def f(x, k):
        r = (hasattr(k, "ok_a"), hasattr(k, "nope"), getattr(k, "nope", "dflt"), getattr(k, "ok_b", "dflt"))
        return x + 1, r
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_hasattr_other_exception_propagates():
    class K:
        def __getattr__(self, name):
            raise KeyError(name)

    def f(x, k):
        try:
            r = hasattr(k, "z")
        except KeyError as e:
            r = ("KeyError", str(e))
        return x + 1, r
    return Case(f, (torch.ones(2), K()))


@P("attribute")
def attr_missing_attribute_message():
    class K:
        pass

    def f(x, k):
        return x + 1, caught(lambda: k.nope, AttributeError), caught(lambda: K.nope, AttributeError)
    return Case(f, (torch.ones(2), K()))


@P("attribute")
def attr_setattr_and_delattr_overrides():
    log = []

    class K:
        def __setattr__(self, name, value):
            log.append(("setattr", name, value))
            object.__setattr__(self, name, value * 2)

        def __delattr__(self, name):
            log.append(("delattr", name))
            object.__delattr__(self, name)

    def f(x, k):
        k.a = 3
        k.b = 4
        del k.b
        object.__setattr__(k, "c", 1)
        return x * k.a, sorted(vars(k))
    return Case(f, (torch.ones(2), K()), log)


@P("attribute")
def attr_dict_write_bypasses_setattr():
    log = []

    class K:
        def __setattr__(self, name, value):
            log.append(name)
            object.__setattr__(self, name, value)

    def f(x, k):
        k.__dict__["raw"] = 5
        return x * k.raw
    return Case(f, (torch.ones(2), K()), log)


# --------------------------------------------------------------------------- slots

def _slotted():
    class S:
        __slots__ = ("a", "b")

        def __init__(self):
            self.a = 1

    class SD:
        __slots__ = ("a", "__dict__")

    return S, SD


@P("attribute")
def attr_slots_get_set():
    S, _ = _slotted()

    def f(x, s):
        s.b = s.a + 1
        return x * s.b
    return Case(f, (torch.ones(2), S()))


@P("attribute")
def attr_slots_unset_read_attributeerror():
    S, _ = _slotted()

    def f(x, s):
        return x + 1, caught(lambda: s.b, AttributeError)
    return Case(f, (torch.ones(2), S()))


@P("attribute")
def attr_slots_assign_unknown_attributeerror():
    S, _ = _slotted()

    def f(x, s):
        def assign():
            s.z = 1
        return x + 1, caught(assign, AttributeError)
    return Case(f, (torch.ones(2), S()))


@P("attribute")
def attr_slots_delete_then_hasattr():
    S, _ = _slotted()

    def f(x, s):
        del s.a
        return x + 1, hasattr(s, "a")
    return Case(f, (torch.ones(2), S()))


@P("attribute")
def attr_slots_with_dict():
    _, SD = _slotted()

    def f(x, s):
        s.a = 1
        s.extra = 2
        return x * (s.a + s.extra), sorted(s.__dict__)
    return Case(f, (torch.ones(2), SD()))


# --------------------------------------------------------------------------- class vs instance, metaclass

@P("attribute")
def attr_instance_shadows_class_then_delete():
    class K:
        v = "class"

    def f(x, k):
        k.v = "inst"
        a = k.v
        del k.v
        return x + 1, (a, k.v)
    return Case(f, (torch.ones(2), K()))


@P("attribute")
def attr_instance_function_not_bound():
    class K:
        def m(self):
            return "method"

    k = K()
    k.m = lambda: "instance fn"

    def f(x, k):
        return x + 1, (k.m(), type(k).m(k))
    return Case(f, (torch.ones(2), k))


@P("attribute")
def attr_class_attr_write_in_fn():
    class K:
        scale = 2

    def f(x, k):
        type(k).scale = 5
        return x * k.scale
    return Case(f, (torch.ones(2), K()), state=lambda: K.scale)


@P("attribute")
def attr_staticmethod_classmethod_via_instance():
    class Base:
        @staticmethod
        def s(v):
            return v + 1

        @classmethod
        def c(cls):
            return cls.__name__

    class Child(Base):
        pass

    def f(x, k):
        return x * k.s(1), (k.c(), Base.c(), type(k).s(2))
    return Case(f, (torch.ones(2), Child()))


def _meta():
    class Meta(type):
        meta_attr = "meta"

        @property
        def meta_prop(cls):
            return "prop of " + cls.__name__

        def meta_method(cls):
            return cls.__name__ + "!"

        def __getattr__(cls, name):
            return "meta getattr " + name

    class K(metaclass=Meta):
        own = "own"

    return Meta, K


@P("attribute")
def attr_metaclass_attr_on_class():
    _, K = _meta()

    def f(x, k):
        return x + 1, (k.meta_attr, k.meta_prop, k.meta_method(), k.own)
    return Case(f, (torch.ones(2), K))


@P("attribute")
def attr_metaclass_attr_not_on_instance():
    _, K = _meta()

    def f(x, inst):
        return x + 1, (caught(lambda: inst.meta_attr, AttributeError),
                       caught(lambda: inst.meta_method, AttributeError))
    return Case(f, (torch.ones(2), K()))


@P("attribute")
def attr_metaclass_getattr_for_missing_class_attr():
    _, K = _meta()

    def f(x, k):
        return x + 1, k.anything
    return Case(f, (torch.ones(2), K))


@P("attribute")
def attr_metaclass_data_descriptor_beats_class_dict():
    class Meta(type):
        @property
        def shadow(cls):
            return "meta property"

    class K(metaclass=Meta):
        shadow = "class dict"

    def f(x, k, inst):
        return x + 1, (k.shadow, inst.shadow)
    return Case(f, (torch.ones(2), K, K()))


@P("attribute")
def attr_type_name_and_dict():
    class K:
        def __init__(self):
            self.a = 1

    def f(x, k):
        return x + 1, (type(k).__name__, k.__class__.__name__, dict(vars(k)), "a" in k.__dict__)
    return Case(f, (torch.ones(2), K()))


@pytest.mark.parametrize("name", P.params())
def test_attribute(name):
    run_probe(name)
