"""Soundness probes for the call-cost work (issue 11): the module generation counter and the
per-entry cache of child modules and parameters (guards/generation.py, docs/call_cost.md).

Each probe compiles, calls a few times (the first call after a compile fills the entry's cache,
later ones take the fast path), mutates module state, and checks the compiled result against
eager and the recompile count: a mutation the counter sees (setattr, delattr, dict writes, hooks,
train/eval), and metadata changes it deliberately does not track (`.data =`, `resize_`,
`requires_grad_`, `set_`), which the per-call parameter checks catch."""
import copy
import io
import pickle

import pytest
import torch
import torch.nn as nn

from differential import REFERENCE, assert_same, compile_fn, counters

# bytegraph's recompile counts; torch.compile counts recompiles elsewhere and skips hook guards
# by default (torch._dynamo.config.skip_nnmodule_hook_guards), so the hook probes fail there
pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's cache and recompile counts")


def recompiles():
    return counters()["recompiles"]["total"]


class Leaf(nn.Module):
    def __init__(self, n=4):
        super().__init__()
        self.lin = nn.Linear(n, n)
        self.scale = 2.0
        self.register_buffer("buf", torch.ones(n))

    def forward(self, x):
        y = self.lin(x) * self.scale + self.buf
        if self.training:
            y = y * 3
        if getattr(self, "flag", False):
            y = y - 1
        return y


class Tree(nn.Module):
    def __init__(self, shared=None):
        super().__init__()
        self.a = Leaf()
        self.layers = nn.ModuleList([Leaf(), Leaf()])
        self.shared = shared if shared is not None else Leaf()

    def forward(self, x):
        x = self.a(x)
        for layer in self.layers:
            x = layer(x)
        return self.shared(x)


class Probe:
    """A compiled model warmed onto its fast path; `check(expected_recompiles)` after a
    mutation compares with eager and counts recompiles."""

    def __init__(self, model, x=None):
        torch.manual_seed(0)
        self.m = model
        self.c = compile_fn(model, backend="eager")
        self.x = torch.randn(2, 4) if x is None else x
        for _ in range(3):
            self.run()

    def run(self, x=None):
        x = self.x if x is None else x
        with torch.no_grad():
            expected = self.m(x)
            actual = self.c(x)
        assert_same(expected, actual)
        return actual

    def check(self, n, x=None):
        before = recompiles()
        self.run(x)
        self.run(x)                      # the call after a recompile or refill: fast path
        assert recompiles() - before == n


@pytest.fixture
def probe():
    torch.manual_seed(0)
    return Probe(Tree().eval())


# ----------------------------------------------------------------------------- what the counter sees

def test_setattr_new_value_recompiles(probe):
    probe.m.layers[1].scale = 5.0
    probe.check(1)


def test_setattr_same_value_refills_without_recompile(probe):
    probe.m.layers[1].scale = probe.m.layers[1].scale
    probe.check(0)


def test_delattr_read_attribute(probe):
    probe.m.layers[0].flag = True
    probe.check(1)
    del probe.m.layers[0].flag
    probe.check(0)                       # the first entry serves again


def test_replace_submodule_deep(probe):
    probe.m.layers[1].lin = nn.Linear(4, 4)
    probe.check(1)


def test_replace_submodule_through_modules_dict(probe):
    probe.m.layers._modules["0"] = Leaf().eval()
    probe.check(1)


def test_replace_parameter_through_parameters_dict(probe):
    # same metadata: no recompile, but the new parameter's values must be used
    probe.m.layers[0].lin._parameters["weight"] = nn.Parameter(torch.randn(4, 4))
    probe.check(0)


def test_replace_parameter_by_setattr(probe):
    probe.m.a.lin.bias = nn.Parameter(torch.randn(4))
    probe.check(0)


def test_register_buffer_replaces_buffer(probe):
    probe.m.shared.register_buffer("buf", torch.full((4,), 7.0))
    probe.check(0)


def test_buffers_dict_pop_and_restore(probe):
    leaf = probe.m.layers[1]
    b = leaf._buffers.pop("buf")
    leaf.buf = b * 2                      # now a plain attribute: a different lookup path
    probe.check(1)


def test_train_eval_deep_in_the_tree(probe):
    probe.m.layers[1].train()
    probe.check(1)
    probe.m.layers[1].eval()
    probe.check(0)
    probe.m.train()
    probe.check(1)
    probe.m.eval()
    probe.check(0)


def test_forward_hook_added_to_submodule_after_compile(probe):
    h = probe.m.layers[0].register_forward_hook(lambda mod, args, out: out * 10)
    probe.check(1)
    h.remove()
    probe.check(0)


def test_forward_pre_hook_added_to_submodule_after_compile(probe):
    h = probe.m.shared.lin.register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
    probe.check(1)
    h.remove()
    probe.check(0)


def test_global_forward_hook():
    p = Probe(Tree().eval())
    h = nn.modules.module.register_module_forward_hook(lambda mod, args, out: None)
    try:
        before = recompiles()
        p.run()
        p.run()
        assert recompiles() - before <= 1
    finally:
        h.remove()
    p.check(0)


def test_shared_submodule_of_two_compiled_models():
    torch.manual_seed(0)
    shared = Leaf().eval()
    p1 = Probe(Tree(shared).eval())
    p2 = Probe(Tree(shared).eval())
    shared.scale = -1.0
    p1.check(1)
    p2.check(1)
    shared.lin.weight = nn.Parameter(torch.randn(4, 4))
    p1.check(0)
    p2.check(0)
    h = shared.register_forward_hook(lambda mod, args, out: out + 100)
    p1.check(1)
    p2.check(1)
    h.remove()
    p1.check(0)
    p2.check(0)


def test_load_state_dict_in_place_and_assign(probe):
    sd = {k: torch.randn_like(v) for k, v in probe.m.state_dict().items()}
    probe.m.load_state_dict(sd)
    probe.check(0)
    sd = {k: torch.randn_like(v) for k, v in probe.m.state_dict().items()}
    probe.m.load_state_dict(sd, assign=True)
    probe.check(0)


def test_module_to_dtype(probe):
    probe.m.to(torch.float64)
    probe.check(1, torch.randn(2, 4, dtype=torch.float64))


# ----------------------------------------------------------------------------- what it does not track

def test_param_data_assignment_same_shape(probe):
    probe.m.layers[0].lin.weight.data = torch.randn(4, 4)
    probe.check(0)


def test_param_data_assignment_other_dtype(probe):
    w = probe.m.layers[0].lin.weight
    w.data = w.data.double()
    with pytest.raises(RuntimeError):
        probe.m(probe.x)                  # eager raises (dtype mismatch): so must compiled
    with pytest.raises(RuntimeError):
        probe.c(probe.x)


def test_param_data_assignment_view_same_storage():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(2, 6))

        def forward(self, x):
            return x * self.w.sum(0)[:2] + self.w.shape[0]
    p = Probe(M(), torch.randn(2))
    p.m.w.data = p.m.w.data.view(6, 2)    # same storage, same data_ptr, other shape and stride
    p.check(1)
    p.m.w.data = p.m.w.data.view(2, 6).t().t()
    p.check(0)


def test_buffer_resize_in_place():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("b", torch.arange(6.0))

        def forward(self, x):
            return x + self.b.sum() + self.b.shape[0]
    p = Probe(M(), torch.randn(3))
    p.m.b.resize_(4)
    p.check(1)


def test_buffer_set_(probe):
    probe.m.layers[1].buf.set_(torch.zeros(4))
    probe.check(0)                        # same metadata, new storage: read through the buffer
    probe.m.layers[1].buf.set_(torch.zeros(1))
    probe.check(1)                        # broadcasting shape (1,): a new graph


def test_requires_grad_toggle():
    torch.manual_seed(0)
    m = Tree().eval()
    c = compile_fn(m, backend="eager")
    x = torch.randn(2, 4)
    for _ in range(3):
        assert_same(m(x), c(x))
    before = recompiles()
    m.layers[1].lin.weight.requires_grad_(False)
    assert_same(m(x), c(x))
    assert_same(m(x), c(x))
    assert recompiles() - before == 1
    m.layers[1].lin.weight.requires_grad_(True)
    assert_same(m(x), c(x))
    assert recompiles() - before == 1


# ----------------------------------------------------------------------------- the module stays itself

def test_tracked_module_keeps_type_pickle_deepcopy_state_dict(probe):
    m = probe.m
    assert type(m) is Tree and isinstance(m._parameters, dict)
    keys = list(m.state_dict().keys())
    data = pickle.dumps(m)
    assert b"bytegraph" not in data
    m2 = pickle.loads(data)
    assert list(m2.state_dict().keys()) == keys
    m3 = copy.deepcopy(m)
    assert type(m3._modules) is dict and type(m3.a._parameters) is dict
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    assert b"bytegraph" not in buf.getvalue()
    with torch.no_grad():
        assert_same(m(probe.x), m2(probe.x))
        assert_same(m(probe.x), m3(probe.x))


def test_fast_path_is_taken_and_refilled_after_a_mutation(probe):
    from bytegraph.guards.generation import GEN
    st = probe.c.__dict__["_bytegraph_call"].__bytegraph_state__
    cache = st.entries[0].__globals__["_ecache"]
    assert cache.state[0] == GEN[0]
    probe.m.layers[0].scale = 2.0         # same value: a bump, then a refill
    assert cache.state[0] != GEN[0]
    probe.run()
    assert cache.state[0] == GEN[0]


def test_requires_grad_setter_and_detach_():
    torch.manual_seed(0)
    m = Tree().eval()
    c = compile_fn(m, backend="eager")
    x = torch.randn(2, 4)
    for _ in range(3):
        assert_same(m(x), c(x))
    before = recompiles()
    m.a.lin.bias.requires_grad = False
    assert_same(m(x), c(x))
    assert recompiles() - before == 1
    m.a.lin.bias.requires_grad = True
    assert_same(m(x), c(x))
    m.shared.lin.weight.detach_()
    assert_same(m(x), c(x))
    assert_same(m(x), c(x))
    assert recompiles() - before == 2


def test_in_place_metadata_ops_on_a_parameter():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 1))

        def forward(self, x):
            return x * self.w.sum() + self.w.dim()
    p = Probe(M(), torch.randn(2))
    with torch.no_grad():
        p.m.w.squeeze_()
    p.check(1)
    with torch.no_grad():
        p.m.w.unsqueeze_(0)
    p.check(1)
    with torch.no_grad():
        torch.ops.aten.set_.source_Tensor(p.m.w, torch.randn(3, 1))
    p.check(0)                            # back to the first shape: the first entry serves


def test_parameter_class_keeps_its_behaviour():
    w = nn.Parameter(torch.randn(2, 2))
    assert isinstance(w.data, torch.Tensor) and type(w.data) is torch.Tensor
    w.data = torch.zeros(2, 2)
    assert w.sum().item() == 0 and w.requires_grad
    w.requires_grad_(False)
    assert not w.requires_grad
    w2 = copy.deepcopy(w)
    assert type(w2) is nn.Parameter and not w2.requires_grad
    assert torch.equal(pickle.loads(pickle.dumps(w)), w)


def test_replaced_module_dicts_are_tracked_again(probe):
    from collections import OrderedDict
    leaf = probe.m.layers[0]
    leaf._parameters = dict(leaf._parameters)       # same entries: no recompile
    probe.check(0)
    leaf._parameters["bias"] = nn.Parameter(torch.randn(4))
    probe.check(0)                                  # the new values are used
    leaf._forward_hooks = OrderedDict()
    probe.check(0)
    leaf.register_forward_hook(lambda mod, args, out: out * 0)
    probe.check(1)


def test_forward_that_writes_module_attributes_every_call():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.mult = 1

        def forward(self, x):
            self.mult = 2
            y = self.lin(x) * self.mult
            self.mult = 1
            return y
    p = Probe(M())
    p.check(0)
    p.m.lin.weight.data = torch.randn(4, 4)
    p.check(0)


def test_forward_that_counts_calls_on_the_module():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            y = self.lin(x) * self.calls
            if not hasattr(self, "seen"):
                self.seen = True
                y = y + 100
            return y
    torch.manual_seed(0)
    eager = M()
    compiled_m = copy.deepcopy(eager)
    c = compile_fn(compiled_m, backend="eager")
    x = torch.randn(2, 4)
    for _ in range(4):
        with torch.no_grad():
            assert_same(eager(x), c(x))
    assert compiled_m.calls == eager.calls == 4 and compiled_m.seen


def test_replaced_submodule_is_not_kept_alive_by_the_cache(probe):
    import gc
    import weakref
    old = probe.m.layers[1].lin
    ref = weakref.ref(old)
    probe.m.layers[1].lin = nn.Linear(4, 4)
    del old
    probe.check(1)
    gc.collect()
    assert ref() is None


# ----------------------------------------------------------------------------- dict version tags
# Guards on module globals and class dicts are skipped while those dicts keep their CPython
# version tags (guards/generation.py: DictWatch). Each probe warms an entry onto that path, then
# changes a global, a class attribute or a dict found in one.

SCALE = 2.0
MODE = "mul"
TABLE = {"a": 1.0, "b": 2.0}
CALLS = 0


def _g_shift(x):
    return x + 1


def _g_other_shift(x):
    return x - 10


def _g_act(x):
    return torch.relu(x)


def _g_twice(x):
    return _g_act(x) * 2


def _g_thrice(x):
    return _g_act(x) * 3


class GlobalsReader(nn.Module):
    OFFSETS = {"a": 0.5, "b": 1.5}
    factor = 3.0

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def helper(self, x):
        return x * self.factor + self.OFFSETS["a"]

    def other(self, x):
        return _g_thrice(x) - self.OFFSETS["b"]

    def forward(self, x):
        y = self.lin(x) * SCALE + TABLE["a"]
        if MODE == "mul":
            y = y * TABLE["b"]
        y = _g_shift(_g_twice(y))
        y = self.helper(y) + self.other(y)
        if getattr(self, "extra", None) is not None:
            y = y + self.extra
        return y


def _dict_probe():
    torch.manual_seed(0)
    return Probe(GlobalsReader().eval())


def _entry_globals(p):
    return p.c.__dict__["_bytegraph_call"].__bytegraph_state__.entries[-1].__globals__


def _versions(ns):
    """The version tags of the dicts an entry watches, read as its dict path reads them."""
    if "_dv_idx" in ns:                     # four or more: one gather (callcost4)
        return (ns["_dv_mem"][ns["_dv_idx"]].tobytes(),)
    return tuple(ns[f"_dv{i}"].value for i in range(len(ns["_dv_dicts"])))


@pytest.fixture
def restore_globals():
    g = globals()
    saved = {k: g[k] for k in ("SCALE", "MODE", "TABLE", "_g_shift", "_g_act")}
    saved_table = dict(TABLE)
    saved_cls = {k: GlobalsReader.__dict__[k] for k in ("OFFSETS", "factor", "helper")}
    saved_offsets = dict(GlobalsReader.OFFSETS)
    yield
    g.update(saved)
    TABLE.clear()
    TABLE.update(saved_table)
    for k, v in saved_cls.items():
        setattr(GlobalsReader, k, v)
    GlobalsReader.OFFSETS.clear()
    GlobalsReader.OFFSETS.update(saved_offsets)
    if "extra" in GlobalsReader.__dict__:
        del GlobalsReader.extra


def test_dict_version_tags_are_read_here_and_the_dict_path_is_taken():
    from bytegraph.guards import generation
    assert generation._TAG_AT is not None          # CPython 3.11: the probe found the tag
    p = _dict_probe()
    ns = _entry_globals(p)
    assert len(ns["_dv_dicts"]) >= 2
    cache = ns["_ecache"]
    assert cache.state[2] == _versions(ns)   # filled: the next call skips those guards
    p.check(0)


@pytest.mark.usefixtures("restore_globals")
@pytest.mark.parametrize("change", [
    lambda: globals().__setitem__("SCALE", 3.0),
    lambda: globals().__setitem__("MODE", "add"),
    lambda: globals().__setitem__("_g_shift", _g_other_shift),
    lambda: globals().__setitem__("_g_act", torch.sigmoid),       # read inside an inlined callee
    lambda: TABLE.__setitem__("a", 7.0),                          # a dict a global names
    lambda: setattr(GlobalsReader, "factor", -1.0),               # a class attribute
    lambda: setattr(GlobalsReader, "helper", GlobalsReader.other),  # a method
    lambda: GlobalsReader.OFFSETS.__setitem__("a", 9.0),          # a dict a class attribute names
    lambda: setattr(GlobalsReader, "extra", 4.0),                 # shadows an absent attribute
], ids=["float", "str", "function", "callee_global", "global_dict_item", "class_attr", "method",
        "class_dict_item", "class_attr_added"])
def test_change_seen_through_dict_versions(change):
    p = _dict_probe()
    change()
    p.check(1)


@pytest.mark.usefixtures("restore_globals")
def test_same_value_rebound_and_unrelated_global_written_no_recompile():
    p = _dict_probe()
    globals()["SCALE"] = globals()["SCALE"]
    globals()["CALLS"] = CALLS + 1            # same dict, a name the trace did not read
    p.check(0)
    ns = _entry_globals(p)
    assert ns["_ecache"].state[2] == _versions(ns)


@pytest.mark.usefixtures("restore_globals")
def test_change_then_change_back_serves_the_first_entry():
    p = _dict_probe()
    globals()["SCALE"] = 5.0
    p.check(1)
    globals()["SCALE"] = 2.0
    p.check(0)                                # the first entry again, after a full check
    globals()["SCALE"] = 5.0
    p.check(0)


def _counting_forward_fn(x):
    global CALLS
    CALLS = CALLS + 1
    return x * SCALE + TABLE["a"] + TABLE["b"] + _g_shift(x) + _g_twice(x) + _g_thrice(x)


@pytest.mark.usefixtures("restore_globals")
def test_function_that_writes_a_global_it_reads_every_call():
    c = compile_fn(_counting_forward_fn, backend="eager")
    x = torch.randn(3)
    global CALLS
    for i in range(5):
        before = CALLS
        assert_same(_counting_forward_fn(x), c(x))
        assert CALLS == before + 2
    TABLE["b"] = -3.0
    assert_same(_counting_forward_fn(x), c(x))


# ----------------------------------------------------------------------------- instance dicts
# A config object reached through a module attribute: its `__dict__` is watched by identity and
# version tag (guards/generation.py: Dyn), so its attribute guards are skipped while it is
# unchanged.

class Cfg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _cfg():
    return Cfg(scale=2.0, shift=1.0, mode="mul", depth=2, use_bias=True, name="c", eps=1e-5,
               act="relu", heads=4, extra=None)


class ConfigReader(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        c = self.config
        y = self.lin(x) * c.scale
        for _ in range(c.depth):
            y = y + c.shift
        if c.mode == "mul" and c.use_bias:
            y = y * c.heads
        if c.act == "relu":
            y = torch.relu(y) + c.eps
        if c.extra is not None:
            y = y + c.extra
        return y


def _cfg_probe(cfg=None):
    torch.manual_seed(0)
    return Probe(ConfigReader(cfg or _cfg()).eval())


def test_config_dict_is_watched():
    p = _cfg_probe()
    ns = _entry_globals(p)
    assert "_dv_getattr" in ns                    # the instance dict is on the dict path
    assert ns["_ecache"].state[5][0] is p.m.config.__dict__
    p.check(0)


@pytest.mark.parametrize("change", [
    lambda c: setattr(c, "scale", 3.0),
    lambda c: setattr(c, "mode", "add"),
    lambda c: setattr(c, "depth", 3),
    lambda c: setattr(c, "extra", 5.0),
    lambda c: c.__dict__.__setitem__("shift", -1.0),
    lambda c: delattr(c, "eps"),
    lambda c: object.__setattr__(c, "__dict__", dict(c.__dict__, scale=-2.0)),
    lambda c: object.__setattr__(c, "__dict__", dict(c.__dict__)),       # equal contents
    lambda c: setattr(c, "__class__", type("Cfg2", (Cfg,), {"scale": 9.0})),
], ids=["float", "str", "int", "none_to_float", "dict_write", "delattr", "dict_replaced",
        "dict_replaced_equal", "class_changed"])
def test_config_change_seen(change):
    p = _cfg_probe()
    change(p.m.config)
    try:
        p.run()
        p.run()
    except AttributeError:
        with pytest.raises(AttributeError):
            p.c(p.x)


def test_config_replaced_on_the_module_then_old_and_new_mutated():
    p = _cfg_probe()
    old = p.m.config
    p.m.config = _cfg()                      # equal contents: a refill, not a recompile
    p.check(0)
    old.scale = 100.0                        # no longer read by eager: no effect
    p.check(0)
    p.m.config.scale = 7.0                   # the new one is read
    p.check(1)


def test_config_shared_by_two_compiled_models():
    cfg = _cfg()
    a, b = _cfg_probe(cfg), _cfg_probe(cfg)
    cfg.shift = 4.0
    a.check(1)
    b.check(1)
