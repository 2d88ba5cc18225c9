"""Who takes ``PINNModule``'s optimizer step: Lightning's automatic loop, or the training step itself.

With automatic optimization Lightning wraps every step in a closure object, a result object
and half a dozen hooks (zero_grad, backward, optimizer step, scheduler stepping), which on a
CPU costs a few percent of a compiled 10,000-point step (``python benchmarks/lightning_overhead.py``).
In Lightning's manual optimization the module's ``training_step`` calls ``optimizer.step(closure)``
itself; Lightning still runs the precision plugin, ``manual_backward`` (DDP, AMP loss scaling),
``on_before_backward``, ``on_after_backward`` and ``on_before_optimizer_step``, and counts the
steps. What it skips is what the automatic loop alone does: gradient clipping and
accumulation, the ``on_before_zero_grad``/``optimizer_zero_grad``/``optimizer_step`` hooks,
stepping the schedulers, and some ``ModelCheckpoint`` triggers. ``PINNModule`` steps its own
schedulers, and :func:`why_automatic` keeps the automatic loop wherever one of the others is in use.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import GradientAccumulationScheduler, ModelCheckpoint, StochasticWeightAveraging
from lightning.pytorch.plugins.precision import DoublePrecision, Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

from lightning_pinn.lightning.physics_loss import PhysicsLoss

OPTIMIZATION = ("auto", "automatic", "manual")
"""Values of ``PINNModule(optimization=...)``."""

AUTOMATIC_ONLY_HOOKS = ("training_step", "configure_optimizers", "optimizer_step", "optimizer_zero_grad",
                        "on_before_zero_grad", "configure_gradient_clipping")
"""Module hooks that only the automatic loop calls, or that ``PINNModule``'s own step replaces."""

_AUTOMATIC_STEPS = "epoch_loop.automatic_optimization.optim_progress"
_MANUAL_STEPS = "epoch_loop.manual_optimization.optim_step_progress"


def why_automatic(module: pl.LightningModule, base: type, trainer: pl.Trainer) -> str | None:
    """Why ``module`` (a subclass of ``base``) needs Lightning's automatic loop under ``trainer``; None if it does not.

    The automatic loop is kept when:

    - a subclass overrides a hook of ``AUTOMATIC_ONLY_HOOKS``, or ``training_step`` is replaced on
      the instance (what it returns would not be the loss that is stepped);
    - the trainer clips gradients, accumulates batches, or profiles (the profiler's sections differ);
    - the precision is not ``32-true`` or ``64-true``: under a mixed or half precision the manual
      step would run backward and the optimizer inside the autocast or half-dtype context, which
      changes the updates;
    - the strategy is not single-device or plain DDP;
    - a callback relies on the automatic loop: one with an ``on_before_zero_grad`` hook,
      gradient-accumulation scheduling, stochastic weight averaging, ``PhysicsLoss`` (it adds to
      the loss the step returns), or a ``ModelCheckpoint`` that saves every n training steps or by
      time (Lightning treats those differently under manual optimization).
    """
    for hook in AUTOMATIC_ONLY_HOOKS:
        if getattr(type(module), hook) is not getattr(base, hook):
            return f"{type(module).__name__}.{hook} is overridden"
    if "training_step" in module.__dict__:
        return "training_step is replaced on the instance"
    if trainer.gradient_clip_val:
        return f"the trainer clips gradients (gradient_clip_val={trainer.gradient_clip_val})"
    if trainer.accumulate_grad_batches != 1:
        return f"the trainer accumulates gradients (accumulate_grad_batches={trainer.accumulate_grad_batches})"
    if type(trainer.precision_plugin) not in (Precision, DoublePrecision):
        return f"the precision is {trainer.precision}"
    if not isinstance(trainer.profiler, PassThroughProfiler):
        return f"the trainer profiles ({type(trainer.profiler).__name__})"
    if type(trainer.strategy) not in (SingleDeviceStrategy, DDPStrategy):
        return f"the strategy is {type(trainer.strategy).__name__}"
    for callback in trainer.callbacks:
        name = type(callback).__name__
        if isinstance(callback, (GradientAccumulationScheduler, StochasticWeightAveraging, PhysicsLoss)):
            return f"the {name} callback needs it"
        if type(callback).on_before_zero_grad is not pl.Callback.on_before_zero_grad:
            return f"the {name} callback has an on_before_zero_grad hook"
        if isinstance(callback, ModelCheckpoint) and (
            getattr(callback, "_every_n_train_steps", 0) or getattr(callback, "_train_time_interval", None)
        ):
            return "a ModelCheckpoint saves every n training steps or by time"
    return None


def check_manual_step(module: pl.LightningModule, trainer: pl.Trainer, chosen: bool) -> None:
    """Refuse what a manually optimized ``PINNModule`` would silently drop, once the run is set up.

    Its own scheduler is stepped every step; a callback may add others (an epoch interval, or
    ``ReduceLROnPlateau``, which needs a monitored value), which only Lightning's automatic loop
    steps. When ``auto`` ``chose`` manual optimization, a ``training_step`` replaced on the instance
    since (by a callback's ``setup``, say) may change the returned loss, which would not be stepped.
    """
    if chosen and "training_step" in module.__dict__:
        raise RuntimeError(
            "optimization: training_step was replaced on the instance after optimization='auto' chose manual "
            "optimization (the optimizer steps inside PINNModule.training_step, so a changed return value would "
            "be ignored); pass optimization='automatic'"
        )
    for config in trainer.lr_scheduler_configs:
        plateau = config.reduce_on_plateau or isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if config.interval != "step" or plateau:
            kind = "ReduceLROnPlateau" if plateau else f"interval={config.interval!r}"
            raise RuntimeError(
                f"optimization: PINNModule takes its own optimizer steps here (manual optimization) and steps "
                f"schedulers with interval='step' only, but a scheduler has {kind} "
                f"({type(config.scheduler).__name__}); pass optimization='automatic' to let Lightning step it"
            )


def step_schedulers(module: pl.LightningModule, batch_idx: int) -> None:
    """Step the ``interval='step'`` schedulers that are due after batch ``batch_idx``, as Lightning's loop does."""
    for config in module.trainer.lr_scheduler_configs:
        if (batch_idx + 1) % config.frequency == 0:
            module.lr_scheduler_step(config.scheduler, None)


def carry_step_count(checkpoint: dict[str, Any], automatic: bool) -> None:
    """Let a run resume the optimizer-step count of a checkpoint written under the other optimization loop.

    Lightning counts optimizer steps (``global_step``) in one progress tracker per loop and reads
    the one of the current loop, so a checkpoint written by the automatic loop would resume at
    step 0 under the manual one, and the other way round; and only the active tracker moves, so after
    a run that changed loops the other one is behind. When the other tracker has counted more
    steps than this run's, its counts are copied over (in the checkpoint dict, before Lightning
    loads the loops). Checkpoints without loop state are left alone.
    """
    try:
        fit_loop = checkpoint["loops"]["fit_loop"]
        automatic_steps = fit_loop[_AUTOMATIC_STEPS]["optimizer"]["step"]
        manual_steps = fit_loop[_MANUAL_STEPS]
        counts = automatic_steps["total"]["completed"], manual_steps["total"]["completed"]
    except (KeyError, TypeError):
        return
    if automatic and counts[1] > counts[0]:
        fit_loop[_AUTOMATIC_STEPS]["optimizer"]["step"] = copy.deepcopy(manual_steps)
    elif not automatic and counts[0] > counts[1]:
        fit_loop[_MANUAL_STEPS] = copy.deepcopy(automatic_steps)
