"""The accuracy and ablation scripts' configurations: run directories Hydra accepts, and ablations whose
variants differ from their baseline by exactly the technique they name (nothing is trained here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from lightning_pinn.cli import config_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from ablations import ABLATIONS  # noqa: E402
from accuracy import run_directory  # noqa: E402


def compose_run(problem: str, overrides: list[str]):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("train", overrides=[f"experiment={problem}", *overrides])


@pytest.mark.parametrize("overrides", [
    [],
    ["optimizer.phases.adam.steps=1000", "trainer.max_steps=5000"],
    ['+problem.output_transform={u: "sin(x) + t*u"}', "net.fourier_scale=2.0", "seed=1"],
    ["model.causal={chunks: 16, epsilon: [1.0, 10.0]}"],
])
def test_run_directory_is_a_valid_hydra_value(overrides):
    name = run_directory("advection", overrides)
    parsed = OverridesParser.create().parse_overrides([f"hydra.run.dir=outputs/{name}"])
    assert parsed[0].value() == f"outputs/{name}"
    assert "/" not in name and name.startswith("advection")


def test_run_directories_differ_when_overrides_differ():
    # the readable part is truncated, the hash is not
    long = ["a.b=" + "x" * 100]
    assert run_directory("heat", long + ["seed=0"]) != run_directory("heat", long + ["seed=1"])
    assert run_directory("heat", []) == "heat"


def switched(cfg) -> dict:
    """The settings the ablations switch: network options, balancing, causal weighting, callbacks."""
    return {"net": OmegaConf.to_container(cfg.net), "balancing": cfg.model.get("balancing"),
            "causal": OmegaConf.to_container(cfg.model.causal) if cfg.model.get("causal") else None,
            "callbacks": sorted((cfg.get("callbacks") or {}).keys())}


@pytest.mark.parametrize("ablation", ABLATIONS, ids=lambda a: a.name)
def test_each_variant_switches_on_its_technique_only(ablation):
    configurations = ablation.configurations()
    base = compose_run(ablation.problem, configurations["baseline"])
    expected = {
        "fourier_features": lambda s: s["net"]["fourier_features"] > 0,
        "modified_mlp": lambda s: s["net"]["architecture"] == "modified",
        "weight_factorization": lambda s: s["net"]["weight_factorization"] is not None,
        "gradnorm": lambda s: s["balancing"] == "gradnorm",
        "relobralo": lambda s: s["balancing"] == "relobralo",
        "causal": lambda s: s["causal"] is not None,
        "rad": lambda s: "rad" in s["callbacks"],
        "rar": lambda s: "rar" in s["callbacks"],
    }
    before = switched(base)
    for label, overrides in configurations.items():
        if label == "baseline":
            continue
        cfg = compose_run(ablation.problem, overrides)
        after = switched(cfg)
        assert expected[label](after) and not expected[label](before), label
        assert cfg.trainer == base.trainer and cfg.optimizer == base.optimizer and cfg.seed == base.seed
        assert OmegaConf.to_container(cfg.problem) == OmegaConf.to_container(base.problem)
        changed = {k for k in after if after[k] != before[k]}
        assert len(changed) == 1, (label, changed)


def test_hand_written_burgers_jets_equal_nested_autograd():
    """The step-time benchmark's hand-written jet loop computes Burgers' loss exactly (float64)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "baselines"))
    from hand_jets import BurgersJets

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
                              torch.nn.Linear(8, 1)).double()
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    jets = BurgersJets([m.weight for m in linears], [m.bias.unsqueeze(1) for m in linears], nu=0.05)
    x = (torch.rand(50, 2, dtype=torch.float64) * 2 - 1).requires_grad_()
    u = net(x)
    grad = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
    u_xx = torch.autograd.grad(grad[:, 0].sum(), x, create_graph=True)[0][:, 0]
    expected = (grad[:, 1] + u[:, 0] * grad[:, 0] - 0.05 * u_xx).square().mean()
    torch.testing.assert_close(jets.loss(x.detach().T.contiguous()), expected, rtol=1e-12, atol=0)
