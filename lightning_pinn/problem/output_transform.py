"""Hard constraints: fields written as expressions of the network's raw outputs and the coordinates.

``output_transform: {u: "x*(1 - x)*u + sin(pi*x)"}`` makes the field ``u`` equal to
``x (1 - x) N_u(x) + sin(pi x)``, where ``N_u`` is the network's raw output for ``u``; in a
transform, a field's name means that raw output. The Dirichlet values ``u(0) = 0`` and
``u(1) = sin(pi) = 0`` then hold exactly, whatever the network. Fields without a transform
are the raw outputs. Transforms may use coordinates, fields, constant parameters, constants
and functions, but no derivatives.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from lightning_pinn.errors import ConfigError
from lightning_pinn.problem.expressions import Expression, Namespace, compile_expression


class OutputTransform:
    """``fields = transform(x, raw)``: the compiled transforms of some fields.

    Args:
        transforms: ``{field: expression}``.
        coords, fields: the problem's names, in column order.
        params: constant parameters ``{name: value}`` the expressions may use.
        key: the config key, for errors.

    Attributes:
        expressions: ``{field: Expression}``, compiled once; any back end evaluates them
            (:meth:`evaluate`), e.g. jets in ``nets.ConstrainedNet``'s jet rule.

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

    def evaluate(self, columns: Mapping[str, Any]) -> list[Any]:
        """Each field's value, in field order, from ``columns``: ``{name: value}`` for every coordinate
        and every raw output, of any back end (tensors, arrays, jet values). A field without a
        transform is its raw output; a transform that reads no column gives a float."""
        def lookup(name: str) -> Any:
            return columns[name] if name in columns else self.params[name]

        return [self.expressions[name](lookup) if name in self.expressions else columns[name] for name in self.fields]

    def __call__(self, x: Tensor, raw: Tensor) -> Tensor:
        """The fields ``(N, n_fields)`` at points ``x`` from the network's raw outputs ``raw``."""
        columns = {name: x[:, k] for k, name in enumerate(self.coords)}
        columns.update({name: raw[:, k] for k, name in enumerate(self.fields)})
        out = []
        for value in self.evaluate(columns):
            value = torch.as_tensor(value, dtype=raw.dtype, device=raw.device)
            out.append(value.expand(raw.shape[0]) if value.dim() == 0 else value)
        return torch.stack(out, dim=1)
