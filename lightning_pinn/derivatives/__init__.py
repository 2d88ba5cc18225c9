"""Derivative engines: per-point partials of network outputs with respect to coordinates."""

from lightning_pinn.derivatives.autograd import Derivatives, hessian, jacobian, partial

__all__ = ["Derivatives", "hessian", "jacobian", "partial"]
