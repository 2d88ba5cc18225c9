r"""Dense quasi-Newton optimizers: BFGS, self-scaled BFGS and self-scaled Broyden.

Each iteration moves the flat parameter vector ``x`` along ``p = -H g`` by a step that meets
the strong Wolfe conditions, then updates the inverse Hessian estimate ``H`` from
``s = x_new - x`` and ``y = g_new - g`` with the self-scaled Broyden family (Al-Baali 1998, in
the inverse form that Urbán, Stefanou & Pons, arXiv 2405.04230, and Kiyani et al., arXiv
2501.16371, use for PINNs)::

    H+ = (1/tau) [H - (H y)(H y)^T / (y^T H y) + phi (y^T H y) v v^T] + s s^T / (s^T y)
    v  = s / (s^T y) - H y / (y^T H y),   phi = (1 - theta) / (1 + a theta)
    b  = s^T B s / s^T y = -alpha s^T g / s^T y,   h = y^T H y / s^T y,   a = b h - 1

- ``bfgs``: ``tau = 1``, ``theta = 0``.
- ``ssbfgs``: ``theta = 0``, ``tau = min(1, 1/b)`` (Al-Baali's self-scaling).
- ``ssbroyden``: ``theta`` and ``tau`` by Al-Baali's rule (the papers' "SSBroyden2"):
  ``c = sqrt(a / (1 + a))``, ``rho- = min(1, h (1 - c))``, ``theta- = (rho- - 1) / a``,
  ``theta+ = 1 / rho-``, ``theta = max(theta-, min(theta+, (1 - b) / b))``; with
  ``rho = min(1, 1/b)`` and ``sigma = 1 + a theta``: ``tau = min(rho sigma^(-1/(n-1)), sigma)``
  when ``theta <= 0``, else ``tau = rho min(sigma^(-1/(n-1)), 1/theta)``.

``H`` is a dense ``n x n`` matrix in the parameters' dtype (float64 is what the papers use and
what the line search needs once the loss is small), so memory grows as ``n^2``; networks above
``max_hessian_bytes`` are refused. Written here because no maintained PyTorch package offers
these updates: pytorch-minimize restarts its Hessian at every call, and torch ships only L-BFGS.
The line search is SciPy's ``scipy.optimize.line_search`` (strong Wolfe, zoom with cubic
interpolation; the initial step from the last decrease, as the papers use).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from scipy.optimize import line_search
from torch import Tensor
from torch.optim import Optimizer

from lightning_pinn.errors import ConfigError

METHODS = ("bfgs", "ssbfgs", "ssbroyden")
"""The inverse-Hessian updates :class:`QuasiNewton` knows."""

MAX_HESSIAN_BYTES = 2**30
"""The default limit on the dense inverse Hessian: 1 GiB, 11,585 float64 parameters."""


class QuasiNewton(Optimizer):
    """Dense BFGS, self-scaled BFGS or self-scaled Broyden with a strong-Wolfe line search (see the module docstring).

    Like ``torch.optim.LBFGS``, one :meth:`step` runs up to ``max_iter`` iterations and needs a
    closure that zeroes the gradients, evaluates the loss, runs ``backward`` and returns the
    loss. The inverse Hessian persists across steps and checkpoints (``state_dict``); call
    :meth:`objective_changed` when the loss function changes (new collocation points) to keep
    the curvature estimate but start the next iteration from a fresh gradient.

    Args:
        params: the parameters (one group).
        method: ``"bfgs"``, ``"ssbfgs"`` or ``"ssbroyden"``.
        max_iter: iterations per :meth:`step`.
        c1, c2: the strong Wolfe constants (sufficient decrease, curvature).
        max_line_search: line-search iterations before it gives up.
        tolerance_grad: end a step early when the largest gradient entry is at most this.
        max_hessian_bytes: refuse more parameters than an ``n x n`` matrix of this size holds.

    Raises:
        ConfigError: for an unknown method, bad constants, or too many parameters.

    Examples:
        >>> x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> opt = QuasiNewton([x], method="ssbroyden", max_iter=100)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2  # Rosenbrock
        ...     loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)
        >>> torch.allclose(x, torch.ones(2, dtype=torch.float64), atol=1e-6)
        True
    """

    def __init__(self, params: Iterable[Tensor], method: str = "ssbroyden", max_iter: int = 20, c1: float = 1e-4,
                 c2: float = 0.9, max_line_search: int = 25, tolerance_grad: float = 0.0,
                 max_hessian_bytes: int = MAX_HESSIAN_BYTES):
        if method not in METHODS:
            raise ConfigError(f"method: expected one of {list(METHODS)} but got {method!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ConfigError(f"max_iter: expected a positive integer but got {max_iter!r}")
        if not 0 < c1 < c2 < 1:
            raise ConfigError(f"c1, c2: expected 0 < c1 < c2 < 1 but got c1={c1!r}, c2={c2!r}")
        defaults = {"method": method, "max_iter": max_iter, "c1": c1, "c2": c2, "max_line_search": max_line_search,
                    "tolerance_grad": tolerance_grad}
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ConfigError("params: QuasiNewton takes one parameter group (its Hessian spans all parameters)")
        self._params: list[Tensor] = self.param_groups[0]["params"]
        n = sum(p.numel() for p in self._params)
        size = n * n * max(p.element_size() for p in self._params)
        if size > max_hessian_bytes:
            raise ConfigError(
                f"optimizer: the dense inverse Hessian of {n:,} parameters needs {size / 2**30:.2f} GiB "
                f"({n:,}^2 entries), above max_hessian_bytes={max_hessian_bytes:,}; use a smaller network or L-BFGS")
        self.n = n

    @property
    def _state(self) -> dict[str, Any]:
        """The optimizer's state, kept with the first parameter so that ``state_dict`` carries it (as LBFGS does)."""
        return self.state[self._params[0]]

    def objective_changed(self) -> None:
        """The loss function changed (e.g. new points): keep ``H``, forget the gradient and loss of the old one."""
        for key in ("g", "loss", "previous_loss"):
            self._state.pop(key, None)

    def _flat(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self._params])

    def _flat_grad(self) -> Tensor:
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self._params])

    def _assign(self, x: Tensor) -> None:
        offset = 0
        with torch.no_grad():
            for p in self._params:
                p.copy_(x[offset:offset + p.numel()].view_as(p))
                offset += p.numel()

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        """Run up to ``max_iter`` iterations; returns the loss at the start of the step."""
        group, state = self.param_groups[0], self._state
        closure = torch.enable_grad()(closure)
        x = self._flat()
        if "H" not in state:
            state["H"] = torch.eye(self.n, dtype=x.dtype, device=x.device)
            state["n_iter"], state["line_search_failures"], state["skipped_updates"] = 0, 0, 0
        # every step starts with the loss and gradient at its own point, as torch's LBFGS does: the caller logs and
        # checks that evaluation (not a line search's trial point), and a changed objective (new points) is seen
        state["loss"], state["g"] = float(closure().detach()), self._flat_grad().clone()
        first_loss = torch.tensor(state["loss"], dtype=x.dtype)
        evaluations: dict[bytes, tuple[float, np.ndarray]] = {}

        def evaluate(z: np.ndarray) -> tuple[float, np.ndarray]:
            key = z.tobytes()
            if key not in evaluations:  # scipy asks for the value and the gradient at one point separately
                self._assign(torch.as_tensor(z, dtype=x.dtype, device=x.device))
                loss = float(closure().detach())
                evaluations.clear()
                evaluations[key] = (loss, self._flat_grad().double().cpu().numpy())
            return evaluations[key]

        for _ in range(group["max_iter"]):
            g, H = state["g"], state["H"]
            if float(g.abs().max()) <= group["tolerance_grad"]:
                break
            p = -(H @ g)
            if float(g @ p) >= 0:  # not a descent direction: H lost positive definiteness; start over
                H = state["H"] = torch.eye(self.n, dtype=x.dtype, device=x.device)
                p = -g
            x_np, p_np, g_np = (v.double().cpu().numpy() for v in (x, p, g))
            previous = state.get("previous_loss")
            if previous is None:  # first iteration, or after a restart: a first trial step of length about 1, as
                previous = state["loss"] + float(g.norm()) / 2  # SciPy's BFGS does (a unit alpha along a large -g overflows)
            with warnings.catch_warnings():  # a failed search is counted in the state instead
                warnings.filterwarnings("ignore", "The line search algorithm")
                alpha, _, _, new_loss, _, _ = line_search(
                    lambda z: evaluate(z)[0], lambda z: evaluate(z)[1], x_np, p_np, gfk=g_np, old_fval=state["loss"],
                    old_old_fval=previous, c1=group["c1"], c2=group["c2"],
                    maxiter=group["max_line_search"])
            if alpha is None:  # no step met the Wolfe conditions: restart from steepest descent next time
                state["line_search_failures"] += 1
                self._assign(x)
                state["H"] = torch.eye(self.n, dtype=x.dtype, device=x.device)
                state.pop("previous_loss", None)
                break
            x_new = x + alpha * p
            _, g_new_np = evaluate(x_new.double().cpu().numpy())
            self._assign(x_new)
            g_new = torch.as_tensor(g_new_np, dtype=x.dtype, device=x.device)
            state["H"] = self._update(H, x_new - x, g_new - g, g, alpha, group["method"])
            state["previous_loss"], state["loss"], state["g"] = state["loss"], float(new_loss), g_new
            state["n_iter"] += 1
            x = x_new
        return first_loss

    def _update(self, H: Tensor, s: Tensor, y: Tensor, g: Tensor, alpha: float, method: str) -> Tensor:
        """The inverse Hessian after the step ``s`` with gradient change ``y`` (see the module docstring)."""
        sy = float(s @ y)
        if not sy > 1e-14 * float(s @ s) ** 0.5 * float(y @ y) ** 0.5:  # no positive curvature along s: keep H
            self._state["skipped_updates"] += 1
            return H
        Hy = H @ y
        yHy = float(y @ Hy)
        b = -alpha * float(s @ g) / sy
        h = yHy / sy
        a = max(b * h - 1.0, 0.0)  # >= 0 by Cauchy-Schwarz; rounding can make it slightly negative
        tau, theta = 1.0, 0.0
        if method == "ssbfgs":
            tau = min(1.0, 1.0 / b)
        elif method == "ssbroyden" and a > 1e-12:
            c = math.sqrt(a / (1.0 + a))
            rho_minus = min(1.0, h * (1.0 - c))
            theta_minus, theta_plus = (rho_minus - 1.0) / a, 1.0 / rho_minus
            theta = max(theta_minus, min(theta_plus, (1.0 - b) / b))
            rho, sigma = min(1.0, 1.0 / b), 1.0 + a * theta
            shrink = sigma ** (-1.0 / (self.n - 1)) if self.n > 1 else 1.0
            tau = min(rho * shrink, sigma) if theta <= 0 else rho * min(shrink, 1.0 / theta)
        elif method == "ssbroyden":
            tau = min(1.0, 1.0 / b)  # a = 0: H y is parallel to s, where the family reduces to self-scaled BFGS
        phi = (1.0 - theta) / (1.0 + a * theta)
        v = s / sy - Hy / yHy
        updated = (H - torch.outer(Hy, Hy) / yHy + (phi * yHy) * torch.outer(v, v)) / tau + torch.outer(s, s) / sy
        if not bool(torch.isfinite(updated).all()):
            self._state["skipped_updates"] += 1
            return H
        return (updated + updated.T) / 2
