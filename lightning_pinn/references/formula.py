"""Exact solutions written as expressions: manufactured and closed-form references from YAML.

The expressions are compiled once by :func:`~lightning_pinn.problem.expressions.compile_expression`
and evaluated on float64 numpy arrays, the language's numpy back end.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from lightning_pinn.errors import ConfigError
from lightning_pinn.problem.expressions import Expression, Namespace, compile_expression


def _evaluate(expression: Expression, arrays: Mapping[str, np.ndarray],
              params: Mapping[str, float] | None = None) -> np.ndarray:
    """``expression`` at float64 arrays of one shape (``{name: array}``) and constant ``params``, as a
    float64 array of that shape; a constant expression is broadcast. Invalid values (``log(-1)``)
    give NaN without a warning: the caller checks what it needs finite."""
    params = params or {}
    shape = next(iter(arrays.values())).shape if arrays else ()

    def lookup(name: str) -> Any:
        return arrays[name] if name in arrays else params[name]

    with np.errstate(all="ignore"):
        value = np.asarray(expression(lookup), dtype=np.float64)
    return np.broadcast_to(value, shape).copy()


def initial_function(source: str, key: str = "initial") -> Callable[[np.ndarray], np.ndarray]:
    """An expression in ``x`` (e.g. ``"x**2*cos(pi*x)"``) as a float64 numpy function ``u0(x)``.

    Initial conditions of the spectral references and the cavity's lid velocity use it.

    Raises:
        ExpressionError: now, for an expression outside the language or with names other than ``x``.
    """
    expression = compile_expression(source, Namespace(coords=("x",), fields=()), key=key)

    def function(x: np.ndarray) -> np.ndarray:
        return _evaluate(expression, {"x": np.asarray(x, dtype=np.float64)})

    return function


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

    Examples:
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

    def to_config(self) -> dict[str, Any]:
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
        values = dict(zip(coords, arrays))
        out = {name: _evaluate(expression, values, self.params)
               for name, expression in self._expressions(tuple(coords)).items()}
        return next(iter(out.values())) if len(out) == 1 else out
