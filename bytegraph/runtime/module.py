"""OptimizedModule: what compile(nn.Module) returns.

It is an nn.Module (isinstance holds) whose own __dict__ holds only the wrapped
module and the compiled call. Every other attribute -- including nn.Module's methods
-- is read from the wrapped module, so methods run on the original with the
original's class: state_dict() has the original's keys (no `_orig_mod.` prefix),
version metadata and extra state; train()/apply()/modules()/register_buffer() and the
class's own overrides of them behave exactly as on the original; hooks registered
through the wrapper land on the original (and the compiled call honours them,
guarded). A method that returns the original module (train(), to(), ...) returns
the wrapper instead, so `model = compile(m).eval()` keeps the compiled module.

Calls run `mod(*args, **kwargs)` through a compiled trampoline, so the trace sees
Module.__call__ semantics (hooks, then forward). Pickling and deepcopy rebuild a
wrapper around a copy of the original with the same compile settings.
"""
import functools
import types

import torch

from .api import CompileState, _function_wrapper


_OWN = frozenset({"forward", "_orig_mod", "_bytegraph_call", "_bytegraph_spec"})  # answered by the wrapper


def _returning_wrapper(wrapper, orig, method):
    """orig.method, except that returning orig returns the wrapper (method chaining)."""
    @functools.wraps(method)
    def call(*args, **kwargs):
        result = method(*args, **kwargs)
        return wrapper if result is orig else result
    return call


def _module_call(mod, *args, **kwargs):
    return mod(*args, **kwargs)


def _rebuild(mod, spec):
    from .api import compile
    backend, fullgraph, dynamic, options, mode = spec
    return compile(mod, backend=backend, fullgraph=fullgraph, dynamic=dynamic, options=options, mode=mode)


_dict_of = object.__getattribute__


class OptimizedModule(torch.nn.Module):
    def __init__(self, mod, backend_fn, backend_name, fullgraph, spec):
        # deliberately no Module.__init__: all module state stays in the wrapped module
        d = self.__dict__
        d["_orig_mod"] = mod
        d["_bytegraph_spec"] = spec
        state = CompileState(_module_call, backend_fn, backend_name, fullgraph, spec[2])
        state.name = type(mod).__name__
        d["_bytegraph_call"] = _function_wrapper(_module_call, state)

    def __call__(self, *args, **kwargs):
        d = _dict_of(self, "__dict__")
        return d["_bytegraph_call"](d["_orig_mod"], *args, **kwargs)

    def forward(self, *args, **kwargs):
        return self.__call__(*args, **kwargs)

    def __getattribute__(self, name):
        if name.startswith("__") or name in _OWN:
            return _dict_of(self, name)
        orig = _dict_of(self, "__dict__")["_orig_mod"]
        attr = getattr(orig, name)
        if isinstance(attr, types.MethodType) and attr.__self__ is orig:
            return _returning_wrapper(self, orig, attr)
        return attr

    def __setattr__(self, name, value):
        setattr(self.__dict__["_orig_mod"], name, value)

    def __delattr__(self, name):
        delattr(self.__dict__["_orig_mod"], name)

    def __dir__(self):
        return dir(self.__dict__["_orig_mod"])

    def __repr__(self):
        return f"OptimizedModule({self.__dict__['_orig_mod']!r})"

    def __reduce__(self):
        return (_rebuild, (self.__dict__["_orig_mod"], self.__dict__["_bytegraph_spec"]))

    def __deepcopy__(self, memo):
        import copy
        return _rebuild(copy.deepcopy(self.__dict__["_orig_mod"], memo), self.__dict__["_bytegraph_spec"])

    def __getstate__(self):
        raise TypeError("pickle an OptimizedModule through __reduce__")
