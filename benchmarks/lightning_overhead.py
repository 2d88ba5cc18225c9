"""What the Lightning loop adds to a training step, and what per-step logging costs.

    python benchmarks/lightning_overhead.py                   # Burgers, 1,000 and 10,000 points
    python benchmarks/lightning_overhead.py --points 10000 --rounds 9

Three loops over the same compiled jet loss (8 x 20 tanh, Adam with lr 1e-3, float32):

- ``bare``: zero_grad, loss, backward, Adam step (``step_time.py``'s ``jets+compile``);
- ``lightning``: ``PINNModule`` in a ``Trainer`` with Lightning's default ``log_every_n_steps=50``,
  so the step metrics are logged on the steps the loggers write (``lightning_pinn.lightning.step_logging``);
- ``lightning, log every step``: the same with ``log_every_n_steps=1``, which logs every step,
  as the module did before.

Rounds alternate the three (rotating who goes first); the table shows the median over rounds of
the mean ms per step, and each Lightning loop's excess over the bare loop.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import torch
from step_time import LightningSteps, build_ours, make_points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", nargs="+", type=int, default=[1000, 10000])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40, help="steps per loop per round")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Burgers, median ms per step, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    for column in ("points", "bare", "lightning", "excess", "lightning, log every step", "excess"):
        table.add_column(column, justify="right")
    for n in args.points:
        points = make_points("burgers", n)
        bare = build_ours("jets+compile", "burgers", points, 20, 8)
        loops = {"lightning": LightningSteps("burgers", points, 20, 8),
                 "log1": LightningSteps("burgers", points, 20, 8, log_every_n_steps=1)}

        def run_bare(steps: int) -> float:
            start = time.perf_counter()
            for _ in range(steps):
                bare()
            return (time.perf_counter() - start) / steps

        runners = {"bare": run_bare, **{name: loop.run for name, loop in loops.items()}}
        for run in runners.values():
            run(3)  # compile and warm up
        samples: dict[str, list[float]] = {name: [] for name in runners}
        names = list(runners)
        for r in range(args.rounds):
            for name in names[r % 3:] + names[:r % 3]:
                samples[name].append(1e3 * runners[name](args.steps))
        ms = {name: statistics.median(v) for name, v in samples.items()}
        table.add_row(f"{n:,}", f"{ms['bare']:.2f}", f"{ms['lightning']:.2f}",
                      f"{100 * (ms['lightning'] / ms['bare'] - 1):+.0f}%", f"{ms['log1']:.2f}",
                      f"{100 * (ms['log1'] / ms['bare'] - 1):+.0f}%")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
