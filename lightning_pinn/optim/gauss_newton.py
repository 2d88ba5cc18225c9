r"""Levenberg-Marquardt damped Gauss-Newton on a weighted residual vector, for small PINNs.

The loss of a PINN with fixed weights is a sum of squares, ``L(theta) = ||v(theta)||^2`` with ``v`` the
residuals of every term at every point, each scaled by ``sqrt(w_term / N_term)``. One iteration solves

    (J^T J + lambda mu I) delta = -J^T v,     mu = mean(diag(J^T J))

with ``J = dv/dtheta`` (``N x P``), and takes ``theta + delta`` when it lowers ``L``. ``lambda`` follows
Nielsen's rule (Madsen, Nielsen & Tingleff, *Methods for non-linear least squares problems*, 2004): with
``rho`` the actual over the predicted decrease, an accepted step scales ``lambda`` by
``max(1/3, 1 - (2 rho - 1)^3)``; a rejected one by ``nu`` (starting at 2, doubling at each rejection
in a row), and the system is solved again, up to ``max_tries`` times; when none lowers ``L``, the
parameters and ``lambda`` stay as they were. For a linear PDE this is the energy natural gradient of Mueller & Zeinhofer
(ICML 2023) with Levenberg-Marquardt damping instead of a line search. No maintained PyTorch package
takes a residual Jacobian from a PINN's derivative engine, hence this class.

Memory: ``J`` holds ``N x P`` and ``J^T J`` ``P x P`` numbers in the parameters' dtype, so networks
above ``max_params`` parameters are refused (5,000 by default: a 200 MB matrix in float64, and 320 MB
of Jacobian at 8,000 residuals).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from lightning_pinn.errors import ConfigError

MAX_PARAMS = 5000
"""The default limit on the parameters of a Gauss-Newton phase."""

Residuals = Callable[[], Tensor]
"""The weighted residual vector ``v`` at the current parameters, ``(N,)``, without a graph."""
Jacobian = Callable[[], Tensor]
"""``dv/dtheta`` at the current parameters, ``(N, P)``, columns in the optimizer's parameter order."""
Reduce = Callable[[Tensor], Tensor]
"""A sum over DDP ranks (``trainer.strategy.reduce(..., "sum")``); identity in one process."""


class GaussNewton(Optimizer):
    """Levenberg-Marquardt damped Gauss-Newton (see the module docstring).

    Unlike first-order optimizers it needs the residual vector and its Jacobian, which the caller
    supplies once with :meth:`attach` (``PINNModule`` does, when a phase uses this optimizer). One
    :meth:`step` runs ``max_iter`` accepted or rejected iterations; its ``closure`` (zero the
    gradients, evaluate the loss, backward) is called once, for the loss that is logged.

    Args:
        params: the parameters (one group).
        damping: the initial ``lambda``.
        min_damping, max_damping: the range of ``lambda``.
        max_iter: iterations per step.
        max_tries: rejected solves in a row before the step gives up (and keeps the parameters).
        max_params: refuse more parameters than this.

    Raises:
        ConfigError: for a bad option, or a network over ``max_params``, with the sizes.

    Examples:
        >>> x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> residuals = lambda: torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]]).detach()
        >>> jacobian = lambda: torch.tensor([[-20 * x[0].item(), 10.0], [-1.0, 0.0]], dtype=torch.float64)
        >>> optimizer = GaussNewton([x], max_iter=50)
        >>> optimizer.attach(residuals, jacobian)
        >>> _ = optimizer.step(lambda: (residuals() ** 2).sum())
        >>> tuple(round(v, 6) for v in x.tolist())
        (1.0, 1.0)
    """

    def __init__(self, params: Iterable[Tensor], damping: float = 1e-3, min_damping: float = 1e-12,
                 max_damping: float = 1e8, max_iter: int = 1, max_tries: int = 12, max_params: int = MAX_PARAMS):
        for key, value in (("damping", damping), ("min_damping", min_damping), ("max_damping", max_damping)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{key}: expected a positive number but got {value!r}")
        for key, value in (("max_iter", max_iter), ("max_tries", max_tries), ("max_params", max_params)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key}: expected a positive integer but got {value!r}")
        super().__init__(params, {"damping": float(damping)})
        if len(self.param_groups) != 1:
            raise ConfigError("GaussNewton takes one parameter group")
        self.params = [p for p in self.param_groups[0]["params"] if p.requires_grad]
        n = sum(p.numel() for p in self.params)
        if n > max_params:
            mib = 8 * n * n / 2**20
            raise ConfigError(f"max_params: Gauss-Newton solves a dense system of one row per parameter: {n:,} "
                              f"parameters need a {n:,} x {n:,} matrix ({mib:,.0f} MiB in float64) and a residual "
                              f"Jacobian of {n:,} columns, over max_params={max_params:,}; use a smaller network or "
                              "another phase")
        self.options = {"min_damping": float(min_damping), "max_damping": float(max_damping), "max_iter": max_iter,
                        "max_tries": max_tries}
        self.residuals: Residuals | None = None
        self.jacobian: Jacobian | None = None
        self.reduce: Reduce = lambda value: value

    @property
    def _state(self) -> dict[str, Any]:
        return self.state[self.params[0]]

    def attach(self, residuals: Residuals, jacobian: Jacobian, reduce: Reduce | None = None) -> None:
        """Give the optimizer the residual vector, its Jacobian and (under DDP) a sum over ranks."""
        self.residuals, self.jacobian = residuals, jacobian
        self.reduce = reduce or (lambda value: value)

    @property
    def damping(self) -> float:
        """The current ``lambda``."""
        return float(self._state.get("damping", self.param_groups[0]["damping"]))

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        """``max_iter`` damped Gauss-Newton iterations; returns the closure's loss at the start."""
        if self.residuals is None or self.jacobian is None:
            raise RuntimeError("GaussNewton needs attach(residuals, jacobian) before its first step")
        with torch.enable_grad():
            loss = closure()
        state = self._state
        state.setdefault("damping", self.param_groups[0]["damping"])
        state.setdefault("n_iter", 0)
        state.setdefault("rejected", 0)
        options = self.options
        for _ in range(options["max_iter"]):
            v = self.residuals()
            jac = self.jacobian()
            normal = self.reduce(jac.T @ jac)
            gradient = self.reduce(jac.T @ v)
            current = float(self.reduce(v @ v))
            scale = float(normal.diagonal().mean()) or 1.0
            start = torch.cat([p.detach().flatten() for p in self.params])
            damping, nu = state["damping"], 2.0
            eye = torch.eye(len(start), dtype=normal.dtype, device=normal.device)
            for _ in range(options["max_tries"]):
                damped = normal + state["damping"] * scale * eye
                factor, info = torch.linalg.cholesky_ex(damped)
                if int(info) == 0:
                    delta = torch.cholesky_solve(-gradient[:, None], factor)[:, 0]
                    predicted = -float(2 * delta @ gradient + delta @ normal @ delta)
                    self._set(start + delta)
                    trial = self.residuals()
                    value = float(self.reduce(trial @ trial))
                    if value < current and predicted > 0:  # accepted
                        rho = (current - value) / predicted
                        state["damping"] = min(max(state["damping"] * max(1 / 3, 1 - (2 * rho - 1) ** 3),
                                                   options["min_damping"]), options["max_damping"])
                        break
                state["rejected"] += 1
                state["damping"] = min(state["damping"] * nu, options["max_damping"])
                nu *= 2
            else:  # no decrease at any damping tried (a minimum, to rounding): keep the parameters and the damping
                self._set(start)
                state["damping"] = damping
            state["n_iter"] += 1
        return loss

    def _set(self, flat: Tensor) -> None:
        offset = 0
        for p in self.params:
            p.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
