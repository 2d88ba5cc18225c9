"""Error against wall time on Burgers: ``python train.py experiment=burgers`` and DeepXDE's own example.

    python benchmarks/time_to_accuracy.py --seeds 0 1 2 --budgets 300 [-- extra Hydra overrides]

For each seed, one after another on this machine:

1. DeepXDE's Burgers example (``baselines/deepxde_burgers.py``: its settings through its own API,
   when DeepXDE is installed: ``pip install -r benchmarks/baselines/requirements.txt``), timed as a
   whole process, with its error every 1,000 iterations;
2. ours at the same budget: ``train.py experiment=burgers`` with ``trainer.max_time`` set so that
   the whole process takes about as long as DeepXDE's did (its start-up and final validation
   measured on the first run and taken off);
3. ours at each ``--budgets`` (seconds of the whole process).

Errors are the relative L2 error of u against the Cole-Hopf solution on the 256 x 100 grid, for
both libraries; ours is also traced at every validation (``benchmarks/wall_clock.py``). Writes
``benchmarks/results/time_to_accuracy.json`` (every run and trace, machine, versions, command),
``time_to_accuracy.md`` (the table: medians and ranges over seeds) and ``time_to_accuracy.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def run_deepxde(seed: int, out: Path) -> dict | None:
    """DeepXDE's example for ``seed``; None when DeepXDE is not installed."""
    try:
        import deepxde  # noqa: F401
    except ImportError:
        return None
    path = out / f"deepxde_seed{seed}.json"
    started = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "baselines" / "deepxde_burgers.py"), "--seed",
                    str(seed), "--out", str(path)], cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DDE_BACKEND": "pytorch", "PYTHONPATH": str(REPO)})
    result = json.loads(path.read_text())
    return {**result, "process_seconds": time.perf_counter() - started}


def run_ours(seed: int, budget: float, overhead: float, overrides: list[str], out: Path) -> dict:
    """``train.py experiment=burgers`` capped so that the whole process takes about ``budget`` seconds."""
    run_dir = out / f"ours_seed{seed}_{int(budget)}s"
    train_seconds = max(int(budget - overhead), 1)
    trace = run_dir / "trace.jsonl"
    started = time.time()
    command = [sys.executable, "train.py", "experiment=burgers", f"seed={seed}", "logger=csv",
               "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
               f"trainer.max_time=00:00:{train_seconds // 60:02d}:{train_seconds % 60:02d}",
               "+callbacks.clock._target_=wall_clock.WallClockTrace", f"+callbacks.clock.path={trace}",
               f"+callbacks.clock.started={started}", *overrides]
    begin = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(REPO / "benchmarks")})
    process = time.perf_counter() - begin
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
    return {"seed": seed, "budget": budget, "process_seconds": process, "train_seconds": metrics["train_seconds"],
            "final_rel_l2": metrics["val/rel_l2_u"], "steps": metrics["global_step"], "status": metrics["status"],
            "trace": [[r["seconds"], r["step"], r["rel_l2"]] for r in rows]}


def summary(values: list[float]) -> str:
    """``median (min to max)`` in scientific notation."""
    if not values:
        return "-"
    median = statistics.median(values)
    return f"{median:.2e}" if len(values) == 1 else f"{median:.2e} ({min(values):.2e} to {max(values):.2e})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budgets", type=float, nargs="*", default=[300.0], help="whole-process seconds")
    parser.add_argument("--overhead", type=float, default=None,
                        help="seconds of our process outside training (default: measured on the first run)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for our runs, after --")
    args = parser.parse_args()
    import torch

    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    out = REPO / "outputs" / "time_to_accuracy" / stamp
    out.mkdir(parents=True, exist_ok=True)
    overhead = args.overhead
    deepxde_runs, ours = [], []
    for seed in args.seeds:
        reference = run_deepxde(seed, out)
        budgets = list(args.budgets)
        if reference is not None:
            deepxde_runs.append({"seed": seed, **reference})
            budgets.insert(0, reference["process_seconds"])
        for k, budget in enumerate(budgets):
            row = run_ours(seed, budget, overhead if overhead is not None else 15.0, args.overrides, out)
            row["at"] = "deepxde" if reference is not None and k == 0 else f"{int(budget)} s"
            ours.append(row)
            if overhead is None:  # measured once: what our process spends outside training
                overhead = row["process_seconds"] - row["train_seconds"]
            print(f"seed {seed} {row['at']}: ours {row['final_rel_l2']:.3e} in {row['process_seconds']:.0f} s"
                  + (f"; DeepXDE {reference['final_rel_l2']:.3e} in {reference['process_seconds']:.0f} s"
                     if row["at"] == "deepxde" else ""), flush=True)

    machine = (f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
               f"{torch.get_num_threads()} torch threads, torch {torch.__version__}").strip()
    command = "python benchmarks/time_to_accuracy.py " + " ".join(sys.argv[1:])
    record = {"command": command, "machine": machine, "date": stamp, "seeds": args.seeds, "overrides": args.overrides,
              "deepxde": deepxde_runs, "ours": ours}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "time_to_accuracy.json").write_text(json.dumps(record, indent=1))
    (RESULTS / "time_to_accuracy.md").write_text(table(record))
    plot(deepxde_runs, ours, RESULTS / "time_to_accuracy.png")
    print(table(record))


def table(record: dict) -> str:
    """The markdown table of a saved run (``time_to_accuracy.json``): medians and ranges over seeds."""
    deepxde_runs, ours = record["deepxde"], record["ours"]
    lines = ["| run | wall seconds, median (range) | rel. L2 error of u, median (range) |", "|---|---|---|"]
    if deepxde_runs:
        lines.append(f"| DeepXDE 1.15 Burgers example (15k Adam + L-BFGS, fp32) | "
                     f"{seconds([r['process_seconds'] for r in deepxde_runs])} | "
                     f"{summary([r['final_rel_l2'] for r in deepxde_runs])} |")
    for at in dict.fromkeys(r["at"] for r in ours):
        rows = [r for r in ours if r["at"] == at]
        label = "at DeepXDE's wall time" if at == "deepxde" else f"capped at {at}"
        lines.append(f"| `train.py experiment=burgers`, {label} | {seconds([r['process_seconds'] for r in rows])} | "
                     f"{summary([r['final_rel_l2'] for r in rows])} |")
    if deepxde_runs:
        ratios = [o["final_rel_l2"] / d["final_rel_l2"] for o, d in
                  zip([r for r in ours if r["at"] == "deepxde"], deepxde_runs)]
        lines.append(f"\nOur error over DeepXDE's at its wall time, per seed: {', '.join(f'{x:.4f}' for x in ratios)}.")
    seeds = record.get("seeds") or sorted({r["seed"] for r in ours})
    header = f"Measured {record['date'][:10]} on {record['machine']}; seeds {seeds}; `{record['command']}`.\n\n"
    return header + "\n".join(lines) + "\n"


def seconds(values: list[float]) -> str:
    """``median (min to max)`` in whole seconds."""
    return f"{statistics.median(values):.0f} ({min(values):.0f} to {max(values):.0f})"


def plot(deepxde_runs: list[dict], ours: list[dict], path: Path) -> None:
    """Error against wall time, every run of both libraries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 4.5))
    for k, run in enumerate(deepxde_runs):
        trace = [p for p in run["trace"] if p[2] == p[2]]
        ax.plot([p[0] for p in trace], [p[2] for p in trace], color="tab:orange", alpha=0.8,
                label="DeepXDE example" if k == 0 else None)
    longest = {}
    for run in ours:  # the longest run of each seed shows the whole curve
        if run["seed"] not in longest or run["process_seconds"] > longest[run["seed"]]["process_seconds"]:
            longest[run["seed"]] = run
    for k, run in enumerate(longest.values()):
        ax.plot([p[0] for p in run["trace"]], [p[2] for p in run["trace"]], color="tab:blue", alpha=0.8,
                label="lightning-pinn experiment=burgers" if k == 0 else None)
    ax.set_xlabel("wall seconds since the process started")
    ax.set_ylabel("relative L2 error of u")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
