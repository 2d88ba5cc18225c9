"""Subclassing ``PINNModule`` the way an existing Lightning project would: residual and constraint in Python.

The Poisson problem ``u_xx + u_yy = -2 pi^2 sin(pi x) sin(pi y)`` on the unit square with
``u = 0`` on its boundary (exact solution ``sin(pi x) sin(pi y)``) is not in ``conf/``. The
subclass writes the residual as a Python method with the library's derivative helpers,
and makes the boundary condition exact by overriding ``forward``.

    python examples/subclass_pinnmodule.py            # the README number
    python examples/subclass_pinnmodule.py --steps 20 # a quick look
"""

from __future__ import annotations

import argparse
import math

import lightning.pytorch as pl
import numpy as np
import torch

from lightning_pinn import MLP, PINNModule, Problem, hessian


def exact(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The exact solution, used as the validation reference."""
    return np.sin(np.pi * x) * np.sin(np.pi * y)


class PoissonPINN(PINNModule):
    """A PINN whose physics is written in Python rather than in a YAML spec."""

    def __init__(self, width: int = 32, depth: int = 3, **kwargs):
        problem = Problem(coords={"x": [0.0, 1.0], "y": [0.0, 1.0]}, fields=["u"],
                          equations={"poisson": poisson_residual}, collocation_points=1024, reference=exact)
        super().__init__(problem, MLP(2, 1, width=width, depth=depth, bounds=problem.bounds), **kwargs)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """u = x (1 - x) y (1 - y) * net(x, y): zero on the boundary by construction."""
        x, y = coords[:, :1], coords[:, 1:]
        return x * (1 - x) * y * (1 - y) * self.net(coords)


def poisson_residual(ev) -> torch.Tensor:
    """``u_xx + u_yy + 2 pi^2 sin(pi x) sin(pi y)`` per point, with the functional derivative API."""
    x = ev.x
    laplacian = hessian(ev.y, x, 0, 0, 0) + hessian(ev.y, x, 0, 1, 1)
    source = 2 * math.pi**2 * torch.sin(math.pi * x[:, :1]) * torch.sin(math.pi * x[:, 1:])
    return (laplacian + source)[:, 0]


def main(steps: int) -> float:
    """Train and return the relative L2 error against the exact solution."""
    pl.seed_everything(0, verbose=False)
    module = PoissonPINN(phases={"adam": {"optimizer": {"_target_": "torch.optim.Adam", "lr": 3e-3}}}, validation_grid=51)
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, inference_mode=False, num_sanity_val_steps=0,
                         val_check_interval=max(steps, 1), check_val_every_n_epoch=None)
    trainer.fit(module)
    error = trainer.validate(module, verbose=False)[0]["val/rel_l2_u"]
    print(f"relative L2 error of u: {error:.3e} after {trainer.global_step} steps")
    return error


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps")
    main(parser.parse_args().steps)
