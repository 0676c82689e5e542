"""How the runtime calls a backend: one compile at a time, within config.backend_timeout, with
compile(options=...) applied.

- One process-wide lock serialises backend calls, as torch.compile does (inductor's config and
  caches are process-wide, and backends are written for serial calls). The built-in eager
  backend only returns gm.forward and is called without it, so eager compiles never wait.
- config.backend_timeout (seconds, None = wait forever): the backend runs on a worker thread
  that starts from the caller's thread-local torch state (grad mode, inference mode, autocast);
  past the timeout the caller gets TimeoutError (the runtime raises it as
  BackendCompilerFailed) and the worker is abandoned -- a thread cannot be killed; its result is
  dropped, and the lock is released so later compiles go on.
- options=: the inductor backend gets them as an inductor config patch, validated up front
  (unknown keys and wrong value types are errors, as in torch.compile); a backend callable with
  an `options` parameter receives them as options=...; any other backend refuses them.
"""
import contextlib
import difflib
import functools
import inspect
import threading

import torch

from ..config import config
from .registry import eager, inductor

_backend_lock = threading.RLock()


def guarded_backend(backend, name):
    if backend is eager:
        return backend

    @functools.wraps(backend)
    def call(gm, example_inputs):
        return _call(backend, name, gm, example_inputs)
    return call


def _tracing(gm):
    """For a graph with symbolic sizes: a TracingContext holding the trace's fake mode, which
    is how a compiling backend (inductor, aot_autograd) finds the symbols of the inputs, as it
    does under torch.compile."""
    mode = getattr(gm, "meta", {}).get("bytegraph_fake_mode")
    if mode is None:
        return contextlib.nullcontext()
    from torch._guards import TracingContext, tracing
    return tracing(TracingContext(mode))


def _call(backend, name, gm, example_inputs):
    timeout = config.backend_timeout
    if timeout is None:
        with _backend_lock, _tracing(gm):
            return backend(gm, example_inputs)
    if not _backend_lock.acquire(timeout=timeout):
        raise TimeoutError(f"waited {timeout} s (config.backend_timeout) for another backend "
                           f"compile to finish")
    try:
        return _run_with_timeout(backend, name, gm, example_inputs, timeout)
    finally:
        _backend_lock.release()


def _thread_state():
    devices = torch._C._autocast_supported_devices()
    autocast = [(d, torch._C.is_autocast_enabled(d), torch._C.get_autocast_dtype(d)) for d in devices]
    return (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), autocast,
            torch._C.is_autocast_cache_enabled())


def _apply_thread_state(state):
    grad, _inference, autocast, cache = state
    torch._C._set_grad_enabled(grad)
    for d, on, dtype in autocast:
        torch._C.set_autocast_enabled(d, on)
        torch._C.set_autocast_dtype(d, dtype)
    torch._C.set_autocast_cache_enabled(cache)


def _run_with_timeout(backend, name, gm, example_inputs, timeout):
    state = _thread_state()
    box = {}

    def work():
        try:
            # entering inference_mode(False) would switch grad mode on: only enter it when on
            with torch.inference_mode() if state[1] else contextlib.nullcontext():
                _apply_thread_state(state)
                with _tracing(gm):
                    box["result"] = backend(gm, example_inputs)
        except BaseException as e:       # handed to the caller
            box["error"] = e

    worker = threading.Thread(target=work, name=f"bytegraph-backend-{name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"backend {name!r} did not return within config.backend_timeout="
                           f"{timeout} s (its thread is abandoned)")
    if "error" in box:
        raise box.pop("error")
    return box["result"]


# --------------------------------------------------------------------------
# compile(options=...)

def with_options(backend, name, options):
    """The backend to call for compile(backend=..., options=options); checks the options."""
    options = dict(options)
    if backend is inductor:
        _check_inductor_options(options)

        @functools.wraps(backend)
        def patched(gm, example_inputs):
            from torch._inductor import config as ind_config
            with ind_config.patch(options):
                return backend(gm, example_inputs)
        return patched
    if _takes_options(backend):
        @functools.wraps(backend)
        def with_kw(gm, example_inputs):
            return backend(gm, example_inputs, options=options)
        return with_kw
    raise ValueError(f"compile(options=...): backend {name!r} takes no options (got "
                     f"{sorted(options)}); options are inductor config settings for "
                     f"backend='inductor', or are passed as options=... to a backend callable "
                     f"that has an `options` parameter")


def _takes_options(backend):
    try:
        params = inspect.signature(backend).parameters
    except (TypeError, ValueError):
        return False
    return "options" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _check_inductor_options(options):
    from torch._inductor import config as ind_config
    known = ind_config.get_config_copy()
    for key, value in options.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"compile(options=...): {key!r} is not an inductor option{hint} "
                             f"(torch._inductor.list_options() lists them)")
        default = known[key]
        if default is not None and value is not None and not _same_kind(default, value):
            raise TypeError(f"compile(options=...): inductor option {key!r} expects "
                            f"{type(default).__name__}, got {type(value).__name__} ({value!r})")


def _same_kind(default, value):
    if isinstance(default, bool) or isinstance(value, bool):
        return type(default) is type(value)
    if isinstance(default, (int, float)) and isinstance(value, (int, float)):
        return isinstance(value, type(default)) or isinstance(default, float)
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return True
    if callable(default) or callable(value):
        return True
    return isinstance(value, type(default))
