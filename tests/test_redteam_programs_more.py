"""Red-team program probes, part 2: torch-heavy code, modules, training steps, transformers."""
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

@probe
def sgd_step_inside():
    p = nn.Parameter(torch.randn(3))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    def f(g):
        p.grad = g.clone()
        opt.step()
        opt.zero_grad()
        return p.detach().clone()
    return f, (torch.randn(3),), {}, lambda: (p.detach().clone(), p.grad, {k: dict(v) for k, v in opt.state.items()}.__len__())

@probe
def adam_step_inside():
    m = nn.Linear(3, 2)
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(m(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step, (torch.randn(4, 3), torch.randn(4, 2)), {}, lambda: [p.detach().clone() for p in m.parameters()]

@probe
def training_step_no_backward():
    m = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3))
    def step(x, y):
        logits = m(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean()
        return {"loss": loss, "acc": acc, "n": x.shape[0]}
    return step, (torch.randn(6, 4), torch.randint(0, 3, (6,)))

@probe
def clip_grad_norm_inside():
    m = nn.Linear(3, 2)
    for p in m.parameters(): p.grad = torch.randn_like(p) * 10
    def f(mx): return torch.nn.utils.clip_grad_norm_(m.parameters(), mx)
    return f, (1.0,), {}, lambda: [p.grad.clone() for p in m.parameters()]

@probe
def forward_hooks_print():
    m = nn.Linear(3, 2)
    m.register_forward_hook(lambda mod, i, o: print("hook", tuple(o.shape)))
    return m, (torch.randn(2, 3),)

@probe
def forward_pre_hook_kwargs():
    m = nn.Linear(3, 2)
    def pre(mod, args, kwargs): return (args[0] * 2,), kwargs
    m.register_forward_pre_hook(pre, with_kwargs=True)
    return m, (torch.randn(2, 3),)

@probe
def hook_modifies_output():
    m = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    m[0].register_forward_hook(lambda mod, i, o: o * 0.5)
    return m, (torch.randn(2, 3),)

@probe
def custom_autograd_fn():
    class Sq(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x); return x * x
        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors; return 2 * x * g
    def f(x): return Sq.apply(x).sum()
    return f, (torch.randn(3, requires_grad=True),)

@probe
def checkpoint_inside():
    from torch.utils.checkpoint import checkpoint
    l = nn.Linear(3, 3)
    def f(x): return checkpoint(lambda t: l(t).relu(), x, use_reentrant=False)
    return f, (torch.randn(2, 3, requires_grad=True),)

@probe
def param_input_type():
    def f(p): return type(p).__name__, isinstance(p, nn.Parameter), p * 2, p.is_leaf, (p * 2).is_leaf, p.grad_fn is None
    return f, (nn.Parameter(torch.randn(3)),)

@probe
def requires_grad_on_input():
    def f(x):
        x.requires_grad_(True)
        return (x * 2).sum(), x.requires_grad
    return f, (torch.randn(3),)

@probe
def leaf_inplace_raises():
    def f(x): return x.add_(1)
    return f, (torch.randn(3, requires_grad=True),)

@probe
def grad_attr_input():
    def f(x): return x.grad is None, x.is_leaf, x.grad_fn, x._version, x.data * 2
    return f, (torch.randn(3),)

@probe
def version_after_inplace():
    def f(x):
        v0 = x._version
        x.add_(1)
        return x._version - v0
    return f, (torch.randn(3),)

@probe
def return_input_identity():
    def f(x, y): return x, (x, y), [x]
    import bytegraph
    cf = bytegraph.compile(f, backend="eager")
    a, b = torch.randn(2), torch.randn(2)
    r = cf(a, b)
    assert r[0] is a and r[1][0] is a and r[2][0] is a and r[1][1] is b
    return f, (a, b)

@probe
def view_output_aliasing():
    import bytegraph
    def f(x): return x.view(-1), x[0]
    cf = bytegraph.compile(f, backend="eager")
    x = torch.zeros(2, 2)
    v, r = cf(x)
    v.add_(1); r.add_(1)
    assert x.tolist() == [[2, 2], [1, 1]], x
    assert v._base is x, "view base"
    return f, (x,)

@probe
def channels_last_out():
    def f(x): return torch.zeros_like(x, memory_format=torch.channels_last) + x, x.to(memory_format=torch.channels_last).is_contiguous()
    return f, (torch.randn(1, 3, 2, 2),)

@probe
def tensor_iteration_unpack():
    def f(x):
        a, *rest = x
        tot = sum(row.sum() for row in x)
        return a, rest, tot, [i for i, _ in enumerate(x)], list(zip(*x))[0]
    return f, (torch.randn(3, 2),)

@probe
def len_of_0d_raises():
    def f(x): return len(x)
    return f, (torch.tensor(1.0),)

@probe
def int_of_0d():
    def f(x, i): return int(i) + 1, float(x) * 2, bool(i), x.item(), range(i)[-1], [0] * i
    return f, (torch.tensor(1.5), torch.tensor(3))

@probe
def round_abs_tensor():
    def f(x): return round(x), abs(x), -x, +x, round(x, 1) if False else x.round(decimals=1), divmod(7, -2), round(2.5), math.floor(-0.5)
    return f, (torch.tensor([1.55, -2.5]),)

@probe
def bigint_ops():
    def f(x): return x * (2 ** 70 % 97), 2 ** 100 // 3, (-7) // 2, (-7) % 2, 7 / 2, int("12") + 1, float("1e400")
    return f, (torch.ones(2),)

@probe
def tensor_bigint_overflow():
    def f(x): return x + torch.tensor(2 ** 70)
    return f, (torch.ones(2),)

@probe
def string_formatting():
    def f(x):
        s = "%s|%5.2f|%d" % (x.dtype, 1.2345, x.shape[0])
        t = "{:>6}|{!r}|{}".format("a", "b", x.shape)
        u = f"{x.shape[0]:03d} {x.dtype!s} {x.device} {str(x.shape)} {repr(x.dtype)} {1/3:.3f}"
        return s, t, u, "-".join(map(str, x.shape)), " x ".split(), "abc".upper().center(7, "*"), x.sum() if "a" in s else x
    return f, (torch.ones(3, 2),)

@probe
def fstring_tensor_value():
    def f(x): return f"{x}", str(x.sum()), repr(x.shape)
    return f, (torch.ones(2),)

@probe
def zip_strict_raises():
    def f(x): return [a * b for a, b in zip([1, 2], [x], strict=True)]
    return f, (torch.ones(2),)

@probe
def match_statement():
    @dataclasses.dataclass
    class Pt:
        x: int
        y: int
    def f(t, spec):
        match spec:
            case {"kind": "scale", "by": by}: return t * by
            case [a, b, *_]: return t + a + b
            case Pt(x=0, y=yy): return t - yy
            case str() as s if s.startswith("n"): return -t
            case _: return t
    return f, (torch.ones(2), {"kind": "scale", "by": 3})

@probe
def try_finally_return_override():
    log = []
    def f(x):
        try:
            return x + 1
        finally:
            log.append("fin")
            if x.shape[0] == 2:
                return x - 1
    return f, (torch.ones(2),), {}, lambda: list(log)

@probe
def exception_chaining():
    class MyErr(Exception):
        def __init__(self, shape): super().__init__(f"bad shape {shape}"); self.shape = shape
    def f(x):
        try:
            try:
                raise MyErr(tuple(x.shape))
            except MyErr as e:
                raise ValueError("wrapped") from e
        except ValueError as v:
            return x * 2, str(v), str(v.__cause__), v.__cause__.shape, type(v.__context__).__name__
    return f, (torch.ones(2),)

@probe
def raise_custom_uncaught():
    class MyErr(RuntimeError): pass
    def f(x):
        if x.dim() == 1:
            raise MyErr(f"dim {x.dim()}")
        return x
    return f, (torch.ones(2),)

@probe
def stopiteration_next_default():
    def f(x):
        it = iter([x])
        a = next(it)
        b = next(it, None)
        return a * 2, b
    return f, (torch.ones(2),)

@probe
def mutable_default_arg():
    def f(x, acc=[]):
        acc.append(1)
        return x * len(acc)
    return f, (torch.ones(2),), {}, lambda: len(f.__defaults__[0])

@probe
def class_attr_changed_between_calls():
    class Cfg: scale = 2
    def f(x): 
        Cfg.scale += 1
        return x * Cfg.scale
    return f, (torch.ones(2),), {}, lambda: Cfg.scale

@probe
def partial_and_wraps():
    def deco(fn):
        @functools.wraps(fn)
        def inner(*a, **k): return fn(*a, **k) + 1
        return inner
    @deco
    def g(x, s=1): return x * s
    h = functools.partial(g, s=3)
    def f(x): return h(x), g.__name__, functools.reduce(operator.add, [x, x, x])
    return f, (torch.ones(2),)

@probe
def typing_constructs():
    class NT(typing.NamedTuple):
        a: torch.Tensor
        b: int = 3
    class TD(typing.TypedDict):
        k: int
    @typing.runtime_checkable
    class HasGo(typing.Protocol):
        def go(self): ...
    class G:
        def go(self): return 1
    def f(x: torch.Tensor) -> typing.Tuple[torch.Tensor, int]:
        nt = NT(x)
        td: TD = {"k": 2}
        y = typing.cast(torch.Tensor, x * nt.b)
        return y, td["k"], isinstance(G(), HasGo), nt._replace(b=4).b, nt._asdict()["b"], isinstance(nt, tuple)
    return f, (torch.ones(2),)

@probe
def getattr_setattr_dynamic():
    class O: pass
    def f(x):
        o = O()
        for i, n in enumerate(["a", "b", "c"]):
            setattr(o, n, x * i)
        delattr(o, "b")
        return vars(o), hasattr(o, "b"), getattr(o, "c")
    return f, (torch.ones(2),)

@probe
def classmethod_staticmethod_init_subclass():
    class Base:
        registry = []
        def __init_subclass__(cls, **kw):
            super().__init_subclass__(**kw); Base.registry.append(cls.__name__)
        @classmethod
        def make(cls, v): return cls(v)
        @staticmethod
        def sq(t): return t * t
        def __init__(self, v): self.v = v
    class Sub(Base): pass
    def f(x): return Sub.make(2).v * Base.sq(x), list(Base.registry)
    return f, (torch.ones(2),)

@probe
def class_defined_inside():
    def f(x):
        class Local:
            def __init__(self, t): self.t = t
            def __add__(self, o): return Local(self.t + o.t)
        return (Local(x) + Local(x)).t
    return f, (torch.ones(2),)

@probe
def operator_overloads_user():
    class V:
        def __init__(self, t): self.t = t
        def __mul__(self, o): return V(self.t * o)
        __rmul__ = __mul__
        def __matmul__(self, o): return self.t @ o.t
        def __getitem__(self, i): return self.t[i]
        def __len__(self): return self.t.shape[0]
        def __bool__(self): return len(self) > 1
        def __iter__(self): return iter(self.t.unbind(0))
        def __contains__(self, v): return v == 7
    def f(x):
        v = V(x)
        w = 2 * v * 3
        return w @ v, w[0], len(w), bool(V(x[:1])), list(v), 7 in v, 5 in v
    return f, (torch.randn(3, 3),)

@probe
def dict_methods():
    def f(x, d):
        d2 = dict(d); d2.setdefault("z", x); d2.update(w=x * 2)
        p = d2.pop("a"); d2 |= {"q": 1}
        items = sorted(d2.items(), key=lambda kv: kv[0])
        dd = collections.defaultdict(list); dd["k"].append(x)
        od = collections.OrderedDict(b=1, a=2); od.move_to_end("b")
        c = collections.Counter("abca")
        return p, items, dict(dd), list(od), c.most_common(1), d2.get("nope", 5)
    return f, (torch.ones(2), {"a": torch.zeros(1), "b": 2})

@probe
def mutate_caller_containers():
    def f(x, lst, d, s):
        lst.append(x * 2); lst[0] = 9; lst.sort(key=lambda v: isinstance(v, torch.Tensor))
        d["new"] = x; del d["old"]
        s.add(3); s.discard(1)
        return len(lst)
    return f, (torch.ones(2), [1, 2], {"old": 1}, {1, 2})

@probe
def mutate_then_raise():
    def f(x, lst):
        lst.append(1)
        raise ValueError("after mutation")
    return f, (torch.ones(2), [])

@probe
def itertools_use():
    def f(x):
        ch = list(itertools.chain([x], [x * 2]))
        pr = [a + b for a, b in itertools.product([x], [1, 2])]
        acc = list(itertools.accumulate([1, 2, 3]))
        pw = list(itertools.pairwise([1, 2, 3])) if hasattr(itertools, "pairwise") else []
        g = {k: list(v) for k, v in itertools.groupby("aabbc")}
        return ch, pr, acc, pw, g, list(itertools.islice(itertools.count(5), 3)), list(itertools.zip_longest([1], [2, 3]))
    return f, (torch.ones(2),)

@probe
def while_loop_tensor_shape():
    def f(x):
        while x.shape[0] > 1:
            x = x[::2] + x[1::2] if x.shape[0] % 2 == 0 else x[:-1]
        return x
    return f, (torch.randn(12, 2),)

@probe
def long_python_loop():
    def f(x):
        for i in range(300):
            x = x + i * 0.001
        return x
    return f, (torch.ones(2),)

def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50, n_positions=32)
    m = GPT2LMHeadModel(cfg).eval(); return m

def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, hidden_size=16,
                      intermediate_size=32, vocab_size=50, max_position_embeddings=32)
    return LlamaForCausalLM(cfg).eval()

@probe
def gpt2_hidden_attn():
    m = _gpt2()
    def f(ids): 
        o = m(ids, output_hidden_states=True, output_attentions=True)
        return o.logits, o.hidden_states, o.attentions
    return f, (torch.randint(0, 50, (2, 5)),)

@probe
def gpt2_return_dict_false_labels():
    m = _gpt2()
    def f(ids): return m(ids, labels=ids, return_dict=False)[:2]
    return f, (torch.randint(0, 50, (1, 6)),)

@probe
def gpt2_use_cache():
    m = _gpt2()
    def f(ids):
        o = m(ids, use_cache=True)
        # transformers >= 5.24 renamed past_key_values to cache (the old name warns, except
        # when compiling, by the library's own choice)
        o2 = m(ids[:, -1:], cache=o.past_key_values, use_cache=True)
        return o2.logits
    return f, (torch.randint(0, 50, (1, 4)),)

def _unused_greedy():
    m = _gpt2()
    def f(ids):
        for _ in range(3):
            nxt = m(ids).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], 1)
        return ids
    return f, (torch.randint(0, 50, (1, 3)),)

@probe
def llama_labels_mask():
    m = _llama()
    def f(ids, mask):
        o = m(input_ids=ids, attention_mask=mask, labels=ids, output_hidden_states=True)
        return o.loss, o.logits, len(o.hidden_states)
    return f, (torch.randint(0, 50, (2, 5)), torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]))

def _unused_llama_cache():
    m = _llama()
    def f(ids):
        o = m(ids, use_cache=True)
        return m(ids[:, -1:], past_key_values=o.past_key_values, use_cache=True).logits
    return f, (torch.randint(0, 50, (1, 4)),)

def _unused_gpt2_kw():
    m = _gpt2()
    return m, (torch.randint(0, 50, (1, 4)),), {"output_hidden_states": True, "return_dict": False}

def _counted(meth):
    log = []
    class O:
        def __init__(self): self.v = 3
    def m(self, *a):
        log.append(meth)
        return {"__hash__": 7, "__len__": 2, "__bool__": True, "__index__": 1, "__format__": "F", "__str__": "S", "__eq__": True}[meth]
    setattr(O, meth, m)
    if meth == "__eq__": O.__hash__ = object.__hash__
    return O(), log

@probe
def hash_side_effect():
    o, log = _counted("__hash__")
    def f(x): d = {o: 1}; return x + d[o]
    return f, (torch.ones(2),), {}, lambda: len(log)

@probe
def len_side_effect():
    o, log = _counted("__len__")
    def f(x): return x * len(o)
    return f, (torch.ones(2),), {}, lambda: len(log)

@probe
def bool_side_effect():
    o, log = _counted("__bool__")
    def f(x): return x + 1 if o else x
    return f, (torch.ones(2),), {}, lambda: len(log)

@probe
def index_side_effect():
    o, log = _counted("__index__")
    def f(x): return x[o]
    return f, (torch.ones(3),), {}, lambda: len(log)

@probe
def format_side_effect():
    o, log = _counted("__format__")
    def f(x): return f"{o:>3}", x + 1
    return f, (torch.ones(2),), {}, lambda: len(log)

@probe
def str_side_effect():
    o, log = _counted("__str__")
    def f(x): return str(o), x + 1
    return f, (torch.ones(2),), {}, lambda: len(log)

@probe
def property_side_effect():
    log = []
    class O:
        @property
        def w(self): log.append(1); return 2
    o = O()
    def f(x): return x * o.w
    return f, (torch.ones(2),), {}, lambda: len(log)

@probe
def getattr_side_effect():
    log = []
    class O:
        def __getattr__(self, n): log.append(n); return 2
    o = O()
    def f(x): return x * o.anything
    return f, (torch.ones(2),), {}, lambda: list(log)

@probe
def enum_missing_hook():
    class C(enum.Enum):
        A = 1
        @classmethod
        def _missing_(cls, v): return cls.A
    def f(x): return x * C(5).value
    return f, (torch.ones(2),)

@probe
def cached_property_side_effect_count():
    log = []
    class O:
        @functools.cached_property
        def w(self): log.append(1); return 2
    o = O()
    def f(x): return x * o.w
    return f, (torch.ones(2),), {}, lambda: (len(log), "w" in o.__dict__)

@probe
def lru_cache_info():
    calls = []
    @functools.lru_cache(maxsize=2)
    def g(n): calls.append(n); return n + 1
    def f(x, n): return x * g(n), g.cache_info().hits
    return f, (torch.ones(2), 3), {}, lambda: (g.cache_info(), list(calls))

@probe
def dunder_init_side_effect_on_arg():
    class Acc:
        def __init__(self, sink): sink.append("made"); self.sink = sink
    def f(x, sink): Acc(sink); return x + len(sink)
    return f, (torch.ones(2), [])

@probe
def closure_cell_list_mutation():
    box = []
    def f(x):
        box.append(x.sum())
        return x * len(box)
    return f, (torch.ones(2),), {}, lambda: len(box)

@probe
def instance_dict_vars():
    class O:
        def __init__(self): self.a = 1
    o = O()
    def f(x):
        vars(o)["b"] = 2
        o.__dict__["c"] = 3
        return x * (o.b + o.c)
    return f, (torch.ones(2),), {}, lambda: dict(vars(o))

@probe
def value_hash_dict_key():
    class K:
        def __init__(self, v): self.v = v
        def __hash__(self): return hash(self.v)
        def __eq__(self, o): return isinstance(o, K) and o.v == self.v
    def f(x):
        d = {K(1): x}
        return d[K(1)] * 2, K(2) in d, len({K(1), K(1)})
    return f, (torch.ones(2),)

@probe
def dataclass_hash_key():
    import dataclasses
    @dataclasses.dataclass(frozen=True)
    class K:
        a: int
    def f(x):
        cache = {}
        cache[K(1)] = x
        return cache[K(1)] + 1, len({K(1), K(1), K(2)})
    return f, (torch.ones(2),)

@pytest.mark.parametrize("name", params(P))
def test_program(name):
    same(P[name])

