"""A progress bar for step-based training: ``step / max_steps``, the time left, errors in scientific notation."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Timer, TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, counting optimizer steps of one endless epoch.

    A PINN trains in one endless epoch of ``max_steps`` steps, so Lightning's bar shows
    ``Epoch 0/-2`` and an ETA from a batch count it does not know. This bar counts global steps
    (from the resumed step on), its total is ``max_steps`` or, when ``max_time`` ends the run
    first, the steps the measured rate fits into the time left (so tqdm's ETA is the run's end),
    and shows logged values such as ``val/rel_l2_u`` as ``1.23e-03`` rather than ``0.001``.

    Args:
        refresh_rate: update the bar every this many steps.
    """

    def __init__(self, refresh_rate: int = 1):
        super().__init__(refresh_rate=refresh_rate)
        self._first_step = 0
        self._started = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        """Start counting at the current step; describe the bar as training."""
        super().on_train_epoch_start(trainer, *_)
        self._first_step, self._started = trainer.global_step, time.monotonic()
        bar = self.train_progress_bar
        bar.reset(total=self._total(trainer))
        bar.initial = bar.n = trainer.global_step
        bar.set_description("train")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Show the global step, the total the run will reach and the metrics."""
        bar = self.train_progress_bar
        step = trainer.global_step
        if bar.disable or not self._should_update(step, bar.total):
            return
        total = self._total(trainer)
        if total != bar.total:
            bar.total = total
        bar.n = step
        bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        bar.refresh()

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """The logged progress-bar values, numbers in scientific notation, without the logger version."""
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return {k: f"{v:.3e}" if isinstance(v, float) else v for k, v in items.items()}

    def _total(self, trainer: pl.Trainer) -> int | None:
        """The step the run will end at: ``max_steps``, or sooner when the measured rate meets ``max_time``."""
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        remaining = timer.time_remaining() if timer is not None else None
        done, elapsed = trainer.global_step - self._first_step, time.monotonic() - self._started
        if remaining is not None and done > 0 and elapsed > 0:
            by_time = trainer.global_step + int(done / elapsed * max(remaining, 0.0))
            total = by_time if total is None else min(total, by_time)
        return total
