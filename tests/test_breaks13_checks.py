"""Checks on tensor data kept in the graph (policy/checks.py): `assert <tensor cond>[, "msg"]` and
`if <tensor cond>: raise ValueError("msg")` record one check node instead of stopping at
`bool()` (hf/ibert train: its `assert x_max.isnan().sum() == 0` on every activation). The
check raises eager's exception, with eager's message, at the same point in the ops; where the
exception would not simply leave the function (a try or with block, a generator) the check stays
only in the entry's first graphs, whose raise reruns the function eagerly (session 14,
runtime/rerun.py), as it does after deferred Python side effects; a message that is not a
constant or an exception a builtin swallows stops the trace as before. Also: a module buffer seen to change between calls is read as data for
every instance of its class (runtime/dynamic.py UNSTABLE_STATE). Differential throughout:
outputs, exceptions and messages, the writes made before a raise, graph and trace counts.

PYTEST_DONT_REWRITE: the programs' own `assert` statements must stay Python's (pytest's rewrite
turns each into an `if` with a computed message, which is a different program)."""
import pytest
import torch

import bytegraph
from differential import REFERENCE, check, counters, frame_count, graph_count, reset

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's graph counts")


def _outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except Exception as e:
        return type(e), str(e)


def _same_outcome(fn, compiled, *args):
    want, got = _outcome(fn, *args), _outcome(compiled, *args)
    assert want[0] == got[0], (want, got)
    if want[0] == "ok":
        torch.testing.assert_close(got[1], want[1], equal_nan=True)
    else:
        assert got[1] == want[1], (want, got)


def assert_nan_free(x):
    x_min, x_max = x.min(), x.max()
    assert x_max.isnan().sum() == 0 and x_min.isnan().sum() == 0, "NaN detected"
    return (x - x_min) / (x_max - x_min)


def assert_no_message(x):
    y = x * 2
    assert y.sum() != 12345
    return y + 1


def raise_value_error(x):
    y = x.exp()
    if (y > 1e6).any():
        raise ValueError("overflow in exp")
    return y.log()


def raise_runtime_error_no_args(x):
    y = x.abs()
    if y.max() > 100:
        raise RuntimeError()
    return y


def raise_type_error_two_args(x):
    if x.sum() < -1000:
        raise TypeError("bad", "input")
    return x * 3


def assert_not(x):
    assert not (x < -50).any(), "too negative"
    return x.cos()


def check_in_loop(x):
    for i in range(3):
        x = x * 2
        assert x.abs().max() < 1e4, "diverged"
    return x


def _helper(x):
    assert x.isfinite().all(), "not finite"
    return x.sin()


def inlined_check(x):
    return _helper(x * 2) + _helper(x + 1)


GOOD = torch.tensor([0.5, -1.0, 2.0, 3.0])
BAD = [torch.tensor([0.5, float("nan"), 2.0, 3.0]), torch.tensor([20.0, -200.0, 300.0, 1e5]),
       torch.tensor([-2000.0, 1.0, 2.0, 3.0]), torch.tensor([float("inf"), 1.0, 2.0, 3.0])]


@pytest.mark.parametrize("fn", [assert_nan_free, assert_no_message, raise_value_error,
                                raise_runtime_error_no_args, raise_type_error_two_args,
                                assert_not, check_in_loop, inlined_check],
                         ids=lambda f: f.__name__)
def test_check_stays_in_the_graph(fn):
    compiled = check(fn, GOOD.clone(), graphs=1)
    traces = frame_count()
    for bad in BAD:
        _same_outcome(fn, compiled, bad.clone())
    _same_outcome(fn, compiled, GOOD.clone() * 1.5)
    assert frame_count() == traces            # one entry serves passing and failing calls
    assert not counters()["graph_break"]


def test_writes_before_the_check_are_made_and_after_it_not():
    def f(x, log):
        log.add_(1)                        # before the check: eager has made it when it raises
        assert x.min() > 0, "negative"
        log.mul_(10)                       # after: eager never gets here
        return x.sqrt()
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    for x in (torch.tensor([1.0, 4.0]), torch.tensor([-1.0, 4.0])):
        a, b = torch.zeros(2), torch.zeros(2)
        want, got = _outcome(f, x, a), _outcome(compiled, x, b)
        assert want[0] == got[0] and torch.equal(a, b), (want, got, a, b)
    # `log` is the caller's: the check after its write stops (a compiling backend would apply
    # the write at the graph's end, which a raise never reaches)
    assert counters()["graph_break"]


def test_nan_condition_is_true_as_in_eager():
    def f(x):
        assert x.sum(), "zero sum"       # nan is truthy; 0.0 is not
        return x + 1
    compiled = check(f, torch.tensor([1.0, 2.0]), graphs=1)
    for x in (torch.tensor([float("nan"), 1.0]), torch.tensor([0.0, 0.0]), torch.tensor([1.0, -1.0])):
        _same_outcome(f, compiled, x)


def test_many_elements_keep_eagers_error():
    def f(x):
        assert x > 0, "positive"           # more than one element: eager's RuntimeError
        return x
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    _same_outcome(f, compiled, torch.tensor([1.0, 2.0]))


def test_fullgraph_captures_the_check():
    compiled = bytegraph.compile(assert_nan_free, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(GOOD), assert_nan_free(GOOD))
    _same_outcome(assert_nan_free, compiled, BAD[0])


# -- where the check would not simply leave the function: the branch stops as before ----------

def in_try(x):
    try:
        assert x.min() > 0, "negative"
        y = x.sqrt()
    except AssertionError as e:
        y = x.abs() + len(str(e))
    return y * 2


def _checked(x):
    assert x.min() > 0, "negative"
    return x.sqrt()


def try_in_caller(x):
    try:
        y = _checked(x * 1)
    except AssertionError:
        y = x.abs()
    return y * 2


def in_with_no_grad(x):
    y = x * 2
    with torch.no_grad():
        assert y.min() > 0, "negative"
        y = y + 1
    return y


class _Ctx:
    def __init__(self, log):
        self.log = log

    def __enter__(self):
        self.log.append("enter")

    def __exit__(self, *exc):
        self.log.append(("exit", exc[0]))
        return False


def in_user_with(x, log):
    with _Ctx(log):
        assert x.min() > 0, "negative"
        y = x.sqrt()
    return y


def after_side_effect(x, log):
    log.append(1)                          # replayed after the graph: a raise would lose it
    assert x.min() > 0, "negative"
    return x.sqrt()


def formatted_message(x):
    assert x.min() > 0, f"negative: {x.shape}"
    return x.sqrt()


def swallowed_kind(x):
    if x.min() < 0:
        raise IndexError("negative")        # a builtin may swallow it: stops as before
    return x.sqrt()


def _gen(x):
    assert x.min() > 0, "negative"
    yield x.sqrt()


def in_generator(x):
    return sum(_gen(x))


def _differential_calls(fn, compiled, extra):
    for x in (torch.tensor([1.0, 4.0]), torch.tensor([-1.0, 4.0]), torch.tensor([2.0, 9.0])):
        e_extra, c_extra = [list(a) for a in extra], [list(a) for a in extra]
        want, got = _outcome(fn, x, *e_extra), _outcome(compiled, x, *c_extra)
        assert want[0] == got[0], (want, got)
        if want[0] == "ok":
            torch.testing.assert_close(got[1], want[1])
        else:
            assert got[1] == want[1]
        assert e_extra == c_extra          # side effects (a log, a context manager's exit)


@pytest.mark.parametrize("fn,extra", [(in_try, ()), (try_in_caller, ()),
                                      (in_user_with, ([],)), (after_side_effect, ([],)),
                                      (in_generator, ())],
                         ids=lambda v: getattr(v, "__name__", ""))
def test_kept_where_the_first_graph_reruns(fn, extra):
    # session 14 (runtime/rerun.py): the check is in the entry's first graph, so a raise makes
    # the entry run the function again eagerly, which takes the handler, runs the with-block's
    # exit, makes the side effects: the check stays in the graph (these stopped in session 13)
    reset()
    compiled = bytegraph.compile(fn, backend="eager")
    _differential_calls(fn, compiled, extra)
    assert not counters()["graph_break"] and not counters()["fallback"]
    assert counters()["stats"]["graph_reruns"] == 1


@pytest.mark.parametrize("fn,extra", [(formatted_message, ()),
                                      (swallowed_kind, ())],
                         ids=lambda v: getattr(v, "__name__", ""))
def test_refused_where_the_raise_would_not_just_leave(fn, extra):
    reset()
    compiled = bytegraph.compile(fn, backend="eager")
    _differential_calls(fn, compiled, extra)
    # a graph break there, or (a generator's frame cannot be resumed) the function runs eagerly
    assert counters()["graph_break"] or counters()["fallback"], "expected the branch to stop the trace"


def test_check_inside_no_grad_stays_and_restores_grad_mode():
    # a no_grad block the graph opened: graph_state undoes its switch when the check raises
    reset()
    compiled = bytegraph.compile(in_with_no_grad, backend="eager")
    for x in (torch.tensor([1.0, 4.0], requires_grad=True), torch.tensor([-1.0, 4.0], requires_grad=True)):
        _same_outcome(in_with_no_grad, compiled, x)
        assert torch.is_grad_enabled()
    assert not counters()["graph_break"]


def opened_before_a_break(x):
    with torch.no_grad():
        y = x * 2
        print("between")                    # a break inside the block: the check is in a later graph
        assert y.min() > 0, "negative"
    return y


def test_check_in_a_block_opened_before_a_break_stops(capsys):
    reset()
    compiled = bytegraph.compile(opened_before_a_break, backend="eager")
    for x in (torch.tensor([1.0, 4.0], requires_grad=True), torch.tensor([-1.0, 4.0], requires_grad=True)):
        _same_outcome(opened_before_a_break, compiled, x)
        assert torch.is_grad_enabled()


# -- inductor ---------------------------------------------------------------------------

def test_inductor_raises_eagers_exception():
    reset()
    compiled = bytegraph.compile(raise_value_error, backend="inductor")
    torch.testing.assert_close(compiled(GOOD), raise_value_error(GOOD))
    _same_outcome(raise_value_error, compiled, BAD[1])
    assert not counters()["graph_break"]


# -- module state that changes: read as data for every instance of the class --------------

class _Observer(torch.nn.Module):
    """An EMA of the input's range, as quantization observers (hf/ibert's QuantAct) keep."""

    def __init__(self):
        super().__init__()
        self.register_buffer("lo", torch.zeros(1))
        self.register_buffer("hi", torch.zeros(1))

    def forward(self, x):
        lo, hi = x.min(), x.max()
        assert lo.isnan().sum() == 0, "NaN detected"
        if self.lo.min() == 0 and self.hi.max() == 0:
            self.lo = self.lo + lo
            self.hi = self.hi + hi
        else:
            self.lo = self.lo * 0.9 + lo * 0.1
            self.hi = self.hi * 0.9 + hi * 0.1
        return x.clamp(self.lo.item(), self.hi.item()) if False else x * (self.hi - self.lo)


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))
        self.obs = torch.nn.ModuleList(_Observer() for _ in range(3))

    def forward(self, x):
        for lin, obs in zip(self.lin, self.obs):
            x = obs(lin(x).tanh())
        return x.sum()


def test_changing_buffers_are_data_for_every_instance():
    torch.manual_seed(0)
    eager, comp = _Net(), _Net()
    comp.load_state_dict(eager.state_dict())
    reset()
    compiled = bytegraph.compile(comp, backend="eager")
    traces = []
    for i in range(6):
        x = torch.randn(2, 4)
        torch.testing.assert_close(compiled(x), eager(x))
        for a, b in zip(eager.buffers(), comp.buffers()):
            torch.testing.assert_close(a, b)
        traces.append(frame_count())
    # after the first change is seen, no call compiles again
    assert traces[2] == traces[5], traces


def test_condition_that_is_an_input():
    def f(x, ok):
        assert ok, "not ok"                # the condition is the caller's own tensor
        return x * 2
    compiled = check(f, torch.ones(2), torch.tensor(True), graphs=1)
    _same_outcome(f, compiled, torch.ones(2), torch.tensor(False))
    _same_outcome(f, compiled, torch.ones(2), torch.tensor(1.0))


def test_shadowed_exception_name_is_not_a_check():
    def f(x):
        if x.sum() < 0:
            raise ValueError("negative")
        return x
    g = {"ValueError": KeyError, "torch": torch, "__builtins__": __builtins__}
    shadowed = type(f)(f.__code__, g, "shadowed")
    reset()
    compiled = bytegraph.compile(shadowed, backend="eager")
    for x in (torch.ones(2), -torch.ones(2)):
        _same_outcome(shadowed, compiled, x)
    assert counters()["graph_break"]


def test_requires_grad_condition_under_inductor():
    def f(x):
        assert x.sum(), "zero"
        return x * 2
    reset()
    compiled = bytegraph.compile(f, backend="inductor")
    x = torch.ones(3, requires_grad=True)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 2.0))
    _same_outcome(f, compiled, torch.zeros(3, requires_grad=True))


# -- a 0-d tensor index (policy/scalar_index.py) under a try block stops, as the checks do -----

def index_in_try(W, x):
    try:
        row = W[x.argmax() + 2]
    except IndexError as e:
        row = W[0] * 0 + len(str(e))
    return row * 2


def _pick(W, i):
    return W[i]


def index_in_callee_of_try(W, x):
    try:
        row = _pick(W, x.argmax() + 2)
    except IndexError:
        row = W[0]
    return row + 1


@pytest.mark.parametrize("fn", [index_in_try, index_in_callee_of_try], ids=lambda f: f.__name__)
def test_scalar_index_under_try_reaches_the_handler(fn):
    reset()
    compiled = bytegraph.compile(fn, backend="eager")
    W = torch.arange(12.).reshape(4, 3)
    for x in (torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 5.0]), torch.tensor([0.0, 3.0, 0.0])):
        _same_outcome(fn, compiled, W, x)        # the second: index 4 of 4 rows, caught


@pytest.mark.parametrize("backend", ["eager", "inductor"])
def test_write_into_an_input_before_a_check_is_kept_when_it_raises(backend):
    def f(x):
        x.mul_(2)                          # a caller's tensor: written before the check
        assert x.sum() > 0, "negative"
        return x + 1
    reset()
    compiled = bytegraph.compile(f, backend=backend)
    for v in (torch.ones(3), -torch.ones(3)):
        a, b = v.clone(), v.clone()
        want, got = _outcome(f, a), _outcome(compiled, b)
        assert want[0] == got[0] and torch.equal(a, b), (want, got, a, b)


def index_in_finally(W, x):
    try:
        row = W[x.argmax()]
    finally:
        pass                               # a finally block: the index stays in the graph
    return row * 2


def check_in_finally(x):
    try:
        assert x.min() > 0, "negative"
    finally:
        pass                               # in the first graph: a raise reruns the function
    return x.sqrt()


def test_finally_lets_the_index_and_the_check_through():
    W = torch.arange(12.).reshape(4, 3)
    reset()
    compiled = bytegraph.compile(index_in_finally, backend="eager")
    for x in (torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 5.0])):
        _same_outcome(index_in_finally, compiled, W, x)
    assert not counters()["graph_break"]
    reset()
    compiled = bytegraph.compile(check_in_finally, backend="eager")
    for x in (torch.tensor([1.0, 4.0]), torch.tensor([-1.0, 4.0])):
        _same_outcome(check_in_finally, compiled, x)
    assert not counters()["graph_break"]
