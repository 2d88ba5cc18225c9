"""Collocation points for every point set of a problem, drawn on the module's device and dtype."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_pinn.problem.spec import Problem


class Collocation:
    """The current points of every point set of a problem, and the streams that redraw them.

    One point source per point set (the equations' interior, each condition; see
    ``lightning_pinn.geometry.point_sources``).
    Its state (stream positions, current points, the step they were drawn at) goes into
    checkpoints, so a resumed run uses and redraws exactly the points an unbroken one would.

    Args:
        problem: the spec whose point sets to draw.
        method: default sampler method; a condition's own ``sampler`` wins.
        seed: base seed; each point set gets its own streams from it.
    """

    def __init__(self, problem: Problem, method: str = "sobol", seed: int = 0):
        self.sources = {
            name: spec.source(method, seed + 1000 * k)
            for k, (name, spec) in enumerate(problem.point_sets.items())
        }
        self.points: dict[str, Tensor] | None = None
        self.drawn_at = -1
        self.draws = 0
        """How many times the points were (re)drawn."""

    def draw(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
        """A fresh draw of every point set, ``{name: (n, n_coords)}``; the current points do not change."""
        return {name: torch.as_tensor(source.sample(), dtype=dtype, device=device) for name, source in self.sources.items()}

    def due(self, step: int, every: int) -> bool:
        """Whether step ``step`` needs new points: none yet, or a multiple of ``every`` (0: never) not yet drawn."""
        return self.points is None or bool(every and step % every == 0 and self.drawn_at != step)

    def redraw(self, step: int, device: torch.device | str, dtype: torch.dtype) -> dict[str, Tensor]:
        """Replace the current points by a fresh draw made at ``step``."""
        self.points, self.drawn_at = self.draw(device, dtype), step
        self.draws += 1
        return self.points

    def current(self, device: torch.device | str, dtype: torch.dtype) -> dict[str, Tensor]:
        """The current points on ``device`` and ``dtype`` (drawn now if there are none)."""
        if self.points is None:
            return self.redraw(max(self.drawn_at, 0), device, dtype)
        if any(v.dtype != dtype or v.device != device for v in self.points.values()):  # else no new dict
            self.points = {k: v.to(device, dtype) for k, v in self.points.items()}
        return self.points

    def state_dict(self) -> dict[str, Any]:
        """Stream positions, current points and the step they were drawn at."""
        points = None if self.points is None else {k: v.detach().cpu() for k, v in self.points.items()}
        return {"sources": {name: s.state_dict() for name, s in self.sources.items()}, "points": points,
                "drawn_at": self.drawn_at, "draws": self.draws}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state_dict` saved."""
        for name, source in self.sources.items():
            source.load_state_dict(state["sources"][name])
        self.points, self.drawn_at, self.draws = state["points"], state["drawn_at"], state.get("draws", 0)

    def replay(self, state: dict[str, Any]) -> None:
        """Reach the position of a run saved by :meth:`state_dict` with this object's own streams.

        For a DDP rank other than 0, whose own state a checkpoint does not hold: its streams
        (seeded by rank) are drawn as many times as the saved run drew, and the last draw is current.
        """
        self.points = None
        for _ in range(int(state.get("draws", 0))):
            self.points = self.draw("cpu", torch.float64)
        self.drawn_at, self.draws = state["drawn_at"], int(state.get("draws", 0))
