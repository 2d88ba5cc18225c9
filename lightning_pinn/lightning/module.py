"""``PINNModule``: a LightningModule that trains a network to satisfy a problem's equations and conditions."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.types import LRSchedulerConfig
from torch import Tensor, nn

from lightning_pinn.allowlist import check_targets, trusting
from lightning_pinn.config import build, config_of, to_plain
from lightning_pinn.derivatives.engines import ENGINES, AutogradEngine, choose_engine, is_compilable
from lightning_pinn.errors import ConfigError, DivergenceError, NonFiniteLossError, at, subkey
from lightning_pinn.geometry.samplers import METHODS
from lightning_pinn.lightning.checkpoints import last_good, read_checkpoint
from lightning_pinn.lightning.compiled import CompiledLoss
from lightning_pinn.lightning.divergence import build_divergence
from lightning_pinn.lightning.least_squares import LeastSquares
from lightning_pinn.lightning.metrics import RelativeL2Error
from lightning_pinn.lightning.resume import apply_optimizer_settings, check_same_problem, point_count_changes
from lightning_pinn.lightning.step_logging import lightning_writes, logs_this_step
from lightning_pinn.lightning.time_windows import TimeWindows, check_count, route
from lightning_pinn.lightning.validation import ValidationGrid
from lightning_pinn.losses import CausalWeighting, WeightedLoss
from lightning_pinn.nets import ConstrainedNet
from lightning_pinn.optim.gauss_newton import GaussNewton
from lightning_pinn.optim.phases import Phases
from lightning_pinn.optim.quasi_newton import QuasiNewton
from lightning_pinn.points import Collocation
from lightning_pinn.problem.spec import Problem
from lightning_pinn.residuals import max_order, parameter_values, prepare_engine, residuals

PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "_logged_at", "_points_token", "_last_step"})
"""Attributes set at every step that are never parameters, buffers or submodules, so ``__setattr__`` sets them
directly instead of checking them against those first (Lightning sets ``_current_fx_name`` around every hook it
calls; ``benchmarks/lightning_overhead.py`` measures what that costs)."""
DEFAULT_DIVERGENCE = {"factor": 1e4, "patience": 100}
"""The divergence rule on by default: the loss above 10,000 times its best for 100 consecutive steps."""


class PINNModule(pl.LightningModule):
    """Trains ``net`` so that its fields satisfy ``problem``: residual losses on collocation points.

    One training step draws (or reuses) the collocation points of every point set,
    evaluates each equation and condition residual with derivatives from the chosen
    engine (forward-mode jets for MLP-family networks, nested autograd otherwise),
    composes the weighted loss (``losses.weighted``) and takes one optimizer step of the
    current phase (Lightning's manual optimization: the step calls ``optimizer.step(closure)``,
    which line-search optimizers call many times). ``train/<term>`` and ``train/loss`` are
    logged on the steps the loggers write. Validation scores the fields against
    ``problem.reference`` on a grid (``val/rel_l2_<field>``).

    Args:
        problem: a :class:`Problem`, or its config (``_target_: lightning_pinn.Problem``).
        net: any ``nn.Module`` mapping ``(N, n_coords) -> (N, n_fields)``, or its config;
            a config gets ``in_features``, ``out_features`` and ``bounds`` filled from the
            problem when its target accepts them and the config does not set them.
        phases: the optimizer phases, ``{name: {optimizer: ..., steps: N, scheduler: ..., float64: ...}}``
            or a list of :class:`~lightning_pinn.optim.phases.Phase` (see ``lightning_pinn.optim.phases``);
            default one Adam phase (learning rate 1e-3) for the whole run. A step is one
            ``optimizer.step(closure)``: one update for Adam, up to ``max_iter`` iterations for L-BFGS
            and :class:`~lightning_pinn.optim.QuasiNewton`.
        sampler: collocation sampling method (``uniform``, ``lhs``, ``sobol``, ``halton``, ``grid``).
        resample_every: draw fresh collocation points every this many steps (0: draw once); a
            quasi-Newton phase keeps its curvature estimate across the redraw, L-BFGS starts a new history.
        seed: seed of the point streams (non-negative); each DDP rank, point set and region draws from its own
            stream of it (see ``lightning_pinn.points``).
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
        divergence: when a run has diverged: ``{"factor": f, "patience": n}`` stops it with a
            :class:`~lightning_pinn.errors.DivergenceError` once the unweighted loss has stayed above ``f``
            times its best for ``n`` consecutive steps (the best is forgotten when points are redrawn, the
            optimizer phase changes or the causal ``epsilon`` advances; see
            ``lightning_pinn.lightning.divergence``), or when the run ends above that bound. ``None`` or
            ``False``: never. Default ``{"factor": 1e4, "patience": 100}``.

    Methods a subclass overrides:
        ``forward(coords)``: fields at points (default ``net(coords)``); use it for output
        transforms. ``residuals(points)``: per-point residuals per term; call ``super()``
        and add Python residuals. ``total_loss(terms)``: how terms combine.

    Examples:
        >>> from lightning_pinn import MLP, Problem
        >>> problem = Problem(coords={"x": [0, 1]}, fields=["u"], equations={"ode": "u_x - u"},
        ...                   conditions={"start": {"region": "x=0", "residual": "u - 1", "points": 1}})
        >>> module = PINNModule(problem, MLP(1, 1, width=8, depth=2))
        >>> sorted(module.loss_terms(module.draw_points()))
        ['ode', 'start']
    """

    automatic_optimization = False  # the step calls the phase's optimizer itself (a closure for line searches)

    def __init__(
        self,
        problem: Problem | Mapping[str, Any],
        net: nn.Module | Mapping[str, Any],
        phases: Any = None,
        sampler: str = "sobol",
        resample_every: int = 0,
        seed: int = 0,
        validation_grid: int | Mapping[str, int] = 101,
        validation_batch_size: int = 8192,
        derivatives: str = "auto",
        compile: bool | Mapping[str, Any] = False,
        balancing: Any = None,
        causal: CausalWeighting | Mapping[str, Any] | None = None,
        divergence: Any = DEFAULT_DIVERGENCE,
        time_windows: int = 1,
    ):
        super().__init__()
        if problem is None:
            raise ConfigError("problem: this checkpoint holds no problem config; pass problem=... to load_from_checkpoint")
        if net is None:
            raise ConfigError("net: this checkpoint holds no network config; pass net=... to load_from_checkpoint")
        self.problem: Problem = build(problem, "problem")
        if not isinstance(self.problem, Problem):
            raise ConfigError(f"problem: expected a lightning_pinn.Problem but got {type(self.problem).__name__}")
        self.net: nn.Module = build(
            net, "net", in_features=self.problem.n_coords, out_features=self.problem.n_fields, bounds=self.problem.bounds
        )
        if self.problem.output_transform is not None:
            self.net = ConstrainedNet(self.net, self.problem.output_transform)
        _check_net(self.net, self.problem)
        self.pde_params = nn.ParameterDict(
            {name: nn.Parameter(torch.tensor(value)) for name, value in self.problem.learnable.items()}
        )
        count = check_count(time_windows)
        self.windows = TimeWindows(self.problem, count) if count > 1 else None
        """The time-marching windows (``lightning.time_windows``), or None for one window."""
        self.window_nets = nn.ModuleList()
        """The frozen networks of the finished time windows, in order."""
        self._window_targets: tuple[Any, dict[str, Tensor]] | None = None
        self.phases = Phases(phases)
        """The optimizer phases and which one runs (``lightning_pinn.optim.phases``)."""
        if isinstance(resample_every, bool) or not isinstance(resample_every, int) or resample_every < 0:
            raise ConfigError(f"resample_every: expected a non-negative integer but got {resample_every!r}")
        self.resample_every = resample_every
        if sampler not in METHODS:
            raise ConfigError(f"sampler: expected one of {list(METHODS)} but got {sampler!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed: expected an integer but got {seed!r}")
        self.sampler, self.seed = sampler, int(seed)
        self.collocation = Collocation(self.problem, sampler, self.seed)
        self.validation = ValidationGrid(self.problem, validation_grid, validation_batch_size)
        """The grid on which the fields are scored against the reference."""
        self.val_rel_l2 = nn.ModuleDict({field: RelativeL2Error() for field in self.problem.fields})
        self.lbfgs_restarts = 0
        self._logged_at = -1
        self._least_squares: LeastSquares | None = None
        if derivatives not in ENGINES:
            raise ConfigError(f"derivatives: expected one of {list(ENGINES)} but got {derivatives!r}")
        why_not_net = None if type(self).forward is PINNModule.forward else f"{type(self).__name__}.forward is overridden"
        if self.windows is not None and why_not_net is not None:
            raise ConfigError(f"time_windows: each window trains and freezes the network itself, and {why_not_net}; "
                              "write the transform as problem conditions, or drop time_windows")
        wants_compile = compile is not False and compile is not None
        self.derivative_engine, reason = choose_engine(derivatives, self.net, self.problem.n_coords, why_not_net,
                                                       max_order(self.problem), compiled=wants_compile)
        """The engine behind :meth:`residuals` (see ``lightning_pinn.derivatives.engines``)."""
        rank_zero_info(f"lightning-pinn: {reason}")
        self.weighted_loss = WeightedLoss(self.problem, balancing, causal)
        self._window_time_bounds()
        """Residuals to the loss: mean squares, causal weighting, balancing, the problem's weights (``losses.weighted``)."""
        self.compiled = CompiledLoss(self.loss_terms, compile if wants_compile and is_compilable(
            self.derivative_engine) else None, lambda: self.weighted_loss.term_gradients)
        """``torch.compile`` of :meth:`loss_terms` (``lightning.compiled``), enabled by ``compile``."""
        if wants_compile and not is_compilable(self.derivative_engine):
            CompiledLoss(self.loss_terms, compile, lambda: False)  # the options are still checked
            rank_zero_info("lightning-pinn: compile=true needs derivatives by jets (torch.compile does not support "
                           "the double backward of nested autograd); the loss runs eagerly")
        self.divergence = build_divergence(to_plain(divergence))
        """The divergence rule (``lightning_pinn.lightning.divergence``), or None."""
        self._points_token: tuple[int, ...] = ()
        self._last_step: tuple[int, dict[str, Tensor], Tensor] | None = None
        self.save_hyperparameters(
            {
                "problem": config_of(problem),
                "net": config_of(net),
                "phases": self.phases.to_config(),
                "sampler": sampler,
                "resample_every": resample_every,
                "seed": seed,
                "validation_grid": to_plain(validation_grid),
                "validation_batch_size": validation_batch_size,
                "derivatives": derivatives,
                "compile": to_plain(compile),
                "balancing": config_of(balancing),
                "causal": config_of(causal),
                "divergence": None if self.divergence is None else self.divergence.to_config(),
                "time_windows": time_windows,
            }
        )

    def __setattr__(self, name: str, value: Any) -> None:
        """Set plain per-step attributes directly (see ``PLAIN_ATTRIBUTES``); everything else as ``nn.Module`` does."""
        if name in PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _attached_trainer(self) -> pl.Trainer | None:
        """The trainer this module is attached to, or None (Lightning's ``trainer`` raises when there is none)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    @property
    def phase(self) -> str:
        """The name of the optimizer phase now running."""
        return self.phases.current.name

    # ----- the physics -------------------------------------------------------------------------

    def forward(self, coords: Tensor) -> Tensor:
        """Fields at ``coords`` of shape ``(N, n_coords)``, coordinates in the problem's order (with time windows,
        each point from the network of its window)."""
        if self.windows is None:
            return self.net(coords)
        return route(self.window_nets, self.net, self.windows, coords)

    def parameter_values(self) -> dict[str, Any]:
        """Constant parameters as floats and learnable ones as this module's ``nn.Parameter``s."""
        return parameter_values(self.problem, self.pde_params)

    def residuals(self, points: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-point residuals ``{term: (N,)}``; override to add terms written in Python.

        With time windows, the network of the current window, and the initial conditions of a window
        after the first made continuity: minus the previous window's residuals, which
        :meth:`training_points` appends to those points as extra columns.
        """
        if self.windows is None:
            return residuals(self.problem, self, points, self.parameter_values(), self.derivative_engine)
        plain, targets = {}, {}
        for name, x in points.items():
            plain[name], found = self.split_window_targets(name, x)
            targets.update(found or {})
        out = residuals(self.problem, self.net, plain, self.parameter_values(), self.derivative_engine)
        for term, value in targets.items():
            out[term] = out[term] - value
        return out

    def split_window_targets(self, name: str, x: Tensor) -> tuple[Tensor, dict[str, Tensor] | None]:
        """``(points, {term: previous window's residual})`` of an initial point set carrying them, else ``(x, None)``."""
        if self.windows is None or name not in self.windows.initial_sets:
            return x, None
        spec = self.problem.point_sets[name]
        width = self.problem.n_coords + spec.extra_width(self.problem.n_coords)
        if x.shape[1] != width + len(spec.terms):
            return x, None
        return x[:, :width], {term: x[:, width + k] for k, term in enumerate(spec.terms)}

    def loss_terms(self, points: Mapping[str, Tensor],
                   causal_weights: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Unweighted loss terms ``{term: mean(residual**2)}`` (causally weighted over time for ``causal`` terms,
        with the given ``causal_weights`` ``{term: (chunks,)}`` when there are some, else computed ones)."""
        return self.weighted_loss.terms(self.residuals(points), points, causal_weights)

    def compiled_loss_terms(self, points: Mapping[str, Tensor],
                            causal_weights: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """:meth:`loss_terms`, through ``torch.compile`` when ``compile`` is on (see ``lightning.compiled``)."""
        given = () if causal_weights is None else (causal_weights,)  # an override of loss_terms(points) still works
        if not self.compiled.enabled:
            return self.loss_terms(points, *given)  # looked up now: a loss_terms set on the instance is used
        device = next(iter(points.values())).device.type if points else "cpu"
        return self.compiled(device, points, *given)

    def total_loss(self, terms: Mapping[str, Tensor]) -> Tensor:
        """The weighted sum of the terms: the problem's weights (1 for terms it does not know) times the balancer's."""
        return self.weighted_loss.total(terms, [p for p in self.parameters() if p.requires_grad], self.global_step,
                                        self._rank_mean())

    @property
    def balancer(self) -> Any:
        """Per-term weights on top of the problem's (``lightning_pinn.losses``)."""
        return self.weighted_loss.balancer

    @property
    def causal(self) -> CausalWeighting | None:
        """The causal weighting of the equations, or None."""
        return self.weighted_loss.causal

    def _rank_mean(self) -> Any:
        trainer = self._attached_trainer()
        if trainer is None or trainer.world_size == 1:
            return None
        return lambda value: trainer.strategy.reduce(value, reduce_op="mean")

    def draw_points(self) -> dict[str, Tensor]:
        """A fresh draw of every point set, on this module's device and dtype."""
        return self.collocation.draw(self.device, self.dtype)

    # ----- training ----------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Check what the phases need of the trainer; give each DDP rank its own point streams."""
        if stage == "fit":
            _check_phases(self.phases, self.trainer)
            if self.windows is not None:
                self._plan_windows()
            trainable = [p for p in self.parameters() if p.requires_grad]
            for phase in self.phases.phases:  # what a later phase cannot run is refused before training starts
                try:
                    phase.build(trainable)  # sizes: the dense methods' matrices (optimizers allocate state lazily)
                except ConfigError as err:
                    raise err.within(f"phases.{phase.name}.optimizer") from err
                if phase.least_squares:
                    self._least_squares = LeastSquares(self, f"phases.{phase.name}")
            if any(type(c).__name__ == "PhysicsLoss" for c in self.trainer.callbacks):
                raise ConfigError("callbacks: PhysicsLoss adds a problem's terms to the loss another module returns; a "
                                  "PINNModule takes its own optimizer steps, so put those terms into its problem")
        if self.trainer.world_size > 1:
            self.collocation = Collocation(self.problem, self.sampler, self.seed, rank=self.global_rank)

    def _plan_windows(self) -> None:
        """Share the trainer's budget between the time windows; refuse what cannot run with them."""
        trainer = self.trainer
        for callback in trainer.callbacks:
            if type(callback).__name__ in ("RAD", "RAR"):
                raise ConfigError(f"callbacks: {type(callback).__name__} draws its points over the whole time interval, "
                                  "which time_windows does not support yet; drop one of them")
        timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
        seconds = timers[0].time_remaining("train") if timers else None
        fixed = sum(p.steps for p in self.phases.phases[:-1])
        self.windows.plan(trainer.max_steps, seconds, fixed)

    def configure_optimizers(self) -> Any:
        """The optimizer of the current phase, and its scheduler (stepped every step)."""
        optimizer, scheduler = self.phases.current.build(p for p in self.parameters() if p.requires_grad)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def train_dataloader(self) -> Iterable[int]:
        """Step numbers, one per training step: the points are drawn inside the step, on the module's device.

        As many as the steps left to ``trainer.max_steps``, so that the one epoch ends where training
        does and a plain ``pl.Trainer(max_steps=N)`` validates at its end; endless when there is no
        ``max_steps``. A plain iterable, not a ``DataLoader``: Lightning takes any, and a DataLoader's
        fetch and collate machinery cost time per step for no data.
        """
        max_steps = self.trainer.max_steps
        return range(self.global_step, max_steps) if max_steps > 0 else itertools.count(self.global_step)

    def training_points(self) -> dict[str, Tensor]:
        """The points of this step (redrawn by ``on_train_batch_start`` when due); with time windows, mapped into
        the current window, the initial sets of a later window with the previous window's residuals appended."""
        points = self.collocation.current(self.device, self.dtype)
        if self.windows is None:
            return points
        mapped = self.windows.map_points(points)  # cached per draw and window
        if self.windows.index == 0:
            return mapped
        if self._window_targets is not None and self._window_targets[0] is mapped:
            return self._window_targets[1]
        previous, out = self.window_nets[-1], dict(mapped)
        for name in self.windows.initial_sets:
            x = mapped[name]
            with torch.inference_mode(False), torch.enable_grad():
                values = residuals(self.problem, previous, {name: x}, self.parameter_values(), AutogradEngine())
            columns = [values[term].detach().reshape(-1, 1).to(x.dtype) for term in self.problem.point_sets[name].terms]
            out[name] = torch.cat([x, *columns], dim=1)
        self._window_targets = (mapped, out)
        return out

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """One optimizer step of the current phase on this step's points; returns the detached loss.

        The step zeroes the gradients, runs ``manual_backward`` and ``optimizer.step(closure)`` (a
        line-search optimizer calls the closure many times) and steps the phase's scheduler.
        """
        optimizer = self.optimizers()
        if isinstance(optimizer.optimizer, GaussNewton) and optimizer.optimizer.residuals is None:
            self._attach_least_squares(optimizer.optimizer)
        last = []

        def closure() -> Tensor:
            loss = self.training_loss()
            optimizer.zero_grad()
            self.manual_backward(loss)
            last.append(loss)
            return loss

        optimizer.step(closure=closure)
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        return last[-1].detach()

    def _attach_least_squares(self, optimizer: GaussNewton) -> None:
        """Give a Gauss-Newton phase the weighted residual vector and its Jacobian (``lightning.least_squares``)."""
        if self._least_squares is None:
            self._least_squares = LeastSquares(self, f"phases.{self.phase}")
        trainer = self.trainer
        reduce = None
        if trainer.world_size > 1:
            reduce = lambda value: trainer.strategy.reduce(value, reduce_op="sum")
        optimizer.attach(self._least_squares.vector, self._least_squares.jacobian, reduce)

    def training_loss(self) -> Tensor:
        """One evaluation of the weighted residual loss on this step's points (line searches make several per step)."""
        points, step = self.training_points(), self.global_step
        line_search = self.phases.current.line_search
        prepare_engine(self.derivative_engine, self.problem, points)  # plans built outside the compiled region
        terms = self.compiled_loss_terms(points, self.weighted_loss.held_weights(step, line_search))
        loss = self.total_loss(terms)
        if line_search and self.trainer.world_size > 1:
            # every rank's line search must see the same objective: the mean over ranks. Its gradient
            # is the mean of the local gradients, which is what DDP's reduction makes of them.
            mean = self.trainer.strategy.reduce(loss.detach(), reduce_op="mean")
            loss = loss + (mean - loss.detach())
        first = self._logged_at != step  # the step's own point; a line search evaluates trial points after it
        if first and self.divergence is not None:
            unweighted = sum(t.detach() for t in terms.values())
            total, unweighted = torch.stack([loss.detach(), unweighted]).tolist()  # one device sync for both
        else:
            total = loss.item()  # item(): a plain float, cheaper than a tensor isfinite then bool
        if not math.isfinite(total):
            if not first and line_search:
                # a trial point of the line search, not the step's own point: report +inf, which makes
                # strong Wolfe bracket and bisect back towards the last good point (NaN would pass as progress)
                return torch.where(torch.isfinite(loss), loss, torch.full_like(loss, math.inf))
            self._raise_non_finite(terms)
        if first:
            self._logged_at = step
            self._last_step = (step, {k: v.detach() for k, v in terms.items()}, loss.detach())
            if self.divergence is not None:
                self._watch_divergence(points, unweighted)
            if logs_this_step(self):
                self._log_step(terms, loss)
        return loss

    def _watch_divergence(self, points: Mapping[str, Tensor], unweighted: float) -> None:
        """Update the divergence rule with this step's unweighted loss (forgetting its best when the points
        changed); raise :class:`DivergenceError` when it fires."""
        token = tuple(map(id, points.values()))
        if token != self._points_token:
            self._points_token = token
            self.divergence.reset()
        if self.divergence.update(unweighted):
            raise DivergenceError(
                f"the loss stayed above {self.divergence.describe()} for {self.divergence.patience} steps, "
                f"{unweighted:.3g} at step {self.global_step} ({self.phase}); training stopped. "
                f"{self._resume_hint()}")

    def _resume_hint(self) -> str:
        remedies = "a smaller learning rate, float64 (trainer.precision=64-true) or smaller loss weights."
        good = last_good(self._attached_trainer())
        if good is None:
            return f"No good checkpoint was saved in this run (the LastGoodCheckpoint callback keeps one); try {remedies}"
        return f"The last good checkpoint is {good}: resume from it (ckpt_path=...) with {remedies}"

    def health(self) -> str | None:
        """Why the current weights are not a safe point to resume from, or None when they are.

        Every parameter must be finite, and the unweighted loss on the current points (the
        quantity the divergence rule watches) finite and within the rule's bound. Used by
        :class:`~lightning_pinn.lightning.checkpoints.LastGoodCheckpoint`.
        """
        bad = [name for name, p in self.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:
            return f"parameters {bad[:3]} are not finite"
        if self.collocation.points is None:
            return None
        points = self.training_points()
        weights = self.weighted_loss.causal_weights
        held = {k: v.detach() for k, v in weights.items()} if self.weighted_loss.causal_terms else None
        with torch.inference_mode(False), torch.enable_grad():
            loss = float(sum(t.detach() for t in self.loss_terms(points, held).values()))
        if not math.isfinite(loss):
            return f"the loss is {loss}"
        if self.divergence is not None and self.divergence.diverged(loss):
            return f"the loss {loss:.3g} is above {self.divergence.describe()}"
        return None

    def final_step_metrics(self) -> dict[str, float]:
        """``train/<term>`` and ``train/loss`` of the last training step taken (empty before the first)."""
        if self._last_step is None:
            return {}
        _, terms, loss = self._last_step
        return {**{f"train/{k}": float(v) for k, v in terms.items()}, "train/loss": float(loss)}

    def on_train_end(self) -> None:
        """Write the last step's loss terms to the loggers unless Lightning did (it writes every
        ``log_every_n_steps`` steps only); stop with a :class:`DivergenceError` if the run ends with its loss
        above the divergence rule's bound."""
        final = self.final_step_metrics()
        if final and self.trainer.log_every_n_steps > 0 and not lightning_writes(self.trainer, self._last_step[0]):
            for logger in self.loggers:
                logger.log_metrics(final, step=self._last_step[0])
        if self.divergence is not None and self.divergence.above > 0:
            raise DivergenceError(
                f"the run ended with its loss ({final.get('train/loss', float('nan')):.3g}) above "
                f"{self.divergence.describe()} for the last {self.divergence.above} steps. {self._resume_hint()}")

    def _log_step(self, terms: Mapping[str, Tensor], loss: Tensor) -> None:
        """The step metrics: loss terms, total, weights, causal minimum weight, restarts, parameters."""
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, on_step=True, on_epoch=False)
        self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        weighting = self.weighted_loss.metrics()
        if weighting:
            self.log_dict({f"train/{k}": v for k, v in weighting.items()}, on_step=True, on_epoch=False)
        if self.windows is not None:
            self.log("train/window", float(self.windows.index + 1), on_step=True, on_epoch=False)
        if self.lbfgs_restarts:
            self.log("train/lbfgs_restarts", float(self.lbfgs_restarts), on_step=True, on_epoch=False)
        for name, value in self.pde_params.items():
            self.log(f"train/param_{name}", value.detach(), on_step=True, on_epoch=False)

    def _raise_non_finite(self, terms: Mapping[str, Tensor]) -> None:
        bad = [f"{k}={v.item()}" for k, v in terms.items() if not torch.isfinite(v)] or ["the weighted total"]
        raise NonFiniteLossError(
            f"loss term {', '.join(bad)} at step {self.global_step} ({self.phase}); training stopped. "
            f"{self._resume_hint()}"
        )

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        """Start the phase whose first step this is; redraw the points every ``resample_every`` steps; end
        training (``-1``) when the last phase has taken its steps."""
        step = self.global_step
        total = self.phases.total_steps
        local = step - (self.windows.start_step if self.windows is not None else 0)  # steps into the window
        if self.windows is not None and self.windows.due(step, total is not None and local >= total):
            self._next_window(step)
            local = 0
        if total is not None and local >= total:
            if not self.trainer.should_stop:
                rank_zero_info(f"lightning-pinn: the last phase, {self.phases.phases[-1].name}, ended at step {step}")
            self.trainer.should_stop = True
            return -1  # skip the rest of the epoch; should_stop ends the run
        index = self.phases.index_at(local)
        if index != self.phases.index:
            self._start_phase(index, step)
        if self.collocation.due(step, self.resample_every):
            redrawn = self.collocation.points is not None
            self.collocation.redraw(step, self.device, self.dtype)
            if redrawn:
                self.points_changed()
        return None

    def _next_window(self, step: int) -> None:
        """Freeze the current window's network, start the next window at ``step``: its points, its first phase."""
        self.window_nets.append(copy.deepcopy(self.net).requires_grad_(False))
        self.windows.advance(step)
        self._window_time_bounds()
        if self.weighted_loss.causal is not None:
            self.weighted_loss.causal.stage = 0  # the epsilon schedule starts over in every window
        self.collocation.redraw(step, self.device, self.dtype)
        lo, hi = self.windows.bounds()
        rank_zero_info(f"lightning-pinn: time window {self.windows.index + 1} of {self.windows.count} "
                       f"({self.problem.time} in [{lo:g}, {hi:g}]) from step {step}")
        self._start_phase(0, step)

    def _window_time_bounds(self) -> None:
        """Causal weighting over the current window's time interval."""
        if self.windows is not None and self.weighted_loss.causal is not None:
            self.weighted_loss.time_bounds = self.windows.bounds()

    def _start_phase(self, index: int, step: int) -> None:
        """Make phase ``index`` current: its precision, its optimizer and scheduler in the trainer's strategy."""
        self.phases.index = index
        phase = self.phases.current
        if phase.float64 and self.dtype != torch.float64:
            self.to(torch.float64)  # points follow self.dtype; the compiled loss recompiles once
        optimizer, scheduler = phase.build(p for p in self.parameters() if p.requires_grad)
        self.trainer.strategy.optimizers = [optimizer]
        self.trainer.strategy.lr_scheduler_configs = [] if scheduler is None else [
            LRSchedulerConfig(scheduler, interval="step")]
        if self.divergence is not None:
            self.divergence.reset()  # a new optimizer: its own path, measured from its start
        rank_zero_info(f"lightning-pinn: phase {phase.name} ({type(optimizer).__name__}"
                       f"{', float64' if self.dtype == torch.float64 else ''}) from step {step}")

    def points_changed(self) -> None:
        """Tell the current optimizer that the collocation points (so the objective) changed.

        A :class:`~lightning_pinn.optim.QuasiNewton` keeps its inverse Hessian and starts from a fresh
        gradient; an L-BFGS drops its history (its pairs and its last direction belong to the old
        points); Adam-like optimizers keep their moments. Called after ``resample_every`` redraws and
        by the RAD and RAR callbacks.
        """
        for optimizer in self._raw_optimizers():
            if isinstance(optimizer, QuasiNewton):
                optimizer.objective_changed()
            elif isinstance(optimizer, torch.optim.LBFGS):
                optimizer.state.clear()

    def _raw_optimizers(self) -> list[torch.optim.Optimizer]:
        trainer = self._attached_trainer()
        optimizers = trainer.optimizers if trainer is not None else []
        return [o.optimizer if isinstance(o, LightningOptimizer) else o for o in optimizers]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Advance the causal ``epsilon`` schedule once the last time chunk's weight is high enough; restart
        an L-BFGS whose line search failed."""
        if self.weighted_loss.after_step(self._rank_mean()) and self.divergence is not None:
            self.divergence.reset()  # a new causal epsilon: a new objective
        for optimizer in self._raw_optimizers():
            if isinstance(optimizer, torch.optim.LBFGS):
                self._restart_stalled_lbfgs(optimizer)

    def _restart_stalled_lbfgs(self, optimizer: torch.optim.LBFGS) -> None:
        """Clear the history of an L-BFGS whose last line search found no step (``t = 0``); count it.

        The count is logged as ``train/lbfgs_restarts`` at every later step.

        ``torch.optim.LBFGS`` keeps its direction and step across calls, so after one failed
        strong-Wolfe search every later step repeats it and the parameters never move again.
        A cleared history restarts from steepest descent. Every rank sees the same objective,
        so every rank restarts at the same step.
        """
        state = optimizer.state[optimizer.param_groups[0]["params"][0]]
        if state.get("n_iter", 0) > 0 and state.get("t") == 0:
            optimizer.state.clear()
            self.lbfgs_restarts += 1
            if self.lbfgs_restarts == 1:
                rank_zero_info(f"lightning-pinn: L-BFGS line search found no step at step {self.global_step}; "
                               "its history is cleared (and again whenever this repeats)")

    # ----- validation and prediction -----------------------------------------------------------

    def validation_grid(self, inside_only: bool = True) -> tuple[np.ndarray, list[int]]:
        """The validation grid as ``(N, n_coords)`` float64 points and its size per coordinate (see
        ``lightning.validation.ValidationGrid.points``)."""
        return self.validation.points(inside_only)

    def reference_values(self, points: np.ndarray) -> np.ndarray:
        """``problem.reference`` at ``points``, as ``(N, n_fields)`` float64."""
        return self.problem.reference_values(points)

    def val_dataloader(self) -> Any:
        """The validation grid with reference values, this rank's share (empty when the problem has no reference)."""
        trainer = self._attached_trainer()
        world = trainer.world_size if trainer is not None else 1
        return self.validation.loader(world, self.global_rank)

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
        """Store the optimizer phase and precision, the problem's fingerprint and point counts, the collocation
        state (streams and current points), the balancer's, the causal schedule's and the divergence rule's state."""
        checkpoint["lightning_pinn"] = {"phase": self.phases.index, "float64": self.dtype == torch.float64,
                                        "problem": self.problem.fingerprint(),
                                        "point_counts": self.problem.point_counts(),
                                        "collocation": self.collocation.state_dict(),
                                        **self.weighted_loss.state_dict(),
                                        "divergence": None if self.divergence is None else self.divergence.state_dict(),
                                        "windows": None if self.windows is None else self.windows.state_dict()}

    def _load_windows(self, state: Mapping[str, Any] | None) -> None:
        """The window a checkpoint was in, and as many frozen networks as windows it finished (their weights load next)."""
        if state is None and self.windows is None:
            return
        if state is None or self.windows is None:
            had = "no time windows" if state is None else f"time_windows={state['count']}"
            raise ConfigError(f"time_windows: the checkpoint was trained with {had}; set time_windows to match")
        self.windows.load_state_dict(state)
        while len(self.window_nets) < self.windows.index:
            self.window_nets.append(copy.deepcopy(self.net).requires_grad_(False))
        self._window_time_bounds()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore what :meth:`on_save_checkpoint` stored, before optimizers are built.

        A float64 checkpoint makes the module float64 in any phase. When resuming a fit (a trainer
        is attached), the checkpoint must hold the same problem (its fingerprint; else a
        ``ConfigError`` lists the differences) and a phase this run has; changed point counts draw
        the points anew from the sampler streams; optimizer settings changed in the config since
        the checkpoint was written (e.g. a smaller learning rate) replace the checkpoint's, and say
        so. Loading for inference (``load_from_checkpoint``) checks nothing of this.
        """
        resuming = self._attached_trainer() is not None
        state = checkpoint.get("lightning_pinn")
        if not state:
            return
        index = state["phase"]
        if not isinstance(index, int) or not 0 <= index < len(self.phases.phases):
            raise ConfigError(f"ckpt_path: the checkpoint is in phase {index!r}, which this run's phases "
                              f"{[p.name for p in self.phases.phases]} do not have (checkpoints written before "
                              "optimizer phases cannot resume; their weights are "
                              "torch.load(path, weights_only=True)['state_dict'])")
        self.phases.index = index
        if state.get("float64") or self.phases.current.float64:
            self.to(torch.float64)  # before the weights are loaded, so that they load in float64
        self._load_windows(state.get("windows"))
        redraw = False
        if resuming:
            check_same_problem(state.get("problem"), self.problem)
            changes = point_count_changes(state.get("point_counts"), self.problem)
            if changes:
                redraw = True
                rank_zero_info(f"lightning-pinn: point counts changed since the checkpoint ({changes}); every point set "
                               "is drawn anew from its sampler stream")
            said = apply_optimizer_settings(checkpoint, self.phases.current)
            if said:
                rank_zero_info(f"lightning-pinn: resuming phase {self.phase} with {said}, as the config now says")
        if not redraw:
            if resuming and self.trainer.world_size > 1 and self.global_rank != 0:
                self.collocation.replay(state["collocation"])  # the checkpoint holds rank 0's streams only
            else:
                self.collocation.load_state_dict(state["collocation"])
        self.weighted_loss.load_state_dict(state)
        if self.divergence is not None and state.get("divergence") is not None:
            self.divergence.load_state_dict(state["divergence"])

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, map_location: Any = None, hparams_file: Any = None,
                             strict: bool | None = None, trusted_targets: Any = (), **kwargs: Any) -> PINNModule:
        """A module from a checkpoint file, read as data.

        Lightning's ``load_from_checkpoint``, after checks that make a downloaded checkpoint safe
        to load: the file is read with ``weights_only=True`` (plain data); every ``_target_`` in
        its hyperparameters must be on the allow-list (``lightning_pinn.allowlist``) before anything
        is imported; ``trusted_targets`` adds to the list for this call only. The problem need
        not match anything (a resume checks that, this does not). ``kwargs`` override stored
        hyperparameters, as in Lightning.

        Args:
            checkpoint_path: a ``.ckpt`` file (or a file-like object).
            map_location: as for ``torch.load``.
            hparams_file: a YAML file of hyperparameters that replace the stored ones (read as data).
            strict: as in Lightning.
            trusted_targets: targets to allow for this load, e.g. ``["mypkg.MyNet"]``.

        Raises:
            ConfigError: naming the file and the key, for an unreadable file, a refused target or a
                stored value the constructor refuses.
        """
        import io

        import yaml

        if kwargs.pop("weights_only", True) is not True:
            raise ConfigError("weights_only: PINNModule checkpoints are plain data and load with weights_only=True; "
                              "for a file that needs more, use torch.load(path, weights_only=False) on a file you trust")

        key = f"{checkpoint_path}:" if isinstance(checkpoint_path, (str, Path)) else "checkpoint:"
        if isinstance(checkpoint_path, (str, Path)):
            checkpoint = read_checkpoint(checkpoint_path, key.rstrip(":"), "cpu")
        else:
            checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        hparams = checkpoint.get(cls.CHECKPOINT_HYPER_PARAMS_KEY) or {}
        if not isinstance(hparams, Mapping):
            raise ConfigError(at(subkey(key, "hyper_parameters"), f"expected a mapping but got {type(hparams).__name__}"))
        hparams = dict(hparams)
        if hparams_file is not None:
            extra = yaml.safe_load(Path(hparams_file).read_text())
            if not isinstance(extra, Mapping):
                raise ConfigError(f"hparams_file: expected a mapping of hyperparameters in {hparams_file}")
            hparams.update(extra)
        checkpoint[cls.CHECKPOINT_HYPER_PARAMS_KEY] = hparams
        checkpoint.pop(cls.CHECKPOINT_HYPER_PARAMS_TYPE, None)  # plain dicts: never an OmegaConf that resolves ${...}
        with trusting(trusted_targets):
            check_targets(hparams, subkey(key, "hyper_parameters"))
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            buffer.seek(0)
            try:
                return super().load_from_checkpoint(buffer, map_location=map_location, strict=strict,
                                                    weights_only=True, **kwargs)
            except ConfigError as err:
                raise err.within(subkey(key, "hyper_parameters")) from err


def _check_phases(phases: Phases, trainer: pl.Trainer) -> None:
    """Refuse phases the trainer cannot run: a line search under 16-bit autocast or loss scaling, float64 under
    autocast or DDP, a last phase without end in a run without ``max_steps`` or ``max_time``."""
    precision = str(trainer.precision)
    for phase in phases.phases:
        key = f"phases.{phase.name}"
        if (phase.line_search or phase.least_squares) and precision not in ("32-true", "32", "64-true", "64"):
            kind = "a line-search optimizer" if phase.line_search else "Gauss-Newton"
            raise ConfigError(f"{key}: {kind} needs an exact loss, and trainer.precision={precision} "
                              "rounds it to 16 bits; use trainer.precision=64-true (best) or 32-true")
        if phase.float64 and precision not in ("32-true", "32", "64-true", "64"):
            raise ConfigError(f"{key}.float64: needs trainer.precision=32-true or 64-true, but it is {precision!r}")
        if phase.float64 and trainer.world_size > 1 and precision not in ("64-true", "64"):
            raise ConfigError(f"{key}.float64: not supported with more than one process (DDP keeps its gradient "
                              "buffers in the dtype it started with); use trainer.precision=64-true for the whole run")
    timed = any(isinstance(callback, Timer) for callback in trainer.callbacks)
    if not phases.ends and trainer.max_steps in (-1, None) and not timed:
        raise ConfigError(f"phases.{phases.phases[-1].name}: the last phase runs until training ends, but the trainer "
                          "has neither max_steps nor max_time; set trainer.max_steps or trainer.max_time")


def _check_net(net: nn.Module, problem: Problem) -> None:
    if not isinstance(net, nn.Module):
        raise ConfigError(f"net: expected a torch.nn.Module but got {type(net).__name__}")
    param = next(itertools.chain(net.parameters(), net.buffers()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.get_default_dtype()
    device = param.device if param is not None else "cpu"
    probe = torch.zeros(2, problem.n_coords, dtype=dtype, device=device)
    try:
        with torch.no_grad():
            out = net(probe)
    except Exception as err:
        raise ConfigError(
            f"net: calling it on points of shape (N, {problem.n_coords}) for coordinates {list(problem.coords)} failed: {err}"
        ) from err
    if not isinstance(out, Tensor) or out.shape != (2, problem.n_fields):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError(
            f"net: maps (N, {problem.n_coords}) points to {shape}, but the problem has {problem.n_fields} "
            f"field(s) {list(problem.fields)}: expected (N, {problem.n_fields})"
        )
