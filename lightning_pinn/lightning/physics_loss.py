"""``PhysicsLoss``: a Callback that adds a problem's residual terms to any LightningModule's training loss."""

from __future__ import annotations

import contextlib
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from lightning_pinn.config import build
from lightning_pinn.derivatives.engines import ENGINES, AutogradEngine, choose_engine
from lightning_pinn.errors import ConfigError
from lightning_pinn.lightning.step_logging import logs_this_step
from lightning_pinn.losses import WeightedLoss
from lightning_pinn.nets import ConstrainedNet
from lightning_pinn.points import Collocation
from lightning_pinn.problem.spec import Problem
from lightning_pinn.residuals import max_order, parameter_values, prepare_engine, residuals

FieldsFn = Callable[[pl.LightningModule, Tensor], Tensor]
"""How to get fields from the host module: ``(module, coords (N, n_coords)) -> (N, n_fields)``."""


class PhysicsLoss(pl.Callback):
    """Adds ``weight * sum_k w_k lambda_k L_k`` of a problem to the training loss of a LightningModule.

    The host module's code is not changed: at ``setup`` its ``training_step`` is
    wrapped on the instance so that the returned loss (a tensor, or a dict with
    ``"loss"``) also carries the physics terms. Lightning then scales it for gradient
    accumulation and runs one backward, so DDP reduces the physics gradients with the
    rest. ``teardown`` restores the original method. The loss is composed as in
    ``PINNModule`` (``losses.weighted``: mean squares ``L_k``, causal weighting, balancing
    weights ``lambda_k``, the problem's weights ``w_k``). Terms are logged as ``physics/<term>``
    and ``physics/loss``, balancing weights as ``physics/weight_<term>`` and the causal minimum
    weight as ``physics/causal_min_weight``.

    Learnable parameters of the problem become ``nn.Parameter``s of the host module
    (``module.physics_params``) at ``setup``, so its optimizer, checkpoints and DDP
    see them.

    Args:
        problem: a :class:`Problem` or its config.
        fields: how to evaluate the fields: ``None`` calls ``module(coords)``, a string
            names a method of the module, a callable is called as ``fn(module, coords)``.
        weight: factor of the whole physics loss.
        sampler: collocation sampling method; ``resample_every`` and ``seed`` as in PINNModule
            (each DDP rank draws from its own streams).
        check_batch_independence: at setup, perturb one point and refuse a module whose other
            outputs move (BatchNorm in training mode, attention across the batch): per-point
            derivatives through ``grad_outputs=ones`` would be wrong for it.
        derivatives: ``auto`` (forward-mode jets when ``fields`` names a submodule every module
            of which has a jet rule, e.g. ``fields="net"``, and a term needs a 3rd or higher
            derivative; autograd otherwise), ``autograd`` or ``jets``.
        balancing: per-term weights on top of the problem's, as in ``PINNModule``: ``None``, ``"gradnorm"``,
            ``"relobralo"`` or ``{"name": ..., **options}``; gradient-based balancers use the host module's
            trainable parameters.
        causal: causal weighting of the equations over time chunks, as in ``PINNModule``
            (``{"chunks": 32, "epsilon": 1.0}``); its ``epsilon`` schedule advances after each step. Under an
            L-BFGS host optimizer the weights of a step's first evaluation are held for the step.

    For modules with manual optimization, call :meth:`compute` in ``training_step``
    and add its result to the loss before ``manual_backward``.
    """

    def __init__(
        self,
        problem: Problem | Mapping[str, Any],
        fields: str | FieldsFn | None = None,
        weight: float = 1.0,
        sampler: str = "sobol",
        resample_every: int = 0,
        seed: int = 0,
        check_batch_independence: bool = True,
        derivatives: str = "auto",
        balancing: Any = None,
        causal: Any = None,
    ):
        self.problem: Problem = build(problem, "problem")
        if not isinstance(self.problem, Problem):
            raise ConfigError(f"problem: expected a lightning_pinn.Problem but got {type(self.problem).__name__}")
        if not (isinstance(fields, str) or fields is None or callable(fields)):
            raise ConfigError(f"fields: expected None, a method name or a callable but got {fields!r}")
        if not float(weight) >= 0:
            raise ConfigError(f"weight: expected a non-negative number but got {weight}")
        if isinstance(resample_every, bool) or int(resample_every) < 0:
            raise ConfigError(f"resample_every: expected a non-negative integer but got {resample_every!r}")
        self.fields, self.weight = fields, float(weight)
        self.sampler, self.resample_every, self.seed = sampler, int(resample_every), int(seed)
        self.check_batch_independence = check_batch_independence
        if derivatives not in ENGINES:
            raise ConfigError(f"derivatives: expected one of {list(ENGINES)} but got {derivatives!r}")
        self.derivatives = derivatives
        self.engine: Any = AutogradEngine()
        """The derivative engine, chosen at ``setup`` (see ``lightning_pinn.derivatives.engines``)."""
        self.collocation = Collocation(self.problem, sampler, self.seed)
        self.weighted_loss = WeightedLoss(self.problem, balancing, causal)
        """Residuals to the loss (``losses.weighted``), as in ``PINNModule``."""
        self._module: pl.LightningModule | None = None
        self._original_step: Any = None
        self._wrapped = False

    # ----- the physics -------------------------------------------------------------------------

    def evaluate_fields(self, module: pl.LightningModule, coords: Tensor) -> Tensor:
        """The host module's fields at ``coords``, as configured by ``fields``, through the problem's
        ``output_transform`` when it has one."""
        if self.fields is None:
            raw = module(coords)
        elif isinstance(self.fields, str):
            raw = getattr(module, self.fields)(coords)
        else:
            raw = self.fields(module, coords)
        transform = self.problem.output_transform
        return raw if transform is None else transform(coords, raw)

    def compute(self, module: pl.LightningModule, log: bool = True) -> Tensor:
        """The weighted physics loss on this step's points (for manual optimization too); with ``log``,
        its terms are logged on the steps whose metrics reach the loggers (see ``step_logging``)."""
        points = self._points_for(module)
        params = parameter_values(self.problem, getattr(module, "physics_params", None))
        prepare_engine(self.engine, self.problem, points)
        per_point = residuals(self.problem, lambda x: self.evaluate_fields(module, x), points, params, self.engine)
        step = module.global_step
        hold = any(isinstance(o, torch.optim.LBFGS) for o in _optimizers(module))
        terms = self.weighted_loss.terms(per_point, points, self.weighted_loss.held_weights(step, hold))
        trainable = [p for p in module.parameters() if p.requires_grad]
        loss = self.weight * self.weighted_loss.total(terms, trainable, step, _rank_mean(module))
        if log and logs_this_step(module):
            module.log_dict({f"physics/{k}": v.detach() for k, v in terms.items()}, on_step=True, on_epoch=False)
            module.log("physics/loss", loss.detach(), on_step=True, on_epoch=False)
            weighting = self.weighted_loss.metrics()
            if weighting:
                module.log_dict({f"physics/{k}": v for k, v in weighting.items()}, on_step=True, on_epoch=False)
        return loss

    def _points_for(self, module: pl.LightningModule) -> dict[str, Tensor]:
        dtype = next(module.parameters()).dtype
        if self.collocation.due(module.global_step, self.resample_every):
            return self.collocation.redraw(module.global_step, module.device, dtype)
        return self.collocation.current(module.device, dtype)

    # ----- Lightning hooks ---------------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Check the module against the problem and wrap its ``training_step`` (not under manual optimization,
        where the module adds :meth:`compute` to its loss itself)."""
        if stage != "fit" or self._module is not None:
            return
        if trainer.world_size > 1:
            self.collocation = Collocation(self.problem, self.sampler, self.seed, rank=trainer.global_rank)
        self._check_module(pl_module)
        self.engine = self._choose_engine(pl_module)
        if self.problem.learnable and not hasattr(pl_module, "physics_params"):
            pl_module.physics_params = nn.ParameterDict(
                {k: nn.Parameter(torch.tensor(v)) for k, v in self.problem.learnable.items()}
            )
        self._module, self._original_step = pl_module, pl_module.__dict__.get("training_step")
        self._wrapped = pl_module.automatic_optimization
        if not self._wrapped:  # the module steps its optimizer itself and adds compute() to its loss
            return
        original = pl_module.training_step
        physics = self

        def training_step(module: pl.LightningModule, *args: Any, **kwargs: Any) -> Any:
            output = original(*args, **kwargs)
            if output is None:  # the module skips this batch
                return output
            extra = physics.compute(module, log=True)
            if isinstance(output, Mapping):
                return {**output, "loss": output["loss"] + extra}
            return output + extra

        pl_module.training_step = types.MethodType(training_step, pl_module)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Restore the module's own ``training_step``."""
        if self._module is None:
            return
        if self._wrapped and self._original_step is None:
            del self._module.training_step
        elif self._wrapped:
            self._module.training_step = self._original_step
        self._module = self._original_step = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Advance the causal ``epsilon`` schedule once the last time chunk's weight is high enough."""
        self.weighted_loss.after_step(_rank_mean(pl_module))

    def state_dict(self) -> dict[str, Any]:
        """Point streams and current points, the balancer's and the causal schedule's state, so a resumed run
        goes on as an unbroken one would."""
        return {"collocation": self.collocation.state_dict(), **self.weighted_loss.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        module = self._module
        trainer = _attached(module) if module is not None else None
        if trainer is not None and trainer.world_size > 1 and module.global_rank:
            self.collocation.replay(state_dict["collocation"])  # the checkpoint holds rank 0's streams only
        else:
            self.collocation.load_state_dict(state_dict["collocation"])
        self.weighted_loss.load_state_dict(state_dict)

    def _choose_engine(self, module: pl.LightningModule) -> Any:
        """Jets when ``fields`` names a submodule with jet rules (e.g. ``fields="net"``), else autograd."""
        target = getattr(module, self.fields, None) if isinstance(self.fields, str) else None
        if isinstance(target, nn.Module) and self.problem.output_transform is not None:
            target = ConstrainedNet(target, self.problem.output_transform)
        if isinstance(target, nn.Module):
            engine, reason = choose_engine(self.derivatives, target, self.problem.n_coords,
                                           max_order=max_order(self.problem))
        else:
            how = "a callable" if callable(self.fields) else f"{type(module).__name__}.forward"
            engine, reason = choose_engine(self.derivatives, None, self.problem.n_coords,
                                           f"the fields come from {how}; name an MLP submodule in fields= for jets")
        rank_zero_info(f"lightning-pinn PhysicsLoss: {reason}")
        return engine

    # ----- checks ------------------------------------------------------------------------------

    def _check_module(self, module: pl.LightningModule) -> None:
        param = next(module.parameters(), None)
        dtype = param.dtype if param is not None else torch.get_default_dtype()
        probe = torch.rand(4, self.problem.n_coords, dtype=dtype, device=module.device)
        try:
            with torch.no_grad(), _buffers_kept(module):
                out = self.evaluate_fields(module, probe)
        except Exception as err:
            raise ConfigError(
                f"PhysicsLoss: the module could not evaluate fields on points of shape (N, {self.problem.n_coords}) "
                f"for coordinates {list(self.problem.coords)}: {err}"
            ) from err
        if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[1] != self.problem.n_fields:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ConfigError(
                f"PhysicsLoss: the module maps (N, {self.problem.n_coords}) coordinates to {shape}, but the problem "
                f"has {self.problem.n_fields} field(s) {list(self.problem.fields)}: expected (N, {self.problem.n_fields})"
            )
        if self.check_batch_independence and _mixes_batch(lambda x: self.evaluate_fields(module, x), probe, module):
            raise ConfigError(
                "PhysicsLoss: the module's output for one point depends on other points of the batch (BatchNorm in "
                "training mode, or attention across the batch?), so per-point derivatives would be wrong. Use "
                "per-sample layers (LayerNorm, GroupNorm) or pass check_batch_independence=False if this is intended."
            )


def _attached(module: pl.LightningModule) -> pl.Trainer | None:
    """The host's trainer, or None when it is not attached (Lightning's ``trainer`` raises then)."""
    try:
        return module.trainer
    except RuntimeError:
        return None


def _optimizers(module: pl.LightningModule) -> list[Any]:
    """The host's optimizers when it is attached to a trainer, else none."""
    trainer = _attached(module)
    return [] if trainer is None else [getattr(o, "optimizer", o) for o in trainer.optimizers]


def _rank_mean(module: pl.LightningModule) -> Any:
    """A mean over DDP ranks for decisions every rank must share, or None in one process."""
    trainer = _attached(module)
    if trainer is None or trainer.world_size == 1:
        return None
    return lambda value: trainer.strategy.reduce(value, reduce_op="mean")


@contextlib.contextmanager
def _buffers_kept(module: nn.Module) -> Iterator[None]:
    """Run probes without leaving a trace in buffers (BatchNorm running statistics)."""
    saved = [b.detach().clone() for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(module.buffers(), saved):
                buffer.copy_(value)


def _mixes_batch(fn: Callable[[Tensor], Tensor], probe: Tensor, module: nn.Module) -> bool:
    """True when changing one input row changes the output of another row (in training mode)."""
    was_training = module.training
    module.train()
    try:
        with torch.no_grad(), _buffers_kept(module), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.random.get_rng_state()
            base = fn(probe)
            torch.random.set_rng_state(state)
            moved = probe.clone()
            moved[0] += 0.5
            other = fn(moved)
        return not torch.allclose(base[1:], other[1:], rtol=1e-5, atol=1e-6)
    finally:
        module.train(was_training)
