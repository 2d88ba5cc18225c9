"""Optimizer phases: training as a sequence of optimizers, each for a number of steps.

A typical PINN recipe is a first-order warm-up (Adam, a few thousand steps) followed by a
quasi-Newton method until the budget ends. ``PINNModule(phases=...)`` takes such a sequence,
as ``{name: phase}`` (YAML: ``optimizer.phases``) or a list of :class:`Phase` objects::

    phases:
      adam: {optimizer: {_target_: torch.optim.Adam, lr: 1.0e-3}, steps: 1000}
      ssbroyden: {optimizer: {_target_: lightning_pinn.optim.QuasiNewton, method: ssbroyden, max_iter: 20}}

A training step is one ``optimizer.step(closure)`` of the current phase: one update for Adam-like
optimizers, up to ``max_iter`` line-searched iterations for L-BFGS and :class:`QuasiNewton`. So
``trainer.max_steps``, ``val_check_interval`` and checkpoint intervals count such steps, and a
quasi-Newton step costs about ``max_iter`` times an Adam step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer

from lightning_pinn.config import build_factory, config_of, to_plain
from lightning_pinn.errors import ConfigError
from lightning_pinn.optim.gauss_newton import GaussNewton
from lightning_pinn.optim.quasi_newton import QuasiNewton

LINE_SEARCH_OPTIMIZERS = (torch.optim.LBFGS, QuasiNewton)
"""Optimizers that evaluate the loss many times per step (each rank must see one objective)."""


@dataclass
class Phase:
    """One phase: an optimizer, for how many steps, with what scheduler and precision.

    Args:
        optimizer: a config (``{_target_: torch.optim.Adam, lr: 1e-3}``) or a callable ``params -> Optimizer``.
        steps: how many training steps the phase lasts; ``None`` (only the last phase): until training ends.
        scheduler: ``None``, or a config or callable ``optimizer -> LRScheduler``, stepped every step.
        float64: convert the module (network and learnable parameters) to float64 when the phase starts
            (needs ``trainer.precision=32-true`` or ``64-true``, one process).
        name: how logs and messages call it (the key in a ``{name: phase}`` mapping).
    """

    optimizer: Any
    steps: int | None = None
    scheduler: Any = None
    float64: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        key = f"phases.{self.name}" if self.name else "phases"
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or self.steps < 1):
            raise ConfigError(f"{key}.steps: expected a positive number of steps or null (until the end) but got "
                              f"{self.steps!r}")
        if not isinstance(self.float64, bool):
            raise ConfigError(f"{key}.float64: expected true or false but got {self.float64!r}")
        self._optimizer = build_factory(self.optimizer, f"{key}.optimizer")
        self._scheduler = None if self.scheduler is None else build_factory(self.scheduler, f"{key}.scheduler")
        self.name = self.name or _name(self._optimizer)
        self._check(key)

    def _check(self, key: str) -> None:
        """Build the optimizer (and scheduler) once on a stand-in parameter: a bad setting is an error now."""
        probe = [torch.nn.Parameter(torch.zeros(1))]
        key = f"{key}.optimizer"
        try:
            optimizer = self._optimizer(probe)
            if not isinstance(optimizer, Optimizer):
                raise ConfigError(f"{key}: expected a torch.optim.Optimizer but built a "
                                  f"{type(optimizer).__name__}")
            self.line_search = isinstance(optimizer, LINE_SEARCH_OPTIMIZERS)
            """Whether the optimizer evaluates the loss many times per step (L-BFGS, :class:`QuasiNewton`)."""
            self.least_squares = isinstance(optimizer, GaussNewton)
            """Whether the optimizer works on the residual vector and its Jacobian (:class:`GaussNewton`)."""
            if self._scheduler is not None:
                key = key.replace(".optimizer", ".scheduler")
                self._scheduler(optimizer)
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:
            name = getattr(getattr(self._optimizer, "func", self._optimizer), "__qualname__", "it")
            raise ConfigError(f"{key}: {name} refused its arguments: {' '.join(str(err).split())}") from err

    def build(self, params: Iterable[torch.Tensor]) -> tuple[Optimizer, Any]:
        """The phase's optimizer over ``params`` and its scheduler (or None)."""
        optimizer = self._optimizer(params)
        return optimizer, None if self._scheduler is None else self._scheduler(optimizer)

    def to_config(self) -> dict[str, Any]:
        """The phase as plain data (for checkpoints)."""
        return {"optimizer": config_of(self.optimizer), "steps": self.steps, "scheduler": config_of(self.scheduler),
                "float64": self.float64}


class Phases:
    """The phases of a run in order, and which one is current.

    Args:
        phases: ``{name: Phase or mapping}`` or a sequence of them, in order; a ``None`` entry is
            left out (so an override ``phases.lbfgs=null`` removes a phase); ``None`` gives one Adam
            phase (learning rate 1e-3) for the whole run. When the last phase has ``steps``, training
            ends with it.

    Raises:
        ConfigError: for an empty list, a phase without ``steps`` before the last, or a bad phase.

    Examples:
        >>> phases = Phases({"adam": {"optimizer": {"_target_": "torch.optim.Adam"}, "steps": 10},
        ...                  "lbfgs": {"optimizer": {"_target_": "torch.optim.LBFGS"}}})
        >>> [phases.index_at(step) for step in (0, 9, 10, 500)]
        [0, 0, 1, 1]
    """

    def __init__(self, phases: Mapping[str, Any] | Iterable[Any] | None = None):
        phases = to_plain(phases)
        if phases is None:
            phases = {"adam": {"optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-3, "fused": True}}}
        items = list(phases.items()) if isinstance(phases, Mapping) else [(None, p) for p in phases]
        items = [(name, value) for name, value in items if value is not None]  # ``phases.lbfgs=null`` drops one
        if not items:
            raise ConfigError("phases: expected at least one phase")
        self.phases: list[Phase] = [_phase(value, name) for name, value in items]
        for phase in self.phases[:-1]:
            if phase.steps is None:
                raise ConfigError(f"phases.{phase.name}.steps: only the last phase may run until the end; give this "
                                  "one a number of steps")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ConfigError(f"phases: names must differ but got {names}")
        self.starts = [sum(p.steps for p in self.phases[:k]) for k in range(len(self.phases))]
        """The global step at which each phase starts."""
        self.index = 0
        """The current phase."""

    @property
    def current(self) -> Phase:
        """The phase now running."""
        return self.phases[self.index]

    def index_at(self, step: int) -> int:
        """The phase that runs at global step ``step``."""
        return max(k for k, start in enumerate(self.starts) if start <= step)

    @property
    def ends(self) -> bool:
        """Whether the last phase ends by itself (it has ``steps``)."""
        return self.phases[-1].steps is not None

    @property
    def total_steps(self) -> int | None:
        """The steps of all phases, or None when the last runs until the end."""
        return self.starts[-1] + self.phases[-1].steps if self.ends else None

    def to_config(self) -> dict[str, Any]:
        """``{name: phase config}``, as ``PINNModule(phases=...)`` takes it."""
        return {p.name: p.to_config() for p in self.phases}


def _phase(value: Any, name: str | None) -> Phase:
    if isinstance(value, Phase):
        if name is not None and value.name not in ("", name):
            raise ConfigError(f"phases.{name}: the phase is named {value.name!r}; use one name")
        value.name = value.name or (name or "")
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"phases.{name or '?'}: expected a phase {{optimizer: ..., steps: ...}} but got {value!r}")
    allowed = {"optimizer", "steps", "scheduler", "float64"}
    unknown = sorted(set(value) - allowed)
    if unknown or "optimizer" not in value:
        raise ConfigError(f"phases.{name or '?'}: expected keys among {sorted(allowed)} with an optimizer but got "
                          f"{sorted(value)}")
    return Phase(**value, name=name or "")


def _name(factory: Callable[..., Any]) -> str:
    target = getattr(factory, "func", factory)
    return getattr(target, "__name__", "phase").lower()
