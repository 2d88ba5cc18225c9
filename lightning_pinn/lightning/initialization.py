"""Physics-informed initialization: the output layer fitted by least squares to the problem's value conditions.

PirateNet (Wang, Sankaran, Wang and Perdikaris, arXiv 2402.00326) starts as a linear function of its
embedding (every residual gate is zero), so its output layer can be chosen to fit the initial and
boundary values before training: a linear least-squares problem. The same fit applies to any network
whose last operation is a linear layer (then it fits that layer on the features the rest computes at
initialization). No package does this for a problem given as residual expressions, hence this module.

A *value condition* is a condition written as an expression that uses no derivative and is affine in
the fields' values, such as ``u - sin(pi*x)`` or ``u + 2*v - 1``; also through an output transform
affine in the network's raw outputs. For such a term, residual = ``sum_k a_k(x) y_k(x) + b(x)`` with
``y = H W^T + c`` the output layer on features ``H``: linear in ``(W, c)``. Each term counts with its
weight over its number of points, as in the loss.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from lightning_pinn.derivatives.engines import AutogradEngine
from lightning_pinn.errors import ConfigError
from lightning_pinn.nets import ConstrainedNet, FactorizedLinear
from lightning_pinn.problem.condition_residuals import ObservationResidual, PeriodicResidual
from lightning_pinn.problem.spec import INTERIOR
from lightning_pinn.residuals import required_derivatives, residuals

LINEAR = (nn.Linear, FactorizedLinear)


class _Constant(nn.Module):
    """Raw outputs equal to ``values`` at every point."""

    def __init__(self, values: Tensor):
        super().__init__()
        self.values = values

    def forward(self, x: Tensor) -> Tensor:
        return self.values.to(x.dtype).expand(x.shape[0], -1)


def output_layer(net: nn.Module) -> nn.Module:
    """The last linear layer registered in ``net`` (its output layer in every network of ``lightning_pinn.nets``).

    Raises:
        ConfigError: when ``net`` has none.
    """
    layers = [m for m in net.modules() if isinstance(m, LINEAR)]
    if not layers:
        raise ConfigError(f"callbacks.output_fit: the network {type(net).__name__} has no linear output layer to fit")
    return layers[-1]


def value_terms(module: Any, points: dict[str, Tensor]) -> tuple[dict[str, tuple[Tensor, Tensor, Tensor]], list[str]]:
    """``{term: (x, a, b)}`` for the value conditions on ``points`` (residual ``sum_k a[:, k] y_k + b``), and
    the names of the conditions left out, each with why."""
    problem, net = module.problem, module.net
    transform = net.transform if isinstance(net, ConstrainedNet) else None
    n_fields = len(problem.fields)
    params = module.parameter_values()
    found, skipped = {}, []
    for set_name, x in points.items():
        if set_name == INTERIOR:
            continue
        spec = problem.point_sets[set_name]
        if any(wrt for _, wrt in required_derivatives(problem, set_name)):
            skipped += [f"{name} (derivatives)" for name in spec.terms]
            continue
        terms = [name for name in spec.terms
                 if not isinstance(problem.terms[name].residual, (PeriodicResidual, ObservationResidual))]
        skipped += [f"{name} (pairs or observations)" for name in spec.terms if name not in terms]
        if not terms:
            continue

        def at(values: list[float], set_name: str = set_name, x: Tensor = x) -> dict[str, Tensor]:
            raw = _Constant(torch.tensor(values, dtype=x.dtype, device=x.device))
            forward = raw if transform is None else ConstrainedNet(raw, transform)
            with torch.no_grad():
                return residuals(problem, forward, {set_name: x}, params, AutogradEngine())

        try:
            zero = at([0.0] * n_fields)
            unit = [at([float(j == k) for j in range(n_fields)]) for k in range(n_fields)]
            double = [at([2.0 * (j == k) for j in range(n_fields)]) for k in range(n_fields)]
            ones = at([1.0] * n_fields)
        except Exception as error:  # a Python residual that needs more than field values  # noqa: BLE001
            skipped += [f"{name} ({type(error).__name__})" for name in terms]
            continue
        coords = x[:, :problem.n_coords]
        for name in terms:
            b = zero[name]
            a = torch.stack([unit[k][name] - b for k in range(n_fields)], dim=1)
            affine = all(torch.allclose(double[k][name] - b, 2 * a[:, k], rtol=1e-9, atol=1e-9 * (1 + b.abs().max()))
                         for k in range(n_fields))
            affine = affine and torch.allclose(ones[name] - b, a.sum(1), rtol=1e-9, atol=1e-9 * (1 + b.abs().max()))
            if not affine:
                skipped.append(f"{name} (not affine in the fields)")
            elif bool((a == 0).all()):
                skipped.append(f"{name} (no field in it)")
            else:
                found[name] = (coords, a, b)
    return found, skipped


def fit_output_layer(module: Any, ridge: float = 1e-10) -> str:
    """Set the output layer of ``module.net`` to the least-squares fit of its value conditions; what was done.

    Args:
        module: a ``PINNModule`` (its problem, network, parameters and current points).
        ridge: Tikhonov weight on the layer's weights, relative to the largest squared row norm.

    Raises:
        ConfigError: when the network has no linear output layer, or that layer is not its last operation.
    """
    raw_net = module.net.net if isinstance(module.net, ConstrainedNet) else module.net
    layer = output_layer(raw_net)
    if layer.out_features != len(module.problem.fields):
        raise ConfigError(f"callbacks.output_fit: the last linear layer of {type(raw_net).__name__} has "
                          f"{layer.out_features} outputs, not one per field {list(module.problem.fields)}")
    points = module.training_points()
    terms, skipped = value_terms(module, points)
    if not terms:
        return f"no value condition to fit the output layer to (left out: {', '.join(skipped) or 'none'})"
    captured: dict[str, Tensor] = {}
    hook = layer.register_forward_hook(lambda _m, inputs, output: captured.update(h=inputs[0], y=output))
    rows, targets, before = [], [], 0.0
    try:
        with torch.no_grad():
            for name, (x, a, b) in terms.items():
                out = raw_net(x)
                if not torch.equal(out, captured["y"]):
                    raise ConfigError(f"callbacks.output_fit: the last linear layer of {type(raw_net).__name__} is not "
                                      "its last operation, so fitting it would not fit the outputs")
                h = torch.cat([captured["h"], torch.ones_like(captured["h"][:, :1])], dim=1).to(torch.float64)
                scale = (module.problem.terms[name].weight / len(x)) ** 0.5
                a, b = a.to(torch.float64), b.to(torch.float64)
                rows.append(scale * (a[:, :, None] * h[:, None, :]).flatten(1))  # (N, fields * (features + 1))
                targets.append(-scale * b)
                before += float(((a * out.to(torch.float64)).sum(1) + b).square().sum() * scale**2)
    finally:
        hook.remove()
    matrix, target = torch.cat(rows), torch.cat(targets)
    n = matrix.shape[1]
    damping = (ridge * matrix.square().sum(1).max()) ** 0.5
    # gelsd: the SVD solver, the minimum-norm solution also where the features are nearly dependent
    solution = torch.linalg.lstsq(torch.cat([matrix, damping * torch.eye(n, dtype=matrix.dtype)]),
                                  torch.cat([target, target.new_zeros(n)]), driver="gelsd").solution
    after = float((matrix @ solution - target).square().sum())
    theta = solution.reshape(layer.out_features, layer.in_features + 1)
    with torch.no_grad():
        weight, bias = theta[:, :-1], theta[:, -1]
        if isinstance(layer, FactorizedLinear):
            layer.v.copy_(weight / torch.exp(layer.s.to(torch.float64))[:, None])
        else:
            layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    note = f"; left out: {', '.join(skipped)}" if skipped else ""
    return (f"output layer fitted to {', '.join(terms)} ({len(target)} points): their weighted loss "
            f"{before:.3e} -> {after:.3e}{note}")


class OutputLayerFit(pl.Callback):
    """Before the first training step, fit the network's output layer to the problem's value conditions.

    Physics-informed initialization as PirateNet proposes it (see the module docstring): a least-squares
    fit of the last linear layer to the initial and boundary values the conditions state. Runs only on a
    fresh start (not on resume); under DDP rank 0's fit is broadcast, so the ranks stay identical.

    Args:
        ridge: Tikhonov weight of the fit, relative to its largest row (keeps it unique when there are
            fewer condition points than features).
    """

    def __init__(self, ridge: float = 1e-10):
        self.ridge = float(ridge)
        self.report: str | None = None
        """What the fit did (None before it ran)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Fit the output layer, unless the run resumes (its step is past 0)."""
        if trainer.global_step > 0:
            return
        self.report = fit_output_layer(pl_module, self.ridge)
        if trainer.world_size > 1:
            layer = output_layer(pl_module.net)
            state = trainer.strategy.broadcast({k: v.detach().cpu() for k, v in layer.state_dict().items()}, src=0)
            layer.load_state_dict(state)
        rank_zero_info(f"lightning-pinn: {self.report}")
