"""The accuracy table: train each experiment at its CPU budget and compare with the published record.

    python benchmarks/accuracy.py                                   # every experiment (about 2 hours on 2 cores)
    python benchmarks/accuracy.py --problems helmholtz heat         # a few
    python benchmarks/accuracy.py --problems advection --overrides model.causal=null   # an ablation
    python benchmarks/accuracy.py --table                           # print the saved table only

Each run is ``python train.py experiment=<name> logger=csv`` in a fresh process (so runs do not
share threads or compiled code), with its output under ``outputs/accuracy/<name>``. The relative
L2 errors are those of ``metrics.json`` (the final weights on the validation grid, against the
experiment's locally computed reference). For the cavity, the centreline velocities are also
compared with Ghia, Ghia & Shin (1982). Results are merged into ``benchmarks/results/accuracy.json``
(keyed by problem and overrides), and the table lists the published numbers of
``benchmarks/published.json`` beside ours.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "accuracy.json"
"""Where results are merged (``--results`` picks another file, e.g. for runs in parallel)."""
PUBLISHED = ROOT / "benchmarks" / "published.json"
EXPERIMENTS = ["burgers", "heat", "poisson_holes", "helmholtz", "advection", "wave", "allen_cahn", "kdv", "ks",
               "nls", "kovasznay", "cavity", "burgers_inverse"]


def run(problem: str, overrides: list[str], timeout: float, threads: int | None = None) -> dict:
    """Train one experiment in a subprocess; returns its metrics, wall minutes and the machine."""
    tag = problem + ("" if not overrides else "[" + ",".join(overrides) + "]")
    out = ROOT / "outputs" / "accuracy" / run_directory(problem, overrides)
    command = [sys.executable, str(ROOT / "train.py"), f"experiment={problem}", "logger=csv",
               "trainer.enable_progress_bar=false", f"hydra.run.dir={out}", *overrides]
    start = time.perf_counter()
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    minutes = (time.perf_counter() - start) / 60
    if done.returncode != 0:
        raise RuntimeError(f"{tag} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    result = {"problem": problem, "overrides": overrides, "wall_minutes": round(minutes, 2),
              "train_minutes": round(metrics["train_seconds"] / 60, 2), "steps": metrics["global_step"],
              "rel_l2": {k.removeprefix("val/rel_l2_"): v for k, v in metrics.items() if k.startswith("val/rel_l2_")},
              "machine": machine(threads), "command": " ".join(["python train.py", *command[2:3], *overrides])}
    if problem == "cavity":
        result["ghia"] = cavity_centerlines(out / "checkpoints" / "last.ckpt")
    if problem == "burgers_inverse":
        result["nu_relative_error"] = inverse_nu_error(out)
    return result


def run_directory(problem: str, overrides: list[str]) -> str:
    """A directory name for a run that Hydra's override grammar accepts: the problem, a readable
    slug of the overrides and a short hash of them (two override lists never share a directory)."""
    if not overrides:
        return problem
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ",".join(overrides)).strip("-")[:80]
    digest = hashlib.sha1("\0".join(overrides).encode()).hexdigest()[:8]
    return f"{problem}-{slug}-{digest}"


def cavity_centerlines(checkpoint: Path) -> dict:
    """Max abs error of u and v on Ghia's Re = 100 centrelines, relative to the table's velocity range."""
    import numpy as np
    import torch

    from lightning_pinn import PINNModule
    from lightning_pinn.references.cavity import GHIA_RE100, centerline_error

    module = PINNModule.load_from_checkpoint(checkpoint, map_location="cpu")

    def field(k):
        def evaluate(x, y):
            x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
            points = torch.as_tensor(np.stack([x.ravel(), y.ravel()], 1), dtype=module.dtype)
            with torch.no_grad():
                return module(points)[:, k].double().numpy().reshape(x.shape)
        return evaluate

    errors = centerline_error(field(0), field(1))
    span = max(GHIA_RE100.u.max(), GHIA_RE100.v.max()) - min(GHIA_RE100.u.min(), GHIA_RE100.v.min())
    errors["u_over_velocity_range"] = errors["u_abs"] / span
    errors["v_over_velocity_range"] = errors["v_abs"] / span
    return {k: float(v) for k, v in errors.items()}


def inverse_nu_error(run_dir: Path) -> float:
    """Relative error of the learned viscosity (the last logged ``train/param_log_nu``) against 0.01/pi."""
    import csv
    import math

    with open(run_dir / "csv" / "metrics.csv") as f:
        values = [row["train/param_log_nu"] for row in csv.DictReader(f) if row.get("train/param_log_nu")]
    nu = math.exp(float(values[-1]))
    return abs(nu - 0.01 / math.pi) / (0.01 / math.pi)


def machine(threads: int | None = None) -> str:
    """CPU model, core count (and torch threads when limited), torch version."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    limit = f" ({threads} torch thread{'s' if threads > 1 else ''})" if threads else ""
    return f"{model}, {os.cpu_count()} cores{limit}, torch {torch.__version__}"


def load(path: Path = RESULTS) -> dict:
    """The saved results, ``{key: result}``."""
    return json.loads(path.read_text()) if path.exists() else {}


def table(results: dict) -> str:
    """A markdown table: ours beside the published numbers."""
    published = json.loads(PUBLISHED.read_text()) if PUBLISHED.exists() else []
    lines = ["| problem | our rel. L2 (fields) | train min | published rel. L2 (source) |", "|---|---|---|---|"]
    for key, r in sorted(results.items(), key=lambda item: (EXPERIMENTS.index(item[1]["problem"])
                                                          if item[1]["problem"] in EXPERIMENTS else 99, item[0])):
        ours = ", ".join(f"{f} {v:.2e}" for f, v in r["rel_l2"].items())
        if "ghia" in r:
            ours += f"; Ghia centrelines u {100 * r['ghia']['u_over_velocity_range']:.2f}%, " \
                    f"v {100 * r['ghia']['v_over_velocity_range']:.2f}% of the velocity range"
        if "nu_relative_error" in r:
            ours += f"; nu error {100 * r['nu_relative_error']:.3f}%"
        theirs = "; ".join(f"{p['rel_l2']:.2e} ({p['source']}{'' if p.get('verified') else ', unverified'})"
                           for p in published if p["problem"] == r["problem"])
        # a label names a run whose overrides have since become the experiment's defaults
        name = r.get("label") or (key if not r["overrides"] else f"{r['problem']} ({' '.join(r['overrides'])})")
        lines.append(f"| {name} | {ours} | {r['train_minutes']:.1f} | {theirs or '-'} |")
    machines = sorted({r["machine"] for r in results.values()})
    return "\n".join(lines) + "\n\nMachine: " + "; ".join(machines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=EXPERIMENTS, choices=EXPERIMENTS)
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for every run (an ablation)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run before it is killed")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (OMP_NUM_THREADS)")
    parser.add_argument("--table", action="store_true", help="print the saved table and exit")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON file results are merged into")
    args = parser.parse_args()
    results = load(args.results)
    if not args.table:
        for problem in args.problems:
            result = run(problem, args.overrides, args.timeout, args.threads)
            key = problem + ("" if not args.overrides else " " + " ".join(args.overrides))
            results = {**load(args.results), key: result}  # re-read: another process may have written
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(results, indent=2, sort_keys=True))
            print(f"{key}: {result['rel_l2']} in {result['train_minutes']:.1f} min", flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
