"""What a user's own problem gets from the root defaults: ``train.py problem=<name>`` with no other option.

    python benchmarks/root_defaults.py --problems heat helmholtz poisson_holes --seeds 0 1 2 --minutes 4 --parallel 2

Each zoo problem (its YAML alone, none of its experiment's tuning) is trained under each recipe,
every run capped at the same wall time, in a fresh process, and scored against the problem's
reference (``val/rel_l2_<field>`` of ``metrics.json``):

- ``adam``: Adam at lr 1e-3 until the cap (the root default before 2026-12-06, which stopped at
  2,000 steps; here it gets the whole budget);
- ``defaults``: the root defaults as they are now (``conf/train.yaml``);
- ``gauss_newton``: the root defaults with ``optimizer=adam_gauss_newton`` (500 Adam steps, then
  Levenberg-Marquardt Gauss-Newton);
- ``quasi_newton_plain_adam``: the root defaults with Adam's own defaults (lr 1e-3, betas 0.9, 0.999)
  in the first phase.

``--merge`` adds this run's rows to the saved ``root_defaults.json`` (another recipe, same settings).

With ``--parallel 2`` two runs share the machine, one torch thread each. Writes
``benchmarks/results/root_defaults.json`` and ``root_defaults.md``.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RECIPES = {
    "adam": ["optimizer=adam", "trainer.max_steps=1000000"],
    "defaults": [],
    "gauss_newton": ["optimizer=adam_gauss_newton"],
    "quasi_newton_plain_adam": ["optimizer.phases.adam.optimizer.lr=1e-3",
                                "optimizer.phases.adam.optimizer.betas=[0.9,0.999]"],
}


def run(problem: str, recipe: str, minutes: float, seed: int, threads: int, out: Path) -> dict:
    """One run of ``train.py problem=<problem>`` under ``recipe``; its metrics and wall time."""
    run_dir = out / f"{problem}_{recipe}_seed{seed}"
    seconds = int(minutes * 60)
    command = [sys.executable, "train.py", f"problem={problem}", f"seed={seed}", "logger=csv",
               "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
               f"trainer.max_time=00:00:{seconds // 60:02d}:{seconds % 60:02d}", *RECIPES[recipe]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        return {"problem": problem, "recipe": recipe, "seed": seed, "error": result.stderr.strip().splitlines()[-1:]}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    errors = {k.removeprefix("val/rel_l2_"): v for k, v in metrics.items() if k.startswith("val/rel_l2_")}
    return {"problem": problem, "recipe": recipe, "seed": seed, "rel_l2": errors, "steps": metrics["global_step"],
            "train_seconds": metrics["train_seconds"], "wall_seconds": wall}


def spread(values: list[float]) -> str:
    """``median (min to max)`` in scientific notation."""
    if len(values) == 1:
        return f"{values[0]:.2e}"
    return f"{statistics.median(values):.2e} ({min(values):.2e} to {max(values):.2e})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=["heat", "helmholtz", "poisson_holes", "kdv"])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--merge", action="store_true", help="add to the saved results instead of replacing them")
    args = parser.parse_args()
    out = REPO / "outputs" / "root_defaults" / time.strftime("%Y-%m-%d_%H-%M-%S")
    jobs = [(p, r, seed) for seed in args.seeds for p in args.problems for r in args.recipes]
    threads = 1 if args.parallel > 1 else 2
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda job: run(job[0], job[1], args.minutes, job[2], threads, out), jobs))

    import torch

    machine = f"{platform.machine()}, {os.cpu_count()} cores, {threads} torch thread(s) per run, torch {torch.__version__}"
    command = "python benchmarks/root_defaults.py " + " ".join(sys.argv[1:])
    record = {"command": command, "machine": machine, "date": time.strftime("%Y-%m-%d"), "minutes": args.minutes,
              "parallel": args.parallel, "seeds": args.seeds, "problems": args.problems, "recipes": args.recipes,
              "rows": rows}
    saved = RESULTS / "root_defaults.json"
    if args.merge and saved.exists():
        old = json.loads(saved.read_text())
        if (old["minutes"], old.get("parallel"), old.get("seeds")) != (args.minutes, args.parallel, args.seeds):
            raise SystemExit("--merge: the saved results used other minutes, parallel runs or seeds")
        recipes = list(dict.fromkeys([*old.get("recipes", []), *args.recipes]))
        record = {**old, "recipes": recipes, "rows": [r for r in old["rows"] if r["recipe"] not in args.recipes] + rows,
                  "command": f"{old['command']}; {command}"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "root_defaults.json").write_text(json.dumps(record, indent=1))
    (RESULTS / "root_defaults.md").write_text(table(record))
    print(table(record))


def table(record: dict) -> str:
    """The markdown table of a saved run (``root_defaults.json``): per problem and recipe, median and range."""
    rows = record["rows"]
    recipes = record.get("recipes") or list(dict.fromkeys(r["recipe"] for r in rows))
    problems = record.get("problems") or list(dict.fromkeys(r["problem"] for r in rows))
    seeds = record.get("seeds") or sorted({r["seed"] for r in rows})
    lines = ["| problem | " + " | ".join(f"`{r}`: rel. L2, median (range) over seeds" for r in recipes) + " |",
             "|---|" + "---|" * len(recipes)]
    for problem in problems:
        cells = []
        for recipe in recipes:
            runs = [r for r in rows if r["problem"] == problem and r["recipe"] == recipe]
            failed = [r for r in runs if "error" in r]
            if failed or not runs:
                cells.append(f"{len(failed)} failed: {' '.join(failed[0]['error'])}" if failed else "-")
                continue
            fields = runs[0]["rel_l2"]
            cells.append("; ".join(f"{k} {spread([r['rel_l2'][k] for r in runs])}" for k in fields)
                         + f" ({statistics.median(r['steps'] for r in runs):,.0f} steps)")
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    parallel = record.get("parallel") or int(record["command"].split("--parallel ")[1].split()[0])
    header = (f"Measured {record['date']} on {record['machine']}, {parallel} run(s) at a time, seeds "
              f"{seeds}, {record['minutes']:g} minutes each; `{record['command']}`.\n\n")
    return header + "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
