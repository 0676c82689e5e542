"""Red-team probes for the dict path's function/cell field check (guards/generation.py:
FieldWatch, docs/call_cost.md): identity guards on `f.__code__`, `f.__defaults__`,
`f.__kwdefaults__` and a closure cell's contents are replaced, while the cache holds, by one
gather of those pointer fields compared with the expected objects' addresses. Each probe warms a
compiled model onto that path, writes one of those fields (none of which is a dict write the
version tags would see), and checks the result against eager and the recompile count."""
import pytest
import torch
import torch.nn as nn

from differential import REFERENCE, compile_fn, ModelProbe, recompiles

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's cache and recompile counts")


def _f_scale(x, k=2.0, *, bias=1.0):
    return x * k + bias


def _f_alt(x, k=2.0, *, bias=1.0):
    return x * k - bias * 4


def _f_act(x):
    return torch.relu(x)


def _f_other_act(x):
    return torch.sigmoid(x)


def _helper_alt(self, x, k=0.5):
    return x - k


def _make_wrapper(fn):
    def wrapped(x):
        return fn(x) * 3
    return wrapped


def _make_counter_wrapper(fn):
    """A wrapper whose cell its own helper rebinds (a `nonlocal` write, as a user could)."""
    def wrapped(x):
        return fn(x) + 1

    def rebind(new):
        nonlocal fn
        fn = new
    return wrapped, rebind


def _as_method(fn):
    def method(self, x):
        return fn(x) * 2
    return method


def _as_other_method(fn):
    def method(self, x):
        return fn(x) * -5
    return method


def _as_counting_method(fn):
    def method(self, x):
        return fn(x) - 1

    def rebind(new):
        nonlocal fn
        fn = new
    return method, rebind


_W_ACT = _make_wrapper(_f_act)
_W_CNT, _W_REBIND = _make_counter_wrapper(_f_act)


class FieldsModel(nn.Module):
    act2 = _as_method(_f_act)                     # its cell is reached through the class dict
    act3, rebind_act3 = _as_counting_method(_f_act)

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def helper(self, x, k=0.5):
        return x * k

    def forward(self, x):
        y = self.lin(x)
        y = _f_scale(y) + _W_ACT(y) + _W_CNT(y)
        return self.helper(y) + _f_act(y) + self.act2(y) + self.act3(y)


class Probe(ModelProbe):
    def __init__(self):
        torch.manual_seed(0)
        self.m = FieldsModel().eval()
        self.c = compile_fn(self.m, backend="eager")
        self.x = torch.randn(2, 4)
        for _ in range(3):
            self.run()

    def check(self, n):
        super().check(n, calls=2)

    def ns(self):
        return self.c.__dict__["_bytegraph_call"].__bytegraph_state__.entries[-1].__globals__


@pytest.fixture
def restore():
    saved = {f: (f.__code__, f.__defaults__, f.__kwdefaults__)
             for f in (_f_scale, _f_act, FieldsModel.helper, FieldsModel.act2)}
    cells = [(w.__closure__[0], w.__closure__[0].cell_contents)
             for w in (_W_ACT, _W_CNT, FieldsModel.act2, FieldsModel.act3)]
    yield
    for f, (code, d, kw) in saved.items():
        f.__code__, f.__defaults__, f.__kwdefaults__ = code, d, kw
    for cell, v in cells:
        cell.cell_contents = v


def field_path_taken(p):
    """The entry has a FieldWatch and, after the last call, its gather agrees."""
    ns = p.ns()
    if "_fw_exp" not in ns:
        return False
    state = ns["_ecache"].state
    idx = state[6] if "_fw_idx" not in ns else ns["_fw_idx"]
    return idx is not None and ns["_fw_mem"][idx].tobytes() == ns["_fw_exp"]


def test_field_watch_is_built_and_agrees():
    from bytegraph.guards import generation
    assert generation._FIELD_AT is not None        # CPython 3.11: the probe found the fields
    p = Probe()
    assert field_path_taken(p)
    stats = p.ns()["_ecache"].stats
    assert len(stats) == 6 and stats[5] >= 4       # guards the gather stands for
    p.check(0)
    assert field_path_taken(p)


@pytest.mark.usefixtures("restore")
@pytest.mark.parametrize("change", [
    lambda: setattr(_f_scale, "__code__", _f_alt.__code__),
    lambda: setattr(_f_scale, "__defaults__", (-3.0,)),
    lambda: setattr(_f_scale, "__kwdefaults__", {"bias": 5.0}),
    lambda: setattr(_f_act, "__code__", _f_other_act.__code__),           # read by two paths
    lambda: setattr(FieldsModel.helper, "__code__", _helper_alt.__code__),      # a method
    lambda: setattr(FieldsModel.helper, "__defaults__", (7.0,)),
    lambda: setattr(_W_ACT.__closure__[0], "cell_contents", _f_other_act),  # a closure cell
    lambda: _W_REBIND(_f_other_act),                                        # nonlocal write
    lambda: setattr(FieldsModel.act2.__closure__[0], "cell_contents", _f_other_act),
    lambda: FieldsModel.rebind_act3(_f_other_act),
    lambda: setattr(FieldsModel.act2, "__code__", _as_other_method(_f_act).__code__),
], ids=["code", "defaults", "kwdefaults", "callee_code", "method_code", "method_defaults",
        "cell_contents", "nonlocal", "class_cell_contents", "class_cell_nonlocal",
        "wrapper_code"])
def test_field_write_recompiles(change):
    p = Probe()
    assert field_path_taken(p)
    change()
    p.check(1)


@pytest.mark.usefixtures("restore")
def test_field_changed_and_changed_back_keeps_the_entry():
    p = Probe()
    code = _f_scale.__code__
    _f_scale.__code__ = _f_alt.__code__
    p.check(1)
    _f_scale.__code__ = code
    p.check(0)                  # the first entry again (its fields hold what it expects)
    _f_scale.__code__ = _f_alt.__code__
    p.check(0)


@pytest.mark.usefixtures("restore")
def test_equal_but_distinct_defaults_tuple_is_a_change():
    """`__defaults__` is guarded by identity: an equal new tuple fails the gather and the guard
    alike (a recompile, never a wrong result)."""
    p = Probe()
    _f_scale.__defaults__ = tuple(_f_scale.__defaults__)[:0] + (2.0,)
    p.run()


def test_cache_without_index_runs_the_guards():
    """A cache entry whose gather index is missing (an owner the cache could not index) falls
    back to the field guards themselves: no miss, no recompile."""
    p = Probe()
    ns = p.ns()
    cache = ns["_ecache"]
    if "_fw_idx" in ns:
        pytest.skip("every owner is fixed: no per-cache index")
    cache.state = cache.state[:6] + (None,)
    p.check(0)


@pytest.mark.usefixtures("restore")
def test_field_write_between_two_compiled_models():
    """Two compiled models reading the same functions: a write is seen by both."""
    a, b = Probe(), Probe()
    _f_scale.__defaults__ = (-1.5,)
    a.check(1)
    b.check(1)
