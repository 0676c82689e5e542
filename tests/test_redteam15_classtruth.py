"""Red team 15, family 6: a class as a condition (values/objects.py ClassValue.truth): `if cls:`,
`bool(cls)`, `not cls`, `cls and x`, with metaclasses defining __bool__ / __len__, Enum classes
(EnumMeta defines __bool__ and __len__), and in an __exit__ that tests `if typ:`."""
import enum

import pytest
import torch

from test_redteam15_harness import calls, check, x4

P = {}


def probe(f):
    P[f.__name__] = f
    return f


def mk(i):
    return (x4(), [])


class FalseMeta(type):
    def __bool__(cls):
        return False


class LenMeta(type):
    def __len__(cls):
        return len(cls.__dict__.get("items", ()))


class Falsy(metaclass=FalseMeta):
    pass


class EmptyLen(metaclass=LenMeta):
    items = ()


class FullLen(metaclass=LenMeta):
    items = (1, 2)


class Color(enum.Enum):
    RED = 1


class Nothing(enum.Enum):
    pass


class Flags(enum.IntFlag):
    A = 1


@probe
def metaclass_bool_false(C):
    def f(x, log):
        y = x * 2
        if Falsy:
            y = y + 1
        log.append(bool(Falsy))
        log.append(not Falsy)
        return y
    return calls(C, f, mk)


@probe
def metaclass_len(C):
    def f(x, log):
        y = x * 2
        a = y + 1 if EmptyLen else y - 1
        b = a * 3 if FullLen else a / 3
        log.append((bool(EmptyLen), bool(FullLen), len(FullLen)))
        return b
    return calls(C, f, mk)


@probe
def enum_classes(C):
    def f(x, log):
        y = x * 2
        if Color:
            y = y + 1
        if Nothing:              # an empty Enum: EnumType.__bool__ is True anyway
            y = y * 5
        log.append((bool(Flags), len(Color), len(Nothing)))
        return y
    return calls(C, f, mk)


@probe
def class_and_or(C):
    def f(x, log, cls):
        y = x * 2
        chosen = cls or int
        log.append(chosen.__name__)
        return y + (1 if (cls and FullLen) else 0)
    out = []
    for cls in (Falsy, EmptyLen, Color, float):
        out.append(calls(C, f, lambda i: (x4(), [], cls)))
    return out


class Ctx:
    def __init__(self, log):
        self.log = log

    def __enter__(self):
        return self

    def __exit__(self, typ, val, tb):
        self.log.append("exit with" if typ else "exit clean")
        return typ is not None and issubclass(typ, KeyError)


@probe
def exit_tests_exception_class(C):
    def f(x, log):
        with Ctx(log):
            y = x * 2
            if y.sum() > -100:
                raise KeyError("suppressed")
        with Ctx(log):
            y = y + 1
        return y
    return calls(C, f, mk)


@pytest.mark.parametrize("name", list(P))
def test_class_truth(name):
    check(P[name], max_recompiles=3 if name == "class_and_or" else 0)
