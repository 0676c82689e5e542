"""Red team 11 on bool() of a one-element tensor the trace made from its own literals (values/
known.py `literal`): such a value must be the same on every call. Differential probes (outputs,
graph counts) for the two ways it was not: a write of data into the literal through a LIST of
tensors (`torch._foreach_add_([t], [x])`, `out=[a, b]`), which the fake mode does not see as a
write that forgets the value, and an op on the literal with a symbolic number (`torch.zeros(())
+ a`, `a` a dynamic float argument), which the fake mode computes with the number's trace-time
hint. And for what held: writes through views, out=, callees, graph breaks; Python values that
change between calls (globals, closures, arguments, sizes, the default dtype)."""
import pytest
import torch

import bytegraph
from differential import REFERENCE, assert_same, graph_count, reset


def _branch(t, x):
    return x + 1 if t > 0 else x - 1


def _same(fn, argsets, dynamic=None, max_graphs=None):
    reset()
    compiled = bytegraph.compile(fn, backend="eager", dynamic=dynamic)
    for args in argsets:
        assert_same(fn(*args), compiled(*args))
    if max_graphs is not None and not REFERENCE:
        assert graph_count() <= max_graphs


def _foreach_add(x):
    t = torch.zeros(())
    torch._foreach_add_([t], [x.sum()])
    return _branch(t, x)


def _foreach_copy(x):
    t = torch.zeros(())
    torch._foreach_copy_([t], [x[0]])
    return _branch(t, x)


def _foreach_lerp(x):
    t = torch.zeros(())
    torch._foreach_lerp_([t], [x[0]], 1.0)
    return _branch(t, x)


def _foreach_addcmul(x):
    t = torch.zeros(())
    torch._foreach_addcmul_([t], [x[0]], [torch.ones(())])
    return _branch(t, x)


def _unbind_copy_out_list(x):
    a, b, c = torch.zeros(1), torch.zeros(1), torch.zeros(1)
    torch.unbind_copy(x.view(3, 1), out=[a, b, c])
    return _branch(a, x)


def _split_copy_out_list(x):
    a, b = torch.zeros(1), torch.zeros(2)
    torch.split_with_sizes_copy(x, [1, 2], out=[a, b])
    return _branch(a, x)


@pytest.mark.parametrize("fn", [_foreach_add, _foreach_copy, _foreach_lerp, _foreach_addcmul,
                                _unbind_copy_out_list, _split_copy_out_list])
def test_write_through_a_tensor_list_forgets_the_literal(fn):
    _same(fn, [(torch.ones(3),), (-torch.ones(3),), (torch.ones(3),)])


@pytest.mark.parametrize("dynamic", [True, None])
@pytest.mark.parametrize("fn", [
    lambda x, a: _branch(torch.zeros(()) + a - 4, x),
    lambda x, a: _branch(torch.full((), 5.0) * a - 4, x),
    lambda x, a: _branch(torch.tensor(1.0).mul(a).sub(4), x),
    lambda x, a: _branch(torch.ones(()).add_(a).sub_(4), x),
], ids=["add", "mul", "method", "inplace"])
def test_literal_with_a_dynamic_float_is_not_its_hint(fn, dynamic):
    x = torch.randn(4)
    _same(fn, [(x, a) for a in (1.0, 5.0, 2.0, 7.0, 0.5)], dynamic=dynamic)


@pytest.mark.parametrize("dynamic", [True, None])
def test_literal_with_a_dynamic_size_is_not_its_hint(dynamic):
    def f(x):
        return _branch(torch.zeros(()) + x.shape[0] - 4, x)
    _same(f, [(torch.randn(n),) for n in (3, 5, 2, 7, 4)], dynamic=dynamic)


# --- what held -------------------------------------------------------------------------------

G = 1.0


def _global_full(x):
    return _branch(torch.full((), G) - 0.5, x)


def test_global_float_changed_between_calls():
    global G
    reset()
    compiled = bytegraph.compile(_global_full, backend="eager")
    x = torch.randn(3)
    for v in (1.0, 0.0, 1.0, -2.0):
        G = v
        assert_same(_global_full(x), compiled(x))
    G = 1.0


def test_default_dtype_changed_between_calls():
    def f(x):
        return _branch(torch.tensor(16777217.0) - torch.tensor(16777216.0), x)
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    x = torch.randn(3)
    try:
        for dt in (torch.float32, torch.float64, torch.float32):
            torch.set_default_dtype(dt)
            assert_same(f(x), compiled(x))
    finally:
        torch.set_default_dtype(torch.float32)


def _view_write(x):
    t = torch.zeros(2)
    t.unsqueeze(0).expand(2, 2)[1][0:1].copy_(x[:1])
    return _branch(t[0], x)


def _out_write(x):
    t = torch.zeros(())
    torch.add(x.sum(), 0, out=t)
    return _branch(t, x)


def _callee(t, x):
    t.mul_(0).add_(x[0])


def _callee_write(x):
    t = torch.ones(())
    _callee(t, x)
    return _branch(t, x)


def _write_before_break(x):
    t = torch.ones(())
    t.copy_(x[0])
    print("a graph break")
    return _branch(t, x)


def _random_write(x):
    return _branch(torch.zeros(()).uniform_(-1, 1), x)


@pytest.mark.parametrize("fn", [_view_write, _out_write, _callee_write, _write_before_break,
                                _random_write])
def test_writes_of_data_forget_the_literal(fn, capsys):
    for seed in (0, 1):
        reset()
        compiled = bytegraph.compile(fn, backend="eager")
        for x in (torch.ones(3), -torch.ones(3)):
            torch.manual_seed(seed)
            want = fn(x)
            torch.manual_seed(seed)
            assert_same(want, compiled(x))


@pytest.mark.parametrize("make", [
    lambda n: torch.full((), n), lambda n: torch.scalar_tensor(n), lambda n: torch.tensor(n),
    lambda n: torch.full((), n, dtype=torch.float64),
], ids=["full", "scalar_tensor", "tensor", "full_dtype"])
def test_factory_of_a_dynamic_size_stays_symbolic(make):
    # _literal_factory asked a symbolic fill value for its Python value: that specialized the
    # size (a recompile per size; test_dynamic_shapes' torch.tensor(n) test) and, marked
    # dynamic, raised
    def f(x):
        n = x.shape[0]
        return x * make(n), make(n) > 3
    reset()
    compiled = bytegraph.compile(f, backend="eager", dynamic=True)
    for b in (4, 6, 3):
        x = torch.randn(b, 2)
        assert_same(f(x), compiled(x))
    if not REFERENCE:
        assert bytegraph.counters["frames"]["total"] == 1 and graph_count() == 1
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    x = torch.randn(5, 2)
    bytegraph.mark_dynamic(x, 0)
    assert_same(f(x), compiled(x))


def test_sparse_factory_is_not_a_literal():
    # a one-element sparse zeros made _literal_factory read its storage: an internal error, and
    # the whole function ran eagerly (it compiled before the literal change)
    def f(x):
        return x + torch.zeros(1, layout=torch.sparse_coo).to_dense()
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    x = torch.randn(4)
    assert_same(f(x), compiled(x))
    if not REFERENCE:
        assert not bytegraph.counters["fallback"] and graph_count() == 1
