"""Random streams: every (seed, rank, purpose, point set, region, stream) draws its own points, reproducibly.

Independent streams share no value of their first draws: float64 uniforms of two independent
generators coincide with probability about 2^-53 per pair of values. The checks below are proved
able to fail on the derivation the streams had before (``seed + rank``, ``+ 1000 k``,
``+ i + 7919 j``), which made distinct streams one.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from lightning_pinn import MLP, PINNModule, Problem
from lightning_pinn.geometry import Disk, PeriodicSource, Sampler
from lightning_pinn.lightning.adaptive_sampling import RAD
from lightning_pinn.points import PURPOSES, Collocation, name_key, stream_seed

TESTS = Path(__file__).resolve().parent
SEEDS, RANKS = (0, 1), (0, 1, 2, 3)


def box_problem(extra: dict | None = None) -> Problem:
    """Several conditions: a 4-face boundary, a list of two faces, a time face, a periodic pair."""
    conditions = {
        "walls": {"region": "boundary", "residual": "u", "points": 40},
        "corner": {"region": ["x=0", "y=2"], "residual": "u - 1", "points": 20},
        "initial": {"region": "t=0", "residual": "u - x*y", "points": 30},
        "wrap": {"periodic": "x", "points": 10},
        **(extra or {}),
    }
    return Problem(coords={"x": [0, 1], "y": [0, 2], "t": [0, 1]}, fields=["u"], equations={"heat": "u_t - u_xx"},
                   collocation_points=50, conditions=conditions)


def disk_problem() -> Problem:
    """Regions with two streams each (the shape's, then time's)."""
    return Problem(coords={"x": [-1, 1], "y": [-1, 1], "t": [0, 1]}, fields=["u"], geometry=Disk([0, 0], 1),
                   equations={"heat": "u_t - u_xx - u_yy"}, collocation_points=50,
                   conditions={"rim": {"region": "boundary", "residual": "u_n", "points": 20},
                               "initial": {"region": "t=0", "residual": "u", "points": 20}})


def samplers(source) -> dict[tuple[int, int], Sampler]:
    """Every stream of a point source, by (region, stream)."""
    face = source.face if isinstance(source, PeriodicSource) else source
    return {(i, j): s for i, streams in enumerate(getattr(face, "streams", [])) for j, s in enumerate(streams)}


def collocation_streams(problem: Problem, method: str, seed: int, rank: int) -> dict[tuple, Sampler]:
    collocation = Collocation(problem, method, seed, rank=rank)
    return {("collocation", seed, rank, name, *where): s
            for name, source in collocation.sources.items() for where, s in samplers(source).items()}


def adaptive_streams(problem: Problem, method: str, seed: int, rank: int) -> dict[tuple, Any]:
    """RAD's candidate samplers and selection generator for every point set drawn on regions, on ``rank``."""
    module = PINNModule(problem, MLP(problem.n_coords, 1, width=4, depth=1))
    out: dict[tuple, Any] = {}
    for name, spec in problem.point_sets.items():
        if spec.periodic is not None or spec.rows is not None:
            continue
        rad = RAD(candidates=spec.points, point_set=name, seed=seed, sampler=method)
        rad.setup(SimpleNamespace(global_rank=rank), module, "fit")
        out.update({("candidates", seed, rank, name, *where): s for where, s in samplers(rad.source).items()})
        out[("selection", seed, rank, name)] = rad._rng
    return out


def first_draws(streams: dict[tuple, Any], n: int = 16) -> dict[tuple, np.ndarray]:
    """Each stream's first ``n`` unit-cube points (or uniforms, for a generator), drawn from a fresh stream."""
    return {key: s.random(n) if isinstance(s, np.random.Generator) else s.sample(n) for key, s in streams.items()}


def equal_pairs(draws: dict[tuple, np.ndarray]) -> list[tuple[tuple, tuple]]:
    """Pairs of streams whose first draws are the same array."""
    seen: dict[bytes, tuple] = {}
    pairs = []
    for key, d in draws.items():
        tag = np.ascontiguousarray(d).tobytes() + str(d.shape).encode()
        if tag in seen:
            pairs.append((seen[tag], key))
        seen.setdefault(tag, key)
    return pairs


def permuted_pairs(draws: dict[tuple, np.ndarray]) -> list[tuple[tuple, tuple]]:
    """Pairs of streams whose first draws hold the same values in some order (any shape)."""
    return equal_pairs({key: np.sort(d, axis=None) for key, d in draws.items()})


def sharing_pairs(draws: dict[tuple, np.ndarray]) -> list[tuple[tuple, tuple]]:
    """Pairs of streams whose first draws share any value (for float64 uniform draws)."""
    owner: dict[float, tuple] = {}
    pairs = set()
    for key, d in draws.items():
        for value in np.unique(d):
            other = owner.setdefault(float(value), key)
            if other != key:
                pairs.add((other, key))
    return sorted(pairs, key=str)


PROBLEMS = {"box": box_problem, "disk": disk_problem}


def every_stream(problem: Problem, method: str, seeds=SEEDS, ranks=RANKS) -> dict[tuple, Any]:
    """Every stream of a run of ``problem``, for each seed and rank: collocation, candidates, selection."""
    streams: dict[tuple, Any] = {}
    for seed, rank in itertools.product(seeds, ranks):
        streams.update(collocation_streams(problem, method, seed, rank))
        streams.update(adaptive_streams(problem, method, seed, rank))
    return streams


# ----- no two streams coincide -------------------------------------------------------------------


def test_the_enumeration_covers_faces_conditions_ranks_seeds_and_second_streams():
    keys = set(every_stream(box_problem(), "uniform", ranks=(0, 1)))
    assert {("collocation", 0, 0, "walls", i, 0) for i in range(4)} <= keys  # x=0, x=1, y=0, y=2
    assert {("collocation", 0, 0, "corner", 1, 0), ("collocation", 1, 1, "wrap", 0, 0)} <= keys
    assert {("candidates", 1, 1, "walls", 3, 0), ("selection", 0, 1, "interior")} <= keys
    keys = set(every_stream(disk_problem(), "uniform", ranks=(0, 1)))
    assert {("collocation", 0, 0, "interior", 0, 1), ("candidates", 1, 1, "rim", 0, 1)} <= keys  # time's streams


@pytest.mark.parametrize("problem", PROBLEMS)
def test_no_two_streams_share_a_value_of_their_first_draws(problem):
    draws = first_draws(every_stream(PROBLEMS[problem](), "uniform"))
    assert len(draws) >= 2 * 4 * 12
    assert sharing_pairs(draws) == []


@pytest.mark.parametrize("method", ["uniform", "lhs", "sobol", "halton"])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_no_two_streams_first_draws_are_equal_even_up_to_permutation(problem, method):
    draws = first_draws(every_stream(PROBLEMS[problem](), method))
    assert equal_pairs(draws) == []
    assert permuted_pairs(draws) == []


def test_seed_0_on_rank_1_shares_nothing_with_seed_1_on_rank_0():
    problem = box_problem()
    for make in (collocation_streams, adaptive_streams):
        a = first_draws(make(problem, "uniform", 0, 1))
        b = first_draws(make(problem, "uniform", 1, 0))
        assert len(a) == len(b) > 4 and sharing_pairs({**a, **b}) == []


def test_point_sets_on_rank_0_share_nothing_with_rank_1000_k():
    problem = box_problem()
    draws = {}
    for rank in (0, 1000, 2000, 3000, 4000):
        draws.update(first_draws(collocation_streams(problem, "uniform", 0, rank)))
    assert len({key[3] for key in draws}) == 5 == len(problem.point_sets)
    assert sharing_pairs(draws) == []


def test_the_checks_find_the_coincidences_of_the_old_derivation():
    """The control: streams seeded as before (``seed + rank + 1000 k + i + 7919 j``) do coincide."""
    def old(seed, rank, k, i=0, j=0, dim=2):
        return Sampler(dim, "uniform", seed + rank + 1000 * k + i + 7919 * j)

    draws = first_draws({
        ("seed 0 rank 1",): old(0, 1, 0), ("seed 1 rank 0",): old(1, 0, 0),
        ("set 1 rank 0",): old(0, 0, 1), ("set 0 rank 1000",): old(0, 1000, 0),
        ("region 1",): old(0, 2, 0, i=1, dim=1), ("rank 3",): old(0, 3, 0, dim=3),
    })
    assert (("seed 0 rank 1",), ("seed 1 rank 0",)) in equal_pairs(draws)
    assert (("set 1 rank 0",), ("set 0 rank 1000",)) in equal_pairs(draws)
    assert (("region 1",), ("rank 3",)) in sharing_pairs(draws)  # one generator read as 1 or 3 columns
    assert (("region 1",), ("rank 3",)) not in permuted_pairs(draws)  # which only the value check sees


# ----- one stream, reproducibly ------------------------------------------------------------------


def test_a_stream_is_the_documented_node_of_the_seed_tree():
    """Interior points on rank 2, seed 1: SeedSequence(1, spawn_key=(0, 2, 8, b"inte", b"rior", 0, 0)), uniform."""
    words = [int.from_bytes(b"inte", "little"), int.from_bytes(b"rior", "little")]
    key = (PURPOSES["collocation"], 2, 8, *words, 0, 0)  # purpose, rank, name, region 0, stream 0
    collocation = Collocation(box_problem(), "uniform", 1, rank=2)
    stream = collocation.sources["interior"].streams[0][0]
    assert (stream.seed.entropy, stream.seed.spawn_key) == (1, key)
    # scipy's engines own the first child of the generator they are given: spawn key (..., 0)
    generator = np.random.default_rng(np.random.SeedSequence(1, spawn_key=(*key, 0)))
    expected = generator.random((50, 3)) * np.array([1, 2, 1])  # the box [0, 1] x [0, 2] x [0, 1]
    np.testing.assert_array_equal(collocation.draw("cpu", torch.float64)["interior"].numpy(), expected)


def test_a_stream_is_the_same_in_another_process_and_another_construction(tmp_path):
    here = {name: v.numpy() for name, v in Collocation(box_problem(), "sobol", 1, rank=2).draw("cpu", torch.float64).items()}
    again = Collocation(box_problem(), "sobol", 1, rank=2).draw("cpu", torch.float64)
    script = (f"import sys, numpy, torch; sys.path.insert(0, {str(TESTS)!r}); from test_streams import box_problem; "
              "from lightning_pinn.points import Collocation; "
              "d = Collocation(box_problem(), 'sobol', 1, rank=2).draw('cpu', torch.float64); "
              f"numpy.savez({str(tmp_path / 'draw.npz')!r}, **{{k: v.numpy() for k, v in d.items()}})")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # names must not key streams through Python's hash
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    there = np.load(tmp_path / "draw.npz")
    assert sorted(there.files) == sorted(here)
    for name, points in here.items():
        np.testing.assert_array_equal(there[name], points)
        np.testing.assert_array_equal(again[name].numpy(), points)
    other_rank = Collocation(box_problem(), "sobol", 1, rank=3).draw("cpu", torch.float64)
    assert not any(np.array_equal(other_rank[name].numpy(), here[name]) for name in ("interior", "walls"))


def test_a_point_set_keeps_its_points_when_conditions_are_added_and_loses_them_when_renamed():
    before = Collocation(box_problem(), "sobol", 0, rank=1).draw("cpu", torch.float64)
    extra = {"final": {"region": "t=1", "residual": "u", "points": 30}}
    after = Collocation(box_problem(extra), "sobol", 0, rank=1).draw("cpu", torch.float64)
    for name in before:
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)
    renamed = box_problem({"final": {"region": "t=0", "residual": "u - x*y", "points": 30}})
    final = Collocation(renamed, "sobol", 0, rank=1).draw("cpu", torch.float64)["final"]
    assert final.shape == before["initial"].shape and not torch.equal(final, before["initial"])


def test_name_keys_are_exact_so_no_two_names_share_one():
    names = ["", "a", "a\0", "ab", "abcd", "abcd\0", "abcde", "interior", "interio", "é", "walls_0", "walls_1"]
    keys = [name_key(n) for n in names]
    assert len(set(keys)) == len(names)
    assert all(0 <= k < 2**32 for key in keys for k in key)


@pytest.mark.parametrize("call, match", [
    (lambda: Collocation(box_problem(), "sobol", 0, rank=-1), r"rank: expected a non-negative integer .* got -1"),
    (lambda: Collocation(box_problem(), "sobol", 0, rank=1.5), r"rank: expected a non-negative integer .* got 1.5"),
    (lambda: Collocation(box_problem(), "sobol", -3), r"seed: expected a non-negative integer but got -3"),
    (lambda: stream_seed(0, "observations", "interior"), r"purpose: expected one of \['collocation', 'candidates'"),
    (lambda: Sampler(2, "sobol", seed=-1), r"seed: expected a non-negative integer or a numpy SeedSequence"),
])
def test_bad_seeds_and_ranks_are_named_with_their_values(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_the_points_module_loads_no_lightning_code():
    """``lightning_pinn.points`` is the data path's points step, usable without Lightning (the package's
    ``__init__``, which imports everything, is bypassed)."""
    probe = ("import json, sys, types; package = types.ModuleType('lightning_pinn'); "
             f"package.__path__ = [{str(TESTS.parent / 'lightning_pinn')!r}]; sys.modules['lightning_pinn'] = package; "
             "from lightning_pinn.points import Collocation; from lightning_pinn.problem import Problem; "
             "p = Problem(coords={'x': [0, 1]}, fields=['u'], equations={'ode': 'u_x - u'}, collocation_points=8); "
             "assert Collocation(p, 'sobol', 0, rank=1).draw()['interior'].shape == (8, 1); "
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning') "
             "or m.startswith('lightning_pinn.lightning'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
