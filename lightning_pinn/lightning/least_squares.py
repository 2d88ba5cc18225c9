"""A PINNModule's loss as a least-squares problem: the weighted residual vector and its Jacobian.

For :class:`~lightning_pinn.optim.GaussNewton` phases. The loss with the problem's fixed weights is
``sum_t w_t mean(r_t^2) = ||v||^2`` with ``v`` the residuals of each term ``t`` scaled by
``sqrt(w_t / N_t)``. The Jacobian ``dv/dtheta`` comes from the jets engine (forward Taylor arithmetic,
no nested autograd), through ``torch.func``: ``jacrev`` of one sample's residuals, ``vmap``-ed over the
samples (a point; for a periodic condition, a pair of points), which costs about one batched backward
pass instead of one per residual.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from lightning_pinn.derivatives.engines import JetEngine
from lightning_pinn.derivatives.jets import unsupported_reason
from lightning_pinn.errors import ConfigError
from lightning_pinn.losses.balancing import FixedWeights
from lightning_pinn.problem.condition_residuals import ObservationResidual, PeriodicResidual
from lightning_pinn.residuals import prepare_engine, residuals


class _SetResiduals(nn.Module):
    """The residuals of one point set's terms, scaled, as a module whose parameters are the PINNModule's."""

    def __init__(self, module: Any, engine: JetEngine):
        super().__init__()
        self.pinn = module
        self._engine = engine

    def forward(self, x: Tensor, set_name: str, scales: dict[str, float]) -> Tensor:
        x, targets = self.pinn.split_window_targets(set_name, x)  # a later time window's initial set
        out = residuals(self.pinn.problem, self.pinn.net, {set_name: x}, self.pinn.parameter_values(), self._engine)
        targets = targets or {}
        return torch.cat([scales[name] * (out[name] - targets.get(name, 0)).reshape(-1) for name in scales])


class LeastSquares:
    """The weighted residual vector ``v`` of a :class:`PINNModule` on its current points, and ``dv/dtheta``.

    Args:
        module: the PINNModule (its problem, network, learnable parameters and training points).
        key: the config key to name in errors (``phases.<name>``).

    Raises:
        ConfigError: when the network has no jet rules, or the loss is balanced or causally weighted
            (Gauss-Newton minimizes the problem's fixed-weight sum of squares).
    """

    def __init__(self, module: Any, key: str = "phases"):
        problem = module.problem
        reason = unsupported_reason(module.net, problem.n_coords)
        if reason is not None:
            raise ConfigError(f"{key}: Gauss-Newton takes its Jacobian from the jets engine, which cannot run this "
                              f"network: {reason}")
        weighted = module.weighted_loss
        if not isinstance(weighted.balancer, FixedWeights) or weighted.causal is not None:
            raise ConfigError(f"{key}: Gauss-Newton minimizes the problem's fixed-weight sum of squares; set "
                              "model.balancing=null and model.causal=null, or use another phase "
                              "(optimizer=adam_quasi_newton)")
        self.module = module
        self.engine = JetEngine(module.net)
        self._sets = _SetResiduals(module, self.engine)
        # not registered on the PINNModule (this object is no nn.Module), so the PINNModule holds no cycle
        self.names = [f"pinn.{name}" for name, p in module.named_parameters() if p.requires_grad]

    def _samples(self, set_name: str, x: Tensor) -> Tensor:
        """``(S, rows, width)``: the set's points one sample each, a periodic set's rows ``i`` and ``m + i`` together."""
        if self.module.problem.point_sets[set_name].periodic is not None:
            m = len(x) // 2
            return torch.stack([x[:m], x[m:]], dim=1)
        return x[:, None, :]

    def _scales(self, points: dict[str, Tensor]) -> dict[str, dict[str, float]]:
        """Per set and term, ``sqrt(w / entries)``: each term's loss is the mean square of its entries."""
        problem = self.module.problem
        out = {}
        for set_name, x in points.items():
            samples = len(self._samples(set_name, x))
            out[set_name] = {name: (problem.terms[name].weight / (samples * _entries(problem.terms[name].residual))) ** 0.5
                             for name in problem.point_sets[set_name].terms}
        return out

    def vector(self) -> Tensor:
        """``v`` at the current parameters, ``(N,)``, detached."""
        points = self.module.training_points()
        prepare_engine(self.engine, self.module.problem, points)
        scales = self._scales(points)
        with torch.no_grad():
            return torch.cat([self._sets(x, name, scales[name]) for name, x in points.items()])

    def jacobian(self) -> Tensor:
        """``dv/dtheta``, ``(N, P)``, columns in the order of the module's trainable parameters."""
        points = self.module.training_points()
        prepare_engine(self.engine, self.module.problem, points)
        scales = self._scales(points)
        params = {name: p.detach() for name, p in self._sets.named_parameters() if name in self.names}
        blocks = []
        for set_name, x in points.items():
            def one(theta: dict[str, Tensor], sample: Tensor, set_name: str = set_name) -> Tensor:
                return functional_call(self._sets, theta, (sample, set_name, scales[set_name]))

            samples = self._samples(set_name, x)
            columns = vmap(jacrev(one), in_dims=(None, 0))(params, samples)  # {name: (S, entries, *shape)}
            entries = sum(_entries(self.module.problem.terms[t].residual) for t in scales[set_name])
            block = torch.cat([columns[name].reshape(len(samples), entries, -1) for name in self.names], dim=2)
            blocks.append(block.transpose(0, 1).flatten(0, 1))  # term by term, expression by expression, as vector()
        return torch.cat(blocks)


def _entries(residual: Any) -> int:
    """Residual entries per sample: one per expression of a periodic condition, per field of observations, else 1."""
    if isinstance(residual, PeriodicResidual):
        return len(residual.expressions)
    if isinstance(residual, ObservationResidual):
        return len(residual.fields)
    return 1
