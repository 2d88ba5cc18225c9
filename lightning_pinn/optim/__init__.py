"""Optimizers the library adds to ``torch.optim``: dense quasi-Newton methods for small PINNs."""

from lightning_pinn.optim.quasi_newton import METHODS, QuasiNewton

__all__ = ["METHODS", "QuasiNewton"]
