"""Shape guards of dynamic entries (guards/guard_set.py: add_dynamic_tensor, add_shape_env):
contiguity checked as `is_contiguous()` where every size is at least 2, a replaced symbol checked
once against its replacement (a whole shape against an earlier tensor's), guards that the
replacements make true left out. Differential: every call agrees with eager, each entry takes
exactly the calls it was traced for, recompiles say why."""
import logging

import pytest
import torch

import bytegraph
from differential import assert_same, counters
from redteam_dynamic_harness import diff

R = torch.randn


def _source(fn):
    return "\n".join(e.__bytegraph_source__ for e in _entries(fn))


def _entries(fn):
    import gc
    import types
    return [o for o in gc.get_objects() if type(o) is types.FunctionType
            and isinstance(getattr(o, "__bytegraph_source__", None), str)
            and o.__qualname__ == fn.__qualname__]


def add4(a, b, c, d):
    return a * b + c - d * a.shape[0]


def test_same_shaped_inputs_one_entry_and_mismatches_refused():
    same = [tuple(R(n, 3) for _ in range(4)) for n in (4, 6, 9, 2)]
    # a mismatched shape: eager raises, and the entry must not take the call
    bad = [(R(5, 3), R(5, 3), R(6, 3), R(5, 3)), (R(5, 3), R(5, 4), R(5, 3), R(5, 3)),
           (R(5, 3), R(5, 3), R(5, 3), R(3, 3))]
    diff(add4, same + bad + same[:1], dynamic=True, fallbacks=("user_error",))


def test_whole_shape_check_is_rendered_and_named():
    bytegraph.reset()
    c = bytegraph.compile(add4, backend="eager", dynamic=True)
    args = tuple(R(5, 3) for _ in range(4))
    assert_same(add4(*args), c(*args))
    src = _source(add4)
    assert ".is_contiguous()" in src and "__sh_b == __sh_a" in src, src
    # a broadcastable call that the entry was not traced for: b's rows are 1
    records = []

    class H(logging.Handler):
        def emit(self, r):
            records.append(r.getMessage())
    h = H()
    log = logging.getLogger("bytegraph.recompiles")
    log.addHandler(h)
    old = log.level
    log.setLevel(logging.INFO)
    try:
        args = (R(5, 3), R(1, 3), R(5, 3), R(5, 3))
        assert_same(add4(*args), c(*args))
    finally:
        log.removeHandler(h)
        log.setLevel(old)
    assert counters()["frames"]["ok"] == 2
    assert any("b.shape == a.shape" in m for m in records), records


def test_non_contiguous_input_recompiles():
    def f(x, y):
        return x * 2 + y

    base = [(R(4, 5), R(4, 5)), (R(6, 7), R(6, 7))]
    t = [(R(5, 4).t(), R(4, 5)), (R(7, 6).t(), R(6, 7))]           # transposed views
    sliced = [(R(4, 10)[:, ::2], R(4, 5))]                          # strided columns
    diff(f, base + t + sliced + base, dynamic=True, compiles=3)


def test_static_size_one_dim_keeps_exact_strides():
    def f(x):
        return x.sum(0) + x.shape[0]

    # (n, 1) tensors whose size-1 dim has different strides: contiguity does not decide them
    calls = [R(4, 1), R(6, 1), R(6, 2)[:, :1], R(8, 3)[:, 1:2], R(5, 1)]
    diff(f, calls, dynamic=True)
    assert "is_contiguous" not in _source(f)


def test_relation_between_dims_of_two_tensors():
    def mm(a, b):
        return a @ b + a.shape[1]

    calls = [(R(3, 4), R(4, 5)), (R(6, 7), R(7, 2)), (R(2, 9), R(9, 9)),
             (R(3, 4), R(5, 5)),            # mismatched inner dims: eager raises
             (R(5, 8), R(8, 3))]
    diff(mm, calls, dynamic=True, fallbacks=("user_error",), compiles=None)


def test_specialized_symbol_still_checked():
    def f(x, y):
        if x.shape[0] == 4:
            return x + y
        return x - y

    calls = [(R(4, 3), R(4, 3)), (R(5, 3), R(5, 3)), (R(4, 5), R(4, 5)), (R(7, 2), R(7, 2)),
             (R(4, 3), R(4, 3))]
    diff(f, calls, dynamic=True)


def test_automatic_dynamic_same_seq_lengths():
    def f(ids, mask):
        return (ids * mask).sum(-1) / ids.shape[1]

    calls = [(R(2, n), torch.ones(2, n)) for n in (5, 8, 11, 16)] + [(R(2, 8), torch.ones(2, 7))]
    diff(f, calls, dynamic=None, fallbacks=("user_error",))
    assert counters()["frames"]["ok"] >= 2


@pytest.mark.parametrize("lo", [None, 3])
def test_marked_bounds(lo):
    def f(x):
        return x * 2 + x.shape[0]

    bytegraph.reset()
    c = bytegraph.compile(f, backend="eager")
    for n in (4, 6, 3, 2, 9, 5):
        x = R(n, 2)
        bytegraph.mark_dynamic(x, 0, min=lo, max=8)
        assert_same(f(x), c(x))
    assert not any(counters()["fallback"].values())


# --- bytearray(n): the trace builds a fresh bytearray per call (values/bytearrays.py)

def test_bytearray_of_symbolic_size_is_specialized_and_fresh():
    def f(x):
        return bytearray(x.shape[0]), x + 1

    c = diff(f, [R(4, 2), R(6, 2), R(4, 2)], dynamic=True, compiles=2)
    x = R(4, 2)
    a, b = c(x)[0], c(x)[0]
    assert a == b and a is not b            # a new object per call, as eager makes


def test_bytearray_identity_and_forms():
    def same(x):
        b = bytearray(x.shape[0])
        return [b, b], x * 2

    def forms(x):
        return bytearray(), bytearray(b"ab"), bytearray([1, 2, 255]), bytearray("h\xe9", "utf-8"), x

    c = diff(same, [R(3), R(5)], dynamic=True)
    out = c(R(3))[0]
    assert out[0] is out[1]
    diff(forms, [R(2)], dynamic=False)


def test_bytearray_errors_and_use_after():
    def bad(x):
        return bytearray(-x.shape[0]), x

    def text(x):
        return bytearray("abc"), x

    def mutate(x):
        b = bytearray(x.shape[0])
        b[0] = 7
        b.extend(b"z")
        return b, len(b), x + 1

    diff(bad, [R(3)], dynamic=False, fullgraph=False, fallbacks=("user_error",))
    diff(text, [R(3)], dynamic=False, fullgraph=False, fallbacks=("user_error",))
    diff(mutate, [R(3), R(4)], dynamic=True, fullgraph=False)
