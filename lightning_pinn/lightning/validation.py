"""The validation grid: where a module's fields are scored against the problem's reference."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from lightning_pinn.config import to_plain
from lightning_pinn.errors import ConfigError
from lightning_pinn.problem.spec import Problem


class ValidationGrid:
    """A regular grid over the problem's box, the reference on it, and loaders of it per DDP rank.

    Args:
        problem: the problem (its bounds, its geometry, its reference).
        sizes: points per coordinate: an int for every coordinate or ``{coord: n}``, each at least 2.
        batch_size: grid points per validation batch.

    Raises:
        ConfigError: for sizes that do not name every coordinate or are below 2.
    """

    def __init__(self, problem: Problem, sizes: int | Mapping[str, int] = 101, batch_size: int = 8192):
        self.problem = problem
        self.sizes = _grid_sizes(sizes, problem)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"validation_batch_size: expected a positive integer but got {batch_size!r}")
        self.batch_size = batch_size

    def points(self, inside_only: bool = True) -> tuple[np.ndarray, list[int]]:
        """The grid as ``(N, n_coords)`` float64 points and its size per coordinate.

        With a geometry, grid points outside it are left out (so ``N`` can be less than the product
        of sizes) unless ``inside_only`` is false.
        """
        axes = [np.linspace(lo, hi, n) for (lo, hi), n in zip(self.problem.bounds, self.sizes)]
        points = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
        return points[self.problem.contains(points)] if inside_only else points, list(self.sizes)

    def loader(self, world: int = 1, rank: int = 0) -> DataLoader | list:
        """Batches of ``(points, reference values)`` for one rank (every ``world``-th point from ``rank``); empty
        when the problem has no reference."""
        if self.problem.reference is None:
            return []
        points, _ = self.points()
        dataset = TensorDataset(torch.as_tensor(points, dtype=torch.float64),
                                torch.as_tensor(self.problem.reference_values(points), dtype=torch.float64))
        sampler = _Shard(dataset, world, rank) if world > 1 else None
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler)


class _Shard(DistributedSampler):
    """Every ``world``-th grid point from ``rank`` on, without the padding of DistributedSampler:
    padded duplicates would bias the grid's relative error."""

    def __init__(self, dataset, world: int, rank: int):
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=False)

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


def _grid_sizes(value: int | Mapping[str, int], problem: Problem) -> list[int]:
    value = to_plain(value)
    if isinstance(value, Mapping):
        unknown = set(value) - set(problem.coords)
        missing = set(problem.coords) - set(value)
        if unknown or missing:
            raise ConfigError(f"validation_grid: expected a size for each of {list(problem.coords)} but got {dict(value)}")
        sizes = [value[c] for c in problem.coords]
    else:
        sizes = [value] * problem.n_coords
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise ConfigError(f"validation_grid: expected integers >= 2 but got {value!r}")
    return sizes
