"""Exact solutions written as expressions: manufactured and closed-form references from YAML."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from lightning_pinn.errors import ConfigError
from lightning_pinn.problem.expressions import Expression, Namespace, compile_expression


class Formula:
    """A reference solution given by one expression per field, e.g. ``{"u": "sin(x - beta*t)"}``.

    The expressions use the expression language of equations (without derivatives), the
    coordinate names the reference is called with, and ``params``. They are evaluated in
    float64.

    Args:
        solution: ``{field: expression}``.
        params: constant parameters ``{name: value}`` the expressions may use.

    Raises:
        ExpressionError: at the first call, for an expression outside the language, an unknown
            name, or a derivative.

    Example:
        >>> ref = Formula({"u": "sin(x - beta*t)"}, params={"beta": 2.0})
        >>> float(ref(x=np.array([1.0]), t=np.array([0.5]))[0])
        0.0
    """

    def __init__(self, solution: Mapping[str, str], params: Mapping[str, float] | None = None):
        if not isinstance(solution, Mapping) or not solution:
            raise ConfigError(f"solution: expected a mapping {{field: expression}} but got {solution!r}")
        self.solution = {str(k): str(v) for k, v in solution.items()}
        self.params = {str(k): float(v) for k, v in dict(params or {}).items()}
        self._compiled: dict[tuple[str, ...], dict[str, Expression]] = {}

    def config(self) -> dict[str, Any]:
        """A config that rebuilds this reference with ``hydra.utils.instantiate``."""
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}", "solution": dict(self.solution),
                "params": dict(self.params)}

    def _expressions(self, coords: tuple[str, ...]) -> dict[str, Expression]:
        if coords not in self._compiled:
            namespace = Namespace(coords, (), tuple(self.params))
            compiled = {}
            for name, source in self.solution.items():
                compiled[name] = compile_expression(source, namespace, key=f"reference.solution.{name}")
            self._compiled[coords] = compiled
        return self._compiled[coords]

    def __call__(self, **coords: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        """The solution at matching coordinate arrays: an array for one field, ``{field: array}`` for several."""
        arrays = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in coords.values()))
        shape = arrays[0].shape if arrays else ()
        values = {name: torch.as_tensor(a.ravel()) for name, a in zip(coords, arrays)}

        def lookup(name: str) -> Any:
            return values[name] if name in values else self.params[name]

        out = {}
        for name, expression in self._expressions(tuple(coords)).items():
            value = torch.as_tensor(expression(lookup), dtype=torch.float64)
            out[name] = np.broadcast_to(value.numpy(), (int(np.prod(shape)),)).reshape(shape).copy()
        return next(iter(out.values())) if len(out) == 1 else out
