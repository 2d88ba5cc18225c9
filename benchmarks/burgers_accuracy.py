"""Accuracy and wall time of the default Burgers run (`python train.py experiment=burgers`), over seeds.

    python benchmarks/burgers_accuracy.py --seeds 0 1 2 [-- extra Hydra overrides]

Runs train.py once per seed, one after another, reads each run's metrics.json, and prints
a table with the median; writes the rows to benchmarks/results/burgers_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(seed: int, overrides: list[str], out: Path) -> dict:
    """One training run; returns its metrics.json plus the wall time of the whole process."""
    start = time.perf_counter()
    command = [sys.executable, "train.py", "experiment=burgers", f"seed={seed}", "logger=csv",
               "trainer.enable_progress_bar=false", f"hydra.run.dir={out}", *overrides]
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((out / "metrics.json").read_text())
    return {"seed": seed, "rel_l2_u": metrics["val/rel_l2_u"], "train_minutes": metrics["train_seconds"] / 60,
            "process_minutes": (time.perf_counter() - start) / 60, "steps": metrics["global_step"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, after --")
    args = parser.parse_args()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    rows = [run(seed, args.overrides, REPO / "outputs" / "benchmarks" / stamp / f"seed{seed}") for seed in args.seeds]

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Burgers (nu = 0.01/pi), python train.py experiment=burgers {' '.join(args.overrides)}")
    for column in ("seed", "rel. L2 error of u", "training minutes", "process minutes", "steps"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["seed"]), f"{r['rel_l2_u']:.2e}", f"{r['train_minutes']:.1f}",
                      f"{r['process_minutes']:.1f}", str(r["steps"]))
    median = {k: statistics.median(r[k] for r in rows) for k in ("rel_l2_u", "train_minutes", "process_minutes")}
    table.add_row("median", f"{median['rel_l2_u']:.2e}", f"{median['train_minutes']:.1f}",
                  f"{median['process_minutes']:.1f}", "")
    Console().print(table)
    import torch

    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    result = {"command": "python benchmarks/burgers_accuracy.py " + " ".join(sys.argv[1:]), "machine": machine,
              "date": stamp, "rows": rows, "median": median}
    path = REPO / "benchmarks" / "results" / "burgers_accuracy.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"machine: {machine}\nwrote {path}")


if __name__ == "__main__":
    main()
