"""Networks: an MLP with input scaling, optional Fourier features and residual connections.

Each module here also declares how forward-mode derivative jets pass through it
(:mod:`lightning_pinn.derivatives.jets`), so these networks run on the fast engine.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from lightning_pinn.derivatives.jets import (
    Jet,
    JetIndex,
    jet_through,
    register_activation,
    register_jet_rule,
    sin_cos,
    sin_taylor,
)


class Sin(nn.Module):
    """Elementwise sine activation."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


register_activation(Sin)(lambda module, v, order: sin_taylor(v, order))


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


@register_jet_rule(InputScaling)
def _scaling_jet(module: InputScaling, jet: Jet, index: JetIndex, path: str) -> Jet:
    return Jet((jet.value - module.centre) / module.half_width, jet.coeffs / module.half_width)


class FourierFeatures(nn.Module):
    """Random Fourier features ``[cos(2 pi x B), sin(2 pi x B)]`` (Tancik et al. 2020; Wang et al. 2021).

    ``B`` is ``(in_features, features)`` with entries from ``N(0, scale^2)``, fixed (a buffer).
    A larger ``scale`` lets the network fit higher frequencies.

    Args:
        in_features: number of inputs.
        features: number of frequencies; the output has ``2 * features`` columns.
        scale: standard deviation of the frequencies.
    """

    def __init__(self, in_features: int, features: int, scale: float = 1.0):
        super().__init__()
        if not scale > 0:
            raise ValueError(f"Expected a positive Fourier feature scale but got {scale}")
        self.register_buffer("frequencies", 2 * math.pi * scale * torch.randn(in_features, features))

    def forward(self, x: Tensor) -> Tensor:
        z = x @ self.frequencies
        return torch.cat([torch.cos(z), torch.sin(z)], dim=-1)


@register_jet_rule(FourierFeatures)
def _fourier_jet(module: FourierFeatures, jet: Jet, index: JetIndex, path: str) -> Jet:
    sin, cos = sin_cos(Jet(jet.value @ module.frequencies, jet.coeffs @ module.frequencies), index)
    return Jet(torch.cat([cos.value, sin.value], dim=-1), torch.cat([cos.coeffs, sin.coeffs], dim=-1))


class Residual(nn.Module):
    """A skip connection ``x + block(x)`` around a block that keeps the width."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


@register_jet_rule(Residual)
def _residual_jet(module: Residual, jet: Jet, index: JetIndex, path: str) -> Jet:
    out = jet_through(module.block, jet, index, f"{path}.block")
    return Jet(jet.value + out.value, jet.coeffs + out.coeffs)


class MLP(nn.Module):
    """A fully connected network ``R^in -> R^out`` with Xavier-initialised layers.

    Args:
        in_features: number of coordinates.
        out_features: number of fields.
        width: neurons per hidden layer.
        depth: number of hidden layers.
        activation: one of ``tanh``, ``sin``, ``sigmoid``, ``softplus``, ``gelu``, ``silu``, ``relu``.
        bounds: ``[[lo, hi], ...]`` per input; when given, inputs are scaled to ``[-1, 1]`` first.
        fourier_features: when positive, embed the (scaled) inputs with that many random
            Fourier frequencies (:class:`FourierFeatures`) before the first layer.
        fourier_scale: standard deviation of those frequencies.
        residual: skip connections ``h + act(W h + b)`` around every hidden layer after the first.

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
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        residual: bool = False,
    ):
        super().__init__()
        for key, value in (("in_features", in_features), ("out_features", out_features), ("width", width), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected {key} to be a positive integer but got {value!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Expected activation to be one of {sorted(ACTIVATIONS)} but got {activation!r}")
        if isinstance(fourier_features, bool) or not isinstance(fourier_features, int) or fourier_features < 0:
            raise ValueError(f"Expected fourier_features to be a non-negative integer but got {fourier_features!r}")
        if bounds is not None and len(bounds) != in_features:
            raise ValueError(f"Expected {in_features} bounds (one per input) but got {len(bounds)}")
        self._config = {"in_features": in_features, "out_features": out_features, "width": width,
                        "depth": depth, "activation": activation,
                        "bounds": None if bounds is None else [[float(v) for v in b] for b in bounds],
                        "fourier_features": fourier_features, "fourier_scale": float(fourier_scale),
                        "residual": bool(residual)}
        self.scaling = InputScaling(bounds) if bounds is not None else nn.Identity()
        self.embedding = FourierFeatures(in_features, fourier_features, fourier_scale) if fourier_features else nn.Identity()
        sizes = [2 * fourier_features or in_features] + [width] * depth + [out_features]
        layers: list[nn.Module] = []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            linear = nn.Linear(n_in, n_out)
            nn.init.xavier_normal_(linear.weight)
            nn.init.zeros_(linear.bias)
            if k == len(sizes) - 2:
                layers.append(linear)
            elif residual and k > 0:
                layers.append(Residual(nn.Sequential(linear, ACTIVATIONS[activation]())))
            else:
                layers += [linear, ACTIVATIONS[activation]()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(self.embedding(self.scaling(x)))

    def config(self) -> dict[str, Any]:
        """A config that rebuilds this network with ``hydra.utils.instantiate``."""
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}", **self._config}


@register_jet_rule(MLP)
def _mlp_jet(module: MLP, jet: Jet, index: JetIndex, path: str) -> Jet:
    for name in ("scaling", "embedding", "layers"):
        jet = jet_through(getattr(module, name), jet, index, f"{path}.{name}")
    return jet
