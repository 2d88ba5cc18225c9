"""Trust: no checkpoint and no problem file loaded as data can make the library import or call a foreign target.

Each attack writes a marker file if it gets to run; every test asserts the marker is absent and the
exact refusal (which names the key and the target, and how to trust it).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import yaml

from lightning_pinn import MLP, PINNModule, Problem, trust
from lightning_pinn.errors import ConfigError
from tests.conftest import small_trainer


class _TouchOnLoad:
    """A pickle payload that creates a file when unpickled (what ``numpy.load(allow_pickle=True)`` runs)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def attacks(tmp_path: Path) -> dict[str, dict]:
    """Targets that write ``marker`` when called, by what they are called through."""
    marker = str(tmp_path / "marker")
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_TouchOnLoad(Path(marker))))
    return {
        "numpy.load": {"_target_": "numpy.load", "file": str(evil), "allow_pickle": True},
        "builtins.open": {"_target_": "builtins.open", "file": marker, "mode": "w"},
        "os.system": {"_target_": "os.system", "command": f"touch {marker}"},
        "pathlib.Path.touch": {"_target_": "pathlib.Path.touch",
                               "_args_": [{"_target_": "pathlib.Path", "_args_": [marker]}]},
        "numpy.savetxt": {"_target_": "numpy.savetxt", "fname": marker, "X": [1.0]},
        "lightning_pinn.cli.train": {"_target_": "lightning_pinn.cli.train", "cfg": {}},
    }


def refusal(key: str, target: str) -> str:
    return (f"{key}._target_: {target!r} is not an allowed target (the library builds only its own problem, "
            f"geometry, reference, net, loss and sampling classes and torch optimizers from configs and checkpoints); "
            f"if you trust it, add it to trusted_targets in the config or call lightning_pinn.trust({target!r})")


@pytest.fixture
def checkpoint(tmp_path, burgers_spec):
    module = PINNModule({"_target_": "lightning_pinn.Problem", **burgers_spec},
                        {"_target_": "lightning_pinn.MLP", "width": 8, "depth": 2})
    trainer = small_trainer(tmp_path, max_steps=1)
    trainer.fit(module)
    path = tmp_path / "good.ckpt"
    trainer.save_checkpoint(path)
    return path


def edited(path: Path, where: tuple[str, ...], value) -> Path:
    """A copy of a checkpoint with ``hyper_parameters[where...]`` replaced by ``value`` (plain data only)."""
    data = torch.load(path, weights_only=True)
    node = data["hyper_parameters"]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    out = path.with_name("edited.ckpt")
    torch.save(data, out)
    torch.load(out, weights_only=True)  # still plain data: loads under weights_only
    return out


ATTACKS = ["numpy.load", "builtins.open", "os.system", "pathlib.Path.touch", "numpy.savetxt", "lightning_pinn.cli.train"]


@pytest.mark.parametrize("target", ATTACKS)
def test_a_checkpoint_cannot_call_a_foreign_target_in_its_problem(tmp_path, checkpoint, target):
    bad = edited(checkpoint, ("problem", "reference"), attacks(tmp_path)[target])
    with pytest.raises(ConfigError) as err:
        PINNModule.load_from_checkpoint(bad)
    assert str(err.value) == refusal(f"{bad}: hyper_parameters.problem.reference", target)
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("where", [("net",), ("optimizer",), ("lbfgs",), ("scheduler",), ("balancing",),
                                   ("causal",), ("problem", "geometry"), ("problem", "equations", "burgers")])
def test_a_checkpoint_cannot_call_a_foreign_target_anywhere(tmp_path, checkpoint, where):
    bad = edited(checkpoint, where, attacks(tmp_path)["os.system"])
    with pytest.raises(ConfigError) as err:
        PINNModule.load_from_checkpoint(bad)
    assert str(err.value) == refusal(f"{bad}: hyper_parameters." + ".".join(where), "os.system")
    assert not (tmp_path / "marker").exists()


def test_a_checkpoint_cannot_widen_the_allow_list_itself(tmp_path, checkpoint):
    bad = edited(edited(checkpoint, ("trusted_targets",), ["os.system"]), ("net",), attacks(tmp_path)["os.system"])
    with pytest.raises(ConfigError, match=r"is not an allowed target"):
        PINNModule.load_from_checkpoint(bad)


def test_a_refused_target_is_never_imported(tmp_path, checkpoint, monkeypatch):
    import sys

    bad = edited(checkpoint, ("problem", "reference"), {"_target_": "lp_probe_module_that_must_not_load.f"})
    probe = tmp_path / "lp_probe_module_that_must_not_load.py"
    probe.write_text(f"open({str(tmp_path / 'marker')!r}, 'w').close()\ndef f(): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError):
        PINNModule.load_from_checkpoint(bad)
    assert "lp_probe_module_that_must_not_load" not in sys.modules
    assert not (tmp_path / "marker").exists()


def test_trusting_a_target_lets_it_load(tmp_path, checkpoint, monkeypatch):
    from lightning_pinn import allowlist

    monkeypatch.setattr(allowlist, "TRUSTED", set(allowlist.TRUSTED))
    bad = edited(checkpoint, ("problem", "reference"), {"_target_": "tests.test_trust.zero_reference",
                                                         "_partial_": True})
    with pytest.raises(ConfigError):
        PINNModule.load_from_checkpoint(bad)
    loaded = PINNModule.load_from_checkpoint(bad, trusted_targets=["tests.test_trust.zero_reference"])
    assert loaded.problem.reference(x=torch.zeros(3).numpy(), t=torch.zeros(3).numpy()).tolist() == [0.0] * 3
    trust("tests.test_trust.zero_reference")
    assert PINNModule.load_from_checkpoint(bad).problem.reference is not None


def zero_reference(**coords):
    """A reference that is zero everywhere (a module-level function, for the trust test)."""
    return 0.0 * next(iter(coords.values()))


# ----- problem files loaded as data -------------------------------------------------------------


@pytest.mark.parametrize("target", ["numpy.load", "builtins.open", "os.system", "pathlib.Path.touch"])
def test_a_problem_file_loaded_as_data_cannot_call_a_foreign_target(tmp_path, burgers_spec, target):
    path = tmp_path / "problem.yaml"
    path.write_text(yaml.safe_dump({**burgers_spec, "reference": attacks(tmp_path)[target]}, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        Problem.from_yaml(path)
    assert str(err.value) == refusal(f"{path}: reference", target)
    assert not (tmp_path / "marker").exists()


def test_a_global_package_problem_file_is_data_not_config(tmp_path, burgers_spec):
    """Composed by Hydra, this file would replace the run's callbacks and trainer; read as data it is refused."""
    path = tmp_path / "problem.yaml"
    text = yaml.safe_dump({**burgers_spec, "trainer": {"max_steps": 1}}, sort_keys=False)
    path.write_text("# @package _global_\ndefaults:\n  - override /callbacks: none\n" + text)
    with pytest.raises(ConfigError) as err:
        Problem.from_yaml(path)
    assert str(err.value) == (f"{path}: unknown keys ['defaults', 'trainer']; expected keys among ['collocation_points', "
                              "'conditions', 'coords', 'equations', 'fields', 'geometry', 'learnable', 'name', "
                              "'output_transform', 'params', 'reference', 'time']")
    evil = tmp_path / "evil.yaml"
    evil.write_text("# @package _global_\n" + yaml.safe_dump(
        {**burgers_spec, "callbacks": {"evil": attacks(tmp_path)["os.system"]}}, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        Problem.from_yaml(evil)
    assert str(err.value) == refusal(f"{evil}: callbacks.evil", "os.system")
    assert not (tmp_path / "marker").exists()


def test_a_problem_file_loaded_as_data_builds_the_problem(tmp_path, burgers_spec):
    path = tmp_path / "problem.yaml"
    path.write_text(yaml.safe_dump({**burgers_spec, "reference": {
        "_target_": "lightning_pinn.references.BurgersColeHopf", "nu": burgers_spec["params"]["nu"]}}, sort_keys=False))
    problem = Problem.from_yaml(path)
    assert problem.coords == ("x", "t") and sorted(problem.terms) == ["boundary", "burgers", "initial"]
    assert abs(float(problem.reference(x=torch.tensor([0.5]).numpy(), t=torch.tensor([0.0]).numpy())[0])
               + 1.0) < 1e-9  # u(x, 0) = -sin(pi x)


def test_a_module_built_from_a_composed_config_uses_the_allow_list(tmp_path, burgers_spec):
    spec = {"_target_": "lightning_pinn.Problem", **burgers_spec, "reference": attacks(tmp_path)["os.system"]}
    with pytest.raises(ConfigError) as err:
        PINNModule(spec, MLP(2, 1, width=8, depth=2))
    assert str(err.value) == refusal("problem.reference", "os.system")
    assert not (tmp_path / "marker").exists()
