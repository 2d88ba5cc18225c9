"""A callback that records what each DDP rank sees, for tests/test_ddp.py (loaded by train.py via Hydra)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch


class RankProbe(pl.Callback):
    """Saves each rank's first collocation points, final learnable parameters and final weights to ``dirpath``."""

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 1:
            self._save(trainer, "points", {k: v.cpu() for k, v in pl_module.training_points().items()})

    def on_train_end(self, trainer, pl_module):
        self._save(trainer, "params", {k: v.detach().cpu() for k, v in pl_module.pde_params.items()})
        self._save(trainer, "weights", {k: v.detach().cpu() for k, v in pl_module.net.state_dict().items()})

    def _save(self, trainer, what, value):
        self.dirpath.mkdir(parents=True, exist_ok=True)
        torch.save(value, self.dirpath / f"{what}_rank{trainer.global_rank}_of{trainer.world_size}.pt")
