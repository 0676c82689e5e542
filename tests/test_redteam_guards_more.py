"""Red-team probes for stale cache hits and wrong side effects, part 2 (modules, tensors,
containers, global state). Each probe returns observations; eager and compiled must agree."""
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


def _p_dunder_dict_write_new_attr_then_read(C):
    class O:
        v = 1
    def fn(x, o):
        o.__dict__["v"] = 5
        return x * o.v
    f = C(fn); o = O()
    r = f(torch.ones(2), o)
    return [r, o.v]


def _p_attr_write_then_dunder_dict_read(C):
    class O: pass
    def fn(x, o):
        o.v = 5
        return x * o.__dict__["v"]
    f = C(fn); o = O(); o.v = 1
    r = f(torch.ones(2), o)
    return [r, o.v]


def _p_module_buffers_dict_write_then_attr(C):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__(); self.register_buffer("n", torch.zeros(1))
        def forward(self, x):
            self._buffers["n"] = torch.ones(1) * 7
            return x + self.n
    m = M(); c = C(m)
    r = c(torch.ones(1))
    return [r, m.n]


def _p_uncaught_exc_after_mutation(C):
    def fn(x, l):
        l.append(1)
        raise KeyError("boom")
    f = C(fn); l = []
    try: f(torch.ones(1), l)
    except KeyError: pass
    return [l]


def _p_list_slice_ops(C):
    def fn(x, l):
        l[1:2] = [7, 8, 9]
        del l[0]
        l *= 2
        l += [3]
        l.sort()
        return x + len(l)
    f = C(fn); l = [1, 2, 3]
    r = f(torch.ones(1), l)
    return [r, l]


def _p_tuple_iadd_rebinds(C):
    def fn(x, t, l):
        t += (1,)
        l2 = l
        l2 += [1]
        return t, l2 is l
    f = C(fn); l = []
    r = f(torch.ones(1), (0,), l)
    return [r, l]


def _p_dict_ior(C):
    def fn(x, d):
        d |= {"b": 2}
        return d
    f = C(fn); d = {"a": 1}
    r = f(torch.ones(1), d)
    return [r is d, d]


def _p_dict_key_int_vs_bool(C):
    def fn(x, d):
        k = list(d)[0]
        return x + (10 if k is True else 1)
    f = C(fn); x = torch.ones(1)
    return [f(x, {1: 0}), f(x, {True: 0})]


def _p_dict_key_int_vs_float(C):
    def fn(x, d):
        k = list(d)[0]
        return x + k / 2 if type(k) is float else x + k // 2
    f = C(fn); x = torch.ones(1)
    return [f(x, {3: 0}), f(x, {3.0: 0})]


def _p_set_elem_int_vs_bool(C):
    def fn(x, s):
        k = next(iter(s))
        return x + (10 if k is True else 1)
    f = C(fn); x = torch.ones(1)
    return [f(x, {1}), f(x, {True})]


def _p_set_grad_enabled_leaks(C):
    def fn(x):
        torch.set_grad_enabled(False)
        return x * 2
    f = C(fn)
    try:
        r = f(torch.ones(2, requires_grad=True))
        st = torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(True)
    return [r.requires_grad, st]


def _p_set_default_dtype_inside(C):
    def fn(x):
        torch.set_default_dtype(torch.float64)
        return x + torch.ones(2)
    f = C(fn)
    try:
        r = f(torch.ones(2)); st = torch.get_default_dtype()
    finally:
        torch.set_default_dtype(torch.float32)
    return [r, str(st)]


def _p_manual_seed_inside(C):
    def fn(x):
        torch.manual_seed(5)
        return x + torch.rand(2)
    f = C(fn)
    r = f(torch.ones(2)); after = torch.rand(2)
    return [r, after]


def _p_requires_grad_on_input(C):
    def fn(x):
        x.requires_grad_()
        return x * 2
    f = C(fn); x = torch.ones(2)
    r = f(x)
    return [x.requires_grad, r.requires_grad]


def _p_tensor_attr_set_inside(C):
    def fn(x):
        x.tag = 3
        return x * 2
    f = C(fn); x = torch.ones(2)
    r = f(x)
    return [r, getattr(x, "tag", None)]


def _p_input_t_inplace(C):
    def fn(x):
        x.t_()
        return x.sum(0)
    f = C(fn); x = torch.arange(6.).reshape(2, 3)
    r = f(x)
    return [r, tuple(x.shape), x.stride()]


def _p_input_unsqueeze_inplace(C):
    def fn(x):
        x.unsqueeze_(0)
        return x
    f = C(fn); x = torch.ones(3)
    r = f(x)
    return [r is x, tuple(x.shape)]


def _p_dunder_iadd_alias(C):
    def fn(a, b):
        a.__iadd__(1)
        return b * 2
    f = C(fn)
    r1 = f(torch.ones(2), torch.ones(2))
    x = torch.ones(2)
    r2 = f(x, x)
    return [r1, r2, x]


def _p_dunder_setitem_alias(C):
    def fn(a, b):
        a.__setitem__(0, 5.0)
        return b * 2
    f = C(fn)
    r1 = f(torch.ones(2), torch.ones(2))
    x = torch.ones(2)
    r2 = f(x, x)
    return [r1, r2, x]


def _p_aten_overload_inplace_alias(C):
    def fn(a, b):
        torch.ops.aten.add_.Tensor(a, torch.ones(2))
        return b * 2
    f = C(fn)
    r1 = f(torch.ones(2), torch.ones(2))
    x = torch.ones(2)
    r2 = f(x, x)
    return [r1, r2, x]


def _p_relu_positional_inplace_alias(C):
    def fn(a, b):
        F.relu(a, True)
        return b * 2
    f = C(fn)
    r1 = f(-torch.ones(2), -torch.ones(2))
    x = -torch.ones(2)
    r2 = f(x, x)
    return [r1, r2, x]


def _p_relu_module_inplace_alias(C):
    r = torch.nn.ReLU(inplace=True)
    def fn(a, b):
        r(a)
        return b * 2
    f = C(fn)
    r1 = f(-torch.ones(2), -torch.ones(2))
    x = -torch.ones(2)
    r2 = f(x, x)
    return [r1, r2, x]


def _p_list_item_tensor_alias_inplace(C):
    def fn(l):
        l[0].mul_(3)
        return l[1] + 1
    f = C(fn)
    r1 = f([torch.ones(2), torch.ones(2)])
    x = torch.ones(2)
    r2 = f([x, x])
    return [r1, r2, x]


def _p_module_attr_list_mutated(C):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__(); self.cfg = [1, 2]
        def forward(self, x): return x * self.cfg[-1]
    m = M(); c = C(m); x = torch.ones(2)
    r1 = c(x); m.cfg.append(5); r2 = c(x); m.cfg[-1] = 7; r3 = c(x)
    return [r1, r2, r3]


def _p_module_child_swapped_sequential(C):
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    c = C(m); x = torch.ones(1, 2)
    r1 = c(x); m[1] = torch.nn.Sigmoid(); r2 = c(x); m.append(torch.nn.Tanh()); r3 = c(x)
    return [r1, r2, r3]


def _p_module_pre_hook_on_child(C):
    m = torch.nn.Sequential(torch.nn.Linear(2, 2))
    c = C(m); x = torch.ones(1, 2)
    r1 = c(x)
    m[0].register_forward_pre_hook(lambda mod, a: (a[0] * 5,))
    r2 = c(x)
    return [r1, r2]


def _p_global_hook_registered(C):
    m = torch.nn.Linear(2, 2)
    c = C(m); x = torch.ones(1, 2)
    r1 = c(x)
    h = torch.nn.modules.module.register_module_forward_hook(lambda mod, i, o: o * 0)
    try:
        r2 = c(x)
    finally:
        h.remove()
    return [r1, r2]


def _p_module_param_requires_grad_toggled(C):
    m = torch.nn.Linear(2, 2); c = C(m); x = torch.ones(1, 2)
    r1 = c(x).requires_grad
    m.weight.requires_grad_(False); m.bias.requires_grad_(False)
    r2 = c(x).requires_grad
    return [r1, r2]


def _p_default_device_changed(C):
    def fn(x): return torch.ones(2).device.type
    f = C(fn)
    r1 = f(torch.ones(1))
    torch.set_default_device("meta")
    try:
        r2 = f(torch.ones(1, device="cpu"))
    finally:
        torch.set_default_device(None)
    return [r1, r2]


def _p_attr_rebound_then_old_mutated(C):
    class O: pass
    def fn(x, o):
        old = o.items
        o.items = [5]
        old.append(1)
        return x + len(old)
    f = C(fn); o = O(); o.items = [0]; keep = o.items
    r = f(torch.ones(1), o)
    return [r, o.items, keep]


def _p_attr_rebound_then_old_obj_attr(C):
    class O: pass
    def fn(x, o):
        c = o.child
        o.child = O()
        o.child.v = 1
        c.v = 5
        return x + c.v
    f = C(fn); o = O(); o.child = O(); o.child.v = 0; keep = o.child
    r = f(torch.ones(1), o)
    return [r, o.child.v, keep.v]


def _p_dict_item_rebound_then_old_mutated(C):
    def fn(x, d):
        old = d["l"]
        d["l"] = [5]
        old.append(1)
        return x + len(old)
    f = C(fn); d = {"l": [0]}; keep = d["l"]
    r = f(torch.ones(1), d)
    return [r, d, keep]


def _p_list_item_rebound_then_old_mutated(C):
    def fn(x, l):
        old = l[0]
        l[0] = {"k": 5}
        old["k"] = 1
        return x + old["k"]
    f = C(fn); l = [{"k": 0}]; keep = l[0]
    r = f(torch.ones(1), l)
    return [r, l, keep]


def _p_list_popped_then_mutated(C):
    def fn(x, l):
        inner = l.pop(0)
        inner.append(9)
        return x + len(inner)
    f = C(fn); keep = [1]; l = [keep, [2]]
    r = f(torch.ones(1), l)
    return [r, l, keep]


def _p_global_rebound_then_old_mutated(C):
    g = {"G": [0]}
    exec("def fn(x):\n    global G\n    old = G\n    G = [5]\n    old.append(1)\n    return x + len(old)\n", g)
    keep = g["G"]
    f = C(g["fn"])
    r = f(torch.ones(1))
    return [r, g["G"], keep]


def _p_range_arg_equal_but_different(C):
    def fn(x, r): return x + r.start
    f = C(fn); x = torch.ones(1)
    return [f(x, range(0)), f(x, range(5, 5))]


def _p_range_arg_step(C):
    def fn(x, r): return x + r.step
    f = C(fn); x = torch.ones(1)
    return [f(x, range(0, 1, 1)), f(x, range(0, 1, 2))]


def _p_dict_keys_view_arg(C):
    def fn(x, ks): return x + len(ks)
    f = C(fn); x = torch.ones(1); d = {"a": 1}
    r1 = f(x, d.keys()); d["b"] = 2; r2 = f(x, d.keys())
    return [r1, r2]


def _p_dict_items_view_arg(C):
    def fn(x, it):
        s = 0
        for k, v in it: s += v
        return x + s
    f = C(fn); x = torch.ones(1); d = {"a": 1}
    r1 = f(x, d.items()); d["a"] = 5; r2 = f(x, d.items())
    return [r1, r2]


def _p_mappingproxy_arg(C):
    class A: s = 1
    def fn(x, mp): return x * mp["s"]
    f = C(fn); x = torch.ones(1)
    r1 = f(x, A.__dict__); A.s = 5; r2 = f(x, A.__dict__)
    return [r1, r2]


def _p_neg_zero_in_tuple(C):
    def fn(x, t): return x * math.copysign(1.0, t[0])
    f = C(fn); x = torch.ones(1)
    return [f(x, (0.0,)), f(x, (-0.0,))]


def _p_list_subclass_arg(C):
    class L(list): pass
    def fn(x, l): return x + len(l)
    f = C(fn); x = torch.ones(1); l = L([1])
    r1 = f(x, l); l.append(2); r2 = f(x, l)
    return [r1, r2]


def _p_ordered_dict_arg_move(C):
    def fn(x, d):
        d.move_to_end("a")
        return x + list(d.values())[0]
    f = C(fn); d = collections.OrderedDict(a=1, b=2)
    r = f(torch.ones(1), d)
    return [r, list(d.items())]


def _p_defaultdict_arg(C):
    def fn(x, d):
        d["new"].append(1)
        return x + len(d)
    f = C(fn); d = collections.defaultdict(list)
    r1 = f(torch.ones(1), d); r2 = f(torch.ones(1), d)
    return [r1, r2, dict(d), type(d).__name__]


def _p_defaultdict_factory_changed(C):
    def fn(x, d):
        return x + d["missing"]
    f = C(fn)
    d1 = collections.defaultdict(lambda: 1); d2 = collections.defaultdict(lambda: 7)
    return [f(torch.ones(1), d1), f(torch.ones(1), d2), dict(d1), dict(d2)]


def _p_closure_cell_list_mutated(C):
    cfg = [1]
    def fn(x): return x * cfg[0]
    f = C(fn); x = torch.ones(1)
    r1 = f(x); cfg[0] = 4; r2 = f(x)
    return [r1, r2]


def _p_instance_method_via_class_attr_fn_replaced_on_owner(C):
    class A:
        def m(self): return 1
    class B(A):
        def m(self): return super().m() + 1
    def fn(x, b): return x * b.m()
    f = C(fn); b = B(); x = torch.ones(1)
    r1 = f(x, b); A.m = lambda self: 10; r2 = f(x, b)
    return [r1, r2]


def _p_staticmethod_replaced(C):
    class A:
        @staticmethod
        def k(): return 1
    def fn(x, a): return x * a.k()
    f = C(fn); a = A(); x = torch.ones(1)
    r1 = f(x, a); A.k = staticmethod(lambda: 6); r2 = f(x, a)
    return [r1, r2]


def _p_classmethod_reads_cls_attr(C):
    class A:
        s = 2
        @classmethod
        def k(cls): return cls.s
    def fn(x, a): return x * a.k()
    f = C(fn); a = A(); x = torch.ones(1)
    r1 = f(x, a); A.s = 6; r2 = f(x, a)
    return [r1, r2]


def _p_property_replaced_on_class(C):
    class A:
        @property
        def v(self): return 1
    def fn(x, a): return x * a.v
    f = C(fn); a = A(); x = torch.ones(1)
    r1 = f(x, a); A.v = property(lambda s: 8); r2 = f(x, a)
    return [r1, r2]


def _p_classmethod_replaced(C):
    class A:
        @classmethod
        def k(cls): return 1
    def fn(x, a): return x * a.k()
    f = C(fn); a = A(); x = torch.ones(1)
    r1 = f(x, a); A.k = classmethod(lambda cls: 6); r2 = f(x, a)
    return [r1, r2]


def _p_return_identity_input(C):
    def fn(x, l):
        return x, x, l[0], l
    f = C(fn); x = torch.ones(1); l = [torch.ones(2)]
    a, b, c, d = f(x, l)
    return [a is x, b is x, c is l[0], d is l]


def _p_module_python_counter(C):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__(); self.count = 0
        def forward(self, x):
            self.count += 1
            return x * self.count
    m = M(); c = C(m)
    r = [c(torch.ones(1)) for _ in range(3)]
    return [r, m.count]


def _p_hasattr_later_added(C):
    class O: pass
    def fn(x, o): return x + (1 if hasattr(o, "v") else 0)
    f = C(fn); o = O(); x = torch.ones(1)
    r1 = f(x, o); o.v = 1; r2 = f(x, o); del o.v; O.v = 2; r3 = f(x, o)
    return [r1, r2, r3]


def _p_getattr_default_later_added(C):
    class O: pass
    def fn(x, o): return x + getattr(o, "v", 0)
    f = C(fn); o = O(); x = torch.ones(1)
    r1 = f(x, o); o.v = 3; r2 = f(x, o)
    return [r1, r2]


def _p_del_attr_inside(C):
    class O:
        v = 1
    def fn(x, o):
        del o.v
        return x + o.v
    f = C(fn); o = O(); o.v = 5
    r = f(torch.ones(1), o)
    return [r, "v" in o.__dict__]


def _p_class_swap_dunder_class(C):
    class A:
        def m(self): return 1
    class B:
        def m(self): return 2
    def fn(x, a): return x * a.m()
    f = C(fn); a = A(); x = torch.ones(1)
    r1 = f(x, a); a.__class__ = B; r2 = f(x, a)
    return [r1, r2]


def _p_nested_closure_write(C):
    def fn(x):
        n = 0
        def inc():
            nonlocal n
            n += 1
        inc(); inc()
        return x + n
    f = C(fn)
    return [f(torch.ones(1))]


def _p_exc_in_callee_partial_mutation(C):
    def g(l):
        l.append(1)
        raise RuntimeError("x")
    def fn(x, l):
        try:
            g(l)
        except RuntimeError:
            l.append(2)
        return x + len(l)
    f = C(fn); l = []
    r = f(torch.ones(1), l)
    return [r, l]


def _p_finally_mutation_order(C):
    def fn(x, l):
        try:
            l.append("a")
            return x + len(l)
        finally:
            l.append("b")
    f = C(fn); l = []
    r = f(torch.ones(1), l)
    return [r, l]


def _p_return_new_dict_with_input_list(C):
    def fn(x, l):
        l.append(1)
        return {"l": l, "x": x}
    f = C(fn); l = []; x = torch.ones(1)
    r = f(x, l)
    return [r["l"] is l, r["x"] is x, l]


def _p_two_paths_same_dict_mutated(C):
    class O: pass
    def fn(x, o, d):
        o.d["k"] = 1
        d["k"] += 1
        return x + o.d["k"]
    f = C(fn); d = {"k": 0}; o = O(); o.d = d
    r = f(torch.ones(1), o, d)
    return [r, d, o.d is d]


def _p_mutate_obj_created_in_prev_call_via_global(C):
    g = {"REG": []}
    exec("class O:\n    pass\n"
         "def fn(x):\n"
         "    if REG:\n        REG[0].v += 1\n"
         "    else:\n        o = O(); o.v = 1; REG.append(o)\n"
         "    return x + REG[0].v\n", g)
    f = C(g["fn"])
    r = [f(torch.ones(1)) for _ in range(3)]
    return [r, g["REG"][0].v]

# every _p_* above is one probe: run eagerly and compiled on separately built state, compare
PROBES = [v for k, v in list(globals().items()) if k.startswith("_p_")]


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.__name__[3:])
def test_probe(probe):
    diff_probe(probe)
