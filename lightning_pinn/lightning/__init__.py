"""The Lightning adapters: PINNModule, metrics, callbacks and loggers."""

from lightning_pinn.errors import NonFiniteLossError
from lightning_pinn.lightning.callbacks import SolutionFigure
from lightning_pinn.lightning.metrics import RelativeL2Error, relative_l2_error
from lightning_pinn.lightning.module import PINNModule
from lightning_pinn.lightning.physics_loss import PhysicsLoss

__all__ = ["NonFiniteLossError", "PINNModule", "PhysicsLoss", "RelativeL2Error", "SolutionFigure", "relative_l2_error"]
