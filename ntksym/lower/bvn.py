"""The bivariate normal CDF Φ₂(h, k; ρ) in JAX: Genz's BVND written branch-free, with closed-form derivatives.

`bvn_cdf(h, k, r)` is the algorithm of ntksym._bvn.bvn_cdf_numpy (Genz 2004, "Numerical computation of
rectangular bivariate and trivariate normal and t probabilities": Gauss–Legendre in θ on [0, asin ρ]
for |ρ| < 0.925, Genz's asymptotic expansion plus a Gauss–Legendre remainder for |ρ| ≥ 0.925. Under jit
both regimes are evaluated for every element (jnp.where selects), so each regime gets *safe* inputs where
it is not selected (double where): no NaN or inf appears in either regime's values, nor in gradients.

Node counts by dtype (truncation error measured in float64 arithmetic against a 60-point rule, on a
321 × 321 grid of h, k ∈ [−8, 8] at the worst ρ of each regime, ρ → ±0.925):

* float64: 20 + 20 points (Genz's rule): truncation ≤ 2.8e-16 / 2.2e-16 (18 + 18 gave 1.3e-15 / 7.2e-16,
  16 + 16 gave 3.8e-14 / 2.8e-15, too close to or above the 1e-14 asked). Worst absolute error against
  mpmath at 30 digits: 1.7e-16 on the tests' grid (3825 points with ±inf, ρ = ±1, ±(1 − 1e-12)) and
  2.2e-16 on 26 000 random points (h, k ∈ [−40, 40], 6000 of them with 0.925 ≤ |ρ| < 1, ties h = ±k),
  the same as the NumPy version. Genz's 6/12-point bands for |ρ| < 0.3/0.75 would need a per-element
  choice of rule, which under jit costs all three rules; only the NumPy version uses them.
* float32: 10 + 4 points: truncation ≤ 1.1e-9 / 2.4e-9, far below float32 rounding (eps = 1.2e-7).
  Worst absolute error against mpmath (at the float32 arguments): 1.1e-7, the same with 6 + 3 … 20 + 20
  points on those 11 000 points (6 + 3 gave 7.7e-7).
* sin and asin of the θ rule are Taylor polynomials on their bounded ranges (_sin_small, _asin_small):
  on XLA:CPU they took bvn_cdf from 90 to 40 ms per 2²⁰ float32 values without changing the errors above.

The derivatives are not those of the quadrature: a custom_jvp gives the closed forms
∂Φ₂/∂h = φ(h)·Φ((k − ρh)/√(1 − ρ²)), ∂Φ₂/∂k = φ(k)·Φ((h − ρk)/√(1 − ρ²)) and ∂Φ₂/∂ρ = the bivariate
density φ₂(h, k; ρ), with their limits at ρ = ±1 (∂/∂h → φ(h)·[h < k] at ρ = 1 and φ(h)·[h > −k] at
ρ = −1, with ½ at a tie) and at infinite h, k. At |ρ| = 1 the density in ρ is 0 off the line h = ±k and
a Dirac delta on it; ∂Φ₂/∂ρ returns 0 at |ρ| = 1 in both cases (documented choice: a finite value,
and the one-sided derivative of Φ₂ at ρ = ±1 is 0 except on that line). For |ρ| < 1 the numerators
k − ρh and the exponent are written as (k − h) + (1 − ρ)h and (h − k)²/(1 − ρ²) + 2hk/(1 + ρ) (sign-flipped
for ρ < 0), which do not cancel as ρ → ±1.

Owen's T: jax.scipy.special.owens_t exists in the installed JAX (0.10.2). Its worst absolute error in
float64 against mpmath at 30 digits (Owen's T(h, a) = (1/2π)∫₀^a e^{−h²(1+x²)/2}/(1+x²) dx, mpmath.quad
with breakpoints) was 5.6e-17 on a 64 × 52 grid h ∈ [−40, 40], a ∈ [0, 1e6] (benchmarks/bench_bvn.py
--owens-t). Φ₂ = ½Φ(h) + ½Φ(k) − T(h, a_h) − T(k, a_k) − β with a_h = (k − ρh)/(h√(1 − ρ²)) is therefore
accurate too where it is defined (2.8e-16 on the random points above with the non-cancelling numerators
of _bvn_partials; 2.0e-11 near ρ → −1, h = −k with the naive k − ρh), but it is not used: it divides by h
and by k (a = ±∞ at h = 0, k = 0 and |ρ| = 1, each a double-where case of its own), needs the sign case β
of hk and h + k, and its two owens_t calls were 5× slower than bvn_cdf in float32 on XLA:CPU (836 vs
152 ms at 2048², bench_bvn.py).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from .._bvn import gauss_legendre_half

__all__ = ["bvn_cdf", "norm_cdf", "norm_pdf", "NODES"]

NODES = {"float32": (10, 4), "float64": (20, 20)}
"""Gauss–Legendre points (|ρ| < 0.925 regime, |ρ| ≥ 0.925 regime) by dtype; see the module docstring."""

_TWO_PI = 2.0 * math.pi
_SQRT_TWO_PI = math.sqrt(_TWO_PI)
_INV_SQRT_TWO_PI = 1.0 / _SQRT_TWO_PI
_GENZ_SWITCH = 0.925
_SAFE_LARGE_R = 0.96  # any |ρ| in [0.925, 1) keeps the large-ρ regime finite where it is not selected
_UNDERFLOW = -100.0  # Genz's cut-off: e^{−100} ≈ 4e-44 is below the absolute accuracy of Φ₂ in either dtype
# |h| ≥ 40 saturates Φ₂ in float64 (Φ(−40) ≈ 4e-350 underflows to 0) and keeps h², hk, (h − k)²/(1 − ρ²)
# finite in float32; the derivatives use 1e4, where φ underflows and Φ((k − ρh)/√(1 − ρ²)) is 0 or 1 exactly
# for every k with φ(k) > 0, so that their limits at h = ±inf come out of the same formulas.
_SATURATE = 40.0
_FAR = 1e4


def norm_cdf(z):
    """Φ(z) = (1 + erf(z/√2))/2 (jax.scipy.special.ndtr: finite value and derivative 0 at ±inf)."""
    return ndtr(z)


def norm_pdf(z):
    """φ(z) = e^{−z²/2}/√(2π); 0 with derivative 0 at ±inf (double where: −z·φ(z) would be −inf·0), NaN at NaN."""
    z = jnp.asarray(z)
    finite = jnp.isfinite(z)
    safe = jnp.where(finite, z, 0)
    value = jnp.exp(-0.5 * safe * safe) * _INV_SQRT_TWO_PI
    return jnp.where(finite, value, jnp.where(jnp.isnan(z), z, 0))


def _dtype_nodes(dtype):
    n_small, n_large = NODES["float64" if jnp.dtype(dtype) == jnp.float64 else "float32"]
    # Python floats: weakly typed, so each product stays in the input dtype
    return tuple(list(zip(*(v.tolist() for v in gauss_legendre_half(n)))) for n in (n_small, n_large))


def _sin_small(x, n_terms: int):
    """sin x for |x| ≤ asin(0.925) ≈ 1.183 by its Taylor polynomial x − x³/3! + … (n_terms odd powers, Horner).

    The remainder is below |x|^{2n+1}/(2n+1)!: 6.6e-19 for 10 terms (float64, to x¹⁹) and 1.4e-9 for 6
    (float32, to x¹¹), below half an ulp of sin x in each dtype. Used because XLA:CPU's jnp.sin, with its
    full-range argument reduction, took 5.4 ms per 2²⁰ float32 values against 0.4 ms for this polynomial
    (exp: 0.8 ms), and the θ rule needs one sine per node."""
    x2 = x * x
    poly = (-1) ** (n_terms - 1) / math.factorial(2 * n_terms - 1)
    for m in range(n_terms - 2, -1, -1):
        poly = poly * x2 + (-1) ** m / math.factorial(2 * m + 1)
    return x * poly


def _asin_small(x, n_terms: int):
    """asin x for |x| < 0.925 as 2·asin(y), y = x/√(2(1 + √(1 − x²))) ≤ 0.557, by the Taylor series of asin y.

    The series' remainder after n_terms odd powers is below 2e-19 for 31 terms (float64) and 5e-9 for 12
    (float32); on 4000 points of [−0.925, 0.925] the result was within 2 ulp of mpmath (jnp.arcsin: 1 ulp),
    and it took 1.2 ms per 2²⁰ float32 values against 20–30 ms for XLA:CPU's jnp.arcsin (via atan2)."""
    y = x / jnp.sqrt(2 * (1 + jnp.sqrt((1 - x) * (1 + x))))
    y2 = y * y
    poly = math.comb(2 * n_terms - 2, n_terms - 1) / (4 ** (n_terms - 1) * (2 * n_terms - 1))
    for m in range(n_terms - 2, -1, -1):
        poly = poly * y2 + math.comb(2 * m, m) / (4**m * (2 * m + 1))
    return 2 * y * poly


def _theta_integral(h, k, r, nodes):
    """(1/2π)∫₀^{asin ρ} exp(−(h² + k² − 2hk sin θ)/(2cos²θ)) dθ = Φ₂ − Φ(h)Φ(k), for |ρ| < 0.925."""
    hk = h * k
    hs = (h * h + k * k) / 2
    x64 = h.dtype == jnp.float64
    asr = _asin_small(r, 31 if x64 else 12)
    n_terms = 10 if x64 else 6
    total = jnp.zeros_like(h)
    for t, w in nodes:  # unrolled: one fused elementwise loop, no (…, n) intermediate
        sn = _sin_small(asr * t, n_terms)
        total = total + w * jnp.exp((sn * hk - hs) / (1 - sn * sn))
    return total * asr / _TWO_PI


def _large_r_correction(h, k, r, nodes):
    """Genz's −(1/2π)∫₀^{√(1−ρ²)} … dx for 0.925 ≤ |ρ| < 1, in his upper-orthant variables (h, k) = (−h, −k)
    with k → −k for ρ < 0: Φ₂ = min(Φ(h), Φ(k)) + it (ρ > 0) or max(0, Φ(h) + Φ(k) − 1) − it (ρ < 0).

    The singular part at x → 0 is integrated in closed form (the terms with Φ(−|h − k|/√(1 − ρ²))), the
    smooth remainder by Gauss–Legendre in x."""
    k = jnp.where(r < 0, -k, k)
    hk = h * k
    a_s = (1 - r) * (1 + r)  # 1 − ρ² without the cancellation of 1 − ρ·ρ
    a = jnp.sqrt(a_s)
    bs = (h - k) ** 2
    c = (4 - hk) / 8
    d = (12 - hk) / 16
    asr = -(bs / a_s + hk) / 2
    bvn = jnp.where(
        asr > _UNDERFLOW,
        a * jnp.exp(jnp.maximum(asr, _UNDERFLOW)) * (1 - c * (bs - a_s) * (1 - d * bs / 5) / 3 + c * d * a_s * a_s / 5),
        0,
    )
    b = jnp.sqrt(bs)
    # e^{−hk/2}·Φ(−b/a) first: for hk > −100 it is at most e^{50}/2, and the polynomial stays < 1e9
    tail = jnp.exp(-jnp.maximum(hk, _UNDERFLOW) / 2) * ndtr(-b / a)
    bvn = bvn - jnp.where(hk > _UNDERFLOW, tail * _SQRT_TWO_PI * b * (1 - c * bs * (1 - d * bs / 5) / 3), 0)
    total = jnp.zeros_like(h)
    for t, w in nodes:
        xs = (a * t) ** 2
        rs = jnp.sqrt(1 - xs)
        asr = -(bs / xs + hk) / 2
        sp = 1 + c * xs * (1 + d * xs)
        ep = jnp.exp(-hk * xs / (2 * (1 + rs) ** 2)) / rs  # −hk(1 − rs)/(2(1 + rs)), as 1 − rs = xs/(1 + rs)
        total = total + w * jnp.where(asr > _UNDERFLOW, jnp.exp(jnp.maximum(asr, _UNDERFLOW)) * (ep - sp), 0)
    return -(bvn + a * total) / _TWO_PI


def _bvn_value(h, k, r):
    """Φ₂ of same-shape, same-dtype arrays: both regimes on safe inputs, then the limits selected."""
    small_nodes, large_nodes = _dtype_nodes(h.dtype)
    nan = jnp.isnan(h) | jnp.isnan(k) | jnp.isnan(r)
    r = jnp.where(nan, 0, jnp.clip(r, -1, 1))
    hc = jnp.where(nan, 0, jnp.clip(h, -_SATURATE, _SATURATE))
    kc = jnp.where(nan, 0, jnp.clip(k, -_SATURATE, _SATURATE))
    edge = jnp.abs(r) == 1
    small = jnp.abs(r) < _GENZ_SWITCH
    # the four Φ values every branch is assembled from (with Φ(−b/a) in the correction: 5 ndtr in all)
    cdf_h, cdf_k = ndtr(hc), ndtr(kc)
    # Φ(h) + Φ(k) − 1 as a difference of two values below ½ where possible (keeps small results accurate)
    both = jnp.where(hc > 0, cdf_k - ndtr(-hc), cdf_h - ndtr(-kc))
    either = jnp.minimum(cdf_h, cdf_k)  # Φ(min(h, k))
    value_small = cdf_h * cdf_k + _theta_integral(hc, kc, jnp.where(small, r, 0), small_nodes)
    large_r = jnp.where(small | edge, _SAFE_LARGE_R, r)
    correction = _large_r_correction(-hc, -kc, large_r, large_nodes)
    # ρ = 1: Φ(min(h, k)).  ρ = −1: max(0, Φ(h) + Φ(k) − 1).  0.925 ≤ |ρ| < 1: those plus Genz's correction
    positive = jnp.where(edge, either, either + correction)
    negative = jnp.maximum(both, 0) - jnp.where(edge, 0, correction)
    value = jnp.where(small, value_small, jnp.where(r > 0, positive, negative))
    value = jnp.clip(value, 0, 1)
    # infinite limits, exact: Φ₂(−∞, ·) = 0, Φ₂(+∞, k) = Φ(k), Φ₂(h, +∞) = Φ(h) (for every ρ)
    value = jnp.where(k == jnp.inf, cdf_h, value)
    value = jnp.where(h == jnp.inf, cdf_k, value)
    value = jnp.where((h == -jnp.inf) | (k == -jnp.inf), 0, value)
    return jnp.where(nan, jnp.nan, value)


def _bvn_partials(h, k, r):
    """(∂Φ₂/∂h, ∂Φ₂/∂k, ∂Φ₂/∂ρ) in closed form, with their limits at |ρ| = 1 and infinite h, k."""
    nan = jnp.isnan(h) | jnp.isnan(k) | jnp.isnan(r)
    inside = jnp.abs(r) < 1  # r as given: Φ₂ is constant in ρ beyond the clip, and ∂/∂ρ := 0 at |ρ| = 1
    r = jnp.where(nan, 0, jnp.clip(r, -1, 1))
    hc = jnp.where(nan, 0, jnp.clip(h, -_FAR, _FAR))
    kc = jnp.where(nan, 0, jnp.clip(k, -_FAR, _FAR))
    sign = jnp.where(r >= 0, 1, -1).astype(h.dtype)
    gap = 1 - jnp.abs(r)  # 1 − |ρ|, exact for |ρ| ≥ ½ (Sterbenz): what cancels in k − ρh near |ρ| = 1
    om = jnp.where(inside, gap * (1 + jnp.abs(r)), 1)  # 1 − ρ², safe (= 1) at |ρ| = 1
    s = jnp.sqrt(om)

    def conditional(x, y):
        # Φ((y − ρx)/√(1 − ρ²)), y − ρx = (y − sign·x) + sign·(1 − |ρ|)·x; at |ρ| = 1 the step [y − ρx > 0], ½ at 0
        num = (y - sign * x) + sign * gap * x
        step = jnp.where(num > 0, 1, jnp.where(num < 0, 0, 0.5)).astype(h.dtype)
        return jnp.where(inside, ndtr(num / s), step)

    dh = norm_pdf(hc) * conditional(hc, kc)
    dk = norm_pdf(kc) * conditional(kc, hc)
    # (h² − 2ρhk + k²)/(1 − ρ²) = (h − sign·k)²/(1 − ρ²) + sign·2hk/(1 + |ρ|), both terms free of cancellation
    q = (hc - sign * kc) ** 2 / om + sign * 2 * hc * kc / (1 + jnp.abs(r))
    dr = jnp.where(inside, jnp.exp(-0.5 * jnp.maximum(q, 0)) / (_TWO_PI * s), 0)
    return tuple(jnp.where(nan, jnp.nan, g) for g in (dh, dk, dr))


@jax.custom_jvp
def _bvn(h, k, r):
    return _bvn_value(h, k, r)


@_bvn.defjvp
def _bvn_jvp(primals, tangents):
    dh, dk, dr = _bvn_partials(*primals)
    th, tk, tr = tangents
    return _bvn(*primals), dh * th + dk * tk + dr * tr


def bvn_cdf(h, k, r):
    """Φ₂(h, k; ρ) = P(X ≤ h, Y ≤ k) for standard normals with correlation ρ, elementwise and jit-compatible.

    **Arguments:**
    - `h`, `k`: upper limits (±inf allowed); broadcast against each other and `r`.
    - `r`: the correlation ρ, clipped into [−1, 1] (ρ computed in floating point may be 1 + 1e-16).

    **Returns:** an array of the broadcast shape in the inputs' floating dtype (float32 or float64; the
    default float for integer inputs); NaN where an input is NaN. Measured absolute error ≤ 2.2e-16 (float64)
    and ≤ 1.1e-7 (float32) against mpmath; derivatives in closed form (see the module docstring).
    """
    dtype = jnp.result_type(h, k, r)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    h, k, r = jnp.broadcast_arrays(*(jnp.asarray(v, dtype) for v in (h, k, r)))
    return _bvn(h, k, r)
