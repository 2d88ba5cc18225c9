"""Domains and the samplers that draw points on them: boxes, shapes (disks, balls, polygons) and CSG."""

from lightning_pinn.geometry.box import Box, Region
from lightning_pinn.geometry.csg import CSGDifference, CSGIntersection, CSGUnion
from lightning_pinn.geometry.domain import Domain, ShapeRegion
from lightning_pinn.geometry.point_sources import FixedPoints, PeriodicSource, PointSource
from lightning_pinn.geometry.samplers import METHODS, Sampler
from lightning_pinn.geometry.shapes import Ball, Disk, Polygon, Rectangle, Shape

__all__ = [
    "METHODS", "Ball", "Box", "CSGDifference", "Disk", "Domain", "FixedPoints", "CSGIntersection", "PeriodicSource",
    "PointSource", "Polygon", "Rectangle", "Region", "Sampler", "Shape", "ShapeRegion", "CSGUnion",
]
