"""Physics-informed initialization: the output layer is the least-squares fit of the value conditions.

Truth: numpy's least squares on the features computed by hand (the network without its last layer).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import small_trainer

from lightning_pinn import MLP, PINNModule
from lightning_pinn.errors import ConfigError
from lightning_pinn.lightning.initialization import OutputLayerFit, fit_output_layer, value_terms


def problem(conditions, fields=("u",), equations=None):
    return {"_target_": "lightning_pinn.Problem", "coords": {"x": [-1.0, 1.0], "t": [0.0, 1.0]},
            "fields": list(fields), "equations": equations or {"pde": "u_t - u_xx"}, "collocation_points": 64,
            "conditions": conditions}


def module(spec, width=12, **net):
    torch.manual_seed(0)
    fields = len(spec["fields"])
    return PINNModule(spec, MLP(2, fields, width=width, depth=2, bounds=[[-1, 1], [0, 1]], **net)).double()


def test_the_fit_is_numpys_least_squares_on_the_features():
    spec = problem({"initial": {"region": "t=0", "residual": "u + sin(pi*x)", "points": 40},
                    "walls": {"region": ["x=-1", "x=1"], "residual": "u", "points": 10, "weight": 4.0}})
    m = module(spec)
    points = m.collocation.current(m.device, m.dtype)
    rows, targets = [], []
    for name, weight, target in (("initial", 1.0, lambda x: -np.sin(np.pi * x[:, 0])), ("walls", 4.0, lambda x: 0 * x[:, 0])):
        x = points[name]
        with torch.no_grad():
            h = m.net.layers[:-1](m.net.scaling(x)).numpy()  # the features before the output layer
        scale = np.sqrt(weight / len(x))
        rows.append(scale * np.hstack([h, np.ones((len(x), 1))]))
        targets.append(scale * target(x.numpy()))
    expected = np.linalg.lstsq(np.vstack(rows), np.concatenate(targets), rcond=None)[0]
    report = fit_output_layer(m, ridge=0.0)
    layer = m.net.layers[-1]
    got = np.concatenate([layer.weight.detach().numpy()[0], layer.bias.detach().numpy()])
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)
    assert report.startswith("output layer fitted to initial, walls (50 points): their weighted loss ")


def test_two_fields_in_one_condition_are_fitted_jointly_and_exactly_with_enough_features():
    spec = problem({"mix": {"region": "t=0", "residual": "u + 2*v - x**2", "points": 8}}, fields=("u", "v"),
                   equations={"a": "u_t - v", "b": "v_t - u"})
    m = module(spec, width=20)
    fit_output_layer(m, ridge=0.0)
    x = m.collocation.points["mix"]
    with torch.no_grad():
        y = m(x)
    torch.testing.assert_close(y[:, 0] + 2 * y[:, 1], x[:, 0] ** 2, rtol=0, atol=1e-6)


def test_conditions_that_are_not_value_conditions_are_left_out_and_named():
    spec = problem({"square": {"region": "t=0", "residual": "u**2 - 1", "points": 8},
                    "flux": {"region": "x=1", "residual": "u_x", "points": 8},
                    "periodic": {"periodic": "x"},
                    "start": {"region": "t=0", "residual": "u - cos(x)", "points": 8}})
    m = module(spec)
    found, skipped = value_terms(m, m.collocation.current(m.device, m.dtype))
    assert list(found) == ["start"]
    assert sorted(skipped) == ["flux (derivatives)", "periodic (derivatives)", "square (not affine in the fields)"]


def test_an_output_transform_is_fitted_through_its_raw_outputs():
    spec = {**problem({"walls": {"region": ["x=-1", "x=1"], "residual": "u - t", "points": 16}}),
            "output_transform": {"u": "t*u + sin(pi*x)"}}
    m = module(spec, width=20)
    fit_output_layer(m, ridge=0.0)
    x = m.collocation.points["walls"]
    with torch.no_grad():
        u = m(x)[:, 0]
    torch.testing.assert_close(u, x[:, 1], rtol=0, atol=1e-6)  # sin(pi x) = 0 on the walls: t*raw = t


def test_the_callback_fits_on_a_fresh_start_only(tmp_path):
    spec = problem({"initial": {"region": "t=0", "residual": "u + sin(pi*x)", "points": 32}})
    m = module(spec, width=16, architecture="pirate", fourier_features=8)
    fit = OutputLayerFit()
    trainer = small_trainer(tmp_path, max_steps=2, precision="64-true", callbacks=[fit], enable_checkpointing=True)
    trainer.fit(m)
    assert fit.report.startswith("output layer fitted to initial (32 points): their weighted loss ")
    before, after = (float(v) for v in fit.report.split("loss ")[1].split(" -> "))
    assert after < 1e-3 * before
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    again = OutputLayerFit()
    small_trainer(tmp_path, max_steps=3, precision="64-true", callbacks=[again]).fit(
        module(spec, width=16, architecture="pirate", fourier_features=8), ckpt_path=tmp_path / "a.ckpt")
    assert again.report is None


def test_a_network_whose_last_operation_is_not_its_last_linear_layer_is_refused():
    spec = problem({"initial": {"region": "t=0", "residual": "u", "points": 8}})
    m = PINNModule(spec, torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Linear(4, 1), torch.nn.Tanh())).double()
    with pytest.raises(ConfigError, match=r"^callbacks.output_fit: the last linear layer of Sequential is not its "
                                          r"last operation, so fitting it would not fit the outputs$"):
        fit_output_layer(m)
    class FirstCoordinate(torch.nn.Module):
        def forward(self, x):
            return x[:, :1]

    bare = PINNModule(spec, FirstCoordinate()).double()
    with pytest.raises(ConfigError, match=r"^callbacks.output_fit: the network FirstCoordinate has no linear output layer to fit$"):
        fit_output_layer(bare)
