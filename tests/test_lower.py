"""Lowered duals: SymPy → JAX, finite at the edges in float32 and float64, equal to the exact dual."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import ntksym as nk
from ntksym.catalog import catalog_activations
from ntksym.lower import lower, lower_elementwise, lower_expression
from ntksym.symbols import q1, q2, c, x

from helpers import covariances

ACTIVATIONS = ["relu", "leaky_relu(x, 0.1)", "abs", "step", "sign", "erf", "gelu", "sin", "cos", "exp",
               "gaussian", "monomial(x, 3)", "rectified_monomial(x, 2)", "hermite(x, 4)", "x*erf(x)",
               "x*exp(-x**2/2)", "cos(x)*exp(-x**2/4)", "0.5*x + relu(x)", "erf(x) + sin(x)",
               "x**2*Heaviside(x) - x", "tanh", "softplus", "elu"]

# the edges of DESIGN.md §4: ρ = ±1 exactly, q → 0, q large
EDGE_Q = [1e-12, 1e-3, 1.0, 1e3, 1e6]


def _edge_points(dtype):
    rows = []
    for a in EDGE_Q:
        for b in EDGE_Q:
            s = np.sqrt(a * b)
            rows += [(a, b, s), (a, b, -s), (a, b, 0.0), (a, b, 0.5 * s)]
    rows += [(0.0, 1.0, 0.0), (0.0, 0.0, 0.0)]
    return tuple(jnp.asarray(np.array(col), dtype) for col in zip(*rows))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_values_and_gradients_are_finite_at_the_edges(name, float_dtype):
    f = lower(nk.derive(name))
    a, b, cc = _edge_points(float_dtype)
    if name == "exp":  # E[e^u e^v] = e^{(q1+q2)/2+c} itself overflows for q ≥ 1e3: keep q ≤ 1
        keep = (a <= 1) & (b <= 1)
        a, b, cc = a[keep], b[keep], cc[keep]
    k, kdot = f(a, b, cc)
    assert k.dtype == float_dtype
    assert bool(jnp.all(jnp.isfinite(k)))
    if kdot is not None:
        assert bool(jnp.all(jnp.isfinite(kdot)))
    grads = jax.grad(lambda *args: jnp.sum(f(*args)[0]), argnums=(0, 1, 2))(a, b, cc)
    for g in grads:
        assert bool(jnp.all(jnp.isfinite(g)))


EXACT = [name for name in ACTIVATIONS if name not in ("tanh", "softplus")]


@pytest.mark.parametrize("name", EXACT)
@given(cov=covariances(min_var=1e-2, max_var=1e2))
@settings(max_examples=5)
def test_lowered_equals_the_dual_in_float64(name, cov):
    dual = nk.derive(name)
    with jax.enable_x64(True):
        k, kdot = lower(dual)(*(jnp.float64(v) for v in cov))
    ref, ref_dot = dual.evaluate(*cov)
    scale = np.sqrt(dual.variance(cov[0]) * dual.variance(cov[1]))
    # the float64 formula loses digits where it cancels (√(q1q2 − c²) near |ρ| = 1: relative 1e-16/(1 − ρ²)
    # in the radicand, i.e. ~1e-10 at 1 − ρ = 1e-6, times √(1−ρ²)); 1e-9 of the scale covers it
    assert abs(float(k) - ref) <= 1e-9 * scale
    if dual.Kdot is not None:
        dscale = abs(ref_dot) + 1e-300 + np.sqrt(abs(ref_dot) * scale)
        assert abs(float(kdot) - ref_dot) <= 1e-8 * max(dscale, 1.0)


# elu and selu are exact since the truncated-Gaussian rule; a kinked σ without a closed form takes their place
KINKED = "Piecewise((x, x > 0), (tanh(x), True))"
NUMERIC = ["tanh", "sigmoid", "softplus", "silu", KINKED, "mish"]
_NUMERIC_Q = [1e-4, 1e-2, 1.0, 1e2, 1e4]
_NUMERIC_RHO = [-1.0, -0.7, 0.0, 0.5, 0.95, 1 - 1e-6, 1.0]


def _numeric_grid():
    cells = [(a, b, r) for a in _NUMERIC_Q for b in (a, 1.0) for r in _NUMERIC_RHO]
    q1v, q2v, rho = (np.array(col) for col in zip(*cells))
    return q1v, q2v, rho * np.sqrt(q1v * q2v)


@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_duals_lower_to_the_panelled_rule(name):
    """The lowered numeric dual is Dual.evaluate's panelled rule in JAX — same panels, same nodes — at variances
    1e-4…1e4 and ρ = ±1. Tolerance: the two sum the same ≤ 25,600 products in different orders, so they differ
    by at most N·eps·Σ|terms| ≤ 25,600·eps·√(V1V2) ≈ 6e-12 of the Cauchy–Schwarz scale (measured ~1e-15).
    The Gauss–Hermite rule this replaces was 4.5e-2 (K) and 100 % (K̇, relative) off at q = 1e4."""
    dual = nk.derive(name)
    q1v, q2v, cv = _numeric_grid()
    with jax.enable_x64(True):
        f = lower(dual)
        k, kdot = (np.asarray(a) for a in f(q1v, q2v, cv))
        v = np.asarray(f.V(q1v))
    ref_k, ref_kdot = dual.evaluate(q1v, q2v, cv)
    ref_v1, ref_v2 = dual.variance(q1v), dual.variance(q2v)
    tol = 25_600 * np.finfo(np.float64).eps
    assert np.all(np.abs(k - ref_k) <= tol * np.sqrt(ref_v1 * ref_v2))
    d1, d2 = dual.evaluate(q1v, q1v, q1v)[1], dual.evaluate(q2v, q2v, q2v)[1]  # K̇'s scale: √(K̇(q1,q1,q1)K̇(q2,q2,q2))
    assert np.all(np.abs(kdot - ref_kdot) <= tol * np.sqrt(d1 * d2))
    assert np.all(np.abs(v - ref_v1) <= tol * ref_v1)


def test_lowered_tanh_at_large_variance_matches_adaptive_quadrature():
    """An independent check where Gauss–Hermite failed: tanh at q = 100 (σ(√q·z) nearly a step), against the
    tests' adaptive QUADPACK reference (its own tolerance ~1e-12). Tolerance 1e-9 of the scale: the panelled
    rule's measured accuracy is ≤ 2e-9 over q ∈ [1e-3, 1e3] (tests/test_gaussian_numeric.py)."""
    from references import quad_K, quad_Kdot

    dual = nk.derive("tanh")
    with jax.enable_x64(True):
        f = lower(dual)
        for rho in (0.0, 0.5, 0.99):
            cv = rho * 100.0
            k, kdot = (float(a) for a in f(100.0, 100.0, cv))
            ref_k = float(quad_K(np.tanh, 100.0, 100.0, cv))
            ref_kdot = float(quad_Kdot(lambda t: 1 / np.cosh(t) ** 2, 100.0, 100.0, cv))
            scale_k, scale_kdot = float(dual.variance(100.0)), float(dual.evaluate(100.0, 100.0, 100.0)[1])
            assert abs(k - ref_k) <= 1e-9 * scale_k
            assert abs(kdot - ref_kdot) <= 1e-9 * scale_kdot
        gh_k, gh_kdot = (float(a) for a in lower(dual, rule="gauss_hermite")(100.0, 100.0, 50.0))
    # the old rule, still available for speed, is far off here: the test would catch a silent fallback to it
    assert abs(gh_kdot - float(quad_Kdot(lambda t: 1 / np.cosh(t) ** 2, 100.0, 100.0, 50.0))) > 1e-3 * scale_kdot


@pytest.mark.parametrize("name", ["tanh", KINKED, "softplus"])
def test_lowered_numeric_float32(name):
    """float32 (the kernels' default): within 208 ulps of the scale — the outer sum is sequential over ≤ 200
    nodes (error ≤ 200·eps·Σ|terms|), the inner sums are trees (≤ 8 levels), and Σ|w·f(u)·f(v)| ≤ √(V1V2) by
    Cauchy–Schwarz; |ρ| ≤ 0.5 keeps the rounding of c itself (|∂K/∂ρ|·eps) below 2 ulps of the scale."""
    dual = nk.derive(name)
    q1v, q2v, rho = (np.array(col) for col in zip(*[(a, b, r) for a in (1e-3, 1.0, 1e2) for b in (1e-3, 1.0, 1e2)
                                                      for r in (-0.5, 0.0, 0.5)]))
    cv = rho * np.sqrt(q1v * q2v)
    k, _ = lower(dual)(*(jnp.asarray(a, jnp.float32) for a in (q1v, q2v, cv)))
    q1f, q2f, cf = (np.asarray(jnp.asarray(a, jnp.float32), np.float64) for a in (q1v, q2v, cv))  # the inputs it saw
    ref = dual.evaluate(q1f, q2f, cf)[0]
    scale = np.sqrt(dual.variance(q1f) * dual.variance(q2f))
    assert np.all(np.abs(np.asarray(k, np.float64) - ref) <= 208 * np.finfo(np.float32).eps * scale)


def test_lower_rejects_unknown_rule():
    with pytest.raises(ValueError, match="rule must be one of"):
        lower(nk.derive("tanh"), rule="simpson")


def test_variance_map(float_dtype):
    dual = nk.derive("gelu")
    v = lower(dual).V(jnp.asarray([0.0, 1e-3, 1.0, 1e3], float_dtype))
    ref = dual.variance(np.array([0.0, 1e-3, 1.0, 1e3]))
    # V(1e-3) ≈ 2.5e-4 is a sum of O(0.2) terms: cancellation costs a factor ~1e3 of the dtype's eps
    eps = np.finfo(float_dtype).eps
    np.testing.assert_allclose(np.asarray(v, np.float64), ref, rtol=2e3 * eps)


def test_unknown_function_names_it_and_suggests_extra_functions():
    class Wobble(sp.Function):
        pass

    with pytest.raises(nk.LoweringError, match=r"Wobble.*extra_functions"):
        lower_expression(Wobble(q1) + c, (q1, q2, c))
    fn = lower_expression(Wobble(q1) + c, (q1, q2, c), extra_functions={Wobble: jnp.sin})
    assert float(fn(1.0, 1.0, 0.5)) == pytest.approx(np.sin(1.0) + 0.5)


def test_lower_rejects_non_duals():
    with pytest.raises(nk.LoweringError, match="Dual"):
        lower("relu")


@given(xs=st.lists(st.floats(-50, 50), min_size=1, max_size=20))
@settings(max_examples=20)
def test_elementwise_matches_sympy(xs):
    expr = sp.Piecewise((x, x > 0), (sp.exp(x) - 1, True)) + sp.Heaviside(x) * sp.erf(x) - sp.Abs(x) / 3
    fn = lower_elementwise(expr)
    with jax.enable_x64(True):
        got = np.asarray(fn(jnp.asarray(xs, jnp.float64)))
    # reference at 400 digits (e^x − 1 at |x| ≥ 1e-308 keeps 80 of them): SymPy's own float(expr.subs(x, v))
    # was 2e-14 off at x = −2^-9, where the lowered expm1 is right
    reference = sp.lambdify(x, expr, "mpmath")
    with mpmath.workdps(400):
        want = [float(reference(mpmath.mpf(v))) for v in xs]
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("name", ["relu", "gelu", "erf", "x*erf(x)", "abs"])
@given(
    q1v=st.floats(1e-12, 1e6),
    q2v=st.floats(1e-12, 1e6),
    rho=st.one_of(st.sampled_from([-1.0, 1.0, 0.0]), st.floats(-1.0, 1.0)),
    x64=st.booleans(),
)
@settings(max_examples=6)
def test_finite_everywhere_hypothesis(name, q1v, q2v, rho, x64):
    """DESIGN.md §4: finite values and gradients for every valid input, float32 and float64."""
    f = lower(nk.derive(name))
    dtype = np.float64 if x64 else np.float32
    with jax.enable_x64(x64):
        args = tuple(jnp.asarray(v, dtype) for v in (q1v, q2v, rho * np.sqrt(q1v * q2v)))
        k, kdot = f(*args)
        grads = jax.grad(lambda *a: f(*a)[0] + f(*a)[1], argnums=(0, 1, 2))(*args)
    assert np.isfinite(float(k)) and np.isfinite(float(kdot))
    assert all(np.isfinite(float(g)) for g in grads)


def test_dual_lower_method_is_lower(float_dtype):
    """DESIGN.md §2 spells it dual.lower(): the same function as ntksym.lower.lower(dual), bit for bit."""
    import numpy as np

    dual = nk.derive("erf")
    args = (np.asarray(1.0, float_dtype), np.asarray(2.0, float_dtype), np.asarray(0.7, float_dtype))
    a, b = dual.lower()(*args), lower(dual)(*args)
    assert np.asarray(a[0]) == np.asarray(b[0]) and np.asarray(a[1]) == np.asarray(b[1])


GRADIENT_GRID = [-1e4, -100.0, -30.0, -1.0, -1e-3, 1e-3, 1.0, 30.0, 100.0, 1e4]  # no kinks: x = 0 is left out


@pytest.mark.parametrize("activation", catalog_activations(), ids=lambda a: a.name)
@pytest.mark.parametrize("x64", [False, True])
def test_elementwise_gradient_finite_and_exact(activation, x64):
    """σ' of the lowered σ (what empirical NTKs differentiate) is finite wherever the true σ' is, and equal
    to SymPy's σ' evaluated by mpmath at 40 digits. Before the double where, elu and selu gave NaN at x ≥ 89 in
    float32: the unselected branch's e^x overflowed and its zero cotangent met e^x = ∞ (0·∞).
    Tolerance: 8 ulps of max(|σ'|, 1 + |x|) — σ' is a sum of terms x^k·g(x) with g of order one rounded to
    an ulp, and in the tails (1 − sigmoid(30), Φ(−30) + (−30)·φ(−30)) only that absolute accuracy survives.
    Points where σ' itself overflows the dtype (e^x at x = 100 in float32) are left out."""
    expr = activation.expr
    derivative = sp.diff(expr, x).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
    dtype = np.float64 if x64 else np.float32
    finfo = np.finfo(dtype)
    with jax.enable_x64(x64):
        fn = lower_elementwise(expr)
        xs = jnp.asarray(GRADIENT_GRID, dtype)
        got = np.asarray(jax.vmap(jax.grad(lambda v: fn(v)))(xs), np.float64)
    reference = sp.lambdify(x, derivative, "mpmath")  # an independent evaluation, at 40 digits
    with mpmath.workdps(40):
        want = np.array([float(reference(mpmath.mpf(v))) for v in GRADIENT_GRID])
    representable = np.abs(want) < finfo.max / 2
    assert np.all(np.isfinite(got[representable])), f"{activation.name}: σ' = {got} at {GRADIENT_GRID}"
    error = np.abs(got[representable] - want[representable])
    scale = np.maximum(np.abs(want), 1.0 + np.abs(np.asarray(GRADIENT_GRID)))[representable]
    allowed = 8 * finfo.eps * scale
    assert np.all(error <= allowed), f"{activation.name}: |error| {error} > {allowed} at {GRADIENT_GRID}"


@pytest.mark.parametrize("x64", [False, True])
def test_heaviside_products_stay_finite(x64):
    """e^x·H(−x) was ∞·0 = NaN at x = 100 in float32, in the value and the gradient; H(x, 0) and
    H(x, 1) keep their value at zero (the Heaviside's second argument), H(x) its ½."""
    dtype = np.float64 if x64 else np.float32
    big = 1000.0 if x64 else 100.0  # e^big overflows the dtype
    with jax.enable_x64(x64):
        f = lower_elementwise(sp.exp(x) * sp.Heaviside(-x))
        xs = jnp.asarray([-1.0, 0.0, big], dtype)
        assert np.asarray(f(xs)).tolist() == pytest.approx([np.exp(-1.0), 0.5, 0.0], rel=4 * float(np.finfo(dtype).eps))
        grads = np.asarray(jax.vmap(jax.grad(f))(xs))
        assert grads.tolist() == pytest.approx([np.exp(-1.0), 0.5, 0.0], rel=4 * float(np.finfo(dtype).eps))
        at_zero = [float(lower_elementwise(sp.Heaviside(x, h))(jnp.asarray(0.0, dtype))) for h in (0, 1)]
    assert at_zero == [0.0, 1.0]


@given(data=st.data(), sizes=st.lists(st.integers(1, 9), min_size=2, max_size=4))
@settings(max_examples=30, deadline=None)
def test_panel_merge_is_a_sort(data, sizes):
    """The lowered rule merges its sorted ladders by ranks (min/max only) instead of sorting: the merge of sorted
    rows, ties and ±inf included, is exactly np.sort of their concatenation (XLA flushes subnormals: none drawn)."""
    from ntksym.lower.panelled import _merge

    values = st.sampled_from([-np.inf, -2.0, -1.0, 0.0, 0.5, 1.0, np.inf]) | st.floats(-10, 10, allow_subnormal=False)
    lists = [np.sort(np.array(data.draw(st.lists(values, min_size=3 * n, max_size=3 * n))).reshape(3, n), axis=-1)
             for n in sizes]
    with jax.enable_x64(True):
        merged = np.asarray(_merge([jnp.asarray(a, jnp.float64) for a in lists]))
    np.testing.assert_array_equal(merged, np.sort(np.concatenate(lists, axis=-1), axis=-1))
