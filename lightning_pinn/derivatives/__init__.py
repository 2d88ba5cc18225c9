"""Derivative engines: per-point partials of network outputs with respect to coordinates.

``autograd``: nested ``torch.autograd.grad``, memoized per step (:class:`Derivatives`), for any
network. ``jets``: forward-mode Taylor jets through MLP-family networks; register rules for your
own layers with :func:`register_jet_rule` and :func:`register_activation`.
"""

from lightning_pinn.derivatives.autograd import Derivatives, hessian, jacobian, partial
from lightning_pinn.derivatives.jets import register_activation, register_jet_rule

__all__ = ["Derivatives", "hessian", "jacobian", "partial", "register_activation", "register_jet_rule"]
