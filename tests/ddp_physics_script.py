"""Run by tests/test_ddp.py: a plain LightningModule with PhysicsLoss under DDP on 2 CPU processes.

    python tests/ddp_physics_script.py OUT_DIR [weighted]

With ``weighted``, the problem is an ODE in time and PhysicsLoss balances its terms (gradnorm)
and weights its equation causally, so both are exercised across ranks.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_pinn import PhysicsLoss, Problem


class Regressor(pl.LightningModule):
    """A data-fitting module that knows nothing of physics."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return (self(x) - y).square().mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)

    def train_dataloader(self):
        x = torch.linspace(0.5, 1.0, 16)[:, None]
        return DataLoader(TensorDataset(x, torch.sin(x)), batch_size=8)


class Probe(pl.Callback):
    """Saves each rank's physics points and learnable parameters."""

    def __init__(self, physics: PhysicsLoss, out: Path):
        self.physics, self.out = physics, out

    def on_train_end(self, trainer, pl_module):
        points = {k: v.cpu() for k, v in self.physics.collocation.points.items()}
        params = {k: v.detach().cpu() for k, v in pl_module.physics_params.items()}
        weighting = self.physics.weighted_loss
        torch.save({"points": points, "params": params, "balance": {k: v.cpu() for k, v in weighting.balance.items()},
                    "causal_stage": None if weighting.causal is None else weighting.causal.stage,
                    "causal_weights": {k: v.cpu() for k, v in weighting.causal_weights.items()}},
                   self.out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    out = Path(sys.argv[1])
    if sys.argv[2:] == ["weighted"]:
        problem = Problem(coords={"t": [0.0, math.pi]}, fields=["u"], equations={"ode": "u_t - a*cos(t)"},
                          conditions={"start": {"region": "t=0", "residual": "u", "points": 4}},
                          learnable={"a": 0.5}, collocation_points=64)
        physics = PhysicsLoss(problem, balancing={"name": "gradnorm", "every": 1},
                              causal={"chunks": 4, "epsilon": [0.0, 1.0], "threshold": 0.5})
    else:
        problem = Problem(coords={"x": [0.0, math.pi]}, fields=["u"], equations={"ode": "u_x - a*cos(x)"},
                          learnable={"a": 0.5}, collocation_points=64)
        physics = PhysicsLoss(problem)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=6, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[physics, Probe(physics, out)])
    trainer.fit(Regressor())
