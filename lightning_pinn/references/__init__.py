"""Reference solutions computed locally: exact formulas and small numerical solvers."""

from lightning_pinn.references.burgers import BurgersColeHopf
from lightning_pinn.references.cavity import GHIA_RE100, LidDrivenCavity, centerline_error
from lightning_pinn.references.exact import (
    Advection,
    Heat2DManufactured,
    Helmholtz2D,
    Kovasznay,
    PoissonManufactured,
    Wave1D,
)
from lightning_pinn.references.formula import Formula
from lightning_pinn.references.spectral import AllenCahn, KdV, KuramotoSivashinsky, NonlinearSchrodinger

__all__ = [
    "GHIA_RE100",
    "Advection",
    "AllenCahn",
    "BurgersColeHopf",
    "Formula",
    "Heat2DManufactured",
    "Helmholtz2D",
    "KdV",
    "Kovasznay",
    "KuramotoSivashinsky",
    "LidDrivenCavity",
    "NonlinearSchrodinger",
    "PoissonManufactured",
    "Wave1D",
    "centerline_error",
]
