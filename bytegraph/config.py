"""Runtime configuration: `bytegraph.config.cache_size_limit`, `config.patch(...)`.

Every option has a checker: a wrong type is a TypeError, a value out of range a ValueError, an
unknown name an UnknownOptionError (an AttributeError, as torch's configs raise, and a
ValueError), each saying what was expected.
"""
import contextlib
import math

from .exc import UnknownOptionError


def _int(low):
    def check(name, value):
        if type(value) is not int:
            raise TypeError(f"config.{name} expects an int >= {low}, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"config.{name} expects an int >= {low}, got {value}")
    return check


def _bool(name, value):
    if type(value) is not bool:
        raise TypeError(f"config.{name} expects a bool, got {type(value).__name__}")


def _path_or_none(name, value):
    if value is not None and not isinstance(value, str):
        raise TypeError(f"config.{name} expects None or a directory path (str), got {type(value).__name__}")


def _seconds_or_none(name, value):
    if value is None:
        return
    if type(value) not in (int, float):
        raise TypeError(f"config.{name} expects None or a number of seconds > 0, got "
                        f"{type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"config.{name} expects None or a finite number of seconds > 0, got {value}")


class _Config:
    _options = dict(
        # name: (default, checker)
        cache_size_limit=(8, _int(0)),              # live cache entries per compiled function, then eager
        # the same for code compiled on an entry's behalf (resume functions after a graph
        # break, Python callees): one entry per loop position or module instance is expected
        resume_cache_size_limit=(64, _int(0)),
        accumulated_cache_size_limit=(2048, _int(1)),  # compiles of all functions since reset, then eager
        suppress_errors=(False, _bool),             # backend failures: raise (False, like torch.compile) or warn + eager
        inline_depth_limit=(64, _int(1)),           # nested inlined calls before the trace gives up
        verbose=(False, _bool),                     # log each compile at INFO
        keep_graphs=(False, _bool),                 # compile_metrics records keep their GraphModule
        compile_metrics_limit=(10000, _int(0)),     # records kept in compile_metrics (oldest dropped)
        backend_timeout=(None, _seconds_or_none),   # seconds a backend may take (None: no limit)
        # warm start (runtime/warm.py): entries saved here after each compile and looked up on a
        # function's first miss; None: the BYTEGRAPH_CACHE_DIR environment variable, if set
        cache_dir=(None, _path_or_none),
    )
    _defaults = {k: d for k, (d, _) in _options.items()}

    def __init__(self):
        object.__setattr__(self, "_values", dict(self._defaults))

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise self._unknown(name) from None

    def __setattr__(self, name, value):
        self._check(name, value)
        self._values[name] = value

    def _unknown(self, name):
        return UnknownOptionError(f"bytegraph.config has no option {name!r}; known: "
                                  f"{sorted(self._options)}")

    def _check(self, name, value):
        if not isinstance(name, str):
            raise TypeError(f"config option names are str, got {type(name).__name__}")
        if name not in self._options:
            raise self._unknown(name)
        self._options[name][1](name, value)

    def patch(self, arg1=None, arg2=None, **changes):
        """Context manager / decorator that sets options and restores them on exit:
        patch(name=value, ...), patch("name", value) or patch({"name": value})."""
        if isinstance(arg1, str):
            changes = {arg1: arg2, **changes}
        elif isinstance(arg1, dict):
            if arg2 is not None:
                raise TypeError("config.patch(dict) takes no second argument")
            changes = {**arg1, **changes}
        elif arg1 is not None or arg2 is not None:
            raise TypeError(f"config.patch expects option=value keywords, (name, value) or a dict, "
                            f"got {type(arg1).__name__}")
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
