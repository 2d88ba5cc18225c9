"""Sparse noisy data plus a PDE: the same LightningModule trained without and with ``PhysicsLoss``.

The heat equation ``u_t = k u_xx`` on ``x in [0, 1]``, ``t in [0, 1]`` with ``u = 0`` at
``x = 0, 1`` has the exact solution ``exp(-k pi^2 t) sin(pi x) + 0.5 exp(-4 k pi^2 t) sin(2 pi x)``.
We observe it at 40 random points with ``t <= 0.25`` (1% noise) and ask for ``t >= 0.5``,
away from every observation. ``Regressor`` below knows nothing of physics; the second run
only adds the callback.

    python examples/physics_regularized_regression.py            # the README numbers
    python examples/physics_regularized_regression.py --steps 20 # a quick look
"""

from __future__ import annotations

import argparse
import math

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_pinn import PhysicsLoss, Problem

K = 0.1


def exact(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The exact heat-equation solution the data come from."""
    return (np.exp(-K * math.pi**2 * t) * np.sin(math.pi * x)
            + 0.5 * np.exp(-4 * K * math.pi**2 * t) * np.sin(2 * math.pi * x))


class Regressor(pl.LightningModule):
    """An ordinary data-fitting module: an MLP from (x, t) to u with a mean-square data loss."""

    def __init__(self, observations: tuple[torch.Tensor, torch.Tensor]):
        super().__init__()
        self.observations = observations
        self.net = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.net(coords)

    def training_step(self, batch, batch_idx):
        coords, values = batch
        loss = (self(coords) - values).square().mean()
        self.log("train/data", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)

    def train_dataloader(self):
        return DataLoader(TensorDataset(*self.observations), batch_size=len(self.observations[0]))


def heat_problem() -> Problem:
    """The physics the data should respect: the heat equation and its boundary values."""
    return Problem(coords={"x": [0.0, 1.0], "t": [0.0, 1.0]}, fields=["u"], params={"k": K},
                   equations={"heat": "u_t - k*u_xx"},
                   conditions={"walls": {"region": "boundary", "residual": "u", "points": 128}},
                   collocation_points=2000)


def fit(observations, physics: bool, steps: int) -> Regressor:
    """Train a fresh Regressor on the observations, with or without the heat equation."""
    pl.seed_everything(0, verbose=False)
    module = Regressor(observations)
    callbacks = [PhysicsLoss(heat_problem(), weight=1.0)] if physics else []
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks)
    trainer.fit(module)
    return module


def main(steps: int) -> tuple[float, float]:
    """Print and return the relative L2 errors away from the data, without and with physics."""
    rng = np.random.default_rng(0)
    x, t = rng.uniform(0, 1, 40), rng.uniform(0, 0.25, 40)
    values = exact(x, t) + 0.01 * rng.standard_normal(40)
    observations = (torch.tensor(np.stack([x, t], 1), dtype=torch.float32),
                    torch.tensor(values[:, None], dtype=torch.float32))
    gx, gt = np.meshgrid(np.linspace(0, 1, 101), np.linspace(0.5, 1, 51), indexing="ij")
    grid = torch.tensor(np.stack([gx.ravel(), gt.ravel()], 1), dtype=torch.float32)
    reference = exact(gx.ravel(), gt.ravel())
    errors = []
    for physics in (False, True):
        module = fit(observations, physics, steps)
        with torch.no_grad():
            prediction = module(grid)[:, 0].double().numpy()
        errors.append(np.linalg.norm(prediction - reference) / np.linalg.norm(reference))
    print(f"relative L2 error for t in [0.5, 1], away from the data: without physics {errors[0]:.3e}, "
          f"with PhysicsLoss {errors[1]:.3e} ({errors[0] / errors[1]:.1f}x smaller)")
    return errors[0], errors[1]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps per training run")
    main(parser.parse_args().steps)
