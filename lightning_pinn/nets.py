"""Networks: an MLP with input scaling from the problem's bounds to [-1, 1]."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

class Sin(nn.Module):
    """Elementwise sine activation."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "sin": Sin,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "relu": nn.ReLU,
}




class InputScaling(nn.Module):
    """Maps each input column affinely from ``[lo, hi]`` to ``[-1, 1]``."""

    def __init__(self, bounds: Sequence[Sequence[float]]):
        super().__init__()
        lo = torch.tensor([float(b[0]) for b in bounds])
        hi = torch.tensor([float(b[1]) for b in bounds])
        if torch.any(hi <= lo):
            raise ValueError(f"Expected bounds with lo < hi but got {[list(b) for b in bounds]}")
        self.register_buffer("centre", (hi + lo) / 2)
        self.register_buffer("half_width", (hi - lo) / 2)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.centre) / self.half_width


class MLP(nn.Module):
    """A fully connected network ``R^in -> R^out`` with Xavier-initialised layers.

    Args:
        in_features: number of coordinates.
        out_features: number of fields.
        width: neurons per hidden layer.
        depth: number of hidden layers.
        activation: one of ``tanh``, ``sin``, ``sigmoid``, ``softplus``, ``gelu``, ``silu``, ``relu``.
        bounds: ``[[lo, hi], ...]`` per input; when given, inputs are scaled to ``[-1, 1]`` first.

    Example:
        >>> net = MLP(2, 1, width=20, depth=8, bounds=[[-1, 1], [0, 1]])
        >>> net(torch.zeros(5, 2)).shape
        torch.Size([5, 1])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        width: int = 20,
        depth: int = 8,
        activation: str = "tanh",
        bounds: Sequence[Sequence[float]] | None = None,
    ):
        super().__init__()
        for key, value in (("in_features", in_features), ("out_features", out_features), ("width", width), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected {key} to be a positive integer but got {value!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Expected activation to be one of {sorted(ACTIVATIONS)} but got {activation!r}")
        if bounds is not None and len(bounds) != in_features:
            raise ValueError(f"Expected {in_features} bounds (one per input) but got {len(bounds)}")
        self._config = {"in_features": in_features, "out_features": out_features, "width": width,
                        "depth": depth, "activation": activation,
                        "bounds": None if bounds is None else [[float(v) for v in b] for b in bounds]}
        self.scaling = InputScaling(bounds) if bounds is not None else nn.Identity()
        sizes = [in_features] + [width] * depth + [out_features]
        layers: list[nn.Module] = []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            linear = nn.Linear(n_in, n_out)
            nn.init.xavier_normal_(linear.weight)
            nn.init.zeros_(linear.bias)
            layers.append(linear)
            if k < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(self.scaling(x))

    def config(self) -> dict[str, Any]:
        """A config that rebuilds this network with ``hydra.utils.instantiate``."""
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}", **self._config}
