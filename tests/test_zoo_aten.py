"""The "aten" backend (make_fx lowering) over the whole model zoo, gradients included."""
import pytest

import zoo
from differential import REFERENCE

pytestmark = pytest.mark.skipif(REFERENCE, reason="'aten' is bytegraph's backend; torch.compile has no such name")


@pytest.mark.parametrize("entry", zoo.entries(), ids=lambda e: e.name)
def test_zoo_aten_backend(entry):
    zoo.check_entry(entry, backend="aten")
