"""PhysicsLoss on a LightningModule it does not change: terms, gradients, teardown, checks."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from conftest import small_trainer
from test_module import RecordingLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_pinn import PhysicsLoss, Problem


def ode_problem(**extra) -> Problem:
    """u' = cos(x) on [0, pi] with u(0) = 0: the solution is sin(x)."""
    return Problem(coords={"x": [0.0, math.pi]}, fields=["u"], equations={"ode": "u_x - cos(x)"},
                   conditions={"start": {"region": "x=0", "residual": "u", "points": 1}},
                   collocation_points=64, **extra)


class Regressor(pl.LightningModule):
    """A plain data-fitting module, written without any knowledge of physics."""

    def __init__(self, net: nn.Module | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.net = net or nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
        self.data_losses: list[float] = []
        self.returned: list[float] = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = (self(x) - y).square().mean()
        self.data_losses.append(loss.item())
        self.log("train/data", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)

    def train_dataloader(self):
        x = torch.linspace(0.5, 1.0, 8)[:, None]
        return DataLoader(TensorDataset(x, torch.sin(x)), batch_size=8)


def test_physics_terms_join_the_loss_are_logged_and_teardown_restores(tmp_path):
    module = Regressor()
    physics = PhysicsLoss(ode_problem(), weight=2.0)
    logger = RecordingLogger()
    returned = []

    class Spy(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            returned.append(outputs["loss"].item())

    trainer = small_trainer(tmp_path, max_steps=30, logger=logger, log_every_n_steps=1, callbacks=[physics, Spy()])
    trainer.fit(module)
    physics_losses = [v for _, v in logger.series("physics/loss")]
    assert len(physics_losses) == 30 and len(logger.series("physics/ode")) == 30
    assert len(logger.series("physics/start")) == 30
    for data, phys, total in zip(module.data_losses, physics_losses, returned):
        assert total == pytest.approx(data + phys, rel=1e-5)
    assert physics_losses[-1] < physics_losses[0]
    assert "training_step" not in module.__dict__  # teardown restored the class's method


def test_physics_gradient_reaches_the_module_parameters():
    module = Regressor()
    physics = PhysicsLoss(ode_problem())
    loss = physics.compute(module, log=False)
    grads = torch.autograd.grad(loss, list(module.parameters()))
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    # independent truth: for the zero network, u_x = 0 and u = 0, so the loss is mean(cos(x)^2) over the points
    zero = Regressor(nn.Sequential(nn.Linear(1, 1)))
    nn.init.zeros_(zero.net[0].weight)
    nn.init.zeros_(zero.net[0].bias)
    points = physics._points_for(zero)["interior"][:, 0]
    assert physics.compute(zero, log=False).item() == pytest.approx(torch.cos(points).square().mean().item(), rel=1e-5)


def test_learnable_parameters_join_the_module_and_are_optimized(tmp_path):
    problem = Problem(coords={"x": [0.0, math.pi]}, fields=["u"], equations={"ode": "u_x - a*cos(x)"},
                      learnable={"a": 0.3}, collocation_points=64)
    module = Regressor()
    small_trainer(tmp_path, max_steps=20, callbacks=[PhysicsLoss(problem)]).fit(module)
    assert isinstance(module.physics_params["a"], nn.Parameter)
    assert module.physics_params["a"].item() != pytest.approx(0.3)


def test_fields_from_a_method_or_a_callable():
    class TwoHeads(Regressor):
        def physics_fields(self, x):
            return self.net(x) * 0

    module = TwoHeads()
    by_name = PhysicsLoss(ode_problem(), fields="physics_fields").compute(module, log=False)
    by_callable = PhysicsLoss(ode_problem(), fields=lambda m, x: m.physics_fields(x)).compute(module, log=False)
    assert by_name.item() == pytest.approx(by_callable.item())


def test_wrong_output_size_is_named_at_setup(tmp_path):
    module = Regressor(nn.Sequential(nn.Linear(1, 3)))
    with pytest.raises(ValueError, match=r"maps \(N, 1\) coordinates to \(4, 3\).*1 field"):
        small_trainer(tmp_path, max_steps=1, callbacks=[PhysicsLoss(ode_problem())]).fit(module)


def test_batch_mixing_network_is_refused_with_the_reason(tmp_path):
    module = Regressor(nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1)))
    before = module.net[1].running_mean.clone()
    with pytest.raises(ValueError, match="depends on other points of the batch"):
        small_trainer(tmp_path, max_steps=1, callbacks=[PhysicsLoss(ode_problem())]).fit(module)
    assert torch.equal(module.net[1].running_mean, before)  # the probe left BatchNorm statistics alone


def test_gradient_accumulation_runs(tmp_path):
    module = Regressor()
    trainer = small_trainer(tmp_path, max_steps=4, accumulate_grad_batches=2, callbacks=[PhysicsLoss(ode_problem())])
    trainer.fit(module)
    assert trainer.global_step == 4


def test_fields_named_by_a_submodule_run_on_jets_and_match_autograd(tmp_path):
    from lightning_pinn.derivatives.engines import AutogradEngine, JetEngine

    module = Regressor().double()
    callbacks = {fields: PhysicsLoss(ode_problem(), fields=fields, derivatives="jets" if fields else "auto")
                 for fields in (None, "net")}
    for fields, physics in callbacks.items():
        small_trainer(tmp_path, max_steps=1, callbacks=[physics], precision="64-true").fit(module)
        assert isinstance(physics.engine, JetEngine if fields == "net" else AutogradEngine)
    losses = {fields: physics.compute(module, log=False) for fields, physics in callbacks.items()}  # same weights
    torch.testing.assert_close(losses["net"], losses[None], rtol=1e-10, atol=0)
    with pytest.raises(ValueError, match="derivatives=jets cannot run this network: the fields come from Regressor.forward"):
        small_trainer(tmp_path, max_steps=1, callbacks=[PhysicsLoss(ode_problem(), derivatives="jets")]).fit(Regressor())


def heat_problem() -> Problem:
    """u_t = u_xx on [0, 1] x [0, 1] with u(x, 0) = sin(pi x) (weight 3)."""
    return Problem(coords={"x": [0.0, 1.0], "t": [0.0, 1.0]}, fields=["u"], equations={"heat": "u_t - u_xx"},
                   conditions={"initial": {"region": "t=0", "residual": "u - sin(pi*x)", "points": 16,
                                           "weight": 3.0}},
                   collocation_points=64)


class Field(pl.LightningModule):
    """A host whose forward is a small network of (x, t)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x):
        return self.net(x)


def test_physics_loss_composes_its_loss_as_pinnmodule_does_with_balancing_and_causal_weights():
    from lightning_pinn import PINNModule
    from lightning_pinn.losses import causal_loss

    options = {"balancing": {"name": "gradnorm", "alpha": 0.0}, "causal": {"chunks": 4, "epsilon": 2.0}}
    host = Field()
    module = PINNModule(heat_problem(), host.net, **options)
    physics = PhysicsLoss(heat_problem(), **options)
    points = module.draw_points()
    physics.collocation.points = points
    ours = physics.compute(host, log=False)
    torch.testing.assert_close(ours, module.total_loss(module.loss_terms(points)), rtol=1e-6, atol=0)
    # and against the formula: gradnorm weights (sum of norms / own norm) x problem weights x causal / mean terms
    r = module.residuals(points)
    causal, _ = causal_loss(r["heat"], points["interior"][:, 1], (0.0, 1.0), 4, 2.0)
    initial = r["initial"].square().mean()
    params = list(host.parameters())
    norms = {k: torch.sqrt(sum(g.square().sum() for g in torch.autograd.grad(v, params, retain_graph=True,
                                                                           allow_unused=True) if g is not None))
             for k, v in {"heat": causal, "initial": initial}.items()}
    lam = {k: sum(norms.values()) / n for k, n in norms.items()}
    torch.testing.assert_close(ours, lam["heat"] * causal + 3 * lam["initial"] * initial, rtol=1e-6, atol=0)


def test_physics_loss_advances_the_causal_schedule_and_checkpoints_it(tmp_path):
    class Timeless(Field):
        def training_step(self, batch, batch_idx):
            return self.net(batch[0]).square().mean() * 0.0

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

        def train_dataloader(self):
            return DataLoader(TensorDataset(torch.rand(8, 2)), batch_size=8)

    physics = PhysicsLoss(heat_problem(), causal={"chunks": 4, "epsilon": [0.0, 1.0], "threshold": 0.5},
                          balancing="relobralo")
    logger = RecordingLogger()
    small_trainer(tmp_path, max_steps=3, callbacks=[physics], logger=logger, log_every_n_steps=1).fit(Timeless())
    assert physics.weighted_loss.causal.stage == 1  # epsilon 0 gives weights 1 > 0.5: it moved on after step 0
    assert physics.state_dict()["causal"] == {"stage": 1}
    assert [s for s, _ in logger.series("physics/causal_min_weight")] == [0, 1, 2]
    assert {"physics/weight_heat", "physics/weight_initial"} <= {k for _, m in logger.rows for k in m}
    resumed = PhysicsLoss(heat_problem(), causal={"chunks": 4, "epsilon": [0.0, 1.0], "threshold": 0.5},
                          balancing="relobralo")
    resumed.load_state_dict(physics.state_dict())
    assert resumed.weighted_loss.causal.stage == 1
    saved, restored = physics.weighted_loss.balancer.state_dict(), resumed.weighted_loss.balancer.state_dict()
    assert saved["names"] == ["heat", "initial"]  # it has seen the terms
    for key, value in saved.items():
        assert torch.equal(restored[key], value) if isinstance(value, torch.Tensor) else restored[key] == value, key
