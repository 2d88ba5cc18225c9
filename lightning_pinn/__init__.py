"""lightning-pinn: physics-informed neural networks as a PyTorch Lightning plugin.

The data path of a step, one module each: ``problem`` (the spec) -> ``points`` (collocation
points from ``geometry``) -> the network (``nets``: fields) -> ``derivatives`` -> ``residuals``
-> ``losses`` (the weighted loss) -> ``lightning`` (``PINNModule``, ``PhysicsLoss``).

The names here are what a user writes most; the rest live in their subpackages:
``lightning_pinn.nets`` (layers, embeddings), ``lightning_pinn.geometry`` (boxes, point
sources, samplers), ``lightning_pinn.losses`` (balancing, causal weighting),
``lightning_pinn.callbacks`` (figures, adaptive sampling, checkpoints), ``lightning_pinn.references``,
``lightning_pinn.derivatives`` (engines, jets), ``lightning_pinn.errors``.
"""

from lightning_pinn.allowlist import trust
from lightning_pinn.derivatives import hessian, jacobian, partial
from lightning_pinn.errors import ConfigError, TrainingFailure
from lightning_pinn.geometry import Ball, CSGDifference, CSGIntersection, CSGUnion, Disk, Polygon, Rectangle
from lightning_pinn.lightning import PhysicsLoss, PINNModule
from lightning_pinn.nets import MLP
from lightning_pinn.problem import Condition, Problem
from lightning_pinn.references import Formula

__all__ = [
    "MLP", "Ball", "CSGDifference", "CSGIntersection", "CSGUnion", "Condition", "ConfigError", "Disk", "Formula",
    "PINNModule", "PhysicsLoss", "Polygon", "Problem", "Rectangle", "TrainingFailure", "hessian", "jacobian",
    "partial", "trust",
]
__version__ = "0.1.0"
