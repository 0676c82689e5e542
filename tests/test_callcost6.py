"""Probes for callcost6 (docs/call_cost.md):

- the input gather (guards/memory.py: InputWatch) with arguments passed in another order, the
  same tensor twice, a non-tensor in a tensor's place, with fewer and with more inputs than the
  fresh-index threshold, and the last argument changed through `.data`: each must recompile
  or give eager's result;
- a guard that reads an item of a dict whose key was deleted (a class member, a module global)
  is a plain miss: no "guard raised" warning, a recompile, eager's result or exception;
- a parameter's requires_grad changed by an unbound `requires_grad_` (ParamWatch and the
  versions tuple read it).
"""
import warnings

import pytest
import torch

from differential import REFERENCE, assert_same, compile_fn, counters

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's cache and recompile counts")


def recompiles():
    return counters()["recompiles"]["total"]


def _weigh(x):
    # shape, strides and values all change the result
    if type(x) is float:
        return x * 1000
    return x.sum() * x.shape[-1] + x.stride(0) * 10 + x.dim() * 100


def f4(a, b, c, d):
    return _weigh(a) + 2 * _weigh(b) + 3 * _weigh(c) + 4 * _weigh(d)


def f9(a, b, c, d, e, g, h, i, j):
    out = _weigh(a)
    for k, x in enumerate((b, c, d, e, g, h, i, j)):
        out = out + (k + 2) * _weigh(x)
    return out


def _inputs(n):
    torch.manual_seed(0)
    # shapes differ, so a permutation changes each argument's metadata
    return [torch.randn(2 + i) if i % 3 else torch.randn(2, 2 + i) for i in range(n)]


def _run(fn, c, xs, calls=3):
    for _ in range(calls):
        assert_same(fn(*xs), c(*xs))


@pytest.mark.parametrize("fn,n", [(f4, 4), (f9, 9)], ids=["4 inputs", "9 inputs"])
@pytest.mark.parametrize("how", ["reversed", "swap two", "one twice", "non-tensor"])
def test_arguments_rearranged(fn, n, how):
    xs = _inputs(n)
    c = compile_fn(fn, backend="eager")
    _run(fn, c, xs)
    before = recompiles()
    if how == "reversed":
        ys = xs[::-1]
    elif how == "swap two":
        ys = [xs[1], xs[0]] + xs[2:]
    elif how == "one twice":
        ys = [xs[0], xs[0]] + xs[2:]
    else:
        ys = [xs[0], 3.0] + xs[2:]
    _run(fn, c, ys)
    assert recompiles() - before == 1
    # and back: the first entry still takes the original arguments
    _run(fn, c, xs)
    assert recompiles() - before == 1


@pytest.mark.parametrize("fn,n", [(f4, 4), (f9, 9)], ids=["4 inputs", "9 inputs"])
def test_same_objects_changed_in_place(fn, n):
    xs = _inputs(n)
    c = compile_fn(fn, backend="eager")
    _run(fn, c, xs)
    before = recompiles()
    xs[n - 1].data = torch.randn(7, 7)        # the last argument, the end of the slice
    _run(fn, c, xs)
    assert recompiles() - before == 1


class Base:
    scale = 2.0

    def m(self, x):
        return x * 3


class Sub(Base):
    pass


def use_member(o, x):
    return o.m(x) + o.scale


def _no_guard_warning(record):
    return not [w for w in record if "guard" in str(w.message)]


def test_deleted_class_member_is_a_plain_miss():
    o, x = Sub(), torch.randn(3)
    c = compile_fn(use_member, backend="eager")
    _run(use_member, c, (o, x))
    errors = counters()["stats"]["guard_errors"]
    saved = Base.m
    try:
        del Base.m
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            for fn in (use_member, c):
                with pytest.raises(AttributeError, match="has no attribute 'm'"):
                    fn(o, x)
        assert _no_guard_warning(record)
        assert counters()["stats"]["guard_errors"] == errors
        Base.m = lambda self, x: x * 5
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            _run(use_member, c, (o, x))
        assert _no_guard_warning(record)
    finally:
        Base.m = saved


GLOBAL_SCALE = 3.0


def use_global(x):
    return x * GLOBAL_SCALE


def test_deleted_global_is_a_plain_miss():
    global GLOBAL_SCALE
    x = torch.randn(3)
    c = compile_fn(use_global, backend="eager")
    _run(use_global, c, (x,))
    errors = counters()["stats"]["guard_errors"]
    try:
        del GLOBAL_SCALE
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            for fn in (use_global, c):
                with pytest.raises(NameError, match="GLOBAL_SCALE"):
                    fn(x)
        assert _no_guard_warning(record)
        assert counters()["stats"]["guard_errors"] == errors
        GLOBAL_SCALE = 5.0
        _run(use_global, c, (x,))
    finally:
        GLOBAL_SCALE = 3.0


def test_other_guard_errors_still_warn():
    # a KeyError raised inside something a guard calls is not "the key is absent": it keeps
    # the guard-error path (counted, warned)
    from bytegraph.runtime.api import _raised_in_entry

    def inner():
        raise KeyError("k")

    src = "def g():\n    return inner()\n"
    ns = {"inner": inner}
    exec(compile(src, "<bytegraph entry g>", "exec"), ns)
    with pytest.raises(KeyError) as info:
        ns["g"]()
    assert not _raised_in_entry(info.value)
    ns = {"d": {}}
    exec(compile("def g():\n    return d['k']\n", "<bytegraph entry g>", "exec"), ns)
    with pytest.raises(KeyError) as info:
        ns["g"]()
    assert _raised_in_entry(info.value)


# --- a parameter's requires_grad changed by an unbound call (guards/memory.py: ParamWatch) ------

class Branchy(torch.nn.Module):
    def __init__(self, frozen):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(3, 3)
        self.b = torch.nn.Linear(3, 3)
        if frozen:          # a parameter made not requiring grad: no AutogradMeta yet
            self.b.weight = torch.nn.Parameter(torch.randn(3, 3), requires_grad=False)

    def forward(self, x):
        y = self.b(self.a(x))
        return y * 2 if self.b.weight.requires_grad else y * 3


def _check_module(m, c, x):
    for _ in range(2):
        e, r = m(x), c(x)
        assert_same(e, r)
        assert e.requires_grad == r.requires_grad


@pytest.mark.parametrize("frozen", [False, True], ids=["requires grad", "frozen"])
@pytest.mark.parametrize("setter", [
    lambda p, b: torch.Tensor.requires_grad_(p, b),
    lambda p, b: torch._C.TensorBase.requires_grad_(p, b),
], ids=["Tensor.requires_grad_", "TensorBase.requires_grad_"])
def test_unbound_requires_grad_on_a_parameter(frozen, setter):
    m = Branchy(frozen)
    x = torch.randn(2, 3)
    c = compile_fn(m, backend="eager")
    for _ in range(4):          # the parameter gather takes its snapshot
        _check_module(m, c, x)
    before = recompiles()
    setter(m.b.weight, frozen)
    _check_module(m, c, x)
    assert recompiles() - before == 1
    setter(m.b.weight, not frozen)       # and back: the first entry again
    _check_module(m, c, x)
    assert recompiles() - before == 1


def test_unbound_requires_grad_after_an_optimizer_step():
    # the tuple path (versions moved) must see the flag too
    m = Branchy(False)
    x = torch.randn(2, 3)
    c = compile_fn(m, backend="eager")
    for _ in range(3):
        _check_module(m, c, x)
    with torch.no_grad():
        m.b.weight.add_(1)
    torch.Tensor.requires_grad_(m.b.weight, False)
    _check_module(m, c, x)
