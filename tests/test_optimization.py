"""Who takes PINNModule's optimizer step: the manual step must update exactly as Lightning's automatic loop,
and ``auto`` must keep the automatic loop wherever something depends on it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch
from conftest import small_trainer
from lightning.pytorch.callbacks import (
    Callback,
    GradientAccumulationScheduler,
    ModelCheckpoint,
    StochasticWeightAveraging,
)
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lightning_pinn import MLP, PhysicsLoss, PINNModule, Problem
from lightning_pinn.lightning.optimization import AUTOMATIC_ONLY_HOOKS, carry_step_count, why_automatic

LBFGS = {"_target_": "torch.optim.LBFGS", "max_iter": 4, "line_search_fn": "strong_wolfe"}
HALVING = {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2, "gamma": 0.5}


def heat() -> Problem:
    return Problem(coords={"x": [0, 1], "t": [0, 1]}, fields=["u"], equations={"heat": "u_t - 0.1*u_xx"},
                   collocation_points=64,
                   conditions={"initial": {"region": "t=0", "residual": "u - sin(pi*x)", "points": 16}})


def module(**options) -> PINNModule:
    torch.manual_seed(0)
    return PINNModule(heat(), MLP(2, 1, width=8, depth=2), **options)


class Counting(Callback):
    """Counts the hooks that both loops must call."""

    def __init__(self):
        self.calls = {"on_before_backward": 0, "on_after_backward": 0, "on_before_optimizer_step": 0}

    def on_before_backward(self, trainer, pl_module, loss):
        self.calls["on_before_backward"] += 1

    def on_after_backward(self, trainer, pl_module):
        self.calls["on_after_backward"] += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.calls["on_before_optimizer_step"] += 1


class ZeroGradCounter(Callback):
    """A callback with the hook that only the automatic loop calls."""

    def __init__(self):
        self.calls = 0

    def on_before_zero_grad(self, trainer, pl_module, optimizer):
        self.calls += 1


@pytest.mark.parametrize("precision", ["32-true", "64-true"])
def test_manual_and_automatic_loops_give_identical_updates_through_schedulers_and_lbfgs(tmp_path, precision):
    runs = {}
    for optimization in ("manual", "automatic"):
        m = module(optimization=optimization, scheduler=HALVING, lbfgs_from_step=5, lbfgs=LBFGS)
        counting = Counting()
        trainer = small_trainer(tmp_path, max_steps=8, callbacks=[counting], precision=precision)
        trainer.fit(m)
        assert m.automatic_optimization is (optimization == "automatic")
        assert trainer.global_step == 8 and m.phase == "lbfgs"
        runs[optimization] = [p.detach().clone() for p in m.parameters()], counting.calls
    (manual, manual_calls), (automatic, automatic_calls) = runs["manual"], runs["automatic"]
    assert all(torch.equal(a, b) for a, b in zip(manual, automatic))
    assert manual_calls == automatic_calls
    # Lightning calls the three hooks around each loss evaluation: once per Adam step, several per L-BFGS step
    assert manual_calls["on_after_backward"] == manual_calls["on_before_optimizer_step"] > 8


def test_manual_step_steps_the_scheduler_every_step(tmp_path):
    m = module(optimization="manual", scheduler=HALVING)
    trainer = small_trainer(tmp_path, max_steps=5)
    trainer.fit(m)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** (5 // 2))


def test_auto_takes_the_manual_step_on_a_plain_trainer(tmp_path):
    m = module()
    trainer = small_trainer(tmp_path, max_steps=3)
    trainer.fit(m)
    assert m.automatic_optimization is False
    assert why_automatic(m, PINNModule, trainer) is None


class OwnStrategy(SingleDeviceStrategy):
    """A strategy subclass: the manual step is only used under the strategies it is known to work with."""


@pytest.mark.parametrize(
    ("trainer_options", "reason"),
    [
        ({"gradient_clip_val": 1.0}, "clips gradients"),
        ({"accumulate_grad_batches": 2}, "accumulates gradients"),
        ({"profiler": "simple"}, "profiles (SimpleProfiler)"),
        ({"precision": "bf16-mixed"}, "the precision is bf16-mixed"),
        ({"strategy": OwnStrategy(torch.device("cpu"))}, "the strategy is OwnStrategy"),
        ({"callbacks": [ZeroGradCounter()]}, "ZeroGradCounter callback has an on_before_zero_grad"),
        ({"callbacks": [GradientAccumulationScheduler({0: 1})]}, "GradientAccumulationScheduler callback"),
        ({"callbacks": [StochasticWeightAveraging(1e-3)]}, "StochasticWeightAveraging callback"),
        ({"callbacks": [PhysicsLoss(heat())]}, "PhysicsLoss callback"),
        ({"callbacks": [ModelCheckpoint(every_n_train_steps=5)], "enable_checkpointing": True},
         "every n training steps"),
        ({"callbacks": [ModelCheckpoint(train_time_interval=timedelta(minutes=1))], "enable_checkpointing": True},
         "or by time"),
    ],
)
def test_auto_keeps_the_automatic_loop_for_trainers_that_need_it(tmp_path, trainer_options, reason):
    m = module()
    trainer = small_trainer(tmp_path, **trainer_options)
    assert reason in why_automatic(m, PINNModule, trainer)
    m.trainer = trainer
    assert m.automatic_optimization is True
    m.trainer = small_trainer(tmp_path)  # and takes the manual step again on a plain trainer
    assert m.automatic_optimization is False


@pytest.mark.parametrize("hook", AUTOMATIC_ONLY_HOOKS)
def test_auto_keeps_the_automatic_loop_for_subclasses_that_override_its_hooks(tmp_path, hook):
    def passing_through(self, *args, **kwargs):
        return getattr(super(subclass, self), hook)(*args, **kwargs)

    subclass = type("Own", (PINNModule,), {hook: passing_through})
    torch.manual_seed(0)
    m = subclass(heat(), MLP(2, 1, width=8, depth=2))
    trainer = small_trainer(tmp_path, max_steps=2)
    assert why_automatic(m, PINNModule, trainer) == f"Own.{hook} is overridden"
    trainer.fit(m)
    assert m.automatic_optimization is True and trainer.global_step == 2


def test_auto_keeps_the_automatic_loop_for_a_training_step_replaced_on_the_instance(tmp_path):
    m = module()
    m.training_step = lambda batch, batch_idx: 2.0 * PINNModule.training_step(m, batch, batch_idx)
    trainer = small_trainer(tmp_path, max_steps=2)
    trainer.fit(m)
    assert m.automatic_optimization is True


class PatchingCallback(Callback):
    """Replaces the module's training_step at setup, after the optimization loop was chosen."""

    def setup(self, trainer, pl_module, stage):
        original = pl_module.training_step
        pl_module.training_step = lambda batch, batch_idx: 2.0 * original(batch, batch_idx)


def test_a_training_step_replaced_after_auto_chose_manual_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="training_step was replaced on the instance after optimization='auto' "
                                           "chose manual optimization"):
        small_trainer(tmp_path, callbacks=[PatchingCallback()]).fit(module())


def test_auto_chooses_again_for_each_trainer(tmp_path):
    m = module()
    m.trainer = small_trainer(tmp_path, gradient_clip_val=1.0)
    assert m.automatic_optimization is True
    m.trainer = small_trainer(tmp_path)
    assert m.automatic_optimization is False


def test_gradient_clipping_is_applied_under_auto(tmp_path):
    m = module(optimizer={"_target_": "torch.optim.SGD", "lr": 1.0})
    before = torch.cat([p.detach().flatten() for p in m.parameters()])
    small_trainer(tmp_path, max_steps=3, gradient_clip_val=1e-9, gradient_clip_algorithm="norm").fit(m)
    moved = torch.cat([p.detach().flatten() for p in m.parameters()]) - before
    assert 0 < moved.norm() <= 3e-9 * (1 + 1e-4)  # each SGD step moves by lr * clipped gradient norm


def test_on_before_zero_grad_callbacks_run_under_auto(tmp_path):
    counter = ZeroGradCounter()
    small_trainer(tmp_path, max_steps=4, callbacks=[counter]).fit(module())
    assert counter.calls == 4


def test_explicit_choices_override_auto(tmp_path):
    m = module(optimization="manual")
    with pytest.raises(MisconfigurationException, match="gradient clipping is not supported for manual"):
        small_trainer(tmp_path, gradient_clip_val=1.0).fit(m)
    m = module()
    m.automatic_optimization = True
    m.trainer = small_trainer(tmp_path)
    assert m.automatic_optimization is True and m.optimization == "automatic"


def test_bad_optimization_value_is_refused():
    with pytest.raises(ValueError, match=r"optimization: expected one of \['auto', 'automatic', 'manual'\] "
                                         r"but got 'fused'"):
        module(optimization="fused")


class EpochScheduler(PINNModule):
    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters())
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1),
                                                         "interval": "epoch"}}


def test_manual_step_refuses_reduce_on_plateau(tmp_path):
    m = module(scheduler={"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau"})
    with pytest.raises(RuntimeError, match="a scheduler has ReduceLROnPlateau"):
        small_trainer(tmp_path).fit(m)


def test_manual_step_refuses_a_scheduler_it_would_not_step(tmp_path):
    torch.manual_seed(0)
    m = EpochScheduler(heat(), MLP(2, 1, width=8, depth=2), optimization="manual")
    with pytest.raises(RuntimeError, match="a scheduler has interval='epoch' \\(StepLR\\); pass "
                                           "optimization='automatic'"):
        small_trainer(tmp_path).fit(m)


@pytest.mark.parametrize(("first", "then"), [("manual", "automatic"), ("automatic", "manual")])
def test_resuming_under_the_other_loop_goes_on_from_the_saved_step(tmp_path, first, then):
    m = module(optimization=first)
    trainer = small_trainer(tmp_path, max_steps=6)
    trainer.fit(m)
    trainer.save_checkpoint(tmp_path / "six.ckpt")
    resumed = module(optimization=then)
    steps = []
    resumed.training_step = lambda *args: steps.append(resumed.global_step) or PINNModule.training_step(resumed, *args)
    trainer = small_trainer(tmp_path, max_steps=9)
    trainer.fit(resumed, ckpt_path=tmp_path / "six.ckpt")
    assert steps == [6, 7, 8] and trainer.global_step == 9


def test_switching_loops_twice_still_resumes_at_the_saved_step(tmp_path):
    previous, saved_at = None, 0
    for optimization, max_steps in (("manual", 3), ("automatic", 5), ("manual", 8), ("automatic", 10)):
        m = module(optimization=optimization)
        steps = []
        original = m.training_loss  # one evaluation per Adam step
        m.training_loss = lambda: steps.append(m.global_step) or original()
        trainer = small_trainer(tmp_path, max_steps=max_steps)
        trainer.fit(m, ckpt_path=previous)
        assert steps == list(range(saved_at, max_steps)) and trainer.global_step == max_steps
        previous, saved_at = tmp_path / f"{max_steps}.ckpt", max_steps
        trainer.save_checkpoint(previous)


def test_carry_step_count_leaves_checkpoints_without_loops_alone():
    checkpoint = {"state_dict": {}}
    carry_step_count(checkpoint, automatic=False)
    assert checkpoint == {"state_dict": {}}
