"""Every script in examples/ runs as written (briefly, through its own command-line options)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BRIEF = {  # script -> (arguments for a brief run, a line it must print)
    "burgers_python.py": (["--steps", "12", "--lbfgs-from-step", "10"], r"relative L2 error of u: [0-9.e+-]+"),
    "burgers_inverse.py": (["--steps", "6", "--lbfgs-from-step", "4"], r"recovered nu = [0-9.]+ \(true 0.003183\)"),
    "subclass_pinnmodule.py": (["--steps", "20"], r"relative L2 error of u: [0-9.e+-]+"),
    "physics_regularized_regression.py": (["--steps", "20"], r"without physics [0-9.e+-]+, with PhysicsLoss [0-9.e+-]+"),
}


def test_every_example_has_a_brief_run():
    assert sorted(p.name for p in (REPO / "examples").glob("*.py")) == sorted(BRIEF)


@pytest.mark.parametrize("script", sorted(BRIEF))
def test_example_runs(script):
    env = {**os.environ, "WANDB_MODE": "offline"}
    arguments, expected = BRIEF[script]
    result = subprocess.run([sys.executable, f"examples/{script}", *arguments], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(expected, result.stdout), result.stdout[-2000:]
