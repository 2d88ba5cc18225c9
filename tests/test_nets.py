"""Network architectures: modified MLP, random weight factorization, periodic embedding, output transforms.

Truth is independent of the code under test: nested autograd for the jets, the formulas of
the papers written out by hand for the forward passes.
"""

from __future__ import annotations

import itertools
import math

import hydra.utils
import pytest
import torch

from lightning_pinn.derivatives.autograd import partial
from lightning_pinn.derivatives.jets import JetIndex, network_jet, unsupported_reason
from lightning_pinn.nets import MLP, ConstrainedNet, FactorizedLinear, ModifiedMLPLayers, PeriodicEmbedding
from lightning_pinn.problem.output_transform import OutputTransform


def requests(n_coords: int, max_order: int) -> list[tuple[int, ...]]:
    """Every pure and mixed partial up to ``max_order``, as tuples of coordinate positions."""
    return [wrt for order in range(1, max_order + 1)
            for wrt in itertools.combinations_with_replacement(range(n_coords), order)]


def assert_jets_match_autograd(net, x: torch.Tensor, max_order: int = 4, rtol: float = 1e-10) -> None:
    n_coords = x.shape[1]
    wanted = requests(n_coords, max_order)
    index = JetIndex(n_coords, [tuple(wrt.count(j) for j in range(n_coords)) for wrt in wanted])
    jet = network_jet(net, x, index)
    x = x.clone().requires_grad_(True)
    y = net(x)
    torch.testing.assert_close(jet.value.T, y, rtol=rtol, atol=0)
    for field in range(y.shape[1]):
        for wrt in wanted:
            row = index.position[tuple(wrt.count(j) for j in range(n_coords))]
            got = index.factorials[row] * jet.coeffs[field, row]
            expected = partial(y, x, field, *wrt)[:, 0]
            err = (got - expected).abs().max() / expected.abs().max().clamp_min(1e-3)
            assert err < rtol, f"field {field}, d/{wrt}: relative error {err:.2e}"


BOUNDS = [[0.0, 2.0], [-1.0, 1.0]]

NETS = {
    "modified": dict(architecture="modified", activation="tanh"),
    "modified-sin": dict(architecture="modified", activation="sin"),
    "factorized": dict(weight_factorization={"mean": 1.0, "std": 0.1}, activation="silu"),
    "factorized-residual": dict(weight_factorization=True, residual=True),
    "periodic": dict(periodic=[2.0, None], periodic_harmonics=2),
    "all-with-fourier": dict(architecture="modified", weight_factorization={"mean": 0.5, "std": 0.1},
                             periodic={0: 2.0}, periodic_harmonics=2, fourier_features=6, fourier_scale=0.5),
}


@pytest.mark.parametrize("name", list(NETS))
def test_jets_match_nested_autograd_up_to_order_4_in_float64(name):
    torch.manual_seed(0)
    net = MLP(2, 2, width=10, depth=3, bounds=BOUNDS, **NETS[name]).double()
    assert unsupported_reason(net, 2) is None
    x = torch.rand(12, 2, dtype=torch.float64) * torch.tensor([2.0, 2.0], dtype=torch.float64) - torch.tensor(
        [0.0, 1.0], dtype=torch.float64)
    assert_jets_match_autograd(net, x)


def test_three_coordinates_all_options_to_order_3():
    torch.manual_seed(1)
    net = MLP(3, 2, width=8, depth=2, architecture="modified", weight_factorization=True, periodic=[None, 1.5, 3.0],
              fourier_features=4, bounds=[[0, 1], [0, 1.5], [0, 3]]).double()
    assert unsupported_reason(net, 3) is None
    assert_jets_match_autograd(net, torch.rand(6, 3, dtype=torch.float64), max_order=3)


def test_modified_mlp_forward_is_the_gated_formula():
    torch.manual_seed(0)
    net = MLP(2, 3, width=7, depth=4, architecture="modified", activation="tanh").double()
    layers = net.layers
    assert isinstance(layers, ModifiedMLPLayers) and len(layers.hidden) == 4
    x = torch.randn(9, 2, dtype=torch.float64)

    def dense(linear, h):
        return h @ linear.weight.T + linear.bias

    U = torch.tanh(dense(layers.encoder_u, x))
    V = torch.tanh(dense(layers.encoder_v, x))
    H = torch.tanh(dense(layers.hidden[0], x))
    for k in range(1, 4):
        Z = torch.tanh(dense(layers.hidden[k], H))
        H = (1 - Z) * U + Z * V
    torch.testing.assert_close(net(x), dense(layers.output, H), rtol=1e-13, atol=1e-13)


def test_factorized_weight_equals_the_xavier_weight_at_init_and_both_factors_learn():
    torch.manual_seed(0)
    linear = torch.nn.Linear(5, 4).double()
    torch.nn.init.xavier_normal_(linear.weight)
    layer = FactorizedLinear.from_linear(linear, mean=1.0, std=0.1)
    torch.testing.assert_close(layer.weight, linear.weight.detach(), rtol=1e-15, atol=0)
    assert layer.s.shape == (4,) and 0.5 < layer.s.mean() < 1.5 and layer.s.std() > 0
    x = torch.randn(8, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(x), linear(x), rtol=1e-14, atol=1e-14)

    # in an MLP: the same seed gives the same function with and without the factorization
    torch.manual_seed(3)
    plain = MLP(2, 1, width=16, depth=3, bounds=BOUNDS)
    torch.manual_seed(3)
    factorized = MLP(2, 1, width=16, depth=3, bounds=BOUNDS, weight_factorization={"mean": 1.0, "std": 0.1})
    linears = [m for m in factorized.modules() if isinstance(m, FactorizedLinear)]
    assert len(linears) == 4 and not any(type(m) is torch.nn.Linear for m in factorized.modules())
    for a, b in zip([m for m in plain.modules() if isinstance(m, torch.nn.Linear)], linears):
        torch.testing.assert_close(b.weight, a.weight, rtol=1e-6, atol=1e-7)
    x = torch.rand(10, 2)
    torch.testing.assert_close(factorized(x), plain(x), rtol=1e-5, atol=1e-6)
    factorized(x).square().sum().backward()
    for m in linears:
        assert m.s.grad is not None and m.s.grad.abs().sum() > 0
        assert m.v.grad is not None and m.v.grad.abs().sum() > 0


def test_zero_std_puts_every_scale_at_the_mean():
    layer = FactorizedLinear(3, 6, mean=0.5, std=0.0)
    torch.testing.assert_close(layer.s, torch.full((6,), 0.5))
    torch.testing.assert_close(layer.bias, torch.zeros(6))
    with pytest.raises(ValueError, match="-1.0"):
        FactorizedLinear(3, 6, std=-1.0)
    with pytest.raises(ValueError, match=r"\(6, 3\)"):
        FactorizedLinear(3, 6, weight=torch.zeros(3, 6))


def test_periodic_embedding_columns():
    emb = PeriodicEmbedding(3, {1: 4.0}, harmonics=2).double()
    x = torch.tensor([[0.3, 1.0, -2.0]], dtype=torch.float64)
    angles = torch.tensor([2 * math.pi / 4.0, 4 * math.pi / 4.0], dtype=torch.float64)
    expected = torch.cat([x[:, [0, 2]], torch.cos(angles)[None], torch.sin(angles)[None]], dim=1)
    torch.testing.assert_close(emb(x), expected, rtol=0, atol=1e-15)
    assert emb.out_features == 6


@pytest.mark.parametrize("architecture", ["mlp", "modified"])
def test_network_and_its_x_derivatives_are_exactly_periodic(architecture):
    torch.manual_seed(0)
    period = 2.0
    net = MLP(2, 2, width=12, depth=3, architecture=architecture, bounds=BOUNDS, periodic=[period, None],
              periodic_harmonics=2, fourier_features=5, weight_factorization=True)
    net = net.double()  # built in float32 first, as PINNModule does: periodic to float64 rounding all the same
    x = torch.rand(50, 2, dtype=torch.float64) * 2 - torch.tensor([0.0, 1.0], dtype=torch.float64)
    index = JetIndex(2, [(2, 0), (1, 1)])
    base = network_jet(net, x, index)
    assert base.value.abs().max() > 1e-3
    for shift in (1, -1, 3):
        moved = x + torch.tensor([shift * period, 0.0], dtype=torch.float64)
        torch.testing.assert_close(net(moved), net(x), rtol=0, atol=1e-12)
        coeffs = network_jet(net, moved, index).coeffs
        for row in range(len(index)):  # u_x, u_t, u_xx / 2, u_xt: to rounding, relative to their size
            scale = base.coeffs[:, row].abs().max()
            assert (coeffs[:, row] - base.coeffs[:, row]).abs().max() < 1e-12 * scale, index.multi[row]
    xg = x.clone().requires_grad_(True)
    xs = (x + torch.tensor([period, 0.0], dtype=torch.float64)).requires_grad_(True)
    u_x, u_x_shifted = partial(net(xg), xg, 0, 0), partial(net(xs), xs, 0, 0)
    assert (u_x_shifted - u_x).abs().max() < 1e-12 * u_x.abs().max()


def test_config_rebuilds_an_identical_network():
    for options in NETS.values():
        torch.manual_seed(0)
        net = MLP(2, 2, width=6, depth=2, bounds=BOUNDS, **options)
        config = net.to_config()
        rebuilt = hydra.utils.instantiate(config)
        assert type(rebuilt) is MLP and rebuilt.to_config() == config
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
        rebuilt.load_state_dict(net.state_dict())
        x = torch.rand(7, 2)
        torch.testing.assert_close(rebuilt(x), net(x), rtol=0, atol=0)
    assert MLP(2, 1, periodic={0: 2.0}).to_config()["periodic"] == [2.0, None]
    assert MLP(2, 1, weight_factorization=True).to_config()["weight_factorization"] == {"mean": 1.0, "std": 0.1}


def test_a_config_from_before_these_options_builds_the_plain_mlp():
    old = {"_target_": "lightning_pinn.nets.MLP", "in_features": 2, "out_features": 1, "width": 4, "depth": 2,
           "activation": "tanh", "bounds": [[-1.0, 1.0], [0.0, 1.0]], "fourier_features": 0,
           "fourier_scale": 1.0, "residual": False}
    net = hydra.utils.instantiate(old)
    assert sorted(net.state_dict()) == ["layers.0.bias", "layers.0.weight", "layers.2.bias", "layers.2.weight",
                                        "layers.4.bias", "layers.4.weight", "scaling.centre", "scaling.half_width"]
    assert net.to_config() == {**old, "architecture": "mlp", "weight_factorization": None, "periodic": None,
                            "periodic_harmonics": 1}


@pytest.mark.parametrize("options, message", [
    (dict(architecture="kan"), "'kan'"),
    (dict(weight_factorization={"mean": 1.0, "std": -0.1}), "-0.1"),
    (dict(weight_factorization={"mean": 1.0, "sigma": 0.1}), "sigma"),
    (dict(weight_factorization=0.1), "0.1"),
    (dict(periodic=[0.0, None]), "0.0"),
    (dict(periodic=[-2.0, None]), "-2.0"),
    (dict(periodic=[2.0]), r"\[2.0\]"),
    (dict(periodic=[2.0, None, None]), "got 3"),
    (dict(periodic={2: 1.0}), "2"),
    (dict(periodic=[2.0, None], periodic_harmonics=0), "0"),
    (dict(architecture="modified", residual=True), "residual=True"),
    (dict(architecture="modified", depth=1), "got 1"),
])
def test_bad_values_raise_quoting_them(options, message):
    with pytest.raises(ValueError, match=message):
        MLP(2, 1, **{"width": 4, "depth": 2, **options})


def test_pinn_module_runs_every_new_option_on_jets_and_agrees_with_autograd(burgers_spec):
    from lightning_pinn import PINNModule, Problem

    net = {"_target_": "lightning_pinn.nets.MLP", "width": 8, "depth": 2, "architecture": "modified",
           "weight_factorization": {"mean": 1.0, "std": 0.1}, "periodic": [2.0, None], "fourier_features": 4}
    losses = {}
    assert PINNModule(Problem(**burgers_spec), net, derivatives="jets").derivative_engine.name == "jets"
    for engine in ("jets", "autograd"):
        torch.manual_seed(0)
        module = PINNModule(Problem(**burgers_spec), net, derivatives=engine).double()
        losses[engine] = module.loss_terms(module.draw_points())
    for name, value in losses["jets"].items():
        torch.testing.assert_close(value, losses["autograd"][name], rtol=1e-10, atol=0)


def test_a_constrained_net_is_the_transform_of_the_raw_outputs_and_its_jets_match_autograd():
    torch.manual_seed(0)
    transform = OutputTransform({"u": "x*(1 - y)*u + sin(a*x)*exp(-y)", "w": "2.5"}, ["x", "y"], ["u", "v", "w"],
                                params={"a": 3.0})
    net = ConstrainedNet(MLP(2, 3, width=8, depth=2), transform).double()
    x = torch.rand(6, 2, dtype=torch.float64)
    raw = net.net(x)
    expected = torch.stack([x[:, 0] * (1 - x[:, 1]) * raw[:, 0] + torch.sin(3 * x[:, 0]) * torch.exp(-x[:, 1]),
                            raw[:, 1], torch.full((6,), 2.5, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(net(x), expected, rtol=1e-14, atol=1e-14)
    assert unsupported_reason(net, 2) is None
    assert_jets_match_autograd(net, x, max_order=3)


# ----- PirateNet ---------------------------------------------------------------------------------------------------


def pirate(width=10, depth=3, **options):
    torch.manual_seed(0)
    net = MLP(2, 2, width=width, depth=depth, bounds=BOUNDS, architecture="pirate", fourier_features=width // 2,
              **options).double()
    with torch.no_grad():
        net.layers.alpha.uniform_(0.3, 0.9)  # zero at init would hide every block from the checks
    return net


@pytest.mark.parametrize("options", [{}, {"weight_factorization": True, "activation": "sin"}, {"periodic": [2.0, None]}],
                         ids=["tanh", "factorized-sin", "periodic"])
def test_pirate_jets_match_nested_autograd_up_to_order_4(options):
    net = pirate(**options)
    assert unsupported_reason(net, 2) is None
    x = torch.rand(12, 2, dtype=torch.float64) * 2 - torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert_jets_match_autograd(net, x)


def test_pirate_forward_is_the_papers_block_and_starts_linear_in_the_embedding():
    net = pirate()
    layers = net.layers
    x = torch.rand(9, 2, dtype=torch.float64)
    embedded = net.embedding(net.scaling(x))

    def dense(linear, h):
        return h @ linear.weight.T + linear.bias

    U, V = torch.tanh(dense(layers.encoder_u, embedded)), torch.tanh(dense(layers.encoder_v, embedded))
    H = embedded
    for k, (w1, w2, w3) in enumerate(layers.blocks):
        F = torch.tanh(dense(w1, H))
        Z1 = F * U + (1 - F) * V
        G = torch.tanh(dense(w2, Z1))
        Z2 = G * U + (1 - G) * V
        H = layers.alpha[k] * torch.tanh(dense(w3, Z2)) + (1 - layers.alpha[k]) * H
    torch.testing.assert_close(net(x), dense(layers.output, H), rtol=1e-13, atol=1e-13)

    fresh = MLP(2, 2, width=10, depth=3, bounds=BOUNDS, architecture="pirate", fourier_features=5).double()
    assert torch.equal(fresh.layers.alpha, torch.zeros(3, dtype=torch.float64))
    embedded = fresh.embedding(fresh.scaling(x))
    torch.testing.assert_close(fresh(x), dense(fresh.layers.output, embedded), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("options, message", [
    (dict(fourier_features=0), "^fourier_features: PirateNet's blocks need an embedding as wide as the network, "
                               r"2 \* fourier_features = width = 8, but the embedding has 2 features$"),
    (dict(fourier_features=3), "but the embedding has 6 features$"),
    (dict(fourier_features=4, residual=True), "residual=True"),
])
def test_pirate_refuses_an_embedding_of_another_width(options, message):
    with pytest.raises(ValueError, match=message):
        MLP(2, 1, width=8, depth=2, architecture="pirate", **options)


def test_the_shipped_pirate_config_builds_within_the_dense_quasi_newton_limit():
    from pathlib import Path

    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[1] / "conf" / "net"
    config = OmegaConf.merge(OmegaConf.load(conf / "mlp.yaml"), OmegaConf.load(conf / "pirate.yaml"))
    config.pop("defaults")
    net = hydra.utils.instantiate(config, in_features=2, out_features=1)
    n = sum(p.numel() for p in net.parameters())
    assert isinstance(net.layers, torch.nn.Module) and type(net.layers).__name__ == "PirateLayers"
    assert 8 * n * n < 2**30, n  # the inverse Hessian of QuasiNewton's default max_hessian_bytes
