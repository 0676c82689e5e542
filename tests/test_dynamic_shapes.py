"""Dynamic shapes: automatic dynamic, dynamic=True/False, marks, symbolic sizes through Python,
recompile reasons and the guards a symbolic trace installs. Differential: every call is
compared with eager, and the number of compiles is asserted."""
import logging

import pytest
import torch

import bytegraph
from differential import assert_same, counters, default_dtype


def compiles():
    return counters()["frames"]["ok"]


def run(fn, c, *args, **kwargs):
    expected = fn(*args, **kwargs)
    actual = c(*args, **kwargs)
    assert_same(expected, actual)
    return actual


def _batch(x, w):
    return torch.relu(x @ w).sum(-1) * x.shape[0]


BATCHES = (2, 3, 5, 8, 13, 21, 34, 55)


@pytest.mark.parametrize("dynamic,expected", [(None, 2), (False, 8), (True, 1)])
def test_batch_sweep(dynamic, expected):
    w = torch.randn(6, 4)
    c = bytegraph.compile(_batch, backend="eager", dynamic=dynamic)
    for b in BATCHES:
        run(_batch, c, torch.randn(b, 6), w)
    assert compiles() == expected
    for b in BATCHES:                     # every size again: pure cache hits
        run(_batch, c, torch.randn(b, 6), w)
    assert compiles() == expected


def _python_sizes(x, y):
    b, s = x.shape[0], x.size(1)
    half = s // 2
    z = x[:, :half] + torch.arange(half)
    h = z.reshape(b, -1, 1).sum(-1)
    return h @ y[:half], len(x), x.numel(), min(s, 100), max(b, 1) + half


def test_symbolic_sizes_through_python():
    c = bytegraph.compile(_python_sizes, backend="eager", dynamic=True)
    for b, s in ((4, 8), (8, 8), (5, 12), (16, 6), (7, 10)):
        out = run(_python_sizes, c, torch.randn(b, s), torch.randn(s, 3))
        assert type(out[1]) is int and type(out[2]) is int
    assert compiles() == 1


def _view_heads(x, heads):
    b, t, d = x.shape
    q = x.view(b, t, heads, d // heads).transpose(1, 2)
    att = (q @ q.transpose(-1, -2)) / (d // heads) ** 0.5
    return (att.softmax(-1) @ q).transpose(1, 2).reshape(b, t, d)


def test_view_with_symbolic_sizes_and_int_argument():
    c = bytegraph.compile(_view_heads, backend="eager")
    for t in (3, 4, 7, 9, 12):
        run(_view_heads, c, torch.randn(2, t, 8), 2)
    assert compiles() == 2
    run(_view_heads, c, torch.randn(2, 5, 8), 4)     # the int changes: dynamic after one change
    run(_view_heads, c, torch.randn(2, 5, 8), 8)   # 8 // heads ** 0.5 specializes heads
    assert compiles() <= 4


def _branchy(x):
    if x.shape[0] > 4:
        return x * 2
    return x - 1


def test_branch_on_a_symbolic_size_is_guarded():
    c = bytegraph.compile(_branchy, backend="eager", dynamic=True)
    for b in (6, 9, 2, 3, 12, 4, 5):
        run(_branchy, c, torch.randn(b, 3))
    assert compiles() == 2          # one entry per side of the branch


def test_zero_one_specialization():
    c = bytegraph.compile(_batch, backend="eager", dynamic=True)
    w = torch.randn(6, 4)
    for b in (3, 1, 4, 0, 9, 1, 0):
        run(_batch, c, torch.randn(b, 6), w)
    assert compiles() == 3          # sizes 0 and 1 are specialized, each its own entry


def _add(x, y):
    return x + y


def test_broadcast_relation_between_dynamic_dims():
    c = bytegraph.compile(_add, backend="eager", dynamic=True)
    run(_add, c, torch.randn(4, 3), torch.randn(4, 3))
    run(_add, c, torch.randn(7, 3), torch.randn(7, 3))          # equal sizes: same entry
    assert compiles() == 1
    run(_add, c, torch.randn(7, 3), torch.randn(1, 3))           # broadcasting: new entry
    with pytest.raises(RuntimeError):
        c(torch.randn(7, 3), torch.randn(5, 3))                  # eager's own error
    assert compiles() >= 2


def test_strides_are_guarded():
    c = bytegraph.compile(_batch, backend="eager", dynamic=True)
    w = torch.randn(6, 4)
    run(_batch, c, torch.randn(5, 6), w)
    run(_batch, c, torch.randn(6, 9)[:, :6], w)                   # same sizes, other strides
    run(_batch, c, torch.randn(6, 5).t(), w)
    assert compiles() == 3


def _shape_product(x):
    n = x.shape[0] * x.shape[1]
    return x.reshape(n), n


def test_symbolic_int_output():
    c = bytegraph.compile(_shape_product, backend="eager", dynamic=True)
    for s in ((2, 3), (4, 5), (3, 3)):
        out = run(_shape_product, c, torch.randn(*s))
        assert type(out[1]) is int
    assert compiles() == 1


def _specializes(x):
    out = []
    for i in range(x.shape[0]):         # unrolling needs the number
        out.append(x[i] * i)
    return torch.stack(out)


def test_specialization_is_guarded():
    c = bytegraph.compile(_specializes, backend="eager", dynamic=True)
    for b in (3, 4, 3, 4, 5):
        run(_specializes, c, torch.randn(b, 2))
    assert compiles() == 3


def test_mark_dynamic_compiles_symbolic_from_the_start():
    x = torch.randn(5, 6)
    bytegraph.mark_dynamic(x, 0)
    w = torch.randn(6, 4)
    c = bytegraph.compile(_batch, backend="eager")
    run(_batch, c, x, w)
    for b in (7, 9, 11):
        run(_batch, c, torch.randn(b, 6), w)
    assert compiles() == 1


def test_mark_dynamic_specialized_raises_naming_the_line():
    x = torch.randn(5, 2)
    bytegraph.mark_dynamic(x, 0)
    c = bytegraph.compile(_specializes, backend="eager")
    with pytest.raises(bytegraph.ConstraintViolation, match=r"test_dynamic_shapes.py:\d+"):
        c(x)


def _eq_branch(x):
    if x.shape[0] == 5:
        return x + 1
    return x


def test_mark_dynamic_equality_branch_raises():
    x = torch.randn(5, 2)
    bytegraph.mark_dynamic(x, 0)
    c = bytegraph.compile(_eq_branch, backend="eager")
    with pytest.raises(bytegraph.ConstraintViolation, match="L\\['x'\\] dim 0"):
        c(x)


def test_maybe_mark_dynamic_allows_specialization():
    x = torch.randn(5, 2)
    bytegraph.maybe_mark_dynamic(x, 0)
    c = bytegraph.compile(_specializes, backend="eager")
    run(_specializes, c, x)
    assert compiles() == 1


def test_mark_dynamic_min_max():
    x = torch.randn(5, 6)
    bytegraph.mark_dynamic(x, 0, min=2, max=10)
    w = torch.randn(6, 4)
    c = bytegraph.compile(_batch, backend="eager", dynamic=False)
    run(_batch, c, x, w)
    run(_batch, c, torch.randn(9, 6), w)
    assert compiles() == 1
    run(_batch, c, torch.randn(12, 6), w)          # outside [2, 10]: a new entry
    assert compiles() == 2


def test_mark_static_under_dynamic_true():
    x = torch.randn(5, 6)
    bytegraph.mark_static(x, 0)
    w = torch.randn(6, 4)
    c = bytegraph.compile(_batch, backend="eager", dynamic=True)
    run(_batch, c, x, w)
    run(_batch, c, torch.randn(7, 6), w)
    assert compiles() == 2


def test_mark_bad_input():
    with pytest.raises(TypeError, match="torch.Tensor"):
        bytegraph.mark_dynamic([1, 2], 0)
    with pytest.raises(ValueError, match="out of range"):
        bytegraph.mark_dynamic(torch.randn(2), 3)
    with pytest.raises(TypeError, match="int dimension"):
        bytegraph.mark_static(torch.randn(2), "0")
    with pytest.raises(ValueError, match="greater than"):
        bytegraph.mark_dynamic(torch.randn(2), 0, min=5, max=3)


def test_recompile_reasons_in_user_terms(caplog):
    c = bytegraph.compile(_view_heads, backend="eager")
    with caplog.at_level(logging.INFO, logger="bytegraph.recompiles"):
        run(_view_heads, c, torch.randn(2, 4, 8), 2)
        run(_view_heads, c, torch.randn(2, 6, 8), 2)
        run(_view_heads, c, torch.randn(2, 6, 8), 4)
    text = caplog.text
    assert "size of L['x'] dim 1: expected 4, got 6" in text
    assert "L['heads'] changed: 2 -> 4" in text
    assert counters()["recompiles"]["total"] == 2


_flag = True


def _global_flag(x):
    return x + 1 if _flag else x - 1


def test_recompile_reason_global(caplog):
    global _flag
    c = bytegraph.compile(_global_flag, backend="eager")
    with caplog.at_level(logging.INFO, logger="bytegraph.recompiles"):
        run(_global_flag, c, torch.randn(3))
        _flag = False
        try:
            run(_global_flag, c, torch.randn(3))
        finally:
            _flag = True
    assert "_flag" in caplog.text


def test_fail_on_recompile_names_the_change():
    c = bytegraph.compile(_batch, backend="eager")
    w = torch.randn(6, 4)
    run(_batch, c, torch.randn(3, 6), w)
    with bytegraph.set_stance("fail_on_recompile"):
        with pytest.raises(RuntimeError, match="dim 0"):
            c(torch.randn(4, 6), w)


def test_dynamic_with_graph_break():
    def f(x, n):
        y = x.sum(0) * x.shape[1] + n
        print("between")
        return torch.zeros(x.shape[0], x.shape[1] // 2) + y[: x.shape[1] // 2], x[: x.shape[0] - 1]

    c = bytegraph.compile(f, backend="eager", dynamic=True)
    for b, s, n in ((4, 8, 2), (8, 6, 5), (3, 4, 7), (5, 10, 9)):
        run(f, c, torch.randn(b, s), n)
    assert compiles() == 1


@pytest.mark.parametrize("backend", ["aten", "inductor"])
def test_compiling_backends_get_symbolic_graphs(backend):
    def f(x, n):
        y = x.sum(0) * min(x.shape[1], 6) + max(n, 3)
        print("between")
        if x.shape[0] > 3:
            y = y + 1
        return y, torch.zeros(x.shape[0], x.shape[1] // 2), x[: x.shape[0] - 1]

    c = bytegraph.compile(f, backend=backend, dynamic=True)
    for b, s, n in ((4, 8, 2), (8, 8, 5), (2, 12, 7), (5, 10, 9), (3, 4, 4)):
        run(f, c, torch.randn(b, s), n)
    assert compiles() <= 3


def test_symbolic_graph_has_symint_placeholders():
    seen = []

    def backend(gm, example_inputs):
        seen.append([type(e) for e in example_inputs])
        return gm.forward

    c = bytegraph.compile(_batch, backend=backend, dynamic=True)
    run(_batch, c, torch.randn(5, 6), torch.randn(6, 4))
    assert torch.SymInt in seen[0]


def test_module_sequence_sweep():
    enc = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True).eval()
    c = bytegraph.compile(enc, backend="eager")
    with torch.no_grad():
        for t in (3, 5, 8, 11, 16):
            x = torch.randn(2, t, 16)
            assert_same(enc(x), c(x), atol=1e-4, rtol=1e-4)
    assert compiles() <= 2


# --------------------------------------------------------------------------
# recompile reasons, one per guard kind

class _Obj:
    pass


_global_n = 3
_shared = _Obj()


def _reason_fn(x, n, s, lst, obj):
    return x * n + len(lst) + (1 if s == "a" else 2) + (0 if isinstance(obj, _Obj) else 1) + _global_n


def _reason_case(change):
    args = dict(x=torch.randn(3, 2), n=2, s="a", lst=[1, 2], obj=_Obj())
    return args, {**args, **change(args)}


REASONS = [
    ("size", lambda a: {"x": torch.randn(4, 2)}, r"size of L\['x'\] dim 0: expected 3, got 4"),
    ("dtype", lambda a: {"x": torch.randn(3, 2, dtype=torch.float64)},
     r"dtype of L\['x'\] changed: expected torch.float32, got torch.float64"),
    ("stride", lambda a: {"x": torch.randn(2, 3).t()}, r"stride of L\['x'\] changed"),
    ("requires_grad", lambda a: {"x": torch.randn(3, 2, requires_grad=True)},
     r"requires_grad of L\['x'\] changed: expected False, got True"),
    ("int", lambda a: {"n": 5}, r"L\['n'\] changed: 2 -> 5"),
    ("str", lambda a: {"s": "b"}, r"L\['s'\] changed: 'a' -> 'b'"),
    ("len", lambda a: {"lst": [1, 2, 3]}, r"len of L\['lst'\] changed: expected 2, got 3"),
    ("type", lambda a: {"obj": object()}, r"type of L\['obj'\] changed: expected _Obj, got object"),
]


@pytest.mark.parametrize("name,change,pattern", REASONS, ids=[r[0] for r in REASONS])
def test_recompile_reason_text(caplog, name, change, pattern):
    first, second = _reason_case(change)
    c = bytegraph.compile(_reason_fn, backend="eager", dynamic=False)
    with caplog.at_level(logging.INFO, logger="bytegraph.recompiles"):
        run(_reason_fn, c, **first)
        run(_reason_fn, c, **second)
    assert counters()["recompiles"]["total"] == 1
    import re
    assert re.search(pattern, caplog.text), caplog.text


@pytest.mark.parametrize("name,switch,pattern", [
    ("grad", lambda: torch.no_grad(), "grad mode changed"),
    ("default_dtype", lambda: default_dtype(torch.float64), "default dtype changed"),
    ("global", lambda: _set_global(7), r"global '_global_n' changed: 3 -> 7"),
])
def test_recompile_reason_state(caplog, name, switch, pattern):
    args, _ = _reason_case(lambda a: {})
    c = bytegraph.compile(_reason_fn, backend="eager")
    with caplog.at_level(logging.INFO, logger="bytegraph.recompiles"):
        run(_reason_fn, c, **args)
        with switch():
            run(_reason_fn, c, **args)
    import re
    assert re.search(pattern, caplog.text), caplog.text


import contextlib  # noqa: E402




@contextlib.contextmanager
def _set_global(v):
    global _global_n
    old, _global_n = _global_n, v
    try:
        yield
    finally:
        _global_n = old


def test_recompile_reason_shape_guard(caplog):
    c = bytegraph.compile(_branchy, backend="eager", dynamic=True)
    with caplog.at_level(logging.INFO, logger="bytegraph.recompiles"):
        run(_branchy, c, torch.randn(6, 3))
        run(_branchy, c, torch.randn(2, 3))
    assert "shape guard failed: x.size(0) >= 5" in caplog.text


def test_cache_limit_warning_names_function_entries_and_reason():
    w = torch.randn(6, 4)
    c = bytegraph.compile(_batch, backend="eager", dynamic=False)
    with bytegraph.config.patch(cache_size_limit=2):
        run(_batch, c, torch.randn(2, 6), w)
        run(_batch, c, torch.randn(3, 6), w)
        with pytest.warns(UserWarning, match=r"_batch .*has 2 cache entries.*size of L\['x'\] dim 0: "
                                             r"expected 3, got 4"):
            run(_batch, c, torch.randn(4, 6), w)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # once per function
            run(_batch, c, torch.randn(5, 6), w)
    assert compiles() == 2


def test_accumulated_limit_is_a_total_across_functions():
    """config.accumulated_cache_size_limit counts the compiles of every function since reset():
    the function whose miss reaches it runs eagerly (one warning, naming the limit and it), so
    does every later miss of any function; entries compiled before keep serving."""
    import warnings

    def f(x):
        return x * 2

    def g(x):
        return x + 1

    def h(x):
        return x - 1
    cf, cg, ch = (bytegraph.compile(fn, backend="eager", dynamic=False) for fn in (f, g, h))
    with bytegraph.config.patch(accumulated_cache_size_limit=3, cache_size_limit=100):
        run(f, cf, torch.ones(2))
        run(f, cf, torch.ones(3))
        run(g, cg, torch.ones(2))                 # the third compile: g's first
        with pytest.warns(UserWarning, match=r"3 compiles since bytegraph.reset\(\), "
                                             r"config.accumulated_cache_size_limit=3: .*<locals>\.h "):
            run(h, ch, torch.ones(2))             # h never compiled: eager
        with warnings.catch_warnings():
            warnings.simplefilter("error")        # one warning per process
            run(f, cf, torch.ones(4))             # f misses: eager too
            run(g, cg, torch.ones(5))
            for n in (2, 3):
                run(f, cf, torch.ones(n))         # f's entries still serve
            run(g, cg, torch.ones(2))
            eager_before = counters()["stats"]["eager_runs"]
            run(f, cf, torch.ones(2))
            assert counters()["stats"]["eager_runs"] == eager_before      # a cache hit
        assert compiles() == 3
        assert counters()["fallback"]["accumulated_limit"] == 3           # h, f, g
    bytegraph.reset()                             # reset() starts the count again
    with bytegraph.config.patch(accumulated_cache_size_limit=3):
        run(h, ch, torch.ones(2))
        assert compiles() == 1


def test_stance_fail_on_recompile_with_dynamic_entry():
    c = bytegraph.compile(_batch, backend="eager")
    w = torch.randn(6, 4)
    run(_batch, c, torch.randn(3, 6), w)
    run(_batch, c, torch.randn(4, 6), w)            # the dynamic recompile
    with bytegraph.set_stance("fail_on_recompile"):
        for b in (5, 9, 17):                          # served by the dynamic entry: no recompile
            run(_batch, c, torch.randn(b, 6), w)
        with pytest.raises(RuntimeError, match="dtype of L\\['x'\\]"):
            c(torch.randn(5, 6, dtype=torch.float64), w)


def test_stance_eager_on_recompile_keeps_dynamic_entry():
    c = bytegraph.compile(_batch, backend="eager", dynamic=True)
    w = torch.randn(6, 4)
    run(_batch, c, torch.randn(3, 6), w)
    with bytegraph.set_stance("eager_on_recompile"):
        run(_batch, c, torch.randn(8, 6), w)
        run(_batch, c, torch.randn(8, 6, dtype=torch.float64), w.double())
    assert compiles() == 1


# --------------------------------------------------------------------------- floats, ints in containers

def _scale(x, f):
    return x * f + (f > 3), str(f) if f < 0 else f


@pytest.mark.parametrize("dynamic,expected", [(None, 2), (True, 1), (False, 5)])
def test_float_argument(dynamic, expected):
    c = bytegraph.compile(_scale, backend="eager", dynamic=dynamic)
    for f in (2.5, 3.5, 4.25, 5.5, 6.5):
        run(_scale, c, torch.ones(3), f)
    assert compiles() == expected


def test_float_symbolic_entry_rejects_nan_inf_and_keeps_signed_zero():
    """A SymFloat entry holds for finite floats only (its guards reason over real numbers); nan
    and inf trace again, as constants; -0.0 and 0.0 reach the graph as they are."""
    def f(x, v):
        return x * v, v == v, v > 1e300, 1 / x.sum() * v
    c = bytegraph.compile(f, backend="eager", dynamic=True)
    for v in (2.5, float("nan"), float("inf"), -0.0, 0.0, -7.5, float("-inf"), 1.5):
        run(f, c, torch.ones(2), v)
    assert compiles() == 4          # 2.5 (symbolic), nan, inf, -inf


def test_float_stays_constant_for_inductor():
    """inductor would need a SymFloat graph input as a 0-d tensor: floats stay constants there."""
    c = bytegraph.compile(_scale, backend="inductor", dynamic=True)
    for f in (2.5, 3.5):
        run(_scale, c, torch.ones(3), f)
    assert compiles() == 2


class _Box:
    def __init__(self, n):
        self.n = n


@pytest.mark.parametrize("fn,make", [
    (lambda d: d["a"] * d["n"], lambda n: ({"a": torch.ones(3), "n": n},)),
    (lambda x, b: x[: b.n] * b.n, lambda n: (torch.ones(8), _Box(n))),
    (lambda x, t: x * t[0] + t[1], lambda n: (torch.ones(3), (n, n + 1))),
    (lambda x, *ns: x * sum(ns), lambda n: (torch.ones(3), n, n + 1)),
])
def test_ints_in_containers_become_dynamic_after_a_change(fn, make):
    c = bytegraph.compile(fn, backend="eager")
    for n in (2, 3, 4, 5, 6, 3):
        run(fn, c, *make(n))
    assert compiles() == 2


def test_container_int_changing_container_shape_recompiles():
    """The learnt item is only symbolic while the container still has that shape (len guarded)."""
    fn = lambda x, t: x * t[0] + len(t)
    c = bytegraph.compile(fn, backend="eager")
    for t in ((2,), (3,), (4,), (4, 5), (6, 5)):
        run(fn, c, torch.ones(3), t)
    assert compiles() == 3


def test_size_live_across_break_symbolic_in_resume():
    import sys

    def f(x):
        s = x.shape
        print("break", file=sys.stderr)
        return x.reshape(s[0] * s[1]) + s[0], s
    for dynamic, expected in ((True, 2), (None, 4)):
        bytegraph.reset()
        c = bytegraph.compile(f, backend="eager", dynamic=dynamic)
        for b in (4, 6, 9, 7, 8, 5):
            out = run(f, c, torch.randn(b, 3))
            assert type(out[1]) is torch.Size
        assert compiles() == expected, dynamic


def test_index_by_symbolic_int():
    fn = lambda x, n: x[n] * 2
    c = bytegraph.compile(fn, backend="eager", dynamic=True)
    for x, n in ((torch.randn(4, 2), 2), (torch.randn(4, 2), -3), (torch.randn(6, 2), 5), (torch.randn(5, 2), -5)):
        run(fn, c, x, n)
    assert compiles() == 2          # select guards the sign of the index (as torch.compile)
    with pytest.raises(IndexError):
        c(torch.randn(4, 2), 7)


def test_torch_tensor_of_size_dtypes():
    def f(x):
        n = x.shape[0]
        return (torch.tensor(n), torch.tensor(n / 2), torch.tensor(n > 3), torch.tensor(n, dtype=torch.float64),
                torch.tensor(n, dtype=None), x * torch.tensor(n))
    c = bytegraph.compile(f, backend="eager", dynamic=True)
    for b in (4, 6, 3):
        out = run(f, c, torch.randn(b, 2))
        assert [t.dtype for t in out[:5]] == [torch.int64, torch.float32, torch.bool, torch.float64, torch.int64]
    assert compiles() == 1


def test_size_methods_and_math_stay_symbolic():
    import math

    def f(x):
        n = x.shape[0]
        return (x * n.__add__(1) * n.__rsub__(20) * math.sqrt(n), divmod(n, 3), n.__index__(), n.__eq__(4.0),
                (n / 3).__floor__(), float(n).__ceil__(), n.__mul__(2.5), n.__lt__(True))
    c = bytegraph.compile(f, backend="eager", dynamic=True)
    for b in (4, 7, 9, 12):
        run(f, c, torch.randn(b, 2))
    assert compiles() == 1
