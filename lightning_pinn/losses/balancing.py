"""Loss balancing: per-term weights ``lambda_i`` in the total ``sum_i w_i * lambda_i * L_i``.

``L_i`` are a step's unweighted loss terms, ``w_i`` the user's fixed weights and
``lambda_i`` what a balancer returns: detached scalar tensors, one per term, so the
balancing itself is never differentiated. A balancer is called once per step, before
the backward pass::

    lam = balancer.weights(terms, params=trainable, step=global_step, reduce=mean_over_ranks)
    loss = sum(w[k] * lam[k] * terms[k] for k in terms)

Calls repeated with the same ``step`` (L-BFGS evaluates its closure many times per
step) return the weights of that step without updating them. Under DDP each rank has
its own losses and gradients; ``reduce`` (a mean over ranks) is applied to the
statistics a balancer forms its weights from, so every rank computes the same weights.
Balancers keep their state in :meth:`Balancer.state_dict`, so a resumed run continues
the same sequence of weights.

Implementations are picked by name from :data:`BALANCERS` by :func:`build_balancer`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor

from lightning_pinn.config import build, to_plain
from lightning_pinn.errors import ConfigError

Reduce = Callable[[Tensor], Tensor]
"""A reduction over DDP ranks (the mean), applied to a balancer's statistics before it forms its weights."""


class Balancer:
    """Per-term loss weights ``lambda_i``: the base class, and the protocol :func:`build_balancer` accepts.

    A balancer is any object with ``weights(terms, params, step, reduce)``, ``state_dict()``
    and ``load_state_dict(state)``; subclassing this one gives the two state methods for a
    stateless balancer.

    ``term_gradients`` says whether :meth:`weights` differentiates the terms one by one
    (``retain_graph=True``), which rules out inductor's C++ wrapper under ``compile`` (see
    ``PINNModule.compiled_loss_terms``). A balancer without the attribute is assumed to need them.
    """

    term_gradients: bool = True

    def weights(
        self,
        terms: Mapping[str, Tensor],
        params: Iterable[Tensor] = (),
        step: int = 0,
        reduce: Reduce | None = None,
    ) -> dict[str, Tensor]:
        """Detached weights ``{name: lambda_i}``, 0-dim tensors on each term's device and dtype.

        Args:
            terms: the unweighted loss terms ``{name: L_i}`` of this step (scalars, with their graph).
            params: the trainable parameters, for balancers that look at gradients.
            step: the optimizer step (``global_step``); a balancer updates at most once per step.
            reduce: mean over DDP ranks, applied to the statistics before the weights are formed.
        """
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue the same weights (nothing for a stateless balancer)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def to_config(self) -> dict[str, Any]:
        """A ``_target_`` config that rebuilds this balancer (its arguments, not its state)."""
        raise ConfigError(f"balancing: {type(self).__name__} does not describe itself as a config")


class FixedWeights(Balancer):
    """``lambda_i = 1``: the user's weights alone.

    Examples:
        >>> FixedWeights().weights({"pde": torch.tensor(2.0), "initial": torch.tensor(3.0)})
        {'pde': tensor(1.), 'initial': tensor(1.)}
    """

    term_gradients = False

    def weights(
        self,
        terms: Mapping[str, Tensor],
        params: Iterable[Tensor] = (),
        step: int = 0,
        reduce: Reduce | None = None,
    ) -> dict[str, Tensor]:
        return {name: torch.ones((), dtype=value.dtype, device=value.device) for name, value in terms.items()}

    def to_config(self) -> dict[str, Any]:
        return {"_target_": _path(FixedWeights)}


class GradNormBalancing(Balancer):
    """Learning-rate annealing: weights that equalize the gradient norms of the terms.

    Every ``every`` steps, with ``g_i = ||grad_theta L_i||`` (the 2-norm over all trainable
    parameters)::

        lambda_hat_i = (sum_j g_j) / g_i
        lambda_i    <- alpha * lambda_i + (1 - alpha) * lambda_hat_i

    starting from ``lambda_i = 1`` (Wang, Teng & Perdikaris 2021, in the form of Wang et
    al. 2023, "An Expert's Guide to Training Physics-informed Neural Networks"). Each
    ``g_i`` costs one backward pass (``torch.autograd.grad(L_i, params, retain_graph=True)``);
    between updates the stored weights are returned and no gradient is computed. The first
    call updates. A term with ``g_i = 0`` (it does not depend on the parameters) keeps its
    weight. Under DDP, ``reduce`` is applied to the vector of the ``g_i``.

    Args:
        every: steps between updates (a positive integer).
        alpha: weight of the old value in the moving average, in ``[0, 1]``.

    Examples:
        >>> w = torch.tensor([1.0, 1.0], requires_grad=True)
        >>> terms = {"pde": (3 * w).sum(), "initial": (4 * w).sum()}  # gradient norms 3*sqrt(2), 4*sqrt(2)
        >>> lam = GradNormBalancing(every=10, alpha=0.0).weights(terms, params=[w], step=0)
        >>> {k: round(v.item(), 4) for k, v in lam.items()}
        {'pde': 2.3333, 'initial': 1.75}
    """

    def __init__(self, every: int = 100, alpha: float = 0.9):
        self.every = _positive_int(every, "balancing.every")
        self.alpha = _unit_interval(alpha, "balancing.alpha")
        self._weights: dict[str, Tensor] = {}
        self._updated_at: int | None = None

    def weights(
        self,
        terms: Mapping[str, Tensor],
        params: Iterable[Tensor] = (),
        step: int = 0,
        reduce: Reduce | None = None,
    ) -> dict[str, Tensor]:
        step = int(step)
        if self._updated_at is None or step >= self._updated_at + self.every:
            self._update(terms, list(params), reduce)
            self._updated_at = step
        return {name: self._weight(name, value) for name, value in terms.items()}

    def _weight(self, name: str, like: Tensor) -> Tensor:
        stored = self._weights.get(name)
        if stored is None:
            return torch.ones((), dtype=like.dtype, device=like.device)
        if stored.device != like.device or stored.dtype != like.dtype:
            stored = self._weights[name] = stored.to(device=like.device, dtype=like.dtype)
        return stored

    def _update(self, terms: Mapping[str, Tensor], params: list[Tensor], reduce: Reduce | None) -> None:
        if not terms:
            return
        names = list(terms)
        norms = torch.stack([_grad_norm(terms[name], params) for name in names])
        if reduce is not None:
            norms = reduce(norms)
        old = torch.stack([self._weight(name, norms) for name in names])
        hat = torch.where(norms > 0, norms.sum() / norms, old)
        new = (self.alpha * old + (1 - self.alpha) * hat).detach()
        for name, value, term in zip(names, new, terms.values()):
            self._weights[name] = value.to(dtype=term.dtype)

    def state_dict(self) -> dict[str, Any]:
        """``{"weights": {name: float}, "updated_at": step or None}``."""
        return {"weights": {k: float(v) for k, v in self._weights.items()}, "updated_at": self._updated_at}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._weights = {k: torch.tensor(float(v), dtype=torch.float64) for k, v in state["weights"].items()}
        self._updated_at = None if state["updated_at"] is None else int(state["updated_at"])

    def to_config(self) -> dict[str, Any]:
        return {"_target_": _path(GradNormBalancing), "every": self.every, "alpha": self.alpha}


class ReLoBRaLo(Balancer):
    """Relative Loss Balancing with Random Lookback (Bischof & Kraus 2021).

    With ``m`` terms and ``softmax`` over the terms::

        bal_i(t, t')  = m * softmax_i( L_i(t) / (T * L_i(t')) )
        hist_i(t)     = rho * lambda_i(t-1) + (1 - rho) * bal_i(t, 0)
        lambda_i(t)   = alpha * hist_i(t) + (1 - alpha) * bal_i(t, t-1)

    with ``rho ~ Bernoulli(expected_rho)`` drawn each step from a generator seeded with
    ``seed``, and ``lambda(0) = 1``. A term whose loss fell relatively less than the others
    (since the last step, or since the start) gets a larger weight; the weights always sum
    to ``m``. ``t`` counts calls with a new ``step``. Under DDP, ``reduce`` is applied to
    the vector of the losses, and every rank draws the same ``rho`` (same seed).

    Args:
        alpha: weight of the history in ``[0, 1]`` (the paper's exponential decay).
        temperature: the softmax temperature ``T > 0``.
        expected_rho: probability in ``[0, 1]`` of looking back to the last weights rather than to ``t = 0``.
        seed: seed of the generator of ``rho``.

    Raises:
        ValueError: when the names of the terms change between steps.

    Examples:
        >>> balancer = ReLoBRaLo(alpha=0.5, temperature=1.0, expected_rho=1.0)
        >>> _ = balancer.weights({"pde": torch.tensor(1.0), "initial": torch.tensor(1.0)}, step=0)
        >>> lam = balancer.weights({"pde": torch.tensor(0.5), "initial": torch.tensor(1.0)}, step=1)
        >>> [round(v.item(), 4) for v in lam.values()]  # the term that did not fall gets more weight
        [0.8775, 1.1225]
    """

    term_gradients = False

    def __init__(self, alpha: float = 0.999, temperature: float = 0.1, expected_rho: float = 0.999, seed: int = 0):
        self.alpha = _unit_interval(alpha, "balancing.alpha")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ConfigError(f"balancing.temperature: expected a positive number but got {temperature!r}")
        self.temperature = float(temperature)
        self.expected_rho = _unit_interval(expected_rho, "balancing.expected_rho")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"balancing.seed: expected an integer but got {seed!r}")
        self.seed = seed
        self._generator = torch.Generator().manual_seed(seed)
        self._names: tuple[str, ...] | None = None
        self._initial: Tensor | None = None  # L(0)
        self._previous: Tensor | None = None  # L(t-1)
        self._lambda: Tensor | None = None  # lambda(t-1), then lambda(t)
        self._step: int | None = None

    def weights(
        self,
        terms: Mapping[str, Tensor],
        params: Iterable[Tensor] = (),
        step: int = 0,
        reduce: Reduce | None = None,
    ) -> dict[str, Tensor]:
        if self._names is None:
            self._names = tuple(terms)
        elif set(terms) != set(self._names):
            raise ConfigError(f"balancing: ReLoBRaLo balances the terms {list(self._names)} but got {list(terms)}")
        if self._lambda is None or int(step) != self._step:
            self._update(terms, reduce)
            self._step = int(step)
        return {name: self._lambda[i] for i, name in enumerate(self._names)}

    def _update(self, terms: Mapping[str, Tensor], reduce: Reduce | None) -> None:
        first = terms[self._names[0]]
        losses = torch.stack([terms[name].detach().to(dtype=first.dtype) for name in self._names])
        if reduce is not None:
            losses = reduce(losses)
        if self._lambda is None or self._initial is None or self._previous is None:
            self._initial, self._previous, self._lambda = losses, losses, torch.ones_like(losses)
            return
        initial, previous, old = (x.to(losses) for x in (self._initial, self._previous, self._lambda))
        rho = float(torch.rand((), generator=self._generator) < self.expected_rho)  # on the CPU: no device sync
        history = rho * old + (1 - rho) * self._balance(losses, initial)
        self._lambda = (self.alpha * history + (1 - self.alpha) * self._balance(losses, previous)).detach()
        self._initial, self._previous = initial, losses

    def _balance(self, losses: Tensor, reference: Tensor) -> Tensor:
        tiny = torch.finfo(losses.dtype).tiny
        return len(losses) * torch.softmax(losses / (self.temperature * reference.clamp_min(tiny)), dim=0)

    def state_dict(self) -> dict[str, Any]:
        """Names, ``L(0)``, ``L(t-1)``, the current weights (as floats), the last step and the generator state."""

        def floats(x: Tensor | None) -> list[float] | None:
            return None if x is None else [float(v) for v in x.detach().cpu().to(torch.float64)]

        return {
            "names": None if self._names is None else list(self._names),
            "initial": floats(self._initial),
            "previous": floats(self._previous),
            "weights": floats(self._lambda),
            "step": self._step,
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        def tensor(x: list[float] | None) -> Tensor | None:
            return None if x is None else torch.tensor(x, dtype=torch.float64)

        self._names = None if state["names"] is None else tuple(state["names"])
        self._initial, self._previous = tensor(state["initial"]), tensor(state["previous"])
        self._lambda = tensor(state["weights"])
        self._step = None if state["step"] is None else int(state["step"])
        self._generator.set_state(state["generator"])

    def to_config(self) -> dict[str, Any]:
        return {
            "_target_": _path(ReLoBRaLo), "alpha": self.alpha, "temperature": self.temperature,
            "expected_rho": self.expected_rho, "seed": self.seed,
        }


BALANCERS: dict[str, type[Balancer]] = {"fixed": FixedWeights, "gradnorm": GradNormBalancing, "relobralo": ReLoBRaLo}
"""Balancers by the name a config picks them with."""


def build_balancer(spec: Any = None) -> Balancer:
    """A balancer from ``None`` (:class:`FixedWeights`), a name in :data:`BALANCERS`, a mapping
    ``{"name": ..., **arguments}``, a ``_target_`` config, or a balancer (returned as is).

    Raises:
        ValueError: naming the key ``balancing``, the bad value and the valid names or arguments.

    Examples:
        >>> build_balancer({"name": "gradnorm", "every": 50}).every
        50
        >>> build_balancer("softadapt")
        Traceback (most recent call last):
        ...
        ValueError: balancing: expected one of ['fixed', 'gradnorm', 'relobralo'] but got 'softadapt'
    """
    if spec is None:
        return FixedWeights()
    if _is_balancer(spec):
        return spec
    if isinstance(spec, str):
        return _from_registry(spec, {})
    if isinstance(spec, (Mapping, DictConfig)):
        spec = to_plain(spec)
        if "_target_" in spec:
            balancer = build(spec, "balancing")
            if not _is_balancer(balancer):
                raise ConfigError(
                    f"balancing: {spec['_target_']} built a {type(balancer).__name__}, which has no "
                    "weights(terms, params, step, reduce), state_dict() and load_state_dict(state)"
                )
            return balancer
        if "name" in spec:
            return _from_registry(spec["name"], {k: v for k, v in spec.items() if k != "name"})
        raise ConfigError(f"balancing: expected a mapping with 'name' (one of {list(BALANCERS)}) "
                         f"or '_target_' but got keys {sorted(spec)}")
    raise ConfigError(f"balancing: expected null, one of {list(BALANCERS)}, a mapping with 'name' or '_target_', "
                     f"or a balancer but got {spec!r}")


def _from_registry(name: Any, arguments: dict[str, Any]) -> Balancer:
    if not isinstance(name, str) or name not in BALANCERS:
        raise ConfigError(f"balancing: expected one of {list(BALANCERS)} but got {name!r}")
    cls = BALANCERS[name]
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(arguments) - set(accepted))
    if unknown:
        raise ConfigError(f"balancing: {name} takes the arguments {accepted} but got {unknown}")
    return cls(**arguments)


def _is_balancer(value: Any) -> bool:
    return isinstance(value, Balancer) or all(
        callable(getattr(value, method, None)) for method in ("weights", "state_dict", "load_state_dict")
    )


def _grad_norm(loss: Tensor, params: list[Tensor]) -> Tensor:
    """``||grad_params loss||_2`` over all parameters (0 when the loss does not depend on them)."""
    dtype = torch.promote_types(loss.dtype, torch.float32)
    if not loss.requires_grad or not params:
        return torch.zeros((), dtype=dtype, device=loss.device)
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    norms = [torch.linalg.vector_norm(g.detach()).to(dtype) for g in grads if g is not None]
    if not norms:
        return torch.zeros((), dtype=dtype, device=loss.device)
    return torch.linalg.vector_norm(torch.stack(norms))


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}: expected a positive integer but got {value!r}")
    return value


def _unit_interval(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"{key}: expected a number in [0, 1] but got {value!r}")
    return float(value)


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
