"""A problem on a geometry: points inside the shape, normals on its boundary, time faces, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from lightning_pinn import PINNModule, Problem
from lightning_pinn.geometry.csg import CSGDifference
from lightning_pinn.geometry.shapes import Disk, Rectangle
from lightning_pinn.nets import MLP
from lightning_pinn.points import Collocation
from lightning_pinn.residuals import residuals

HOLES = [((0.3, 0.3), 0.1), ((0.7, 0.6), 0.15)]


def plate() -> CSGDifference:
    return CSGDifference(Rectangle([0, 0], [1, 1]), [Disk(list(c), r) for c, r in HOLES])


def plate_problem(**extra) -> Problem:
    return Problem(coords={"x": [0, 1], "y": [0, 1], "t": [0, 1]}, fields=["u"], geometry=plate(),
                   equations={"pde": "u_t - u_xx - u_yy"}, collocation_points=400,
                   conditions={"walls": {"region": "boundary", "residual": "u_n", "points": 300},
                               "start": {"region": "t=0", "residual": "u", "points": 100}}, **extra)


def squares(x: torch.Tensor) -> torch.Tensor:
    """u = x^2 + y^2 + t: grad u = (2x, 2y, 1)."""
    return (x[:, 0] ** 2 + x[:, 1] ** 2 + x[:, 2])[:, None]


def in_holes(p: np.ndarray) -> np.ndarray:
    return np.any([np.hypot(p[:, 0] - c[0], p[:, 1] - c[1]) < r - 1e-12 for c, r in HOLES], axis=0)


def test_points_lie_in_the_geometry_times_the_time_interval():
    points = Collocation(plate_problem(), "sobol", 0).draw("cpu", torch.float64)
    interior = points["interior"].numpy()
    assert interior.shape == (400, 3) and not in_holes(interior).any()
    assert interior[:, 2].min() >= 0 and interior[:, 2].max() <= 1 and np.ptp(interior[:, 2]) > 0.9
    start = points["start"].numpy()
    assert np.all(start[:, 2] == 0) and not in_holes(start).any()


def test_normal_derivative_on_holes_and_outer_walls_is_grad_dot_outward_normal():
    problem = plate_problem()
    walls = Collocation(problem, "sobol", 0).draw("cpu", torch.float64)["walls"]
    assert walls.shape == (300, 6)
    p, normal = walls[:, :3].numpy(), walls[:, 3:].numpy()
    expected = np.zeros(len(p))
    on_hole = np.zeros(len(p), dtype=bool)
    for c, r in HOLES:
        near = np.isclose(np.hypot(p[:, 0] - c[0], p[:, 1] - c[1]), r, atol=1e-9)
        inward = -(p[near, :2] - np.array(c)) / r  # the domain's outward normal points into the hole
        np.testing.assert_allclose(normal[near, :2], inward, atol=1e-9)
        expected[near] = 2 * np.sum(p[near, :2] * inward, axis=1)
        on_hole |= near
    outer = ~on_hole
    assert on_hole.any() and outer.any()
    axis = np.argmax(np.abs(normal[outer, :2]), axis=1)
    expected[outer] = 2 * p[outer, axis] * normal[outer, axis]
    assert np.all(normal[:, 2] == 0)
    r = residuals(problem, squares, {"walls": walls})["walls"]
    np.testing.assert_allclose(r.detach().numpy(), expected, atol=1e-9)


def test_validation_grid_leaves_out_the_holes():
    module = PINNModule(plate_problem(), MLP(3, 1, width=4, depth=1), validation_grid=21)
    inside, sizes = module.validation_grid()
    everything, _ = module.validation_grid(inside_only=False)
    assert sizes == [21, 21, 21] and len(everything) == 21**3
    assert not in_holes(inside).any() and len(everything) - len(inside) == in_holes(everything).sum()


def test_geometry_survives_a_config_round_trip():
    problem = plate_problem()
    rebuilt = instantiate(problem.to_config())
    assert rebuilt.to_config() == problem.to_config()
    a = Collocation(problem, "halton", 3).draw("cpu", torch.float64)
    b = Collocation(rebuilt, "halton", 3).draw("cpu", torch.float64)
    for name in a:
        torch.testing.assert_close(a[name], b[name])


@pytest.mark.parametrize("change, fragment", [
    ({"geometry": Disk([0.5, 0.5], 0.7)}, "geometry: Disk"),
    ({"geometry": Rectangle([0, 0, 0], [1, 1, 1])}, "is 3D, but the spatial coordinates are ['x', 'y']"),
    ({"conditions": {"side": {"region": "x=0", "residual": "u"}}}, "conditions.side.region: 'x=0' is not a region"),
    ({"conditions": {"p": {"periodic": "x"}}}, "conditions.p.periodic: the faces x=0 and x=1"),
])
def test_bad_geometry_specs_name_the_key(change, fragment):
    spec = {"coords": {"x": [0, 1], "y": [0, 1], "t": [0, 1]}, "fields": ["u"], "geometry": plate(),
            "equations": {"pde": "u_t"}, **change}
    with pytest.raises(ValueError) as info:
        Problem(**spec)
    assert fragment in str(info.value)


def test_grid_sampling_on_a_geometry_is_an_error():
    with pytest.raises(ValueError, match="grid sampling needs a box domain"):
        Collocation(plate_problem(), "grid", 0).draw()


def test_observations_from_the_reference_lie_in_the_geometry():
    problem = Problem(coords={"x": [0, 1], "y": [0, 1], "t": [0, 1]}, fields=["u"], geometry=plate(),
                      equations={}, reference=reference_u, conditions={"obs": {"data": "reference", "points": 200}})
    rows = Collocation(problem, "sobol", 0).draw("cpu", torch.float64)["obs"].numpy()
    assert rows.shape == (200, 4) and not in_holes(rows).any()
    np.testing.assert_allclose(rows[:, 3], reference_u(rows[:, 0], rows[:, 1], rows[:, 2]))


def reference_u(x, y, t):
    return x * y + t


def test_replay_reaches_a_saved_position_with_its_own_streams():
    problem = plate_problem()
    saved = Collocation(problem, "sobol", 0)
    mine = Collocation(problem, "sobol", 0, rank=1)  # another rank
    for step in range(3):
        saved.redraw(step, "cpu", torch.float64)
        mine.redraw(step, "cpu", torch.float64)
    replayed = Collocation(problem, "sobol", 0, rank=1)
    replayed.replay(saved.state_dict())
    assert replayed.draws == 3 and replayed.drawn_at == 2
    for name in mine.points:
        torch.testing.assert_close(replayed.points[name], mine.points[name])
        assert not torch.equal(replayed.points[name], saved.points[name])
    torch.testing.assert_close(replayed.draw()["interior"], mine.draw()["interior"])


def test_point_sources_resume_from_the_previous_checkpoint_format():
    from lightning_pinn.geometry import Box, PointSource

    box = Box({"x": [0, 1], "t": [0, 1]}, time="t")
    source = PointSource(box.regions("boundary"), 8, "sobol", seed=3)
    source.sample()
    old_format = {"samplers": [streams[0].state_dict() for streams in source.streams]}
    resumed = PointSource(box.regions("boundary"), 8, "sobol", seed=3)
    resumed.load_state_dict(old_format)
    np.testing.assert_array_equal(resumed.sample(), source.sample())
