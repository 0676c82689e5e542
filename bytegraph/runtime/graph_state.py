"""A graph that switches thread-local torch state inside it (a `no_grad`/`enable_grad` block, an
autocast region) and raises midway must leave that state as eager leaves it: eager's `with`
blocks restore it on the way out of the exception, while the graph's switch nodes past the
raising op never run. So the entry calls a graph holding such switches through a function of
this module, which puts back the state it found on entry when the call raises. Entry state is
the right target: each block the graph entered is one the exception leaves, since nothing inside
a graph catches it (a trace that would catch a tensor op's exception stops instead).
`compiling` does the same around a backend's compile of such a graph.

Not handled: a block entered in an earlier graph of the same trace (Python code of a graph
break between) is left switched by a raise in a later one; a graph holding a plain
`torch.set_grad_enabled(m)` call (no block) has its grad mode left as the raise leaves it, since
eager keeps that switch (its autocast blocks are still undone)."""

import contextlib

import torch

_GRAD = torch._C._set_grad_enabled
_ENTER_AUTOCAST = torch.amp.autocast_mode._enter_autocast


def _switches(gm):
    """(restore grad mode, restore autocast) on a raise in a graph: whether it switches grad
    mode by blocks only, whether it enters autocast. Grad mode is not restored when one of its
    switches is a plain `torch.set_grad_enabled(m)` call, which a raise after it does not undo
    in eager (the state at the raise is then eager's, unless a block is open too); its autocast
    blocks still are (eager's `with` leaves them on the way out)."""
    grad = autocast = plain = False
    for n in gm.graph.nodes:
        if n.op == "call_function":
            if n.target is _GRAD:
                plain = plain or not n.meta.get("bytegraph_scoped", False)
                grad = True
            autocast = autocast or n.target is _ENTER_AUTOCAST
    return grad and not plain, autocast


def _nesting():
    n = torch.autocast_increment_nesting() - 1      # torch has no getter: up and down again
    torch.autocast_decrement_nesting()
    return n


def _autocast_state():
    devices = torch._C._autocast_supported_devices()
    return ([(d, torch._C.is_autocast_enabled(d), torch._C.get_autocast_dtype(d)) for d in devices],
            torch._C.is_autocast_cache_enabled(), _nesting())


def _restore_autocast(state):
    devices, cache, nesting = state
    for d, on, dtype in devices:
        torch._C.set_autocast_enabled(d, on)
        torch._C.set_autocast_dtype(d, dtype)
    torch._C.set_autocast_cache_enabled(cache)
    level = _nesting()
    while level > nesting:            # the blocks the raise left open
        level = torch.autocast_decrement_nesting()
    if nesting == 0:
        torch.clear_autocast_cache()       # as leaving the outermost autocast block does


def call_restoring_grad(graph, *args):
    """graph(*args), the grad mode put back as it was if the call raises."""
    mode = torch.is_grad_enabled()
    try:
        return graph(*args)
    except BaseException:
        _GRAD(mode)
        raise


def call_restoring_autocast(graph, *args):
    """graph(*args), grad mode and autocast state put back as they were if the call raises."""
    mode = torch.is_grad_enabled()
    state = _autocast_state()
    try:
        return graph(*args)
    except BaseException:
        _GRAD(mode)
        _restore_autocast(state)
        raise


def call_restoring_autocast_only(graph, *args):
    """graph(*args), autocast state put back as it was if the call raises (grad mode left as
    the raise leaves it: the graph also switches it by a plain call)."""
    state = _autocast_state()
    try:
        return graph(*args)
    except BaseException:
        _restore_autocast(state)
        raise


def restoring_call(gm, exact=False):
    """The function the entry calls `gm`'s compiled graph through, or None to call it directly:
    a graph that switches no state needs nothing around it. `exact`: the state put back is the
    state on entry even for a plain `torch.set_grad_enabled(m)` in the graph (the entry then
    runs the unit again from its start: runtime/rerun.py)."""
    grad, autocast = _switches(gm)
    if exact:
        grad = grad or any(n.op == "call_function" and n.target is _GRAD for n in gm.graph.nodes)
    if autocast:
        return call_restoring_autocast if grad else call_restoring_autocast_only
    return call_restoring_grad if grad else None


@contextlib.contextmanager
def compiling(gm):
    """Around a backend's compile of `gm`: the autocast state put back afterwards when `gm`
    enters autocast (a backend that runs the graph's switches while lowering it and stops
    midway, as the aten backend does on a data-dependent graph, left autocast on)."""
    if not _switches(gm)[1]:
        yield
        return
    state = _autocast_state()
    try:
        yield
    finally:
        _restore_autocast(state)
