"""Choosing the derivative engine, the same losses from both engines, and the compiled loss."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from conftest import small_trainer
from torch import nn

from lightning_pinn import MLP, PINNModule, Problem
from lightning_pinn.derivatives.engines import AutogradEngine, JetEngine, choose_engine
from lightning_pinn.residuals import residuals


def test_auto_picks_jets_for_an_mlp_and_autograd_for_other_networks_with_the_reason():
    engine, reason = choose_engine("auto", MLP(2, 1, width=4, depth=1), 2)
    assert isinstance(engine, JetEngine) and "jet rule" in reason
    engine, reason = choose_engine("auto", nn.Sequential(nn.Linear(2, 4), nn.LayerNorm(4), nn.Linear(4, 1)), 2)
    assert isinstance(engine, AutogradEngine)
    assert reason == "derivatives=auto falls back to autograd: net.1 is a LayerNorm, which has no jet rule"


def test_jets_on_an_unsupported_network_and_unknown_choices_are_refused():
    with pytest.raises(ValueError, match="derivatives=jets cannot run this network: net.1 is a BatchNorm1d"):
        choose_engine("jets", nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)), 2)
    with pytest.raises(ValueError, match=r"derivatives: expected one of \['auto', 'autograd', 'jets'\] but got 'fast'"):
        PINNModule(Problem({"x": [0, 1]}, ["u"], {"ode": "u_x - u"}), MLP(1, 1, width=4, depth=1), derivatives="fast")


def test_auto_takes_jets_where_they_are_faster_compiled_or_third_order_and_autograd_otherwise(burgers_spec):
    eager = PINNModule(Problem(**burgers_spec), MLP(2, 1, width=8, depth=2))
    assert isinstance(eager.derivative_engine, AutogradEngine)  # order 2, eager
    compiled = PINNModule(Problem(**burgers_spec), MLP(2, 1, width=8, depth=2), compile=True)
    assert isinstance(compiled.derivative_engine, JetEngine)
    kdv = {**burgers_spec, "equations": {"kdv": "u_t + u*u_x + 0.0025*u_xxx"}}
    assert isinstance(PINNModule(Problem(**kdv), MLP(2, 1, width=8, depth=2)).derivative_engine, JetEngine)


def test_module_says_once_which_engine_runs_and_an_overridden_forward_falls_back(burgers_spec, caplog):
    class HardInitial(PINNModule):
        def forward(self, coords):
            return coords[:, 1:] * self.net(coords) - torch.sin(torch.pi * coords[:, :1])

    with caplog.at_level(logging.INFO):
        plain = PINNModule(Problem(**burgers_spec), MLP(2, 1, width=8, depth=2), compile=True)
        hard = HardInitial(Problem(**burgers_spec), MLP(2, 1, width=8, depth=2), compile=True)
    assert isinstance(plain.derivative_engine, JetEngine)
    assert isinstance(hard.derivative_engine, AutogradEngine)
    assert "falls back to autograd: HardInitial.forward is overridden" in caplog.text
    assert "derivatives=auto chose jets: every module of MLP has a jet rule" in caplog.text
    with pytest.raises(ValueError, match="HardInitial.forward is overridden"):
        HardInitial(Problem(**burgers_spec), MLP(2, 1, width=8, depth=2), derivatives="jets")


def test_both_engines_give_the_same_loss_terms_and_parameter_gradients(burgers_spec):
    torch.manual_seed(0)
    module = PINNModule(Problem(**burgers_spec), MLP(2, 1, width=16, depth=3, bounds=[[-1, 1], [0, 1]])).double()
    points = module.draw_points()
    results = {}
    for engine in (AutogradEngine(), JetEngine(module.net)):
        module.zero_grad()
        terms = {k: r.square().mean() for k, r in residuals(module.problem, module.net, points, engine=engine).items()}
        sum(terms.values()).backward()
        results[engine.name] = (terms, [p.grad.clone() for p in module.net.parameters()])
    (terms_a, grads_a), (terms_j, grads_j) = results["autograd"], results["jets"]
    for name in terms_a:
        torch.testing.assert_close(terms_j[name], terms_a[name], rtol=1e-10, atol=0)
    for a, j in zip(grads_a, grads_j):
        torch.testing.assert_close(j, a, rtol=1e-9, atol=1e-12)


def test_a_python_residual_declares_its_derivatives_on_first_use():
    def heat(ev):  # a callable: the engine cannot know up front that it reads u_xx
        return ev["u_t"] - 0.1 * ev.d("u", "x", "x")

    problem = Problem({"x": [0, 1], "t": [0, 1]}, ["u"], {"heat": heat}, collocation_points=32)
    net = MLP(2, 1, width=8, depth=2).double()
    points = {"interior": torch.rand(32, 2, dtype=torch.float64)}
    engine = JetEngine(net)
    first = residuals(problem, net, points, engine=engine)["heat"]
    assert engine.required["interior"] == {("u", ("t",)), ("u", ("x", "x"))}
    expected = residuals(problem, net, points, engine=AutogradEngine())["heat"]
    torch.testing.assert_close(first, expected, rtol=1e-10, atol=0)
    torch.testing.assert_close(residuals(problem, net, points, engine=engine)["heat"], expected, rtol=1e-10, atol=0)


def test_compiled_loss_matches_eager_and_resampling_does_not_recompile(burgers_spec, tmp_path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    module = PINNModule(Problem(**burgers_spec), MLP(2, 1, width=8, depth=2), compile=True, resample_every=1)
    small_trainer(tmp_path, max_steps=4).fit(module)  # compiles in the first step; new points at every step
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    assert not counters["recompiles"], dict(counters["recompiles"])
    points = module.draw_points()
    compiled, eager = module.compiled_loss_terms(points), module.loss_terms(points)
    for name in eager:
        torch.testing.assert_close(compiled[name], eager[name], rtol=1e-5, atol=1e-7)
    assert counters["stats"]["unique_graphs"] == 1


def test_compile_with_autograd_says_why_it_runs_eagerly(burgers_spec, caplog):
    with caplog.at_level(logging.INFO):
        module = PINNModule(Problem(**burgers_spec), MLP(2, 1, width=8, depth=2), derivatives="autograd",
                            compile=True)
    assert "compile=true needs derivatives by jets" in caplog.text
    assert not module.compiled.enabled  # eager



def test_gradnorm_under_compile_gets_the_eager_per_term_gradients():
    """GradNorm differentiates each term of one compiled graph in turn (retain_graph). With inductor's
    C++ wrapper, the second term's gradient came back as zeros on this experiment (torch 2.13: small
    graphs were fine), so the weights stayed at 1; gradnorm is now compiled without the C++ wrapper."""
    from hydra import compose, initialize_config_dir

    from lightning_pinn.cli import config_dir
    from lightning_pinn.config import instantiate
    from lightning_pinn.residuals import prepare_engine

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=poisson_holes", "model.balancing={name: gradnorm, alpha: 0.0}"])

    def first_weights(compile_):
        torch.manual_seed(0)
        module = instantiate(cfg.model, _recursive_=False, compile=compile_)
        points = module.draw_points()
        prepare_engine(module.derivative_engine, module.problem, points)
        module.total_loss(module.compiled_loss_terms(points))
        return {k: v.item() for k, v in module.weighted_loss.balance.items()}

    eager, compiled = first_weights(False), first_weights(True)
    assert eager["walls"] > 10 and eager["poisson"] > 1  # (norm_poisson + norm_walls) / norm_i
    assert compiled == pytest.approx(eager, rel=1e-3)


def test_gradnorm_under_compile_survives_a_recompile():
    """A recompiled loss (here: a new point count, as RAR makes) whose first backward was a plain one
    got aot_autograd's donated buffers, and gradnorm's later ``retain_graph`` backward on it then failed
    ("This backward function was compiled with non-empty donated buffers ..."); they are off for such
    balancers."""
    from hydra import compose, initialize_config_dir

    from lightning_pinn.cli import config_dir
    from lightning_pinn.config import instantiate
    from lightning_pinn.residuals import prepare_engine

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=poisson_holes",
                                          "model.balancing={name: gradnorm, alpha: 0.0, every: 100}"])
    torch.manual_seed(0)
    module = instantiate(cfg.model, _recursive_=False, compile=True)
    params = [p for p in module.parameters() if p.requires_grad]
    for step, count in ((0, 512), (1, 640), (100, 640)):  # update, recompile without update, update
        points = dict(module.draw_points())
        points["interior"] = points["interior"][:count]
        prepare_engine(module.derivative_engine, module.problem, points)
        terms = module.compiled_loss_terms(points)
        weights = module.balancer.weights(terms, params=params, step=step)
        sum(weights[k] * v for k, v in terms.items()).backward()
        assert all(math.isfinite(w.item()) and w.item() > 1 for w in weights.values()), weights


def test_a_causal_loss_compiles_once():
    """The causal weights dict held no keys before the first evaluation, so the compiled loss was
    compiled again at the second (dynamo guarded on the dict being empty)."""
    from lightning_pinn.residuals import prepare_engine

    problem = Problem(coords={"x": [0, 1], "t": [0, 1]}, fields=["u"], equations={"heat": "u_t - u_xx"},
                      conditions={"initial": {"region": "t=0", "residual": "u - sin(pi*x)", "points": 16}},
                      collocation_points=64)
    torch.manual_seed(0)
    module = PINNModule(problem, MLP(2, 1, width=8, depth=2), derivatives="jets", compile=True,
                        causal={"chunks": 4, "epsilon": 1.0})
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(3):
            points = module.draw_points()
            prepare_engine(module.derivative_engine, module.problem, points)  # as training_step does
            module.compiled_loss_terms(points)["heat"].backward()
