"""Graph-break gaps closed after the first build (issue 7): resume functions of bodies with
more than 255 locals, stops at attribute loads and stores, breaks inside a callee whose call
sits in the caller's try/finally or try/except. Differential like tests/test_graph_breaks.py:
outputs, stdout, Python state and graph counts against eager; the second call a cache hit."""
import torch

import bytegraph
from bytegraph.bytecode.decode import decode

from test_graph_breaks import Counting, assert_same, run_both as _run_both


def run_both(fn, make_args, graphs=None, calls=2):
    """test_graph_breaks.run_both, and no part of the run fell back to eager."""
    out = _run_both(fn, make_args, graphs, calls)
    assert not bytegraph.counters["fallback"], dict(bytegraph.counters["fallback"])
    return out


@bytegraph.disable
def ext(t, log):
    log.append(float(t.sum()))
    return t * 10


def _many_locals(n, body_mid, body_end, free=False):
    """A function with `n` float locals, tensor work before and after `body_mid`."""
    lines = ["def f(x, log):"]
    lines += [f"    v{i} = {i}.5" for i in range(n)]
    lines += ["    y = x.sin() + v0", *("    " + s for s in body_mid.splitlines())]
    lines += [f"    y = y + v{n - 1} + v{n // 2}", *("    " + s for s in body_end.splitlines())]
    src = "\n".join(lines)
    if free:            # a closure over an outer local: f has a free variable besides its locals
        src = "def outer(k):\n" + "\n".join("    " + s for s in src.splitlines()) + "\n    return f\n"
        src = src.replace("+ v0", "+ v0 + k")
    ns = {"ext": ext, "torch": torch}
    exec(compile(src, "<many_locals>", "exec"), ns)
    return ns["outer"](0.25) if free else ns["f"]


def test_resume_in_body_with_300_locals():
    f = _many_locals(300, "y = ext(y, log)", "return y.cos()")
    assert len(f.__code__.co_varnames) > 300
    assert any(i.opname == "EXTENDED_ARG" for i in decode(f.__code__))
    run_both(f, lambda: (torch.ones(3), []), graphs=2)


def test_resume_in_body_with_300_locals_and_a_free_variable():
    f = _many_locals(300, "y = ext(y, log)", "return y.cos() * k", free=True)
    assert f.__code__.co_freevars == ("k",)
    run_both(f, lambda: (torch.ones(3), []), graphs=2)


def test_resume_in_body_with_300_locals_tensor_branch():
    f = _many_locals(300, "if y.sum() > 0:\n    y = y * v299\nelse:\n    y = y - v1", "return y")
    run_both(f, lambda: (torch.ones(3), []), graphs=2)
    run_both(f, lambda: (-torch.ones(3) * 5, []), graphs=2)


def test_resume_in_loop_with_300_locals():
    f = _many_locals(300, "for i in range(3):\n    y = ext(y, log) + v150\n    acc = y * i", "return y, acc")
    run_both(f, lambda: (torch.ones(3), []))


def test_resume_in_inlined_callee_with_300_locals_and_free_variables():
    f = _many_locals(300, "y = ext(y, log)", "return y.cos() * k", free=True)
    g = _many_locals(20, "y = f(y, log)", "return y")

    def root(x, log):
        return g(x.exp(), log) + 1
    g.__globals__["f"] = f
    run_both(root, lambda: (torch.ones(3), []), graphs=2)


def test_nonlocal_written_after_a_stop():
    def outer():
        n = 0
        scale = 2.0

        def f(x, log):
            nonlocal n
            y = x * scale
            y = ext(y, log)
            n += 1
            return y + n
        return f, lambda: n
    f, get = outer()
    fe, gete = outer()
    bytegraph.reset()
    c = bytegraph.compile(f, backend=Counting())
    for _ in range(2):
        assert_same(fe(torch.ones(2), []), c(torch.ones(2), []))
        assert gete() == get()
    assert not bytegraph.counters["fallback"]


class Base(torch.nn.Module):
    def forward(self, x):
        return x * 2


def _many_locals_module(n):
    lines = ["class M(Base):", "    def forward(self, x, log):"]
    lines += [f"        v{i} = {i}.5" for i in range(n)]
    lines += ["        y = super().forward(x) + v0", "        y = ext(y, log)",
              f"        y = super().forward(y) + v{n - 1}", "        return y, __class__.__name__"]
    ns = {"ext": ext, "Base": Base}
    exec(compile("\n".join(lines), "<many_locals_module>", "exec"), ns)
    return ns["M"]


def test_zero_arg_super_and_class_cell_after_a_stop_with_300_locals():
    m = _many_locals_module(300)()
    run_both(m, lambda: (torch.ones(3), []), graphs=2)
    m = _many_locals_module(3)()
    run_both(m, lambda: (torch.ones(3), []), graphs=2)


# ---------------------------------------------------------------------------
# stops at attribute loads and stores (and the other one-instruction stops)

def test_requires_grad_set_on_a_tensor_made_in_the_graph():
    def f(x):
        y = x.sin()
        w = torch.ones(3) * 2
        w.requires_grad = True           # stops the trace; runs in Python
        return (y * w).cos(), w
    _, be = run_both(f, lambda: (torch.ones(3),), graphs=2)


def test_requires_grad_set_in_an_inlined_method_and_backward():
    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def prep(self, h):
            h = h * 1.0
            h.requires_grad = True
            return h

        def forward(self, x):
            h = self.prep(x.detach() + 1)
            return self.lin(h).sum(), h

    torch.manual_seed(0)
    m = Enc()
    bytegraph.reset()
    c = bytegraph.compile(m, backend=Counting())
    for _ in range(2):
        le, he = m(torch.ones(2, 3))
        lc, hc = c(torch.ones(2, 3))
        assert_same(le, lc)
        assert hc.requires_grad and hc.is_leaf == he.is_leaf
        le.backward()
        lc.backward()
        assert_same(he.grad, hc.grad)
    assert not bytegraph.counters["fallback"]


def test_requires_grad_on_a_non_leaf_raises_into_the_users_handler():
    def f(x):
        y = x.sin()
        try:
            y.requires_grad = False      # eager: RuntimeError (not a leaf)
            r = "set"
        except RuntimeError:
            r = "refused"
        return y.cos(), r
    run_both(f, lambda: (torch.ones(3, requires_grad=True),))


def test_numpy_ufunc_attribute_and_call():
    import numpy as np

    def f(x, d):
        y = x.sin()
        red = np.add.reduce              # an attribute of a ufunc: stops at LOAD_ATTR
        y = y * float(red([d, d]))
        y *= np.sqrt(d)                  # a ufunc call, then tensor *= numpy float64
        return y.cos()
    run_both(f, lambda: (torch.ones(3), 4.0))


def test_attribute_stop_inside_a_loop():
    import numpy as np

    def f(x):
        for i in range(3):
            x = x.sin() + float(np.add.reduce([i, 1]))
        return x
    run_both(f, lambda: (torch.ones(3),))


# ---------------------------------------------------------------------------
# a break inside a callee whose call sits in the caller's try/finally, try/except or with

@bytegraph.disable
def maybe_raise(t, log):
    log.append("ext")
    if t.sum() > 100:
        raise ValueError("big")
    return t + 1


def _inner(x, log):
    y = maybe_raise(x.sin() * 60, log)       # stops the trace inside the callee
    if y.sum() > 120:                        # the rest of the callee can raise too (a 2nd break)
        raise KeyError("after")
    return y.cos()


def test_capture_outputs_pattern_finally_runs_once():
    def f(x, log):
        log.append("set")
        try:
            out = _inner(x * 2, log)
        finally:
            log.append("restore")
        return out * 3
    run_both(f, lambda: (torch.full((3,), 0.01), []), graphs=3)


def test_exception_from_the_python_call_reaches_the_callers_handler():
    def f(x, log):
        try:
            out = _inner(x, log)
        except ValueError as e:
            log.append(str(e))
            out = x - 1
        finally:
            log.append("finally")
        return out * 3
    run_both(f, lambda: (torch.ones(3), []))                        # maybe_raise raises
    run_both(f, lambda: (torch.full((3,), 0.01), []), graphs=3)     # nothing raises


def test_exception_from_the_resumed_callee_reaches_the_callers_handler():
    def f(x, log):
        try:
            out = _inner(x, log)
        except KeyError as e:
            log.append(repr(e))
            out = x - 1
        finally:
            log.append("finally")
        return out * 3
    run_both(f, lambda: (torch.full((3,), 0.35), []))     # the resumed callee raises KeyError


def test_uncaught_exception_runs_finally_once_and_propagates():
    def f(x, log):
        try:
            return _inner(x, log) * 3
        finally:
            log.append("finally")
    log_e, log_c = [], []
    bytegraph.reset()
    c = bytegraph.compile(f, backend=Counting())
    for _ in range(2):
        for fn, log in ((f, log_e), (c, log_c)):
            try:
                fn(torch.ones(3), log)
            except ValueError:
                log.append("raised")
    assert log_e == log_c == ["ext", "finally", "raised"] * 2
    # (the handler's resume function re-raises, so it runs as Python: counted as a fallback)


def test_user_context_manager_in_caller_sees_and_suppresses():
    class Ctx:
        def __init__(self, log):
            self.log = log

        def __enter__(self):
            self.log.append("enter")

        def __exit__(self, typ, val, tb):
            self.log.append(("exit", typ.__name__ if typ is not None else None))
            return typ is ValueError

    def f(x, log):
        out = x
        with Ctx(log):
            out = _inner(x, log)
        return out * 3
    run_both(f, lambda: (torch.ones(3), []))
    run_both(f, lambda: (torch.full((3,), 0.01), []), graphs=3)


def test_no_grad_in_caller_around_a_breaking_callee():
    def f(x, log):
        with torch.no_grad():
            y = _inner(x * 2, log)
        return y * x
    run_both(f, lambda: (torch.full((3,), 0.01, requires_grad=True), []), graphs=3)


def test_try_inside_the_inlined_frame_around_the_break():
    def helper(x, log):
        try:
            y = maybe_raise(x * 60, log)
        except ValueError:
            y = x - 5
        return y.relu()

    def f(x, log):
        return helper(x.sin(), log) + 1
    run_both(f, lambda: (torch.ones(3), []), graphs=2)
    run_both(f, lambda: (torch.full((3,), 0.01), []), graphs=2)


def test_two_levels_of_handlers():
    def mid(x, log):
        try:
            return _inner(x, log) + 1
        except KeyError:
            log.append("mid caught")
            raise ValueError("from mid")

    def f(x, log):
        try:
            out = mid(x.exp() - 1, log)
        except ValueError as e:
            log.append(f"root caught {e}")
            out = x
        return out * 2
    run_both(f, lambda: (torch.full((3,), 0.01), []), graphs=3)
    run_both(f, lambda: (torch.full((3,), 0.3), []))         # KeyError in _inner -> mid -> root
    run_both(f, lambda: (torch.ones(3), []))                 # ValueError from maybe_raise -> root


# ---------------------------------------------------------------------------
# stops inside autocast regions

def _autocast_state():
    return torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")


def test_stop_inside_autocast_region():
    def f(x, log):
        y = x.sin()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = torch.mm(y, y)
            z = ext(z, log)                      # runs in Python inside a real autocast
            log.append(_autocast_state())        # (a disabled call: eager's state)
            z = torch.mm(z, z)
        return z.float().cos(), z.dtype
    run_both(f, lambda: (torch.ones(3, 3), []), graphs=2)
    assert _autocast_state() == (False, torch.bfloat16)


@bytegraph.disable
def autocast_probe(t, log):
    log.append(_autocast_state())
    return t


def test_stop_inside_nested_autocast_regions_in_an_inlined_frame():
    def inner(z, log):
        with torch.autocast("cpu", enabled=False):
            w = torch.mm(z.float(), z.float())
            w = autocast_probe(w, log)
            if w.sum() > 0:                      # a tensor branch inside both regions
                w = torch.mm(w, w)
        return torch.mm(w, w)                    # back in the outer region: bfloat16

    def f(x, log):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = torch.mm(x, x)
            out = inner(y, log)
            log.append(_autocast_state())
        return out.float(), out.dtype, y.dtype
    run_both(f, lambda: (torch.ones(3, 3), []), graphs=3)


def test_exception_inside_autocast_region_leaves_it():
    def f(x, log):
        y = x.sin()
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                z = maybe_raise(torch.mm(y, y), log)
                z = torch.mm(z, z)
        except ValueError:
            log.append(("caught", _autocast_state()))
            z = y
        return z.float().cos()
    run_both(f, lambda: (torch.ones(3, 3) * 50, []))
    run_both(f, lambda: (torch.full((3, 3), 0.01), []), graphs=2)
    assert _autocast_state() == (False, torch.bfloat16)


# ---------------------------------------------------------------------------
# resume functions of resume functions

def test_resume_of_a_resume_function_drops_the_earlier_slots():
    from bytegraph.bytecode.resume import resume_code

    def f(a, b):
        c = a + b
        return c * 2
    ret = [i for i in decode(f.__code__) if i.opname == "RETURN_VALUE"][0].offset
    r1, p1, shift1 = resume_code(f.__code__, ret, [None], (), "r1")
    assert p1 == ["a", "b", "c", "__stack0_0"]
    r2, p2, _ = resume_code(r1, ret + shift1, [None], (), "r2")
    assert p2 == ["a", "b", "c", "__stack0_0"]          # not a, b, c, __stack0_0, __stack1_0
    import types
    g = types.FunctionType(r2, f.__globals__)
    assert g(1, 2, 3, 7) == 7


def test_many_breaks_in_nested_frames_resume_level_after_level():
    def leaf(x, log):
        for i in range(8):
            x = ext(x, log) + i                  # a stop per iteration, two frames down
        return x

    def mid(x, log):
        return leaf(x * 2, log) - 1

    def f(x, log):
        return mid(x.sin(), log).cos()
    run_both(f, lambda: (torch.ones(3), []))


def test_numpy_scalar_as_a_graph_op_argument_runs_the_op_in_python():
    import numpy as np

    def f(x, j):
        r = np.log(j)                            # a numpy float64 crosses the break
        y = torch.empty(2, 3).uniform_(-r, r) * 0 + x.sin()
        return y * 2, torch.tensor(r).dtype, torch.full((2,), r).dtype
    run_both(f, lambda: (torch.ones(2, 3), 1.5))


def test_bound_tensor_method_on_the_callers_stack():
    def inner(t, log):
        return ext(t.cos(), log) + 1             # stops inside inner

    def f(x, log):
        return x.sin().mul(inner(x, log)).relu()  # `x.sin().mul` waits on f's stack
    run_both(f, lambda: (torch.ones(3), []), graphs=2)


def test_backward_inside_is_not_stopped_at_its_attribute_load():
    import warnings

    def f(x, w):
        loss = ((x @ w) ** 2).mean()
        loss.backward()                      # Tensor.backward: refused at LOAD_METHOD
        return loss.detach(), w.grad.clone()
    bytegraph.reset()
    c = bytegraph.compile(f, backend=Counting())
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    w0 = torch.randn(3, 2, generator=torch.Generator().manual_seed(1))
    we, wc = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # no trace-mismatch warning
        for _ in range(2):
            assert_same(f(x, we), c(x, wc))
