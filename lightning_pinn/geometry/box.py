"""An n-dimensional box (space, or space x time), its faces, and points drawn on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from lightning_pinn.errors import ConfigError


@dataclass(frozen=True)
class Region:
    """A part of a box where points are drawn: the interior, or a face with one coordinate fixed.

    Attributes:
        lo, hi: the box's lower and upper corners.
        fixed: ``(column, value)`` for a face, ``None`` for the interior.
        label: how a config writes it, e.g. ``"t=0"`` or ``"interior"``.
    """

    lo: tuple[float, ...]
    hi: tuple[float, ...]
    fixed: tuple[int, float] | None
    label: str

    @property
    def free_dims(self) -> int:
        """Number of coordinates that vary on the region."""
        return len(self.lo) - (self.fixed is not None)

    @property
    def measure(self) -> float:
        """Length, area or volume of the region (over its free coordinates)."""
        sides = [h - l for k, (l, h) in enumerate(zip(self.lo, self.hi)) if not self.fixed or k != self.fixed[0]]
        return float(np.prod(sides)) if sides else 1.0

    @property
    def sampler_dims(self) -> list[int]:
        """Dimensions of the unit-cube streams a draw needs: the free coordinates (none for a point)."""
        return [self.free_dims] if self.free_dims else []

    @property
    def has_normals(self) -> bool:
        """Faces have an outward normal; the interior has none."""
        return self.fixed is not None

    @property
    def normal(self) -> np.ndarray | None:
        """The outward unit normal of a face (``-e_k`` on a lower face, ``+e_k`` on an upper one); None inside."""
        if self.fixed is None:
            return None
        column, value = self.fixed
        normal = np.zeros(len(self.lo))
        normal[column] = 1.0 if value == self.hi[column] and value != self.lo[column] else -1.0
        return normal

    def sample(self, count: int, streams: list) -> tuple[np.ndarray, np.ndarray | None]:
        """``count`` points ``(count, dims)`` from the unit-cube ``streams`` and their normals (None inside).

        A region with no free coordinate (a face of a 1-D box) is a single point.
        """
        unit = streams[0].sample(count) if streams else np.zeros((1, 0))
        points = self.map_unit(unit)
        normal = self.normal
        return points, None if normal is None else np.broadcast_to(normal, points.shape).copy()

    def map_unit(self, unit: np.ndarray) -> np.ndarray:
        """Map points of the unit cube ``(n, free_dims)`` onto the region ``(n, dims)``."""
        lo, hi = np.asarray(self.lo), np.asarray(self.hi)
        if self.fixed is None:
            return lo + unit * (hi - lo)
        column, value = self.fixed
        free = [k for k in range(len(lo)) if k != column]
        out = np.empty((unit.shape[0], len(lo)))
        out[:, free] = lo[free] + unit * (hi[free] - lo[free])
        out[:, column] = value
        return out


class Box:
    """An axis-aligned box given by named bounds, optionally with one coordinate being time.

    Args:
        bounds: ``{name: (lo, hi)}`` in coordinate order, e.g. ``{"x": (-1, 1), "t": (0, 1)}``.
        time: the name of the time coordinate, if any; ``"boundary"`` then means
            the faces of the other (spatial) coordinates only.

    Regions are named by strings: ``"interior"``, ``"boundary"`` (every spatial
    face), or a face ``"<coord>=<lo or hi>"`` such as ``"t=0"`` or ``"x=-1"``.
    """

    def __init__(self, bounds: Mapping[str, Sequence[float]], time: str | None = None):
        self.names = tuple(bounds)
        if not self.names:
            raise ConfigError("coords: at least one coordinate with bounds is needed")
        lo, hi = [], []
        for name, pair in bounds.items():
            if len(pair) != 2:
                raise ConfigError(f"coords.{name}: expected bounds [lo, hi] but got {list(pair)}")
            low, high = float(pair[0]), float(pair[1])
            if not (np.isfinite(low) and np.isfinite(high) and low < high):
                raise ConfigError(f"coords.{name}: expected finite bounds with lo < hi but got [{pair[0]}, {pair[1]}]")
            lo.append(low)
            hi.append(high)
        if time is not None and time not in self.names:
            raise ConfigError(f"time: {time!r} is not a coordinate; coordinates are {list(self.names)}")
        self.lo, self.hi, self.time = tuple(lo), tuple(hi), time

    @property
    def faces(self) -> list[str]:
        """Every face label of the box, e.g. ``["x=-1", "x=1", "t=0", "t=1"]``."""
        return [f"{name}={_fmt(v)}" for k, name in enumerate(self.names) for v in (self.lo[k], self.hi[k])]

    def regions(self, spec: str | Sequence[str], key: str = "region") -> list[Region]:
        """Resolve a region spec (a string or a list of them) into regions; errors name ``key``."""
        specs = [spec] if isinstance(spec, str) else list(spec)
        if not specs:
            raise ConfigError(f"{key}: expected a region but got an empty list")
        out: list[Region] = []
        for item in specs:
            out += self._resolve(str(item).strip(), key)
        return out

    def _resolve(self, spec: str, key: str) -> list[Region]:
        if spec == "interior":
            return [Region(self.lo, self.hi, None, "interior")]
        if spec == "boundary":
            spatial = [k for k, name in enumerate(self.names) if name != self.time]
            if not spatial:
                raise ConfigError(f"{key}: 'boundary' needs a spatial coordinate, but the only one is time {self.time!r}")
            return [self.face(k, side) for k in spatial for side in (0, 1)]
        if "=" in spec:
            name, _, value = (part.strip() for part in spec.partition("="))
            if name in self.names:
                k = self.names.index(name)
                try:
                    number = float(value)
                except ValueError:
                    number = None
                for side, bound in enumerate((self.lo[k], self.hi[k])):
                    if number is not None and np.isclose(number, bound, rtol=1e-12, atol=1e-12):
                        return [self.face(k, side)]
        raise ConfigError(
            f"{key}: {spec!r} is not a region of this box; use 'interior', 'boundary' or a face among {self.faces}"
        )

    def face(self, k: int, side: int) -> Region:
        """The face of coordinate ``k`` at its lower (``side=0``) or upper (``side=1``) bound."""
        value = (self.lo, self.hi)[side][k]
        return Region(self.lo, self.hi, (k, value), f"{self.names[k]}={_fmt(value)}")


def _fmt(value: float) -> str:
    return f"{value:g}"
