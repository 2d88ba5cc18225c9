"""One PINA training step, for timing against lightning-pinn.

Written against PINA 0.3.2.post2610 (PyPI name ``pina-mathlab``, import name ``pina``), float32.

What ``build`` sets up (one-off, not timed): a PINA problem class (``SpatialProblem``, plus
``TimeDependentProblem`` with ``t`` as its temporal variable for the time-dependent problems, so the
input variables keep the column order of ``points``) whose only condition is
``Condition(input=LabelTensor(points), equation=Equation(residual))`` (an ``InputEquationCondition``:
fixed points, no boundary or initial conditions, no domain sampling); the model
``pina.model.FeedForward(d, m, inner_size=width, n_layers=depth, func=torch.nn.Tanh)`` with
Glorot-normal weights and zero biases (seeded so that it holds the same weights as DeepXDE's
``FNN(..., "tanh", "Glorot normal")`` built after ``torch.manual_seed(seed)``);
``PhysicsInformedSingleModelSolver`` (PINA's PINN) with ``TorchOptimizer(torch.optim.Adam, lr=lr)``
and its default loss (``torch.nn.MSELoss``) and scheduler (``ConstantLR(factor=1)``); and
``pina.Trainer(solver, batch_size=None, shuffle=False, max_epochs=-1, accelerator="cpu",
logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)``
(full batch; no logging, checkpointing, progress bar or model summary, which are I/O and display,
not training). PINA trains only through this Lightning ``Trainer`` (``trainer.train()`` is
``Trainer.fit``), which has no "one step" call, so ``build`` starts ``trainer.train()`` in a
background thread whose fit loop is held by a callback at ``on_train_batch_start`` (after setup and
the first batch fetch).

What the returned function times: one full iteration of Lightning's fit loop as driven by PINA:
the function releases the loop and waits until it is back at ``on_train_batch_start`` of the next
batch. That iteration holds PINA's ``training_step`` (``ConditionAggregatorMixin.
batch_evaluation_step``: LabelTensor input with ``requires_grad``, the labelled forward pass, the
residual below through ``pina.operator``, MSE, weighting, ``self.log`` calls with ``.item()``),
Lightning's automatic optimization (closure, ``zero_grad``, ``backward``, ``Adam.step``), the batch-end
and epoch-end hooks (with ``batch_size=None`` one epoch is one step: scheduler step, epoch
bookkeeping), and fetching the next (cached, never resampled) batch. Nothing of the step runs
outside the timed call. The two thread hand-offs (semaphores) add about 10 microseconds per call. The loss
is the training-step loss Lightning hands to ``on_train_batch_end``, converted with ``float``.

Loss: PINA's MSE is the mean over all residual entries, so for "ns2d" (three residual columns in one
equation) the condition loss is the mean over the three equations; the solver is given
``ScalarWeighting({"D": 3.0})`` so that the loss is the sum of the three mean-squared residuals,
like the other libraries. The single-equation problems use the default weighting (weight 1).

Derivatives: ``pina.operator.grad`` (all first derivatives of an output in one call) and
``pina.operator.laplacian`` with ``d=["x"]`` for second derivatives; third order is
``grad(u_xx, pts, d=["x"])`` and fourth order ``laplacian(u_xx, pts, d=["x"])``; ns2d also uses
``laplacian`` on ``components=["u", "v"]``. PINA's operators do not cache: ``laplacian``
recomputes the first derivative it starts from. Every problem can be expressed, so ``build`` never
returns None.

Global state and pitfalls: importing ``pina`` (its ``Trainer`` module) sets
``warnings.formatwarning`` and ``warnings.filterwarnings("always", category=UserWarning)`` for the
whole process. Each built step keeps a paused daemon thread (with its Lightning Trainer) until
``step.close()`` is called or the step function is garbage-collected; closing ends the fit loop
by an exception at its next ``on_train_batch_start``, so Lightning's teardown runs in that thread:
``close()`` waits for it, garbage collection does not, so close steps explicitly between timings. The training step runs in
that thread: per-thread torch state such as grad mode is Lightning's own there, and with
PyTorch's OpenMP backend a thread keeps the intra-op thread count it started with, so each step
first copies the caller's ``torch.get_num_threads()`` into the training thread (a no-op unless it
changed). The training thread has its own OpenMP worker pool, separate from the caller's.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import warnings
import weakref
from typing import Callable

import numpy as np

NU_BURGERS = 0.01 / math.pi
RE_NS = 40.0

# problem -> (input labels, spatial bounds, temporal bounds or None, output labels)
PROBLEMS = {
    "burgers": (["x", "t"], {"x": [-1.0, 1.0]}, {"t": [0.0, 1.0]}, ["u"]),
    "kdv": (["x", "t"], {"x": [-1.0, 1.0]}, {"t": [0.0, 1.0]}, ["u"]),
    "ks": (["x", "t"], {"x": [-1.0, 1.0]}, {"t": [0.0, 1.0]}, ["u"]),
    "poisson2d": (["x", "y"], {"x": [0.0, 1.0], "y": [0.0, 1.0]}, None, ["u"]),
    "ns2d": (["x", "y"], {"x": [-0.5, 1.0], "y": [-0.5, 1.5]}, None, ["u", "v", "p"]),
}


def residual_function(problem: str):
    """The PINA equation ``residual(input_, output_)`` for ``problem`` (LabelTensors in, LabelTensor out)."""
    import torch
    from pina import LabelTensor
    from pina.operator import grad, laplacian

    if problem == "burgers":
        def residual(input_, output_):
            du = grad(output_, input_)
            u_xx = laplacian(output_, input_, d=["x"])
            return du.extract(["dudt"]) + output_ * du.extract(["dudx"]) - NU_BURGERS * u_xx
    elif problem == "kdv":
        def residual(input_, output_):
            du = grad(output_, input_)
            u_xx = laplacian(output_, input_, d=["x"])
            u_xxx = grad(u_xx, input_, d=["x"])
            return du.extract(["dudt"]) + output_ * du.extract(["dudx"]) + 0.0025 * u_xxx
    elif problem == "ks":
        def residual(input_, output_):
            du = grad(output_, input_)
            u_xx = laplacian(output_, input_, d=["x"])
            u_xxxx = laplacian(u_xx, input_, d=["x"])
            return (du.extract(["dudt"]) + 5.0 * output_ * du.extract(["dudx"]) + 0.5 * u_xx
                    + 0.005 * u_xxxx)
    elif problem == "poisson2d":
        def residual(input_, output_):
            lap = laplacian(output_, input_, d=["x", "y"])
            source = (2.0 * math.pi**2 * torch.sin(math.pi * input_.extract(["x"]))
                      * torch.sin(math.pi * input_.extract(["y"])))
            return lap + source
    elif problem == "ns2d":
        def residual(input_, output_):
            g = grad(output_, input_)  # dudx dudy dvdx dvdy dpdx dpdy
            lap = laplacian(output_, input_, components=["u", "v"], d=["x", "y"])  # ddu ddv
            u, v = output_.extract(["u"]), output_.extract(["v"])
            u_x, u_y = g.extract(["dudx"]), g.extract(["dudy"])
            v_x, v_y = g.extract(["dvdx"]), g.extract(["dvdy"])
            momentum_x = u * u_x + v * u_y + g.extract(["dpdx"]) - lap.extract(["ddu"]) / RE_NS
            momentum_y = u * v_x + v * v_y + g.extract(["dpdy"]) - lap.extract(["ddv"]) / RE_NS
            continuity = u_x + v_y
            return LabelTensor(torch.cat([momentum_x.tensor, momentum_y.tensor, continuity.tensor], dim=1),
                               labels=["momentum_x", "momentum_y", "continuity"])
    else:
        raise ValueError(f"unknown problem {problem!r}; expected one of {sorted(PROBLEMS)}")
    return residual


def make_model(n_in: int, n_out: int, width: int, depth: int, seed: int = 0):
    """PINA's FeedForward with Glorot-normal weights and zero biases, drawn in DeepXDE's FNN order."""
    import torch
    from pina.model import FeedForward

    model = FeedForward(n_in, n_out, inner_size=width, n_layers=depth, func=torch.nn.Tanh)
    torch.manual_seed(seed)
    for layer in model.layers:  # per layer: default init, then Glorot normal, then zero bias
        layer.reset_parameters()
        torch.nn.init.xavier_normal_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    return model


def build_solver(problem: str, points: np.ndarray, width: int, depth: int, lr: float = 1e-3, seed: int = 0):
    """PINA's problem, model and PINN solver for ``problem`` on exactly ``points``."""
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; expected one of {sorted(PROBLEMS)}")
    import torch
    from pina import Condition, LabelTensor
    from pina.domain import CartesianDomain
    from pina.equation import Equation
    from pina.optim import TorchOptimizer
    from pina.problem import SpatialProblem, TimeDependentProblem
    from pina.solver import PhysicsInformedSingleModelSolver
    from pina.weighting import ScalarWeighting

    labels, spatial, temporal, outputs = PROBLEMS[problem]
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != len(labels):
        raise ValueError(f"points must have shape (N, {len(labels)}), got {points.shape}")
    pts = LabelTensor(torch.as_tensor(points, dtype=torch.float32), labels=labels)

    attrs = {
        "output_variables": outputs,
        "spatial_domain": CartesianDomain(spatial),
        "conditions": {"D": Condition(input=pts, equation=Equation(residual_function(problem)))},
    }
    bases = (SpatialProblem,)
    if temporal is not None:
        attrs["temporal_domain"] = CartesianDomain(temporal)
        bases = (TimeDependentProblem, SpatialProblem)
    pina_problem = type(f"{problem}_problem", bases, attrs)()  # a fresh class: conditions are class state
    assert pina_problem.input_variables == labels, pina_problem.input_variables

    model = make_model(len(labels), len(outputs), width, depth, seed)
    weighting = ScalarWeighting({"D": float(len(outputs))}) if len(outputs) > 1 else None
    return PhysicsInformedSingleModelSolver(pina_problem, model,
                                            optimizer=TorchOptimizer(torch.optim.Adam, lr=lr),
                                            weighting=weighting)


class _Stop(Exception):
    """Raised inside the paused fit loop to end it."""


def _gate_callback():
    import torch
    from lightning.pytorch.callbacks import Callback

    class Gate(Callback):
        """Holds Lightning's fit loop at every on_train_batch_start until released."""

        def __init__(self):
            self.go = threading.Semaphore(0)
            self.ready = threading.Semaphore(0)
            self.closing = False
            self.loss = None
            self.error = None
            self.num_threads = torch.get_num_threads()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.ready.release()
            self.go.acquire()
            if self.closing:
                raise _Stop
            if torch.get_num_threads() != self.num_threads:  # follow the caller's setting
                torch.set_num_threads(self.num_threads)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.loss = outputs["loss"] if isinstance(outputs, dict) else outputs

    return Gate()


@contextlib.contextmanager
def _quiet_setup():
    """Silence Lightning's setup chatter (device banner, logger tip, no-val-loop warning) while ``build``
    waits; restores the logger levels and warning filters afterwards."""
    names = ("lightning.pytorch", "lightning.fabric")
    levels = [logging.getLogger(name).level for name in names]
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*validation_step.*val_dataloader")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        for name, level in zip(names, levels):
            logging.getLogger(name).setLevel(level)


def _close(gate, thread):
    if thread.is_alive() and not gate.closing:
        gate.closing = True
        gate.go.release()


def build(problem: str, points: np.ndarray, width: int, depth: int, lr: float = 1e-3,
          seed: int = 0) -> Callable[[], float] | None:
    """Build PINA's PINN solver for ``problem`` on exactly ``points`` (N, d) and return a function that
    runs one Adam step as one iteration of PINA's Lightning Trainer fit loop and returns the loss."""
    solver = build_solver(problem, points, width, depth, lr=lr, seed=seed)
    import torch
    from pina import Trainer

    gate = _gate_callback()
    with _quiet_setup():
        trainer = Trainer(solver, batch_size=None, shuffle=False, max_epochs=-1, max_steps=-1,
                          accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False,
                          num_sanity_val_steps=0, callbacks=[gate])

    def run():
        try:
            trainer.train()
        except _Stop:
            pass
        except BaseException as error:  # handed to the caller by step()
            gate.error = error
        finally:
            gate.closing = True
            gate.ready.release()

    thread = threading.Thread(target=run, name=f"pina-{problem}", daemon=True)
    with _quiet_setup():  # the caller is blocked meanwhile, so the global filters only meet setup
        thread.start()
        gate.ready.acquire()  # setup done, first batch fetched: the loop waits at on_train_batch_start
    if gate.error is not None:
        raise RuntimeError("PINA's trainer failed during setup") from gate.error

    def step() -> float:
        if gate.closing:
            raise RuntimeError("this PINA step function is closed" if gate.error is None
                               else "PINA's trainer failed") from gate.error
        gate.num_threads = torch.get_num_threads()
        gate.go.release()
        gate.ready.acquire()
        if gate.error is not None:
            raise RuntimeError("PINA's trainer failed") from gate.error
        return float(gate.loss)

    def close(timeout: float = 30.0) -> None:
        _close(gate, thread)
        thread.join(timeout)

    step.close = close
    step.solver = solver  # for checks (weights, residuals); not used by the timed path
    step.trainer = trainer
    finalizer = weakref.finalize(step, _close, gate, thread)
    finalizer.atexit = False  # a paused daemon thread needs nothing at interpreter exit
    return step
