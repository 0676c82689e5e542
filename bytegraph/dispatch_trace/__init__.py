"""bytegraph.dispatch_trace: a from-scratch dispatch-level tracer (make_fx).

Public API: ``make_fx``, ``DataDependentError``, ``core_decompositions`` and
the ``aten_backend`` torch.compile-style backend.  Depends only on torch.
"""

from .tracer import DataDependentError, TRACING_MODES, make_fx
from .decompositions import core_decompositions
from .backend import aten_backend

__all__ = ["make_fx", "DataDependentError", "TRACING_MODES", "core_decompositions",
           "aten_backend"]
