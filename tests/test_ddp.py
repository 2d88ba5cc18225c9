"""DDP on CPU with two processes: distinct points per rank, reduced validation metric, shared parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from lightning_pinn import PINNModule
from lightning_pinn.references import BurgersColeHopf

REPO = Path(__file__).resolve().parents[1]


def test_ddp_cpu_two_processes(tmp_path):
    probe = tmp_path / "probe"
    overrides = [
        "experiment=burgers", "trainer=ddp_cpu", "logger=csv", f"hydra.run.dir={tmp_path}",
        "trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.enable_progress_bar=false",
        "optimizer.phases.adam.steps=3", "optimizer.phases.quasi_newton.optimizer.max_iter=3",  # then quasi-Newton
        "model.compile=false",
        "problem.collocation_points=128", "net.width=8", "net.depth=2", "model.validation_grid={x: 33, t: 11}",
        "+problem.learnable={lam: 1.0}", "problem.equations.burgers='u_t + lam*u*u_x - nu*u_xx'",
        "+callbacks.probe._target_=ddp_probe.RankProbe", f"+callbacks.probe.dirpath={probe}",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO / "tests")}
    result = subprocess.run([sys.executable, "train.py", *overrides], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "phase quasi_newton (QuasiNewton, float64) from step 3" in result.stdout + result.stderr

    points = [torch.load(probe / f"points_rank{r}_of2.pt") for r in (0, 1)]
    assert points[0]["interior"].shape == points[1]["interior"].shape == (128, 2)
    assert not torch.allclose(points[0]["interior"], points[1]["interior"])  # each rank draws its own
    params = [torch.load(probe / f"params_rank{r}_of2.pt") for r in (0, 1)]
    assert params[0]["lam"].item() != 1.0 and params[0]["lam"].item() == params[1]["lam"].item()

    # the logged error is the one of the whole grid, reduced over both ranks' halves
    module = PINNModule.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt").double()  # one process
    x, t = np.meshgrid(np.linspace(-1, 1, 33), np.linspace(0, 1, 11), indexing="ij")
    with torch.no_grad():
        pred = module(torch.tensor(np.stack([x.ravel(), t.ravel()], 1))).double().numpy()[:, 0]
    ref = BurgersColeHopf(0.01 / np.pi)(x.ravel(), t.ravel())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert np.isclose(metrics["val/rel_l2_u"], np.linalg.norm(pred - ref) / np.linalg.norm(ref), rtol=1e-6)


def test_a_gauss_newton_phase_keeps_the_ranks_identical_under_ddp_cpu(tmp_path):
    probe = tmp_path / "probe"
    overrides = [
        "problem=burgers", "optimizer=adam_gauss_newton", "trainer=ddp_cpu", "trainer.precision=64-true", "logger=csv",
        f"hydra.run.dir={tmp_path}", "trainer.max_steps=5", "trainer.val_check_interval=5",
        "trainer.enable_progress_bar=false", "optimizer.phases.adam.steps=2", "problem.collocation_points=64",
        "problem.conditions.initial.points=32", "problem.conditions.boundary.points=32", "net.width=8", "net.depth=2",
        "model.validation_grid={x: 17, t: 5}", "+problem.learnable={lam: 1.0}",
        "problem.equations.burgers='u_t + lam*u*u_x - nu*u_xx'",
        "+callbacks.probe._target_=ddp_probe.RankProbe", f"+callbacks.probe.dirpath={probe}",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO / "tests")}
    result = subprocess.run([sys.executable, "train.py", *overrides], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "phase gauss_newton (GaussNewton, float64) from step 2" in result.stdout + result.stderr
    weights = [torch.load(probe / f"weights_rank{r}_of2.pt") for r in (0, 1)]
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
    params = [torch.load(probe / f"params_rank{r}_of2.pt") for r in (0, 1)]
    assert params[0]["lam"].item() != 1.0 and params[0]["lam"].item() == params[1]["lam"].item()


def test_physics_loss_under_ddp_cpu(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run([sys.executable, "tests/ddp_physics_script.py", str(tmp_path)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert not torch.allclose(ranks[0]["points"]["interior"], ranks[1]["points"]["interior"])
    a0, a1 = ranks[0]["params"]["a"].item(), ranks[1]["params"]["a"].item()
    assert a0 != 0.5 and a0 == a1  # optimized, and kept identical by DDP's gradient reduction


def test_physics_loss_balancing_and_causal_weights_under_ddp_cpu(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run([sys.executable, "tests/ddp_physics_script.py", str(tmp_path), "weighted"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert not torch.allclose(ranks[0]["points"]["interior"], ranks[1]["points"]["interior"])
    assert ranks[0]["params"]["a"].item() == ranks[1]["params"]["a"].item() != 0.5
    balance = [r["balance"] for r in ranks]
    assert sorted(balance[0]) == ["ode", "start"] and all(v.item() != 1.0 for v in balance[0].values())
    for name in balance[0]:  # gradient norms are averaged over ranks, so both weigh the terms alike
        torch.testing.assert_close(balance[0][name], balance[1][name], rtol=1e-12, atol=0)
    assert ranks[0]["causal_stage"] == ranks[1]["causal_stage"] == 1  # the schedule advanced on both ranks
    assert not torch.equal(ranks[0]["causal_weights"]["ode"], ranks[1]["causal_weights"]["ode"])  # own points
