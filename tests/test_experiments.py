"""Every experiment of the accuracy table: its config builds, its reference satisfies its equations and
conditions (checked by finite differences of the reference, independent of the library's derivatives),
and it trains for a few steps.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from lightning_pinn.cli import config_dir, train
from lightning_pinn.config import instantiate
from lightning_pinn.points import Collocation
from lightning_pinn.problem.expressions import NORMAL
from lightning_pinn.residuals import Evaluation, parameter_values, residuals

EXPERIMENTS = sorted(p.stem for p in (Path(config_dir()) / "experiment").glob("*.yaml"))
FORMULA = ["advection", "heat", "helmholtz", "kovasznay", "poisson_holes", "wave"]
"""Experiments whose reference is a closed form, defined everywhere (also just outside the domain)."""


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTNING_PINN_CACHE", str(tmp_path / "cache"))


def config(name: str, *overrides: str):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("train", overrides=[f"experiment={name}", *overrides])


class FiniteDifferences:
    """Partials of the reference by nested central differences (step ``h`` per order), float64."""

    def __init__(self, problem, x: np.ndarray, h: float):
        self.problem, self.x, self.h = problem, x, h

    def values(self, x: np.ndarray) -> np.ndarray:
        return self.problem.reference_values(x)

    def __call__(self, field, wrt=()) -> torch.Tensor:
        """Richardson-extrapolated nested central differences: error O(h^4)."""
        coarse, fine = self.differences(field, wrt, self.h), self.differences(field, wrt, self.h / 2)
        return (4 * fine - coarse) / 3

    def differences(self, field, wrt, h) -> torch.Tensor:
        column = self.problem.fields.index(field)
        coords = list(self.problem.coords)
        total = np.zeros(len(self.x))
        # product of central differences: sum over sign patterns of +-h steps
        for signs in itertools.product((1, -1), repeat=len(wrt)):
            shifted = self.x.copy()
            for sign, c in zip(signs, wrt):
                shifted[:, coords.index(c)] += sign * h
            total += np.prod(signs) * self.values(shifted)[:, column]
        return torch.as_tensor(total / (2 * h) ** len(wrt))


def reference_residuals(problem, point_set: str, x: np.ndarray, h: float, perturbation: float = 0.0) -> dict:
    """Residuals of the terms of ``point_set`` for the reference plus ``perturbation`` times a smooth bump."""
    spec = problem.point_sets[point_set]
    coords = x[:, :problem.n_coords]
    derivatives = FiniteDifferences(problem, coords, h)
    original = derivatives.values
    derivatives.values = lambda p: original(p) + perturbation * np.sin(1.3 * p.sum(axis=1, keepdims=True) + 0.4)
    y = torch.as_tensor(derivatives.values(coords))
    extra = torch.as_tensor(x[:, problem.n_coords:])
    evaluation = Evaluation(problem, torch.as_tensor(coords), y, parameter_values(problem),
                            lambda f, wrt=(): derivatives(f, wrt), normal=extra if spec.normals else None,
                            observed={f: extra[:, k] for k, f in enumerate(spec.observed)})
    return {name: problem.terms[name].residual(evaluation) for name in spec.terms}


def assert_reference_satisfies(problem, point_sets, h: float, tolerance: float, shrink: float = 0.0):
    points = Collocation(problem, "halton", 0).draw("cpu", torch.float64)
    lo, hi = np.asarray(problem.box.lo), np.asarray(problem.box.hi)
    for name in point_sets:
        x = points[name].numpy().copy()[:200]
        x[:, :problem.n_coords] = lo + (1 - 2 * shrink) * (x[:, :problem.n_coords] - lo) + shrink * (hi - lo)
        exact = reference_residuals(problem, name, x, h)
        wrong = reference_residuals(problem, name, x, h, perturbation=0.1)
        for term, r in exact.items():
            size = max(float(wrong[term].abs().max()), 1e-12)
            assert float(r.abs().max()) <= tolerance * size, (problem.name, term, float(r.abs().max()), size)


@pytest.mark.parametrize("name", FORMULA)
def test_closed_form_references_satisfy_every_equation_and_condition(name):
    problem = instantiate(config(name).problem)
    assert_reference_satisfies(problem, problem.point_sets, h=1e-3, tolerance=1e-5)


@pytest.mark.parametrize("name, h, tolerance", [
    ("allen_cahn", 1e-3, 1e-5), ("kdv", 1e-3, 1e-5), ("ks", 1e-3, 1e-5),
    ("nls", 1e-3, 0.1),  # the kink of 2 sech(x) at the periodic ends radiates under-resolved high modes
    ("burgers", 2.5e-4, 1e-3),
    ("cavity", 1e-3, 0.15),  # second-order grid solution, interpolated: a few percent of the terms
])
def test_numerical_references_satisfy_the_equations_inside_the_domain(name, h, tolerance):
    """Away from the domain's edges (where the interpolants end and the cavity's lid corners are singular)."""
    problem = instantiate(config(name).problem)
    assert_reference_satisfies(problem, ["interior"], h=h, tolerance=tolerance, shrink=0.1)


def test_cavity_reference_satisfies_the_yaml_boundary_conditions_including_its_lid_profile():
    """The reference's ``lid`` expression and the YAML's lid residual describe the same lid."""
    problem = instantiate(config("cavity").problem)
    assert_reference_satisfies(problem, ["lid", "lid_v", "walls_u", "walls_v"], h=1e-3, tolerance=1e-2)  # spline between lid nodes: 5e-3


@pytest.mark.parametrize("name, exact, soft", [
    ("allen_cahn", ["initial"], []),
    ("heat", ["initial", "walls"], []),
    ("wave", ["initial", "initial_velocity", "walls"], []),
    ("kovasznay", ["wall_u", "wall_v"], ["outlet_p"]),  # p has no transform
])
def test_output_transforms_make_the_claimed_conditions_exact_for_any_network(name, exact, soft):
    """The experiment's output transform zeroes these conditions' residuals whatever the network outputs."""
    problem = instantiate(config(name).problem)
    points = Collocation(problem, "halton", 0).draw("cpu", torch.float64)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(problem.n_coords, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, problem.n_fields)).double()
    forward = lambda x: problem.output_transform(x, net(x))  # noqa: E731
    r = residuals(problem, forward, {k: points[k] for k in exact + soft})
    for term in exact:
        assert float(r[term].detach().abs().max()) < 1e-12, (name, term)
    for term in soft:  # a condition the transform leaves alone is not zero by accident
        assert float(r[term].detach().abs().max()) > 1e-3, (name, term)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_trains_a_few_steps(name, tmp_path):
    cfg = config(name, "trainer.max_steps=2", "trainer.max_time=null", "trainer.val_check_interval=2",
                 "trainer.enable_progress_bar=false", "logger=none", "callbacks=none", "model.compile=false",
                 "model.derivatives=auto", "problem.collocation_points=64", "model.validation_grid=16",
                 f"paths.output_dir={tmp_path}")
    cfg.callbacks = {}  # an experiment's callback options (e.g. RAD's) would be left without their callback
    first, *rest = cfg.optimizer.phases  # one step of each phase, short quasi-Newton steps
    cfg.optimizer.phases[first].steps = 1
    for name in rest:
        if cfg.optimizer.phases[name] is not None and "max_iter" in cfg.optimizer.phases[name].optimizer:
            cfg.optimizer.phases[name].optimizer.max_iter = 2
    objective = train(cfg)
    assert objective is not None and np.isfinite(objective)


def test_normal_marker_is_not_a_coordinate_name():
    assert not NORMAL.isidentifier()
