"""Technique ablations: each training technique with and without, at the same budget, several seeds.

    python benchmarks/ablations.py --threads 1                      # every ablation (51 runs, about 100 minutes)
    python benchmarks/ablations.py --threads 1 --only causal balancing  # a few
    python benchmarks/ablations.py --table                          # print the saved table only

An ablation is a baseline configuration of one experiment and one or more variants that each
switch on one technique; everything else (network, points, optimizer, number of steps) is the
same. Budgets are mostly Adam steps only (no L-BFGS), shorter than the experiments' accuracy
budgets, so that the whole table takes about 100 minutes (one run at a time, one torch thread).
Each configuration is trained once per seed in a fresh process (``benchmarks/accuracy.py``'s
``run``); the table gives the median relative L2 error over the seeds, the min-max range and the
median training minutes. Results are merged into ``benchmarks/results/ablations.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import ROOT, load, run  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ablations.json"
ADAM_ONLY = ["optimizer.phases.lbfgs=null", "optimizer.phases.adam.steps=null"]
"""Budgets of Adam steps only: equal steps then mean equal optimizer work."""


@dataclass(frozen=True)
class Ablation:
    """One experiment, a shared budget, a baseline and the variants (each one technique switched on)."""

    name: str
    problem: str
    budget: list[str]
    baseline: list[str]
    variants: dict[str, list[str]] = field(default_factory=dict)
    field_name: str = "u"
    why: str = ""
    """What the ablation tests, printed when it starts."""

    def configurations(self) -> dict[str, list[str]]:
        """``{label: overrides}``: the baseline first, then the variants."""
        return {"baseline": self.budget + self.baseline, **{k: self.budget + self.baseline + v
                                                           for k, v in self.variants.items()}}


ABLATIONS = [
    Ablation(
        "network", "helmholtz",
        budget=[*ADAM_ONLY, "trainer.max_steps=2000", "trainer.precision=32-true", "net.activation=tanh"],
        baseline=[],
        variants={"fourier_features": ["net.fourier_features=32", "net.fourier_scale=1.0"],
                  "modified_mlp": ["net.architecture=modified"],
                  "weight_factorization": ["net.weight_factorization={mean: 1.0, std: 0.1}"]},
        why="Helmholtz sin(pi x) sin(4 pi y) with tanh: spectral bias is what these embeddings and layers address",
    ),
    Ablation(
        "balancing", "poisson_holes",
        budget=[*ADAM_ONLY, "trainer.max_steps=2000", "trainer.precision=32-true"],
        baseline=["problem.conditions.walls.weight=1.0"],
        variants={"gradnorm": ["model.balancing=gradnorm"], "relobralo": ["model.balancing=relobralo"]},
        why="Poisson with holes: the source term makes the equation's residual ~80x the boundary's at weight 1",
    ),
    Ablation(
        "causal", "advection",
        budget=[*ADAM_ONLY, "trainer.max_steps=4000", "model.balancing=null"],
        baseline=["model.causal=null"],
        variants={"causal": ["model.causal={chunks: 16, epsilon: 1.0}"]},
        why="advection beta=30 as configured (soft initial value): does learning forward in time avoid the "
            "trivial solution?",
    ),
    Ablation(
        "causal_hard_initial", "advection",
        budget=[*ADAM_ONLY, "trainer.max_steps=4000", "model.balancing=null",
                '+problem.output_transform={u: "sin(x) + t*u"}'],
        baseline=["model.causal=null"],
        variants={"causal": ["model.causal={chunks: 16, epsilon: 1.0}"]},
        why="advection beta=30 with an exact initial value: the residual must be learned forward in time",
    ),
    Ablation(
        "adaptive_sampling", "burgers_lbfgs",
        budget=[*ADAM_ONLY, "trainer.max_steps=3000", "problem.collocation_points=1000", "trainer.precision=32-true"],
        baseline=["callbacks=default"],
        variants={"rad": ["callbacks=rad", "callbacks.rad.every=250"],
                  "rar": ["callbacks=rar", "callbacks.rar.every=250", "callbacks.rar.add=100"]},
        why="Burgers with 1,000 points: the shock needs points where the residual is large (Wu et al. 2023)",
    ),
    Ablation(
        "adaptive_sampling_lbfgs", "burgers_lbfgs",
        budget=["problem.collocation_points=1000"],
        baseline=["callbacks=default"],
        variants={"rad": ["callbacks=rad", "callbacks.rad.every=100"],
                  "rar": ["callbacks=rar", "callbacks.rar.every=100", "callbacks.rar.add=100"]},
        why="the same at the experiment's own budget (1,000 Adam steps, then 130 L-BFGS steps, float64)",
    ),
]


def median_row(runs: list[dict], field_name: str) -> dict:
    """Median, min and max relative L2 error of one field, and the median training minutes, over seeds."""
    errors = [r["rel_l2"][field_name] for r in runs]
    return {"median": statistics.median(errors), "min": min(errors), "max": max(errors), "seeds": len(runs),
            "train_minutes": statistics.median(r["train_minutes"] for r in runs)}


def table(results: dict) -> str:
    """Markdown: per ablation, the baseline and each variant, median over seeds and the ratio to the baseline."""
    lines = ["| ablation: experiment | configuration | shared settings | rel. L2 median (min-max) | vs baseline "
             "| seeds | train min |", "|---|---|---|---|---|---|---|"]
    for ablation in ABLATIONS:
        rows = {}
        for label in ablation.configurations():
            runs = [r for key, r in results.items() if key.startswith(f"{ablation.name}/{label}/seed=")]
            if runs:
                rows[label] = median_row(runs, ablation.field_name)
        base = rows.get("baseline")
        budget = " ".join(f"`{o}`" for o in ablation.budget if o not in ADAM_ONLY)
        optimizer = "Adam only" if all(o in ablation.budget for o in ADAM_ONLY) else "the experiment's optimizer"
        budget = f"{optimizer} {budget}"
        for label, row in rows.items():
            ratio = "-" if base is None or label == "baseline" else f"{row['median'] / base['median']:.2f}x"
            switch = ablation.baseline if label == "baseline" else ablation.variants[label]
            label = f"{label} ({' '.join(f'`{o}`' for o in switch)})" if switch else label
            spread = f"{row['median']:.2e} ({row['min']:.1e}-{row['max']:.1e})"
            lines.append(f"| {ablation.name}: {ablation.problem} | {label} | {budget} | {spread} | {ratio} "
                         f"| {row['seeds']} | {row['train_minutes']:.1f} |")
    machines = sorted({r["machine"] for r in results.values()})
    return "\n".join(lines) + "\n\nMachine: " + "; ".join(machines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=[a.name for a in ABLATIONS], choices=[a.name for a in ABLATIONS])
    parser.add_argument("--labels", nargs="+", default=None, help="run only these configurations (e.g. baseline rad)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run before it is killed")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (OMP_NUM_THREADS)")
    parser.add_argument("--table", action="store_true", help="print the saved table and exit")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON file results are merged into")
    args = parser.parse_args()
    if not args.table:
        for ablation in (a for a in ABLATIONS if a.name in args.only):
            print(f"{ablation.name} ({ablation.problem}): {ablation.why}", flush=True)
            for label, overrides in ablation.configurations().items():
                if args.labels and label not in args.labels:
                    continue
                for seed in args.seeds:
                    result = run(ablation.problem, [*overrides, f"seed={seed}"], args.timeout, args.threads)
                    key = f"{ablation.name}/{label}/seed={seed}"
                    results = {**load(args.results), key: result}  # re-read: another process may have written
                    args.results.parent.mkdir(parents=True, exist_ok=True)
                    args.results.write_text(json.dumps(results, indent=2, sort_keys=True))
                    print(f"{key}: {result['rel_l2']} in {result['train_minutes']:.1f} min", flush=True)
    print(table(load(args.results)))


if __name__ == "__main__":
    main()
