r"""Closed-form reference solutions: advection, wave, Helmholtz, Kovasznay flow, manufactured heat and Poisson.

Each class takes the physical parameters, rebuilds from :meth:`config` with
``hydra.utils.instantiate``, and is called with matching numpy arrays of its coordinates
by name (``ref(x=..., t=...)``), returning a float64 array, or ``{field: array}`` for
several fields.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _number(value: Any, key: str, positive: bool = False) -> float:
    """``value`` as a float, or a ValueError quoting it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Expected {key} to be a finite number but got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"Expected {key} to be positive but got {value!r}")
    return float(value)


def _arrays(*values: Any) -> list[np.ndarray]:
    return np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in values))


class _Exact:
    """Config from the constructor's arguments, stored as attributes of the same names."""

    _params: tuple[str, ...] = ()

    def config(self) -> dict[str, Any]:
        """A config that rebuilds this reference with ``hydra.utils.instantiate``."""
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}",
                **{name: getattr(self, name) for name in self._params}}

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._params)
        return f"{type(self).__name__}({args})"


class Advection(_Exact):
    r"""Periodic advection ``u_t + beta u_x = 0`` on ``x in [0, 2 pi]``, ``u(x, 0) = sin(x)``: ``u = sin(x - beta t)``.

    Example:
        >>> float(Advection(beta=30.0)(x=np.array([np.pi / 2]), t=np.array([0.0]))[0])
        1.0
    """

    _params = ("beta",)

    def __init__(self, beta: float = 30.0) -> None:
        self.beta = _number(beta, "beta")

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``u(x, t)``."""
        x, t = _arrays(x, t)
        return np.sin(x - self.beta * t)


class Wave1D(_Exact):
    r"""Wave ``u_tt = c^2 u_xx`` on ``x in [0, 1]`` (PINNacle Wave1d-C, ``c = 2``).

    .. math::
        u = \sin(\pi x) \cos(c \pi t) + \tfrac12 \sin(4 \pi x) \cos(4 c \pi t),

    with ``u = 0`` at ``x = 0, 1`` and ``u_t = 0`` at ``t = 0``.
    """

    _params = ("c",)

    def __init__(self, c: float = 2.0) -> None:
        self.c = _number(c, "c")

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``u(x, t)``."""
        x, t = _arrays(x, t)
        w = self.c * np.pi * t
        return np.sin(np.pi * x) * np.cos(w) + 0.5 * np.sin(4 * np.pi * x) * np.cos(4 * w)


class Helmholtz2D(_Exact):
    r"""``u = sin(a1 pi x) sin(a2 pi y)``, the exact solution of the Helmholtz benchmark.

    It solves ``u_xx + u_yy + k^2 u = q`` with ``q = (k^2 - (a1^2 + a2^2) pi^2) u`` (see
    :meth:`source`) and ``u = 0`` on the boundary of ``[-1, 1]^2``.
    """

    _params = ("a1", "a2")

    def __init__(self, a1: float = 1.0, a2: float = 4.0) -> None:
        self.a1, self.a2 = _number(a1, "a1"), _number(a2, "a2")

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``u(x, y)``."""
        x, y = _arrays(x, y)
        return np.sin(self.a1 * np.pi * x) * np.sin(self.a2 * np.pi * y)

    def source(self, x: np.ndarray, y: np.ndarray, k: float = 1.0) -> np.ndarray:
        """``q = u_xx + u_yy + k^2 u`` for wavenumber ``k``."""
        return (k**2 - (self.a1**2 + self.a2**2) * np.pi**2) * self(x, y)


class Kovasznay(_Exact):
    r"""Kovasznay flow, an exact steady Navier-Stokes solution (Kovasznay 1948).

    With ``lambda = Re/2 - sqrt(Re^2/4 + 4 pi^2)``:

    .. math::
        u = 1 - e^{\lambda x} \cos(2 \pi y), \quad
        v = \frac{\lambda}{2 \pi} e^{\lambda x} \sin(2 \pi y), \quad
        p = \tfrac12 (1 - e^{2 \lambda x}),

    solving ``(u . grad) u + grad p = (1/Re) lap u`` and ``div u = 0``. Returns
    ``{"u", "v", "p"}``.
    """

    _params = ("re",)

    def __init__(self, re: float = 20.0) -> None:
        self.re = _number(re, "re", positive=True)
        self.lam = self.re / 2 - math.sqrt(self.re**2 / 4 + 4 * math.pi**2)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """``{"u": u, "v": v, "p": p}`` at ``(x, y)``."""
        x, y = _arrays(x, y)
        decay = np.exp(self.lam * x)
        return {
            "u": 1 - decay * np.cos(2 * np.pi * y),
            "v": self.lam / (2 * np.pi) * decay * np.sin(2 * np.pi * y),
            "p": 0.5 * (1 - decay**2),
        }


class Heat2DManufactured(_Exact):
    r"""Manufactured heat solution ``u = e^{-decay t} sin(pi x) sin(pi y)`` on ``[0, 1]^2 x [0, T]``.

    It solves ``u_t = kappa (u_xx + u_yy) + f`` with ``f = (2 pi^2 kappa - decay) u`` (see
    :meth:`source`), ``u = 0`` on the boundary and ``u(x, y, 0) = sin(pi x) sin(pi y)``;
    ``decay = 2 pi^2 kappa`` makes it source-free.
    """

    _params = ("diffusivity", "decay")

    def __init__(self, diffusivity: float = 1.0, decay: float = 1.0) -> None:
        self.diffusivity = _number(diffusivity, "diffusivity", positive=True)
        self.decay = _number(decay, "decay")

    def __call__(self, x: np.ndarray, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``u(x, y, t)``."""
        x, y, t = _arrays(x, y, t)
        return np.exp(-self.decay * t) * np.sin(np.pi * x) * np.sin(np.pi * y)

    def source(self, x: np.ndarray, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``f = u_t - kappa (u_xx + u_yy)``."""
        return (2 * np.pi**2 * self.diffusivity - self.decay) * self(x, y, t)


class PoissonManufactured(_Exact):
    r"""Manufactured Poisson solution ``u = sin(a pi x) sin(b pi y)`` on ``[0, 1]^2``.

    It solves ``-(u_xx + u_yy) = f`` with ``f = (a^2 + b^2) pi^2 u`` (see :meth:`source`)
    and, for integer ``a, b``, ``u = 0`` on the boundary.
    """

    _params = ("a", "b")

    def __init__(self, a: float = 1.0, b: float = 1.0) -> None:
        self.a, self.b = _number(a, "a"), _number(b, "b")

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``u(x, y)``."""
        x, y = _arrays(x, y)
        return np.sin(self.a * np.pi * x) * np.sin(self.b * np.pi * y)

    def source(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``f = -(u_xx + u_yy)``."""
        return (self.a**2 + self.b**2) * np.pi**2 * self(x, y)
