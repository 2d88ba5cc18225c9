"""``PINNModule``: a LightningModule that trains a network to satisfy a problem's equations and conditions."""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterator, Mapping

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from lightning_pinn.config import build, build_factory, config_of, is_config, to_plain
from lightning_pinn.derivatives.engines import ENGINES, choose_engine, is_compilable
from lightning_pinn.lightning.metrics import RelativeL2Error
from lightning_pinn.lightning.optimization import (
    OPTIMIZATION,
    carry_step_count,
    check_manual_step,
    step_schedulers,
    why_automatic,
)
from lightning_pinn.lightning.points import Collocation
from lightning_pinn.lightning.step_logging import logs_this_step
from lightning_pinn.losses import CausalWeighting, FixedWeights, build_balancer
from lightning_pinn.problem.output_transform import ConstrainedNet
from lightning_pinn.problem.spec import INTERIOR, Problem
from lightning_pinn.residuals import max_order, parameter_values, prepare_engine, residuals, weighted_total


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the message names the term and the step."""


class _Shard(DistributedSampler):
    """Every ``world``-th grid point from ``rank`` on, without the padding of DistributedSampler:
    padded duplicates would bias the grid's relative error."""

    def __init__(self, dataset, world: int, rank: int):
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=False)

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "_logged_at", "_causal_held_at"})
"""Attributes set at every step that are never parameters, buffers or submodules. Lightning sets
``_current_fx_name`` around each hook it calls, about 45 times per training step; ``nn.Module.__setattr__``
checks every assignment against the module's parameters, buffers and submodules first, which costs
more than the assignment itself (``python benchmarks/lightning_overhead.py``)."""
DEFAULT_OPTIMIZER = {"_target_": "torch.optim.Adam", "lr": 1e-3, "fused": True}
"""Adam with torch's fused kernel: the same update as the for-loop default, one kernel for all parameters."""
DEFAULT_LBFGS = {
    "_target_": "torch.optim.LBFGS",
    "lr": 1.0,
    "max_iter": 50,
    "history_size": 50,
    "line_search_fn": "strong_wolfe",
    "tolerance_grad": 1e-12,
    "tolerance_change": 1e-14,
}


class PINNModule(pl.LightningModule):
    """Trains ``net`` so that its fields satisfy ``problem``: residual losses on collocation points.

    One training step draws (or reuses) the collocation points of every point set,
    evaluates each equation and condition residual with derivatives from the chosen
    engine (forward-mode jets for MLP-family networks, nested autograd otherwise),
    logs ``train/<term>`` and ``train/loss`` once per optimizer step, and returns
    the weighted total. Validation scores the fields against ``problem.reference``
    on a grid (``val/rel_l2_<field>``).

    Args:
        problem: a :class:`Problem`, or its config (``_target_: lightning_pinn.Problem``).
        net: any ``nn.Module`` mapping ``(N, n_coords) -> (N, n_fields)``, or its config;
            a config gets ``in_features``, ``out_features`` and ``bounds`` filled from the
            problem when its target accepts them and the config does not set them.
        optimizer: a config (``_target_: torch.optim.Adam``) or a callable ``params -> Optimizer``.
        scheduler: ``None``, or a config or callable ``optimizer -> LRScheduler``, stepped every step.
        lbfgs_from_step: switch to L-BFGS at this global step (``None``: never).
        lbfgs: the L-BFGS optimizer (config or callable); strong Wolfe line search by default.
        lbfgs_float64: convert the module (network and learnable parameters) to float64 when
            L-BFGS starts, so that an Adam phase in float32 is followed by L-BFGS in float64 (a
            float32 loss is too noisy for its line search once the loss is small and the problem
            stiff). Needs ``trainer.precision=32-true`` (or ``64-true``, where it changes nothing).
            ``"on_stall"``: L-BFGS starts in float32 and the module turns float64 at its first
            line search that finds no step (the float32 loss's floor), so the cheaper float32
            steps do the early work and float64 goes on below that floor.
        sampler: collocation sampling method (``uniform``, ``lhs``, ``sobol``, ``halton``, ``grid``).
        resample_every: draw fresh collocation points every this many steps (0: draw once).
        seed: seed of the point streams; DDP rank ``r`` uses ``seed + r``.
        validation_grid: points per coordinate of the validation grid, an int for all or
            ``{coord: n}``; used when the problem has a reference.
        validation_batch_size: grid points per validation batch.
        derivatives: ``auto``, ``autograd`` or ``jets``. ``auto`` takes jets when every module of
            ``net`` has a jet rule, ``forward`` is not overridden, and jets are the faster engine
            (``compile`` is on, or a term needs a 3rd or higher derivative); else autograd. It
            says once which engine runs and why.
        compile: compile the training loss with ``torch.compile`` (jets only: nested autograd
            cannot be compiled); ``True``, or a dict of ``torch.compile`` options such as
            ``{"mode": "reduce-overhead"}`` (CUDA graphs on GPU). The first steps compile.
        balancing: per-term loss weights on top of the problem's: ``None``/``"fixed"``, ``"gradnorm"``
            (learning-rate annealing by gradient norms, Wang et al. 2021), ``"relobralo"`` (Bischof &
            Kraus 2021), or ``{"name": ..., **options}`` (see ``lightning_pinn.losses``). Logged as
            ``train/weight_<term>``.
        causal: causal weighting of the equations over time chunks (Wang, Sankaran, Perdikaris 2022):
            ``{"chunks": 32, "epsilon": 1.0}`` or a :class:`~lightning_pinn.losses.CausalWeighting`;
            needs a time coordinate. The last chunk's weight is logged as ``train/causal_min_weight``.
        optimization: who takes the optimizer step. ``manual``: :meth:`training_step` calls
            ``optimizer.step(closure)`` and steps the schedulers itself (Lightning's manual optimization,
            which skips the per-step machinery of the automatic loop); ``automatic``: Lightning's
            automatic loop. ``auto`` takes ``manual`` unless something needs the automatic loop (gradient
            clipping or accumulation, an overridden ``training_step`` or optimizer hook, some callbacks;
            see ``lightning_pinn.lightning.optimization``), and says once which it runs and why. Both
            give the same updates. Setting ``module.automatic_optimization`` overrides it, as in Lightning.

    Methods a subclass overrides:
        ``forward(coords)``: fields at points (default ``net(coords)``); use it for output
        transforms. ``residuals(points)``: per-point residuals per term; call ``super()``
        and add Python residuals. ``total_loss(terms)``: how terms combine.

    Example:
        >>> from lightning_pinn import MLP, Problem
        >>> problem = Problem(coords={"x": [0, 1]}, fields=["u"], equations={"ode": "u_x - u"},
        ...                   conditions={"start": {"region": "x=0", "residual": "u - 1", "points": 1}})
        >>> module = PINNModule(problem, MLP(1, 1, width=8, depth=2))
        >>> sorted(module.loss_terms(module.draw_points()))
        ['ode', 'start']
    """

    def __init__(
        self,
        problem: Problem | Mapping[str, Any],
        net: nn.Module | Mapping[str, Any],
        optimizer: Any = None,
        scheduler: Any = None,
        lbfgs_from_step: int | None = None,
        lbfgs: Any = None,
        lbfgs_float64: bool | str = False,
        sampler: str = "sobol",
        resample_every: int = 0,
        seed: int = 0,
        validation_grid: int | Mapping[str, int] = 101,
        validation_batch_size: int = 8192,
        derivatives: str = "auto",
        compile: bool | Mapping[str, Any] = False,
        balancing: Any = None,
        causal: CausalWeighting | Mapping[str, Any] | None = None,
        optimization: str = "auto",
    ):
        super().__init__()
        if optimization not in OPTIMIZATION:
            raise ValueError(f"optimization: expected one of {list(OPTIMIZATION)} but got {optimization!r}")
        self.optimization = optimization
        self._automatic: bool | None = {"auto": None, "automatic": True, "manual": False}[optimization]
        if problem is None:
            raise ValueError("problem: this checkpoint holds no problem config; pass problem=... to load_from_checkpoint")
        if net is None:
            raise ValueError("net: this checkpoint holds no network config; pass net=... to load_from_checkpoint")
        self.problem: Problem = build(problem, "problem")
        if not isinstance(self.problem, Problem):
            raise ValueError(f"problem: expected a lightning_pinn.Problem but got {type(self.problem).__name__}")
        self.net: nn.Module = build(
            net, "net", in_features=self.problem.n_coords, out_features=self.problem.n_fields, bounds=self.problem.bounds
        )
        if self.problem.output_transform is not None:
            self.net = ConstrainedNet(self.net, self.problem.output_transform)
        _check_net(self.net, self.problem)
        self.pde_params = nn.ParameterDict(
            {name: nn.Parameter(torch.tensor(value)) for name, value in self.problem.learnable.items()}
        )
        self._optimizer = build_factory(optimizer if optimizer is not None else DEFAULT_OPTIMIZER, "optimizer")
        self._scheduler = None if scheduler is None else build_factory(scheduler, "scheduler")
        self._lbfgs = build_factory(lbfgs if lbfgs is not None else DEFAULT_LBFGS, "lbfgs")
        if lbfgs_from_step is not None and (isinstance(lbfgs_from_step, bool) or int(lbfgs_from_step) < 0):
            raise ValueError(f"lbfgs_from_step: expected a non-negative step or null but got {lbfgs_from_step!r}")
        if isinstance(resample_every, bool) or int(resample_every) < 0:
            raise ValueError(f"resample_every: expected a non-negative integer but got {resample_every!r}")
        self.lbfgs_from_step = None if lbfgs_from_step is None else int(lbfgs_from_step)
        if not isinstance(lbfgs_float64, bool) and lbfgs_float64 != "on_stall":
            raise ValueError(f"lbfgs_float64: expected true, false or on_stall but got {lbfgs_float64!r}")
        self.lbfgs_float64 = lbfgs_float64
        self.resample_every = int(resample_every)
        self.sampler, self.seed = sampler, int(seed)
        self.collocation = Collocation(self.problem, sampler, self.seed)
        self.validation_batch_size = int(validation_batch_size)
        self._grid_sizes = _grid_sizes(validation_grid, self.problem)
        self.val_rel_l2 = nn.ModuleDict({field: RelativeL2Error() for field in self.problem.fields})
        self.phase = "adam"
        self.lbfgs_restarts = 0
        self._causal_held_at = -1
        self._logged_at = -1
        if derivatives not in ENGINES:
            raise ValueError(f"derivatives: expected one of {list(ENGINES)} but got {derivatives!r}")
        why_not_net = None if type(self).forward is PINNModule.forward else f"{type(self).__name__}.forward is overridden"
        wants_compile = compile is not False and compile is not None
        self.derivative_engine, reason = choose_engine(derivatives, self.net, self.problem.n_coords, why_not_net,
                                                       max_order(self.problem), compiled=wants_compile)
        """The engine behind :meth:`residuals` (see ``lightning_pinn.derivatives.engines``)."""
        rank_zero_info(f"lightning-pinn: {reason}")
        self._compile_options = self._check_compile(compile)
        self._compiled: dict[str, Any] = {}
        self.balancer = build_balancer(balancing)
        """Per-term weights on top of the problem's (``lightning_pinn.losses``)."""
        self.causal = self._check_causal(causal)
        self._causal_terms = [] if self.causal is None else self.causal.select(
            self.problem.point_sets[INTERIOR].terms if INTERIOR in self.problem.point_sets else [])
        # the last evaluation's weights; ones until then, so that the compiled loss sees the same keys from its
        # first call on (an empty dict at the first call would recompile it at the second)
        self._causal_weights: dict[str, Tensor] = {name: torch.ones(self.causal.chunks) for name in self._causal_terms}
        self._balance: dict[str, Tensor] = {}
        self.save_hyperparameters(
            {
                "problem": config_of(problem),
                "net": config_of(net),
                "optimizer": config_of(optimizer),
                "scheduler": config_of(scheduler),
                "lbfgs_from_step": lbfgs_from_step,
                "lbfgs": config_of(lbfgs),
                "lbfgs_float64": lbfgs_float64,
                "sampler": sampler,
                "resample_every": resample_every,
                "seed": seed,
                "validation_grid": to_plain(validation_grid),
                "validation_batch_size": validation_batch_size,
                "derivatives": derivatives,
                "compile": to_plain(compile),
                "balancing": config_of(balancing),
                "causal": config_of(causal),
                "optimization": optimization,
            }
        )

    def __setattr__(self, name: str, value: Any) -> None:
        """Set plain per-step attributes directly (see ``PLAIN_ATTRIBUTES``); everything else as ``nn.Module`` does."""
        if name in PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def automatic_optimization(self) -> bool:
        """Whether Lightning's automatic loop takes the optimizer steps (see ``optimization``); chosen per trainer."""
        if self._automatic is None:
            if self._trainer is None:
                return True
            reason = why_automatic(self, PINNModule, self._trainer)
            self._automatic = reason is not None
            if self._trainer.state.fn == "fit":
                rank_zero_info(f"lightning-pinn: Lightning's automatic optimization, as {reason}" if reason
                               else "lightning-pinn: optimizer steps taken in training_step (manual optimization)")
        return self._automatic

    @automatic_optimization.setter
    def automatic_optimization(self, automatic: bool) -> None:
        self.optimization = "automatic" if automatic else "manual"
        self._automatic = bool(automatic)

    @pl.LightningModule.trainer.setter
    def trainer(self, trainer: pl.Trainer | None) -> None:
        """Attach ``trainer``; with ``optimization="auto"`` the loop is chosen again for it."""
        pl.LightningModule.trainer.fset(self, trainer)
        if self.__dict__.get("optimization") == "auto":
            self._automatic = None

    # ----- the physics -------------------------------------------------------------------------

    def forward(self, coords: Tensor) -> Tensor:
        """Fields at ``coords`` of shape ``(N, n_coords)``, coordinates in the problem's order."""
        return self.net(coords)

    def parameter_values(self) -> dict[str, Any]:
        """Constant parameters as floats and learnable ones as this module's ``nn.Parameter``s."""
        return parameter_values(self.problem, self.pde_params)

    def residuals(self, points: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-point residuals ``{term: (N,)}``; override to add terms written in Python."""
        return residuals(self.problem, self, points, self.parameter_values(), self.derivative_engine)

    def loss_terms(self, points: Mapping[str, Tensor],
                   causal_weights: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Unweighted loss terms ``{term: mean(residual**2)}`` (causally weighted over time for ``causal`` terms,
        with the given ``causal_weights`` ``{term: (chunks,)}`` when there are some, else computed ones)."""
        out = {}
        for name, r in self.residuals(points).items():
            if name in self._causal_terms:
                time = self.problem.coords.index(self.causal.time)
                given = None if causal_weights is None else causal_weights[name]
                out[name], self._causal_weights[name] = self.causal(r, points[INTERIOR][:, time],
                                                                    self.problem.bounds[time], given)
            else:
                out[name] = r.square().mean()
        return out

    def total_loss(self, terms: Mapping[str, Tensor]) -> Tensor:
        """The weighted sum of the terms: the problem's weights (1 for terms it does not know) times the balancer's."""
        known = {k: v for k, v in terms.items() if k in self.problem.terms}
        extra = [v for k, v in terms.items() if k not in self.problem.terms]
        if not isinstance(self.balancer, FixedWeights):
            self._balance = self.balancer.weights(known, params=[p for p in self.parameters() if p.requires_grad],
                                                  step=self.global_step, reduce=self._rank_mean())
            known = {k: self._balance[k] * v for k, v in known.items()}
        total = weighted_total(self.problem, known)
        return total + sum(extra) if extra else total

    def _rank_mean(self) -> Any:
        if self._trainer is None or self.trainer.world_size == 1:
            return None
        return lambda value: self.trainer.strategy.reduce(value, reduce_op="mean")

    def _check_causal(self, causal: Any) -> CausalWeighting | None:
        if causal is None:
            return None
        causal = build(causal, "causal") if is_config(causal) else causal
        if isinstance(causal, Mapping):
            causal = CausalWeighting(**{"time": self.problem.time or "t", **to_plain(causal)})
        if not isinstance(causal, CausalWeighting):
            raise ValueError(f"causal: expected null, a mapping of options or a CausalWeighting but got {causal!r}")
        if causal.time not in self.problem.coords:
            raise ValueError(f"causal: causal weighting needs a time coordinate, and {causal.time!r} is not one of "
                             f"{list(self.problem.coords)}")
        return causal

    def _check_compile(self, options: bool | Mapping[str, Any] | None) -> dict[str, Any] | None:
        if options is False or options is None:
            return None
        if not is_compilable(self.derivative_engine):
            rank_zero_info("lightning-pinn: compile=true needs derivatives by jets (torch.compile does not support "
                           "the double backward of nested autograd); the loss runs eagerly")
            return None
        return {} if options is True else dict(to_plain(options))

    def compiled_loss_terms(self, points: Mapping[str, Tensor],
                            causal_weights: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """:meth:`loss_terms`, through ``torch.compile`` when ``compile`` is on (else eager).

        Compiled on first use for this device. On CPU without options of your own, inductor's
        C++ wrapper is used (it calls the generated kernels without Python in between), unless
        the balancer differentiates terms one by one (``term_gradients``, e.g. gradnorm): the
        C++ wrapper's backward returns wrong gradients when run twice on one graph (torch 2.13).
        Such a balancer also runs the compiled backward with ``retain_graph``, which aot_autograd's
        donated buffers refuse, so they are turned off (for the whole process: aot_autograd reads the
        setting at each backward) once such a module compiles. Dynamo's ``recompile_limit`` is
        raised to 64, since every module compiles the same method.
        """
        given = () if causal_weights is None else (causal_weights,)  # an override of loss_terms(points) still works
        if self._compile_options is None:
            return self.loss_terms(points, *given)
        device = next(iter(points.values())).device.type if points else "cpu"
        if device not in self._compiled:
            # every PINNModule compiles the same code object (loss_terms); a sweep in one process
            # would pass dynamo's default limit of 8 compiled versions and fall back to eager
            dynamo_config = torch._dynamo.config
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
            if self._term_gradients:  # read when compiling and again at each backward, so set for the process
                torch._functorch.config.donated_buffer = False
            cpp_wrapper = device == "cpu" and not self._term_gradients
            options = self._compile_options or ({"options": {"cpp_wrapper": True}} if cpp_wrapper else {})
            self._compiled[device] = torch.compile(self.loss_terms, **{"dynamic": False, **options})
        return self._compiled[device](points, *given)

    @property
    def _term_gradients(self) -> bool:
        """Whether the balancer differentiates the terms one by one (``retain_graph``); unknown ones may."""
        return getattr(self.balancer, "term_gradients", True) is not False

    def draw_points(self) -> dict[str, Tensor]:
        """A fresh draw of every point set, on this module's device and dtype."""
        return self.collocation.draw(self.device, self.dtype)

    # ----- training ----------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Refuse L-BFGS under fp16 loss scaling; give each DDP rank its own point streams (seed + rank)."""
        if stage == "fit" and self.lbfgs_from_step is not None:
            check_lbfgs_precision(self.trainer.precision_plugin)
            if self.lbfgs_float64:
                check_lbfgs_float64(self.trainer.precision_plugin, self.trainer.world_size)
        if self.trainer is not None and self.trainer.world_size > 1:
            self.collocation = Collocation(self.problem, self.sampler, self.seed + self.global_rank)

    def train_dataloader(self) -> Iterator[int]:
        """An endless stream of step numbers: the points are drawn inside the step, on the module's device.

        A plain iterator, not a ``DataLoader``: Lightning takes any iterable, and a DataLoader's
        fetch and collate machinery cost tens of microseconds per step for no data.
        """
        return itertools.count()

    def training_points(self) -> dict[str, Tensor]:
        """The points of this step (redrawn by ``on_train_batch_start`` when due)."""
        return self.collocation.current(self.device, self.dtype)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Weighted residual loss on this step's points; terms are logged on the steps the loggers write (``logs_this_step``).

        Under manual optimization (see ``optimization``) the step also zeroes the gradients, runs
        ``manual_backward`` and the optimizer's step (through a closure, which L-BFGS calls many
        times) and steps the schedulers; it returns the detached loss of the last evaluation.
        """
        if self.automatic_optimization:
            return self.training_loss()
        optimizer = self.optimizers()
        last = []

        def closure() -> Tensor:
            loss = self.training_loss()
            optimizer.zero_grad()
            self.manual_backward(loss)
            last.append(loss)
            return loss

        optimizer.step(closure)
        step_schedulers(self, batch_idx)
        return last[-1].detach()

    def training_loss(self) -> Tensor:
        """One evaluation of the weighted residual loss on this step's points (L-BFGS makes several per step)."""
        points = self.training_points()
        prepare_engine(self.derivative_engine, self.problem, points)  # plans built outside the compiled region
        terms = self.compiled_loss_terms(points, self._step_causal_weights())
        loss = self.total_loss(terms)
        step = self.global_step
        if self.phase == "lbfgs" and self.trainer.world_size > 1:
            # every rank's line search must see the same objective: the mean over ranks. Its gradient
            # is the mean of the local gradients, which is what DDP's reduction makes of them.
            mean = self.trainer.strategy.reduce(loss.detach(), reduce_op="mean")
            loss = loss + (mean - loss.detach())
        if not math.isfinite(loss.item()):  # item(): a plain float, cheaper than a tensor isfinite then bool
            if self.phase == "lbfgs" and self._logged_at == step:
                # a trial point of the line search, not the step's own point: report +inf, which makes
                # strong Wolfe bracket and bisect back towards the last good point (NaN would pass as progress)
                return torch.where(torch.isfinite(loss), loss, torch.full_like(loss, math.inf))
            self._raise_non_finite(terms)
        if self._logged_at != step:  # L-BFGS calls this many times per step
            self._logged_at = step
            if logs_this_step(self):
                self._log_step(terms, loss)
        return loss

    def _log_step(self, terms: Mapping[str, Tensor], loss: Tensor) -> None:
        """The step metrics: loss terms, total, weights, causal minimum weight, restarts, parameters."""
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, on_step=True, on_epoch=False)
        self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        if not isinstance(self.balancer, FixedWeights):
            self.log_dict({f"train/weight_{k}": v for k, v in self._balance.items()}, on_step=True, on_epoch=False)
        if self._causal_weights:
            self.log("train/causal_min_weight", self.causal.min_weight(self._causal_weights), on_step=True,
                     on_epoch=False)
        if self.lbfgs_restarts:
            self.log("train/lbfgs_restarts", float(self.lbfgs_restarts), on_step=True, on_epoch=False)
        for name, value in self.pde_params.items():
            self.log(f"train/param_{name}", value.detach(), on_step=True, on_epoch=False)

    def _step_causal_weights(self) -> dict[str, Tensor] | None:
        """The causal weights to hold fixed in this evaluation: under L-BFGS, those of the step's first one.

        L-BFGS evaluates the loss many times per step; weights recomputed at each evaluation
        would change the objective inside its line search (whose gradient treats them as
        constants), and the search then fails. Adam evaluates once per step: None, computed.
        """
        if self.phase != "lbfgs" or not self._causal_terms:
            return None
        if self._causal_held_at != self.global_step:  # the step's first evaluation computes them
            self._causal_held_at = self.global_step
            return None
        return {name: weights.detach() for name, weights in self._causal_weights.items()}

    def _raise_non_finite(self, terms: Mapping[str, Tensor]) -> None:
        bad = [f"{k}={v.item()}" for k, v in terms.items() if not torch.isfinite(v)] or ["the weighted total"]
        raise NonFiniteLossError(
            f"loss term {', '.join(bad)} at step {self.global_step} ({self.phase}); training stopped. "
            "Checkpoints saved before this step are kept. Try a smaller learning rate, float64 "
            "(trainer.precision=64-true), or smaller loss weights."
        )

    def on_train_start(self) -> None:
        """Under manual optimization, refuse what it would silently drop (``check_manual_step``)."""
        if not self.automatic_optimization:
            check_manual_step(self, self.trainer, chosen=self.optimization == "auto")

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Switch to L-BFGS at ``lbfgs_from_step``; redraw points every ``resample_every`` steps.

        Fresh points change the objective, so L-BFGS drops its curvature history then
        (Adam's moment estimates stay valid and are kept).
        """
        step = self.global_step
        if self.phase == "adam" and self.lbfgs_from_step is not None and step >= self.lbfgs_from_step:
            self.phase = "lbfgs"
            if self.lbfgs_float64 is True and self.dtype != torch.float64:
                self.to(torch.float64)  # points follow self.dtype; the compiled loss recompiles once
                rank_zero_info(f"lightning-pinn: L-BFGS runs in float64 from step {step}")
            self.trainer.strategy.optimizers = [self._lbfgs(self.parameters())]
            self.trainer.strategy.lr_scheduler_configs = []
            rank_zero_info(f"lightning-pinn: switching to L-BFGS at step {step}")
        if self.collocation.due(step, self.resample_every):
            self.collocation.redraw(step, self.device, self.dtype)
            if self.phase == "lbfgs":
                for optimizer in self.trainer.optimizers:
                    optimizer.state.clear()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Advance the causal ``epsilon`` schedule once the last time chunk's weight is high enough; restart
        an L-BFGS whose line search failed."""
        if self._causal_weights:
            self.causal.update(self._causal_weights, self._rank_mean())
        if self.phase == "lbfgs":
            self._restart_stalled_lbfgs()

    def _restart_stalled_lbfgs(self) -> None:
        """Clear the history of an L-BFGS whose last line search found no step (``t = 0``); count it.

        The count is logged as ``train/lbfgs_restarts`` at every later step.

        ``torch.optim.LBFGS`` keeps its direction and step across calls, so after one failed
        strong-Wolfe search every later step repeats it and the parameters never move again.
        A cleared history restarts from steepest descent. Every rank sees the same objective,
        so every rank restarts at the same step. With ``lbfgs_float64="on_stall"``, the first such
        step in float32 turns the module float64 and starts a fresh L-BFGS instead (not counted).
        """
        for optimizer in self.trainer.optimizers:
            if not isinstance(optimizer, torch.optim.LBFGS):
                continue
            state = optimizer.state[optimizer.param_groups[0]["params"][0]]
            if state.get("n_iter", 0) > 0 and state.get("t") == 0:
                if self.lbfgs_float64 == "on_stall" and self.dtype != torch.float64:
                    self.to(torch.float64)  # the same parameters, converted in place; the compiled loss recompiles once
                    self.trainer.strategy.optimizers = [self._lbfgs(self.parameters())]
                    rank_zero_info(f"lightning-pinn: L-BFGS found no step in float32 at step {self.global_step}; "
                                   "it goes on in float64 (lbfgs_float64=on_stall)")
                    return
                optimizer.state.clear()
                self.lbfgs_restarts += 1
                if self.lbfgs_restarts == 1:
                    rank_zero_info(f"lightning-pinn: L-BFGS line search found no step at step {self.global_step}; "
                                   "its history is cleared (and again whenever this repeats)")

    def configure_optimizers(self) -> Any:
        """The optimizer of the current phase (Adam-like first, L-BFGS after the switch)."""
        if self.phase == "lbfgs":
            return self._lbfgs(self.parameters())
        optimizer = self._optimizer(self.parameters())
        if self._scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self._scheduler(optimizer), "interval": "step"}}

    # ----- validation and prediction -----------------------------------------------------------

    def validation_grid(self, inside_only: bool = True) -> tuple[np.ndarray, list[int]]:
        """The validation grid as ``(N, n_coords)`` float64 points and its size per coordinate.

        With a geometry, grid points outside it are left out (so ``N`` can be less than the product of
        sizes) unless ``inside_only`` is false.
        """
        axes = [np.linspace(lo, hi, n) for (lo, hi), n in zip(self.problem.bounds, self._grid_sizes)]
        mesh = np.meshgrid(*axes, indexing="ij")
        points = np.stack([m.ravel() for m in mesh], axis=1)
        return points[self.problem.contains(points)] if inside_only else points, list(self._grid_sizes)

    def reference_values(self, points: np.ndarray) -> np.ndarray:
        """``problem.reference`` at ``points``, as ``(N, n_fields)`` float64."""
        return self.problem.reference_values(points)

    def val_dataloader(self) -> DataLoader | list:
        """The validation grid with reference values (empty when the problem has no reference)."""
        if self.problem.reference is None:
            return []
        points, _ = self.validation_grid()
        dataset = TensorDataset(torch.as_tensor(points, dtype=torch.float64),
                                torch.as_tensor(self.reference_values(points), dtype=torch.float64))
        world = self.trainer.world_size if self._trainer is not None else 1
        sampler = _Shard(dataset, world, self.global_rank) if world > 1 else None
        return DataLoader(dataset, batch_size=self.validation_batch_size, sampler=sampler)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Update ``val/rel_l2_<field>`` on a batch of the grid; gradients are enabled for subclasses."""
        coords, reference = batch
        with torch.inference_mode(False), torch.enable_grad():
            prediction = self(coords.clone().to(self.dtype))
        for k, field in enumerate(self.problem.fields):
            metric = self.val_rel_l2[field]
            metric.update(prediction[:, k].detach(), reference[:, k].to(prediction.dtype))
            self.log(f"val/rel_l2_{field}", metric, on_step=False, on_epoch=True, prog_bar=True)

    def predict_step(self, batch: Any, batch_idx: int = 0) -> Tensor:
        """Fields at a batch of points (a tensor, or a tuple whose first item is one)."""
        coords = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(coords.to(self.dtype))

    # ----- checkpoints -------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the optimizer phase, the collocation state (streams and current points), the balancer's and
        the causal schedule's state."""
        checkpoint["lightning_pinn"] = {"phase": self.phase, "float64": self.dtype == torch.float64,
                                        "collocation": self.collocation.state_dict(),
                                        "balancer": self.balancer.state_dict(),
                                        "causal": None if self.causal is None else self.causal.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore what :meth:`on_save_checkpoint` stored, before optimizers are built; carry the step count
        over from the other optimization loop if the checkpoint was written under it."""
        if self._trainer is not None:
            carry_step_count(checkpoint, self.automatic_optimization)
        state = checkpoint.get("lightning_pinn")
        if state:
            self.phase = state["phase"]
            if self.phase == "lbfgs" and (self.lbfgs_float64 is True or state.get("float64")):
                self.to(torch.float64)  # before the weights are loaded, so that they load in float64
            if self._trainer is not None and self.trainer.world_size > 1 and self.global_rank != 0:
                self.collocation.replay(state["collocation"])  # the checkpoint holds rank 0's streams only
            else:
                self.collocation.load_state_dict(state["collocation"])
            if "balancer" in state:
                self.balancer.load_state_dict(state["balancer"])
            if self.causal is not None and state.get("causal") is not None:
                self.causal.load_state_dict(state["causal"])


def check_lbfgs_float64(plugin: Any, world_size: int) -> None:
    """Refuse ``lbfgs_float64`` where converting the module cannot give float64 arithmetic (autocast to
    16 bits) or is not supported (DDP, whose gradient buckets keep their dtype)."""
    precision = str(getattr(plugin, "precision", ""))
    if precision not in ("32-true", "32", "64-true", "64"):
        raise ValueError(f"lbfgs_float64: needs trainer.precision=32-true (the Adam phase in float32, L-BFGS in "
                         f"float64), but the precision is {precision!r}")
    if world_size > 1:
        raise ValueError("lbfgs_float64: not supported with more than one process (DDP keeps its gradient buffers "
                         "in the dtype it started with); use trainer.precision=64-true for the whole run")


def check_lbfgs_precision(plugin: Any) -> None:
    """Raise a ValueError saying what to use instead when the precision plugin scales the loss (``16-mixed``)."""
    if getattr(plugin, "scaler", None) is not None:
        raise ValueError(
            "lbfgs_from_step: L-BFGS cannot run with trainer.precision=16-mixed, whose dynamic loss scaling "
            "breaks its line search (Lightning: 'AMP and the LBFGS optimizer are not compatible'). Use "
            "trainer.precision=32-true or 64-true (best for L-BFGS), bf16-mixed, or set lbfgs_from_step=null."
        )


def _check_net(net: nn.Module, problem: Problem) -> None:
    if not isinstance(net, nn.Module):
        raise ValueError(f"net: expected a torch.nn.Module but got {type(net).__name__}")
    param = next(itertools.chain(net.parameters(), net.buffers()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.get_default_dtype()
    device = param.device if param is not None else "cpu"
    probe = torch.zeros(2, problem.n_coords, dtype=dtype, device=device)
    try:
        with torch.no_grad():
            out = net(probe)
    except Exception as err:
        raise ValueError(
            f"net: calling it on points of shape (N, {problem.n_coords}) for coordinates {list(problem.coords)} failed: {err}"
        ) from err
    if not isinstance(out, Tensor) or out.shape != (2, problem.n_fields):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"net: maps (N, {problem.n_coords}) points to {shape}, but the problem has {problem.n_fields} "
            f"field(s) {list(problem.fields)}: expected (N, {problem.n_fields})"
        )


def _grid_sizes(value: int | Mapping[str, int], problem: Problem) -> list[int]:
    value = to_plain(value)
    if isinstance(value, Mapping):
        unknown = set(value) - set(problem.coords)
        missing = set(problem.coords) - set(value)
        if unknown or missing:
            raise ValueError(f"validation_grid: expected a size for each of {list(problem.coords)} but got {dict(value)}")
        sizes = [value[c] for c in problem.coords]
    else:
        sizes = [value] * problem.n_coords
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise ValueError(f"validation_grid: expected integers >= 2 but got {value!r}")
    return sizes
