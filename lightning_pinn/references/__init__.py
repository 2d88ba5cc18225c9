"""Reference solutions computed locally: exact formulas and small numerical solvers."""

from lightning_pinn.references.burgers import BurgersColeHopf

__all__ = ["BurgersColeHopf"]
