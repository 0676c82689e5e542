"""A fake run that fails (the user's shapes do not fit, or a kernel needs concrete sizes)
becomes eager's error or a graph break, without FakeTensorMode's ERROR record and traceback on
the user's console; the logger is left as the user set it."""
import logging

import pytest
import torch

import bytegraph


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def fake_records():
    log = logging.getLogger("torch._subclasses.fake_tensor")
    h = _Records()
    log.addHandler(h)
    try:
        yield h.records
    finally:
        log.removeHandler(h)
    assert log.disabled is False


def test_a_shape_error_raises_eagers_error_quietly(fake_records):
    def f(x, y):
        return (x + 1).mm(y)
    x, y = torch.randn(2, 3), torch.randn(4, 5)
    with pytest.raises(RuntimeError) as want:
        f(x, y)
    with pytest.raises(RuntimeError) as got:
        bytegraph.compile(f, backend="eager")(x, y)
    assert str(got.value) == str(want.value)
    assert fake_records == []


def test_the_user_logger_still_works_outside_a_trace(fake_records):
    logging.getLogger("torch._subclasses.fake_tensor").error("the user's own record")
    assert [r.getMessage() for r in fake_records] == ["the user's own record"]
