"""The one differential helper every test uses: run eager and compiled, compare.

`check(fn, *args)` runs `fn` eagerly and compiled on deep copies of the same
inputs, then compares outputs (pytree structure, dtype, shape, values), the
arguments afterwards (so in-place mutation of inputs must match), and the
graph / frame counts from `bytegraph.counters`.

With BYTEGRAPH_TEST_REFERENCE=1 the same tests run through torch.compile and
torch._dynamo's counters instead: that proves a test expects what the real
torch.compile does, before bytegraph is blamed for failing it.
"""
import contextlib
import copy
import os

import torch
import torch.utils._pytree as pytree

REFERENCE = os.environ.get("BYTEGRAPH_TEST_REFERENCE") == "1"

if REFERENCE:
    import torch._dynamo as _impl
    from torch._dynamo.utils import counters as _counters

    def compile_fn(fn=None, **kw):
        return torch.compile(fn, **kw) if fn is not None else torch.compile(**kw)

    def reset():
        _impl.reset()
        _counters.clear()

    Unsupported = (_impl.exc.Unsupported, _impl.exc.UserError, Exception)
else:
    import bytegraph as _impl
    from bytegraph import counters as _counters

    def compile_fn(fn=None, **kw):
        return _impl.compile(fn, **kw) if fn is not None else _impl.compile(**kw)

    def reset():
        _impl.reset()

    Unsupported = _impl.Unsupported


def counters():
    return _counters


def graph_count():
    """Graphs traces made: compiled, or reusing an equal graph compiled before (a loop's
    iterations, a recompile whose graph did not change: runtime/graph_reuse.py)."""
    return _counters["stats"]["unique_graphs"] + _counters["stats"].get("graphs_reused", 0)


def not_compiled():
    """Regions whose graph the user's backend was not handed (add to the graphs it saw to count
    regions): reused (a graph compiled for an equal one, runtime/graph_reuse.py) or run
    uncompiled (inputs a compiling backend would read wrongly: aliased intermediates the trace
    writes into, negative/conjugate views; counted in unique_graphs too)."""
    if REFERENCE:
        return 0
    return _counters["stats"].get("graphs_reused", 0) + _counters["stats"].get("graphs_uncompiled", 0)


def frame_count():
    return _counters["frames"]["ok"]


def assert_same(expected, actual, atol=1e-5, rtol=1e-5, path="out"):
    """Structural + numerical equality of two pytrees of tensors and Python values."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{path}: expected tensor, got {type(actual)}"
        assert expected.dtype == actual.dtype, f"{path}: dtype {expected.dtype} != {actual.dtype}"
        assert expected.shape == actual.shape, f"{path}: shape {expected.shape} != {actual.shape}"
        assert expected.requires_grad == actual.requires_grad, f"{path}: requires_grad differs"
        torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol, equal_nan=True,
                                   msg=lambda m: f"{path}: {m}")
        return
    if isinstance(expected, (list, tuple)) and not hasattr(expected, "_fields"):
        assert type(expected) is type(actual), f"{path}: type {type(expected)} != {type(actual)}"
        assert len(expected) == len(actual), f"{path}: len {len(expected)} != {len(actual)}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_same(e, a, atol, rtol, f"{path}[{i}]")
        return
    if isinstance(expected, tuple):  # namedtuple
        assert type(expected) is type(actual), f"{path}: type {type(expected)} != {type(actual)}"
        for f in expected._fields:
            assert_same(getattr(expected, f), getattr(actual, f), atol, rtol, f"{path}.{f}")
        return
    if isinstance(expected, dict):
        assert type(expected) is type(actual), f"{path}: type {type(expected)} != {type(actual)}"
        assert list(expected.keys()) == list(actual.keys()), f"{path}: keys differ"
        for k in expected:
            assert_same(expected[k], actual[k], atol, rtol, f"{path}[{k!r}]")
        return
    if isinstance(expected, (set, frozenset)):
        assert expected == actual, f"{path}: {expected!r} != {actual!r}"
        return
    if hasattr(expected, "__dict__") and not isinstance(expected, type) and not callable(expected):
        assert type(expected) is type(actual), f"{path}: type {type(expected)} != {type(actual)}"
        assert_same(vars(expected), vars(actual), atol, rtol, f"{path}.__dict__")
        return
    if isinstance(expected, float) and expected != expected:
        assert actual != actual, f"{path}: expected nan, got {actual!r}"
        return
    assert type(expected) is type(actual), f"{path}: type {type(expected)} != {type(actual)}"
    assert expected == actual, f"{path}: {expected!r} != {actual!r}"


def _copy(args):
    return copy.deepcopy(args)


def check(fn, *args, kwargs=None, backend="eager", fullgraph=True, graphs=1, calls=None,
          atol=1e-5, rtol=1e-5, **compile_kw):
    """Differential check of `fn` on `args` (and extra calls).

    calls: optional list of further argument tuples to run through the same compiled
    function (each compared against eager too); graphs: expected total unique graphs
    after all calls (None skips the check). Returns the compiled function.
    """
    kwargs = kwargs or {}
    reset()
    compiled = compile_fn(fn, backend=backend, fullgraph=fullgraph, **compile_kw)
    for call_args in [args] + list(calls or []):
        if not isinstance(call_args, tuple):
            call_args = (call_args,)
        eager_args, comp_args = _copy(call_args), _copy(call_args)
        eager_kwargs, comp_kwargs = _copy(kwargs), _copy(kwargs)
        expected = fn(*eager_args, **eager_kwargs)
        actual = compiled(*comp_args, **comp_kwargs)
        assert_same(expected, actual, atol, rtol)
        assert_same(eager_args, comp_args, atol, rtol, path="args-after")
        assert_same(eager_kwargs, comp_kwargs, atol, rtol, path="kwargs-after")
    if graphs is not None:
        assert graph_count() == graphs, f"expected {graphs} graph(s), got {graph_count()}"
    return compiled


def tensors_like(*shapes, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*s, generator=g, dtype=dtype) for s in shapes)


@contextlib.contextmanager
def default_dtype(dt):
    """torch's default dtype set to `dt` for the block."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dt)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def recompiles():
    return _counters["recompiles"]["total"]


class ModelProbe:
    """A model `m` compiled as `c`, called on `x` beside eager (call-cost soundness probes):
    `run()` compares one call; `check(n)`, after a mutation: `calls` calls all equal to eager's,
    `n` recompiles among them."""

    def run(self):
        with torch.no_grad():
            expected = self.m(self.x)
            actual = self.c(self.x)
        assert_same(expected, actual)

    def check(self, n, calls=3):
        before = recompiles()
        for _ in range(calls):
            self.run()
        assert recompiles() - before == n
