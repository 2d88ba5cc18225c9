"""Steady lid-driven cavity flow: Ghia et al.'s Re = 100 centerline table and a local solver."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.interpolate import RectBivariateSpline
from scipy.sparse.linalg import splu, spsolve

from lightning_pinn.errors import ConfigError
from lightning_pinn.references.formula import initial_function

ArrayFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class CenterlineTable(NamedTuple):
    """Velocity along the two centerlines of the unit cavity, stations in ascending order.

    ``u[k] = u(0.5, y[k])`` on the vertical centerline and ``v[k] = v(x[k], 0.5)`` on the
    horizontal one, for the lid ``u(x, 1) = 1`` and Reynolds number ``re``.
    """

    re: float
    y: np.ndarray
    u: np.ndarray
    x: np.ndarray
    v: np.ndarray
    source: str


def _frozen(values: list[float]) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


GHIA_RE100 = CenterlineTable(
    re=100.0,
    y=_frozen([0.0000, 0.0547, 0.0625, 0.0703, 0.1016, 0.1719, 0.2813, 0.4531, 0.5000,
               0.6172, 0.7344, 0.8516, 0.9531, 0.9609, 0.9688, 0.9766, 1.0000]),
    u=_frozen([0.00000, -0.03717, -0.04192, -0.04775, -0.06434, -0.10150, -0.15662, -0.21090,
               -0.20581, -0.13641, 0.00332, 0.23151, 0.68717, 0.73722, 0.78871, 0.84123, 1.00000]),
    x=_frozen([0.0000, 0.0625, 0.0703, 0.0781, 0.0938, 0.1563, 0.2266, 0.2344, 0.5000,
               0.8047, 0.8594, 0.9063, 0.9453, 0.9531, 0.9609, 0.9688, 1.0000]),
    v=_frozen([0.00000, 0.09233, 0.10091, 0.10890, 0.12317, 0.16077, 0.17507, 0.17527, 0.05454,
               -0.24533, -0.22445, -0.16914, -0.10313, -0.08864, -0.07391, -0.05906, 0.00000]),
    source="U. Ghia, K. N. Ghia, C. T. Shin, High-Re solutions for incompressible flow using the "
           "Navier-Stokes equations and a multigrid method, J. Comput. Phys. 48 (1982) 387-411, "
           "Tables I and II, Re = 100",
)
"""Ghia, Ghia & Shin (1982), Re = 100: ``u`` on ``x = 0.5`` (Table I), ``v`` on ``y = 0.5`` (Table II).

Their 17 stations per line are nodes of a uniform 129 x 129 grid, printed to four decimals
(``0.9766`` is ``125/128``). The table is a 1982 computation, not exact: grid-converged
solutions (e.g. Marchi, Suero & Araki, J. Braz. Soc. Mech. Sci. Eng. 31 (2009), on 1024^2)
have ``min v = -0.2538`` against Ghia's ``-0.24533``, a difference of 2% of the range of ``v``,
and ``min u = -0.2140`` against ``-0.21090``.
"""


def centerline_error(u_fn: ArrayFn, v_fn: ArrayFn, table: CenterlineTable = GHIA_RE100) -> dict[str, float]:
    r"""Largest deviation from a centerline table, relative to the table's range of each component.

    .. math::
        e_u = \frac{\max_k |u_{fn}(0.5, y_k) - u_k|}{\max_k u_k - \min_k u_k}, \qquad
        e_v = \frac{\max_k |v_{fn}(x_k, 0.5) - v_k|}{\max_k v_k - \min_k v_k}.

    Args:
        u_fn: ``u_fn(x, y)`` returns ``u`` at matching float64 arrays of points.
        v_fn: ``v_fn(x, y)`` returns ``v`` likewise.
        table: the stations and values to compare with; Ghia et al. at Re = 100 by default.

    Returns:
        ``{"u": e_u, "v": e_v, "u_abs": ..., "v_abs": ...}``: the relative errors above and the
        largest absolute errors they are made of.

    Examples:
        >>> exact = centerline_error(lambda x, y: np.interp(y, GHIA_RE100.y, GHIA_RE100.u),
        ...                          lambda x, y: np.interp(x, GHIA_RE100.x, GHIA_RE100.v))
        >>> exact["u"], exact["v"]
        (0.0, 0.0)
    """
    u = np.asarray(u_fn(np.full_like(table.y, 0.5), table.y.copy()), dtype=np.float64).reshape(-1)
    v = np.asarray(v_fn(table.x.copy(), np.full_like(table.x, 0.5)), dtype=np.float64).reshape(-1)
    if u.shape != table.y.shape or v.shape != table.x.shape:
        raise ConfigError(f"Expected u_fn and v_fn to return one value per station ({table.y.size}) "
                         f"but got shapes {u.shape} and {v.shape}")
    u_abs = float(np.max(np.abs(u - table.u)))
    v_abs = float(np.max(np.abs(v - table.v)))
    return {"u": u_abs / float(np.ptp(table.u)), "v": v_abs / float(np.ptp(table.v)),
            "u_abs": u_abs, "v_abs": v_abs}


MAX_CELL_REYNOLDS = 8.0
"""Largest ``re / n``, the cell Reynolds number at the lid speed, accepted by :class:`LidDrivenCavity`.

At this limit (Re = 1000 on the default grid) the centerline extrema are within about 2% of the
velocity range of grid-converged values; at Re = 100 on the default grid, within 0.3%.
"""

MAX_REYNOLDS = 8000.0
"""Above about this Re the steady flow loses stability (Hopf bifurcation near Re = 8000)."""

_SCHEME_VERSION = 1  # bump when the discretisation changes, so stale cache files are ignored
_FIELDS = ("psi", "omega", "u", "v", "p")


class LidDrivenCavity:
    r"""Steady incompressible flow in the unit square driven by the lid ``u(x, 1) = U(x)``, ``U = 1`` by default.

    .. math::
        (\mathbf u \cdot \nabla) \mathbf u + \nabla p = \tfrac{1}{Re} \Delta \mathbf u, \qquad
        \nabla \cdot \mathbf u = 0, \qquad \mathbf u = (U(x), 0) \text{ on } y = 1, \;
        \mathbf u = 0 \text{ on the other walls}.

    Solved in stream function-vorticity form, ``u = psi_y``, ``v = -psi_x``,
    ``omega = v_x - u_y``:

    .. math::
        \Delta \psi = -\omega, \qquad
        \psi_y \omega_x - \psi_x \omega_y = \tfrac{1}{Re} \Delta \omega, \qquad \psi = 0 \text{ on walls},

    with second-order central differences on the ``(n + 1) x (n + 1)`` uniform grid and
    Thom's wall vorticity ``omega_w = -2 psi_1 / h^2 - 2 U / h`` (``psi_1`` one node inside,
    ``U`` the wall's tangential speed). The coupled nonlinear system is solved by Newton's
    method with a sparse LU factorisation, continued in Re in factors of 2 above Re = 100.
    The default grid puts nodes on Ghia et al.'s stations (``j / 128``).

    The pressure (density 1, lid speed 1) is fixed by ``p(0, 0) = 0`` and comes from the
    momentum equation in rotational form,

    .. math::
        \nabla \big(p + \tfrac12 |\mathbf u|^2\big)
            = \big(\omega v - \tfrac{1}{Re} \omega_y, \; -\omega u + \tfrac{1}{Re} \omega_x\big),

    as the least-squares potential of the right-hand side over the grid edges. With the default
    lid it is singular (like ``1 / r``) at the two lid corners, where the velocity jumps; near
    them its grid values depend on ``n`` and are no converged reference.

    Fields between nodes are bicubic spline interpolants of the grid values. The solved grid is
    cached as ``$LIGHTNING_PINN_CACHE/references/LidDrivenCavity-<hash>.npz`` (default cache
    ``~/.cache/lightning_pinn``), keyed by ``re``, ``n``, ``lid`` and the scheme.

    Args:
        re: Reynolds number ``U L / nu``, in ``(0, 8000]``.
        n: grid intervals per side, at least 8 and at least ``re / 8`` (cell Reynolds
            number ``re / n <= 8``, see :data:`MAX_CELL_REYNOLDS`). The default 128 solves
            Re = 100 in about 2 s (Re = 1000 in about 10 s); the cost grows like ``n^3``.
        cache: read and write the solved grid in the cache directory.
        lid: the lid velocity ``U(x)`` as an expression in ``x`` (the config expression
            language), e.g. ``"1 - cosh(50*(x - 0.5))/cosh(25)"``, which is 1 away from the
            corners and falls to 0 at them, so the velocity has no jump. The default ``"1"`` is
            the classical lid of Ghia et al., with jumps at the two top corners.

    Raises:
        ValueError: for ``re`` out of range, a grid too coarse for ``re``, a ``lid`` outside the
            expression language or not finite on the lid, or a solve that does not converge to
            finite values; the message names the argument to change.

    Examples:
        >>> ref = LidDrivenCavity(re=100.0, n=32, cache=False)
        >>> sorted(ref(x=np.array([0.5]), y=np.array([1.0])))
        ['p', 'u', 'v']
        >>> round(float(ref(x=np.array([0.5]), y=np.array([1.0]))["u"][0]), 12)
        1.0
    """

    def __init__(self, re: float = 100.0, n: int = 128, cache: bool = True, lid: str = "1") -> None:
        self.re, self.n, self.cache = _check_inputs(re, n), int(n), bool(cache)
        self.lid = str(lid).strip()
        lid_velocity = initial_function(self.lid, key="lid")  # checked before any solve
        self.x = self.y = np.linspace(0.0, 1.0, self.n + 1)
        fields = self._load() if self.cache else None
        if fields is None:
            fields = solve_cavity(self.re, self.n, lid=lid_velocity)
            if self.cache:
                self._save(fields)
        self.psi, self.omega, self.u, self.v, self.p = (fields[name] for name in _FIELDS)
        self._splines = {name: RectBivariateSpline(self.x, self.y, fields[name], kx=3, ky=3, s=0)
                         for name in ("u", "v", "p")}

    def to_config(self) -> dict:
        """A config that rebuilds this reference with ``hydra.utils.instantiate``."""
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}", "re": self.re,
                "n": self.n, "cache": self.cache, "lid": self.lid}

    def __call__(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """``{"u", "v", "p"}`` at matching arrays of ``x`` and ``y`` in ``[0, 1]``, in float64."""
        x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        if x.size and not (np.all((x >= 0) & (x <= 1)) and np.all((y >= 0) & (y <= 1))):
            raise ConfigError("LidDrivenCavity is defined on the unit square: expected x and y in [0, 1]")
        return {name: spline.ev(x.ravel(), y.ravel()).reshape(x.shape)
                for name, spline in self._splines.items()}

    @property
    def cache_path(self) -> Path:
        """Where the solved grid is cached: ``<cache>/references/LidDrivenCavity-<hash>.npz``."""
        key = json.dumps({"re": self.re, "n": self.n, "lid": self.lid, "scheme": _SCHEME_VERSION}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        root = Path(os.environ.get("LIGHTNING_PINN_CACHE", Path.home() / ".cache" / "lightning_pinn"))
        return root / "references" / f"{type(self).__name__}-{digest}.npz"

    def _load(self) -> dict[str, np.ndarray] | None:
        shape = (self.n + 1, self.n + 1)
        try:
            with np.load(self.cache_path) as data:
                if float(data["re"]) != self.re or int(data["n"]) != self.n or str(data["lid"]) != self.lid:
                    return None
                fields = {name: np.array(data[name]) for name in _FIELDS}
        except (OSError, KeyError, ValueError):
            return None
        ok = all(a.shape == shape and np.all(np.isfinite(a)) for a in fields.values())
        return fields if ok else None

    def _save(self, fields: dict[str, np.ndarray]) -> None:
        path = self.cache_path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, re=self.re, n=self.n, lid=self.lid, **fields)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _check_inputs(re: float, n: int) -> float:
    try:
        integral = not isinstance(n, bool) and int(n) == n
    except (TypeError, ValueError, OverflowError):
        integral = False
    if not integral or n < 8:
        raise ConfigError(f"n: expected an integer >= 8 but got {n!r}")
    re = float(re)
    if not (np.isfinite(re) and 0 < re <= MAX_REYNOLDS):
        raise ConfigError(f"re: expected a Reynolds number in (0, {MAX_REYNOLDS:g}] but got {re!r}: above about Re = 8000 "
                         "the steady cavity flow is unstable, so no steady reference exists")
    if re / n > MAX_CELL_REYNOLDS:
        raise ConfigError(f"n={n} is too coarse for re={re:g}: the cell Reynolds number re/n = {re / n:.3g} "
                         f"exceeds {MAX_CELL_REYNOLDS:g}; use n >= {int(np.ceil(re / MAX_CELL_REYNOLDS))}")
    return re


def solve_cavity(re: float, n: int, tol: float = 1e-10, max_iter: int = 25,
                 lid: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Grid fields ``psi, omega, u, v, p`` (shape ``(n + 1, n + 1)``, index ``[i, j]`` at ``(x_i, y_j)``).

    The discretisation is the one described in :class:`LidDrivenCavity`; ``tol`` bounds the
    last Newton step relative to ``max |psi, omega|``. ``lid`` maps the lid's ``x`` to its
    velocity ``U(x)``; ``None`` is ``U = 1``.
    """
    h, m = 1.0 / n, n + 1
    x_lid = np.linspace(0.0, 1.0, m)[1:-1]
    lid_velocity = np.ones_like(x_lid) if lid is None else np.asarray(lid(x_lid), dtype=np.float64)
    if lid_velocity.shape != x_lid.shape or not np.all(np.isfinite(lid_velocity)):
        raise ConfigError("lid: the lid velocity must be finite at every x in (0, 1)")
    grid = _Grid(n, lid_velocity)
    z = np.zeros(2 * m * m)
    steps = [re] if re <= 100 else [*100.0 * 2.0 ** np.arange(int(np.ceil(np.log2(re / 100)))), re]
    for step_re in steps:
        z = _newton(grid, 1.0 / step_re, z, tol, max_iter, re, n)
    psi, omega = z[: m * m].reshape(m, m), z[m * m:].reshape(m, m)

    u, v = np.zeros((m, m)), np.zeros((m, m))
    u[1:-1, 1:-1] = (psi[1:-1, 2:] - psi[1:-1, :-2]) / (2 * h)
    v[1:-1, 1:-1] = -(psi[2:, 1:-1] - psi[:-2, 1:-1]) / (2 * h)
    u[1:-1, -1] = lid_velocity  # the lid; its two end nodes belong to the resting side walls
    p = _pressure(h, u, v, omega, 1.0 / re)
    fields = {"psi": psi, "omega": omega, "u": u, "v": v, "p": p}
    if not all(np.all(np.isfinite(a)) for a in fields.values()):
        raise ConfigError(f"LidDrivenCavity(re={re:g}, n={n}) produced non-finite values; increase n")
    return fields


class _Grid:
    """Sparse central-difference operators on the ``(n + 1)^2`` nodes, flattened C-order ``(i, j)``."""

    def __init__(self, n: int, lid_velocity: np.ndarray) -> None:
        h, m = 1.0 / n, n + 1
        ones, eye = np.ones(m), sp.identity(m, format="csr")
        d1 = sp.diags([-ones[:-1], ones[:-1]], [-1, 1], shape=(m, m)) / (2 * h)
        d2 = sp.diags([ones[:-1], -2 * ones, ones[:-1]], [-1, 0, 1], shape=(m, m)) / h**2
        self.n, self.h, self.m = n, h, m
        self.dx, self.dy = sp.kron(d1, eye, format="csr"), sp.kron(eye, d1, format="csr")
        self.dxx, self.dyy = sp.kron(d2, eye, format="csr"), sp.kron(eye, d2, format="csr")
        self.dxy = (self.dx @ self.dy).tocsr()
        self.lap = (self.dxx + self.dyy).tocsr()
        index = np.arange(m * m).reshape(m, m)
        interior = np.zeros((m, m), dtype=bool)
        interior[1:-1, 1:-1] = True
        self.interior = interior.ravel()
        # Thom: omega_w + 2 psi_1 / h^2 = -2 U / h, for every wall node except the corners
        walls = [(index[0, 1:-1], index[1, 1:-1]), (index[-1, 1:-1], index[-2, 1:-1]),
                 (index[1:-1, 0], index[1:-1, 1]), (index[1:-1, -1], index[1:-1, -2])]
        rows = np.concatenate([w for w, _ in walls])
        cols = np.concatenate([inner for _, inner in walls])
        self.thom = sp.csr_matrix((np.full(rows.size, 2 / h**2), (rows, cols)), shape=(m * m, m * m))
        self.lid = np.zeros(m * m)
        self.lid[index[1:-1, -1]] = -2.0 * lid_velocity / h
        self.is_wall = np.zeros(m * m, dtype=bool)
        self.is_wall[rows] = True


def _newton(g: _Grid, nu: float, z: np.ndarray, tol: float, max_iter: int, re: float, n: int) -> np.ndarray:
    N = g.m * g.m
    inner, boundary = sp.diags(g.interior.astype(float)), sp.diags((~g.interior).astype(float))
    j11 = (inner @ g.lap + boundary).tocsr()
    lu, last = None, np.inf
    for _ in range(max_iter):
        psi, omega = z[:N], z[N:]
        psi_x, psi_y, omega_x, omega_y = g.dx @ psi, g.dy @ psi, g.dx @ omega, g.dy @ omega
        stream = np.where(g.interior, g.lap @ psi + omega, psi)
        transport = psi_y * omega_x - psi_x * omega_y - nu * (g.lap @ omega)
        wall = omega + np.where(g.is_wall, g.thom @ psi - g.lid, 0.0)
        residual = np.concatenate([stream, np.where(g.interior, transport, wall)])
        if lu is None or last > 1e-4:  # near the root, reuse the factors (chord steps)
            j21 = inner @ (sp.diags(omega_x) @ g.dy - sp.diags(omega_y) @ g.dx) + g.thom
            j22 = inner @ (sp.diags(psi_y) @ g.dx - sp.diags(psi_x) @ g.dy - nu * g.lap) + boundary
            try:
                lu = splu(sp.bmat([[j11, inner], [j21, j22]], format="csc"))
            except RuntimeError:  # exactly singular Jacobian
                break
        step = lu.solve(residual)
        if not np.all(np.isfinite(step)):
            break
        z = z - step
        last = np.max(np.abs(step)) / max(1.0, np.max(np.abs(z)))
        if last <= tol:
            return z
    raise ConfigError(f"LidDrivenCavity(re={re:g}, n={n}): Newton's method did not converge at "
                     f"Re = {1 / nu:g} within {max_iter} iterations; increase n")


def _pressure(h: float, u: np.ndarray, v: np.ndarray, omega: np.ndarray, nu: float) -> np.ndarray:
    r"""Pressure as the least-squares potential of the momentum balance, pinned by ``p(0, 0) = 0``.

    In rotational form the steady momentum equation says that ``B = p + |u|^2 / 2`` has the
    gradient ``F = (omega v - nu omega_y, -omega u + nu omega_x)``. ``B`` minimises
    ``sum_edges (dB/h - F_mid)^2`` over the grid edges, ``F_mid`` the mean of ``F`` at the edge's
    two nodes: a Neumann-Poisson problem that is always consistent, so the singular lid corners
    only disturb their neighbourhood.
    """
    m = u.shape[0]
    omega_x, omega_y = np.gradient(omega, h, edge_order=2)
    fx, fy = omega * v - nu * omega_y, -omega * u + nu * omega_x
    index = np.arange(m * m).reshape(m, m)
    tail = np.concatenate([index[:-1, :].ravel(), index[:, :-1].ravel()])
    head = np.concatenate([index[1:, :].ravel(), index[:, 1:].ravel()])
    target = h * np.concatenate([(fx[:-1, :] + fx[1:, :]).ravel(), (fy[:, :-1] + fy[:, 1:]).ravel()]) / 2
    edges = np.arange(tail.size)
    diff = sp.csr_matrix((np.concatenate([np.ones(tail.size), -np.ones(tail.size)]),
                          (np.concatenate([edges, edges]), np.concatenate([head, tail]))),
                         shape=(tail.size, m * m))
    pin = sp.csr_matrix(([1.0], ([0], [0])), shape=(1, m * m))
    system = sp.bmat([[diff.T @ diff, pin.T], [pin, None]], format="csc")
    bernoulli = spsolve(system, np.concatenate([diff.T @ target, [0.0]]))[:-1].reshape(m, m)
    p = bernoulli - 0.5 * (u**2 + v**2)
    return p - p[0, 0]


__all__ = ["GHIA_RE100", "CenterlineTable", "LidDrivenCavity", "centerline_error", "solve_cavity"]
