"""A warnings filter put in front for the length of a `with` block, without marking the
filters changed.

`warnings.catch_warnings()` (and `simplefilter` inside it) bumps the interpreter's filters
version on entry and exit; every module's `__warningregistry__` is then cleared on its next
warning, so a "default", "once" or "module" warning of the user's code shows again. Tracing runs
ops on fake tensors and folds constants many times per compile: with catch_warnings there, each
compile made eager-only warnings reappear (red team 15). Here the filter tuple is inserted into
the live `warnings.filters` list, which the C implementation reads on every warning, and removed
(by identity) after; the version stays, and so do the registries.
"""
import contextlib
import warnings


@contextlib.contextmanager
def front_filter(action):
    """Every warning raised inside gets `action` ("ignore", or "error" to see it as an exception)."""
    entry = (action, None, Warning, None, 0)
    filters = warnings.filters
    filters.insert(0, entry)
    try:
        yield
    finally:
        for i, f in enumerate(filters):
            if f is entry:
                del filters[i]
                break
