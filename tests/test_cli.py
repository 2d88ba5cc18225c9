"""The Hydra app: config composition with overrides, a short run's outputs, wandb offline, train.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from lightning_pinn.cli import config_dir, train

REPO = Path(__file__).resolve().parents[1]
FAST = ["problem.collocation_points=256", "net.depth=2", "net.width=8", "model.compile=false",
        "trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.enable_progress_bar=false",
        "model.validation_grid=16"]


def compose_cfg(overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_config_composes_with_overrides(tmp_path):
    cfg = compose_cfg(["experiment=burgers", "trainer.max_steps=200", "net.width=64", "logger=csv", "seed=3",
                       f"paths.output_dir={tmp_path}"])
    assert cfg.trainer.max_steps == 200 and cfg.seed == 3 and cfg.model.seed == 3
    assert list(cfg.logger) == ["csv"]
    assert cfg.task_name == "burgers"
    assert cfg.model.problem.equations.burgers == "u_t + u*u_x - nu*u_xx"
    model = instantiate(cfg.model, _recursive_=False)
    assert model.net.net.layers[0].out_features == 64  # the network inside the output transform
    assert [p.name for p in model.phases.phases] == list(cfg.optimizer.phases) == ["adam", "quasi_newton"]
    assert model.phases.starts == [0, cfg.optimizer.phases.adam.steps]
    assert model.hparams["net"]["width"] == 64
    trainer = instantiate(cfg.trainer)
    assert trainer.max_steps == 200 and trainer.precision == "64-true"  # as the Burgers experiment sets
    assert compose_cfg(["logger=none", f"paths.output_dir={tmp_path}"]).logger in (None, {})


def test_short_run_writes_metrics_checkpoints_and_figures(tmp_path):
    cfg = compose_cfg(["experiment=burgers", "logger=csv", f"paths.output_dir={tmp_path}", *FAST])
    objective = train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_step"] == 6
    assert objective == metrics["val/rel_l2_u"] and 0 < objective < 2
    assert "train/loss" in metrics and "train/burgers" in metrics
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "figures" / "solution_final.png").stat().st_size > 10_000
    assert "val/rel_l2_u" in (tmp_path / "csv" / "metrics.csv").read_text()
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)  # plain data only
    assert saved["hyper_parameters"]["problem"]["equations"]["burgers"] == "u_t + u*u_x - nu*u_xx"


def test_wandb_runs_offline_without_credentials_and_writes_its_files(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no saved login
    monkeypatch.setenv("NETRC", str(tmp_path / "missing-netrc"))
    cfg = compose_cfg(["experiment=burgers", "logger=wandb", f"paths.output_dir={tmp_path}", *FAST])
    train(cfg)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run = runs[0]
    (log,) = run.glob("run-*.wandb")
    deadline = time.monotonic() + 30  # wandb's writer process flushes the record log shortly after finish()
    while b"train_seconds" not in log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)
    records = log.read_bytes()  # the run's record log, which `wandb sync` uploads
    for expected in ("u_t + u*u_x - nu*u_xx", "train/burgers", "train/loss", "val/rel_l2_u", "train_seconds"):
        assert expected.encode() in records, f"{expected!r} is not in the offline run"
    images = list((run / "files" / "media" / "images").rglob("*.png"))
    assert images, "no solution figure was logged"


def test_train_py_runs_from_the_repo_root(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run(
        [sys.executable, "train.py", "experiment=burgers", "logger=none", f"hydra.run.dir={tmp_path}", *FAST],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["global_step"] == 6


def test_bad_override_is_reported_by_name(tmp_path):
    cfg = compose_cfg(["experiment=burgers", "logger=none", f"paths.output_dir={tmp_path}", *FAST,
                       "problem.equations.burgers='u_t + u*u_y'"])
    with pytest.raises(Exception, match=r"equations\.burgers: unknown name 'u_y'"):
        train(cfg)


def test_console_script_finds_its_configs_from_any_directory(tmp_path):
    script = Path(sys.executable).parent / "lightning-pinn-train"
    if not script.exists():
        pytest.skip("the package is not installed in this environment (bash .ci/setup installs it)")
    result = subprocess.run([str(script), "experiment=burgers", "--cfg", "job"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "burgers: u_t + u*u_x - nu*u_xx" in result.stdout


def run_train(args, cwd=REPO):
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "train.py", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_multirun_sweep_gives_each_run_its_own_directory(tmp_path):
    fast = [a for a in FAST if not a.startswith("net.width")]
    result = run_train(["-m", "experiment=burgers", "net.width=8,16", "seed=1,2", "logger=none",
                        f"hydra.sweep.dir={tmp_path}", *fast])
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.parent.name for p in tmp_path.glob("*/metrics.json"))
    assert runs == ["0", "1", "2", "3"]


def test_optuna_search_minimizes_the_returned_validation_error(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    result = run_train(["-m", "experiment=burgers", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
                        "hydra.sweeper.sampler.n_startup_trials=2", "logger=none", f"hydra.sweep.dir={tmp_path}",
                        *FAST])
    assert result.returncode == 0, result.stderr[-3000:]
    best = (tmp_path / "optimization_results.yaml").read_text()
    values = [json.loads(p.read_text())["val/rel_l2_u"] for p in tmp_path.glob("*/metrics.json")]
    assert len(values) == 2 and f"best_value: {min(values)}" in best


def test_runs_of_one_sweep_share_a_wandb_group(tmp_path):
    sweep_dir = tmp_path / "sweep-7"
    result = run_train(["-m", "experiment=burgers", "seed=1,2", "logger=wandb", f"hydra.sweep.dir={sweep_dir}", *FAST])
    assert result.returncode == 0, result.stderr[-3000:]
    logs = sorted(sweep_dir.glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(logs) == 2
    for log in logs:  # the group is recorded in each run's record log, which `wandb sync` uploads
        assert b"burgers-sweep-7" in log.read_bytes()


def test_a_single_run_is_grouped_by_task_name():
    from lightning_pinn.cli import run_group

    assert run_group("burgers") == "burgers"  # no Hydra multirun around this call
