"""Causal training: chunk losses and weights against hand-computed values, gradients, compile, the epsilon schedule."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_pinn.config import build
from lightning_pinn.losses import CausalWeighting, causal_loss, causal_weights, chunk_losses

F64 = torch.float64


def tensor(values) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def test_hand_computed_three_chunks():
    # chunks of [0, 1]: [0, 1/3) holds r = 1, 3; [1/3, 2/3) holds 2; [2/3, 1] holds 1, 3 (t = 1 included)
    residual, t = tensor([1.0, 3.0, 2.0, 1.0, 3.0]), tensor([0.1, 0.2, 0.5, 0.9, 1.0])
    losses, counts = chunk_losses(residual, t, (0.0, 1.0), 3)
    assert losses.tolist() == [5.0, 4.0, 5.0] and counts.tolist() == [2.0, 1.0, 2.0]
    loss, w = causal_loss(residual, t, (0.0, 1.0), chunks=3, epsilon=0.1)
    assert w.tolist() == pytest.approx([1.0, math.exp(-0.5), math.exp(-0.9)], rel=1e-14)
    assert loss.item() == pytest.approx((5 + 4 * math.exp(-0.5) + 5 * math.exp(-0.9)) / 3, rel=1e-14)


def test_given_weights_replace_the_computed_ones():
    residual, t = tensor([1.0, 3.0, 2.0, 1.0, 3.0]), tensor([0.1, 0.2, 0.5, 0.9, 1.0])  # L = [5, 4, 5]
    loss, w = causal_loss(residual, t, (0.0, 1.0), chunks=3, epsilon=0.1, weights=tensor([1.0, 0.5, 0.25]))
    assert w.tolist() == [1.0, 0.5, 0.25]
    assert loss.item() == pytest.approx((5 + 4 * 0.5 + 5 * 0.25) / 3, rel=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_first_weight_is_one_and_weights_do_not_increase(seed):
    generator = torch.Generator().manual_seed(seed)
    residual = torch.randn(500, generator=generator, dtype=F64)
    t = 2.0 + 3.0 * torch.rand(500, generator=generator, dtype=F64)
    _, w = causal_loss(residual, t, (2.0, 5.0), chunks=16, epsilon=1.0)
    assert w[0].item() == 1.0 and w.shape == (16,)
    assert torch.all(w[1:] <= w[:-1]) and torch.all(w > 0)
    assert not w.requires_grad


def test_gradient_reaches_every_chunk_and_not_through_the_weights():
    """d loss / d r_n = w_i * 2 r_n / (n_i M) for r_n in chunk i: exactly, so no part flows through w."""
    residual = tensor([1.0, 3.0, 2.0, -1.0, 3.0]).requires_grad_()
    t = tensor([0.1, 0.2, 0.5, 0.9, 1.0]).requires_grad_()
    loss, w = causal_loss(residual, t, (0.0, 1.0), chunks=3, epsilon=0.3)
    loss.backward()
    chunk, counts = [0, 0, 1, 2, 2], [2, 2, 1, 2, 2]
    expected = [w[i].item() * 2 * r / (n * 3) for i, r, n in zip(chunk, [1.0, 3.0, 2.0, -1.0, 3.0], counts)]
    assert residual.grad.tolist() == pytest.approx(expected, rel=1e-14)
    assert all(g != 0 for g in residual.grad.tolist())
    assert t.grad is None  # time only bins the points


def test_empty_chunks_count_zero_and_are_reported():
    residual, t = tensor([1.0, 2.0, 2.0]), tensor([0.05, 0.8, 0.9])
    losses, counts = chunk_losses(residual, t, (0.0, 1.0), 4)
    assert losses.tolist() == [1.0, 0.0, 0.0, 4.0] and counts.tolist() == [1.0, 0.0, 0.0, 2.0]
    loss, w = causal_loss(residual, t, (0.0, 1.0), chunks=4, epsilon=2.0)
    assert w.tolist() == pytest.approx([1.0, math.exp(-2.0), math.exp(-2.0), math.exp(-2.0)], rel=1e-14)
    assert loss.item() == pytest.approx((1.0 + 4.0 * math.exp(-2.0)) / 4, rel=1e-14)


def test_end_points_fall_in_the_end_chunks():
    t = tensor([-1.0, -0.5, 1.5, 3.0])  # t0 = -1 in the first chunk, t1 = 3 in the last
    _, counts = chunk_losses(tensor([1.0, 1.0, 1.0, 1.0]), t, (-1.0, 3.0), 4)
    assert counts.tolist() == [2.0, 0.0, 1.0, 1.0]
    _, counts = chunk_losses(torch.ones(3), torch.tensor([1.0, 1.0, 1.0]), (0.0, 1.0), 7)
    assert counts.tolist() == [0.0] * 6 + [3.0]


def test_zero_epsilon_and_one_chunk_reduce_to_plain_means():
    residual, t = tensor([1.0, 3.0, 2.0, 1.0]), tensor([0.1, 0.2, 0.5, 0.9])
    loss, w = causal_loss(residual, t, (0.0, 1.0), chunks=1, epsilon=5.0)
    assert loss.item() == pytest.approx(residual.square().mean().item()) and w.tolist() == [1.0]
    loss, w = causal_loss(residual, t, (0.0, 1.0), chunks=2, epsilon=0.0)
    assert loss.item() == pytest.approx((5.0 + 2.5) / 2) and w.tolist() == [1.0, 1.0]


def test_causal_weights_are_detached():
    losses = tensor([1.0, 2.0]).requires_grad_()
    w = causal_weights(losses, 1.0)
    assert not w.requires_grad and w.tolist() == pytest.approx([1.0, math.exp(-1.0)])


def test_compiles_without_graph_breaks():
    generator = torch.Generator().manual_seed(0)
    residual, t = torch.randn(64, generator=generator), torch.rand(64, generator=generator)
    compiled = torch.compile(causal_loss, backend="eager", fullgraph=True, dynamic=False)
    eps = torch.tensor(0.5)
    loss, w = compiled(residual, t, (0.0, 1.0), 8, eps)
    expected_loss, expected_w = causal_loss(residual, t, (0.0, 1.0), 8, eps)
    assert torch.equal(loss, expected_loss) and torch.equal(w, expected_w)


@pytest.mark.parametrize(
    "residual, t, t_range, chunks, message",
    [
        (torch.ones(3), torch.ones(4), (0.0, 1.0), 2, r"causal: expected residual and t of the same shape"),
        (torch.ones(3, 1), torch.ones(3, 1), (0.0, 1.0), 2, r"same shape \(N,\) but got \(3, 1\)"),
        (torch.ones(3), torch.ones(3), (1.0, 1.0), 2, r"causal: expected a time range \(t0, t1\) with t0 < t1"),
        (torch.ones(3), torch.ones(3), (0.0, 1.0), 0, r"causal.chunks: expected a positive integer but got 0"),
    ],
)
def test_causal_loss_rejects_bad_inputs(residual, t, t_range, chunks, message):
    with pytest.raises(ValueError, match=message):
        causal_loss(residual, t, t_range, chunks, 1.0)


# ----- CausalWeighting ----------------------------------------------------------------------------


def test_weighting_calls_causal_loss_with_its_configuration():
    residual, t = tensor([1.0, 3.0, 2.0, 1.0, 3.0]), tensor([0.1, 0.2, 0.5, 0.9, 1.0])
    causal = CausalWeighting(chunks=3, epsilon=0.1)
    loss, w = causal(residual, t, (0.0, 1.0))
    expected_loss, expected_w = causal_loss(residual, t, (0.0, 1.0), 3, 0.1)
    assert torch.equal(loss, expected_loss) and torch.equal(w, expected_w)
    assert causal.min_weight(w).item() == pytest.approx(math.exp(-0.9))


def test_min_weight_over_terms():
    weights = {"a": tensor([1.0, 0.5, 0.4]), "b": tensor([1.0, 0.9, 0.2])}
    assert CausalWeighting.min_weight(weights).item() == 0.2


def test_epsilon_schedule_advances_when_the_last_weight_passes_the_threshold():
    causal = CausalWeighting(chunks=4, epsilon=[0.01, 0.1, 1.0], threshold=0.99)
    assert causal.epsilon == 0.01
    assert causal.update(tensor([1.0, 0.995, 0.99, 0.985])) is False and causal.epsilon == 0.01
    assert causal.update(tensor([1.0, 0.999, 0.995, 0.991])) is True and causal.epsilon == 0.1
    assert causal.update({"pde": tensor([1.0, 1.0, 1.0, 1.0]), "mass": tensor([1.0, 0.5, 0.2, 0.1])}) is False
    assert causal.update(tensor([1.0, 1.0, 1.0, 1.0])) is True and causal.epsilon == 1.0
    assert causal.update(tensor([1.0, 1.0, 1.0, 1.0])) is False and causal.epsilon == 1.0  # the end of the schedule


def test_update_applies_reduce():
    causal = CausalWeighting(chunks=2, epsilon=[1.0, 10.0])
    seen = []

    def reduce(value):  # the other ranks are far from converged
        seen.append(value.item())
        return (value + 0.5) / 2

    assert causal.update(tensor([1.0, 0.999]), reduce=reduce) is False and seen == [0.999]


def test_state_round_trip():
    causal = CausalWeighting(epsilon=[0.1, 1.0, 10.0])
    causal.update(torch.ones(32))
    resumed = CausalWeighting(epsilon=[0.1, 1.0, 10.0])
    resumed.load_state_dict(causal.state_dict())
    assert resumed.epsilon == causal.epsilon == 1.0
    with pytest.raises(ValueError, match=r"causal: the checkpoint is at epsilon stage 1 but the schedule has 1 values"):
        CausalWeighting(epsilon=1.0).load_state_dict(causal.state_dict())


def test_select_terms():
    assert CausalWeighting().select(["burgers", "mass"]) == ["burgers", "mass"]
    assert CausalWeighting(terms=["mass"]).select(["burgers", "mass"]) == ["mass"]
    with pytest.raises(ValueError, match=r"causal.terms: \['initial'\] are not equation terms; expected names among"):
        CausalWeighting(terms=["initial"]).select(["burgers"])


def test_to_config_rebuilds():
    causal = CausalWeighting(chunks=8, epsilon=[0.1, 1.0], terms=["burgers"], time="tau", threshold=0.95)
    rebuilt = build(causal.to_config(), "causal")
    assert isinstance(rebuilt, CausalWeighting) and rebuilt.to_config() == causal.to_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chunks": 0}, r"causal.chunks: expected a positive integer but got 0"),
        ({"epsilon": -1.0}, r"causal.epsilon: expected a number >= 0 or a non-empty list of them but got -1.0"),
        ({"epsilon": []}, r"causal.epsilon: .* but got \[\]"),
        ({"terms": "burgers"}, r"causal.terms: expected a list of equation names or null but got 'burgers'"),
        ({"threshold": 0}, r"causal.threshold: expected a number in \(0, 1\] but got 0"),
    ],
)
def test_weighting_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CausalWeighting(**kwargs)
