"""The Hydra entry point behind ``python train.py`` and the ``lightning-pinn-train`` console script.

``python train.py experiment=burgers trainer.max_steps=200 net.width=64 logger=csv seed=3``
composes ``conf/train.yaml`` with those overrides, builds every object with
``hydra.utils.instantiate``, trains, validates the final weights, and writes
``metrics.json``, checkpoints and figures to the run's output directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, OmegaConf

from lightning_pinn.config import instantiate


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
    """Train as configured; returns the objective ``cfg.objective`` (e.g. ``val/rel_l2_u``) for sweepers."""
    pl.seed_everything(cfg.seed, workers=True)
    model = instantiate(cfg.model, _recursive_=False)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    start = time.perf_counter()
    trainer.fit(model, ckpt_path=cfg.get("ckpt_path"))
    train_seconds = time.perf_counter() - start
    _save_final(trainer)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if _is_number(v)}
    if model.problem.reference is not None:  # score the final weights, not those of the last validation
        metrics.update({k: float(v) for k, v in trainer.validate(model, verbose=False)[0].items()})
    metrics.update(train_seconds=train_seconds, global_step=trainer.global_step)
    _write_metrics(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            _finish_wandb(logger, metrics)
    objective = cfg.get("objective")
    return metrics.get(objective) if objective else None


def _save_final(trainer: pl.Trainer) -> None:
    """Overwrite ``last.ckpt`` with the final weights: a run that stops at ``max_steps`` between
    validations would otherwise leave the checkpoint of its last validation there."""
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "save_last", False) and callback.dirpath:
            trainer.save_checkpoint(str(Path(callback.dirpath) / "last.ckpt"))
            return


@rank_zero_only
def _finish_wandb(logger: WandbLogger, metrics: dict[str, Any]) -> None:
    run = logger.experiment
    run.summary.update(metrics)
    offline, run_dir = run.settings.mode == "offline", Path(run.dir).parent
    run.finish()
    if offline:
        rank_zero_info(f"wandb: offline run saved; upload it with `wandb sync {run_dir}`")


@rank_zero_only
def _write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    rank_zero_info("lightning-pinn: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())) + f" -> {path}")


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Console entry point: ``lightning-pinn-train experiment=burgers``."""
    return train(cfg)


if __name__ == "__main__":
    main()
