"""Red-team probes for the alias guards the fast path skips (guards/generation.py: split): a
submodule's attribute that is the same object as the root's (`self.layer.config is
self.config`, hf/mobilenet_v2: 52 of them) is true while the generation counter and the modules'
dict tags are unchanged, as both sources then name what they named at the last full check.
Each probe rebinds one side, through setattr and around it, and checks eager results and
recompiles."""
import copy

import pytest
import torch
import torch.nn as nn

from differential import REFERENCE, assert_same, compile_fn, counters

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's cache and recompile counts")


class Cfg:
    def __init__(self, scale, shift):
        self.scale = scale
        self.shift = shift


class Layer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x) * self.config.scale + self.config.shift


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = Cfg(2.0, 0.5)
        self.layers = nn.ModuleList([Layer(self.config) for _ in range(3)])

    def forward(self, x):
        x = x * self.config.scale
        for layer in self.layers:
            x = layer(x)
        return x


def recompiles():
    return counters()["recompiles"]["total"]


class Probe:
    def __init__(self):
        torch.manual_seed(0)
        self.m = Net().eval()
        self.c = compile_fn(self.m, backend="eager")
        self.x = torch.randn(2, 4)
        for _ in range(3):
            self.run()

    def run(self):
        with torch.no_grad():
            assert_same(self.m(self.x), self.c(self.x))

    def check(self, n):
        before = recompiles()
        self.run()
        self.run()
        assert recompiles() - before == n

    def entry(self):
        return self.c.__dict__["_bytegraph_call"].__bytegraph_state__.entries[-1]


def test_alias_guards_are_off_the_fast_path():
    p = Probe()
    e = p.entry()
    guards = e.__bytegraph_guards__
    aliases = [g.code for g in guards.guards if g.kind == "alias"]
    assert len(aliases) >= 3
    src = e.__bytegraph_source__
    fast = src.split("        else:")[0]
    assert not any(a in fast for a in aliases)
    p.check(0)


@pytest.mark.parametrize("how", ["setattr", "object_setattr", "dict_write", "root"])
def test_rebinding_one_side_is_seen(how):
    p = Probe()
    other = Cfg(-1.0, 3.0)
    target = p.m if how == "root" else p.m.layers[1]
    if how in ("setattr", "root"):
        target.config = other
    elif how == "object_setattr":
        object.__setattr__(target, "config", other)
    else:
        target.__dict__["config"] = other
    p.run()
    p.run()


def test_rebinding_to_an_equal_but_distinct_object_and_back():
    p = Probe()
    layer = p.m.layers[2]
    same = layer.config
    layer.config = copy.copy(same)
    p.check(1)
    layer.config = same
    p.check(0)
