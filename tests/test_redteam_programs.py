"""Red-team program probes, part 1: Python language features, classes, containers, control flow."""
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

# --------------------------------------------------------------------------- probes

@probe
def nan_float_arg():
    def f(x, s): return x * s
    return f, (torch.ones(3), float("nan"))

@probe
def neg_zero_after_zero():
    def f(x, s): return x / s
    import bytegraph
    cf = bytegraph.compile(f, backend="eager")
    x = torch.ones(2)
    a = cf(x, 0.0); b = cf(x, -0.0)
    assert torch.equal(b, f(x, -0.0)), (b, f(x, -0.0))
    return f, (x, 1.0)

@probe
def int_then_float_arg():
    import bytegraph
    def f(x, s): return x * s
    cf = bytegraph.compile(f, backend="eager")
    x = torch.arange(3)
    cf(x, 2); r = cf(x, 2.0)
    assert r.dtype == f(x, 2.0).dtype, r.dtype
    r = cf(x, True) if False else None
    return f, (x, 2)

@probe
def bool_then_int_arg():
    import bytegraph
    def f(x, s): return x + s
    cf = bytegraph.compile(f, backend="eager")
    x = torch.tensor([True, False])
    cf(x, True); r = cf(x, 1)
    assert r.dtype == f(x, 1).dtype, (r.dtype, f(x, 1).dtype)
    return f, (x, 1)

@probe
def dict_order_arg():
    import bytegraph
    def f(d): return [k for k in d] + [v.sum() for v in d.values()]
    cf = bytegraph.compile(f, backend="eager")
    a, b = torch.ones(1), torch.zeros(1)
    cf({"a": a, "b": b}); r = cf({"b": b, "a": a})
    assert r[:2] == ["b", "a"], r
    return f, ({"a": a},)

@probe
def iterator_arg():
    def f(x, it): return x + next(it)
    return f, (torch.ones(2), iter([1, 2, 3]))

@probe
def lru_cache_fn():
    @functools.lru_cache(maxsize=None)
    def scale(n): return n * 2
    def f(x, n): return x * scale(n)
    return f, (torch.ones(2), 3), {}, lambda: scale.cache_info()

@probe
def cached_property_obj():
    class A:
        def __init__(self): self.calls = 0
        @functools.cached_property
        def w(self):
            self.calls += 1
            return torch.ones(2) * 3
    a = A()
    def f(x): return x + a.w
    return f, (torch.ones(2),), {}, lambda: (a.calls, "w" in a.__dict__)

@probe
def eq_side_effect_in():
    log = []
    class K:
        def __init__(self, v): self.v = v
        def __eq__(self, o):
            log.append(self.v); return isinstance(o, K) and o.v == self.v
        __hash__ = object.__hash__
    ks = [K(1), K(2), K(3)]
    def f(x): return x + (1 if K(3) in ks else 0)
    return f, (torch.ones(2),), {}, lambda: list(log)

@probe
def sorted_key_side_effect():
    log = []
    class O:
        def __init__(self, v): self.v = v
    objs = [O(3), O(1), O(2)]
    def key(o): log.append(o.v); return o.v
    def f(x): return [x * o.v for o in sorted(objs, key=key)]
    return f, (torch.ones(2),), {}, lambda: list(log)

@probe
def repr_side_effect_fstring():
    log = []
    class R:
        def __repr__(self): log.append(1); return "R()"
    r = R()
    def f(x): s = f"{r!r}"; return x + len(s)
    return f, (torch.ones(2),), {}, lambda: list(log)

@probe
def softmax_implicit_dim_warning():
    def f(x): return F.softmax(x)
    return f, (torch.randn(2, 3),)

@probe
def torch_tensor_copy_warning():
    def f(x): return torch.tensor(x) + 1
    return f, (torch.randn(3),)

@probe
def warnings_warn_inside():
    def f(x):
        warnings.warn("careful")
        return x + 1
    return f, (torch.randn(3),)

@probe
def print_inside():
    def f(x):
        print("shape", tuple(x.shape))
        return x + 1
    return f, (torch.randn(3),)

@probe
def logging_inside():
    lg = logging.getLogger("rtprobe")
    def f(x):
        lg.debug("x %s", x.shape)
        return x * 2
    return f, (torch.randn(3),)

@probe
def recursion_deep():
    def fact(n): return 1 if n <= 1 else n * fact(n - 1)
    def f(x): return x * (fact(150) % 7)
    return f, (torch.ones(2),)

@probe
def recursion_tensor():
    def rsum(ts): return ts[0] if len(ts) == 1 else ts[0] + rsum(ts[1:])
    def f(x): return rsum([x * i for i in range(20)])
    return f, (torch.ones(2),)

@probe
def generator_fn_compiled():
    def g(x):
        for i in range(3): yield x * i
    return g, (torch.ones(2),)

@probe
def generator_consumed():
    def g(x):
        for i in range(3): yield x * i
    def f(x): return list(g(x))
    return f, (torch.ones(2),)

@probe
def except_runtime_error_message():
    def f(x):
        try:
            return x.view(-1, 7)
        except RuntimeError as e:
            return str(e)
    return f, (torch.randn(2, 3),)

@probe
def except_type_error_message():
    def f(x):
        try:
            return x + "a"
        except TypeError as e:
            return str(e)
    return f, (torch.randn(2, 3),)

@probe
def except_index_error_message():
    def f(x):
        try:
            return x[5]
        except IndexError as e:
            return ("idx", str(e))
    return f, (torch.randn(2, 3),)

@probe
def keyerror_message():
    def f(x, d):
        try:
            return d["missing"]
        except KeyError as e:
            return x + len(e.args)
    return f, (torch.randn(2), {"a": 1})

@probe
def assert_fails():
    def f(x):
        assert x.shape[0] == 3, f"bad {x.shape}"
        return x
    return f, (torch.randn(2),)

@probe
def frozen_dataclass():
    @dataclasses.dataclass(frozen=True)
    class C:
        a: torch.Tensor
        n: int = 2
    def f(x):
        c = C(x, 3)
        try:
            c.n = 4
        except dataclasses.FrozenInstanceError:
            pass
        return c.a * c.n, dataclasses.replace(c, n=5).n
    return f, (torch.randn(2),)

@probe
def slots_dataclass_default_factory():
    @dataclasses.dataclass(slots=True)
    class C:
        xs: list = dataclasses.field(default_factory=list)
        k: int = 1
    def f(x):
        c = C(); c.xs.append(x); c.xs.append(x * 2)
        return sum(c.xs), dataclasses.astuple(C(k=3))
    return f, (torch.randn(2),)

@probe
def asdict_tensors():
    @dataclasses.dataclass
    class C:
        a: torch.Tensor
        b: list
    def f(x):
        d = dataclasses.asdict(C(x, [x, 1]))
        return d["a"] + 1, len(d["b"])
    return f, (torch.randn(2),)

@probe
def enum_ops():
    class Mode(enum.Enum):
        A = 1; B = 2
    class Fl(enum.Flag):
        R = 1; W = 2
    class IE(enum.IntEnum):
        X = 3
    def f(x, m):
        y = x * m.value + IE.X
        p = Fl.R | Fl.W
        return y, Fl.W in p, m is Mode.B, m.name, Mode(2) is Mode.B, Mode["A"]
    return f, (torch.ones(2), Mode.B)

@probe
def abc_isinstance():
    class Base(abc.ABC):
        @abc.abstractmethod
        def go(self, x): ...
    class Impl(Base):
        def go(self, x): return x + 1
    class Virt: pass
    Base.register(Virt)
    def f(x):
        return (isinstance([1], collections.abc.Sequence), isinstance(x.shape, collections.abc.Sequence),
                isinstance(x, collections.abc.Sequence), isinstance({}, collections.abc.Mapping),
                isinstance(Virt(), Base), Impl().go(x), isinstance(x, collections.abc.Iterable))
    return f, (torch.ones(2),)

@probe
def abc_instantiate_abstract():
    class Base(abc.ABC):
        @abc.abstractmethod
        def go(self): ...
    def f(x):
        try:
            Base()
        except TypeError as e:
            return x + 1, str(e)
        return x
    return f, (torch.ones(2),)

@probe
def getattr_fallback():
    class W:
        def __init__(self, t): self._t = t
        def __getattr__(self, n):
            if n.startswith("t_"): return getattr(self._t, n[2:])
            raise AttributeError(n)
    def f(x):
        w = W(x)
        return w.t_sum(), hasattr(w, "nope"), getattr(w, "nope", 7)
    return f, (torch.ones(2),)

@probe
def property_raising_attributeerror_getattr():
    class W:
        @property
        def p(self): raise AttributeError("inner")
        def __getattr__(self, n): return "fallback:" + n
    def f(x): return x + 1, W().p
    return f, (torch.ones(2),)

@probe
def metaclass_registry():
    REG = {}
    class Meta(type):
        def __new__(mcs, name, bases, ns):
            cls = super().__new__(mcs, name, bases, ns); REG[name] = cls; return cls
        def __call__(cls, *a, **k):
            inst = super().__call__(*a, **k); inst.made_by_meta = True; return inst
    class Layer(metaclass=Meta):
        def __init__(self, s): self.s = s
    def f(x):
        l = REG["Layer"](2)
        return x * l.s, l.made_by_meta
    return f, (torch.ones(2),)

@probe
def diamond_super():
    class A:
        def f(self, x): return x + 1
    class B(A):
        def f(self, x): return super().f(x) * 2
    class C(A):
        def f(self, x): return super().f(x) - 3
    class D(B, C):
        def f(self, x): return super(D, self).f(x) + 10
    def f(x): return D().f(x), [c.__name__ for c in D.__mro__]
    return f, (torch.ones(2),)

@probe
def descriptor_custom():
    class Pos:
        def __set_name__(self, owner, name): self.name = "_" + name
        def __get__(self, obj, t=None): return self if obj is None else getattr(obj, self.name)
        def __set__(self, obj, v):
            if v < 0: raise ValueError("neg")
            setattr(obj, self.name, v)
    class M:
        k = Pos()
        def __init__(self, k): self.k = k
    def f(x):
        m = M(2)
        try:
            m.k = -1
        except ValueError:
            m.k = 5
        return x * m.k
    return f, (torch.ones(2),)

@probe
def slots_class():
    class S:
        __slots__ = ("a", "b")
        def __init__(self): self.a = 1
    def f(x):
        s = S()
        try:
            s.c = 3
        except AttributeError as e:
            pass
        return x + s.a, hasattr(s, "b")
    return f, (torch.ones(2),)

@probe
def contextmanager_suppress():
    class Sup:
        def __enter__(self): return self
        def __exit__(self, t, v, tb): return t is ValueError
    def f(x):
        y = x
        with Sup():
            y = x + 1
            raise ValueError("x")
        return y * 2
    return f, (torch.ones(2),)

@probe
def exitstack():
    log = []
    def f(x):
        with contextlib.ExitStack() as st:
            st.enter_context(torch.no_grad())
            st.callback(log.append, "cb")
            y = x * 2
        return y, y.requires_grad
    return f, (torch.ones(2, requires_grad=True),), {}, lambda: list(log)

@probe
def suppress_ctx():
    def f(x):
        with contextlib.suppress(KeyError):
            {}["a"]
        return x + 1
    return f, (torch.ones(2),)

@probe
def nonlocal_counter():
    def make():
        n = 0
        def f(x):
            nonlocal n
            n += 1
            return x * n
        return f, lambda: n
    g, get = make()
    return g, (torch.ones(2),), {}, get

@probe
def global_counter():
    global G_COUNT
    G_COUNT = 0

    def f(x):
        global G_COUNT
        G_COUNT += 1
        return x + G_COUNT
    return f, (torch.ones(2),), {}, lambda: G_COUNT

@probe
def lambda_defaults_loop():
    def f(x):
        fs = [lambda t, i=i: t * i for i in range(3)]
        return [g(x) for g in fs]
    return f, (torch.ones(2),)

@probe
def args_kwargs_forward():
    def inner(a, b=2, *rest, scale=1.0, **kw):
        return a * b * scale + sum(rest) + len(kw)
    def f(x, *args, **kwargs): return inner(x, *args, **kwargs)
    return f, (torch.ones(2), 3, 4, 5), {"scale": 0.5, "z": 1}

@probe
def sorted_objects_key():
    class O:
        def __init__(self, n, t): self.n, self.t = n, t
    def f(x):
        os_ = [O(3, x), O(1, x * 2), O(2, x * 3)]
        return [o.t for o in sorted(os_, key=operator.attrgetter("n"), reverse=True)], max(os_, key=lambda o: o.n).n
    return f, (torch.ones(2),)

@probe
def dict_set_comprehension():
    def f(x):
        d = {i: x[i] * 2 for i in range(x.shape[0])}
        s = {int(k) % 2 for k in d}
        return d, s, {k: v for k, v in sorted(d.items(), reverse=True)}
    return f, (torch.randn(3),)

@probe
def set_of_tensors():
    def f(x, y):
        s = {x, y, x}
        return len(s), x in s, (x + 1) in s
    return f, (torch.randn(3), torch.randn(3))

@probe
def torch_size_ops():
    def f(x):
        s = x.shape
        return (s + (1,), s[1:], type(s[1:]), s.numel(), s == (2, 3), list(s), torch.Size([4]) + s,
                x.new_zeros(s[::-1]).shape, s.index(3), s.count(2), x.size()[-1], tuple(reversed(s)))
    return f, (torch.randn(2, 3),)

@probe
def einops_like():
    def rearrange_bhwc(x, h):
        b, n, c = x.shape
        w = n // h
        return x.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
    def f(x): return rearrange_bhwc(x, 2), x.unflatten(1, (2, -1)).flatten(0, 1)
    return f, (torch.randn(2, 6, 3),)

@probe
def distributions_logprob():
    D = torch.distributions
    def f(x, mu, s):
        n = D.Normal(mu, s)
        c = D.Categorical(logits=mu)
        return n.log_prob(x), c.log_prob(torch.tensor(1)), D.Independent(n, 1).log_prob(x), n.entropy()
    return f, (torch.randn(3), torch.randn(3), torch.rand(3) + 0.5)

@probe
def distributions_invalid():
    D = torch.distributions
    def f(x): return D.Normal(x, -torch.ones(3)).log_prob(x)
    return f, (torch.randn(3),)

@probe
def pad_sequence_probe():
    from torch.nn.utils.rnn import pad_sequence, pack_padded_sequence
    def f(a, b):
        p = pad_sequence([a, b], batch_first=True, padding_value=-1.0)
        pk = pack_padded_sequence(p, torch.tensor([3, 2]), batch_first=True)
        return p, pk.data, pk.batch_sizes
    return f, (torch.randn(3, 2), torch.randn(2, 2))

@probe
def functional_unusual():
    def f(x, t):
        return (F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=False),
                F.pad(x, (1, 2, 0, 1), mode="reflect"),
                F.cross_entropy(x.flatten(2).mean(-1), t, label_smoothing=0.1, ignore_index=1, reduction="none"),
                F.normalize(x, p=1, dim=-1, eps=1e-3),
                F.gelu(x, approximate="tanh"),
                F.one_hot(t, num_classes=3))
    return f, (torch.randn(2, 3, 4, 4), torch.tensor([0, 2]))

@probe
def one_hot_data_dependent():
    def f(t): return F.one_hot(t)
    return f, (torch.tensor([0, 2, 1]),)

@probe
def inplace_on_views():
    def f(x):
        v = x[:, 1]
        v.mul_(2)
        x.t()[0].add_(100)
        d = x.diagonal(); d.zero_()
        return x, v
    return f, (torch.randn(3, 3),)

@probe
def where_masked_fill_scalars():
    def f(x, i, b):
        return (torch.where(x > 0, x, 0), torch.where(i > 1, i, 2.5), x.masked_fill(x < 0, float("-inf")),
                i.masked_fill(i == 0, 7), torch.where(b, 1, 0), b & (i > 1), ~b, i // 2, i % -3, -i // 3, i / 2, i ** 2,
                torch.where(b, i, x))
    return f, (torch.randn(4), torch.tensor([0, 1, 2, -5]), torch.tensor([True, False, True, False]))

@probe
def int_masked_fill_float():
    def f(i): return i.masked_fill(i == 0, 1.5)
    return f, (torch.tensor([0, 1, 2]),)

@probe
def complex_ops():
    def f(z):
        c = z.conj()
        return (z * 1j, z.real, z.imag, torch.view_as_real(z), z.abs(), c.is_conj(), torch.angle(z), z.H if z.dim()==2 else z, c)
    return f, (torch.randn(2, 2, dtype=torch.complex64),)

@probe
def zero_dim_and_empty():
    def f(s, e):
        return (s + 1, s.dim(), s.shape, e.sum(), e.reshape(0, 3).mean(0), torch.cat([e, e]), e.numel(), s * e)
    return f, (torch.tensor(3.0), torch.empty(0))

@probe
def empty_max_raises():
    def f(e): return e.max()
    return f, (torch.empty(0),)

@probe
def noncontiguous_view_raises():
    def f(x): return x.t().view(-1)
    return f, (torch.randn(2, 3),)

@probe
def noncontiguous_input():
    def f(x): return x.contiguous().view(-1), x.is_contiguous(), x.stride(), x * 2
    return f, (torch.randn(4, 3).t(),)

@probe
def no_grad_inside():
    def f(x, w):
        with torch.no_grad():
            y = x @ w
        z = x * 2
        return y, z, y.requires_grad, z.requires_grad, torch.is_grad_enabled()
    return f, (torch.randn(2, 2, requires_grad=True), torch.randn(2, 2))

@probe
def inference_mode_inside():
    def f(x):
        with torch.inference_mode():
            y = x * 2
        return y, y.is_inference(), y.requires_grad
    return f, (torch.randn(2, requires_grad=True),)

@probe
def manual_seed_inside():
    def f(x):
        torch.manual_seed(0)
        return x + torch.randn(3), F.dropout(x, 0.5, training=True)
    return f, (torch.ones(3),)

@probe
def random_seed_outside():
    # seeding before each call (via a wrapper built fresh)
    import bytegraph
    def f(x): return x + torch.rand(3), torch.randint(0, 10, (3,)), torch.randperm(4)
    cf = bytegraph.compile(f, backend="eager")
    for _ in range(2):
        torch.manual_seed(1); e = f(torch.ones(3))
        torch.manual_seed(1); c = cf(torch.ones(3))
        for a, b in zip(e, c): assert torch.equal(a, b), (a, b)
    # RNG state after call
    torch.manual_seed(1); f(torch.ones(3)); se = torch.rand(1)
    torch.manual_seed(1); cf(torch.ones(3)); sc = torch.rand(1)
    assert torch.equal(se, sc)
    return f, (torch.ones(3),), {}, lambda: None

@probe
def backward_inside():
    def f(x, w):
        loss = ((x @ w) ** 2).mean()
        loss.backward()
        return loss.detach(), w.grad.clone()
    return f, (torch.randn(2, 3), torch.randn(3, 2, requires_grad=True))

@probe
def autograd_grad_inside():
    def f(x):
        y = (x ** 3).sum()
        (g,) = torch.autograd.grad(y, x, create_graph=True)
        return g, g.requires_grad
    return f, (torch.randn(3, requires_grad=True),)

@probe
def module_call_override():
    class M(nn.Module):
        def __init__(self):
            super().__init__(); self.l = nn.Linear(3, 2)
        def __call__(self, x): return self.l(x) * 2
    m = M()
    return m, (torch.randn(4, 3),)

@probe
def unregistered_modules():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.__dict__["hidden"] = [nn.Linear(3, 3), nn.ReLU()]
            self.table = {"a": nn.Linear(3, 3)}
        def forward(self, x):
            for m in self.hidden: x = m(x)
            return self.table["a"](x)
    return M(), (torch.randn(2, 3),)

@probe
def moduledict_iter():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.d = nn.ModuleDict({"z": nn.Linear(3, 3), "a": nn.Tanh(), "m": nn.Linear(3, 1)})
        def forward(self, x):
            names = []
            for k, m in self.d.items():
                x = m(x); names.append(k)
            return x, names, list(self.d.keys()), len(self.d), "a" in self.d
    return M(), (torch.randn(2, 3),)

@probe
def parametrize_orthogonal():
    import torch.nn.utils.parametrize as P_
    class Sym(nn.Module):
        def forward(self, X): return X.triu() + X.triu(1).transpose(-1, -2)
    m = nn.Linear(3, 3)
    P_.register_parametrization(m, "weight", Sym())
    return m, (torch.randn(2, 3),)

@probe
def weight_norm_mod():
    m = torch.nn.utils.weight_norm(nn.Linear(3, 2))
    return m, (torch.randn(2, 3),)

@probe
def weight_norm_param():
    m = torch.nn.utils.parametrizations.weight_norm(nn.Linear(3, 2))
    return m, (torch.randn(2, 3),)

@probe
def spectral_norm_train():
    m = torch.nn.utils.spectral_norm(nn.Linear(3, 2))
    return m, (torch.randn(2, 3),), {}, lambda: (m.weight_u.clone(), m.weight_v.clone())

@probe
def spectral_norm_param_train():
    m = torch.nn.utils.parametrizations.spectral_norm(nn.Linear(3, 2))
    return m, (torch.randn(2, 3),), {}, lambda: dict(m.state_dict())

@probe
def batchnorm_train_state():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.2))
    return m, (torch.randn(5, 3),), {}, lambda: {k: v.clone() for k, v in m.state_dict().items()}

@probe
def module_step_counter():
    class M(nn.Module):
        def __init__(self):
            super().__init__(); self.l = nn.Linear(2, 2); self.steps = 0
        def forward(self, x):
            self.steps += 1
            return self.l(x) / self.steps
    m = M()
    return m, (torch.randn(2, 2),), {}, lambda: m.steps

@pytest.mark.parametrize("name", params(P))
def test_program(name):
    same(P[name])

