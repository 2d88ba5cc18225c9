"""Domains and the samplers that draw points on them."""

from lightning_pinn.geometry.box import Box, Region
from lightning_pinn.geometry.point_sources import FixedPoints, PeriodicSource, PointSource
from lightning_pinn.geometry.samplers import METHODS, Sampler

__all__ = ["METHODS", "Box", "FixedPoints", "PeriodicSource", "PointSource", "Region", "Sampler"]
