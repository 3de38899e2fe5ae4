"""The references of tests/references.py are right: each is checked against a different method.

- closed form vs adaptive quadrature of σ (K, K̇, V), at covariances that include |ρ| = 1 − 1e-6,
  ρ = 0 and variances 1e-3 and 1e3;
- K̇ vs a high-precision central difference of K in c (Price's theorem);
- V(q) vs K(q, q, q), symmetry, factorisation at c = 0;
- Cho & Saul's J_n vs their derivative recursion (SymPy), J_3 vs quadrature;
- Isserlis (exact) vs Mehler/Hermite series (numpy.polynomial.hermite_e);
- the quadrature itself vs scipy's nested quad, and with scalar-only and mpmath callables.

Tolerances say where they come from (STYLE.md principle 10). "Correctly rounded" below means: the
closed form is evaluated in mpmath at 30 digits from the exact float64 inputs and rounded once, so
it is within eps/2 of the exact value of K at those inputs (cancellations in the formulas lose at
most ~1e6 of the 1e-30, far below eps).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from scipy import integrate

import helpers
import references as R
from helpers import EPS64, assert_close_scaled, float64_tolerance
from references import REFERENCES

# ---------------------------------------------------------------------------------------------------
# Test points and activation variants
# ---------------------------------------------------------------------------------------------------

# (id, q1, q2, rho): the edges the references must handle (task brief: q in [1e-3, 1e3], |ρ| <= 1 − 1e-6).
COVARIANCES = [
    ("unit", 1.0, 1.0, 0.3),
    ("q1e-3_q1e3", 1e-3, 1e3, 0.5),
    ("q1e3_rho+edge", 1e3, 1e3, 1 - 1e-6),
    ("rho-edge", 2.0, 0.5, -(1 - 1e-6)),
    ("q1e-3_rho0", 1e-3, 1e-3, 0.0),
    ("q1e3_q1e-3_neg", 1e3, 1e-3, -0.7),
    ("mid_rho_near1", 0.3, 7.0, 1 - 1e-3),
]


def _cov(q1, q2, rho):
    return q1, q2, rho * math.sqrt(q1 * q2)


VARIANTS = [
    ("relu", {}),
    ("leaky_relu", {"alpha": 0.1}),
    ("leaky_relu", {"alpha": 0.01}),
    ("abrelu", {"a": -0.5, "b": 1.0}),
    ("abrelu", {"a": 0.3, "b": 2.0}),
    ("abs", {}),
    ("step", {}),
    ("sign", {}),
    ("erf", {}),
    ("erf", {"a": 0.5, "b": 2.0, "c": 0.3}),
    ("gelu", {}),
    ("sin", {}),
    ("sin", {"a": 1.5, "b": 0.7, "c": 0.4}),
    ("cos", {}),
    ("cos", {"a": 0.8, "b": 1.3, "c": -0.6}),
    ("exp", {}),
    ("exp", {"a": 0.7, "b": 0.05, "c": 0.3}),
    ("gaussian", {}),
    ("gaussian", {"a": 0.6, "b": 0.25, "c": -0.2}),
    *[("monomial", {"k": k}) for k in range(7)],
    *[("rectified_monomial", {"k": k}) for k in range(4)],
    ("polynomial", {}),
    ("polynomial", {"coeffs": (0.5, -1.0, 0.25, 0.0, 0.1)}),
    ("polynomial", {"coeffs": (1.0, -2.0, 0.5, 0.3, -0.1, 0.02, -0.003)}),
    *[("hermite", {"k": k}) for k in range(7)],
    *[(name, {}) for name in R.EXTRA_NAMES],
]


def _variant(name, params):
    return REFERENCES[name](**params) if params else REFERENCES[name]


def _variant_id(name, params):
    return _variant(name, params).label.replace(" ", "")


def _in_quadrature_domain(ref, q1, q2) -> bool:
    """exp(b x) at b²q > 10 has its Gaussian-weighted mass beyond |z| = 2b√q ≈ 6 + truncation; at
    b²q = 1e3 even V = e^{2000} overflows float64. Its closed form is checked where quadrature applies."""
    if ref.name == "exp":
        b = dict(ref.params)["b"]
        return b * b * max(q1, q2) <= 10.0
    return True


def _use_inner(ref, q1, q2) -> bool:
    """Oscillatory σ at q >= 100: the inner expectation in closed form (characteristic function),
    quadrature over the outer variable; the full 2-D quadrature (~0.3 s each) is test_full_2d_oscillatory."""
    return ref.inner is not None and ref.name in ("sin", "cos", "erf(x) + sin(x)") and max(q1, q2) >= 100


_COV_BY_ID = {c[0]: c[1:] for c in COVARIANCES}
CASES = [
    pytest.param(name, params, cov_id, id=f"{_variant_id(name, params)}-{cov_id}")
    for name, params in VARIANTS
    for cov_id, q1, q2, _ in COVARIANCES
    if _in_quadrature_domain(_variant(name, params), q1, q2)
]

# quad_K's error estimate bounds its own discretisation error (conservatively); on top of it, the
# float64 summation of up to ~1e4 segment values can add ~√n·eps relative to the scale: 1e-14 ≈ 45 eps.
QUAD_SUMMATION = 1e-14


# ---------------------------------------------------------------------------------------------------
# Closed form vs quadrature
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, params, cov_id", CASES)
def test_K_matches_quadrature(name, params, cov_id):
    ref = _variant(name, params)
    q1, q2, c = _cov(*_COV_BY_ID[cov_id])
    quad = ref.quad_K(q1, q2, c, use_inner=_use_inner(ref, q1, q2), return_error=True)
    scale = ref.scale(q1, q2)
    assert_close_scaled(
        ref.K(q1, q2, c),
        quad.value,
        scale,
        quad.error / scale + QUAD_SUMMATION,
        "quad_K's own error estimate + float64 summation of segment values (closed form correctly rounded)",
    )


@pytest.mark.parametrize("name, params, cov_id", CASES)
def test_Kdot_matches_quadrature(name, params, cov_id):
    ref = _variant(name, params)
    if ref.Kdot is None:
        assert ref.dsigma is None, "K̇ is None exactly for activations with jumps"
        return
    q1, q2, c = _cov(*_COV_BY_ID[cov_id])
    quad = ref.quad_Kdot(q1, q2, c, use_inner=_use_inner(ref, q1, q2), return_error=True)
    dscale = ref.dscale(q1, q2)
    if dscale == 0.0:  # σ constant (monomial(0), hermite(0)): σ' = 0
        assert ref.Kdot(q1, q2, c) == 0.0 and quad.value == 0.0
        return
    assert_close_scaled(
        ref.Kdot(q1, q2, c),
        quad.value,
        dscale,
        quad.error / dscale + QUAD_SUMMATION,
        "quad_Kdot's own error estimate + float64 summation (closed form correctly rounded)",
    )


V_POINTS = (1e-3, 0.5, 7.0, 1e3)


@pytest.mark.parametrize(
    "name, params", [pytest.param(n, p, id=_variant_id(n, p)) for n, p in VARIANTS]
)
def test_V_matches_quadrature_and_diagonal(name, params):
    ref = _variant(name, params)
    for q in V_POINTS:
        v = ref.V(q)
        kqq = ref.K(q, q, q)
        if not np.isfinite(v):  # exp(b x) at b²q ≫ 1: e^{2b²q} overflows float64 in both
            assert v == kqq == np.inf
            continue
        assert_close_scaled(
            kqq, v, v, 2 * EPS64, "V and K(q,q,q) are separate formulas, each correctly rounded (eps/2 each)"
        )
        if _in_quadrature_domain(ref, q, q):
            quad = ref.quad_V(q, return_error=True)
            assert_close_scaled(
                v, quad.value, v, quad.error / v + float64_tolerance(64), "quad_V's error estimate + summation rounding"
            )


# ---------------------------------------------------------------------------------------------------
# Identities that need no quadrature
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, params", [pytest.param(n, p, id=_variant_id(n, p)) for n, p in VARIANTS if _variant(n, p).Kdot is not None]
)
def test_Kdot_is_central_difference_of_K(name, params):
    """Price's theorem: K̇ = ∂K/∂c, by a 50-digit central difference with h = 1e-15·√(q1q2)."""
    ref = _variant(name, params)
    for _, q1, q2, rho in COVARIANCES:
        q1, q2, c = _cov(q1, q2, rho)
        kdot = ref.Kdot(q1, q2, c)
        if not np.isfinite(kdot):
            continue  # exp at large q: overflow in both
        dscale = ref.dscale(q1, q2)
        if not np.isfinite(dscale):  # exp at q = 1e3: K̇(q, q, q) = e^{2000} overflows; measure relative to K̇
            dscale = abs(kdot)
        fd = R.central_difference_dK_dc(ref.K, q1, q2, c)
        if dscale == 0.0:
            assert kdot == 0.0 and fd == 0.0
            continue
        # the difference is exact to ~1e-20 (see central_difference_dK_dc); each side is rounded once
        assert_close_scaled(kdot, fd, dscale, 2 * EPS64, "two correctly rounded values of the same number")


@pytest.mark.parametrize("name, params", [pytest.param(n, p, id=_variant_id(n, p)) for n, p in VARIANTS])
def test_symmetry_and_bounds(name, params):
    ref = _variant(name, params)
    for _, q1, q2, rho in COVARIANCES:
        q1, q2, c = _cov(q1, q2, rho)
        k12, k21 = ref.K(q1, q2, c), ref.K(q2, q1, c)
        scale = ref.scale(q1, q2)
        if not np.isfinite(scale):
            continue
        assert_close_scaled(k12, k21, scale, 2 * EPS64, "both correctly rounded values of the same number")
        # Cauchy–Schwarz |K| <= √(V1 V2); the slack covers the rounding of the three values
        assert abs(k12) <= scale * (1 + 4 * EPS64)


@pytest.mark.parametrize(
    "name, params",
    [pytest.param(n, p, id=_variant_id(n, p)) for n, p in VARIANTS if n not in ("exp",)],
)
def test_K_at_zero_correlation_factorises(name, params):
    """K(q1, q2, 0) = E[σ(u)] E[σ(v)], the means by 1-D quadrature."""
    ref = _variant(name, params)
    for q1, q2 in ((1.0, 2.0), (1e-3, 1e3)):
        m1 = R.quad_mean(ref.sigma, q1, ref.kinks, return_error=True)
        m2 = R.quad_mean(ref.sigma, q2, ref.kinks, return_error=True)
        scale = ref.scale(q1, q2)
        err = (abs(m1.value) * m2.error + abs(m2.value) * m1.error) / scale
        assert_close_scaled(
            ref.K(q1, q2, 0.0), m1.value * m2.value, scale, err + QUAD_SUMMATION, "propagated quad_mean error estimates"
        )


def test_catalog_identities():
    """Relations between references written independently (different formulas for the same kernel)."""
    for _, q1, q2, rho in COVARIANCES:
        q1, q2, c = _cov(q1, q2, rho)
        tol = 8 * EPS64  # correctly rounded values, combined in at most ~3 float64 operations
        why = "correctly rounded references combined in a few float64 operations"
        relu, step = REFERENCES["relu"], REFERENCES["step"]
        s1 = relu.scale(q1, q2)
        # a·min + b·max with a = b is linear: K = a²c exactly
        lin = REFERENCES["abrelu"](a=0.7, b=0.7)
        assert_close_scaled(lin.K(q1, q2, c), 0.49 * c, lin.scale(q1, q2), tol, why)
        # |x| written as Cho–Saul-by-symmetry vs the published (2√(q1q2)/π)(√(1−ρ²) + ρ arcsin ρ)
        ab = REFERENCES["abrelu"](a=-1.0, b=1.0)
        assert_close_scaled(ab.K(q1, q2, c), REFERENCES["abs"].K(q1, q2, c), ab.scale(q1, q2), tol, why)
        assert_close_scaled(ab.Kdot(q1, q2, c), REFERENCES["abs"].Kdot(q1, q2, c), 1.0, tol, why)
        # leaky_relu(α) = abrelu(α, 1)
        assert_close_scaled(
            REFERENCES["leaky_relu"](alpha=0.2).K(q1, q2, c), REFERENCES["abrelu"](a=0.2, b=1.0).K(q1, q2, c), s1, tol, why
        )
        # sign = 2·step − 1 ⇒ K_sign = 4 K_step − 1
        assert_close_scaled(REFERENCES["sign"].K(q1, q2, c), 4 * step.K(q1, q2, c) - 1, 1.0, tol, why)
        # relu = x/2 + |x|/2 ⇒ K_relu = (c + E|u||v|)/4 (cross terms vanish by symmetry)
        assert_close_scaled(relu.K(q1, q2, c), (c + REFERENCES["abs"].K(q1, q2, c)) / 4, s1, tol, why)
        # relu' = step
        assert_close_scaled(relu.Kdot(q1, q2, c), step.K(q1, q2, c), 1.0, tol, why)


# ---------------------------------------------------------------------------------------------------
# Arc-cosine kernels: J_n against Cho & Saul's recursion
# ---------------------------------------------------------------------------------------------------


def _cho_saul_J(n: int):
    """J_n(θ) = (−1)^n (sin θ)^{2n+1} ((1/sin θ) ∂/∂θ)^n ((π − θ)/sin θ)  (Cho & Saul 2009, eq. (6))."""
    th = sp.Symbol("theta", positive=True)
    expr = (sp.pi - th) / sp.sin(th)
    for _ in range(n):
        expr = sp.diff(expr, th) / sp.sin(th)
    return sp.Lambda(th, sp.simplify((-1) ** n * sp.sin(th) ** (2 * n + 1) * expr))


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_arccos_J_matches_cho_saul_recursion(n):
    J = _cho_saul_J(n)
    ref = REFERENCES["rectified_monomial"](k=n)
    for theta in (0.05, 0.7, 1.5, 2.4, 3.1):
        rho = math.cos(theta)
        expected = float(J(sp.acos(sp.Float(rho, 40))).evalf(30))  # at the rounded ρ the reference sees
        got = 2 * math.pi * ref.K(1.0, 1.0, rho)
        # J_n(0) = π(2n−1)!! is the largest value; both sides are 30-digit values rounded once,
        # then multiplied by 2π in float64 (one more rounding)
        assert_close_scaled(got, expected, math.pi * R._double_factorial(2 * n - 1), 4 * EPS64, "rounding of 2π·K")


def test_J3_against_quadrature_at_several_angles():
    """The J_3 formula of the task brief, by quadrature of max(x, 0)³ at unit variance."""
    ref = REFERENCES["rectified_monomial"](k=3)
    for rho in (-0.999999, -0.6, 0.0, 0.45, 0.9999):
        quad = ref.quad_K(1.0, 1.0, rho, return_error=True)
        assert_close_scaled(ref.K(1.0, 1.0, rho), quad.value, 7.5, quad.error / 7.5 + QUAD_SUMMATION, "quad error estimate")


# ---------------------------------------------------------------------------------------------------
# Polynomials: Isserlis vs Mehler
# ---------------------------------------------------------------------------------------------------

POLYNOMIALS = [
    (0.0, 1.0),
    (0.0, 0.0, 1.0),
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
    (0.5, -1.0, 0.25, 0.0, 0.1),
    (1.0, -2.0, 0.5, 0.3, -0.1, 0.02, -0.003),
    (-0.3, 0.0, 0.0, 1.7, 0.0, -0.4),
]


def _mehler_condition(coeffs, q1, q2, c) -> float:
    """Σ_k H1_k H2_k k! |ρ|^k, where H is the He-expansion of Σ|a_i| (√q x)^i: every He-coefficient of
    x^i is non-negative, so |h_k| <= H_k and this sum bounds every intermediate of mehler_K."""
    rho = abs(c) / math.sqrt(q1 * q2)
    h1 = R.hermite_expansion([abs(a) for a in coeffs], q1)
    h2 = R.hermite_expansion([abs(a) for a in coeffs], q2)
    return float(sum(h1[k] * h2[k] * math.factorial(k) * rho**k for k in range(len(h1))))


@pytest.mark.parametrize("coeffs", POLYNOMIALS, ids=[f"poly{i}_deg{len(cs) - 1}" for i, cs in enumerate(POLYNOMIALS)])
def test_isserlis_matches_mehler(coeffs):
    for _, q1, q2, rho in COVARIANCES:
        q1, q2, c = _cov(q1, q2, rho)
        exact = R.polynomial_K(coeffs, q1, q2, c)
        mehler = R.mehler_K(coeffs, q1, q2, c)
        cond = max(_mehler_condition(coeffs, q1, q2, c), np.finfo(np.float64).tiny)  # 0 when all terms vanish
        # poly2herme and the series add up <= ~4·deg² roundings of quantities bounded by the condition sum
        assert_close_scaled(mehler, exact, cond, float64_tolerance(4 * 36), "float64 Mehler series, condition Σ|terms|")
        # and the same polynomial through REFERENCES (exact) vs the quadrature
    ref = REFERENCES["polynomial"](coeffs=coeffs)
    q1, q2, c = _cov(3.0, 0.2, -0.8)
    quad = ref.quad_K(q1, q2, c, return_error=True)
    scale = ref.scale(q1, q2)
    assert_close_scaled(ref.K(q1, q2, c), quad.value, scale, quad.error / scale + QUAD_SUMMATION, "quad error estimate")


def test_isserlis_known_moments():
    """Isserlis against moments worked out by hand (exact rationals)."""
    from fractions import Fraction as F

    q1, q2, c = F(3, 2), F(5, 7), F(1, 3)
    assert R.isserlis_moment(1, 1, q1, q2, c) == c
    assert R.isserlis_moment(2, 2, q1, q2, c) == q1 * q2 + 2 * c**2
    assert R.isserlis_moment(3, 3, q1, q2, c) == 9 * q1 * q2 * c + 6 * c**3
    assert R.isserlis_moment(4, 0, q1, q2, c) == 3 * q1**2
    assert R.isserlis_moment(3, 1, q1, q2, c) == 3 * q1 * c
    assert R.isserlis_moment(6, 0, q1, q2, c) == 15 * q1**3
    assert R.isserlis_moment(2, 1, q1, q2, c) == 0


@pytest.mark.parametrize("k", range(7))
def test_hermite_unit_variance_is_rho_power(k):
    """Mehler: E[h_k(z1) h_k(z2)] = ρ^k for the normalised He_k (neural-tangents' Hermite)."""
    ref = REFERENCES["hermite"](k=k)
    for rho in (-(1 - 1e-6), -0.5, 0.0, 0.3, 1 - 1e-6, 1.0):
        assert_close_scaled(ref.K(1.0, 1.0, rho), rho**k, 1.0, float64_tolerance(k + 1), "k roundings in rho**k")
    assert ref.V(1.0) == 1.0


# ---------------------------------------------------------------------------------------------------
# The quadrature itself
# ---------------------------------------------------------------------------------------------------


def _scipy_nested(f, q1, q2, c):
    """E[f(u) f(v)] by nested scipy.integrate.quad over (z1, z2), breakpoints at the kink 0."""
    rho = c / math.sqrt(q1 * q2)
    s = math.sqrt((1 - rho) * (1 + rho))
    phi = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    errs = []

    def inner(z1):
        m = math.sqrt(q2) * rho * z1
        p = -m / (math.sqrt(q2) * s)
        pts = [p] if -12 < p < 12 else None
        res = integrate.quad(lambda z2: phi(z2) * f(m + math.sqrt(q2) * s * z2), -12, 12, points=pts,
                             epsabs=1e-14, epsrel=1e-13, limit=200, full_output=1)  # fmt: skip
        errs.append(res[1])
        return res[0]

    res = integrate.quad(lambda z1: phi(z1) * f(math.sqrt(q1) * z1) * inner(z1), -12, 12, points=[0.0],
                         epsabs=1e-14, epsrel=1e-13, limit=200, full_output=1)  # fmt: skip
    return res[0], res[1] + max(errs)


def test_quadrature_agrees_with_scipy_nested_quad():
    """Our batched adaptive Gauss–Legendre vs QUADPACK (nested scipy quad) on GELU at a generic point."""
    q1, q2, c = _cov(1.3, 0.6, 0.7)
    gelu = lambda x: x * 0.5 * math.erfc(-x / math.sqrt(2))  # noqa: E731
    value, err = _scipy_nested(gelu, q1, q2, c)
    ours = R.quad_K(gelu, q1, q2, c, return_error=True)
    scale = REFERENCES["gelu"].scale(q1, q2)
    assert_close_scaled(ours.value, value, scale, (ours.error + err) / scale + QUAD_SUMMATION, "both error estimates")


def test_quadrature_accepts_scalar_and_mpmath_callables():
    q1, q2, c = _cov(2.0, 0.5, -0.4)
    relu = REFERENCES["relu"]
    scalar_relu = lambda x: x if x > 0 else 0.0  # noqa: E731  (fails on arrays: wrapped by np.vectorize)
    quad = R.quad_K(scalar_relu, q1, q2, c, return_error=True)
    scale = relu.scale(q1, q2)
    assert_close_scaled(relu.K(q1, q2, c), quad.value, scale, quad.error / scale + QUAD_SUMMATION, "quad error estimate")
    quad_v = R.quad_V(mpmath.erf, 2.0, return_error=True)  # mpmath function: scalar only
    v = REFERENCES["erf"].V(2.0)
    assert_close_scaled(v, quad_v.value, v, quad_v.error / v + float64_tolerance(64), "quad_V error estimate")


@pytest.mark.parametrize(
    "name, q1, q2, rho",
    [("sin", 1e3, 1e3, 1 - 1e-6), ("cos", 1e-3, 1e3, 0.5), ("erf(x) + sin(x)", 1e3, 1e-3, -0.7)],
)
def test_full_2d_oscillatory(name, q1, q2, rho):
    """Oscillatory σ at q = 1e3 by the full 2-D quadrature (no closed-form inner expectation)."""
    ref = REFERENCES[name]
    q1, q2, c = _cov(q1, q2, rho)
    quad = ref.quad_K(q1, q2, c, return_error=True)
    scale = ref.scale(q1, q2)
    assert_close_scaled(ref.K(q1, q2, c), quad.value, scale, quad.error / scale + QUAD_SUMMATION, "quad error estimate")


def test_quadrature_refuses_what_it_cannot_certify():
    exp = REFERENCES["exp"]  # e^x at q = 1e3: its Gaussian mass sits at z ≈ 63, beyond any truncation
    with pytest.raises(R.QuadratureError):
        exp.quad_V(1e3)
    with pytest.raises(R.QuadratureError):
        exp.quad_K(1e3, 1.0, 0.0)
    assert exp.V(1e3) == np.inf  # the closed form says so too: e^{2000} overflows float64


def test_references_reject_invalid_covariances():
    relu = REFERENCES["relu"]
    for q1, q2, c in ((-1.0, 1.0, 0.0), (1.0, 0.0, 0.0), (1.0, 1.0, 1.01), (1.0, np.nan, 0.0)):
        with pytest.raises(ValueError):
            relu.K(q1, q2, c)
    # c² exceeding q1 q2 by rounding only is clipped to |ρ| = 1
    assert relu.K(3.0, 3.0, 3.0 * (1 + 1e-15)) == relu.V(3.0)


@given(helpers.covariances())
def test_random_covariances_closed_form_vs_quadrature(cov):
    q1, q2, c = cov
    for name in ("relu", "gelu", "erf", "x**2*Heaviside(x) - x"):
        ref = REFERENCES[name]
        quad = ref.quad_K(q1, q2, c, return_error=True)
        scale = ref.scale(q1, q2)
        assert_close_scaled(ref.K(q1, q2, c), quad.value, scale, quad.error / scale + QUAD_SUMMATION, "quad error estimate")


# ---------------------------------------------------------------------------------------------------
# The REFERENCES table and the expressions it hands to the engine tests
# ---------------------------------------------------------------------------------------------------


def test_references_table():
    assert set(REFERENCES) == set(R.CATALOG_NAMES) | set(R.EXTRA_NAMES)
    leaky = REFERENCES["leaky_relu"](alpha=0.1)
    assert dict(leaky.params) == {"alpha": 0.1} and leaky.name == "leaky_relu"
    assert leaky(alpha=0.2).K(1.0, 1.0, 0.0) == REFERENCES["abrelu"](a=0.2, b=1.0).K(1.0, 1.0, 0.0)
    with pytest.raises(TypeError):
        REFERENCES["leaky_relu"](beta=1.0)
    with pytest.raises(TypeError):
        REFERENCES["relu"](alpha=1.0)
    with pytest.raises(ValueError):
        REFERENCES["monomial"](k=7)
    for ref in REFERENCES.values():
        assert (ref.Kdot is None) == (ref.dsigma is None)
    out = REFERENCES["relu"].K(np.array([1.0, 2.0]), 1.0, np.array([[0.0], [0.5]]))
    assert out.shape == (2, 2) and out.dtype == np.float64
    assert isinstance(REFERENCES["relu"].K(1.0, 1.0, 0.5), np.float64)


@pytest.mark.parametrize("name, params", [pytest.param(n, p, id=_variant_id(n, p)) for n, p in VARIANTS])
def test_expr_is_sigma(name, params):
    """Reference.expr (what engine tests feed to ntksym) is the same function as Reference.sigma."""
    ref = _variant(name, params)
    expr = ref.sympy()
    (x,) = expr.free_symbols or {sp.Symbol("x", real=True)}
    for t in (-2.3, -0.4, 0.7, 1.9):  # away from 0, where Heaviside(0) conventions differ
        want = float(ref.sigma(t))
        got = float(expr.subs(x, sp.Rational(t)).evalf(30))
        assert_close_scaled(got, want, max(1.0, abs(want)), float64_tolerance(16), "float64 σ vs 30-digit SymPy")
    if ref.dsigma is not None:
        dexpr = sp.diff(expr, x)
        for t in (-2.3, -0.4, 0.7, 1.9):
            want = float(ref.dsigma(t))
            got = float(dexpr.subs(x, sp.Rational(t)).evalf(30))
            assert_close_scaled(got, want, max(1.0, abs(want)), float64_tolerance(16), "float64 σ' vs SymPy")


def test_gelu_and_erf_closed_forms_at_special_points():
    """Values worked out by hand: GELU at c = 0 factorises into (q/√(2π(1+q)))²; erf's V(∞) → 1."""
    g = REFERENCES["gelu"]
    q = 2.0
    assert_close_scaled(g.K(q, q, 0.0), q * q / (2 * math.pi * (1 + q)), g.V(q), 4 * EPS64, "a few roundings")
    e = REFERENCES["erf"]
    # V = (2/π) arcsin(2q/(1+2q)) = 1 − (2/π)√(1/q) + O(1/q) as q → ∞: at q = 1e12 within 1e-6 of 1
    assert_close_scaled(e.V(1e12), 1.0, 1.0, 1e-6, "the O(q^{-1/2}) gap to the sign kernel at q = 1e12")
    # erf(bx) with b → ∞ tends to sign(x): K_erf(1, 1, ρ) at b = 1e8 vs (2/π) arcsin ρ, gap O(1/b²)
    big_b = REFERENCES["erf"](b=1e8)
    assert_close_scaled(big_b.K(1.0, 1.0, 0.3), REFERENCES["sign"].K(1.0, 1.0, 0.3), 1.0, 1e-14, "O(1/b²) = 1e-16 gap")


# ---------------------------------------------------------------------------------------------------
# helpers.py
# ---------------------------------------------------------------------------------------------------


@given(helpers.covariances())
def test_covariance_strategy_is_valid(cov):
    q1, q2, c = cov
    assert helpers.MIN_VAR <= q1 <= helpers.MAX_VAR and helpers.MIN_VAR <= q2 <= helpers.MAX_VAR
    assert c * c <= q1 * q2 * (1 - helpers.RHO_MARGIN)


@given(helpers.correlations())
def test_correlation_strategy_is_valid(rho):
    assert abs(rho) <= 1 - helpers.RHO_MARGIN


def test_correlation_strategy_reaches_the_edges():
    seen = []

    @given(helpers.correlations())
    def collect(rho):
        seen.append(rho)

    from hypothesis import settings

    settings(max_examples=200, derandomize=True, database=None)(collect)()
    assert 0.0 in seen
    assert any(abs(r) == 1 - helpers.RHO_MARGIN for r in seen)
    assert any(0 < abs(r) < 1e-3 for r in seen)


def test_tolerance_helpers():
    assert float64_tolerance(4, 10.0) == 40 * EPS64
    assert helpers.dtype_tolerance(np.float32, 2) == 2 * helpers.EPS32
    assert abs(helpers.familywise_z(0.05, 1) - 1.959963984540054) < 1e-12
    assert helpers.familywise_z(0.01, 100) > helpers.familywise_z(0.01, 1)
    assert_close_scaled(1.0 + 1e-15, 1.0, 1.0, 1e-14, "test")
    with pytest.raises(AssertionError, match="because I say so"):
        assert_close_scaled([1.0, 2.0], [1.0, 2.1], 1.0, 1e-3, "because I say so")
    with pytest.raises(AssertionError):
        assert_close_scaled(np.nan, 1.0, 1.0, 1.0, "NaN never passes")
    with pytest.raises(ValueError):
        assert_close_scaled(1.0, 1.0, 1.0, 1e-3, "")
    assert helpers.scaled_error([1.0, 2.0], [1.0, 2.5], 2.0) == 0.25


def test_unit_covariances_strategy():
    @given(helpers.unit_covariances())
    def check(cov):
        q1, q2, rho = cov
        assert q1 == q2 == 1.0 and abs(rho) <= 1 - helpers.RHO_MARGIN

    check()

