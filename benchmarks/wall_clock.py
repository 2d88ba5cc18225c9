"""A callback for benchmarks: the validation error against wall time since the process started."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning.pytorch as pl


class WallClockTrace(pl.Callback):
    """After each validation, appends ``{"seconds", "step", "rel_l2"}`` to a JSON-lines file.

    Args:
        path: the file.
        started: ``time.time()`` when the process was launched (so start-up counts).
        metric: the logged metric to record.
    """

    def __init__(self, path: str, started: float, metric: str = "val/rel_l2_u"):
        self.path, self.started, self.metric = Path(path), float(started), metric

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if trainer.sanity_checking or value is None or trainer.global_rank != 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(json.dumps({"seconds": time.time() - self.started, "step": trainer.global_step,
                                   "rel_l2": float(value)}) + "\n")
