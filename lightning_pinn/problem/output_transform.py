"""Hard constraints: fields written as expressions of the network's raw outputs and the coordinates.

``output_transform: {u: "x*(1 - x)*u + sin(pi*x)"}`` makes the field ``u`` equal to
``x (1 - x) N_u(x) + sin(pi x)``, where ``N_u`` is the network's raw output for ``u``; in a
transform, a field's name means that raw output. The Dirichlet values ``u(0) = 0`` and
``u(1) = sin(pi) = 0`` then hold exactly, whatever the network. Fields without a transform
are the raw outputs. Transforms may use coordinates, fields, constant parameters, constants
and functions, but no derivatives.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from lightning_pinn.derivatives.jet_algebra import JetValue
from lightning_pinn.derivatives.jets import Jet, JetIndex, jet_through, register_jet_rule
from lightning_pinn.errors import ConfigError
from lightning_pinn.problem.expressions import Expression, Namespace, compile_expression


class OutputTransform:
    """``fields = transform(x, raw)``: the compiled transforms of some fields.

    Args:
        transforms: ``{field: expression}``.
        coords, fields: the problem's names, in column order.
        params: constant parameters ``{name: value}`` the expressions may use.
        key: the config key, for errors.

    Raises:
        ValueError: for a key that is not a field, an expression that takes a derivative,
            or any expression error (naming ``key.<field>``).
    """

    def __init__(self, transforms: Mapping[str, str], coords: Sequence[str], fields: Sequence[str],
                 params: Mapping[str, float] | None = None, key: str = "output_transform"):
        self.coords, self.fields = tuple(coords), tuple(fields)
        self.params = dict(params or {})
        self.sources = {str(k): v for k, v in dict(transforms).items()}
        namespace = Namespace(self.coords, self.fields, tuple(self.params))
        self.expressions: dict[str, Expression] = {}
        for name, source in self.sources.items():
            if name not in self.fields:
                raise ConfigError(f"{key}: {name!r} is not a field; fields are {list(self.fields)}")
            expression = compile_expression(source, namespace, key=f"{key}.{name}")
            if expression.derivatives:
                raise ConfigError(f"{key}.{name}: a transform cannot take derivatives, but {source!r} does")
            self.expressions[name] = expression

    def __call__(self, x: Tensor, raw: Tensor) -> Tensor:
        """The fields ``(N, n_fields)`` at points ``x`` from the network's raw outputs ``raw``."""
        columns = {name: x[:, k] for k, name in enumerate(self.coords)}
        columns.update({name: raw[:, k] for k, name in enumerate(self.fields)})

        def lookup(name: str):
            return columns[name] if name in columns else self.params[name]

        out = []
        for k, name in enumerate(self.fields):
            if name in self.expressions:
                value = torch.as_tensor(self.expressions[name](lookup), dtype=raw.dtype, device=raw.device)
                out.append(value.expand(raw.shape[0]) if value.dim() == 0 else value)
            else:
                out.append(raw[:, k])
        return torch.stack(out, dim=1)


    def jet(self, x: Jet, raw: Jet, index: JetIndex) -> Jet:
        """The jet of the fields from the jets of the points and of the raw outputs (Taylor arithmetic)."""
        def column(jet: Jet, k: int) -> JetValue:
            return JetValue(Jet(jet.value[k:k + 1], jet.coeffs[k:k + 1]), index)

        columns = {name: column(x, k) for k, name in enumerate(self.coords)}
        columns.update({name: column(raw, k) for k, name in enumerate(self.fields)})

        def lookup(name: str):
            return columns[name] if name in columns else self.params[name]

        values, coeffs = [], []
        for k, name in enumerate(self.fields):
            out = self.expressions[name](lookup) if name in self.expressions else columns[name]
            if not isinstance(out, JetValue):  # a constant field
                out = columns[name] * 0.0 + float(out)
            values.append(out.jet.value)
            coeffs.append(out.jet.coeffs)
        return Jet(torch.cat(values), torch.cat(coeffs))


class ConstrainedNet(nn.Module):
    """``net`` followed by an :class:`OutputTransform`: the fields satisfy the hard constraints exactly.

    Jets pass through it when they pass through ``net`` and the transforms use functions with jet rules.
    """

    def __init__(self, net: nn.Module, transform: OutputTransform):
        super().__init__()
        self.net, self.transform = net, transform

    def forward(self, x: Tensor) -> Tensor:
        return self.transform(x, self.net(x))


@register_jet_rule(ConstrainedNet)
def _constrained_jet(module: ConstrainedNet, jet: Jet, index: JetIndex, path: str) -> Jet:
    return module.transform.jet(jet, jet_through(module.net, jet, index, f"{path}.net"), index)
