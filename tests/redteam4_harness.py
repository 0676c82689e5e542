"""Order-aware differential harness of the redteam4 probes (tests/test_redteam4_*.py).

A probe's build() returns (fn, args_for_call(i), state()): each side (eager, then
bytegraph.compile(backend="eager")) gets fresh state from its own build() under the same seed and
is called `ncalls` times. Compared per call: the result or the exception (type and message),
stdout, the arguments after the call and state() -- with sets, frozensets, dicts and dict views
compared in iteration order, not just by contents. Any bytegraph warning (an internal error, a
trace that raised where the function did not) fails the probe.
"""
import contextlib
import enum
import io
import warnings

import torch

import bytegraph


def norm(x, depth=0):
    """A comparable, order-preserving picture of x."""
    if depth > 20:
        return ("deep",)
    d = depth + 1
    if isinstance(x, torch.Tensor):
        return ("T", x.dtype, tuple(x.shape), x.requires_grad, x.detach().tolist())
    if isinstance(x, enum.Enum):
        return ("enum", type(x).__qualname__, repr(x))
    if isinstance(x, (set, frozenset)):
        return (type(x).__name__, [norm(v, d) for v in x])
    if isinstance(x, dict):
        return (type(x).__name__, [(norm(k, d), norm(v, d)) for k, v in x.items()])
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [norm(v, d) for v in x])
    if type(x).__name__ in ("dict_keys", "dict_values", "dict_items"):
        return (type(x).__name__, [norm(v, d) for v in x])
    if isinstance(x, (int, float, str, bytes, type(None), bool, complex)):
        return (type(x).__name__, repr(x))
    if hasattr(x, "__dict__") and not callable(x) and not isinstance(x, type):
        return (type(x).__qualname__, norm(dict(vars(x)), d))
    return (type(x).__qualname__, repr(x).split(" at 0x")[0])


def _call(fn, args):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            r = ("ok", norm(fn(*args)))
        except Exception as e:      # noqa: BLE001 -- the exception is part of the result
            r = ("exc", type(e).__name__, str(e))
    return r, buf.getvalue()


def run_side(build, ncalls, compiled, fullgraph=False):
    bytegraph.reset()
    torch.manual_seed(0)
    fn, argf, state = build()
    if compiled:
        fn = bytegraph.compile(fn, backend="eager", fullgraph=fullgraph)
    out = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for i in range(ncalls):
            args = argf(i)
            r = _call(fn, args)
            out.append((r, norm(args), norm(state())))
    return out, [str(m.message) for m in w if "bytegraph" in str(m.message)]


def check(build, ncalls=3, fullgraph=False):
    eager, _ = run_side(build, ncalls, False)
    comp, warned = run_side(build, ncalls, True, fullgraph)
    assert not warned, f"bytegraph warned: {warned}"
    for i, (e, c) in enumerate(zip(eager, comp)):
        assert e == c, f"call {i}:\n eager    {e}\n compiled {c}"


def X(i):
    return torch.ones(2) * (i + 1)
