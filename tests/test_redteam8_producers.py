"""Red team 8: stops at the op that made a data-dependent size (session 10: nonzero(), x[mask],
torch.where(mask), unique()) in the places a producer can sit -- an inlined callee, a
comprehension, a lambda, no_grad / autocast blocks, try/except, an `out=` producer, in-place
writes around it, the result stored in containers and attributes, two producers whose sizes
combine, side effects between the producer and the need, a dynamic input, recompiles on a
different count. Differential against eager: results, stdout, arguments afterwards, cache hits.

Bug found: `bool()` of an unbacked size (`if len(idx):`, `idx.numel() > 2`) hit torch's
GuardOnDataDependentSymNode inside the trace: an internal error and the whole function run
eagerly. Now it refuses like `int()` does and stops at the producing op."""
import contextlib
import copy
import io

import pytest
import torch

import bytegraph
from differential import REFERENCE, Unsupported, assert_same, compile_fn, counters, reset
from redteam8_harness import run, fallbacks, internal_errors

X1 = torch.tensor([1., -1., 2., 3.])
X2 = torch.tensor([-1., -1., 2., -3.])
X0 = torch.tensor([-1., -1., -2., -3.])


def positives(x):
    return (x > 0).nonzero()


def inlined_producer(x, log):
    idx = positives(x)
    log.append("a")
    n = int(idx.shape[0])
    log.append(n)
    return x.sum() * n


def comprehension_producer(x, log):
    idxs = [(x > t).nonzero() for t in (0.0, 1.5)]
    log.append("c")
    return [int(i.shape[0]) for i in idxs], x.cos()


def comprehension_need(xs, log):
    return [int(t[t > 0].shape[0]) for t in xs], [t.sin() for t in xs]


def lambda_producer(x, log):
    f = lambda t: t[t > 0]           # noqa: E731
    s = f(x)
    log.append(1)
    for v in s:
        log.append(float(v))
    return s.sum()


def no_grad_producer(x, log):
    y = x * 2
    with torch.no_grad():
        idx = (y > 0).nonzero()
        log.append(torch.is_grad_enabled())
        k = int(idx.shape[0] + 0)
    return y * k, torch.is_grad_enabled()


def autocast_producer(x, log):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = x @ x.t()
        n = int((y > 0).nonzero().shape[0])
        z = y @ y
    return z.float().sum() * n, z.dtype


def try_producer(x, log):
    try:
        idx = (x > 0).nonzero()
        log.append("t")
        n = int(idx.shape[0])
        if n > 2:
            raise ValueError(n)
    except ValueError as e:
        log.append(("e", e.args))
        n = -1
    return x * n


def user_try_around_need(x, log):
    idx = (x > 0).nonzero()
    try:
        n = int(idx.shape[0])
    except Exception as e:           # the trace's refusal is never the user's exception
        log.append(type(e).__name__)
        n = 0
    return x * n


def out_producer(x, buf, log):
    torch.nonzero(x > 0, out=buf)
    log.append(buf.shape)
    return x * int(buf.shape[0]), buf


def inplace_around_producer(x, log):
    x.add_(1)
    idx = (x > 1.5).nonzero()
    x.mul_(2)
    log.append("m")
    return x * int(idx.shape[0])


class Holder:
    pass


def stored_before_need(x, log, h):
    idx = (x > 0).nonzero()
    d = {"i": idx}
    lst = [idx]
    h.idx = idx
    log.append("s")
    n = int(d["i"].shape[0])
    return lst[0] * n, h.idx.shape


def two_producers(x, y, log):
    a = (x > 0).nonzero()
    log.append("a")
    b = (y > 0).nonzero()
    log.append("b")
    n = int(a.shape[0] + b.shape[0])
    log.append(n)
    return x.sum() * n


def effects_between(x, log, h):
    print("before")
    idx = (x > 0).nonzero()
    print("between", x.shape)
    log.append("x")
    h.count = getattr(h, "count", 0) + 1
    for r in idx:
        print("row")
        log.append(int(r))
    return idx


def producer_in_loop(x, log):
    tot = x.new_zeros(())
    for t in range(3):
        idx = (x > t - 1).nonzero()
        log.append(t)
        for r in idx:
            tot = tot + x[r].sum()
    return tot


def while_on_masked_size(x, log):
    k = 0
    while True:
        sel = x[x > k]
        if sel.shape[0] == 0:
            break
        log.append(k)
        k += 1
    return k, x * 2


def len_truth(x, log):
    idx = torch.where(x > 0)[0]
    if len(idx):
        log.append("some")
    return idx * 2


def numel_compare(x, log):
    idx = torch.where(x > 0)[0]
    if idx.numel() > 2:
        log.append("many")
    return idx * 2


def size_not_zero(x, log):
    sel = x[x > 0]
    while sel.shape[0]:
        log.append(sel.shape[0])
        sel = sel[1:]
    return x + 1


def range_over_count(x):
    idx = (x > 0).nonzero().squeeze(1)
    out = x.clone()
    for i in range(idx.shape[0]):
        out[idx[i]] = -out[idx[i]]
    return out


def print_of_unbacked(x, log):
    idx = (x > 0).nonzero()
    print(idx.shape[1])
    log.append(len(idx))
    return idx


def unique_counts(x, log):
    u, c = torch.unique(x.round(), return_counts=True)
    log.append(len(u))
    return u.tolist(), c.tolist(), x.sum()


def repeat_interleave_size(x, r, log):
    y = torch.repeat_interleave(x, r)
    log.append("r")
    return y.shape[0], y * 2


def str_of_unbacked(x):
    idx = (x > 0).nonzero()
    return f"{idx.shape[0]}", str(len(idx)), idx


def check_is_size(x):
    idx = (x > 0).nonzero()
    n = idx.shape[0]
    torch._check(n > 0)
    torch._check_is_size(n)
    return idx * 2, x.new_zeros(n).shape


def hash_of_unbacked(x):
    idx = (x > 0).nonzero()
    return hash(idx.shape[0]), {idx.shape[0]: 1}, idx


def min_max_of_unbacked(x):
    a, b = (x > 0).nonzero(), (x < 0).nonzero()
    return x.new_zeros(max(a.shape[0], b.shape[0])), min(a.shape[0], 2)


def unbacked_as_list_index(x):
    idx = (x > 0).nonzero()
    lst = [10, 20, 30, 40, 50]
    return lst[idx.shape[0]], lst[:len(idx)], x


def arithmetic_of_unbacked(x):
    s = x[x > 0]
    return x.sum() / s.shape[0], s.shape[0] // 2, s.shape[0] % 2 == 0


def split_and_unbind_unbacked(x):
    s = x[x > 0]
    return [p * 2 for p in s.split(1)], [t + 1 for t in s.unbind(0)]


def nonzero_as_tuple(x):
    r, = torch.nonzero(x > 0, as_tuple=True)
    return r.shape[0] + 1, r


def masked_select_numel(x):
    s = torch.masked_select(x, x > 0)
    return s.numel() > 1, s


def _zipped_producers(xs, ms, log):
    out = []
    for x, m in zip(xs, ms):          # a live zip iterator beside the producer
        idx = m.nonzero()
        log.append("i")
        out.append(int(len(idx)) * 1.0 + x.sum())
    return out


def producer_beside_live_iterator(xs, ms, log):
    log.append("o")
    y = xs[0] * 2
    r = _zipped_producers(xs, ms, log)
    log.append("after")
    return y.cos(), r


_XS = [torch.randn(3, generator=torch.Generator().manual_seed(2)), torch.ones(3)]
_MS = [torch.tensor([1, 0, 1]), torch.tensor([0, 0, 1])]


_CASES = [
    (producer_beside_live_iterator, [(_XS, _MS, []), (_XS, _MS[::-1], [])]),
    (str_of_unbacked, [(X1,), (X2,)]),
    (check_is_size, [(X1,), (X2,)]),
    (hash_of_unbacked, [(X1,), (X2,)]),
    (min_max_of_unbacked, [(X1,), (X2,)]),
    (unbacked_as_list_index, [(X1,), (X2,)]),
    (arithmetic_of_unbacked, [(X1,), (X2,)]),
    (split_and_unbind_unbacked, [(X1,), (X2,)]),
    (nonzero_as_tuple, [(X1,), (X2,)]),
    (masked_select_numel, [(X1,), (X2,)]),
    (inlined_producer, [(X1, []), (X2, [])]),
    (comprehension_producer, [(X1, []), (X2, [])]),
    (comprehension_need, [([X1, X2, X0], []), ([X2, X2], [])]),
    (lambda_producer, [(X1, []), (X2, [])]),
    (no_grad_producer, [(X1.clone().requires_grad_(), []), (X2.clone().requires_grad_(), [])]),
    (autocast_producer, [(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)), [])]),
    (try_producer, [(X1, []), (X2, [])]),
    (user_try_around_need, [(X1, []), (X2, [])]),
    (out_producer, [(X1, torch.empty(0, 1, dtype=torch.long), []),
                    (X2, torch.empty(0, 1, dtype=torch.long), [])]),
    (inplace_around_producer, [(X1.clone(), []), (X2.clone(), [])]),
    (stored_before_need, [(X1, [], Holder()), (X2, [], Holder())]),
    (two_producers, [(X1, X2, []), (X2, X1, []), (X1, X1, [])]),
    (effects_between, [(X1, [], Holder()), (X2, [], Holder())]),
    (producer_in_loop, [(X1, []), (X2, [])]),
    (while_on_masked_size, [(X1, []), (X2, [])]),
    (len_truth, [(X1, []), (X2, []), (X0, [])]),
    (numel_compare, [(X1, []), (X2, []), (X0, [])]),
    (size_not_zero, [(X1, []), (X0, [])]),
    (range_over_count, [(X1,), (X2,), (X0,)]),
    (print_of_unbacked, [(X1, []), (X2, [])]),
    (unique_counts, [(torch.tensor([1., 1., 2., 3.]), []), (torch.tensor([1., 1., 1., 1.]), [])]),
    (repeat_interleave_size, [(X1, torch.tensor([1, 2, 0, 1]), []), (X1, torch.tensor([3, 0, 0, 1]), [])]),
]


@pytest.mark.parametrize("fn,argsets", _CASES, ids=[c[0].__name__ for c in _CASES])
def test_producer_stop(fn, argsets):
    run(fn, *argsets)


@pytest.mark.parametrize("fn", [len_truth, numel_compare, size_not_zero])
def test_truth_of_unbacked_size_breaks_at_producer(fn):
    # was: GuardOnDataDependentSymNode inside the trace, an internal error, all of it eager
    run(fn, (X1, []), (X0, []))
    assert internal_errors() == 0
    assert not fallbacks(), fallbacks()
    assert REFERENCE or counters()["stats"]["unique_graphs"] >= 2


class Router(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.calls = 0

    def sel(self, h):
        self.calls += 1
        return h[h.sum(-1) > 0]

    def forward(self, h):
        s = self.sel(h)
        self.last = s.shape[0]
        out = [self.lin(row) for row in s]
        return (torch.stack(out) if out else h.new_zeros(0, 4)), self.calls


@pytest.mark.parametrize("hooked", [False, True])
def test_producer_in_module_method(hooked):
    torch.manual_seed(0)
    eager_m = Router()
    comp_m = copy.deepcopy(eager_m)
    for m in (eager_m, comp_m):
        if hooked:
            m.lin.register_forward_hook(lambda mod, i, o: print("hook", tuple(o.shape)))
    h = torch.randn(5, 4)

    def step(m, h):
        return m(h), m.last
    reset()
    c = compile_fn(step, backend="eager")
    for x in (h, -h, h[:2], h):
        want_out, got_out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(want_out):
            want = step(eager_m, x)
        with contextlib.redirect_stdout(got_out):
            got = c(comp_m, x)
        assert_same(want, got)
        assert want_out.getvalue() == got_out.getvalue()
        assert (eager_m.calls, eager_m.last) == (comp_m.calls, comp_m.last)
    assert internal_errors() == 0


def test_dynamic_input_and_recompile_on_count():
    def f(x):
        idx = (x > 0).nonzero()
        return [int(i) for i in idx], x.shape[0] * x
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, generator=g), torch.randn(9, generator=g)
    torch._dynamo.mark_dynamic(a, 0) if REFERENCE else bytegraph.mark_dynamic(a, 0)
    torch._dynamo.mark_dynamic(b, 0) if REFERENCE else bytegraph.mark_dynamic(b, 0)
    run(f, (a,), (b,), (torch.randn(12, generator=g),))


def test_fullgraph_names_the_line():
    def f(x):
        idx = (x > 0).nonzero()
        return int(idx.shape[0])
    c = compile_fn(f, backend="eager", fullgraph=True)
    with pytest.raises(Unsupported) as info:
        c(X1)
    line = f.__code__.co_firstlineno
    where = [f"line {n}" if REFERENCE else f":{n}" for n in (line + 1, line + 2)]
    assert any(w in str(info.value) for w in where), str(info.value)


def test_stop_in_lambda_made_per_call_compiles_once():
    # the stop inside the lambda moved one frame out: the lambda ran as its own unit through
    # the trampoline, but a lambda is a new function each call, so its cache started anew and
    # every call traced it again. A function made per call now runs as it is.
    run(lambda_producer, (X1, []), (X2, []), repeat=3)
    assert not fallbacks(), fallbacks()
