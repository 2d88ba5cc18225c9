"""Relative L2 error ``||pred - ref|| / ||ref||`` as a function and as a torchmetrics ``Metric``."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


def _relative_l2_update(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"Expected pred and target of the same shape but got {tuple(pred.shape)} and {tuple(target.shape)}")
    diff = (pred - target).to(torch.float64)
    return diff.square().sum(), target.to(torch.float64).square().sum()


def _relative_l2_compute(squared_error: Tensor, squared_reference: Tensor) -> Tensor:
    return torch.sqrt(squared_error / squared_reference)


def relative_l2_error(pred: Tensor, target: Tensor) -> Tensor:
    """``||pred - target||_2 / ||target||_2`` over all elements, computed in float64.

    Examples:
        >>> relative_l2_error(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 0.0])).item()
        1.3333333333333333
    """
    return _relative_l2_compute(*_relative_l2_update(pred, target))


class RelativeL2Error(Metric):
    """Relative L2 error accumulated over batches (and summed across DDP ranks before the ratio).

    Examples:
        >>> metric = RelativeL2Error()
        >>> metric.update(torch.tensor([3.0]), torch.tensor([3.0]))
        >>> metric.update(torch.tensor([4.0]), torch.tensor([0.0]))
        >>> metric.compute().item()
        1.3333333333333333
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("squared_error", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("squared_reference", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of predictions and reference values."""
        error, reference = _relative_l2_update(pred, target)
        self.squared_error += error
        self.squared_reference += reference

    def compute(self) -> Tensor:
        """The relative L2 error of everything seen since the last reset."""
        return _relative_l2_compute(self.squared_error, self.squared_reference)
