"""Regressions found on real library code (the corpus in bench/corpus), each reduced to a few lines."""
import functools

import torch

from differential import check, compile_fn, reset


def _deprecating(fn):
    """transformers' deprecate_kwarg shape: a (*args, **kwargs) wrapper with functools.wraps, so
    inspect.signature() follows __wrapped__ to parameters the wrapper does not have."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        kwargs.pop("old_name", None)
        return fn(*args, **kwargs)
    return wrapped


@_deprecating
def _forward(x, scale=2.0, *, bias=None):
    return x * scale + (0 if bias is None else bias)


def test_compiled_wraps_decorated_function_binds_its_own_parameters():
    check(_forward, torch.randn(3), kwargs={"bias": 1.0, "old_name": 5})
    check(_forward, torch.randn(3), 3.0)


def _marked_constant(fn):
    fn._dynamo_marked_constant = True         # the attribute torch.compile honours
    return fn


_PROBES = []


@functools.lru_cache
@_marked_constant
def _install_probe():
    import importlib.util
    _PROBES.append(1)                        # runs once, at trace time, as under torch.compile
    return importlib.util.find_spec("torch") is not None


def test_marked_constant_helpers_are_called_once_at_trace_time():
    def fn(x):
        return x + 1 if _install_probe() else x - 1

    check(fn, torch.randn(3), calls=[(torch.randn(3),)])
    # compiled alone, on a cold lru_cache: the trace calls the helper for real once; cache hits
    # run the graph only (the answer is a constant of the graph, as under torch.compile)
    _install_probe.cache_clear()
    _PROBES.clear()
    reset()
    compiled = compile_fn(fn, backend="eager", fullgraph=True)
    for _ in range(3):
        compiled(torch.randn(3))
    assert _PROBES == [1]


class _SiLUActivation(torch.nn.Module):      # transformers' activations: no __init__ of their own
    def forward(self, x):
        return torch.nn.functional.silu(x)


def test_parameterless_module_built_inside_forward():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            return _SiLUActivation()(self.lin(x))    # ACT2FN["silu"] builds one per access

    check(Block(), torch.randn(2, 4))
