"""Relative L2 error: the function against numpy, the metric over batches against the function."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_pinn.lightning.metrics import RelativeL2Error, relative_l2_error


def numpy_relative_l2(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.linalg.norm((pred - target).ravel()) / np.linalg.norm(target.ravel()))


@pytest.mark.parametrize("shape", [(1,), (17,), (8, 3), (4, 5, 2)])
@pytest.mark.parametrize("seed", [0, 1])
def test_function_matches_numpy(shape, seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.normal(size=shape), rng.normal(size=shape)
    value = relative_l2_error(torch.from_numpy(pred), torch.from_numpy(target))
    assert value.dtype == torch.float64 and value.shape == ()
    assert value.item() == pytest.approx(numpy_relative_l2(pred, target), rel=1e-14)


def test_known_values():
    assert relative_l2_error(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 0.0])).item() == pytest.approx(4 / 3)
    target = torch.tensor([1.0, -2.0, 2.0])
    assert relative_l2_error(target, target).item() == 0.0
    assert relative_l2_error(torch.zeros(3), target).item() == pytest.approx(1.0)
    assert relative_l2_error(1.1 * target, target).item() == pytest.approx(0.1, rel=1e-6)


def test_float32_inputs_are_reduced_in_float64():
    rng = np.random.default_rng(2)
    target = rng.normal(size=10_000).astype(np.float32)
    pred = target + np.float32(1e-4) * rng.normal(size=10_000).astype(np.float32)
    value = relative_l2_error(torch.from_numpy(pred), torch.from_numpy(target))
    assert value.dtype == torch.float64
    expected = numpy_relative_l2(pred.astype(np.float64), target.astype(np.float64))
    assert value.item() == pytest.approx(expected, rel=1e-10)


def test_metric_over_batches_equals_the_one_shot_value():
    rng = np.random.default_rng(3)
    pred, target = rng.normal(size=(100, 2)), rng.normal(size=(100, 2))
    metric = RelativeL2Error()
    for start, stop in [(0, 7), (7, 40), (40, 41), (41, 100)]:
        metric.update(torch.from_numpy(pred[start:stop]), torch.from_numpy(target[start:stop]))
    one_shot = relative_l2_error(torch.from_numpy(pred), torch.from_numpy(target))
    assert metric.compute().item() == pytest.approx(one_shot.item(), rel=1e-14)
    assert metric.compute().item() == pytest.approx(numpy_relative_l2(pred, target), rel=1e-14)
    # not the mean of the per-batch errors, which differs
    per_batch = [numpy_relative_l2(pred[a:b], target[a:b]) for a, b in [(0, 7), (7, 40), (40, 41), (41, 100)]]
    assert abs(np.mean(per_batch) - one_shot.item()) > 1e-3


def test_metric_docstring_example_and_reset():
    metric = RelativeL2Error()
    metric.update(torch.tensor([3.0]), torch.tensor([3.0]))
    metric.update(torch.tensor([4.0]), torch.tensor([0.0]))
    assert metric.compute().item() == pytest.approx(4 / 3)
    metric.reset()
    metric.update(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 2.0]))
    assert metric.compute().item() == pytest.approx(1 / np.sqrt(5))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"same shape but got \(3,\) and \(3, 1\)"):
        relative_l2_error(torch.zeros(3), torch.zeros(3, 1))
    metric = RelativeL2Error()
    with pytest.raises(ValueError, match=r"same shape but got \(2, 2\) and \(4,\)"):
        metric.update(torch.zeros(2, 2), torch.zeros(4))
