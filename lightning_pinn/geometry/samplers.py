"""Point samplers on the unit cube: uniform, Latin hypercube, Sobol, Halton, grid.

A sampler draws ``(n, dim)`` points in ``[0, 1)^dim``; domains map them onto
regions. Random and quasi-random streams come from :mod:`scipy.stats.qmc`, seeded
by a :class:`numpy.random.SeedSequence` (an integer ``s`` is ``SeedSequence(s)``), and
their seed and position are part of :meth:`Sampler.state_dict` so a resumed run draws
the same points an unbroken one would.

Streams that must be independent get distinct spawn keys of one seed (:func:`seed_sequence`):
``SeedSequence(s, spawn_key=(a, b))`` is the ``b``-th child of the ``a``-th child of
``SeedSequence(s)``, the stream ``SeedSequence(s).spawn(...)`` would hand out, reached without
spawning in order. A sampler's qmc engine draws from the first child scipy spawns of its seed
(spawn key ``(..., 0)``). ``lightning_pinn.points`` lays out the whole tree.
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


Seed = int | np.integer | np.random.SeedSequence
"""A stream's seed: a non-negative integer ``s`` (meaning ``SeedSequence(s)``) or a ``SeedSequence``."""


def seed_sequence(seed: Seed, *key: int) -> np.random.SeedSequence:
    """``seed`` as a ``SeedSequence``, moved down the spawn tree by ``key``.

    ``seed_sequence(s, a, b)`` is ``SeedSequence(s, spawn_key=(a, b))``, which is
    ``SeedSequence(s).spawn(a + 1)[a].spawn(b + 1)[b]``; a ``SeedSequence`` given as ``seed``
    keeps its own spawn key in front of ``key``. Distinct keys of non-negative integers below
    ``2**32`` give distinct sequences (numpy's guarantee that children do not overlap).

    Raises:
        ValueError: for a negative or non-integer seed, or a key element outside ``[0, 2**32)``.

    Examples:
        >>> seed_sequence(3, 1, 0).spawn_key
        (1, 0)
        >>> seed_sequence(seed_sequence(3, 1), 0).spawn_key
        (1, 0)
    """
    for k in key:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < 2**32:
            raise ConfigError(f"stream key: expected integers in [0, 2**32) but got {key!r}")
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, *map(int, key)),
                                      pool_size=seed.pool_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer or a numpy SeedSequence but got {seed!r}")
    return np.random.SeedSequence(int(seed), spawn_key=tuple(map(int, key)))


def _lhs(d: int, seed: np.random.SeedSequence) -> qmc.QMCEngine:
    return qmc.LatinHypercube(d, rng=np.random.default_rng(seed))


def _sobol(d: int, seed: np.random.SeedSequence) -> qmc.QMCEngine:
    return qmc.Sobol(d, scramble=True, rng=np.random.default_rng(seed))


def _halton(d: int, seed: np.random.SeedSequence) -> qmc.QMCEngine:
    return qmc.Halton(d, scramble=True, rng=np.random.default_rng(seed))


def _uniform(d: int, seed: np.random.SeedSequence) -> qmc.QMCEngine:
    return _UniformEngine(d, rng=np.random.default_rng(seed))


ENGINES: dict[str, Callable[[int, np.random.SeedSequence], qmc.QMCEngine]] = {
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
        seed: seed of the random stream (quasi-random methods are scrambled by it): a
            ``SeedSequence`` or a non-negative integer ``s`` (``SeedSequence(s)``). Streams
            meant to be independent take distinct children of one ``SeedSequence``
            (:func:`seed_sequence`), not neighbouring integers.

    ``grid`` returns a tensor-product grid of cell centres with about ``n`` points
    (``ceil(n ** (1/dim))`` per axis, so possibly more than ``n``), the same every time.

    Examples:
        >>> Sampler(2, "sobol", seed=0).sample(4).shape
        (4, 2)
    """

    def __init__(self, dim: int, method: str = "sobol", seed: Seed = 0):
        if method not in METHODS:
            raise ConfigError(f"sampler: expected one of {list(METHODS)} but got {method!r}")
        if int(dim) < 1:
            raise ConfigError(f"dim: expected a positive integer but got {dim}")
        self.dim, self.method, self.seed = int(dim), method, seed_sequence(seed)
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
        """The stream's seed and position, as plain data: enough to continue exactly where it stands."""
        if self._engine is None:
            return {"method": self.method}
        return {
            "method": self.method,
            "seed": self.seed.entropy,
            "spawn_key": list(self.seed.spawn_key),
            "pool_size": self.seed.pool_size,
            "num_generated": int(self._engine.num_generated),
            "rng": self._engine.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream saved by :meth:`state_dict` (a state without ``spawn_key`` has an integer seed)."""
        if state.get("method") != self.method:
            raise ConfigError(f"sampler state is for method {state.get('method')!r}, this sampler uses {self.method!r}")
        if self._engine is None:
            return
        self.seed = np.random.SeedSequence(state["seed"], spawn_key=tuple(state.get("spawn_key", ())),
                                           pool_size=int(state.get("pool_size", 4)))
        self._engine = ENGINES[self.method](self.dim, self.seed)
        if self.method in ("sobol", "halton"):
            self._engine.fast_forward(int(state["num_generated"]))
        self._engine.num_generated = int(state["num_generated"])
        self._engine.rng.bit_generator.state = state["rng"]
