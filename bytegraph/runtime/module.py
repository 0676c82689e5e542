"""OptimizedModule: what compile(nn.Module) returns.

It is an nn.Module whose own __dict__ holds only the wrapped module and the
compiled call; every other attribute read, write and delete goes to the wrapped
module. nn.Module's own methods therefore run against the wrapped module's state:
state_dict() has the same keys as the original (no `_orig_mod.` prefix),
train()/eval() flip the original's flags, hooks registered on the wrapper land on
the original (and the compiled call honours them, guarded).

Calls run `mod(*args, **kwargs)` through a compiled trampoline, so the trace sees
Module.__call__ semantics (hooks, then forward). Pickling and deepcopy rebuild a
wrapper around a copy of the original with the same compile settings.
"""
import torch

from .api import CompileState, _function_wrapper


def _module_call(mod, *args, **kwargs):
    return mod(*args, **kwargs)


def _rebuild(mod, spec):
    from .api import compile
    backend, fullgraph, dynamic, options, mode = spec
    return compile(mod, backend=backend, fullgraph=fullgraph, dynamic=dynamic, options=options, mode=mode)


class OptimizedModule(torch.nn.Module):
    def __init__(self, mod, backend_fn, backend_name, fullgraph, spec):
        # deliberately no Module.__init__: all module state stays in the wrapped module
        d = self.__dict__
        d["_orig_mod"] = mod
        d["_bytegraph_spec"] = spec
        state = CompileState(_module_call, backend_fn, backend_name, fullgraph)
        state.name = type(mod).__name__
        d["_bytegraph_call"] = _function_wrapper(_module_call, state)

    def __call__(self, *args, **kwargs):
        return self.__dict__["_bytegraph_call"](self.__dict__["_orig_mod"], *args, **kwargs)

    def forward(self, *args, **kwargs):
        return self.__call__(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.__dict__["_orig_mod"], name)

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
