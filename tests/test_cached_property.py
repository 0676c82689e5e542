"""functools.cached_property read inside a compiled forward (Python 3.11's __get__ takes an
RLock around the first computation; the trace models it as taking none): results, the cached
value in the instance dict, how often the function ran, and graph counts equal eager.
(torch.compile 2.13 breaks at the RLock: with fullgraph=True it raises, reference mode fails.)"""
import functools

import torch

from differential import assert_same, compile_fn, counters, graph_count, reset


class M(torch.nn.Module):
    def __init__(self, noisy=False):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 4)
        self.calls = 0
        self.noisy = noisy

    @functools.cached_property
    def scale(self):
        self.calls += 1
        if self.noisy:
            print("computing scale")
        return self.lin.weight.sum(0) * 2

    def forward(self, x):
        return self.lin(x) * self.scale


def _run(noisy, fullgraph):
    x = torch.randn(2, 4)
    eager, comp = M(noisy), M(noisy)
    want = [eager(x), eager(x)]
    reset()
    c = compile_fn(comp, backend="eager", fullgraph=fullgraph)
    got = [c(x), c(x)]
    assert_same(want, got)
    assert comp.calls == eager.calls == 1
    assert "scale" in comp.__dict__
    assert_same(eager.__dict__["scale"], comp.__dict__["scale"])
    return comp


def test_cached_property_first_read_is_captured():
    _run(noisy=False, fullgraph=True)
    assert not counters()["graph_break"]
    # the first call computed and stored it; the second finds it in the instance dict (a new
    # entry: the attribute now comes from __dict__, not from the descriptor)
    assert graph_count() == 2


def test_cached_property_gradients():
    x = torch.randn(2, 4)
    eager, comp = M(), M()
    eager(x).sum().backward()
    reset()
    compile_fn(comp, backend="eager", fullgraph=True)(x).sum().backward()
    assert_same([p.grad for p in eager.parameters()], [p.grad for p in comp.parameters()])
    assert comp.calls == eager.calls == 1


def test_cached_property_with_a_break_inside_is_still_correct(capsys):
    _run(noisy=True, fullgraph=False)
    assert capsys.readouterr().out.count("computing scale") == 2     # once eager, once compiled
