"""What each Trainer precision does to a PINN's accuracy: Burgers on a reduced budget, over seeds.

    python benchmarks/precision.py --seeds 0 1 2      # reduced budget
    python benchmarks/precision.py --full --seeds 0   # the full experiment=burgers budget

Each precision runs `python train.py experiment=burgers`, by default with the same reduced budget
(2,000 collocation points, 300 Adam steps, then 20 L-BFGS steps of 50 iterations), with --full at
the experiment's own budget (10,000 points, 1,000 Adam steps, 130 L-BFGS steps, 14 minutes at most);
prints the median relative L2 error and training time per precision and writes
benchmarks/results/precision.json (precision_full.json with --full).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from burgers_accuracy import REPO, run

BUDGET = ["problem.collocation_points=2000", "optimizer.phases.adam.steps=300", "trainer.max_steps=320",
          "trainer.max_time=null", "trainer.val_check_interval=320"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--precisions", nargs="+", default=["64-true", "32-true", "bf16-mixed"])
    parser.add_argument("--full", action="store_true", help="the full experiment=burgers budget")
    args = parser.parse_args()
    budget = ["trainer.max_time=null"] if args.full else BUDGET  # full: all 1,130 steps, however long they take
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    table = {}
    for precision in args.precisions:
        rows = [run(seed, [*budget, f"trainer.precision={precision}"],
                    REPO / "outputs" / "benchmarks" / f"precision_{stamp}" / f"{precision}_seed{seed}")
                for seed in args.seeds]
        table[precision] = {"rows": rows,
                            "median_rel_l2_u": statistics.median(r["rel_l2_u"] for r in rows),
                            "median_train_minutes": statistics.median(r["train_minutes"] for r in rows)}
        print(f"{precision:>10}: median rel. L2 {table[precision]['median_rel_l2_u']:.2e}, "
              f"median training {60 * table[precision]['median_train_minutes']:.0f} s, "
              f"per seed {' '.join(format(r['rel_l2_u'], '.2e') for r in rows)}", flush=True)
    path = REPO / "benchmarks" / "results" / ("precision_full.json" if args.full else "precision.json")
    path.write_text(json.dumps({"command": "python benchmarks/precision.py " + " ".join(sys.argv[1:]),
                                "budget": budget or "experiment=burgers", "date": stamp, "results": table}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
