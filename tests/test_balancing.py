"""Loss balancing: gradient-norm weights against gradients in closed form, ReLoBRaLo against its formula."""

from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from lightning_pinn.config import build
from lightning_pinn.losses import (
    BALANCERS,
    Balancer,
    FixedWeights,
    GradNormBalancing,
    ReLoBRaLo,
    build_balancer,
)

# ----- GradNormBalancing on a linear model ------------------------------------------------------
#
# f(x) = W x + b and L_k = mean_n (f(x_n) - y_n)^2 on data set k, so with r = f(X) - y:
#   dL/dW = (2/N) r^T X,   dL/db = (2/N) sum r.


def linear_model(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(2, 1).double()


DATA = {
    "pde": (torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]], dtype=torch.float64),
            torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)),
    "initial": (torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64), torch.tensor([3.0, 0.0], dtype=torch.float64)),
    "boundary": (torch.tensor([[-1.0, 0.5]], dtype=torch.float64), torch.tensor([0.25], dtype=torch.float64)),
}


def loss_terms(model: nn.Linear) -> dict[str, torch.Tensor]:
    return {k: (model(x).squeeze(-1) - y).square().mean() for k, (x, y) in DATA.items()}


def closed_form_norms(model: nn.Linear) -> dict[str, float]:
    W, b = model.weight.detach()[0], model.bias.detach()[0]
    norms = {}
    for name, (x, y) in DATA.items():
        r = x @ W + b - y
        grad_w, grad_b = 2 / len(y) * (r @ x), 2 / len(y) * r.sum()
        norms[name] = math.sqrt(float(grad_w.square().sum() + grad_b**2))
    return norms


def hand_weights(norms: dict[str, float]) -> dict[str, float]:
    total = sum(norms.values())
    return {k: total / g for k, g in norms.items()}


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("alpha", [0.0, 0.9])
def test_gradnorm_first_update_matches_closed_form(alpha):
    model = linear_model()
    balancer = GradNormBalancing(every=10, alpha=alpha)
    weights = balancer.weights(loss_terms(model), params=params(model), step=0)
    hat = hand_weights(closed_form_norms(model))
    assert list(weights) == list(DATA)
    for name, value in weights.items():
        assert not value.requires_grad and value.shape == () and value.dtype == torch.float64
        assert value.item() == pytest.approx(alpha + (1 - alpha) * hat[name], rel=1e-12)


def test_gradnorm_moving_average_over_two_updates():
    model, alpha = linear_model(), 0.7
    balancer = GradNormBalancing(every=3, alpha=alpha)
    first = {k: v.item() for k, v in balancer.weights(loss_terms(model), params(model), step=0).items()}
    with torch.no_grad():  # move the parameters so that the second update sees other gradients
        model.weight.add_(torch.tensor([[0.3, -0.7]], dtype=torch.float64))
        model.bias.sub_(0.4)
    hat = hand_weights(closed_form_norms(model))
    second = balancer.weights(loss_terms(model), params(model), step=3)
    for name, value in second.items():
        assert value.item() == pytest.approx(alpha * first[name] + (1 - alpha) * hat[name], rel=1e-12)


def test_gradnorm_computes_gradients_only_on_update_steps(monkeypatch):
    calls = []
    real_grad = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        calls.append(kwargs.get("retain_graph"))
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    model = linear_model()
    balancer = GradNormBalancing(every=4, alpha=0.5)
    history = []
    for step in range(10):  # updates at 0, 4, 8
        terms = loss_terms(model)
        weights = balancer.weights(terms, params(model), step=step)
        sum(weights[k] * terms[k] for k in terms).backward()  # the graph survives the balancer's grad calls
        with torch.no_grad():
            for p in model.parameters():
                p.sub_(0.05 * p.grad)
                p.grad = None
        history.append({k: v.item() for k, v in weights.items()})
    assert len(calls) == 3 * len(DATA) and all(calls)
    assert history[1] == history[0] and history[7] == history[4] and history[8] != history[7]


def test_gradnorm_updates_once_per_step():
    """L-BFGS evaluates the closure many times in one step: the weights update once."""
    model = linear_model()
    balancer = GradNormBalancing(every=1, alpha=0.5)
    first = balancer.weights(loss_terms(model), params(model), step=5)
    again = balancer.weights(loss_terms(model), params(model), step=5)
    assert {k: v.item() for k, v in again.items()} == {k: v.item() for k, v in first.items()}


def test_gradnorm_applies_reduce_to_the_norms():
    model = linear_model()
    seen = []

    def reduce(norms):
        seen.append(norms.clone())
        return torch.tensor([1.0, 3.0, 4.0], dtype=norms.dtype)  # what the other ranks made of them

    weights = GradNormBalancing(every=1, alpha=0.0).weights(loss_terms(model), params(model), step=0, reduce=reduce)
    local = closed_form_norms(model)
    assert len(seen) == 1 and seen[0].tolist() == pytest.approx([local[k] for k in DATA], rel=1e-12)
    assert [weights[k].item() for k in DATA] == pytest.approx([8.0, 8 / 3, 2.0], rel=1e-12)


def test_gradnorm_keeps_the_weight_of_a_term_without_gradient():
    model = linear_model()
    terms = {**loss_terms(model), "constant": torch.tensor(2.0, dtype=torch.float64)}
    weights = GradNormBalancing(every=1, alpha=0.0).weights(terms, params(model), step=0)
    assert weights["constant"].item() == 1.0
    assert weights["pde"].item() == pytest.approx(hand_weights(closed_form_norms(model))["pde"], rel=1e-12)


def test_gradnorm_state_round_trip():
    model = linear_model()
    balancer = GradNormBalancing(every=5, alpha=0.8)
    for step in range(7):
        balancer.weights(loss_terms(model), params(model), step=step)
    state = json.loads(json.dumps(balancer.state_dict()))  # plain data
    resumed = GradNormBalancing(every=5, alpha=0.8)
    resumed.load_state_dict(state)
    with torch.no_grad():
        model.bias.add_(1.0)
    for step in range(7, 12):  # step 10 updates both
        a = balancer.weights(loss_terms(model), params(model), step=step)
        b = resumed.weights(loss_terms(model), params(model), step=step)
        assert {k: v.item() for k, v in a.items()} == {k: v.item() for k, v in b.items()}
        assert all(v.dtype == torch.float64 for v in b.values())


def test_gradnorm_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"balancing.every: expected a positive integer but got 0"):
        GradNormBalancing(every=0)
    with pytest.raises(ValueError, match=r"balancing.alpha: expected a number in \[0, 1\] but got 1.5"):
        GradNormBalancing(alpha=1.5)


def test_fixed_weights_are_ones_in_the_terms_dtype():
    terms = {"pde": torch.tensor(2.0, dtype=torch.float64), "initial": torch.tensor(0.5)}
    weights = FixedWeights().weights(terms, params=[], step=3)
    assert {k: (v.item(), v.dtype) for k, v in weights.items()} == {"pde": (1.0, torch.float64),
                                                                    "initial": (1.0, torch.float32)}
    assert FixedWeights().state_dict() == {}


# ----- ReLoBRaLo ----------------------------------------------------------------------------------


def as_terms(values: list[float], names=("pde", "initial", "boundary")) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in zip(names, values)}


def softmax(xs: list[float]) -> list[float]:
    exps = [math.exp(x) for x in xs]
    return [e / sum(exps) for e in exps]


def test_relobralo_equal_ratios_give_unit_weights():
    balancer = ReLoBRaLo(alpha=0.9, temperature=0.1, expected_rho=0.5, seed=1)
    base = [2.0, 0.3, 5.0]
    for step in range(12):
        weights = balancer.weights(as_terms([b * 0.8**step for b in base]), step=step)
        assert [v.item() for v in weights.values()] == pytest.approx([1.0, 1.0, 1.0], rel=1e-12)


@pytest.mark.parametrize("rho", [0.0, 1.0])
def test_relobralo_matches_the_formula(rho):
    """Bernoulli(0) and Bernoulli(1) fix the lookback, so two steps can be computed by hand."""
    alpha, T = 0.6, 0.5
    balancer = ReLoBRaLo(alpha=alpha, temperature=T, expected_rho=rho)
    losses = [[1.0, 2.0, 4.0], [0.5, 1.8, 4.0], [0.4, 0.9, 3.0]]
    expected = [1.0, 1.0, 1.0]
    for step, values in enumerate(losses):
        weights = [v.item() for v in balancer.weights(as_terms(values), step=step).values()]
        if step > 0:
            bal_prev = [3 * s for s in softmax([v / (T * p) for v, p in zip(values, losses[step - 1])])]
            bal_init = [3 * s for s in softmax([v / (T * p) for v, p in zip(values, losses[0])])]
            expected = [alpha * (rho * e + (1 - rho) * b0) + (1 - alpha) * bp
                        for e, b0, bp in zip(expected, bal_init, bal_prev)]
        assert weights == pytest.approx(expected, rel=1e-12)
        assert sum(weights) == pytest.approx(3.0, rel=1e-12)


def test_relobralo_weights_a_term_that_fell_less_more():
    balancer = ReLoBRaLo(seed=0)
    balancer.weights(as_terms([1.0, 1.0, 1.0]), step=0)
    weights = balancer.weights(as_terms([0.5, 0.9, 0.5]), step=1)
    assert weights["initial"] > weights["pde"] and weights["pde"].item() == pytest.approx(weights["boundary"].item())


def run_relobralo(balancer: ReLoBRaLo, steps: range) -> list[list[float]]:
    out = []
    for step in steps:
        values = [1.0 / (1 + step), 1.0 / (1 + step) ** 0.5, math.exp(-0.3 * step) + 0.1 * math.sin(step)]
        out.append([v.item() for v in balancer.weights(as_terms(values), step=step).values()])
    return out


def test_relobralo_is_deterministic_given_the_seed():
    first = run_relobralo(ReLoBRaLo(alpha=0.5, expected_rho=0.5, seed=7), range(20))
    again = run_relobralo(ReLoBRaLo(alpha=0.5, expected_rho=0.5, seed=7), range(20))
    other = run_relobralo(ReLoBRaLo(alpha=0.5, expected_rho=0.5, seed=8), range(20))
    assert first == again and first != other


def test_relobralo_state_round_trip_continues_identically():
    balancer = ReLoBRaLo(alpha=0.5, expected_rho=0.5, seed=3)
    run_relobralo(balancer, range(6))
    state = balancer.state_dict()
    resumed = ReLoBRaLo(alpha=0.5, expected_rho=0.5, seed=99)  # the seed comes from the state
    resumed.load_state_dict(state)
    assert run_relobralo(resumed, range(6, 20)) == run_relobralo(balancer, range(6, 20))


def test_relobralo_updates_once_per_step_and_applies_reduce():
    seen = []

    def reduce(losses):
        seen.append(losses.tolist())
        return losses + torch.tensor([0.0, 0.5, 0.0], dtype=losses.dtype)  # the other ranks see more of "initial"

    balancer = ReLoBRaLo(alpha=0.0, temperature=1.0)
    balancer.weights(as_terms([1.0, 1.0, 1.0]), step=0, reduce=reduce)
    weights = balancer.weights(as_terms([0.5, 0.5, 0.5]), step=1, reduce=reduce)
    again = balancer.weights(as_terms([9.0, 9.0, 9.0]), step=1, reduce=reduce)
    assert seen == [[1.0, 1.0, 1.0], [0.5, 0.5, 0.5]]
    # locally the ratios are equal; after reduction L(1)/L(0) = [0.5, 1/1.5, 0.5]
    expected = [3 * s for s in softmax([0.5, 1 / 1.5, 0.5])]
    assert [v.item() for v in weights.values()] == pytest.approx(expected, rel=1e-12)
    assert [v.item() for v in again.values()] == [v.item() for v in weights.values()]


def test_relobralo_refuses_other_terms():
    balancer = ReLoBRaLo()
    balancer.weights(as_terms([1.0, 1.0, 1.0]), step=0)
    with pytest.raises(ValueError, match=r"balancing: ReLoBRaLo balances the terms \['pde', 'initial', 'boundary'\]"):
        balancer.weights(as_terms([1.0, 1.0], names=("pde", "data")), step=1)


def test_relobralo_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"balancing.temperature: expected a positive number but got 0"):
        ReLoBRaLo(temperature=0)
    with pytest.raises(ValueError, match=r"balancing.expected_rho: expected a number in \[0, 1\] but got -0.1"):
        ReLoBRaLo(expected_rho=-0.1)


# ----- build_balancer -----------------------------------------------------------------------------


def test_build_balancer_from_names_mappings_and_configs():
    assert isinstance(build_balancer(None), FixedWeights)
    assert isinstance(build_balancer("fixed"), FixedWeights)
    gradnorm = build_balancer({"name": "gradnorm", "every": 7, "alpha": 0.5})
    assert isinstance(gradnorm, GradNormBalancing) and (gradnorm.every, gradnorm.alpha) == (7, 0.5)
    relobralo = build_balancer(OmegaConf.create({"_target_": "lightning_pinn.losses.balancing.ReLoBRaLo", "seed": 3}))
    assert isinstance(relobralo, ReLoBRaLo) and relobralo.seed == 3
    assert build_balancer(gradnorm) is gradnorm
    assert set(BALANCERS) == {"fixed", "gradnorm", "relobralo"}


@pytest.mark.parametrize("balancer", [FixedWeights(), GradNormBalancing(every=3, alpha=0.2),
                                      ReLoBRaLo(alpha=0.9, temperature=0.2, expected_rho=0.5, seed=4)])
def test_to_config_rebuilds(balancer):
    rebuilt = build(balancer.to_config(), "balancing")
    assert type(rebuilt) is type(balancer) and rebuilt.to_config() == balancer.to_config()


def test_build_balancer_accepts_an_object_with_the_protocol():
    class Constant:
        def weights(self, terms, params=(), step=0, reduce=None):
            return {k: torch.ones(()) for k in terms}

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    constant = Constant()
    assert build_balancer(constant) is constant and not isinstance(constant, Balancer)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("softadapt", r"balancing: expected one of \['fixed', 'gradnorm', 'relobralo'\] but got 'softadapt'"),
        ({"name": "nope"}, r"balancing: expected one of \['fixed', 'gradnorm', 'relobralo'\] but got 'nope'"),
        ({"name": "gradnorm", "evry": 3}, r"balancing: gradnorm takes the arguments \['every', 'alpha'\] but got \['evry'\]"),
        ({"every": 3}, r"balancing: expected a mapping with 'name' \(one of \['fixed', 'gradnorm', 'relobralo'\]\)"),
        (42, r"balancing: expected null, one of \['fixed', 'gradnorm', 'relobralo'\].* but got 42"),
        ({"_target_": "lightning_pinn.losses.CausalWeighting"},
         r"balancing: lightning_pinn.losses.CausalWeighting built a CausalWeighting, which has no weights"),
        ({"_target_": "collections.OrderedDict"}, r"balancing._target_: 'collections.OrderedDict' is not an allowed"),
        ({"name": "gradnorm", "every": -1}, r"balancing.every: expected a positive integer but got -1"),
    ],
)
def test_build_balancer_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        build_balancer(spec)
