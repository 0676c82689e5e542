"""Red-team probe of the aten backend under dynamic shapes (dispatch_trace/tracer.py
`_add_runtime_checks`): `x.reshape(-1, 6)` of an `(s0, s1)` input pins `s1` to 6 (a replacement
in the trace's ShapeEnv), so the dim is a constant no placeholder reads; the guards that still
named `s1` could not be emitted as checks, and every other symbol in them was pinned to its
hint: the lowered graph checked `batch == 2` and raised for any other batch size (a wrong
exception where eager returns). The checks now read the guards with the ShapeEnv's
replacements."""
import pytest
import torch

import bytegraph
from differential import REFERENCE, assert_same, reset

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's aten backend")


@pytest.mark.parametrize("f", [lambda x: x.reshape(-1, 6) * 2, lambda x: x.reshape((-1, 6)) + x.view(-1, 6),
                               lambda x: x.view(-1, 3).sum(1)], ids=["reshape", "reshape_tuple", "view"])
def test_a_dim_pinned_by_reshape_does_not_pin_the_others(f):
    reset()
    compiled = bytegraph.compile(f, backend="aten", dynamic=True)
    for batch in (2, 3, 5, 2):
        x = torch.randn(batch, 6)
        assert_same(f(x), compiled(x))
    assert bytegraph.counters["recompiles"]["total"] == 0
