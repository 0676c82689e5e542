"""Runtime configuration: `bytegraph.config.cache_size_limit`, `config.patch(...)`."""
import contextlib
import functools


class _Config:
    _defaults = dict(
        cache_size_limit=8,          # cache entries per compiled function before it runs eagerly
        # the same for code compiled on an entry's behalf (resume functions after a graph
        # break, Python callees): one entry per loop position or module instance is expected
        resume_cache_size_limit=64,
        suppress_errors=False,       # backend failures: raise (False, like torch.compile) or warn + eager
        inline_depth_limit=64,       # nested inlined calls before the trace gives up
        verbose=False,               # log each compile at INFO
    )

    def __init__(self):
        object.__setattr__(self, "_values", dict(self._defaults))

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"bytegraph.config has no option {name!r}") from None

    def __setattr__(self, name, value):
        self._check(name, value)
        self._values[name] = value

    def _check(self, name, value):
        if name not in self._defaults:
            raise AttributeError(f"bytegraph.config has no option {name!r}; "
                                 f"known: {sorted(self._defaults)}")
        want = type(self._defaults[name])
        if want is int and (type(value) is not int):
            raise TypeError(f"config.{name} expects an int, got {type(value).__name__}")
        if want is bool and type(value) is not bool:
            raise TypeError(f"config.{name} expects a bool, got {type(value).__name__}")

    def patch(self, **changes):
        """Context manager / decorator that sets options and restores them on exit."""
        for k, v in changes.items():
            self._check(k, v)
        cfg = self

        class _Patch(contextlib.ContextDecorator):
            def __enter__(self):
                self.saved = {k: cfg._values[k] for k in changes}
                cfg._values.update(changes)
                return cfg

            def __exit__(self, *exc):
                cfg._values.update(self.saved)
                return False

        return _Patch()


config = _Config()
