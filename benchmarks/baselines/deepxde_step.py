"""One DeepXDE training step (PyTorch backend), for timing against lightning-pinn.

Written against DeepXDE 1.15.0 (``DDE_BACKEND=pytorch``), float32 (DeepXDE's default ``config.real``).

What ``build`` sets up (one-off, not timed): ``dde.nn.FNN([d] + [width] * depth + [m], "tanh",
"Glorot normal")`` seeded with ``torch.manual_seed(seed)``; ``dde.data.PDE`` (``dde.data.TimePDE`` for
the time-dependent problems) with no boundary/initial conditions, ``num_domain=0``,
``num_boundary=0`` (``num_initial=0``) and ``anchors=points``, so the training set is exactly the
given points in the given order and is never resampled; ``dde.Model(data, net).compile("adam",
lr=lr)`` (default loss ``"MSE"``: one mean-squared residual per equation, summed by the compiled
train step, which is the loss asked for); then ``model.train(iterations=0, verbose=0)``, DeepXDE's
own setup of the training state and callbacks (it runs one evaluation of the test loss, once).

What the returned function times: one iteration of DeepXDE's own SGD training loop
(``Model._train_sgd``), i.e. ``callbacks.on_epoch_begin/on_batch_begin``,
``train_state.set_data_train(*data.train_next_batch(None))`` (cached points, no resampling),
``Model._train_step`` -> the ``train_step`` compiled by ``Model._compile_pytorch`` (``opt.step(closure)``
where the closure runs ``outputs_losses_train``: numpy -> tensor with ``requires_grad``, forward,
the PDE function below through ``dde.grad.jacobian``/``dde.grad.hessian`` with DeepXDE's per-step
derivative cache, MSE per equation, sum, ``zero_grad``, ``backward``), the step counters and
``on_batch_end/on_epoch_end``. Left out is only ``Model._test``, which ``_train_sgd`` runs every
``display_every`` steps (an evaluation of train and test loss plus printing), not on every step.
The loss is read from the return value of ``model.opt.step`` (the closure's total loss; the
optimizer's ``step`` is wrapped by a pass-through that keeps that value), and converted with ``float``.

Derivatives: ``u_x = dde.grad.jacobian(u, x, i=0, j=0)``, ``u_xx = dde.grad.hessian(u, x, i=0, j=0)``;
third order is ``dde.grad.jacobian(u_xx, x, i=0, j=0)`` and fourth order
``dde.grad.hessian(u_xx, x, i=0, j=0)``, DeepXDE's way of nesting its operators. Every problem
("burgers", "kdv", "ks", "poisson2d", "ns2d") can be expressed, so ``build`` never returns None.

Global state: importing DeepXDE with the PyTorch backend calls ``torch.set_default_device("cuda")``
when CUDA is available (a no-op on a CPU-only machine; on a GPU machine it changes the default
device of every library in the process). ``build`` does not call ``dde.config.set_random_seed``
(which also seeds Python's and NumPy's global generators) nor ``dde.config.set_default_float``
(which would call ``torch.set_default_dtype``). DeepXDE's derivative cache (``dde.grad``) is
module-global; the compiled step clears it after each loss evaluation.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from typing import Callable

import numpy as np

NU_BURGERS = 0.01 / math.pi
RE_NS = 40.0

# problem -> (lower corner, upper corner, time-dependent?, number of outputs)
PROBLEMS = {
    "burgers": ([-1.0, 0.0], [1.0, 1.0], True, 1),
    "kdv": ([-1.0, 0.0], [1.0, 1.0], True, 1),
    "ks": ([-1.0, 0.0], [1.0, 1.0], True, 1),
    "poisson2d": ([0.0, 0.0], [1.0, 1.0], False, 1),
    "ns2d": ([-0.5, -0.5], [1.0, 1.5], False, 3),
}


def _import_dde():
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import deepxde as dde  # prints its backend banner on import
    if dde.backend.backend_name != "pytorch":
        raise RuntimeError(f"DeepXDE was imported with backend {dde.backend.backend_name!r}, not pytorch")
    return dde


def pde_function(problem: str, dde=None):
    """The DeepXDE PDE function ``pde(x, y) -> residual(s)`` for ``problem`` (x: (N, d), y: (N, m))."""
    dde = dde or _import_dde()
    import torch

    jac, hes = dde.grad.jacobian, dde.grad.hessian

    if problem == "burgers":
        def pde(x, y):
            u_x = jac(y, x, i=0, j=0)
            u_t = jac(y, x, i=0, j=1)
            u_xx = hes(y, x, i=0, j=0)
            return u_t + y * u_x - NU_BURGERS * u_xx
    elif problem == "kdv":
        def pde(x, y):
            u_x = jac(y, x, i=0, j=0)
            u_t = jac(y, x, i=0, j=1)
            u_xx = hes(y, x, i=0, j=0)
            u_xxx = jac(u_xx, x, i=0, j=0)
            return u_t + y * u_x + 0.0025 * u_xxx
    elif problem == "ks":
        def pde(x, y):
            u_x = jac(y, x, i=0, j=0)
            u_t = jac(y, x, i=0, j=1)
            u_xx = hes(y, x, i=0, j=0)
            u_xxxx = hes(u_xx, x, i=0, j=0)
            return u_t + 5.0 * y * u_x + 0.5 * u_xx + 0.005 * u_xxxx
    elif problem == "poisson2d":
        def pde(x, y):
            u_xx = hes(y, x, i=0, j=0)
            u_yy = hes(y, x, i=1, j=1)
            source = 2.0 * math.pi**2 * torch.sin(math.pi * x[:, 0:1]) * torch.sin(math.pi * x[:, 1:2])
            return u_xx + u_yy + source
    elif problem == "ns2d":
        def pde(x, y):
            u, v = y[:, 0:1], y[:, 1:2]
            u_x, u_y = jac(y, x, i=0, j=0), jac(y, x, i=0, j=1)
            v_x, v_y = jac(y, x, i=1, j=0), jac(y, x, i=1, j=1)
            p_x, p_y = jac(y, x, i=2, j=0), jac(y, x, i=2, j=1)
            u_xx, u_yy = hes(y, x, component=0, i=0, j=0), hes(y, x, component=0, i=1, j=1)
            v_xx, v_yy = hes(y, x, component=1, i=0, j=0), hes(y, x, component=1, i=1, j=1)
            momentum_x = u * u_x + v * u_y + p_x - (u_xx + u_yy) / RE_NS
            momentum_y = u * v_x + v * v_y + p_y - (v_xx + v_yy) / RE_NS
            continuity = u_x + v_y
            return [momentum_x, momentum_y, continuity]
    else:
        raise ValueError(f"unknown problem {problem!r}; expected one of {sorted(PROBLEMS)}")
    return pde


def build_model(problem: str, points: np.ndarray, width: int, depth: int, lr: float = 1e-3, seed: int = 0):
    """The compiled ``dde.Model`` for ``problem`` on exactly ``points`` (one-off setup of ``build``)."""
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; expected one of {sorted(PROBLEMS)}")
    dde = _import_dde()
    import torch

    lower, upper, timedep, n_out = PROBLEMS[problem]
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {points.shape}")
    pde = pde_function(problem, dde)
    if timedep:
        geom = dde.geometry.GeometryXTime(dde.geometry.Interval(lower[0], upper[0]),
                                          dde.geometry.TimeDomain(lower[1], upper[1]))
        data = dde.data.TimePDE(geom, pde, [], num_domain=0, num_boundary=0, num_initial=0, anchors=points)
    else:
        geom = dde.geometry.Rectangle(lower, upper)
        data = dde.data.PDE(geom, pde, [], num_domain=0, num_boundary=0, anchors=points)

    torch.manual_seed(seed)
    net = dde.nn.FNN([points.shape[1]] + [width] * depth + [n_out], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    with contextlib.redirect_stdout(io.StringIO()):
        model.compile("adam", lr=lr)
        model.train(iterations=0, verbose=0)  # DeepXDE's own setup of train_state and callbacks
    return model


def build(problem: str, points: np.ndarray, width: int, depth: int, lr: float = 1e-3,
          seed: int = 0) -> Callable[[], float] | None:
    """Build DeepXDE's model for ``problem`` on exactly ``points`` (N, d) and return a function that
    performs one Adam step through DeepXDE's own training loop body and returns the loss."""
    model = build_model(problem, points, width, depth, lr=lr, seed=seed)

    box = [None]
    opt_step = model.opt.step

    def step_keeping_loss(closure=None):
        box[0] = opt_step(closure)
        return box[0]

    model.opt.step = step_keeping_loss  # pass-through: keeps the closure's loss that train_step drops

    state, callbacks, data = model.train_state, model.callbacks, model.data

    def step() -> float:
        # the body of Model._train_sgd for one iteration, without its periodic Model._test
        callbacks.on_epoch_begin()
        callbacks.on_batch_begin()
        state.set_data_train(*data.train_next_batch(model.batch_size))
        model._train_step(state.X_train, state.y_train, state.train_aux_vars)
        state.iteration += 1
        state.step += 1
        callbacks.on_batch_end()
        callbacks.on_epoch_end()
        return float(box[0].detach())

    step.model = model  # for checks (weights, residuals); not used by the timed path
    return step
