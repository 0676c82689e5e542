"""redteam6: lookups the trace made on a class without guarding them (redteam5's open
`static_lookup` items): `__new__`/`__init__` in construction, a metaclass's `__call__`,
`__getattr__` and `__getattribute__`, `__hash__` of a dict key / set element (and a metaclass's
for class keys), a dict subclass's `__iter__`, `__getattribute__` of a trace-made instance,
`__getattr__` after a property's AttributeError, nn.Module methods overridden by a subclass
later. Each probe changes a class between calls and compares every call with eager
(redteam4_harness.check); a few probes of the same paths without a change ride along."""
import pytest
import torch

from redteam4_harness import X, check

P = {}


def reg(f):
    P[f.__name__] = f
    return f

@reg
def new_added_later():
    class A:
        def __init__(self, v):
            self.v = v
    def f(x):
        a = A(2)
        return x * a.v, type(a).__name__
    class B:
        def __init__(self):
            self.v = 5
    def args(i):
        if i == 1: A.__new__ = staticmethod(lambda cls, v: B())
        return (X(0),)
    return f, args, lambda: None

@reg
def dict_sub_init_later():
    class D(dict):
        pass
    def f(x):
        d = D(a=1)
        return x * len(d), dict(d)
    def args(i):
        if i == 1:
            def init(self, **kw):
                dict.__init__(self, **kw)
                self["b"] = 2
            D.__init__ = init
        return (X(0),)
    return f, args, lambda: None

@reg
def hash_added_later_set():
    class A:
        pass
    a, b = A(), A()
    def f(x):
        s = {a, b}
        return x * len(s)
    def args(i):
        if i == 1:
            A.__hash__ = lambda self: 1
            A.__eq__ = lambda self, o: True
        return (X(0),)
    return f, args, lambda: None

@reg
def hash_none_later():
    class A:
        pass
    a = A()
    def f(x):
        d = {a: 1}
        return x * len(d)
    def args(i):
        if i == 1:
            A.__hash__ = None
        return (X(0),)
    return f, args, lambda: None

@reg
def hash_none_later_new_obj():
    class A:
        pass
    def f(x):
        a = A()
        d = {a: 1}
        return x * len(d)
    def args(i):
        if i == 1:
            A.__hash__ = None
        return (X(0),)
    return f, args, lambda: None

@reg
def hash_in_base_later():
    class B: pass
    class A(B):
        pass
    a, b = A(), A()
    def f(x):
        return x * len({a: 1, b: 2})
    def args(i):
        if i == 1:
            B.__hash__ = lambda self: 1
            B.__eq__ = lambda self, o: True
        return (X(0),)
    return f, args, lambda: None

@reg
def setattr_hook_later_new_obj():
    class A:
        pass
    log = []
    def f(x):
        a = A()
        a.v = 3
        return x * a.v
    def args(i):
        if i == 1:
            def sa(self, n, v):
                log.append(n)
                object.__setattr__(self, n, v * 2)
            A.__setattr__ = sa
        return (X(0),)
    return f, args, lambda: list(log)

@reg
def delattr_hook_later():
    class A:
        def __setattr__(self, n, v):
            object.__setattr__(self, n, v * 2)
    a = A()
    log = []
    def f(x):
        a.v = 3
        del a.v
        return x
    def args(i):
        if i == 1:
            def da(self, n):
                log.append(n)
                object.__delattr__(self, n)
            A.__delattr__ = da
        return (X(0),)
    return f, args, lambda: (dict(a.__dict__), list(log))

@reg
def iter_added_later_unpack():
    class A:
        def __getitem__(self, i):
            if i < 2: return i + 1
            raise IndexError
    a = A()
    def f(x):
        p, q = a
        return x * p + q
    def args(i):
        if i == 1:
            A.__iter__ = lambda self: iter([10, 20])
        return (X(0),)
    return f, args, lambda: None

@reg
def iter_added_later_unpack_new():
    class A:
        def __getitem__(self, i):
            if i < 2: return i + 1
            raise IndexError
    def f(x):
        p, q = A()
        return x * p + q
    def args(i):
        if i == 1:
            A.__iter__ = lambda self: iter([10, 20])
        return (X(0),)
    return f, args, lambda: None

@reg
def dict_sub_iter_later():
    class D(dict):
        pass
    def f(x):
        d = D(a=1, b=2)
        k1, k2 = d
        return x, k1, k2
    def args(i):
        if i == 1:
            D.__iter__ = lambda self: iter(["z", "y"])
        return (X(0),)
    return f, args, lambda: None

@reg
def metaclass_getattr():
    class Meta(type):
        def __getattr__(cls, name):
            return 7
    class A(metaclass=Meta):
        pass
    def f(x):
        return x * A.zzz
    def args(i):
        if i == 1:
            Meta.__getattr__ = lambda cls, n: 9
        if i == 2:
            A.zzz = 1
        return (X(0),)
    return f, args, lambda: None

@reg
def metaclass_getattr_added_later():
    class Meta(type):
        pass
    class A(metaclass=Meta):
        pass
    def f(x):
        try:
            return x * A.zzz
        except AttributeError:
            return x
    def args(i):
        if i == 1:
            Meta.__getattr__ = lambda cls, n: 9
        return (X(0),)
    return f, args, lambda: None

@reg
def metaclass_property():
    class Meta(type):
        @property
        def zzz(cls):
            return 4
    class A(metaclass=Meta):
        zzz = 1
    def f(x):
        return x * A.zzz
    def args(i):
        if i == 1:
            Meta.zzz = property(lambda cls: 5)
        return (X(0),)
    return f, args, lambda: None

@reg
def metaclass_getattribute():
    class Meta(type):
        pass
    class A(metaclass=Meta):
        zzz = 1
    def f(x):
        return x * A.zzz
    def args(i):
        if i == 1:
            Meta.__getattribute__ = lambda cls, n: 5 if n == "zzz" else type.__getattribute__(cls, n)
        return (X(0),)
    return f, args, lambda: None

@reg
def class_call_metaclass_call_later():
    class Meta(type):
        pass
    class A(metaclass=Meta):
        def __init__(self):
            self.v = 1
    def f(x):
        return x * A().v
    class B:
        v = 3
    def args(i):
        if i == 1:
            Meta.__call__ = lambda cls, *a: B()
        return (X(0),)
    return f, args, lambda: None

@reg
def init_subclass_instance_new_in_base():
    class B:
        pass
    class A(B):
        def __init__(self):
            self.v = 1
    class C:
        v = 7
    def f(x):
        return x * A().v
    def args(i):
        if i == 1:
            B.__new__ = staticmethod(lambda cls: C())
        return (X(0),)
    return f, args, lambda: None

@reg
def property_attrerror_getattr_later():
    class A:
        @property
        def p(self):
            raise AttributeError("no p")
    a = A()
    def f(x):
        try:
            return x * a.p
        except AttributeError:
            return x
    def args(i):
        if i == 1:
            A.__getattr__ = lambda self, n: 4
        return (X(0),)
    return f, args, lambda: None

@reg
def getattribute_added_later():
    class A:
        def __init__(self):
            self.v = 2
    a = A()
    def f(x):
        return x * a.v
    def args(i):
        if i == 1:
            A.__getattribute__ = lambda self, n: 6 if n == "v" else object.__getattribute__(self, n)
        return (X(0),)
    return f, args, lambda: None

@reg
def getattribute_added_later_new_obj():
    class A:
        def __init__(self):
            self.v = 2
    def f(x):
        return x * A().v
    def args(i):
        if i == 1:
            A.__getattribute__ = lambda self, n: 6 if n == "v" else object.__getattribute__(self, n)
        return (X(0),)
    return f, args, lambda: None

@reg
def new_returns_other_type():
    class B:
        v = 5
    class A:
        def __new__(cls, v):
            return B()
        def __init__(self, v):
            self.v = v
    def f(x):
        return x * A(2).v
    return f, lambda i: (X(0),), lambda: None

@reg
def new_replaced_later():
    class A:
        def __new__(cls, v):
            o = object.__new__(cls)
            o.w = 1
            return o
        def __init__(self, v):
            self.v = v
    def f(x):
        a = A(2)
        return x * a.v + a.w
    def args(i):
        if i == 1:
            def n2(cls, v):
                o = object.__new__(cls)
                o.w = 10
                return o
            A.__new__ = n2
        return (X(0),)
    return f, args, lambda: None

@reg
def dict_bad_pair_len():
    def f(x):
        try:
            return dict([(1, 2, 3)])
        except ValueError as e:
            return str(e)
    return f, lambda i: (X(0),), lambda: None

@reg
def dict_of_dict_subclass_with_iter():
    class D(dict):
        def __iter__(self):
            return iter(["a"])
    d = None
    def f(x):
        d = D(a=1, b=2)
        return dict(d), x
    return f, lambda i: (X(0),), lambda: None

@reg
def class_key_metaclass_hash_later():
    class Meta(type):
        pass
    class A(metaclass=Meta):
        pass
    class B(metaclass=Meta):
        pass
    def f(x):
        return x * len({A: 1, B: 2})
    def args(i):
        if i == 1:
            Meta.__hash__ = lambda c: 1
            Meta.__eq__ = lambda c, o: True
        return (X(0),)
    return f, args, lambda: None

@reg
def module_parameters_overridden_later():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))
    m = M()
    def f(x):
        return x * len(list(m.parameters()))
    def args(i):
        if i == 1:
            M.parameters = lambda self, recurse=True: iter([])
        return (X(0),)
    return f, args, lambda: None

@reg
def module_getattr_in_subclass_later():
    class M(torch.nn.Module):
        pass
    m = M()
    def f(x):
        try:
            return x * m.zz
        except AttributeError:
            return x
    def args(i):
        if i == 1:
            M.__getattr__ = lambda self, n: 3
        return (X(0),)
    return f, args, lambda: None

@reg
def object_new_init_later():
    class A:
        pass
    def f(x):
        try:
            o = object.__new__(A)
            return x
        except TypeError:
            return x * 2
    def args(i):
        if i == 1:
            A.__init__ = lambda self, v: None
        return (X(0),)
    return f, args, lambda: None

@reg
def enum_class_missing_attr():
    import enum
    class E(enum.Enum):
        A = 1
    def f(x):
        try:
            return x * E.B.value
        except AttributeError as e:
            return x, str(e)
    return f, lambda i: (X(0),), lambda: None

@reg
def enum_class_member():
    import enum
    class E(enum.Enum):
        A = 1
    def f(x):
        return x * E.A.value, E["A"].name
    return f, lambda i: (X(0),), lambda: None


@reg
def descriptor_get_replaced():
    class D:
        def __get__(self, obj, cls=None):
            return 2
    class A:
        d = D()
    a = A()
    def f(x):
        return x * a.d
    def args(i):
        if i == 1:
            D.__get__ = lambda self, obj, cls=None: 7
        return (X(0),)
    return f, args, lambda: None
@reg
def descriptor_set_added_shadowing():
    class D:
        def __get__(self, obj, cls=None):
            return 2
    class A:
        d = D()
    a = A()
    a.__dict__["d"] = 5
    def f(x):
        return x * a.d
    def args(i):
        if i == 1:
            D.__set__ = lambda self, obj, v: None
        return (X(0),)
    return f, args, lambda: None
@reg
def descriptor_get_added_later():
    class D:
        pass
    class A:
        d = D()
    a = A()
    def f(x):
        return x * (2 if isinstance(a.d, D) else 3)
    def args(i):
        if i == 1:
            D.__get__ = lambda self, obj, cls=None: 7
        return (X(0),)
    return f, args, lambda: None


# refused (correctly) once the class changed, or from the start: not run with fullgraph=True
NOT_FULLGRAPH = ['class_call_metaclass_call_later', 'class_key_metaclass_hash_later', 'dict_of_dict_subclass_with_iter', 'hash_added_later_set', 'hash_in_base_later', 'iter_added_later_unpack', 'iter_added_later_unpack_new', 'metaclass_getattribute']


@pytest.mark.parametrize("name", sorted(P))
def test_class_lookup(name):
    check(P[name], ncalls=3)


@pytest.mark.parametrize("name", sorted(set(P) - set(NOT_FULLGRAPH)))
def test_class_lookup_fullgraph(name):
    check(P[name], ncalls=3, fullgraph=True)
