"""When a training step logs its per-step metrics: on the steps whose metrics reach the loggers.

Each ``LightningModule.log`` call has a cost (Lightning moves and checks its result metric every
call; ``python benchmarks/lightning_overhead.py`` measures it), and Lightning hands step metrics to
the loggers only every ``Trainer(log_every_n_steps=...)`` steps. So the module logs on those steps,
plus the first and the last (so that ``trainer.callback_metrics`` holds values after any run). The
progress bar's loss is refreshed on those steps too.
"""

from __future__ import annotations

import lightning.pytorch as pl


def logs_this_step(module: pl.LightningModule) -> bool:
    """Whether ``module``'s training step should log its step metrics now.

    True every ``log_every_n_steps`` optimizer steps (where Lightning passes step metrics to the
    loggers), on the first and the last step of ``max_steps``, when the trainer is stopping, in
    ``fast_dev_run``, and outside a trainer.
    """
    try:
        trainer = module.trainer
    except RuntimeError:  # not attached
        return True
    step = module.global_step
    if step == 0 or trainer.fast_dev_run or trainer.should_stop:
        return True
    if lightning_writes(trainer, step):
        return True
    return trainer.max_steps > 0 and step + 1 >= trainer.max_steps


def lightning_writes(trainer: pl.Trainer, step: int) -> bool:
    """Whether Lightning hands the step metrics logged during training step ``step`` to the loggers."""
    every = trainer.log_every_n_steps
    return every > 0 and (step + 1) % every == 0
