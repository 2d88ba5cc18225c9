"""The divergence rule: stop a run whose loss stays far above its best value.

A learning rate that is too large need not give NaN: with tanh networks the outputs saturate
and the loss settles at some huge finite value, and the run would end looking finished. The
rule watches the unweighted loss (the sum of the loss terms before balancing and the spec's
weights; causally weighted terms as logged) once per optimizer step: when it stays above
``factor`` times its running minimum for ``patience`` consecutive steps, the run has diverged.
The minimum is forgotten when the objective changes on purpose: points redrawn (``resample_every``,
RAD, RAR), a new optimizer phase, a new causal ``epsilon``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lightning_pinn.errors import ConfigError


class DivergenceRule:
    """Counts consecutive steps with the loss above ``factor`` times its best since the last reset.

    Args:
        factor: how far above its running minimum the loss must be (``> 1``).
        patience: for how many consecutive steps (``>= 1``).

    Examples:
        >>> rule = DivergenceRule(factor=10, patience=2)
        >>> [rule.update(loss) for loss in (1.0, 0.5, 20.0, 30.0)]
        [False, False, False, True]
        >>> rule.reset(); rule.update(30.0)
        False
    """

    def __init__(self, factor: float = 1e4, patience: int = 100):
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 1:
            raise ConfigError(f"divergence.factor: expected a number above 1 but got {factor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"divergence.patience: expected a positive integer but got {patience!r}")
        self.factor, self.patience = float(factor), int(patience)
        self.best = math.inf
        self.above = 0
        """Consecutive steps above ``factor * best`` up to the last update."""

    def reset(self) -> None:
        """Forget the running minimum (the objective changed on purpose)."""
        self.best, self.above = math.inf, 0

    def update(self, loss: float) -> bool:
        """Record one step's loss; True once it has been above ``factor * best`` for ``patience`` steps."""
        self.best = min(self.best, loss)
        self.above = self.above + 1 if self.diverged(loss) else 0
        return self.above >= self.patience

    def diverged(self, loss: float) -> bool:
        """Whether ``loss`` is above ``factor`` times the best loss so far (a non-finite loss is)."""
        return not loss <= self.factor * self.best

    def describe(self) -> str:
        """The rule in words, for messages."""
        return f"{self.factor:g} x its best since the last reset ({self.best:.3g})"

    def to_config(self) -> dict[str, Any]:
        """The arguments, as the ``divergence`` option takes them."""
        return {"factor": self.factor, "patience": self.patience}

    def state_dict(self) -> dict[str, Any]:
        """The running minimum and the count, for checkpoints."""
        return {"best": self.best, "above": self.above}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        self.best, self.above = float(state["best"]), int(state["above"])


def build_divergence(spec: Any) -> DivergenceRule | None:
    """``None`` or ``False``: no rule; a mapping of :class:`DivergenceRule` arguments; a rule (as is).

    Raises:
        ConfigError: naming ``divergence`` and the valid forms.
    """
    if spec is None or spec is False:
        return None
    if isinstance(spec, DivergenceRule):
        return spec
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"factor", "patience"})
        if unknown:
            raise ConfigError(f"divergence: unknown keys {unknown}; expected keys among ['factor', 'patience']")
        return DivergenceRule(**spec)
    raise ConfigError(f"divergence: expected null, false or {{factor: 1e4, patience: 100}} but got {spec!r}")
