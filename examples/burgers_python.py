"""Burgers' equation in plain Python: no Hydra, no YAML, just lightning-pinn objects and a Trainer.

    python examples/burgers_python.py            # the recipe of experiment=burgers_lbfgs (Adam, then L-BFGS)
    python examples/burgers_python.py --steps 50 # a quick look
"""

from __future__ import annotations

import argparse
import math

import lightning.pytorch as pl

from lightning_pinn import MLP, Condition, PINNModule, Problem
from lightning_pinn.references import BurgersColeHopf


def main(steps: int, lbfgs_from_step: int) -> float:
    """Train the Burgers PINN and return its relative L2 error against the exact solution."""
    nu = 0.01 / math.pi
    problem = Problem(
        coords={"x": [-1.0, 1.0], "t": [0.0, 1.0]},
        fields=["u"],
        params={"nu": nu},
        equations={"burgers": "u_t + u*u_x - nu*u_xx"},
        conditions={
            "initial": Condition(region="t=0", residual="u + sin(pi*x)", points=256),
            "boundary": Condition(region="boundary", residual="u", points=256),
        },
        collocation_points=10_000,
        reference=BurgersColeHopf(nu),
    )
    pl.seed_everything(0)
    net = MLP(in_features=2, out_features=1, width=20, depth=8, bounds=problem.bounds)
    lbfgs = {"_target_": "torch.optim.LBFGS", "max_iter": 50, "history_size": 50, "line_search_fn": "strong_wolfe",
             "tolerance_grad": 0.0, "tolerance_change": 0.0}
    phases = {"adam": {"optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-3}, "steps": lbfgs_from_step},
              "lbfgs": {"optimizer": lbfgs}}  # Adam, then L-BFGS until the end
    module = PINNModule(problem, net, phases=phases, sampler="lhs", validation_grid={"x": 256, "t": 100})
    trainer = pl.Trainer(max_steps=steps, precision="64-true", logger=False, enable_checkpointing=False,
                         inference_mode=False,
                         val_check_interval=max(steps // 4, 1), check_val_every_n_epoch=None,
                         num_sanity_val_steps=0, enable_progress_bar=False)
    trainer.fit(module)
    error = trainer.validate(module, verbose=False)[0]["val/rel_l2_u"]
    print(f"relative L2 error of u: {error:.3e} after {trainer.global_step} steps")
    return error


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1130, help="optimizer steps in all (Adam, then L-BFGS)")
    parser.add_argument("--lbfgs-from-step", type=int, default=1000, help="switch from Adam to L-BFGS here")
    args = parser.parse_args()
    main(args.steps, min(args.lbfgs_from_step, args.steps))
