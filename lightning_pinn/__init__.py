"""lightning-pinn: physics-informed neural networks as a PyTorch Lightning plugin.

The data path of a step, one module each: ``problem`` (the spec) -> ``geometry``
(points) -> the network (fields) -> ``derivatives`` -> ``residuals`` (residuals and
loss terms) -> ``lightning`` (``PINNModule``, logging, callbacks).
"""

from lightning_pinn.allowlist import trust
from lightning_pinn.derivatives import Derivatives, hessian, jacobian, partial
from lightning_pinn.derivatives.jets import register_activation, register_jet_rule
from lightning_pinn.geometry import (
    Ball,
    Box,
    Difference,
    Disk,
    Intersection,
    PointSource,
    Polygon,
    Rectangle,
    Sampler,
    Union,
)
from lightning_pinn.lightning import NonFiniteLossError, PhysicsLoss, PINNModule, RelativeL2Error, SolutionFigure
from lightning_pinn.lightning.adaptive_sampling import RAD, RAR
from lightning_pinn.losses import CausalWeighting, GradNormBalancing, ReLoBRaLo
from lightning_pinn.nets import (
    MLP,
    FactorizedLinear,
    FourierFeatures,
    InputScaling,
    ModifiedMLPLayers,
    PeriodicEmbedding,
    Residual,
)
from lightning_pinn.problem import Condition, ExpressionError, Problem, compile_expression
from lightning_pinn.residuals import Evaluation, loss_terms, residuals

__all__ = [
    "RAD", "RAR", "Ball", "Box", "CausalWeighting", "Condition", "Difference", "Disk", "FactorizedLinear",
    "GradNormBalancing", "Intersection", "ModifiedMLPLayers", "PeriodicEmbedding", "Polygon", "Rectangle",
    "ReLoBRaLo", "Union", "Derivatives", "Evaluation", "ExpressionError", "FourierFeatures", "InputScaling", "MLP",
    "NonFiniteLossError", "PhysicsLoss", "PINNModule", "PointSource", "Problem", "RelativeL2Error", "Residual",
    "Sampler", "SolutionFigure", "compile_expression", "hessian", "jacobian", "loss_terms", "partial",
    "register_activation", "register_jet_rule", "residuals", "trust",
]
__version__ = "0.1.0"
