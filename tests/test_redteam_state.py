"""Red-team probes of state that changes between calls (globals, closures, objects, torch state)."""
import abc
import collections
import collections.abc
import contextlib
import copy
import dataclasses
import enum
import functools
import io
import itertools
import logging
import math
import operator
import os
import random
import sys
import time
import typing
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bytegraph
from differential import assert_same, tensors_like  # noqa: F401  (assert_same used by manual probes)
from redteam_harness import both, cmp, eq, params, registrars, same  # noqa: F401

P = {}   # probe name -> build(): (fn, args[, kwargs[, state_fn]]), compared by same()
M = {}   # probe name -> self-checking callable (state changes between calls)
probe, manual = registrars(P, M)

# --------------------------------------------------------------------------- state changes between calls

@manual
def closure_rebind():
    k = 1
    def f(x): return x * k
    def setup(i):
        nonlocal k; k = [1, 5, 7][i]
    e, c = both(f, [(torch.ones(2),)] * 3, setup); eq(e, c)

HELP = lambda t: t + 1
@manual
def global_fn_rebind():
    global HELP
    def f(x): return HELP(x)
    def setup(i):
        global HELP; HELP = [lambda t: t + 1, lambda t: t * 10, lambda t: t - 1][i]
    e, c = both(f, [(torch.ones(2),)] * 3, setup); eq(e, c)

@manual
def obj_attr_changed():
    class O: scale = 2
    o = O()
    def f(x, o): return x * o.scale
    def setup(i):
        if i == 0: O.scale = 2; o.__dict__.pop("scale", None)
        if i == 1: o.scale = 3
        if i == 2: O.scale = 4; del o.scale
    e, c = both(f, [(torch.ones(2), o)] * 3, setup); eq(e, c)

@manual
def list_arg_content_changed():
    lst = [1, 2]
    def f(x, l): return x * sum(l)
    def setup(i): lst[1] = i + 10
    e, c = both(f, [(torch.ones(2), lst)] * 3, setup); eq(e, c)

@manual
def train_eval_toggle():
    m = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.BatchNorm1d(3))
    def f(x): return m(x)
    def setup(i):
        torch.manual_seed(0); m.train(i % 2 == 0)
    x = torch.randn(4, 3)
    sd = copy.deepcopy(m.state_dict())
    def setup2(i):
        if i == 0: m.load_state_dict(sd)
        setup(i)
    e, c = both(f, [(x,)] * 4, setup2); eq(e, c)

@manual
def param_replaced():
    m = nn.Linear(2, 2)
    def f(x): return m(x)
    w0, b0 = m.weight, m.bias
    def setup(i):
        if i == 0: m.weight, m.bias = w0, b0
        if i == 1: m.weight = nn.Parameter(torch.ones(2, 2))
        if i == 2: m.bias = None
    x = torch.randn(2)
    e, c = both(f, [(x,)] * 3, setup); eq(e, c)

@manual
def grad_mode_outside_toggle():
    w = torch.randn(2, requires_grad=True)
    def f(x): return x * w
    res = {}
    for mode in "ec":
        bytegraph.reset()
        g = bytegraph.compile(f, backend="eager") if mode == "c" else f
        a = g(torch.ones(2))
        with torch.no_grad():
            b = g(torch.ones(2))
        res[mode] = (a.requires_grad, b.requires_grad)
    assert res["e"] == res["c"], res

@manual
def default_dtype_toggle():
    def f(x): return torch.zeros(2) + x, torch.tensor([1.5]).dtype
    out = {}
    for mode in "ec":
        bytegraph.reset()
        g = bytegraph.compile(f, backend="eager") if mode == "c" else f
        r = [g(torch.ones(2, dtype=torch.float64))]
        torch.set_default_dtype(torch.float64)
        try:
            r.append(g(torch.ones(2, dtype=torch.float64)))
        finally:
            torch.set_default_dtype(torch.float32)
        out[mode] = r
    eq(out["e"], out["c"])

@manual
def defaults_changed():
    def f(x, s=2): return x * s
    def setup(i):
        f.__defaults__ = ((2,), (5,))[i]
    e, c = both(f, [(torch.ones(2),)] * 2, setup); eq(e, c)

@manual
def kwdefaults_changed():
    def f(x, *, s=2): return x * s
    def setup(i):
        f.__kwdefaults__ = ({"s": 2}, {"s": 5})[i]
    e, c = both(f, [(torch.ones(2),)] * 2, setup); eq(e, c)

@manual
def id_of_input():
    def f(x): return id(x)
    xs = [torch.ones(2), torch.ones(2)]
    e, c = both(f, [(xs[0],), (xs[1],)]); eq(e, c)

@manual
def data_ptr_of_input():
    def f(x): return x.data_ptr()
    xs = [torch.ones(2), torch.ones(2)]
    e, c = both(f, [(xs[0],), (xs[1],)]); eq(e, c)

@manual
def python_random():
    def f(x): return x * random.random(), random.randint(0, 100)
    def setup(i): random.seed(i)
    e, c = both(f, [(torch.ones(2),)] * 3, setup); eq(e, c)

@manual
def python_random_state_advances():
    def f(x): return x * random.random()
    out = {}
    for mode in "ec":
        bytegraph.reset(); random.seed(0)
        g = bytegraph.compile(f, backend="eager") if mode == "c" else f
        r = [g(torch.ones(1)) for _ in range(3)]
        out[mode] = r + [random.random()]
    eq(out["e"], out["c"])

@manual
def time_time():
    def f(x): return x, time.time() > 0, time.perf_counter() >= 0
    e, c = both(f, [(torch.ones(2),)] * 2); eq(e, c)

@manual
def torch_initial_seed():
    def f(x): return x + torch.initial_seed()
    def setup(i): torch.manual_seed(i + 3)
    e, c = both(f, [(torch.ones(2),)] * 3, setup); eq(e, c)

@manual
def rng_state_get():
    def f(x): return torch.get_rng_state().sum() + x
    def setup(i): torch.manual_seed(i + 3)
    e, c = both(f, [(torch.ones(2),)] * 3, setup); eq(e, c)

@manual
def num_threads():
    def f(x): return x * torch.get_num_threads()
    n0 = torch.get_num_threads()
    def setup(i): torch.set_num_threads(max(1, n0 - i))
    try:
        e, c = both(f, [(torch.ones(2),)] * 2, setup); eq(e, c)
    finally:
        torch.set_num_threads(n0)

@manual
def environ_read():
    def f(x): return x * int(os.environ.get("BG_RT_K", "1"))
    def setup(i): os.environ["BG_RT_K"] = str(i + 2)
    try:
        e, c = both(f, [(torch.ones(2),)] * 2, setup); eq(e, c)
    finally:
        os.environ.pop("BG_RT_K", None)

CNT = itertools.count()
@manual
def global_itertools_count():
    global CNT
    def f(x): return x + next(CNT)
    out = {}
    for mode in "ec":
        global CNT
        CNT = itertools.count()
        bytegraph.reset()
        g = bytegraph.compile(f, backend="eager") if mode == "c" else f
        out[mode] = [g(torch.ones(1)) for _ in range(3)] + [next(CNT)]
    eq(out["e"], out["c"])

GL = []
@manual
def global_list_len():
    def f(x): return x * len(GL)
    def setup(i):
        if i == 0: GL.clear()
        GL.append(i)
    GL.clear()
    e, c = both(f, [(torch.ones(2),)] * 3, setup); GL.clear(); eq(e, c)

@manual
def class_swap():
    class A:
        def go(self, x): return x + 1
    class B:
        def go(self, x): return x * 10
    o = A()
    def f(x, o): return o.go(x)
    def setup(i):
        if i == 1: o.__class__ = B
        if i == 0: o.__class__ = A
    e, c = both(f, [(torch.ones(2), o)] * 2, setup); eq(e, c)

@manual
def method_monkeypatch_instance():
    class A:
        def go(self, x): return x + 1
    o = A()
    def f(x): return o.go(x)
    def setup(i):
        if i == 1: o.go = lambda x: x * 100
        if i == 0: o.__dict__.pop("go", None)
    e, c = both(f, [(torch.ones(2),)] * 2, setup); eq(e, c)

@manual
def tensor_attr_on_tensor():
    def f(x): return x * getattr(x, "scale", 1)
    x = torch.ones(2)
    def setup(i):
        if i == 1: x.scale = 5
        if i == 0 and hasattr(x, "scale"): del x.scale
    e, c = both(f, [(x,)] * 2, setup); eq(e, c)

@manual
def neg_zero_tuple():
    def f(x, t): return x / t[0]
    e, c = both(f, [(torch.ones(1), (0.0,)), (torch.ones(1), (-0.0,))]); eq(e, c)

@manual
def neg_zero_constant_int_vs_float_key():
    def f(x, d): return x * d[1]
    e, c = both(f, [(torch.ones(1), {1: 2}), (torch.ones(1), {1.0: 3})]); eq(e, c)

@manual
def float_vs_int_equal_value_in_list():
    def f(x, l): return x * l[0]
    e, c = both(f, [(torch.arange(2), [2]), (torch.arange(2), [2.0])]); eq(e, c)

@manual
def requires_grad_toggle_input():
    def f(x): return x * 2
    e, c = both(f, [(torch.ones(2),), (torch.ones(2, requires_grad=True),)]); eq(e, c)

@manual
def tensor_subclass_param_vs_tensor():
    def f(x): return type(x).__name__, x + 1
    e, c = both(f, [(torch.ones(2),), (nn.Parameter(torch.ones(2)),)]); eq(e, c)

@manual
def grad_set_between_calls():
    def f(x): return x.grad is None
    x = torch.ones(2, requires_grad=True)
    def setup(i):
        x.grad = None if i == 0 else torch.ones(2)
    e, c = both(f, [(x,)] * 2, setup)
    x.grad = None
    eq(e, c)

@manual
def version_between_calls():
    def f(x): return x._version
    xs = [torch.ones(2), torch.ones(2).add_(1)]
    e, c = both(f, [(xs[0],), (xs[1],)]); eq(e, c)

@manual
def is_inference_input():
    def f(x): return x.is_inference(), x * 2
    with torch.inference_mode():
        xi = torch.ones(2)
    e, c = both(f, [(torch.ones(2),), (xi,)]); eq(e, c)

@manual
def conj_input():
    def f(z): return z.is_conj(), z + 1
    z = torch.randn(2, dtype=torch.complex64)
    e, c = both(f, [(z.clone(),), (z.conj(),)]); eq(e, c)

@manual
def neg_bit_input():
    def f(z): return z.is_neg(), z * 1
    z = torch.randn(2, dtype=torch.complex64)
    e, c = both(f, [(z.clone(),), (z.conj().imag,)]); eq(e, c)

@manual
def named_tensor_like_storage_offset():
    def f(x): return x.storage_offset(), x + 1
    b = torch.arange(10.)
    e, c = both(f, [(b[1:5],), (b[2:6],)]); eq(e, c)

@manual
def sparse_input():
    def f(x): return x.is_sparse, (x * 2).to_dense()
    s = torch.eye(2).to_sparse()
    e, c = both(f, [(s,), (s,)]); eq(e, c)

@manual
def mutating_global_tensor_rebind():
    global GT
    GT = torch.ones(2)
    def f(x): return x + GT
    def setup(i):
        global GT
        GT = torch.full((2,), float(i))
    e, c = both(f, [(torch.ones(2),)] * 3, setup); eq(e, c)


# --------------------------------------------------------------------------- extra bug probes

@probe
def view_base_identity():
    def f(x):
        v = x[:, 1]
        return v._base is x
    return f, (torch.randn(3, 3),)


@manual
def neg_zero_float_arg():
    def f(x, s):
        return x / s
    e, c = both(f, [(torch.ones(2), 0.0), (torch.ones(2), -0.0)])
    eq(e, c)


@manual
def value_hash_dict_key_minimal():
    @dataclasses.dataclass(frozen=True)
    class K:
        a: int
    def f(x):
        return {K(1): x}[K(1)] + 1
    e, c = both(f, [(torch.ones(2),)])
    eq(e, c)

@pytest.mark.parametrize("name", params(P))
def test_program(name):
    same(P[name])


@pytest.mark.parametrize("name", params(M))
def test_program_between_calls(name):
    M[name]()

