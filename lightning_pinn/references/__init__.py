"""Reference solutions computed locally: exact formulas (``Formula``, Cole-Hopf) and small numerical solvers."""

from lightning_pinn.references.burgers import BurgersColeHopf
from lightning_pinn.references.cavity import GHIA_RE100, LidDrivenCavity, centerline_error
from lightning_pinn.references.formula import Formula
from lightning_pinn.references.spectral import AllenCahn, KdV, KuramotoSivashinsky, NonlinearSchrodinger

__all__ = [
    "GHIA_RE100",
    "AllenCahn",
    "BurgersColeHopf",
    "Formula",
    "KdV",
    "KuramotoSivashinsky",
    "LidDrivenCavity",
    "NonlinearSchrodinger",
    "centerline_error",
]
