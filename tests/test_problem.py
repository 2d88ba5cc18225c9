"""The PDE spec: built from plain data, checked at construction, saved and rebuilt through Hydra."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lightning_pinn.problem import Condition, ExpressionError, Problem
from lightning_pinn.problem.expressions import Expression
from lightning_pinn.references import BurgersColeHopf


def wall_flux(lookup):
    """A Python residual at module level, so that it has an import path."""
    return lookup(("u", ("x",))) - 2.0 * lookup("u")


def spec(**overrides) -> dict:
    """A Burgers problem as plain data, the way YAML hands it over."""
    base = {
        "coords": {"x": [-1, 1], "t": [0, 1]},
        "fields": ["u"],
        "params": {"nu": 0.01 / math.pi},
        "equations": {"burgers": "u_t + u*u_x - nu*u_xx"},
        "collocation_points": 300,
        "conditions": {
            "initial": {"region": "t=0", "residual": "u + sin(pi*x)", "points": 64, "weight": 10, "sampler": "lhs"},
            "walls": {"region": "boundary", "residual": "u", "points": 32},
        },
    }
    base.update(overrides)
    return base


def test_builds_from_plain_dicts():
    problem = Problem(**spec())
    assert problem.coords == ("x", "t") and problem.fields == ("u",)
    assert problem.n_coords == 2 and problem.n_fields == 1
    assert problem.bounds == [[-1.0, 1.0], [0.0, 1.0]]
    assert problem.time == "t"  # the default when there is a coordinate t
    assert problem.params == {"nu": pytest.approx(0.01 / math.pi)} and problem.learnable == {}
    assert list(problem.terms) == ["burgers", "initial", "walls"]

    burgers, initial, walls = (problem.terms[k] for k in ("burgers", "initial", "walls"))
    assert (burgers.point_set, burgers.weight) == ("interior", 1.0)
    assert (initial.point_set, initial.weight) == ("initial", 10.0)
    assert (walls.point_set, walls.weight) == ("walls", 1.0)
    assert isinstance(burgers.residual, Expression) and burgers.residual.key == "equations.burgers"
    assert burgers.residual.derivatives == {("u", ("t",)), ("u", ("x",)), ("u", ("x", "x"))}
    assert initial.residual.key == "conditions.initial"

    sets = problem.point_sets
    assert list(sets) == ["interior", "initial", "walls"]
    assert [r.label for r in sets["interior"].regions] == ["interior"] and sets["interior"].points == 300
    assert [r.label for r in sets["initial"].regions] == ["t=0"]
    assert (sets["initial"].points, sets["initial"].sampler) == (64, "lhs")
    assert [r.label for r in sets["walls"].regions] == ["x=-1", "x=1"]  # boundary leaves out time
    assert (sets["walls"].points, sets["walls"].sampler) == (32, None)
    assert sets["interior"].terms == ["burgers"] and sets["walls"].terms == ["walls"]


def test_compiled_residual_evaluates_the_pde():
    problem = Problem(**spec())
    values = {"u": 0.5, "nu": 0.1, ("u", ("t",)): 1.0, ("u", ("x",)): 2.0, ("u", ("x", "x")): 3.0, "x": 0.25}
    values["nu"] = problem.params["nu"]
    assert problem.terms["burgers"].residual(values.__getitem__) == pytest.approx(1.0 + 0.5 * 2.0 - values["nu"] * 3.0)
    assert problem.terms["initial"].residual(values.__getitem__) == pytest.approx(0.5 + math.sin(math.pi * 0.25))


def test_condition_objects_weights_and_learnable_parameters():
    problem = Problem(
        coords={"x": (0, 1), "y": (0, 2)}, fields=["u", "v"], params={"a": 1},
        learnable={"k": 0.5},
        equations={"pde": {"residual": "u_xx + u_yy - k*v", "weight": 0.25}, "div": "v_x + a"},
        conditions={"left": Condition(region=["x=0", "y=2"], residual="u", points=10, weight=2.0, sampler="grid")},
    )
    assert problem.time is None
    assert problem.learnable == {"k": 0.5}
    assert problem.terms["pde"].weight == 0.25 and problem.terms["div"].weight == 1.0
    assert problem.point_sets["interior"].terms == ["pde", "div"]
    assert problem.point_sets["interior"].points == 2000  # the default
    assert [r.label for r in problem.point_sets["left"].regions] == ["x=0", "y=2"]
    assert problem.terms["pde"].residual.names == {"k", "v"}
    boundary = Problem(coords={"x": (0, 1), "y": (0, 2)}, fields=["u"], equations={"pde": "u_xx + u_yy"},
                       conditions={"edge": {"region": "boundary", "residual": "u"}})
    assert [r.label for r in boundary.point_sets["edge"].regions] == ["x=0", "x=1", "y=0", "y=2"]  # no time


def test_a_problem_of_conditions_only_has_no_interior_set():
    problem = Problem(coords={"x": [0, 1]}, fields=["u"], equations={},
                      conditions={"fit": {"region": "interior", "residual": "u - x**2", "points": 5}})
    assert list(problem.point_sets) == ["fit"] and list(problem.terms) == ["fit"]


def _without(name):
    base = spec()
    del base[name]
    return base


@pytest.mark.parametrize(
    "overrides, error, fragments",
    [
        ({"coords": {"x": [1, -1], "t": [0, 1]}}, ValueError, ["coords.x", "lo < hi", "[1.0, -1.0]"]),
        ({"coords": {"x": [0, 0], "t": [0, 1]}}, ValueError, ["coords.x", "lo < hi"]),
        ({"conditions": {"initial": {"region": "t=2", "residual": "u"}}}, ValueError,
         ["conditions.initial.region", "'t=2'", "['x=-1', 'x=1', 't=0', 't=1']"]),
        ({"conditions": {"initial": {"region": ["t=0", "y=0"], "residual": "u"}}}, ValueError,
         ["conditions.initial.region", "'y=0'"]),
        ({"equations": {"burgers": "u_t + d(u, y)"}}, ExpressionError,
         ["equations.burgers", "unknown coordinate 'y'", "['x', 't']"]),
        ({"equations": {"burgers": "u_t + u_y"}}, ExpressionError, ["equations.burgers", "unknown name 'u_y'"]),
        ({"equations": {"burgers": "u_t + mu*u_xx"}}, ExpressionError,
         ["equations.burgers", "unknown name 'mu'", "at column 7", "parameters ['nu']"]),
        ({"conditions": {"walls": {"region": "boundary", "residual": "w"}}}, ExpressionError,
         ["conditions.walls", "unknown name 'w'"]),
        ({"fields": ["x"]}, ValueError, ["fields", "'x' is already used in coords"]),
        ({"fields": ["u", "u"]}, ValueError, ["fields", "'u' is already used in fields"]),
        ({"params": {"u": 1.0}}, ValueError, ["params", "'u' is already used in fields"]),
        ({"params": {"t": 1.0}}, ValueError, ["params", "'t' is already used in coords"]),
        ({"learnable": {"nu": 1.0}}, ValueError, ["learnable", "'nu' is already used in params"]),
        ({"coords": {"pi": [0, 1]}}, ValueError, ["coords", "'pi' is reserved"]),
        ({"fields": ["sin"]}, ValueError, ["fields", "'sin' is reserved"]),
        ({"params": {"d": 1.0}}, ValueError, ["params", "'d' is reserved"]),
        ({"learnable": {"e": 1.0}}, ValueError, ["learnable", "'e' is reserved"]),
        ({"fields": ["u-1"]}, ValueError, ["fields", "'u-1' is not a valid name"]),
        ({"fields": []}, ValueError, ["fields: expected at least one field name"]),
        ({"collocation_points": 0}, ValueError, ["collocation_points: expected a positive integer but got 0"]),
        ({"collocation_points": -10}, ValueError, ["collocation_points", "-10"]),
        ({"collocation_points": 2.5}, ValueError, ["collocation_points", "2.5"]),
        ({"conditions": {"initial": {"region": "t=0", "residual": "u", "points": 0}}}, ValueError,
         ["conditions.initial.points: expected a positive integer but got 0"]),
        ({"conditions": {"initial": {"region": "t=0", "residual": "u", "points": -3}}}, ValueError,
         ["conditions.initial.points", "-3"]),
        ({"conditions": {"initial": {"region": "t=0", "residual": "u", "points": True}}}, ValueError,
         ["conditions.initial.points", "True"]),
        ({"conditions": {"initial": {"region": "t=0", "residual": "u", "points": "64"}}}, ValueError,
         ["conditions.initial.points", "'64'"]),
        ({"conditions": {"initial": {"region": "t=0", "residual": "u", "pts": 64}}}, ValueError,
         ["conditions.initial", "'pts'", "'points'", "'sampler'"]),
        ({"conditions": {"initial": {"region": "t=0"}}}, ValueError, ["conditions.initial", "'residual'"]),
        ({"conditions": {"initial": "u"}}, ValueError, ["conditions.initial", "expected a mapping"]),
        ({"conditions": {"initial": {"region": "t=0", "residual": "u", "sampler": "random"}}}, ValueError,
         ["conditions.initial.sampler", "'random'", "'sobol'"]),
        ({"conditions": {"initial": {"region": "t=0", "residual": "u", "weight": -1}}}, ValueError,
         ["conditions.initial.weight", "non-negative", "-1"]),
        ({"conditions": {"initial": {"region": "t=0", "residual": 3.0}}}, ValueError,
         ["conditions.initial", "expected an expression string or a callable but got 3.0"]),
        ({"conditions": {"burgers": {"region": "t=0", "residual": "u"}}}, ValueError,
         ["conditions.burgers", "'burgers' is used twice"]),
        ({"conditions": {"interior": {"region": "t=0", "residual": "u"}}}, ValueError,
         ["conditions.interior", "'interior' is taken"]),
        ({"equations": {"burgers": {"residual": "u", "wieght": 2}}}, ValueError, ["equations.burgers", "'wieght'"]),
        ({"equations": {}, "conditions": {}}, ValueError, ["equations: a problem needs at least one"]),
        ({"time": "s"}, ValueError, ["time: 's' is not a coordinate"]),
        ({"coords": {}}, ValueError, ["coords: at least one coordinate"]),
    ],
)
def test_bad_specs_fail_at_construction_naming_the_key(overrides, error, fragments):
    with pytest.raises(error) as info:
        Problem(**spec(**overrides))
    for fragment in fragments:
        assert fragment in str(info.value)


def full_problem(reference=None) -> Problem:
    return Problem(
        coords={"x": [-1, 1], "t": [0, 1]},
        fields=["u"],
        params={"nu": 0.01 / math.pi},
        learnable={"k": 1.5},
        equations={"burgers": {"residual": "u_t + u*u_x - nu*u_xx", "weight": 2.0}, "extra": "k*u_xxt"},
        conditions={
            "initial": {"region": "t=0", "residual": "u + sin(pi*x)", "points": 64, "weight": 10, "sampler": "lhs"},
            "walls": Condition(region=["x=-1", "x=1"], residual=wall_flux, points=32, weight=0.5),
        },
        collocation_points=123,
        reference=BurgersColeHopf(nu=0.01 / math.pi, quadrature_points=40) if reference is None else reference,
        name="burgers-test",
    )


def summary(problem: Problem) -> dict:
    """Everything that defines a problem, as comparable plain data."""
    lookup = {"u": 0.7, ("u", ("x",)): -0.3}.__getitem__
    terms = {
        name: (term.point_set, term.weight,
               term.residual.source if isinstance(term.residual, Expression) else term.residual(lookup))
        for name, term in problem.terms.items()
    }
    sets = {name: ([r.label for r in s.regions], [(r.lo, r.hi, r.fixed) for r in s.regions], s.points, s.sampler,
                   list(s.terms))
            for name, s in problem.point_sets.items()}
    return {"coords": problem.coords, "bounds": problem.bounds, "fields": problem.fields, "params": problem.params,
            "learnable": problem.learnable, "time": problem.time, "name": problem.name, "terms": terms, "sets": sets}


def test_to_config_round_trips_through_hydra_instantiate():
    problem = full_problem()
    config = problem.to_config()
    assert config["_target_"] == "lightning_pinn.problem.spec.Problem"
    rebuilt = instantiate(copy.deepcopy(config))
    assert type(rebuilt) is Problem
    assert summary(rebuilt) == summary(problem)
    assert summary(problem)["terms"]["walls"][2] == pytest.approx(-0.3 - 1.4)  # wall_flux ran on both
    assert rebuilt.to_config() == config
    assert isinstance(rebuilt.reference, BurgersColeHopf)
    assert (rebuilt.reference.nu, rebuilt.reference.quadrature_points) == (problem.reference.nu, 40)


def test_to_config_survives_a_yaml_file(tmp_path):
    problem = full_problem()
    path = tmp_path / "problem.yaml"
    OmegaConf.save(OmegaConf.create(problem.to_config()), path)
    rebuilt = instantiate(OmegaConf.load(path))
    assert summary(rebuilt) == summary(problem)
    assert OmegaConf.to_container(OmegaConf.create(rebuilt.to_config())) == problem.to_config()


def test_the_example_spec_round_trips_too():
    problem = Problem(**spec())
    rebuilt = instantiate(problem.to_config())
    assert summary(rebuilt) == summary(problem)
    assert problem.to_config()["reference"] is None


def test_callable_residuals_get_an_import_path():
    config = full_problem().to_config()
    walls = config["conditions"]["walls"]
    assert walls["residual"]["_target_"].endswith("test_problem.wall_flux")
    assert walls["residual"].get("_partial_") is True
    assert walls["region"] == ["x=-1", "x=1"]
    assert config["equations"]["burgers"] == {"residual": "u_t + u*u_x - nu*u_xx", "weight": 2.0}
    assert config["equations"]["extra"] == {"residual": "k*u_xxt", "weight": 1.0}


def _local_residual():
    def inner(lookup):
        return lookup("u")

    return inner


@pytest.mark.parametrize("residual", [lambda lookup: lookup("u"), _local_residual()])
def test_residuals_without_an_import_path_work_but_cannot_be_saved(residual):
    problem = Problem(**spec(conditions={"walls": {"region": "boundary", "residual": residual}}))
    assert problem.terms["walls"].residual({"u": 3.0}.__getitem__) == 3.0
    with pytest.raises(ValueError, match="^conditions.walls: .* has no import path; use a module-level function"):
        problem.to_config()


def test_a_lambda_equation_or_reference_names_its_key():
    problem = Problem(**spec(equations={"pde": lambda lookup: 0.0}))
    with pytest.raises(ValueError, match="^equations.pde: "):
        problem.to_config()
    problem = Problem(**spec(), reference=lambda x, t: np.zeros_like(x))
    with pytest.raises(ValueError, match="^reference: "):
        problem.to_config()
