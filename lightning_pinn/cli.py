"""The Hydra entry point behind ``python train.py`` and the ``lightning-pinn-train`` console script.

``python train.py experiment=burgers trainer.max_steps=200 net.width=64 logger=csv seed=3``
composes ``conf/train.yaml`` with those overrides, builds every object, trains, validates the
final weights, and writes ``metrics.json``, checkpoints and figures to the run's output directory.

How a run ends (``metrics.json``'s ``status`` and the exit status):

- ``completed``, exit 0: training reached ``max_steps`` or ``max_time``; the final weights are
  validated and saved as ``last.ckpt``.
- ``failed``, exit 1: training stopped because its numbers went wrong (a non-finite loss, or the
  divergence rule); ``reason`` says why and names ``good.ckpt``, the last good checkpoint.
- ``interrupted``, exit 130 (SIGINT) or 143 (SIGTERM): the step in progress finished and was
  saved as ``last.ckpt``; resume with ``ckpt_path=.../last.ckpt``.
- Bad input (a config value, an expression, a data file, a checkpoint), exit 2: one line
  ``error: <key>: <what is wrong>; <what is valid>`` and no ``metrics.json``
  (``HYDRA_FULL_ERROR=1`` prints the traceback too).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from lightning_pinn.allowlist import trust
from lightning_pinn.config import instantiate
from lightning_pinn.errors import ConfigError, TrainingFailure
from lightning_pinn.lightning.checkpoints import AtomicCheckpointIO, last_good
from lightning_pinn.lightning.progress import StepProgressBar
from lightning_pinn.lightning.signals import StopOnSignal
from lightning_pinn.problem.spec import Problem


class RunInterrupted(Exception):
    """The run was stopped by a signal after saving a checkpoint; ``signum`` says which."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


def config_dir() -> str:
    """The packaged configs (installed wheel) or the repository's ``conf/`` (source tree, editable install)."""
    packaged = Path(__file__).parent / "conf"
    return str(packaged if (packaged / "train.yaml").exists() else Path(__file__).parents[1] / "conf")


def run_group(task_name: str) -> str:
    """The wandb group of a run: ``task_name``, or ``<task_name>-<sweep directory name>`` inside a multirun.

    Registered as the ``${run_group:...}`` resolver, so all runs of one sweep share a group.
    """
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return f"{task_name}-{Path(HydraConfig.get().sweep.dir).name}"
    return task_name


OmegaConf.register_new_resolver("run_group", run_group, replace=True)


def train(cfg: DictConfig) -> float | None:
    """Train as configured; returns the objective ``cfg.objective`` (e.g. ``val/rel_l2_u``) for sweepers.

    Writes ``metrics.json`` with the run's ``status`` (see the module docstring).

    Raises:
        ConfigError: for bad input, before training starts (or when a resumed checkpoint does not fit).
        TrainingFailure: when training stopped on a non-finite or diverged loss.
        RunInterrupted: when SIGINT or SIGTERM stopped the run.
    """
    trust(*(cfg.get("trusted_targets") or []))
    check_trainer_config(cfg.trainer)
    pl.seed_everything(cfg.seed, workers=True)
    model = build_model(cfg)
    loggers = [_build(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items() if c is not None]
    callbacks = [_build(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c is not None]
    stopper = StopOnSignal()
    callbacks.append(stopper)
    if cfg.trainer.get("enable_progress_bar", True) and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(StepProgressBar())
    plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    trainer: pl.Trainer = _build(cfg.trainer, "trainer", logger=loggers or False, callbacks=callbacks, **plugins)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    output = Path(cfg.paths.output_dir) / "metrics.json"
    start = time.perf_counter()
    try:
        trainer.fit(model, ckpt_path=_resume_path(cfg))
    except TrainingFailure as err:
        _finish(trainer, model, loggers, output, start, status="failed", reason=str(err),
                good_checkpoint=last_good(trainer))
        raise
    except SIGTERMException:
        stopper.signal = stopper.signal or signal.SIGTERM
    if stopper.signal is not None:
        saved = str(stopper.path) if stopper.path else last_good(trainer)
        _finish(trainer, model, loggers, output, start, status="interrupted", signal=stopper.signal.name,
                checkpoint=saved)
        raise RunInterrupted(stopper.signal, f"interrupted by {stopper.signal.name} at step {trainer.global_step}; "
                                             f"resume with ckpt_path={saved}")
    last = _save_final(trainer)
    metrics = _finish(trainer, model, loggers, output, start, status="completed", checkpoint=last, validate=True)
    objective = cfg.get("objective")
    return metrics.get(objective) if objective else None


def build_model(cfg: DictConfig) -> pl.LightningModule:
    """The model of ``cfg.model``, its problem from ``cfg.problem_file`` (read as data) when that is set.

    Errors name the key a user sets: ``problem.params.nu`` for the problem, ``model.compile`` for
    the module's own options (see :func:`user_key`).
    """
    overrides = {}
    if cfg.get("problem_file"):
        overrides["problem"] = Problem.from_yaml(to_absolute_path(str(cfg.problem_file)))
    try:
        return instantiate(cfg.model, _recursive_=False, **overrides)
    except ConfigError as err:
        raise type(err)(user_key(cfg.model, str(err))) from err


def user_key(model_cfg: DictConfig, message: str) -> str:
    """``message`` with its leading key put as the user writes it on the command line.

    The module names its own arguments (``compile: ...``, ``problem.params.nu: ...``). An argument
    interpolated from a root group (``model.problem: ${problem}``) is named by that group
    (``problem.params.nu``), any other by ``model.<argument>``.
    """
    head, colon, rest = message.partition(": ")
    first = re.split(r"[.\[]", head, maxsplit=1)[0]
    if not colon or first not in model_cfg:
        return message
    raw = OmegaConf.to_container(model_cfg, resolve=False).get(first)
    interpolated = isinstance(raw, str) and re.fullmatch(r"\$\{[\w.]+\}", raw)
    root = raw[2:-1] if interpolated else f"model.{first}"
    return f"{root}{head[len(first):]}: {rest}"


def check_trainer_config(trainer_cfg: DictConfig) -> None:
    """Refuse trainer values that Lightning would take silently or reject with a traceback.

    Raises:
        ConfigError: naming ``trainer.<key>`` and what is valid.
    """
    def integer(key: str, lowest: int) -> None:
        value = trainer_cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < lowest):
            raise ConfigError(f"trainer.{key}: expected an integer >= {lowest} but got {value!r}")

    integer("max_steps", -1)
    integer("log_every_n_steps", 0)
    value = trainer_cfg.get("val_check_interval")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"trainer.val_check_interval: expected a number of training steps (an integer >= 1) "
                          f"between validations but got {value!r}")
    max_time = trainer_cfg.get("max_time")
    if isinstance(max_time, str) and not re.fullmatch(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}", max_time):
        raise ConfigError(f"trainer.max_time: expected DD:HH:MM:SS, e.g. 00:00:14:00 for 14 minutes, but got "
                          f"{max_time!r}")


def _build(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """Hydra-instantiate a part of the run's own config; its constructor's errors become one-line ConfigErrors."""
    if not isinstance(cfg, DictConfig) or "_target_" not in cfg:
        shown = sorted(cfg) if isinstance(cfg, DictConfig) else repr(cfg)
        raise ConfigError(f"{key}: expected a config with _target_ but got {shown} (options for a {key.split('.')[0]} "
                          "entry that is not selected?)")
    try:
        return instantiate(cfg, **kwargs)
    except ConfigError as err:
        if str(err).startswith(key):
            raise
        raise err.within(key) from err
    except (ValueError, TypeError, MisconfigurationException) as err:
        raise ConfigError(f"{key}: {' '.join(str(err).split())}") from err


def _resume_path(cfg: DictConfig) -> str | None:
    path = cfg.get("ckpt_path")
    if path is None:
        return None
    path = to_absolute_path(str(path))
    if not Path(path).is_file():
        raise ConfigError(f"ckpt_path: no checkpoint file at {path!r}")
    return path


def _save_final(trainer: pl.Trainer) -> str | None:
    """Overwrite ``last.ckpt`` with the final weights: a run that stops at ``max_steps`` between
    validations would otherwise leave the checkpoint of its last validation there."""
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "save_last", False) and callback.dirpath:
            path = str(Path(callback.dirpath) / "last.ckpt")
            trainer.save_checkpoint(path, weights_only=False)  # the full training state
            return path
    return None


def _finish(trainer: pl.Trainer, model: pl.LightningModule, loggers: list, output: Path, start: float, *,
            status: str, validate: bool = False, **extra: Any) -> dict[str, Any]:
    """Collect the run's final metrics (the last step's values, the final validation), write ``metrics.json``,
    close wandb; returns the metrics."""
    train_seconds = time.perf_counter() - start
    metrics: dict[str, Any] = {k: float(v) for k, v in trainer.callback_metrics.items() if _is_number(v)}
    final_step = getattr(model, "final_step_metrics", None)
    if callable(final_step):
        metrics.update(final_step())
    problem = getattr(model, "problem", None)
    if validate and problem is not None and problem.reference is not None:  # score the final weights
        metrics.update({k: float(v) for k, v in trainer.validate(model, verbose=False)[0].items()})
    metrics.update(train_seconds=train_seconds, global_step=trainer.global_step, status=status,
                   **{k: v for k, v in extra.items() if v is not None})
    _write_metrics(output, metrics)
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            _finish_wandb(logger, metrics, 0 if status == "completed" else 1)
    return metrics


@rank_zero_only
def _finish_wandb(logger: WandbLogger, metrics: dict[str, Any], exit_code: int) -> None:
    run = logger.experiment
    run.summary.update(metrics)
    offline, run_dir = run.settings.mode == "offline", Path(run.dir).parent
    run.finish(exit_code=exit_code)
    if offline:
        rank_zero_info(f"wandb: offline run saved; upload it with `wandb sync {run_dir}`")


@rank_zero_only
def _write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in sorted(metrics.items())
                      if k != "reason")
    rank_zero_info(f"lightning-pinn: {shown} -> {path}")


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def exit_status(error: BaseException) -> int | None:
    """The exit status for how a run ended: 2 bad input, 1 failed training, 128 + signal interrupted; None: a bug."""
    if isinstance(error, ConfigError):
        return 2
    if isinstance(error, TrainingFailure):
        return 1
    if isinstance(error, RunInterrupted):
        return 128 + int(error.signum)
    return None


def report(error: BaseException) -> int | None:
    """Print ``error: <message>`` (one line; the traceback too under ``HYDRA_FULL_ERROR=1``) for an outcome
    with an exit status, and return that status; None for anything else (a bug, whose traceback Hydra prints)."""
    status = exit_status(error)
    if status is None:
        return None
    label = "interrupted" if isinstance(error, RunInterrupted) else "error"
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        traceback.print_exception(error)
    print(f"{label}: {' '.join(str(error).split())}", file=sys.stderr)
    return status


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Console entry point: ``lightning-pinn-train experiment=burgers``; exits with the status of how the run ended."""
    try:
        return train(cfg)
    except (ConfigError, TrainingFailure, RunInterrupted) as err:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweeper records the failed job and goes on
        status = report(err)
        sys.exit(status)


if __name__ == "__main__":
    main()
