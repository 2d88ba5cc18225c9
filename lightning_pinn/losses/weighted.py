"""Residuals to the training loss of a problem: the one composition ``PINNModule`` and ``PhysicsLoss`` share.

For per-point residuals ``r_i`` of the problem's terms::

    L = sum_i w_i * lambda_i * L_i  +  sum_j E_j

``L_i`` is the mean square ``mean(r_i**2)``, or for equations under causal weighting the
causally weighted mean over time chunks of the interior points (``losses.causal``);
``lambda_i`` are the balancer's weights (``losses.balancing``; 1 without one); ``w_i`` are the
problem's weights; ``E_j`` are terms the problem does not know (Python residuals a subclass
adds), unweighted.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from lightning_pinn.config import build, is_config, to_plain
from lightning_pinn.errors import ConfigError
from lightning_pinn.losses.balancing import FixedWeights, build_balancer
from lightning_pinn.losses.causal import CausalWeighting
from lightning_pinn.problem.spec import INTERIOR, Problem

Reduce = Callable[[Tensor], Tensor]
"""A mean over DDP ranks (``trainer.strategy.reduce``), or None in one process."""


class WeightedLoss:
    """The loss of a problem's terms, with balancing and causal weighting, and the state they carry.

    Args:
        problem: the spec whose terms and weights to use.
        balancing: ``None``/``"fixed"``, ``"gradnorm"``, ``"relobralo"``, ``{"name": ..., **options}``, a
            ``_target_`` config or a balancer (see ``losses.balancing.build_balancer``).
        causal: ``None``, ``{"chunks": 32, "epsilon": 1.0, ...}`` or a :class:`CausalWeighting`; needs a
            time coordinate.

    Examples:
        >>> problem = Problem(coords={"x": [0, 1]}, fields=["u"], equations={"ode": "u_x - u"},
        ...                   conditions={"start": {"region": "x=0", "residual": "u - 1", "weight": 3.0}})
        >>> loss = WeightedLoss(problem)
        >>> terms = loss.terms({"ode": torch.tensor([1.0, 3.0]), "start": torch.tensor([2.0])}, {})
        >>> terms
        {'ode': tensor(5.), 'start': tensor(4.)}
        >>> loss.total(terms, params=[], step=0)
        tensor(17.)
    """

    def __init__(self, problem: Problem, balancing: Any = None, causal: Any = None):
        self.problem = problem
        self.balancer = build_balancer(balancing)
        """Per-term weights ``lambda_i`` on top of the problem's."""
        self.causal = build_causal(causal, problem)
        """The causal weighting, or None."""
        equations = problem.point_sets[INTERIOR].terms if INTERIOR in problem.point_sets else []
        self.causal_terms: list[str] = [] if self.causal is None else self.causal.select(equations)
        # the last evaluation's weights; ones until then, so that a compiled loss sees the same keys from its
        # first call on (an empty dict at the first call would recompile it at the second)
        self.causal_weights: dict[str, Tensor] = {name: torch.ones(self.causal.chunks) for name in self.causal_terms}
        """``{term: (chunks,)}`` causal weights of the last evaluation."""
        self.balance: dict[str, Tensor] = {}
        """The balancer's weights of the last evaluation."""
        self._held_at: int | None = None
        self.time_bounds: tuple[float, float] | None = None
        """The time interval of causal weighting, if not the problem's (a time window's)."""

    def terms(self, residuals: Mapping[str, Tensor], points: Mapping[str, Tensor],
              causal_weights: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Unweighted loss terms ``{term: L_i}`` from per-point residuals ``{term: (N,)}``.

        Causal terms use ``causal_weights`` ``{term: (chunks,)}`` when given (see :meth:`held_weights`),
        else weights computed from these residuals; either way they become :attr:`causal_weights`.
        """
        out = {}
        for name, r in residuals.items():
            if name in self.causal_terms:
                time = self.problem.coords.index(self.causal.time)
                given = None if causal_weights is None else causal_weights[name]
                bounds = self.time_bounds or self.problem.bounds[time]
                out[name], self.causal_weights[name] = self.causal(r, points[INTERIOR][:, time], bounds, given)
            else:
                out[name] = r.square().mean()
        return out

    def held_weights(self, step: int, hold: bool) -> dict[str, Tensor] | None:
        """The causal weights an evaluation at ``step`` must use, or None to compute them.

        An optimizer that evaluates the loss many times per step (L-BFGS, ``hold=True``) needs one
        objective within the step: its line search treats the weights as constants. So the step's
        first evaluation computes them and the others reuse them. With ``hold=False`` (Adam: one
        evaluation per step) they are computed every time.
        """
        if not hold or not self.causal_terms:
            return None
        if self._held_at != step:
            self._held_at = step
            return None
        return {name: weights.detach() for name, weights in self.causal_weights.items()}

    def total(self, terms: Mapping[str, Tensor], params: list[Tensor], step: int,
              reduce: Reduce | None = None) -> Tensor:
        """``sum_i w_i lambda_i L_i`` over the problem's terms, plus the other terms unweighted.

        Args:
            terms: ``{term: L_i}`` from :meth:`terms` (and any extra terms).
            params: the trainable parameters, for balancers that weigh terms by their gradients.
            step: the global step, for balancers that update every few steps.
            reduce: a mean over DDP ranks, so every rank uses the same balancing weights.
        """
        known = {k: v for k, v in terms.items() if k in self.problem.terms}
        extra = [v for k, v in terms.items() if k not in self.problem.terms]
        if not isinstance(self.balancer, FixedWeights):
            self.balance = self.balancer.weights(known, params=params, step=step, reduce=reduce)
            known = {k: self.balance[k] * v for k, v in known.items()}
        total = weighted_total(self.problem, known)
        return total + sum(extra) if extra else total

    def after_step(self, reduce: Reduce | None = None) -> bool:
        """Advance the causal ``epsilon`` schedule once the last chunk's weight is high enough; True when it did."""
        if self.causal is None or not self.causal_weights:
            return False
        return self.causal.update(self.causal_weights, reduce)

    def metrics(self) -> dict[str, Tensor]:
        """What to log besides the terms: ``weight_<term>`` (balancing) and ``causal_min_weight``."""
        out = {} if isinstance(self.balancer, FixedWeights) else {f"weight_{k}": v for k, v in self.balance.items()}
        if self.causal_terms:
            out["causal_min_weight"] = self.causal.min_weight(self.causal_weights)
        return out

    @property
    def term_gradients(self) -> bool:
        """Whether the balancer differentiates the terms one by one (``retain_graph``); unknown ones may."""
        return getattr(self.balancer, "term_gradients", True) is not False

    def state_dict(self) -> dict[str, Any]:
        """The balancer's state and the causal schedule's stage."""
        return {"balancer": self.balancer.state_dict(),
                "causal": None if self.causal is None else self.causal.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        if state.get("balancer") is not None:
            self.balancer.load_state_dict(state["balancer"])
        if self.causal is not None and state.get("causal") is not None:
            self.causal.load_state_dict(state["causal"])


def build_causal(causal: Any, problem: Problem) -> CausalWeighting | None:
    """``None``, a mapping of :class:`CausalWeighting` options (time defaults to the problem's), a config or an object.

    Raises:
        ConfigError: for anything else, or a time that is not one of the problem's coordinates.
    """
    if causal is None:
        return None
    causal = build(causal, "causal") if is_config(causal) else causal
    if isinstance(causal, Mapping):
        causal = CausalWeighting(**{"time": problem.time or "t", **to_plain(causal)})
    if not isinstance(causal, CausalWeighting):
        raise ConfigError(f"causal: expected null, a mapping of options or a CausalWeighting but got {causal!r}")
    if causal.time not in problem.coords:
        raise ConfigError(f"causal: causal weighting needs a time coordinate, and {causal.time!r} is not one of "
                          f"{list(problem.coords)}")
    return causal


def weighted_total(problem: Problem, terms: Mapping[str, Tensor]) -> Tensor | int:
    """The sum of loss terms times the problem's weights (0 for no terms).

    Unit weights multiply nothing and the sum starts at the first term, not at 0: outside a
    compiled region each extra operation is one more kernel launch and autograd node per step.
    """
    weighted = [value if (weight := problem.terms[name].weight) == 1 else weight * value
                for name, value in terms.items()]
    return functools.reduce(operator.add, weighted) if weighted else 0
