"""Conditions beyond values on regions: normal derivatives, periodic pairs, observations, hard constraints.

Residuals are evaluated with analytic "networks" (plain functions of the points), so every
expected value is known in closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io
import torch
from hydra.utils import instantiate

from lightning_pinn import PINNModule, Problem
from lightning_pinn.points import Collocation
from lightning_pinn.nets import MLP
from lightning_pinn.residuals import residuals


def field_x2y_plus_t(x: torch.Tensor) -> torch.Tensor:
    """u = x^2 y + t, so grad u = (2 x y, x^2, 1)."""
    return (x[:, 0] ** 2 * x[:, 1] + x[:, 2])[:, None]


def draw(problem: Problem) -> dict[str, torch.Tensor]:
    return Collocation(problem, "sobol", 0).draw("cpu", torch.float64)


def neumann_problem(residual: str, region="boundary") -> Problem:
    return Problem(coords={"x": [0, 1], "y": [0, 2], "t": [0, 1]}, fields=["u"], equations={},
                   conditions={"flux": {"region": region, "residual": residual, "points": 64}})


def test_normal_derivative_on_box_faces_is_grad_dot_outward_normal():
    problem = neumann_problem("u_n")
    x = draw(problem)["flux"]
    assert x.shape == (64, 6)  # coordinates, then the outward normal
    r = residuals(problem, field_x2y_plus_t, {"flux": x})["flux"]
    px, py = x[:, 0], x[:, 1]
    expected = torch.where(px == 1, 2 * px * py, torch.where(px == 0, -2 * px * py,
                           torch.where(py == 2, px**2, -px**2)))
    torch.testing.assert_close(r, expected)
    assert torch.all(x[:, 5] == 0)  # "boundary" is spatial: no normal component along time


def test_robin_condition_combines_normal_derivative_and_value():
    problem = neumann_problem("u_n + 3*u - 1", region="x=1")
    x = draw(problem)["flux"]
    r = residuals(problem, field_x2y_plus_t, {"flux": x})["flux"]
    u = x[:, 1] + x[:, 2]
    torch.testing.assert_close(r, 2 * x[:, 1] + 3 * u - 1)


def test_normal_derivative_inside_the_domain_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match=r"conditions.flux: normal derivatives .* region 'interior' has no outward normal"):
        neumann_problem("u_n", region="interior")
    with pytest.raises(ValueError, match="equations.pde: normal derivatives"):
        Problem(coords={"x": [0, 1]}, fields=["u"], equations={"pde": "u_n"})


def test_a_coordinate_named_n_keeps_its_meaning():
    problem = Problem(coords={"n": [0, 1]}, fields=["u"], equations={"pde": "u_n - 1"})
    r = residuals(problem, lambda x: 3 * x, {"interior": draw(problem)["interior"]})["pde"]
    torch.testing.assert_close(r, torch.full_like(r, 2.0))


def periodic_problem(**condition) -> Problem:
    return Problem(coords={"x": [-1, 1], "t": [0, 1]}, fields=["u"], equations={},
                   conditions={"periodic": {"periodic": "x", "points": 32, **condition}})


def test_periodic_points_come_in_pairs_on_opposite_faces():
    x = draw(periodic_problem())["periodic"]
    assert x.shape == (64, 2)
    assert torch.all(x[:32, 0] == -1) and torch.all(x[32:, 0] == 1)
    torch.testing.assert_close(x[:32, 1], x[32:, 1])
    assert len(set(x[:32, 1].tolist())) == 32


def test_periodic_residual_compares_values_and_first_derivatives_across_faces():
    problem = periodic_problem()
    x = {"periodic": draw(problem)["periodic"]}
    periodic = residuals(problem, lambda p: torch.sin(math.pi * p[:, :1]) * torch.exp(p[:, 1:]), x)["periodic"]
    torch.testing.assert_close(periodic, torch.zeros(64, dtype=torch.float64), atol=1e-12, rtol=0)
    # u = x^2 + x: u(-1) - u(1) = -2 and u_x(-1) - u_x(1) = -4, for every pair
    r = residuals(problem, lambda p: p[:, :1] ** 2 + p[:, :1], x)["periodic"]
    torch.testing.assert_close(r, torch.cat([torch.full((32,), -2.0), torch.full((32,), -4.0)]).double())


def test_periodic_residual_takes_a_list_of_expressions():
    problem = periodic_problem(residual=["u_xx"])
    r = residuals(problem, lambda p: p[:, :1] ** 3, {"periodic": draw(problem)["periodic"]})["periodic"]
    torch.testing.assert_close(r, torch.full((32,), -12.0, dtype=torch.float64))  # 6x at -1 minus at 1


@pytest.mark.parametrize("condition, fragment", [
    ({"periodic": "z"}, "conditions.periodic.periodic: 'z' is not a coordinate"),
    ({"periodic": "x", "region": "t=0"}, "exactly one of 'region', 'periodic' or 'data'"),
    ({"periodic": "x", "residual": [1.0]}, "conditions.periodic.residual: expected a list of expressions"),
])
def test_bad_periodic_conditions_name_the_key(condition, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        Problem(coords={"x": [-1, 1], "t": [0, 1]}, fields=["u"], equations={"pde": "u_t"},
                conditions={"periodic": condition})


def exact(p: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.sin(p[:, 0]) * p[:, 1], p[:, 0] + p[:, 1]], dim=1)


def write_observations(path, x, t, **fields):
    columns = {"x": x, "t": t, **fields}
    if path.suffix == ".npz":
        np.savez(path, **columns)
    elif path.suffix == ".csv":
        np.savetxt(path, np.stack(list(columns.values()), 1), delimiter=",", header=",".join(columns), comments="")
    else:
        scipy.io.savemat(path, {k: v[:, None] for k, v in columns.items()})


def data_problem(path, **extra) -> Problem:
    return Problem(coords={"x": [0, 1], "t": [0, 1]}, fields=["u", "v"], equations={},
                   conditions={"observed": {"data": str(path), **extra}})


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".mat"])
def test_data_condition_is_the_misfit_of_the_observed_fields(tmp_path, suffix):
    rng = np.random.default_rng(1)
    x, t = rng.random(20), rng.random(20)
    path = tmp_path / f"obs{suffix}"
    write_observations(path, x, t, u=np.sin(x) * t)  # only u is observed
    problem = data_problem(path)
    points = draw(problem)["observed"]
    assert points.shape == (20, 3)
    torch.testing.assert_close(points[:, 0], torch.tensor(x))
    r = residuals(problem, exact, {"observed": points})["observed"]
    torch.testing.assert_close(r, torch.zeros(20, dtype=torch.float64), atol=1e-12, rtol=0)
    shifted = residuals(problem, lambda p: exact(p) + torch.tensor([0.5, 9.0]), {"observed": points})["observed"]
    torch.testing.assert_close(shifted, torch.full((20,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".mat"])
def test_a_file_of_one_observation_is_one_row(tmp_path, suffix):
    path = tmp_path / f"one{suffix}"
    write_observations(path, np.array([0.25]), np.array([0.5]), u=np.array([2.0]))
    points = draw(data_problem(path))["observed"]
    torch.testing.assert_close(points, torch.tensor([[0.25, 0.5, 2.0]], dtype=points.dtype))


def test_data_condition_with_two_fields_and_a_subset_of_rows(tmp_path):
    rng = np.random.default_rng(2)
    x, t = rng.random(50), rng.random(50)
    path = tmp_path / "obs.npz"
    write_observations(path, x, t, u=np.sin(x) * t + 1, v=x + t)
    problem = data_problem(path, points=10)
    points = draw(problem)["observed"]
    assert points.shape == (10, 4)
    r = residuals(problem, exact, {"observed": points})["observed"]
    torch.testing.assert_close(r, torch.cat([torch.full((10,), -1.0), torch.zeros(10)]).double())


@pytest.mark.parametrize("columns, fragment", [
    ({"x": 1, "t": 1, "u": 1, "w": 1}, "columns ['w'] that are neither coordinates"),
    ({"x": 1, "u": 1}, "lacks the coordinate column(s) ['t']"),
    ({"x": 1, "t": 1}, "has no column for any field ['u', 'v']"),
    ({"x": 1, "t": 2, "u": 1}, "columns of different lengths"),
])
def test_data_files_that_do_not_match_the_problem_are_errors_naming_the_key(tmp_path, columns, fragment):
    path = tmp_path / "bad.npz"
    np.savez(path, **{name: np.arange(3.0 * n) for name, n in columns.items()})
    with pytest.raises(ValueError) as info:
        data_problem(path)
    assert "conditions.observed.data" in str(info.value) and fragment in str(info.value)


def test_missing_data_file_and_residual_on_data_are_errors(tmp_path):
    with pytest.raises(ValueError, match="conditions.observed.data: no observation file"):
        data_problem(tmp_path / "nothing.npz")
    path = tmp_path / "obs.npz"
    write_observations(path, np.zeros(2), np.zeros(2), u=np.zeros(2))
    with pytest.raises(ValueError, match="conditions.observed.residual: a data condition"):
        data_problem(path, residual="u")


def reference_uv(x, t):
    return {"u": np.sin(x) * t, "v": x + t}


def test_data_from_the_reference_samples_it_without_files():
    problem = Problem(coords={"x": [0, 1], "t": [0, 1]}, fields=["u", "v"], equations={}, reference=reference_uv,
                      conditions={"observed": {"data": "reference", "points": 30}})
    points = draw(problem)["observed"]
    assert points.shape == (30, 4)
    r = residuals(problem, exact, {"observed": points})["observed"]
    torch.testing.assert_close(r, torch.zeros(60, dtype=torch.float64), atol=1e-12, rtol=0)


def transformed_problem(**transform) -> Problem:
    return Problem(coords={"x": [0, 1]}, fields=["u", "v"], params={"a": 2.0}, equations={"pde": "u_xx + v"},
                   output_transform=transform)


def test_output_transform_makes_dirichlet_values_exact_for_any_network():
    torch.manual_seed(0)
    module = PINNModule(transformed_problem(u="x*(1 - x)*u + a*x"), MLP(1, 2, width=8, depth=2))
    ends = torch.tensor([[0.0], [1.0]])
    u = module(ends)[:, 0].detach()
    torch.testing.assert_close(u, torch.tensor([0.0, 2.0]))
    raw = module.net.net(ends)
    torch.testing.assert_close(module(ends)[:, 1], raw[:, 1])  # v has no transform
    # the residual differentiates through the transform: u_xx = -2 N + 2 (1 - 2x) N' + x (1 - x) N''
    x = torch.rand(16, 1, dtype=torch.float32)
    terms = module.residuals({"interior": x})
    assert terms["pde"].shape == (16,)


def test_output_transform_residual_matches_the_closed_form():
    problem = transformed_problem(u="x*(1 - x)*u")
    raw = lambda p: torch.cat([torch.ones_like(p), torch.zeros_like(p)], dim=1)  # noqa: E731
    x = torch.linspace(0, 1, 11, dtype=torch.float64)[:, None]
    forward = lambda p: problem.output_transform(p, raw(p))  # noqa: E731
    r = residuals(problem, forward, {"interior": x})["pde"]
    torch.testing.assert_close(r, torch.full((11,), -2.0, dtype=torch.float64))


@pytest.mark.parametrize("transform, fragment", [
    ({"w": "u"}, "output_transform: 'w' is not a field"),
    ({"u": "u_x"}, "output_transform.u: a transform cannot take derivatives"),
    ({"u": "q*u"}, "output_transform.u: unknown name 'q'"),
])
def test_bad_output_transforms_name_the_key(transform, fragment):
    with pytest.raises(ValueError, match=fragment):
        transformed_problem(**transform)


@pytest.mark.parametrize("transform", [
    "x*(1 - x)*u + sin(pi*x)*exp(-y)",
    "(x**2 + 0.5)**1.5*u/(1 + y**2) + sqrt(1 + x)*tanh(u) - cosh(v)",
    "2**x*u*v + log(2 + y)*sigmoid(u) - 1/(2 + sinh(x))",
])
def test_jets_through_an_output_transform_equal_nested_autograd(transform):
    from lightning_pinn.derivatives.autograd import Derivatives
    from lightning_pinn.derivatives.jets import JetDerivatives, JetIndex

    torch.manual_seed(0)
    problem = Problem(coords={"x": [0, 1], "y": [0, 1]}, fields=["u", "v"], equations={"pde": "u"},
                      output_transform={"u": transform, "v": "y*v"})
    module = PINNModule(problem, MLP(2, 2, width=8, depth=2), derivatives="jets").double()
    x = torch.rand(7, 2, dtype=torch.float64, requires_grad=True)
    wanted = [("x",), ("y",), ("x", "x"), ("x", "y"), ("x", "x", "y"), ("x", "x", "y", "y"), ("y", "y", "y", "y")]
    required = {(f, w) for f in ("u", "v") for w in wanted}
    jets = JetDerivatives(module.net, x.detach(), ["x", "y"], ["u", "v"], set(required))
    nested = Derivatives(x, module(x), ["x", "y"], ["u", "v"])
    for field, wrt in required:
        torch.testing.assert_close(jets(field, wrt), nested(field, wrt), rtol=1e-10, atol=1e-10)
    assert isinstance(JetIndex(2, []), JetIndex)


def test_a_transform_with_a_function_without_jet_rule_runs_on_autograd_and_says_why(caplog):
    with caplog.at_level("INFO"):
        module = PINNModule(transformed_problem(u="abs(x)*u"), MLP(1, 2, width=8, depth=2), compile=True)
    assert "the function abs has no jet rule" in caplog.text and module.derivative_engine.name == "autograd"
    with pytest.raises(ValueError, match="derivatives=jets cannot run this network: .*abs has no jet rule"):
        PINNModule(transformed_problem(u="abs(x)*u"), MLP(1, 2, width=8, depth=2), derivatives="jets")


def test_new_conditions_survive_a_config_round_trip(tmp_path):
    path = tmp_path / "obs.npz"
    write_observations(path, np.array([0.1, 0.2]), np.array([0.3, 0.4]), u=np.array([1.0, 2.0]))
    problem = Problem(coords={"x": [0, 1], "t": [0, 1]}, fields=["u", "v"], equations={"pde": "u_t - v"},
                      conditions={"periodic": {"periodic": "x", "residual": ["u"], "points": 8},
                                  "flux": {"region": "x=1", "residual": "u_n", "points": 8},
                                  "observed": {"data": str(path)}},
                      output_transform={"v": "t*v"})
    rebuilt = instantiate(problem.to_config())
    assert rebuilt.to_config() == problem.to_config()
    a, b = draw(problem), draw(rebuilt)
    for name in a:
        torch.testing.assert_close(a[name], b[name])


# ----- loss weighting in the module ------------------------------------------------------------

def heat_problem() -> Problem:
    return Problem(coords={"x": [0, 1], "t": [0, 2]}, fields=["u"], equations={"heat": "u_t - u_xx"},
                   conditions={"initial": {"region": "t=0", "residual": "u - sin(pi*x)", "points": 16, "weight": 3}},
                   collocation_points=64)


def test_causal_weighting_replaces_the_equation_mean_by_the_causal_sum():
    from lightning_pinn.losses import causal_loss

    torch.manual_seed(0)
    module = PINNModule(heat_problem(), MLP(2, 1, width=8, depth=2), causal={"chunks": 4, "epsilon": 2.0})
    points = module.draw_points()
    terms = module.loss_terms(points)
    r = module.residuals(points)
    expected, w = causal_loss(r["heat"], points["interior"][:, 1], (0.0, 2.0), 4, 2.0)
    torch.testing.assert_close(terms["heat"], expected)
    torch.testing.assert_close(module.weighted_loss.causal_weights["heat"], w)
    torch.testing.assert_close(terms["initial"], r["initial"].square().mean())  # conditions keep their mean


def test_causal_weighting_needs_a_time_coordinate():
    problem = Problem(coords={"x": [0, 1]}, fields=["u"], equations={"pde": "u_xx"})
    with pytest.raises(ValueError, match="causal: causal weighting needs a time coordinate"):
        PINNModule(problem, MLP(1, 1, width=4, depth=1), causal={"chunks": 4})


def test_gradnorm_balancing_weights_terms_on_top_of_the_problem_weights():
    torch.manual_seed(0)
    module = PINNModule(heat_problem(), MLP(2, 1, width=8, depth=2), balancing={"name": "gradnorm", "alpha": 0.0})
    terms = module.loss_terms(module.draw_points())
    total = module.total_loss(terms)
    params = [p for p in module.parameters() if p.requires_grad]
    norms = {k: torch.sqrt(sum(g.square().sum() for g in torch.autograd.grad(v, params, retain_graph=True,
                                                                           allow_unused=True) if g is not None))
             for k, v in terms.items()}  # the output bias does not enter u_t - u_xx
    weights = {k: sum(norms.values()) / n for k, n in norms.items()}
    torch.testing.assert_close(total, weights["heat"] * terms["heat"] + 3 * weights["initial"] * terms["initial"])
    state = module.balancer.state_dict()
    rebuilt = PINNModule(heat_problem(), MLP(2, 1, width=8, depth=2), balancing="gradnorm")
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    rebuilt.on_load_checkpoint(checkpoint)
    assert rebuilt.balancer.state_dict() == state


def test_unknown_balancing_is_an_error_listing_the_schemes():
    with pytest.raises(ValueError, match="balancing: .*gradnorm"):
        PINNModule(heat_problem(), MLP(2, 1, width=8, depth=2), balancing="magic")


def test_formula_reference_evaluates_its_expressions_and_rebuilds_from_its_config():
    from lightning_pinn.references import Formula

    ref = Formula({"u": "exp(-t)*sin(k*x)", "v": "x + t"}, params={"k": 2.0})
    x, t = np.array([0.1, 0.7]), np.array([0.0, 0.5])
    out = ref(x=x, t=t)
    np.testing.assert_allclose(out["u"], np.exp(-t) * np.sin(2 * x), rtol=1e-15)
    np.testing.assert_allclose(out["v"], x + t)
    np.testing.assert_allclose(instantiate(ref.to_config())(x=x, t=t)["u"], out["u"])
    with pytest.raises(ValueError, match="reference.solution.u: unknown name 'q'"):
        Formula({"u": "q*x"})(x=x)
