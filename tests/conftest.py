"""Shared pytest setup: make the differential helper importable and reset compiler state per test."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from differential import reset  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_compiler():
    reset()
    yield
    reset()
