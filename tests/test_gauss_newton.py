"""Gauss-Newton phases: a known least-squares minimum, the residual Jacobian against autograd, a PINN to 1e-6,
exact resume, and the refusals."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import small_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_pinn import MLP, PINNModule, Problem
from lightning_pinn.errors import ConfigError
from lightning_pinn.lightning.least_squares import LeastSquares
from lightning_pinn.optim import GaussNewton

GN = {"_target_": "lightning_pinn.optim.GaussNewton", "max_iter": 1}
ADAM_PHASE = {"optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-2}, "steps": 3}


def autograd_row(value, params):
    """The gradient of one residual entry over every parameter, zeros where it does not depend on one."""
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for g, p in zip(grads, params)])


def test_an_exponential_fit_recovers_its_parameters():
    t = torch.linspace(0, 2, 30, dtype=torch.float64)
    y = 1.5 * torch.exp(-0.7 * t)
    theta = torch.nn.Parameter(torch.tensor([1.0, 0.0], dtype=torch.float64))
    optimizer = GaussNewton([theta], max_iter=40)

    def residuals():
        return (theta[0] * torch.exp(theta[1] * t) - y).detach()

    def jacobian():
        e = torch.exp(theta[1] * t).detach()
        return torch.stack([e, theta[0].detach() * t * e], dim=1)

    optimizer.attach(residuals, jacobian)
    optimizer.step(lambda: residuals().square().sum())
    torch.testing.assert_close(theta.detach(), torch.tensor([1.5, -0.7], dtype=torch.float64), rtol=0, atol=1e-10)
    assert optimizer.state[theta]["n_iter"] == 40 and optimizer.damping < 1e-3


def poisson(**extra) -> Problem:
    """-u'' = pi^2 sin(pi x) on [0, 1], u(0) = u(1) = 0: u = sin(pi x)."""
    return Problem(coords={"x": [0.0, 1.0]}, fields=["u"], equations={"pde": "u_xx + pi**2*sin(pi*x)"},
                   conditions={"ends": {"region": ["x=0", "x=1"], "residual": "u", "points": 2, "weight": 10.0}},
                   collocation_points=64, **extra)


def module(**options):
    torch.manual_seed(0)
    phases = {"adam": {"optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-2}, "steps": 3}, "gn": {"optimizer": GN}}
    return PINNModule(poisson(), MLP(1, 1, width=10, depth=2, bounds=[[0, 1]]), phases=phases, **options).double()


def test_the_vector_is_the_loss_and_the_jacobian_rows_are_autograd_gradients():
    m = module(derivatives="autograd")
    least = LeastSquares(m)
    v = least.vector()
    points = m.training_points()
    torch.testing.assert_close(v.square().sum(), m.total_loss(m.loss_terms(points)).detach(), rtol=1e-12, atol=0)
    jac = least.jacobian()
    params = [p for p in m.parameters() if p.requires_grad]
    assert jac.shape == (64 + 2, sum(p.numel() for p in params))
    offset = {name: k for name, k in zip(points, (0, len(points[next(iter(points))])))}
    for set_name, term, scale, row in (("interior", "pde", (1 / 64) ** 0.5, 5), ("interior", "pde", (1 / 64) ** 0.5, 40),
                                       ("ends", "ends", (10.0 / 2) ** 0.5, 1)):
        value = scale * m.residuals(points)[term][row]
        torch.testing.assert_close(v[offset[set_name] + row], value.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(jac[offset[set_name] + row], autograd_row(value, params), rtol=1e-10, atol=1e-12)


def test_a_gauss_newton_phase_solves_poisson_below_1e_6(tmp_path):
    m = module()
    small_trainer(tmp_path, max_steps=250, precision="64-true").fit(m)
    x = torch.linspace(0, 1, 101, dtype=torch.float64)[:, None]
    with torch.no_grad():
        error = (m(x)[:, 0] - torch.sin(math.pi * x[:, 0])).norm() / torch.sin(math.pi * x[:, 0]).norm()
    assert error < 1e-6, float(error)
    assert m.optimizers().optimizer.state[next(m.parameters())]["n_iter"] == 247


def test_a_resume_inside_a_gauss_newton_phase_continues_exactly(tmp_path):
    straight = module()
    small_trainer(tmp_path / "a", max_steps=8, precision="64-true").fit(straight)
    first = module()
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1)
    small_trainer(tmp_path / "b", max_steps=5, precision="64-true", enable_checkpointing=True,
                  callbacks=[saver]).fit(first)
    resumed = module()
    small_trainer(tmp_path / "c", max_steps=8, precision="64-true").fit(resumed, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert resumed.optimizers().optimizer.damping == straight.optimizers().optimizer.damping


def test_a_network_over_the_limit_is_refused_before_training_starts(tmp_path):
    torch.manual_seed(0)
    big = PINNModule(poisson(), MLP(1, 1, width=80, depth=2), phases={"adam": ADAM_PHASE, "gn": {"optimizer": GN}})
    with pytest.raises(ConfigError, match=r"^phases.gn.optimizer.max_params: Gauss-Newton solves a dense system of one "
                                          r"row per parameter: 6,721 parameters"):
        small_trainer(tmp_path, max_steps=5, precision="64-true").fit(big)
    assert big.global_step == 0


def test_a_network_over_the_limit_is_refused_with_its_sizes():
    with pytest.raises(ConfigError, match=r"^max_params: Gauss-Newton solves a dense system of one row per parameter: "
                                          r"6,000 parameters need a 6,000 x 6,000 matrix \(275 MiB in float64\) and a "
                                          r"residual Jacobian of 6,000 columns, over max_params=5,000; use a smaller "
                                          r"network or another phase$"):
        GaussNewton([torch.nn.Parameter(torch.zeros(6000))])


@pytest.mark.parametrize("options, message", [
    ({"balancing": "gradnorm"}, r"^phases.gn: Gauss-Newton minimizes the problem's fixed-weight sum of squares; set "
                                r"model.balancing=null and model.causal=null, or use another phase "
                                r"\(optimizer=adam_quasi_newton\)$"),
    ({"precision": "bf16-mixed"}, r"^phases.gn: Gauss-Newton needs an exact loss, and trainer.precision=bf16-mixed "
                                  r"rounds it to 16 bits"),
])
def test_what_gauss_newton_cannot_run_is_refused_before_training(tmp_path, options, message):
    precision = options.pop("precision", "64-true")
    m = module(**options)
    with pytest.raises(ConfigError, match=message):
        small_trainer(tmp_path, max_steps=5, precision=precision).fit(m)
    assert m.global_step == 0


def test_periodic_pairs_and_observations_are_in_the_vector_and_the_jacobian():
    spec = {"_target_": "lightning_pinn.Problem", "coords": {"x": [0.0, 1.0], "t": [0.0, 1.0]}, "fields": ["u", "v"],
            "equations": {"a": "u_t - v_xx", "b": "v_t - u"}, "collocation_points": 32,
            "conditions": {"periodic": {"periodic": "x", "points": 8, "weight": 3.0},
                           "observed": {"data": "reference", "points": 6, "weight": 2.0}},
            "reference": {"_target_": "lightning_pinn.Formula", "solution": {"u": "sin(x)*t", "v": "x*t"}}}
    torch.manual_seed(0)
    m = PINNModule(spec, MLP(2, 2, width=6, depth=2)).double()
    least = LeastSquares(m)
    points = m.training_points()
    v = least.vector()
    torch.testing.assert_close(v.square().sum(), m.total_loss(m.loss_terms(points)).detach(), rtol=1e-12, atol=0)
    jac = least.jacobian()
    params = [p for p in m.parameters() if p.requires_grad]
    residuals = m.residuals(points)
    flat = torch.cat([residuals[t] * (m.problem.terms[t].weight / len(residuals[t])) ** 0.5
                      for name in points for t in m.problem.point_sets[name].terms])
    torch.testing.assert_close(v, flat.detach(), rtol=1e-12, atol=1e-14)
    for row in torch.randperm(len(v))[:12].tolist():
        torch.testing.assert_close(jac[row], autograd_row(flat[row], params), rtol=1e-9, atol=1e-11)
