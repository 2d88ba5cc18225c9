"""Residual-based adaptive sampling of collocation points: RAD and RAR as Lightning callbacks.

Both follow Wu, Zhu, Tan, Kartha and Lu (2023), "A comprehensive study of non-adaptive and
residual-based adaptive sampling for physics-informed neural networks", CMAME 403, 115671.
Every ``every`` steps a callback draws a dense candidate set ``S`` on the point set's regions,
evaluates the residual magnitude ``|r(x)| = sqrt(sum_t r_t(x)^2)`` over the point set's terms
``t`` there, and

- :class:`RAD` replaces the ``N`` current points by ``N`` candidates drawn without replacement
  with probability ``p(x) ∝ |r(x)|^k / mean_S |r|^k + c``;
- :class:`RAR` (greedy, RAR-G) keeps the current points and adds the ``add`` candidates of
  largest ``|r|``.

The maths lives in three pure functions (:func:`residual_magnitude`, :func:`rad_density`,
:func:`sample_proportional`); the callbacks hold state and call them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from lightning_pinn.errors import ConfigError, NonFiniteLossError
from lightning_pinn.geometry import PointSource
from lightning_pinn.geometry.samplers import ENGINES as SAMPLERS
from lightning_pinn.lightning.module import PINNModule
from lightning_pinn.points import stream_seed

# ----- the maths ---------------------------------------------------------------------------------


def residual_magnitude(residuals: Mapping[str, Tensor], terms: Sequence[str]) -> Tensor:
    """``|r| = sqrt(sum_t r_t^2)`` per point over ``terms`` (unweighted), as a detached ``(N,)`` tensor.

    Raises:
        ValueError: when a term is not among ``residuals`` (names what there is).
    """
    missing = [t for t in terms if t not in residuals]
    if missing:
        raise ConfigError(f"residuals: terms {missing} are missing; the module returned {sorted(residuals)}")
    return torch.sqrt(sum(residuals[t].detach().square() for t in terms))


def rad_density(magnitude: np.ndarray, k: float = 1.0, c: float = 1.0) -> np.ndarray:
    """RAD probabilities of candidates: ``p_i = w_i / sum_j w_j`` with ``w_i = |r_i|^k / mean(|r|^k) + c``.

    ``k = 0`` or all-zero residuals give the uniform distribution; ``c`` mixes it in.

    Examples:
        >>> rad_density(np.array([0.0, 1.0, 3.0]), k=1.0, c=0.0).tolist()
        [0.0, 0.25, 0.75]
        >>> rad_density(np.array([0.0, 1.0, 3.0]), k=1.0, c=1.0).tolist()
        [0.16666666666666666, 0.2916666666666667, 0.5416666666666666]
    """
    r = np.abs(np.asarray(magnitude, dtype=np.float64))
    top = r.max() if r.size else 0.0
    powered = (r / top) ** k if top > 0 else np.ones_like(r)  # scaled by the max: no overflow for large k
    mean = powered.mean()
    weights = (powered / mean if mean > 0 else np.ones_like(r)) + c
    return weights / weights.sum()


def sample_proportional(weights: np.ndarray, n: int, uniforms: np.ndarray) -> np.ndarray:
    """``n`` distinct indices, drawn one after another with probability ``∝ weights`` among those left.

    Efraimidis-Spirakis keys: index ``i`` gets ``u_i^(1 / w_i)`` for its uniform ``u_i``, and the
    ``n`` largest keys win. Zero weights are taken only when fewer than ``n`` weights are positive.
    Returned in increasing order.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if not 0 < n <= weights.size:
        raise ConfigError(f"Expected 0 < n <= {weights.size} (the number of weights) but got n={n}")
    with np.errstate(divide="ignore"):
        keys = np.log(uniforms) / weights  # log of u^(1/w); -inf for zero weights
    return np.sort(np.argpartition(-keys, n - 1)[:n])


# ----- the callbacks -----------------------------------------------------------------------------


class _ResidualSampling(pl.Callback):
    """What RAD and RAR share: arguments, candidate streams, residual evaluation, state, logging."""

    name = "adaptive sampling"

    def __init__(self, every: int, candidates: int, point_set: str, seed: int, sampler: str, batch_size: int,
                 phases: Any = None):
        self.every = _positive_int(f"{self.name}: every", every)
        if phases is not None and (isinstance(phases, str) or not all(isinstance(p, str) for p in phases)):
            raise ConfigError(f"{self.name}: phases: expected a list of phase names or null but got {phases!r}")
        self.phases = None if phases is None else list(phases)
        self.candidates = _positive_int(f"{self.name}: candidates", candidates)
        self.batch_size = _positive_int(f"{self.name}: batch_size", batch_size)
        if not isinstance(point_set, str):
            raise ConfigError(f"{self.name}: point_set: expected the name of a point set but got {point_set!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"{self.name}: seed: expected a non-negative integer but got {seed!r}")
        if sampler not in SAMPLERS:
            raise ConfigError(f"{self.name}: sampler: expected one of {list(SAMPLERS)} (fresh candidates every round) "
                             f"but got {sampler!r}")
        self.point_set, self.seed, self.sampler = point_set, int(seed), sampler
        self.rank = 0
        self.regions: list = []
        self.normals = False
        self.source: PointSource | None = None
        self._rng: np.random.Generator | None = None
        self.draws = 0
        """Candidate sets drawn so far."""
        self.done_at = -1
        """The step of the last round (a step is refined at most once)."""
        self.last_residual: float | None = None
        """Mean ``|r|`` over the candidates of the last round."""
        self._pending: dict[str, Any] | None = None
        self._logged: dict[str, Tensor] = {}

    @property
    def state_key(self) -> str:
        return self._generate_state_key(point_set=self.point_set)

    # ----- setup and state -----

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Check the module and point set; start this rank's candidate streams (keyed by ``global_rank``)."""
        if stage != "fit":
            return
        if not isinstance(pl_module, PINNModule):
            raise ConfigError(f"{self.name}: needs a PINNModule (its collocation points and residuals) "
                             f"but got {type(pl_module).__name__}")
        sets = pl_module.problem.point_sets
        if self.point_set not in sets:
            raise ConfigError(f"{self.name}: point_set: {self.point_set!r} is not a point set of the problem; "
                             f"valid names are {list(sets)}")
        names = [phase.name for phase in pl_module.phases.phases]
        unknown = [name for name in self.phases or [] if name not in names]
        if unknown:
            raise ConfigError(f"{self.name}: phases: {unknown} are not phases of the module; its phases are {names}")
        if pl_module.resample_every:
            raise ConfigError(
                f"{self.name}: the module redraws its points every resample_every={pl_module.resample_every} "
                f"steps, which would throw the adapted points away; set resample_every=0 (this callback "
                f"changes the points itself every {self.every} steps)"
            )
        spec = sets[self.point_set]
        rows, periodic = getattr(spec, "rows", None), getattr(spec, "periodic", None)
        if rows is not None or periodic is not None:
            kind = "fixed observations" if rows is not None else "periodic pairs (row i and row n + i)"
            raise ConfigError(f"{self.name}: point_set: {self.point_set!r} holds {kind}, which cannot be resampled; "
                             f"adapt a point set drawn on regions, such as 'interior'")
        self._check_count(spec.points)
        self.regions, self.normals = spec.regions, bool(getattr(spec, "normals", False))
        self._logged = {}
        self.rank = int(trainer.global_rank)
        self.source, self._rng = self._streams(self.rank)
        if self._pending is not None:
            self._restore(self._pending)
            self._pending = None

    def _check_count(self, n: int) -> None:
        """Refuse a point set of ``n`` points that this callback cannot handle."""

    def _streams(self, rank: int) -> tuple[PointSource, np.random.Generator]:
        """Rank ``rank``'s candidate source and selection generator: their own branches of ``seed``'s tree."""
        candidates = stream_seed(self.seed, "candidates", self.point_set, rank)
        return (PointSource(self.regions, self.candidates, self.sampler, seed=candidates, normals=self.normals),
                np.random.default_rng(stream_seed(self.seed, "selection", self.point_set, rank)))

    def state_dict(self) -> dict[str, Any]:
        """Stream positions of this rank, rounds done, last round's step and mean residual."""
        return {"rank": self.rank, "draws": self.draws, "done_at": self.done_at, "last_residual": self.last_residual,
                "source": None if self.source is None else self.source.state_dict(),
                "rng": None if self._rng is None else self._rng.bit_generator.state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`; kept until :meth:`setup` when the streams do not exist yet."""
        if self.source is None:
            self._pending = dict(state_dict)
        else:
            self._restore(state_dict)

    def _restore(self, state: dict[str, Any]) -> None:
        if state["rank"] == self.rank and state["source"] is not None:
            self.source.load_state_dict(state["source"])
            self._rng.bit_generator.state = state["rng"]
        else:  # a checkpoint holds rank 0's state: other ranks replay their own streams to the same position
            self.source, self._rng = self._streams(self.rank)
            for _ in range(state["draws"]):
                self.draw_candidates()
        self.draws, self.done_at, self.last_residual = state["draws"], state["done_at"], state["last_residual"]

    # ----- a round -----

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        """Every ``every`` steps (not at step 0), change this rank's points of ``point_set``; log counts."""
        step = trainer.global_step
        collocation = pl_module.collocation
        in_phase = self.phases is None or pl_module.phases.phases[pl_module.phases.index_at(step)].name in self.phases
        if step > 0 and step % self.every == 0 and self.done_at != step and in_phase:
            points = collocation.current(pl_module.device, pl_module.dtype)  # draws them if there are none yet
            new = self._refine(pl_module, points[self.point_set], step)
            self.done_at = step
            if new is not None:
                collocation.points[self.point_set] = new
                pl_module.points_changed()  # a new objective: the optimizer keeps or drops its curvature
            self._logged = {}
        if collocation.points is not None:  # else the module draws them after this hook
            self._log(pl_module, collocation.points[self.point_set].shape[0])

    def _refine(self, module: PINNModule, points: Tensor, step: int) -> Tensor | None:
        """The new points of the set, or None to keep them."""
        raise NotImplementedError

    def draw_candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """A candidate set (rows as in the point set) and one uniform per candidate (RAD's selection keys)."""
        self.draws += 1
        candidates = self.source.sample()
        return candidates, self._rng.random(candidates.shape[0])

    def _magnitudes(self, module: PINNModule, candidates: np.ndarray, step: int) -> np.ndarray:
        """``|r|`` at the candidates, in batches of ``batch_size``, each graph freed before the next."""
        terms = module.problem.point_sets[self.point_set].terms
        parts = []
        with torch.inference_mode(False), torch.enable_grad():  # derivatives need a graph
            for start in range(0, candidates.shape[0], self.batch_size):
                x = torch.as_tensor(candidates[start:start + self.batch_size], dtype=module.dtype, device=module.device)
                parts.append(residual_magnitude(module.residuals({self.point_set: x}), terms))
        magnitude = torch.cat(parts).double().cpu().numpy()
        bad = ~np.isfinite(magnitude)
        if bad.any():
            raise NonFiniteLossError(f"{self.name}: the residual of {terms} is not finite at {int(bad.sum())} of "
                                     f"{magnitude.size} candidates of point set {self.point_set!r} at step {step}")
        self.last_residual = float(magnitude.mean())
        return magnitude

    def _log(self, module: PINNModule, count: int) -> None:
        if not self._logged:  # device tensors made once per round, not every step
            values = {f"adaptive/{self.point_set}_points": float(count)}
            if self.last_residual is not None:
                values[f"adaptive/{self.point_set}_residual"] = self.last_residual
            self._logged = {k: torch.tensor(v, device=module.device) for k, v in values.items()}
        module.log_dict(self._logged, on_step=True, on_epoch=False)


class RAD(_ResidualSampling):
    """Residual-based adaptive distribution: every ``every`` steps, redistribute the points by ``|r|``.

    With ``S`` a fresh set of ``candidates`` points on the point set's regions and ``N`` the
    current number of points, the new points are ``N`` distinct candidates drawn one after another
    with probability

        ``p(x) ∝ |r(x)|^k / mean_S |r|^k + c``,    ``|r| = sqrt(sum_t r_t^2)`` over the set's terms.

    ``k = 1, c = 1`` is Wu et al.'s recommended default; ``k = 0`` (or large ``c``) is uniform
    resampling; ``c = 0`` with large ``k`` approaches RAR. ``N`` is kept, so a compiled loss
    does not recompile.

    Points live where the module's do (``module.collocation.points[point_set]``, on its device
    and dtype), so the module's checkpoints keep them; the callback's streams and round counter
    go through ``state_dict``, so a resumed run continues exactly. The candidates come from the
    callback's own streams (the module's streams are not consumed, and no candidate stream is one
    of the module's: see ``lightning_pinn.points`` for the seed tree). Under DDP, rank ``r`` draws
    from its own streams and replaces only its own points: no communication; a resume replays each
    rank's streams to where they stood. After a round the module tells its optimizer
    (``PINNModule.points_changed``): a quasi-Newton phase keeps its curvature, L-BFGS starts anew.

    The module must not redraw points itself (``resample_every=0``, checked at setup): its draw
    runs after this callback and would throw the adapted points away. Rounds start at step
    ``every`` (the untrained network's residual says little).

    Logs ``adaptive/<point_set>_points`` and ``adaptive/<point_set>_residual`` (mean ``|r|`` of
    the last round's candidates) every step.

    Args:
        every: steps between rounds.
        candidates: size of ``S``; at least the point set's number of points (Wu et al.: many more).
        k: exponent of ``|r|``, ``>= 0``.
        c: uniform share, ``>= 0``.
        point_set: the point set to adapt: ``"interior"`` (the equations) or a condition's name.
        seed: seed of the candidate and selection streams, non-negative; each rank and point set
            has its own streams of it (``lightning_pinn.points.stream_seed``).
        sampler: how candidates are drawn: ``uniform`` (Wu et al.), ``lhs``, ``sobol`` or ``halton``.
        batch_size: candidates per residual evaluation (bounds the memory of the derivative graph).
        phases: names of the optimizer phases in which rounds happen (``None``: all), e.g.
            ``[quasi_newton]``: every ``every`` steps of the quasi-Newton phase only.

    Examples:
        >>> rad = RAD(every=1000, candidates=100_000)
        >>> trainer = pl.Trainer(callbacks=[rad])  # doctest: +SKIP
    """

    name = "RAD"

    def __init__(self, every: int = 1000, candidates: int = 100_000, k: float = 1.0, c: float = 1.0,
                 point_set: str = "interior", seed: int = 0, sampler: str = "uniform", batch_size: int = 8192,
                 phases: Any = None):
        super().__init__(every, candidates, point_set, seed, sampler, batch_size, phases)
        self.k = _non_negative_float("RAD: k", k)
        self.c = _non_negative_float("RAD: c", c)

    def _check_count(self, n: int) -> None:
        if self.candidates < n:
            raise ConfigError(f"RAD: candidates={self.candidates} must be at least the {n} points of point set "
                             f"{self.point_set!r} (they are drawn from the candidates without replacement)")

    def _refine(self, module: PINNModule, points: Tensor, step: int) -> Tensor:
        n = points.shape[0]
        self._check_count(n)
        candidates, uniforms = self.draw_candidates()
        density = rad_density(self._magnitudes(module, candidates, step), self.k, self.c)
        chosen = sample_proportional(density, n, uniforms)
        return torch.as_tensor(candidates[chosen], dtype=points.dtype, device=points.device)


class RAR(_ResidualSampling):
    """Residual-based adaptive refinement (greedy, RAR-G): every ``every`` steps, add the worst candidates.

    With ``S`` a fresh set of ``candidates`` points on the point set's regions, the ``add``
    candidates of largest ``|r| = sqrt(sum_t r_t^2)`` (over the set's terms) are appended to the
    current points, which are all kept, until the set holds ``max_points`` (``None``: no limit).

    The point count grows, so with ``compile`` on each round recompiles the loss (static shapes;
    past dynamo's recompile limit of 64 the loss runs eagerly): rounds should be few. State,
    checkpoints, DDP (each rank draws from its own streams and extends only its own points, so all
    ranks keep equal counts), L-BFGS and ``resample_every=0`` as in :class:`RAD`.

    Logs ``adaptive/<point_set>_points`` and ``adaptive/<point_set>_residual`` (mean ``|r|`` of
    the last round's candidates) every step.

    Args:
        every: steps between rounds.
        candidates: size of ``S``; at least ``add``.
        add: points added per round.
        point_set: the point set to refine: ``"interior"`` (the equations) or a condition's name.
        max_points: most points the set may hold (at least its initial count); ``None``: no limit.
        seed: seed of the candidate streams, non-negative; each rank and point set has its own
            (``lightning_pinn.points.stream_seed``).
        sampler: how candidates are drawn: ``uniform``, ``lhs``, ``sobol`` or ``halton``.
        batch_size: candidates per residual evaluation (bounds the memory of the derivative graph).
    """

    name = "RAR"

    def __init__(self, every: int = 1000, candidates: int = 10_000, add: int = 100, point_set: str = "interior",
                 max_points: int | None = None, seed: int = 0, sampler: str = "uniform", batch_size: int = 8192,
                 phases: Any = None):
        super().__init__(every, candidates, point_set, seed, sampler, batch_size, phases)
        self.add = _positive_int("RAR: add", add)
        if self.add > self.candidates:
            raise ConfigError(f"RAR: add={add} must be at most candidates={candidates}")
        self.max_points = None if max_points is None else _positive_int("RAR: max_points", max_points)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """As :meth:`RAD.setup`; warns that a compiled loss recompiles at every round."""
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and pl_module.compiled.enabled:
            rank_zero_warn("RAR: the loss is compiled for a fixed number of points; each RAR round adds points "
                           "and so recompiles it (past 64 versions it runs eagerly). Keep rounds few.")

    def _check_count(self, n: int) -> None:
        if self.max_points is not None and self.max_points < n:
            raise ConfigError(f"RAR: max_points={self.max_points} is below the {n} points point set "
                             f"{self.point_set!r} starts with")

    def _refine(self, module: PINNModule, points: Tensor, step: int) -> Tensor | None:
        room = self.add if self.max_points is None else min(self.add, self.max_points - points.shape[0])
        if room <= 0:
            return None
        candidates, _ = self.draw_candidates()
        magnitude = self._magnitudes(module, candidates, step)
        worst = np.argsort(-magnitude, kind="stable")[:room]
        added = torch.as_tensor(candidates[worst], dtype=points.dtype, device=points.device)
        return torch.cat([points, added])


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{key}: expected a positive integer but got {value!r}")
    return int(value)


def _non_negative_float(key: str, value: Any) -> float:
    number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{key}: expected a finite number >= 0 but got {value!r}")
    return float(value)
