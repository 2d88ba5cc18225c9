"""What the Lightning loop adds to a training step, and what per-step logging costs.

    python benchmarks/lightning_overhead.py                   # Burgers, 1,000 and 10,000 points
    python benchmarks/lightning_overhead.py --points 10000 --rounds 9
    python benchmarks/lightning_overhead.py --setting experiment --points 10000   # the README's Burgers run

Three loops over the same compiled jet loss (8 x 20 tanh, Adam with lr 1e-3, float32):

- ``bare``: zero_grad, loss, backward, Adam step (``step_time.py``'s ``jets+compile``);
- ``lightning``: ``PINNModule`` in a ``Trainer`` with Lightning's default ``log_every_n_steps=50``,
  so the step metrics are logged on the steps the loggers write (``lightning_pinn.lightning.step_logging``);
  the module takes the optimizer step in ``training_step`` (Lightning's manual optimization, its one path);
- ``log every step``: as ``lightning`` with ``log_every_n_steps=1``, which logs every step,
  as the module did before.

``--setting experiment`` times the step of ``python train.py experiment=burgers`` instead:
nested autograd, eager, float64 (``precision=64-true``), and that experiment's ``log_every_n_steps=10``
in the Lightning loop; the bare loop runs the same engine in float64.

Each Lightning loop runs with a bare step before each of its steps (inside its first
``on_train_batch_start`` hook, timed apart), so every Lightning step is paired with a bare step taken
just before it, and machine drift cancels step by step. Rounds run the Lightning loops in turn
(rotating who goes first). The table shows, per loop, the median over rounds of the mean ms per
step, and the excess as the median over rounds of the round's Lightning time over its paired
bare time.

Interleaving two loops in one process makes glibc hand the heap that one step freed back to the
system and the next step map it again: with a bare step before each Lightning step, the Lightning
steps took hundreds of minor page faults each and the bare steps none, while a Lightning loop on
its own faults no pages once it runs. So by default (``--malloc steady``) glibc is told, through
``mallopt``, to keep freed heap (trim threshold 1 GiB) and to serve blocks up to 32 MiB from the
heap, for both loops alike: the same as ``MALLOC_TRIM_THRESHOLD_=1073741824
MALLOC_MMAP_THRESHOLD_=33554432`` in the environment. ``--malloc default`` leaves glibc as it is.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from step_time import LightningSteps, build_ours, make_points

RESULTS = Path(__file__).resolve().parent / "results"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameters (malloc.h)."""


def keep_freed_heap() -> bool:
    """Make glibc keep freed heap and serve blocks up to 32 MiB from it; False where that is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError, TypeError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", nargs="+", type=int, default=[1000, 10000])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40, help="steps per loop per round")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--setting", choices=["compiled", "experiment"], default="compiled",
                        help="compiled: jets + compile, float32; experiment: experiment=burgers's autograd in float64")
    parser.add_argument("--malloc", choices=["steady", "default"], default="steady",
                        help="steady: glibc keeps freed heap (see above); default: glibc's own behaviour")
    parser.add_argument("--output", type=Path, default=RESULTS / "lightning_overhead.json",
                        help="where to write every round's times (JSON)")
    args = parser.parse_args()
    malloc = "glibc default"
    if args.malloc == "steady":
        malloc = "glibc keeps freed heap" if keep_freed_heap() else "malloc not glibc: left as it is"
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")

    from rich.console import Console
    from rich.table import Table

    experiment = args.setting == "experiment"
    engine, dtype, log_every = ("autograd", np.float64, 10) if experiment else ("jets", np.float32, 50)
    setting = "autograd, float64" if experiment else "jets + compile, float32"
    table = Table(title=f"Burgers ({setting}), median ms per step, {torch.get_num_threads()} torch threads, "
                        f"torch {torch.__version__}, {malloc}")
    for column in ("points", "bare", "lightning", "excess", "log every step", "excess"):
        table.add_column(column, justify="right")
    rows = []
    for n in args.points:
        points = make_points("burgers", n).astype(dtype)
        bare = build_ours("autograd" if experiment else "jets+compile", "burgers", points, 20, 8)
        loops = {name: LightningSteps("burgers", points, 20, 8, engine=engine, compile=not experiment,
                                      log_every_n_steps=every, interleave=bare)
                 for name, every in (("lightning", log_every), ("log1", 1))}
        for loop in loops.values():
            loop.run(3)  # compile and warm up (the bare loop too)
        light: dict[str, list[float]] = {name: [] for name in loops}
        paired: dict[str, list[float]] = {name: [] for name in loops}
        ratios: dict[str, list[float]] = {name: [] for name in loops}
        names = list(loops)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                loop = loops[name]
                light[name].append(1e3 * loop.run(args.steps))
                paired[name].append(1e3 * float(np.mean(loop.interleaved)))
                ratios[name].append(light[name][-1] / paired[name][-1])

        def excess(name: str) -> str:  # each round's Lightning steps over the bare steps interleaved with them
            return f"{100 * (statistics.median(ratios[name]) - 1):+.1f}%"

        bare_ms = statistics.median([ms for name in names for ms in paired[name]])
        table.add_row(f"{n:,}", f"{bare_ms:.2f}",
                      *[cell for name in names for cell in (f"{statistics.median(light[name]):.2f}", excess(name))])
        rows.append({"points": n, "bare_ms": bare_ms, "lightning_ms": light, "paired_bare_ms": paired,
                     "excess_median": {name: statistics.median(ratios[name]) - 1 for name in names}})
    Console(width=160).print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "command": "python benchmarks/lightning_overhead.py " + " ".join(sys.argv[1:]), "setting": setting,
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": torch.get_num_threads(), "versions": {"torch": torch.__version__}, "malloc": malloc,
        "rounds": args.rounds, "steps_per_round": args.steps, "rows": rows}, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
