"""Collocation points for every point set of a problem, drawn on the module's device and dtype."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_pinn.geometry.box import PointSource
from lightning_pinn.problem.spec import Problem


class Collocation:
    """One :class:`PointSource` per point set of a problem; draws them all as tensors.

    Args:
        problem: the spec whose point sets (equations' interior, each condition) to draw.
        method: default sampler method; a condition's own ``sampler`` wins.
        seed: base seed; each point set gets its own streams from it.
    """

    def __init__(self, problem: Problem, method: str = "sobol", seed: int = 0):
        self.sources = {
            name: PointSource(spec.regions, spec.points, spec.sampler or method, seed=seed + 1000 * k)
            for k, (name, spec) in enumerate(problem.point_sets.items())
        }

    def draw(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
        """A fresh draw of every point set: ``{name: (n, n_coords)}``."""
        return {name: torch.as_tensor(source.sample(), dtype=dtype, device=device) for name, source in self.sources.items()}

    def state_dict(self) -> dict[str, Any]:
        """The stream positions of every point set."""
        return {name: source.state_dict() for name, source in self.sources.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the streams saved by :meth:`state_dict`."""
        for name, source in self.sources.items():
            source.load_state_dict(state[name])
