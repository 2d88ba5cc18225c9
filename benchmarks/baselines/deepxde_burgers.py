"""DeepXDE's own Burgers example (``examples/pinn_forward/Burgers.py``, DeepXDE 1.15) through its API, timed.

    DDE_BACKEND=pytorch .venv/bin/python benchmarks/baselines/deepxde_burgers.py --seed 0 --out run.json

The example's settings, unchanged: ``u_t + u u_x - (0.01/pi) u_xx`` on ``[-1, 1] x [0, 0.99]``
(``GeometryXTime(Interval(-1, 1), TimeDomain(0, 0.99))``), ``DirichletBC`` u = 0 on the boundary,
``IC`` u = -sin(pi x), ``TimePDE(num_domain=2540, num_boundary=80, num_initial=160)``,
``FNN([2] + [20] * 3 + [1], "tanh", "Glorot normal")``, Adam at lr 1e-3 for 15,000 iterations,
then DeepXDE's L-BFGS with its default options, float32. The only additions: ``seed`` seeds
DeepXDE (``dde.config.set_random_seed``), and a callback records the relative L2 error against
the Cole-Hopf solution on the 256 x 100 grid of ``[-1, 1] x [0, 1]`` (lightning-pinn's grid, in
place of the example's ``Burgers.npz``, which this machine cannot download) with the wall time
since the process started, every ``--every`` iterations; the final error is computed after
training. Writes ``{"trace": [[seconds, iteration, error], ...], "final_rel_l2", "seconds"}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

START = time.perf_counter()

import numpy as np  # noqa: E402

os.environ.setdefault("DDE_BACKEND", "pytorch")
import deepxde as dde  # noqa: E402

from lightning_pinn.references import BurgersColeHopf  # noqa: E402

NU = 0.01 / math.pi


def grid() -> tuple[np.ndarray, np.ndarray]:
    """The 256 x 100 evaluation grid and the exact solution on it."""
    x, t = np.meshgrid(np.linspace(-1, 1, 256), np.linspace(0, 1, 100), indexing="ij")
    points = np.stack([x.ravel(), t.ravel()], axis=1)
    return points, BurgersColeHopf(NU)(points[:, 0], points[:, 1])


class ErrorTrace(dde.callbacks.Callback):
    """Every ``every`` iterations: seconds since the process started, iteration, relative L2 error."""

    def __init__(self, points: np.ndarray, exact: np.ndarray, every: int):
        super().__init__()
        self.points, self.exact, self.every = points, exact, every
        self.trace: list[list[float]] = []
        self.iteration = 0

    def on_epoch_end(self):
        self.iteration += 1
        if self.iteration % self.every == 0:
            u = self.model.predict(self.points)[:, 0]
            self.trace.append([time.perf_counter() - START, self.iteration,
                               float(np.linalg.norm(u - self.exact) / np.linalg.norm(self.exact))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=1000, help="iterations between error evaluations")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    dde.config.set_random_seed(args.seed)

    def pde(x, y):
        dy_x = dde.grad.jacobian(y, x, i=0, j=0)
        dy_t = dde.grad.jacobian(y, x, i=0, j=1)
        dy_xx = dde.grad.hessian(y, x, i=0, j=0)
        return dy_t + y * dy_x - NU * dy_xx

    geomtime = dde.geometry.GeometryXTime(dde.geometry.Interval(-1, 1), dde.geometry.TimeDomain(0, 0.99))
    bc = dde.icbc.DirichletBC(geomtime, lambda x: 0, lambda _, on_boundary: on_boundary)
    ic = dde.icbc.IC(geomtime, lambda x: -np.sin(np.pi * x[:, 0:1]), lambda _, on_initial: on_initial)
    data = dde.data.TimePDE(geomtime, pde, [bc, ic], num_domain=2540, num_boundary=80, num_initial=160)
    net = dde.nn.FNN([2] + [20] * 3 + [1], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    points, exact = grid()
    trace = ErrorTrace(points, exact, args.every)
    model.compile("adam", lr=1e-3)
    model.train(iterations=15000, callbacks=[trace], display_every=5000)
    model.compile("L-BFGS")
    model.train(callbacks=[trace], display_every=5000)
    u = model.predict(points)[:, 0]
    final = float(np.linalg.norm(u - exact) / np.linalg.norm(exact))
    seconds = time.perf_counter() - START
    trace.trace.append([seconds, trace.iteration, final])
    args.out.write_text(json.dumps({"trace": trace.trace, "final_rel_l2": final, "seconds": seconds,
                                    "iterations": trace.iteration, "deepxde": dde.__version__}))
    print(f"DeepXDE Burgers: rel. L2 {final:.3e} after {seconds:.0f} s, {trace.iteration} iterations")


if __name__ == "__main__":
    main()
