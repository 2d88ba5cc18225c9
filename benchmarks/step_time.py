"""Training-step time and peak memory per derivative engine, against a hand-written loop, DeepXDE and PINA.

    python benchmarks/step_time.py                                   # every problem at 1k, 10k, 100k points
    python benchmarks/step_time.py --problems burgers ks --points 10000 --rounds 7

One Adam step (lr 1e-3, float32) on the PDE residual loss only (mean square per equation,
summed) on the same uniform random interior points, with the same tanh network
(``--width`` x ``--depth``, Glorot-normal weights, no input scaling), for:

- ``autograd``: our nested-autograd engine in a bare loop (``residuals`` + ``WeightedLoss`` + backward + Adam);
- ``jets``: our forward-mode jets, eager, same loop;
- ``jets+compile``: the same loss under ``torch.compile`` (compiled before timing);
- ``hand-written``: a minimal PyTorch loop with nested ``torch.autograd.grad`` written for the problem;
- ``hand-written jets+compile`` (Burgers only): forward jets written out by hand for Burgers'
  three partials, compiled like ours (``baselines/hand_jets.py``): the floor for our jets;
- ``deepxde`` / ``pina``: their own training step (``benchmarks/baselines/``), when installed;
- ``lightning`` (``--lightning``, Burgers only): our ``PINNModule`` training loop in a Lightning
  ``Trainer`` with jets + compile, timed between consecutive batch starts.

Our candidates use ``torch.optim.Adam(fused=True)``, lightning-pinn's default (the same update
in one kernel); the hand-written loop, DeepXDE and PINA use what they ship (torch's for-loop
Adam).

Candidates run in interleaved rounds (each round: ``--steps`` steps of every candidate, in a
rotating order), so machine drift hits them alike; the table shows the median over rounds of the
mean step time. PINA is timed alone after the others, in the same way (its training loop runs in
a second thread whose OpenMP workers slowed every candidate beside it). Peak memory (``--memory``) is measured for each candidate in a fresh process:
the rise of the process's peak resident set (VmHWM, reset through /proc/self/clear_refs) over the
resident set before three steps, after warm-up. Writes benchmarks/results/step_time.json.

``--device cuda`` runs our candidates, the hand-written loop and the Lightning loop on the GPU,
adds ``jets+compile+cudagraphs`` (``torch.compile(mode="reduce-overhead")``), measures peak
memory as the rise of ``torch.cuda.max_memory_allocated`` and writes step_time_cuda.json.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "baselines"))

from lightning_pinn import MLP, PINNModule, Problem
from lightning_pinn.derivatives.engines import AutogradEngine, JetEngine
from lightning_pinn.losses import WeightedLoss
from lightning_pinn.residuals import prepare_engine, residuals

PROBLEMS: dict[str, dict] = {
    "burgers": dict(coords={"x": [-1, 1], "t": [0, 1]}, fields=["u"],
                    equations={"burgers": "u_t + u*u_x - 0.01/pi*u_xx"}),
    "kdv": dict(coords={"x": [-1, 1], "t": [0, 1]}, fields=["u"], equations={"kdv": "u_t + u*u_x + 0.0025*u_xxx"}),
    "ks": dict(coords={"x": [-1, 1], "t": [0, 1]}, fields=["u"],
               equations={"ks": "u_t + 5*u*u_x + 0.5*u_xx + 0.005*u_xxxx"}),
    "poisson2d": dict(coords={"x": [0, 1], "y": [0, 1]}, fields=["u"],
                      equations={"poisson": "u_xx + u_yy + 2*pi**2*sin(pi*x)*sin(pi*y)"}),
    "ns2d": dict(coords={"x": [-0.5, 1], "y": [-0.5, 1.5]}, fields=["u", "v", "p"],
                 equations={"momentum_x": "u*u_x + v*u_y + p_x - (u_xx + u_yy)/40",
                            "momentum_y": "u*v_x + v*v_y + p_y - (v_xx + v_yy)/40",
                            "continuity": "u_x + v_y"}),
}
"""The same problems as benchmarks/baselines (DeepXDE, PINA and the hand-written loop)."""

HAND_JETS = "hand-written jets+compile"
"""Burgers only: the hand-written forward-jet loop of ``baselines/hand_jets.py``, compiled."""
ORDER = {"burgers": 2, "kdv": 3, "ks": 4, "poisson2d": 2, "ns2d": 2}
OURS = ("autograd", "jets", "jets+compile")
CUDA_GRAPHS = "jets+compile+cudagraphs"
"""On ``--device cuda`` only: jets + compile with ``mode="reduce-overhead"`` (CUDA graphs)."""
DEVICE = torch.device("cpu")
"""Where every candidate runs (``--device``); points are made here and moved there."""


def make_points(problem: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` uniform random points in the problem's box, float32."""
    lo, hi = zip(*PROBLEMS[problem]["coords"].values())
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, len(lo))).astype(np.float32)


def _problem(name: str) -> Problem:
    return Problem(**PROBLEMS[name], collocation_points=1, name=name)


def _mlp(problem: Problem, width: int, depth: int, seed: int) -> MLP:
    torch.manual_seed(seed)
    return MLP(problem.n_coords, problem.n_fields, width=width, depth=depth)


def build_ours(engine: str, problem_name: str, points: np.ndarray, width: int, depth: int,
               lr: float = 1e-3, seed: int = 0) -> Callable[[], float]:
    """A bare loop around our loss: zero_grad, loss (compiled or not), backward, Adam step.

    ``loss.item()`` waits for the device, so a step's time includes its GPU work."""
    problem = _problem(problem_name)
    net = _mlp(problem, width, depth, seed).to(DEVICE, torch.from_numpy(points).dtype)  # float64 points: float64 net
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, fused=True)  # as PINNModule's default
    x = {"interior": torch.as_tensor(points, device=DEVICE)}
    derivative_engine = AutogradEngine() if engine == "autograd" else JetEngine(net)
    prepare_engine(derivative_engine, problem, x)

    weighted = WeightedLoss(problem)  # the module's loss path: mean squares times the problem's weights

    def total(points):
        return weighted.total(weighted.terms(residuals(problem, net, points, engine=derivative_engine), points),
                              params=[], step=0)

    # the options PINNModule(compile=True) uses on CPU, so the Lightning path and this loop run the same code
    options = {"options": {"cpp_wrapper": True}} if x["interior"].device.type == "cpu" else {}
    if engine == CUDA_GRAPHS:
        options = {"mode": "reduce-overhead"}
    loss_fn = torch.compile(total, dynamic=False, **options) if engine.startswith("jets+compile") else total

    return bare_step(optimizer, lambda: loss_fn(x))


def bare_step(optimizer: torch.optim.Optimizer, loss_fn: Callable[[], torch.Tensor]) -> Callable[[], float]:
    """The bare training step: zero_grad, loss, backward, optimizer step; returns the loss
    (``item()`` waits for the device, so a step's time includes its GPU work)."""
    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def build_hand_written(problem_name: str, points: np.ndarray, width: int, depth: int,
                       lr: float = 1e-3, seed: int = 0) -> Callable[[], float]:
    """The minimal PyTorch loop: nn.Sequential, nested torch.autograd.grad written per problem."""
    from check import hand_residuals

    problem = _problem(problem_name)
    torch.manual_seed(seed)
    sizes = [problem.n_coords] + [width] * depth + [problem.n_fields]
    layers: list[torch.nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = torch.nn.Linear(a, b)
        torch.nn.init.xavier_normal_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
        layers += [linear] if k == len(sizes) - 2 else [linear, torch.nn.Tanh()]
    net = torch.nn.Sequential(*layers).to(DEVICE)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    x = torch.as_tensor(points, device=DEVICE).requires_grad_(True)

    return bare_step(optimizer, lambda: sum(r.square().mean() for r in hand_residuals(problem_name, x, net(x))))


class LightningSteps:
    """Our PINNModule in a Lightning Trainer, a few steps per call; times between batch starts.

    ``interleave``, if given, is run before each Lightning step (inside the first
    ``on_train_batch_start`` hook) and timed apart: the Lightning step is timed from the end of
    that call to the next batch start (the last one to the end of training). Comparing the two
    step by step cancels machine drift. On a GPU each timestamp waits for the device first, so
    that queued kernels are booked to the step that launched them.
    """

    def __init__(self, problem_name: str, points: np.ndarray, width: int, depth: int, lr: float = 1e-3,
                 seed: int = 0, engine: str = "jets", compile: bool = True, log_every_n_steps: int = 50,
                 interleave: Callable[[], object] | None = None):
        import lightning.pytorch as pl

        problem = _problem(problem_name)
        self.dtype = torch.from_numpy(points).dtype  # float64 points: a float64 module (precision 64-true)
        self.module = PINNModule(problem, _mlp(problem, width, depth, seed), derivatives=engine, compile=compile,
                                 phases={"adam": {"optimizer": {"_target_": "torch.optim.Adam", "lr": lr,
                                                                "fused": True}}}).to(self.dtype)
        self.module.collocation.points = {"interior": torch.as_tensor(points, device=DEVICE)}
        self.module.collocation.drawn_at = 0
        self.starts: list[float] = []
        self.resumes: list[float] = []
        self.interleaved: list[float] = []
        """Seconds of each interleaved call, by step, after :meth:`run` (empty without ``interleave``)."""
        self.log_every_n_steps = log_every_n_steps
        owner = self

        def now() -> float:
            if DEVICE.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter()

        class Clock(pl.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                owner.starts.append(now())
                if interleave is not None:
                    start = now()
                    interleave()
                    owner.interleaved.append(now() - start)
                owner.resumes.append(now())

            def on_train_end(self, trainer, pl_module):
                owner.starts.append(now())

        self.clock, self.pl = Clock(), pl

    def run(self, steps: int) -> float:
        """Run ``steps`` more steps (plus one not timed); returns the mean seconds per timed step.

        With ``interleave``, ``self.interleaved`` then holds the seconds of its calls before the
        timed steps, one per step, in the same order."""
        self.starts, self.resumes, self.interleaved = [], [], []
        trainer = self.pl.Trainer(
            accelerator=DEVICE.type, devices=1, max_steps=steps + 1, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, limit_val_batches=0, callbacks=[self.clock], inference_mode=False,
            log_every_n_steps=self.log_every_n_steps, precision="64-true" if self.dtype == torch.float64 else "32-true",
        )
        trainer.fit(self.module)
        # from the 2nd batch start on: full loop iterations, each from the end of its interleaved call
        intervals = np.array(self.starts[2:]) - np.array(self.resumes[1:])
        self.interleaved = self.interleaved[1:]
        return float(np.mean(intervals))


def build(candidate: str, problem: str, points: np.ndarray, width: int, depth: int) -> Callable[[], float] | None:
    """One step of ``candidate``, or None when it cannot express ``problem``."""
    if candidate in OURS or candidate == CUDA_GRAPHS:
        return build_ours(candidate, problem, points, width, depth)
    if candidate == "hand-written":
        return build_hand_written(problem, points, width, depth)
    if candidate == HAND_JETS:
        from hand_jets import build_loss
        built = build_loss(problem, points, width, depth, DEVICE)
        if built is None:
            return None
        loss_fn, parameters = built
        return bare_step(torch.optim.Adam(parameters, lr=1e-3, fused=True), loss_fn)  # as our candidates
    module = __import__(f"{candidate}_step")
    return module.build(problem, points, width, depth)


def installed_peers() -> list[str]:
    """The peer libraries importable here (DeepXDE, PINA)."""
    found = []
    if importlib.util.find_spec("deepxde") is not None:
        found.append("deepxde")
    if importlib.util.find_spec("pina") is not None and importlib.util.find_spec("pina.solver") is not None:
        found.append("pina")
    return found


ISOLATED = {"pina"}
"""Timed alone after the others: PINA runs its Lightning loop in a second thread whose OpenMP pool
competes with whatever runs beside it (interleaved, it slowed every other candidate by up to 2x)."""


def _rounds(runners: dict[str, Callable[[], float]], light: LightningSteps | None, rounds: int,
            steps: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {c: [] for c in [*runners, *(["lightning"] if light else [])]}
    names = list(samples)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
            if name == "lightning":
                samples[name].append(1e3 * light.run(steps))
                continue
            start = time.perf_counter()
            for _ in range(steps):
                runners[name]()
            samples[name].append(1e3 * (time.perf_counter() - start) / steps)
            _trim()  # untimed: hand freed memory back, so the candidates' peaks do not pile up (KS at 100,000 points)
    return samples


def _trim() -> None:
    """Return memory that glibc's malloc holds free to the system (no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def time_candidates(problem: str, n: int, candidates: list[str], width: int, depth: int, rounds: int,
                    steps: int, warmup: int, lightning: bool) -> dict[str, dict]:
    """Interleaved rounds; returns ``{candidate: {"ms": median over rounds, "rounds": [...]}}``."""
    points = make_points(problem, n)

    def ready(names: list[str]) -> dict[str, Callable[[], float]]:
        runners = {}
        for candidate in names:
            step = build(candidate, problem, points, width, depth)
            if step is None:
                continue
            for _ in range(warmup):  # compiles, allocator warm-up
                step()
            _trim()
            runners[candidate] = step
        return runners

    runners = ready([c for c in candidates if c not in ISOLATED])
    light = None
    if lightning:
        light = LightningSteps(problem, points, width, depth)
        light.run(warmup)
    samples = _rounds(runners, light, rounds, steps)
    for candidate in [c for c in candidates if c in ISOLATED]:
        alone = ready([candidate])
        samples.update(_rounds(alone, None, rounds, steps))
        for step in alone.values():
            if hasattr(step, "close"):
                step.close()
    return {name: {"ms": statistics.median(v), "rounds": v} for name, v in samples.items()}


def _read_status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_memory_child(candidate: str, problem: str, n: int, width: int, depth: int, warmup: int) -> int:
    """Bytes the peak resident set (on CUDA: the peak allocated device memory) rises by during three
    steps (run in a fresh process)."""
    step = build(candidate, problem, make_points(problem, n), width, depth)
    if step is None:
        return -1
    for _ in range(warmup):
        step()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(3):
            step()
        return torch.cuda.max_memory_allocated() - before
    _trim()  # hand freed memory back, so the baseline is what is in use
    before = _read_status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    for _ in range(3):
        step()
    peak = _read_status("VmHWM")
    if hasattr(step, "close"):
        step.close()
    return peak - before


def peak_memory(candidate: str, problem: str, n: int, width: int, depth: int, warmup: int) -> int:
    result = subprocess.run(
        [sys.executable, __file__, "--memory-child", candidate, problem, str(n), "--width", str(width),
         "--depth", str(depth), "--warmup", str(warmup), "--device", DEVICE.type], capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def main() -> None:
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--points", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--candidates", nargs="+", default=None,
                        help="default: autograd jets jets+compile hand-written, 'hand-written jets+compile' "
                             "(Burgers) and the installed peers")
    parser.add_argument("--width", type=int, default=20)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per candidate per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--lightning", action="store_true", help="also time our Lightning loop (Burgers)")
    parser.add_argument("--memory", action="store_true", help="also measure peak memory (a process per candidate)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: our candidates, the hand-written loop and the Lightning loop on the GPU "
                             "(peers stay off), plus jets+compile with CUDA graphs")
    parser.add_argument("--output", default=None, help="default: results/step_time.json (step_time_cuda.json on cuda)")
    parser.add_argument("--append", action="store_true", help="add to the rows already in --output")
    parser.add_argument("--memory-child", nargs=3, metavar=("CANDIDATE", "PROBLEM", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        candidate, problem, n = args.memory_child
        print(peak_memory_child(candidate, problem, int(n), args.width, args.depth, args.warmup))
        return

    torch._dynamo.config.recompile_limit = 64  # one compiled loss per (problem, points): more than dynamo's default 8
    candidates = args.candidates or ([*OURS, CUDA_GRAPHS, "hand-written", HAND_JETS] if DEVICE.type == "cuda"
                                     else [*OURS, "hand-written", HAND_JETS, *installed_peers()])
    output = Path(args.output or HERE / "results" / ("step_time_cuda.json" if DEVICE.type == "cuda" else "step_time.json"))
    previous = json.loads(output.read_text()) if args.append and output.exists() else {}
    rows = previous.get("rows", [])
    commands = previous.get("commands", [previous["command"]] if "command" in previous else [])
    commands.append("python benchmarks/step_time.py " + " ".join(sys.argv[1:]))
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"torch {torch.__version__}, python {platform.python_version()}")
    if DEVICE.type == "cuda":
        machine = f"{torch.cuda.get_device_name()}, " + machine
    versions = {"torch": torch.__version__}
    for peer in installed_peers():
        versions[peer] = __import__("importlib.metadata").metadata.version("pina-mathlab" if peer == "pina" else peer)

    def save() -> None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"commands": commands, "machine": machine, "versions": versions,
                                      "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}, indent=2))

    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    for problem in args.problems:
        for n in args.points:
            steps = max(1, min(args.steps, math.ceil(args.steps * 10000 / n)))
            timed = time_candidates(problem, n, candidates, args.width, args.depth, args.rounds, steps,
                                    args.warmup, args.lightning and problem == "burgers")
            for name, result in timed.items():
                row = {"problem": problem, "order": ORDER[problem], "points": n, "candidate": name, **result}
                if args.memory and name != "lightning":
                    row["peak_mib"] = peak_memory(name, problem, n, args.width, args.depth, args.warmup) / 2**20
                rows.append(row)
            line = ", ".join(f"{name} {r['ms']:.1f} ms" for name, r in timed.items())
            console.print(f"{problem} N={n}: {line}")
            save()  # after every size: a long run that dies keeps what it measured
            gc.collect()
            _trim()

    table = Table(title=f"Median step time (ms) and peak memory (MiB), {args.width}x{args.depth} tanh MLP, fp32")
    for column in ("problem", "order", "points", *dict.fromkeys(r["candidate"] for r in rows)):
        table.add_column(column, justify="right")
    for key in dict.fromkeys((r["problem"], r["points"]) for r in rows):
        cells = {r["candidate"]: r for r in rows if (r["problem"], r["points"]) == key}
        values = []
        for column in table.columns[3:]:
            r = cells.get(column.header)
            values.append("-" if r is None else f"{r['ms']:.1f}" + (f" / {r['peak_mib']:.0f}" if "peak_mib" in r else ""))
        table.add_row(key[0], str(ORDER[key[0]]), str(key[1]), *values)
    console.print(table)
    save()
    console.print(f"machine: {machine}\nversions: {versions}\nwrote {output}")


if __name__ == "__main__":
    main()
