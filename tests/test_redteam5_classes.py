"""redteam5: a class changed between two calls -- a special method added to it later
(`__setattr__`, `__call__`, `__getattr__`, `__bool__`, `__len__`, `__iter__`, `__index__`, ...),
a data descriptor shadowing an instance attribute, and `__bases__` reassigned (the MRO changes
while no class dict does). Each probe compiles a function reading an instance, changes the class
before the second call, and compares every call with eager (redteam4_harness.check)."""
import pytest
import torch

from redteam4_harness import X, check

P = {}


def later(name, body, mutate):
    def build():
        class A:
            def __init__(self):
                self.v = 1
        a = A()
        f = body(A, a)

        def args(i):
            if i == 1:
                mutate(A, a)
            return (X(0),)
        return f, args, lambda: dict(object.__getattribute__(a, "__dict__"))
    P[name] = build


def _setattr_then_read(A, a):
    def f(x):
        a.w = 2
        return x * a.w
    return f


def _callable(A, a):
    return lambda x: x * callable(a)


def _getattr_default(A, a):
    return lambda x: x * getattr(a, "zz", 3)


def _truth(A, a):
    return lambda x: x * (2 if a else 3)


def _iterate(A, a):
    def f(x):
        try:
            return x * len(list(a))
        except TypeError:
            return x
    return f


def _index(A, a):
    def f(x):
        try:
            return x * [1, 2, 3][a]
        except TypeError:
            return x
    return f


def _delattr(A, a):
    def f(x):
        a.q = 1
        del a.q
        return x
    return f


def _store(A, a):
    def f(x):
        a.v = 5
        return x * a.v
    return f


def _construct(A, a):
    return lambda x: x * A().v


later("setattr", _setattr_then_read,
      lambda A, a: setattr(A, "__setattr__", lambda s, n, v: object.__setattr__(s, n, v * 10)))
later("call", _callable, lambda A, a: setattr(A, "__call__", lambda s: 0))
later("getattr", _getattr_default, lambda A, a: setattr(A, "__getattr__", lambda s, n: 7))
later("bool", _truth, lambda A, a: setattr(A, "__bool__", lambda s: False))
later("len", _truth, lambda A, a: setattr(A, "__len__", lambda s: 0))
later("iter", _iterate, lambda A, a: setattr(A, "__iter__", lambda s: iter([1, 2])))
later("index", _index, lambda A, a: setattr(A, "__index__", lambda s: 2))
later("delattr", _delattr,
      lambda A, a: setattr(A, "__delattr__", lambda s, n: object.__setattr__(s, "deleted", n)))
later("data_descriptor", _store, lambda A, a: setattr(A, "v", property(lambda s: 11, lambda s, val: None)))
later("init", _construct, lambda A, a: setattr(A, "__init__", lambda s: setattr(s, "v", 9)))
later("getattribute", lambda A, a: (lambda x: x * a.v), lambda A, a: setattr(A, "__getattribute__", lambda s, n: 42))


def _bases_swap():
    class B1:
        k = 1

    class B2:
        k = 2

    class A(B1):
        pass
    a = A()

    def f(x):
        return x * a.k

    def args(i):
        if i == 1:
            A.__bases__ = (B2,)
        return (X(0),)
    return f, args, lambda: None


P["bases_swap"] = _bases_swap


def _bases_swap_method():
    class B1:
        def m(self, x):
            return x + 1

    class B2:
        def m(self, x):
            return x * 10

    class A(B1):
        pass
    a = A()

    def f(x):
        return a.m(x)

    def args(i):
        if i == 1:
            A.__bases__ = (B2,)
        if i == 2:
            A.__bases__ = (B1,)
        return (X(0),)
    return f, args, lambda: None


P["bases_swap_method"] = _bases_swap_method


@pytest.mark.parametrize("name", sorted(P))
def test_class_changed_between_calls(name):
    check(P[name], ncalls=3)


@pytest.mark.parametrize("name", ["setattr", "call", "bases_swap", "bases_swap_method"])
def test_class_changed_between_calls_fullgraph(name):
    check(P[name], ncalls=3, fullgraph=True)
