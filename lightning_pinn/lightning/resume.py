"""What a resumed fit checks and adapts: the same problem, point counts, optimizer settings changed since.

A checkpoint records the problem's fingerprint and point counts (``Problem.fingerprint``,
``Problem.point_counts``) and the configs of the optimizer phases. Resuming with a different
problem is refused with the differences; changed point counts are reported (the module draws its
points anew); and optimizer settings the config changed since the checkpoint was written (a
smaller learning rate after a failure) replace the stored ones, which ``load_state_dict`` would
otherwise restore. Loading a checkpoint for inference checks none of this.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from lightning_pinn.config import SPECIAL_KEYS
from lightning_pinn.errors import ConfigError
from lightning_pinn.optim.phases import Phase
from lightning_pinn.problem.spec import Problem

_MISSING = object()


def check_same_problem(stored: Mapping[str, Any] | None, problem: Problem) -> None:
    """Refuse to resume a checkpoint whose problem fingerprint differs from ``problem``'s.

    Raises:
        ConfigError: under ``ckpt_path``, listing every difference as ``key: old in the checkpoint, new now``.
    """
    if stored is None:
        rank_zero_info("lightning-pinn: this checkpoint predates problem fingerprints; resuming without checking "
                       "that it holds the same problem")
        return
    differences = differences_between(stored, problem.fingerprint(), "problem")
    if differences:
        raise ConfigError(
            f"ckpt_path: the checkpoint was trained on another problem ({'; '.join(differences)}); resume with "
            "the problem it was trained on, or load its weights for inference with PINNModule.load_from_checkpoint")


def point_count_changes(stored: Mapping[str, int] | None, problem: Problem) -> str:
    """``"interior: 256 -> 300, ..."`` for the point sets whose counts changed, or ``""``."""
    now = problem.point_counts()
    if stored is None or dict(stored) == now:
        return ""
    return ", ".join(f"{name}: {stored.get(name)} -> {count}" for name, count in now.items() if stored.get(name) != count)


def apply_optimizer_settings(checkpoint: dict[str, Any], phase: Phase) -> str:
    """Put ``phase``'s optimizer settings into the checkpoint's optimizer state where they differ from the config it
    was written with; returns what changed (``"lr=0.05 (the checkpoint had 10.0)"``) or ``""``.

    Only settings of the same optimizer class are carried; a changed ``lr`` also resets the
    schedulers' base rates, so the run goes on from the new rate.
    """
    stored = (checkpoint.get("hyper_parameters") or {}).get("phases") or {}
    old = (stored.get(phase.name) or {}).get("optimizer") if isinstance(stored, Mapping) else None
    new = phase.to_config()["optimizer"]
    if not isinstance(old, Mapping) or not isinstance(new, Mapping) or old.get("_target_") != new.get("_target_"):
        return ""
    changed = {k: v for k, v in new.items() if k not in SPECIAL_KEYS and old.get(k, _MISSING) != v}
    said = []
    for optimizer_state in checkpoint.get("optimizer_states") or []:
        for group in optimizer_state.get("param_groups", []):
            for key, value in changed.items():
                if key in group:
                    group[key] = value
                    if key == "lr" and "initial_lr" in group:
                        group["initial_lr"] = value
                    said.append(f"{key}={value!r} (the checkpoint had {old.get(key, '?')!r})")
    if "lr" in changed:
        for scheduler in checkpoint.get("lr_schedulers") or []:
            for key in ("base_lrs", "_last_lr"):
                if key in scheduler:
                    scheduler[key] = [changed["lr"]] * len(scheduler[key])
    return ", ".join(dict.fromkeys(said))


def differences_between(old: Any, new: Any, key: str) -> list[str]:
    """Where two nested mappings differ, as ``key: old in the checkpoint, new now`` lines."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for name in dict.fromkeys([*old, *new]):
            out += differences_between(old.get(name, _MISSING), new.get(name, _MISSING), f"{key}.{name}")
        return out
    if old == new:
        return []

    def show(value: Any) -> str:
        return "absent" if value is _MISSING else repr(value)

    return [f"{key}: {show(old)} in the checkpoint, {show(new)} now"]
