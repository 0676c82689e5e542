"""Differential operator sweep for make_fx implementations (tests + bench).

The op set is built programmatically from torch's OpInfo database
(``torch.testing._internal.common_methods_invocations.op_db``):

  * keep OpInfos whose CPU dtypes include float32;
  * drop ops with random outputs: name/variant matching ``RANDOM_RE`` (rand,
    normal, bernoulli, dropout, multinomial, uniform, empty, exponential,
    geometric, cauchy, log_normal, poisson, rrelu);
  * per sample, run eager twice on fresh clones; a sample whose two eager runs
    disagree (or that raises in eager) is skipped as non-deterministic/invalid.

A case = (op, sample index, tracing mode).  Tensors of the sample become the
traced inputs; every non-tensor argument is closed over (the same thing for
every tracer under test).  The case passes when the graph run on fresh clones
matches eager (outputs and any in-place mutation of inputs) under
``torch.testing.assert_close(equal_nan=True)``.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Callable, Iterator

import torch
import torch.utils._pytree as pytree

RANDOM_RE = re.compile(
    r"rand|normal|bernoulli|dropout|multinomial|uniform|empty|exponential|"
    r"geometric|cauchy|log_normal|poisson|rrelu")

PASS, FAIL, SKIP = "pass", "fail", "skip"


def op_name(op) -> str:
    return op.name + ("." + op.variant_test_name if op.variant_test_name else "")


def sweep_ops() -> list:
    """The deterministic float32-on-CPU OpInfos, in op_db order."""
    from torch.testing._internal.common_methods_invocations import op_db

    ops = []
    for op in op_db:
        if RANDOM_RE.search(op_name(op)):
            continue
        try:
            if torch.float32 not in op.supported_dtypes("cpu"):
                continue
        except Exception:
            continue
        ops.append(op)
    return ops


def samples(op, n: int) -> list:
    out = []
    try:
        it = op.sample_inputs("cpu", torch.float32, requires_grad=False)
        for s in it:
            out.append(s)
            if len(out) >= n:
                break
    except Exception:
        pass
    return out


def _clone(x: Any) -> Any:
    return pytree.tree_map_only(torch.Tensor, lambda t: t.clone(), x)


def _split(sample) -> tuple[Callable, list]:
    """(function of the sample's tensors, the tensors)."""
    flat, spec = pytree.tree_flatten(((sample.input, *sample.args), dict(sample.kwargs)))
    idx = [i for i, a in enumerate(flat) if isinstance(a, torch.Tensor)]
    return flat, spec, idx


def run_case(make_fx_impl: Callable, op, sample, mode: str) -> tuple[str, str]:
    """Trace ``op`` on ``sample`` with ``make_fx_impl`` in ``mode``; compare to eager."""
    flat, spec, idx = _split(sample)
    fn = op.op

    def f(*tensors):
        new = list(flat)
        for i, t in zip(idx, tensors):
            new[i] = t
        args, kwargs = pytree.tree_unflatten(new, spec)
        return fn(*args, **kwargs)

    inputs = [flat[i] for i in idx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            e_in = _clone(inputs)
            expected = f(*e_in)
            e_in2 = _clone(inputs)
            expected2 = f(*e_in2)
            torch.testing.assert_close(expected2, expected, equal_nan=True)
        except Exception as e:
            return SKIP, f"eager: {type(e).__name__}: {str(e)[:200]}"
        try:
            gm = make_fx_impl(f, tracing_mode=mode)(*_clone(inputs))
        except Exception as e:
            return FAIL, f"trace: {type(e).__name__}: {str(e)[:300]}"
        try:
            g_in = _clone(inputs)
            got = gm(*g_in)
        except Exception as e:
            return FAIL, f"run: {type(e).__name__}: {str(e)[:300]}"
        try:
            torch.testing.assert_close(got, expected, equal_nan=True)
            torch.testing.assert_close(g_in, e_in, equal_nan=True)
        except Exception as e:
            return FAIL, f"mismatch: {type(e).__name__}: {str(e)[:300]}"
    return PASS, ""


def iter_cases(ops, n_samples: int) -> Iterator[tuple[Any, int, Any]]:
    for op in ops:
        for i, s in enumerate(samples(op, n_samples)):
            yield op, i, s
