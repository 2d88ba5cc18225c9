"""Inverse Burgers: recover the viscosity from observations of the solution (Raissi et al. 2019, identification).

The viscosity is learned as ``nu = exp(log_nu)`` (a learnable parameter of the problem,
started at nu = 0.01, about three times the true 0.01/pi), with the initial and boundary
conditions known. The data are 2,000 noiseless samples of the exact Cole-Hopf solution at
random points of the domain; a subclass adds their misfit as a Python term.

    python examples/burgers_inverse.py            # the README number
    python examples/burgers_inverse.py --steps 20 # a quick look
"""

from __future__ import annotations

import argparse
import math

import lightning.pytorch as pl
import numpy as np
import torch

from lightning_pinn import MLP, PINNModule, Problem
from lightning_pinn.references import BurgersColeHopf

TRUE_NU = 0.01 / math.pi


class BurgersInverse(PINNModule):
    """A PINN with a data term: the fields must match observations and satisfy the equation."""

    def __init__(self, observations: tuple[torch.Tensor, torch.Tensor], **kwargs):
        problem = Problem(coords={"x": [-1.0, 1.0], "t": [0.0, 1.0]}, fields=["u"],
                          learnable={"log_nu": math.log(0.01)},
                          equations={"burgers": "u_t + u*u_x - exp(log_nu)*u_xx"},
                          conditions={"initial": {"region": "t=0", "residual": "u + sin(pi*x)", "points": 256},
                                      "boundary": {"region": "boundary", "residual": "u", "points": 256}},
                          collocation_points=2000, reference=BurgersColeHopf(TRUE_NU))
        super().__init__(problem, MLP(2, 1, width=20, depth=8, bounds=problem.bounds), **kwargs)
        self.register_buffer("observed_points", observations[0])
        self.register_buffer("observed_values", observations[1])

    def residuals(self, points):
        out = super().residuals(points)
        out["data"] = self(self.observed_points)[:, 0] - self.observed_values
        return out


def main(steps: int, lbfgs_from_step: int) -> float:
    """Train, print the recovered viscosity and its relative error, and return that error."""
    pl.seed_everything(0, verbose=False)
    rng = np.random.default_rng(0)
    x, t = rng.uniform(-1, 1, 2000), rng.uniform(0, 1, 2000)
    observations = (torch.tensor(np.stack([x, t], 1)), torch.tensor(BurgersColeHopf(TRUE_NU)(x, t)))
    lbfgs = {"_target_": "torch.optim.LBFGS", "max_iter": 50, "history_size": 50, "line_search_fn": "strong_wolfe",
             "tolerance_grad": 0.0, "tolerance_change": 0.0}
    phases = {"adam": {"optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-3}, "steps": lbfgs_from_step},
              "lbfgs": {"optimizer": lbfgs}}
    module = BurgersInverse(observations, phases=phases, sampler="lhs", validation_grid=64)
    trainer = pl.Trainer(max_steps=steps, precision="64-true", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, inference_mode=False,
                         num_sanity_val_steps=0, val_check_interval=max(steps, 1), check_val_every_n_epoch=None)
    trainer.fit(module)
    nu = math.exp(module.pde_params["log_nu"].item())
    error = abs(nu - TRUE_NU) / TRUE_NU
    print(f"recovered nu = {nu:.6f} (true {TRUE_NU:.6f}), relative error {100 * error:.3f}% "
          f"after {trainer.global_step} steps")
    return error


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1200, help="optimizer steps in all (Adam, then L-BFGS)")
    parser.add_argument("--lbfgs-from-step", type=int, default=1000, help="switch from Adam to L-BFGS here")
    args = parser.parse_args()
    main(args.steps, min(args.lbfgs_from_step, args.steps))
