"""Loggers: Weights & Biases that works without an account (offline until you sync)."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info


def wandb_credentials_found() -> bool:
    """True when an API key is configured (``WANDB_API_KEY``, an identity token, or a netrc entry)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.exists() and netrc.netrc(str(path)).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def wandb_logger(offline: bool | None = None, **kwargs: Any) -> WandbLogger:
    """A :class:`WandbLogger` that runs offline unless credentials are configured.

    Args:
        offline: ``True``/``False`` to force; ``None`` decides: ``WANDB_MODE`` when set,
            else online only when :func:`wandb_credentials_found`.
        **kwargs: passed to :class:`WandbLogger` (``project``, ``save_dir``, ``group``, ...).
    """
    if offline is None:
        mode = os.environ.get("WANDB_MODE")
        offline = mode in ("offline", "dryrun", "disabled") if mode else not wandb_credentials_found()
        if offline and not mode:
            rank_zero_info(
                "wandb: no API key found, so this run is logged offline. "
                "Upload it later with `wandb sync <save_dir>/wandb/offline-run-*` after `wandb login`."
            )
    return WandbLogger(offline=offline, **kwargs)
