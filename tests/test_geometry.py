"""Samplers on the unit cube, boxes and their faces, point sources and their checkpointable streams."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from scipy.stats import qmc

from lightning_pinn.geometry import METHODS, Box, PointSource, Region, Sampler

RANDOM_METHODS = ("uniform", "lhs", "sobol", "halton")


def test_methods_are_the_documented_ones():
    assert set(METHODS) == {*RANDOM_METHODS, "grid"}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_every_method_draws_float64_points_in_the_unit_cube(method, dim):
    sampler = Sampler(dim, method, seed=3)
    for _ in range(2):
        points = sampler.sample(64)  # 64 = 8^2 = 4^3: the grid is exact too
        assert points.shape == (64, dim)
        assert points.dtype == np.float64
        assert np.all(points >= 0.0) and np.all(points < 1.0)
        assert len(np.unique(points, axis=0)) == 64


def test_grid_is_the_cell_centres_and_rounds_up():
    np.testing.assert_array_equal(Sampler(2, "grid").sample(4), [[0.25, 0.25], [0.25, 0.75], [0.75, 0.25], [0.75, 0.75]])
    np.testing.assert_array_equal(Sampler(1, "grid").sample(5)[:, 0], [0.1, 0.3, 0.5, 0.7, 0.9])
    assert Sampler(2, "grid").sample(10).shape == (16, 2)  # ceil(sqrt(10)) = 4 per axis
    assert Sampler(3, "grid").sample(27).shape == (27, 3)  # an exact cube is not rounded up
    grid = Sampler(2, "grid", seed=1)
    np.testing.assert_array_equal(grid.sample(9), grid.sample(9))


@pytest.mark.parametrize("method", RANDOM_METHODS)
def test_seeds_make_streams_reproducible_and_distinct(method):
    a, b, c = Sampler(2, method, seed=5), Sampler(2, method, seed=5), Sampler(2, method, seed=6)
    first = a.sample(16)
    np.testing.assert_array_equal(first, b.sample(16))
    assert not np.allclose(first, c.sample(16))
    assert not np.allclose(first, a.sample(16))  # the stream moves on


@pytest.mark.parametrize("n", [1, 7, 50])
def test_latin_hypercube_has_one_point_per_stratum_in_every_dimension(n):
    sampler = Sampler(3, "lhs", seed=0)
    for _ in range(3):
        points = sampler.sample(n)
        for column in points.T:
            np.testing.assert_array_equal(np.sort(np.floor(column * n)), np.arange(n))


def test_uniform_is_not_stratified():
    """The control for the LHS test: i.i.d. points almost never hit every stratum."""
    points = Sampler(1, "uniform", seed=0).sample(50)[:, 0]
    assert len(np.unique(np.floor(points * 50))) < 50


@pytest.mark.parametrize("method", ["sobol", "halton"])
def test_quasi_random_points_have_lower_discrepancy_than_uniform(method):
    uniform = qmc.discrepancy(Sampler(2, "uniform", seed=0).sample(1024))
    quasi = qmc.discrepancy(Sampler(2, method, seed=0).sample(1024))
    assert quasi < uniform / 10


def test_bad_sampler_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"one of \['uniform', 'lhs', 'sobol', 'halton', 'grid'\] but got 'random'"):
        Sampler(2, "random")
    with pytest.raises(ValueError, match="positive integer but got 0"):
        Sampler(0, "sobol")
    for n in (0, -4):
        with pytest.raises(ValueError, match=f"positive number of points but got {n}"):
            Sampler(2, "uniform").sample(n)


def _roundtrip(state):
    """A state as a checkpoint would hold it: pickled and unpickled."""
    return pickle.loads(pickle.dumps(copy.deepcopy(state)))


@pytest.mark.parametrize("method", METHODS)
def test_restored_sampler_continues_the_stream_exactly(method):
    original = Sampler(3, method, seed=11)
    original.sample(10)
    original.sample(5)
    state = _roundtrip(original.state_dict())
    expected = [original.sample(n) for n in (7, 16, 3)]

    restored = Sampler(3, method, seed=999)  # a different seed: the state must carry the stream
    restored.sample(4)  # and a different position
    restored.load_state_dict(state)
    for n, points in zip((7, 16, 3), expected):
        np.testing.assert_array_equal(restored.sample(n), points)


@pytest.mark.parametrize("method", RANDOM_METHODS)
def test_a_fresh_sampler_does_not_continue_the_stream(method):
    """The control for the resume test: without the state the next points differ."""
    original = Sampler(2, method, seed=11)
    original.sample(10)
    assert not np.allclose(Sampler(2, method, seed=11).sample(8), original.sample(8))


@pytest.mark.parametrize("method", RANDOM_METHODS)
def test_a_sampler_seeded_by_a_seed_sequence_restores_exactly(method):
    seed = np.random.SeedSequence(7, spawn_key=(0, 3, 1))
    original = Sampler(2, method, seed=seed)
    original.sample(9)
    state = _roundtrip(original.state_dict())
    assert (state["seed"], state["spawn_key"]) == (7, [0, 3, 1])
    expected = [original.sample(n) for n in (5, 11)]
    restored = Sampler(2, method, seed=np.random.SeedSequence(7, spawn_key=(0, 3, 2)))  # a sibling stream
    restored.load_state_dict(state)
    for n, points in zip((5, 11), expected):
        np.testing.assert_array_equal(restored.sample(n), points)
    sibling = Sampler(2, method, seed=np.random.SeedSequence(7, spawn_key=(0, 3, 2)))
    sibling.sample(9)
    assert not np.isin(sibling.sample(5), expected[0]).any()  # the control: another child, other points


@pytest.mark.parametrize("method", ["sobol", "lhs"])
def test_a_checkpoint_of_an_integer_seed_continues_its_old_stream(method):
    """A sampler state saved before seed sequences (``seed`` an integer, no ``spawn_key``), made by scipy directly."""
    make = {"sobol": lambda: qmc.Sobol(2, scramble=True, rng=np.random.default_rng(11)),
            "lhs": lambda: qmc.LatinHypercube(2, rng=np.random.default_rng(11))}[method]
    engine = make()
    engine.random(8)
    old_state = {"method": method, "seed": 11, "num_generated": 8, "rng": engine.rng.bit_generator.state}
    restored = Sampler(2, method, seed=np.random.SeedSequence(3, spawn_key=(1,)))
    restored.load_state_dict(_roundtrip(old_state))
    np.testing.assert_array_equal(restored.sample(8), engine.random(8))


def test_a_seed_sequence_and_its_children_seed_distinct_streams():
    from lightning_pinn.geometry.samplers import seed_sequence

    assert seed_sequence(4, 2, 0).spawn_key == np.random.SeedSequence(4).spawn(3)[2].spawn(1)[0].spawn_key
    assert seed_sequence(seed_sequence(4, 2), 0).spawn_key == (2, 0)
    draws = [Sampler(1, "uniform", seed).sample(32) for seed in (4, 5, seed_sequence(4, 0), seed_sequence(4, 1),
                                                                  seed_sequence(5, 0), seed_sequence(4, 0, 0))]
    values = np.concatenate(draws).ravel()
    assert len(np.unique(values)) == len(values)
    with pytest.raises(ValueError, match=r"stream key: expected integers in \[0, 2\*\*32\) but got \(-1,\)"):
        seed_sequence(4, -1)


def test_regions_and_their_streams_of_a_point_source_are_children_of_its_seed():
    box = Box({"x": (0.0, 1.0), "y": (0.0, 1.0)})
    source = PointSource(box.regions("boundary"), 40, "uniform", seed=np.random.SeedSequence(9, spawn_key=(5,)))
    keys = [s.seed.spawn_key for streams in source.streams for s in streams]
    assert keys == [(5, 0, 0), (5, 1, 0), (5, 2, 0), (5, 3, 0)]
    points = source.sample()
    assert len(np.unique(np.concatenate([points[points[:, 0] == 0, 1], points[points[:, 1] == 0, 0]]))) == 20


def test_loading_a_state_of_another_method_is_refused():
    with pytest.raises(ValueError, match="state is for method 'sobol', this sampler uses 'lhs'"):
        Sampler(2, "lhs").load_state_dict(Sampler(2, "sobol").state_dict())


BOX = {"x": (-1.0, 1.0), "t": (0.0, 1.0)}


def test_faces_are_labelled_by_coordinate_and_bound():
    assert Box(BOX, time="t").faces == ["x=-1", "x=1", "t=0", "t=1"]
    assert Box({"x": (0, 0.5), "y": (-2.5, 3)}).faces == ["x=0", "x=0.5", "y=-2.5", "y=3"]


def test_interior_maps_the_unit_cube_onto_the_box():
    (region,) = Box({"x": (-1, 1), "y": (2, 5), "t": (0, 0.5)}).regions("interior")
    assert region.fixed is None and region.label == "interior"
    assert region.free_dims == 3 and region.measure == pytest.approx(2 * 3 * 0.5)
    unit = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5]])
    np.testing.assert_allclose(region.map_unit(unit), [[-1, 2, 0], [1, 5, 0.5], [0, 3.5, 0.25]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("spec, column, value", [("t=0", 1, 0.0), ("t=1", 1, 1.0), ("x=-1", 0, -1.0),
                                                  ("x=1", 0, 1.0), (" x = 1.0 ", 0, 1.0), ("x=-1e0", 0, -1.0)])
def test_points_on_a_face_have_the_fixed_coordinate_exactly_at_the_bound(spec, column, value):
    box = Box(BOX, time="t")
    (region,) = box.regions(spec)
    assert region.fixed == (column, value) and region.free_dims == 1
    points = PointSource([region], 100, method="uniform", seed=0).sample()
    assert points.shape == (100, 2)
    assert np.all(points[:, column] == value)
    other = 1 - column
    assert np.all(points[:, other] >= box.lo[other]) and np.all(points[:, other] <= box.hi[other])


def test_boundary_excludes_the_faces_of_time():
    assert [r.label for r in Box(BOX, time="t").regions("boundary")] == ["x=-1", "x=1"]
    assert [r.label for r in Box(BOX).regions("boundary")] == ["x=-1", "x=1", "t=0", "t=1"]
    assert [r.label for r in Box({"x": (0, 1), "y": (0, 1), "t": (0, 2)}, time="t").regions("boundary")] == [
        "x=0", "x=1", "y=0", "y=1"]
    with pytest.raises(ValueError, match="only one is time 't'"):
        Box({"t": (0, 1)}, time="t").regions("boundary")


def test_a_list_of_specs_is_the_union_of_their_regions():
    labels = [r.label for r in Box(BOX, time="t").regions(["t=0", "boundary"])]
    assert labels == ["t=0", "x=-1", "x=1"]


@pytest.mark.parametrize("spec", ["t=0.5", "y=0", "nowhere", "", "x", "x=", "x=abc", "x==1", "=1", "Interior"])
def test_bad_region_strings_list_the_valid_faces(spec):
    with pytest.raises(ValueError) as info:
        Box(BOX, time="t").regions(spec, key="conditions.ic.region")
    message = str(info.value)
    assert message.startswith("conditions.ic.region: ")
    assert "'interior', 'boundary'" in message and "['x=-1', 'x=1', 't=0', 't=1']" in message


def test_empty_region_list_is_rejected():
    with pytest.raises(ValueError, match="^region: expected a region but got an empty list"):
        Box(BOX).regions([])


@pytest.mark.parametrize(
    "bounds, fragment",
    [
        ({"x": (1.0, 1.0)}, "coords.x: expected finite bounds with lo < hi but got [1.0, 1.0]"),
        ({"x": (0, 1), "t": (2, -1)}, "coords.t: expected finite bounds with lo < hi but got [2, -1]"),
        ({"x": (0, float("inf"))}, "coords.x: expected finite bounds"),
        ({"x": (float("nan"), 1)}, "coords.x: expected finite bounds"),
        ({"x": (0,)}, "coords.x: expected bounds [lo, hi] but got [0]"),
        ({"x": (0, 1, 2)}, "coords.x: expected bounds [lo, hi] but got [0, 1, 2]"),
        ({}, "coords: at least one coordinate"),
    ],
)
def test_bad_bounds_are_rejected(bounds, fragment):
    with pytest.raises(ValueError) as info:
        Box(bounds)
    assert fragment in str(info.value)


def test_time_must_be_a_coordinate():
    with pytest.raises(ValueError, match=r"time: 's' is not a coordinate; coordinates are \['x', 't'\]"):
        Box(BOX, time="s")


def test_points_are_split_across_faces_by_measure():
    box = Box({"x": (0.0, 2.0), "y": (0.0, 1.0)})
    regions = box.regions("boundary")
    assert [r.label for r in regions] == ["x=0", "x=2", "y=0", "y=1"]
    assert [r.measure for r in regions] == [1.0, 1.0, 2.0, 2.0]
    source = PointSource(regions, 60, method="sobol", seed=0)
    assert source.counts == [10, 10, 20, 20]
    points = source.sample()
    assert points.shape == (60, 2)
    blocks = np.split(points, np.cumsum(source.counts)[:-1])
    for block, (column, value) in zip(blocks, [(0, 0.0), (0, 2.0), (1, 0.0), (1, 1.0)]):
        assert np.all(block[:, column] == value)
        assert np.all(block >= box.lo) and np.all(block <= box.hi)


@pytest.mark.parametrize("n", [6, 7, 8, 13, 61, 1000])
def test_counts_add_up_to_n_with_at_least_one_point_per_face(n):
    regions = Box({"x": (0.0, 2.0), "y": (0.0, 1.0), "z": (0.0, 0.5)}).regions("boundary")  # measures .5, 1, 2
    source = PointSource(regions, n, method="uniform")
    assert sum(source.counts) == n and min(source.counts) >= 1
    assert source.sample().shape == (n, 3)
    if n >= 14:  # enough points that no face needs topping up to one: every count is its share rounded
        shares = n * np.array([r.measure for r in regions]) / sum(r.measure for r in regions)
        assert np.all(np.abs(np.array(source.counts) - shares) < 1)


def test_counts_for_small_n_follow_the_largest_remainders():
    regions = Box({"x": (0.0, 2.0), "y": (0.0, 1.0), "z": (0.0, 0.5)}).regions("boundary")
    assert PointSource(regions, 7).counts == [1, 1, 1, 1, 1, 2]  # shares .5 .5 1 1 2 2: x=0 gets the remainder, x=2 is topped up
    assert PointSource(regions, 10).counts == [1, 1, 1, 1, 3, 3]  # shares 5/7 5/7 10/7 10/7 20/7 20/7
    assert PointSource(regions[:2] + regions[4:], 11).counts == [1, 1, 5, 4]  # shares 1.1 1.1 4.4 4.4


def test_every_region_gets_at_least_one_point_and_too_few_are_refused():
    regions = Box({"x": (0.0, 100.0), "y": (0.0, 0.01)}).regions("boundary")
    assert min(PointSource(regions, 4).counts) >= 1
    with pytest.raises(ValueError, match=r"at least one point per region \(4\) but got n=3"):
        PointSource(regions, 3)


def test_interior_points_of_a_3d_box_stay_inside():
    box = Box({"x": (-1.0, 1.0), "y": (2.0, 3.0), "t": (0.0, 5.0)}, time="t")
    for method in METHODS:
        points = PointSource(box.regions("interior"), 125, method=method, seed=2).sample()
        assert points.shape == (125, 3)
        assert np.all(points >= box.lo) and np.all(points <= box.hi)


def test_the_face_of_a_one_dimensional_box_is_a_single_point():
    region = Region((0.0,), (1.0,), (0, 1.0), "x=1")
    assert region.free_dims == 0 and region.measure == 1.0
    np.testing.assert_array_equal(PointSource([region], 5).sample(), [[1.0]])


@pytest.mark.parametrize("method", METHODS)
def test_restored_point_source_draws_what_the_original_would(method):
    regions = Box(BOX, time="t").regions(["interior", "t=0", "boundary"])
    original = PointSource(regions, 90, method=method, seed=4)
    original.sample()
    state = _roundtrip(original.state_dict())
    expected = [original.sample() for _ in range(3)]

    restored = PointSource(regions, 90, method=method, seed=123)
    restored.sample()
    restored.load_state_dict(state)
    for points in expected:
        np.testing.assert_array_equal(restored.sample(), points)
