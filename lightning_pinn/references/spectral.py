r"""Periodic 1D references by a Fourier pseudo-spectral method with ETDRK4 time stepping.

Every equation here has the form

.. math::
    \hat v_t = L \hat v + N(\hat v), \qquad N(\hat v) = M \, \mathcal F[g(\mathcal F^{-1} \hat v)],

with ``v`` the field's Fourier coefficients, ``L`` and ``M`` diagonal (functions of the
wavenumber ``k``) and ``g`` pointwise: Allen-Cahn, KdV, Kuramoto-Sivashinsky and the
nonlinear Schrodinger equation. :func:`etdrk4` integrates the linear part exactly and the
nonlinear part with the fourth-order exponential Runge-Kutta scheme of Cox & Matthews,
its coefficients evaluated by contour integrals (Kassam & Trefethen, SIAM J. Sci. Comput.
26, 2005). The nonlinear term is dealiased by the 2/3 rule.

A reference solves once, lazily (on the first call that needs it, or
:meth:`SpectralReference.solve`), stores the Fourier coefficients at ``snapshots`` equally
spaced times, and evaluates at any ``(x, t)`` by exact trigonometric interpolation in ``x``
and cubic Hermite interpolation in ``t`` (the time derivatives come from the equation).
Solved grids are cached on disk under :func:`cache_dir`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import numbers
import os
import uuid
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lightning_pinn.errors import ConfigError
from lightning_pinn.references.formula import initial_function

_FORMAT = 2
"""Version of the cached layout and solver; a change makes old cache files miss."""

_OVERSAMPLE = 16
"""The initial condition's coefficients come from a grid this many times finer, so a kink is truncated, not aliased."""

_RK4_BOUND = 2.8
"""Classical RK4 is stable for ``|dt * lambda| <= 2.8`` along both the imaginary and the negative real axis."""


def cache_dir() -> Path:
    """``$LIGHTNING_PINN_CACHE/references``, by default ``~/.cache/lightning_pinn/references``."""
    root = os.environ.get("LIGHTNING_PINN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lightning_pinn")
    return Path(root) / "references"


def etdrk4_coefficients(lin: np.ndarray, dt: float, contour_points: int = 32) -> tuple[np.ndarray, ...]:
    r"""The ETDRK4 coefficients ``E, E2, Q, f1, f2, f3`` for a diagonal linear operator ``L``.

    With ``z = dt L``:

    .. math::
        E = e^z, \quad E_2 = e^{z/2}, \quad Q = dt \frac{e^{z/2} - 1}{z}, \quad
        f_1 = dt \frac{-4 - z + e^z (4 - 3z + z^2)}{z^3}, \quad
        f_2 = dt \frac{2 + z + e^z (z - 2)}{z^3}, \quad
        f_3 = dt \frac{-4 - 3z - z^2 + e^z (4 - z)}{z^3}.

    The quotients cancel catastrophically for small ``|z|``, so each is the mean of the
    formula over ``contour_points`` points on the unit circle around ``z`` (Cauchy's
    integral formula, Kassam & Trefethen 2005); the full circle makes this right for
    complex ``L`` too.

    Args:
        lin: the diagonal of ``L``, real or complex.
        dt: the time step.
        contour_points: points on the circle; 32 gives full double precision.

    Returns:
        Six complex arrays shaped like ``lin``.
    """
    z = dt * np.asarray(lin, dtype=np.complex128)
    roots = np.exp(2j * np.pi * (np.arange(contour_points) + 0.5) / contour_points)
    lr = z[..., None] + roots
    exp_lr = np.exp(lr)
    cube = lr**3
    q = dt * np.mean((np.exp(lr / 2) - 1) / lr, axis=-1)
    f1 = dt * np.mean((-4 - lr + exp_lr * (4 - 3 * lr + lr**2)) / cube, axis=-1)
    f2 = dt * np.mean((2 + lr + exp_lr * (lr - 2)) / cube, axis=-1)
    f3 = dt * np.mean((-4 - 3 * lr - lr**2 + exp_lr * (4 - lr)) / cube, axis=-1)
    return np.exp(z), np.exp(z / 2), q, f1, f2, f3


def etdrk4(v0: np.ndarray, lin: np.ndarray, nonlinear: Callable[[np.ndarray], np.ndarray], dt: float, steps: int,
           every: int = 1, monitor: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
    r"""Integrate ``v_t = L v + N(v)`` (``L`` diagonal) by ETDRK4 with a fixed step.

    One step from ``v`` (Cox & Matthews 2002):

    .. math::
        a = E_2 v + Q N(v), \quad b = E_2 v + Q N(a), \quad c = E_2 a + Q (2 N(b) - N(v)), \\
        v \leftarrow E v + f_1 N(v) + 2 f_2 (N(a) + N(b)) + f_3 N(c).

    Args:
        v0: the initial state (complex Fourier coefficients).
        lin: the diagonal of ``L``, shaped like ``v0``.
        nonlinear: ``N``, mapping a state to an array shaped like it.
        dt: the time step.
        steps: number of steps; a multiple of ``every``.
        every: keep every ``every``-th state.
        monitor: called as ``monitor(step, v)`` on each kept state; raise to stop.

    Returns:
        The kept states, ``(steps // every + 1, *v0.shape)``, the first being ``v0``.
    """
    if steps % every:
        raise ConfigError(f"steps: expected a multiple of every={every} but got {steps}")
    e, e2, q, f1, f2, f3 = etdrk4_coefficients(lin, dt)
    out = np.empty((steps // every + 1, *np.shape(v0)), dtype=np.complex128)
    v = out[0] = np.asarray(v0, dtype=np.complex128)
    for step in range(1, steps + 1):
        nv = nonlinear(v)
        a = e2 * v + q * nv
        na = nonlinear(a)
        b = e2 * v + q * na
        nb = nonlinear(b)
        c = e2 * a + q * (2 * nb - nv)
        nc = nonlinear(c)
        v = e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
        if step % every == 0:
            out[step // every] = v
            if monitor is not None:
                monitor(step, v)
    return out


class SpectralReference:
    r"""Base of the periodic pseudo-spectral references: ``v_t = L(k) v + M(k) F[g(u)]`` on ``[a, b) x [t0, t1]``.

    A subclass names its ``fields`` and defines :meth:`linear` (``L``), :meth:`multiplier`
    (``M``), :meth:`pointwise` (``g``), :meth:`initial_condition` and, where the explicit
    part has one, :meth:`rate`. Its constructor stores every argument as an attribute of
    the same name, which is what :meth:`to_config` and the cache key read.

    The grid is ``x_j = a + j (b - a) / modes``. The solver steps with the largest step that
    is at most ``dt`` and divides the snapshot spacing ``(t1 - t0) / (snapshots - 1)``. The
    initial coefficients come from an FFT on a 16 times finer grid, so an initial condition
    whose periodic extension has a kink is truncated rather than aliased.

    A grid that cannot give an accurate, stable solution raises ValueError naming the
    argument to change:

    - ``step * rate(u) <= 2.8`` (RK4's stability bound) at ``t0`` and every snapshot,
      else decrease ``dt``;
    - finite coefficients, else decrease ``dt`` or increase ``modes``;
    - the spectral tail (largest coefficient in the top tenth of the 2/3-dealiased band
      over the largest coefficient) at most ``tail_tol`` at ``t0`` and every snapshot,
      else increase ``modes``;
    - the time-stepping error, estimated by Richardson extrapolation from a second solve
      with twice the step (``max|u_step - u_2step| / 15 / max|u|``), at most ``step_tol``,
      else decrease ``dt``. The estimate is kept as ``step_error``.

    After solving, ``interpolation_error`` estimates the relative error of the interpolation
    in ``t`` (increase ``snapshots`` to reduce it).
    """

    fields: tuple[str, ...] = ("u",)
    complex_valued = False

    def __init__(self, domain: tuple[float, float], t_span: tuple[float, float], modes: int, dt: float,
                 snapshots: int, tail_tol: float, step_tol: float, cache: bool) -> None:
        self.domain = _interval(domain, "domain")
        self.t_span = _interval(t_span, "t_span")
        self.modes = _integer(modes, "modes", minimum=16)
        if self.modes % 2:
            raise ConfigError(f"modes: expected even but got {modes}")
        self.dt = _real(dt, "dt", positive=True)
        self.snapshots = _integer(snapshots, "snapshots", minimum=4)
        self.tail_tol = _real(tail_tol, "tail_tol", positive=True)
        self.step_tol = _real(step_tol, "step_tol", positive=True)
        self.cache = bool(cache)
        a, b = self.domain
        self.x = a + (b - a) * np.arange(self.modes) / self.modes
        index = np.fft.fftfreq(self.modes, 1.0 / self.modes)
        if not self.complex_valued:
            index = np.abs(index[: self.modes // 2 + 1])  # rfft: 0 .. n/2
        self.index = index
        self.k = 2 * np.pi / (b - a) * index
        cut = self.modes // 3
        self._keep = np.abs(index) <= cut
        self._tail = np.abs(index) >= 0.9 * cut
        paired = (index != 0) & (np.abs(index) != self.modes // 2) & (not self.complex_valued)
        self._inverse_weights = np.where(paired, 2.0, 1.0) / self.modes  # u(x) = Re sum_m w_m v_m e^{i k_m x}
        self.save_dt = (self.t_span[1] - self.t_span[0]) / (self.snapshots - 1)
        self.substeps = max(1, math.ceil(self.save_dt / self.dt * (1 - 1e-12)))
        self.step = self.save_dt / self.substeps
        self._factor = self.multiplier(self.k) * self._keep
        self.from_cache = False
        self.step_error: float | None = None
        self.interpolation_error: float | None = None
        self._coefficients: np.ndarray | None = None
        self._derivatives: np.ndarray | None = None
        self._omega: np.ndarray | None = None

    # --- the equation, defined by subclasses ---------------------------------------------------
    def linear(self, k: np.ndarray) -> np.ndarray:
        """The diagonal linear operator ``L(k)``."""
        raise NotImplementedError

    def multiplier(self, k: np.ndarray) -> np.ndarray:
        """The diagonal multiplier ``M(k)`` of the nonlinear term (``-c i k / 2`` for ``-c u u_x``)."""
        raise NotImplementedError

    def pointwise(self, u: np.ndarray) -> np.ndarray:
        """The pointwise part ``g(u)`` of the nonlinear term."""
        raise NotImplementedError

    def initial_condition(self, x: np.ndarray) -> np.ndarray:
        """``u(x, t0)`` (complex for a complex field)."""
        raise NotImplementedError

    def rate(self, u: np.ndarray) -> float | None:
        """A bound on ``|eigenvalue|`` of the Jacobian of ``N`` at ``u``; None where no bound applies."""
        return None

    # --- config and cache ----------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """A config that rebuilds this reference with ``hydra.utils.instantiate``."""
        cfg: dict[str, Any] = {"_target_": f"{type(self).__module__}.{type(self).__qualname__}"}
        for name in inspect.signature(type(self).__init__).parameters:
            if name != "self":
                value = getattr(self, name)
                cfg[name] = list(value) if isinstance(value, tuple) else value
        return cfg

    def cache_path(self) -> Path:
        """``cache_dir() / "<class>-<hash of the config>.npz"``."""
        digest = hashlib.sha256(self._key().encode()).hexdigest()[:16]
        return cache_dir() / f"{type(self).__name__}-{digest}.npz"

    def _key(self) -> str:
        """The config without ``cache``, and the cache format, as canonical JSON."""
        cfg = {name: value for name, value in self.to_config().items() if name != "cache"}
        return json.dumps({"format": _FORMAT, **cfg}, sort_keys=True)

    def _load(self, path: Path) -> np.ndarray | None:
        """The cached coefficients, or None for a missing, foreign or damaged file."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) != self._key():
                    return None
                coefficients, step_error = data["coefficients"], float(data["step_error"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            return None
        if coefficients.shape != (self.snapshots, self.k.size) or not np.all(np.isfinite(coefficients)):
            return None
        self.step_error = step_error
        return coefficients

    def _save(self, path: Path, coefficients: np.ndarray) -> None:
        """Write a temporary file beside ``path``, then rename it: readers never see a partial file."""
        temporary: Path | None = path.with_name(f"{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "xb") as f:  # unlike tempfile, keeps the permissions the umask gives
                np.savez(f, coefficients=coefficients, key=np.array(self._key()), step_error=np.array(self.step_error))
            os.replace(temporary, path)
            temporary = None
        except OSError as err:
            warnings.warn(f"could not cache {type(self).__name__} at {path}: {err}", stacklevel=3)
        finally:
            if temporary is not None:
                temporary.unlink(missing_ok=True)

    # --- solving -------------------------------------------------------------------------------
    def solve(self) -> SpectralReference:
        """Solve, or load the cached solution, once; later calls do nothing. Returns ``self``.

        Raises:
            ValueError: when the grid cannot resolve the solution accurately and stably; the
                message names the argument to change.
        """
        if self._coefficients is not None:
            return self
        path = self.cache_path() if self.cache else None
        coefficients = self._load(path) if path is not None and path.exists() else None
        self.from_cache = coefficients is not None
        if coefficients is None:
            coefficients = self._solve()
            if path is not None:
                self._save(path, coefficients)
        self._prepare_interpolation(coefficients)
        self._coefficients = coefficients
        return self

    def _solve(self) -> np.ndarray:
        name = type(self).__name__
        v0 = self._initial_coefficients()
        tail = self._tail_ratio(v0)
        if tail > self.tail_tol:
            raise ConfigError(f"{name}: modes={self.modes} cannot resolve the initial condition (spectral tail "
                             f"{tail:.1e} > tail_tol={self.tail_tol:g}); increase modes")
        self._check_rate(self._ifft(v0), self.t_span[0])

        def monitor(step: int, v: np.ndarray) -> None:
            t = self.t_span[0] + step * self.step
            if not np.all(np.isfinite(v)):
                raise ConfigError(f"{name}: the solution became non-finite at t={t:.4g}; decrease dt (dt={self.dt:g}) "
                                 f"or increase modes (modes={self.modes})")
            self._check_rate(self._ifft(v), t)
            ratio = self._tail_ratio(v)
            if ratio > self.tail_tol:
                raise ConfigError(f"{name}: modes={self.modes} cannot resolve the solution: its spectral tail reached "
                                 f"{ratio:.1e} > tail_tol={self.tail_tol:g} at t={t:.4g}; increase modes")

        lin = self.linear(self.k)
        with np.errstate(over="ignore", invalid="ignore"):  # a blow-up is reported by the monitor
            fine = etdrk4(v0, lin, self._nonlinear, self.step, self.substeps * (self.snapshots - 1),
                          every=self.substeps, monitor=monitor)
        self._check_step(fine, lin)
        return fine

    def _check_step(self, fine: np.ndarray, lin: np.ndarray) -> None:
        """Richardson: the error of ``fine`` is about ``|fine - coarse| / (2^4 - 1)``, ``coarse`` with twice the step."""
        pairs = (self.snapshots - 1) // 2
        with np.errstate(all="ignore"):
            coarse = etdrk4(fine[0], lin, self._nonlinear, 2 * self.step, pairs * self.substeps, every=self.substeps)
            difference = np.max(np.abs(self._ifft(coarse - fine[: 2 * pairs + 1 : 2])))
            self.step_error = float(difference / 15 / np.max(np.abs(self._ifft(fine))))
        if not self.step_error <= self.step_tol:  # also when the coarse solve blew up
            raise ConfigError(f"{type(self).__name__}: the estimated time-stepping error {self.step_error:.1e} exceeds "
                             f"step_tol={self.step_tol:g}; decrease dt (dt={self.dt:g})")

    def _initial_coefficients(self) -> np.ndarray:
        """Fourier coefficients of ``u(x, t0)``, by an FFT on a grid ``_OVERSAMPLE`` times finer."""
        a, b = self.domain
        size = _OVERSAMPLE * self.modes
        u0 = np.asarray(self.initial_condition(a + (b - a) * np.arange(size) / size))
        if u0.shape != (size,) or not np.all(np.isfinite(u0)):
            raise ConfigError(f"{type(self).__name__}: the initial condition is not finite on domain={list(self.domain)}")
        spectrum = (np.fft.fft(u0) if self.complex_valued else np.fft.rfft(u0.real)) / _OVERSAMPLE
        v0 = spectrum[self.index.astype(np.int64) % size].astype(np.complex128)
        v0[np.abs(self.index) == self.modes // 2] = 0.0
        return v0

    def _nonlinear(self, v: np.ndarray) -> np.ndarray:
        """``N(v) = M F[g(F^{-1} v)]``, dealiased by the 2/3 rule, along the last axis."""
        return self._factor * self._fft(self.pointwise(self._ifft(v)))

    def _fft(self, u: np.ndarray) -> np.ndarray:
        return np.fft.fft(u) if self.complex_valued else np.fft.rfft(u)

    def _ifft(self, v: np.ndarray) -> np.ndarray:
        return np.fft.ifft(v) if self.complex_valued else np.fft.irfft(v, self.modes)

    def _tail_ratio(self, v: np.ndarray) -> float:
        peak = float(np.max(np.abs(v)))
        return float(np.max(np.abs(v[self._tail]))) / peak if peak > 0 else 0.0

    def _check_rate(self, u: np.ndarray, t: float) -> None:
        rate = self.rate(u)
        if rate is not None and self.step * rate > _RK4_BOUND:
            raise ConfigError(f"{type(self).__name__}: dt={self.dt:g} is unstable at t={t:.4g}: step * |dN/du| = "
                             f"{self.step * rate:.3g} > {_RK4_BOUND}; decrease dt below {_RK4_BOUND / rate:.3g}")

    # --- evaluation ----------------------------------------------------------------------------
    @property
    def coefficients(self) -> np.ndarray:
        """Fourier coefficients at the snapshot times, ``(snapshots, len(k))``; solves on first use."""
        self.solve()
        assert self._coefficients is not None
        return self._coefficients

    @property
    def times(self) -> np.ndarray:
        """The snapshot times."""
        return np.linspace(self.t_span[0], self.t_span[1], self.snapshots)

    def __call__(self, x: np.ndarray, t: np.ndarray, chunk: int = 1024) -> np.ndarray | dict[str, np.ndarray]:
        """Evaluate at matching arrays of ``x`` (any real; periodic) and ``t`` (in ``t_span``), in float64.

        At ``t = t0`` this is the initial condition itself (no solve needed); elsewhere the
        trigonometric interpolant in ``x``, cubic Hermite in ``t`` between the two nearest
        snapshots.

        Returns:
            The field for one field, else ``{field: array}``.

        Raises:
            ValueError: for non-finite ``x`` or ``t`` outside ``t_span``, or when the solve
                fails (see :meth:`solve`).
        """
        x, t = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64))
        t0, t1 = self.t_span
        slack = 1e-9 * (t1 - t0)
        if t.size and not (np.all(np.isfinite(t)) and np.min(t) >= t0 - slack and np.max(t) <= t1 + slack):
            raise ConfigError(f"{type(self).__name__}: expected t in t_span={list(self.t_span)} but got values in "
                             f"[{np.min(t)}, {np.max(t)}]")
        if not np.all(np.isfinite(x)):
            raise ConfigError(f"{type(self).__name__}: expected finite x but got {x[~np.isfinite(x)].ravel()[:3]}")
        flat_x, flat_t = x.ravel(), np.clip(t.ravel(), t0, t1)
        out = np.empty(flat_x.shape, dtype=np.complex128 if self.complex_valued else np.float64)
        at_start = flat_t == t0
        out[at_start] = self.initial_condition(flat_x[at_start])  # exact, even where it has a kink
        later = np.flatnonzero(~at_start)
        later = later[np.argsort(flat_t[later], kind="stable")]  # points between the same snapshots become neighbours
        for start in range(0, later.size, chunk):
            rows = later[start:start + chunk]
            out[rows] = self._interpolate(self.coefficients, flat_x[rows], flat_t[rows])
        out = out.reshape(x.shape)
        if self.complex_valued:
            return {self.fields[0]: out.real.copy(), self.fields[1]: out.imag.copy()}
        return out

    def _interpolate(self, coefficients: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Values at points sorted by ``t``: cubic Hermite in ``t`` per snapshot interval, trigonometric in ``x``."""
        s = (t - self.t_span[0]) / self.save_dt
        first = np.clip(np.floor(s).astype(np.int64), 0, self.snapshots - 2)
        r = s - first
        weights = np.stack([(1 + 2 * r) * (1 - r) ** 2, r * (1 - r) ** 2, r**2 * (3 - 2 * r), r**2 * (r - 1)], axis=1)
        phase = self._phase(x)
        values = np.empty(s.size, dtype=np.complex128)
        cuts = np.flatnonzero(np.diff(first)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, s.size]):
            j = int(first[lo])
            stencil, block = self._hermite_data(coefficients, j), phase[lo:hi]
            if self._omega is not None:  # the interpolant is of e^{-i omega (t - t_j)} v: turn it back
                offsets, inverse = np.unique(t[lo:hi] - (self.t_span[0] + j * self.save_dt), return_inverse=True)
                block = block * np.exp(1j * np.outer(offsets, self._omega))[inverse]
            # einsum rather than @: a threaded BLAS on tiny products stalls on busy machines
            values[lo:hi] = np.einsum("pj,pj->p", np.einsum("pm,jm->pj", block, stencil), weights[lo:hi])
        return values if self.complex_valued else values.real

    def _hermite_data(self, coefficients: np.ndarray, j: int) -> np.ndarray:
        """``[w(t_j), h w'(t_j), w(t_j+1), h w'(t_j+1)]`` times the FFT weights, ``w = e^{-i omega (t - t_j)} v``."""
        assert self._derivatives is not None
        v, dv = coefficients[j:j + 2], self._derivatives[j:j + 2]
        if self._omega is not None:
            dv = dv - 1j * self._omega * v
            turn = np.exp(-1j * self._omega * self.save_dt)
            v, dv = np.stack([v[0], turn * v[1]]), np.stack([dv[0], turn * dv[1]])
        return np.stack([v[0], self.save_dt * dv[0], v[1], self.save_dt * dv[1]]) * self._inverse_weights

    def _prepare_interpolation(self, coefficients: np.ndarray) -> None:
        """The time derivatives ``v' = L v + N(v)`` at the snapshots, the frame of each mode, the error estimate.

        A mode is interpolated in the frame ``e^{-i omega t} v`` turning with ``omega = Im L``
        when its derivative is smaller there: dispersive radiation turns with ``L`` and is
        then interpolated exactly, a travelling soliton does not. Cubic Hermite interpolation
        errs by at most ``h^4 max|w''''| / 384`` for snapshot spacing ``h``;
        ``interpolation_error`` is that, ``h^4 w''''`` taken from third differences of
        ``h w'``, summed over modes and relative to ``max|u|``.
        """
        lin = self.linear(self.k)
        derivatives = lin * coefficients + self._nonlinear(coefficients)
        omega = np.imag(lin).astype(np.float64)
        if np.any(omega):
            turning = derivatives - 1j * omega * coefficients
            omega = np.where(np.max(np.abs(turning), axis=0) < np.max(np.abs(derivatives), axis=0), omega, 0.0)
        frame = np.exp(-1j * np.outer(self.times - self.t_span[0], omega))
        third = np.max(np.abs(np.diff(self.save_dt * (derivatives - 1j * omega * coefficients) * frame, 3, axis=0)),
                       axis=0)
        peak = float(np.max(np.abs(self._ifft(coefficients))))
        self.interpolation_error = float(np.sum(third * self._inverse_weights)) / 384 / peak if peak > 0 else 0.0
        self._derivatives, self._omega = derivatives, (omega if np.any(omega) else None)

    def _phase(self, x: np.ndarray) -> np.ndarray:
        """``e^{i k_m (x - a)}`` for the stored modes, as powers of ``e^{2 pi i (x - a) / (b - a)}``."""
        a, b = self.domain
        half = self.modes // 2
        powers = np.empty((x.size, half + 1), dtype=np.complex128)
        powers[:, 0] = 1.0
        powers[:, 1:] = np.exp(2j * np.pi * (x - a) / (b - a))[:, None]
        np.cumprod(powers[:, 1:], axis=1, out=powers[:, 1:])  # rounding grows like sqrt(m) ulp
        if not self.complex_valued:
            return powers
        return np.concatenate([powers[:, :half], powers[:, half:0:-1].conj()], axis=1)  # fft order


def _interval(value: Any, key: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a pair [lo, hi] but got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"{key}: expected finite with lo < hi but got {value!r}")
    return lo, hi


def _integer(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{key}: expected an integer >= {minimum} but got {value!r}")
    return int(value)


def _real(value: Any, key: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite number but got {value!r}")
    if positive and not value > 0:
        raise ConfigError(f"{key}: expected positive but got {value!r}")
    return float(value)


class AllenCahn(SpectralReference):
    r"""Allen-Cahn ``u_t = d u_xx + r (u - u^3)``, periodic in ``x``.

    Defaults: ``d = 1e-4``, ``r = 5``, ``u(x, 0) = x^2 cos(pi x)``, ``x in [-1, 1]``,
    ``t in [0, 1]`` (the Raissi / JAX-PI benchmark). ``L = r - d k^2``, ``N = F[-r u^3]``;
    the explicit part is stable for ``dt * 3 r max u^2 <= 2.8``.

    The default ``u0`` has a kink at ``x = +-1`` in its periodic extension (``u_x`` jumps
    by 4), which the diffusion smooths within ``t ~ 0.01``. Against a grid with 4 times
    the modes, the default grid agrees to 1.2e-6 relative in the max norm (near ``x = +-1``
    at the earliest times; 2e-7 for ``t >= 0.01``) and 1.6e-8 in the relative L2 norm.

    Args:
        diffusion: ``d``, positive.
        reaction: ``r``, non-negative.
        initial: ``u(x, t0)`` as an expression in ``x`` (the config expression language).
        domain: the period ``[a, b]``.
        t_span: ``[t0, t1]``.
        modes: grid points, even; the interfaces are ``~ sqrt(2 d / r)`` wide.
        dt: the largest time step.
        snapshots: stored time levels, equally spaced over ``t_span``.
        tail_tol: the largest relative spectral tail (see :class:`SpectralReference`).
        step_tol: the largest estimated relative time-stepping error.
        cache: keep the solved grid on disk (see :func:`cache_dir`).

    Examples:
        >>> ref = AllenCahn(diffusion=0.1, reaction=0.0, initial="sin(pi*x)", modes=16, dt=0.1, snapshots=11,
        ...                 cache=False)
        >>> x = np.array([0.5])
        >>> bool(np.allclose(ref(x=x, t=np.array([1.0])), np.exp(-0.1 * np.pi**2), atol=1e-6))
        True
    """

    def __init__(self, diffusion: float = 1e-4, reaction: float = 5.0, initial: str = "x**2*cos(pi*x)",
                 domain: tuple[float, float] = (-1.0, 1.0), t_span: tuple[float, float] = (0.0, 1.0),
                 modes: int = 2048, dt: float = 1e-3, snapshots: int = 501, tail_tol: float = 1e-5,
                 step_tol: float = 1e-6, cache: bool = True) -> None:
        self.diffusion = _real(diffusion, "diffusion", positive=True)
        self.reaction = _real(reaction, "reaction")
        if self.reaction < 0:
            raise ConfigError(f"reaction: expected non-negative but got {reaction!r}")
        self.initial, self._u0 = initial, initial_function(initial)
        super().__init__(domain, t_span, modes, dt, snapshots, tail_tol, step_tol, cache)

    def linear(self, k: np.ndarray) -> np.ndarray:
        return self.reaction - self.diffusion * k**2

    def multiplier(self, k: np.ndarray) -> np.ndarray:
        return np.ones_like(k)

    def pointwise(self, u: np.ndarray) -> np.ndarray:
        return -self.reaction * u**3

    def initial_condition(self, x: np.ndarray) -> np.ndarray:
        return self._u0(x)

    def rate(self, u: np.ndarray) -> float:
        return 3 * self.reaction * float(np.max(np.abs(u))) ** 2


class KdV(SpectralReference):
    r"""Korteweg-de Vries ``u_t + l1 u u_x + l2 u_xxx = 0``, periodic in ``x``.

    Defaults: ``l1 = 1``, ``l2 = 0.0025``, ``u(x, 0) = cos(pi x)``, ``x in [-1, 1]``,
    ``t in [0, 1]`` (Raissi et al. 2019). ``L = i l2 k^3``, ``N = -(i l1 k / 2) F[u^2]``;
    the explicit part is stable for ``dt * |l1| max|u| k_max <= 2.8``, ``k_max`` the
    largest dealiased wavenumber. The default grid agrees with a finer one to about 1e-10.

    Args:
        lambda1: ``l1``.
        lambda2: ``l2``.
        initial: ``u(x, t0)`` as an expression in ``x``.
        domain, t_span, modes, dt, snapshots, tail_tol, step_tol, cache: as for :class:`AllenCahn`.
    """

    def __init__(self, lambda1: float = 1.0, lambda2: float = 0.0025, initial: str = "cos(pi*x)",
                 domain: tuple[float, float] = (-1.0, 1.0), t_span: tuple[float, float] = (0.0, 1.0),
                 modes: int = 512, dt: float = 2e-4, snapshots: int = 501, tail_tol: float = 1e-8,
                 step_tol: float = 1e-6, cache: bool = True) -> None:
        self.lambda1, self.lambda2 = _real(lambda1, "lambda1"), _real(lambda2, "lambda2")
        self.initial, self._u0 = initial, initial_function(initial)
        super().__init__(domain, t_span, modes, dt, snapshots, tail_tol, step_tol, cache)

    def linear(self, k: np.ndarray) -> np.ndarray:
        return 1j * self.lambda2 * k**3

    def multiplier(self, k: np.ndarray) -> np.ndarray:
        return -0.5j * self.lambda1 * k

    def pointwise(self, u: np.ndarray) -> np.ndarray:
        return u * u

    def initial_condition(self, x: np.ndarray) -> np.ndarray:
        return self._u0(x)

    def rate(self, u: np.ndarray) -> float:
        return abs(self.lambda1) * float(np.max(np.abs(u))) * float(np.max(np.abs(self.k[self._keep])))


class KuramotoSivashinsky(SpectralReference):
    r"""Kuramoto-Sivashinsky ``u_t + alpha u u_x + beta u_xx + gamma u_xxxx = 0``, periodic in ``x``.

    Defaults: ``alpha = 100/16``, ``beta = 100/16^2``, ``gamma = 100/16^4``,
    ``u(x, 0) = cos(x) (1 + sin(x))``, ``x in [0, 2 pi]``, ``t in [0, 1]`` (JAX-PI): the
    classic KS on a ``32 pi`` period up to time 100, which is chaotic, hence the small
    ``dt``. ``L = beta k^2 - gamma k^4``, ``N = -(i alpha k / 2) F[u^2]``. The
    hyperdiffusion damps the high modes, so no a-priori step bound applies; the
    Richardson check guards ``dt``. The default grid agrees with a finer one to 3e-8.

    Args:
        alpha, beta, gamma: the coefficients; ``gamma`` positive.
        initial: ``u(x, t0)`` as an expression in ``x``.
        domain, t_span, modes, dt, snapshots, tail_tol, step_tol, cache: as for :class:`AllenCahn`.
    """

    def __init__(self, alpha: float = 100 / 16, beta: float = 100 / 16**2, gamma: float = 100 / 16**4,
                 initial: str = "cos(x)*(1 + sin(x))", domain: tuple[float, float] = (0.0, 2 * math.pi),
                 t_span: tuple[float, float] = (0.0, 1.0), modes: int = 512, dt: float = 5e-5,
                 snapshots: int = 2001, tail_tol: float = 1e-8, step_tol: float = 1e-6,
                 cache: bool = True) -> None:
        self.alpha, self.beta = _real(alpha, "alpha"), _real(beta, "beta")
        self.gamma = _real(gamma, "gamma", positive=True)
        self.initial, self._u0 = initial, initial_function(initial)
        super().__init__(domain, t_span, modes, dt, snapshots, tail_tol, step_tol, cache)

    def linear(self, k: np.ndarray) -> np.ndarray:
        return self.beta * k**2 - self.gamma * k**4

    def multiplier(self, k: np.ndarray) -> np.ndarray:
        return -0.5j * self.alpha * k

    def pointwise(self, u: np.ndarray) -> np.ndarray:
        return u * u

    def initial_condition(self, x: np.ndarray) -> np.ndarray:
        return self._u0(x)


class NonlinearSchrodinger(SpectralReference):
    r"""Focusing nonlinear Schrodinger ``i h_t + 0.5 h_xx + |h|^2 h = 0`` for ``h = u + i v``, periodic in ``x``.

    Defaults: ``h(x, 0) = 2 sech(x)``, ``x in [-5, 5]``, ``t in [0, pi/2]`` (Raissi et al.
    2019). ``L = -i k^2 / 2``, ``N = i F[|h|^2 h]``, complex ETDRK4 on ``h``; the explicit
    part is stable for ``dt * sqrt(3) max|h|^2 <= 2.8``. Returns ``{"u": Re h, "v": Im h}``.

    The default ``h0`` has a small kink at ``x = +-5`` in its periodic extension (``h_x``
    jumps by ``4 sech(5) tanh(5) ~ 0.054``); its radiation never decays, so the spectral
    error falls only like ``1/modes``: the default grid agrees with one of 4 times the
    modes to 3.4e-6 relative (max norm), 2.3e-6 (L2).

    Args:
        initial_u, initial_v: ``Re h`` and ``Im h`` at ``t0`` as expressions in ``x``.
        domain, t_span, modes, dt, snapshots, tail_tol, step_tol, cache: as for :class:`AllenCahn`.
    """

    fields = ("u", "v")
    complex_valued = True

    def __init__(self, initial_u: str = "2/cosh(x)", initial_v: str = "0", domain: tuple[float, float] = (-5.0, 5.0),
                 t_span: tuple[float, float] = (0.0, math.pi / 2), modes: int = 1024, dt: float = 1e-4,
                 snapshots: int = 501, tail_tol: float = 1e-5, step_tol: float = 1e-6,
                 cache: bool = True) -> None:
        self.initial_u, self.initial_v = initial_u, initial_v
        self._u0, self._v0 = initial_function(initial_u, "initial_u"), initial_function(initial_v, "initial_v")
        super().__init__(domain, t_span, modes, dt, snapshots, tail_tol, step_tol, cache)

    def linear(self, k: np.ndarray) -> np.ndarray:
        return -0.5j * k**2

    def multiplier(self, k: np.ndarray) -> np.ndarray:
        return np.full(k.shape, 1j)

    def pointwise(self, h: np.ndarray) -> np.ndarray:
        return (h.real**2 + h.imag**2) * h

    def initial_condition(self, x: np.ndarray) -> np.ndarray:
        return self._u0(x) + 1j * self._v0(x)

    def rate(self, h: np.ndarray) -> float:
        return math.sqrt(3) * float(np.max(np.abs(h))) ** 2
