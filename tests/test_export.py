"""bytegraph.export: one graph with the caller's signature (differential against eager)."""
import collections
import copy
import io
import subprocess
import sys

import pytest
import torch

import bytegraph


class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.register_buffer("scale", torch.full((3,), 2.0))

    def forward(self, x, mask=None, *, bias=0.5):
        y = self.lin(x) * self.scale + bias
        if mask is not None:
            y = y * mask
        return {"out": y, "parts": (y.sum(), x)}


def inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 4, generator=g), torch.ones(2, 3)


def test_module_signature_params_and_structure():
    m = M()
    x, mask = inputs()
    res = bytegraph.export(m)(x, mask=mask, bias=1.0)
    gm = res.graph_module
    e, r = m(x, mask=mask, bias=1.0), gm(x, mask=mask, bias=1.0)
    assert r.keys() == e.keys()
    torch.testing.assert_close(r["out"], e["out"])
    torch.testing.assert_close(r["parts"][0], e["parts"][0])
    assert r["parts"][1] is x
    names = {n for n, _ in gm.named_parameters()} | {n for n, _ in gm.named_buffers()}
    assert {"lin.weight", "lin.bias", "scale"} <= names
    # also called positionally, with other values
    x2 = torch.randn(2, 4)
    torch.testing.assert_close(gm(x2, mask, bias=1.0)["out"], m(x2, mask, bias=1.0)["out"])
    assert any("1.0" in g for g in res.guards)        # the specialized float is a guard


def test_round_trips_without_bytegraph(tmp_path):
    m = M()
    x, mask = inputs()
    gm = bytegraph.export(m)(x, mask=mask)
    gm = gm.graph_module
    want = m(x, mask=mask)["out"]
    torch.testing.assert_close(copy.deepcopy(gm)(x, mask=mask)["out"], want)
    buf = io.BytesIO()
    torch.save(gm, buf)
    path = tmp_path / "gm.pt"
    path.write_bytes(buf.getvalue())
    torch.save((x, mask, want), tmp_path / "io.pt")
    code = (f"import sys, torch; gm = torch.load({str(path)!r}, weights_only=False); "
            f"x, m, w = torch.load({str(tmp_path / 'io.pt')!r}); "
            "torch.testing.assert_close(gm(x, mask=m)['out'], w); "
            "assert 'bytegraph' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_aten_graph_keeps_signature():
    m = M()
    x, mask = inputs()
    gm = bytegraph.export(m, aten_graph=True)(x, mask=mask).graph_module
    assert "torch.ops.aten" in gm.code
    torch.testing.assert_close(gm(x, mask=mask)["out"], m(x, mask=mask)["out"])


def test_decomposition_table_applies():
    from torch._decomp import get_decompositions

    def f(x):
        return torch.nn.functional.gelu(x) * 2
    x = torch.randn(5)
    table = get_decompositions([torch.ops.aten.gelu])
    gm = bytegraph.export(f, aten_graph=True, decomposition_table=table)(x).graph_module
    assert "gelu" not in gm.code
    torch.testing.assert_close(gm(x), f(x))


def test_in_place_input_mutation_is_kept():
    def f(x):
        x.add_(1)
        return x * 2
    gm = bytegraph.export(f)(torch.zeros(3)).graph_module
    z = torch.zeros(3)
    out = gm(z)
    assert torch.equal(z, torch.ones(3)) and torch.equal(out, torch.full((3,), 2.0))


def test_namedtuple_and_list_outputs():
    P = collections.namedtuple("P", "a b")

    def f(x, ys):
        return P(x + ys[0], [ys[1] * 2, 3])
    x, ys = torch.ones(2), [torch.ones(2), torch.zeros(2)]
    r = bytegraph.export(f)(x, ys).graph_module(x, ys)
    e = f(x, ys)
    assert type(r) is P and r.b[1] == 3
    torch.testing.assert_close(r.a, e.a)
    torch.testing.assert_close(r.b[0], e.b[0])


def test_graph_break_is_refused_with_location():
    def f(x):
        y = x + 1
        print("no")
        return y
    with pytest.raises(bytegraph.Unsupported) as info:
        bytegraph.export(f)(torch.ones(2))
    assert f"{__file__}:{f.__code__.co_firstlineno + 2}" in str(info.value)


def test_python_side_effect_is_refused_with_location():
    state = {"n": 0}

    def f(x):
        state["n"] = state["n"] + 1
        return x + 1
    with pytest.raises(bytegraph.Unsupported) as info:
        bytegraph.export(f)(torch.ones(2))
    assert f"{__file__}:{f.__code__.co_firstlineno + 1}" in str(info.value)
    assert state == {"n": 0}


def test_bad_arguments():
    with pytest.raises(TypeError):
        bytegraph.export(3)
    with pytest.raises(TypeError):
        bytegraph.export(lambda x: x, aten_graph="yes")
    with pytest.raises(ValueError):
        bytegraph.export(lambda x: x, tracing_mode="weird")
    with pytest.raises(TypeError):
        bytegraph.export(lambda x: x, decomposition_table=[1])


# --------------------------------------------------------------------------
# dynamic_shapes

class _Seq(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 4)

    def forward(self, x, scale=2.0):
        b, t, _ = x.shape
        return self.lin(x).reshape(b * t, 4)[: b * t - 1] * scale


def test_export_dynamic_shapes_dict_and_list():
    torch.manual_seed(0)
    m = _Seq()
    x = torch.randn(2, 5, 8)
    for spec in ({"x": {0: "batch", 1: "seq"}}, [{0: "batch", 1: "seq"}], {"x": [None, "seq", None]}):
        res = bytegraph.export(m, dynamic_shapes=spec)(x)
        sizes = ((3, 7), (4, 2), (2, 5)) if not isinstance(spec.get("x") if isinstance(spec, dict)
                                                          else None, list) else ((2, 7), (2, 3))
        for s in sizes:
            y = torch.randn(*s, 8)
            torch.testing.assert_close(res.graph_module(y), m(y))
    assert any("x.size(0) >= 2" in g for g in
               bytegraph.export(m, dynamic_shapes={"x": {0: "b"}})(x).guards)


def test_export_dynamic_shapes_aten_and_round_trip():
    torch.manual_seed(0)
    m = _Seq()
    x = torch.randn(2, 5, 8)
    res = bytegraph.export(m, aten_graph=True, dynamic_shapes={"x": {0: "b"}})(x)
    y = torch.randn(6, 5, 8)
    torch.testing.assert_close(res.graph_module(y), m(y))
    buf = io.BytesIO()
    torch.save(res.graph_module, buf)
    buf.seek(0)
    gm = torch.load(buf, weights_only=False)
    torch.testing.assert_close(gm(y), m(y))


def test_export_dynamic_shapes_violation_and_bad_input():
    x = torch.randn(2, 5, 8)

    def fixed(x):
        return x.view(10, 8) if x.shape[0] == 2 else x
    with pytest.raises(bytegraph.ConstraintViolation, match="L\\['x'\\] dim 0"):
        bytegraph.export(fixed, dynamic_shapes={"x": {0: "b"}})(x)
    with pytest.raises(ValueError, match="not arguments"):
        bytegraph.export(fixed, dynamic_shapes={"y": {0: "b"}})(x)
    with pytest.raises(ValueError, match="not a dimension"):
        bytegraph.export(fixed, dynamic_shapes={"x": {5: "b"}})(x)
    with pytest.raises(TypeError, match="dynamic_shapes"):
        bytegraph.export(fixed, dynamic_shapes="x")
