"""Red team 8's differential runner: eager and compiled on deep copies of the same arguments,
comparing results (or the exception raised), stdout, and the arguments afterwards; every
round of the same arguments must be answered from the cache (no new frame compiled).
BYTEGRAPH_TEST_REFERENCE=1 runs the same checks through torch.compile (differential.py)."""
import contextlib
import copy
import io

import torch

from differential import REFERENCE, assert_same, compile_fn, counters, reset


def _call(fn, args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            r = ("ok", fn(*args))
        except Exception as e:       # the same exception, type and message, as eager
            r = ("raised", type(e), str(e))
    return r, out.getvalue()


def _state(obj):
    """Arguments as comparable data: a module as its tensors and plain attributes."""
    if isinstance(obj, torch.nn.Module):
        plain = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
        return ("module", dict(obj.state_dict(keep_vars=True)), plain)
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_state(x) for x in obj)
    return obj


def run(fn, *argsets, fullgraph=False, backend="eager", repeat=2):
    """Each argument tuple of `argsets` runs `repeat` times eagerly and compiled; the second
    round of the same arguments compiles nothing new. Returns the compiled function."""
    reset()
    c = compile_fn(fn, backend=backend, fullgraph=fullgraph)
    for args in argsets:
        for i in range(repeat):
            before = counters()["frames"]["total"]
            ea, ca = copy.deepcopy(args), copy.deepcopy(args)
            want, want_out = _call(fn, ea)
            got, got_out = _call(c, ca)
            if want[0] == "raised" or got[0] == "raised":
                assert want == got, f"{want} != {got}"
            else:
                assert_same(want[1], got[1])
            assert want_out == got_out, f"stdout {want_out!r} != {got_out!r}"
            assert_same(_state(ea), _state(ca), path="args-after")
            if i:
                assert counters()["frames"]["total"] == before, "the same arguments compiled again"
    return c


def fallbacks():
    """bytegraph's whole-function fallbacks ({} in reference mode: torch.compile counts none)."""
    return {} if REFERENCE else dict(counters()["fallback"])


def internal_errors():
    return 0 if REFERENCE else counters()["frames"]["internal_error"]
