"""Red-team probes for the split distinct-objects guard (guards/generation.py: _split_distinct,
docs/call_cost.md): on the dict path, `len({id(a), ...}) == n` checks only the objects that are
not read from the entry's cache, and that none of them is one of the cached objects (whose ids
the cache stored after a check that found all of them distinct). Each probe warms a compiled
model onto that path and then passes, as an argument, an object that aliases a cached one or
another argument, and checks the result and the caller's objects against eager."""
import pytest
import torch
import torch.nn as nn

from differential import REFERENCE, assert_same, compile_fn, counters

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's cache and recompile counts")


def _h1(x):
    return x + 1


def _h2(x):
    return x * 2


def _h3(x):
    return x - 3


def _h4(x):
    return x / 4


class Cfg:
    def __init__(self):
        self.k = 2


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(8)])
        self.log = []
        self.other = []
        self.cfg = Cfg()

    def forward(self, x, out, out2):
        for layer in self.layers:
            x = _h4(_h3(_h2(_h1(layer(x)))))
        # every list ends empty, so only aliasing tells calls apart: with `out` being
        # `self.log` (or `out2` being `out`), eager sees the earlier appends
        self.log.append(1)
        self.other.append(2)
        out.append(len(self.log) + len(self.other))
        out2.append(len(out))
        r = x * self.cfg.k + len(out2) * 10 + len(out) * 100 + len(self.log) * 1000
        self.log.clear()
        self.other.clear()
        out.clear()
        out2.clear()
        return r


def _source(c):
    return c.__dict__["_bytegraph_call"].__bytegraph_state__.entries[0].__bytegraph_source__


class Pair:
    """The same model twice (eager, compiled), warmed onto the compiled one's dict path."""

    def __init__(self):
        torch.manual_seed(0)
        self.e = M()
        torch.manual_seed(0)
        self.m = M()
        self.c = compile_fn(self.m, backend="eager")
        self.x = torch.randn(2, 4)
        for _ in range(3):
            self.call(lambda m: ([], []))
        assert "__dd := __c[7]" in _source(self.c)     # the split guard is in use

    def call(self, args_of):
        with torch.no_grad():
            expected = self.e(self.x, *args_of(self.e))
            actual = self.c(self.x, *args_of(self.m))
        assert_same(expected, actual)
        assert self.e.log == self.m.log == [] and self.e.other == self.m.other == []
        return expected, actual


def recompiles():
    return counters()["recompiles"]["total"]


@pytest.fixture
def pair():
    return Pair()


def test_argument_is_a_cached_list(pair):
    before = recompiles()
    pair.call(lambda m: (m.log, []))
    pair.call(lambda m: (m.log, []))
    assert recompiles() - before == 1
    pair.call(lambda m: ([], []))


def test_second_argument_is_a_cached_list(pair):
    pair.call(lambda m: ([], m.other))
    pair.call(lambda m: ([], m.other))


def test_two_arguments_alias_each_other(pair):
    shared_e, shared_m = [], []
    pair.call(lambda m: (shared_e, shared_e) if m is pair.e else (shared_m, shared_m))
    pair.call(lambda m: (shared_e, shared_e) if m is pair.e else (shared_m, shared_m))


def test_cached_list_replaced_then_aliased(pair):
    pair.e.log = []
    pair.m.log = []
    pair.call(lambda m: ([], []))                 # refills the cache with the new list
    pair.call(lambda m: ([], []))
    pair.call(lambda m: (m.log, []))
    pair.call(lambda m: ([], m.log))


def test_old_cached_list_passed_after_replacement(pair):
    old_e, old_m = pair.e.log, pair.m.log
    pair.e.log = []
    pair.m.log = []
    pair.call(lambda m: ([], []))
    pair.call(lambda m: (old_e if m is pair.e else old_m, []))


def test_dict_path_left_and_back(pair):
    global _h1
    saved = _h1
    try:
        _h1 = lambda x: x + 10          # noqa: E731 -- a watched global changes: middle path
        pair.call(lambda m: ([], []))
        pair.call(lambda m: (m.log, m.other))
    finally:
        _h1 = saved
    pair.call(lambda m: ([], []))
    pair.call(lambda m: (m.other, m.log))


def test_two_cached_lists_made_one(pair):
    # both sides cached: the cache is refilled after the full check, which sees the aliasing
    pair.e.other = pair.e.log
    pair.m.other = pair.m.log
    pair.call(lambda m: ([], []))
    pair.call(lambda m: ([], []))
    object.__setattr__(pair.e, "other", [])       # around nn.Module.__setattr__: the dict tag
    object.__setattr__(pair.m, "other", [])
    pair.call(lambda m: ([], []))
    pair.call(lambda m: (m.other, []))
