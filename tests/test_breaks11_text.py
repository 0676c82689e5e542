"""Text formatted at a graph break (an f-string field holding a tensor's value) reaches the
resume function opaque, guarded by type: f-strings and `+` join it in the entry, so a message
that changes with the data does not recompile the resume function per call
(values/opaque.py OpaqueText / OpaqueJoin). Code that needs the text itself traces again with
it known. Differential: outputs, returned strings, recompile counts."""
import pytest
import torch

import bytegraph
from differential import REFERENCE, assert_same, recompiles

pytestmark = pytest.mark.skipif(REFERENCE, reason="bytegraph's resume functions")


def run(fn, calls=5):
    bytegraph.reset()
    compiled = bytegraph.compile(fn, backend="eager")
    for i in range(calls):
        x = torch.randn(3, generator=torch.Generator().manual_seed(i))
        assert_same(fn(x), compiled(x))
    return recompiles(), bytegraph.counters["frames"]["total"]


def test_message_with_tensor_values_does_not_recompile():
    def f(x):
        y = x.sin()
        s = f"value {y.sum()} and {y.max():.3f}!"
        t = "pre " + s + " post"
        return y.cos(), s, f"{s}", t, f"[{t}]"
    recs, frames = run(f)
    assert recs == 0


def test_text_passed_through_locals_and_a_second_break():
    def f(x):
        y = x * 2
        s = f"{y.mean()!r}"
        z = y.relu()
        if z.sum() > 0:              # a second break, s a local across it
            z = z + 1
        return z, s + "!"
    recs, frames = run(f, calls=6)
    assert recs <= 1             # the branch may go both ways: one more entry, not one per call


@pytest.mark.parametrize("use", ["upper", "len", "compare", "spec", "index"])
def test_text_needed_as_a_value_is_right(use):
    def f(x):
        y = x.cos()
        s = f"{y.sum()}"
        if use == "upper":
            r = s.upper()
        elif use == "len":
            r = len(s)
        elif use == "compare":
            r = s == "1.0"
        elif use == "spec":
            r = f"{s:>30}"
        else:
            r = s[0]
        return y, r
    run(f, calls=3)


def test_text_in_a_returned_container_and_side_effect():
    log = []

    def f(x, log):
        y = x.exp()
        s = f"exp sum {y.sum():.2f}"
        log.append(s)
        return {"y": y, "msg": s, "pair": (s, 1)}
    bytegraph.reset()
    compiled = bytegraph.compile(f, backend="eager")
    mine, theirs = [], []
    for i in range(4):
        x = torch.randn(3, generator=torch.Generator().manual_seed(i))
        assert_same(f(x, theirs), compiled(x, mine))
    assert mine == theirs


def test_logging_text_and_item_values_is_recorded_like_eager():
    """A log call whose message (or arguments) is text formatted at a break, or an item()
    number, is replayed by the entry with the values it holds: the same records, no break at
    the call and no recompile."""
    import io
    import logging
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(lineno)d %(funcName)s %(message)s"))
    log = logging.getLogger("bytegraph.tests.text")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    def f(x):
        y = x.sin()
        s = f"value {y.sum():.4f}"
        log.info(s)
        log.info("v=%s n=%d", s, 3)
        v = y.max().item()
        log.info("max %.3f", v)
        return y.cos()

    def take():
        text = stream.getvalue()
        stream.truncate(0)
        stream.seek(0)
        return text
    try:
        bytegraph.reset()
        compiled = bytegraph.compile(f, backend="eager")
        for i in range(4):
            x = torch.randn(3, generator=torch.Generator().manual_seed(i))
            assert_same(f(x), (take(), compiled(x))[1])
            expected = take()
            f(x)
            assert take() == expected
        assert recompiles() == 0
        assert bytegraph.counters["frames"]["total"] == 1     # log records made by the entry
    finally:
        log.removeHandler(handler)


# ----------------------------------------------------------------------------------------
# a tensor field formatted by the entry (values/opaque.py OpaqueFormat): no break at all

def _one_call(fn, *args):
    """Eager and compiled on copies of the args; returns the compiled counters' frames/breaks."""
    import copy
    bytegraph.reset()
    compiled = bytegraph.compile(fn, backend="eager")
    mine = copy.deepcopy(args)
    try:
        expected = fn(*args)
    except Exception as e:          # noqa: BLE001
        with pytest.raises(type(e)) as got:
            compiled(*mine)
        assert str(got.value) == str(e)
        return None
    assert_same(expected, compiled(*mine))
    assert_same(args, mine, path="args")
    return bytegraph.counters["frames"]["total"], sum(bytegraph.counters["graph_break"].values())


def test_message_formatted_after_the_graph_makes_no_break():
    def f(x):
        y = x.sin()
        return y.cos(), f"sum {y.sum():.3f} max {y.max()} all {y!r}"
    assert _one_call(f, torch.randn(3)) == (1, 0)


def test_in_place_after_the_field_does_not_show():
    def f(x):
        y = x * 2
        s = f"{y} / {y.sum()}"
        y.add_(100)
        x.mul_(3)
        return y, s
    assert _one_call(f, torch.randn(3)) == (1, 0)


@pytest.mark.parametrize("case", ["grad", "parameter", "bad_spec_0d", "spec_nd", "int_spec",
                                  "bool", "complex", "as_key", "upper"])
def test_fields_formatted_like_eager(case):
    w = torch.nn.Parameter(torch.tensor(1.5))

    def f(x):
        y = x.sin()
        if case == "grad":
            s = f"{x * 2}"                      # shows grad_fn: formatted at a stop
        elif case == "parameter":
            s = f"{w}"                          # 'Parameter containing: ...'
        elif case == "bad_spec_0d":
            s = f"{y.sum():d}"                  # ValueError, as eager
        elif case == "spec_nd":
            s = f"{y:>5}"                       # TypeError, as eager
        elif case == "int_spec":
            s = f"{y.argmax():04d}|{(y > 0).all()}|{y.sum()!a:>30}"
        elif case == "bool":
            s = f"{(y > 2).any():^7}"
        elif case == "complex":
            s = f"{torch.complex(y.sum(), y.max()):.2f}"
        elif case == "as_key":
            s = {f"k{y.argmax()}": 1}
        else:
            s = f"{y.sum():.2f}".upper() + f"{y.max()}".strip("0")
        return y, s
    x = torch.randn(3, requires_grad=case == "grad")
    _one_call(f, x)


def test_print_options_read_when_the_entry_formats():
    def f(x):
        return f"{x * 3}"
    bytegraph.reset()
    compiled = bytegraph.compile(f, backend="eager")
    x = torch.randn(4)
    try:
        for precision in (4, 2, 6):
            torch.set_printoptions(precision=precision)
            assert compiled(x) == f(x)
    finally:
        torch.set_printoptions(profile="default")
