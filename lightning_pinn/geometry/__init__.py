"""Domains and the samplers that draw points on them."""

from lightning_pinn.geometry.box import Box, PointSource, Region
from lightning_pinn.geometry.samplers import METHODS, Sampler

__all__ = ["METHODS", "Box", "PointSource", "Region", "Sampler"]
