"""Points: the sources that draw each point set of a problem, their random streams, and the current points.

The spec (``problem/spec.py``) says where and how many points each point set has
(:class:`~lightning_pinn.problem.spec.PointSetSpec`); this module builds the sources that draw
them (:func:`build_source`) and holds the current points of every set (:class:`Collocation`).

Every random stream is a node of one :class:`numpy.random.SeedSequence` tree per run seed,
addressed by its spawn key::

    SeedSequence(seed, spawn_key=(purpose, rank, *name_key(point_set), region, stream))

- ``purpose``: ``0`` the collocation points (:class:`Collocation`), ``1`` the RAD/RAR
  candidates, ``2`` RAD's selection uniforms (that key ends after the name);
- ``rank``: the DDP global rank;
- ``name_key(point_set)``: the point set's *name* (``"interior"`` or the condition's key) as
  its UTF-8 byte count followed by its bytes, four to a key element: exact and prefix-free (the
  count says where the name ends), so no two names share a key and no stream's key begins
  another's; the same in every process (not Python's ``hash``);
- ``region``: the region's index among the point set's regions (a ``boundary`` has one per face);
- ``stream``: the index of the region's unit-cube stream (a shape, then time, for a geometry).

``SeedSequence(s, spawn_key=k)`` is the child that ``SeedSequence(s).spawn`` hands out at the
path ``k``, so distinct keys are independent streams by numpy's construction, whatever their
numbers: seed 1 on rank 0 shares nothing with seed 0 on rank 1, nor point set ``k`` with rank
``1000 k``. Keying by name means a point set's points do not depend on which other point sets
exist or their order: adding a condition leaves the interior points as they were, renaming one
changes its points. Observations sampled from a reference (``data: reference``) are part of the
problem, not of a run: their streams are ``SeedSequence(0, spawn_key=(j,))``, keys no stream
above has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightning_pinn.errors import ConfigError
from lightning_pinn.geometry.point_sources import FixedPoints, PeriodicSource, PointSource
from lightning_pinn.geometry.samplers import seed_sequence
from lightning_pinn.problem.spec import PointSetSpec, Problem

PURPOSES = {"collocation": 0, "candidates": 1, "selection": 2}
"""The first element of a stream's spawn key: what the stream draws."""


def name_key(name: str) -> tuple[int, ...]:
    """A point set's name as spawn-key elements: its UTF-8 byte count, then its bytes four at a time.

    Examples:
        >>> name_key("interior")
        (8, 1702129257, 1919904114)
    """
    data = str(name).encode("utf-8")
    padded = data + b"\0" * (-len(data) % 4)
    return (len(data), *(int.from_bytes(padded[k:k + 4], "little") for k in range(0, len(padded), 4)))


def stream_seed(seed: int, purpose: str, point_set: str, rank: int = 0) -> np.random.SeedSequence:
    """The root of one point set's streams of one purpose on one rank (see the module docstring).

    Args:
        seed: the run's seed, a non-negative integer.
        purpose: ``"collocation"``, ``"candidates"`` or ``"selection"``.
        point_set: the point set's name.
        rank: the DDP global rank.

    Raises:
        ValueError: naming the bad seed, purpose or rank.
    """
    if purpose not in PURPOSES:
        raise ConfigError(f"purpose: expected one of {list(PURPOSES)} but got {purpose!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer but got {seed!r}")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < 2**32:
        raise ConfigError(f"rank: expected a non-negative integer (the DDP global rank) but got {rank!r}")
    return seed_sequence(int(seed), PURPOSES[purpose], int(rank), *name_key(point_set))


def build_source(spec: PointSetSpec, method: str, seed: np.random.SeedSequence | int
                 ) -> PointSource | PeriodicSource | FixedPoints:
    """The point source that draws ``spec``: fixed rows, periodic pairs, or points on its regions.

    Args:
        spec: where and how many points.
        method: sampler method; the set's own ``sampler`` wins.
        seed: the root of the source's streams (region ``i``'s ``j``-th stream is its child ``(i, j)``).
    """
    if spec.rows is not None:
        return FixedPoints(spec.rows)
    source = PointSource(spec.regions, spec.points, spec.sampler or method, seed, normals=spec.normals)
    return source if spec.periodic is None else PeriodicSource(source, *spec.periodic)


class Collocation:
    """The current points of every point set of a problem, and the streams that redraw them.

    One point source per point set (the equations' interior, each condition; see
    ``lightning_pinn.geometry.point_sources``), seeded ``stream_seed(seed, "collocation", name, rank)``.
    Its state (stream positions, current points, the step they were drawn at) goes into
    checkpoints, so a resumed run uses and redraws exactly the points an unbroken one would.

    Args:
        problem: the spec whose point sets to draw.
        method: default sampler method; a condition's own ``sampler`` wins.
        seed: the run's seed, a non-negative integer.
        rank: the DDP global rank; each rank draws from its own streams.

    Examples:
        >>> p = Problem(coords={"x": [0, 1]}, fields=["u"], equations={"ode": "u_x - u"}, collocation_points=8)
        >>> Collocation(p, "sobol", seed=0, rank=1).draw()["interior"].shape
        torch.Size([8, 1])
    """

    def __init__(self, problem: Problem, method: str = "sobol", seed: int = 0, rank: int = 0):
        self.seed, self.rank = seed, rank
        self.sources = {name: build_source(spec, method, stream_seed(seed, "collocation", name, rank))
                        for name, spec in problem.point_sets.items()}
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
        """Stream seeds and positions, current points and the step they were drawn at."""
        points = None if self.points is None else {k: v.detach().cpu() for k, v in self.points.items()}
        return {"sources": {name: s.state_dict() for name, s in self.sources.items()}, "points": points,
                "drawn_at": self.drawn_at, "draws": self.draws}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state_dict` saved (its streams, whatever this object's seed and rank)."""
        for name, source in self.sources.items():
            source.load_state_dict(state["sources"][name])
        self.points, self.drawn_at, self.draws = state["points"], state["drawn_at"], state.get("draws", 0)

    def replay(self, state: dict[str, Any]) -> None:
        """Reach the position of a run saved by :meth:`state_dict` with this object's own streams.

        For a DDP rank other than 0, whose own state a checkpoint does not hold: its streams
        (keyed by its rank) are drawn as many times as the saved run drew, and the last draw is current.
        """
        self.points = None
        for _ in range(int(state.get("draws", 0))):
            self.points = self.draw("cpu", torch.float64)
        self.drawn_at, self.draws = state["drawn_at"], int(state.get("draws", 0))
