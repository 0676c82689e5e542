"""torch.distributions inside compiled code: the classes are traced as the Python they are, and
their argument checks (validate_args, on by default) decide on values the trace made from its
own literals (`torch.tensor(0.0)`, `torch.full((), 1.0)`), which FakeTensorMode propagates
through the checks: no stop (hf/groupvit train: 3 graphs -> 1, torch.compile 1, which turns the
checks off for the whole process instead). A check on data the trace cannot know still stops,
and an invalid argument raises eager's ValueError. Differential: outputs (the same RNG draws),
exceptions, graph counts."""
import pytest
import torch

import bytegraph
from differential import REFERENCE, assert_same, check, graph_count, reset

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's graph counts")


def _same_draws(fn, *args, graphs=None):
    reset()
    compiled = bytegraph.compile(fn, backend="eager")
    for seed in (0, 1):
        torch.manual_seed(seed)
        want = fn(*args)
        torch.manual_seed(seed)
        got = compiled(*args)
        assert_same(want, got)
    if graphs is not None:
        assert graph_count() == graphs
    return compiled


def gumbel_softmax(logits, tau=1.0):
    # hf/groupvit's gumbel_softmax
    dist = torch.distributions.gumbel.Gumbel(torch.full((), 0.0, dtype=logits.dtype),
                                             torch.full((), 1.0, dtype=logits.dtype))
    return ((logits + dist.sample(logits.shape)) / tau).softmax(-1)


def test_gumbel_from_literals_is_one_graph():
    _same_draws(gumbel_softmax, torch.randn(3, 4), graphs=1)
    assert not bytegraph.counters["graph_break"]


@pytest.mark.parametrize("make", [
    lambda x: torch.distributions.Normal(torch.tensor(0.0), torch.tensor(2.0)),
    lambda x: torch.distributions.Uniform(torch.zeros(()), torch.ones(())),
    lambda x: torch.distributions.Bernoulli(probs=torch.tensor(0.3)),
    lambda x: torch.distributions.Exponential(torch.scalar_tensor(1.5)),
], ids=["normal", "uniform", "bernoulli", "exponential"])
def test_literal_distributions_sample_as_eager(make):
    def f(x):
        d = make(x)
        return x + d.sample(x.shape), d.log_prob(torch.full((), 0.0))
    _same_draws(f, torch.randn(5), graphs=1)


def test_invalid_literal_argument_raises_eagers_value_error():
    def f(x):
        return x + torch.distributions.Normal(torch.tensor(0.0), torch.tensor(-1.0)).sample()
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    with pytest.raises(ValueError) as want:
        f(torch.ones(2))
    with pytest.raises(ValueError) as got:
        compiled(torch.ones(2))
    assert str(got.value) == str(want.value)


def test_data_dependent_argument_still_checks():
    def f(x):
        return torch.distributions.Normal(x.mean(), x.std()).log_prob(x)
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    x = torch.randn(6)
    assert_same(f(x), compiled(x))
    with pytest.raises(ValueError) as want:
        f(torch.ones(6))             # std 0: not positive
    with pytest.raises(ValueError) as got:
        compiled(torch.ones(6))
    assert str(got.value) == str(want.value)


def test_validation_switch_is_read_per_call():
    def f(x):
        return x + torch.distributions.Normal(torch.tensor(0.0), torch.tensor(-1.0)).loc
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    old = torch.distributions.Distribution._validate_args
    try:
        torch.distributions.Distribution.set_default_validate_args(False)
        assert_same(f(torch.ones(2)), compiled(torch.ones(2)))
        torch.distributions.Distribution.set_default_validate_args(True)
        with pytest.raises(ValueError):
            compiled(torch.ones(2))
    finally:
        torch.distributions.Distribution.set_default_validate_args(old)


@pytest.mark.parametrize("factory", [torch.full, torch.zeros, torch.ones])
def test_literal_factory_branch(factory):
    def f(x):
        t = factory((1,), 2.0) if factory is torch.full else factory(())
        if t > 0.5:
            return x * t
        return x - t
    check(f, torch.randn(3), graphs=1)


def _written_with_data(x):
    t = torch.zeros(())
    t.add_(x.sum())              # now data: bool(t) must stop, not use 0
    if t > 0:
        return x + 1
    return x - 1


def _written_through_a_view(x):
    t = torch.zeros(1)
    v = t.view(())
    v.copy_(x.sum())
    if t > 0:
        return x + 1
    return x - 1


@pytest.mark.parametrize("f", [_written_with_data, _written_through_a_view])
def test_literal_written_with_data_is_not_known(f):
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    for x in (torch.ones(3), -torch.ones(3)):
        assert_same(f(x), compiled(x))
    assert "bool() of a tensor depends on its data" in bytegraph.counters["graph_break"]
