"""Iterating a frozenset code constant (`for name in {"a", "b", "c"}` compiles to one) follows the
constant's own order, which depends on the process's str hashes: checked in fresh processes
under hash seeds where a set rebuilt from the same elements iterates in another order.

Not covered (a known gap, same seeds): a set the trace builds itself and then iterates
(`list({"a", "b", "c", "d"})` is BUILD_SET + SET_UPDATE of a frozenset) is rebuilt from its
elements in insertion order, which need not be CPython's table order."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = """
import torch, bytegraph
def s(x):
    for name in {"a", "b", "c"}:
        x = x * 2 + len(name) if name == "a" else x - 1
    return x
c = bytegraph.compile(s, backend="eager", fullgraph=True)
got, want = c(torch.ones(3)), s(torch.ones(3))
print("RESULT", torch.equal(got, want))
"""


@pytest.mark.parametrize("seed", [46, 51, 58, 62, 64])
def test_frozenset_constant_iteration_order(seed):
    env = dict(os.environ, PYTHONHASHSEED=str(seed), PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "RESULT True" in p.stdout, p.stdout
