"""Constructive solid geometry: unions, intersections and differences of shapes.

With ``d_k`` the signed distances of the parts, a composite's signed distance is
the usual combination

    union:        min_k d_k
    intersection: max_k d_k
    difference:   max(d_base, -d_1, ..., -d_m)

whose sign, and so :meth:`~lightning_pinn.geometry.shapes.Shape.contains`, is
exact, while its magnitude is a lower bound of the true distance to the boundary
(exact outside a union and inside an intersection). Interior points come by rejection from the
bounding box. Boundary points are candidates from the parts' boundaries, drawn in
proportion to their boundary measures (normals of subtracted parts flipped), kept
where they bound the composite: a short step ``h`` back along the normal is
inside, a step forward is outside. Where parts share a boundary piece, only the
first part's candidates are kept there, so the density stays uniform. Measures
are fixed-seed Monte Carlo estimates.

A composite with no interior (e.g. a hole covering its base) is rejected when it
is built: none of 4096 Sobol points spread over its bounding box lie inside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from lightning_pinn.errors import ConfigError
from lightning_pinn.geometry.samplers import Sampler
from lightning_pinn.geometry.shapes import Draw, Shape, _allocate, _collect, _count

EMPTY_CHECK_POINTS = 4096
"""Points of the bounding box that decide whether a composite is empty."""

MEASURE_POINTS = 1 << 16
"""Monte Carlo points behind a composite's :attr:`measure`."""

BOUNDARY_MEASURE_POINTS = 4096
"""Candidates per part behind a composite's :attr:`boundary_measure`."""

SEED = 0
"""Seed of the Sobol streams behind the emptiness check and the measure estimates."""


class _Composite(Shape):
    """Shared machinery of composites: ``parts`` with normal signs, and the boundary filter."""

    parts: list[Shape]
    signs: list[float]  # +1, or -1 where a part's outward normal points into the composite

    def _set_parts(self, parts: list[Shape], signs: list[float]) -> None:
        name = type(self).__name__
        if not parts:
            raise ConfigError(f"{name}: expected at least one shape but got none")
        dims = [p.dim for p in parts]
        for k, d in enumerate(dims):
            if d != dims[0]:
                raise ConfigError(f"{name}: mismatched dimensions, {parts[k]!r} is {d}D but {parts[0]!r} is {dims[0]}D")
        self.parts, self.signs, self.dim = parts, signs, dims[0]

    @property
    def _step(self) -> float:
        return 1e-7 * self.diameter

    @property
    def _tol(self) -> float:
        return 1e-10 * max(1.0, self.diameter)

    def _check_not_empty(self) -> None:
        lo, hi = self.bounds
        if np.any(lo >= hi):
            raise ConfigError(f"{self!r} is empty: its parts' bounding boxes do not overlap")
        unit = Sampler(self.dim, "sobol", SEED).sample(EMPTY_CHECK_POINTS)
        if not np.any(self.distance(lo + unit * (hi - lo)) < 0):
            raise ConfigError(
                f"{self!r} is empty: none of {EMPTY_CHECK_POINTS} points spread over its bounding box lies inside"
            )

    @cached_property
    def measure(self) -> float:
        """Monte Carlo estimate: the fraction of fixed-seed Sobol points of the bounding box inside, times its volume."""
        lo, hi = self.bounds
        unit = Sampler(self.dim, "sobol", SEED).sample(MEASURE_POINTS)
        return float(np.mean(self.distance(lo + unit * (hi - lo)) < 0) * np.prod(hi - lo))

    @cached_property
    def boundary_measure(self) -> float:
        """Estimate: each part's boundary measure times the fraction of its fixed-seed candidates that are kept."""
        total = 0.0
        for i, (part, sign) in enumerate(zip(self.parts, self.signs)):
            points, normals = part.sample_boundary(BOUNDARY_MEASURE_POINTS, Sampler(self.dim, "sobol", SEED + i).sample)
            total += part.boundary_measure * float(np.mean(self._kept(i, points, sign * normals)))
        return total

    def _kept(self, i: int, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """Which boundary candidates of part ``i`` (normals already signed) lie on the composite's boundary."""
        h = self._step
        keep = (self.distance(points - h * normals) < 0) & (self.distance(points + h * normals) > 0)
        for earlier in self.parts[:i]:  # a shared boundary piece is sampled by the first part that has it
            keep &= ~earlier.on_boundary(points, tol=self._tol)
        return keep

    def sample_boundary(self, n: int, draw: Draw) -> tuple[np.ndarray, np.ndarray]:
        """``n`` boundary points with outward unit normals, from the parts' boundaries (see the module docstring).

        Raises:
            RuntimeError: if too few candidates are kept (a composite whose boundary is a tiny part of its parts').
        """
        n = _count(n)
        weights = np.array([part.boundary_measure for part in self.parts])
        rate = self.boundary_measure / weights.sum()

        def propose(m: int) -> tuple[np.ndarray, np.ndarray]:
            points, normals = [], []
            for i, (part, sign, k) in enumerate(zip(self.parts, self.signs, _allocate(m, weights))):
                if k:
                    p, nrm = part.sample_boundary(int(k), draw)
                    keep = self._kept(i, p, sign * nrm)
                    points.append(p[keep])
                    normals.append(sign * nrm[keep])
            return np.concatenate(points), np.concatenate(normals)

        points, normals = _collect(n, rate, propose, self, "boundary points", shuffle_tail=True)
        return points, normals


class CSGUnion(_Composite):
    """The union of shapes, ``d = min_k d_k``.

    Args:
        shapes: the shapes (built shapes, or configs with ``_target_``), all of one dimension.

    Examples:
        >>> from lightning_pinn.geometry.shapes import Rectangle
        >>> CSGUnion([Rectangle([0, 0], [2, 1]), Rectangle([0, 0], [1, 2])]).contains([[1.5, 0.5], [1.5, 1.5]])
        array([ True, False])
    """

    def __init__(self, shapes: Sequence[Shape]):
        self.shapes = _shapes(shapes, "CSGUnion: shapes")
        self._set_parts(self.shapes, [1.0] * len(self.shapes))

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        boxes = [s.bounds for s in self.shapes]
        return np.min([lo for lo, _ in boxes], axis=0), np.max([hi for _, hi in boxes], axis=0)

    def distance(self, points: np.ndarray) -> np.ndarray:
        return np.min([s.distance(points) for s in self.shapes], axis=0)

    def _fields(self) -> dict[str, Any]:
        return {"shapes": list(self.shapes)}


class CSGIntersection(_Composite):
    """The intersection of shapes, ``d = max_k d_k``.

    Args:
        shapes: the shapes (built shapes, or configs with ``_target_``), all of one dimension.

    Raises:
        ValueError: if the intersection is empty.
    """

    def __init__(self, shapes: Sequence[Shape]):
        self.shapes = _shapes(shapes, "CSGIntersection: shapes")
        self._set_parts(self.shapes, [1.0] * len(self.shapes))
        self._check_not_empty()

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        boxes = [s.bounds for s in self.shapes]
        return np.max([lo for lo, _ in boxes], axis=0), np.min([hi for _, hi in boxes], axis=0)

    def distance(self, points: np.ndarray) -> np.ndarray:
        return np.max([s.distance(points) for s in self.shapes], axis=0)

    def _fields(self) -> dict[str, Any]:
        return {"shapes": list(self.shapes)}


class CSGDifference(_Composite):
    """``base`` with the shapes in ``subtract`` removed, ``d = max(d_base, -d_1, ..., -d_m)``.

    The closed set keeps the boundaries of the holes; on them the outward normal is
    the hole's normal reversed.

    Args:
        base: the shape to cut from.
        subtract: one shape or a list of them (built, or configs with ``_target_``).

    Raises:
        ValueError: if nothing is left.

    Examples:
        >>> from lightning_pinn.geometry.shapes import Disk, Rectangle
        >>> plate = CSGDifference(Rectangle([0, 0], [1, 1]), [Disk([0.5, 0.5], 0.25)])
        >>> plate.contains([[0.5, 0.5], [0.1, 0.1]])
        array([False,  True])
    """

    def __init__(self, base: Shape, subtract: Shape | Sequence[Shape]):
        self.base = _shape(base, "CSGDifference: base")
        many = _is_list(subtract) and not isinstance(subtract, Mapping)
        self.subtract = _shapes(subtract if many else [subtract], "CSGDifference: subtract")
        self._set_parts([self.base, *self.subtract], [1.0] + [-1.0] * len(self.subtract))
        self._check_not_empty()

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.base.bounds

    def distance(self, points: np.ndarray) -> np.ndarray:
        return np.max([self.base.distance(points), *(-s.distance(points) for s in self.subtract)], axis=0)

    def _fields(self) -> dict[str, Any]:
        return {"base": self.base, "subtract": list(self.subtract)}


def _is_list(value: Any) -> bool:
    return not isinstance(value, (str, bytes)) and hasattr(value, "__iter__") and hasattr(value, "__len__")


def _shapes(values: Any, where: str) -> list[Shape]:
    if isinstance(values, (Shape, Mapping)) or not _is_list(values):
        raise ConfigError(f"{where}: expected a list of shapes but got {values!r}")
    out = [_shape(v, f"{where}[{k}]") for k, v in enumerate(values)]
    if not out:
        raise ConfigError(f"{where}: expected at least one shape but got an empty list")
    return out


def _shape(value: Any, where: str) -> Shape:
    """A shape, or one built from a config mapping with ``_target_`` (allowed targets only)."""
    if isinstance(value, Mapping) and "_target_" in value:
        from lightning_pinn.config import build

        value = build(value, where)
    if not isinstance(value, Shape):
        raise ConfigError(f"{where}: expected a shape but got {value!r}")
    return value
