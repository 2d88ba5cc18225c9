"""Check the DeepXDE and PINA step builders: they build, train, compute the asked residuals, and time.

    .venv/bin/python benchmarks/baselines/check.py

For each installed library and each problem: build on 1,000 uniform random points, check that the
library's own residual equals a hand-written nested torch.autograd residual on the same weights
(copied into a plain torch nn.Sequential), that the first step's loss is the sum over equations of
the mean squared hand residual on exactly those points, run 5 steps (finite, changing loss), then
print the median step time. Burgers is also timed at N=10,000, and once with the two libraries'
steps interleaved. Timings are indicative: this machine has 2 cores and may be running other jobs.
"""

from __future__ import annotations

import importlib.util
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

DOMAINS = {  # problem -> (lower corner, upper corner, number of outputs)
    "burgers": ([-1.0, 0.0], [1.0, 1.0], 1),
    "kdv": ([-1.0, 0.0], [1.0, 1.0], 1),
    "ks": ([-1.0, 0.0], [1.0, 1.0], 1),
    "poisson2d": ([0.0, 0.0], [1.0, 1.0], 1),
    "ns2d": ([-0.5, -0.5], [1.0, 1.5], 3),
}
WIDTH, DEPTH, LR, SEED = 32, 3, 1e-3, 0


def points(problem: str, n: int, seed: int = 0) -> np.ndarray:
    lower, upper, _ = DOMAINS[problem]
    return np.random.default_rng(seed).uniform(lower, upper, size=(n, len(lower)))


def hand_residuals(problem: str, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """The residuals by nested torch.autograd.grad, one column per equation."""

    def d(f, col):
        return torch.autograd.grad(f, x, torch.ones_like(f), create_graph=True)[0][:, col:col + 1]

    if problem in ("burgers", "kdv", "ks"):
        u = y
        u_x, u_t = d(u, 0), d(u, 1)
        u_xx = d(u_x, 0)
        if problem == "burgers":
            return [u_t + u * u_x - (0.01 / math.pi) * u_xx]
        if problem == "kdv":
            return [u_t + u * u_x + 0.0025 * d(u_xx, 0)]
        return [u_t + 5 * u * u_x + 0.5 * u_xx + 0.005 * d(d(u_xx, 0), 0)]
    if problem == "poisson2d":
        u = y
        u_xx, u_yy = d(d(u, 0), 0), d(d(u, 1), 1)
        return [u_xx + u_yy + 2 * math.pi**2 * torch.sin(math.pi * x[:, :1]) * torch.sin(math.pi * x[:, 1:])]
    u, v, p = y[:, :1], y[:, 1:2], y[:, 2:]
    u_x, u_y, v_x, v_y = d(u, 0), d(u, 1), d(v, 0), d(v, 1)
    lap_u, lap_v = d(u_x, 0) + d(u_y, 1), d(v_x, 0) + d(v_y, 1)
    return [u * u_x + v * u_y + d(p, 0) - lap_u / 40, u * v_x + v * v_y + d(p, 1) - lap_v / 40, u_x + v_y]


def sequential_copy(linears: list[torch.nn.Linear]) -> torch.nn.Sequential:
    layers = []
    for i, lin in enumerate(linears):
        copy = torch.nn.Linear(lin.in_features, lin.out_features)
        copy.load_state_dict(lin.state_dict())
        layers += [copy] if i == len(linears) - 1 else [copy, torch.nn.Tanh()]
    return torch.nn.Sequential(*layers)


def library_residual(lib: str, step, problem: str, x_np: np.ndarray):
    """(library residual (N, k), the library net's Linear layers), evaluated through the library."""
    if lib == "deepxde":
        import deepxde as dde
        import deepxde_step

        net = step.model.net
        x = torch.as_tensor(x_np.astype(np.float32)).requires_grad_()
        r = deepxde_step.pde_function(problem)(x, net(x))
        dde.grad.clear()
        r = torch.cat(r, dim=1) if isinstance(r, list) else r
        return r.detach(), list(net.linears)
    from pina import LabelTensor

    solver = step.solver
    condition = solver.problem.conditions["D"]
    x = LabelTensor(torch.as_tensor(x_np, dtype=torch.float32), labels=solver.problem.input_variables)
    r = condition.evaluate({"input": x}, solver)
    return r.tensor.detach(), list(solver.model.layers)


def check_problem(lib: str, module, problem: str) -> dict:
    pts = points(problem, 1000)
    step = module.build(problem, pts, WIDTH, DEPTH, lr=LR, seed=SEED)
    if step is None:
        return {"problem": problem, "none": True}
    # residual against nested autograd on a copy of the same (initial) weights
    r_lib, linears = library_residual(lib, step, problem, pts)
    seq = sequential_copy(linears)
    x = torch.as_tensor(pts, dtype=torch.float32).requires_grad_()
    r_hand = hand_residuals(problem, x, seq(x))
    loss_hand = sum(float(torch.mean(r.detach() ** 2)) for r in r_hand)
    r_hand = torch.cat([r.detach() for r in r_hand], dim=1)
    res_err = float((r_lib - r_hand).abs().max() / r_hand.abs().max().clamp_min(1.0))
    first_w = linears[0].weight.detach().clone()
    losses = [step() for _ in range(5)]
    ok = (all(math.isfinite(v) for v in losses) and len(set(losses)) > 1
          and abs(losses[0] - loss_hand) <= 1e-5 * max(1.0, loss_hand) and res_err <= 1e-5)
    times = time_steps(step, 20)
    if hasattr(step, "close"):
        step.close()
    return {"problem": problem, "res_err": res_err, "loss0": losses[0], "loss_hand": loss_hand,
            "losses": losses, "ms": times, "ok": ok, "w0": first_w}


def time_steps(step, n: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def main() -> int:
    libs = {}
    for lib, mod in (("deepxde", "deepxde_step"), ("pina", "pina_step")):
        if importlib.util.find_spec(lib) is None:
            print(f"{lib}: not installed, skipped")
            continue
        libs[lib] = __import__(mod)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; "
          f"net 2 -> {DEPTH}x{WIDTH} tanh -> m, Adam lr={LR}, float32")
    all_ok, w0 = True, {}
    for lib, module in libs.items():
        version = importlib.metadata.version({"deepxde": "deepxde", "pina": "pina-mathlab"}[lib])
        print(f"\n{lib} {version}")
        print(f"  {'problem':10} {'resid err':>9} {'loss0':>11} {'hand loss0':>11} {'loss5':>11} {'ms/step':>8}  ok")
        for problem in DOMAINS:
            row = check_problem(lib, module, problem)
            if row.get("none"):
                print(f"  {problem:10} build() returned None")
                continue
            w0[lib, problem] = row["w0"]
            all_ok &= row["ok"]
            print(f"  {problem:10} {row['res_err']:9.1e} {row['loss0']:11.5e} {row['loss_hand']:11.5e} "
                  f"{row['losses'][-1]:11.5e} {row['ms']:8.2f}  {'ok' if row['ok'] else 'FAIL'}")
    if len(libs) == 2:
        same = all(torch.equal(w0["deepxde", p], w0["pina", p]) for p in DOMAINS if ("pina", p) in w0)
        print(f"\nsame initial weights in DeepXDE and PINA for the same seed: {same}")

    print("\nburgers, median ms/step (20 steps after 2 warm-up):")
    for n in (1000, 10000):
        steps = {lib: module.build("burgers", points("burgers", n), WIDTH, DEPTH, lr=LR, seed=SEED)
                 for lib, module in libs.items()}
        alone = {lib: time_steps(step, 20) for lib, step in steps.items()}
        inter = {lib: [] for lib in steps}
        for _ in range(20):  # interleaved: one step of each library in turn
            for lib, step in steps.items():
                t0 = time.perf_counter()
                step()
                inter[lib].append(time.perf_counter() - t0)
        for lib, step in steps.items():
            print(f"  N={n:>5} {lib:8} alone {alone[lib]:8.2f}   interleaved {1e3 * statistics.median(inter[lib]):8.2f}")
            if hasattr(step, "close"):
                step.close()
    print("\nall checks passed" if all_ok else "\nSOME CHECKS FAILED")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
