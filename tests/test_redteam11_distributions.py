"""Red team 11 on torch.distributions traced as Python and on bool() of trace-made literals:
differential probes (outputs, RNG state after the call, exceptions, graph counts) for what
broke -- an autograd.Function defined in a torch module (Dirichlet/Beta/LKJ rsample: fx wrote
its forwarding target as a dotted torch name that does not exist) and trace-created objects
that refer to each other (Transform <-> _InverseTransform: the epilogue read a local before
assigning it) -- and for what held."""
import pytest
import torch
import torch.distributions as D

import bytegraph
from differential import REFERENCE, assert_same, graph_count, reset


def _differential(fn, *args, calls=2):
    """Eager and compiled from the same seed: equal outputs (or equal exceptions) and equal RNG
    state after the call."""
    reset()
    compiled = bytegraph.compile(fn, backend="eager")
    for seed in range(calls):
        results = []
        for f in (fn, compiled):
            torch.manual_seed(seed)
            try:
                out = ("ok", f(*args))
            except Exception as e:          # noqa: BLE001 -- compared below
                out = ("exc", type(e), str(e))
            results.append((out, torch.get_rng_state()))
        (want, want_rng), (got, got_rng) = results
        assert want[0] == got[0], (want, got)
        if want[0] == "ok":
            assert_same(want[1], got[1])
        else:
            assert want[1:] == got[1:]
        assert torch.equal(want_rng, got_rng)
    return compiled


@pytest.mark.parametrize("make", [
    lambda: D.Dirichlet(torch.ones(3)),
    lambda: D.Beta(torch.tensor(2.0), torch.tensor(3.0)),
    lambda: D.LKJCholesky(3, torch.tensor(1.0)),
], ids=["dirichlet", "beta", "lkj"])
def test_autograd_function_of_a_torch_module(make):
    def f(x):
        d = make()
        s = d.sample()
        return x + s.sum(), d.log_prob(s)
    _differential(f, torch.randn(3))


def test_dirichlet_rsample_gradient():
    def f(conc):
        return D.Dirichlet(conc).rsample((4,)).pow(2).sum()
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    c1 = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c2 = c1.detach().clone().requires_grad_()
    torch.manual_seed(0)
    f(c1).backward()
    torch.manual_seed(0)
    compiled(c2).backward()
    assert_same(c1.grad, c2.grad)


def test_gumbel_log_prob_rebuilds_its_transform_cycle():
    # Gumbel's transforms hold ExpTransform().inv: an _InverseTransform whose _inv is the
    # ExpTransform, whose _inv is it (a cycle the epilogue rebuilds at the sample check's stop)
    def f(x):
        d = D.Gumbel(torch.tensor(0.0), torch.tensor(1.0))
        s = d.sample()
        t = d.transforms[0]
        return x + d.log_prob(s), t.inv is t._inv, t.inv.inv is t
    _differential(f, torch.randn(3))


class _Node:
    pass


class _Slotted:
    __slots__ = ("other", "t")


def _cycle_of_objects(x):
    a, b = _Node(), _Node()
    a.other, b.other, a.t = b, a, x + 1
    return a


def _cycle_through_a_list(x):
    a = _Node()
    a.items = [a, x + 1]
    return a


def _cycle_of_slotted(x):
    a = _Slotted()
    a.other, a.t = a, x * 2
    return a


@pytest.mark.parametrize("fn", [_cycle_of_objects, _cycle_through_a_list, _cycle_of_slotted])
def test_returned_reference_cycle(fn):
    reset()
    compiled = bytegraph.compile(fn, backend="eager")
    x = torch.randn(3)
    for _ in range(2):
        want, got = fn(x), compiled(x)
        if fn is _cycle_through_a_list:
            assert got.items[0] is got
            assert_same(want.items[1], got.items[1])
        else:
            assert got.other.other is got
            assert type(got) is type(want)
            assert_same(want.t if fn is _cycle_of_slotted else want.other.other.t, got.t)
    if not REFERENCE:
        assert graph_count() == 1


def _list_holding_itself(x):
    lst = [x + 1]
    lst.append(lst)
    return lst


def _dict_holding_itself(x):
    d = {"x": x * 2}
    d["self"] = d
    return d


@pytest.mark.parametrize("fn", [_list_holding_itself, _dict_holding_itself])
def test_container_holding_itself_falls_back(fn):
    reset()
    compiled = bytegraph.compile(fn, backend="eager")
    x = torch.randn(3)
    want, got = fn(x), compiled(x)
    if isinstance(got, list):
        assert got[1] is got
        assert_same(want[0], got[0])
    else:
        assert got["self"] is got
        assert_same(want["x"], got["x"])
    if not REFERENCE:
        assert bytegraph.counters["fallback"]["reference_cycle"] == 1


def test_returned_recursive_closure_falls_back():
    # its cell holds the function that closes over it: was an UnboundLocalError in the epilogue
    def f(x):
        def g(n):
            return g(n - 1) if n else x + 1
        return g
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    x = torch.randn(3)
    assert_same(f(x)(2), compiled(x)(2))
    if not REFERENCE:
        assert bytegraph.counters["fallback"]["reference_cycle"] == 1
