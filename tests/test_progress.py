"""The step progress bar: steps out of max_steps, an end from max_time when that comes first, scientific notation."""

from __future__ import annotations

import time
from types import SimpleNamespace

from lightning.pytorch.callbacks import Timer

from lightning_pinn import MLP, PINNModule
from lightning_pinn.lightning.progress import StepProgressBar
from tests.conftest import small_trainer
from tests.test_failures import GROWTH


class FixedTimer(Timer):
    """A timer with a set time left."""

    def __init__(self, remaining: float):
        super().__init__(duration="00:01:00:00")
        self.remaining = remaining

    def time_remaining(self, stage: str = "train") -> float:
        return self.remaining


def test_the_bar_counts_steps_to_max_steps_and_shows_scientific_notation(tmp_path):
    bar = StepProgressBar()
    module = PINNModule(GROWTH, MLP(1, 1, width=8, depth=2), validation_grid=8)
    trainer = small_trainer(tmp_path, max_steps=12, val_check_interval=6, enable_progress_bar=True, callbacks=[bar])
    trainer.fit(module)
    assert bar.train_progress_bar.total == 12 and bar.train_progress_bar.n == 12
    assert bar.train_progress_bar.desc.startswith("train")
    shown = bar.get_metrics(trainer, module)
    assert "v_num" not in shown
    assert all("e-" in value or "e+" in value for key, value in shown.items() if key.startswith(("train/", "val/")))
    assert "val/rel_l2_u" in shown and "train/loss" in shown


def test_the_total_is_where_max_time_ends_the_run_when_that_comes_first():
    bar = StepProgressBar()
    bar._first_step, bar._started = 100, time.monotonic() - 5.0  # 100 steps in the last 5 s: 20 steps per second
    trainer = SimpleNamespace(max_steps=10_000, global_step=200, callbacks=[FixedTimer(remaining=10.0)])
    assert 390 <= bar._total(trainer) <= 400  # 200 + 20/s * 10 s, give or take the clock between the two lines
    trainer.max_steps = 300
    assert bar._total(trainer) == 300  # max_steps comes first
    trainer.callbacks = []
    assert bar._total(trainer) == 300
    trainer.max_steps = -1
    assert bar._total(trainer) is None  # neither bound: an open count
