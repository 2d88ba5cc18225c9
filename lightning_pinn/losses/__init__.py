"""How loss terms combine: balancing weights across terms, causal weights across time.

``balancing``: per-term weights ``lambda_i`` in ``sum_i w_i * lambda_i * L_i``, picked by
name with :func:`build_balancer`. ``causal``: the equation loss as a causally weighted sum
over time chunks, for time-dependent problems.
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

__all__ = [
    "BALANCERS", "Balancer", "CausalWeighting", "FixedWeights", "GradNormBalancing", "ReLoBRaLo", "build_balancer",
    "causal_loss", "causal_weights", "chunk_losses",
]
