"""Autograd derivatives against closed-form ones: functional API, the memoized engine, its cache."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import sympy
import torch

from lightning_pinn.derivatives import Derivatives, hessian, jacobian, partial

COORDS = ("x", "y", "t")
SYMBOLS = sympy.symbols(COORDS)
X, Y, T = SYMBOLS
FIELDS = {  # closed-form fields of three coordinates, written once for sympy and once for torch
    "u": (sympy.sin(X) * sympy.exp(T) * (1 + Y**2), lambda x, y, t: torch.sin(x) * torch.exp(t) * (1 + y**2)),
    "v": (X**3 * T**2 + Y * X**2, lambda x, y, t: x**3 * t**2 + y * x**2),
    "w": (sympy.exp(X * Y) * sympy.cos(T), lambda x, y, t: torch.exp(x * y) * torch.cos(t)),
}
NAMES = tuple(FIELDS)
MULTI_INDICES = [wrt for order in range(4) for wrt in itertools.combinations_with_replacement(range(3), order)]
"""Every partial of order 0 to 3 along three coordinates: 1 + 3 + 6 + 10 of them."""


def points(n: int = 7, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, generator=generator, dtype=torch.float64) * 2 - 1).requires_grad_()


def fields_of(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([fn(x[:, 0], x[:, 1], x[:, 2]) for _, fn in FIELDS.values()], dim=1)


def exact(field: str, wrt: tuple[int, ...], x: torch.Tensor) -> np.ndarray:
    """The partial by sympy, evaluated in numpy: the independent truth."""
    expr = sympy.diff(FIELDS[field][0], *[SYMBOLS[j] for j in wrt]) if wrt else FIELDS[field][0]
    fn = sympy.lambdify(SYMBOLS, expr, "numpy")
    values = x.detach().numpy()
    return np.broadcast_to(fn(values[:, 0], values[:, 1], values[:, 2]), (x.shape[0],)).astype(np.float64)


@pytest.mark.parametrize("i, field", list(enumerate(NAMES)))
def test_partial_matches_sympy_for_every_partial_up_to_order_three(i, field):
    x = points()
    y = fields_of(x)
    for wrt in MULTI_INDICES:
        got = partial(y, x, i, *wrt)
        assert got.shape == (x.shape[0], 1)
        np.testing.assert_allclose(got.detach().numpy()[:, 0], exact(field, wrt, x), rtol=1e-12, atol=1e-12,
                                   err_msg=f"d{field}/d{[COORDS[j] for j in wrt]}")


@pytest.mark.parametrize("wrt", [w for w in MULTI_INDICES if len(w) >= 2])
def test_partial_does_not_depend_on_the_order_of_differentiation(wrt):
    x = points()
    y = fields_of(x)
    values = [partial(y, x, 0, *perm) for perm in set(itertools.permutations(wrt))]
    for value in values[1:]:
        torch.testing.assert_close(value, values[0], rtol=1e-13, atol=1e-13)


def test_handwritten_mixed_partials():
    """u_xt, u_xxt, v_xtt written out by hand, independent of sympy."""
    x = points(11, seed=3)
    y = fields_of(x)
    xs, ys, ts = (x[:, k].detach() for k in range(3))
    cases = [
        (0, (0, 2), torch.cos(xs) * torch.exp(ts) * (1 + ys**2)),  # u_xt
        (0, (0, 0, 2), -torch.sin(xs) * torch.exp(ts) * (1 + ys**2)),  # u_xxt
        (0, (0, 1, 2), torch.cos(xs) * torch.exp(ts) * 2 * ys),  # u_xyt
        (1, (0, 0, 2), 12 * xs * ts),  # v_xxt of x^3 t^2
        (1, (0, 2, 2), 6 * xs**2),  # v_xtt
        (1, (0, 0, 0), 6 * ts**2),  # v_xxx
        (1, (2, 2, 2), torch.zeros_like(xs)),  # v_ttt
        (2, (0, 1), torch.exp(xs * ys) * (1 + xs * ys) * torch.cos(ts)),  # w_xy
    ]
    for i, wrt, expected in cases:
        torch.testing.assert_close(partial(y, x, i, *wrt)[:, 0], expected, rtol=1e-12, atol=1e-12)


def test_jacobian_returns_one_column_or_the_whole_gradient_row():
    x = points()
    y = fields_of(x)
    for i, field in enumerate(NAMES):
        row = jacobian(y, x, i)
        assert row.shape == (x.shape[0], 3)
        for j in range(3):
            expected = exact(field, (j,), x)
            np.testing.assert_allclose(row[:, j].detach().numpy(), expected, rtol=1e-12, atol=1e-12)
            column = jacobian(y, x, i, j)
            assert column.shape == (x.shape[0], 1)
            np.testing.assert_allclose(column.detach().numpy()[:, 0], expected, rtol=1e-12, atol=1e-12)


def test_hessian_matches_sympy_and_is_symmetric():
    x = points()
    y = fields_of(x)
    for i, field in enumerate(NAMES):
        for j, k in itertools.product(range(3), repeat=2):
            value = hessian(y, x, i, j, k)
            assert value.shape == (x.shape[0], 1)
            np.testing.assert_allclose(value.detach().numpy()[:, 0], exact(field, tuple(sorted((j, k))), x),
                                       rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(value, hessian(y, x, i, k, j), rtol=1e-13, atol=1e-13)


def test_meshgrid_example_per_point_derivative():
    """f(t, k) = t k + 2 t k^2 on a meshgrid: df/dk = t + 4 t k at each point, not summed over points."""
    t, k = torch.meshgrid(torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64),
                          torch.tensor([2.0, 3.0], dtype=torch.float64), indexing="ij")
    x = torch.stack([t.reshape(-1), k.reshape(-1)], dim=1).requires_grad_()
    f = (x[:, 0] * x[:, 1] + 2 * x[:, 0] * x[:, 1] ** 2).unsqueeze(1)
    expected = torch.tensor([[9.0, 13.0], [18.0, 26.0], [36.0, 52.0]], dtype=torch.float64)
    assert torch.equal(jacobian(f, x, 0, 1).reshape(3, 2), expected)
    assert torch.equal(partial(f, x, 0, 1).reshape(3, 2), expected)
    D = Derivatives(x, f, coords=["t", "k"], fields=["f"])
    assert torch.equal(D("f", ["k"]).reshape(3, 2), expected)


class TanhNet(torch.nn.Module):
    """One hidden tanh layer, u = w2 . tanh(W1 x + b1) + b2: its derivatives have closed forms."""

    def __init__(self, d: int, width: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.hidden = torch.nn.Linear(d, width).double()
        self.out = torch.nn.Linear(width, 1).double()

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))

    def exact(self, x: torch.Tensor, wrt: tuple[int, ...]) -> torch.Tensor:
        s = torch.tanh(self.hidden(x.detach()))
        tanh_derivs = [s, 1 - s**2, -2 * s * (1 - s**2), (1 - s**2) * (6 * s**2 - 2)]  # d^n tanh / dz^n
        W, w2 = self.hidden.weight.detach(), self.out.weight.detach()[0]
        factor = torch.ones_like(w2)
        for j in wrt:
            factor = factor * W[:, j]
        value = (tanh_derivs[len(wrt)] * factor * w2).sum(dim=1)
        return value + self.out.bias.detach() if not wrt else value


def test_random_weight_network_derivatives_match_closed_form_per_point():
    net = TanhNet(d=2, width=16, seed=0)
    x = (torch.rand(33, 2, dtype=torch.float64) * 4 - 2).requires_grad_()
    y = net(x)
    D = Derivatives(x, y, coords=["x", "t"], fields=["u"])
    for wrt in [w for order in range(4) for w in itertools.combinations_with_replacement(range(2), order)]:
        expected = net.exact(x, wrt)
        torch.testing.assert_close(partial(y, x, 0, *wrt)[:, 0], expected, rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(D("u", [("x", "t")[j] for j in wrt]), expected, rtol=1e-11, atol=1e-12)


def test_derivatives_stay_differentiable_with_respect_to_network_weights():
    """The loss on u_xx must backpropagate to the weights (create_graph=True), with the closed-form gradient."""
    net = TanhNet(d=2, width=8, seed=1)
    x = torch.rand(20, 2, dtype=torch.float64).requires_grad_()
    D = Derivatives(x, net(x), coords=["x", "t"], fields=["u"])
    D("u", ["x", "x"]).sum().backward()
    s = torch.tanh(net.hidden(x.detach()))
    expected = (-2 * s * (1 - s**2) * net.hidden.weight.detach()[:, 0] ** 2).sum(dim=0)  # d(sum u_xx)/d w2
    torch.testing.assert_close(net.out.weight.grad[0], expected, rtol=1e-11, atol=1e-12)


def test_derivatives_engine_matches_sympy_by_name():
    x = points()
    y = fields_of(x)
    D = Derivatives(x, y, coords=COORDS, fields=NAMES)
    for field in NAMES:
        for wrt in MULTI_INDICES:
            got = D(field, [COORDS[j] for j in wrt])
            assert got.shape == (x.shape[0],)
            np.testing.assert_allclose(got.detach().numpy(), exact(field, wrt, x), rtol=1e-12, atol=1e-12)


def test_cache_computes_each_gradient_row_once():
    x = points()[:, [0, 2]].detach().requires_grad_()  # coordinates (x, t)
    y = (torch.sin(x[:, 0]) * torch.exp(x[:, 1])).unsqueeze(1)
    D = Derivatives(x, y, coords=["x", "t"], fields=["u"])
    asked = [("x",), ("t",), ("x", "x"), ("x", "t"), ("t", "x")]
    first = [D("u", wrt) for wrt in asked]
    assert D.rows_computed == 2  # the row of u (u_x, u_t) and the row of u_x (u_xx, u_xt)
    again = [D("u", wrt) for wrt in reversed(asked)]
    assert D.rows_computed == 2
    assert all(a is b for a, b in zip(first, reversed(again)))
    assert D("u", ("x", "t")) is D("u", ("t", "x"))
    xs, ts = x[:, 0].detach(), x[:, 1].detach()
    torch.testing.assert_close(first[3], torch.cos(xs) * torch.exp(ts), rtol=1e-13, atol=1e-13)
    assert D("u", ()) is D("u") and D.rows_computed == 2


def test_cache_orderings_of_a_third_order_partial_share_one_value():
    x = points()
    y = fields_of(x)
    D = Derivatives(x, y, coords=COORDS, fields=NAMES)
    values = [D("u", wrt) for wrt in set(itertools.permutations(("x", "x", "t")))]
    assert all(v is values[0] for v in values)
    assert D.rows_computed == 3  # rows of u, u_x, u_xx
    other = Derivatives(x, y, coords=COORDS, fields=NAMES)
    for wrt in [("t", "x", "x"), ("x", "t", "x")]:  # a different asking order reaches the same number
        torch.testing.assert_close(other("u", wrt), values[0], rtol=0, atol=0)


def test_nothing_is_written_to_x_grad():
    x = points()
    y = fields_of(x)
    D = Derivatives(x, y, coords=COORDS, fields=NAMES)
    for wrt in MULTI_INDICES:
        D("v", [COORDS[j] for j in wrt])
        partial(y, x, 2, *wrt)
    jacobian(y, x, 1)
    hessian(y, x, 0, 1, 2)
    assert x.grad is None


def test_affine_and_constant_fields_have_zero_higher_derivatives():
    x = points()
    y = torch.stack([2 * x[:, 0] - 3 * x[:, 2] + 1, torch.ones_like(x[:, 0]), x[:, 1] * 0.0], dim=1)
    for i in range(3):
        for wrt in MULTI_INDICES[1:]:
            expected = {(0, (0,)): 2.0, (0, (2,)): -3.0}.get((i, wrt), 0.0)
            assert torch.equal(partial(y, x, i, *wrt)[:, 0], torch.full((x.shape[0],), expected, dtype=torch.float64))
    D = Derivatives(x, y, coords=COORDS, fields=["a", "b", "c"])
    assert torch.equal(D("a", ["x", "x", "t"]), torch.zeros(x.shape[0], dtype=torch.float64))
    assert torch.equal(D("b", ["y"]), torch.zeros(x.shape[0], dtype=torch.float64))


def test_x_without_requires_grad_is_rejected():
    x = torch.rand(5, 2, dtype=torch.float64)
    y = x**2
    for call in (lambda: jacobian(y, x), lambda: hessian(y, x), lambda: partial(y, x, 0, 1),
                 lambda: Derivatives(x, y, ["x", "t"], ["u", "v"])):
        with pytest.raises(ValueError, match="requires_grad"):
            call()


def test_bad_shapes_are_rejected():
    x = torch.rand(5, 2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"expected y of shape \(N, m\)"):
        jacobian(x[:, 0] ** 2, x)
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        partial(x[:4] ** 2, x, 0, 0)
    with pytest.raises(ValueError, match="3 coordinate names for 2 columns"):
        Derivatives(x, x**2, coords=["x", "y", "t"], fields=["u", "v"])
    with pytest.raises(ValueError, match="1 field names for 2 columns"):
        Derivatives(x, x**2, coords=["x", "t"], fields=["u"])


def test_unknown_field_or_coordinate_names_list_the_valid_ones():
    x = torch.rand(5, 2, dtype=torch.float64, requires_grad=True)
    D = Derivatives(x, x**2, coords=["x", "t"], fields=["u", "v"])
    with pytest.raises(KeyError, match=r"unknown field 'w'; fields are \['u', 'v'\]"):
        D("w", ["x"])
    with pytest.raises(KeyError, match=r"unknown coordinate 'y'; coordinates are \['x', 't'\]"):
        D("u", ["x", "y"])
    assert D.rows_computed == 0


def test_float64_precision_is_kept():
    x = points()
    y = fields_of(x)
    assert partial(y, x, 0, 0, 2).dtype == torch.float64
    # exp(t) sin(x) (1 + y^2) at a known point, to the last digits
    x0 = torch.tensor([[0.5, 0.25, 0.75]], dtype=torch.float64, requires_grad=True)
    value = partial(fields_of(x0), x0, 0, 0, 0, 2).item()  # u_xxt = -sin(x) e^t (1 + y^2)
    assert value == pytest.approx(-math.sin(0.5) * math.exp(0.75) * (1 + 0.25**2), rel=1e-15)
