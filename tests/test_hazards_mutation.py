"""Input mutation is detected from what the op does to the fake tensors, not from its name.

Each program writes into its first argument through a route a name-based check misses
(positional inplace=True, aten overloads, custom ops with mutates_args, foreach ops, views,
old-style library ops), then reads its second argument. It is called with distinct
tensors, then with ONE tensor passed twice: the compiled result must match eager's.

The backend is `copy_in_out`, a stand-in for functionalizing compilers: it runs the graph on
copies of its inputs and writes them back, which is correct only for inputs that do not
alias -- exactly what the distinct-inputs guard promises. A missed mutation shows up as a
wrong result on the aliased call (one inductor test shows the same on the real compiler).
"""
import pytest
import torch
import torch.nn.functional as F

from differential import assert_same, compile_fn, counters


def copy_in_out(gm, example_inputs):
    def run(*args):
        copies = [a.clone() for a in args]
        out = gm.forward(*copies)
        with torch.no_grad():
            for a, c in zip(args, copies):
                a.copy_(c)
        return out
    return run


# --- custom ops ------------------------------------------------------------------

@torch.library.custom_op("bg_hazards::add_one_", mutates_args=("x",))
def add_one_(x: torch.Tensor) -> None:
    x.add_(1)


@add_one_.register_fake
def _(x):
    return None


@torch.library.custom_op("bg_hazards::scale_into", mutates_args=("out",))
def scale_into(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    out.copy_(x * 3)
    return x + 1


@scale_into.register_fake
def _(x, out):
    return torch.empty_like(x)


# an old-style op: a Tensor(a!) schema and no ADInplaceOrView kernel, so the version counter
# of a fake argument does not move; only the schema says it writes
_LIB = torch.library.Library("bg_hazards_old", "DEF")
_LIB.define("double_(Tensor(a!) x) -> ()")


def _double_impl(x):
    x.mul_(2)


_LIB.impl("double_", _double_impl, "CompositeExplicitAutograd")
torch.library.register_fake("bg_hazards_old::double_", lambda x: None, lib=_LIB)


# --- programs: write into a, then read b ---------------------------------------------

def relu_positional_inplace(a, b):
    F.relu(a, True)
    return b * 2


def dropout_positional_inplace_p0(a, b):
    F.dropout(a, 0.0, True, True)
    return b * 2


def dropout_positional_inplace(a, b):
    F.dropout(a, 0.5, True, True)
    return b * 2


def aten_add_overload(a, b):
    torch.ops.aten.add_.Tensor(a, torch.ones(3))
    return b * 2


def aten_add_packet(a, b):
    torch.ops.aten.add_(a, 1.5)
    return b * 2


def aten_copy_overload(a, b):
    torch.ops.aten.copy_.default(a, torch.full((3,), 7.0))
    return b * 2


def tensor_copy_unbound(a, b):
    torch.Tensor.copy_(a, torch.full((3,), 5.0))
    return b * 2


def tensor_copy_getattr(a, b):
    getattr(a, "copy_")(torch.full((3,), 4.0))
    return b * 2


def custom_op_def(a, b):
    add_one_(a)
    return b * 2


def custom_op_ops_namespace(a, b):
    torch.ops.bg_hazards.add_one_(a)
    return b * 2


def custom_op_out_argument(a, b):
    r = scale_into(b, a)
    return r + b


def old_style_library_op(a, b):
    torch.ops.bg_hazards_old.double_(a)
    return b * 2


def foreach_inplace(a, b):
    torch._foreach_add_([a], 1.0)
    return b * 2


def foreach_aten_overload(a, b):
    torch.ops.aten._foreach_mul_.Scalar([a], 3.0)
    return b * 2


def view_select_inplace(a, b):
    a[0].mul_(2)
    return b * 2


def view_reshape_relu(a, b):
    a.view(-1)[1:].relu_()
    return b * 2


def view_transpose_copy(a, b):
    a.unsqueeze(0).t().copy_(torch.ones(3, 1))
    return b * 2


def view_detach_inplace(a, b):
    a.detach().add_(1)
    return b * 2


def view_custom_op(a, b):
    add_one_(a[1:])
    return b * 2


def out_argument(a, b):
    torch.add(torch.ones(3), 2, out=a)
    return b * 2


MUTATING = [relu_positional_inplace, dropout_positional_inplace_p0, dropout_positional_inplace,
            aten_add_overload, aten_add_packet, aten_copy_overload, tensor_copy_unbound,
            tensor_copy_getattr, custom_op_def, custom_op_ops_namespace, custom_op_out_argument,
            old_style_library_op, foreach_inplace, foreach_aten_overload, view_select_inplace,
            view_reshape_relu, view_transpose_copy, view_detach_inplace, view_custom_op,
            out_argument]


def _inputs():
    return torch.tensor([-1.0, 2.0, -3.0]), torch.tensor([4.0, -5.0, 6.0])


def _both(fn, compiled, make_args):
    """Run eager and compiled on equal fresh arguments (same RNG seed); compare results and
    the arguments afterwards."""
    e_args, c_args = make_args(), make_args()
    torch.manual_seed(0)
    expected = fn(*e_args)
    torch.manual_seed(0)
    actual = compiled(*c_args)
    assert_same(expected, actual)
    assert_same(e_args, c_args, path="args-after")


def _distinct_then_aliased(fn, backend=copy_in_out):
    compiled = compile_fn(fn, backend=backend, fullgraph=True)
    _both(fn, compiled, _inputs)
    assert counters()["stats"]["unique_graphs"] == 1

    def aliased():
        x = _inputs()[0]
        return (x, x)
    _both(fn, compiled, aliased)
    _both(fn, compiled, _inputs)      # distinct again: the first entry still serves it
    return compiled


@pytest.mark.parametrize("fn", MUTATING, ids=lambda f: f.__name__)
def test_mutation_then_aliased_inputs(fn):
    _distinct_then_aliased(fn)
    # a dropout with p=0 writes nothing (eager returns its input untouched): no guard needed
    expected = 0 if fn is dropout_positional_inplace_p0 else 1
    assert counters()["recompiles"]["total"] == expected


@pytest.mark.parametrize("fn", [custom_op_def, foreach_aten_overload, old_style_library_op],
                         ids=lambda f: f.__name__)
def test_op_returning_none_is_still_recorded(fn):
    """An op that writes into an argument and returns None must be a graph node (it used to
    be taken for a metadata query and dropped)."""
    compiled = compile_fn(fn, backend="eager", fullgraph=True)
    _both(fn, compiled, _inputs)
    graph = [r.graph for r in __import__("bytegraph").compile_metrics if r.graph is not None][-1]
    assert any(n.meta.get("mutates") for n in graph.graph.nodes)


@pytest.mark.parametrize("fn", [relu_positional_inplace, custom_op_def, view_select_inplace,
                                old_style_library_op], ids=lambda f: f.__name__)
def test_inference_tensors(fn):
    """Inference tensors have no version counter: the schema's write notes still see it."""
    with torch.inference_mode():
        _distinct_then_aliased(fn)
    assert counters()["recompiles"]["total"] == 1


def _reads_only(a, b):
    return a * 2 + b


def _mutates_a_temporary(a, b):
    t = a + 1
    t.relu_()
    t[0] = 5.0
    return t * b


@pytest.mark.parametrize("fn", [_reads_only, _mutates_a_temporary], ids=lambda f: f.__name__)
def test_no_input_mutation_no_distinct_guard(fn):
    """Writes into tensors the trace created do not reach the inputs: aliased inputs are fine
    and must not recompile."""
    _distinct_then_aliased(fn)
    assert counters()["recompiles"]["total"] == 0


def test_mutated_input_is_returned_with_its_identity():
    def f(a, b):
        r = F.relu(a, True)
        return r, r is a, b + 1
    compiled = compile_fn(f, backend="eager", fullgraph=True)
    x, y = _inputs()
    out = compiled(x, y)
    assert out[0] is x and out[1] is True


def test_inductor_aten_overload_aliased():
    """The real compiler: inductor functionalizes the graph and assumes distinct inputs."""
    def f(a, b):
        torch.ops.aten.add_.Tensor(a, b)
        return a * b
    _distinct_then_aliased(f, backend="inductor")
    assert counters()["recompiles"]["total"] == 1
