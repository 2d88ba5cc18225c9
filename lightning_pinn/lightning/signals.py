"""Stopping cleanly on SIGINT and SIGTERM: finish the step, save a checkpoint, say which signal."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_pinn.lightning.checkpoints import checkpoint_dir


class StopOnSignal(pl.Callback):
    """Ends training after the current step on SIGINT (Ctrl-C) or SIGTERM, with a checkpoint of that step.

    Lightning notes a SIGTERM (``trainer.received_sigterm``) but acts on it only at the end of an
    epoch, which the endless step stream of a PINN never reaches, and a SIGINT aborts fit with
    ``KeyboardInterrupt``. With this callback either signal lets the running step finish, saves
    ``last.ckpt`` (in the ``ModelCheckpoint``'s directory, else ``<default_root_dir>/checkpoints``),
    sets ``trainer.should_stop`` (agreed across DDP ranks) and records the signal in :attr:`signal`,
    so the caller can report the run as interrupted. A second SIGINT interrupts at once.

    Args:
        filename: the checkpoint's file name.
    """

    def __init__(self, filename: str = "last.ckpt"):
        self.filename = filename
        self.signal: signal.Signals | None = None
        """The signal that stopped the run, or None."""
        self.path: Path | None = None
        """The checkpoint saved on the signal, or None."""
        self._previous: Any = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Catch SIGINT (in the main thread) for the length of fit."""
        self.signal, self.path = None, None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.signal is None:
            self.signal = signal.Signals(signum)
            rank_zero_info("lightning-pinn: SIGINT received; stopping after this step (press Ctrl-C again to abort)")
        else:
            signal.default_int_handler(signum, frame)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """After a step: if a signal came, save the checkpoint and stop."""
        if self.signal is None and trainer.received_sigterm:
            self.signal = signal.SIGTERM
        stop = self.signal is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop and self.path is None:
            self.signal = self.signal or signal.SIGTERM
            self._save(trainer)
            trainer.should_stop = True
            rank_zero_info(f"lightning-pinn: {self.signal.name} received; stopped at step {trainer.global_step}, "
                           f"checkpoint {self.path}")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """A SIGTERM that Lightning raised during validation: record it and save the weights of the last step."""
        if isinstance(exception, SIGTERMException):
            self.signal = self.signal or signal.SIGTERM
            if self.path is None:
                self._save(trainer)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Give SIGINT back to its previous handler."""
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _save(self, trainer: pl.Trainer) -> None:
        self.path = Path(checkpoint_dir(trainer)) / self.filename
        trainer.save_checkpoint(str(self.path), weights_only=False)  # the full training state
