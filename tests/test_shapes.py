"""Spatial shapes and their combinations: distances, samples, normals, measures, errors, configs.

Expected values come from geometry done by hand (areas, perimeters, lens formulas,
symmetry), not from the code under test.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lightning_pinn.geometry.csg import CSGDifference, CSGIntersection, CSGUnion
from lightning_pinn.geometry.samplers import Sampler
from lightning_pinn.geometry.shapes import Ball, Disk, Polygon, Rectangle

R = 0.1  # radius of the plate's holes
LENS_HALF_ANGLE = math.acos(0.5)  # two unit disks with centres 1 apart meet at +-60 degrees
L_VERTICES = [[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]]  # an L: [0,2]x[0,1] and [0,1]x[0,2], area 3


def shapes():
    """Every kind of shape, with its exact area/volume and boundary measure."""
    lens_area = 2 * LENS_HALF_ANGLE - math.sqrt(3) / 2
    return {
        "rectangle": (Rectangle([-1, 0], [1, 0.5]), 1.0, 5.0),
        "interval": (Rectangle([2], [5]), 3.0, 2.0),
        "box3d": (Rectangle([0, 0, 0], [1, 2, 3]), 6.0, 22.0),
        "disk": (Disk([0.5, -1], 2), 4 * math.pi, 4 * math.pi),
        "ball3d": (Ball([1, 2, 3], 0.5), 4 / 3 * math.pi / 8, math.pi),
        "ball4d": (Ball([0, 0, 0, 0], 1), math.pi**2 / 2, 2 * math.pi**2),
        "L-polygon": (Polygon(L_VERTICES), 3.0, 8.0),
        "L-polygon-clockwise": (Polygon(L_VERTICES[::-1]), 3.0, 8.0),
        "plate-with-holes": (
            CSGDifference(Rectangle([0, 0], [1, 1]), [Disk([0.3, 0.5], R), Disk([0.7, 0.5], R)]),
            1 - 2 * math.pi * R**2,
            4 + 2 * 2 * math.pi * R,
        ),
        "two-disks": (
            CSGUnion([Disk([0, 0], 1), Disk([1, 0], 1)]),
            2 * math.pi - lens_area,
            2 * (2 * math.pi - 2 * LENS_HALF_ANGLE),
        ),
        "lens": (CSGIntersection([Disk([0, 0], 1), Disk([1, 0], 1)]), lens_area, 4 * LENS_HALF_ANGLE),
        "L-union": (CSGUnion([Rectangle([0, 0], [2, 1]), Rectangle([0, 0], [1, 2])]), 3.0, 8.0),  # shares faces
        "glued": (CSGUnion([Rectangle([0, 0], [1, 1]), Rectangle([1, 0], [2, 1])]), 2.0, 6.0),  # x=1 is inside
        "cube-minus-ball": (
            Rectangle([0, 0, 0], [1, 1, 1]) - Ball([1, 1, 1], 0.5),
            1 - math.pi / 48,
            6 - 3 * math.pi / 16 + math.pi / 8,
        ),
    }


SHAPES = shapes()
NAMES = list(SHAPES)
CSG = [name for name, (shape, _, _) in SHAPES.items() if isinstance(shape, (CSGUnion, CSGIntersection, CSGDifference))]


def stream(dim: int, seed: int = 1):
    return Sampler(dim, "sobol", seed).sample


@pytest.mark.parametrize("name", NAMES)
def test_interior_samples_are_exactly_n_points_inside(name):
    shape = SHAPES[name][0]
    for n in (1, 37, 1000):
        points = shape.sample_interior(n, stream(shape.dim))
        assert points.shape == (n, shape.dim) and points.dtype == np.float64
        assert shape.contains(points).all()
        lo, hi = shape.bounds
        assert np.all(points >= lo) and np.all(points <= hi)


@pytest.mark.parametrize("name", NAMES)
def test_boundary_samples_lie_on_the_boundary_with_outward_unit_normals(name):
    shape = SHAPES[name][0]
    eps = 1e-6
    for n in (1, 37, 1000):
        points, normals = shape.sample_boundary(n, stream(shape.dim))
        assert points.shape == normals.shape == (n, shape.dim)
        assert np.abs(shape.distance(points)).max() < 1e-9
        assert shape.on_boundary(points).all()
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-12)
        assert not shape.contains(points + eps * normals, tol=0).any()  # a step out leaves the shape
        assert (shape.distance(points - eps * normals) < 0).all()  # a step in is strictly inside


@pytest.mark.parametrize("name", NAMES)
def test_sampling_is_deterministic_given_the_stream(name):
    shape = SHAPES[name][0]
    np.testing.assert_array_equal(
        shape.sample_interior(50, stream(shape.dim, 7)), shape.sample_interior(50, stream(shape.dim, 7))
    )
    a, b = shape.sample_boundary(50, stream(shape.dim, 7)), shape.sample_boundary(50, stream(shape.dim, 7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], shape.sample_boundary(50, stream(shape.dim, 8))[0])


@pytest.mark.parametrize("name", NAMES)
def test_measures_match_geometry(name):
    shape, measure, boundary_measure = SHAPES[name]
    exact = name not in CSG
    assert shape.measure == pytest.approx(measure, rel=1e-12 if exact else 2e-3)
    assert shape.boundary_measure == pytest.approx(boundary_measure, rel=1e-12 if exact else 2e-3)


def test_empty_draws_return_empty_arrays():
    shape = SHAPES["plate-with-holes"][0]
    assert shape.sample_interior(0, stream(2)).shape == (0, 2)
    points, normals = shape.sample_boundary(0, stream(2))
    assert points.shape == normals.shape == (0, 2)


# ------------------------------------------------------------------------------ samples fill the shape


def test_disk_samples_are_uniform():
    disk = Disk([0.5, -1], 2)
    points = disk.sample_interior(4096, stream(2))
    np.testing.assert_allclose(points.mean(axis=0), [0.5, -1], atol=0.02)
    radius = np.linalg.norm(points - [0.5, -1], axis=1)
    assert np.mean(radius < 1) == pytest.approx(0.25, abs=0.01)  # area ratio of the inner disk
    assert np.mean(points[:, 0] > 0.5) == pytest.approx(0.5, abs=0.01)
    edge, normals = disk.sample_boundary(4096, stream(2))
    angle = np.arctan2(edge[:, 1] + 1, edge[:, 0] - 0.5)
    assert np.mean((angle > 0) & (angle < np.pi / 2)) == pytest.approx(0.25, abs=0.01)
    np.testing.assert_allclose(normals, (edge - [0.5, -1]) / 2, atol=1e-12)


def test_ball_samples_are_uniform_in_3d_and_4d():
    for ball in (Ball([1, 2, 3], 0.5), Ball([0, 0, 0, 0], 1)):
        d, centre, r = ball.dim, ball.centre, ball.radius
        points = ball.sample_interior(8192, stream(d))
        np.testing.assert_allclose(points.mean(axis=0), centre, atol=0.02 * r)
        assert np.mean(np.linalg.norm(points - centre, axis=1) < r / 2) == pytest.approx(0.5**d, abs=0.01)
        surface, _ = ball.sample_boundary(8192, stream(d))
        np.testing.assert_allclose(surface.mean(axis=0), centre, atol=0.02 * r)
        # on the sphere each coordinate's sign is a fair coin, and the upper cap z > r/2 has a quarter of S^2's area
        assert np.mean(surface[:, 0] > centre[0]) == pytest.approx(0.5, abs=0.02)
        if d == 3:
            assert np.mean(surface[:, 2] - centre[2] > r / 2) == pytest.approx(0.25, abs=0.02)


def test_l_polygon_samples_fill_each_square_equally():
    polygon = Polygon(L_VERTICES)
    points = polygon.sample_interior(3000, stream(2))
    squares = np.floor(points).astype(int)  # unit squares (0,0), (1,0), (0,1), each a third of the L
    for corner in ([0, 0], [1, 0], [0, 1]):
        assert np.mean(np.all(squares == corner, axis=1)) == pytest.approx(1 / 3, abs=0.02)
    edge, normals = polygon.sample_boundary(4000, stream(2))
    assert np.mean(edge[:, 1] == 0) == pytest.approx(2 / 8, abs=0.01)  # the bottom edge is 2 of the perimeter 8
    np.testing.assert_array_equal(normals[edge[:, 1] == 0], np.tile([0.0, -1.0], (np.sum(edge[:, 1] == 0), 1)))


def test_rectangle_boundary_faces_are_drawn_by_area():
    box = Rectangle([0, 0, 0], [1, 2, 3])  # faces normal to x, y, z have areas 6, 3, 2 (each twice)
    points, normals = box.sample_boundary(4400, stream(3))
    for axis, area in enumerate((6, 3, 2)):
        on = normals[:, axis] != 0
        assert np.mean(on) == pytest.approx(2 * area / 22, abs=0.01)
        np.testing.assert_array_equal(points[on, axis], np.where(normals[on, axis] > 0, box.hi[axis], box.lo[axis]))
    ends, signs = Rectangle([2], [5]).sample_boundary(10, stream(1))
    np.testing.assert_array_equal(ends[:, 0], np.where(signs[:, 0] > 0, 5.0, 2.0))


def test_plate_samples_avoid_the_holes_and_split_the_boundary_by_length():
    plate = SHAPES["plate-with-holes"][0]
    points = plate.sample_interior(4000, stream(2))
    for centre in ([0.3, 0.5], [0.7, 0.5]):
        assert np.linalg.norm(points - centre, axis=1).min() > R
        near = np.linalg.norm(points - centre, axis=1) < 2 * R  # the annulus R < r < 2R
        assert np.mean(near) == pytest.approx(3 * math.pi * R**2 / (1 - 2 * math.pi * R**2), abs=0.01)
    assert np.mean(points[:, 0] < 0.5) == pytest.approx(0.5, abs=0.01)  # the plate is symmetric about x = 0.5
    edge, normals = plate.sample_boundary(4000, stream(2))
    on_holes = (
        np.minimum(np.linalg.norm(edge - [0.3, 0.5], axis=1), np.linalg.norm(edge - [0.7, 0.5], axis=1)) < R + 1e-9
    )
    assert np.mean(on_holes) == pytest.approx(4 * math.pi * R / (4 + 4 * math.pi * R), abs=0.01)
    hole = np.where(edge[:, :1] < 0.5, [0.3, 0.5], [0.7, 0.5])
    np.testing.assert_allclose(normals[on_holes], ((hole - edge) / R)[on_holes], atol=1e-9)  # towards the hole's centre


def test_shared_faces_are_sampled_once_and_inner_faces_never():
    l_union = SHAPES["L-union"][0]
    edge, _ = l_union.sample_boundary(4000, stream(2))
    assert np.mean(edge[:, 0] == 0) == pytest.approx(2 / 8, abs=0.01)  # the left side, length 2 of 8
    assert np.mean(edge[:, 1] == 0) == pytest.approx(2 / 8, abs=0.01)
    glued = SHAPES["glued"][0]
    edge, _ = glued.sample_boundary(2000, stream(2))
    assert not np.any(np.isclose(edge[:, 0], 1.0) & (edge[:, 1] > 1e-6) & (edge[:, 1] < 1 - 1e-6))


def test_two_disks_boundary_is_split_evenly_and_skips_the_overlap():
    union = SHAPES["two-disks"][0]
    edge, _ = union.sample_boundary(2000, stream(2))
    assert np.mean(edge[:, 0] < 0.5) == pytest.approx(0.5, abs=0.01)
    assert np.all(np.linalg.norm(edge, axis=1) >= 1 - 1e-9) and np.all(
        np.linalg.norm(edge - [1, 0], axis=1) >= 1 - 1e-9
    )


# ------------------------------------------------------------------------------ distances


def test_rectangle_and_polygon_distances_are_exact():
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 3, (200, 2))
    # the L's boundary, densely (spacing 5e-4): the distance to it, and inside-ness by its two rectangles
    loop = np.array(L_VERTICES + L_VERTICES[:1], dtype=float)
    dense = np.concatenate(
        [
            a + np.linspace(0, 1, 2000 * int(np.abs(b - a).sum()) + 1)[:, None] * (b - a)
            for a, b in itertools.pairwise(loop)
        ]
    )
    nearest = np.min(np.linalg.norm(points[:, None] - dense[None], axis=2), axis=1)
    inside = ((points[:, 0] < 2) & (points[:, 1] < 1) | (points[:, 0] < 1) & (points[:, 1] < 2)) & np.all(
        points > 0, axis=1
    )
    for shape in (Polygon(L_VERTICES), Polygon(L_VERTICES[::-1])):
        np.testing.assert_allclose(shape.distance(points), np.where(inside, -nearest, nearest), atol=3e-4)
    box = Rectangle([0, 0], [2, 1])
    expected = [-0.5, 1.0, math.hypot(1, 1), -0.25, 0.0]
    np.testing.assert_allclose(box.distance([[1, 0.5], [3, 0.5], [3, 2], [0.25, 0.5], [2, 0.3]]), expected, atol=1e-15)
    np.testing.assert_array_equal(box.contains([[2, 0.3], [2 + 1e-10, 0.3], [2 + 1e-8, 0.3]]), [True, True, False])
    np.testing.assert_array_equal(box.on_boundary([[2, 0.3], [1.9, 0.3]]), [True, False])


def test_csg_contains_is_the_set_operation():
    a, b = Disk([0, 0], 1), Rectangle([0, -0.5], [2, 0.5])
    points = np.random.default_rng(1).uniform(-1.5, 2.5, (2000, 2))
    in_a, in_b = a.contains(points, tol=0), b.contains(points, tol=0)
    np.testing.assert_array_equal((a | b).contains(points, tol=0), in_a | in_b)
    np.testing.assert_array_equal((a & b).contains(points, tol=0), in_a & in_b)
    strictly_b = b.distance(points) < 0
    np.testing.assert_array_equal((a - b).contains(points, tol=0), in_a & ~strictly_b)


# ------------------------------------------------------------------------------ operators and configs


def test_operators_build_flat_composites():
    a, b, c = Disk([0, 0], 1), Disk([1, 0], 1), Disk([0.5, 0.5], 1)
    assert isinstance(a | b | c, CSGUnion) and len((a | b | c).shapes) == 3
    assert isinstance(a & b & c, CSGIntersection) and len((a & b & c).shapes) == 3
    cut = Rectangle([-2, -2], [2, 2]) - a - Disk([1.5, 1.5], 0.2)
    assert isinstance(cut, CSGDifference) and len(cut.subtract) == 2 and isinstance(cut.base, Rectangle)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_through_hydra(name):
    shape = SHAPES[name][0]
    config = shape.to_config()
    json.dumps(config)  # plain data only
    lo, hi = shape.bounds
    points = np.random.default_rng(2).uniform(lo - 0.2, hi + 0.2, (500, shape.dim))
    for cfg in (config, OmegaConf.create(OmegaConf.to_yaml(config))):  # as a dict and as YAML hands it over
        rebuilt = instantiate(cfg)
        assert type(rebuilt) is type(shape)
        np.testing.assert_array_equal(rebuilt.contains(points), shape.contains(points))
        assert rebuilt.to_config() == config


def test_nested_composites_accept_configs_and_round_trip():
    config = {
        "_target_": "lightning_pinn.geometry.csg.CSGDifference",
        "base": {
            "_target_": "lightning_pinn.geometry.csg.CSGUnion",
            "shapes": [
                {"_target_": "lightning_pinn.geometry.shapes.Disk", "centre": [0, 0], "radius": 1},
                {"_target_": "lightning_pinn.geometry.shapes.Rectangle", "lo": [0, -0.5], "hi": [2, 0.5]},
            ],
        },
        "subtract": {"_target_": "lightning_pinn.geometry.shapes.Disk", "centre": [1.5, 0], "radius": 0.25},
    }
    shape = instantiate(config)
    assert isinstance(shape.base, CSGUnion) and len(shape.subtract) == 1
    assert instantiate(shape.to_config()).to_config() == shape.to_config()
    np.testing.assert_array_equal(shape.contains([[1.5, 0], [1.0, 0], [-0.5, 0]]), [False, True, True])


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Polygon([[0, 0], [1, 1], [1, 0], [0, 1]]),
            r"polygon is self-intersecting: edge 0 \(\(0, 0\) -> \(1, 1\)\) crosses edge 2",
        ),
        (lambda: Polygon([[0, 0], [2, 0], [2, 2], [1, -1]]), "polygon is self-intersecting"),
        (lambda: Polygon([[0, 0], [1, 0]]), "at least 3 vertices but got 2"),
        (lambda: Polygon([[0, 0], [1, 0], [1, 1], [0, 0]]), "vertices 3 and 0 are equal.*do not repeat the first"),
        (lambda: Polygon([[0, 0], [1, 0], [1, 0], [0, 1]]), r"vertices 1 and 2 are equal, \(1, 0\)"),
        (lambda: Polygon([[0, 0], [1, 1], [2, 2]]), "zero area"),
        (lambda: CSGDifference(Rectangle([0, 0], [1, 1]), Disk([0.5, 0.5], 2)), "is empty"),
        (lambda: CSGIntersection([Disk([0, 0], 1), Disk([3, 0], 1)]), "is empty"),
        (lambda: CSGIntersection([Disk([0, 0], 1), Disk([1.5, 0], 0.5)]), "is empty"),  # they only touch
        (lambda: Disk([0, 0], 0), "positive radius but got 0"),
        (lambda: Ball([0, 0, 0], -1.5), "positive radius but got -1.5"),
        (lambda: Disk([0, 0], "big"), "positive radius but got 'big'"),
        (lambda: Disk([0, 0, 0], 1), r"2D centre but got \[0.0, 0.0, 0.0\]"),
        (lambda: Ball([0], 1), "at least 2 coordinates"),
        (lambda: Rectangle([0, 1], [1, 1]), r"lo < hi .*axis 1: 1 >= 1"),
        (lambda: Rectangle([0, 0], [1, 1, 1]), "different lengths"),
        (lambda: Rectangle([0, float("nan")], [1, 1]), "finite"),
        (lambda: CSGUnion([Disk([0, 0], 1), Ball([0, 0, 0], 1)]), "mismatched dimensions.*3D.*2D"),
        (lambda: CSGUnion([]), "at least one shape"),
        (lambda: CSGUnion([Disk([0, 0], 1), "disk"]), r"shapes\[1\]: expected a shape but got 'disk'"),
    ],
)
def test_bad_input_is_rejected_with_the_value(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_streams_and_points_are_rejected():
    disk = Disk([0, 0], 1)
    with pytest.raises(ValueError, match=r"returned an array of shape \(4, 3\), expected \(4, 2\)"):
        disk.sample_interior(4, Sampler(3, "sobol", 0).sample)
    with pytest.raises(ValueError, match=r"points of shape \(n, 2\) but got \(3,\)"):
        disk.contains([0, 0, 0])
    with pytest.raises(ValueError, match="non-negative number of points but got -1"):
        disk.sample_boundary(-1, stream(2))


def test_a_stream_that_never_lands_inside_raises_instead_of_looping():
    plate = SHAPES["plate-with-holes"][0]
    corner = lambda m: np.zeros((m, 2))  # every draw maps to the corner (0, 0), on the boundary
    with pytest.raises(RuntimeError, match="accepted only 0 of 10 interior points"):
        plate.sample_interior(10, corner)
    l_union = SHAPES["L-union"][0]  # the corner (0, 0) is a corner of both parts: no candidate bounds the union
    with pytest.raises(RuntimeError, match="accepted only 0 of 10 boundary points"):
        l_union.sample_boundary(10, corner)
