"""Tests of ntksym.gaussian.numeric: the numeric dual (panel Gauss–Legendre quadrature with error estimates).

References come from other methods: QUADPACK (scipy.integrate.quad, nested by conditioning, with breakpoints at
each activation's kink or transition, written here from the activation's definition, not from the module's
feature detection), and published closed forms (the arc-cosine kernel of ReLU, Williams' erf kernel) evaluated
in mpmath at 30 digits. Every reference integrates the float64 correlation ρ = c/√(q1·q2) that the module
computes, so the tests measure the quadrature, not the rounding of ρ.
"""

from __future__ import annotations

import functools
import math
import subprocess
import sys
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import integrate

from ntksym.errors import DivergentMomentError, InvalidCovarianceError, NtksymError
from ntksym.gaussian.numeric import expect_numeric, numeric_dual, vectorize
from ntksym.symbols import x

TARGET = 1e-8  # the accuracy promised for K and K̇, relative to √(V(q1)V(q2)) (resp. √(V̇(q1)V̇(q2)))
ZMAX = 12.0  # references integrate standard-normal coordinates over |z| ≤ 12: φ(12) = 5e-32

LAMBDA, ALPHA = 1.0507009873554805, 1.6732632423543772  # SELU constants


# ----------------------------------------------------------------------------------------------------------------
# The activations: SymPy expression, and plain-float σ, σ' for the references (no NumPy, so no overflow warnings)


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))


def _softplus(t: float) -> float:
    return max(t, 0.0) + math.log1p(math.exp(-abs(t)))


def _sech2(t: float) -> float:
    return 0.0 if abs(t) > 350.0 else 1.0 / math.cosh(t) ** 2


def _mish_prime(t: float) -> float:
    sp_ = _softplus(t)
    return math.tanh(sp_) + t * _sigmoid(t) * _sech2(sp_)


# name: (σ as SymPy, σ, σ', centre of σ's kink or transition)
ACTIVATIONS = {
    "tanh": (sp.tanh(x), math.tanh, _sech2, 0.0),
    "sigmoid": (1 / (1 + sp.exp(-x)), _sigmoid, lambda t: _sigmoid(t) * _sigmoid(-t), 0.0),
    "softplus": (sp.log(1 + sp.exp(x)), _softplus, _sigmoid, 0.0),
    "silu": (x / (1 + sp.exp(-x)), lambda t: t * _sigmoid(t), lambda t: _sigmoid(t) * (1 + t * _sigmoid(-t)), 0.0),
    "elu": (
        sp.Piecewise((x, x > 0), (sp.exp(x) - 1, True)),
        lambda t: t if t > 0 else math.expm1(t),
        lambda t: 1.0 if t > 0 else math.exp(t),
        0.0,
    ),
    "selu": (
        sp.Float(LAMBDA) * sp.Piecewise((x, x > 0), (sp.Float(ALPHA) * (sp.exp(x) - 1), True)),
        lambda t: LAMBDA * (t if t > 0 else ALPHA * math.expm1(t)),
        lambda t: LAMBDA * (1.0 if t > 0 else ALPHA * math.exp(t)),
        0.0,
    ),
    "mish": (x * sp.tanh(sp.log(1 + sp.exp(x))), lambda t: t * math.tanh(_softplus(t)), _mish_prime, 0.0),
    "erf_shifted": (
        sp.erf(x + 1),
        lambda t: math.erf(t + 1.0),
        lambda t: 2.0 / math.sqrt(math.pi) * math.exp(-((t + 1.0) ** 2)),
        -1.0,
    ),
}


@functools.cache
def dual(name: str):
    """The numeric dual of an activation, σ' by SymPy's own differentiation (so the module meets its raw forms)."""
    expr = ACTIVATIONS[name][0]
    return numeric_dual(expr, sp.diff(expr, x))


# ----------------------------------------------------------------------------------------------------------------
# QUADPACK references


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _breaks(center: float, width: float) -> list[float]:
    """Breakpoints at a feature and around it, on its own scale (QUADPACK then refines adaptively)."""
    return [center] + [center + sign * m * width for m in (0.1, 1.0, 3.0, 10.0) for sign in (-1.0, 1.0)]


def _quad(h, breaks) -> tuple[float, float]:
    """(∫ h(z) φ(z) dz over |z| ≤ ZMAX, QUADPACK's error estimate)."""
    points = sorted({p for p in breaks if -ZMAX < p < ZMAX} | {0.0})
    with warnings.catch_warnings():
        # a tolerance QUADPACK cannot reach is reported through its error estimate, which the tests add in
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, err = integrate.quad(
            lambda z: h(z) * _phi(z), -ZMAX, ZMAX, points=points, epsabs=1e-15, epsrel=1e-13, limit=2000
        )
    return value, err


def _correlation(q1: float, q2: float, c: float) -> tuple[float, float]:
    rho = min(1.0, max(-1.0, c / math.sqrt(q1 * q2)))  # the module's float64 ρ (see module docstring)
    return rho, math.sqrt((1.0 - rho) * (1.0 + rho))


def ref_V(f, b: float, q: float) -> tuple[float, float]:
    """E[f(z)²], z ~ N(0, q), and its error estimate."""
    r = math.sqrt(q)
    return _quad(lambda z: f(r * z) ** 2, _breaks(b / r, 1.0 / r))


def ref_K(f, b: float, q1: float, q2: float, c: float) -> tuple[float, float]:
    """E[f(u) f(v)] by nested QUADPACK (outer z1, inner z2 | z1), and an estimate of its error."""
    r1, r2 = math.sqrt(q1), math.sqrt(q2)
    rho, s = _correlation(q1, q2, c)
    outer = _breaks(b / r1, 1.0 / r1)
    if rho != 0.0:  # the conditional mean E[f(v) | z1] changes where ρ·√q2·z1 crosses b, over max(1/√q2, s)/|ρ|
        outer += _breaks(b / (r2 * rho), max(1.0 / r2, s) / abs(rho)) + _breaks(b / (r2 * rho), s / abs(rho))
    if s == 0.0:
        return _quad(lambda z: f(r1 * z) * f(r2 * rho * z), outer)
    inner_err = [0.0]

    def inner(z1: float) -> float:
        value, err = _quad(lambda z2: f(r2 * (rho * z1 + s * z2)), _breaks((b / r2 - rho * z1) / s, 1.0 / (r2 * s)))
        inner_err[0] = max(inner_err[0], err)
        return value

    value, err = _quad(lambda z1: f(r1 * z1) * inner(z1), outer)
    mean_abs_f = _quad(lambda z: abs(f(r1 * z)), outer)[0]
    return value, err + inner_err[0] * mean_abs_f  # |∫ f·δG φ| ≤ max|δG|·E|f|


def check_against_reference(name: str, which: str, q1: float, q2: float, c: float) -> None:
    """K or K̇ of `name` at (q1, q2, c): within TARGET of the reference, and within its own error estimate."""
    _, f, fprime, b = ACTIVATIONS[name]
    h = f if which == "K" else fprime
    method = dual(name).K_with_error if which == "K" else dual(name).Kdot_with_error
    value, estimate = (float(a) for a in method(q1, q2, c))
    reference, ref_err = ref_K(h, b, q1, q2, c)
    scale = math.sqrt(ref_V(h, b, q1)[0] * ref_V(h, b, q2)[0])
    error = abs(value - reference)
    where = f"{which} of {name} at (q1, q2, c) = ({q1!r}, {q2!r}, {c!r}): value {value!r}, reference {reference!r}"
    # the accuracy target, plus the reference's own estimated error
    assert error <= TARGET * scale + ref_err, f"{where}: error {error / scale:.2e} of the scale > {TARGET}"
    # the estimate must bound the actual error; the reference's own estimated error is added
    assert error <= estimate + ref_err, f"{where}: error {error:.3e} exceeds the estimate {estimate:.3e}"


# ----------------------------------------------------------------------------------------------------------------
# Accuracy and honesty against QUADPACK


def covariances(draw_rho=st.floats(-1.0, 1.0)):
    """(q1, q2, c) with log-uniform variances in [1e-3, 1e3]; ρ = ±1 exactly in a quarter of the draws."""
    variance = st.floats(math.log(1e-3), math.log(1e3)).map(math.exp)
    rho = st.one_of(st.sampled_from([-1.0, 1.0]), draw_rho, draw_rho, draw_rho)
    return st.builds(lambda a, b, r: (a, b, r * math.sqrt(a * b)), variance, variance, rho)


@pytest.mark.parametrize("which", ["K", "Kdot"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@settings(max_examples=2)  # each nested-QUADPACK reference takes ~0.3 s; the slow sweep below draws more
@given(cov=covariances())
@example(cov=(1e3, 1e3, 999.0))  # the sharpest transition, strongly correlated
def test_matches_quadpack(name, which, cov):
    check_against_reference(name, which, *cov)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["K", "Kdot"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@settings(max_examples=40)
@given(cov=covariances(st.one_of(st.floats(-1.0, 1.0), st.sampled_from([-0.999999, -0.99, 0.0, 0.99, 0.999999]))))
def test_matches_quadpack_sweep(name, which, cov):
    check_against_reference(name, which, *cov)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_variance_matches_quadpack(name):
    _, f, fprime, b = ACTIVATIONS[name]
    q = np.array([0.0, 1e-3, 0.1, 1.0, 37.0, 1e3])
    for h, method in ((f, dual(name).V_with_error), (fprime, None)):
        if method is None:  # V̇(q) = K̇(q, q, q)
            value, estimate = dual(name).Kdot_with_error(q, q, q)
        else:
            value, estimate = method(q)
        ref = np.array([h(0.0) ** 2 if qq == 0 else ref_V(h, b, qq)[0] for qq in q])
        ref_err = np.array([0.0 if qq == 0 else ref_V(h, b, qq)[1] for qq in q])
        # 1-D integrals: the accuracy target, and the estimate bounds the error (reference error added)
        assert np.all(np.abs(value - ref) <= TARGET * ref + ref_err), (name, value, ref)
        assert np.all(np.abs(value - ref) <= estimate + ref_err), (name, value - ref, estimate)


# ----------------------------------------------------------------------------------------------------------------
# Closed forms: ReLU (arc-cosine kernel, Cho & Saul 2009) and erf (Williams 1997), evaluated in mpmath

mpmath.mp.dps = 30


def relu_K(q1, q2, c):
    rho, _ = _correlation(q1, q2, c)
    theta = mpmath.acos(mpmath.mpf(rho))
    return float(mpmath.sqrt(mpmath.mpf(q1) * q2) * (mpmath.sin(theta) + (mpmath.pi - theta) * rho) / (2 * mpmath.pi))


def relu_Kdot(q1, q2, c):
    rho, _ = _correlation(q1, q2, c)
    return float((mpmath.pi - mpmath.acos(mpmath.mpf(rho))) / (2 * mpmath.pi))


def erf_K(q1, q2, c):
    q1, q2, c = (mpmath.mpf(v) for v in (q1, q2, c))
    return float(2 / mpmath.pi * mpmath.asin(2 * c / mpmath.sqrt((1 + 2 * q1) * (1 + 2 * q2))))


def erf_Kdot(q1, q2, c):
    q1, q2, c = (mpmath.mpf(v) for v in (q1, q2, c))
    return float(4 / mpmath.pi / mpmath.sqrt((1 + 2 * q1) * (1 + 2 * q2) - 4 * c * c))


CLOSED_FORMS = {
    "relu": (sp.Max(x, 0), sp.Heaviside(x), relu_K, relu_Kdot),
    "erf": (sp.erf(x), 2 / sp.sqrt(sp.pi) * sp.exp(-(x**2)), erf_K, erf_Kdot),
}


def _grid(variances, correlations):
    q1, q2, rho = np.meshgrid(variances, variances, correlations, indexing="ij")
    return q1.ravel(), q2.ravel(), (rho * np.sqrt(q1 * q2)).ravel()


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_closed_forms(name):
    expr, dexpr, K, Kdot = CLOSED_FORMS[name]
    d = numeric_dual(expr, dexpr)
    q1, q2, c = _grid([1e-3, 0.05, 1.0, 20.0, 1e3], [-1.0, -0.999999, -0.7, 0.0, 0.3, 0.99, 0.9999, 1.0])
    for method, exact in ((d.K_with_error, K), (d.Kdot_with_error, Kdot)):
        value, estimate = method(q1, q2, c)
        ref = np.array([exact(*cov) for cov in zip(q1, q2, c)])
        scale = np.sqrt([exact(a, a, a) * exact(b, b, b) for a, b in zip(q1, q2)])
        error = np.abs(value - ref)
        # the accuracy target; the closed forms are correctly rounded (30-digit evaluation)
        assert np.all(error <= TARGET * scale), (name, np.max(error / scale))
        # the estimate bounds the error, up to the rounding of the closed form itself (2 ulp of the scale)
        assert np.all(error <= estimate + 4e-16 * scale), (name, np.max(error - estimate))


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_error_bound_bounds_the_grid(name):
    """error_bound covers the actual relative error on the grid it is computed on (module docstring)."""
    expr, dexpr, K, Kdot = CLOSED_FORMS[name]
    d = numeric_dual(expr, dexpr)
    q1, q2, c = _grid([1e-3, 1.0, 1e3], [-1.0, -0.999, -0.5, 0.0, 0.5, 0.9, 0.999, 1.0])
    worst = 0.0
    for method, exact in ((d.K, K), (d.Kdot, Kdot)):
        ref = np.array([exact(*cov) for cov in zip(q1, q2, c)])
        scale = np.sqrt([exact(a, a, a) * exact(b, b, b) for a, b in zip(q1, q2)])
        worst = max(worst, float(np.max(np.abs(method(q1, q2, c) - ref) / scale)))
    assert 0.0 <= worst <= d.error_bound < 1e-6, (worst, d.error_bound)  # 1e-6: the estimate is ~100× the error


# ----------------------------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=20)
@given(name=st.sampled_from(sorted(ACTIVATIONS)), cov=covariances())
def test_symmetric_in_the_variances(name, cov):
    q1, q2, c = cov
    d = dual(name)
    # exact: the rule itself orders the variances (the larger one outside), so both calls run the same sums
    assert d.K(q1, q2, c) == d.K(q2, q1, c)
    assert d.Kdot(q1, q2, c) == d.Kdot(q2, q1, c)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_diagonal_is_the_variance(name):
    d = dual(name)
    q = np.array([0.0, 1e-3, 0.3, 1.0, 7.0, 1e3])
    K, K_err = d.K_with_error(q, q, q)
    V, V_err = d.V_with_error(q)
    # two different rules for E[σ(z)²]: they agree within the sum of their error estimates (plus a few ulp of V,
    # for q = 0 where both estimates are 0)
    assert np.all(np.abs(K - V) <= K_err + V_err + 1e-15 * V), (K - V, K_err, V_err)


@settings(max_examples=20)
@given(name=st.sampled_from(sorted(ACTIVATIONS)), cov=covariances())
def test_cauchy_schwarz(name, cov):
    q1, q2, c = cov
    d = dual(name)
    for (k, k_err), (v1, e1), (v2, e2) in (
        (d.K_with_error(q1, q2, c), d.V_with_error(q1), d.V_with_error(q2)),
        (d.Kdot_with_error(q1, q2, c), d.Kdot_with_error(q1, q1, q1), d.Kdot_with_error(q2, q2, q2)),
    ):
        # |K| ≤ √(V1·V2), each side allowed its own estimated error (first order in e1, e2)
        slack = k_err + 0.5 * math.sqrt(v2 / v1) * e1 + 0.5 * math.sqrt(v1 / v2) * e2
        assert abs(k) <= math.sqrt(v1 * v2) + slack


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_uncorrelated_factorises(name):
    expr = ACTIVATIONS[name][0]
    d = dual(name)
    q1, q2 = np.array([1e-3, 0.5, 1e3]), np.array([2.0, 1e3, 1e-3])
    K, K_err = d.K_with_error(q1, q2, 0.0)
    m1, e1 = expect_numeric(expr, q1)
    m2, e2 = expect_numeric(expr, q2)
    # K(q1, q2, 0) = E[σ(u)]·E[σ(v)]: within the error estimates of both sides (first order), plus a few ulp of K
    # for the product's own rounding
    assert np.all(np.abs(K - m1 * m2) <= K_err + np.abs(m2) * e1 + np.abs(m1) * e2 + 1e-15 * np.abs(K))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_degenerate_and_extreme_covariances_are_finite(name):
    expr, f, fprime, _ = ACTIVATIONS[name]
    d = dual(name)
    # q = 0 exactly: the Gaussian is a point mass at 0
    assert d.V(0.0) == pytest.approx(f(0.0) ** 2, rel=1e-11, abs=1e-300)  # φ integrated by the rule: ~1e-12
    assert d.K(0.0, 0.0, 0.0) == pytest.approx(f(0.0) ** 2, rel=1e-11, abs=1e-300)
    assert d.Kdot(0.0, 0.0, 0.0) == pytest.approx(fprime(0.0) ** 2, rel=1e-11, abs=1e-300)
    m, m_err = expect_numeric(expr, 3.0)
    k, k_err = d.K_with_error(0.0, 3.0, 0.0)
    # K(0, q, 0) = σ(0)·E[σ(v)]: within both error estimates, plus 1e-15 for the product's rounding (K is O(1) here)
    assert abs(k - f(0.0) * m) <= k_err + abs(f(0.0)) * m_err + 1e-15
    # ρ = −1 exactly: K(q, q, −q) = E[σ(z)σ(−z)]
    for q in (1e-3, 1.0, 1e3):
        k, k_err = d.K_with_error(q, q, -q)
        m, m_err = expect_numeric(expr * expr.subs(x, -x), q)
        assert abs(k - m) <= k_err + m_err
    # all finite over the range, at ρ = ±1 and q = 0
    q1, q2, c = _grid([0.0, 1e-3, 1.0, 1e3], [-1.0, 0.0, 1.0])
    for method in (d.K, d.Kdot):
        assert np.all(np.isfinite(method(q1, q2, c)))


def test_broadcasting():
    d = dual("tanh")
    q1 = np.array([[0.5], [2.0]])
    q2 = np.array([1.0, 3.0, 9.0])
    out = d.K(q1, q2, 0.1)
    assert out.shape == (2, 3) and out.dtype == np.float64
    assert np.asarray(d.K(1.0, 1.0, 0.5)).shape == ()
    for i in range(2):
        for j in range(3):
            # the same covariance alone or in a batch: the same panels, sums in a different order (~1 ulp)
            assert out[i, j] == pytest.approx(float(d.K(q1[i, 0], q2[j], 0.1)), rel=1e-14)
    assert d.V(np.ones((4, 1))).shape == (4, 1)


# ----------------------------------------------------------------------------------------------------------------
# Invalid input


@pytest.mark.parametrize(
    "q1, q2, c, words",
    [
        (-1.0, 1.0, 0.0, "negative variance"),
        (1.0, -0.5, 0.0, "negative variance"),
        (1.0, 1.0, 1.0 + 1e-9, "c² > q1·q2"),
        (2.0, 8.0, -4.0 * (1 + 1e-9), "c² > q1·q2"),
        (0.0, 1.0, 1e-3, "c² > q1·q2"),
        (float("nan"), 1.0, 0.0, "not finite"),
        (1.0, 1.0, float("nan"), "not finite"),
        (float("inf"), 1.0, 0.0, "not finite"),
    ],
)
def test_invalid_covariance_raises(q1, q2, c, words):
    d = dual("tanh")
    for method in (d.K, d.Kdot, d.K_with_error):
        with pytest.raises(InvalidCovarianceError, match=words) as info:
            method(np.array([1.0, q1]), np.array([1.0, q2]), np.array([0.5, c]))
        assert "index (1,)" in str(info.value) and repr(c) in str(info.value)


def test_rounding_excess_of_c_is_accepted():
    d = dual("tanh")
    # |c| above √(q1·q2) by 1e-13 relative: rounding of a Gram matrix, within the documented 1e-12
    assert np.isfinite(d.K(2.0, 8.0, 4.0 * (1 + 1e-13)))


@pytest.mark.parametrize("q", [-1.0, float("nan"), float("-inf")])
def test_invalid_variance_raises(q):
    with pytest.raises(InvalidCovarianceError, match="variance"):
        dual("tanh").V(np.array([1.0, q]))
    with pytest.raises(InvalidCovarianceError, match="variance"):
        expect_numeric(sp.tanh(x), q)


def test_no_derivative():
    d = numeric_dual(sp.Heaviside(x))
    assert not d.has_Kdot and d.dsigma is None
    with pytest.raises(NtksymError, match="dsigma"):
        d.Kdot(1.0, 1.0, 0.5)
    # Heaviside: K = P(u > 0, v > 0) = (π − θ)/(2π), the orthant probability
    assert float(d.K(1.0, 4.0, 1.0)) == pytest.approx(relu_Kdot(1.0, 4.0, 1.0), abs=TARGET)


def test_order_is_checked():
    with pytest.raises(ValueError, match="order"):
        numeric_dual(sp.tanh(x), order=2)


def test_overflow_is_an_error_not_nan():
    d = numeric_dual(sp.exp(x), sp.exp(x))
    assert np.isfinite(d.V(1.0))
    with pytest.raises(DivergentMomentError, match="q=1000000.0"):
        d.V(1e6)  # E[exp(2u)] = exp(2q): beyond float64
    with pytest.raises(DivergentMomentError):
        d.K(1e6, 1e6, 0.0)


# ----------------------------------------------------------------------------------------------------------------
# vectorize: SymPy -> NumPy, on arrays, without overflow warnings (warnings are errors in this suite)


def test_vectorize_is_overflow_safe():
    t = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    softplus = vectorize(sp.log(1 + sp.exp(x)))(t)
    np.testing.assert_allclose(softplus, np.logaddexp(0.0, t), rtol=1e-15)
    for name in ACTIVATIONS:
        expr, f, fprime, _ = ACTIVATIONS[name]
        for e, ref in ((expr, f), (sp.diff(expr, x), fprime)):
            got = vectorize(e)(t)
            want = np.array([ref(v) for v in t])
            # elementwise functions: a few ulp of the value (or of 1, where the value is ~0)
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15, err_msg=f"{name}: {e}")


def test_vectorize_special_functions_on_arrays():
    t = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    cases = {
        sp.Heaviside(x): np.heaviside(t, 0.5),
        sp.Heaviside(x - 1, 1): np.heaviside(t - 1, 1.0),
        sp.Piecewise((x, x > 0), (0, True)): np.maximum(t, 0),
        sp.Max(x, 0, x / 2): np.maximum(np.maximum(t, 0), t / 2),
        sp.Min(x, 1): np.minimum(t, 1),
        sp.sign(x): np.sign(t),
        sp.Abs(x - 1): np.abs(t - 1),
        sp.erf(x): [math.erf(v) for v in t],
        sp.erfc(x): [math.erfc(v) for v in t],
        sp.Integer(3): np.full(5, 3.0),
        sp.sin(x) / x: [math.sin(v) / v if v else 1.0 for v in t],
    }
    for expr, want in cases.items():
        got = vectorize(expr)(t)
        assert got.shape == t.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-16, err_msg=str(expr))  # a few ulp


def test_expect_numeric_against_quadpack():
    cases = [
        (sp.tanh(x) ** 2, lambda t: math.tanh(t) ** 2, 0.0),
        (sp.Max(-1, sp.Min(1, x)), lambda t: max(-1.0, min(1.0, t)), 1.0),  # kinks at ±1
        (sp.Heaviside(x - sp.Rational(1, 2)), lambda t: 1.0 if t > 0.5 else 0.0, 0.5),  # a jump off the origin
        (sp.exp(-(x**2)) * x, lambda t: math.exp(-t * t) * t, 0.0),
    ]
    for expr, f, b in cases:
        for q in (1e-3, 1.0, 1e3):
            value, estimate = expect_numeric(expr, q)
            r = math.sqrt(q)
            breaks = _breaks(b / r, 1.0 / r) + _breaks(-b / r, 1.0 / r)
            ref, ref_err = _quad(lambda z, f=f: f(r * z), breaks)
            scale = math.sqrt(_quad(lambda z, f=f: f(r * z) ** 2, breaks)[0])
            # the accuracy target (relative to √E[f²]) and the honesty of the estimate, reference error added
            assert abs(value - ref) <= TARGET * scale + ref_err, (expr, q, value, ref)
            assert abs(value - ref) <= estimate + ref_err, (expr, q, value - ref, estimate)


def test_never_imports_jax():
    code = "import sys, ntksym.gaussian.numeric; assert 'jax' not in sys.modules, 'jax was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
