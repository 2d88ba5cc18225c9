"""Why jets are stored features first: the two orientations of a PINN layer's matrix product.

    python benchmarks/matmul_layout.py                       # widths 20 and 50, 10,000 points
    python benchmarks/matmul_layout.py --widths 20 --rows 4 --points 1000 10000 100000

A jet layer multiplies every Taylor row of ``N`` points by the same ``H x H`` weight. Stored
points-first (``(rows * N, H)``, as a module's activations are) that is ``X @ W.T``; stored
features-first (``(H, rows * N)``, the layout of ``lightning_pinn.derivatives.jets``) it is
``W @ X``. The backward pass adds the weight gradient ``G.T @ X`` (points-first) or
``G @ X.T`` (features-first). Both orientations are timed alternately, call by call, in
float32; the table shows the median microseconds per call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch


def median_us(calls: dict[str, Callable[[], torch.Tensor]], repeats: int) -> dict[str, float]:
    """Median microseconds per call of each function, called in alternation after a warm-up."""
    for fn in calls.values():
        for _ in range(5):
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(1e6 * (time.perf_counter() - start))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", nargs="+", type=int, default=[20, 50])
    parser.add_argument("--rows", type=int, default=4, help="value + Taylor rows (Burgers: 4)")
    parser.add_argument("--points", nargs="+", type=int, default=[10000])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Median us per call, float32, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    for column in ("width", "rows x points", "X @ W.T", "W @ X", "forward ratio", "G.T @ X", "G @ X.T",
                   "weight-gradient ratio"):
        table.add_column(column, justify="right")
    generator = torch.Generator().manual_seed(0)
    for width in args.widths:
        weight = torch.randn(width, width, generator=generator)
        for n in args.points:
            m = args.rows * n
            points_first, grad_points_first = (torch.randn(m, width, generator=generator) for _ in range(2))
            features_first, grad_features_first = points_first.T.contiguous(), grad_points_first.T.contiguous()
            t = median_us({
                "pf": lambda: points_first @ weight.T,
                "ff": lambda: weight @ features_first,
                "pf_grad": lambda: grad_points_first.T @ points_first,
                "ff_grad": lambda: grad_features_first @ features_first.T,
            }, args.repeats)
            table.add_row(str(width), f"{args.rows} x {n:,}", f"{t['pf']:.0f}", f"{t['ff']:.0f}",
                          f"{t['pf'] / t['ff']:.2f}", f"{t['pf_grad']:.0f}", f"{t['ff_grad']:.0f}",
                          f"{t['pf_grad'] / t['ff_grad']:.2f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
