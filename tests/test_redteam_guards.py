"""Red-team probes for stale cache hits and wrong side effects, part 1 (aliasing, values,
classes, functions). Each probe returns observations; eager and compiled must agree."""
import collections
import dataclasses
import enum
import functools
import math
import sys
import types
import warnings

import pytest
import torch
import torch.nn.functional as F

import bytegraph
from differential import assert_same
from redteam_harness import diff_probe  # noqa: F401


def _p_alias_lists_later(C):
    def fn(x, a, b):
        a.append(1)
        return x + len(b)
    f = C(fn); x = torch.ones(2)
    r1 = f(x, [0], [0])
    l = [0]
    r2 = f(x, l, l)
    return [r1, r2, l]


def _p_alias_objs_later(C):
    class O: pass
    def fn(x, a, b):
        a.v = 5
        return x + b.v
    f = C(fn); x = torch.ones(2)
    o1, o2 = O(), O(); o1.v = 1; o2.v = 1
    r1 = f(x, o1, o2)
    o = O(); o.v = 1
    r2 = f(x, o, o)
    return [r1, r2, o.v]


def _p_alias_dicts_later(C):
    def fn(x, a, b):
        a["k"] = 10
        return x + b["k"]
    f = C(fn); x = torch.ones(2)
    r1 = f(x, {"k": 1}, {"k": 1})
    d = {"k": 1}
    r2 = f(x, d, d)
    return [r1, r2, d]


def _p_alias_then_distinct(C):
    def fn(x, a, b):
        a.append(1)
        return x + len(b)
    f = C(fn); x = torch.ones(2)
    l = [0]
    r1 = f(x, l, l)
    a, b = [0], [0]
    r2 = f(x, a, b)
    return [r1, r2, l, a, b]


def _p_neg_zero_float(C):
    def fn(x, s):
        return x * math.copysign(1.0, s)
    f = C(fn); x = torch.ones(2)
    return [f(x, 0.0), f(x, -0.0)]


def _p_storage_offset_const(C):
    def fn(x):
        return x + x.storage_offset()
    f = C(fn); base = torch.arange(6.)
    return [f(base[:3]), f(base[1:4])]


def _p_global_int(C):
    g = {"K": 1}
    exec("def fn(x):\n    return x + K\n", g)
    f = C(g["fn"]); x = torch.ones(2)
    r1 = f(x); g["K"] = 2; r2 = f(x)
    return [r1, r2]


def _p_closure_var(C):
    k = 1
    def fn(x): return x + k
    f = C(fn); x = torch.ones(2)
    r1 = f(x); k = 3; r2 = f(x)
    return [r1, r2]


def _p_default_arg_mutable_list(C):
    def fn(x, acc=[]):
        acc.append(1)
        return x + len(acc)
    f = C(fn); x = torch.ones(2)
    return [f(x), f(x), f(x), list(fn.__defaults__[0])]


def _p_default_reassigned(C):
    def fn(x, k=1): return x + k
    f = C(fn); x = torch.ones(2)
    r1 = f(x); fn.__defaults__ = (5,); r2 = f(x)
    return [r1, r2]


def _p_class_attr_shadow(C):
    class A: s = 1
    def fn(x, a): return x + a.s
    f = C(fn); x = torch.ones(2); a = A()
    r1 = f(x, a); a.s = 7; r2 = f(x, a); A.s = 3; r3 = f(x, A())
    return [r1, r2, r3]


def _p_class_attr_changed(C):
    class A: s = 1
    def fn(x, a): return x + a.s
    f = C(fn); x = torch.ones(2); a = A()
    r1 = f(x, a); A.s = 3; r2 = f(x, a)
    return [r1, r2]


def _p_inherited_class_attr_subclass_override(C):
    class A: s = 1
    class B(A): pass
    def fn(x, a): return x + a.s
    f = C(fn); x = torch.ones(2); b = B()
    r1 = f(x, b); B.s = 9; r2 = f(x, b)
    return [r1, r2]


def _p_method_monkeypatch_instance(C):
    class A:
        def m(self): return 1
    def fn(x, a): return x + a.m()
    f = C(fn); x = torch.ones(2); a = A()
    r1 = f(x, a); a.m = lambda: 5; r2 = f(x, a)
    return [r1, r2]


def _p_method_monkeypatch_class(C):
    class A:
        def m(self): return 1
    def fn(x, a): return x + a.m()
    f = C(fn); x = torch.ones(2); a = A()
    r1 = f(x, a); A.m = lambda self: 5; r2 = f(x, a)
    return [r1, r2]


def _p_method_base_then_subclass_override(C):
    class A:
        def m(self): return 1
    class B(A): pass
    def fn(x, a): return x + a.m()
    f = C(fn); x = torch.ones(2); b = B()
    r1 = f(x, b); B.m = lambda self: 5; r2 = f(x, b)
    return [r1, r2]


def _p_property_underlying(C):
    class A:
        def __init__(self): self._v = 1
        @property
        def v(self): return self._v * 2
    def fn(x, a): return x + a.v
    f = C(fn); x = torch.ones(2); a = A()
    r1 = f(x, a); a._v = 4; r2 = f(x, a)
    return [r1, r2]


def _p_getattr_dunder(C):
    class A:
        def __init__(self): self.n = 1
        def __getattr__(self, name): return self.n * 10
    def fn(x, a): return x + a.foo
    f = C(fn); x = torch.ones(2); a = A()
    r1 = f(x, a); a.n = 2; r2 = f(x, a); a.foo = 1; r3 = f(x, a)
    return [r1, r2, r3]


def _p_attr_deleted(C):
    class A: s = 1
    def fn(x, a): return x + a.s
    f = C(fn); x = torch.ones(2); a = A(); a.s = 5
    r1 = f(x, a); del a.s; r2 = f(x, a)
    return [r1, r2]


def _p_dataclass_field(C):
    @dataclasses.dataclass
    class D:
        a: int
        b: torch.Tensor
    def fn(d): return d.b * d.a
    f = C(fn); d = D(2, torch.ones(2))
    r1 = f(d); d.a = 3; r2 = f(d); d.b = torch.ones(3); r3 = f(d)
    return [r1, r2, r3]


def _p_namedtuple_field(C):
    P = collections.namedtuple("P", "a b")
    def fn(p): return p.b * p.a
    f = C(fn)
    return [f(P(2, torch.ones(2))), f(P(3, torch.ones(2))), f(P(3.5, torch.ones(2)))]


def _p_list_mutated_between(C):
    def fn(x, l): return x * sum(l)
    f = C(fn); x = torch.ones(2); l = [1, 2]
    r1 = f(x, l); l[0] = 5; r2 = f(x, l); l.append(1); r3 = f(x, l)
    return [r1, r2, r3]


def _p_nested_dict_item(C):
    def fn(x, d): return x * d["a"]["b"][0]
    f = C(fn); x = torch.ones(2); d = {"a": {"b": [1]}}
    r1 = f(x, d); d["a"]["b"][0] = 4; r2 = f(x, d); d["a"] = {"b": [7]}; r3 = f(x, d)
    return [r1, r2, r3]


def _p_grad_mode(C):
    def fn(x): return x * 2
    f = C(fn); x = torch.ones(2, requires_grad=True)
    r1 = f(x)
    with torch.no_grad(): r2 = f(x)
    return [r1.requires_grad, r2.requires_grad]


def _p_returns_same_list(C):
    def fn(x, l):
        l.append(x + 1)
        return l
    f = C(fn); x = torch.ones(2); l = [x]
    r = f(x, l)
    return [r is l, len(l), r]


def _p_returns_input_tensor_identity(C):
    def fn(x, y):
        x.add_(1)
        return x, y, x.view(2)
    f = C(fn); x = torch.ones(2); y = torch.ones(2)
    a, b, c = f(x, y)
    return [a is x, b is y, c is x, x]


def _p_exc_after_partial_mutation(C):
    def fn(x, l, d):
        try:
            l.append(1)
            d["a"] = 2
            raise ValueError
        except ValueError:
            l.append(3)
        return x + 1
    f = C(fn); l = []; d = {}
    r = f(torch.ones(2), l, d)
    return [r, l, d]


def _p_mutate_then_read(C):
    class O: pass
    def fn(x, o, l):
        o.v = o.v + 1
        l.append(o.v)
        l[0] = l[-1] * 2
        return x * o.v, l[0]
    f = C(fn); o = O(); o.v = 1; l = [0]
    r1 = f(torch.ones(2), o, l); r2 = f(torch.ones(2), o, l)
    return [r1, r2, o.v, l]


def _p_obj_created_prev_call(C):
    class O:
        def __init__(self): self.v = 1
    def fn(x, holder):
        if "o" not in holder:
            holder["o"] = O()
        holder["o"].v += 1
        return x * holder["o"].v
    f = C(fn); h = {}
    r = [f(torch.ones(2), h) for _ in range(3)]
    return [r, h["o"].v]


def _p_return_new_list_vs_same(C):
    def fn(l):
        m = list(l)
        m.append(1)
        return m, l
    f = C(fn); l = [torch.ones(1)]
    m, l2 = f(l)
    return [m is l, l2 is l, m[0] is l[0], len(l)]


def _p_returned_obj_twice(C):
    def fn(x):
        l = [x + 1]
        return l, l
    f = C(fn)
    a, b = f(torch.ones(2))
    return [a is b, a]


def _p_global_list_mutation(C):
    g = {"L": []}
    exec("def fn(x):\n    L.append(1)\n    return x + len(L)\n", g)
    f = C(g["fn"])
    r = [f(torch.ones(2)) for _ in range(3)]
    return [r, g["L"]]


def _p_global_rebind(C):
    g = {"N": 0}
    exec("def fn(x):\n    global N\n    N += 1\n    return x + N\n", g)
    f = C(g["fn"])
    r = [f(torch.ones(2)) for _ in range(3)]
    return [r, g["N"]]


def _p_nonlocal_counter(C):
    def make():
        n = 0
        def fn(x):
            nonlocal n
            n += 1
            return x + n
        return fn, lambda: n
    fn, get = make()
    f = C(fn)
    r = [f(torch.ones(2)) for _ in range(3)]
    return [r, get()]


def _p_dict_order_side_effects(C):
    def fn(x, d):
        d.pop("a")
        d["a"] = 1
        d["z"] = 0
        return x
    f = C(fn); d = {"a": 0, "b": 1}
    f(torch.ones(1), d)
    return [list(d.items())]


def _p_set_mutation(C):
    def fn(x, s):
        s.add(3); s.discard(1)
        return x + len(s)
    f = C(fn); s = {1, 2}
    r = f(torch.ones(1), s)
    return [r, s]


def _p_list_aliased_in_dict(C):
    def fn(x, d):
        d["a"].append(1)
        return x + len(d["b"])
    f = C(fn); l = [0]; d = {"a": l, "b": l}
    r1 = f(torch.ones(1), d)
    d2 = {"a": [0], "b": [0]}
    r2 = f(torch.ones(1), d2)
    l3 = [0]; d3 = {"a": l3, "b": l3}
    r3 = f(torch.ones(1), d3)
    return [r1, r2, r3, d, d2, d3]


def _p_inplace_input_tensor_list(C):
    def fn(xs):
        for t in xs: t.mul_(2)
        return xs[0]
    f = C(fn); xs = [torch.ones(2), torch.ones(2)]
    r = f(xs)
    return [r is xs[0], xs]


def _p_same_tensor_twice_inplace(C):
    def fn(a, b):
        a.add_(1)
        return b * 2
    f = C(fn)
    r1 = f(torch.ones(2), torch.ones(2))
    x = torch.ones(2)
    r2 = f(x, x)
    return [r1, r2, x]


def _p_tensor_views_of_same_storage(C):
    def fn(a, b):
        a.add_(1)
        return b * 2
    f = C(fn)
    base = torch.zeros(4)
    r1 = f(torch.zeros(2), torch.zeros(2))
    r2 = f(base[:2], base[:2])  # distinct objects, same memory
    return [r1, r2, base]


def _p_generator_passed_in(C):
    def fn(x, it):
        a = next(it)
        return x + a
    f = C(fn)
    it = iter([1, 2, 3])
    r1 = f(torch.ones(1), it); r2 = f(torch.ones(1), it)
    return [r1, r2, list(it)]


def _p_list_iterator_consumed(C):
    def fn(x, l):
        s = 0
        for v in l: s += v
        return x + s
    f = C(fn)
    return [f(torch.ones(1), (1, 2)), f(torch.ones(1), (1, 3))]


def _p_attr_on_module_changed(C):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__(); self.lin = torch.nn.Linear(2, 2); self.scale = 1.0
        def forward(self, x): return self.lin(x) * self.scale
    m = M(); c = C(m); x = torch.ones(1, 2)
    r1 = c(x); m.scale = 3.0; r2 = c(x)
    m.lin = torch.nn.Identity(); r3 = c(x)
    return [r1, r2, r3]


def _p_module_training_flag(C):
    m = torch.nn.Dropout(0.5); c = C(m); x = torch.ones(100)
    m.eval(); r1 = c(x); m.train(); torch.manual_seed(1); r2 = c(x)
    return [r1, r2]


def _p_module_forward_hook_added(C):
    m = torch.nn.Linear(2, 2); c = C(m); x = torch.ones(1, 2)
    r1 = c(x)
    h = m.register_forward_hook(lambda mod, i, o: o * 10)
    r2 = c(x); h.remove(); r3 = c(x)
    return [r1, r2, r3]


def _p_module_param_inplace(C):
    m = torch.nn.Linear(2, 2); c = C(m); x = torch.ones(1, 2)
    r1 = c(x)
    with torch.no_grad(): m.weight.mul_(2)
    r2 = c(x)
    m.weight = torch.nn.Parameter(torch.zeros(2, 2)); r3 = c(x)
    return [r1, r2, r3]


def _p_module_buffer_update(C):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__(); self.register_buffer("n", torch.zeros(1))
        def forward(self, x):
            self.n += 1
            return x + self.n
    m = M(); c = C(m)
    r = [c(torch.ones(1)) for _ in range(3)]
    return [r, m.n]


def _p_module_new_buffer_assign(C):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__(); self.register_buffer("n", torch.zeros(1))
        def forward(self, x):
            self.n = self.n + 1
            return x + self.n
    m = M(); c = C(m)
    r = [c(torch.ones(1)) for _ in range(3)]
    return [r, m.n, "n" in m._buffers, "n" in m.__dict__]


def _p_inference_mode_flag(C):
    def fn(x):
        return x + (1 if torch.is_inference_mode_enabled() else 0)
    f = C(fn); x = torch.ones(2)
    r1 = f(x)
    with torch.inference_mode(): r2 = f(torch.ones(2)).clone()
    return [r1, r2]


def _p_tensor_grad_attr(C):
    def fn(x):
        return x * 2 if x.grad is None else x.grad * 3
    f = C(fn); x = torch.ones(2, requires_grad=True)
    r1 = f(x).detach(); x.grad = torch.full((2,), 5.); r2 = f(x).detach()
    return [r1, r2]


def _p_tensor_user_attr(C):
    def fn(x):
        return x * x.scale
    f = C(fn); x = torch.ones(2); x.scale = 2
    r1 = f(x); x.scale = 3; r2 = f(x)
    return [r1, r2]


def _p_tensor_is_leaf(C):
    def fn(x):
        return x * (2 if x.is_leaf else 3)
    f = C(fn)
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True) * 1
    return [f(a).detach(), f(b).detach()]


def _p_tensor_is_inference(C):
    def fn(x):
        return x * (2 if x.is_inference() else 3)
    f = C(fn)
    a = torch.ones(2)
    with torch.inference_mode(): b = torch.ones(2)
    return [f(a), f(b).clone()]


def _p_enum_arg(C):
    class Mode(enum.Enum):
        A = 1; B = 2
    def fn(x, m):
        return x * (10 if m == Mode.A else 20)
    f = C(fn); x = torch.ones(2)
    return [f(x, Mode.A), f(x, Mode.B)]


def _p_int_enum_arg(C):
    class Mode(enum.IntEnum):
        A = 1; B = 2
    def fn(x, m):
        return x * m
    f = C(fn); x = torch.ones(2)
    return [f(x, Mode.A), f(x, Mode.B)]


def _p_int_subclass_arg(C):
    class MyInt(int): pass
    def fn(x, n):
        return x * n
    f = C(fn); x = torch.ones(2)
    return [f(x, MyInt(2)), f(x, MyInt(3))]


def _p_str_subclass_arg(C):
    class S(str): pass
    def fn(x, s):
        return x * len(s)
    f = C(fn); x = torch.ones(2)
    return [f(x, S("ab")), f(x, S("abc"))]


def _p_partial_keywords_mutated(C):
    def g(x, k=1): return x * k
    def fn(x, p): return p(x)
    f = C(fn); x = torch.ones(2); p = functools.partial(g, k=2)
    r1 = f(x, p); p.keywords["k"] = 5; r2 = f(x, p)
    return [r1, r2]


def _p_bound_method_arg(C):
    class A:
        def __init__(self, k): self.k = k
        def m(self, x): return x * self.k
    def fn(x, meth): return meth(x)
    f = C(fn); x = torch.ones(2)
    a, b = A(2), A(3)
    return [f(x, a.m), f(x, b.m)]


def _p_closure_arg_cell_changed(C):
    def make(k):
        def g(x): return x * k
        return g
    def fn(x, g): return g(x)
    f = C(fn); x = torch.ones(2)
    return [f(x, make(2)), f(x, make(3))]


def _p_lambda_arg_same_code_diff_default(C):
    def fn(x, g): return g(x)
    f = C(fn); x = torch.ones(2)
    gs = [lambda x, k=k: x * k for k in (2, 3)]
    return [f(x, gs[0]), f(x, gs[1])]


def _p_fn_code_replaced(C):
    def g(x): return x * 2
    def h(x): return x * 3
    def fn(x): return g(x)
    f = C(fn); x = torch.ones(2)
    r1 = f(x); g.__code__ = h.__code__; r2 = f(x)
    return [r1, r2]


def _p_pymodule_attr_changed(C):
    mod = types.ModuleType("rt_fake_mod"); mod.K = 2
    sys.modules["rt_fake_mod"] = mod
    g = {"mod": mod}
    exec("def fn(x):\n    return x * mod.K\n", g)
    f = C(g["fn"]); x = torch.ones(2)
    r1 = f(x); mod.K = 5; r2 = f(x)
    return [r1, r2]


def _p_global_fn_redefined(C):
    g = {}
    exec("def h(x):\n    return x * 2\ndef fn(x):\n    return h(x)\n", g)
    f = C(g["fn"]); x = torch.ones(2)
    r1 = f(x); exec("def h(x):\n    return x * 7\n", g); r2 = f(x)
    return [r1, r2]


def _p_mutable_default_dict_mutated(C):
    def fn(x, cfg={"a": 1}): return x * cfg["a"]
    f = C(fn); x = torch.ones(2)
    r1 = f(x); fn.__defaults__[0]["a"] = 4; r2 = f(x)
    return [r1, r2]


def _p_kwdefault_mutated(C):
    def fn(x, *, k=1): return x * k
    f = C(fn); x = torch.ones(2)
    r1 = f(x); fn.__kwdefaults__["k"] = 4; r2 = f(x)
    return [r1, r2]


def _p_slots_attr(C):
    class S:
        __slots__ = ("v",)
    def fn(x, s): return x * s.v
    f = C(fn); x = torch.ones(2); s = S(); s.v = 2
    r1 = f(x, s); s.v = 3; r2 = f(x, s)
    return [r1, r2]


def _p_property_added_on_class_later(C):
    class A: pass
    def fn(x, a): return x * a.v
    f = C(fn); x = torch.ones(2); a = A(); a.v = 2
    r1 = f(x, a); A.v = property(lambda s: 9); r2 = f(x, a)
    return [r1, r2]


def _p_dunder_dict_write_then_attr_read(C):
    class O: pass
    def fn(x, o):
        o.__dict__["v"] = 5
        return x * o.v
    f = C(fn); o = O(); o.v = 1
    r = f(torch.ones(2), o)
    return [r, o.v]

# every _p_* above is one probe: run eagerly and compiled on separately built state, compare
PROBES = [v for k, v in list(globals().items()) if k.startswith("_p_")]


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.__name__[3:])
def test_probe(probe):
    diff_probe(probe)
