"""Shared test setup: wandb offline and quiet, small problems, small trainers."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")


@pytest.fixture
def burgers_spec() -> dict:
    """A small Burgers problem as plain data, the way Hydra YAML hands it over."""
    return {
        "coords": {"x": [-1.0, 1.0], "t": [0.0, 1.0]},
        "fields": ["u"],
        "params": {"nu": 0.01 / 3.141592653589793},
        "equations": {"burgers": "u_t + u*u_x - nu*u_xx"},
        "collocation_points": 256,
        "conditions": {
            "initial": {"region": "t=0", "residual": "u + sin(pi*x)", "points": 64},
            "boundary": {"region": "boundary", "residual": "u", "points": 64},
        },
    }


def small_trainer(tmp_path, **overrides):
    """A CPU trainer with no logger, no progress bar and no checkpoints unless asked."""
    import lightning.pytorch as pl

    options = dict(
        accelerator="cpu", devices=1, max_steps=10, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        default_root_dir=str(tmp_path), val_check_interval=10, check_val_every_n_epoch=None,
        inference_mode=False,
    )
    options.update(overrides)
    return pl.Trainer(**options)


def phases(first=None, steps=None, then=None, **then_options):
    """Optimizer phases for a test: ``first`` (default Adam, lr 1e-3) for ``steps`` steps, then ``then``
    (``"lbfgs"``: torch's L-BFGS with ``then_options``; a config mapping; None: no second phase)."""
    first = first or {"_target_": "torch.optim.Adam", "lr": 1e-3}
    out = {} if steps == 0 else {"first": {"optimizer": first, "steps": steps if then is not None else None}}
    if then == "lbfgs":
        out["lbfgs"] = {"optimizer": {"_target_": "torch.optim.LBFGS", **then_options}}
    elif then is not None:
        out["then"] = {"optimizer": then}
    return out
