"""redteam5: Python numbers through graphs and symbolic ints/floats -- a negative constant base of
`**` (torch.fx prints operator.pow as `a ** b`, and `-2 ** n` is -(2 ** n)), powers torch's
SymInt/SymFloat refuse for a negative base (`n ** -1`, `s ** 2` of a negative float), and the
range guards of a float symbol (a non-integer bound must not be truncated)."""
import torch

import bytegraph
from redteam_dynamic_harness import diff

R = torch.randn


def test_negative_int_base_pow_of_tensor():
    def f(x):
        return (-2) ** x, (-2.0) ** x, (-0.0) ** x, float("-inf") ** x, -x ** 2, (-x) ** 2
    x = torch.tensor([2.0, 3.0])
    diff(f, [x, x + 1], dynamic=False)


def test_negative_base_pow_of_symbolic_int():
    def f(x, n):
        return x, (-2) ** n, (-3.0) ** n
    diff(f, [(R(1), 3), (R(1), 4), (R(1), 5), (R(1), 6)], dynamic=None, fullgraph=True)


def test_symbolic_int_negative_powers():
    def f(x, n):
        return x * (2 ** n), n ** -1, (-2) ** n, n ** 0.5, n ** 2, 2.0 ** n
    diff(f, [(R(2), 3), (R(2), 4), (R(2), -2), (R(2), 5), (R(2), -3), (R(2), 0)], dynamic=None,
         fullgraph=True)


def test_symbolic_float_powers_of_negative_values():
    def g(x, s):
        return x * s, s ** 2, s ** 0.5, s ** -1, (-1.5) ** s, 2 ** s
    diff(g, [(R(2), 1.5), (R(2), 2.5), (R(2), -2.5), (R(2), 3.0), (R(2), -4.0)], dynamic=True,
         fullgraph=True)


def test_float_symbol_with_a_fractional_range_bound():
    # a float symbol specialized to -2.5 has the range [-2.5, -2.5]: its range guards must accept
    # -2.5 (truncating gave `s >= -2`, a guard set rejecting its own call: eager from then on)
    def g(x, s):
        return x * s, s ** 2
    diff(g, [(R(2), -2.5), (R(2), -2.5), (R(2), 1.25)], dynamic=True, fullgraph=True)


def test_make_fx_symbolic_negative_constant_base():
    """make_fx's symbolic graphs print operator.pow too: `(-2) ** n` must not become -(2 ** n)."""
    def f(x):
        return x * ((-2) ** x.shape[0]) + (-3) ** (x.shape[0] - 1)
    gm = bytegraph.make_fx(f, tracing_mode="symbolic")(torch.randn(3))
    for n in (2, 3, 4, 5):
        x = torch.ones(n)
        torch.testing.assert_close(gm(x), f(x))
