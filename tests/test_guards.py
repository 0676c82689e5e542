"""Guards and the cache: each change to an input / global / module state either recompiles
(and the result matches eager) or is provably irrelevant (no recompile, still correct)."""
import concurrent.futures
import threading
import warnings

import pytest
import torch
import torch.nn as nn

import bytegraph
from differential import assert_same, compile_fn, counters, graph_count, tensors_like


def recompiles():
    return counters()["recompiles"]["total"]


def frames():
    return counters()["frames"]["total"]


def same(fn, compiled, *args, **kwargs):
    """Run eager and compiled on the same (identical) arguments, compare outputs."""
    expected = fn(*args, **kwargs)
    actual = compiled(*args, **kwargs)
    assert_same(expected, actual)
    return actual


class Step:
    """compile fn; call once; then each `step(*args)` asserts correctness and returns recompile delta."""

    def __init__(self, fn, **kw):
        self.fn = fn
        self.c = compile_fn(fn, backend="eager", **kw)

    def __call__(self, *args, **kwargs):
        before = recompiles()
        same(self.fn, self.c, *args, **kwargs)
        return recompiles() - before


# --------------------------------------------------------------------------
# tensor metadata

def _tf(x):
    return x.sin() * 2 + 1


def test_tensor_dtype_change_recompiles():
    s = Step(_tf, fullgraph=True)
    x, = tensors_like((3, 4))
    assert s(x) == 0
    assert s(x.double()) == 1
    assert s(x) == 0  # first entry still hits
    assert graph_count() == 2


def test_tensor_shape_change_recompiles():
    s = Step(_tf, fullgraph=True)
    x, y = tensors_like((3, 4), (5, 4))
    s(x)
    assert s(y) == 1
    assert s(x) == 0 and s(y) == 0
    assert graph_count() == 2


def test_tensor_stride_change_recompiles():
    def f(x):
        return x.view(-1) * 2 if x.is_contiguous() else x.reshape(-1) + 1
    s = Step(f, fullgraph=True)
    x, = tensors_like((4, 4))
    s(x)
    assert s(x.t()) == 1
    assert s(x.t().contiguous()) == 0


def test_tensor_requires_grad_change_recompiles():
    s = Step(_tf, fullgraph=True)
    x, = tensors_like((3, 4))
    s(x)
    assert s(x.clone().requires_grad_()) == 1
    out = s.c(x.clone().requires_grad_())
    assert out.requires_grad and out.grad_fn is not None


def test_tensor_ndim_change_recompiles():
    def f(x):
        return x.sum(-1) if x.ndim == 2 else x.sum()
    s = Step(f, fullgraph=True)
    x, y = tensors_like((3, 4), (2, 3, 4))
    s(x)
    assert s(y) == 1


def test_tensor_values_irrelevant():
    s = Step(_tf, fullgraph=True)
    for seed in range(5):
        x, = tensors_like((3, 4), seed=seed)
        assert s(x) == 0
    assert graph_count() == 1


def test_tensor_device_same_cpu_no_recompile():
    s = Step(_tf, fullgraph=True)
    x, = tensors_like((3, 4))
    s(x)
    assert s(x.to("cpu").clone()) == 0
    assert graph_count() == 1


def test_unchanged_inputs_hit_cache():
    c = compile_fn(_tf, backend="eager", fullgraph=True)
    x, = tensors_like((3, 4))
    c(x)
    f0 = frames()
    for _ in range(10):
        assert_same(_tf(x), c(x))
    assert frames() == f0 == 1
    assert graph_count() == 1
    assert recompiles() == 0
    assert len(c.__bytegraph_state__.entries) == 1


# --------------------------------------------------------------------------
# Python values

def test_int_arg_value_recompiles():
    def f(x, n):
        return x * n + n
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x, 2)
    assert s(x, 3) == 1
    assert s(x, 2) == 0


def test_float_arg_value_recompiles():
    def f(x, a):
        return x * a
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x, 1.5)
    assert s(x, 2.5) == 1
    assert s(x, 2) == 1  # int vs float: type changes


def test_bool_arg_value_recompiles():
    def f(x, flag):
        return x + 1 if flag else x - 1
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x, True)
    assert s(x, False) == 1
    assert s(x, True) == 0


def test_str_arg_value_recompiles():
    def f(x, mode):
        return x.relu() if mode == "relu" else x.tanh()
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x, "relu")
    assert s(x, "tanh") == 1
    assert s(x, "relu") == 0


def test_none_arg_recompiles():
    def f(x, b=None):
        return x if b is None else x + b
    s = Step(f, fullgraph=True)
    x, b = tensors_like((3,), (3,))
    s(x, None)
    assert s(x, b) == 1
    assert s(x) == 0


def test_list_length_recompiles():
    def f(xs):
        return sum(xs)
    s = Step(f, fullgraph=True)
    a, b, c = tensors_like((3,), (3,), (3,))
    s([a, b])
    assert s([a, b, c]) == 1
    assert s([b, a]) == 0


def test_list_item_values_recompile():
    def f(x, scales):
        return [x * k for k in scales]
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x, [1, 2])
    assert s(x, [1, 3]) == 1
    assert s(x, [1, 2]) == 0


def test_dict_keys_recompile():
    def f(d):
        return {k: v * 2 for k, v in d.items()}
    s = Step(f, fullgraph=True)
    a, b = tensors_like((3,), (3,))
    s({"a": a, "b": b})
    assert s({"b": b, "a": a}) == 1  # key order matters for the result's order
    assert s({"a": a, "c": b}) == 1
    assert s({"a": b, "b": a}) == 0


# --------------------------------------------------------------------------
# globals

G_T = torch.ones(3)
G_N = 2
G_F = 1.5


def g_fn(x):
    return x + 1


def _uses_globals(x):
    return g_fn(x * G_N + G_F) + G_T


def test_global_tensor_replaced():
    global G_T
    s = Step(_uses_globals, fullgraph=True)
    x, = tensors_like((3,))
    old = G_T
    try:
        s(x)
        G_T = torch.full((3,), 5.0)   # same metadata, different tensor
        s(x)
        G_T = torch.ones(3, dtype=torch.float64)
        s(x)
        assert graph_count() >= 2
    finally:
        G_T = old


def test_global_int_float_rebound():
    global G_N, G_F
    s = Step(_uses_globals, fullgraph=True)
    x, = tensors_like((3,))
    try:
        s(x)
        G_N = 3
        assert s(x) == 1
        G_F = -0.5
        assert s(x) == 1
    finally:
        G_N, G_F = 2, 1.5


def test_global_function_rebound():
    global g_fn
    s = Step(_uses_globals, fullgraph=True)
    x, = tensors_like((3,))
    old = g_fn
    try:
        s(x)
        g_fn = lambda t: t * 100  # noqa: E731
        assert s(x) == 1
    finally:
        g_fn = old


# --------------------------------------------------------------------------
# modules

class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.scale = 2.0
        self.use_bias = True
        self.b = nn.Parameter(torch.ones(4))
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        y = self.lin(x) * self.scale
        if self.use_bias:
            y = y + self.b
        return self.drop(y) if self.training else y


def _mod():
    torch.manual_seed(0)
    return Scaled().eval()


def _compiled_mod():
    """A fresh module, its compiled wrapper and an input, after one checked call."""
    m = _mod()
    c = compile_fn(m, backend="eager")
    x, = tensors_like((2, 4))
    same(m, c, x)
    return m, c, x


def test_module_attribute_scale_changed():
    m, c, x = _compiled_mod()
    r0 = recompiles()
    m.scale = 3.0
    same(m, c, x)
    assert recompiles() == r0 + 1


def test_module_flag_changed():
    m, c, x = _compiled_mod()
    m.use_bias = False
    same(m, c, x)
    assert recompiles() == 1


def test_parameter_replaced_same_shape():
    m, c, x = _compiled_mod()
    m.lin.weight = nn.Parameter(torch.randn(4, 4))
    out = c(x)
    assert_same(m(x), out)


def test_parameter_replaced_different_shape():
    m, c, x = _compiled_mod()
    m.lin = nn.Linear(4, 4, bias=False)
    same(m, c, x)
    m.b = nn.Parameter(torch.randn(1))   # broadcasts
    r0 = recompiles()
    same(m, c, x)
    assert recompiles() == r0 + 1


def test_parameter_resized_via_data():
    m, c, x = _compiled_mod()
    m.b.data = torch.randn(1)
    same(m, c, x)
    assert recompiles() == 1


def test_parameter_value_updated_in_place_no_recompile():
    m, c, x = _compiled_mod()
    with torch.no_grad():
        m.lin.weight.mul_(2)
    same(m, c, x)
    assert recompiles() == 0


def test_train_eval_toggle():
    m, c, x = _compiled_mod()
    m.train()
    torch.manual_seed(1)
    e = m(x)
    torch.manual_seed(1)
    a = c(x)
    assert_same(e, a)
    assert recompiles() == 1
    m.eval()
    same(m, c, x)
    assert recompiles() == 1


def test_forward_hook_added_after_compile():
    m, c, x = _compiled_mod()
    seen = []

    def hook(mod, inp, out):
        seen.append(1)
        return out * 10
    h = m.register_forward_hook(hook)
    try:
        e = m(x)
        a = c(x)
        assert_same(e, a)
        assert len(seen) == 2
    finally:
        h.remove()
    same(m, c, x)


def test_forward_pre_hook_on_submodule_after_compile():
    m, c, x = _compiled_mod()
    h = m.lin.register_forward_pre_hook(lambda mod, inp: (inp[0] + 1,))
    try:
        same(m, c, x)
    finally:
        h.remove()
    same(m, c, x)


# --------------------------------------------------------------------------
# closures, defaults

def test_closure_variable_rebound():
    k = 2

    def f(x):
        return x * k

    def set_k(v):
        nonlocal k
        k = v
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x)
    set_k(5)
    assert s(x) == 1
    set_k(2)
    assert s(x) == 0


def test_closure_tensor_rebound():
    w = torch.ones(3)

    def f(x):
        return x * w

    def set_w(v):
        nonlocal w
        w = v
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x)
    set_w(torch.full((3,), 7.0))
    s(x)


def test_default_argument_changed():
    def f(x, k=2):
        return x * k
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x)
    f.__defaults__ = (10,)
    assert s(x) == 1
    s(x, 2)        # correct either way (entries may guard on the defaults tuple's identity)
    assert s(x) == 0


def test_kwdefault_changed():
    def f(x, *, k=2):
        return x * k
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x)
    f.__kwdefaults__ = {"k": 4}
    assert s(x) == 1


# --------------------------------------------------------------------------
# global torch state

def test_grad_mode_change():
    lin = nn.Linear(3, 3)

    def f(x):
        return lin(x).relu()
    s = Step(f, fullgraph=True)
    x, = tensors_like((2, 3))
    out = s.c(x)
    assert out.requires_grad
    with torch.no_grad():
        assert s(x) == 1
        assert not s.c(x).requires_grad
    assert s.c(x).requires_grad
    assert recompiles() == 1


def test_default_dtype_change():
    def f(x):
        return x + torch.ones(3)
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert s(x) == 1
        assert s.c(x).dtype == torch.float64
    finally:
        torch.set_default_dtype(old)
    assert s(x) == 0


def test_deterministic_algorithms_change():
    s = Step(_tf, fullgraph=True)
    x, = tensors_like((3,))
    s(x)
    old = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        assert s(x) == 1
    finally:
        torch.use_deterministic_algorithms(old)
    assert s(x) == 0


# --------------------------------------------------------------------------
# cache limits, reset, stances

def _limited(x):
    return x * 2


def test_cache_size_limit_warns_and_stays_correct():
    c = compile_fn(_limited, backend="eager", dynamic=False)
    shapes = [(1,), (2,), (3,), (4,)]
    with bytegraph.config.patch(cache_size_limit=2):
        same(_limited, c, *tensors_like(shapes[0]))
        same(_limited, c, *tensors_like(shapes[1]))
        with pytest.warns(UserWarning, match="_limited"):
            same(_limited, c, *tensors_like(shapes[2]))
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # warned only once
            same(_limited, c, *tensors_like(shapes[3]))
            for s in shapes:
                same(_limited, c, *tensors_like(s))
    assert graph_count() == 2
    assert len(c.__bytegraph_state__.entries) == 2


def test_reset_clears_caches():
    c = compile_fn(_tf, backend="eager", fullgraph=True)
    x, = tensors_like((3,))
    same(_tf, c, x)
    assert len(c.__bytegraph_state__.entries) == 1
    bytegraph.reset()
    assert len(c.__bytegraph_state__.entries) == 0
    assert graph_count() == 0 and frames() == 0
    same(_tf, c, x)
    assert graph_count() == 1 and recompiles() == 0


def test_stance_force_eager():
    c = compile_fn(_tf, backend="eager", fullgraph=True)
    x, = tensors_like((3,))
    with bytegraph.set_stance("force_eager"):
        same(_tf, c, x)
    assert frames() == 0
    same(_tf, c, x)
    assert frames() == 1


def test_stance_eager_on_recompile():
    c = compile_fn(_tf, backend="eager", fullgraph=True)
    x, y = tensors_like((3,), (4,))
    same(_tf, c, x)
    with bytegraph.set_stance("eager_on_recompile"):
        same(_tf, c, y)
        same(_tf, c, x)
    assert frames() == 1 and recompiles() == 0


def test_stance_fail_on_recompile():
    c = compile_fn(_tf, backend="eager", fullgraph=True)
    x, y = tensors_like((3,), (4,))
    same(_tf, c, x)
    with bytegraph.set_stance("fail_on_recompile"):
        same(_tf, c, x)
        with pytest.raises(RuntimeError, match="recompile"):
            c(y)
    same(_tf, c, y)  # back to default
    assert recompiles() == 1


def test_stance_as_decorator_and_bad_name():
    c = compile_fn(_tf, backend="eager", fullgraph=True)
    x, = tensors_like((3,))

    @bytegraph.set_stance("force_eager")
    def run(t):
        return c(t)
    assert_same(_tf(x), run(x))
    assert frames() == 0
    with pytest.raises(ValueError):
        bytegraph.set_stance("nope")


# --------------------------------------------------------------------------
# threads

def test_threads_concurrent_calls():
    def f(x):
        return (x.cos() + x.sin()).sum(0)
    c = compile_fn(f, backend="eager", dynamic=False, fullgraph=True)
    shapes = [(2, 3), (4, 3), (5, 2), (3, 3)]
    inputs = [tensors_like(s, seed=i)[0] for i, s in enumerate(shapes)] * 6
    barrier = threading.Barrier(8, timeout=60)

    def work(i):
        if i < 8:
            barrier.wait()
        x = inputs[i]
        return c(x), f(x)

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(work, range(len(inputs))))
    for actual, expected in results:
        assert_same(expected, actual)
    assert graph_count() == len(shapes)
    assert len(c.__bytegraph_state__.entries) == len(shapes)


# --------------------------------------------------------------------------
# aliasing, mutation

def test_same_tensor_twice_vs_distinct_inplace():
    def f(a, b):
        a.add_(b)
        return a * b
    c = compile_fn(f, backend="eager", fullgraph=True)
    x, y = tensors_like((3,), (3,))
    # distinct
    ea, eb, ca, cb = x.clone(), y.clone(), x.clone(), y.clone()
    assert_same(f(ea, eb), c(ca, cb))
    assert_same((ea, eb), (ca, cb))
    # aliased: must not reuse the distinct-inputs graph
    e = x.clone()
    a_ = x.clone()
    assert_same(f(e, e), c(a_, a_))
    assert_same(e, a_)
    assert recompiles() == 1
    # back to distinct: hits the first entry
    ea, eb, ca, cb = x.clone(), y.clone(), x.clone(), y.clone()
    assert_same(f(ea, eb), c(ca, cb))
    assert_same((ea, eb), (ca, cb))
    assert recompiles() == 1


def test_same_tensor_twice_inductor_wrong_result():
    def f(a, b):
        a.add_(b)
        return a * b
    c = compile_fn(f, backend="inductor", fullgraph=True)
    x, y = tensors_like((3,), (3,))
    assert_same(f(x.clone(), y.clone()), c(x.clone(), y.clone()))
    e, a_ = x.clone(), x.clone()
    assert_same(f(e, e), c(a_, a_))
    assert_same(e, a_)


def test_view_aliasing_input():
    def f(a, b):
        a.mul_(2)
        return b + 1
    c = compile_fn(f, backend="eager")
    base = torch.arange(6.0)
    e = base.clone()
    a_ = base.clone()
    assert_same(f(e[:3], e[1:4]), c(a_[:3], a_[1:4]))
    assert_same(e, a_)


class Cfg:
    def __init__(self):
        self.k = 2
        self.mode = "add"


def test_object_attribute_mutated_between_calls():
    def f(x, cfg):
        return x + cfg.k if cfg.mode == "add" else x * cfg.k
    s = Step(f, fullgraph=True)
    cfg = Cfg()
    x, = tensors_like((3,))
    s(x, cfg)
    cfg.k = 7
    assert s(x, cfg) == 1
    cfg.mode = "mul"
    assert s(x, cfg) == 1
    cfg.k, cfg.mode = 2, "add"
    assert s(x, cfg) == 0


class Empty:
    pass


def test_object_new_attribute_added_getattr_default():
    def f(x, o):
        return x * getattr(o, "k", 1)
    s = Step(f, fullgraph=True)
    o = Empty()
    x, = tensors_like((3,))
    s(x, o)
    o.k = 3
    s(x, o)


def test_object_new_attribute_added_hasattr():
    def f(x, o):
        return x * 2 if hasattr(o, "k") else x
    s = Step(f, fullgraph=True)
    o = Empty()
    x, = tensors_like((3,))
    s(x, o)
    o.k = 3
    s(x, o)


# --------------------------------------------------------------------------
# more state the trace must not bake in

def test_global_tensor_mutated_in_place_no_recompile():
    def f(x):
        return x + G_T
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x)
    old = G_T.clone()
    try:
        G_T.add_(4)
        assert s(x) == 0
    finally:
        G_T.copy_(old)


def test_buffer_mutated_in_place_no_recompile():
    bn = nn.BatchNorm1d(3).eval()
    s = Step(bn, fullgraph=True)
    x, = tensors_like((2, 3))
    s(x)
    bn.running_mean.add_(5)
    assert s(x) == 0


def test_class_attribute_changed():
    class K:
        k = 2

        def helper(self, x):
            return x * 2

    def f(x, o):
        return o.helper(x) * o.k
    s = Step(f, fullgraph=True)
    o = K()
    x, = tensors_like((3,))
    s(x, o)
    K.k = 7
    assert s(x, o) == 1
    K.helper = lambda self, x: x * 3
    assert s(x, o) == 1


def test_instance_attribute_shadows_class_attribute():
    class K:
        k = 2

    def f(x, o):
        return x * o.k
    s = Step(f, fullgraph=True)
    o = K()
    x, = tensors_like((3,))
    s(x, o)
    o.k = 1
    assert s(x, o) == 1


def test_parameter_requires_grad_toggled():
    lin = nn.Linear(3, 3)

    def f(x):
        return lin(x)
    s = Step(f, fullgraph=True)
    x, = tensors_like((2, 3))
    s(x)
    for p in lin.parameters():
        p.requires_grad_(False)
    assert s(x) == 1
    assert not s.c(x).requires_grad


def test_object_tensor_attribute_replaced():
    o = Cfg()
    o.t = torch.ones(3)

    def f(x, o):
        return x + o.t
    s = Step(f, fullgraph=True)
    x, = tensors_like((3,))
    s(x, o)
    o.t = torch.full((3,), 4.0)           # same metadata: no retrace needed, new value used
    assert s(x, o) == 0
    o.t = torch.ones(3, dtype=torch.float64)
    assert s(x, o) == 1


def test_inference_mode_change():
    s = Step(_tf, fullgraph=True)
    x, = tensors_like((3,))
    s(x)
    with torch.inference_mode():
        out = s.c(x)
        assert_same(_tf(x), out)
        assert out.is_inference()


def test_autocast_state_change_inductor():
    def f(x, y):
        return x @ y
    c = compile_fn(f, backend="inductor")
    x, y = tensors_like((3, 3), (3, 3))
    assert_same(f(x, y), c(x, y))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = f(x, y)
        actual = c(x, y)
    assert_same(expected, actual, atol=1e-2, rtol=1e-2)


def _reads_torch_flag(x):
    return x * 2 if torch.backends.cudnn.enabled else x * 3


def test_torch_module_flag_is_guarded():
    """Functions and classes of torch are trusted without guards; its flags are not."""
    c = compile_fn(_reads_torch_flag, backend="eager")
    x, = tensors_like((3,))
    for flag in (True, False, True):
        with torch.backends.cudnn.flags(enabled=flag):
            assert_same(_reads_torch_flag(x), c(x))


def test_eager_fallback_does_not_hold_the_compile_lock():
    """A function that falls back to eager runs outside the compile lock: here it waits on a
    thread that has to compile something else (this deadlocked while the lock was held)."""
    import threading

    def inner(x):
        return x + 1

    compiled_inner = compile_fn(inner, backend="eager")
    results = []

    def outer(x):
        print("graph break: outer runs eagerly")
        t = threading.Thread(target=lambda: results.append(compiled_inner(x)))
        t.start()
        t.join(timeout=20)
        return not t.is_alive()

    x, = tensors_like((3,))
    assert compile_fn(outer, backend="eager")(x) is True
    assert_same(inner(x), results[0])


def test_class_property_added_later_shadows_instance_attribute():
    class Box:
        def __init__(self):
            self.v = 1

    def f(x, b):
        return x * b.v

    c = compile_fn(f, backend="eager")
    x, = tensors_like((3,))
    b = Box()
    assert_same(f(x, b), c(x, b))
    Box.v = property(lambda self: 7)          # a data descriptor now beats the instance dict
    assert_same(f(x, b), c(x, b))
