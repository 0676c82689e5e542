"""A graph that raises reruns its unit eagerly (runtime/rerun.py). When the first graph of an
entry raises (an op that fails only on real values: index_select out of range, a 0-d index,
a kept check), the entry hands the call back and the runtime runs the function -- or the
resume function's code -- as plain Python with the same arguments: the user's `except` and
`finally` blocks run, Python effects before the raise happen once, the RNG draws what eager
draws. Not where the graph wrote into an input first (no rerun: today's behaviour), nor for a
later graph of an entry (a break's Python code ran before it).

Differential throughout: outcome (result, or exception type and message), arguments after the
call, RNG state after the call, grad mode, graph / rerun / compile counts.

PYTEST_DONT_REWRITE: the programs' own `assert` statements must stay Python's."""
import copy

import pytest
import torch
import torch.nn.functional as F

import bytegraph
from differential import REFERENCE, counters, reset

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's rerun counters")

W = torch.arange(12.).reshape(4, 3)
GOOD, BAD = torch.tensor([0, 2]), torch.tensor([0, 7])


def _outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except Exception as e:
        return type(e), str(e), type(e.__context__)


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and \
            torch.equal(a.detach(), b.detach())
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


def _same(fn, compiled, *args, seed=0):
    """Eager and compiled on copies of `args`, from the same RNG state: the same outcome, the
    same arguments afterwards, the same RNG state and grad mode afterwards."""
    ea, ca = copy.deepcopy(args), copy.deepcopy(args)
    torch.manual_seed(seed)
    want = _outcome(fn, *ea)
    want_rng, want_grad = torch.get_rng_state(), torch.is_grad_enabled()
    torch.set_grad_enabled(True)
    torch.manual_seed(seed)
    got = _outcome(compiled, *ca)
    got_rng, got_grad = torch.get_rng_state(), torch.is_grad_enabled()
    torch.set_grad_enabled(True)
    assert _equal(want, got), (want, got)
    assert _equal(ea, ca), (ea, ca)
    assert torch.equal(want_rng, got_rng), "RNG state after the call differs"
    assert want_grad == got_grad
    return got


def _reruns():
    return counters()["stats"]["graph_reruns"]


# -- the programs ----------------------------------------------------------------------------

def select_in_try(x, idx):
    y = x * 2
    try:
        z = torch.index_select(y, 0, idx)
    except IndexError as e:
        return "caught: " + str(e)
    return z + 1


def select_in_finally(x, idx, log):
    try:
        z = torch.index_select(x, 0, idx) * 2
    finally:
        log.append("finally")
    return z


class Box:
    def __init__(self):
        self.n = 0

    def __eq__(self, other):
        return type(other) is Box and other.n == self.n


def effects_before(x, idx, log, box):
    log.append("before")
    box.n += 1
    y = x.cos()
    try:
        y = torch.index_select(y, 0, idx)
    except IndexError:
        log.append("caught")
    return y


def _callee(x, idx):
    return torch.index_select(x, 0, idx) + 1


def handler_in_caller(x, idx):
    try:
        return _callee(x * 3, idx)
    except IndexError:
        return x.sum()


def reraise_other(x, idx):
    try:
        return torch.index_select(x, 0, idx)
    except IndexError:
        raise ValueError("bad index")           # its __context__ is eager's IndexError


def loop_of_selects(x, idx):
    out = []
    for i in range(3):
        try:
            out.append(torch.index_select(x, 0, idx // (i + 1)))
        except IndexError:
            out.append(None)
    return out


def scalar_index_in_loop(W, x, log):
    rows = []
    for k in range(3):
        log.append(k)                            # pending Python effects before the index
        try:
            rows.append(W[x.argmax() + k])
        except IndexError as e:
            rows.append(str(e))
    return rows


def check_after_an_effect(x, log):
    log.append("before")                         # pending Python effects: replayed after the graph
    try:
        assert x.min() > 0, "negative"
    except AssertionError:
        return x * 0
    return x.sqrt()


def check_in_try(x):
    try:
        assert x.min() > 0, "negative"
        y = x.sqrt()
    except AssertionError as e:
        y = x.abs() + len(str(e))
    return y * 2


def not_caught(x, idx):
    return torch.index_select(x.sin(), 0, idx)


PROGRAMS = [
    (select_in_try, lambda idx: (W, idx)),
    (select_in_finally, lambda idx: (W, idx, [])),
    (effects_before, lambda idx: (W, idx, [], Box())),
    (handler_in_caller, lambda idx: (W, idx)),
    (reraise_other, lambda idx: (W, idx)),
    (loop_of_selects, lambda idx: (W, idx)),
    (not_caught, lambda idx: (W, idx)),
]


@pytest.mark.parametrize("backend", ["eager", "aten"])
@pytest.mark.parametrize("fn,make", PROGRAMS, ids=lambda v: getattr(v, "__name__", ""))
def test_a_raise_in_the_first_graph_reruns_the_function(fn, make, backend):
    reset()
    compiled = bytegraph.compile(fn, backend=backend)
    _same(fn, compiled, *make(GOOD))
    frames = counters()["frames"]["total"]
    assert _reruns() == 0
    _same(fn, compiled, *make(BAD))
    assert _reruns() == 1
    _same(fn, compiled, *make(BAD))          # a raise again: a cache hit, one rerun more
    _same(fn, compiled, *make(GOOD))
    assert _reruns() == 2
    assert counters()["frames"]["total"] == frames, "a raise must not recompile"
    assert not counters()["graph_break"] and not counters()["fallback"]


def test_inductor_reruns():
    reset()
    compiled = bytegraph.compile(select_in_try, backend="inductor")
    for idx in (GOOD, BAD, GOOD):
        _same(select_in_try, compiled, W, idx)
    assert _reruns() == 1


def test_inductor_check_under_a_handler():
    reset()
    compiled = bytegraph.compile(check_in_try, backend="inductor")
    for x in (torch.tensor([1.0, 4.0]), torch.tensor([-1.0, 4.0]), torch.tensor([9.0, 4.0])):
        _same(check_in_try, compiled, x)
    assert not counters()["graph_break"] and _reruns() == 1


def loop_with_stops(x, idx, log):
    out = []
    for k in range(3):
        if x[k].sum() > 0:                       # a stop in every iteration: resume functions
            log.append(k)
        try:
            out.append(torch.index_select(x, 0, idx + k))
        except IndexError as e:
            out.append(str(e))
    return out


def test_a_loop_of_resume_functions():
    reset()
    compiled = bytegraph.compile(loop_with_stops, backend="eager")
    for idx in (torch.tensor([0]), torch.tensor([2]), torch.tensor([1]), torch.tensor([2])):
        _same(loop_with_stops, compiled, W - 5, idx, [])
    assert _reruns() >= 2


def test_checks_and_0d_indexes_stay_under_handlers():
    # session 13 stopped these here (a try block; pending Python effects before them)
    for fn, argsets in ((check_in_try, [(torch.tensor([1.0, 4.0]),), (torch.tensor([-1.0, 4.0]),)]),
                        (scalar_index_in_loop, [(W, torch.tensor([1.0, 0.0, 0.0]), []),
                                                (W, torch.tensor([0.0, 0.0, 5.0]), [])]),
                        (check_after_an_effect, [(torch.ones(3), []), (-torch.ones(3), [])])):
        reset()
        compiled = bytegraph.compile(fn, backend="eager")
        for args in argsets:
            _same(fn, compiled, *args)
        assert not counters()["graph_break"], fn.__name__
        assert _reruns() == 1, fn.__name__


def test_a_buffer_read_through_a_list_iterator_is_learnt_per_class():
    # runtime/dynamic.py resolve: a ReduceSource of a builtin iterator (hf/ibert's observers,
    # reached through `for layer in self.layer` in a resume function) names the object it holds
    from bytegraph.runtime.dynamic import _MISSING, resolve
    from bytegraph.sources import ItemSource, LocalSource, ReduceSource
    layers = [object(), object()]
    it = iter(layers)
    next(it)
    src = ItemSource(ItemSource(ItemSource(ReduceSource(LocalSource("it"), None), 1), 0), 1)
    assert resolve(src, {"it": it}, iterators=True) is layers[1]
    assert resolve(ItemSource(ReduceSource(LocalSource("it"), None), 2), {"it": it}, iterators=True) == 1
    assert resolve(src, {"it": it}) is _MISSING               # (ints and sizes: not through iterators)
    assert resolve(ReduceSource(LocalSource("g"), None), {"g": (i for i in ())}, iterators=True) is _MISSING


def test_fullgraph_reaches_the_handler():
    reset()
    compiled = bytegraph.compile(select_in_try, backend="eager", fullgraph=True)
    for idx in (GOOD, BAD):
        _same(select_in_try, compiled, W, idx)
    assert _reruns() == 1


def test_module_forward():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(4, 3)
            self.calls = 0

        def forward(self, ids):
            self.calls += 1
            try:
                return self.emb(ids).sum()
            except IndexError:
                return torch.zeros(())
    torch.manual_seed(0)
    m = M()
    reset()
    compiled = bytegraph.compile(m, backend="eager")
    for ids in (torch.tensor([1, 2]), torch.tensor([1, 9]), torch.tensor([3])):
        want_calls = m.calls
        torch.testing.assert_close(compiled(ids), M.forward(copy.deepcopy(m), ids))
        assert m.calls == want_calls + 1          # the attribute write made once
    assert _reruns() == 1


# -- resume functions, loops, iterators ------------------------------------------------------

def after_a_stop(x, idx, log):
    y = x * 2
    if y.sum() > 0:                              # a data-dependent branch: the trace stops here
        log.append("positive")
        y = y + 1
    try:
        z = torch.index_select(y, 0, idx)
    except IndexError:
        log.append("caught")
        z = y
    return z


def test_in_a_resume_function():
    reset()
    compiled = bytegraph.compile(after_a_stop, backend="eager")
    for idx in (GOOD, BAD, BAD, GOOD):
        _same(after_a_stop, compiled, W, idx, [])
    assert counters()["graph_break"]
    assert _reruns() == 2


def consume(it, x):
    acc = x
    for t in it:
        acc = acc + t
        try:
            acc = torch.index_select(acc, 0, t.long())
        except IndexError:
            return "caught", acc
    return acc


def test_an_iterator_argument_is_consumed_as_eager():
    reset()
    compiled = bytegraph.compile(consume, backend="eager")
    for items in ([torch.tensor([0., 1.]), torch.tensor([1., 0.]), torch.tensor([0., 0.])],
                  [torch.tensor([0., 1.]), torch.tensor([5., 0.]), torch.tensor([0., 0.])]):
        a, b = iter([t.clone() for t in items]), iter([t.clone() for t in items])
        want, got = _outcome(consume, a, torch.ones(2, 2)), _outcome(compiled, b, torch.ones(2, 2))
        assert _equal(want, got), (want, got)
        assert _equal(list(a), list(b))          # what is left of the iterator
    assert _reruns() == 1


# -- state the rerun must find as eager left it -----------------------------------------------

def dropout_then_select(x, idx):
    y = F.dropout(x, 0.5, training=True)
    try:
        z = torch.index_select(y, 0, idx)
    except IndexError:
        z = torch.rand(2, 3)                     # draws after the raise: eager's numbers
    return z + torch.randn(3)


def test_random_draws_are_eagers():
    reset()
    compiled = bytegraph.compile(dropout_then_select, backend="eager")
    for idx in (GOOD, BAD, GOOD):
        _same(dropout_then_select, compiled, W, idx, seed=3)
    assert _reruns() == 1
    entry = compiled.__bytegraph_state__.entries[0]
    assert "rng_state" in entry.__bytegraph_source__


def test_only_random_entries_snapshot_the_generator():
    reset()
    compiled = bytegraph.compile(select_in_try, backend="eager")
    compiled(W, GOOD)
    src = compiled.__bytegraph_state__.entries[0].__bytegraph_source__
    assert "except Exception:" in src and "rng_state" not in src


def plain_grad_switch(x, idx):
    torch.set_grad_enabled(False)                # a plain switch eager keeps, then the raise
    try:
        return torch.index_select(x * 2, 0, idx)
    finally:
        torch.set_grad_enabled(True)


def select_in_no_grad(x, idx):
    with torch.no_grad():
        y = x * 2
        try:
            return torch.index_select(y, 0, idx)
        except IndexError:
            return torch.is_grad_enabled()


def select_in_autocast(x, idx):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = x @ x.T
        try:
            return torch.index_select(y, 0, idx).float()
        except IndexError:
            return torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("fn", [plain_grad_switch, select_in_no_grad, select_in_autocast],
                         ids=lambda f: f.__name__)
def test_grad_mode_and_autocast_as_eager(fn):
    reset()
    compiled = bytegraph.compile(fn, backend="eager")
    x = W.clone().requires_grad_()
    for idx in (GOOD, BAD, GOOD):
        _same(fn, compiled, x, idx)
        assert not torch.is_autocast_enabled("cpu")
    assert _reruns() == 1


# -- where no rerun is possible ---------------------------------------------------------------

def write_then_select(x, idx):
    x.add_(1)                                    # a write into the caller's tensor first
    return torch.index_select(x, 0, idx)


def test_no_rerun_after_a_write_into_an_input():
    reset()
    compiled = bytegraph.compile(write_then_select, backend="eager")
    for idx in (GOOD, BAD):
        _same(write_then_select, compiled, W.clone(), idx)   # written once, raised as eager
    assert _reruns() == 0
    assert "except Exception:" not in compiled.__bytegraph_state__.entries[0].__bytegraph_source__


def flag_then_select(x, idx):
    was = x.requires_grad                        # a rerun would read the flag the graph set
    x.requires_grad_()
    return torch.index_select(x * 2, 0, idx), was


def test_no_rerun_after_setting_requires_grad():
    reset()
    compiled = bytegraph.compile(flag_then_select, backend="eager")
    for idx in (GOOD, BAD):
        a, b = torch.ones(4, 3), torch.ones(4, 3)
        want, got = _outcome(flag_then_select, a, idx), _outcome(compiled, b, idx)
        assert _equal(want, got) and a.requires_grad == b.requires_grad, (want, got)
    assert _reruns() == 0


def check_then_write(x, y):
    try:
        assert x.min() > 0, "negative"
    except AssertionError:
        return x * 0
    y.add_(1)                                    # a write after a check that needed a rerun
    return x + y


def test_a_write_after_a_kept_check_traces_again_without_it():
    reset()
    compiled = bytegraph.compile(check_then_write, backend="eager")
    for x in (torch.ones(3), -torch.ones(3), torch.ones(3)):
        _same(check_then_write, compiled, x, torch.ones(3))
    assert _reruns() == 0
    assert counters()["graph_break"]             # the check stops, as before session 14


def write_then_check_in_try(x):
    x.mul_(2)
    try:
        assert x.sum() > 0, "negative"
    except AssertionError:
        return x * 0
    return x + 1


@pytest.mark.parametrize("backend", ["eager", "inductor"])
def test_a_check_after_a_write_still_stops(backend):
    reset()
    compiled = bytegraph.compile(write_then_check_in_try, backend=backend)
    for v in (torch.ones(3), -torch.ones(3)):
        _same(write_then_check_in_try, compiled, v.clone())
    assert counters()["graph_break"]
    assert _reruns() == 0


def generator_argument(x, g):
    y = torch.rand(2, 3, generator=g) + x[:2]    # (a stop: the rest is a resume function)
    try:
        return torch.index_select(y, 0, torch.tensor([0, 5]))
    except IndexError:
        return torch.rand(1, generator=g)


def test_an_explicit_generator_draws_as_eager():
    reset()
    compiled = bytegraph.compile(generator_argument, backend="eager")
    for _ in range(2):
        g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        assert _equal(_outcome(generator_argument, W, g1), _outcome(compiled, W, g2))
        assert torch.equal(g1.get_state(), g2.get_state())


# -- keep-going breaks: pure ones keep the rerun, a print ends it -----------------------------

def item_then_select(x, idx):
    n = x.sum().item()                           # a keep-going break: pure Python between graphs
    y = x * 2
    try:
        return torch.index_select(y, 0, idx), n
    except IndexError:
        return y.sum(), n


def explicit_break_then_select(x, idx):
    y = x * 2
    bytegraph.graph_break()
    try:
        return torch.index_select(y, 0, idx)
    except IndexError:
        return y.sum()


def tensor_check_in_try(x):
    y = x * 2
    try:
        torch._check_tensor_all(y > 0)           # a check node in the graph (session 14)
    except RuntimeError:
        return y.neg()
    return y.sqrt()


@pytest.mark.parametrize("fn,args", [(item_then_select, [(W, GOOD), (W, BAD)]),
                                     (explicit_break_then_select, [(W, GOOD), (W, BAD)])],
                         ids=lambda v: getattr(v, "__name__", ""))
def test_a_later_graph_after_pure_breaks_reruns(fn, args):
    reset()
    compiled = bytegraph.compile(fn, backend="eager")
    for a in args + args:
        _same(fn, compiled, *a)
    assert counters()["graph_break"] and _reruns() == 2
    assert counters()["frames"]["total"] == 1


def test_a_tensor_check_in_try_reruns():
    """torch._check_tensor_all without a message is a check node (no break since session 14):
    a failing check under the try reruns the function, whose handler catches eager's error."""
    reset()
    compiled = bytegraph.compile(tensor_check_in_try, backend="eager")
    for a in [(W + 1,), (W - 1,)] * 2:
        _same(tensor_check_in_try, compiled, *a)
    assert not counters()["graph_break"] and _reruns() == 2
    assert counters()["frames"]["total"] == 1


def item_then_check_in_try(x):
    n = x.sum().item()
    try:
        assert x.min() > 0, "negative"           # a check after a pure break: kept
    except AssertionError:
        return x * 0, n
    return x * 2, n


def print_then_check_in_try(x):
    print("calling")                             # a print: a raise after it cannot rerun
    try:
        assert x.min() > 0, "negative"
    except AssertionError:
        return x * 0
    return x * 2


def test_checks_after_breaks(capsys):
    reset()
    compiled = bytegraph.compile(item_then_check_in_try, backend="eager")
    for x in (torch.ones(3), -torch.ones(3)):
        _same(item_then_check_in_try, compiled, x)
    assert list(counters()["graph_break"]) == ["Tensor.item() reads tensor data"]
    assert _reruns() == 1
    reset()
    compiled = bytegraph.compile(print_then_check_in_try, backend="eager")
    for x in (torch.ones(3), -torch.ones(3)):
        _same(print_then_check_in_try, compiled, x)
    assert capsys.readouterr().out == "calling\n" * 4
    assert "bool() of a tensor depends on its data" in counters()["graph_break"]   # stops, as before
    assert _reruns() == 0


# -- warm start: the rerun lines and their helpers are stored and found again ------------------

WARM_MODULE = '''
import torch
import torch.nn.functional as F

def caught(x, idx):
    try:
        return torch.index_select(x * 2, 0, idx)
    except IndexError:
        return x.sum()

def drawn(x, idx):
    y = F.dropout(x, 0.5, training=True)
    try:
        return torch.index_select(y, 0, idx)
    except IndexError:
        return torch.rand(3)
'''

WARM_PHASE = '''
import json, sys
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["dir"])
import torch
import bytegraph
bytegraph.config.cache_dir = spec["cache_dir"]
import w14rerun as m
x = torch.arange(12.).reshape(4, 3)
ok = {}
for name in spec["fns"]:
    fn = getattr(m, name)
    compiled = bytegraph.compile(fn, backend="eager")
    res = []
    for idx in (torch.tensor([0, 2]), torch.tensor([0, 9])):
        torch.manual_seed(0)
        want = fn(x, idx)
        torch.manual_seed(0)
        got = compiled(x, idx)
        res.append(torch.equal(want, got))
    ok[name] = all(res)
print("RESULT" + json.dumps({"ok": ok, "warm": dict(bytegraph.counters["warm"]),
                             "frames": dict(bytegraph.counters["frames"]),
                             "reruns": bytegraph.counters["stats"]["graph_reruns"]}))
'''


def test_warm_start_keeps_the_rerun(tmp_path):
    from warm_harness import run_phase, write_module
    write_module(tmp_path, "w14rerun.py", WARM_MODULE)
    fns = ["caught", "drawn"]
    cold = run_phase(WARM_PHASE, tmp_path, fns)
    assert cold["ok"] == dict.fromkeys(fns, True) and cold["reruns"] == 2, cold
    warm = run_phase(WARM_PHASE, tmp_path, fns)
    assert warm["ok"] == dict.fromkeys(fns, True) and warm["reruns"] == 2, warm
    assert warm["warm"].get("hit") == 2 and not warm["frames"].get("total"), warm
