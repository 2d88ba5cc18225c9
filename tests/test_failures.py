"""Failures leave something usable: a last good checkpoint, a named stop, a truthful status, atomic files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_pinn import MLP, PINNModule
from lightning_pinn.errors import ConfigError, DivergenceError, NonFiniteLossError
from lightning_pinn.lightning.checkpoints import AtomicCheckpointIO, LastGoodCheckpoint, read_checkpoint
from lightning_pinn.lightning.divergence import DivergenceRule
from tests.conftest import small_trainer

REPO = Path(__file__).resolve().parents[1]
# u' = u on [0, 1] with u(0) = 1: u = exp(x), so validation (and the checkpoints it triggers) runs
GROWTH = {"_target_": "lightning_pinn.Problem", "coords": {"x": [0.0, 1.0]}, "fields": ["u"],
          "equations": {"ode": "u_x - u"}, "collocation_points": 64,
          "conditions": {"start": {"region": "x=0", "residual": "u - 1", "points": 1}},
          "reference": {"_target_": "lightning_pinn.references.formula.Formula", "solution": {"u": "exp(x)"}}}


def growth_module(optimizer, scheduler=None, **options):
    torch.manual_seed(0)
    return PINNModule(GROWTH, MLP(1, 1, width=8, depth=2), validation_grid=8,
                      phases={"adam": {"optimizer": optimizer, "scheduler": scheduler}}, **options)


def checkpointing_trainer(tmp_path, **options):
    """Validation and checkpoints after every step; the rotation keeps only the latest step's file."""
    rotation = ModelCheckpoint(dirpath=tmp_path, filename="step{step}", save_top_k=1, save_last=True,
                               monitor="step", mode="max", auto_insert_metric_name=False)
    return small_trainer(tmp_path, enable_checkpointing=True, val_check_interval=1,
                         callbacks=[rotation, LastGoodCheckpoint(dirpath=tmp_path)], **options)


# ----- a NaN stop leaves a good checkpoint, and resuming from it with a smaller step passes the failure ------------


def test_a_nan_stop_names_the_last_good_checkpoint_and_resuming_from_it_passes(tmp_path, caplog):
    sgd = {"_target_": "torch.optim.SGD", "lr": 10.0}  # diverges: the loss is inf after a few steps
    with pytest.raises(NonFiniteLossError) as err:
        checkpointing_trainer(tmp_path, max_steps=20).fit(growth_module(sgd, divergence=None))
    good = tmp_path / "good.ckpt"
    failed_at = int(re.match(r"loss term ode=inf.* at step (\d+) \(adam\); training stopped", str(err.value))[1])
    assert failed_at > 2
    assert (f"The last good checkpoint is {good} (step {failed_at - 1}): resume from it (ckpt_path=...) with a smaller "
            "learning rate") in str(err.value)
    poisoned = read_checkpoint(tmp_path / f"step{failed_at}.ckpt")  # all the rotation kept: the weights that give inf
    probe = growth_module(sgd)
    probe.load_state_dict(poisoned["state_dict"])
    probe.collocation.current("cpu", torch.float32)
    assert poisoned["global_step"] == failed_at and probe.health().startswith("the loss is inf")
    assert read_checkpoint(good)["global_step"] == failed_at - 1

    resumed = growth_module({**sgd, "lr": 0.05}, divergence=None)
    trainer = small_trainer(tmp_path / "resume", max_steps=20)
    with caplog.at_level("INFO"):
        trainer.fit(resumed, ckpt_path=good)
    assert trainer.global_step == 20 and trainer.optimizers[0].param_groups[0]["lr"] == 0.05
    assert all(torch.isfinite(p).all() for p in resumed.parameters())
    assert "resuming phase adam with lr=0.05 (the checkpoint had 10.0), as the config now says" in caplog.text


def test_an_unchanged_config_resumes_with_the_checkpoints_own_optimizer_state(tmp_path):
    adam = {"_target_": "torch.optim.Adam", "lr": 0.01}
    trainer = small_trainer(tmp_path, max_steps=4)
    trainer.fit(growth_module(adam, scheduler={"_target_": "torch.optim.lr_scheduler.ExponentialLR", "gamma": 0.5}))
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    resumed = small_trainer(tmp_path, max_steps=5)
    resumed.fit(growth_module(adam, scheduler={"_target_": "torch.optim.lr_scheduler.ExponentialLR", "gamma": 0.5}),
                ckpt_path=tmp_path / "a.ckpt")
    assert resumed.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**5)  # the decay went on


# ----- divergence -----------------------------------------------------------------------------------------------


def test_the_divergence_rule_stops_a_run_whose_loss_stays_far_above_its_best(tmp_path):
    module = growth_module({"_target_": "torch.optim.Adam", "lr": 1e6}, divergence={"factor": 1e4, "patience": 5})
    with pytest.raises(DivergenceError, match=r"^the loss stayed above 10000 x its best since the last reset "
                                              r"\(1\.03\) for 5 steps, [0-9.e+]+ at step \d+ \(adam\); training "
                                              r"stopped\. "):
        checkpointing_trainer(tmp_path, max_steps=50).fit(module)


def test_a_run_that_ends_diverged_is_a_failure(tmp_path):
    module = growth_module({"_target_": "torch.optim.Adam", "lr": 1e6})  # the default rule: 100 steps of patience
    with pytest.raises(DivergenceError, match=r"^the run ended with its loss \([0-9.e+]+\) above 10000 x its best"):
        small_trainer(tmp_path, max_steps=20).fit(module)


def test_the_divergence_rule_counts_consecutive_steps_and_forgets_on_reset():
    rule = DivergenceRule(factor=100, patience=3)
    assert [rule.update(v) for v in (1.0, 200.0, 200.0, 50.0, 200.0, 200.0, 200.0)] == [
        False, False, False, False, False, False, True]
    rule.reset()
    assert rule.update(200.0) is False and rule.best == 200.0
    assert rule.diverged(float("nan")) and not rule.diverged(20000.0)
    with pytest.raises(ConfigError, match=r"^divergence.factor: expected a number above 1 but got 0.5$"):
        DivergenceRule(factor=0.5)


def test_redrawn_points_and_a_new_phase_reset_the_divergence_rule(tmp_path):
    torch.manual_seed(0)
    module = PINNModule(GROWTH, MLP(1, 1, width=8, depth=2), validation_grid=8, resample_every=3,
                        phases={"adam": {"optimizer": {"_target_": "torch.optim.Adam"}, "steps": 7},
                                "lbfgs": {"optimizer": {"_target_": "torch.optim.LBFGS", "max_iter": 2}}})
    resets = []
    original = module.divergence.reset
    module.divergence.reset = lambda: (resets.append(module.global_step), original())[1]
    small_trainer(tmp_path, max_steps=10).fit(module)
    assert resets == [0, 3, 6, 7, 9]  # first points, redraws at 3 and 6, L-BFGS at 7, then its redraw at 9


# ----- checkpoints on disk ----------------------------------------------------------------------------------


def test_checkpoint_writes_are_atomic_in_their_own_directory(tmp_path, monkeypatch):
    target = tmp_path / "ckpts" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, target)
    replaced = []
    real_replace = os.replace

    def watch(src, dst):
        replaced.append((Path(src).parent, Path(dst)))
        raise KeyboardInterrupt  # killed between writing and renaming

    monkeypatch.setattr(os, "replace", watch)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, target)
    monkeypatch.setattr(os, "replace", real_replace)
    assert replaced == [(target.parent, target)]  # staged beside the target, never in TMPDIR
    assert torch.equal(read_checkpoint(target)["state_dict"]["w"], torch.ones(2))  # the old file, whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]  # no temporary left behind


def test_a_truncated_checkpoint_is_one_clear_error(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:700])
    with pytest.raises(ConfigError, match=rf"^ckpt_path: '{path}' is not a readable checkpoint \(.+\); it may be "
                                          r"truncated or not a Lightning checkpoint; use another one, e\.g\. good\.ckpt"):
        read_checkpoint(path)
    with pytest.raises(ConfigError, match=rf"^ckpt_path: no checkpoint file at '{tmp_path / 'missing.ckpt'}'$"):
        read_checkpoint(tmp_path / "missing.ckpt")


# ----- resume checks what it resumes --------------------------------------------------------------------------


def fitted_checkpoint(tmp_path, problem, name="a.ckpt", **options):
    module = PINNModule(problem, MLP(len(problem["coords"]), 1, width=8, depth=2), **options)
    trainer = small_trainer(tmp_path, max_steps=2)
    trainer.fit(module)
    trainer.save_checkpoint(tmp_path / name)
    return tmp_path / name


def test_resuming_another_problem_lists_the_differences(tmp_path, burgers_spec):
    burgers = {"_target_": "lightning_pinn.Problem", **burgers_spec}
    path = fitted_checkpoint(tmp_path, burgers)
    heat = {**burgers, "coords": {"x": [0.0, 1.0], "t": [0.0, 1.0]}, "equations": {"burgers": "u_t - u_xx"}}
    module = PINNModule(heat, MLP(2, 1, width=8, depth=2))
    with pytest.raises(ConfigError) as err:
        small_trainer(tmp_path, max_steps=4).fit(module, ckpt_path=path)
    assert str(err.value) == (
        "ckpt_path: the checkpoint was trained on another problem (problem.coords.x: [-1.0, 1.0] in the checkpoint, "
        "[0.0, 1.0] now; problem.equations.burgers: 'u_t + u*u_x - nu*u_xx' in the checkpoint, 'u_t - u_xx' now); "
        "resume with the problem it was trained on, or load its weights for inference with "
        "PINNModule.load_from_checkpoint")
    assert PINNModule.load_from_checkpoint(path).problem.coords == ("x", "t")  # inference loading checks nothing


def test_changed_point_counts_redraw_the_points_and_say_so(tmp_path, burgers_spec, caplog):
    burgers = {"_target_": "lightning_pinn.Problem", **burgers_spec}
    path = fitted_checkpoint(tmp_path, burgers)
    more = {**burgers, "collocation_points": 300}
    module = PINNModule(more, MLP(2, 1, width=8, depth=2))
    with caplog.at_level("INFO"):
        small_trainer(tmp_path, max_steps=3).fit(module, ckpt_path=path)
    assert module.collocation.points["interior"].shape == (300, 2)
    assert "point counts changed since the checkpoint (interior: 256 -> 300); every point set is drawn anew" in \
        caplog.text


def test_a_checkpoint_from_before_optimizer_phases_does_not_resume_and_says_where_its_weights_are(tmp_path, burgers_spec):
    burgers = {"_target_": "lightning_pinn.Problem", **burgers_spec}
    path = fitted_checkpoint(tmp_path, burgers)
    old = torch.load(path, weights_only=True)
    old["lightning_pinn"]["phase"] = "lbfgs"  # the named phase of the two-loop module (commit 91b7891)
    torch.save(old, tmp_path / "old.ckpt")
    module = PINNModule(burgers, MLP(2, 1, width=8, depth=2))
    with pytest.raises(ConfigError) as err:
        small_trainer(tmp_path, max_steps=4).fit(module, ckpt_path=tmp_path / "old.ckpt")
    assert str(err.value) == ("ckpt_path: the checkpoint is in phase 'lbfgs', which this run's phases ['adam'] do "
                              "not have (checkpoints written before optimizer phases cannot resume; their weights are "
                              "torch.load(path, weights_only=True)['state_dict'])")


def test_a_float64_checkpoint_loads_as_float64_in_the_adam_phase(tmp_path, burgers_spec):
    burgers = {"_target_": "lightning_pinn.Problem", **burgers_spec}
    module = PINNModule(burgers, {"_target_": "lightning_pinn.MLP", "width": 8, "depth": 2})
    trainer = small_trainer(tmp_path, max_steps=2, precision="64-true")
    trainer.fit(module)
    trainer.save_checkpoint(tmp_path / "f64.ckpt")
    loaded = PINNModule.load_from_checkpoint(tmp_path / "f64.ckpt")
    assert loaded.phase == "adam" and loaded.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in loaded.parameters())


# ----- train.py: exit status and metrics.json tell the truth --------------------------------------------------------

FAST = ["experiment=burgers", "logger=csv", "problem.collocation_points=256", "net.depth=2", "net.width=8",
        "model.compile=false",
        "trainer.enable_progress_bar=false", "model.validation_grid=16"]


def train_py(args, **options):
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **options)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_checkpoint_writes_interrupted_and_exits_non_zero(tmp_path, signum):
    run = train_py([*FAST, f"hydra.run.dir={tmp_path}", "trainer.max_steps=100000", "trainer.val_check_interval=5",
                    "trainer.max_time=null"])
    good = tmp_path / "checkpoints" / "good.ckpt"
    deadline = time.monotonic() + 240
    while not good.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert good.exists(), run.communicate()[1][-3000:]
    run.send_signal(signum)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 128 + signum, stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert metrics["status"] == "interrupted" and metrics["signal"] == signal.Signals(signum).name
    assert metrics["checkpoint"] == str(last) and metrics["global_step"] >= 5
    assert read_checkpoint(last)["global_step"] == metrics["global_step"]
    assert stderr.strip().splitlines()[-1] == (f"interrupted: interrupted by {signal.Signals(signum).name} at step "
                                               f"{metrics['global_step']}; resume with ckpt_path={last}")


def test_a_diverged_run_fails_with_status_failed_and_exit_1(tmp_path):
    run = train_py([*FAST, f"hydra.run.dir={tmp_path}", "trainer.max_steps=40", "trainer.val_check_interval=20",
                    "optimizer.phases.adam.optimizer.lr=1e6", "optimizer.phases.adam.steps=1000",
                    "model.divergence.patience=10"])
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 1, stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["reason"].startswith("the loss stayed above 10000 x its best")
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: the loss stayed above 10000 x its best") and "Traceback" not in stderr


def test_a_completed_run_says_so_and_holds_the_final_steps_values(tmp_path):
    run = train_py([*FAST, f"hydra.run.dir={tmp_path}", "trainer.max_steps=7", "trainer.val_check_interval=5",
                    "trainer.log_every_n_steps=5"])
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["global_step"] == 7
    rows = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    last_train = [dict(zip(header, r.split(","))) for r in rows[1:]]
    last_train = [r for r in last_train if r.get("train/loss")][-1]
    assert int(last_train["step"]) == 6  # the final (seventh) step's row, not the last log_every_n_steps one (4)
    assert float(last_train["train/loss"]) == pytest.approx(metrics["train/loss"])
