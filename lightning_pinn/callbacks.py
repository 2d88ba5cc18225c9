"""The Lightning callbacks of the library, in one place.

- :class:`SolutionFigure`: prediction, reference and error over a 2-D grid at each validation.
- :class:`RAD`, :class:`RAR`: residual-based adaptive sampling of the collocation points.
- :class:`LastGoodCheckpoint`: keeps ``good.ckpt``, the last weights with a finite, non-diverged loss.
- :class:`StopOnSignal`: ends training cleanly on SIGINT/SIGTERM, with a checkpoint.
- :class:`StepProgressBar`: a progress bar in optimizer steps.
- :class:`OutputLayerFit`: physics-informed initialization, the output layer fitted to the value conditions.
"""

from lightning_pinn.lightning.adaptive_sampling import RAD, RAR
from lightning_pinn.lightning.callbacks import SolutionFigure
from lightning_pinn.lightning.checkpoints import LastGoodCheckpoint
from lightning_pinn.lightning.initialization import OutputLayerFit
from lightning_pinn.lightning.progress import StepProgressBar
from lightning_pinn.lightning.signals import StopOnSignal

__all__ = ["RAD", "RAR", "LastGoodCheckpoint", "OutputLayerFit", "SolutionFigure", "StepProgressBar", "StopOnSignal"]
