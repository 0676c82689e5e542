"""Red team 8: formatting values into strings inside compiled code -- f-string fields
(FORMAT_VALUE: conversions !s !r !a, specs, nested specs), `%` formatting, format()/str()/
repr() of tensors, objects whose __format__/__str__/__repr__ have side effects or raise,
f-strings inside try/except, tensor reprs that depend on torch.set_printoptions.

Bugs found:
- an f-string field without a conversion (`f"{obj}"`, `f"{obj:>5}"`) called str(obj), not
  type(obj).__format__(obj, spec): a user __format__ was ignored (wrong string, its side
  effects lost), and object's default accepted a non-empty spec that CPython refuses
  (TypeError). `!a` ran the object's real __repr__ at trace time.
- `f"{v!s:.2}"` of a constant skipped the `!s` conversion: format(1.5, ".2") is '1.5', eager's
  format("1.5", ".2") is '1.'. A spec a constant's type refuses (`f"{None:>5}"`, `f"{3:q}"`,
  `f"{x.shape:>30}"`) raised inside the trace: an internal error, the function run eagerly.
- `"%s" % t` for a tensor `t` ran str.__mod__ on the fake tensor: the result was the string
  'FakeTensor(..., size=())'. It now stops there and formats in Python. So did the tensor's
  own `t.__repr__()`, `t.__str__()`, `t.__format__("")` (and `t.__reduce_ex__(2)`,
  `t.__getstate__()` answered for the fake): now refused like `t.item()`.
"""
import operator

import pytest
import torch

import bytegraph
from differential import REFERENCE, compile_fn, counters, reset
from redteam8_harness import run, fallbacks, internal_errors

X1 = torch.tensor([1., -1., 2., 3.])


class Fmt:
    def __init__(self, log):
        self.log = log

    def __format__(self, spec):
        self.log.append(("fmt", spec))
        return f"F{len(self.log)}<{spec}>"

    def __str__(self):
        self.log.append("str")
        return "S"

    def __repr__(self):
        self.log.append("repr")
        return "R\xe9"


class Plain:
    def __str__(self):
        return "plain"


class BadFormat:
    def __format__(self, spec):
        return 3


class Raiser:
    def __format__(self, spec):
        raise ValueError("bad " + spec)

    def __repr__(self):
        raise KeyError("r")


def custom_format(x, log):
    o = Fmt(log)
    return x + 1, f"{o}|{o!s}|{o!r}|{o!a}|{o:>5}|{x.sum()}"


def custom_format_no_tensor(x, log):
    o = Fmt(log)
    return x + 1, f"{o}|{o!s}|{o:>5}|{o!a:>6}"


def default_format_with_spec(x):
    return x + 1, f"{Plain():>8}"


def default_format_no_spec(x):
    return x + 1, f"{Plain()}|{Plain()!s:>8}"


def format_returns_non_str(x):
    return x + 1, f"{BadFormat()}"


def raising_fields(x, log):
    try:
        s = f"{x.sum()}{Raiser():zz}"
    except ValueError as e:
        log.append(str(e))
        s = "caught"
    try:
        s2 = f"{x.max()!r}{Raiser()!r}"
    except KeyError as e:
        log.append(repr(e))
        s2 = "k"
    return x * 2, s, s2


def nested_specs(x, w, log):
    s = f"{x.sum():{w}}|{x[0]:>{w}.2f}|{x.mean()!s:^{w}}"
    log.append(s)
    return x - 1, s


def item_and_meta(x, log):
    v = x.sum().item()
    s = f"{v:.3f} {x.shape} {x.dtype} {x.device}"
    log.append(s)
    return s, x * 3


def int_tensor_specs(x, log):
    i = x.argmax()
    return f"{i:d}:{i:03d}:{x[0]:+.1e}", x.cos()


def in_loop(x, log):
    parts = []
    for i in range(3):
        parts.append(f"{i}={x[i]!r}")
        log.append(i)
    return "".join(parts), x.exp()


def containers_of_tensors(x):
    d = {"a": x.sum()}
    return f"{d}", f"{(x.max(), 1)}", f"{[x[0], x[1]]}", x * 2


def builtins_of_tensors(x):
    return format(x.sum(), ".2f"), str(x.mean()), repr(x[0]), "{}".format(x[2]), x + 1


def percent_s(x):
    return "%s" % x[1], x + 1


def percent_forms(x):
    s = "%s"
    s %= x
    return "%r|%a" % (x, x), "%d" % x[0], b"%d" % x[0], operator.mod("%s", x), s, x + 1


class Color:
    import enum

    class C(enum.IntEnum):
        RED = 1


def enum_field(x):
    c = Color.C.RED
    return x + 1, f"{c}|{c:03d}|{c!r}"


def conversion_then_spec(x):
    v = 1.5
    return f"{v!s:.2}|{v:.2}|{3!s:>3}|{'ab'!r:>6}|{2.5!a:^7}|{x.shape!s:>20}", x + 1


def bad_specs_on_constants(x, log):
    try:
        s = f"{None:>5}"
    except TypeError as e:
        log.append(str(e))
        s = "t"
    try:
        s2 = f"{3:q}"
    except ValueError as e:
        log.append(str(e))
        s2 = "v"
    try:
        s3 = f"{x.shape:>30}"
    except TypeError as e:
        log.append(str(e))
        s3 = "w"
    return s, s2, s3, x + 1


def bad_specs_on_objects(x, log):
    out = []
    for obj in (int, [1, 2], bad_specs_on_constants):
        try:
            out.append(f"{obj:>9}")
        except TypeError as e:
            log.append(str(e))
    return out, f"{[1, 2]}|{(1, 'a')}|{ {'k': 1} }|{int}", x + 1


def tensor_dunder_text(x):
    return x.__repr__(), x.__str__(), x.__format__(""), x[0].__repr__(), x + 1


def tensor_dunder_pickle(x):
    return x.__reduce_ex__(2)[0].__name__, x.__getstate__(), x + 1


class Shown:
    def __repr__(self):
        return "O!"

    def __format__(self, spec):
        return "F" + spec


def debug_specifier(x):
    o, n, s = Shown(), 3, "\xe9"
    return f"{n=}|{o=}|{o=:zz}|{s=}|{x.shape=}|{x[0]=}|{x.sum()=:.2f}", x + 1


def nested_fstrings(x):
    w = 6
    inner = f"{'ab':>{w}}"
    return f"[{inner}]{f'{x.max()}':>{w + 10}}", x + 1


def fstring_in_raise(x, log):
    try:
        raise ValueError(f"bad {x.min()}")
    except ValueError as e:
        log.append(str(e))
    return x + 1


_CASES = [
    (debug_specifier, [(X1,), (X1 * 2,)]),
    (nested_fstrings, [(X1,), (X1 * 2,)]),
    (fstring_in_raise, [(X1, []), (X1 * 2, [])]),
    (tensor_dunder_text, [(X1,), (X1 * 2,)]),
    (tensor_dunder_pickle, [(X1,)]),
    (conversion_then_spec, [(X1,)]),
    (bad_specs_on_constants, [(X1, [])]),
    (bad_specs_on_objects, [(X1, [])]),
    (custom_format, [(X1, []), (X1 * 2, [])]),
    (custom_format_no_tensor, [(X1, []), (X1 * 2, [])]),
    (default_format_with_spec, [(X1,)]),
    (default_format_no_spec, [(X1,)]),
    (format_returns_non_str, [(X1,)]),
    (raising_fields, [(X1, [])]),
    (nested_specs, [(X1, 12, []), (X1, 15, []), (X1 + 1, 12, [])]),
    (item_and_meta, [(X1, []), (X1 * 2, [])]),
    (int_tensor_specs, [(X1, []), (-X1, [])]),
    (in_loop, [(X1, []), (-X1, [])]),
    (containers_of_tensors, [(X1,), (X1 * 2,)]),
    (builtins_of_tensors, [(X1,), (X1 * 2,)]),
    (percent_s, [(X1,), (X1 * 2,), (torch.tensor(3),)]),
    (percent_forms, [(torch.tensor(2),), (torch.tensor(5),)]),
    (enum_field, [(X1,)]),
]


@pytest.mark.parametrize("fn,argsets", _CASES, ids=[c[0].__name__ for c in _CASES])
def test_formatting(fn, argsets):
    run(fn, *argsets)
    assert internal_errors() == 0


def test_user_format_runs_once_per_field():
    log = []
    c = run(custom_format_no_tensor, (X1, log))
    assert not fallbacks(), fallbacks()


def test_print_options_between_calls():
    def f(x):
        return f"{x}|{x!r}", x * 1
    reset()
    c = compile_fn(f, backend="eager")
    x = torch.tensor([1.123456789, 2.0])
    try:
        for prec in (4, 2, 8):
            torch.set_printoptions(precision=prec)
            assert f(x)[0] == c(x)[0]
    finally:
        torch.set_printoptions(profile="default")
