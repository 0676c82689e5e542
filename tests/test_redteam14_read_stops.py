"""Red-team probes of read stops (values/known.py, runtime/resume.py `is_read_stop`) under dynamic
shapes. A one-element integer tensor inside the int list of a torch op: a static trace's fake
run cannot read it and stops before the call, and the resume function reads the value. With a
ShapeEnv the fake `item()` is an unbacked symbol instead, and some ops take it (reshape, view,
zeros, pad of a symbolic input); their meta functions then assume what eager does not
(reshape's `u >= 0`: eager infers a -1), which inductor asserts at run time. It raised
`RuntimeError: u2 >= 0` where eager returns, its own assertion text where eager raises another
error, and an op inside the user's `try` raised out of it. Now such an op reads the values at a
stop as a static trace does (or, a value that changed, runs in Python at a stop).
The same for a number taken outside a list (`x.reshape(n, 6)`, `torch.zeros(n)`, `narrow`):
such an op now stops as in a static trace. Differential: outputs, exception type and message."""
import pytest
import torch
import torch.nn.functional as F

import bytegraph
from differential import REFERENCE, assert_same, reset

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's read stops")


def _outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except Exception as e:      # noqa: BLE001 -- compared with eager's
        return type(e), str(e)


def _same(fn, compiled, *args):
    want, got = _outcome(fn, *args), _outcome(compiled, *args)
    assert want[0] == got[0], (want, got)
    if want[0] == "ok":
        assert_same(want[1], got[1])
    else:
        assert want[1] == got[1]


def _run(fn, calls, backend, dynamic):
    reset()
    compiled = bytegraph.compile(fn, backend=backend, dynamic=dynamic)
    for args in calls:
        _same(fn, compiled, *args)


def reshape_infer(x, n):
    return x.reshape((n - 2, 6)) * 2          # n - 2 == -1: eager infers the size


def view_infer(x, t):
    a = t.sum() - 3
    return x.view((a, 8)) + 1


def crop(x, lengths):
    n = lengths.sum() - 9
    return F.pad(x * 2, (0, n)) + 1           # a pad shorter than -width raises eager's error


def pad_in_try(x, t):
    n = t.sum()
    try:
        y = F.pad(x, (0, n))
    except RuntimeError:
        y = x - 1
    return y


BACKENDS = [("inductor", True), ("inductor", None), ("eager", True), ("aten", True)]
IDS = ["inductor-dynamic", "inductor-auto", "eager-dynamic", "aten-dynamic"]


@pytest.mark.parametrize("backend,dynamic", BACKENDS, ids=IDS)
def test_a_minus_one_size_read_from_a_tensor_is_inferred(backend, dynamic):
    _run(reshape_infer, [(torch.randn(2, 6), torch.tensor(1)), (torch.randn(3, 6), torch.tensor(1)),
                         (torch.randn(4, 6), torch.tensor(6))], backend, dynamic)


@pytest.mark.parametrize("backend,dynamic", BACKENDS, ids=IDS)
def test_a_size_that_changes_raises_eagers_error(backend, dynamic):
    x = torch.randn(1, 2, 4, 4)
    _run(view_infer, [(x, torch.tensor([1, 1])), (x, torch.tensor([2, 2])), (x, torch.tensor([3, 4]))],
         backend, dynamic)


@pytest.mark.parametrize("backend,dynamic", BACKENDS, ids=IDS)
@pytest.mark.parametrize("total", [12, 7, 0], ids=["grow", "crop", "too_short"])
def test_negative_pads_crop_or_raise_eagers_error(backend, dynamic, total):
    _run(crop, [(torch.randn(2, 5), torch.tensor([total, 0])), (torch.randn(3, 6), torch.tensor([total, 0]))],
         backend, dynamic)


@pytest.mark.parametrize("backend,dynamic", BACKENDS, ids=IDS)
def test_a_pad_inside_try_reaches_the_handler(backend, dynamic):
    x = torch.randn(1, 2, 4, 4)
    _run(pad_in_try, [(x, torch.tensor([1, 2])), (x, torch.tensor([-9, 0])), (x + 1, torch.tensor([2, 2]))],
         backend, dynamic)


def reshape_varargs(x, n):
    return x.reshape(n - 2, 6) * 2


def expand_varargs(x, n):
    return x.expand(n, -1) + 1


def zeros_of(x, n):
    return torch.zeros(n - 2, 3) + x.sum()


def narrow_by(x, n):
    return x.narrow(1, 0, n - 2) * 1


def arange_to(x, n):
    return torch.arange(n - 2) + x.shape[0]


@pytest.mark.parametrize("backend,dynamic", BACKENDS, ids=IDS)
@pytest.mark.parametrize("f,values", [(reshape_varargs, (1, 1, 6)), (expand_varargs, (-1, 3, -1)),
                                      (zeros_of, (1, 3, 5)), (narrow_by, (1, 4, 2)), (arange_to, (1, 5, 2))],
                         ids=["reshape", "expand", "zeros", "narrow", "arange"])
def test_a_number_from_a_tensor_outside_a_list(backend, dynamic, f, values):
    """`x.reshape(n, 6)`, `torch.zeros(n)`, `x.narrow(1, 0, n)`: the tensor is an argument of its
    own, never read at a stop (a static trace runs the op in Python there); a dynamic one took
    it as an unbacked symbol, and inductor asserted `u2 >= 0` where eager returns (-1: infer,
    or expand's keep) or raises its own error."""
    _run(f, [(torch.randn(2 + i, 6) if f is not expand_varargs else torch.randn(1, 6), torch.tensor(v))
             for i, v in enumerate(values)], backend, dynamic)


def test_fullgraph_keeps_the_unbacked_graph():
    # under fullgraph a stop would raise: the op stays in the graph with its unbacked symbol
    reset()
    compiled = bytegraph.compile(crop, backend="eager", dynamic=True, fullgraph=True)
    x, lengths = torch.randn(2, 5), torch.tensor([12, 0])
    assert_same(crop(x, lengths), compiled(x, lengths))
