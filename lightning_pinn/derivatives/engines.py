"""The derivative engines behind ``derivatives: auto | autograd | jets``, and how one is chosen.

An engine turns a network and one point set into the fields at the points and a lookup
``(field, coords) -> (N,) partial``. ``autograd`` works for any network; ``jets`` runs
MLP-family networks forward once per point set and is what ``torch.compile`` can compile.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from lightning_pinn.derivatives.autograd import Derivatives
from lightning_pinn.derivatives.jets import JetDerivatives, JetIndex, index_for, unsupported_reason
from lightning_pinn.errors import ConfigError

ENGINES = ("auto", "autograd", "jets")
"""The values of the ``derivatives`` option."""

Required = set[tuple[str, tuple[str, ...]]]


class AutogradEngine:
    """Nested reverse-mode autograd (``torch.autograd.grad(..., create_graph=True)``); any network."""

    name = "autograd"

    def evaluate(self, forward: Callable[[Tensor], Tensor], x: Tensor, coords: Sequence[str],
                 fields: Sequence[str], required: Required, point_set: str = "") -> tuple[Tensor, Tensor, Derivatives]:
        """``(x, y, derivatives)`` at points ``x``: ``x`` is returned with ``requires_grad=True``."""
        x = x.detach().requires_grad_(True)
        y = forward(x)
        check_fields(x, y, fields)
        return x, y, Derivatives(x, y, coords, fields)

    def __repr__(self) -> str:
        return "AutogradEngine()"


def check_fields(x: Tensor, y: Tensor, fields: Sequence[str]) -> None:
    """Raise a ValueError naming the fields when ``y`` is not ``(N, len(fields))`` for ``N`` points ``x``."""
    if y.dim() != 2 or y.shape != (x.shape[0], len(fields)):
        raise ConfigError(f"the network maps {tuple(x.shape)} points to {tuple(y.shape)}, expected "
                         f"(N, {len(fields)}) for fields {list(fields)}")


class JetEngine:
    """Forward-mode jets through ``net``; remembers per point set which partials its terms ask for.

    Args:
        net: a network every module of which has a jet rule.
        required: ``{point set: {(field, coords), ...}}`` known up front (from expressions);
            requests outside it are added on first use.
    """

    name = "jets"

    def __init__(self, net: nn.Module):
        self.net = net
        self.required: dict[str, Required] = {}
        """Per point set, the partials its terms have asked for."""
        self._indices: dict[str, JetIndex] = {}

    def prepare(self, coords: Sequence[str], required: dict[str, Required]) -> None:
        """Build the jet indices of these point sets now, outside any compiled region."""
        for point_set, needed in required.items():
            known = self.required.setdefault(point_set, set())
            if point_set not in self._indices or not needed <= known:
                known |= needed
                self._indices[point_set] = index_for(coords, known)

    def evaluate(self, forward: Callable[[Tensor], Tensor], x: Tensor, coords: Sequence[str],
                 fields: Sequence[str], required: Required, point_set: str = "") -> tuple[Tensor, Tensor, JetDerivatives]:
        """``(x, y, derivatives)`` at points ``x`` from one jet pass (``forward`` is not called)."""
        if point_set not in self._indices:
            self.prepare(coords, {point_set: required})
        derivatives = JetDerivatives(self.net, x.detach(), coords, fields, self.required[point_set],
                                     self._indices[point_set], lambda index: self._indices.__setitem__(point_set, index))
        check_fields(x, derivatives.y, fields)
        return x.detach(), derivatives.y, derivatives

    def __repr__(self) -> str:
        return f"JetEngine({type(self.net).__name__})"


def choose_engine(choice: str, net: nn.Module | None, n_coords: int, why_not_net: str | None = None,
                  max_order: int | None = None, compiled: bool = False) -> tuple[AutogradEngine | JetEngine, str]:
    """The engine for ``derivatives=choice`` and a one-line reason.

    ``auto`` takes jets when the network supports them and they are the faster engine: when the
    loss is compiled, or when some term needs a derivative of order 3 or more. For eager runs up
    to order 2 nested autograd was faster (``python benchmarks/step_time.py`` measures the engines;
    its results are in ``benchmarks/results/step_time.json``).

    Args:
        choice: ``auto``, ``autograd`` or ``jets``.
        net: the network whose fields the residuals differentiate, or None when the fields come
            from arbitrary code.
        n_coords: number of coordinates (for a probe of the network).
        why_not_net: set when the fields are not ``net(x)`` (e.g. an overridden ``forward``).
        max_order: the highest derivative order the terms declare (None: unknown, jets when supported).
        compiled: whether the loss will be compiled.

    Raises:
        ValueError: for an unknown choice, or ``jets`` on a network that jets cannot run.
    """
    if choice not in ENGINES:
        raise ConfigError(f"derivatives: expected one of {list(ENGINES)} but got {choice!r}")
    if choice == "autograd":
        return AutogradEngine(), "derivatives=autograd"
    reason = why_not_net or ("the fields are not computed by an nn.Module" if net is None else None)
    reason = reason or unsupported_reason(net, n_coords)
    if reason is not None:
        if choice == "jets":
            raise ConfigError(f"derivatives=jets cannot run this network: {reason}; use derivatives=autograd (or auto)")
        return AutogradEngine(), f"derivatives=auto falls back to autograd: {reason}"
    if choice == "auto" and not compiled and max_order is not None and max_order <= 2:
        return AutogradEngine(), (f"derivatives=auto chose autograd: eager jets are slower up to order 2 "
                                  f"(this problem: order {max_order}); compile=true or derivatives=jets uses jets")
    return JetEngine(net), f"derivatives={choice} chose jets: every module of {type(net).__name__} has a jet rule"


def is_compilable(engine: object) -> bool:
    """Whether ``torch.compile`` can compile a loss computed with ``engine`` (nested autograd cannot)."""
    return isinstance(engine, JetEngine) and hasattr(torch, "compile")
