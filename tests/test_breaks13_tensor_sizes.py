"""One-element integer tensors used as sizes (session 13). `F.interpolate(x, size=(h, w))` and
`F.pad(x, (0, width - w))` with `h`, `w` 0-d tensors the graph computed: torch's argument parser
reads each with `item()`, so the trace cannot run the op on fakes. It stops just before the call
and resumes at it, the tensors' values read by the resume function's guards (values/known.py,
"read stops"), so the op and the ops after it (`width - w`) are graph nodes with the numbers
(hf/vilt's `visual_embed`). Differential: outputs, graph and trace counts, a second call that
only hits the cache, values that change between calls, eager's errors for zero and negative
sizes. Also the fixes found on the way: a comprehension whose body stops resumes inside it
(over the cells the trace made), and a display or comprehension that a break cuts in two keeps
the items added after the break."""
import pytest
import torch
import torch.nn.functional as F

import bytegraph
from differential import REFERENCE, assert_same, check, counters, frame_count, graph_count, recompiles, reset

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's graph and trace counts")

READ = "interpolate takes the value of a one-element integer tensor as an int"


def vilt_pos(spatial_pos, mask, width, height):
    """hf/vilt's ViltEmbeddings.visual_embed, its position embeddings."""
    x_h = mask.sum(dim=1)[:, 0]
    x_w = mask.sum(dim=2)[:, 0]
    return torch.cat([F.pad(F.interpolate(spatial_pos, size=(h, w), mode="bilinear", align_corners=True),
                            (0, width - w, 0, height - h)) for h, w in zip(x_h, x_w)], dim=0) * 2


def _mask(*hw, size=8):
    m = torch.zeros(len(hw), size, size, dtype=torch.long)
    for i, (h, w) in enumerate(hw):
        m[i, :h, :w] = 1
    return m


def _pos():
    return torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))


def _call(compiled, *args):
    expected = vilt_pos(*args)
    assert_same(expected, compiled(*args))


def test_sizes_read_at_a_stop_keep_interpolate_and_pad_in_graphs():
    reset()
    compiled = bytegraph.compile(vilt_pos, backend="eager")
    args = (_pos(), _mask((5, 6), (7, 3)), 8, 8)
    _call(compiled, *args)
    # the graph before the loop, then one per item: each stops before its interpolate
    assert graph_count() == 3 and frame_count() == 3
    assert counters()["graph_break"][READ] == 2
    frames, graphs = frame_count(), graph_count()
    _call(compiled, *args)                      # a second call only hits the cache
    _call(compiled, _pos() + 1, _mask((5, 6), (7, 3)), 8, 8)
    assert (frame_count(), graph_count(), recompiles()) == (frames, graphs, 0)


def test_no_op_of_the_comprehension_runs_outside_graphs():
    from torch.utils._python_dispatch import TorchDispatchMode
    depth = [0]

    def backend(gm, example_inputs):
        def run(*args):
            depth[0] += 1
            try:
                return gm.forward(*args)
            finally:
                depth[0] -= 1
        return run

    class Outside(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not depth[0]:
                self.ops.append(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    reset()
    compiled = bytegraph.compile(vilt_pos, backend=backend)
    args = (_pos(), _mask((5, 6), (7, 3)), 8, 8)
    compiled(*args)
    with Outside() as mode:
        out = compiled(*args)
    assert_same(vilt_pos(*args), out)
    assert mode.ops == []          # the reads are the guards' tolist(), below the dispatcher


def test_values_that_change_between_calls():
    reset()
    compiled = bytegraph.compile(vilt_pos, backend="eager")
    sizes = [((5, 6), (7, 3)), ((2, 8), (8, 8)), ((1, 1), (3, 4)), ((6, 2), (4, 4)), ((8, 1), (2, 7)),
             ((5, 6), (7, 3))]
    for hw in sizes:
        _call(compiled, _pos(), _mask(*hw), 8, 8)
    # the first change makes the read values unstable: later calls run the ops at a stop, as
    # before, instead of compiling per value. Session 14 (21, was 15): the values, read through
    # the comprehension's list iterator, are learnt unstable (runtime/dynamic.py resolve with
    # `iterators`), and once the interpolate's sizes are dynamic the pad after it reads its
    # values at a stop instead of taking them as unbacked symbols (red team 14: a compiling
    # backend asserted their ranges). The count then settles: 16 random sizes end at 21 frames,
    # where session 13 made one more per new size (23 and counting).
    frames = frame_count()
    assert frames <= 21
    for hw in sizes[1:4]:
        _call(compiled, _pos(), _mask(*hw), 8, 8)
    assert frame_count() == frames


@pytest.mark.parametrize("hw", [((0, 4), (3, 3)), ((3, 3), (4, 0))], ids=["zero_first", "zero_second"])
def test_zero_size_raises_eagers_error(hw):
    reset()
    compiled = bytegraph.compile(vilt_pos, backend="eager")
    args = (_pos(), _mask(*hw), 8, 8)
    with pytest.raises(RuntimeError) as want:
        vilt_pos(*args)
    with pytest.raises(RuntimeError) as got:
        compiled(*args)
    assert str(got.value) == str(want.value)
    _call(compiled, _pos(), _mask((5, 6), (7, 3)), 8, 8)      # then a good call


def crop(x, lengths):
    n = lengths.sum() - 9
    return F.pad(x * 2, (0, n)) + 1


@pytest.mark.parametrize("total", [12, 9, 7, 0], ids=["grow", "same", "crop", "too_short"])
def test_negative_pads_crop_or_raise_as_in_eager(total):
    reset()
    compiled = bytegraph.compile(crop, backend="eager")
    x, lengths = torch.randn(2, 5), torch.tensor([total, 0])
    try:
        want = crop(x, lengths)
    except RuntimeError as e:
        with pytest.raises(RuntimeError) as got:
            compiled(x, lengths)
        assert str(got.value) == str(e)
        return
    assert_same(want, compiled(x, lengths))
    assert graph_count() == 2 and frame_count() == 2


def pad_by(x, n):
    return F.pad(x * 2, (0, n)) + 1


def test_an_argument_read_per_call_recompiles_a_bounded_number_of_times():
    """A 0-d tensor argument: the first trace stops before the pad, the resume function reads
    it; when the value changes, it becomes unstable and the pad runs in Python at a stop (no
    stop that resumes at itself: each one reads a tensor once)."""
    reset()
    compiled = bytegraph.compile(pad_by, backend="eager")
    x = torch.randn(2, 3)
    for n in [1, 2, 3, 4, 5, 1, 2]:
        assert_same(pad_by(x, torch.tensor(n)), compiled(x, torch.tensor(n)))
    frames = frame_count()
    assert frames <= 5
    for n in [6, 7, 8]:
        assert_same(pad_by(x, torch.tensor(n)), compiled(x, torch.tensor(n)))
    assert frame_count() == frames


def test_a_float_size_raises_eagers_type_error():
    def f(x, m):
        s = m.sum() / 2
        return F.interpolate(x, size=(s, s)) + 1
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    x, m = torch.randn(1, 1, 3, 3), torch.ones(4)
    with pytest.raises(TypeError) as want:
        f(x, m)
    with pytest.raises(TypeError) as got:
        compiled(x, m)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("size", [
    lambda x, a, b: x.reshape((a, b)),
    lambda x, a, b: x.view([a, b]),
    lambda x, a, b: x.new_zeros((a, b)) + x.sum(),
    lambda x, a, b: F.adaptive_avg_pool2d(x[None], (a, b)),
    lambda x, a, b: F.interpolate(x[None, None], size=(a, b), mode="nearest"),
], ids=["reshape", "view_list", "new_zeros", "adaptive_pool", "nearest"])
def test_other_int_lists(size):
    def f(x, m):
        a, b = m.sum(0)
        return size(x * 2, a, b) - 1
    x = torch.randn(4, 6)
    m = torch.tensor([[1, 2], [1, 2], [1, 1], [1, 1]])     # a, b = 4, 6
    check(f, x, m, fullgraph=False, graphs=2, calls=[(x + 1, m)])
    assert frame_count() == 2


def test_bool_tensor_in_an_int_list_raises_eagers_error():
    def f(x, m):
        return F.pad(x, (0, m.any(), 1, m.all())) * 3
    reset()
    compiled = bytegraph.compile(f, backend="eager")
    x, m = torch.randn(2, 3), torch.tensor([True, False])
    with pytest.raises(RuntimeError) as want:
        f(x, m)
    with pytest.raises(RuntimeError) as got:
        compiled(x, m)
    assert str(got.value) == str(want.value)


# -- comprehensions that stop, and displays a break cuts in two ---------------------------------

@bytegraph.disable
def two_more(x):
    return [x + 1, x + 2]


@bytegraph.disable
def ints(x):
    return [3, 4]


@pytest.mark.parametrize("fn", [
    lambda x: [x.sum(), *two_more(x)],
    lambda x: (x.sum(), *two_more(x)),
    lambda x: (x + 1, {1, 2, *ints(x)}),
    lambda x: (x + 1, {"a": 1, **dict(zip("bc", ints(x)))}),
    lambda x: (x + 1, {"a": x, **dict(zip("bc", two_more(x)))}),
    lambda x: [x * v for v in ints(x) + [5]],
    lambda x: {v: two_more(x)[0] * v for v in range(3)},
    lambda x: {v * ints(x)[0] for v in range(3)},
    lambda x: [t * 2 for t in two_more(x)],
], ids=["list_display", "tuple_display", "set_display", "dict_display", "dict_tensors", "listcomp",
        "dictcomp", "setcomp", "listcomp_over_stop"])
def test_a_break_inside_a_display_or_comprehension_keeps_every_item(fn):
    check(fn, torch.randn(3), fullgraph=False, graphs=None, calls=[(torch.randn(3),)])


def test_a_comprehension_whose_body_stops_resumes_inside_it():
    def f(x, ys):
        scale = x.sum()
        return [two_more(y)[1] * scale + i for i, y in enumerate(ys)]
    check(f, torch.randn(3), [torch.randn(3), torch.randn(3)], fullgraph=False, graphs=None)
    assert counters()["graph_break"]            # a stop per item, inside the comprehension


def test_a_closure_that_stops_shares_its_cells_with_the_function():
    def f(x):
        acc = x * 2

        def step(k):
            nonlocal acc
            acc = acc + two_more(acc)[0] * k
            return acc.sum()
        first = step(1)
        acc = acc * 3                    # the cell, written after the break
        return first, step(2), acc
    check(f, torch.randn(3), fullgraph=False, graphs=None, calls=[(torch.randn(3),)])


def pad_each(xs, m):
    n = m.sum()
    return [F.pad(x, (0, n)) * 2 for x in xs]


@pytest.mark.parametrize("items, graphs", [(2, 2), (5, 2), (6, 1), (9, 1)])
def test_a_long_comprehension_that_stops_runs_in_python(items, graphs):
    """Up to 5 items the stop resumes inside the comprehension (here one read for every item);
    from 6 (runtime/resume.py `_long_comprehension`) the comprehension runs in Python, as every
    comprehension that stopped did before."""
    xs = [torch.randn(3) for _ in range(items)]
    check(pad_each, xs, torch.tensor([1, 1]), fullgraph=False, graphs=graphs, calls=[(xs, torch.tensor([1, 1]))])


def caught(sp, mask, width, height):
    try:
        return vilt_pos(sp, mask, width, height)
    except RuntimeError:
        return sp * 0


def in_no_grad(sp, mask, width, height):
    with torch.no_grad():
        y = vilt_pos(sp, mask, width, height)
    return y + sp.sum()


@pytest.mark.parametrize("fn", [caught, in_no_grad])
@pytest.mark.parametrize("hw", [((5, 6), (7, 3)), ((0, 6), (7, 3))], ids=["sizes", "zero"])
def test_no_read_stop_inside_a_try_or_with_block(fn, hw):
    """Inside a try/with block the op runs in Python at a stop, as before: in a graph, an error
    it raises only on real values (a zero size) would not reach the handler."""
    args = (_pos().requires_grad_(), _mask(*hw), 8, 8)
    if fn is in_no_grad and hw[0][0] == 0:
        reset()
        compiled = bytegraph.compile(fn, backend="eager")
        with pytest.raises(RuntimeError) as want:
            fn(*args)
        with pytest.raises(RuntimeError) as got:
            compiled(*args)
        assert str(got.value) == str(want.value) and torch.is_grad_enabled()
        return
    check(fn, *args, fullgraph=False, graphs=None, calls=[args])
    assert torch.is_grad_enabled()


WARM_MODULE = '''
import torch
import torch.nn.functional as F

def vilt_pos(spatial_pos, mask, width, height):
    x_h = mask.sum(dim=1)[:, 0]
    x_w = mask.sum(dim=2)[:, 0]
    return torch.cat([F.pad(F.interpolate(spatial_pos, size=(h, w), mode="bilinear", align_corners=True),
                            (0, width - w, 0, height - h)) for h, w in zip(x_h, x_w)], dim=0) * 2
'''

WARM_PHASE = '''
import json, sys
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["dir"])
import torch
import bytegraph
bytegraph.config.cache_dir = spec["cache_dir"]
import w13mod as m

def mask(*hw):
    t = torch.zeros(len(hw), 8, 8, dtype=torch.long)
    for i, (h, w) in enumerate(hw):
        t[i, :h, :w] = 1
    return t

sp = torch.randn(1, 3, 4, 4)
compiled = bytegraph.compile(m.vilt_pos, backend="eager")
ok = all(torch.equal(compiled(sp, mask(*hw), 8, 8), m.vilt_pos(sp, mask(*hw), 8, 8))
         for hw in [((5, 6), (7, 3)), ((5, 6), (7, 3)), ((2, 2), (3, 3))])
print("RESULT" + json.dumps({"ok": ok, "warm": dict(bytegraph.counters["warm"]),
                             "frames": dict(bytegraph.counters["frames"])}))
'''


def test_read_stops_in_a_comprehension_start_warm(tmp_path):
    """The comprehension's resume functions (free variables passed as cells) are made again from
    their keys in a new process (runtime/warm_recipes.py: only `__class__` needs the function
    that owns the code), so a warm process traces nothing."""
    from warm_harness import run_phase, write_module
    write_module(tmp_path, "w13mod.py", WARM_MODULE)
    cold = run_phase(WARM_PHASE, tmp_path, [])
    assert cold["ok"] and cold["frames"]["total"] >= 5 and not cold["warm"].get("unportable"), cold
    warm = run_phase(WARM_PHASE, tmp_path, [])
    assert warm["ok"] and warm["frames"].get("total", 0) == 0 and warm["warm"].get("hit"), warm


def test_values_that_change_every_call_settle():
    """16 random sizes: the compiles stop growing once the values are learnt unstable (session
    13 made one more frame per new size)."""
    import random
    reset()
    compiled = bytegraph.compile(vilt_pos, backend="eager")
    rng = random.Random(0)
    counts = []
    for _ in range(16):
        hw = ((rng.randint(1, 8), rng.randint(1, 8)), (rng.randint(1, 8), rng.randint(1, 8)))
        _call(compiled, _pos(), _mask(*hw), 8, 8)
        counts.append(frame_count())
    assert counts[-8:] == [counts[-1]] * 8, counts
