"""Callbacks: a figure of prediction, reference and error at each validation and at the end."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only


class SolutionFigure(pl.Callback):
    """Draws prediction, reference and absolute error of each field over a 2-coordinate grid.

    The figure is saved as ``<dirpath>/solution_step<N>.png`` after every validation
    (and ``solution_final.png`` at the end of fit) and logged as the image
    ``val/solution`` to a :class:`WandbLogger` when the trainer has one. Problems
    with other than two coordinates, or no reference, are skipped.

    Args:
        dirpath: where PNGs go; default ``<trainer.default_root_dir>/figures``.
    """

    def __init__(self, dirpath: str | None = None):
        self.dirpath = dirpath

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._draw(trainer, pl_module, f"solution_step{trainer.global_step:06d}.png")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw(trainer, pl_module, "solution_final.png")

    @rank_zero_only
    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, filename: str) -> None:
        problem = getattr(pl_module, "problem", None)
        if problem is None or problem.reference is None or problem.n_coords != 2:
            return
        points, sizes = pl_module.validation_grid(inside_only=False)
        outside = ~problem.contains(points)  # blank outside a geometry
        reference = pl_module.reference_values(points)
        with torch.inference_mode(False), torch.enable_grad():
            prediction = pl_module(torch.as_tensor(points, dtype=pl_module.dtype, device=pl_module.device))
        prediction = prediction.detach().cpu().double().numpy()
        prediction[outside], reference[outside] = np.nan, np.nan
        path = Path(self.dirpath or Path(trainer.default_root_dir) / "figures") / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        figure = solution_figure(points, sizes, prediction, reference, problem.coords, problem.fields)
        figure.savefig(path, dpi=80)
        import matplotlib.pyplot as plt

        plt.close(figure)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="val/solution", images=[str(path)], step=trainer.global_step)


def solution_figure(points, sizes, prediction, reference, coords, fields):
    """A matplotlib figure: one row per field with prediction, reference and |error| over the grid."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    first, second = (points[:, k].reshape(sizes) for k in range(2))
    figure, axes = plt.subplots(len(fields), 3, figsize=(13, 3.4 * len(fields)), squeeze=False)
    for row, field in enumerate(fields):
        pred, ref = prediction[:, row].reshape(sizes), reference[:, row].reshape(sizes)
        error = np.abs(pred - ref)
        rel = np.sqrt(np.nansum(error**2) / max(np.nansum(ref**2), 1e-300))
        vmin, vmax = np.nanmin(ref), np.nanmax(ref)
        panels = [(pred, f"{field} predicted", vmin, vmax, "RdBu_r"),
                  (ref, f"{field} reference", vmin, vmax, "RdBu_r"),
                  (error, f"|error| (rel. L2 {rel:.2e})", 0, np.nanmax(error), "viridis")]
        for ax, (values, title, lo, hi, cmap) in zip(axes[row], panels):
            mesh = ax.pcolormesh(second, first, values, shading="auto", vmin=lo, vmax=hi, cmap=cmap)
            figure.colorbar(mesh, ax=ax)
            ax.set_title(title)
            ax.set_xlabel(coords[1])
            ax.set_ylabel(coords[0])
    figure.tight_layout()
    return figure
