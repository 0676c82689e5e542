"""Differential programs: trace-time control flow (if/while/for/break/else, try/with, assert, ternary, match)."""
import contextlib

import pytest
import torch
import torch.nn as nn

from differential import check, tensors_like


def ids(fn):
    return fn.__name__


# --------------------------------------------------------------------------- if on trace-time values
def cf_if_shape(x):
    if x.shape[0] > 2:
        return x * 2
    return x * 3


def cf_if_dtype(x):
    if x.dtype == torch.float32:
        y = x + 1
    elif x.dtype == torch.float64:
        y = x - 1
    else:
        y = x
    return y


def cf_if_ndim_elif(x):
    if x.ndim == 1:
        return x
    elif x.ndim == 2:
        return x.sum(0)
    else:
        return x.flatten()


def cf_if_is_floating_point(x):
    if x.is_floating_point():
        return x.round()
    return x


def cf_if_python_flag(x):
    flag, n = True, 0
    if flag and not n:
        x = x + 1
    if n:
        x = x * 100
    return x


def cf_if_none_default(x):
    bias = None
    mask = torch.ones_like(x)
    if bias is not None:
        x = x + bias
    if mask is not None:
        x = x * mask
    return x


def cf_ternary(x):
    scale = 2.0 if x.shape[1] == 4 else 3.0
    act = torch.relu if x.dim() > 1 else torch.tanh
    return act(x) * scale, "four" if x.shape[1] == 4 else "other"


def cf_and_or_values(x):
    cfg = {}
    eps = cfg.get("eps") or 1e-5
    name = cfg.get("name", "") and "named"
    t = None and x
    return x + eps, name, t, (x.shape[0] and x.shape[1]), (0 or x.shape[1])


def cf_nested_if(x):
    n, m = x.shape
    if n > 1:
        if m > 10:
            return x * 0
        else:
            if n + m == 7:
                return x + 7
    return x


def cf_if_requires_grad(x):
    if x.requires_grad:
        return x * 2
    return x * 3


def cf_if_device_type(x):
    if x.device.type == "cpu":
        return x + 1
    return x - 1


def cf_if_container_truthiness(x):
    xs, d, s = [], {"a": 1}, ""
    if xs:
        x = x + 10
    if d:
        x = x + 1
    if not s:
        x = x * 2
    return x


IFS = [cf_if_shape, cf_if_dtype, cf_if_ndim_elif, cf_if_is_floating_point, cf_if_python_flag, cf_if_none_default,
       cf_ternary, cf_and_or_values, cf_nested_if, cf_if_requires_grad, cf_if_device_type, cf_if_container_truthiness]


@pytest.mark.parametrize("fn", IFS, ids=ids)
def test_if(fn):
    check(fn, *tensors_like((3, 4)))


def test_if_dtype_int_input():
    # The int path returns the input untouched: no tensor op, so bytegraph compiles no graph
    # (torch.compile counts one empty graph here); only outputs are compared.
    check(cf_if_is_floating_point, torch.arange(6).reshape(2, 3), graphs=None)


# --------------------------------------------------------------------------- loops
def cf_while_counter(x):
    i = 0
    while i < 3:
        x = x * 2
        i += 1
    return x, i


def cf_while_on_shape(x):
    while x.dim() < 4:
        x = x.unsqueeze(0)
    return x


def cf_while_break_else(x):
    i = 0
    while True:
        i += 1
        x = x + i
        if i >= 4:
            break
    n = 0
    while n < 2:
        n += 1
    else:
        x = x * 10
    return x


def cf_for_break_continue(x):
    for i in range(10):
        if i % 2 == 0:
            continue
        if i > 5:
            break
        x = x + i
    return x, i


def cf_for_else(x):
    for v in [1, 2, 3]:
        if v == 99:
            break
    else:
        x = x * -1
    for v in [1, 2, 3]:
        if v == 2:
            break
    else:
        x = x * 1000
    return x


def cf_for_over_tuple_list(x):
    for scale in (0.5, 2.0):
        x = x * scale
    for t in [x, x + 1]:
        x = x + t
    return x


def cf_for_dict_views(x):
    d = {"a": 1.0, "b": 2.0}
    for k in d:
        x = x + d[k]
    for v in d.values():
        x = x * v
    for k, v in d.items():
        x = x - len(k) * v
    for k in d.keys():
        x = x + len(k)
    return x


def cf_for_zip_enumerate(x):
    ws = [1, 2, 3]
    for i, (w, row) in enumerate(zip(ws, x.unbind(0))):
        x = x + w * i * row
    return x


def cf_for_tensor_rows(x):
    acc = torch.zeros(x.shape[1])
    for row in x:
        acc = acc + row
    return acc


def cf_nested_loops(x):
    total = 0
    for i in range(3):
        for j in range(i):
            if j == 1:
                break
            total += i * j + 1
    return x * total


def cf_loop_building_list(x):
    outs = []
    for i in range(x.shape[0]):
        outs.append(x[i] * i)
    return torch.stack(outs), len(outs)


def cf_for_string(x):
    for ch in "ab":
        x = x + ord(ch)
    return x


LOOPS = [cf_while_counter, cf_while_on_shape, cf_while_break_else, cf_for_break_continue, cf_for_else,
         cf_for_over_tuple_list, cf_for_dict_views, cf_for_zip_enumerate, cf_for_tensor_rows, cf_nested_loops,
         cf_loop_building_list, cf_for_string]


@pytest.mark.parametrize("fn", LOOPS, ids=ids)
def test_loops(fn):
    check(fn, *tensors_like((3, 4)))


class _Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
        self.named = nn.ModuleDict({"a": nn.Linear(4, 4), "b": nn.ReLU()})
        self.seq = nn.Sequential(nn.Linear(4, 4), nn.Tanh())


torch.manual_seed(0)
_STACK = _Stack()


def cf_for_modulelist(x):
    m = _STACK
    for layer in m.layers:
        x = layer(x)
    for i, layer in enumerate(m.layers):
        if i == 1:
            continue
        x = x + layer(x)
    return x


def cf_for_moduledict(x):
    m = _STACK
    for name, mod in m.named.items():
        x = mod(x)
    for key in m.named:
        x = x + len(key)
    return x


def cf_for_sequential(x):
    m = _STACK
    for mod in m.seq:
        x = mod(x)
    return x + m.layers[-1](x) + m.seq[0](x)


@pytest.mark.parametrize("fn", [cf_for_modulelist, cf_for_moduledict, cf_for_sequential], ids=ids)
def test_loops_over_modules(fn):
    check(fn, *tensors_like((2, 4)))


# --------------------------------------------------------------------------- try / with / assert / match
def cf_try_except_finally(x):
    try:
        y = x + 1
    except ValueError:
        y = x - 1
    finally:
        z = y * 2
    return y, z


def cf_try_else(x):
    try:
        y = x * 2
    except (KeyError, IndexError):
        y = x
    else:
        y = y + 1
    return y


def cf_try_nested(x):
    try:
        try:
            x = x + 1
        finally:
            x = x * 2
    except Exception:
        x = x * 0
    return x


class _Ctx:
    def __init__(self, scale):
        self.scale = scale
        self.entered = False

    def __enter__(self):
        self.entered = True
        return self.scale

    def __exit__(self, *exc):
        self.entered = False
        return False


def cf_with_user_ctx(x):
    ctx = _Ctx(3.0)
    with ctx as s:
        y = x * s
        inside = ctx.entered
    return y, inside, ctx.entered


@contextlib.contextmanager
def _scaled(v):
    yield v * 2


def cf_with_contextmanager(x):
    with _scaled(1.5) as s:
        y = x * s
    return y


def cf_with_nullcontext(x):
    with contextlib.nullcontext():
        y = x - 1
    with contextlib.nullcontext(5) as five:
        y = y * five
    return y


def cf_assert(x):
    assert x.dim() == 2, "expected a matrix"
    assert x.shape[-1] % 2 == 0
    n = 3
    assert n > 0 and isinstance(n, int)
    return x + n


def cf_match_value(x):
    mode = "mean"
    match mode:
        case "sum":
            return x.sum()
        case "mean":
            return x.mean()
        case _:
            return x


def cf_match_sequence(x):
    shape = tuple(x.shape)
    match shape:
        case (n,):
            return x * n
        case (n, m):
            return x * n + m
        case _:
            return x


def cf_match_mapping(x):
    cfg = {"act": "relu", "scale": 2}
    match cfg:
        case {"act": "relu", "scale": s}:
            return torch.relu(x) * s
        case _:
            return x


def cf_early_return_in_loop(x):
    for i in range(5):
        if i == 2:
            return x * i
    return x


OTHER = [cf_try_except_finally, cf_try_else, cf_try_nested, cf_with_user_ctx, cf_with_contextmanager,
         cf_with_nullcontext, cf_assert, cf_match_value, cf_match_sequence, cf_match_mapping, cf_early_return_in_loop]


@pytest.mark.parametrize("fn", OTHER, ids=ids)
def test_try_with_assert_match(fn):
    check(fn, *tensors_like((3, 4)))
