"""One clear line per mistake: bad input to train.py gives ``error: <key>: <what>; <valid>``, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lightning_pinn.cli import report, train
from lightning_pinn.errors import ConfigError
from tests.test_cli import FAST, REPO, compose_cfg


def first_error(overrides, tmp_path, capsys):
    """Run train() as train.py would and return (exit status, the printed line)."""
    cfg = compose_cfg(["experiment=burgers", "logger=none", f"paths.output_dir={tmp_path}", *FAST, *overrides])
    with pytest.raises(ConfigError) as err:
        train(cfg)
    capsys.readouterr()
    status = report(err.value)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert not (tmp_path / "metrics.json").exists()
    return status, lines[0]


CASES = {
    "constant division by zero": (["problem.equations.burgers='u_t + 1/0'"],
                                  "error: problem.equations.burgers: the constant '1/0' cannot be evaluated (division by "
                                  "zero) at column 7 in 'u_t + 1/0'"),
    "constant overflow": (["problem.equations.burgers='u_t + 2.0**10000'"],
                          "error: problem.equations.burgers: the constant '2.0**10000' cannot be evaluated (too large) "
                          "at column 7 in 'u_t + 2.0**10000'"),
    "bad bound": (["problem.coords.x=[a,1]"], "error: problem.coords.x[0]: expected a finite number but got 'a'"),
    "bad parameter": (["problem.params.nu=abc"], "error: problem.params.nu: expected a finite number but got 'abc'"),
    "nan parameter": (["problem.params.nu=nan"], "error: problem.params.nu: expected a finite number but got nan"),
    "bad weight": (["problem.conditions={initial: {region: 't=0', residual: u, weight: heavy}}"],
                   "error: problem.conditions.initial.weight: expected a finite number but got 'heavy'"),
    "typo'd top-level key": (["+problem.equation={x: u}"],
                             "error: problem: unknown keys ['equation']; expected keys among ['collocation_points', "
                             "'conditions', 'coords', 'equations', 'fields', 'geometry', 'learnable', 'name', "
                             "'output_transform', 'params', 'reference', 'time']"),
    "zero validation interval": (["trainer.val_check_interval=0"],
                                 "error: trainer.val_check_interval: expected a number of training steps (an integer "
                                 ">= 1) between validations but got 0"),
    "fractional max_steps": (["trainer.max_steps=2.5"], "error: trainer.max_steps: expected an integer >= -1 but got 2.5"),
    "bad max_time": (["trainer.max_time=ten"],
                     "error: trainer.max_time: expected DD:HH:MM:SS, e.g. 00:00:14:00 for 14 minutes, but got 'ten'"),
    "bad compile": (["model.compile=foo"],
                    "error: model.compile: expected true, false or a mapping of torch.compile options like "
                    "{mode: reduce-overhead} but got 'foo'"),
    "bad sampler": (["model.sampler=random"], "error: model.sampler: expected one of ['uniform', 'lhs', 'sobol', "
                                              "'halton', 'grid'] but got 'random'"),
    "unknown net option": (["+net.widht=3"], "error: net: unknown keys ['widht']; expected keys among "),
    "bad optimizer option": (["optimizer.phases.adam.optimizer.lr=-1"],
                             "error: optimizer.phases.adam.optimizer: Adam refused its arguments: Invalid learning "
                             "rate: -1"),
    "unknown phase key": (["+optimizer.phases.adam.stepz=3"],
                          "error: optimizer.phases.adam: expected keys among ['float64', 'optimizer', 'scheduler', "
                          "'steps'] with an optimizer but got ['optimizer', 'scheduler', 'steps', 'stepz']"),
    "foreign target": (["problem.reference._target_=os.system"],
                       "error: problem.reference._target_: 'os.system' is not an allowed target "),
    "bad precision": (["trainer.precision=17"], "error: trainer: Precision 17 is invalid. Allowed precision values: "),
    "missing checkpoint": (["ckpt_path=/nonexistent/last.ckpt"],
                           "error: ckpt_path: no checkpoint file at '/nonexistent/last.ckpt'"),
    "bad divergence": (["model.divergence.factor=0.5"],
                       "error: model.divergence.factor: expected a number above 1 but got 0.5"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_naming_the_key(case, tmp_path, capsys):
    overrides, expected = CASES[case]
    status, line = first_error(overrides, tmp_path, capsys)
    assert status == 2
    assert line.startswith(expected) if expected.endswith(" ") else line == expected, line


def test_a_truncated_checkpoint_is_one_line(tmp_path, capsys):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:600])
    status, line = first_error([f"ckpt_path={path}"], tmp_path, capsys)
    assert status == 2 and line.startswith(f"error: ckpt_path: '{path}' is not a readable checkpoint (")


def test_a_problem_file_is_loaded_as_data(tmp_path, capsys, burgers_spec):
    marker = tmp_path / "marker"
    path = tmp_path / "theirs.yaml"
    path.write_text("# @package _global_\n" + yaml.safe_dump(
        {**burgers_spec, "reference": {"_target_": "os.system", "command": f"touch {marker}"}}, sort_keys=False))
    status, line = first_error([f"problem_file={path}"], tmp_path, capsys)
    assert status == 2 and line.startswith(f"error: {path}: reference._target_: 'os.system' is not an allowed target")
    assert not marker.exists()


def test_a_long_machine_written_equation_trains(tmp_path):
    terms = " + ".join(f"{k % 7}e-4*sin({k % 5}*x)*u" for k in range(5000))
    cfg = compose_cfg(["experiment=burgers", "logger=none", f"paths.output_dir={tmp_path}", *FAST,
                       "trainer.max_steps=2", f"problem.equations.burgers='u_t + u*u_x - nu*u_xx + {terms}'"])
    assert len(cfg.problem.equations.burgers) > 10_000
    train(cfg)
    assert (tmp_path / "metrics.json").exists()


def test_train_py_prints_one_line_and_exits_2_and_a_traceback_only_on_request(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    args = [sys.executable, "train.py", "experiment=burgers", "logger=none", f"hydra.run.dir={tmp_path}",
            "problem.params.nu=abc"]
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: problem.params.nu: expected a finite number but got 'abc'"
    assert "Traceback" not in result.stderr
    full = subprocess.run(args, cwd=REPO, env={**env, "HYDRA_FULL_ERROR": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert full.returncode == 2 and "Traceback" in full.stderr
    assert full.stderr.strip().splitlines()[-1] == result.stderr.strip().splitlines()[-1]


def test_an_unknown_override_key_stays_hydras_error(tmp_path):
    result = subprocess.run([sys.executable, "train.py", "experiment=burgers", "trainer.max_stpes=3"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Could not override 'trainer.max_stpes'" in result.stderr
    assert not Path(REPO, "outputs", "pinn").joinpath("metrics.json").exists()
