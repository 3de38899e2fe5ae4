"""Tests of the bivariate normal CDF Φ₂(h, k; ρ): ntksym._bvn (NumPy) and ntksym.lower.bvn (JAX).

Every value is compared with an independent method, ntksym.special.bvn_mpmath (adaptive mpmath quadrature
at 30 digits), and every derivative with central finite differences of it.
The grid holds the edges that break naive formulas: ρ = ±1 and ±(1 − 1e-12), Genz's switch |ρ| = 0.925,
h, k = ±inf and ±40.

Cost: bvn_mpmath as committed in 3574e4f took 40–70 ms a point here (2 shared cores), the whole 3825-point
grid 3.5 min; its working-tree revision (θ form first) 29 s. So the whole grid is marked slow
(``pytest -m slow tests/test_bvn.py``) and the default run compares a stride-19 sample of it that still
holds every value of each axis (202 points). The checks that need no reference (finite values and
gradients, symmetries) always run on the whole grid.

A limitation of the reference in 3574e4f, not of the code under test: for tiny negative ρ it split its
integral at k/ρ, astronomically far out, and its quadrature failed (error 3e-7 at ρ = −1e-41, 4e-13 at
ρ = −1e-20, exact at ρ = −1e-10); the working-tree revision no longer does. Until that lands, hypothesis
draws keep |ρ| ≥ 1e-9 or ρ = 0, the finite differences in ρ avoid ρ = 0, and tiny |ρ| is checked against
the expansion Φ(h)Φ(k) + ρφ(h)φ(k) instead.
"""

from __future__ import annotations

import functools as ft
import itertools
import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

import helpers
from ntksym._bvn import bvn_cdf_numpy
from ntksym.lower.bvn import bvn_cdf, norm_cdf, norm_pdf
from ntksym.special import bvn_mpmath

INF = math.inf
LIMITS = (-40.0, -10.0, -5.0, -2.0, -1.0, -0.3, 0.0, 0.3, 1.0, 2.0, 5.0, 10.0, 40.0, INF, -INF)
RHOS = (-1.0, -(1 - 1e-12), -0.99, -0.925, -0.9, -0.75, -0.5, -0.3, 0.0)
RHOS += (0.3, 0.5, 0.75, 0.9, 0.925, 0.99, 1 - 1e-12, 1.0)

# The accuracy asked of both implementations in float64 (measured: 2.2e-16, module docstrings). Φ₂ ∈ [0, 1]
# is assembled from O(1) terms (Φ(h)Φ(k), a quadrature sum of ≤ 40 terms, Genz's fix-ups), each rounded
# to eps64, so 1e-14 ≈ 45·eps64 allows for that many roundings; truncation of the rules is < 3e-16.
ABS_TOL64 = 1e-14
ABS_TOL64_REASON = "≈45 roundings of O(1) terms (eps64 each) in a sum that lies in [0, 1]; rule truncation < 3e-16"


GRID_STRIDE = 19  # a prime: the sample meets every h, every k and every ρ (202 points)


@ft.cache
def _grid():
    """The full (h, k, ρ) grid as three float64 arrays (3825 points)."""
    return tuple(np.array(col, dtype=np.float64) for col in zip(*itertools.product(LIMITS, LIMITS, RHOS)))


@ft.cache
def _reference(h, k, r):
    # bvn_mpmath orders (h, k) itself, so the swapped point is the same evaluation: cache it once
    h, k = min(h, k), max(h, k)
    with mpmath.workdps(30):
        return float(bvn_mpmath(h, k, r))


def _grid_with_reference(stride):
    h, k, r = (v[::stride] for v in _grid())
    return h, k, r, np.array([_reference(*p) for p in zip(h.tolist(), k.tolist(), r.tolist())])


_jit_bvn = jax.jit(bvn_cdf)
_jit_grads = jax.jit(jax.grad(lambda h, k, r: jnp.sum(bvn_cdf(h, k, r)), argnums=(0, 1, 2)))
_jit_hessian = jax.jit(jax.vmap(jax.hessian(bvn_cdf, argnums=(0, 1, 2))))


def _jax64(h, k, r):
    with jax.enable_x64(True):
        return np.asarray(_jit_bvn(*(jnp.asarray(v, jnp.float64) for v in (h, k, r))))


# --------------------------------------------------------------------------------------------------
# Strategies: h, k on [−40, 40] with ties h = ±k; ρ on [−1, 1] weighted towards the edges
# --------------------------------------------------------------------------------------------------


def _limits(width: int = 64):
    return st.floats(-40.0, 40.0, width=width)


def _rhos(width: int = 64):
    sign = st.sampled_from([-1.0, 1.0])
    near_one = st.tuples(sign, st.floats(1.0, 12.0)).map(lambda t: t[0] * (1.0 - 10.0 ** -t[1]))
    edges = st.sampled_from([-1.0, 1.0, -0.925, 0.925, 0.0, -(1 - 1e-12), 1 - 1e-12])
    # |ρ| ≥ 1e-9 or 0: the reference's quadrature fails for tiny negative ρ (module docstring)
    uniform = st.floats(-1.0, 1.0, width=width).map(lambda x: x if abs(x) >= 1e-9 else 0.0)
    if width == 32:
        return st.one_of(edges, near_one, uniform).map(lambda x: float(np.float32(x)))
    return st.one_of(edges, near_one, uniform)


@st.composite
def _arguments(draw, width: int = 64):
    h = draw(_limits(width))
    k = draw(st.one_of(_limits(width), st.just(h), st.just(-h)))
    return h, k, draw(_rhos(width))


# --------------------------------------------------------------------------------------------------
# (a) float64 accuracy against mpmath
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stride", [pytest.param(GRID_STRIDE, id="sample"), pytest.param(1, id="full", marks=pytest.mark.slow)]
)
def test_float64_matches_mpmath_on_grid(stride):
    h, k, r, reference = _grid_with_reference(stride)
    helpers.assert_close_scaled(bvn_cdf_numpy(h, k, r), reference, 1.0, ABS_TOL64, ABS_TOL64_REASON)
    helpers.assert_close_scaled(_jax64(h, k, r), reference, 1.0, ABS_TOL64, ABS_TOL64_REASON)


def test_tiny_correlation_matches_expansion():
    # Φ₂ = Φ(h)Φ(k) + ρφ(h)φ(k) + O(ρ²): the remainder is below ρ²·max|∂²Φ₂/∂ρ²| ≤ ρ² ≤ 1e-20 here
    h, k = np.meshgrid(np.array([-5.0, -1.0, 0.0, 0.3, 2.0]), np.array([-2.0, 0.0, 1.0, 40.0]))
    phi = lambda z: np.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    for r in (-1e-10, -1e-20, -1e-41, 1e-41, 1e-12):
        expected = ndtr(h) * ndtr(k) + r * phi(h) * phi(k)
        for f in (bvn_cdf_numpy, _jax64):
            helpers.assert_close_scaled(f(h, k, r), expected, 1.0, ABS_TOL64, ABS_TOL64_REASON)


@settings(max_examples=40)
@given(_arguments())
def test_float64_matches_mpmath_random(args):
    h, k, r = args
    reference = _reference(h, k, r)
    helpers.assert_close_scaled(bvn_cdf_numpy(h, k, r), reference, 1.0, ABS_TOL64, ABS_TOL64_REASON)
    helpers.assert_close_scaled(_jax64(h, k, r), reference, 1.0, ABS_TOL64, ABS_TOL64_REASON)


@settings(max_examples=40)
@given(_arguments(width=32))
def test_float32_matches_mpmath_random(args):
    # the reference is taken at the float32 arguments themselves, so input rounding does not enter
    h, k, r = args
    value = np.asarray(_jit_bvn(*(jnp.asarray(v, jnp.float32) for v in args)))
    assert value.dtype == np.float32
    helpers.assert_close_scaled(
        value,
        _reference(h, k, r),
        1.0,
        helpers.dtype_tolerance(np.float32, 8),
        "8 roundings of O(1) terms at eps32 (the float32 rules truncate below 3e-9; measured worst 1.1e-7)",
    )


# --------------------------------------------------------------------------------------------------
# (b) finite values and gradients everywhere on the grid, both precisions
# --------------------------------------------------------------------------------------------------


def test_values_and_gradients_finite_on_grid(float_dtype):
    h, k, r = _grid()
    args = [jnp.asarray(v, float_dtype) for v in (h, k, r)]
    value = _jit_bvn(*args)
    assert value.dtype == float_dtype
    value = np.asarray(value)
    assert np.all(np.isfinite(value)) and np.all((value >= 0) & (value <= 1))
    for name, grad in zip("hkr", _jit_grads(*args)):
        grad = np.asarray(grad)
        assert grad.dtype == float_dtype
        assert np.all(np.isfinite(grad)), f"non-finite ∂Φ₂/∂{name} at {np.asarray(h)[~np.isfinite(grad)][:5]}"
        if name in "hk":  # ∂Φ₂/∂h = φ(h)·Φ(·) ∈ [0, φ(0)]
            assert np.all((grad >= 0) & (grad <= 1 / math.sqrt(2 * math.pi) * (1 + 1e-6)))


def test_numpy_values_finite_on_grid():
    h, k, r = _grid()
    value = bvn_cdf_numpy(h, k, r)
    assert value.shape == h.shape and np.all(np.isfinite(value)) and np.all((value >= 0) & (value <= 1))


# --------------------------------------------------------------------------------------------------
# (c) the closed-form jvp against central finite differences of the mpmath reference
# --------------------------------------------------------------------------------------------------

# interior points; ρ = 0 is left out because the difference in ρ would step to ρ = −1e-12 (module docstring)
_INTERIOR = list(itertools.product((-2.0, 1.7), (-1.1, 0.3), (-0.99, -0.6, 0.1, 0.99)))

# The central difference at 30 digits with step 1e-12: rounding of the reference (30 digits) gives ≤ 1e-18
# absolute, truncation step²/6·|third derivative| ≤ 6e-19 relative on these points (with step 1e-10 at 40
# digits it was 5.7e-15 relative at ρ = 0.99, measured against step 1e-20 at 60 digits). 1e-17 bounds its
# absolute error; the partials that are smaller (the density at ρ = 0.99 is e^{−133} at h = −2, k = 0.3)
# are thereby only checked to be that small.
FD_STEP, FD_DPS, FD_ABS_ERROR = 1e-12, 30, 1e-17


def _central_difference(h, k, r, index):
    with mpmath.workdps(FD_DPS):
        args = [mpmath.mpf(h), mpmath.mpf(k), mpmath.mpf(r)]
        up, down = list(args), list(args)
        up[index] += FD_STEP
        down[index] -= FD_STEP
        return float((bvn_mpmath(*up) - bvn_mpmath(*down)) / (2 * mpmath.mpf(FD_STEP)))


def test_jvp_partials_match_finite_differences():
    h, k, r = (np.array(col) for col in zip(*_INTERIOR))
    with jax.enable_x64(True):
        grads = [np.asarray(g) for g in _jit_grads(*(jnp.asarray(v) for v in (h, k, r)))]
    # the exponents of the partials' exp(): h²/2 + z²/2 for φ(h)·Φ(z), and q/2 for the density
    s = np.sqrt((1 - r) * (1 + r))
    q = (h * h - 2 * r * h * k + k * k) / (s * s)
    conditions = (1 + h * h / 2 + ((k - r * h) / s) ** 2 / 2, 1 + k * k / 2 + ((h - r * k) / s) ** 2 / 2, 1 + q / 2)
    rtol = helpers.float64_tolerance(16)
    for index, (grad, condition) in enumerate(zip(grads, conditions)):
        fd = np.array([_central_difference(*p, index) for p in _INTERIOR])
        helpers.assert_close_scaled(
            grad,
            fd,
            np.abs(fd) * condition + FD_ABS_ERROR / rtol,  # relative error × condition, and the FD's own error
            rtol,
            "16 roundings (ndtr, exp, the quotients) amplified by the magnitude of exp's argument; "
            "the finite difference is exact to 1e-17 absolute (30 digits, step 1e-12)",
        )


def test_partials_take_their_limits_at_unit_correlation_and_infinity():
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cases = {
        # (h, k, ρ): (∂/∂h, ∂/∂k, ∂/∂ρ)
        (0.3, 0.5, 1.0): (phi(0.3), 0.0, 0.0),  # ρ = 1: φ(h)·[h < k]
        (0.3, 0.3, 1.0): (phi(0.3) / 2, phi(0.3) / 2, 0.0),  # tie: ½, and 0 for the Dirac delta in ρ
        (0.3, -0.2, -1.0): (phi(0.3), phi(0.2), 0.0),  # ρ = −1: φ(h)·[h > −k]
        (0.3, -0.3, -1.0): (phi(0.3) / 2, phi(0.3) / 2, 0.0),
        (0.3, -0.5, -1.0): (0.0, 0.0, 0.0),
        (INF, 0.4, 0.5): (0.0, phi(0.4), 0.0),  # Φ₂(∞, k) = Φ(k)
        (-INF, 0.4, 0.5): (0.0, 0.0, 0.0),
        (0.4, INF, 1.0): (phi(0.4), 0.0, 0.0),
        (0.4, -INF, -1.0): (0.0, 0.0, 0.0),
        (INF, -INF, -1.0): (0.0, 0.0, 0.0),
        (0.2, 0.1, -1.5): (phi(0.2), phi(0.1), 0.0),  # ρ clipped to −1, constant beyond
    }
    h, k, r = (np.array(col) for col in zip(*cases))
    expected = np.array(list(cases.values()))
    with jax.enable_x64(True):
        grads = np.stack([np.asarray(g) for g in _jit_grads(*(jnp.asarray(v) for v in (h, k, r)))], axis=1)
    helpers.assert_close_scaled(grads, expected, 1.0, helpers.float64_tolerance(4), "φ and a step, a few roundings")


def test_second_derivatives_finite_at_edges(float_dtype):
    points = [(0.3, 0.3, 1.0), (0.3, -0.3, -1.0), (INF, 0.4, 0.5), (0.4, -INF, 0.9), (0.1, 0.2, 1 - 1e-6), (0, 0, 0)]
    h, k, r = (jnp.asarray(col, float_dtype) for col in zip(*points))
    hessian = _jit_hessian(h, k, r)
    assert all(np.all(np.isfinite(np.asarray(entry))) for row in hessian for entry in row)


# --------------------------------------------------------------------------------------------------
# (d) symmetries: Φ₂(h, k; ρ) = Φ₂(k, h; ρ) and Φ₂(h, k; ρ) + Φ₂(h, −k; −ρ) = Φ(h)
# --------------------------------------------------------------------------------------------------

# each Φ₂ is within ABS_TOL64 of the truth (the tests above), so an identity of two of them holds to twice that
SYMMETRY_TOL = 2 * ABS_TOL64 + helpers.EPS64
SYMMETRY_REASON = "two Φ₂ values, each within 1e-14 of the truth (accuracy tests), plus one rounding of Φ(h)"


@pytest.mark.parametrize("implementation", ["numpy", "jax"])
def test_symmetries_on_grid(implementation):
    h, k, r = _grid()
    f = bvn_cdf_numpy if implementation == "numpy" else _jax64
    value = f(h, k, r)
    helpers.assert_close_scaled(f(k, h, r), value, 1.0, SYMMETRY_TOL, SYMMETRY_REASON)
    helpers.assert_close_scaled(value + f(h, -k, -r), ndtr(h), 1.0, SYMMETRY_TOL, SYMMETRY_REASON)


@settings(max_examples=50)
@given(_arguments())
def test_symmetries_random(args):
    h, k, r = args
    for f in (bvn_cdf_numpy, _jax64):
        helpers.assert_close_scaled(f(k, h, r), f(h, k, r), 1.0, SYMMETRY_TOL, SYMMETRY_REASON)
        helpers.assert_close_scaled(f(h, k, r) + f(h, -k, -r), ndtr(h), 1.0, SYMMETRY_TOL, SYMMETRY_REASON)


# --------------------------------------------------------------------------------------------------
# edges of the interface: NaN, clipping, huge finite limits, broadcasting, dtypes, the univariate helpers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", ["numpy", "jax"])
def test_nan_in_nan_out_and_edges(implementation):
    f = bvn_cdf_numpy if implementation == "numpy" else _jax64
    nan = math.nan
    assert np.all(np.isnan(f([nan, 0.0, 0.0], [0.0, nan, 0.0], [0.5, 0.5, nan])))
    # ρ beyond ±1 is clipped; huge finite limits act as infinite ones
    assert f(0.2, 0.1, 1.5) == f(0.2, 0.1, 1.0) == pytest.approx(ndtr(0.1), abs=helpers.EPS64)
    assert f(0.2, 0.1, -1.5) == f(0.2, 0.1, -1.0)
    assert f(1e300, 0.5, 0.99) == f(INF, 0.5, 0.99) == pytest.approx(ndtr(0.5), abs=2 * helpers.EPS64)
    assert f(-1e300, 0.5, 0.3) == 0.0
    assert f(0.3, -0.3, -1.0) == 0.0 and f(-0.3, -0.3, -(1 - 1e-12)) >= 0.0


def test_broadcasting_and_dtypes(float_dtype):
    h = jnp.asarray([0.1, 0.2], float_dtype)
    r = jnp.asarray([[0.1], [0.95], [1.0]], float_dtype)
    value = _jit_bvn(h, 0.3, r)
    assert value.shape == (3, 2) and value.dtype == float_dtype
    np.testing.assert_allclose(
        np.asarray(value, np.float64),
        bvn_cdf_numpy(np.asarray(h, np.float64), np.float64(float_dtype(0.3)), np.asarray(r, np.float64)),
        rtol=0,
        atol=helpers.dtype_tolerance(float_dtype, 8),  # the two agree to the working precision's rounding
    )
    assert bvn_cdf(1, 2, 0).dtype == jnp.result_type(float)  # integers: the default float
    assert bvn_cdf_numpy(np.float32(0.1), 0.2, 0.3).dtype == np.float64


def test_norm_pdf_and_cdf_at_infinity(float_dtype):
    z = jnp.asarray([-INF, -40.0, 0.0, 1.0, 40.0, INF], float_dtype)
    for f in (norm_pdf, norm_cdf):
        assert f(z).dtype == float_dtype
        assert np.all(np.isfinite(np.asarray(f(z))))
        assert np.all(np.isfinite(np.asarray(jax.vmap(jax.grad(f))(z))))
    np.testing.assert_array_equal(np.asarray(norm_pdf(z))[[0, -1]], 0)
    np.testing.assert_array_equal(np.asarray(norm_cdf(z))[[0, -1]], [0, 1])
    assert np.isnan(np.asarray(norm_pdf(jnp.asarray(math.nan, float_dtype))))
    helpers.assert_close_scaled(
        np.asarray(jax.vmap(jax.grad(norm_pdf))(z)), [0, 0, 0, -math.exp(-0.5) / math.sqrt(2 * math.pi), 0, 0],
        1.0, helpers.dtype_tolerance(float_dtype, 4), "−z·φ(z): an exp and two products",
    )
