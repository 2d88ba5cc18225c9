"""Per-point partial derivatives of network outputs through reverse-mode autograd.

For a batch of points ``x`` of shape ``(N, d)`` whose rows are independent (the
network treats each point on its own), ``grad(y[:, i].sum(), x)`` is the matrix of
per-point partials ``dy_i/dx_j`` for every ``j`` at once: one autograd call gives
a whole gradient row. Higher orders differentiate a cached partial again, with
``create_graph=True`` so that the result can itself be differentiated (by the next
order, and by the optimizer). Nothing is written to ``x.grad``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def _gradient_row(y: Tensor, x: Tensor) -> Tensor:
    """``(N,)`` values -> ``(N, d)`` per-point partials with respect to every column of ``x``."""
    if not y.requires_grad:  # a constant (e.g. the derivative of an affine field): every partial is zero
        return torch.zeros_like(x)
    (row,) = torch.autograd.grad(y, x, grad_outputs=torch.ones_like(y), create_graph=True, allow_unused=True)
    if row is None:  # y does not depend on x: every partial is zero
        row = torch.zeros_like(x)
    return row


def _check(y: Tensor, x: Tensor) -> None:
    if not x.requires_grad:
        raise ValueError("x must require gradients: call x.requires_grad_() before computing y from it")
    if y.dim() != 2 or x.dim() != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"expected y of shape (N, m) and x of shape (N, d) but got {tuple(y.shape)} and {tuple(x.shape)}")


def jacobian(y: Tensor, x: Tensor, i: int = 0, j: int | None = None) -> Tensor:
    """Per-point first derivatives ``dy_i/dx_j``.

    Args:
        y: outputs of shape ``(N, m)`` computed from ``x``.
        x: inputs of shape ``(N, d)`` with ``requires_grad=True``.
        i: output component.
        j: input component; ``None`` returns all of them as ``(N, d)``.

    Returns:
        ``(N, 1)`` (or ``(N, d)`` when ``j`` is None), differentiable again.

    Examples:
        >>> x = torch.tensor([[1.0, 2.0]], requires_grad=True)
        >>> y = (x[:, :1] ** 2) * x[:, 1:]
        >>> jacobian(y, x, 0, 0)
        tensor([[4.]], grad_fn=<SliceBackward0>)
    """
    _check(y, x)
    row = _gradient_row(y[:, i], x)
    return row if j is None else row[:, j : j + 1]


def hessian(y: Tensor, x: Tensor, i: int = 0, j: int = 0, k: int = 0) -> Tensor:
    """Per-point second derivatives ``d2 y_i / dx_j dx_k`` of shape ``(N, 1)``."""
    return partial(y, x, i, j, k)


def partial(y: Tensor, x: Tensor, i: int, *wrt: int) -> Tensor:
    """Per-point partial of ``y_i`` along the input components ``wrt`` (any order), shape ``(N, 1)``.

    ``partial(y, x, 0, 0, 0, 1)`` is ``d3 y_0 / dx_0^2 dx_1``. With no ``wrt`` it returns ``y_i``.
    """
    _check(y, x)
    value = y[:, i]
    for j in wrt:
        value = _gradient_row(value, x)[:, j]
    return value.unsqueeze(1)


class Derivatives:
    """Memoized partial derivatives of named fields with respect to named coordinates.

    Asking for ``("u", ("x", "x"))`` computes the gradient row of ``u`` (which also
    holds ``u_t``), then the gradient row of ``u_x`` (which holds ``u_xx`` and
    ``u_xt``); each row is computed once and kept for the lifetime of this object,
    normally one training step.

    Args:
        x: points of shape ``(N, d)`` with ``requires_grad=True``.
        y: fields of shape ``(N, m)`` computed from ``x``.
        coords: the names of the ``d`` columns of ``x``.
        fields: the names of the ``m`` columns of ``y``.

    Examples:
        >>> x = torch.tensor([[1.0, 2.0]], requires_grad=True)
        >>> D = Derivatives(x, x[:, :1] ** 3 * x[:, 1:], coords=["x", "t"], fields=["u"])
        >>> D("u", ("x", "x")).item()  # 6 x t
        12.0
    """

    def __init__(self, x: Tensor, y: Tensor, coords: Sequence[str], fields: Sequence[str]):
        _check(y, x)
        if len(coords) != x.shape[1] or len(fields) != y.shape[1]:
            raise ValueError(
                f"{len(coords)} coordinate names for {x.shape[1]} columns of x, "
                f"{len(fields)} field names for {y.shape[1]} columns of y"
            )
        self.x, self.y = x, y
        self._coord_index = {name: k for k, name in enumerate(coords)}
        self._field_index = {name: k for k, name in enumerate(fields)}
        self._values: dict[tuple[str, tuple[int, ...]], Tensor] = {}
        self._rows: dict[tuple[str, tuple[int, ...]], Tensor] = {}
        self.rows_computed = 0
        """How many autograd gradient rows this object has computed (for tests and profiling)."""

    def __call__(self, field: str, wrt: Sequence[str] = ()) -> Tensor:
        """The ``(N,)`` partial of ``field`` along the coordinate names in ``wrt`` (order irrelevant)."""
        if field not in self._field_index:
            raise KeyError(f"unknown field {field!r}; fields are {list(self._field_index)}")
        try:
            index = tuple(sorted(self._coord_index[c] for c in wrt))
        except KeyError as err:
            raise KeyError(f"unknown coordinate {err.args[0]!r}; coordinates are {list(self._coord_index)}") from None
        return self._value(field, index)

    def _value(self, field: str, index: tuple[int, ...]) -> Tensor:
        key = (field, index)
        if key not in self._values:
            if not index:
                self._values[key] = self.y[:, self._field_index[field]]
            else:
                self._values[key] = self._row(field, index[:-1])[:, index[-1]]
        return self._values[key]

    def _row(self, field: str, index: tuple[int, ...]) -> Tensor:
        key = (field, index)
        if key not in self._rows:
            self._rows[key] = _gradient_row(self._value(field, index), self.x)
            self.rows_computed += 1
        return self._rows[key]
