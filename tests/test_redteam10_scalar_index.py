"""Red team 10: indexing with a 0-d integer tensor the graph computes (policy/scalar_index.py).
Differential (eager vs compiled): outputs, mutated arguments, the raised exception's type and
message, graph counts. The compiling-backend cases (inductor) are the ones that broke: a
compiled select never checks a symbolic index (an index out of range read or wrote outside the
tensor and returned garbage), a recompile with dynamic shapes refused the graph
(PendingUnbackedSymbolNotFound), and a view's symbolic storage_offset() came back as 0."""
import pytest
import torch

import bytegraph
from differential import REFERENCE, assert_same, check, graph_count, reset

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's graph counts and backends")


def _w():
    return torch.arange(60.).reshape(5, 4, 3)


def _same_outcome(f, compiled, *args):
    """eager and compiled return equal results and leave equal arguments, or raise the same
    exception type with the same message."""
    import copy
    ea, ca = copy.deepcopy(args), copy.deepcopy(args)
    try:
        want, werr = f(*ea), None
    except Exception as e:
        want, werr = None, e
    try:
        got, gerr = compiled(*ca), None
    except Exception as e:
        got, gerr = None, e
    if werr is not None or gerr is not None:
        assert type(gerr) is type(werr) and str(gerr) == str(werr), (werr, gerr)
        return
    assert_same(want, got)
    assert_same(ea, ca, path="args-after")


def _am(x):
    return x.argmax()


OUT_OF_RANGE = {
    "past_end": lambda W, x: W[_am(x) + 4] * 2,
    "before_start": lambda W, x: W[_am(x) - 6] * 2,
    "third_dim": lambda W, x: W[:, 1, _am(x) + 2] * 2,
    "after_ellipsis": lambda W, x: W[1, ..., _am(x) + 2] * 2,
    "after_none": lambda W, x: W[None, :, _am(x) + 3] * 2,
    "second_of_two": lambda W, x: W[_am(x), _am(x) + 3] * 2,
    "unused": lambda W, x: (W[_am(x) + 4], x + 1)[1],
}


def _write(W, x):
    W[_am(x) + 4].add_(1)
    return W.sum()


@pytest.mark.parametrize("backend", ["eager", "inductor"])
def test_index_out_of_range_raises_eagers_index_error(backend):
    # a compiled select at a symbolic index reads wherever the index points: inductor returned
    # the bytes past the tensor instead of raising (and a write would have corrupted memory)
    cases = OUT_OF_RANGE if backend == "eager" else {k: OUT_OF_RANGE[k] for k in
                                                     ("past_end", "after_ellipsis", "unused")}
    for name, f in list(cases.items()) + [("write", _write)]:
        reset()
        compiled = bytegraph.compile(f, backend=backend)
        for x in (torch.tensor([0., 3., 1.]), torch.tensor([9., 0., 1.]), torch.tensor([0., 0., 5.])):
            _same_outcome(f, compiled, _w(), x)


def test_in_range_negative_and_positive_inductor():
    def f(W, x):
        e = x.argmax()
        return W[e - 3] + W[e, e % 4, e % 3] + W[torch.tensor([0, 1]), e % 4, torch.tensor([1, 2])].sum()
    check(f, _w(), torch.tensor([0., 3., 1.]), backend="inductor",
          calls=[(_w(), torch.tensor([0., 3., 9.])), (_w(), torch.tensor([9., 3., 1.]))])


def test_dynamic_recompile_inductor():
    # after a size change the graph is traced with dynamic shapes in the ShapeEnv inductor
    # lowers it in; the trace's own unbacked symbols were left pending there
    # (PendingUnbackedSymbolNotFound: every call raised BackendCompilerFailed)
    def f(W, x):
        return W[x.argmax() + W.shape[0] - 3] * W.shape[0]
    reset()
    compiled = bytegraph.compile(f, backend="inductor")
    for n in (5, 6, 7, 6):
        x = torch.zeros(n)
        for hot in (0, 1, 2, 4):
            x.zero_()
            x[hot] = 1
            _same_outcome(f, compiled, torch.randn(n, 4), x)


def test_slice_with_symbolic_bounds_inductor():
    def f(W, x):
        return W[x.argmax(), 1:W.shape[1] - 1]
    x = torch.tensor([0., 3., 1.])
    check(f, torch.randn(5, 4), x, backend="inductor", dynamic=True,
          calls=[(torch.randn(5, 6), x), (torch.randn(5, 7), torch.tensor([9., 3., 1.]))])


@pytest.mark.parametrize("backend", ["eager", "inductor"])
def test_storage_offset_of_the_selected_view(backend):
    # inside the graph the view's offset is symbolic; inductor answered 0 (its functionalized
    # view has a fresh tensor's offset): the query now stops and runs on the real view
    def f(W, x):
        r = W[x.argmax()]
        return r * 1, r.storage_offset(), r.stride()
    check(f, _w(), torch.tensor([0., 3., 1.]), backend=backend, fullgraph=False, graphs=None,
          calls=[(_w(), torch.tensor([0., 3., 9.]))])


def test_symbolic_storage_offset_dynamic_inductor():
    # the same without a tensor index: a view at an offset that depends on a dynamic size
    def f(W):
        r = W[W.shape[0] - 2]
        return r * 2, r.storage_offset()
    check(f, torch.arange(60.).reshape(5, 12), backend="inductor", dynamic=True, fullgraph=False,
          graphs=None, calls=[(torch.arange(72.).reshape(6, 12),)])


def test_uint64_index_past_int64_raises_eagers_error():
    # eager reads a uint64 index as an int64 and refuses 2**63+1 with a RuntimeError; item()
    # gave a Python int and indexing then raised ValueError
    def f(W, e):
        return W[e] * 2
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    for v in (2 ** 63 + 1, 3):
        _same_outcome(f, compiled, _w(), torch.tensor(v, dtype=torch.uint64))


def test_repeated_calls_are_cache_hits():
    def f(W, x):
        return W[x.argmax()] * 2
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    for i in range(5):
        x = torch.zeros(5)
        x[i] = 1
        assert_same(f(_w(), x), compiled(_w(), x))
    assert graph_count() == 1
    assert bytegraph.counters["recompiles"]["total"] == 0


WARM_MODULE = '''
import os
import torch

SHIFT = int(os.environ.get("R10_SHIFT", "0"))

def pick(W, x, acc):
    return W[x.argmax() + SHIFT] * 2

def pick_writes(W, x, acc):
    acc.add_(1)
    r = W[x.argmax() + SHIFT] * 2
    acc.mul_(10)
    return r
'''

WARM_PHASE = '''
import json, os, sys
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["dir"])
import torch
import bytegraph
bytegraph.config.cache_dir = spec["cache_dir"]
import r10mod
backend = os.environ["R10_BACKEND"]
fn = getattr(r10mod, os.environ["R10_FN"])
compiled = bytegraph.compile(fn, backend=backend)
good = True
for x in (torch.tensor([0., 3., 1.]), torch.tensor([9., 3., 1.]), torch.tensor([0., 0., 5.])):
    W = torch.arange(60.).reshape(5, 4, 3)
    acc_e, acc_c = torch.zeros(2), torch.zeros(2)
    try:
        want, werr = fn(W, x, acc_e), None
    except IndexError as e:
        want, werr = None, str(e)
    try:
        got, gerr = compiled(W, x, acc_c), None
    except IndexError as e:
        got, gerr = None, str(e)
    good = good and werr == gerr and (want is None or torch.equal(want, got)) and torch.equal(acc_e, acc_c)
print("RESULT" + json.dumps({"ok": {"pick": good}, "warm": dict(bytegraph.counters["warm"]),
                             "frames": dict(bytegraph.counters["frames"])}))
'''


@pytest.mark.parametrize("backend,fn", [("eager", "pick_writes"), ("inductor", "pick")])
def test_warm_start_keeps_the_index_check(tmp_path, backend, fn):
    # a graph holding index_with_ints saved, then loaded in a new process: same results,
    # eager's IndexError out of range, and the writes around it as eager makes them (the
    # warm process rebuilds the graph without the trace's marks: inductor must still not get it)
    from warm_harness import run_phase, write_module
    write_module(tmp_path, "r10mod.py", WARM_MODULE)
    env = {"R10_BACKEND": backend, "R10_SHIFT": "3", "R10_FN": fn}
    cold = run_phase(WARM_PHASE, tmp_path, ["pick"], **env)
    assert cold["ok"] == {"pick": True}, cold
    warm = run_phase(WARM_PHASE, tmp_path, ["pick"], **env)
    assert warm["ok"] == {"pick": True} and warm["warm"].get("hit"), warm


def test_export_plain_graph_reads_the_index_per_call():
    def f(W, x):
        return W[x.argmax()] * 2
    gm = bytegraph.export(f)(_w(), torch.tensor([3., 0., 1.])).graph_module
    for x in (torch.tensor([0., 3., 1.]), torch.tensor([9., 3., 1.])):
        assert_same(f(_w(), x), gm(_w(), x))


def test_export_aten_graph_refuses_to_bake_the_index():
    # make_fx in real mode ran item() on the example and recorded `select(W, 0, 0)`: the
    # exported graph returned W[0] for every x (and never raised out of range)
    def f(W, x):
        return W[x.argmax()] * 2
    with pytest.raises(bytegraph.Unsupported, match="lowering would bake in"):
        bytegraph.export(f, aten_graph=True)(_w(), torch.tensor([3., 0., 1.]))


class _Box:
    n = 0


def _effects_then_index(W, x, log, box):
    log.append(1)
    box.n += 1
    return W[x.argmax() + 3] * 2


@pytest.mark.parametrize("backend", ["eager", "inductor"])
def test_python_effects_before_a_raising_index_are_kept(backend):
    # the graph raised IndexError and the appended item / attribute write, replayed after the
    # graph, were lost; eager made them before raising
    reset()
    compiled = bytegraph.compile(_effects_then_index, backend=backend)
    for x in (torch.tensor([0., 3., 1.]), torch.tensor([0., 0., 3.])):
        seen = []
        for fn in (_effects_then_index, compiled):
            log, box = [], _Box()
            try:
                fn(_w(), x, log, box)
                outcome = "ok"
            except IndexError as e:
                outcome = str(e)
            seen.append((outcome, log, box.n))
        assert seen[0] == seen[1]


def _write_index_write(W, x, acc):
    acc.add_(1)
    r = W[x.argmax() + 3] * 2
    acc.mul_(10)
    W.add_(1)
    return r


def _index_then_write(W, x, acc):
    r = W[x.argmax() + 3]
    acc.add_(10)
    return r * 1


@pytest.mark.parametrize("backend", ["eager", "inductor"])
@pytest.mark.parametrize("fn", [_write_index_write, _index_then_write])
def test_tensor_writes_around_a_raising_index(fn, backend):
    # eager backend: the graph runs in program order, so the writes around a raising index are
    # eager's. A compiling backend functionalizes the graph (inductor applies input writes at
    # its end), so when the index raises, the writes around it may differ from eager's: the
    # same for every op that raises inside a compiled graph, and for torch.compile
    # (docs/graph_breaks.md "A 0-d integer tensor as an index"). The error is eager's.
    reset()
    compiled = bytegraph.compile(fn, backend=backend)
    for x in (torch.tensor([0., 3., 1.]), torch.tensor([0., 0., 3.])):
        seen = []
        for f in (fn, compiled):
            W, acc = _w(), torch.zeros(2)
            try:
                out = f(W, x, acc)
                outcome = out.sum().item()
                state = (acc.tolist(), W.sum().item())
            except IndexError as e:
                outcome = str(e)
                state = (acc.tolist(), W.sum().item()) if backend == "eager" else None
            seen.append((outcome, state))
        assert seen[0] == seen[1]
