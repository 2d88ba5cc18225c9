"""Arithmetic on jets, so that expressions (output transforms) can be evaluated on jets.

A :class:`JetValue` wraps the jet of one column (value ``(1, N)``, coefficients ``(1, K, N)``)
and implements ``+ - * / **`` and the expression language's smooth functions by the rules of
Taylor arithmetic: sums add coefficients, products follow Leibniz (:func:`jets.product`),
and a function ``f`` composes through its Taylor coefficients ``f^(n)(v)/n!``
(:func:`jets.compose`) from the catalogue :data:`~lightning_pinn.derivatives.taylor.TAYLOR`,
which the activations use too. Floats act as constants. A function without a rule (``abs``,
``min``, ...) raises :class:`JetUnsupportedError`, and the engine falls back to autograd.
"""

from __future__ import annotations

import math

from lightning_pinn.derivatives.jets import Jet, JetIndex, JetUnsupportedError, compose, product
from lightning_pinn.derivatives.taylor import TAYLOR, Taylor, power_taylor


class JetValue:
    """The jet of one column, with arithmetic; see the module docstring.

    Args:
        jet: value ``(1, N)`` and coefficients ``(1, K, N)``.
        index: the multi-indices the coefficients stand for.
    """

    def __init__(self, jet: Jet, index: JetIndex):
        self.jet, self.index = jet, index

    def _wrap(self, jet: Jet) -> JetValue:
        return JetValue(jet, self.index)

    def _lift(self, other: object) -> JetValue | None:
        if isinstance(other, JetValue):
            return other
        if isinstance(other, (int, float)):
            return None
        raise TypeError(f"cannot combine a jet with {type(other).__name__}")

    def __add__(self, other: object) -> JetValue:
        o = self._lift(other)
        if o is None:
            return self._wrap(Jet(self.jet.value + other, self.jet.coeffs))
        return self._wrap(Jet(self.jet.value + o.jet.value, self.jet.coeffs + o.jet.coeffs))

    __radd__ = __add__

    def __neg__(self) -> JetValue:
        return self._wrap(Jet(-self.jet.value, -self.jet.coeffs))

    def __pos__(self) -> JetValue:
        return self

    def __sub__(self, other: object) -> JetValue:
        return self + (-other if isinstance(other, (int, float, JetValue)) else other)

    def __rsub__(self, other: object) -> JetValue:
        return (-self) + other

    def __mul__(self, other: object) -> JetValue:
        o = self._lift(other)
        if o is None:
            return self._wrap(Jet(self.jet.value * other, self.jet.coeffs * other))
        return self._wrap(product(self.jet, o.jet, self.index))

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> JetValue:
        o = self._lift(other)
        if o is None:
            return self * (1.0 / other)
        return self * o ** -1.0

    def __rtruediv__(self, other: object) -> JetValue:
        return (self ** -1.0) * other

    def __pow__(self, exponent: object) -> JetValue:
        if isinstance(exponent, JetValue):
            return (exponent * self.function("log")).function("exp")
        p = float(exponent)
        if p == int(p) and 0 <= p <= 4:  # small integer powers: exact repeated products
            result: JetValue | float = 1.0
            for _ in range(int(p)):
                result = self * result if isinstance(result, JetValue) else self
            return result if isinstance(result, JetValue) else self * 0.0 + 1.0
        return self._compose(power_taylor(p))

    def __rpow__(self, base: object) -> JetValue:
        return (self * math.log(float(base))).function("exp")

    def _compose(self, taylor: Taylor) -> JetValue:
        return self._wrap(compose(taylor(self.jet.value, self.index.order), self.jet, self.index))

    def function(self, name: str) -> JetValue:
        """``name(self)`` for a function with Taylor coefficients in :data:`~lightning_pinn.derivatives.taylor.TAYLOR`."""
        if name not in TAYLOR:
            raise JetUnsupportedError(f"the function {name} has no jet rule (those with one: {sorted(TAYLOR)})")
        return self._compose(TAYLOR[name])
