"""RAD and RAR: against a residual known in closed form, exact resume, DDP streams, L-BFGS, bad input."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import small_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_pinn import MLP, PINNModule, Problem
from lightning_pinn.lightning.adaptive_sampling import RAD, RAR, rad_density, residual_magnitude, sample_proportional

PEAK, WIDTH = 0.3, 100.0  # the known residual exp(-WIDTH (x - PEAK)^2) on [0, 1]


def ode(points=400, equation="u_x - u", **extra):
    return Problem(coords={"x": [0, 1]}, fields=["u"], equations={"ode": equation}, collocation_points=points,
                   conditions={"start": {"region": "x=0", "residual": "u - 1", "points": 1}}, **extra)


def net():
    torch.manual_seed(0)
    return MLP(1, 1, width=8, depth=2)


class KnownResidual(PINNModule):
    """The equation's residual is exp(-100 (x - 0.3)^2) whatever the network (which still trains on the rest)."""

    def residuals(self, points):
        out = super().residuals(points)
        if "interior" in points:
            x = points["interior"][:, 0]
            out["ode"] = torch.exp(-WIDTH * (x - PEAK) ** 2) + 0 * out["ode"]
        return out


def peak_mass(k: float, lo: float, hi: float) -> float:
    """∫_lo^hi exp(-WIDTH k (x - PEAK)^2) dx."""
    s = math.sqrt(WIDTH * k)
    return math.sqrt(math.pi) / (2 * s) * (math.erf(s * (hi - PEAK)) - math.erf(s * (lo - PEAK)))


def rad_share(k: float, c: float, lo: float, hi: float) -> float:
    """Share of [lo, hi] under the density ∝ r^k / mean(r^k) + c on [0, 1]."""
    return (peak_mass(k, lo, hi) / peak_mass(k, 0, 1) + c * (hi - lo)) / (1 + c)


def fake_trainer(rank=0):
    return SimpleNamespace(global_rank=rank)


def record_points(module):
    seen = []
    original = module.training_step
    def step(*args, **kwargs):
        seen.append(module.training_points()["interior"].clone())
        return original(*args, **kwargs)

    module.training_step = step
    return seen


# ----- the maths ---------------------------------------------------------------------------------


def test_rad_density_is_the_normalised_power_of_the_residual_plus_c():
    r = np.array([0.5, 1.0, 2.0, 0.0])
    for k, c in [(1.0, 1.0), (2.0, 0.0), (0.5, 3.0)]:
        w = r**k / np.mean(r**k) + c
        assert np.allclose(rad_density(r, k, c), w / w.sum(), rtol=1e-14, atol=0)
    assert np.allclose(rad_density(r, 0.0, 0.0), 0.25)  # k = 0: uniform
    assert np.allclose(rad_density(np.zeros(4), 2.0, 0.0), 0.25)  # no residual anywhere: uniform
    assert np.isfinite(rad_density(np.array([1e200, 1.0]), 4.0, 0.0)).all()  # no overflow


def test_sample_proportional_draws_distinct_indices_in_proportion_to_weights():
    rng = np.random.default_rng(0)
    weights = np.array([1.0, 0.0, 3.0, 6.0])
    firsts = np.array([sample_proportional(weights, 1, rng.random(4))[0] for _ in range(4000)])
    assert np.allclose(np.bincount(firsts, minlength=4) / 4000, weights / weights.sum(), atol=0.03)
    taken = sample_proportional(weights, 3, rng.random(4))
    assert taken.tolist() == [0, 2, 3]  # the zero weight only when nothing else is left
    assert sample_proportional(weights, 4, rng.random(4)).tolist() == [0, 1, 2, 3]


def test_residual_magnitude_is_the_root_sum_of_squares_and_names_missing_terms():
    r = {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([4.0, -2.0]), "other": torch.tensor([9.0, 9.0])}
    assert torch.equal(residual_magnitude(r, ["a", "b"]), torch.tensor([5.0, 2.0]))
    with pytest.raises(ValueError, match=r"terms \['c'\] are missing; the module returned \['a', 'b', 'other'\]"):
        residual_magnitude(r, ["a", "c"])


# ----- RAD ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("k, c", [(1.0, 1.0), (2.0, 0.0)])
def test_rad_draws_points_from_the_density_of_the_known_residual(tmp_path, k, c):
    module = KnownResidual(ode(points=1000), net())
    seen = record_points(module)
    rad = RAD(every=1, candidates=50_000, k=k, c=c)
    small_trainer(tmp_path, max_steps=2, callbacks=[rad]).fit(module)
    before, after = seen
    assert after.shape == before.shape == (1000, 1)  # N kept
    assert after.dtype == module.dtype and after.device == module.device
    assert torch.equal(module.collocation.points["interior"], after)
    x = after[:, 0].double().numpy()
    assert ((0 <= x) & (x <= 1)).all() and len(np.unique(x)) == 1000  # without replacement
    near = np.mean(np.abs(x - PEAK) < 0.1)
    assert abs(np.mean(np.abs(before[:, 0].numpy() - PEAK) < 0.1) - 0.2) < 0.02  # the uniform start
    assert abs(near - rad_share(k, c, PEAK - 0.1, PEAK + 0.1)) < 0.04  # 0.52 for k=1, c=1; 0.95 for k=2, c=0
    assert abs(np.mean(x > 0.6) - rad_share(k, c, 0.6, 1.0)) < 0.04  # the c share far from the peak
    assert rad.last_residual == pytest.approx(peak_mass(1, 0, 1), rel=0.05)  # mean |r| of uniform candidates


def test_rad_leaves_the_modules_own_stream_alone(tmp_path):
    module = KnownResidual(ode(), net())
    small_trainer(tmp_path, max_steps=3, callbacks=[RAD(every=1, candidates=1000)]).fit(module)
    untouched = KnownResidual(ode(), net())
    untouched.draw_points()  # a run with resample_every=0 draws once
    assert module.collocation.sources["interior"].state_dict() == untouched.collocation.sources["interior"].state_dict()


# ----- RAR ---------------------------------------------------------------------------------------


def test_rar_adds_the_worst_candidates_up_to_max_points(tmp_path):
    module = KnownResidual(ode(points=200), net())
    seen = record_points(module)
    trainer = small_trainer(tmp_path, max_steps=6, callbacks=[RAR(every=1, candidates=5000, add=10, max_points=230)])
    trainer.fit(module)
    assert [len(p) for p in seen] == [200, 210, 220, 230, 230, 230]
    final = seen[-1]
    assert torch.equal(final[:200], seen[0])  # the first points are kept
    assert torch.equal(module.collocation.points["interior"], final)
    added = final[200:, 0].numpy()
    # the 10 largest of exp(-100 (x - 0.3)^2) over 5000 uniform x: the 10 nearest 0.3, within about 10/5000
    assert np.abs(added - PEAK).max() < 0.005
    assert trainer.callback_metrics["adaptive/interior_points"].item() == 230
    assert trainer.callback_metrics["adaptive/interior_residual"].item() == pytest.approx(peak_mass(1, 0, 1), rel=0.1)


def test_rar_on_a_condition_point_set_draws_on_its_region(tmp_path):
    problem = Problem(coords={"x": [0, 1], "t": [0, 1]}, fields=["u"], equations={"heat": "u_t - u_xx"},
                      collocation_points=64,
                      conditions={"initial": {"region": "t=0", "residual": "u - x", "points": 16}})
    module = PINNModule(problem, MLP(2, 1, width=8, depth=2))
    rar = RAR(every=1, candidates=100, add=4, point_set="initial")
    small_trainer(tmp_path, max_steps=2, callbacks=[rar]).fit(module)
    points = module.collocation.points["initial"]
    assert points.shape == (20, 2) and (points[:, 1] == 0).all()
    assert module.collocation.points["interior"].shape == (64, 2)


# ----- checkpoints, DDP, L-BFGS -------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: RAD(every=2, candidates=2000, k=2.0, c=0.5),
                                  lambda: RAR(every=2, candidates=2000, add=20)], ids=["RAD", "RAR"])
def test_resume_gives_the_points_and_parameters_of_an_unbroken_run(tmp_path, make):
    def run(max_steps, ckpt_path=None, checkpoint=None):
        module, callback = KnownResidual(ode(points=100), net(), sampler="lhs"), make()
        callbacks = [callback] + ([checkpoint] if checkpoint else [])
        trainer = small_trainer(tmp_path, max_steps=max_steps, callbacks=callbacks,
                                enable_checkpointing=bool(checkpoint))
        trainer.fit(module, ckpt_path=ckpt_path)
        return module, callback

    unbroken, unbroken_callback = run(8)  # rounds at steps 2, 4 and 6
    run(4, checkpoint=ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=4))
    resumed, callback = run(8, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))  # round 4 happens after the resume
    assert resumed.global_step == 8 and callback.draws == 3
    assert torch.equal(resumed.collocation.points["interior"], unbroken.collocation.points["interior"])
    for (name, a), (_, b) in zip(resumed.state_dict().items(), unbroken.state_dict().items()):
        assert torch.equal(a, b), name
    assert callback.state_dict() == unbroken_callback.state_dict()


def test_each_rank_draws_its_own_candidates_and_a_resume_from_rank_0_state_continues_them():
    module = KnownResidual(ode(), net())

    def started(rank):
        rad = RAD(candidates=500, seed=3)
        rad.setup(fake_trainer(rank), module, "fit")
        return rad

    rank0, rank1 = started(0), started(1)
    for _ in range(3):
        rank0.draw_candidates(), rank1.draw_candidates()
    state = rank0.state_dict()  # a checkpoint holds rank 0's state
    next0, next1 = rank0.draw_candidates(), rank1.draw_candidates()
    assert not np.array_equal(next0[0], next1[0])
    shifted = RAD(candidates=500, seed=4)
    shifted.setup(fake_trainer(0), module, "fit")
    # seed 3 on rank 1 and seed 4 on rank 0 share no stream (seed + rank made them one); uniform float64
    # draws of independent streams share no value
    for a, b in zip(started(1).draw_candidates(), shifted.draw_candidates()):
        assert not np.isin(a, b).any()
    for rank, expected in [(0, next0), (1, next1)]:
        resumed = RAD(candidates=500, seed=3)
        resumed.load_state_dict(state)  # before setup, as when Lightning restores callbacks
        resumed.setup(fake_trainer(rank), module, "fit")
        candidates, uniforms = resumed.draw_candidates()
        assert np.array_equal(candidates, expected[0]) and np.array_equal(uniforms, expected[1])
        assert resumed.draws == 4


def test_refining_in_the_lbfgs_phase_restarts_its_history(tmp_path):
    def lbfgs_iterations(every):
        lbfgs = {"_target_": "torch.optim.LBFGS", "max_iter": 4, "max_eval": 100, "tolerance_grad": 0,
                 "tolerance_change": 0, "line_search_fn": "strong_wolfe"}
        module = PINNModule(ode(points=64, equation="u_x - cos(30*x)"), net(), phases={"lbfgs": {"optimizer": lbfgs}})
        trainer = small_trainer(tmp_path, max_steps=5, callbacks=[RAR(every=every, candidates=200, add=8)])
        trainer.fit(module)
        optimizer = trainer.optimizers[0]
        n_iter = optimizer.state[optimizer.param_groups[0]["params"][0]]["n_iter"]
        return n_iter, len(module.collocation.points["interior"])

    assert lbfgs_iterations(100) == (5 * 4, 64)  # no round: one history across all steps
    assert lbfgs_iterations(2) == (1 * 4, 80)  # rounds at steps 2 and 4; the last restarts it


# ----- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make, match", [
    (lambda: RAD(every=0), r"RAD: every: expected a positive integer but got 0"),
    (lambda: RAD(every=True), r"every: expected a positive integer but got True"),
    (lambda: RAD(candidates=2.5), r"candidates: expected a positive integer but got 2.5"),
    (lambda: RAD(k=-1), r"RAD: k: expected a finite number >= 0 but got -1"),
    (lambda: RAD(c=float("nan")), r"RAD: c: expected a finite number >= 0 but got nan"),
    (lambda: RAD(sampler="grid"), r"sampler: expected one of \['uniform', 'lhs', 'sobol', 'halton'\].*'grid'"),
    (lambda: RAD(point_set=3), r"point_set: expected the name of a point set but got 3"),
    (lambda: RAD(seed="0"), r"RAD: seed: expected a non-negative integer but got '0'"),
    (lambda: RAR(seed=-1), r"RAR: seed: expected a non-negative integer but got -1"),
    (lambda: RAR(add=0), r"RAR: add: expected a positive integer but got 0"),
    (lambda: RAR(candidates=10, add=20), r"RAR: add=20 must be at most candidates=10"),
    (lambda: RAR(max_points=-5), r"RAR: max_points: expected a positive integer but got -5"),
    (lambda: RAR(batch_size=0), r"RAR: batch_size: expected a positive integer but got 0"),
])
def test_bad_arguments_are_named_with_their_values(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_setup_refuses_what_would_not_work():
    module = KnownResidual(ode(points=400), net())
    with pytest.raises(ValueError, match=r"'boundary' is not a point set of the problem; valid names are "
                                         r"\['interior', 'start'\]"):
        RAD(point_set="boundary").setup(fake_trainer(), module, "fit")
    with pytest.raises(ValueError, match=r"candidates=100 must be at least the 400 points of point set 'interior'"):
        RAD(candidates=100).setup(fake_trainer(), module, "fit")
    with pytest.raises(ValueError, match=r"max_points=300 is below the 400 points"):
        RAR(max_points=300).setup(fake_trainer(), module, "fit")
    redrawing = KnownResidual(ode(), net(), resample_every=10)
    with pytest.raises(ValueError, match=r"RAR: the module redraws its points every resample_every=10 steps.*"
                                         r"set resample_every=0"):
        RAR().setup(fake_trainer(), redrawing, "fit")
    with pytest.raises(ValueError, match=r"needs a PINNModule"):
        RAD().setup(fake_trainer(), torch.nn.Linear(1, 1), "fit")
    RAD(candidates=100).setup(fake_trainer(), module, "validate")  # only fitting is checked


def test_rar_warns_that_a_compiled_loss_recompiles_at_every_round():
    module = PINNModule(ode(), net(), compile=True)
    with pytest.warns(UserWarning, match=r"RAR: the loss is compiled for a fixed number of points"):
        RAR().setup(fake_trainer(), module, "fit")


def test_rad_rounds_only_in_the_named_phases_and_a_quasi_newton_phase_keeps_its_curvature(tmp_path):
    from lightning_pinn.optim import QuasiNewton

    phases = {"adam": {"optimizer": {"_target_": "torch.optim.Adam"}, "steps": 3},
              "quasi_newton": {"optimizer": {"_target_": "lightning_pinn.optim.QuasiNewton", "max_iter": 2}}}
    module = PINNModule(ode(points=64), net(), phases=phases)
    rounds = []
    original = module.points_changed

    def points_changed():
        optimizer = module.optimizers().optimizer
        before = optimizer.state[next(module.parameters())].get("H")
        original()
        rounds.append((module.global_step, type(optimizer).__name__,
                       before is not None and optimizer.state[next(module.parameters())]["H"] is before))

    module.points_changed = points_changed
    rad = RAD(every=2, candidates=256, phases=["quasi_newton"])
    small_trainer(tmp_path, max_steps=8, precision="64-true", callbacks=[rad]).fit(module)
    assert rounds == [(4, "QuasiNewton", True), (6, "QuasiNewton", True)]  # not at step 2, in the Adam phase
    assert isinstance(module.optimizers().optimizer, QuasiNewton)
    with pytest.raises(ValueError, match=r"^RAD: phases: \['lbfgs'\] are not phases of the module; its phases are "
                                         r"\['adam', 'quasi_newton'\]$"):
        small_trainer(tmp_path, max_steps=1, callbacks=[RAD(every=2, candidates=256, phases=["lbfgs"])]).fit(
            PINNModule(ode(points=64), net(), phases=phases))
