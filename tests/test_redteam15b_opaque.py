"""Red team 15b: arithmetic on item() results that may raise (values/opaque.py raising_op,
_may_raise, _NEVER_RAISE, pytype; runtime/resume.py from_items/_NUMERIC, _at_site;
bytegraph/warn_filters.py).

Each probe runs eagerly and compiled (tests/test_redteam15_harness.py check: results,
exceptions, side effects, stdout, warnings, no internal-error warning, recompiles). Calls vary
the item() value across calls (a value used only as a number must not recompile per value).

PYTEST_DONT_REWRITE
"""
import math
import warnings

import pytest
import torch

import bytegraph
from test_redteam15_harness import check, outcome

P = {}


def probe(f):
    P[f.__name__] = f
    return f


def T(v, dtype=None):
    return torch.tensor(v, dtype=dtype)


def run(C, fn, values, dtype=None, extra=()):
    """fn compiled once, called on tensor(v) for each v (fresh log lists)."""
    cf = C(fn)
    out = []
    for v in values:
        log = []
        out.append((outcome(cf, T(v, dtype), log, *extra), log))
    return out


# ---- division -------------------------------------------------------------------------------

@probe
def truediv_int(C):
    def f(x, log):
        n = x.sum().item()
        r = 1 / n
        log.append(r)
        return x * r
    return run(C, f, [[1, 2], [3, 4], [0, 0], [5, 5]], torch.int64)


@probe
def truediv_zero_caught(C):
    def f(x, log):
        n = x.sum().item()
        try:
            r = 10 / n
            log.append("ok")
        except ZeroDivisionError as e:
            log.append(("zde", str(e)))
            r = -1.0
        return x + r
    return run(C, f, [[1.0, 2.0], [0.0, 0.0], [2.0, -2.0], [3.0, 1.0]])


@probe
def floordiv_mod(C):
    def f(x, log):
        n = x.sum().item()
        k = x[0].item()
        log.append((n // k, n % k))
        return x * (n // k)
    return run(C, f, [[3, 4], [5, 7], [-2, 9], [0, 1]], torch.int64)


@probe
def divmod_op(C):
    def f(x, log):
        n = x.sum().item()
        q, r = divmod(n, 3)
        log.append((q, r))
        return x + q - r
    return run(C, f, [[3, 4], [5, 7], [-2, 9]], torch.int64)


@probe
def divmod_zero(C):
    def f(x, log):
        n = x.sum().item()
        k = x[1].item()
        try:
            q, r = divmod(n, k)
        except ZeroDivisionError as e:
            log.append(str(e))
            q, r = 0, 0
        return x + q + r
    return run(C, f, [[3.0, 4.0], [5.0, 0.0], [1.5, 0.5]])


@probe
def div_by_const_zero(C):
    def f(x, log):
        n = x.sum().item()
        try:
            r = n / 0
        except ZeroDivisionError as e:
            log.append(str(e))
            r = 0.0
        return x + r
    return run(C, f, [[3.0], [0.0]])


@probe
def const_over_item_mod(C):
    def f(x, log):
        n = int(x.sum().item())
        try:
            r = 7 % n
        except ZeroDivisionError as e:
            log.append(str(e))
            r = -1
        log.append(r)
        return x * r
    return run(C, f, [[1.0, 2.0], [0.0, 0.0], [3.0, 4.0]])


# ---- pow ------------------------------------------------------------------------------------

@probe
def pow_neg_one(C):
    def f(x, log):
        n = x.sum().item()
        try:
            r = n ** -1
        except ZeroDivisionError as e:
            log.append(str(e))
            r = 0.0
        log.append(r)
        return x * r
    return run(C, f, [[2.0], [0.0], [4.0]])


@probe
def pow_int_neg(C):
    def f(x, log):
        n = x.sum().item()
        r = n ** -1
        log.append((type(r).__name__, r))
        return x * r
    return run(C, f, [[2], [4], [0]], torch.int64)


@probe
def pow_negative_base_fraction(C):
    def f(x, log):
        n = x.sum().item()
        r = n ** 0.5
        log.append((type(r).__name__, str(r)))
        return x
    return run(C, f, [[4.0], [-4.0], [9.0]])


@probe
def pow_overflow(C):
    def f(x, log):
        n = x.sum().item()
        try:
            r = 10.0 ** n
        except OverflowError as e:
            log.append(("ovf", str(e)))
            r = 0.0
        log.append(r)
        return x
    return run(C, f, [[2.0], [400.0], [3.0]])


# ---- int / round ----------------------------------------------------------------------------

@probe
def int_of_float(C):
    def f(x, log):
        v = x.sum().item()
        try:
            k = int(v)
        except (ValueError, OverflowError) as e:
            log.append((type(e).__name__, str(e)))
            k = -1
        log.append(k)
        return x * k
    return run(C, f, [[1.5, 2.0], [float("inf")], [float("nan")], [3.0, 4.25]])


@probe
def round_2(C):
    def f(x, log):
        v = x.sum().item()
        r = round(v, 2)
        log.append(r)
        return x + r
    return run(C, f, [[1.23456], [2.71828], [float("nan")]], torch.float64)


@probe
def round_one_arg_inf(C):
    def f(x, log):
        v = x.sum().item()
        try:
            r = round(v)
        except (ValueError, OverflowError) as e:
            log.append((type(e).__name__, str(e)))
            r = 0
        log.append((type(r).__name__, r))
        return x * r
    return run(C, f, [[1.5], [float("inf")], [2.5], [float("nan")]])


@probe
def int_of_int_item(C):
    def f(x, log):
        v = x.sum().item()
        k = int(v) + round(v)
        log.append(k)
        return x * k
    return run(C, f, [[1, 2], [3, 4], [5, 6]], torch.int64)


@probe
def int_of_bool(C):
    def f(x, log):
        b = (x > 0).all().item()
        k = int(b) + round(b)
        log.append((type(k).__name__, k))
        return x * k
    return run(C, f, [[1.0], [-1.0], [2.0]])


@probe
def bool_item_div(C):
    def f(x, log):
        b = (x > 0).all().item()
        try:
            r = 1 / b
        except ZeroDivisionError as e:
            log.append(str(e))
            r = 0.0
        log.append(r)
        return x * r
    return run(C, f, [[1.0], [-1.0], [2.0]])


# ---- math -----------------------------------------------------------------------------------

@probe
def math_sqrt_domain(C):
    def f(x, log):
        v = x.sum().item()
        try:
            r = math.sqrt(v)
        except ValueError as e:
            log.append(str(e))
            r = 0.0
        log.append(r)
        return x * r
    return run(C, f, [[4.0], [-1.0], [9.0]])


@probe
def math_log_zero(C):
    def f(x, log):
        v = x.sum().item()
        try:
            r = math.log(v)
        except ValueError as e:
            log.append(str(e))
            r = float("nan")
        log.append(r)
        return x + (0.0 if r != r else r)
    return run(C, f, [[1.0], [0.0], [math.e]])


@probe
def math_exp_overflow(C):
    def f(x, log):
        v = x.sum().item()
        try:
            r = math.exp(v)
        except OverflowError as e:
            log.append(str(e))
            r = 0.0
        log.append(r)
        return x
    return run(C, f, [[1.0], [1000.0], [2.0]], torch.float64)


@probe
def math_floor_inf(C):
    def f(x, log):
        v = x.sum().item()
        try:
            r = math.floor(v)
        except (OverflowError, ValueError) as e:
            log.append((type(e).__name__, str(e)))
            r = 0
        log.append(r)
        return x * r
    return run(C, f, [[1.5], [float("inf")], [float("nan")], [-2.5]])


@probe
def math_isnan_isfinite(C):
    def f(x, log):
        v = x.sum().item()
        log.append((math.isnan(v), math.isfinite(v)))
        return x
    return run(C, f, [[1.0], [float("nan")], [float("inf")]])


# ---- uses of the result ---------------------------------------------------------------------

@probe
def result_in_if(C):
    def f(x, log):
        r = 1 / x.sum().item()
        if r > 0.5:
            log.append("big")
            return x * 2
        log.append("small")
        return x * 3
    return run(C, f, [[1.0], [4.0], [0.5], [10.0]])


@probe
def result_in_fstring(C):
    def f(x, log):
        r = x.sum().item() / x[0].item()
        print(f"ratio {r:.3f} {r!r}")
        log.append(f"{r}")
        return x + r
    return run(C, f, [[1.0, 2.0], [3.0, 1.0], [0.0, 1.0]])


@probe
def result_returned(C):
    def f(x, log):
        n = x.sum().item()
        return n // 2, n % 2, 1 / n, x * 2
    return run(C, f, [[3], [4], [0]], torch.int64)


@probe
def result_in_tensor_op(C):
    def f(x, log):
        n = x.sum().item()
        s = math.sqrt(abs(n))
        y = torch.full((2,), s) * x[0]
        return y + torch.tensor(int(s))
    return run(C, f, [[4.0, 5.0], [1.0, 8.0], [-3.0, -6.0]])


@probe
def loop_varying(C):
    def f(x, log):
        acc = x.clone()
        for i in range(10):
            v = x[i].item()
            try:
                acc = acc + 1 / v
                log.append(round(v, 1))
            except ZeroDivisionError:
                log.append("zero")
        return acc
    vals = [[float((i * 7 + j) % 5) for i in range(10)] for j in range(3)]
    return run(C, f, vals)


def _helper(n, k):
    return n // k, math.sqrt(n) if n >= 0 else -1.0


@probe
def inlined_helper(C):
    def f(x, log):
        n = x.sum().item()
        k = x[0].item()
        try:
            a, b = _helper(n, k)
        except ZeroDivisionError as e:
            log.append(("zde", str(e)))
            a, b = 0, 0.0
        log.append((a, b))
        return x * a + b
    return run(C, f, [[2.0, 7.0], [0.0, 5.0], [-1.0, -3.0], [4.0, 4.0]])


def _raiser(v):
    return 1 / v


@probe
def helper_raises_uncaught(C):
    def f(x, log):
        log.append(x.sum())
        r = _raiser(x.sum().item())
        log.append(r)
        return x * r
    return run(C, f, [[2.0], [0.0], [4.0]])


@probe
def under_no_grad(C):
    def f(x, log):
        with torch.no_grad():
            n = x.sum().item()
            r = 1 / n
            y = x * r
        log.append(torch.is_grad_enabled())
        return y, r
    cf = C(f)
    out = []
    for v in ([1.0, 2.0], [0.0, 0.0], [3.0, 1.0]):
        x = torch.tensor(v, requires_grad=True)
        log = []
        out.append((outcome(cf, x, log), log, torch.is_grad_enabled()))
    return out


@probe
def try_finally_handler_which(C):
    def f(x, log):
        n = x.sum().item()
        try:
            try:
                r = int(n) // int(x[0].item())
            finally:
                log.append("finally")
        except ZeroDivisionError:
            log.append("zde")
            r = 0
        except ValueError:
            log.append("ve")
            r = 1
        return x * r
    return run(C, f, [[1.0, 2.0], [0.0, 3.0], [float("nan"), 1.0]])


@probe
def nan_item_compare(C):
    def f(x, log):
        v = x.sum().item()
        w = v * 2 - 1
        log.append((w == w, w < 0, max(w, 0.0), min(w, 1.0)))
        return x
    return run(C, f, [[1.0], [float("nan")], [float("-inf")]])


@probe
def augmented_div(C):
    def f(x, log):
        n = x.sum().item()
        m = 100
        m //= n
        m /= n
        m %= 7
        log.append(m)
        return x + m
    return run(C, f, [[3], [4], [0]], torch.int64)


@probe
def shift_ops(C):
    def f(x, log):
        n = x.sum().item()
        try:
            r = 1 << n
        except ValueError as e:
            log.append(str(e))
            r = 0
        log.append(r)
        return x * r
    return run(C, f, [[3], [-1], [4]], torch.int64)


@probe
def float_of_item_then_divide_by_float_const(C):
    def f(x, log):
        v = float(x.sum().item())
        r = v / 2.0 + v // 3.0 + v % 1.5
        log.append(r)
        return x * r
    return run(C, f, [[3.0], [7.5], [float("nan")]])


@probe
def complex_item(C):
    def f(x, log):
        v = x.sum().item()
        try:
            r = 1 / v
        except ZeroDivisionError as e:
            log.append(str(e))
            r = 0j
        log.append(r)
        return x * abs(r)
    return run(C, f, [[1 + 1j], [0j], [2j]], torch.complex64)


@probe
def exception_not_caught_message(C):
    def f(x, log):
        log.append(1)
        r = math.log(x.sum().item())
        log.append(2)
        return x * r
    return run(C, f, [[1.0], [-1.0], [2.0]])


@probe
def walrus_in_comprehension(C):
    def f(x, log):
        vs = [1 / x[i].item() for i in range(3)]
        log.append(vs)
        return x * sum(vs)
    return run(C, f, [[1.0, 2.0, 4.0], [2.0, 4.0, 8.0], [1.0, 0.0, 1.0]])


@probe
def warning_in_sqrt_path(C):
    def f(x, log):
        n = x.sum().item()
        r = 1 / n
        warnings.warn(f"r is {r}", UserWarning)
        return x * r
    return run(C, f, [[1.0], [2.0], [1.0], [2.0]])


# ---- operations _NEVER_RAISE (or a division by a nonzero constant) treats as never raising ---

@probe
def complex_float_conversion(C):
    """float() of a complex item() is in _NEVER_RAISE: eager raises TypeError, caught here."""
    def f(x, log):
        c = x.sum().item()
        try:
            float(c)
            log.append("noerr")
        except TypeError as e:
            log.append(("TE", str(e)))
        return x.real * 2
    return run(C, f, [[1 + 1j], [2j]], torch.complex64)


@probe
def complex_compare(C):
    def f(x, log):
        c = x.sum().item()
        try:
            c < 1
            log.append("noerr")
        except TypeError as e:
            log.append(("TE", str(e)))
        return x.real * 2
    return run(C, f, [[1 + 1j], [2j]], torch.complex64)


@probe
def complex_floordiv_const(C):
    def f(x, log):
        c = x.sum().item()
        try:
            c // 2
            log.append("noerr")
        except TypeError as e:
            log.append(("TE", str(e)))
        return x.real * 2
    return run(C, f, [[1 + 1j], [2j]], torch.complex64)


@probe
def complex_float_uncaught(C):
    def f(x, log):
        log.append(1)
        float(x.sum().item())
        log.append(2)
        return x.real * 2
    return run(C, f, [[1 + 1j], [2j]], torch.complex64)


@probe
def huge_int_div_const(C):
    """int(v) of a float item() runs at a stop (an int up to 2**1024); its square divided by a
    nonzero constant: 'integer division result too large for a float'."""
    def f(x, log):
        k = int(x.sum().item())
        kk = k * k
        try:
            kk / 2
            log.append("noerr")
        except OverflowError as e:
            log.append(("OE", str(e)))
        return x * 2
    return run(C, f, [[1e300], [3.0]], torch.float64)


@probe
def huge_int_float(C):
    def f(x, log):
        k = int(x.sum().item())
        try:
            float(k * k)
            log.append("noerr")
        except OverflowError as e:
            log.append(("OE", str(e)))
        return x * 2
    return run(C, f, [[1e300], [2.0]], torch.float64)


@probe
def int_item_product_plus_float(C):
    """int64 item() only (no stop): k**17 by multiplication, + 0.5 overflows converting to float."""
    def f(x, log):
        k = x.sum().item()
        p = k
        for _ in range(16):
            p = p * k
        try:
            p + 0.5
            log.append("noerr")
        except OverflowError as e:
            log.append(("OE", str(e)))
        return x * 2
    return run(C, f, [[2 ** 62], [3]], torch.int64)


NAMES = sorted(P)


@pytest.mark.parametrize("name", NAMES)
def test_probe(name):
    # a stopped result used in a tensor op is specialized, then made dynamic on the next value
    # (as an item() used in a tensor op): recompiles are checked by test_no_recompile_per_value
    check(P[name], recompiles_ok=True)


def _warn_probe(C):
    def f(x, log):
        n = x.sum().item()
        r = 1 / n
        warnings.warn("once-ish", UserWarning)
        k = int(r * 10)
        warnings.warn("second", RuntimeWarning)
        return x * k
    out = run(C, f, [[1.0], [2.0], [1.0]])
    g = C(f)                       # a second compile of the same function
    out += [outcome(g, T([4.0]), [])]
    return out


@pytest.mark.parametrize("flt", ["default", "once", "module"])
def test_warning_filters(flt):
    check(_warn_probe, warn_filter=flt, recompiles_ok=True)


# ---- recompiles: a value used as a number only (lists, branches, f-strings) ---------------

def _r_list(x, log):
    log.append(1 / x[0].item())
    return x * 2


def _r_int(x, log):
    log.append(int(x[0].item() * 10))
    return x * 2


def _r_sqrt(x, log):
    r = math.sqrt(x[0].item())
    log.append(r + 1)
    return x * 2, r


def _r_fstring(x, log):
    log.append(f"{x[0].item() // x[1].item()}")
    return x * 2


def _r_base_branch(x, log):         # baseline: no stop, a branch on an item() expression
    r = x[0].item() * 0.5
    if r > 1.2:
        log.append(r)
    return x * 2


def _r_branch_div(x, log):          # the same branch on a stopped division
    r = 1 / x[0].item()
    if r > 0.3:
        log.append(r)
    return x * 2


def _r_branch_round(x, log):
    r = round(x[0].item(), 2)
    if r > 3:
        log.append(r)
    return x * 2


def _r_branch_floordiv(x, log):
    r = x[0].item() // x[1].item()
    if r % 2 == 0:
        log.append(r)
    return x * 2


@pytest.mark.parametrize("fn", [_r_list, _r_int, _r_sqrt, _r_fstring, _r_base_branch,
                                _r_branch_div, _r_branch_round, _r_branch_floordiv],
                         ids=lambda f: f.__name__)
def test_no_recompile_per_value(fn):
    bytegraph.reset()
    cf = bytegraph.compile(fn, backend="eager")
    for v in [1.0, 2.0, 3.0, 4.0, 5.0, 0.5, 0.25, 7.0]:
        for _ in range(2):
            log_c, log_e = [], []
            rc = cf(torch.tensor([v, 1.0]), log_c)
            re_ = fn(torch.tensor([v, 1.0]), log_e)
            assert log_c == log_e
            torch.testing.assert_close(rc, re_)
    rec = bytegraph.counters["recompiles"].get("total", 0)
    assert rec == 0, f"{rec} recompile(s) over 8 values: {dict(bytegraph.counters['recompiles'])}"
