"""The PDE spec: coordinates and bounds, fields, parameters, equations and conditions."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from lightning_pinn.config import config_of
from lightning_pinn.geometry.box import Box, Region
from lightning_pinn.geometry.samplers import METHODS
from lightning_pinn.problem.expressions import CONSTANTS, FUNCTIONS, Expression, Namespace, compile_expression

Residual = Callable[[Any], Any]
"""A Python residual: called with the step's name lookup (see ``residuals.Evaluation``)."""

INTERIOR = "interior"


@dataclass
class Condition:
    """An equation that must hold on a region of the box.

    Args:
        region: ``"interior"``, ``"boundary"``, a face like ``"t=0"``, or a list of those.
        residual: an expression string (``"u + sin(pi*x)"``) or a callable taking the
            step's lookup; the loss drives it to zero.
        points: number of points drawn on the region.
        weight: factor of this term in the total loss.
        sampler: sampling method for this condition; ``None`` uses the module's.

    Dirichlet, Neumann and initial conditions are all conditions: ``u`` on
    ``boundary``, ``u_x`` on ``x=1``, ``u + sin(pi*x)`` on ``t=0``.
    """

    region: str | Sequence[str]
    residual: str | Residual
    points: int = 256
    weight: float = 1.0
    sampler: str | None = None


@dataclass
class Term:
    """One named loss term after compilation: a residual, the point set it lives on, its weight."""

    name: str
    residual: Expression | Residual
    point_set: str
    weight: float


@dataclass
class PointSetSpec:
    """Where and how many points one group of terms is evaluated on."""

    regions: list[Region]
    points: int
    sampler: str | None = None
    terms: list[str] = field(default_factory=list)


class Problem:
    """What to solve: coordinates with bounds, fields, parameters, equations, conditions.

    Args:
        coords: ``{name: [lo, hi]}`` in the order the network sees them.
        fields: names of the network's outputs, in order.
        equations: ``{name: residual}`` that hold in the interior; a residual is an
            expression string, a callable, or ``{"residual": ..., "weight": w}``.
        conditions: ``{name: Condition or dict}`` that hold on regions.
        params: constant parameters ``{name: value}``.
        learnable: learnable parameters ``{name: initial value}``; the module makes
            them ``nn.Parameter`` so they are optimized and checkpointed.
        collocation_points: number of interior points for the equations.
        time: name of the time coordinate (default: ``"t"`` when there is one).
        reference: optional exact or numerical solution, called as
            ``reference(**{coord: array})`` and returning an array of the field
            (one field) or ``{field: array}``; used for validation errors.
        name: a short name for logs.

    Raises:
        ValueError: for bad bounds, unknown regions, clashing names, bad counts.
        ExpressionError: for expressions outside the language or with unknown names.

    Example:
        >>> p = Problem(coords={"x": [-1, 1], "t": [0, 1]}, fields=["u"], params={"nu": 0.01},
        ...             equations={"burgers": "u_t + u*u_x - nu*u_xx"},
        ...             conditions={"initial": {"region": "t=0", "residual": "u + sin(pi*x)"}})
        >>> sorted(p.terms)
        ['burgers', 'initial']
    """

    def __init__(
        self,
        coords: Mapping[str, Sequence[float]],
        fields: Sequence[str],
        equations: Mapping[str, Any],
        conditions: Mapping[str, Condition | Mapping[str, Any]] | None = None,
        params: Mapping[str, float] | None = None,
        learnable: Mapping[str, float] | None = None,
        collocation_points: int = 2000,
        time: str | None = None,
        reference: Callable[..., Any] | None = None,
        name: str = "problem",
    ):
        coords = {str(k): [float(v) for v in b] for k, b in dict(coords).items()}
        self.fields = tuple(str(f) for f in fields)
        self.params = {str(k): float(v) for k, v in dict(params or {}).items()}
        self.learnable = {str(k): float(v) for k, v in dict(learnable or {}).items()}
        self.time = time if time is not None else ("t" if "t" in coords else None)
        self.box = Box(coords, time=self.time)
        self.coords = self.box.names
        self.reference = reference
        self.name = name
        self._check_names()
        self.namespace = Namespace(self.coords, self.fields, (*self.params, *self.learnable))

        if not equations and not conditions:
            raise ValueError("equations: a problem needs at least one equation or condition")
        self.terms: dict[str, Term] = {}
        self.point_sets: dict[str, PointSetSpec] = {}
        if equations:
            _check_count("collocation_points", collocation_points)
            self.point_sets[INTERIOR] = PointSetSpec(self.box.regions(INTERIOR), int(collocation_points))
        for key, spec in dict(equations or {}).items():
            residual, weight = _residual_and_weight(spec, f"equations.{key}")
            self._add_term(str(key), residual, INTERIOR, weight, f"equations.{key}")
        self._conditions = {k: _as_condition(c, f"conditions.{k}") for k, c in dict(conditions or {}).items()}
        for key, cond in self._conditions.items():
            where = f"conditions.{key}"
            if key in self.point_sets:
                raise ValueError(f"{where}: the name {key!r} is taken; rename the condition")
            _check_count(f"{where}.points", cond.points)
            if cond.sampler is not None and cond.sampler not in METHODS:
                raise ValueError(f"{where}.sampler: expected one of {list(METHODS)} but got {cond.sampler!r}")
            self.point_sets[key] = PointSetSpec(self.box.regions(cond.region, f"{where}.region"), int(cond.points), cond.sampler)
            self._add_term(str(key), cond.residual, key, float(cond.weight), where)
        self._equations = dict(equations or {})
        self._collocation_points = int(collocation_points)

    def _check_names(self) -> None:
        seen: dict[str, str] = {}
        groups = [("coords", self.coords), ("fields", self.fields), ("params", self.params), ("learnable", self.learnable)]
        reserved = {*CONSTANTS, *FUNCTIONS, "d"}
        if not self.fields:
            raise ValueError("fields: expected at least one field name")
        for group, names in groups:
            for name in names:
                if not name.isidentifier():
                    raise ValueError(f"{group}: {name!r} is not a valid name (letters, digits, underscores)")
                if name in reserved:
                    raise ValueError(f"{group}: {name!r} is reserved (constants, functions and d)")
                if name in seen:
                    raise ValueError(f"{group}: {name!r} is already used in {seen[name]}")
                seen[name] = group

    def _add_term(self, name: str, residual: Any, point_set: str, weight: float, key: str) -> None:
        if name in self.terms:
            raise ValueError(f"{key}: the term name {name!r} is used twice; equations and conditions need distinct names")
        if isinstance(residual, str):
            residual = compile_expression(residual, self.namespace, key=key)
        elif not callable(residual):
            raise ValueError(f"{key}: expected an expression string or a callable but got {residual!r}")
        if not weight >= 0:
            raise ValueError(f"{key}.weight: expected a non-negative weight but got {weight}")
        self.terms[name] = Term(name, residual, point_set, float(weight))
        self.point_sets[point_set].terms.append(name)

    @property
    def n_coords(self) -> int:
        """Number of input coordinates."""
        return len(self.coords)

    @property
    def n_fields(self) -> int:
        """Number of output fields."""
        return len(self.fields)

    @property
    def bounds(self) -> list[list[float]]:
        """``[[lo, hi], ...]`` in coordinate order."""
        return [[lo, hi] for lo, hi in zip(self.box.lo, self.box.hi)]

    def to_config(self) -> dict[str, Any]:
        """A plain-data config that rebuilds this problem with ``hydra.utils.instantiate``.

        Raises:
            ValueError: when a residual or the reference cannot be named by import path
                (a lambda or a local function).
        """
        def residual_config(value: Any, key: str) -> Any:
            return value if isinstance(value, str) else callable_config(value, key)

        equations = {}
        for key, spec in self._equations.items():
            residual, weight = _residual_and_weight(spec, key)
            equations[key] = {"residual": residual_config(residual, f"equations.{key}"), "weight": weight}
        conditions = {
            key: {"region": c.region if isinstance(c.region, str) else list(c.region),
                  "residual": residual_config(c.residual, f"conditions.{key}"),
                  "points": c.points, "weight": c.weight, "sampler": c.sampler}
            for key, c in self._conditions.items()
        }
        return {
            "_target_": f"{type(self).__module__}.{type(self).__qualname__}",
            "coords": {k: list(b) for k, b in zip(self.coords, self.bounds)},
            "fields": list(self.fields),
            "equations": equations,
            "conditions": conditions,
            "params": dict(self.params),
            "learnable": dict(self.learnable),
            "collocation_points": self._collocation_points,
            "time": self.time,
            "reference": None if self.reference is None else callable_config(self.reference, "reference"),
            "name": self.name,
        }


def callable_config(obj: Any, key: str) -> dict[str, Any]:
    """A ``_target_`` config for a callable, or a ValueError naming ``key`` when it has no import path."""
    config = config_of(obj)
    if config is None:
        raise ValueError(f"{key}: {obj!r} has no import path; use a module-level function so it can be saved")
    return config


def _residual_and_weight(spec: Any, key: str) -> tuple[Any, float]:
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"residual", "weight"}
        if unknown or "residual" not in spec:
            raise ValueError(f"{key}: expected a residual, or a mapping with 'residual' and 'weight', got keys {sorted(map(str, spec))}")
        return spec["residual"], float(spec.get("weight", 1.0))
    return spec, 1.0


def _as_condition(cond: Condition | Mapping[str, Any], key: str) -> Condition:
    if isinstance(cond, Condition):
        return cond
    if not isinstance(cond, Mapping):
        raise ValueError(f"{key}: expected a mapping with 'region' and 'residual' but got {cond!r}")
    allowed = set(inspect.signature(Condition).parameters)
    unknown = set(cond) - allowed
    if unknown or "region" not in cond or "residual" not in cond:
        raise ValueError(f"{key}: expected keys among {sorted(allowed)} with 'region' and 'residual', got {sorted(map(str, cond))}")
    region = cond["region"]
    return Condition(**{**cond, "region": region if isinstance(region, str) else [str(v) for v in region]})


def _check_count(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}: expected a positive integer but got {value!r}")
