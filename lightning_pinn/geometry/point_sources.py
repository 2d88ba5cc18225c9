"""Point sources: what a point set draws each time, as one float64 array with checkpointable streams.

A point set's array has the coordinates in its first columns; some sets carry more
columns after them, and the problem says what they mean:

- :class:`PointSource` draws on regions (box faces, the interior, geometry boundaries),
  optionally followed by the outward unit normal of each point (for ``u_n``);
- :class:`PeriodicSource` draws ``m`` points on one face and appends their images on
  the opposite face, so that row ``i`` and row ``m + i`` are identified;
- :class:`FixedPoints` returns the same rows every time (observations: coordinates
  followed by the observed values).

A :class:`PointSource` seeded ``seed`` gives region ``i``'s ``j``-th stream the seed
``seed_sequence(seed, i, j)``: the child ``(i, j)`` of ``seed``'s spawn tree, independent of
every other region's and stream's. Which ``seed`` a point set gets is decided in
``lightning_pinn.points``.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from lightning_pinn.errors import ConfigError
from lightning_pinn.geometry.samplers import Sampler, Seed, seed_sequence


class SamplingRegion(Protocol):
    """What :class:`PointSource` needs of a region: its size, its streams and a way to draw on it."""

    @property
    def measure(self) -> float:
        """Length, area or volume: points are shared among regions in proportion to it."""

    @property
    def sampler_dims(self) -> list[int]:
        """One unit-cube stream of each of these dimensions is handed to :meth:`sample`."""

    def sample(self, count: int, streams: list[Sampler]) -> tuple[np.ndarray, np.ndarray | None]:
        """``count`` points and their outward normals (None where the region has none)."""


class PointSource:
    """Draws a fixed number of points on one or more regions, with checkpointable streams.

    Points are split across the regions in proportion to their measure, and each
    region has its own :class:`Sampler` streams: region ``i``'s ``j``-th stream (one per entry
    of its ``sampler_dims``) is seeded ``seed_sequence(seed, i, j)``.

    Args:
        regions: where to draw, e.g. ``box.regions("boundary")``.
        n: total number of points per draw.
        method: sampler method (``uniform``, ``lhs``, ``sobol``, ``halton``, ``grid``).
        seed: the root of this source's streams: a ``numpy.random.SeedSequence`` (see
            ``lightning_pinn.points.stream_seed``) or a non-negative integer.
        normals: append each point's outward unit normal as more columns (every region
            must have normals: faces and geometry boundaries do, interiors do not).
    """

    def __init__(self, regions: Sequence[SamplingRegion], n: int, method: str = "sobol", seed: Seed = 0,
                 normals: bool = False):
        if int(n) < len(regions):
            raise ConfigError(f"Expected at least one point per region ({len(regions)}) but got n={n}")
        self.regions = list(regions)
        self.n, self.normals = int(n), bool(normals)
        measures = np.array([r.measure for r in self.regions])
        shares = self.n * measures / measures.sum()
        counts = np.floor(shares).astype(int)
        # largest remainders first (then larger regions), so that the counts add up to n
        counts[np.lexsort((-measures, counts - shares))[: self.n - counts.sum()]] += 1
        for k in np.flatnonzero(counts == 0):  # every region gets a point, taken from the largest count
            counts[np.argmax(counts)] -= 1
            counts[k] = 1
        self.counts = counts.tolist()
        self.seed = seed_sequence(seed)
        self.streams = [[Sampler(dim, method, seed_sequence(self.seed, i, j)) for j, dim in enumerate(r.sampler_dims)]
                        for i, r in enumerate(self.regions)]

    def sample(self) -> np.ndarray:
        """One draw: float64 ``(about n, dims)``, or ``(about n, 2 dims)`` with normals (grid draws may round up)."""
        parts = []
        for region, streams, count in zip(self.regions, self.streams, self.counts):
            points, normals = region.sample(count, streams)
            if self.normals:
                if normals is None:
                    raise ConfigError(f"region {getattr(region, 'label', region)!r} has no normals")
                points = np.concatenate([points, normals], axis=1)
            parts.append(points)
        return np.concatenate(parts, axis=0)

    def state_dict(self) -> dict[str, Any]:
        """The positions of every region's streams."""
        return {"streams": [[s.state_dict() for s in streams] for streams in self.streams]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the streams saved by :meth:`state_dict` (or by the one-stream-per-region format before it)."""
        saved_streams = state["streams"] if "streams" in state else [[] if s is None else [s] for s in state["samplers"]]
        for streams, saved in zip(self.streams, saved_streams):
            for stream, item in zip(streams, saved):
                stream.load_state_dict(item)


class PeriodicSource:
    """Pairs of identified points: ``m`` drawn on a face, then the same points moved to the opposite face.

    Args:
        face: a :class:`PointSource` on the lower face of the periodic coordinate.
        column: the periodic coordinate's column.
        opposite: its value on the upper face.
    """

    def __init__(self, face: PointSource, column: int, opposite: float):
        self.face, self.column, self.opposite = face, int(column), float(opposite)

    def sample(self) -> np.ndarray:
        """``(2 m, dims)``: rows ``i`` and ``m + i`` differ only in the periodic coordinate."""
        lower = self.face.sample()
        upper = lower.copy()
        upper[:, self.column] = self.opposite
        return np.concatenate([lower, upper], axis=0)

    def state_dict(self) -> dict[str, Any]:
        """The face stream's position."""
        return self.face.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the face stream saved by :meth:`state_dict`."""
        self.face.load_state_dict(state)


class FixedPoints:
    """The same rows at every draw (observations: coordinates, then observed values)."""

    def __init__(self, rows: np.ndarray):
        self.rows = np.asarray(rows, dtype=np.float64)

    def sample(self) -> np.ndarray:
        """A copy of the rows."""
        return self.rows.copy()

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save: the rows come from the problem."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""
