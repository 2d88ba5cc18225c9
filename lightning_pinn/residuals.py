"""Problem + network + points -> named per-point residuals and loss terms.

This is the one function both Lightning adapters call. For each point set of the
problem (the interior points of the equations, the points of each condition) the
derivative engine runs the network once (autograd: on points that require gradients,
with a memoized :class:`Derivatives` cache; jets: one forward-mode pass that carries every
partial the terms ask for), and each term's residual is evaluated per point. Autocast is
switched off there, so under ``bf16-mixed`` the residuals and their derivatives are still
computed in the points' dtype (float32 or float64). How residuals become a loss is
``losses.weighted``.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from lightning_pinn.derivatives.autograd import Derivatives
from lightning_pinn.derivatives.engines import AutogradEngine, JetEngine
from lightning_pinn.problem.condition_residuals import ObservationResidual, PeriodicResidual
from lightning_pinn.problem.expressions import NORMAL
from lightning_pinn.problem.spec import Problem

Forward = Callable[[Tensor], Tensor]
"""A network as a function: points ``(N, n_coords)`` -> fields ``(N, n_fields)``."""


class Evaluation:
    """What a residual can read on one point set in one step.

    Expressions call it with a name or a ``(field, coords)`` derivative key. Python
    residuals may also index it by name (``ev["u_xx"]``, ``ev["nu"]``) or call
    ``ev.d("u", "x", "x")``.

    Attributes:
        x: the points ``(N, n_coords)``, with ``requires_grad=True``.
        y: the fields ``(N, n_fields)``.
        derivatives: the engine's lookup ``(field, coords) -> (N,)`` for these points
            (autograd's memoized :class:`Derivatives` by default).
        normal: outward unit normals ``(N, n_coords)`` on boundary point sets that need them, else None.
        observed: observed values ``{field: (N,)}`` on a data point set, else empty.
    """

    def __init__(self, problem: Problem, x: Tensor, y: Tensor, params: Mapping[str, Any], derivatives: Any = None,
                 normal: Tensor | None = None, observed: Mapping[str, Tensor] | None = None):
        self.problem, self.x, self.y, self.params = problem, x, y, params
        self.derivatives = derivatives if derivatives is not None else Derivatives(x, y, problem.coords, problem.fields)
        self.normal, self.observed = normal, dict(observed or {})
        self._columns = {name: x[:, k] for k, name in enumerate(problem.coords)}

    def __call__(self, key: str | tuple[str, tuple[str, ...]]) -> Any:
        if isinstance(key, tuple):
            if key[1] == (NORMAL,):
                return self.normal_derivative(key[0])
            return self.derivatives(key[0], key[1])
        if key in self._columns:
            return self._columns[key]
        if key in self.params:
            return self.params[key]
        return self.derivatives(key)

    def __getitem__(self, name: str) -> Any:
        if name in self._columns or name in self.params or name in self.problem.fields:
            return self(name)
        derivative = self.problem.namespace.parse_derivative_name(name)
        if derivative is None:
            raise KeyError(f"unknown name {name!r}; valid names are {self.problem.namespace.describe()}")
        return self(derivative)

    def d(self, field: str, *coords: str) -> Tensor:
        """The partial of ``field`` along ``coords``: ``ev.d("u", "x", "t")`` is ``u_xt``."""
        return self.derivatives(field, coords)

    def normal_derivative(self, field: str) -> Tensor:
        """``grad(field) . n``, the derivative along the outward unit normal (``u_n``)."""
        if self.normal is None:
            raise ValueError(f"{field}_n: this point set carries no normals (only boundary conditions "
                             "whose expressions use a normal derivative do)")
        return sum(self.normal[:, k] * self.derivatives(field, (c,)) for k, c in enumerate(self.problem.coords))


def parameter_values(problem: Problem, learnable: Mapping[str, Tensor] | None = None) -> dict[str, Any]:
    """Constant parameters as floats, learnable ones as the given tensors (else initial values)."""
    values: dict[str, Any] = dict(problem.params)
    for name, initial in problem.learnable.items():
        values[name] = learnable[name] if learnable is not None and name in learnable else initial
    return values


Engine = AutogradEngine | JetEngine


def required_derivatives(problem: Problem, point_set: str) -> set[tuple[str, tuple[str, ...]]]:
    """The partials the expression terms of ``point_set`` ask for (Python residuals say so on first use).

    A normal derivative ``u_n`` asks for every first partial of ``u``.
    """
    required = set()
    for name in problem.point_sets[point_set].terms:
        for field, coords in getattr(problem.terms[name].residual, "derivatives", ()):
            if coords == (NORMAL,):
                required |= {(field, (c,)) for c in problem.coords}
            else:
                required.add((field, coords))
    return required


def max_order(problem: Problem) -> int:
    """The highest derivative order the expression terms of ``problem`` declare (0 when none)."""
    return max((len(coords) for name in problem.point_sets for _, coords in required_derivatives(problem, name)),
               default=0)


def prepare_engine(engine: Engine, problem: Problem, points: Mapping[str, Tensor]) -> None:
    """Let the engine plan its passes over these point sets before a (compiled) evaluation.

    A training step calls this every time; what each point set needs is read from the spec once.
    """
    if isinstance(engine, JetEngine):
        required = _REQUIRED.setdefault(problem, {})
        for name in points.keys() - required.keys():
            required[name] = required_derivatives(problem, name)
        engine.prepare(problem.coords, {name: required[name] for name in points})


_REQUIRED: weakref.WeakKeyDictionary[Problem, dict[str, set]] = weakref.WeakKeyDictionary()
"""``{problem: {point set: required_derivatives(problem, point set)}}``, filled by :func:`prepare_engine`."""


def residuals(
    problem: Problem, forward: Forward, points: Mapping[str, Tensor], params: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
) -> dict[str, Tensor]:
    """Per-point residuals ``{term: (N,)}`` of every term whose point set is in ``points``.

    Args:
        problem: the spec.
        forward: the network as a function of points.
        points: ``{point set name: (N, n_coords)}``, as drawn by the module.
        params: parameter values (see :func:`parameter_values`); defaults to the spec's.
        engine: the derivative engine (see ``derivatives.engines.choose_engine``); autograd by default.
    """
    params = parameter_values(problem) if params is None else params
    engine = AutogradEngine() if engine is None else engine
    out: dict[str, Tensor] = {}
    for set_name, x in points.items():
        with torch.autocast(device_type=x.device.type, enabled=False):  # derivatives in the points' dtype
            out.update(_residuals_on(problem, forward, set_name, x, params, engine))
    return out


def _residuals_on(problem: Problem, forward: Forward, set_name: str, x: Tensor, params: Mapping[str, Any],
                  engine: Engine) -> dict:
    """The residuals of the terms of one point set: one network pass, one derivative lookup."""
    spec = problem.point_sets[set_name]
    extra = None
    if x.shape[1] != problem.n_coords:
        if x.dim() != 2 or x.shape[1] != problem.n_coords + spec.extra_width(problem.n_coords):
            raise ValueError(f"points of {set_name!r} have shape {tuple(x.shape)}; expected (N, {problem.n_coords}) "
                             f"coordinates {list(problem.coords)}, followed by {spec.extra_width(problem.n_coords)} "
                             "normal or observation columns where the set has them")
        x, extra = x[:, :problem.n_coords], x[:, problem.n_coords:]
    x, y, derivatives = engine.evaluate(forward, x, problem.coords, problem.fields,
                                        required_derivatives(problem, set_name), set_name)
    normal = extra if spec.normals else None
    observed = {f: extra[:, k] for k, f in enumerate(spec.observed)} if extra is not None else {}
    evaluation = Evaluation(problem, x, y, params, derivatives, normal, observed)
    out = {}
    for name in spec.terms:
        residual = problem.terms[name].residual
        value = residual(evaluation)
        # pairs and observations give one flat vector (pairs x expressions, rows x fields)
        out[name] = value if isinstance(residual, (PeriodicResidual, ObservationResidual)) else _per_point(value, x, name)
    return out


def _per_point(value: Any, x: Tensor, name: str) -> Tensor:
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if value.dim() == 2 and value.shape[1] == 1:
        value = value[:, 0]
    if value.dim() == 0:
        value = value.expand(x.shape[0])
    if value.shape != (x.shape[0],):
        raise ValueError(f"residual of term {name!r} has shape {tuple(value.shape)}, expected ({x.shape[0]},)")
    return value
