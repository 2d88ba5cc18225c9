"""Time-marching windows: points in the window, continuity with the previous window, prediction across windows,
the schedule, exact resume, an ODE solved over the whole horizon, and the refusals.

Truth: u' = u, u(0) = 1 gives exp(t); the window bounds are arithmetic; a fresh window's network is a copy
of the frozen one, so its continuity residual is exactly zero.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from conftest import small_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_pinn import MLP, PINNModule
from lightning_pinn.errors import ConfigError

GROWTH = {"_target_": "lightning_pinn.Problem", "coords": {"t": [0.0, 1.0]}, "fields": ["u"],
          "equations": {"ode": "u_t - u"}, "collocation_points": 32,
          "conditions": {"start": {"region": "t=0", "residual": "u - 1", "points": 1, "weight": 10.0}},
          "reference": {"_target_": "lightning_pinn.references.formula.Formula", "solution": {"u": "exp(t)"}}}
ADAM = {"optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-2}, "steps": 2}
GN = {"optimizer": {"_target_": "lightning_pinn.optim.GaussNewton"}}


def growth(windows=2, phases=None, **options):
    torch.manual_seed(0)
    return PINNModule(GROWTH, MLP(1, 1, width=8, depth=2, bounds=[[0, 1]]), time_windows=windows,
                      phases=phases or {"adam": ADAM, "gn": GN}, validation_grid=11, **options).double()


class Record(pl.Callback):
    """(step, window, optimizer) at every step."""

    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step - 1
        self.steps.append((step, module.windows.index, type(module.optimizers().optimizer).__name__))


class StopAt(pl.Callback):
    """Ends training after ``step`` steps, whatever the trainer's budget."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def test_each_window_trains_its_own_slab_from_its_first_phase(tmp_path):
    m = growth(windows=3)
    record = Record()
    seen = {}
    original = m.training_points

    def training_points():
        points = original()
        seen.setdefault(m.windows.index, {k: v.clone() for k, v in points.items()})
        return points

    m.training_points = training_points
    small_trainer(tmp_path, max_steps=12, precision="64-true", callbacks=[record]).fit(m)
    assert [w for _, w, _ in record.steps] == [0] * 4 + [1] * 4 + [2] * 4
    assert [name for _, _, name in record.steps] == ["Adam", "Adam", "GaussNewton", "GaussNewton"] * 3
    for k in range(3):
        t = seen[k]["interior"][:, 0]
        assert k / 3 - 1e-12 <= float(t.min()) and float(t.max()) <= (k + 1) / 3 + 1e-12
        assert float(seen[k]["start"][0, 0]) == pytest.approx(k / 3, abs=1e-15)
    assert seen[0]["start"].shape == (1, 1) and seen[1]["start"].shape == (1, 2)  # the previous residual appended
    assert len(m.window_nets) == 2 and not any(p.requires_grad for p in m.window_nets.parameters())


def test_a_fresh_window_is_continuous_with_the_one_before_and_predicts_by_window(tmp_path):
    m = growth(windows=2)
    small_trainer(tmp_path, max_steps=8, precision="64-true", callbacks=[StopAt(3)]).fit(m)
    assert m.windows.index == 0
    m._next_window(3)  # the network of window 2 starts as a copy of window 1's
    points = m.training_points()
    assert torch.equal(m.residuals(points)["start"], torch.zeros(1, dtype=torch.float64))
    with torch.no_grad():
        m.net.layers[-1].bias += 1.0  # window 2 moves on
        t = torch.tensor([[0.2], [0.7]], dtype=torch.float64)
        expected = torch.stack([m.window_nets[0](t[:1])[0], m.net(t[1:])[0]])
        torch.testing.assert_close(m(t), expected, rtol=0, atol=0)


def test_an_ode_is_solved_over_the_whole_horizon_across_windows(tmp_path):
    m = growth(windows=2)
    small_trainer(tmp_path, max_steps=80, precision="64-true").fit(m)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)[:, None]
    with torch.no_grad():
        error = (m(t)[:, 0] - torch.exp(t[:, 0])).norm() / torch.exp(t[:, 0]).norm()
    assert m.windows.index == 1 and error < 1e-5, float(error)
    assert m.trainer.callback_metrics["val/rel_l2_u"] < 1e-5  # validation covers both windows


def test_a_resume_inside_a_later_window_continues_exactly_and_inference_routes_by_window(tmp_path):
    straight = growth(windows=3)
    whole = small_trainer(tmp_path / "a", max_steps=12, precision="64-true")
    whole.fit(straight)
    first = growth(windows=3)
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1)
    small_trainer(tmp_path / "b", max_steps=12, precision="64-true", enable_checkpointing=True,
                  callbacks=[saver, StopAt(6)]).fit(first)
    assert first.windows.index == 1
    resumed = growth(windows=3)
    small_trainer(tmp_path / "c", max_steps=12, precision="64-true").fit(resumed, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    whole.save_checkpoint(tmp_path / "straight.ckpt")
    loaded = PINNModule.load_from_checkpoint(tmp_path / "straight.ckpt")
    assert len(loaded.window_nets) == 2
    t = torch.linspace(0, 1, 7, dtype=torch.float64)[:, None]
    with torch.no_grad():
        torch.testing.assert_close(loaded(t), straight(t), rtol=0, atol=0)


def test_causal_weighting_follows_the_window():
    spec = {**GROWTH, "coords": {"x": [0.0, 1.0], "t": [0.0, 2.0]}, "equations": {"ode": "u_t - u"}}
    torch.manual_seed(0)
    m = PINNModule(spec, MLP(2, 1, width=8, depth=2), time_windows=4, causal={"chunks": 4}).double()
    assert m.weighted_loss.time_bounds == (0.0, 0.5)


@pytest.mark.parametrize("change, message", [
    ({"coords": {"x": [0.0, 1.0]}, "equations": {"ode": "u_x - u"},
      "conditions": {"start": {"region": "x=0", "residual": "u - 1"}}},
     r"^time_windows: splits the time coordinate, and this problem has none \(coordinates \['x'\]\)"),
    ({"output_transform": {"u": "1 + t*u"}}, r"time_windows: an output transform states its initial values"),
    ({"conditions": {"end": {"region": "t=1", "residual": "u - 2.718281828"}}},
     r"conditions.end: a condition at the final time 1 holds for the whole horizon"),
])
def test_problems_that_cannot_be_split_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        PINNModule({**GROWTH, **change}, MLP(1, 1, width=8, depth=2), time_windows=2)


def test_a_budget_too_small_for_the_windows_is_refused_before_training(tmp_path):
    m = growth(windows=4, phases={"adam": {**ADAM, "steps": 5}, "gn": GN})
    with pytest.raises(ConfigError, match=r"^time_windows: 4 windows of 5 steps \(trainer.max_steps=20\) leave no step "
                                          r"for the last phase after the 5 steps of the phases before it; raise "
                                          r"trainer.max_steps to more than 24 or use fewer windows$"):
        small_trainer(tmp_path, max_steps=20, precision="64-true").fit(m)
    with pytest.raises(ConfigError, match=r"^time_windows: expected a positive integer but got 0$"):
        growth(windows=0)


def test_a_checkpoint_with_other_windows_is_refused(tmp_path):
    m = growth(windows=2)
    trainer = small_trainer(tmp_path, max_steps=8, precision="64-true", callbacks=[StopAt(2)])
    trainer.fit(m)
    trainer.save_checkpoint(tmp_path / "two.ckpt")
    with pytest.raises(ConfigError, match=r"^time_windows: the checkpoint was trained with 2 windows, this run has 3$"):
        small_trainer(tmp_path, max_steps=12, precision="64-true").fit(growth(windows=3), ckpt_path=tmp_path / "two.ckpt")
    with pytest.raises(ConfigError, match=r"time_windows: the checkpoint was trained with time_windows=2; set "):
        small_trainer(tmp_path, max_steps=4, precision="64-true").fit(growth(windows=1), ckpt_path=tmp_path / "two.ckpt")
    assert math.isfinite(float(m(torch.zeros(1, 1, dtype=torch.float64))))
