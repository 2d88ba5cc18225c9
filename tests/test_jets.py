"""Forward-mode jets against nested autograd: every order up to 4, mixed partials, several fields."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from lightning_pinn import MLP
from lightning_pinn.derivatives.autograd import partial
from lightning_pinn.derivatives.jets import (
    Jet,
    JetDerivatives,
    JetIndex,
    JetUnsupportedError,
    network_jet,
    register_jet_rule,
    unsupported_reason,
)

COORDS = ["x", "y", "t"]


def all_requests(n_coords: int, max_order: int):
    """Every multiset of coordinates up to ``max_order``: every pure and mixed partial."""
    return [wrt for order in range(1, max_order + 1)
            for wrt in itertools.combinations_with_replacement(range(n_coords), order)]


def assert_jets_match_autograd(net, n_coords, n_fields, dtype, rtol, max_order=4, n=16):
    torch.manual_seed(1)
    net = net.to(dtype)
    x = (2 * torch.rand(n, n_coords, dtype=dtype) - 1).requires_grad_(True)
    y = net(x)
    coords, fields = COORDS[:n_coords], [f"u{k}" for k in range(n_fields)]
    requests = all_requests(n_coords, max_order)
    required = {(f, tuple(coords[j] for j in wrt)) for f in fields for wrt in requests}
    jets = JetDerivatives(net, x.detach(), coords, fields, required)
    assert jets.passes == 1
    torch.testing.assert_close(jets.y, y, rtol=rtol, atol=0)
    for i, field in enumerate(fields):
        for wrt in requests:
            expected = partial(y, x, i, *wrt)[:, 0]
            got = jets(field, [coords[j] for j in wrt])
            scale = expected.abs().max().clamp_min(1e-3)
            err = (got - expected).abs().max() / scale
            assert err < rtol, f"{field} d/{[coords[j] for j in wrt]}: relative error {err:.2e}"


ACTIVATIONS = ["tanh", "sin", "sigmoid", "softplus", "gelu", "silu"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_partial_up_to_order_4_matches_autograd_in_float64(activation):
    torch.manual_seed(0)
    net = MLP(2, 2, width=12, depth=3, activation=activation, bounds=[[-1, 2], [0, 1]])
    assert_jets_match_autograd(net, 2, 2, torch.float64, rtol=1e-10)


@pytest.mark.parametrize("activation", ["tanh", "sin", "gelu"])
def test_every_partial_up_to_order_4_matches_autograd_in_float32(activation):
    torch.manual_seed(0)
    net = MLP(2, 2, width=12, depth=3, activation=activation)
    assert_jets_match_autograd(net, 2, 2, torch.float32, rtol=1e-5)


def test_three_coordinates_three_fields_with_fourier_features_and_skip_connections():
    torch.manual_seed(0)
    net = MLP(3, 3, width=10, depth=3, fourier_features=6, fourier_scale=0.5, residual=True,
              bounds=[[0, 1], [0, 2], [0, 1]])
    assert_jets_match_autograd(net, 3, 3, torch.float64, rtol=1e-10, max_order=3, n=8)


def test_a_plain_sequential_of_linear_layers_and_activations_is_supported():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 8), nn.SiLU(), nn.Linear(8, 1))
    assert unsupported_reason(net, 2) is None
    assert_jets_match_autograd(net, 2, 1, torch.float64, rtol=1e-10)


def test_known_closed_form_derivatives_of_a_tiny_network():
    # u(x) = tanh(x): u' = 1 - tanh^2, u'' = -2 tanh (1 - tanh^2), u''' = (6 tanh^2 - 2)(1 - tanh^2)
    net = nn.Sequential(nn.Linear(1, 1), nn.Tanh())
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.zero_()
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    net = net.double()
    D = JetDerivatives(net, x, ["x"], ["u"], {("u", ("x",) * 3)})
    t = torch.tanh(x[:, 0])
    torch.testing.assert_close(D("u", ["x"]), 1 - t**2)
    torch.testing.assert_close(D("u", ["x", "x"]), -2 * t * (1 - t**2))
    torch.testing.assert_close(D("u", ["x", "x", "x"]), (6 * t**2 - 2) * (1 - t**2))


def test_a_request_outside_the_set_runs_a_second_pass_and_is_remembered():
    torch.manual_seed(0)
    net = MLP(2, 1, width=8, depth=2).double()
    x = torch.rand(5, 2, dtype=torch.float64)
    required = {("u", ("x",))}
    D = JetDerivatives(net, x, ["x", "t"], ["u"], required)
    D("u", ["t", "x"])
    assert D.passes == 2 and ("u", ("t", "x")) in required


def test_index_is_closed_downwards_and_sorted_by_order():
    index = JetIndex(2, [(2, 1)])
    assert index.multi == [(1, 0), (0, 1), (2, 0), (1, 1), (2, 1)]
    assert index.factorials == [1, 1, 2, 1, 2]
    with pytest.raises(ValueError, match="above the maximum"):
        JetIndex(1, [(9,)])


def test_unsupported_modules_are_named():
    net = nn.Sequential(nn.Linear(2, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    assert unsupported_reason(net, 2) == "net.1 is a LayerNorm, which has no jet rule"
    approx = nn.Sequential(nn.Linear(2, 4), nn.GELU(approximate="tanh"), nn.Linear(4, 1))
    assert "approximate='tanh'" in unsupported_reason(approx, 2)
    with pytest.raises(JetUnsupportedError, match="LayerNorm"):
        network_jet(net, torch.rand(3, 2), JetIndex(2, [(1, 0)]))


def test_a_subclass_or_a_hook_that_changes_forward_is_detected():
    class Shifted(MLP):
        def forward(self, x):
            return super().forward(x) + 1.0

    assert unsupported_reason(Shifted(2, 1, width=4, depth=1), 2) == "net is a Shifted, which has no jet rule"
    hooked = MLP(2, 1, width=4, depth=1)
    hooked.register_forward_hook(lambda module, args, out: out + 1.0)
    assert "does not reproduce" in unsupported_reason(hooked, 2)


def test_custom_layers_join_through_register_jet_rule():
    class Double(nn.Module):
        def forward(self, x):
            return 2 * x

    net = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), Double(), nn.Linear(4, 1))
    assert "Double" in unsupported_reason(net, 2)
    register_jet_rule(Double)(lambda module, jet, index, path: Jet(2 * jet.value, 2 * jet.coeffs))
    assert unsupported_reason(net, 2) is None
    assert_jets_match_autograd(net, 2, 1, torch.float64, rtol=1e-10, max_order=3)


def test_the_jet_of_a_product_matches_autograd():
    from lightning_pinn.derivatives.jets import jet_through, product

    torch.manual_seed(0)
    h = nn.Sequential(nn.Linear(2, 5), nn.Tanh()).double()
    g = nn.Sequential(nn.Linear(2, 5), nn.Sigmoid()).double()
    x = torch.rand(7, 2, dtype=torch.float64, requires_grad=True)
    requests = all_requests(2, 3)
    index = JetIndex(2, [tuple(wrt.count(j) for j in range(2)) for wrt in requests])
    seed = index.seed(x.detach())
    jet = product(jet_through(h, seed, index), jet_through(g, seed, index), index)
    y = h(x) * g(x)
    for i in range(5):
        for wrt in requests:
            a = tuple(wrt.count(j) for j in range(2))
            row = index.position[a]
            got = index.factorials[row] * jet.coeffs[i, row]
            torch.testing.assert_close(got, partial(y, x, i, *wrt)[:, 0], rtol=1e-10, atol=1e-12)


TAYLOR_FUNCTIONS = {
    "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "exp": torch.exp,
    "sinh": torch.sinh, "cosh": torch.cosh, "log": torch.log, "sqrt": torch.sqrt,
    "normal_cdf": lambda v: 0.5 * (1 + torch.erf(v / math.sqrt(2))),
}


def test_the_taylor_catalogue_is_what_the_tests_know_and_names_functions_of_the_language():
    from lightning_pinn.derivatives.taylor import TAYLOR
    from lightning_pinn.problem.expressions import FUNCTIONS

    assert set(TAYLOR) == set(TAYLOR_FUNCTIONS)
    jet_names = {f.jet for f in FUNCTIONS.values()}
    assert set(TAYLOR) - jet_names == {"normal_cdf"}  # GELU's CDF is for activations only


@pytest.mark.parametrize("name", sorted(TAYLOR_FUNCTIONS))
@pytest.mark.parametrize("order", [0, 4, 6])  # tanh switches from closed forms to polynomials above 4
def test_every_taylor_coefficient_is_the_derivative_by_autograd_over_n_factorial(name, order):
    from lightning_pinn.derivatives.taylor import TAYLOR

    v = torch.linspace(0.2, 1.7, 9, dtype=torch.float64, requires_grad=True)  # inside log's and sqrt's domain
    coefficients = TAYLOR[name](v, order)
    assert len(coefficients) == order + 1
    derivative = TAYLOR_FUNCTIONS[name](v)
    for n, coefficient in enumerate(coefficients):
        expected = derivative / math.factorial(n)
        torch.testing.assert_close(coefficient.detach(), expected.detach(), rtol=1e-11, atol=1e-12)
        if n < order:
            (derivative,) = torch.autograd.grad(derivative.sum(), v, create_graph=True)


def test_activations_take_their_coefficients_from_the_catalogue(monkeypatch):
    """One catalogue: changing its tanh changes the jet of an ``nn.Tanh``."""
    from lightning_pinn.derivatives import taylor

    x = torch.rand(4, 1, dtype=torch.float64)
    net = nn.Sequential(nn.Linear(1, 3), nn.Tanh()).double()
    before = network_jet(net, x, JetIndex(1, [(2,)]))
    monkeypatch.setitem(taylor.TAYLOR, "tanh", lambda v, order: [2 * c for c in taylor.tanh_taylor(v, order)])
    after = network_jet(net, x, JetIndex(1, [(2,)]))
    torch.testing.assert_close(after.coeffs, 2 * before.coeffs)
