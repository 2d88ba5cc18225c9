"""Checkpoints you can trust: read as plain data, written atomically, and a last good one kept apart.

- :func:`read_checkpoint` reads a file with ``torch.load(weights_only=True)`` (tensors, numbers,
  strings and containers only) and turns every way it can fail into one clear ``ConfigError``.
- :class:`AtomicCheckpointIO` writes each checkpoint to a temporary file in its own directory
  and renames it into place, so a run killed while saving never leaves a truncated file,
  whatever ``TMPDIR`` is. ``train.py`` gives it to its Trainer; a bare ``pl.Trainer`` gets
  Lightning's ``TorchCheckpointIO``, whose fsspec transaction stages the file in the temporary
  directory and copies it over when that is another filesystem (pass
  ``plugins=[AtomicCheckpointIO()]`` to get this one).
- :class:`LastGoodCheckpoint` keeps ``good.ckpt``: the latest weights whose parameters are finite
  and whose loss is finite and not diverged, apart from ``ModelCheckpoint``'s rotation, so a
  failed run never leaves only poisoned files.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info

from lightning_pinn.errors import ConfigError, at


def read_checkpoint(path: str | Path, key: str = "ckpt_path", map_location: Any = "cpu",
                    weights_only: bool = True) -> dict[str, Any]:
    """The contents of a checkpoint file, as plain data.

    Args:
        path: the file.
        key: the config key that named it, for messages.
        map_location: as for ``torch.load``.
        weights_only: ``True`` (default) loads plain data only; ``False`` runs any code the file's
            pickle names and is for files you trust.

    Raises:
        ConfigError: naming ``key`` and the path: no such file, a truncated or foreign file, or one
            holding objects other than plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(at(key, f"no checkpoint file at {str(path)!r}"))
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(at(key, f"{str(path)!r} holds objects other than plain data ({first}); checkpoints "
                              "written by lightning-pinn never do; load it only if you trust who wrote it, "
                              "with torch.load(path, weights_only=False)")) from err
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(at(key, f"{str(path)!r} is not a readable checkpoint ({first}); it may be truncated or "
                              "not a Lightning checkpoint; use another one, e.g. good.ckpt or last.ckpt")) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(at(key, f"{str(path)!r} is not a Lightning checkpoint (no 'state_dict')"))
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO``, writing each file atomically next to where it belongs and reading plain data.

    A checkpoint is written to a hidden temporary file in the target directory, flushed to disk
    and renamed over the target (``os.replace``, atomic on one filesystem), so a reader or a
    resume sees the old file or the new one, never part of one. Remote paths (``s3://`` and the
    like) are left to Lightning. Loading goes through :func:`read_checkpoint` (``weights_only``
    unless the caller passes ``False``).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically (local paths)."""
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return None

    def load_checkpoint(self, path: Any, map_location: Callable | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """Read ``path`` as plain data (see :func:`read_checkpoint`); remote paths through Lightning."""
        if "://" in str(path):
            return super().load_checkpoint(path, map_location, weights_only)
        return read_checkpoint(path, "ckpt_path", map_location, weights_only is not False)


class LastGoodCheckpoint(pl.Callback):
    """Keeps ``<dirpath>/good.ckpt``: the latest weights that are safe to resume from.

    At every validation and at the end of training it asks the module whether its current
    weights are good (``module.health()``: every parameter finite, the loss on the current
    points finite and not diverged; a module without ``health`` is judged by its parameters
    alone), agreed across DDP ranks, and if so saves a checkpoint over ``good.ckpt``. It is not
    part of ``ModelCheckpoint``'s ``save_top_k`` rotation, so a run that fails leaves it behind;
    the failure's message names it (:attr:`path`, :attr:`step`).

    Args:
        dirpath: where ``good.ckpt`` goes; default: the ``ModelCheckpoint``'s directory, else
            ``<default_root_dir>/checkpoints``.
        filename: the file's name.
    """

    def __init__(self, dirpath: str | Path | None = None, filename: str = "good.ckpt"):
        self.dirpath = dirpath
        self.filename = filename
        self.path: Path | None = None
        """The file last written (None until the first save)."""
        self.step: int | None = None
        """The global step of the weights in :attr:`path`."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Save ``good.ckpt`` if the weights are good (not during the sanity check)."""
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self.save_if_good(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Save ``good.ckpt`` for the final weights if they are good."""
        if self.step != trainer.global_step:
            self.save_if_good(trainer, pl_module)

    def save_if_good(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        """Save ``good.ckpt`` when every rank finds the weights good; say why not otherwise."""
        check = getattr(pl_module, "health", None)
        reason = check() if callable(check) else _parameters_not_finite(pl_module)
        if not trainer.strategy.reduce_boolean_decision(reason is None, all=True):
            rank_zero_info(f"lightning-pinn: good.ckpt not updated at step {trainer.global_step}: "
                           f"{reason or 'another rank found its weights bad'}")
            return False
        path = Path(self.dirpath or checkpoint_dir(trainer)) / self.filename
        trainer.save_checkpoint(str(path), weights_only=False)  # the full training state
        self.path, self.step = path, trainer.global_step
        return True


def last_good(trainer: pl.Trainer | None) -> str | None:
    """``"<path> (step N)"`` of the last good checkpoint saved in ``trainer``'s run, or None."""
    for callback in trainer.callbacks if trainer is not None else ():
        if isinstance(callback, LastGoodCheckpoint) and callback.path is not None:
            return f"{callback.path} (step {callback.step})"
    return None


def checkpoint_dir(trainer: pl.Trainer) -> str:
    """The ``ModelCheckpoint``'s directory, else ``<default_root_dir>/checkpoints``."""
    callback = trainer.checkpoint_callback
    dirpath = getattr(callback, "dirpath", None)
    return str(dirpath) if dirpath else str(Path(trainer.default_root_dir) / "checkpoints")


def _parameters_not_finite(module: torch.nn.Module) -> str | None:
    bad = [name for name, p in module.named_parameters() if not bool(torch.isfinite(p).all())]
    return f"parameters {bad[:3]} are not finite" if bad else None
