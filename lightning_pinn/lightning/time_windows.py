"""Time-marching windows: train the time interval in ``K`` consecutive windows, each from the previous one's end.

Long horizons and chaotic problems defeat one network trained on the whole interval at once: it
fits the initial value and a smooth, wrong continuation (Kuramoto-Sivashinsky is the classic case).
Marching in time (jaxpi's time windows; PhysicsNeMo-Sym's moving window) splits ``[t0, T]`` into
``K`` windows of equal length. Window ``k`` trains the network on its own slab
``[t0 + k dt, t0 + (k + 1) dt]``: every point set is drawn over the whole domain as usual and its
time column mapped affinely into the window. Its initial condition becomes continuity with the
window before it: a condition on the initial face with residual ``r(u)`` becomes
``r(u) - r(u_prev)`` at ``t0 + k dt``, where ``u_prev`` is the previous window's network, frozen (for
``u - g(x)`` that is ``u - u_prev``; for an initial velocity ``u_t``, ``u_t - u_prev_t``). When a window
ends, its network is frozen and kept (``PINNModule.window_nets``) and training continues from its weights
in the next window, with the phase list from its first phase and a fresh optimizer. Prediction routes
each point to the network of its window, so validation, figures and inference cover the whole horizon.
No PyTorch PINN library offers this for arbitrary YAML problems, hence this module.

A window ends after ``trainer.max_steps // K`` steps, after its share ``max_time / K`` of the
time cap, or when its phases have all taken their steps, whichever comes first; the last window
runs until training ends. A resumed run keeps the shares its checkpoint was trained with.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_pinn.errors import ConfigError
from lightning_pinn.problem.condition_residuals import ObservationResidual
from lightning_pinn.problem.spec import INTERIOR, Problem


def check_count(count: Any) -> int:
    """``time_windows`` as a positive integer, or a one-line error naming the key."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"time_windows: expected a positive integer but got {count!r}")
    return count


class TimeWindows:
    """Which window trains, where it lies in time, and when it ends (see the module docstring).

    Args:
        problem: the spec; it needs a time coordinate, no condition on the final time face and no
            observation data (both belong to the whole horizon, not to one window), and no output
            transform (its initial values would hold in the first window only).
        count: the number of windows ``K >= 2``.

    Raises:
        ConfigError: for any of the above, naming the key.
    """

    def __init__(self, problem: Problem, count: int):
        self.count = check_count(count)
        if problem.time is None:
            raise ConfigError(f"time_windows: splits the time coordinate, and this problem has none (coordinates "
                              f"{list(problem.coords)}); name one `t` or set problem.time")
        if problem.output_transform is not None:
            raise ConfigError("time_windows: an output transform states its initial values for the first window only; "
                              "write the initial condition as a condition (conditions.<name>: {region: t=0, ...})")
        self.problem = problem
        self.column = problem.coords.index(problem.time)
        self.t0, self.t1 = (float(v) for v in problem.bounds[self.column])
        self.length = (self.t1 - self.t0) / self.count
        self.initial_sets: list[str] = []
        """Point sets on the initial face, whose conditions become continuity with the previous window."""
        for name, spec in problem.point_sets.items():
            if name == INTERIOR:
                continue
            fixed = {region.fixed for region in spec.regions} if spec.regions else {None}
            if fixed == {(self.column, self.t0)}:
                self.initial_sets.append(name)
            elif (self.column, self.t1) in fixed:
                raise ConfigError(f"conditions.{spec.terms[0]}: a condition at the final time {self.t1:g} holds for the "
                                  "whole horizon, not for each time window; drop time_windows or this condition")
            if any(isinstance(problem.terms[t].residual, ObservationResidual) for t in spec.terms):
                raise ConfigError(f"conditions.{spec.terms[0]}: observations span the whole horizon and are not split "
                                  "into time windows yet; drop time_windows or the data condition")
        self.index = 0
        """The window now training."""
        self.start_step = 0
        """The global step at which it started."""
        self.steps: int | None = None
        """Steps per window (``max_steps // K``), set by :meth:`plan`."""
        self.seconds: float | None = None
        """Its share of the time cap, set by :meth:`plan`."""
        self._started_at = time.monotonic()
        self._mapped: tuple[Any, dict[str, Tensor]] | None = None

    def bounds(self, index: int | None = None) -> tuple[float, float]:
        """``(start, end)`` of window ``index`` (the current one by default)."""
        k = self.index if index is None else index
        return self.t0 + k * self.length, self.t0 + (k + 1) * self.length

    def plan(self, max_steps: int | None, max_seconds: float | None, fixed_steps: int) -> None:
        """Share the budget between the windows; refuse one that leaves a window no step of its last phase.

        Args:
            max_steps: ``trainer.max_steps`` (None or -1: no step cap).
            max_seconds: ``trainer.max_time`` in seconds, or None.
            fixed_steps: the steps of every phase but the last (each window runs them first).
        """
        if max_steps in (None, -1) and max_seconds is None:
            raise ConfigError("time_windows: needs trainer.max_steps or trainer.max_time to share between the windows")
        if max_steps not in (None, -1):
            self.steps = int(max_steps) // self.count
            if self.steps <= fixed_steps:
                raise ConfigError(f"time_windows: {self.count} windows of {self.steps} steps (trainer.max_steps="
                                  f"{max_steps}) leave no step for the last phase after the {fixed_steps} steps of the "
                                  f"phases before it; raise trainer.max_steps to more than {self.count * (fixed_steps + 1)} "
                                  "or use fewer windows")
        self.seconds = None if max_seconds is None else max_seconds / self.count

    def due(self, step: int, phases_done: bool) -> bool:
        """Whether the current window ends before ``step``: its steps, its time or its phases are used up."""
        if self.index >= self.count - 1:
            return False
        taken = step - self.start_step
        if taken <= 0:
            return False
        over_time = self.seconds is not None and time.monotonic() - self._started_at >= self.seconds
        return phases_done or over_time or (self.steps is not None and taken >= self.steps)

    def advance(self, step: int) -> None:
        """Start the next window at ``step``."""
        self.index += 1
        self.start_step = step
        self._started_at = time.monotonic()
        self._mapped = None

    def restart_clock(self) -> None:
        """Count the window's time share from now (on resume: time spent before the checkpoint is not known)."""
        self._started_at = time.monotonic()

    def map_points(self, points: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``points`` with their time column mapped from ``[t0, T]`` into the current window (cached per draw)."""
        token = (tuple(map(id, points.values())), self.index)
        if self._mapped is not None and self._mapped[0] == token:
            return self._mapped[1]
        lo, _ = self.bounds()
        out = {}
        for name, x in points.items():
            x = x.clone()
            x[:, self.column] = lo + (x[:, self.column] - self.t0) / self.count
            out[name] = x
        self._mapped = (token, out)
        return out

    def window_of(self, t: Tensor) -> Tensor:
        """The window index of each time ``t`` (times outside ``[t0, T]`` go to the first or last window)."""
        return torch.clamp(torch.floor((t - self.t0) / self.length), 0, self.count - 1).long()

    def state_dict(self) -> dict[str, Any]:
        """The window now training, its first step, and the budget share of each window."""
        return {"count": self.count, "index": self.index, "start_step": self.start_step, "steps": self.steps,
                "seconds": self.seconds}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`; the checkpoint must have as many windows.

        The windows keep the checkpoint's steps and seconds per window (a resumed run with another
        ``max_steps`` would otherwise move the window boundaries it has already trained on).
        """
        if int(state["count"]) != self.count:
            raise ConfigError(f"time_windows: the checkpoint was trained with {state['count']} windows, this run has "
                              f"{self.count}")
        self.index, self.start_step = int(state["index"]), int(state["start_step"])
        if state.get("steps") is not None:
            self.steps = int(state["steps"])
        if state.get("seconds") is not None:
            self.seconds = float(state["seconds"])
        self._mapped = None
        self.restart_clock()


def route(nets: Sequence[torch.nn.Module], current: torch.nn.Module, windows: TimeWindows, coords: Tensor) -> Tensor:
    """Fields at ``coords``, each point from the network of its window: frozen ones before the current window,
    the current network from it on."""
    out = current(coords)
    if not nets:
        return out
    which = windows.window_of(coords[:, windows.column])
    out = out.clone()
    for k, net in enumerate(nets):
        mask = which == k
        if bool(mask.any()):
            out[mask] = net(coords[mask]).to(out.dtype)
    return out
