"""A problem's domain: a spatial shape (disk, polygon, CSG, ...) times an optional time interval.

A problem's coordinates span a bounding box; with a ``geometry`` the spatial coordinates
are restricted to a :class:`~lightning_pinn.geometry.shapes.Shape` inside it. Regions are
then named as for a box: ``"interior"`` (shape interior x time interval), ``"boundary"``
(shape boundary x time interval, with the shape's outward normals), and the time faces
``"t=0"`` and ``"t=1"`` (the shape's interior at an initial or final time).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lightning_pinn.errors import ConfigError
from lightning_pinn.geometry.box import Box
from lightning_pinn.geometry.samplers import Sampler, Seed, seed_sequence
from lightning_pinn.geometry.shapes import Shape


class ShapeRegion:
    """The interior or boundary of a shape, at every time of an interval or at one time.

    Args:
        shape: the spatial shape.
        part: ``"interior"`` or ``"boundary"``.
        columns: the problem's columns of the shape's coordinates, in the shape's order.
        n_coords: number of problem coordinates.
        time: ``(column, lo, hi)`` of the time coordinate, or None for a steady problem.
        at_time: a fixed time (a time face), or None for the whole interval.
        label: how a config names the region.
    """

    def __init__(self, shape: Shape, part: str, columns: Sequence[int], n_coords: int,
                 time: tuple[int, float, float] | None, at_time: float | None, label: str):
        self.shape, self.part, self.columns = shape, part, list(columns)
        self.n_coords, self.time, self.at_time, self.label = n_coords, time, at_time, label

    @property
    def has_normals(self) -> bool:
        """The boundary has the shape's normals; a time face has ``-e_t`` or ``+e_t``."""
        return self.part == "boundary" or self.at_time is not None

    @property
    def measure(self) -> float:
        """Area (or length, volume) of the part, times the interval's length when time varies."""
        size = self.shape.measure if self.part == "interior" else self.shape.boundary_measure
        return size * (self.time[2] - self.time[1] if self.time is not None and self.at_time is None else 1.0)

    @property
    def sampler_dims(self) -> list[int]:
        """A stream for the shape, and one for time when it varies."""
        return [self.shape.dim] + ([1] if self.time is not None and self.at_time is None else [])

    def sample(self, count: int, streams: list[Sampler]) -> tuple[np.ndarray, np.ndarray | None]:
        """``count`` points ``(count, n_coords)`` and their outward normals (None inside)."""
        if streams[0].method == "grid":
            raise ConfigError(f"region {self.label!r}: grid sampling needs a box domain; use sobol, halton, lhs or "
                             "uniform with a geometry")
        points = np.zeros((count, self.n_coords))
        normals = None
        if self.part == "interior":
            points[:, self.columns] = self.shape.sample_interior(count, streams[0].sample)
        else:
            spatial, outward = self.shape.sample_boundary(count, streams[0].sample)
            points[:, self.columns] = spatial
            normals = np.zeros_like(points)
            normals[:, self.columns] = outward
        if self.time is not None:
            column, lo, hi = self.time
            if self.at_time is None:
                points[:, column] = lo + streams[1].sample(count)[:, 0] * (hi - lo)
            else:
                points[:, column] = self.at_time
                normals = np.zeros_like(points)
                normals[:, column] = -1.0 if self.at_time == lo else 1.0
        return points, normals


class Domain:
    """Regions of a problem: those of its bounding :class:`Box`, or of a shape inside it.

    Args:
        box: the coordinates' bounding box (with its time coordinate, if any).
        shape: the spatial shape, or None for the box itself.

    Raises:
        ValueError: naming ``geometry`` when the shape's dimension does not match the spatial
            coordinates, or it reaches outside their bounds.
    """

    def __init__(self, box: Box, shape: Shape | None = None):
        self.box, self.shape = box, shape
        self.spatial = [k for k, name in enumerate(box.names) if name != box.time]
        if shape is None:
            return
        if not isinstance(shape, Shape):
            raise ConfigError(f"geometry: expected a shape (Rectangle, Disk, Polygon, CSGUnion, ...) but got {shape!r}")
        names = [box.names[k] for k in self.spatial]
        if shape.dim != len(self.spatial):
            raise ConfigError(f"geometry: {shape!r} is {shape.dim}D, but the spatial coordinates are {names}")
        lo, hi = shape.bounds
        box_lo, box_hi = np.asarray(box.lo)[self.spatial], np.asarray(box.hi)[self.spatial]
        if np.any(lo < box_lo - 1e-9) or np.any(hi > box_hi + 1e-9):
            raise ConfigError(f"geometry: {shape!r} spans {lo.tolist()} to {hi.tolist()}, outside the coords bounds "
                             f"{box_lo.tolist()} to {box_hi.tolist()} of {names}; widen coords")

    def regions(self, spec: str | Sequence[str], key: str = "region") -> list[Any]:
        """Resolve a region spec (a string or a list of them); errors name ``key``."""
        if self.shape is None:
            return self.box.regions(spec, key)
        specs = [spec] if isinstance(spec, str) else list(spec)
        if not specs:
            raise ConfigError(f"{key}: expected a region but got an empty list")
        return [self._resolve(str(item).strip(), key) for item in specs]

    def _resolve(self, spec: str, key: str) -> ShapeRegion:
        box = self.box
        time = None
        if box.time is not None:
            column = box.names.index(box.time)
            time = (column, box.lo[column], box.hi[column])
        if spec in ("interior", "boundary"):
            return ShapeRegion(self.shape, spec, self.spatial, len(box.names), time, None, spec)
        if time is not None and "=" in spec:
            name, _, value = (part.strip() for part in spec.partition("="))
            try:
                number = float(value)
            except ValueError:
                number = None
            if name == box.time and number is not None:
                for bound in time[1:]:
                    if np.isclose(number, bound, rtol=1e-12, atol=1e-12):
                        return ShapeRegion(self.shape, "interior", self.spatial, len(box.names), time, bound, spec)
        faces = [f"{box.time}={v:g}" for v in time[1:]] if time is not None else []
        raise ConfigError(f"{key}: {spec!r} is not a region of the geometry; use 'interior', 'boundary'"
                         + (f" or a time face among {faces}" if faces else ""))

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Whether each row of ``points`` ``(n, n_coords)`` lies in the domain (always, without a shape)."""
        if self.shape is None:
            return np.ones(len(points), dtype=bool)
        return self.shape.contains(np.asarray(points)[:, self.spatial])

    def sample_interior(self, n: int, seed: Seed = 0) -> np.ndarray:
        """``n`` uniform random points of the domain (shape interior x time interval), for observations.

        The ``j``-th stream (the shape's, then time's) is seeded ``seed_sequence(seed, j)``: children of
        one seed, so seeds ``s`` and ``s + 1`` share no stream.
        """
        region = self.regions("interior")[0]
        streams = [Sampler(dim, "uniform", seed_sequence(seed, j)) for j, dim in enumerate(region.sampler_dims)]
        points, _ = region.sample(n, streams)
        return points

