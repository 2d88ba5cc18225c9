"""Which recipe reaches a given error on Burgers soonest: a standalone loop, outside Lightning.

    python benchmarks/quasi_newton_recipe.py --budget 300 --method ssbroyden --width 20 --depth 4 \\
        --points 8000 --adam-steps 1000 --rad-every 500 --seed 0 [--hard-ic] [--periodic] [--compile]

Adam, then a dense quasi-Newton method (``lightning_pinn.optim.QuasiNewton``) or L-BFGS, on
Burgers' equation (nu = 0.01/pi) in float64, until the wall-time budget ends; optionally RAD
resampling of the interior points every ``--rad-every`` quasi-Newton iterations with the
inverse Hessian kept. The relative L2 error against the Cole-Hopf solution on the 256 x 100
grid is recorded every ``--eval-every`` seconds. Appends one JSON line per run to
``benchmarks/results/quasi_newton_recipe.jsonl``. This is the script that chose the recipe of
``experiment=burgers``; the library's own loop is measured by ``benchmarks/time_to_accuracy.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from lightning_pinn import MLP, PINNModule, Problem
from lightning_pinn.lightning.adaptive_sampling import rad_density, residual_magnitude, sample_proportional
from lightning_pinn.optim import QuasiNewton
from lightning_pinn.references import BurgersColeHopf
from lightning_pinn.residuals import prepare_engine

NU = 0.01 / math.pi
OUT = Path(__file__).resolve().parent / "results" / "quasi_newton_recipe.jsonl"


def burgers(args: argparse.Namespace) -> Problem:
    conditions = {"initial": {"region": "t=0", "residual": "u + sin(pi*x)", "points": args.condition_points,
                              "weight": args.condition_weight},
                  "boundary": {"region": "boundary", "residual": "u", "points": args.condition_points,
                               "weight": args.condition_weight}}
    transform = None
    if args.hard_ic:  # u(x, 0) = -sin(pi x) exactly, u(+-1, t) = 0 exactly
        conditions, transform = {}, {"u": "-sin(pi*x) + t*(1 - x**2)*u"}
    return Problem(coords={"x": [-1.0, 1.0], "t": [0.0, 1.0]}, fields=["u"], params={"nu": NU},
                   equations={"burgers": "u_t + u*u_x - nu*u_xx"}, conditions=conditions,
                   collocation_points=args.points, output_transform=transform, reference=BurgersColeHopf(NU))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=300.0, help="wall seconds from the start of training")
    parser.add_argument("--method", default="ssbroyden", choices=["bfgs", "ssbfgs", "ssbroyden", "lbfgs"])
    parser.add_argument("--width", type=int, default=20)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--points", type=int, default=8000)
    parser.add_argument("--condition-points", type=int, default=500)
    parser.add_argument("--condition-weight", type=float, default=5.0)
    parser.add_argument("--adam-steps", type=int, default=1000)
    parser.add_argument("--adam-lr", type=float, default=5e-3)
    parser.add_argument("--iterations", type=int, default=20, help="quasi-Newton iterations per step")
    parser.add_argument("--rad-every", type=int, default=0, help="RAD every this many quasi-Newton iterations")
    parser.add_argument("--rad-candidates", type=int, default=50000)
    parser.add_argument("--hard-ic", action="store_true")
    parser.add_argument("--periodic", action="store_true", help="exact periodicity in x (period 2)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--sampler", default="lhs")
    parser.add_argument("--eval-every", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    problem = burgers(args)
    net = MLP(2, 1, width=args.width, depth=args.depth, bounds=problem.bounds,
              periodic=[2.0, None] if args.periodic else None)
    module = PINNModule(problem, net, sampler=args.sampler, seed=args.seed, compile=args.compile,
                        divergence=None).double()
    params = [p for p in module.parameters() if p.requires_grad]
    points = module.collocation.current("cpu", torch.float64)
    grid = np.stack([m.ravel() for m in np.meshgrid(np.linspace(-1, 1, 256), np.linspace(0, 1, 100),
                                                    indexing="ij")], axis=1)
    exact = problem.reference_values(grid)[:, 0]
    grid_t = torch.as_tensor(grid)
    rng = np.random.default_rng(args.seed + 12345)

    def loss_fn() -> torch.Tensor:
        prepare_engine(module.derivative_engine, problem, points)
        return module.total_loss(module.compiled_loss_terms(points))

    def error() -> float:
        with torch.no_grad():
            u = module(grid_t)[:, 0].numpy()
        return float(np.linalg.norm(u - exact) / np.linalg.norm(exact))

    trace: list[tuple[float, int, float, float]] = []
    start = time.perf_counter()
    next_eval, iteration = 0.0, 0

    def record(loss: float) -> None:
        nonlocal next_eval
        elapsed = time.perf_counter() - start
        if elapsed >= next_eval:
            trace.append((round(elapsed, 2), iteration, loss, error()))
            next_eval = elapsed + args.eval_every
            print(f"{elapsed:7.1f}s it {iteration:6d} loss {loss:.3e} rel.L2 {trace[-1][3]:.3e}", flush=True)

    adam = torch.optim.Adam(params, lr=args.adam_lr, betas=(0.99, 0.999))
    decay = torch.optim.lr_scheduler.ExponentialLR(adam, gamma=0.98 ** (1 / 1000))
    for _ in range(args.adam_steps):
        adam.zero_grad()
        loss = loss_fn()
        loss.backward()
        adam.step()
        decay.step()
        iteration += 1
        record(float(loss))
        if time.perf_counter() - start > args.budget:
            break

    if args.method == "lbfgs":
        optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=args.iterations, history_size=50,
                                      line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)
    else:
        optimizer = QuasiNewton(params, method=args.method, max_iter=args.iterations)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    since_rad = 0
    while time.perf_counter() - start < args.budget:
        loss = optimizer.step(closure)
        iteration += args.iterations
        since_rad += args.iterations
        record(float(loss))
        if args.rad_every and since_rad >= args.rad_every:
            since_rad = 0
            candidates = np.stack([rng.uniform(-1, 1, args.rad_candidates), rng.uniform(0, 1, args.rad_candidates)], 1)
            x = torch.as_tensor(candidates)
            with torch.enable_grad():
                magnitude = residual_magnitude(module.residuals({"interior": x}), ["burgers"]).numpy()
            chosen = sample_proportional(rad_density(magnitude, 1.0, 1.0), args.points,
                                         rng.random(args.rad_candidates))
            points = {**points, "interior": x[chosen]}
            if isinstance(optimizer, QuasiNewton):
                optimizer.objective_changed()
            else:
                optimizer.state.clear()
    final = error()
    total = time.perf_counter() - start
    trace.append((round(total, 2), iteration, float("nan"), final))
    row = {"args": vars(args), "final_rel_l2": final, "seconds": total, "iterations": iteration, "trace": trace,
           "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
           "date": time.strftime("%Y-%m-%d %H:%M")}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as file:
        file.write(json.dumps(row) + "\n")
    print(f"final rel. L2 {final:.3e} after {total:.0f} s, {iteration} iterations")


if __name__ == "__main__":
    main()
