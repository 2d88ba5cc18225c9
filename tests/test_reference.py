"""The Cole-Hopf Burgers solution against independent truth: the PDE, its data, quadrature, a published number."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hydra.utils import instantiate
from scipy.integrate import quad
from scipy.optimize import minimize_scalar

from lightning_pinn.references import BurgersColeHopf

NU = 0.01 / math.pi


@pytest.fixture(scope="module")
def ref() -> BurgersColeHopf:
    return BurgersColeHopf(nu=NU)


def u_at(ref, x, t) -> float:
    return float(ref(np.array([x]), np.array([t]))[0])


def test_initial_condition_is_minus_sin_pi_x(ref):
    x = np.linspace(-1, 1, 201)
    np.testing.assert_array_equal(ref(x, np.zeros_like(x)), -np.sin(np.pi * x))


def test_the_solution_leaves_the_initial_condition_continuously(ref):
    x = np.linspace(-0.95, 0.95, 39)
    np.testing.assert_allclose(ref(x, np.full_like(x, 1e-9)), -np.sin(np.pi * x), atol=1e-6)


def test_boundary_values_are_zero(ref):
    t = np.linspace(0, 1, 51)
    np.testing.assert_allclose(ref(np.full_like(t, -1.0), t), 0.0, atol=1e-13)
    np.testing.assert_allclose(ref(np.full_like(t, 1.0), t), 0.0, atol=1e-13)


def test_solution_is_odd_in_x(ref):
    x, t = np.meshgrid(np.linspace(0, 1, 41), np.linspace(0, 1, 21), indexing="ij")
    np.testing.assert_allclose(ref(-x, t), -ref(x, t), rtol=0, atol=1e-13)
    np.testing.assert_allclose(ref(np.zeros(5), np.linspace(0.1, 1, 5)), 0.0, atol=1e-13)


def cole_hopf_by_quad(x: float, t: float, nu: float = NU) -> float:
    """u(x, t) from the Cole-Hopf integrals by adaptive quadrature, the exponent shifted by its maximum.

    With eta = sqrt(4 nu t) z, u = -int sin(pi (x - s z)) w(z) dz / int w(z) dz where
    w(z) = exp(-cos(pi (x - s z)) / (2 pi nu) - z^2 - shift).
    """
    s = math.sqrt(4 * nu * t)

    def exponent(z):
        return -np.cos(np.pi * (x - s * z)) / (2 * np.pi * nu) - z * z

    shift = exponent(np.linspace(-12, 12, 100_001)).max()

    def w(z):
        return math.exp(exponent(z) - shift)

    peaks = sorted(z for z in ((x - 1) / s, (x + 1) / s, x / s) if -12 < z < 12)
    options = dict(points=peaks or None, limit=1000, epsabs=1e-15, epsrel=1e-13)
    numerator = quad(lambda z: math.sin(math.pi * (x - s * z)) * w(z), -12, 12, **options)[0]
    denominator = quad(w, -12, 12, **options)[0]
    return -numerator / denominator


@pytest.mark.parametrize("x, t", [(0.5, 0.25), (-0.3, 0.7), (0.9, 0.5), (0.05, 0.9), (0.01, 0.5),
                                  (0.002, 1.0), (0.7, 0.001), (-0.6, 0.99)])
def test_agrees_with_adaptive_quadrature(ref, x, t):
    assert u_at(ref, x, t) == pytest.approx(cole_hopf_by_quad(x, t), abs=1e-10)


def test_quadrature_check_can_tell_a_different_viscosity_apart(ref):
    """The control: the quadrature check is sharp enough to see nu off by 1%."""
    assert abs(u_at(ref, 0.2, 0.5) - cole_hopf_by_quad(0.2, 0.5, nu=1.01 * NU)) > 1e-6


def burgers_residual_by_finite_differences(ref, x, t, nu):
    """u_t + u u_x - nu u_xx from central differences of the reference, and the size of its terms."""
    hx, ht, h2 = 1e-4, 1e-4, 1e-3

    def u(dx=0.0, dt=0.0):
        return ref(x + dx, t + dt)

    u0 = u()
    u_t = (u(dt=ht) - u(dt=-ht)) / (2 * ht)
    u_x = (u(dx=hx) - u(dx=-hx)) / (2 * hx)
    u_xx = (u(dx=h2) - 2 * u0 + u(dx=-h2)) / h2**2
    residual = u_t + u0 * u_x - nu * u_xx
    scale = np.abs(u_t) + np.abs(u0 * u_x) + np.abs(nu * u_xx)
    return residual, scale


def test_satisfies_the_pde_by_finite_differences(ref):
    x, t = np.meshgrid(np.linspace(0.3, 0.9, 13), np.linspace(0.1, 0.9, 9), indexing="ij")
    residual, scale = burgers_residual_by_finite_differences(ref, x, t, NU)
    assert np.all(scale > 0.05)
    assert np.max(np.abs(residual) / scale) < 1e-5
    wrong, _ = burgers_residual_by_finite_differences(ref, x, t, 1.01 * NU)  # the control: nu off by 1% shows
    assert np.max(np.abs(wrong) / scale) > 1e-3


def test_maximum_shock_slope_of_basdevant_et_al(ref):
    """Basdevant et al. (1986): min_t u_x(0, t) = -152.00516, reached at t = 1.6037 / pi."""
    h = 1e-6

    def slope(t):
        return (u_at(ref, h, t) - u_at(ref, -h, t)) / (2 * h)

    best = minimize_scalar(slope, bounds=(0.4, 0.65), method="bounded", options={"xatol": 1e-8})
    assert best.fun == pytest.approx(-152.00516, rel=1e-4)
    assert best.x == pytest.approx(1.6037 / math.pi, rel=1e-3)
    assert slope(0.4) > best.fun + 1 and slope(0.65) > best.fun + 1  # a minimum inside, not at an end


def test_broadcasts_and_keeps_the_shape(ref):
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    out = ref(x, 0.3)
    assert out.shape == (3, 4) and out.dtype == np.float64
    np.testing.assert_array_equal(out, ref(x.ravel(), np.full(12, 0.3)).reshape(3, 4))
    np.testing.assert_array_equal(ref(x, 0.3, chunk=5), out)  # chunking does not change values


@pytest.mark.parametrize("nu", [0.0, -0.01, float("nan")])
def test_non_positive_viscosity_is_rejected(nu):
    with pytest.raises(ValueError, match="nu: expected a positive number"):
        BurgersColeHopf(nu=nu)


def test_negative_times_are_rejected(ref):
    with pytest.raises(ValueError, match="t >= 0"):
        ref(np.array([0.1, 0.2]), np.array([0.5, -1e-12]))


def test_too_few_quadrature_points_are_rejected():
    with pytest.raises(ValueError, match="quadrature_points: expected an integer >= 2 but got 1"):
        BurgersColeHopf(quadrature_points=1)


def test_config_rebuilds_the_same_reference():
    original = BurgersColeHopf(nu=0.02, quadrature_points=64)
    rebuilt = instantiate(original.to_config())
    assert (rebuilt.nu, rebuilt.quadrature_points) == (0.02, 64)
    x, t = np.linspace(-1, 1, 9), np.full(9, 0.4)
    np.testing.assert_array_equal(rebuilt(x, t), original(x, t))
