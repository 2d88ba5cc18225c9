"""Residuals of conditions that span more than one point: periodic pairs and observations.

Their residual vectors are not one value per point: a periodic condition on ``2 m`` points
compares ``m`` pairs for each of its expressions, and a data condition compares each
observed field at each observation. Both return one flat vector whose mean square is
the loss term.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from lightning_pinn.problem.expressions import Expression


class PeriodicResidual:
    """``e(lower) - e(upper)`` for each expression ``e``, over the ``m`` point pairs of a periodic set.

    The set's rows ``i`` and ``m + i`` are a point on the lower face and its image on the upper one.

    Args:
        expressions: what must agree across the faces, e.g. ``u`` and ``u_x``.
    """

    def __init__(self, expressions: Sequence[Expression]):
        self.expressions = list(expressions)
        self.derivatives = frozenset(d for e in self.expressions for d in e.derivatives)
        """Every partial the expressions ask for."""

    def __call__(self, evaluation: Any) -> Tensor:
        m = evaluation.x.shape[0] // 2
        parts = []
        for expression in self.expressions:
            value = torch.as_tensor(expression(evaluation), dtype=evaluation.x.dtype, device=evaluation.x.device)
            value = value.expand(2 * m) if value.dim() == 0 else value
            parts.append(value[:m] - value[m:])
        return torch.cat(parts)

    def __repr__(self) -> str:
        return f"PeriodicResidual({[e.source for e in self.expressions]})"


class ObservationResidual:
    """``field - observed`` for each observed field at each observation, as one flat vector.

    Args:
        fields: the observed fields, in the order of the point set's value columns.
    """

    derivatives: frozenset = frozenset()

    def __init__(self, fields: Sequence[str]):
        self.fields = tuple(fields)

    def __call__(self, evaluation: Any) -> Tensor:
        return torch.cat([evaluation(name) - evaluation.observed[name] for name in self.fields])

    def __repr__(self) -> str:
        return f"ObservationResidual({list(self.fields)})"
