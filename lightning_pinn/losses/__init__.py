"""How loss terms combine: balancing weights across terms, causal weights across time, in one weighted loss.

``balancing``: per-term weights ``lambda_i`` in ``sum_i w_i * lambda_i * L_i``, picked by
name with :func:`build_balancer`. ``causal``: the equation loss as a causally weighted sum
over time chunks, for time-dependent problems. ``weighted``: :class:`WeightedLoss`, residuals to the
training loss with both, which ``PINNModule`` and ``PhysicsLoss`` share.
"""

from lightning_pinn.losses.balancing import (
    BALANCERS,
    Balancer,
    FixedWeights,
    GradNormBalancing,
    ReLoBRaLo,
    build_balancer,
)
from lightning_pinn.losses.causal import CausalWeighting, causal_loss, causal_weights, chunk_losses
from lightning_pinn.losses.weighted import WeightedLoss, build_causal, weighted_total

__all__ = [
    "BALANCERS",
    "Balancer",
    "CausalWeighting",
    "FixedWeights",
    "GradNormBalancing",
    "ReLoBRaLo",
    "WeightedLoss",
    "build_balancer",
    "build_causal",
    "causal_loss",
    "causal_weights",
    "chunk_losses",
    "weighted_total",
]
