"""A minimal hand-written forward-jet loop for Burgers under ``torch.compile``: the floor for our jets.

No library code: the network's value and the three derivative rows Burgers needs (``u_x``,
``u_t``, ``u_xx``) are pushed through each ``Linear`` + ``tanh`` layer by hand, in the
features-first layout our jets use, and the loss is compiled the way ``PINNModule(compile=True)``
compiles ours. It answers how much of our jets' step is the engine's generality rather than the
arithmetic itself. Same network (and weights) as the hand-written nested-autograd loop in
``step_time.py``, same points; ``step_time.py`` trains it with ``torch.optim.Adam(fused=True)``,
as our candidates. Other problems: None (not expressed).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch


class BurgersJets:
    """The hand-written jet loss of Burgers for an ``nn.Linear``/``tanh`` stack (weights ``(out, in)``,
    biases ``(out, 1)``); ``loss(x_t)`` takes the points transposed, ``(2, N)`` with rows x and t."""

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor], nu: float = 0.01 / math.pi):
        self.weights, self.biases, self.nu = weights, biases, nu

    def loss(self, x_t: torch.Tensor) -> torch.Tensor:
        """Mean square of ``u_t + u u_x - nu u_xx`` over the points."""
        weights, biases = self.weights, self.biases
        h = torch.addmm(biases[0], weights[0], x_t)
        n = x_t.shape[1]
        dx = weights[0][:, 0:1].expand(-1, n).contiguous()  # d h / dx after the first layer
        dt = weights[0][:, 1:2].expand(-1, n).contiguous()
        dxx = torch.zeros_like(h)
        for w, b in zip(weights[1:], biases[1:]):
            t = torch.tanh(h)
            s = 1 - t * t  # tanh' ; tanh'' = -2 t s
            dx, dt, dxx = s * dx, s * dt, s * dxx - 2 * t * s * dx * dx
            h = torch.addmm(b, w, t)
            dx, dt, dxx = w @ dx, w @ dt, w @ dxx
        residual = dt + h * dx - self.nu * dxx
        return residual.square().mean()


def build_loss(problem: str, points: np.ndarray, width: int, depth: int, device: torch.device,
               seed: int = 0) -> tuple[Callable[[], torch.Tensor], list[torch.Tensor]] | None:
    """The compiled loss (no arguments: the points are bound) and its parameters, or None for a
    problem other than Burgers. ``step_time.py`` wraps them in its bare training step."""
    if problem != "burgers":
        return None
    torch.manual_seed(seed)
    sizes = [2] + [width] * depth + [1]
    weights, biases = [], []
    for a, b in zip(sizes[:-1], sizes[1:]):  # the hand-written loop's nn.Linear layers, same draws
        linear = torch.nn.Linear(a, b)
        torch.nn.init.xavier_normal_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
        weights.append(torch.nn.Parameter(linear.weight.detach().to(device)))
        biases.append(torch.nn.Parameter(linear.bias.detach().to(device).unsqueeze(1)))
    x_t = torch.as_tensor(points, device=device).T.contiguous()  # (2, N): rows x and t
    options = {"options": {"cpp_wrapper": True}} if x_t.device.type == "cpu" else {}
    compiled = torch.compile(BurgersJets(weights, biases).loss, dynamic=False, **options)
    return (lambda: compiled(x_t)), [*weights, *biases]
