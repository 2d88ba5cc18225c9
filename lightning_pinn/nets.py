"""Networks: an MLP with input scaling, optional periodic and Fourier embeddings, residual or
gated ("modified MLP") layers and random weight factorization; and :class:`ConstrainedNet`, a
network followed by the output transform (hard constraints) of a problem.

Each module here also declares how forward-mode derivative jets pass through it
(:mod:`lightning_pinn.derivatives.jets`), so these networks run on the fast engine.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_pinn.derivatives.jet_algebra import JetValue
from lightning_pinn.derivatives.jets import (
    Jet,
    JetIndex,
    jet_through,
    linear,
    product,
    register_activation,
    register_jet_rule,
    sin_cos,
)
from lightning_pinn.derivatives.taylor import TAYLOR
from lightning_pinn.errors import ConfigError

if TYPE_CHECKING:
    from lightning_pinn.problem.output_transform import OutputTransform


class Sin(nn.Module):
    """Elementwise sine activation."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


register_activation(Sin)(lambda module, v, order: TAYLOR["sin"](v, order))


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "sin": Sin,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "relu": nn.ReLU,
}


def _xavier_linear(n_in: int, n_out: int) -> nn.Linear:
    linear = nn.Linear(n_in, n_out)
    nn.init.xavier_normal_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


class InputScaling(nn.Module):
    """Maps each input column affinely from ``[lo, hi]`` to ``[-1, 1]``."""

    def __init__(self, bounds: Sequence[Sequence[float]]):
        super().__init__()
        lo = torch.tensor([float(b[0]) for b in bounds])
        hi = torch.tensor([float(b[1]) for b in bounds])
        if torch.any(hi <= lo):
            raise ConfigError(f"Expected bounds with lo < hi but got {[list(b) for b in bounds]}")
        self.register_buffer("centre", (hi + lo) / 2)
        self.register_buffer("half_width", (hi - lo) / 2)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.centre) / self.half_width


@register_jet_rule(InputScaling)
def _scaling_jet(module: InputScaling, jet: Jet, index: JetIndex, path: str) -> Jet:
    centre, half_width = module.centre.unsqueeze(1), module.half_width.unsqueeze(1)
    return Jet((jet.value - centre) / half_width, jet.coeffs / half_width.unsqueeze(2))


def _periods(periods: Any, in_features: int, key: str) -> list[float | None]:
    """``periods`` as a list aligned with the inputs (None: not periodic), validated."""
    if isinstance(periods, Mapping):
        aligned: list[Any] = [None] * in_features
        for column, period in periods.items():
            if isinstance(column, bool) or not isinstance(column, int) or not 0 <= column < in_features:
                raise ConfigError(f"{key}: expected column indices in 0..{in_features - 1} as keys "
                                 f"but got {column!r} in {dict(periods)}")
            aligned[column] = period
    elif isinstance(periods, Sequence) and not isinstance(periods, str):
        aligned = list(periods)
        if len(aligned) != in_features:
            raise ConfigError(f"{key}: expected {in_features} entries (a period or null per input) "
                             f"but got {len(aligned)}: {aligned}")
    else:
        raise ConfigError(f"{key}: expected a list with a period or null per input, or {{column: period}}, "
                         f"but got {periods!r}")
    for period in aligned:
        if period is None:
            continue
        if isinstance(period, bool) or not isinstance(period, (int, float)) or not 0 < period < math.inf:
            raise ConfigError(f"{key}: expected positive finite periods but got {period!r} in {aligned}")
    return [None if p is None else float(p) for p in aligned]


class PeriodicEmbedding(nn.Module):
    """Exact periodicity: ``x_j -> [cos(2 pi k x_j / P_j), sin(2 pi k x_j / P_j)], k = 1..harmonics``.

    The periodic columns are replaced by their harmonics, the others pass through unchanged:
    the output is ``[x_other, cos(...), sin(...)]`` with, per periodic column in input order,
    ``harmonics`` cosines and then (after all cosines) as many sines. Anything computed from
    the output is ``P_j``-periodic in ``x_j`` for every input, to rounding.

    Args:
        in_features: number of inputs.
        periods: a period or None per input (``[2.0, None]``), or ``{column: period}``.
        harmonics: number of harmonics ``k = 1..harmonics`` per periodic column.

    Raises:
        ValueError: for a period that is not positive and finite, a list of the wrong length,
            a column outside ``0..in_features - 1``, or ``harmonics < 1``.

    Examples:
        >>> emb = PeriodicEmbedding(2, [2.0, None])
        >>> emb(torch.tensor([[0.0, 7.0]]))  # [x_1, cos(pi x_0), sin(pi x_0)]
        tensor([[7., 1., 0.]])
    """

    def __init__(self, in_features: int, periods: Sequence[float | None] | Mapping[int, float], harmonics: int = 1):
        super().__init__()
        if isinstance(harmonics, bool) or not isinstance(harmonics, int) or harmonics < 1:
            raise ConfigError(f"harmonics: expected a positive integer but got {harmonics!r}")
        self.periods = _periods(periods, in_features, "periods")
        self.harmonics = harmonics
        self.periodic_columns = [j for j, p in enumerate(self.periods) if p is not None]
        self.other_columns = [j for j, p in enumerate(self.periods) if p is None]
        # angular frequencies 2 pi k / P as Python floats: made in the input's dtype on each call,
        # so a network built in float32 and moved to float64 stays periodic to float64 rounding
        self._omega = [[2 * math.pi * k / self.periods[j] for k in range(1, harmonics + 1)]
                       for j in self.periodic_columns]
        self.out_features = len(self.other_columns) + 2 * harmonics * len(self.periodic_columns)

    def _feature_angles(self, x: Tensor) -> Tensor:
        """The angles ``2 pi k x_j / P_j`` of the periodic columns, features first: ``x`` is ``(d, ...)``."""
        omega = torch.tensor(self._omega, dtype=x.dtype, device=x.device)
        z = x[self.periodic_columns].unsqueeze(1) * omega.view(*omega.shape, *[1] * (x.dim() - 1))
        return z.reshape(len(self.periodic_columns) * self.harmonics, *x.shape[1:])

    def forward(self, x: Tensor) -> Tensor:
        z = self._feature_angles(x.movedim(-1, 0)).movedim(0, -1)
        return torch.cat([x[..., self.other_columns], torch.cos(z), torch.sin(z)], dim=-1)

    def extra_repr(self) -> str:
        return f"periods={self.periods}, harmonics={self.harmonics}"


@register_jet_rule(PeriodicEmbedding)
def _periodic_jet(module: PeriodicEmbedding, jet: Jet, index: JetIndex, path: str) -> Jet:
    sin, cos = sin_cos(Jet(module._feature_angles(jet.value), module._feature_angles(jet.coeffs)), index)
    other = module.other_columns
    return Jet(torch.cat([jet.value[other], cos.value, sin.value]), torch.cat([jet.coeffs[other], cos.coeffs, sin.coeffs]))


class FourierFeatures(nn.Module):
    """Random Fourier features ``[cos(2 pi x B), sin(2 pi x B)]`` (Tancik et al. 2020; Wang et al. 2021).

    ``B`` is ``(in_features, features)`` with entries from ``N(0, scale^2)``, fixed (a buffer).
    A larger ``scale`` lets the network fit higher frequencies.

    Args:
        in_features: number of inputs.
        features: number of frequencies; the output has ``2 * features`` columns.
        scale: standard deviation of the frequencies.
    """

    def __init__(self, in_features: int, features: int, scale: float = 1.0):
        super().__init__()
        if not scale > 0:
            raise ConfigError(f"Expected a positive Fourier feature scale but got {scale}")
        self.register_buffer("frequencies", 2 * math.pi * scale * torch.randn(in_features, features))

    def forward(self, x: Tensor) -> Tensor:
        z = x @ self.frequencies
        return torch.cat([torch.cos(z), torch.sin(z)], dim=-1)


@register_jet_rule(FourierFeatures)
def _fourier_jet(module: FourierFeatures, jet: Jet, index: JetIndex, path: str) -> Jet:
    sin, cos = sin_cos(linear(jet, module.frequencies.T), index)
    return Jet(torch.cat([cos.value, sin.value]), torch.cat([cos.coeffs, sin.coeffs]))


class FactorizedLinear(nn.Module):
    """Random weight factorization (Wang et al. 2022): ``y = x W^T + b`` with ``W = diag(exp(s)) V``.

    ``s`` (one per output neuron) and ``V`` are trained instead of ``W``. At initialisation
    ``W`` is Xavier-normal, ``s ~ N(mean, std^2)`` and ``V = W / exp(s)``, so the layer
    computes the same function as the plain layer it factorizes.

    Args:
        in_features, out_features: sizes of the layer.
        mean, std: the distribution of ``s``.
        weight, bias: the ``W`` and ``b`` to factorize (default: Xavier-normal ``W``, zero ``b``).

    Raises:
        ValueError: for a non-finite ``mean``, a negative or non-finite ``std``, or a ``weight``
            that is not ``(out_features, in_features)``.

    Examples:
        >>> layer = FactorizedLinear(3, 2, mean=1.0, std=0.1)
        >>> layer.s.shape, layer.v.shape, layer.weight.shape
        (torch.Size([2]), torch.Size([2, 3]), torch.Size([2, 3]))
    """

    def __init__(self, in_features: int, out_features: int, mean: float = 1.0, std: float = 0.1,
                 weight: Tensor | None = None, bias: Tensor | None = None):
        super().__init__()
        mean, std = _check_factorization(mean, std)
        if weight is None:
            weight = nn.init.xavier_normal_(torch.empty(out_features, in_features))
        elif tuple(weight.shape) != (out_features, in_features):
            raise ConfigError(f"Expected a weight of shape {(out_features, in_features)} but got {tuple(weight.shape)}")
        weight = weight.detach()
        self.in_features, self.out_features = in_features, out_features
        s = mean + std * torch.randn(out_features, dtype=weight.dtype, device=weight.device)
        self.s = nn.Parameter(s)
        self.v = nn.Parameter(weight / torch.exp(s)[:, None])
        self.bias = nn.Parameter(weight.new_zeros(out_features) if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, mean: float = 1.0, std: float = 0.1) -> FactorizedLinear:
        """The factorization of ``linear``: the same ``W`` and ``b`` (zero if it has none), new ``s``."""
        return cls(linear.in_features, linear.out_features, mean, std, weight=linear.weight, bias=linear.bias)

    @property
    def weight(self) -> Tensor:
        """The effective weight ``diag(exp(s)) V``, ``(out_features, in_features)``."""
        return torch.exp(self.s)[:, None] * self.v

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


@register_jet_rule(FactorizedLinear)
def _factorized_jet(module: FactorizedLinear, jet: Jet, index: JetIndex, path: str) -> Jet:
    return linear(jet, module.weight, module.bias)


def _check_factorization(mean: Any, std: Any) -> tuple[float, float]:
    for key, value in (("mean", mean), ("std", std)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"weight_factorization.{key}: expected a finite number but got {value!r}")
    if std < 0:
        raise ConfigError(f"weight_factorization.std: expected std >= 0 but got {std!r}")
    return float(mean), float(std)


def _factorize_linears(module: nn.Module, mean: float, std: float) -> None:
    """Replace every ``nn.Linear`` below ``module`` by its :class:`FactorizedLinear`, in registration order."""
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            setattr(module, name, FactorizedLinear.from_linear(child, mean, std))
        else:
            _factorize_linears(child, mean, std)


class ResidualBlock(nn.Module):
    """A skip connection ``x + block(x)`` around a block that keeps the width."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


@register_jet_rule(ResidualBlock)
def _residual_jet(module: ResidualBlock, jet: Jet, index: JetIndex, path: str) -> Jet:
    out = jet_through(module.block, jet, index, f"{path}.block")
    return Jet(jet.value + out.value, jet.coeffs + out.coeffs)


class ModifiedMLPLayers(nn.Module):
    """The gated layers of the modified MLP (Wang, Teng and Perdikaris 2021), ``L = depth``:

    ``U = act(X W_u + b_u)``, ``V = act(X W_v + b_v)``, ``H_1 = act(X W_1 + b_1)``,
    ``Z_k = act(H_k W_(k+1) + b_(k+1))`` and ``H_(k+1) = (1 - Z_k) * U + Z_k * V`` for
    ``k = 1..L-1``, output ``H_L W + b``. Every layer sees the input through the gates.

    Args:
        in_features, out_features: sizes of ``X`` and of the output.
        width: neurons per hidden layer.
        depth: number of hidden layers ``L >= 2`` (``L - 1`` gated layers).
        activation: a name from :data:`ACTIVATIONS`.

    Attributes:
        encoder_u, encoder_v: the layers of ``U`` and ``V``.
        hidden: ``W_1, ..., W_L``.
        output: ``W, b``.
    """

    def __init__(self, in_features: int, out_features: int, width: int, depth: int, activation: str = "tanh"):
        super().__init__()
        if depth < 2:
            raise ConfigError(f"depth: expected at least 2 for the modified MLP (depth 1 has no gated layer) but got {depth}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation: expected one of {sorted(ACTIVATIONS)} but got {activation!r}")
        self.encoder_u = _xavier_linear(in_features, width)
        self.encoder_v = _xavier_linear(in_features, width)
        self.hidden = nn.ModuleList([_xavier_linear(in_features, width)]
                                    + [_xavier_linear(width, width) for _ in range(depth - 1)])
        self.output = _xavier_linear(width, out_features)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        u = self.activation(self.encoder_u(x))
        v = self.activation(self.encoder_v(x))
        gap = v - u
        h = self.activation(self.hidden[0](x))
        for layer in self.hidden[1:]:
            h = u + self.activation(layer(h)) * gap  # (1 - Z) U + Z V
        return self.output(h)


def _activated_jet(module: nn.Module, name: str, inputs: Jet, index: JetIndex, path: str) -> Jet:
    """The jet of ``module.activation(module.<name>(inputs))``: one dense layer of a gated network."""
    linear = module.get_submodule(name)
    return jet_through(module.activation, jet_through(linear, inputs, index, f"{path}.{name}"), index,
                       f"{path}.activation")


@register_jet_rule(ModifiedMLPLayers)
def _modified_jet(module: ModifiedMLPLayers, jet: Jet, index: JetIndex, path: str) -> Jet:
    u = _activated_jet(module, "encoder_u", jet, index, path)
    v = _activated_jet(module, "encoder_v", jet, index, path)
    gap = Jet(v.value - u.value, v.coeffs - u.coeffs)
    h = _activated_jet(module, "hidden.0", jet, index, path)
    for k in range(1, len(module.hidden)):
        gated = product(_activated_jet(module, f"hidden.{k}", h, index, path), gap, index)
        h = Jet(u.value + gated.value, u.coeffs + gated.coeffs)
    return jet_through(module.output, h, index, f"{path}.output")


class PirateLayers(nn.Module):
    """The residual blocks of PirateNet (Wang, Sankaran, Wang and Perdikaris, arXiv 2402.00326).

    The input ``X`` is an embedding of the coordinates as wide as the network (in :class:`MLP`: Fourier
    features with ``2 * fourier_features == width``). Gates ``U = act(X W_u + b_u)``, ``V = act(X W_v + b_v)``;
    each of the ``depth`` blocks maps ``H`` (``H_0 = X``) to

    ``F = act(H W_1 + b_1)``, ``Z_1 = F * U + (1 - F) * V``, ``G = act(Z_1 W_2 + b_2)``,
    ``Z_2 = G * U + (1 - G) * V``, ``K = act(Z_2 W_3 + b_3)``, ``H' = alpha K + (1 - alpha) H``

    with a trainable scalar ``alpha`` per block, zero at initialization, so that the network starts
    as ``X W + b``, linear in the embedding, and deepens as the ``alpha`` grow. Output ``H_L W + b``.

    Args:
        in_features: size of ``X``; must equal ``width``.
        out_features: number of outputs.
        width: neurons per layer.
        depth: number of residual blocks (three dense layers each).
        activation: a name from :data:`ACTIVATIONS`.

    Attributes:
        encoder_u, encoder_v: the layers of ``U`` and ``V``.
        blocks: per block, its three dense layers.
        alpha: per block, its gate ``alpha`` (a parameter of shape ``(depth,)``).
        output: ``W, b``.
    """

    def __init__(self, in_features: int, out_features: int, width: int, depth: int, activation: str = "tanh"):
        super().__init__()
        if in_features != width:
            raise ConfigError(f"fourier_features: PirateNet's blocks need an embedding as wide as the network, "
                              f"2 * fourier_features = width = {width}, but the embedding has {in_features} features")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation: expected one of {sorted(ACTIVATIONS)} but got {activation!r}")
        self.encoder_u = _xavier_linear(in_features, width)
        self.encoder_v = _xavier_linear(in_features, width)
        self.blocks = nn.ModuleList([nn.ModuleList([_xavier_linear(width, width) for _ in range(3)])
                                     for _ in range(depth)])
        self.alpha = nn.Parameter(torch.zeros(depth))
        self.output = _xavier_linear(width, out_features)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        u = self.activation(self.encoder_u(x))
        v = self.activation(self.encoder_v(x))
        gap = u - v
        h = x
        for k, (first, second, third) in enumerate(self.blocks):
            z = v + self.activation(first(h)) * gap  # F U + (1 - F) V
            z = v + self.activation(second(z)) * gap
            h = h + self.alpha[k] * (self.activation(third(z)) - h)
        return self.output(h)


@register_jet_rule(PirateLayers)
def _pirate_jet(module: PirateLayers, jet: Jet, index: JetIndex, path: str) -> Jet:
    u = _activated_jet(module, "encoder_u", jet, index, path)
    v = _activated_jet(module, "encoder_v", jet, index, path)
    gap = Jet(u.value - v.value, u.coeffs - v.coeffs)
    h = jet
    for k, block in enumerate(module.blocks):
        z = h
        for j in (0, 1):  # Z = V + act(Z W_j + b_j) (U - V)
            gated = product(_activated_jet(module, f"blocks.{k}.{j}", z, index, path), gap, index)
            z = Jet(v.value + gated.value, v.coeffs + gated.coeffs)
        out = _activated_jet(module, f"blocks.{k}.2", z, index, path)
        alpha = module.alpha[k]
        h = Jet(h.value + alpha * (out.value - h.value), h.coeffs + alpha * (out.coeffs - h.coeffs))
    return jet_through(module.output, h, index, f"{path}.output")


def _plain_layers(in_features: int, out_features: int, width: int, depth: int, activation: str,
                  residual: bool) -> nn.Module:
    sizes = [in_features] + [width] * depth + [out_features]
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = _xavier_linear(n_in, n_out)
        if k == len(sizes) - 2:
            layers.append(linear)
        elif residual and k > 0:
            layers.append(ResidualBlock(nn.Sequential(linear, ACTIVATIONS[activation]())))
        else:
            layers += [linear, ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


def _modified_layers(in_features: int, out_features: int, width: int, depth: int, activation: str,
                     residual: bool) -> nn.Module:
    if residual:
        raise ConfigError("Expected residual=False with architecture='modified' (its gates already "
                         "connect every layer to the input) but got residual=True")
    return ModifiedMLPLayers(in_features, out_features, width, depth, activation)


def _pirate_layers(in_features: int, out_features: int, width: int, depth: int, activation: str,
                   residual: bool) -> nn.Module:
    if residual:
        raise ConfigError("Expected residual=False with architecture='pirate' (its blocks are residual already) "
                          "but got residual=True")
    return PirateLayers(in_features, out_features, width, depth, activation)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": _plain_layers,
    "modified": _modified_layers,
    "pirate": _pirate_layers,
}
"""``architecture`` name -> ``(in_features, out_features, width, depth, activation, residual) -> layers``."""


def _weight_factorization(value: Any) -> dict[str, float] | None:
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"weight_factorization: expected null, true or {{mean: ..., std: ...}} but got {value!r}")
    unknown = sorted(set(value) - {"mean", "std"})
    if unknown:
        raise ConfigError(f"weight_factorization: unknown keys {unknown}; expected mean and std")
    mean, std = _check_factorization(value.get("mean", 1.0), value.get("std", 0.1))
    return {"mean": mean, "std": std}


class MLP(nn.Module):
    """A network ``R^in -> R^out``: optional periodic embedding, input scaling and Fourier
    features, then Xavier-initialised layers.

    ``x -> periodic(x) -> scale(.) -> fourier(.) -> layers``. ``architecture="mlp"`` layers are
    ``H_(k+1) = act(H_k W_k + b_k)`` (with ``residual``: ``H_k + act(H_k W_k + b_k)`` after the
    first); ``architecture="modified"`` is the gated MLP of :class:`ModifiedMLPLayers`;
    ``architecture="pirate"`` the residual blocks of :class:`PirateLayers` (needs
    ``2 * fourier_features == width``; ``depth`` counts blocks).

    Args:
        in_features: number of coordinates.
        out_features: number of fields.
        width: neurons per hidden layer.
        depth: number of hidden layers.
        activation: one of ``tanh``, ``sin``, ``sigmoid``, ``softplus``, ``gelu``, ``silu``, ``relu``.
        bounds: ``[[lo, hi], ...]`` per input; when given, inputs are scaled to ``[-1, 1]`` first
            (periodic inputs are embedded from their raw values instead).
        fourier_features: when positive, embed the (scaled) inputs with that many random
            Fourier frequencies (:class:`FourierFeatures`) before the first layer.
        fourier_scale: standard deviation of those frequencies.
        residual: skip connections ``h + act(W h + b)`` around every hidden layer after the first
            (``architecture="mlp"`` only).
        architecture: ``mlp``, ``modified`` or ``pirate`` (:data:`ARCHITECTURES`).
        weight_factorization: ``{mean: 1.0, std: 0.1}`` (or ``true`` for those) factorizes every
            linear layer as ``diag(exp(s)) V`` (:class:`FactorizedLinear`); null: plain layers.
        periodic: a period or null per input (``[2.0, null]``), or ``{column: period}``: those
            inputs enter only through :class:`PeriodicEmbedding`, so the network is exactly periodic.
        periodic_harmonics: harmonics per periodic input.

    Raises:
        ValueError: for a bad value, quoting it.

    Examples:
        >>> net = MLP(2, 1, width=20, depth=8, bounds=[[-1, 1], [0, 1]])
        >>> net(torch.zeros(5, 2)).shape
        torch.Size([5, 1])
        >>> net = MLP(2, 1, architecture="modified", weight_factorization={"mean": 1.0, "std": 0.1},
        ...           periodic=[2.0, None], bounds=[[-1, 1], [0, 1]])
        >>> net(torch.zeros(5, 2)).shape
        torch.Size([5, 1])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        width: int = 20,
        depth: int = 8,
        activation: str = "tanh",
        bounds: Sequence[Sequence[float]] | None = None,
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        residual: bool = False,
        architecture: str = "mlp",
        weight_factorization: Mapping[str, float] | bool | None = None,
        periodic: Sequence[float | None] | Mapping[int, float] | None = None,
        periodic_harmonics: int = 1,
    ):
        super().__init__()
        for key, value in (("in_features", in_features), ("out_features", out_features), ("width", width), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key}: expected a positive integer but got {value!r}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation: expected one of {sorted(ACTIVATIONS)} but got {activation!r}")
        if isinstance(fourier_features, bool) or not isinstance(fourier_features, int) or fourier_features < 0:
            raise ConfigError(f"fourier_features: expected a non-negative integer but got {fourier_features!r}")
        if bounds is not None and len(bounds) != in_features:
            raise ConfigError(f"Expected {in_features} bounds (one per input) but got {len(bounds)}")
        if architecture not in ARCHITECTURES:
            raise ConfigError(f"architecture: expected one of {list(ARCHITECTURES)} but got {architecture!r}")
        factorization = _weight_factorization(weight_factorization)
        periods = None if periodic is None else _periods(periodic, in_features, "periodic")
        if isinstance(periodic_harmonics, bool) or not isinstance(periodic_harmonics, int) or periodic_harmonics < 1:
            raise ConfigError(f"periodic_harmonics: expected a positive integer but got {periodic_harmonics!r}")
        self._config = {"in_features": in_features, "out_features": out_features, "width": width,
                        "depth": depth, "activation": activation,
                        "bounds": None if bounds is None else [[float(v) for v in b] for b in bounds],
                        "fourier_features": fourier_features, "fourier_scale": float(fourier_scale),
                        "residual": bool(residual), "architecture": architecture,
                        "weight_factorization": factorization, "periodic": periods,
                        "periodic_harmonics": periodic_harmonics}
        n_features = in_features
        if periods is not None and any(p is not None for p in periods):
            self.periodic: nn.Module = PeriodicEmbedding(in_features, periods, periodic_harmonics)
            n_features = self.periodic.out_features
            if bounds is not None:  # the harmonics are in [-1, 1] already: scale only the other columns
                bounds = [bounds[j] for j in self.periodic.other_columns] + [[-1.0, 1.0]] * (
                    n_features - len(self.periodic.other_columns))
        else:
            self.periodic = nn.Identity()
        self.scaling = InputScaling(bounds) if bounds is not None else nn.Identity()
        self.embedding = FourierFeatures(n_features, fourier_features, fourier_scale) if fourier_features else nn.Identity()
        self.layers = ARCHITECTURES[architecture](2 * fourier_features or n_features, out_features, width, depth,
                                                  activation, bool(residual))
        if factorization is not None:
            _factorize_linears(self.layers, factorization["mean"], factorization["std"])

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(self.embedding(self.scaling(self.periodic(x))))

    def to_config(self) -> dict[str, Any]:
        """A config that rebuilds this network with ``hydra.utils.instantiate``."""
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}", **self._config}


@register_jet_rule(MLP)
def _mlp_jet(module: MLP, jet: Jet, index: JetIndex, path: str) -> Jet:
    for name in ("periodic", "scaling", "embedding", "layers"):
        jet = jet_through(getattr(module, name), jet, index, f"{path}.{name}")
    return jet


class ConstrainedNet(nn.Module):
    """``net`` followed by an output transform: ``fields = transform(x, net(x))`` satisfy the hard
    constraints exactly (see ``lightning_pinn.problem.output_transform``).

    Jets pass through it when they pass through ``net`` and the transforms use functions with
    jet rules (Taylor arithmetic on the transform's compiled expressions).

    Args:
        net: the network of raw outputs.
        transform: a problem's ``OutputTransform``.
    """

    def __init__(self, net: nn.Module, transform: OutputTransform):
        super().__init__()
        self.net, self.transform = net, transform

    def forward(self, x: Tensor) -> Tensor:
        return self.transform(x, self.net(x))


@register_jet_rule(ConstrainedNet)
def _constrained_jet(module: ConstrainedNet, jet: Jet, index: JetIndex, path: str) -> Jet:
    """The fields' jet from the jets of the points and of the raw outputs, one ``JetValue`` per column."""
    raw = jet_through(module.net, jet, index, f"{path}.net")
    transform = module.transform

    def column(source: Jet, k: int) -> JetValue:
        return JetValue(Jet(source.value[k:k + 1], source.coeffs[k:k + 1]), index)

    columns = {name: column(jet, k) for k, name in enumerate(transform.coords)}
    columns.update({name: column(raw, k) for k, name in enumerate(transform.fields)})
    values, coeffs = [], []
    for name, out in zip(transform.fields, transform.evaluate(columns)):
        if not isinstance(out, JetValue):  # a constant field
            out = columns[name] * 0.0 + float(out)
        values.append(out.jet.value)
        coeffs.append(out.jet.coeffs)
    return Jet(torch.cat(values), torch.cat(coeffs))
