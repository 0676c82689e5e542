"""Red team 9: module-state scalars' guards (values/known.py) in a warm-started cache
(runtime/warm.py): a float value compared by its bits (f64_bits) and the memory-overlap guard of
a read buffer and an argument the graph writes (storages_overlap) are persisted, and a warm
process whose buffer value or argument aliasing differs must not take the stored entry. Each
phase is a fresh interpreter; every call is compared with eager."""
import textwrap

import pytest

from differential import REFERENCE
from warm_harness import run_phase, write_module

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's warm start")

USER_MODULE = textwrap.dedent('''
    import math
    import os
    import torch
    from torch import nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.n = nn.Buffer(torch.tensor([int(os.environ.get("W9_N", "3"))]))
            self.z = nn.Buffer(torch.tensor(float(os.environ.get("W9_Z", "0.0"))))

        def forward(self, x, t):
            k = int(self.n)
            t.add_(1)
            return x[..., :k].sum() * math.copysign(1.0, float(self.z)) + x[..., :int(self.n)].sum()
''')

PHASE = textwrap.dedent('''
    import copy, json, os, sys
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, spec["dir"])
    import torch
    import bytegraph
    bytegraph.config.cache_dir = spec["cache_dir"]
    import w9mod
    alias = os.environ.get("W9_ALIAS") == "1"
    eager = w9mod.M()
    model = copy.deepcopy(eager)
    compiled = bytegraph.compile(model, backend="eager")
    good = True
    for i in range(2):
        x = torch.arange(8.0).reshape(1, 8) + i
        te = eager.n.view(1) if alias else torch.tensor([0])
        tc = model.n.view(1) if alias else torch.tensor([0])
        want, got = eager(x, te), compiled(x, tc)
        good = good and torch.equal(want, got) and torch.equal(eager.n, model.n)
    print("RESULT" + json.dumps({"ok": {"m": good}, "warm": dict(bytegraph.counters["warm"]),
                                 "frames": dict(bytegraph.counters["frames"])}))
''')


@pytest.mark.parametrize("env", [{"W9_Z": "-0.0"}, {"W9_N": "4"}, {"W9_ALIAS": "1"}])
def test_changed_state_misses_the_stored_entry(tmp_path, env):
    write_module(tmp_path, "w9mod.py", USER_MODULE)
    cold = run_phase(PHASE, tmp_path, ["m"])
    assert cold["ok"] == {"m": True}, cold
    same = run_phase(PHASE, tmp_path, ["m"])
    assert same["ok"] == {"m": True} and same["warm"].get("hit") and not same["frames"], same
    changed = run_phase(PHASE, tmp_path, ["m"], **env)
    assert changed["ok"] == {"m": True}, changed
    assert changed["frames"].get("total"), changed       # traced again: no stored entry took it
