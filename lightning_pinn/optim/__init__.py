"""Optimizers the library adds to ``torch.optim``: dense quasi-Newton and Gauss-Newton methods for small PINNs."""

from lightning_pinn.optim.gauss_newton import GaussNewton
from lightning_pinn.optim.quasi_newton import METHODS, QuasiNewton

__all__ = ["METHODS", "GaussNewton", "QuasiNewton"]
