"""Causal training for time-dependent problems (Wang, Sankaran & Perdikaris 2022).

"Respecting causality is all you need for training physics-informed neural networks":
the interior points are split into ``M`` equal time chunks ``[t0, t1]``; with ``L_i``
the mean squared residual on chunk ``i``, the equation loss is::

    L_r = (1/M) * sum_i w_i * L_i,    w_i = exp(-epsilon * sum_{k<i} L_k)

with the ``w_i`` computed from detached ``L_k``. A chunk gets weight only once the
chunks before it have small residuals, so the solution is learned forward in time.
``w_0 = 1`` and the weights do not increase; the last one, ``min w = w_{M-1}``, is the
convergence signal (close to 1 once every chunk is resolved). :func:`causal_loss` is the
maths; :class:`CausalWeighting` holds the configuration and the ``epsilon`` schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_pinn.errors import ConfigError


def chunk_losses(residual: Tensor, t: Tensor, t_range: Sequence[float], chunks: int) -> tuple[Tensor, Tensor]:
    """Per-chunk mean squared residual ``L_i`` and point count ``n_i`` over ``chunks`` equal time bins.

    Point ``n`` falls in chunk ``floor((t_n - t0) / (t1 - t0) * chunks)``, clamped to
    ``[0, chunks - 1]``: ``t = t1`` is in the last chunk, points outside the range in the
    nearest end chunk. An empty chunk has ``L_i = 0`` and ``n_i = 0``. ``L`` is
    differentiable in ``residual``; ``t`` is only used for binning.

    Args:
        residual: per-point residuals ``(N,)``.
        t: the time of each point ``(N,)``.
        t_range: ``(t0, t1)`` with ``t0 < t1``.
        chunks: the number of bins ``M``.

    Returns:
        ``(L, n)``, both ``(chunks,)`` in the residual's dtype.

    Examples:
        >>> chunk_losses(torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0.1, 0.2, 1.0]), (0.0, 1.0), 3)
        (tensor([5., 0., 4.]), tensor([2., 0., 1.]))
    """
    t0, t1 = _check_inputs(residual, t, t_range, chunks)
    index = torch.floor((t.detach() - t0) * (chunks / (t1 - t0))).long().clamp(0, chunks - 1)
    squares = residual.square()
    sums = squares.new_zeros(chunks).index_add(0, index, squares)
    counts = squares.new_zeros(chunks).index_add(0, index, torch.ones_like(squares))
    return sums / counts.clamp_min(1), counts


def causal_weights(losses: Tensor, epsilon: float | Tensor) -> Tensor:
    """``w_i = exp(-epsilon * sum_{k<i} L_k)`` for chunk losses ``L`` of shape ``(M,)``, detached.

    Examples:
        >>> causal_weights(torch.tensor([1.0, 2.0, 0.5]), 0.5)
        tensor([1.0000, 0.6065, 0.2231])
    """
    losses = losses.detach()
    before = torch.cat([losses.new_zeros(1), torch.cumsum(losses, dim=0)[:-1]])  # cumsum of L >= 0 is monotone
    return torch.exp(-epsilon * before)


def causal_loss(
    residual: Tensor, t: Tensor, t_range: Sequence[float], chunks: int, epsilon: float | Tensor,
    weights: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The causally weighted loss ``(1/M) sum_i w_i L_i`` and the weights ``w`` ``(M,)``.

    ``L_i`` as in :func:`chunk_losses`, ``w`` as in :func:`causal_weights` (from the
    detached ``L``: the gradient reaches the residuals of every chunk, scaled by
    ``w_i``, and never flows through ``w``). With ``epsilon = 0`` this is the mean of the
    chunk losses. No data-dependent Python control flow: safe under ``torch.compile``
    (``epsilon`` may be a 0-dim tensor so that changing it does not recompile).

    Args:
        residual: per-point residuals ``(N,)``.
        t: the time of each point ``(N,)``.
        t_range: ``(t0, t1)``, the time bounds of the problem.
        chunks: the number of time chunks ``M``.
        epsilon: the causality parameter (``>= 0``).
        weights: given weights ``(M,)`` to use in place of the computed ones (an optimizer whose
            line search needs one objective holds them fixed for a step); ``epsilon`` is then unused.

    Returns:
        ``(loss, w)``: a scalar with the residual's graph, and the detached weights.

    Raises:
        ValueError: for shapes that differ, a bad ``t_range`` or ``chunks``.

    Examples:
        >>> loss, w = causal_loss(torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0.1, 0.5, 0.9]), (0.0, 1.0), 3, 0.1)
        >>> w
        tensor([1.0000, 0.9048, 0.3679])
        >>> loss  # (1 + exp(-0.1) * 9 + exp(-1) * 4) / 3, where L = [1, 9, 4]
        tensor(3.5384)
    """
    losses, _ = chunk_losses(residual, t, t_range, chunks)
    weights = causal_weights(losses, epsilon) if weights is None else weights.detach()
    return (weights * losses).sum() / chunks, weights


class CausalWeighting:
    """Configuration of causal training: which terms, how many chunks, which ``epsilon``.

    Applies :func:`causal_loss` to the residuals of the chosen equation terms (evaluated on
    interior points) in place of their mean square. ``epsilon`` may be a schedule
    ``[eps_0, eps_1, ...]``: :meth:`update` moves to the next value once the smallest
    causal weight exceeds ``threshold`` (Wang et al. use ``[1e-2, 1e-1, 1, 10, 100]`` and
    ``0.99``). The position in the schedule is the only state.

    Args:
        chunks: the number of time chunks ``M`` (a positive integer).
        epsilon: ``epsilon >= 0``, or a non-empty list of them (the schedule).
        terms: names of the equation terms it applies to; ``None``: every equation of the problem.
        time: the name of the time coordinate.
        threshold: the smallest weight, in ``(0, 1]``, at which the schedule advances.

    Examples:
        >>> causal = CausalWeighting(chunks=3, epsilon=[1.0, 10.0])
        >>> loss, w = causal(torch.tensor([0.01, 0.0, 0.0]), torch.tensor([0.1, 0.5, 0.9]), (0.0, 1.0))
        >>> causal.min_weight(w)
        tensor(0.9999)
        >>> causal.update(w), causal.epsilon
        (True, 10.0)
    """

    def __init__(
        self,
        chunks: int = 32,
        epsilon: float | Sequence[float] = 1.0,
        terms: Sequence[str] | None = None,
        time: str = "t",
        threshold: float = 0.99,
    ):
        if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
            raise ConfigError(f"causal.chunks: expected a positive integer but got {chunks!r}")
        schedule = list(epsilon) if isinstance(epsilon, Sequence) and not isinstance(epsilon, str) else [epsilon]
        if not schedule or not all(_is_number(e) and e >= 0 for e in schedule):
            raise ConfigError(f"causal.epsilon: expected a number >= 0 or a non-empty list of them but got {epsilon!r}")
        if terms is not None and (isinstance(terms, str) or not all(isinstance(name, str) for name in terms)):
            raise ConfigError(f"causal.terms: expected a list of equation names or null but got {terms!r}")
        if not isinstance(time, str):
            raise ConfigError(f"causal.time: expected the name of the time coordinate but got {time!r}")
        if not _is_number(threshold) or not 0 < threshold <= 1:
            raise ConfigError(f"causal.threshold: expected a number in (0, 1] but got {threshold!r}")
        self.chunks = chunks
        self.epsilons: tuple[float, ...] = tuple(float(e) for e in schedule)
        self.terms: tuple[str, ...] | None = None if terms is None else tuple(terms)
        self.time = time
        self.threshold = float(threshold)
        self.stage = 0
        """Index of the current ``epsilon`` in :attr:`epsilons`."""

    @property
    def epsilon(self) -> float:
        """The current ``epsilon``."""
        return self.epsilons[self.stage]

    def select(self, equations: Sequence[str]) -> list[str]:
        """The names among a problem's ``equations`` that causal weighting applies to.

        Raises:
            ValueError: when :attr:`terms` names a term that is not an equation.
        """
        if self.terms is None:
            return list(equations)
        unknown = [name for name in self.terms if name not in equations]
        if unknown:
            raise ConfigError(f"causal.terms: {unknown} are not equation terms; expected names among {list(equations)}")
        return [name for name in equations if name in self.terms]

    def __call__(self, residual: Tensor, t: Tensor, t_range: Sequence[float],
                 weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """:func:`causal_loss` with this configuration and the current ``epsilon`` (or ``weights``): ``(loss, w)``."""
        return causal_loss(residual, t, t_range, self.chunks, self.epsilon, weights)

    @staticmethod
    def min_weight(weights: Tensor | Mapping[str, Tensor]) -> Tensor:
        """The last chunk's weight ``w_{M-1}`` (the smallest), minimized over terms when given ``{term: w}``; detached."""
        if isinstance(weights, Mapping):
            if not weights:
                raise ConfigError("causal: min_weight needs the weights of at least one term")
            return torch.stack([w.detach()[-1] for w in weights.values()]).min()
        return weights.detach()[-1]

    def update(self, weights: Tensor | Mapping[str, Tensor], reduce: Callable[[Tensor], Tensor] | None = None) -> bool:
        """Advance the ``epsilon`` schedule when ``min_weight(weights) > threshold``; True when it advanced.

        Call it after a step, outside any compiled region. It reads the weight back to the
        host only while the schedule has a next value. Under DDP, ``reduce`` (a mean over
        ranks) is applied to the smallest weight first, so every rank takes the same decision.
        """
        if self.stage + 1 >= len(self.epsilons):
            return False
        smallest = self.min_weight(weights)
        if reduce is not None:
            smallest = reduce(smallest)
        if float(smallest) > self.threshold:
            self.stage += 1
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        """``{"stage": index of the current epsilon}``."""
        return {"stage": self.stage}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        stage = int(state["stage"])
        if not 0 <= stage < len(self.epsilons):
            raise ConfigError(f"causal: the checkpoint is at epsilon stage {stage} but the schedule has "
                             f"{len(self.epsilons)} values {list(self.epsilons)}")
        self.stage = stage

    def to_config(self) -> dict[str, Any]:
        """A ``_target_`` config that rebuilds this object (its arguments, not its stage)."""
        epsilon: float | list[float] = self.epsilons[0] if len(self.epsilons) == 1 else list(self.epsilons)
        return {
            "_target_": f"{CausalWeighting.__module__}.{CausalWeighting.__qualname__}", "chunks": self.chunks,
            "epsilon": epsilon, "terms": None if self.terms is None else list(self.terms), "time": self.time,
            "threshold": self.threshold,
        }


def _check_inputs(residual: Tensor, t: Tensor, t_range: Sequence[float], chunks: int) -> tuple[float, float]:
    if residual.dim() != 1 or residual.shape != t.shape:
        raise ConfigError(f"causal: expected residual and t of the same shape (N,) but got "
                         f"{tuple(residual.shape)} and {tuple(t.shape)}")
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ConfigError(f"causal.chunks: expected a positive integer but got {chunks!r}")
    if len(t_range) != 2 or not float(t_range[0]) < float(t_range[1]):
        raise ConfigError(f"causal: expected a time range (t0, t1) with t0 < t1 but got {t_range!r}")
    return float(t_range[0]), float(t_range[1])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
