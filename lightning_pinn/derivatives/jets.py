"""Forward-mode derivative jets: every partial an equation needs, in one forward pass.

A jet of a hidden activation ``h(x)`` at each point is its truncated multivariate Taylor
polynomial in the coordinates: the value ``h`` and the normalised coefficients
``c_a = (d^a h) / a!`` for each multi-index ``a`` (``a = (2, 0)`` is ``h_xx / 2``) of a
fixed, downward-closed set. Jets pass through a network layer by layer:

- a linear layer maps the value and every coefficient by ``W`` (the bias goes to the
  value only): one matrix product ``W @ coeffs`` for all coefficients at once;
- an elementwise activation ``f`` composes as ``f(v + d) = f(v) + sum_n f^(n)(v) d^n / n!``,
  where ``d`` is the polynomial of the coefficients and ``d^n`` is truncated to the set
  (the multivariate Faa di Bruno formula, exact);
- input scaling, Fourier features and residual connections are affine maps, sines and
  cosines, and sums.

The result is an ordinary differentiable function of the network's parameters, so the
parameter gradient is one first-order backward pass, and the whole loss can be compiled
with ``torch.compile`` (nested ``autograd.grad`` cannot). Networks are supported when every
module on the path has a jet rule (see :func:`register_jet_rule`).

Layout: features first, points last (value ``(H, N)``, coefficients ``(H, K, N)``), the
transpose of a module's ``(N, H)``. Then a linear layer is ``W @ X`` with the long point axis
contiguous, one product shared by every coefficient row (measured in
``benchmarks/matmul_layout.py``).

The Taylor coefficients of the activations come from :data:`lightning_pinn.derivatives.taylor.TAYLOR`.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Iterable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_pinn.derivatives.taylor import TAYLOR

MAX_ORDER = 8
"""The highest total derivative order a jet carries (the same bound as the expression language)."""

MultiIndex = tuple[int, ...]


class JetUnsupportedError(TypeError):
    """The network contains a module without a jet rule; the message names it."""


class Jet(NamedTuple):
    """Values ``(H, N)`` and normalised Taylor coefficients ``(H, K, N)`` of one activation.

    Features come first and points last (see the module docstring); coefficient row ``k``
    of feature ``h`` is ``coeffs[h, k]``, for the multi-index ``JetIndex.multi[k]``.
    """

    value: Tensor
    coeffs: Tensor


class JetIndex:
    """The multi-indices a jet carries and the tables that multiply truncated polynomials.

    Args:
        n_coords: number of coordinates ``d``.
        required: multi-indices (tuples of ``d`` counts) that must be available; the set
            is closed downwards (``(2, 1)`` brings ``(1, 0)``, ``(0, 1)``, ``(1, 1)`` and ``(2, 0)``).

    Examples:
        >>> JetIndex(2, [(2, 0), (0, 1)]).multi
        [(1, 0), (0, 1), (2, 0)]
    """

    def __init__(self, n_coords: int, required: Iterable[MultiIndex]):
        required = [tuple(int(c) for c in a) for a in required]
        for a in required:
            if len(a) != n_coords or min(a, default=0) < 0:
                raise ValueError(f"multi-index {a} does not fit {n_coords} coordinates")
            if sum(a) > MAX_ORDER:
                raise ValueError(f"derivative order {sum(a)} of {a} is above the maximum {MAX_ORDER}")
        closed = {b for a in required for b in itertools.product(*(range(c + 1) for c in a)) if sum(b) > 0}
        self.n_coords = n_coords
        self.multi: list[MultiIndex] = sorted(closed, key=lambda a: (sum(a), tuple(-c for c in a)))
        """The non-constant multi-indices, by total order; row ``k`` of ``Jet.coeffs`` holds ``multi[k]``."""
        self.position = {a: k for k, a in enumerate(self.multi)}
        self.order = max((sum(a) for a in self.multi), default=0)
        self.factorials = [math.prod(math.factorial(c) for c in a) for a in self.multi]
        """``a!`` per row: the derivative is ``a! * coeffs[row]``."""
        self.terms = [self._faa_di_bruno(a) for a in self.multi]
        """Per row ``k``: ``{n: [(c, (i, j, ...)), ...]}``, so that the coefficient ``k`` of ``f(v + d)`` is
        ``sum_n f^(n)(v)/n! * sum c * d_i * d_j * ...`` over multisets of ``n`` rows adding up to
        ``multi[k]``, ``c`` the number of orderings of the multiset."""

    def _faa_di_bruno(self, target: MultiIndex) -> dict[int, list[tuple[float, tuple[int, ...]]]]:
        found: dict[int, list[tuple[float, tuple[int, ...]]]] = {}

        def extend(rest: MultiIndex, start: int, chosen: list[int]) -> None:
            if sum(rest) == 0:
                counts = [chosen.count(i) for i in set(chosen)]  # orderings of the multiset: n! / prod m!
                found.setdefault(len(chosen), []).append(
                    (math.factorial(len(chosen)) // math.prod(math.factorial(m) for m in counts), tuple(chosen)))
                return
            for i in range(start, len(self.multi)):
                a = self.multi[i]
                if all(p <= q for p, q in zip(a, rest)):
                    extend(tuple(q - p for p, q in zip(a, rest)), i, [*chosen, i])

        extend(target, 0, [])
        return found

    def __len__(self) -> int:
        return len(self.multi)

    def __contains__(self, a: MultiIndex) -> bool:
        return sum(a) == 0 or a in self.position

    def seed(self, x: Tensor) -> Jet:
        """The jet of points ``x`` of shape ``(N, d)``: the values ``x.T`` and unit first-order coefficients."""
        coeffs = x.new_zeros(x.shape[1], len(self.multi), x.shape[0])
        for j in range(self.n_coords):
            unit = tuple(int(i == j) for i in range(self.n_coords))
            if unit in self.position:
                coeffs[j, self.position[unit]] = 1.0
        return Jet(x.T.contiguous(), coeffs)


# ----- elementwise activations: Taylor coefficients f^(n)(v) / n! (catalogue in derivatives.taylor) -----

def _times_x(g: list[Tensor], v: Tensor) -> list[Tensor]:
    """Taylor coefficients of ``x * g(x)`` from those of ``g`` (Leibniz): ``x g_n + g_(n-1)``."""
    return [v * g[0]] + [v * g[n] + g[n - 1] for n in range(1, len(g))]


ActivationTaylor = Callable[[nn.Module, Tensor, int], list[Tensor]]
ACTIVATIONS: dict[type, ActivationTaylor] = {}
"""Elementwise activation type -> ``(module, v, order) -> [f(v), f^(1)(v), f^(2)(v) / 2!, ..., f^(order)(v) / order!]``."""


def register_activation(module_type: type) -> Callable[[ActivationTaylor], ActivationTaylor]:
    """Decorator: declare an elementwise activation by its Taylor coefficients ``f^(n)(v) / n!``
    for ``n = 0..order``; jets compose them exactly.

    Examples:
        >>> class Square(nn.Module):
        ...     def forward(self, x): return x * x
        >>> @register_activation(Square)
        ... def _square(module, v, order): return [v * v, 2 * v, torch.ones_like(v)] + [torch.zeros_like(v)] * (order - 2)
    """
    def decorate(fn: ActivationTaylor) -> ActivationTaylor:
        ACTIVATIONS[module_type] = fn
        return fn
    return decorate


register_activation(nn.Tanh)(lambda module, v, order: TAYLOR["tanh"](v, order))
register_activation(nn.Sigmoid)(lambda module, v, order: TAYLOR["sigmoid"](v, order))
register_activation(nn.SiLU)(lambda module, v, order: _times_x(TAYLOR["sigmoid"](v, order), v))


@register_activation(nn.GELU)
def _gelu(module: nn.GELU, v: Tensor, order: int) -> list[Tensor]:
    if module.approximate != "none":
        raise JetUnsupportedError("GELU(approximate='tanh') has no jet rule; use GELU() (exact)")
    return _times_x(TAYLOR["normal_cdf"](v, order), v)


@register_activation(nn.Softplus)
def _softplus(module: nn.Softplus, v: Tensor, order: int) -> list[Tensor]:
    # f = softplus(beta v) / beta, f^(n) = beta^(n-1) sigmoid^(n-1)(beta v); torch's softplus is v above the threshold
    beta, linear = module.beta, v * module.beta > module.threshold
    s = TAYLOR["sigmoid"](beta * v, max(order - 1, 0))
    out = [(beta ** (n - 1) / n) * s[n - 1] for n in range(1, order + 1)]
    return [F.softplus(v, beta, module.threshold)] + [torch.where(linear, float(n == 1), d)
                                                      for n, d in enumerate(out, start=1)]


@register_activation(nn.ReLU)
def _relu(module: nn.ReLU, v: Tensor, order: int) -> list[Tensor]:
    return [torch.relu(v), (v > 0).to(v.dtype)] + [torch.zeros_like(v)] * max(order - 1, 0)


def compose(taylor: list[Tensor], jet: Jet, index: JetIndex) -> Jet:
    """The jet of ``f(h)`` from the Taylor coefficients of ``f`` at the values of ``h`` and the jet of ``h``.

    Row ``k`` is ``f^(1)(v)`` times its own coefficient plus, for rows of order 2 and more, the
    rest of the multivariate Faa di Bruno sum of :attr:`JetIndex.terms`, written out term by
    term (products of rows shared).
    """
    # each row is built on its own and the rows are stacked once, a form torch.compile fuses into
    # one kernel per layer (README, "Derivative engines")
    if not len(index):
        return Jet(taylor[0], jet.coeffs)
    rows = jet.coeffs.unbind(1)
    products: dict[tuple[int, ...], Tensor] = {}

    def monomial(factors: tuple[int, ...]) -> Tensor:
        if factors not in products:
            products[factors] = rows[factors[0]] if len(factors) == 1 else monomial(factors[:-1]) * rows[factors[-1]]
        return products[factors]

    out = []
    for k, terms in enumerate(index.terms):
        total = taylor[1] * rows[k]
        for n, monomials in terms.items():
            if n == 1:
                continue
            inner = None
            for count, factors in monomials:
                term = monomial(factors) if count == 1 else count * monomial(factors)
                inner = term if inner is None else inner + term
            total = total + taylor[n] * inner
        out.append(total)
    return Jet(taylor[0], torch.stack(out, 1))


# ----- jet rules per module type ------------------------------------------------------------------

JetRule = Callable[[nn.Module, Jet, JetIndex, str], Jet]
JET_RULES: dict[type, JetRule] = {}
"""Module type -> rule ``(module, jet, index, path) -> jet``. Exact types only: a subclass that
overrides ``forward`` is not covered by its parent's rule."""


def register_jet_rule(module_type: type) -> Callable[[JetRule], JetRule]:
    """Decorator: declare how jets pass through ``module_type`` (for your own layers).

    Examples:
        >>> class Double(nn.Module):
        ...     def forward(self, x): return 2 * x
        >>> @register_jet_rule(Double)
        ... def _double(module, jet, index, path): return Jet(2 * jet.value, 2 * jet.coeffs)

    A rule sees the feature-first layout of :class:`Jet` (values ``(H, N)``); for a linear map
    use :func:`linear`.
    """
    def decorate(rule: JetRule) -> JetRule:
        JET_RULES[module_type] = rule
        return rule
    return decorate


def jet_through(module: nn.Module, jet: Jet, index: JetIndex, path: str = "net") -> Jet:
    """Push ``jet`` through ``module``; raises :class:`JetUnsupportedError` naming the module without a rule."""
    rule = JET_RULES.get(type(module))
    if rule is not None:
        return rule(module, jet, index, path)
    activation = ACTIVATIONS.get(type(module))
    if activation is None:
        raise JetUnsupportedError(f"{path} is a {type(module).__name__}, which has no jet rule")
    try:
        taylor = activation(module, jet.value, index.order)
    except JetUnsupportedError as err:
        raise JetUnsupportedError(f"{path}: {err}") from None
    return compose(taylor, jet, index)


def linear(jet: Jet, weight: Tensor, bias: Tensor | None = None) -> Jet:
    """The jet of ``F.linear(h, weight, bias)``: ``weight @ value + bias`` and one product
    ``weight @ coeffs`` for every coefficient row (the bias is the constant term's only)."""
    features, rows, points = jet.coeffs.shape
    value = weight @ jet.value if bias is None else torch.addmm(bias.unsqueeze(1), weight, jet.value)
    coeffs = (weight @ jet.coeffs.reshape(features, rows * points)).view(weight.shape[0], rows, points)
    return Jet(value, coeffs)


@register_jet_rule(nn.Linear)
def _linear(module: nn.Linear, jet: Jet, index: JetIndex, path: str) -> Jet:
    return linear(jet, module.weight, module.bias)


@register_jet_rule(nn.Identity)
def _identity(module: nn.Module, jet: Jet, index: JetIndex, path: str) -> Jet:
    return jet


@register_jet_rule(nn.Sequential)
def _sequential(module: nn.Sequential, jet: Jet, index: JetIndex, path: str) -> Jet:
    for name, child in module.named_children():
        jet = jet_through(child, jet, index, f"{path}.{name}")
    return jet


def sin_cos(jet: Jet, index: JetIndex) -> tuple[Jet, Jet]:
    """The jets of ``sin(h)`` and ``cos(h)`` (for Fourier features and custom rules)."""
    return (compose(TAYLOR["sin"](jet.value, index.order), jet, index),
            compose(TAYLOR["cos"](jet.value, index.order), jet, index))


def product(a: Jet, b: Jet, index: JetIndex) -> Jet:
    """The jet of the elementwise product ``h * g`` (for gated layers and output transforms)."""
    ra, rb = a.coeffs.unbind(1), b.coeffs.unbind(1)
    out = []
    for k, target in enumerate(index.multi):
        total = a.value * rb[k] + b.value * ra[k]
        for i, p in enumerate(index.multi):
            rest = tuple(q - x for x, q in zip(p, target))
            if min(rest) >= 0 and sum(rest) > 0:
                total = total + ra[i] * rb[index.position[rest]]
        out.append(total)
    coeffs = torch.stack(out, 1) if out else a.coeffs
    return Jet(a.value * b.value, coeffs)


def network_jet(net: nn.Module, x: Tensor, index: JetIndex) -> Jet:
    """The jet of the network's outputs at points ``x`` of shape ``(N, d)``: values ``(n_out, N)``."""
    return jet_through(net, index.seed(x), index)


def unsupported_reason(net: nn.Module, n_coords: int) -> str | None:
    """Why jets cannot run ``net`` (a module without a rule, or a result that differs from
    ``net(x)``, e.g. a subclass that changed ``forward``), or None when they can."""
    parameter = next(net.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.get_default_dtype()
    device = parameter.device if parameter is not None else torch.device("cpu")
    probe = torch.rand(3, n_coords, dtype=dtype, device=device, generator=torch.Generator().manual_seed(0)).to(device)
    try:
        with torch.no_grad():
            value = network_jet(net, probe, JetIndex(n_coords, [])).value.T
            expected = net(probe)
    except JetUnsupportedError as err:
        return str(err)
    if value.shape != expected.shape or not torch.allclose(value, expected, rtol=1e-4, atol=1e-6):
        return f"the jet of {type(net).__name__} does not reproduce its forward() (a changed forward or a hook)"
    return None


class JetDerivatives:
    """The partials of named fields at points ``x`` from one jet pass; same interface as ``Derivatives``.

    Args:
        net: the network (every module on its path needs a jet rule).
        x: points ``(N, d)``; they need not require gradients.
        coords, fields: the names of the columns of ``x`` and of the outputs.
        required: ``(field, coords)`` derivatives to compute in the pass. A request outside
            the set is added to ``required`` (so the caller's next step includes it) and
            served by a new pass.
        index: a prebuilt :class:`JetIndex` covering ``required`` (built from it when None);
            building it outside ``torch.compile`` keeps the compiled graph free of breaks.
        on_new_index: called with the new index when a request outside the set extends it.

    Examples:
        >>> net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
        >>> D = JetDerivatives(net, torch.rand(5, 2), ["x", "t"], ["u"], {("u", ("x", "x"))})
        >>> D("u", ("x", "x")).shape
        torch.Size([5])
    """

    def __init__(self, net: nn.Module, x: Tensor, coords: Sequence[str], fields: Sequence[str],
                 required: set[tuple[str, tuple[str, ...]]], index: JetIndex | None = None,
                 on_new_index: Callable[[JetIndex], None] | None = None):
        self.net, self.x = net, x
        self.coords, self._field_index = list(coords), {name: k for k, name in enumerate(fields)}
        self.required, self._on_new_index = required, on_new_index
        self.passes = 0
        """How many jet passes this object has run (1 unless a request was outside ``required``)."""
        self._run(index if index is not None else index_for(self.coords, required))

    def _run(self, index: JetIndex) -> None:
        self.index = index
        jet = network_jet(self.net, self.x, index)
        self.y, self._coeffs = jet.value.T, jet.coeffs  # y: (N, fields), like the network's forward
        self.passes += 1

    def __call__(self, field: str, wrt: Sequence[str] = ()) -> Tensor:
        """The ``(N,)`` partial of ``field`` along the coordinate names in ``wrt`` (order irrelevant)."""
        if field not in self._field_index:
            raise KeyError(f"unknown field {field!r}; fields are {list(self._field_index)}")
        a = multi_index(self.coords, wrt)
        column = self._field_index[field]
        if sum(a) == 0:
            return self.y[:, column]
        if a not in self.index:
            self.required.add((field, tuple(sorted(wrt))))
            self._run(index_for(self.coords, self.required))
            if self._on_new_index is not None:
                self._on_new_index(self.index)
        row = self.index.position[a]
        return self.index.factorials[row] * self._coeffs[column, row]


def multi_index(coords: Sequence[str], wrt: Sequence[str]) -> MultiIndex:
    """``("x", "x", "t")`` over coordinates ``["x", "t"]`` -> ``(2, 1)``."""
    for c in wrt:
        if c not in coords:
            raise KeyError(f"unknown coordinate {c!r}; coordinates are {list(coords)}")
    return tuple(sum(1 for c in wrt if c == name) for name in coords)


def index_for(coords: Sequence[str], required: Iterable[tuple[str, Sequence[str]]]) -> JetIndex:
    """The :class:`JetIndex` that carries every ``(field, coords)`` partial in ``required``."""
    return JetIndex(len(coords), [multi_index(coords, wrt) for _, wrt in required])
