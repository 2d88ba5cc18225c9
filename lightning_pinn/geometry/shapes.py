"""Spatial shapes: rectangles, balls and polygons, with signed distances and point samplers.

A shape is a closed set ``Omega`` in ``dim`` dimensions. It knows its signed
distance ``d(x)`` (negative inside, zero on the boundary, positive outside), its
bounding box, its measure (area or volume) and boundary measure (perimeter or
surface area), and it maps points of the unit cube ``[0, 1)^dim`` onto its
interior and onto its boundary, with outward unit normals there.

Sampling takes ``draw``, a callable ``draw(m) -> (m, dim)`` float64 array of
points of the unit cube from a (quasi-)random stream, e.g.
``Sampler(dim, "sobol", seed).sample``; the points returned are a deterministic
function of that stream. Shapes combine into unions, intersections and
differences (:mod:`lightning_pinn.geometry.csg`), also written ``a | b``,
``a & b`` and ``a - b``.

Everything here is float64 numpy; constructors take plain lists, the way YAML
hands them over, and :meth:`Shape.config` gives a dict that
``hydra.utils.instantiate`` turns back into the shape.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import norm

from lightning_pinn.errors import ConfigError

Draw = Callable[[int], np.ndarray]
"""``draw(m)``: ``m`` points of the unit cube ``[0, 1)^dim`` as a float64 array ``(m, dim)``."""

TOL = 1e-9
"""Default tolerance of :meth:`Shape.contains` and :meth:`Shape.on_boundary`."""

_MAX_ROUNDS = 64
_MAX_BATCH = 1 << 20
_MIN_RATE = 1e-3


class Shape(abc.ABC):
    """A closed spatial domain in ``dim`` dimensions, described by its signed distance.

    Subclasses give :attr:`bounds`, :meth:`distance`, :attr:`measure`,
    :attr:`boundary_measure`, :meth:`sample_boundary` and the constructor fields
    (:meth:`_fields`); interior sampling defaults to rejection from the bounding box.
    """

    dim: int

    @property
    @abc.abstractmethod
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The bounding box ``(lo, hi)``, two float64 arrays of shape ``(dim,)``."""

    @abc.abstractmethod
    def distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance ``d(x)`` of points ``(n, dim)`` to the boundary: negative inside, ``(n,)``."""

    @property
    @abc.abstractmethod
    def measure(self) -> float:
        """Length, area or volume of the shape."""

    @property
    @abc.abstractmethod
    def boundary_measure(self) -> float:
        """Measure of the boundary: perimeter or surface area (in 1D the number of end points)."""

    @abc.abstractmethod
    def sample_boundary(self, n: int, draw: Draw) -> tuple[np.ndarray, np.ndarray]:
        """``n`` boundary points and their outward unit normals, both ``(n, dim)``, from the stream ``draw``."""

    @abc.abstractmethod
    def _fields(self) -> dict[str, Any]:
        """The constructor arguments, as plain values or shapes."""

    def contains(self, points: np.ndarray, tol: float = TOL) -> np.ndarray:
        """Whether each point lies in the closed shape, ``d(x) <= tol``: a bool array ``(n,)``."""
        return self.distance(points) <= tol

    def on_boundary(self, points: np.ndarray, tol: float = TOL) -> np.ndarray:
        """Whether each point lies on the boundary, ``|d(x)| <= tol``: a bool array ``(n,)``."""
        return np.abs(self.distance(points)) <= tol

    def sample_interior(self, n: int, draw: Draw) -> np.ndarray:
        """``n`` points strictly inside (``d(x) < 0``), ``(n, dim)``, from the stream ``draw``.

        This default draws the bounding box in batches and keeps the points inside,
        in stream order, until ``n`` are found.

        Raises:
            RuntimeError: if the shape fills so little of its box that too few points are accepted.
        """
        n = _count(n)
        lo, hi = self.bounds
        rate = self.measure / float(np.prod(hi - lo))

        def propose(m: int) -> tuple[np.ndarray, ...]:
            points = lo + _draw(draw, m, self.dim) * (hi - lo)
            return (points[self.distance(points) < 0],)

        return _collect(n, rate, propose, self, "interior points", shuffle_tail=False)[0]

    @property
    def diameter(self) -> float:
        """Length of the bounding box's diagonal."""
        lo, hi = self.bounds
        return float(np.linalg.norm(hi - lo))

    def to_config(self) -> dict[str, Any]:
        """A plain dict ``{"_target_": ..., **fields}`` that ``hydra.utils.instantiate`` rebuilds the shape from."""
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}", **_plain(self._fields())}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={_short(value)}" for key, value in self._fields().items())
        return f"{type(self).__name__}({args})"

    def __or__(self, other: Shape) -> Shape:
        """``a | b``: the :class:`~lightning_pinn.geometry.csg.CSGUnion` (unions are flattened)."""
        from lightning_pinn.geometry.csg import CSGUnion

        if not isinstance(other, Shape):
            return NotImplemented
        return CSGUnion([s for x in (self, other) for s in (x.shapes if isinstance(x, CSGUnion) else [x])])

    def __and__(self, other: Shape) -> Shape:
        """``a & b``: the :class:`~lightning_pinn.geometry.csg.CSGIntersection` (intersections are flattened)."""
        from lightning_pinn.geometry.csg import CSGIntersection

        if not isinstance(other, Shape):
            return NotImplemented
        return CSGIntersection([s for x in (self, other) for s in (x.shapes if isinstance(x, CSGIntersection) else [x])])

    def __sub__(self, other: Shape) -> Shape:
        """``a - b``: the :class:`~lightning_pinn.geometry.csg.CSGDifference`; ``(a - b) - c`` is ``a - [b, c]``."""
        from lightning_pinn.geometry.csg import CSGDifference

        if not isinstance(other, Shape):
            return NotImplemented
        if isinstance(self, CSGDifference):
            return CSGDifference(self.base, [*self.subtract, other])
        return CSGDifference(self, other)


class Rectangle(Shape):
    """The axis-aligned box ``[lo_1, hi_1] x ... x [lo_dim, hi_dim]`` in any dimension (an interval in 1D).

    Args:
        lo, hi: lower and upper corners, with ``lo < hi`` on every axis.

    The boundary is sampled face by face: column 0 of the stream picks a face with
    probability proportional to its measure, the other columns place the point on it.

    Examples:
        >>> Rectangle([0, 0], [2, 1]).measure, Rectangle([0, 0], [2, 1]).boundary_measure
        (2.0, 6.0)
    """

    def __init__(self, lo: Sequence[float], hi: Sequence[float]):
        low, high = _vector(lo, "Rectangle: lo"), _vector(hi, "Rectangle: hi")
        if low.shape != high.shape:
            raise ConfigError(f"Rectangle: lo={low.tolist()} and hi={high.tolist()} have different lengths")
        bad = np.flatnonzero(~(low < high))
        if bad.size:
            k = int(bad[0])
            raise ConfigError(
                f"Rectangle: expected lo < hi on every axis but got lo={low.tolist()}, hi={high.tolist()} "
                f"(axis {k}: {low[k]:g} >= {high[k]:g})"
            )
        self.lo, self.hi, self.dim = low, high, low.size
        side = high - low
        # measure of the face normal to axis k: the product of the other sides (1 in 1D)
        self._face_measure = np.array([np.prod(np.delete(side, k)) for k in range(self.dim)])

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.lo.copy(), self.hi.copy()

    @property
    def measure(self) -> float:
        return float(np.prod(self.hi - self.lo))

    @property
    def boundary_measure(self) -> float:
        return float(2 * self._face_measure.sum())

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Exact signed distance: ``|max(q, 0)| + min(max_k q_k, 0)`` with ``q = |x - c| - (hi - lo)/2``."""
        x = _points(points, self.dim)
        q = np.abs(x - (self.lo + self.hi) / 2) - (self.hi - self.lo) / 2
        return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)

    def sample_interior(self, n: int, draw: Draw) -> np.ndarray:
        """``n`` points ``lo + u (hi - lo)`` from the stream ``draw``, ``(n, dim)``."""
        n = _count(n)
        if n == 0:
            return np.empty((0, self.dim))
        return self.lo + _draw(draw, n, self.dim) * (self.hi - self.lo)

    def sample_boundary(self, n: int, draw: Draw) -> tuple[np.ndarray, np.ndarray]:
        n = _count(n)
        points, normals = np.empty((n, self.dim)), np.zeros((n, self.dim))
        if n == 0:
            return points, normals
        u = _draw(draw, n, self.dim)
        weights = np.repeat(self._face_measure, 2)  # faces (axis 0, lo), (axis 0, hi), (axis 1, lo), ...
        face = np.minimum(np.searchsorted(np.cumsum(weights) / weights.sum(), u[:, 0], side="right"), weights.size - 1)
        axis, upper = face // 2, face % 2 == 1
        side = self.hi - self.lo
        for k in range(self.dim):
            rows = np.flatnonzero(axis == k)
            free = np.delete(np.arange(self.dim), k)
            points[np.ix_(rows, free)] = self.lo[free] + u[rows, 1:] * side[free]
            points[rows, k] = np.where(upper[rows], self.hi[k], self.lo[k])
            normals[rows, k] = np.where(upper[rows], 1.0, -1.0)
        return points, normals

    def _fields(self) -> dict[str, Any]:
        return {"lo": self.lo.tolist(), "hi": self.hi.tolist()}


class Ball(Shape):
    """The closed ball ``|x - centre| <= radius`` in ``dim >= 2`` dimensions.

    Args:
        centre: the centre, of length ``dim``.
        radius: a positive radius.

    Interior points come from maps of the unit cube (2D: ``r = R sqrt(u_0)``,
    ``theta = 2 pi u_1``; 3D: ``r = R u_0^(1/3)``, ``z = 1 - 2 u_1``,
    ``phi = 2 pi u_2``), by rejection from the bounding box in 4D and up. Boundary
    points: 2D ``theta = 2 pi u_0``; else the normalised vector of normal
    quantiles ``Phi^{-1}(u)``, uniform on the sphere.
    """

    def __init__(self, centre: Sequence[float], radius: float):
        name = type(self).__name__
        self.centre = _vector(centre, f"{name}: centre")
        self.dim = self.centre.size
        if self.dim < 2:
            raise ConfigError(
                f"{name}: expected a centre with at least 2 coordinates but got {self.centre.tolist()}; "
                "use Rectangle for an interval"
            )
        try:
            r = float(radius)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a positive radius but got {radius!r}") from None
        if not (np.isfinite(r) and r > 0):
            raise ConfigError(f"{name}: expected a positive radius but got {radius!r}")
        self.radius = r

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.centre - self.radius, self.centre + self.radius

    @property
    def measure(self) -> float:
        d = self.dim
        return float(math.pi ** (d / 2) / math.gamma(d / 2 + 1) * self.radius**d)

    @property
    def boundary_measure(self) -> float:
        return self.dim * self.measure / self.radius

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Exact signed distance ``|x - centre| - radius``."""
        return np.linalg.norm(_points(points, self.dim) - self.centre, axis=1) - self.radius

    def sample_interior(self, n: int, draw: Draw) -> np.ndarray:
        n = _count(n)
        if self.dim > 3:
            return super().sample_interior(n, draw)
        if n == 0:
            return np.empty((0, self.dim))
        u = _draw(draw, n, self.dim)
        if self.dim == 2:
            r, theta = self.radius * np.sqrt(u[:, 0]), 2 * np.pi * u[:, 1]
            return self.centre + r[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        r, z, phi = self.radius * np.cbrt(u[:, 0]), 1 - 2 * u[:, 1], 2 * np.pi * u[:, 2]
        s = np.sqrt(np.maximum(1 - z * z, 0.0))
        return self.centre + r[:, None] * np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)

    def sample_boundary(self, n: int, draw: Draw) -> tuple[np.ndarray, np.ndarray]:
        n = _count(n)
        if n == 0:
            return np.empty((0, self.dim)), np.empty((0, self.dim))
        u = _draw(draw, n, self.dim)
        if self.dim == 2:
            theta = 2 * np.pi * u[:, 0]
            normals = np.stack([np.cos(theta), np.sin(theta)], axis=1)
        else:
            g = norm.ppf(np.clip(u, 1e-300, 1 - 2**-53))
            g[~np.any(g, axis=1), 0] = 1.0  # u = (1/2, ..., 1/2) maps to the origin, which has no direction
            normals = g / np.linalg.norm(g, axis=1, keepdims=True)
        return self.centre + self.radius * normals, normals

    def _fields(self) -> dict[str, Any]:
        return {"centre": self.centre.tolist(), "radius": self.radius}


class Disk(Ball):
    """The closed disk ``|x - centre| <= radius`` in 2D: a :class:`Ball` with a 2D centre."""

    def __init__(self, centre: Sequence[float], radius: float):
        super().__init__(centre, radius)
        if self.dim != 2:
            raise ConfigError(f"Disk: expected a 2D centre but got {self.centre.tolist()}; use Ball in {self.dim}D")


class Polygon(Shape):
    """A simple polygon in 2D, vertices in either orientation, the closing edge implied.

    Args:
        vertices: ``[[x0, y0], [x1, y1], ...]``, at least 3, without repeating the first at the end.

    The signed distance is exact (distance to the nearest edge, negative inside by
    the crossing rule). Boundary points are placed by arc length ``u_0 * perimeter``;
    interior points by rejection from the bounding box.

    Raises:
        ValueError: for fewer than 3 vertices, equal consecutive vertices, zero area,
            or crossing edges.

    Examples:
        >>> Polygon([[0, 0], [2, 0], [0, 1]]).measure
        1.0
    """

    dim = 2

    def __init__(self, vertices: Sequence[Sequence[float]]):
        try:
            v = np.array([[float(c) for c in vertex] for vertex in vertices], dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"Polygon: expected vertices [[x, y], ...] but got {vertices!r}") from None
        if v.ndim != 2 or v.shape[1] != 2 or not np.all(np.isfinite(v)):
            raise ConfigError(f"Polygon: expected finite 2D vertices [[x, y], ...] but got {v.tolist()}")
        if len(v) < 3:
            raise ConfigError(f"Polygon: expected at least 3 vertices but got {len(v)}: {v.tolist()}")
        following = np.roll(v, -1, axis=0)
        same = np.flatnonzero(np.all(v == following, axis=1))
        if same.size:
            i = int(same[0])
            j = (i + 1) % len(v)
            hint = "; do not repeat the first vertex at the end" if j == 0 else ""
            raise ConfigError(f"Polygon: vertices {i} and {j} are equal, {_point(v[i])}{hint}")
        if np.linalg.matrix_rank(v - v[0], tol=1e-12 * np.abs(v - v[0]).max()) < 2:
            raise ConfigError(f"Polygon: the vertices are collinear, so the polygon has zero area: {v.tolist()}")
        _check_simple(v)
        area = 0.5 * float(np.sum(v[:, 0] * following[:, 1] - following[:, 0] * v[:, 1]))
        if abs(area) <= 1e-14 * float(np.ptp(v, axis=0).prod()):
            raise ConfigError(f"Polygon: zero area for vertices {v.tolist()}")
        self.vertices = v
        self._area = abs(area)
        self._start, edge = v, following - v
        self._edge = edge
        self._length = np.linalg.norm(edge, axis=1)
        sign = 1.0 if area > 0 else -1.0  # counter-clockwise: the outside is to the right of each edge
        self._normal = sign * np.stack([edge[:, 1], -edge[:, 0]], axis=1) / self._length[:, None]

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    @property
    def measure(self) -> float:
        """Area by the shoelace formula."""
        return self._area

    @property
    def boundary_measure(self) -> float:
        return float(self._length.sum())

    def distance(self, points: np.ndarray) -> np.ndarray:
        x = _points(points, 2)
        nearest = np.full(len(x), np.inf)
        inside = np.zeros(len(x), dtype=bool)
        for a, e, length in zip(self._start, self._edge, self._length):
            t = np.clip((x - a) @ e / length**2, 0.0, 1.0)
            nearest = np.minimum(nearest, np.linalg.norm(x - a - t[:, None] * e, axis=1))
            # crossing rule: a ray to +x crosses the edge if it spans the point's y, to the right of it
            spans = (a[1] > x[:, 1]) != (a[1] + e[1] > x[:, 1])
            with np.errstate(divide="ignore", invalid="ignore"):
                crossing_x = a[0] + (x[:, 1] - a[1]) * e[0] / e[1]
            inside ^= spans & (x[:, 0] < crossing_x)
        return np.where(inside, -nearest, nearest)

    def sample_boundary(self, n: int, draw: Draw) -> tuple[np.ndarray, np.ndarray]:
        n = _count(n)
        if n == 0:
            return np.empty((0, 2)), np.empty((0, 2))
        s = _draw(draw, n, 2)[:, 0] * self._length.sum()
        ends = np.cumsum(self._length)
        edge = np.minimum(np.searchsorted(ends, s, side="right"), len(ends) - 1)
        t = np.clip((s - (ends[edge] - self._length[edge])) / self._length[edge], 0.0, 1.0)
        return self._start[edge] + t[:, None] * self._edge[edge], self._normal[edge].copy()

    def _fields(self) -> dict[str, Any]:
        return {"vertices": self.vertices.tolist()}


def _check_simple(v: np.ndarray) -> None:
    """Raise if two edges of the closed polygon ``v`` meet anywhere but at their shared vertex."""
    n = len(v)
    a, b = v, np.roll(v, -1, axis=0)
    for i in range(n):
        # the next edge shares vertex i + 1: they overlap only if it folds back along edge i
        j = (i + 1) % n
        if _cross(b[i] - a[i], b[j] - a[j]) == 0 and np.dot(b[i] - a[i], b[j] - a[j]) < 0:
            _raise_crossing(v, i, j)
        others = np.arange(i + 2, n if i > 0 else n - 1)
        if others.size:
            hit = np.flatnonzero(_segments_meet(a[i], b[i], a[others], b[others]))
            if hit.size:
                _raise_crossing(v, i, int(others[hit[0]]))


def _raise_crossing(v: np.ndarray, i: int, j: int) -> None:
    i, j = min(i, j), max(i, j)
    n = len(v)
    raise ConfigError(
        f"polygon is self-intersecting: edge {i} ({_point(v[i])} -> {_point(v[(i + 1) % n])}) "
        f"crosses edge {j} ({_point(v[j])} -> {_point(v[(j + 1) % n])})"
    )


def _cross(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]


def _segments_meet(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Whether segment ``a b`` meets each segment ``c[k] d[k]`` (touching counts)."""
    o1, o2 = _cross(b - a, c - a), _cross(b - a, d - a)
    o3, o4 = _cross(d - c, a - c), _cross(d - c, b - c)
    proper = (o1 * o2 < 0) & (o3 * o4 < 0)

    def within(p, q, r):  # r, known collinear with p q, lies in the box of p q
        return np.all((np.minimum(p, q) <= r) & (r <= np.maximum(p, q)), axis=-1)

    touch = ((o1 == 0) & within(a, b, c)) | ((o2 == 0) & within(a, b, d))
    touch |= ((o3 == 0) & within(c, d, a)) | ((o4 == 0) & within(c, d, b))
    return proper | touch


# ---------------------------------------------------------------------------------------------- helpers


def _vector(value: Any, name: str) -> np.ndarray:
    """A finite float64 vector from a list (or ListConfig), or a ValueError naming ``name``."""
    try:
        out = np.array([float(c) for c in value], dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a list of numbers but got {value!r}") from None
    if out.size == 0 or not np.all(np.isfinite(out)):
        raise ConfigError(f"{name}: expected a non-empty list of finite numbers but got {out.tolist()}")
    return out


def _points(points: np.ndarray, dim: int) -> np.ndarray:
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ConfigError(f"Expected points of shape (n, {dim}) but got {x.shape}")
    return x


def _count(n: int) -> int:
    if int(n) != n or n < 0:
        raise ConfigError(f"Expected a non-negative number of points but got {n!r}")
    return int(n)


def _draw(draw: Draw, m: int, dim: int) -> np.ndarray:
    u = np.asarray(draw(m), dtype=np.float64)
    if u.shape != (m, dim):
        raise ConfigError(f"draw({m}) returned an array of shape {u.shape}, expected ({m}, {dim})")
    return u


def _collect(
    n: int,
    rate: float,
    propose: Callable[[int], tuple[np.ndarray, ...]],
    owner: Shape,
    what: str,
    shuffle_tail: bool,
) -> tuple[np.ndarray, ...]:
    """Call ``propose(m)`` (``m`` candidates in, the accepted arrays out) in batches until ``n`` are accepted.

    ``rate`` is the expected acceptance fraction, which sizes the batches. The
    surplus of the last batch is dropped from its end, or (``shuffle_tail``, when a
    batch is ordered by something other than the stream) at fixed-seed random places.
    """
    parts: list[tuple[np.ndarray, ...]] = []
    got = drawn = 0
    limit = 4 * n / _MIN_RATE + 4096  # a shape filling _MIN_RATE of the proposals needs n / _MIN_RATE of them
    for _ in range(_MAX_ROUNDS):
        if got == n or drawn >= limit:
            break
        m = int(min(_MAX_BATCH, math.ceil((n - got) / max(rate, _MIN_RATE) * 1.2) + 16))
        accepted = propose(m)
        drawn += m
        k = len(accepted[0])
        if k > n - got:
            keep = np.arange(n - got)
            if shuffle_tail:
                keep = np.sort(np.random.default_rng(k).choice(k, n - got, replace=False))
            accepted = tuple(a[keep] for a in accepted)
        parts.append(accepted)
        got += len(accepted[0])
        rate = max(got / drawn, rate / 4)
    if got < n:
        raise RuntimeError(
            f"{owner!r}: accepted only {got} of {n} {what} from {drawn} candidates; sampling needs the shape "
            f"to fill at least about {_MIN_RATE:g} of its bounding box (interior) or of its parts' boundaries"
        )
    if not parts:
        return (np.empty((0, owner.dim)),) * 2
    return tuple(np.concatenate(arrays, axis=0) for arrays in zip(*parts))


def _allocate(n: int, weights: np.ndarray) -> np.ndarray:
    """Split ``n`` into integer counts proportional to ``weights`` (largest remainders first)."""
    shares = n * weights / weights.sum()
    counts = np.floor(shares).astype(int)
    counts[np.argsort(counts - shares, kind="stable")[: n - counts.sum()]] += 1
    return counts


def _plain(value: Any) -> Any:
    if isinstance(value, Shape):
        return value.to_config()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 8 and not isinstance(value[0], Shape):
        return f"[{', '.join(map(repr, value[:3]))}, ... {len(value) - 3} more]"
    return repr(value)


def _point(p: np.ndarray) -> str:
    return f"({', '.join(f'{c:g}' for c in p)})"
