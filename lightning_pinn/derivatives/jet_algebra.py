"""Arithmetic on jets, so that expressions (output transforms) can be evaluated on jets.

A :class:`JetValue` wraps the jet of one column (value ``(1, N)``, coefficients ``(1, K, N)``)
and implements ``+ - * / **`` and the expression language's smooth functions by the rules of
Taylor arithmetic: sums add coefficients, products follow Leibniz (:func:`jets.product`),
and a function ``f`` composes through its Taylor coefficients ``f^(n)(v)/n!``
(:func:`jets.compose`). Floats act as constants. A function without a rule (``abs``,
``min``, ...) raises :class:`JetUnsupportedError`, and the engine falls back to autograd.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from lightning_pinn.derivatives.jets import (
    Jet,
    JetIndex,
    JetUnsupportedError,
    _cos_taylor,
    _sigmoid_taylor,
    _tanh_taylor,
    compose,
    product,
    sin_taylor,
)


def _exp_taylor(v: Tensor, order: int) -> list[Tensor]:
    e = torch.exp(v)
    return [e] + [e / math.factorial(n) for n in range(1, order + 1)]


def _sinh_taylor(v: Tensor, order: int) -> list[Tensor]:
    s, c = torch.sinh(v), torch.cosh(v)
    return [(s, c)[n % 2] / math.factorial(n) for n in range(order + 1)]


def _cosh_taylor(v: Tensor, order: int) -> list[Tensor]:
    s, c = torch.sinh(v), torch.cosh(v)
    return [(c, s)[n % 2] / math.factorial(n) for n in range(order + 1)]


def _log_taylor(v: Tensor, order: int) -> list[Tensor]:
    return [torch.log(v)] + [(-1) ** (n + 1) / (n * v**n) for n in range(1, order + 1)]


def _power_taylor(p: float) -> Callable[[Tensor, int], list[Tensor]]:
    """``v^p``: the generalized binomial ``C(p, n) v^(p - n)``."""
    def taylor(v: Tensor, order: int) -> list[Tensor]:
        out, binomial = [], 1.0
        for n in range(order + 1):
            out.append(binomial * v ** (p - n))
            binomial *= (p - n) / (n + 1)
        return out
    return taylor


FUNCTION_TAYLORS: dict[str, Callable[[Tensor, int], list[Tensor]]] = {
    "sin": sin_taylor, "cos": _cos_taylor, "tanh": _tanh_taylor, "exp": _exp_taylor, "sinh": _sinh_taylor,
    "cosh": _cosh_taylor, "log": _log_taylor, "sqrt": _power_taylor(0.5), "sigmoid": _sigmoid_taylor,
}
"""Expression functions with jet rules: name -> Taylor coefficients ``f^(n)(v)/n!`` for ``n = 0..order``."""


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
        return self._compose(_power_taylor(p))

    def __rpow__(self, base: object) -> JetValue:
        return (self * math.log(float(base))).function("exp")

    def _compose(self, taylor: Callable[[Tensor, int], list[Tensor]]) -> JetValue:
        return self._wrap(compose(taylor(self.jet.value, self.index.order), self.jet, self.index))

    def function(self, name: str) -> JetValue:
        """``name(self)`` for a function of the expression language with a jet rule."""
        if name not in FUNCTION_TAYLORS:
            raise JetUnsupportedError(f"the function {name} has no jet rule (those with one: {sorted(FUNCTION_TAYLORS)})")
        return self._compose(FUNCTION_TAYLORS[name])
