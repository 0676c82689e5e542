"""Runtime: compile(), cache entries, recompiles, stances, module wrapper."""
