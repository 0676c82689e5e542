"""Red team 15, family 5: log calls with tensor arguments (policy/stdlib.py TensorLogEmission:
emitted after the graph unless an op later writes into a logged tensor) and warnings at stops and
in the trace (runtime/resume.py _at_site / site_function). The harness compares each record's
message formatted at emit time and again at the end, its pathname/lineno/funcName, and each
warning's category/message/filename/lineno."""
import logging
import warnings

import pytest
import torch

import bytegraph
from test_redteam15_harness import calls, check, dis, outcome, x4

P = {}
W = {}      # probes run under their own warnings filter: name -> filter


def probe(f):
    P[f.__name__] = f
    return f


LOG = logging.getLogger("rt15.family5")


def mk(i):
    return (x4(), [])


@probe
def tensor_arg_then_data_write(C):
    def f(x, log):
        y = x * 2
        LOG.info("y=%s", y)
        y.data.mul_(10)           # .data: its own version counter
        return y + 1
    return calls(C, f, mk)


@probe
def tensor_arg_then_out_op(C):
    def f(x, log):
        y = x * 2
        LOG.warning("y=%r", y)
        torch.mul(x, 3, out=y)
        return y
    return calls(C, f, mk)


@probe
def tensor_arg_then_view_write(C):
    def f(x, log):
        y = x * 2
        v = y.view(2, 2)
        LOG.info("v=%s", v)
        y[0] = 99.0
        return y
    return calls(C, f, mk)


@probe
def tensor_arg_then_param_data_write(C):
    def f(x, log):
        p = torch.nn.Parameter(x * 1)
        LOG.info("p=%s", p)
        with torch.no_grad():
            p.data.mul_(0.5)
        return p.detach() + 0
    return calls(C, f, mk)


@probe
def tensor_arg_then_detach_write(C):
    def f(x, log):
        y = x * 2
        LOG.info("y=%s", y)
        y.detach().add_(5)
        return y
    return calls(C, f, mk)


@probe
def tensor_as_message(C):
    def f(x, log):
        y = x.sum()
        LOG.info(y)
        LOG.debug(y * 2)
        return y
    return calls(C, f, mk)


@probe
def grad_tensor_logged(C):
    def f(x, log):
        w = x.clone().requires_grad_(True)
        y = w * 2
        LOG.info("y=%s", y)
        z = (y ** 2).sum()
        return z
    return calls(C, f, mk)


@probe
def logged_input_mutated_later_by_caller(C):
    """A handler that keeps records and formats later: the record holds the tensor object."""
    def f(x, log):
        y = x * 2
        LOG.info("x=%s y=%s", x, y)
        return y
    cf = C(f)
    out = []
    for _ in range(2):
        x = x4()
        r = outcome(cf, x, [])
        x.add_(100)                  # the harness formats the record again afterwards
        r[1].add_(1000)
        out.append(r)
    return out


@probe
def logged_view_of_input_then_break_then_write(C):
    def f(x, log):
        v = x[:2]
        LOG.info("v=%s", v)
        y = dis(x)
        x.add_(1)
        return y
    return calls(C, f, mk)


@probe
def order_with_prints_and_list(C):
    shared = []

    class Snap(logging.Handler):
        def emit(self, record):
            print("handler sees", len(shared), record.getMessage())

    h = Snap()
    lg = logging.getLogger("rt15.family5.order")
    lg.addHandler(h)
    lg.setLevel(logging.INFO)

    def f(x, log):
        y = x * 2
        shared.append(1)
        print("before")
        lg.info("y=%s", y)
        shared.append(2)
        print("after")
        return y + 1
    def fresh(i):
        shared.clear()
        return mk(i)
    try:
        res = calls(C, f, fresh)
    finally:
        lg.removeHandler(h)
    return res, list(shared)


@probe
def level_disabled_then_enabled(C):
    lg = logging.getLogger("rt15.family5.levels")

    def f(x, log):
        y = x * 2
        lg.debug("debug y=%s", y)
        lg.info("info y=%s", y)
        return y
    cf = C(f)
    out = []
    for level in (logging.INFO, logging.DEBUG, logging.WARNING, logging.DEBUG):
        lg.setLevel(level)
        out.append(outcome(cf, x4(), []))
    lg.setLevel(logging.NOTSET)
    return out


@probe
def root_logging_info(C):
    recs = []

    class K(logging.Handler):
        def emit(self, r):
            if not r.name.startswith("bytegraph"):      # (bytegraph's own INFO records propagate to root)
                recs.append((r.getMessage(), r.pathname, r.lineno, r.funcName))

    root = logging.getLogger()
    h = K()
    old = root.level
    root.addHandler(h)
    root.setLevel(logging.INFO)

    def f(x, log):
        y = x * 2
        logging.info("root y=%s", y)
        return y
    try:
        res = calls(C, f, mk)
    finally:
        root.removeHandler(h)
        root.setLevel(old)
    return res, recs


@probe
def extra_with_tensor(C):
    def f(x, log):
        y = x * 2
        LOG.info("extra", extra={"t": y, "tag": "e"})
        return y
    return calls(C, f, mk)


@probe
def exc_info_in_handler(C):
    recs = []

    class K(logging.Handler):
        def emit(self, r):
            recs.append((r.getMessage(), r.exc_info[0].__name__ if r.exc_info else None, r.lineno))

    h = K()
    lg = logging.getLogger("rt15.family5.exc")
    lg.addHandler(h)
    lg.setLevel(logging.INFO)

    def f(x, log):
        y = x * 2
        try:
            {}["k"]
        except KeyError:
            lg.exception("failed y=%s", y)
        return y
    try:
        res = calls(C, f, mk)
    finally:
        lg.removeHandler(h)
    return res, recs


# ----------------------------------------------------------------------- warnings


def lib_warn(t, level):
    warnings.warn(f"lib {t.shape[0]}", UserWarning, stacklevel=level)
    return t


def mid(t, level):
    return lib_warn(t * 1, level) + 1


@probe
def warn_stacklevels_traced(C):
    def f(x, log):
        y = x * 2
        a = lib_warn(y, 1)
        b = lib_warn(y, 2)
        c = mid(y, 3)
        d = mid(y, 4)          # the caller of the compiled function
        return a + b + c + d
    return calls(C, f, mk)


@probe
def warn_stacklevel_beyond_function(C):
    def f(x, log):
        y = x * 2
        warnings.warn("from f, stacklevel 2", stacklevel=2)
        return y
    return calls(C, f, mk)


@probe
def warn_computed_message_at_stop(C):
    def f(x, log):
        y = x * 2
        s = y.sum().item()
        warnings.warn(f"sum {s:.4f}", RuntimeWarning)
        return y + s
    return calls(C, f, mk)


@bytegraph.disable
def dis_lib_warn(t):
    return lib_warn(t, 2)


@probe
def warn_from_disabled_library_helper(C):
    def f(x, log):
        y = x * 2
        z = dis_lib_warn(y)
        return z + 1
    return calls(C, f, mk)


def _defaults(C):
    def f(x, log):
        y = x * 2
        warnings.warn("repeated", UserWarning)
        if y.sum() > -100:
            y = y + 1
        warnings.warn("repeated after stop", UserWarning)
        return y
    return calls(C, f, mk, n=3)


for _flt in ("default", "once", "module"):
    def _p(C):
        return _defaults(C)
    _p.__name__ = f"warn_filter_{_flt}"
    P[_p.__name__] = _p
    W[_p.__name__] = _flt


@probe
def warn_filter_error_stops_side_effects(C):
    def f(x, log):
        y = x * 2
        log.append("before")
        warnings.warn("turned into an error")
        log.append("after")
        print("printed after")
        return y
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return calls(C, f, mk)


@probe
def warn_warning_instance(C):
    class MyWarn(UserWarning):
        pass

    def f(x, log):
        y = x * 2
        warnings.warn(MyWarn(f"inst {y.shape[0]}"))
        return y
    return calls(C, f, mk)


@probe
def log_and_warn_sites_at_stop_inside_helper(C):
    def helper(t):
        LOG.info("helper sees %s", t.tolist())
        warnings.warn("helper warns", stacklevel=2)
        return t

    def f(x, log):
        y = x * 2
        z = helper(y)
        return z + 1
    return calls(C, f, mk)


@pytest.mark.parametrize("name", list(P))
def test_logging(name):
    check(P[name], warn_filter=W.get(name, "always"),
          max_recompiles=3 if name == "level_disabled_then_enabled" else 0)
