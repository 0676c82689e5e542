"""Default decomposition tables for make_fx.

``core_decompositions()`` returns torch's Core-ATen decomposition table
(``torch._decomp.core_aten_decompositions``): tracing with it lowers
non-core aten ops (e.g. ``addmm`` stays, ``hardswish`` -> primitive ops) so
graphs only contain the Core ATen opset where torch provides a decomposition.
"""

from __future__ import annotations

import functools

import torch
from torch._decomp import core_aten_decompositions, get_decompositions

__all__ = ["core_decompositions", "select_decompositions"]


@functools.lru_cache(maxsize=1)
def _core_table() -> dict:
    return dict(core_aten_decompositions())


def core_decompositions() -> dict:
    """A fresh dict OpOverload -> Python decomposition (Core ATen table)."""
    return dict(_core_table())


def select_decompositions(ops) -> dict:
    """Decompositions for just ``ops`` (OpOverloads or packets)."""
    return dict(get_decompositions(list(ops)))
