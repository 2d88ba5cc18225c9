"""Spectral references against independent truth: exact solutions, invariants, PDE residuals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hydra.utils import instantiate

from lightning_pinn.references import (
    AllenCahn,
    KdV,
    KuramotoSivashinsky,
    NonlinearSchrodinger,
    spectral,
)


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """Every test caches under its own temporary directory, never in the home directory."""
    monkeypatch.setenv("LIGHTNING_PINN_CACHE", str(tmp_path))
    return tmp_path / "references"


def random_points(rng, domain, t_span, n=2000):
    return rng.uniform(*domain, n), rng.uniform(*t_span, n)


# --- ETDRK4 itself --------------------------------------------------------------------------------

def test_contour_coefficients_match_the_formulas_and_their_limits():
    z = np.array([-40.0, -3.0, 2.5j, 7.0 - 30.0j])
    e, e2, q, f1, f2, f3 = spectral.etdrk4_coefficients(z, dt=1.0)
    np.testing.assert_allclose(e, np.exp(z), rtol=1e-15)
    np.testing.assert_allclose(e2, np.exp(z / 2), rtol=1e-15)
    ez = np.exp(z)
    np.testing.assert_allclose(q, (np.exp(z / 2) - 1) / z, rtol=1e-12)
    np.testing.assert_allclose(f1, (-4 - z + ez * (4 - 3 * z + z**2)) / z**3, rtol=1e-12)
    np.testing.assert_allclose(f2, (2 + z + ez * (z - 2)) / z**3, rtol=1e-12)
    np.testing.assert_allclose(f3, (-4 - 3 * z - z**2 + ez * (4 - z)) / z**3, rtol=1e-12)
    # at z = 0 the scheme is classical RK4: weights 1/6, 1/3 (as 2 f2), 1/6 and half steps
    _, _, q0, g1, g2, g3 = spectral.etdrk4_coefficients(np.array([0.0, 1e-12]), dt=0.3)
    np.testing.assert_allclose(q0, 0.15, rtol=1e-12)
    for f in (g1, g2, g3):
        np.testing.assert_allclose(f, 0.3 / 6, rtol=1e-11)


def test_etdrk4_is_fourth_order_on_an_ode_with_a_known_solution():
    # v' = -v + v^2, v(0) = 1/2  ->  v = 1 / (1 + e^t)
    def error(dt):
        steps = round(2.0 / dt)
        v = spectral.etdrk4(np.array([0.5 + 0j]), np.array([-1.0]), lambda v: v * v, dt, steps, every=steps)
        return abs(v[-1, 0].real - 1 / (1 + math.exp(2.0)))

    ratio = error(0.2) / error(0.1)
    assert 13 < ratio < 19, ratio


# --- nonlinear problems with exact solutions ------------------------------------------------------

def test_kdv_soliton_travels_at_its_speed():
    # u_t + 6 u u_x + u_xxx = 0:  u = (c/2) sech^2(sqrt(c)/2 (x - c t)), here c = 4
    ref = KdV(lambda1=6.0, lambda2=1.0, initial="2/cosh(x)**2", domain=(-20, 20), modes=512, dt=1e-3,
              snapshots=201, cache=False)
    x, t = random_points(np.random.default_rng(0), (-20, 20), (0, 1))
    np.testing.assert_allclose(ref(x=x, t=t), 2 / np.cosh(x - 4 * t) ** 2, rtol=0, atol=2e-8)
    assert ref.step_error < 1e-8 and ref.interpolation_error < 1e-7


def test_nls_soliton_rotates_in_phase():
    # i h_t + h_xx / 2 + |h|^2 h = 0:  h = a sech(a x) e^{i a^2 t / 2}, here a = 2
    ref = NonlinearSchrodinger(initial_u="2/cosh(2*x)", domain=(-20, 20), t_span=(0, 1), modes=1024, dt=1e-3,
                               snapshots=101, tail_tol=1e-8, cache=False)
    x, t = random_points(np.random.default_rng(1), (-20, 20), (0, 1))
    h = ref(x=x, t=t)
    exact = 2 / np.cosh(2 * x) * np.exp(2j * t)
    np.testing.assert_allclose(h["u"], exact.real, rtol=0, atol=5e-9)
    np.testing.assert_allclose(h["v"], exact.imag, rtol=0, atol=5e-9)


def test_nls_plane_wave_has_the_nonlinear_frequency():
    # h = a e^{i (k x - w t)} with w = k^2/2 - a^2; a = 0.4 < k_min / 2 is modulationally stable
    a, k = 0.4, 2
    ref = NonlinearSchrodinger(initial_u=f"{a}*cos({k}*x)", initial_v=f"{a}*sin({k}*x)", domain=(0, 2 * math.pi),
                               t_span=(0, 3), modes=32, dt=1e-2, snapshots=31, cache=False)
    x, t = random_points(np.random.default_rng(2), (0, 2 * math.pi), (0, 3), 500)
    h = ref(x=x, t=t)
    exact = a * np.exp(1j * (k * x - (k**2 / 2 - a**2) * t))
    np.testing.assert_allclose(h["u"] + 1j * h["v"], exact, rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", ["heat", "dispersion", "hyperdiffusion"])
def test_a_single_fourier_mode_evolves_by_the_linear_symbol(case):
    # ETDRK4 is exact for linear problems, so at the snapshots only rounding remains; dispersion
    # is interpolated in its rotating frame, exact between snapshots too
    rng = np.random.default_rng(3)
    x, t = rng.uniform(-1, 1, 500), rng.integers(0, 21, 500) / 20
    if case == "heat":  # u_t = d u_xx
        ref = AllenCahn(diffusion=0.1, reaction=0.0, initial="sin(pi*x)", modes=32, dt=0.05, snapshots=21,
                        cache=False)
        exact = np.exp(-0.1 * math.pi**2 * t) * np.sin(math.pi * x)
    elif case == "dispersion":  # u_t + l2 u_xxx = 0
        ref = KdV(lambda1=0.0, initial="cos(3*pi*x)", modes=32, dt=0.05, snapshots=21, cache=False)
        t = rng.uniform(0, 1, 500)
        exact = np.cos(3 * math.pi * x + 0.0025 * (3 * math.pi) ** 3 * t)
    else:  # u_t + beta u_xx + gamma u_xxxx = 0 on [0, 2 pi]; short, since rounding grows like e^{25 t}
        ref = KuramotoSivashinsky(alpha=0.0, initial="cos(2*x)", t_span=(0, 0.2), modes=32, dt=0.01, snapshots=21,
                                  cache=False)
        x, t = (x + 1) * math.pi, t / 5
        exact = np.exp((4 * ref.beta - 16 * ref.gamma) * t) * np.cos(2 * x)
    np.testing.assert_allclose(ref(x=x, t=t), exact, rtol=0, atol=1e-12)


# --- invariants of the benchmark problems ---------------------------------------------------------

@pytest.mark.parametrize("state", [1.0, -1.0])
def test_allen_cahn_stable_states_stay(state):
    ref = AllenCahn(initial=str(state), modes=64, dt=0.01, snapshots=11, cache=False)
    x, t = random_points(np.random.default_rng(4), (-1, 1), (0, 1), 200)
    np.testing.assert_allclose(ref(x=x, t=t), state, rtol=0, atol=1e-14)


def test_allen_cahn_benchmark_obeys_the_maximum_principle_and_forms_plateaus():
    ref = AllenCahn(cache=False)  # the default benchmark grid
    x, t = np.meshgrid(np.linspace(-1, 1, 401), np.linspace(0, 1, 51))
    u = ref(x=x, t=t)
    assert np.all(np.isfinite(u))
    assert np.max(np.abs(u)) <= 1 + 1e-9  # |u0| <= 1, so |u| <= 1
    far, inner = np.abs(x[-1]) >= 0.9, np.abs(np.abs(x[-1]) - 0.3) <= 0.1  # plateaus at t = 1
    assert np.max(np.abs(u[-1][far] + 1)) < 1e-3 and np.min(u[-1][inner]) > 0.95
    np.testing.assert_allclose(u, u[:, ::-1], atol=1e-12)  # u0 and the equation are even in x
    assert ref.step_error < 1e-8 and ref.interpolation_error < 1e-6


def test_kdv_conserves_mass_and_energy():
    ref = KdV(initial="0.5 + cos(pi*x)", modes=256, dt=5e-4, snapshots=101, t_span=(0, 0.5), cache=False)
    x = np.linspace(-1, 1, 256, endpoint=False)
    for t in (0.0, 0.123, 0.5):
        u = ref(x=x, t=np.full_like(x, t))
        assert abs(np.mean(u) - 0.5) < 1e-12
        assert abs(np.mean(u**2) - 0.75) < 1e-8  # mean of (0.5 + cos)^2


def test_kuramoto_sivashinsky_conserves_the_mean():
    ref = KuramotoSivashinsky(initial="0.2 + cos(x)*(1 + sin(x))", t_span=(0, 0.3), modes=512, dt=2e-4,
                              snapshots=151, cache=False)
    x = np.linspace(0, 2 * math.pi, 256, endpoint=False)
    for t in (0.1, 0.3):
        assert abs(np.mean(ref(x=x, t=np.full_like(x, t))) - 0.2) < 1e-12


def test_nls_conserves_mass():
    ref = NonlinearSchrodinger(modes=256, dt=1e-3, snapshots=101, tail_tol=1e-4, cache=False)
    x = np.linspace(-5, 5, 256, endpoint=False)
    h0 = ref(x=x, t=np.zeros_like(x))
    h1 = ref(x=x, t=np.full_like(x, math.pi / 2))
    np.testing.assert_allclose(np.mean(h1["u"] ** 2 + h1["v"] ** 2), np.mean(h0["u"] ** 2), rtol=1e-6)


# --- evaluation -----------------------------------------------------------------------------------

def test_evaluation_is_periodic_exact_at_t0_and_shaped_like_the_input(monkeypatch):
    ref = KdV(modes=128, dt=1e-3, snapshots=51, t_span=(0, 0.2), cache=False)
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    with monkeypatch.context() as patch:  # the initial condition needs no solve
        patch.setattr(spectral, "etdrk4", None)
        np.testing.assert_array_equal(ref(x=x, t=np.zeros_like(x)), np.cos(np.pi * x))
    t = np.full_like(x, 0.137)
    np.testing.assert_allclose(ref(x=x + 2, t=t), ref(x=x, t=t), atol=1e-12)
    assert ref(x=x, t=t).shape == (3, 4)
    with pytest.raises(ValueError, match=r"t_span=\[0.0, 0.2\]"):
        ref(x=x, t=np.full_like(x, 0.3))


# --- cache ----------------------------------------------------------------------------------------

def small_kdv(**overrides):
    return KdV(**{"modes": 128, "dt": 2e-3, "snapshots": 51, "t_span": (0, 0.2), **overrides})


def test_cache_hit_returns_the_same_arrays_without_solving(cache_in_tmp, monkeypatch):
    first = small_kdv().solve()
    assert not first.from_cache and first.cache_path().parent == cache_in_tmp
    assert first.cache_path().name.startswith("KdV-") and first.cache_path().exists()
    assert not list(cache_in_tmp.glob("*.tmp"))

    def no_solve(*args, **kwargs):
        raise AssertionError("a cache hit must not solve")

    monkeypatch.setattr(spectral, "etdrk4", no_solve)
    second = small_kdv()
    x, t = np.linspace(-1, 1, 50), np.linspace(0, 0.2, 50)
    np.testing.assert_array_equal(second(x=x, t=t), first(x=x, t=t))
    assert second.from_cache and second.step_error == first.step_error
    np.testing.assert_array_equal(second.coefficients, first.coefficients)
    assert small_kdv(lambda1=1.5).cache_path() != first.cache_path()
    with pytest.raises(AssertionError, match="cache hit"):
        small_kdv(lambda1=1.5).solve()


def test_a_damaged_cache_file_is_solved_again_and_cache_false_writes_nothing(cache_in_tmp):
    path = small_kdv().cache_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz")
    ref = small_kdv().solve()
    assert not ref.from_cache and small_kdv().solve().from_cache
    other = small_kdv(lambda2=0.003, cache=False).solve()
    assert not other.cache_path().exists()


# --- configs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("ref", [
    AllenCahn(diffusion=2e-4, modes=64, cache=False), KdV(lambda2=0.003), KuramotoSivashinsky(alpha=1.0),
    NonlinearSchrodinger(initial_v="0.1", domain=(-4, 4)),
], ids=lambda ref: type(ref).__name__)
def test_config_rebuilds_the_same_reference(ref):
    rebuilt = instantiate(ref.to_config())
    assert type(rebuilt) is type(ref) and rebuilt.to_config() == ref.to_config()


# --- grids that cannot work -----------------------------------------------------------------------

def test_an_absurd_time_step_raises_naming_dt():
    with pytest.raises(ValueError, match=r"dt=0.05 .*decrease dt"):
        KdV(dt=0.05, snapshots=11, cache=False).solve()
    with pytest.raises(ValueError, match=r"step_tol=1e-06; decrease dt \(dt=0.005\)"):  # no a-priori bound for KS
        KuramotoSivashinsky(dt=5e-3, snapshots=51, t_span=(0, 0.5), cache=False).solve()


def test_too_few_modes_raise_naming_modes():
    with pytest.raises(ValueError, match=r"modes=64 cannot resolve the solution.*increase modes"):
        KdV(modes=64, cache=False).solve()
    with pytest.raises(ValueError, match=r"modes=32 cannot resolve the initial condition.*increase modes"):
        AllenCahn(initial="tanh(x/0.01)", modes=32, cache=False).solve()


@pytest.mark.parametrize("kwargs, message", [
    ({"modes": 101}, "modes: expected even but got 101"),
    ({"modes": 8}, "modes: expected an integer >= 16 but got 8"),
    ({"dt": -1.0}, "dt: expected positive but got -1.0"),
    ({"dt": "0.1"}, "dt: expected a finite number but got '0.1'"),
    ({"snapshots": 2}, "snapshots: expected an integer >= 4 but got 2"),
    ({"domain": (1, -1)}, r"domain: expected finite with lo < hi but got \(1, -1\)"),
    ({"diffusion": 0.0}, "diffusion: expected positive but got 0.0"),
])
def test_bad_arguments_are_rejected_quoting_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AllenCahn(**kwargs)


def test_initial_conditions_are_evaluated_in_float64_numpy():
    source = "x**2*cos(pi*x) + exp(-x)/cosh(x) - sqrt(abs(x)) + atan2(x, 2) + max(x, 0) + sigmoid(x) + erf(x) + e"
    x = np.linspace(-3, 3, 101)
    expected = [v**2 * math.cos(math.pi * v) + math.exp(-v) / math.cosh(v) - math.sqrt(abs(v)) + math.atan2(v, 2)
                + max(v, 0) + 1 / (1 + math.exp(-v)) + math.erf(v) + math.e for v in x]
    np.testing.assert_allclose(spectral.initial_function(source)(x), expected, rtol=1e-14, atol=1e-14)
    np.testing.assert_array_equal(spectral.initial_function("2")(x), np.full_like(x, 2.0))


def test_an_initial_condition_outside_the_expression_language_is_rejected():
    with pytest.raises(ValueError, match="unknown name 'y'"):
        KdV(initial="cos(pi*y)")
