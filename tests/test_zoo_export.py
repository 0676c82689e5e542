"""bytegraph.export over the whole model zoo: every model exports as one graph with the
caller's signature and matches eager on new inputs; the quick subset also lowers to aten
(`aten_graph=True`) and survives torch.save/torch.load and copy.deepcopy.

Zoo transformers models return `ModelOutput`s (registered pytree classes) and run
transformers' output-capturing context variable, which sets and resets an attribute inside
`forward`: export drops writes whose final value is the one the object had before the call.
"""
import copy
import io

import pytest
import torch

import bytegraph
import zoo
from differential import assert_same


def _export(entry, model, inputs, **kw):
    if entry.arg_names is not None:
        return bytegraph.export(model, **kw)(**dict(zip(entry.arg_names, inputs)))
    return bytegraph.export(model, **kw)(*inputs)


def _check(entry, model, gm, seeds=(0, 1)):
    _, make_inputs = entry.build()
    for seed in seeds:
        inputs = make_inputs(seed)
        assert_same(entry.call(model, inputs), entry.call(gm, inputs), entry.atol, entry.rtol,
                    path=f"{entry.name}[seed={seed}]")


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("entry", zoo.entries(), ids=lambda e: e.name)
def test_zoo_model_exports_and_matches_eager(entry):
    model, make_inputs = entry.build()
    exported = copy.deepcopy(model)
    before = _state(exported)
    res = _export(entry, exported, make_inputs(0))
    assert isinstance(res.graph_module, torch.fx.GraphModule)
    after = _state(exported)
    assert before.keys() == after.keys()
    for k in before:                       # export runs nothing for real
        assert torch.equal(before[k], after[k]), f"export changed {k}"
    _check(entry, model, res.graph_module)


QUICK = [e for e in zoo.entries() if e.quick]


@pytest.mark.parametrize("entry", QUICK, ids=lambda e: e.name)
def test_zoo_quick_aten_graph_and_round_trips(entry):
    model, make_inputs = entry.build()
    gm = _export(entry, copy.deepcopy(model), make_inputs(0), aten_graph=True).graph_module
    assert all(n.target.__module__ != "torch.nn.functional" for n in gm.graph.nodes
               if n.op == "call_function" and hasattr(n.target, "__module__"))
    _check(entry, model, gm)
    _check(entry, model, copy.deepcopy(gm))
    buf = io.BytesIO()
    torch.save(gm, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    _, make_inputs = entry.build()
    expected = entry.call(model, make_inputs(1))
    actual = entry.call(loaded, make_inputs(1))
    if isinstance(expected, dict) and type(expected) is not dict:
        # torch.fx re-traces a GraphModule's code on torch.load and records a dict subclass
        # (ModelOutput) as a plain dict: the values survive, the class does not (README, export)
        assert type(actual) is dict and list(actual) == list(expected)
        expected = dict(expected)
    assert_same(expected, actual, entry.atol, entry.rtol, path=f"{entry.name}[loaded]")


class _Wrapped(torch.nn.Module):
    """A forward behind a functools.wraps decorator taking (*args, **kwargs), as
    transformers' forwards are."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x, scale=2.0, **kwargs):
        return {"y": self.lin(x) * scale, "n": len(kwargs)}


def _passthrough(fn):
    import functools

    @functools.wraps(fn)
    def inner(*args, **kwargs):
        kwargs.setdefault("tag", None)     # mutates only the **kwargs dict made for this call
        return fn(*args, **kwargs)
    return inner


_Wrapped.forward = _passthrough(_Wrapped.forward)


def test_wrapped_forward_keeps_names_and_extra_keywords():
    m = _Wrapped()
    x = torch.randn(2, 4)
    gm = bytegraph.export(m)(x, scale=3.0, extra=1).graph_module
    out, ref = gm(x, scale=3.0, extra=1), m(x, scale=3.0, extra=1)
    torch.testing.assert_close(out["y"], ref["y"])
    assert out["n"] == ref["n"] == 2
    x2 = torch.randn(2, 4)
    torch.testing.assert_close(gm(x=x2, scale=3.0, extra=1)["y"], m(x2, scale=3.0, extra=1)["y"])


class _Flag:
    def __init__(self):
        self.on = False
        self.count = 0


FLAG = _Flag()


def _restoring(x):
    FLAG.on = True
    y = x.sin()
    FLAG.on = False            # restored: the caller cannot tell the write happened
    return y


def _lasting(x):
    FLAG.count = FLAG.count + 1
    return x.cos()


def test_restored_attribute_write_is_dropped_lasting_one_refused():
    x = torch.randn(3)
    gm = bytegraph.export(_restoring)(x).graph_module
    torch.testing.assert_close(gm(x), x.sin())
    assert FLAG.on is False and FLAG.count == 0
    with pytest.raises(bytegraph.Unsupported, match=r"(?s)setting attribute 'count'.*test_zoo_export.py:\d+"):
        bytegraph.export(_lasting)(x)
    assert FLAG.count == 0


def test_unknown_keyword_is_a_type_error():
    def f(x):
        return x + 1
    with pytest.raises(TypeError, match="unexpected keyword"):
        bytegraph.export(f)(torch.randn(2), y=1)
