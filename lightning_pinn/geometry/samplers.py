"""Point samplers on the unit cube: uniform, Latin hypercube, Sobol, Halton, grid.

A sampler draws ``(n, dim)`` points in ``[0, 1)^dim``; domains map them onto
regions. Random and quasi-random streams come from :mod:`scipy.stats.qmc`, seeded
by an integer, and their position is part of :meth:`Sampler.state_dict` so a
resumed run draws the same points an unbroken one would.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any, Callable

import numpy as np
from scipy.stats import qmc

from lightning_pinn.errors import ConfigError


class _UniformEngine(qmc.QMCEngine):
    """Plain i.i.d. uniform draws, with the qmc engine interface."""

    def __init__(self, d: int, *, rng: np.random.Generator | None = None) -> None:
        # QMCEngine.__init__ is abstract: a subclass must define its own.
        super().__init__(d=d, rng=rng)

    def _random(self, n: int = 1, *, workers: int = 1) -> np.ndarray:
        return self.rng.random((n, self.d))


def _lhs(d: int, seed: int) -> qmc.QMCEngine:
    return qmc.LatinHypercube(d, rng=np.random.default_rng(seed))


def _sobol(d: int, seed: int) -> qmc.QMCEngine:
    return qmc.Sobol(d, scramble=True, rng=np.random.default_rng(seed))


def _halton(d: int, seed: int) -> qmc.QMCEngine:
    return qmc.Halton(d, scramble=True, rng=np.random.default_rng(seed))


def _uniform(d: int, seed: int) -> qmc.QMCEngine:
    return _UniformEngine(d, rng=np.random.default_rng(seed))


ENGINES: dict[str, Callable[[int, int], qmc.QMCEngine]] = {
    "uniform": _uniform,
    "lhs": _lhs,
    "sobol": _sobol,
    "halton": _halton,
}
"""Random and quasi-random sampling methods by name; ``"grid"`` is handled apart."""

METHODS = (*ENGINES, "grid")
"""Every sampling method a config may name."""


class Sampler:
    """Draws points in the unit cube ``[0, 1)^dim`` by a named method.

    Args:
        dim: number of dimensions.
        method: one of ``uniform``, ``lhs``, ``sobol``, ``halton``, ``grid``.
        seed: seed of the random stream (quasi-random methods are scrambled by it).

    ``grid`` returns a tensor-product grid of cell centres with about ``n`` points
    (``ceil(n ** (1/dim))`` per axis, so possibly more than ``n``), the same every time.

    Example:
        >>> Sampler(2, "sobol", seed=0).sample(4).shape
        (4, 2)
    """

    def __init__(self, dim: int, method: str = "sobol", seed: int = 0):
        if method not in METHODS:
            raise ConfigError(f"sampler: expected one of {list(METHODS)} but got {method!r}")
        if int(dim) < 1:
            raise ConfigError(f"dim: expected a positive integer but got {dim}")
        self.dim, self.method, self.seed = int(dim), method, int(seed)
        self._engine = ENGINES[method](self.dim, self.seed) if method in ENGINES else None

    def sample(self, n: int) -> np.ndarray:
        """Draw ``n`` points (``grid``: at least ``n``) as a float64 array of shape ``(n, dim)``."""
        if int(n) < 1:
            raise ConfigError(f"Expected a positive number of points but got {n}")
        if self._engine is None:
            return self._grid(int(n))
        with warnings.catch_warnings():  # scrambled Sobol is fine at any n; its balance note is noise here
            warnings.filterwarnings("ignore", message="The balance properties of Sobol")
            return self._engine.random(int(n))

    def _grid(self, n: int) -> np.ndarray:
        per_axis = int(np.ceil(n ** (1.0 / self.dim) - 1e-9))
        centres = (np.arange(per_axis) + 0.5) / per_axis
        return np.array(list(itertools.product(centres, repeat=self.dim)), dtype=np.float64)

    def state_dict(self) -> dict[str, Any]:
        """The stream's position: enough to continue exactly where it stands."""
        if self._engine is None:
            return {"method": self.method}
        return {
            "method": self.method,
            "seed": self.seed,
            "num_generated": int(self._engine.num_generated),
            "rng": self._engine.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream saved by :meth:`state_dict`."""
        if state.get("method") != self.method:
            raise ConfigError(f"sampler state is for method {state.get('method')!r}, this sampler uses {self.method!r}")
        if self._engine is None:
            return
        self.seed = int(state["seed"])
        self._engine = ENGINES[self.method](self.dim, self.seed)
        if self.method in ("sobol", "halton"):
            self._engine.fast_forward(int(state["num_generated"]))
        self._engine.num_generated = int(state["num_generated"])
        self._engine.rng.bit_generator.state = state["rng"]
