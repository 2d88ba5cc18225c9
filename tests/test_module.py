"""PINNModule in Lightning: training, logging, L-BFGS, precision, validation, checkpoints, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import lightning.pytorch as pl
import torch
from conftest import phases, small_trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger

from lightning_pinn import MLP, PINNModule, Problem
from lightning_pinn.errors import NonFiniteLossError
from lightning_pinn.points import Collocation
from lightning_pinn.references import BurgersColeHopf


class RecordingLogger(Logger):
    """Keeps every ``log_metrics`` call in memory."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[int, dict]] = []

    @property
    def name(self):
        return "recording"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))

    def series(self, key):
        return [(step, m[key]) for step, m in self.rows if key in m]


def burgers(spec, reference=True):
    nu = spec["params"]["nu"]
    return Problem(**spec, reference=BurgersColeHopf(nu) if reference else None)


def small_net(width=16, depth=3):
    torch.manual_seed(0)
    return MLP(2, 1, width=width, depth=depth, bounds=[[-1, 1], [0, 1]])


def test_short_burgers_run_lowers_loss_and_error(tmp_path, burgers_spec):
    module = PINNModule(burgers(burgers_spec), small_net(), phases=phases({"_target_": "torch.optim.Adam", "lr": 1e-2}),
                        validation_grid={"x": 64, "t": 20})
    logger = RecordingLogger()
    before = small_trainer(tmp_path).validate(module, verbose=False)[0]["val/rel_l2_u"]
    small_trainer(tmp_path, max_steps=150, logger=logger, log_every_n_steps=1, val_check_interval=150).fit(module)
    losses = [v for _, v in logger.series("train/loss")]
    after = logger.series("val/rel_l2_u")[-1][1]
    assert len(losses) == 150
    assert np.mean(losses[-10:]) < 0.4 * np.mean(losses[:10])
    assert after < 0.7 * before
    for term in ("burgers", "initial", "boundary"):
        assert len(logger.series(f"train/{term}")) == 150


def test_loss_is_weighted_sum_of_mean_squared_residuals(burgers_spec):
    burgers_spec["conditions"]["initial"]["weight"] = 3.0
    module = PINNModule(burgers(burgers_spec, reference=False), small_net())
    points = module.draw_points()
    residuals = module.residuals(points)
    terms = module.loss_terms(points)
    for name, r in residuals.items():
        assert r.shape == (points[module.problem.terms[name].point_set].shape[0],)
        assert torch.allclose(terms[name], (r**2).mean())
    expected = terms["burgers"] + 3.0 * terms["initial"] + terms["boundary"]
    assert torch.allclose(module.total_loss(terms), expected)
    # the initial residual is u + sin(pi x) on t = 0, independently recomputed
    x0 = points["initial"]
    assert torch.all(x0[:, 1] == 0)
    with torch.no_grad():
        direct = module(x0)[:, 0] + torch.sin(math.pi * x0[:, 0])
    assert torch.allclose(residuals["initial"].detach(), direct, atol=1e-6)


def test_current_points_take_the_asked_device_and_dtype_after_any_replacement(burgers_spec):
    collocation = Collocation(burgers(burgers_spec, reference=False))
    points = collocation.current(torch.device("cpu"), torch.float64)
    assert {v.dtype for v in points.values()} == {torch.float64}
    assert collocation.current(torch.device("cpu"), torch.float64)["interior"] is points["interior"]  # no copy
    collocation.points["interior"] = points["interior"].float()  # as RAR does
    assert collocation.current(torch.device("cpu"), torch.float64)["interior"].dtype == torch.float64
    collocation.points = {k: v.float() for k, v in points.items()}
    assert {v.dtype for v in collocation.current(torch.device("cpu"), torch.float64).values()} == {torch.float64}
    assert collocation.current(torch.device("cpu"), torch.float32)["initial"].dtype == torch.float32


def test_per_step_attributes_are_plain_and_parameters_still_register(burgers_spec):
    module = PINNModule(burgers(burgers_spec, reference=False), small_net())
    module._current_fx_name, module._logged_at = "training_step", 7  # set by Lightning and the step
    assert (module._current_fx_name, module._logged_at) == ("training_step", 7)
    count = len(list(module.parameters()))
    module.extra = torch.nn.Parameter(torch.zeros(2))
    assert len(list(module.parameters())) == count + 1


def test_burgers_residual_matches_hand_written_autograd(burgers_spec):
    module = PINNModule(burgers(burgers_spec, reference=False), small_net())
    x = module.draw_points()["interior"].clone().requires_grad_(True)
    u = module(x)[:, 0]
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g[:, 0].sum(), x, create_graph=True)
    nu = burgers_spec["params"]["nu"]
    expected = g[:, 1] + u * g[:, 0] - nu * gg[:, 0]
    got = module.residuals({"interior": x.detach()})["burgers"]
    assert torch.allclose(got, expected, atol=1e-6)


def test_lbfgs_switch_logs_once_per_optimizer_step(tmp_path, burgers_spec):
    module = PINNModule(burgers(burgers_spec, reference=False), small_net(),
                        phases=phases(steps=4, then="lbfgs", max_iter=5, line_search_fn="strong_wolfe"))
    calls = []
    original = module.training_loss  # one call per loss evaluation
    module.training_loss = lambda: calls.append(module.global_step) or original()
    logger = RecordingLogger()
    trainer = small_trainer(tmp_path, max_steps=8, logger=logger, log_every_n_steps=1)
    trainer.fit(module)
    assert module.phase == "lbfgs"
    assert isinstance(trainer.optimizers[0], torch.optim.LBFGS)
    steps = [s for s, _ in logger.series("train/loss")]
    assert steps == list(range(8))
    assert len(calls) > 8 + 4  # the closure ran several times per L-BFGS step
    assert all(calls.count(s) == 1 for s in range(4)) and any(calls.count(s) > 1 for s in range(4, 8))


def test_step_metrics_are_logged_only_on_the_steps_the_loggers_write_and_the_first_and_last(tmp_path, burgers_spec):
    module = PINNModule(burgers(burgers_spec, reference=False), small_net())
    logged_at = []
    original = module.log
    module.log = lambda name, *a, **k: (name == "train/loss" and logged_at.append(module.global_step)) or original(
        name, *a, **k)
    logger = RecordingLogger()
    trainer = small_trainer(tmp_path, max_steps=12, logger=logger, log_every_n_steps=5)
    trainer.fit(module)
    assert logged_at == [0, 4, 9, 11]  # Lightning writes steps 4 and 9; 0 and 11 fill callback_metrics
    assert [s for s, _ in logger.series("train/loss")] == [4, 9, 11]  # the module writes the last step's row
    assert [s for s, _ in logger.series("train/burgers")] == [4, 9, 11]
    assert math.isfinite(trainer.callback_metrics["train/loss"])


def test_the_default_optimizer_is_torchs_fused_adam(burgers_spec):
    optimizer = PINNModule(burgers(burgers_spec, reference=False), small_net()).configure_optimizers()
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.defaults["fused"] is True and optimizer.defaults["lr"] == 1e-3


def test_float64_precision_runs_in_float64(tmp_path, burgers_spec):
    module = PINNModule(burgers(burgers_spec), small_net(),
                        phases=phases(steps=2, then="lbfgs", max_iter=3, line_search_fn="strong_wolfe"),
                        validation_grid=16)
    seen = []
    original = module.loss_terms
    module.loss_terms = lambda points: seen.append({k: v.dtype for k, v in points.items()}) or original(points)
    trainer = small_trainer(tmp_path, max_steps=4, precision="64-true", val_check_interval=4)
    trainer.fit(module)
    assert next(module.net.parameters()).dtype == torch.float64
    assert all(dtype == torch.float64 for row in seen for dtype in row.values())
    assert math.isfinite(trainer.callback_metrics["val/rel_l2_u"])


def test_validation_metric_is_relative_l2_on_the_grid_even_under_inference_mode(tmp_path, burgers_spec):
    problem = burgers(burgers_spec)
    module = PINNModule(problem, small_net(), validation_grid={"x": 33, "t": 11}, validation_batch_size=100)
    value = small_trainer(tmp_path, inference_mode=True).validate(module, verbose=False)[0]["val/rel_l2_u"]
    x, t = np.meshgrid(np.linspace(-1, 1, 33), np.linspace(0, 1, 11), indexing="ij")
    points = np.stack([x.ravel(), t.ravel()], 1)
    with torch.no_grad():
        pred = module(torch.tensor(points, dtype=torch.float32)).double().numpy()[:, 0]
    ref = BurgersColeHopf(burgers_spec["params"]["nu"])(x.ravel(), t.ravel())
    assert value == pytest.approx(np.linalg.norm(pred - ref) / np.linalg.norm(ref), rel=1e-5)


def test_resampling_draws_new_points_every_n_steps(tmp_path, burgers_spec):
    module = PINNModule(burgers(burgers_spec, reference=False), small_net(), resample_every=3)
    drawn = []
    original = module.training_step
    module.training_step = lambda *a, **k: drawn.append(module.training_points()["interior"]) or original(*a, **k)
    small_trainer(tmp_path, max_steps=7).fit(module)
    same_as_previous = [torch.equal(drawn[i], drawn[i - 1]) for i in range(1, 7)]
    assert same_as_previous == [True, True, False, True, True, False]
    assert drawn[0].dtype == module.dtype and drawn[0].device == module.device


def test_resume_continues_the_unbroken_loss_curve(tmp_path, burgers_spec):
    def run(max_steps, ckpt_path=None, callbacks=()):
        torch.manual_seed(0)
        module = PINNModule(burgers(burgers_spec, reference=False), small_net(), resample_every=2, sampler="lhs")
        logger = RecordingLogger()
        trainer = small_trainer(tmp_path, max_steps=max_steps, logger=logger, log_every_n_steps=1,
                                callbacks=list(callbacks), enable_checkpointing=bool(callbacks))
        trainer.fit(module, ckpt_path=ckpt_path)
        return [v for _, v in logger.series("train/loss")], module

    unbroken, _ = run(9)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=5)
    first, _ = run(5, callbacks=[checkpoint])
    resumed, module = run(9, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert module.global_step == 9
    assert np.allclose(first + resumed, unbroken, rtol=1e-6, atol=0)


def test_load_from_checkpoint_restores_forward_and_learnable_parameters(tmp_path, burgers_spec):
    burgers_spec["learnable"] = {"lam": 0.5}
    burgers_spec["equations"] = {"burgers": "u_t + lam*u*u_x - nu*u_xx"}
    module = PINNModule(burgers(burgers_spec), small_net(), validation_grid=8)
    trainer = small_trainer(tmp_path, max_steps=5, enable_checkpointing=True,
                            callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="final", every_n_train_steps=5)])
    trainer.fit(module)
    assert isinstance(module.pde_params["lam"], torch.nn.Parameter)
    assert module.pde_params["lam"].item() != 0.5  # it was optimized
    loaded = PINNModule.load_from_checkpoint(tmp_path / "final.ckpt")
    points = torch.rand(17, 2)
    assert torch.equal(loaded(points), module(points))
    assert loaded.pde_params["lam"].item() == module.pde_params["lam"].item()
    assert loaded.problem.terms.keys() == module.problem.terms.keys()


def test_non_finite_loss_names_the_term_and_step_and_keeps_last_good_checkpoint(tmp_path, burgers_spec):
    class Poisoned(PINNModule):
        def residuals(self, points):
            out = super().residuals(points)
            if self.global_step >= 3:
                out["boundary"] = out["boundary"] * float("nan")
            return out

    module = Poisoned(burgers(burgers_spec, reference=False), small_net())
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=1)
    trainer = small_trainer(tmp_path, max_steps=10, enable_checkpointing=True, callbacks=[checkpoint])
    with pytest.raises(NonFiniteLossError, match=r"boundary=nan at step 3"):
        trainer.fit(module)
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())


def test_net_with_wrong_output_size_fails_at_construction(burgers_spec):
    with pytest.raises(ValueError, match=r"maps \(N, 2\) points to \(2, 3\).*1 field"):
        PINNModule(burgers(burgers_spec), MLP(2, 3, width=4, depth=1))
    with pytest.raises(ValueError, match=r"coordinates \['x', 't'\] failed"):
        PINNModule(burgers(burgers_spec), MLP(3, 1, width=4, depth=1))


def test_net_config_gets_sizes_and_bounds_from_the_problem(burgers_spec):
    module = PINNModule(burgers(burgers_spec), {"_target_": "lightning_pinn.MLP", "width": 7, "depth": 2})
    assert module.net.layers[0].in_features == 2 and module.net.layers[-1].out_features == 1
    assert module.net.layers[0].out_features == 7
    assert torch.allclose(module.net.scaling(torch.tensor([[1.0, 1.0]])), torch.tensor([[1.0, 1.0]]))
    assert torch.allclose(module.net.scaling(torch.tensor([[-1.0, 0.0]])), torch.tensor([[-1.0, -1.0]]))


def test_bad_module_arguments_are_named(burgers_spec):
    problem = burgers(burgers_spec)
    with pytest.raises(ValueError, match="resample_every"):
        PINNModule(problem, small_net(), resample_every=-1)
    with pytest.raises(ValueError, match="validation_grid"):
        PINNModule(problem, small_net(), validation_grid={"x": 10})
    with pytest.raises(ValueError, match=r"^sampler: expected one of \['uniform', 'lhs', 'sobol', 'halton', 'grid'\]"):
        PINNModule(problem, small_net(), sampler="random")
    with pytest.raises(ValueError, match="^phases.adam.optimizer: expected a callable or a config with _target_"):
        PINNModule(problem, small_net(), phases={"adam": {"optimizer": {"lr": 1e-3}}})


def test_redrawing_points_restarts_lbfgs_history(tmp_path, burgers_spec):
    def lbfgs_iterations(resample_every):
        module = PINNModule(burgers(burgers_spec, reference=False), small_net(), resample_every=resample_every, phases={"lbfgs": {"optimizer": {"_target_": "torch.optim.LBFGS", "max_iter": 4, "max_eval": 100, "tolerance_grad": 0,
                                   "tolerance_change": 0, "line_search_fn": "strong_wolfe"}}})
        trainer = small_trainer(tmp_path, max_steps=5)
        trainer.fit(module)
        optimizer = trainer.optimizers[0]
        return optimizer.state[optimizer.param_groups[0]["params"][0]]["n_iter"]

    assert lbfgs_iterations(0) == 5 * 4  # one history across all steps
    assert lbfgs_iterations(2) == 1 * 4  # reset by the redraw at step 4


def test_residual_derivatives_under_bf16_autocast_match_float32(burgers_spec):
    module = PINNModule(burgers(burgers_spec, reference=False), small_net())
    points = module.draw_points()
    plain = module.residuals(points)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = module.residuals(points)
    for name in plain:
        assert mixed[name].dtype == torch.float32
        assert torch.allclose(mixed[name], plain[name], rtol=1e-6, atol=1e-7)
    # and the net itself does run in bfloat16 under autocast outside the residuals
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module(points["interior"]).dtype == torch.bfloat16


def test_bf16_mixed_training_runs(tmp_path, burgers_spec):
    module = PINNModule(burgers(burgers_spec), small_net(), validation_grid=16)
    trainer = small_trainer(tmp_path, max_steps=4, precision="bf16-mixed", val_check_interval=4)
    trainer.fit(module)
    assert math.isfinite(trainer.callback_metrics["val/rel_l2_u"])


class FailedLineSearchAtStep3(Callback):
    """Leaves what torch's LBFGS leaves behind when strong Wolfe finds no step (``t = 0``), at step 3."""

    failed = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 3:
            self.failed = optimizer = trainer.optimizers[0]
            optimizer.state[optimizer.param_groups[0]["params"][0]]["t"] = 0


def test_lbfgs_restarts_after_a_line_search_that_found_no_step(tmp_path, burgers_spec):
    module = PINNModule(burgers(burgers_spec, reference=False), small_net(), phases={"lbfgs": {"optimizer": {"_target_": "torch.optim.LBFGS", "max_iter": 4, "max_eval": 100, "tolerance_grad": 0,
                               "tolerance_change": 0, "line_search_fn": "strong_wolfe"}}})
    logger = RecordingLogger()
    trainer = small_trainer(tmp_path, max_steps=5, logger=logger, log_every_n_steps=1,
                            callbacks=[FailedLineSearchAtStep3()])
    trainer.fit(module)
    optimizer = trainer.optimizers[0]
    assert module.lbfgs_restarts == 1
    assert optimizer.state[optimizer.param_groups[0]["params"][0]]["n_iter"] == 2 * 4  # steps 4 and 5 only
    assert [v for _, v in logger.series("train/lbfgs_restarts")] == [1.0, 1.0]  # logged from step 4 on


def test_lbfgs_holds_the_causal_weights_of_a_steps_first_evaluation(tmp_path):
    problem = Problem(coords={"x": [0, 1], "t": [0, 2]}, fields=["u"], equations={"heat": "u_t - u_xx"},
                      conditions={"initial": {"region": "t=0", "residual": "u - sin(pi*x)", "points": 16}},
                      collocation_points=64)
    seen = []

    class Recording(PINNModule):
        def loss_terms(self, points, causal_weights=None):
            terms = super().loss_terms(points, causal_weights)
            seen.append((self.phase, self.global_step, causal_weights, self.weighted_loss.causal_weights["heat"].clone()))
            return terms

    torch.manual_seed(0)
    module = Recording(problem, MLP(2, 1, width=8, depth=2), causal={"chunks": 4, "epsilon": 2.0}, phases={"adam": {"optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-3}, "steps": 2}, "lbfgs": {"optimizer": {"_target_": "torch.optim.LBFGS", "max_iter": 3, "line_search_fn": "strong_wolfe"}}})
    small_trainer(tmp_path, max_steps=4).fit(module)
    adam = [s for s in seen if s[0] == "adam"]
    assert len(adam) == 2 and all(given is None for _, _, given, _ in adam)  # computed at every evaluation
    for step in (2, 3):
        evaluations = [s for s in seen if s[0] == "lbfgs" and s[1] == step]
        assert len(evaluations) > 1 and evaluations[0][2] is None  # the first evaluation computes them
        held = evaluations[0][3]
        for _, _, given, used in evaluations[1:]:
            torch.testing.assert_close(given["heat"], held, rtol=0, atol=0)
            torch.testing.assert_close(used, held, rtol=0, atol=0)
    first_of = {step: next(s[3] for s in seen if s[1] == step and s[2] is None) for step in (2, 3)}
    assert not torch.equal(first_of[2], first_of[3])  # and each step computes its own


class DtypeRecording(PINNModule):
    """Records ``(phase, step, points' dtype, weights' dtype)`` at each loss evaluation in ``self.dtypes``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dtypes = []

    def loss_terms(self, points, causal_weights=None):
        self.dtypes.append((self.phase, self.global_step, next(iter(points.values())).dtype,
                            next(self.net.parameters()).dtype))
        return super().loss_terms(points, causal_weights)


def test_a_float64_phase_runs_in_float64_after_float32_adam_and_resumes_so(tmp_path, burgers_spec):
    def module():
        lbfgs = {"_target_": "torch.optim.LBFGS", "max_iter": 3, "line_search_fn": "strong_wolfe"}
        return DtypeRecording(burgers(burgers_spec, reference=False), small_net(),
                              phases={"adam": {"optimizer": {"_target_": "torch.optim.Adam"}, "steps": 2},
                                      "lbfgs": {"optimizer": lbfgs, "float64": True}})

    first = module()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1)
    small_trainer(tmp_path, max_steps=4, enable_checkpointing=True, callbacks=[checkpoint]).fit(first)
    assert {(phase, d, p) for phase, _, d, p in first.dtypes} == {("adam", torch.float32, torch.float32),
                                                                  ("lbfgs", torch.float64, torch.float64)}
    assert all(p.dtype == torch.float64 for p in first.parameters())

    resumed = module()
    small_trainer(tmp_path, max_steps=6).fit(resumed, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert resumed.phase == "lbfgs"
    assert {(phase, d, p) for phase, _, d, p in resumed.dtypes} == {("lbfgs", torch.float64, torch.float64)}


def test_phases_the_trainer_cannot_run_are_refused(tmp_path):
    problem = Problem(coords={"x": [0, 1]}, fields=["u"], equations={"ode": "u_x - 1"}, collocation_points=8)
    lbfgs = {"_target_": "torch.optim.LBFGS"}
    cases = [
        ({"lbfgs": {"optimizer": lbfgs}}, {"precision": "bf16-mixed"},
         "phases.lbfgs: a line-search optimizer needs an exact loss, and trainer.precision=bf16-mixed rounds it to "
         "16 bits; use trainer.precision=64-true (best) or 32-true"),
        ({"adam": {"optimizer": {"_target_": "torch.optim.Adam"}, "float64": True}}, {"precision": "bf16-mixed"},
         "phases.adam.float64: needs trainer.precision=32-true or 64-true, but it is 'bf16-mixed'"),
        ({"adam": {"optimizer": {"_target_": "torch.optim.Adam"}}}, {"max_steps": -1},
         "phases.adam: the last phase runs until training ends, but the trainer has neither max_steps nor max_time; "
         "set trainer.max_steps or trainer.max_time"),
    ]
    for spec, trainer_options, message in cases:
        module = PINNModule(problem, MLP(1, 1, width=4, depth=1), phases=spec)
        with pytest.raises(ValueError) as err:
            small_trainer(tmp_path, **trainer_options).fit(module)
        assert str(err.value) == message
    with pytest.raises(ValueError, match=r"^phases.first.steps: only the last phase may run until the end"):
        PINNModule(problem, MLP(1, 1, width=4, depth=1), phases={"first": {"optimizer": lbfgs}, "second": {
            "optimizer": lbfgs}})
    with pytest.raises(ValueError, match=r"^phases.adam.float64: expected true or false but got 'yes'$"):
        PINNModule(problem, MLP(1, 1, width=4, depth=1), phases={"adam": {"optimizer": lbfgs, "float64": "yes"}})


def test_the_last_phases_steps_end_training(tmp_path):
    problem = Problem(coords={"x": [0, 1]}, fields=["u"], equations={"ode": "u_x - 1"}, collocation_points=8)
    module = PINNModule(problem, MLP(1, 1, width=4, depth=1), phases=phases(steps=3, then="lbfgs", max_iter=2)
                        | {"lbfgs": {"optimizer": {"_target_": "torch.optim.LBFGS", "max_iter": 2}, "steps": 2}})
    trainer = small_trainer(tmp_path, max_steps=50)
    trainer.fit(module)
    assert trainer.global_step == 5 and module.phase == "lbfgs"


def test_a_non_finite_loss_at_a_line_search_trial_point_is_stepped_back_from(tmp_path, burgers_spec):
    class PoisonedTrials(PINNModule):  # NaN at the 2nd, 4th, ... evaluation of each L-BFGS step (trial points)
        evaluations = {}

        def residuals(self, points):
            out = super().residuals(points)
            k = self.evaluations[self.global_step] = self.evaluations.get(self.global_step, -1) + 1
            if self.phase == "lbfgs" and k % 2 == 1:
                out["burgers"] = out["burgers"] * float("nan")
            return out

    module = PoisonedTrials(burgers(burgers_spec, reference=False), small_net(), phases={"lbfgs": {"optimizer": {"_target_": "torch.optim.LBFGS", "max_iter": 6, "line_search_fn": "strong_wolfe"}}})
    logger = RecordingLogger()
    small_trainer(tmp_path, max_steps=4, logger=logger, log_every_n_steps=1).fit(module)
    losses = [v for _, v in logger.series("train/loss")]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert all(n > 2 for n in module.evaluations.values())  # the line searches went on past the NaNs


def test_a_non_finite_loss_at_an_lbfgs_steps_own_point_still_stops(tmp_path, burgers_spec):
    class Poisoned(PINNModule):
        def residuals(self, points):
            out = super().residuals(points)
            if self.global_step >= 2:
                out["burgers"] = out["burgers"] * float("nan")
            return out

    module = Poisoned(burgers(burgers_spec, reference=False), small_net(), phases={"first": {"optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-3}, "steps": 1}, "lbfgs": {"optimizer": {"_target_": "torch.optim.LBFGS", "max_iter": 3, "line_search_fn": "strong_wolfe"}}})
    with pytest.raises(NonFiniteLossError, match=r"burgers=nan.* at step 2 \(lbfgs\)"):
        small_trainer(tmp_path, max_steps=4).fit(module)


def test_a_plain_trainer_validates_at_the_end_and_logs_the_error(tmp_path, burgers_spec, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a plain Trainer writes lightning_logs/ and checkpoints/ under the working directory
    module = PINNModule(burgers(burgers_spec), small_net(), validation_grid=16)
    trainer = pl.Trainer(max_steps=7, accelerator="cpu", enable_progress_bar=False)
    trainer.fit(module)
    assert trainer.global_step == 7
    assert 0 < trainer.callback_metrics["val/rel_l2_u"].item() < 2  # validated once, at the end of the 7 steps
    assert list(tmp_path.glob("lightning_logs/version_0/*")), "the default logger wrote nothing"
    resumed = pl.Trainer(max_steps=10, accelerator="cpu", enable_progress_bar=False)
    resumed.fit(PINNModule(burgers(burgers_spec), small_net(), validation_grid=16),
                ckpt_path=next(tmp_path.glob("lightning_logs/version_0/checkpoints/*.ckpt")))
    assert resumed.global_step == 10  # the steps left, not another max_steps
