"""What the library may build from data: the allow-list of ``_target_``\\ s.

Checkpoints and problem files are data that people download and share. The library builds
objects from them (a problem, its geometry and reference, a network, optimizers, balancers)
through ``_target_`` paths, and a path names code: ``numpy.load`` of a pickle, ``os.system``,
``builtins.open``. So every ``_target_`` the library instantiates (from a checkpoint, a
problem file loaded as data, or any config handed to :class:`~lightning_pinn.PINNModule`,
:class:`~lightning_pinn.PhysicsLoss` or :class:`~lightning_pinn.Problem`) must be on this
list, checked as a string before anything is imported.

The list names classes, not packages: the library's problem, geometry, reference, network and
loss classes, and torch's optimizers and learning-rate schedulers. Each is accepted under its
defining path (``lightning_pinn.nets.MLP``, ``torch.optim.adam.Adam``) and under the public names
the library exports it by (``lightning_pinn.MLP``, ``torch.optim.Adam``). Your own classes are
trusted explicitly: ``trusted_targets: [mypkg.MyNet]`` in the Hydra config, or
:func:`trust` in Python.

What is code and what is data: your own Hydra configs (``conf/``, ``--config-dir``, experiments)
are code, like ``train.py``: Hydra composes them and may rewrite the whole config. A checkpoint,
and a problem file given as ``problem_file=...`` or to :meth:`Problem.from_yaml`, are data: read
as plain values, never composed, their ``_target_``\\ s only from this list.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Mapping

from lightning_pinn.errors import ConfigError, at, subkey

ALLOWED_TARGETS: tuple[str, ...] = (
    # the spec
    "lightning_pinn.problem.spec.Problem",
    "lightning_pinn.problem.spec.Condition",
    # geometry
    "lightning_pinn.geometry.shapes.Rectangle",
    "lightning_pinn.geometry.shapes.Ball",
    "lightning_pinn.geometry.shapes.Disk",
    "lightning_pinn.geometry.shapes.Polygon",
    "lightning_pinn.geometry.csg.CSGUnion",
    "lightning_pinn.geometry.csg.CSGIntersection",
    "lightning_pinn.geometry.csg.CSGDifference",
    # references
    "lightning_pinn.references.burgers.BurgersColeHopf",
    "lightning_pinn.references.formula.Formula",
    "lightning_pinn.references.cavity.LidDrivenCavity",
    "lightning_pinn.references.spectral.AllenCahn",
    "lightning_pinn.references.spectral.KdV",
    "lightning_pinn.references.spectral.KuramotoSivashinsky",
    "lightning_pinn.references.spectral.NonlinearSchrodinger",
    # networks
    "lightning_pinn.nets.MLP",
    "lightning_pinn.nets.FourierFeatures",
    "lightning_pinn.nets.FactorizedLinear",
    "lightning_pinn.nets.InputScaling",
    "lightning_pinn.nets.ModifiedMLPLayers",
    "lightning_pinn.nets.PeriodicEmbedding",
    "lightning_pinn.nets.PirateLayers",
    "lightning_pinn.nets.ResidualBlock",
    # loss weighting
    "lightning_pinn.losses.balancing.FixedWeights",
    "lightning_pinn.losses.balancing.GradNormBalancing",
    "lightning_pinn.losses.balancing.ReLoBRaLo",
    "lightning_pinn.losses.causal.CausalWeighting",
    # optimizers and phases of the library
    "lightning_pinn.optim.quasi_newton.QuasiNewton",
    "lightning_pinn.optim.gauss_newton.GaussNewton",
    "lightning_pinn.optim.phases.Phase",
    # optimizers of pytorch-optimizer, a dependency
    "pytorch_optimizer.SOAP",
    # torch optimizers
    *(f"torch.optim.{name}" for name in (
        "ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "NAdam", "RAdam", "RMSprop",
        "Rprop", "SGD", "SparseAdam")),
    # torch learning-rate schedulers
    *(f"torch.optim.lr_scheduler.{name}" for name in (
        "ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR",
        "ExponentialLR", "LinearLR", "MultiStepLR", "OneCycleLR", "PolynomialLR", "ReduceLROnPlateau",
        "SequentialLR", "StepLR")),
)
"""The targets the library builds from data, by defining or public path (see the module docstring)."""

TRUSTED: set[str] = set()
"""Targets the user trusts on top of :data:`ALLOWED_TARGETS` (see :func:`trust`)."""

_PUBLIC_NAMESPACES = ("lightning_pinn", "lightning_pinn.geometry", "lightning_pinn.references", "lightning_pinn.losses",
                      "lightning_pinn.problem", "lightning_pinn.nets", "lightning_pinn.optim")
_accepted: frozenset[str] | None = None


def trust(*targets: str) -> None:
    """Allow these ``_target_`` paths (exactly as written) for the rest of the process.

    For your own classes in configs and checkpoints, e.g. ``trust("mypkg.nets.MyNet")``;
    ``train.py`` calls it with the config's ``trusted_targets``.

    Raises:
        ConfigError: for a path that is not a dotted name.
    """
    for target in targets:
        _check_path(target, "trusted_targets")
        TRUSTED.add(target)


@contextlib.contextmanager
def trusting(targets: Iterable[str] | None) -> Iterator[None]:
    """Allow ``targets`` inside the ``with`` block only (e.g. for one checkpoint load)."""
    added = [t for t in (targets or ()) if t not in TRUSTED]
    trust(*added)
    try:
        yield
    finally:
        TRUSTED.difference_update(added)


def accepted_targets() -> frozenset[str]:
    """Every path accepted now: each allowed object's defining and public paths, and the trusted ones."""
    global _accepted
    if _accepted is None:
        _accepted = frozenset(_aliases())
    return _accepted | TRUSTED


def check_targets(config: Any, key: str) -> None:
    """Refuse ``config`` if any ``_target_`` in it (at any depth) is not accepted; imports nothing.

    Raises:
        ConfigError: naming the key of the first refused target, the target and how to trust it.
    """
    if isinstance(config, Mapping):
        if "_target_" in config:
            target = config["_target_"]
            if not isinstance(target, str) or target not in accepted_targets():
                raise ConfigError(at(
                    subkey(key, "_target_"), f"{target!r} is not an allowed target (the library builds only its own problem, "
                    "geometry, reference, net, loss and sampling classes and torch optimizers from configs and "
                    "checkpoints); if you trust it, add it to trusted_targets in the config or call "
                    f"lightning_pinn.trust({target!r})"))
        for name, value in config.items():
            check_targets(value, subkey(key, name))
    elif isinstance(config, (list, tuple)):
        for index, value in enumerate(config):
            check_targets(value, f"{key}[{index}]")


def _aliases() -> Iterator[str]:
    """Each allowed path, the defining path of its object and the public paths the library exports it by."""
    import importlib

    from hydra.utils import get_object

    namespaces = [importlib.import_module(name) for name in _PUBLIC_NAMESPACES]
    for path in ALLOWED_TARGETS:
        try:
            obj = get_object(path)
        except Exception:  # e.g. an optimizer this torch does not have  # noqa: BLE001
            continue
        yield path
        yield f"{obj.__module__}.{obj.__qualname__}"
        for namespace in namespaces:
            if getattr(namespace, obj.__name__, None) is obj:
                yield f"{namespace.__name__}.{obj.__name__}"


def _check_path(target: Any, key: str) -> None:
    if not isinstance(target, str) or not all(part.isidentifier() for part in target.split(".")):
        raise ConfigError(f"{key}: expected dotted import paths like mypkg.MyNet but got {target!r}")
