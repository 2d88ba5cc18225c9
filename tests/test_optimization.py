"""Optimizer phases and the dense quasi-Newton methods: known minima, the update formulas, exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import small_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_pinn import MLP, PINNModule, Problem
from lightning_pinn.errors import ConfigError
from lightning_pinn.optim import QuasiNewton
from lightning_pinn.optim.phases import Phases

METHODS = ["bfgs", "ssbfgs", "ssbroyden"]


def minimize(loss_fn, x0, method, max_iter=500):
    x = torch.nn.Parameter(torch.as_tensor(x0, dtype=torch.float64).clone())
    optimizer = QuasiNewton([x], method=method, max_iter=max_iter, tolerance_grad=1e-12)

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        return loss

    optimizer.step(closure)
    return x.detach(), optimizer.state[x]


@pytest.mark.parametrize("method", METHODS)
def test_the_rosenbrock_minimum_is_found(method):
    def rosenbrock(x):
        return ((1 - x[:-1]) ** 2 + 100 * (x[1:] - x[:-1] ** 2) ** 2).sum()

    for start in ([-1.2, 1.0], [-1.0] * 10):
        x, state = minimize(rosenbrock, start, method)
        torch.testing.assert_close(x, torch.ones(len(start), dtype=torch.float64), atol=1e-7, rtol=0)
        assert state["n_iter"] < 200


@pytest.mark.parametrize("method", METHODS)
def test_a_quadratics_minimum_is_the_solution_of_its_linear_system(method):
    torch.manual_seed(0)
    q = torch.randn(12, 12, dtype=torch.float64)
    a = q @ q.T + 0.1 * torch.eye(12, dtype=torch.float64)  # condition number about 1e3
    b = torch.randn(12, dtype=torch.float64)
    x, _ = minimize(lambda x: 0.5 * x @ a @ x - b @ x, torch.zeros(12), method)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), atol=1e-8, rtol=1e-8)


def hessian_side_update(b_mat, s, y, tau, theta):
    """Al-Baali's self-scaled Broyden update of the Hessian B (the form the papers derive), for comparison."""
    bs = b_mat @ s
    sbs, sy = s @ bs, s @ y
    w = y / sy - bs / sbs
    return tau * (b_mat - torch.outer(bs, bs) / sbs + theta * sbs * torch.outer(w, w)) + torch.outer(y, y) / sy


@pytest.mark.parametrize("method", METHODS)
def test_the_inverse_update_inverts_the_hessian_side_update_and_meets_the_secant_equation(method):
    torch.manual_seed(1)
    n = 6
    q = torch.randn(n, n, dtype=torch.float64)
    h = q @ q.T + torch.eye(n, dtype=torch.float64)  # an SPD inverse Hessian estimate
    g = torch.randn(n, dtype=torch.float64)
    alpha = 0.7
    s = -alpha * (h @ g)  # a step along the quasi-Newton direction
    y = torch.linalg.solve(h, s) * 1.3 + 0.1 * torch.randn(n, dtype=torch.float64)
    assert s @ y > 0
    optimizer = QuasiNewton([torch.nn.Parameter(torch.zeros(n, dtype=torch.float64))], method=method)
    optimizer._state.update(skipped_updates=0)
    updated = optimizer._update(h, s, y, g, alpha, method)
    torch.testing.assert_close(updated @ y, s, atol=1e-10, rtol=1e-10)  # H+ y = s
    assert torch.linalg.eigvalsh(updated).min() > 0
    # the same tau and theta in the Hessian-side form give the inverse matrix
    sy, hy = s @ y, h @ y
    b = -alpha * (s @ g) / sy
    a = b * (y @ hy) / sy - 1
    if method == "bfgs":
        tau, theta = 1.0, 0.0
    elif method == "ssbfgs":
        tau, theta = min(1.0, 1.0 / b.item()), 0.0
    else:
        c = math.sqrt(a / (1 + a))
        rho_minus = min(1.0, ((y @ hy) / sy).item() * (1 - c))
        theta = max((rho_minus - 1) / a.item(), min(1 / rho_minus, ((1 - b) / b).item()))
        sigma = 1 + a.item() * theta
        rho = min(1.0, 1.0 / b.item())
        shrink = sigma ** (-1 / (n - 1))
        tau = min(rho * shrink, sigma) if theta <= 0 else rho * min(shrink, 1 / theta)
    expected = torch.linalg.inv(hessian_side_update(torch.linalg.inv(h), s, y, tau, theta))
    torch.testing.assert_close(updated, expected, atol=1e-9, rtol=1e-9)


def test_networks_too_large_for_a_dense_hessian_are_refused():
    params = [torch.nn.Parameter(torch.zeros(20_000, dtype=torch.float64))]
    with pytest.raises(ConfigError, match=r"^optimizer: the dense inverse Hessian of 20,000 parameters needs 2\.98 GiB "
                                          r"\(20,000\^2 entries\), above max_hessian_bytes=1,073,741,824; use a "
                                          r"smaller network or L-BFGS$"):
        QuasiNewton(params)
    QuasiNewton(params, max_hessian_bytes=2**32)  # a higher limit takes it
    with pytest.raises(ConfigError, match=r"^method: expected one of \['bfgs', 'ssbfgs', 'ssbroyden'\] but got 'sr1'$"):
        QuasiNewton(params, method="sr1")


def test_a_new_objective_keeps_the_curvature_and_drops_the_old_gradient():
    x = torch.nn.Parameter(torch.tensor([3.0, -2.0], dtype=torch.float64))
    optimizer = QuasiNewton([x], max_iter=2)

    def closure():
        optimizer.zero_grad()
        loss = (x**2).sum() + x[0] * x[1]
        loss.backward()
        return loss

    optimizer.step(closure)
    h = optimizer._state["H"].clone()
    assert not torch.equal(h, torch.eye(2, dtype=torch.float64))
    optimizer.objective_changed()
    assert "g" not in optimizer._state and torch.equal(optimizer._state["H"], h)


# ----- phases in a PINNModule ----------------------------------------------------------------------------------


def ode_problem() -> Problem:
    """u' = cos(x) on [0, pi], u(0) = 0."""
    return Problem(coords={"x": [0.0, math.pi]}, fields=["u"], equations={"ode": "u_x - cos(x)"},
                   conditions={"start": {"region": "x=0", "residual": "u", "points": 1}}, collocation_points=32)


QN = {"_target_": "lightning_pinn.optim.QuasiNewton", "method": "ssbroyden", "max_iter": 3}
LBFGS = {"_target_": "torch.optim.LBFGS", "max_iter": 3, "line_search_fn": "strong_wolfe"}
HALVING = {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2, "gamma": 0.5}


def module(then=QN, **options):
    torch.manual_seed(0)
    phases = {"adam": {"optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-2}, "scheduler": HALVING, "steps": 3},
              "second": {"optimizer": then}}
    return PINNModule(ode_problem(), MLP(1, 1, width=8, depth=2), phases=phases, **options)


@pytest.mark.parametrize("then", [QN, LBFGS], ids=["quasi-newton", "lbfgs"])
@pytest.mark.parametrize("stop", [2, 5])  # inside the first phase, inside the second
def test_a_resume_mid_phase_continues_exactly(tmp_path, then, stop):
    straight = module(then)
    small_trainer(tmp_path / "a", max_steps=7, precision="64-true").fit(straight)
    first = module(then)
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1)
    small_trainer(tmp_path / "b", max_steps=stop, precision="64-true", enable_checkpointing=True,
                  callbacks=[saver]).fit(first)
    resumed = module(then)
    trainer = small_trainer(tmp_path / "c", max_steps=7, precision="64-true")
    trainer.fit(resumed, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert resumed.phase == "second" and trainer.global_step == 7
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_the_phase_switch_builds_the_next_optimizer_and_its_scheduler_steps_every_step(tmp_path):
    seen = []
    m = module()
    original = m.training_step
    m.training_step = lambda batch, batch_idx: (seen.append((m.global_step, type(m.optimizers().optimizer).__name__,
                                                       m.optimizers().param_groups[0].get("lr"))), original(batch, batch_idx))[1]
    trainer = small_trainer(tmp_path, max_steps=5, precision="64-true")
    trainer.fit(m)
    assert [(s, name) for s, name, _ in seen] == [(0, "Adam"), (1, "Adam"), (2, "Adam"), (3, "QuasiNewton"),
                                                  (4, "QuasiNewton")]
    assert [lr for _, _, lr in seen[:3]] == [1e-2, 1e-2, 5e-3]  # StepLR halves after two steps
    assert m.optimizers().optimizer.state[next(m.parameters())]["n_iter"] == 2 * 3  # two steps of 3 iterations


def test_resampling_inside_a_quasi_newton_phase_keeps_its_inverse_hessian(tmp_path):
    m = module(resample_every=2)
    seen = []
    original = m.points_changed

    def points_changed():
        optimizer = m.optimizers().optimizer
        before = optimizer.state[next(m.parameters())].get("H") if isinstance(optimizer, QuasiNewton) else None
        original()
        after = optimizer.state[next(m.parameters())].get("H") if isinstance(optimizer, QuasiNewton) else None
        seen.append((m.global_step, before is not None and after is before))

    m.points_changed = points_changed
    small_trainer(tmp_path, max_steps=8, precision="64-true").fit(m)
    assert seen == [(2, False), (4, True), (6, True)]  # Adam at 2; the quasi-Newton phase keeps H at 4 and 6
    assert m.collocation.draws == 4


def test_phases_validate_their_optimizer_and_steps():
    with pytest.raises(ConfigError, match=r"^phases.adam.optimizer: Adam refused its arguments: Invalid learning "
                                          r"rate: -1$"):
        Phases({"adam": {"optimizer": {"_target_": "torch.optim.Adam", "lr": -1}}})
    with pytest.raises(ConfigError, match=r"^phases.adam.steps: expected a positive number of steps or null"):
        Phases({"adam": {"optimizer": {"_target_": "torch.optim.Adam"}, "steps": 0}})
    with pytest.raises(ConfigError, match=r"^phases.x.optimizer._target_: 'os.system' is not an allowed target"):
        Phases({"x": {"optimizer": {"_target_": "os.system"}}})
    with pytest.raises(ConfigError, match=r"^phases: expected at least one phase$"):
        Phases({"lbfgs": None})
    phases = Phases({"adam": {"optimizer": {"_target_": "torch.optim.Adam"}, "steps": 10}, "lbfgs": None})
    assert phases.total_steps == 10 and [p.name for p in phases.phases] == ["adam"]


# ----- SOAP, through pytorch-optimizer -------------------------------------------------------------------------

SOAP_CONFIG = {"_target_": "pytorch_optimizer.SOAP", "lr": 3e-3, "betas": [0.95, 0.95], "weight_decay": 0.0,
               "precondition_frequency": 2}


def test_soap_from_the_shipped_config_finds_a_quadratics_minimum():
    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/optimizer/soap.yaml").read_text())
    assert shipped["phases"]["soap"]["optimizer"] == SOAP_CONFIG
    decay = {"_target_": "torch.optim.lr_scheduler.ExponentialLR", "gamma": 0.998}
    phases = Phases({"soap": {"optimizer": {**SOAP_CONFIG, "lr": 1e-2}, "scheduler": decay}})
    target = torch.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=torch.float64)
    w = torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))  # a matrix, so Shampoo's factors are used
    optimizer, scheduler = phases.current.build([w])
    for _ in range(3000):
        optimizer.zero_grad()
        ((w - target) ** 2).sum().backward()
        optimizer.step()
        scheduler.step()
    torch.testing.assert_close(w.detach(), target, atol=1e-5, rtol=0)
    assert all(v.dtype == torch.float64 for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))


def test_a_soap_phase_trains_a_pinn_and_resumes_exactly(tmp_path):
    def soap_module():
        torch.manual_seed(0)
        return PINNModule(ode_problem(), MLP(1, 1, width=8, depth=2),
                          phases={"adam": {"optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-2}, "steps": 3},
                                  "soap": {"optimizer": SOAP_CONFIG}})

    straight = soap_module()
    small_trainer(tmp_path / "a", max_steps=300, precision="64-true").fit(straight)
    assert type(straight.optimizers().optimizer).__name__ == "SOAP"
    x = torch.linspace(0, math.pi, 50, dtype=torch.float64)[:, None]
    error = (straight(x)[:, 0] - torch.sin(x[:, 0])).abs().max()
    assert error < 0.05, error
    first = soap_module()
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1)
    small_trainer(tmp_path / "b", max_steps=6, precision="64-true", enable_checkpointing=True,
                  callbacks=[saver]).fit(first)
    resumed, again = soap_module(), soap_module()
    small_trainer(tmp_path / "c", max_steps=9, precision="64-true").fit(resumed, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    small_trainer(tmp_path / "d", max_steps=9, precision="64-true").fit(again)
    for a, b in zip(again.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", METHODS)
def test_a_steep_start_is_searched_from_a_unit_length_step(method):
    # a gradient of 2e8 at the start: a unit step along it overflowed the line search, which then failed at every
    # step and never moved (the root defaults on Helmholtz, whose loss starts in the thousands)
    def steep(x):
        return 1e8 * ((x - 1) ** 2).sum() + (x**4).sum()

    x, state = minimize(steep, torch.zeros(6), method, max_iter=200)
    assert state["n_iter"] > 2
    torch.testing.assert_close(x, torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-7)


def test_each_step_evaluates_first_at_its_own_point():
    torch.manual_seed(0)
    x = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
    optimizer = QuasiNewton([x], method="ssbroyden", max_iter=3)
    firsts, ends = [], []
    for _ in range(4):
        calls = []

        def closure():
            calls.append(x.detach().clone())
            optimizer.zero_grad()
            loss = ((x - 2) ** 4).sum() + (x**2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        firsts.append(calls[0])
        ends.append(x.detach().clone())
    for first, end in zip(firsts[1:], ends[:-1]):
        assert torch.equal(first, end)  # logged and checked by PINNModule: the step's own point, not a trial point
