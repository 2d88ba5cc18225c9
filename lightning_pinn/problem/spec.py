"""The PDE spec: coordinates and bounds, fields, parameters, equations and conditions."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from lightning_pinn.config import build, config_of
from lightning_pinn.errors import ConfigError
from lightning_pinn.geometry.box import Box, Region
from lightning_pinn.geometry.domain import Domain
from lightning_pinn.geometry.samplers import METHODS
from lightning_pinn.geometry.shapes import Shape
from lightning_pinn.problem.condition_residuals import ObservationResidual, PeriodicResidual
from lightning_pinn.problem.expressions import CONSTANTS, FUNCTIONS, NORMAL, Expression, Namespace, compile_expression
from lightning_pinn.problem.observations import load_observations
from lightning_pinn.problem.output_transform import OutputTransform

PythonResidual = Callable[[Any], Any]
"""A Python residual: called with the step's name lookup (see ``residuals.Evaluation``)."""

INTERIOR = "interior"


@dataclass
class Condition:
    """An equation that must hold on a region, across a periodic pair of faces, or at observations.

    Args:
        region: ``"interior"``, ``"boundary"``, a face like ``"t=0"``, or a list of those.
        residual: an expression string (``"u + sin(pi*x)"``) or a callable taking the
            step's lookup; the loss drives it to zero. For ``periodic``: a list of
            expressions that must agree on the two faces (default: every field and its
            first derivative along the periodic coordinate). Not used with ``data``.
        points: number of points drawn on the region (default 256; pairs for ``periodic``);
            with ``data``, how many observations to use (default: every row of a file, 1000
            samples of the reference).
        weight: factor of this term in the total loss.
        sampler: sampling method for this condition; ``None`` uses the module's.
        periodic: a coordinate whose lower and upper faces are identified: points are drawn in
            pairs, one on each face, and each residual expression must agree on both.
        data: observations the fields must match: a ``.npz``, ``.csv`` or ``.mat`` file with one
            column per coordinate and per observed field (by name), or ``"reference"`` to sample
            the problem's reference solution at ``points`` random points (seeded, noiseless).

    Dirichlet, Neumann, Robin and initial conditions are all conditions: ``u`` on ``boundary``,
    ``u_n`` (the outward normal derivative) or ``u_n + u`` on ``boundary``, ``u_t`` on ``t=0``.
    """

    region: str | Sequence[str] | None = None
    residual: str | PythonResidual | Sequence[str] | None = None
    points: int | None = None
    weight: float = 1.0
    sampler: str | None = None
    periodic: str | None = None
    data: str | None = None


@dataclass
class Term:
    """One named loss term after compilation: a residual, the point set it lives on, its weight."""

    name: str
    residual: Expression | PythonResidual
    point_set: str
    weight: float


@dataclass
class PointSetSpec:
    """Where and how many points one group of terms is evaluated on, and what its extra columns hold.

    A point set's array has the coordinates first; then the outward normal (``normals``), or
    the observed values of ``observed`` fields (fixed ``rows``). A ``periodic`` set has twice
    ``points`` rows: row ``i`` on the lower face and row ``points + i`` on the upper one.
    The sources that draw the points, and their streams, are built by ``lightning_pinn.points``.
    """

    regions: list[Region]
    points: int
    sampler: str | None = None
    terms: list[str] = field(default_factory=list)
    normals: bool = False
    periodic: tuple[int, float] | None = None
    rows: Any = None
    observed: tuple[str, ...] = ()

    def extra_width(self, n_coords: int) -> int:
        """Number of columns after the coordinates."""
        return n_coords if self.normals else len(self.observed)


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
        geometry: a spatial shape inside the coordinates' bounds (``Disk``, ``Polygon``, ``Rectangle``
            minus ``Disk``\ s, ...; see ``lightning_pinn.geometry``), or its config; the domain is then that
            shape (times the time interval), with regions ``interior``, ``boundary`` and time faces.
        output_transform: hard constraints ``{field: expression}`` in which a field's name is the
            network's raw output, e.g. ``{"u": "x*(1 - x)*u"}`` (see ``problem.output_transform``).

    Raises:
        ValueError: for bad bounds, unknown regions, clashing names, bad counts.
        ExpressionError: for expressions outside the language or with unknown names.

    Examples:
        >>> p = Problem(coords={"x": [-1, 1], "t": [0, 1]}, fields=["u"], params={"nu": 0.01},
        ...             equations={"burgers": "u_t + u*u_x - nu*u_xx"},
        ...             conditions={"initial": {"region": "t=0", "residual": "u + sin(pi*x)"}})
        >>> sorted(p.terms)
        ['burgers', 'initial']
    """

    builds_own_arguments = ("geometry", "reference")
    """Given as configs, these are built by the constructor after it has checked the rest (see ``config.instantiate_data``)."""

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
        output_transform: Mapping[str, str] | None = None,
        geometry: Shape | Mapping[str, Any] | None = None,
    ):
        coords = {str(k): _bounds(b, f"coords.{k}") for k, b in _mapping(coords, "coords").items()}
        if isinstance(fields, str) or not isinstance(fields, Sequence):
            raise ConfigError(f"fields: expected a list of field names like [u, v] but got {fields!r}")
        self.fields = tuple(str(f) for f in fields)
        self.params = {str(k): _number(v, f"params.{k}") for k, v in _mapping(params, "params").items()}
        self.learnable = {str(k): _number(v, f"learnable.{k}") for k, v in _mapping(learnable, "learnable").items()}
        self.time = time if time is not None else ("t" if "t" in coords else None)
        self.box = Box(coords, time=self.time)
        self.coords = self.box.names
        self.domain = Domain(self.box, build(geometry, "geometry"))
        """Where points are drawn: the box, or the geometry inside it."""
        self.reference = build(reference, "reference")
        self.name = name
        self._check_names()
        self.namespace = Namespace(self.coords, self.fields, (*self.params, *self.learnable))
        self.output_transform = None if not output_transform else OutputTransform(
            output_transform, self.coords, self.fields, self.params)
        """The compiled hard constraints, applied by ``PINNModule`` and ``PhysicsLoss`` (None: raw outputs)."""

        if not equations and not conditions:
            raise ConfigError("equations: a problem needs at least one equation or condition")
        self.terms: dict[str, Term] = {}
        self.point_sets: dict[str, PointSetSpec] = {}
        if equations:
            _check_count("collocation_points", collocation_points)
            self.point_sets[INTERIOR] = PointSetSpec(self.domain.regions(INTERIOR), int(collocation_points))
        for key, spec in dict(equations or {}).items():
            residual, weight = _residual_and_weight(spec, f"equations.{key}")
            self._add_term(str(key), residual, INTERIOR, weight, f"equations.{key}")
        self._conditions = {k: _as_condition(c, f"conditions.{k}") for k, c in dict(conditions or {}).items()}
        for key, cond in self._conditions.items():
            if key in self.point_sets:
                raise ConfigError(f"conditions.{key}: the name {key!r} is taken; rename the condition")
            self._add_condition(str(key), cond, f"conditions.{key}")
        self._equations = dict(equations or {})
        self._collocation_points = int(collocation_points)

    @classmethod
    def from_yaml(cls, path: str | Path, trusted_targets: Iterable[str] = ()) -> Problem:
        """A problem from a YAML file read as data: plain values, never composed by Hydra.

        The file holds this class's keys (``coords``, ``fields``, ``equations``, ...), with or
        without ``_target_: lightning_pinn.Problem``. Hydra syntax in it (a ``defaults`` list,
        ``# @package _global_``, ``${...}``) is not interpreted, so a problem file you did not
        write cannot rewrite your run. The targets in it (reference, geometry) must be on the
        allow-list (``lightning_pinn.allowlist``); ``trusted_targets`` adds to it for this call.
        ``train.py problem_file=path/to/problem.yaml`` loads one this way.

        Raises:
            ConfigError: naming the file and the key: an unreadable file, YAML that is not a
                mapping, unknown keys, a refused target, anything the constructor refuses.
        """
        import yaml

        from lightning_pinn.allowlist import trusting
        from lightning_pinn.config import instantiate_data

        key = f"{path}:"
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as err:
            raise ConfigError(f"{key} cannot read the problem file ({err.strerror})") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"{key} not valid YAML: {' '.join(str(err).split())}") from err
        if not isinstance(data, Mapping):
            raise ConfigError(f"{key} expected a mapping of problem keys (coords, fields, equations, ...) but got "
                              f"{type(data).__name__}")
        with trusting(trusted_targets):
            problem = instantiate_data({"_target_": f"{cls.__module__}.{cls.__qualname__}", **data}, key)
        if not isinstance(problem, Problem):
            raise ConfigError(f"{key} _target_: expected a lightning_pinn.Problem but got {type(problem).__name__}")
        return problem

    def _check_names(self) -> None:
        seen: dict[str, str] = {}
        groups = [("coords", self.coords), ("fields", self.fields), ("params", self.params), ("learnable", self.learnable)]
        reserved = {*CONSTANTS, *FUNCTIONS, "d"}
        if not self.fields:
            raise ConfigError("fields: expected at least one field name")
        for group, names in groups:
            for name in names:
                if not name.isidentifier():
                    raise ConfigError(f"{group}: {name!r} is not a valid name (letters, digits, underscores)")
                if name in reserved:
                    raise ConfigError(f"{group}: {name!r} is reserved (constants, functions and d)")
                if name in seen:
                    raise ConfigError(f"{group}: {name!r} is already used in {seen[name]}")
                seen[name] = group

    def _add_condition(self, key: str, cond: Condition, where: str) -> None:
        kinds = [kind for kind in ("region", "periodic", "data") if getattr(cond, kind) is not None]
        if len(kinds) != 1:
            raise ConfigError(f"{where}: expected exactly one of 'region', 'periodic' or 'data' but got {kinds or 'none'}")
        if cond.points is not None:
            _check_count(f"{where}.points", cond.points)
        if cond.sampler is not None and cond.sampler not in METHODS:
            raise ConfigError(f"{where}.sampler: expected one of {list(METHODS)} but got {cond.sampler!r}")
        if cond.data is not None:
            if cond.residual is not None:
                raise ConfigError(f"{where}.residual: a data condition's residual is the misfit of the observed "
                                 "fields; remove 'residual'")
            rows, observed = self._observation_rows(cond, where)
            self.point_sets[key] = PointSetSpec([], len(rows), rows=rows, observed=observed)
            residual: Any = ObservationResidual(observed)
        elif cond.periodic is not None:
            column, upper = self._periodic_column(cond.periodic, f"{where}.periodic")
            sources = cond.residual if cond.residual is not None else [
                f for name in self.fields for f in (name, f"d({name}, {cond.periodic})")]
            sources = [sources] if isinstance(sources, str) else list(sources)
            if not sources or not all(isinstance(text, str) for text in sources):
                raise ConfigError(f"{where}.residual: expected a list of expressions that must agree on both faces "
                                 f"but got {cond.residual!r}")
            residual = PeriodicResidual([compile_expression(text, self.namespace, key=f"{where}.residual[{k}]")
                                         for k, text in enumerate(sources)])
            self.point_sets[key] = PointSetSpec([self.box.face(column, 0)], int(cond.points or 256), cond.sampler,
                                                periodic=(column, upper))
        else:
            if cond.residual is None:
                raise ConfigError(f"{where}.residual: a condition on a region needs a 'residual' expression or callable")
            residual = cond.residual
            self.point_sets[key] = PointSetSpec(self.domain.regions(cond.region, f"{where}.region"), int(cond.points or 256),
                                                cond.sampler)
        self._add_term(key, residual, key, _number(cond.weight, f"{where}.weight"), where)

    def _periodic_column(self, name: Any, key: str) -> tuple[int, float]:
        if name not in self.coords:
            raise ConfigError(f"{key}: {name!r} is not a coordinate; coordinates are {list(self.coords)}")
        column = self.coords.index(name)
        if self.domain.shape is not None and name != self.time:
            raise ConfigError(f"{key}: the faces {name}={self.box.lo[column]:g} and {name}={self.box.hi[column]:g} of "
                             f"{self.domain.shape!r} need not match in size; periodic conditions need a box domain "
                             "(drop geometry, or use a periodic embedding in the network)")
        return column, self.box.hi[column]

    def _observation_rows(self, cond: Condition, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
        """Coordinates then observed values, one row per observation."""
        if cond.data == "reference":
            if self.reference is None:
                raise ConfigError(f"{where}.data: 'reference' samples the problem's reference, and it has none")
            points = self.domain.sample_interior(int(cond.points or 1000), seed=0)
            return np.concatenate([points, self.reference_values(points)], axis=1), self.fields
        points, values = load_observations(cond.data, self.coords, self.fields, f"{where}.data")
        if cond.points is not None and cond.points < len(points):
            keep = np.sort(np.random.default_rng(0).choice(len(points), int(cond.points), replace=False))
            points, values = points[keep], {f: v[keep] for f, v in values.items()}
        return np.concatenate([points, np.stack(list(values.values()), axis=1)], axis=1), tuple(values)

    def reference_values(self, points: np.ndarray) -> np.ndarray:
        """``reference`` at ``points`` ``(N, n_coords)``, as ``(N, n_fields)`` float64."""
        values = self.reference(**{name: points[:, k] for k, name in enumerate(self.coords)})
        if isinstance(values, Mapping):
            values = np.stack([np.asarray(values[f], dtype=np.float64) for f in self.fields], axis=1)
        values = np.asarray(values, dtype=np.float64).reshape(points.shape[0], -1)
        if values.shape[1] != self.n_fields:
            raise ConfigError(f"reference: returned {values.shape[1]} columns for fields {list(self.fields)}")
        return values

    def _add_term(self, name: str, residual: Any, point_set: str, weight: float, key: str) -> None:
        if name in self.terms:
            raise ConfigError(f"{key}: the term name {name!r} is used twice; equations and conditions need distinct names")
        if isinstance(residual, str):
            residual = compile_expression(residual, self.namespace, key=key)
        elif not callable(residual):
            raise ConfigError(f"{key}: expected an expression string or a callable but got {residual!r}")
        if not weight >= 0:
            raise ConfigError(f"{key}.weight: expected a non-negative weight but got {weight}")
        spec = self.point_sets[point_set]
        if any(coords == (NORMAL,) for _, coords in getattr(residual, "derivatives", ())):
            plain = [r.label for r in spec.regions if not r.has_normals]
            if spec.periodic is not None or spec.rows is not None or plain:
                where = f"region {plain[0]!r}" if plain else "this condition"
                raise ConfigError(f"{key}: normal derivatives (like {self.fields[0]}_n) need points on a boundary, "
                                 f"and {where} has no outward normal")
            spec.normals = True
        self.terms[name] = Term(name, residual, point_set, float(weight))
        spec.terms.append(name)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Whether each row of ``points`` ``(n, n_coords)`` lies in the domain."""
        return self.domain.contains(points)

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

    def fingerprint(self) -> dict[str, Any]:
        """What makes this problem the same problem for a resumed run, as plain data.

        Coordinates and bounds, fields, parameters, learnable parameter names, the time
        coordinate, equations and conditions (regions, residuals, periodic pairs, data sources),
        the geometry and the output transform. Not weights, samplers or the reference (training
        settings), nor point counts (:meth:`point_counts`). Python residuals count by import path.
        """
        def source(residual: Any) -> Any:
            if residual is None or isinstance(residual, str):
                return residual
            if _is_list(residual):
                return [source(r) for r in residual]
            return f"{getattr(residual, '__module__', '?')}.{getattr(residual, '__qualname__', type(residual).__name__)}"

        conditions = {}
        for key, c in self._conditions.items():
            region = c.region if c.region is None or isinstance(c.region, str) else list(c.region)
            conditions[key] = {"region": region, "residual": source(c.residual), "periodic": c.periodic, "data": c.data}
        return {
            "coords": {k: list(b) for k, b in zip(self.coords, self.bounds)},
            "fields": list(self.fields),
            "params": dict(self.params),
            "learnable": sorted(self.learnable),
            "time": self.time,
            "equations": {k: source(_residual_and_weight(spec, k)[0]) for k, spec in self._equations.items()},
            "conditions": conditions,
            "geometry": None if self.domain.shape is None else self.domain.shape.to_config(),
            "output_transform": None if self.output_transform is None else dict(self.output_transform.sources),
        }

    def point_counts(self) -> dict[str, int]:
        """Points per point set (interior and each condition), as drawn each time."""
        return {name: int(spec.points) for name, spec in self.point_sets.items()}

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
        conditions = {}
        for key, c in self._conditions.items():
            residual = c.residual
            if residual is not None and not isinstance(residual, str):
                residual = list(residual) if _is_list(residual) else residual_config(residual, f"conditions.{key}")
            region = c.region if c.region is None or isinstance(c.region, str) else list(c.region)
            conditions[key] = {"region": region, "residual": residual, "points": c.points, "weight": c.weight,
                               "sampler": c.sampler, "periodic": c.periodic, "data": c.data}
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
            "geometry": None if self.domain.shape is None else self.domain.shape.to_config(),
            "output_transform": None if self.output_transform is None else dict(self.output_transform.sources),
        }


def callable_config(obj: Any, key: str) -> dict[str, Any]:
    """A ``_target_`` config for a callable, or a ValueError naming ``key`` when it has no import path."""
    config = config_of(obj)
    if config is None:
        raise ConfigError(f"{key}: {obj!r} has no import path; use a module-level function so it can be saved")
    return config


def _residual_and_weight(spec: Any, key: str) -> tuple[Any, float]:
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"residual", "weight"}
        if unknown or "residual" not in spec:
            raise ConfigError(f"{key}: expected a residual, or a mapping with 'residual' and 'weight', got keys {sorted(map(str, spec))}")
        return spec["residual"], _number(spec.get("weight", 1.0), f"{key}.weight")
    return spec, 1.0


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _as_condition(cond: Condition | Mapping[str, Any], key: str) -> Condition:
    if isinstance(cond, Condition):
        return cond
    if not isinstance(cond, Mapping):
        raise ConfigError(f"{key}: expected a mapping with 'region' and 'residual' but got {cond!r}")
    allowed = set(inspect.signature(Condition).parameters)
    unknown = set(cond) - allowed
    if unknown:
        raise ConfigError(f"{key}: unknown keys {sorted(map(str, unknown))}; expected keys among {sorted(allowed)}")
    cond = dict(cond)
    for name in ("region", "residual"):
        if _is_list(cond.get(name)):
            cond[name] = [str(v) if name == "region" else v for v in cond[name]]
    return Condition(**cond)


def _number(value: Any, key: str) -> float:
    """``value`` as a finite float, or a ConfigError naming ``key``."""
    try:
        number = float(value) if not isinstance(value, (bool, str)) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number):
        raise ConfigError(f"{key}: expected a finite number but got {value!r}")
    return number


def _bounds(value: Any, key: str) -> list[float]:
    """``[lo, hi]`` as two finite floats, or a ConfigError naming ``key``."""
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"{key}: expected bounds [lo, hi] (two numbers) but got {value!r}")
    return [_number(v, f"{key}[{k}]") for k, v in enumerate(value)]


def _mapping(value: Any, key: str) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping {{name: value}} but got {value!r}")
    return dict(value)


def _check_count(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}: expected a positive integer but got {value!r}")
