"""Guards: the checks that decide whether a cache entry may be reused for a call."""
from .guard_set import GuardSet, Guard

__all__ = ["GuardSet", "Guard"]
