"""Every script in examples/ runs as written (briefly, through its own command-line options)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BRIEF = {"burgers_python.py": ["--steps", "12", "--lbfgs-from-step", "10"]}


def test_every_example_has_a_brief_run():
    assert sorted(p.name for p in (REPO / "examples").glob("*.py")) == sorted(BRIEF)


@pytest.mark.parametrize("script", sorted(BRIEF))
def test_example_runs(script):
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run([sys.executable, f"examples/{script}", *BRIEF[script]], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r"relative L2 error of u: ([0-9.e+-]+)", result.stdout)
    assert match and 0 < float(match.group(1)) < 2
