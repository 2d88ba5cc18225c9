"""Taylor coefficients of elementwise functions: ``f^(n)(v) / n!`` for ``n = 0..order``.

A jet composes ``f(v + d) = sum_n f^(n)(v) / n! d^n`` (:func:`~lightning_pinn.derivatives.jets.compose`),
so a function with a row in :data:`TAYLOR` passes jets: as an activation (``nn.Tanh``, ``Sin``, ...)
and as a function of the expression language in an output transform
(:meth:`~lightning_pinn.derivatives.jet_algebra.JetValue.function`). One catalogue serves both.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

Taylor = Callable[[Tensor, int], list[Tensor]]
"""``(v, order) -> [f(v), f'(v), f''(v) / 2!, ..., f^(order)(v) / order!]``, elementwise."""


def _polynomial_coefficients(base: list[float], order: int) -> list[list[float]]:
    """``f^(n) / n!`` as polynomials in ``f`` for ``n = 1..order``, when ``f' = base(f)`` (tanh: ``1 - f^2``)."""
    polys, out = [[0.0, 1.0]], []  # f itself
    for n in range(1, order + 1):
        p = polys[-1]
        dp = [k * p[k] for k in range(1, len(p))] or [0.0]
        product = [0.0] * (len(dp) + len(base) - 1)
        for i, x in enumerate(dp):
            for j, y in enumerate(base):
                product[i + j] += x * y
        polys.append(product)
        out.append([c / math.factorial(n) for c in product])
    return out


def _horner(coefficients: list[float], t: Tensor) -> Tensor:
    result = torch.full_like(t, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        result = result * t + c
    return result


def polynomial_taylor(f: Callable[[Tensor], Tensor], base: list[float]) -> Taylor:
    """The Taylor coefficients of a function whose derivative is a polynomial of itself, ``f' = base(f)``
    (coefficients in increasing degree): each ``f^(n) / n!`` is then a polynomial of ``f(v)``."""
    def taylor(v: Tensor, order: int) -> list[Tensor]:
        t = f(v)
        return [t] + [_horner(p, t) for p in _polynomial_coefficients(base, order)]
    return taylor


def tanh_taylor(v: Tensor, order: int) -> list[Tensor]:
    """``tanh^(n)(v) / n!``: with ``t = tanh v``, ``1 - t^2``, ``-t (1 - t^2)``, ``(1 - t^2)(t^2 - 1/3)``,
    ``t (1 - t^2)(2/3 - t^2)`` up to order 4, polynomials in ``t`` beyond."""
    if order > 4:
        return polynomial_taylor(torch.tanh, [1.0, 0.0, -1.0])(v, order)
    t = torch.tanh(v)
    out = [t]
    if order >= 1:
        s = 1 - t * t
        out.append(s)
    if order >= 2:
        ts = t * s
        out.append(-ts)
    if order >= 3:
        t2 = t * t
        out.append(s * (t2 - 1 / 3))
    if order >= 4:
        out.append(ts * (2 / 3 - t2))
    return out


sigmoid_taylor: Taylor = polynomial_taylor(torch.sigmoid, [0.0, 1.0, -1.0])
"""``sigmoid^(n)(v) / n!``, polynomials in ``s = sigmoid v`` since ``s' = s - s^2``."""


def sin_taylor(v: Tensor, order: int) -> list[Tensor]:
    """``sin^(n)(v) / n!``: ``sin, cos, -sin, -cos``, repeating, over ``n!``."""
    s, c = torch.sin(v), torch.cos(v)
    return [(s, c, -s, -c)[n % 4] / math.factorial(n) if n > 1 else (s, c)[n] for n in range(order + 1)]


def cos_taylor(v: Tensor, order: int) -> list[Tensor]:
    """``cos^(n)(v) / n!``: ``cos, -sin, -cos, sin``, repeating, over ``n!``."""
    s, c = torch.sin(v), torch.cos(v)
    return [(c, -s, -c, s)[n % 4] / math.factorial(n) if n > 1 else (c, -s)[n] for n in range(order + 1)]


def exp_taylor(v: Tensor, order: int) -> list[Tensor]:
    """``exp(v) / n!``."""
    e = torch.exp(v)
    return [e] + [e / math.factorial(n) for n in range(1, order + 1)]


def sinh_taylor(v: Tensor, order: int) -> list[Tensor]:
    """``sinh^(n)(v) / n!``: ``sinh`` for even ``n``, ``cosh`` for odd, over ``n!``."""
    s, c = torch.sinh(v), torch.cosh(v)
    return [(s, c)[n % 2] / math.factorial(n) for n in range(order + 1)]


def cosh_taylor(v: Tensor, order: int) -> list[Tensor]:
    """``cosh^(n)(v) / n!``: ``cosh`` for even ``n``, ``sinh`` for odd, over ``n!``."""
    s, c = torch.sinh(v), torch.cosh(v)
    return [(c, s)[n % 2] / math.factorial(n) for n in range(order + 1)]


def log_taylor(v: Tensor, order: int) -> list[Tensor]:
    """``log^(n)(v) / n! = (-1)^(n+1) / (n v^n)`` for ``n >= 1``."""
    return [torch.log(v)] + [(-1) ** (n + 1) / (n * v**n) for n in range(1, order + 1)]


def power_taylor(p: float) -> Taylor:
    """The Taylor coefficients of ``v^p``: the generalized binomials ``C(p, n) v^(p - n)``."""
    def taylor(v: Tensor, order: int) -> list[Tensor]:
        out, binomial = [], 1.0
        for n in range(order + 1):
            out.append(binomial * v ** (p - n))
            binomial *= (p - n) / (n + 1)
        return out
    return taylor


def normal_cdf_taylor(v: Tensor, order: int) -> list[Tensor]:
    """``Phi^(n)(v) / n!`` of the standard normal CDF, ``Phi^(n) = (-1)^(n-1) He_(n-1)(v) phi(v)``
    (probabilists' Hermite polynomials ``He``, density ``phi``)."""
    phi = torch.exp(-0.5 * v * v) / math.sqrt(2 * math.pi)
    out = [0.5 * (1 + torch.erf(v / math.sqrt(2)))]
    hermite = [torch.ones_like(v), v]  # He_0, He_1, ...
    for n in range(1, order + 1):
        while len(hermite) < n:
            k = len(hermite) - 1
            hermite.append(v * hermite[k] - k * hermite[k - 1])
        out.append(((-1) ** (n - 1) / math.factorial(n)) * hermite[n - 1] * phi)
    return out


TAYLOR: dict[str, Taylor] = {
    "sin": sin_taylor,
    "cos": cos_taylor,
    "tanh": tanh_taylor,
    "sigmoid": sigmoid_taylor,
    "exp": exp_taylor,
    "sinh": sinh_taylor,
    "cosh": cosh_taylor,
    "log": log_taylor,
    "sqrt": power_taylor(0.5),
    "normal_cdf": normal_cdf_taylor,
}
"""Function name -> its Taylor coefficients ``(v, order) -> [f^(n)(v) / n! for n = 0..order]``.

The names are those of the expression language (``normal_cdf``, the standard normal CDF of exact
GELU, is for activations only)."""
