"""The documentation site builds with ``mkdocs build --strict``, names every public name in its API reference,
and every code block marked ``# runnable`` runs as written."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```python\n(# runnable\n.*?)```", re.S)
PACKAGES = ["lightning_pinn", "lightning_pinn.callbacks", "lightning_pinn.optim", "lightning_pinn.losses",
            "lightning_pinn.geometry", "lightning_pinn.references", "lightning_pinn.derivatives", "lightning_pinn.problem",
            "lightning_pinn.lightning"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_site_builds_strictly_with_generated_benchmark_tables(site):
    accuracy = (site / "benchmarks" / "accuracy" / "index.html").read_text()
    assert "<!-- generated" not in accuracy and "published rel. L2" in accuracy
    assert (site / "experiments" / "index.html").read_text().count("python train.py experiment=") == len(
        list((REPO / "conf" / "experiment").glob("*.yaml")))


def test_every_public_name_is_in_the_api_reference(site):
    page = (site / "reference" / "api" / "index.html").read_text()
    missing = []
    for package in PACKAGES:
        for name in importlib.import_module(package).__all__:
            if f'id="{package}.{name}"' not in page:
                missing.append(f"{package}.{name}")
    assert missing == []


BLOCKS = [(path, block) for path in sorted((REPO / "docs").rglob("*.md")) for block in FENCE.findall(path.read_text())]
BLOCKS.append((REPO / "README.md", re.search(r"## In Python\n\n```python\n(.*?)```", (REPO / "README.md").read_text(),
                                             re.S).group(1)))


def test_the_docs_have_runnable_blocks():
    assert len(BLOCKS) >= 4  # three in the guides, the README's


@pytest.mark.parametrize("path, block", BLOCKS, ids=[f"{p.relative_to(REPO)}:{k}" for k, (p, _) in enumerate(BLOCKS)])
def test_a_runnable_block_runs_as_written(tmp_path, path, block):
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "WANDB_MODE": "offline"})
    assert result.returncode == 0, f"{path}:\n{result.stderr[-3000:]}"
