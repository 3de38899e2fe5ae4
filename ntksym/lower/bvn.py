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
from jax import lax
from jax.scipy.special import ndtr

from .._bvn import ERFCX_CHEBYSHEV, ERFCX_SHIFT, gauss_laguerre_scaled, gauss_legendre_half

__all__ = ["bvn_cdf", "norm_cdf", "norm_pdf", "NODES", "TAIL_NODES"]

NODES = {"float32": (10, 4), "float64": (20, 20)}
"""Gauss–Legendre points (|ρ| < 0.925 regime, |ρ| ≥ 0.925 regime) by dtype; see the module docstring."""

TAIL_NODES = {"float32": 10, "float64": 24}
"""Gauss–Laguerre points of the lower-tail form by dtype; see the module docstring."""

_TWO_PI = 2.0 * math.pi
_SQRT_TWO_PI = math.sqrt(_TWO_PI)
_INV_SQRT_TWO_PI = 1.0 / _SQRT_TWO_PI
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_GENZ_SWITCH = 0.925
_SAFE_LARGE_R = 0.96  # any |ρ| in [0.925, 1) keeps the large-ρ regime finite where it is not selected
_UNDERFLOW = -100.0  # Genz's cut-off: e^{−100} ≈ 4e-44 is below the absolute accuracy of Φ₂ in either dtype
# |h| ≥ 40 saturates Φ₂ in float64 (Φ(−40) ≈ 4e-350 underflows to 0) and keeps h², hk, (h − k)²/(1 − ρ²)
# finite in float32; the derivatives use 1e4, where φ underflows and Φ((k − ρh)/√(1 − ρ²)) is 0 or 1 exactly
# for every k with φ(k) > 0, so that their limits at h = ±inf come out of the same formulas.
_SATURATE = 40.0
_FAR = 1e4
# The lower-tail form (_tail_value): its Laguerre scale is at least _TAIL_GAMMA curvature lengths, and it is
# used where h + k ≤ 0 and min(h, k) ≤ _TAIL_LO, or ρ < 0 and the conditional argument (max − ρ·min)/√(1 − ρ²)
# is below _TAIL_Z (module docstring).
_TAIL_GAMMA = 5.0
_TAIL_LO = -2.0
_TAIL_Z = -1.0


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


def _is64(dtype) -> bool:
    return jnp.dtype(dtype) == jnp.float64


def _dtype_nodes(dtype):
    n_small, n_large = NODES["float64" if _is64(dtype) else "float32"]
    # Python floats: weakly typed, so each product stays in the input dtype
    return tuple(list(zip(*(v.tolist() for v in gauss_legendre_half(n)))) for n in (n_small, n_large))


def _tail_nodes(dtype):
    return list(zip(*(v.tolist() for v in gauss_laguerre_scaled(TAIL_NODES["float64" if _is64(dtype) else "float32"]))))


def _phi_pair(x):
    """(Φ(x), Φ(−x)) from one erfc: Φ(−|x|) = erfc(|x|/√2)/2 (relative accuracy in the tail), the other 1 − it.

    jax.scipy.special.ndtr evaluates both erf and erfc for every element; on XLA:CPU in float64 it took
    126 ms per 2²² values against 31 ms for lax.erfc."""
    p = 0.5 * lax.erfc(jnp.abs(x) * _INV_SQRT2)
    q = 1 - p
    return jnp.where(x < 0, p, q), jnp.where(x < 0, q, p)


def _erfcx(x, n_terms: int):
    """erfcx(x) = e^{x²}·erfc(x) for x ≥ 0 (+inf allowed): Chebyshev series of (x + K)·erfcx(x) in
    t = (x − K)/(x + K), n_terms terms by Clenshaw's recurrence (ntksym._bvn.ERFCX_CHEBYSHEV).

    No exponential, and accurate relative to itself for every x ≥ 0 (7.5e-16 with 25 terms in float64, 2.6e-7
    with 12 in float32), unlike jax.scipy.special.erfcx, which is e^{x²}·erfc(x) and 0 from x ≈ 26.6."""
    x = jnp.minimum(x, jnp.finfo(x.dtype).max / 4)  # +inf → a finite x where t = 1 to working precision
    t = (x - ERFCX_SHIFT) / (x + ERFCX_SHIFT)
    t2 = 2 * t
    b1 = jnp.zeros_like(x)
    b2 = jnp.zeros_like(x)
    for c in ERFCX_CHEBYSHEV[n_terms - 1 : 0 : -1]:
        b1, b2 = t2 * b1 - b2 + c, b1
    return (t * b1 - b2 + ERFCX_CHEBYSHEV[0]) / (x + ERFCX_SHIFT)


def _split(x):
    """Dekker's split x = hi + lo, hi with half the significand bits (so that hi·hi is exact)."""
    c = (134217729.0 if _is64(x.dtype) else 4097.0) * x  # 2^27 + 1, 2^12 + 1
    hi = c - (c - x)
    return hi, x - hi


def _two_prod(a, b):
    """(p, e) with p = fl(a·b) and p + e = a·b exactly (Dekker; |a|, |b| ≤ 1e150 here)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


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
    x64 = _is64(h.dtype)
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
    tail = jnp.exp(-jnp.maximum(hk, _UNDERFLOW) / 2) * (0.5 * lax.erfc(b / a * _INV_SQRT2))
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


def _tail_value(h, k, r, nodes):
    """Φ₂ = ∫_{−∞}^{lo} φ(t)·Φ((hi − ρt)/√(1 − ρ²)) dt (lo = min(h, k), hi = max), for h + k ≤ 0 and |ρ| < 1,
    accurate relative to its own value however small (module docstring).

    Direct form, or for ρ > 0 with a steep conditional (ρ/√(1 − ρ²) > |lo|/2, argument at lo above −2) the
    complement Φ(lo) − ∫_{−∞}^{lo} φ(t)·Φ((ρt − hi)/√(1 − ρ²)) dt. Either integrand, f(lo − v), is log-concave
    and largest at v = 0; v = u/λ with λ the larger of −(log f)'(lo) and _TAIL_GAMMA·√(−(log f)''(lo)), and
    Gauss–Laguerre in u. Each node's exp(−(t² + z²)/2) is the corner's exp(−(lo² + z₀²)/2), computed once in
    double length, times exp of a small quadratic in v; Φ(z) = erfc(|z|/√2)/2 is e^{−z²/2}·erfcx(|z|/√2)/2."""
    dtype = h.dtype
    x64 = _is64(dtype)
    n_erfcx = 25 if x64 else 12
    lo, hi = jnp.minimum(h, k), jnp.maximum(h, k)
    absr = jnp.abs(r)
    sign = jnp.where(r >= 0, 1, -1).astype(dtype)
    gap, gap_err = _two_sum(jnp.ones_like(r), -absr)  # 1 − |ρ|
    s = jnp.sqrt(gap * (1 + absr))
    # hi − ρ·lo = (hi − sign·lo) + sign·(1 − |ρ|)·lo, in double length (num + num_err): no cancellation
    d1, e1 = _two_sum(hi, -sign * lo)
    p, ep = _two_prod(sign * gap, lo)
    num, en = _two_sum(d1, p)
    num_err = e1 + ep + en + sign * gap_err * lo
    z0 = num / s
    g = r / s
    comp = (r > 0) & (z0 > -2) & (g > -0.5 * lo)
    flip = jnp.where(comp, -1, 1).astype(dtype)
    zc, gc = flip * z0, flip * g  # the integrand is φ(lo − v)·Φ(zc + gc·v)
    # −(log f)' and −(log f)'' at v = 0, with m = φ(zc)/Φ(zc) (no exp where zc ≤ 0)
    x0 = _erfcx(jnp.abs(zc) * _INV_SQRT2, n_erfcx)
    ez = jnp.exp(-0.5 * jnp.square(jnp.maximum(zc, 0)))
    m = jnp.where(zc <= 0, math.sqrt(2 / math.pi) / x0, ez * _INV_SQRT_TWO_PI / (1 - 0.5 * ez * x0))
    curvature = 1 + gc * gc * jnp.clip(m * (zc + m), 0, 1)
    lam = jnp.maximum(-lo - gc * m, _TAIL_GAMMA * jnp.sqrt(curvature))
    inv_lam = 1 / lam
    # exp(−lo²/2) and exp(−zc²/2) from double-length lo² and zc² = num²/(1 − ρ²)
    l2, l2_err = _two_prod(lo, lo)
    n2, n2_err = _two_prod(num, num)
    n2_err = n2_err + 2 * num * num_err
    rr, rr_err = _two_prod(r, r)
    om, om_err = _two_sum(jnp.ones_like(r), -rr)
    om_err = om_err - rr_err
    q1 = n2 / om
    pq, pq_err = _two_prod(q1, om)
    q2 = (((n2 - pq) - pq_err) + n2_err - q1 * om_err) / om
    phi_lo = jnp.exp(-0.5 * l2) * (1 - 0.5 * l2_err) * _INV_SQRT_TWO_PI
    # Φ(z) = e^{−z²/2}·erfcx(|z|/√2)/2 for z ≤ 0, relative to e^{−zc²/2}/2: all in units of φ(lo) (≥ |lo|·Φ₂,
    # so that no product of the sum falls into the subnormals before Φ₂ itself does)
    ratio = 0.5 * jnp.exp(-0.5 * q1) * (1 - 0.5 * q2)
    below = jnp.zeros_like(h)  # Σ over nodes with z ≤ 0, in units of φ(lo)·e^{−zc²/2}/2
    above = jnp.zeros_like(h)  # Σ over nodes with z > 0, in units of φ(lo)
    for u, w in nodes:
        v = u * inv_lam
        a = v * (lo - 0.5 * v)  # −(t² − lo²)/2 at t = lo − v, ≤ 0
        z = zc + gc * v
        d = jnp.minimum(a - v * (zc * gc + 0.5 * (gc * gc) * v), 0)  # a − (z² − zc²)/2 ≤ 0 (h + k ≤ 0)
        neg = z <= 0
        ex = _erfcx(jnp.abs(z) * _INV_SQRT2, n_erfcx)
        e1 = jnp.exp(jnp.where(neg, d, a))
        e2 = jnp.exp(-0.5 * z * z)
        below = below + w * jnp.where(neg, e1 * ex, 0)
        above = above + w * jnp.where(neg, 0, e1 * (1 - 0.5 * e2 * ex))
    integral = phi_lo * ((ratio * below + above) * inv_lam)
    cdf_lo = phi_lo * (0.5 * _SQRT_TWO_PI) * _erfcx(-lo * _INV_SQRT2, n_erfcx)  # Φ(lo), lo ≤ 0
    return jnp.where(comp, cdf_lo - integral, integral)


def _if_any(pred, fn, *args):
    """fn(*args) if any element of pred is true, else zeros: lax.cond skips a regime no element needs
    (under vmap the predicate is batched and both branches run, as with jnp.where)."""
    return lax.cond(jnp.any(pred), fn, lambda *a: jnp.zeros_like(a[0]), *args)


def _bvn_value(h, k, r):
    """Φ₂ of same-shape, same-dtype arrays: each regime on safe inputs, then the limits selected."""
    small_nodes, large_nodes = _dtype_nodes(h.dtype)
    tail_nodes = _tail_nodes(h.dtype)
    nan = jnp.isnan(h) | jnp.isnan(k) | jnp.isnan(r)
    r = jnp.where(nan, 0, jnp.clip(r, -1, 1))
    hc = jnp.where(nan, 0, jnp.clip(h, -_SATURATE, _SATURATE))
    kc = jnp.where(nan, 0, jnp.clip(k, -_SATURATE, _SATURATE))
    edge = jnp.abs(r) == 1
    small = jnp.abs(r) < _GENZ_SWITCH
    lo, hi = jnp.minimum(hc, kc), jnp.maximum(hc, kc)
    # the lower tail, where Φ₂ is small and must be accurate relative to itself: h + k ≤ 0 and either
    # min(h, k) ≤ −2, or ρ < 0 with a conditional argument (hi − ρ·lo)/√(1 − ρ²) below −1 (module docstring)
    z_rough = (hi - r * lo) / jnp.sqrt(jnp.where(edge, 1, (1 - r) * (1 + r)))
    tail = ~edge & (lo + hi <= 0) & ((lo <= _TAIL_LO) | ((r < 0) & (z_rough < _TAIL_Z)))
    # the four Φ values every other branch is assembled from, from two erfc
    cdf_h, sf_h = _phi_pair(hc)
    cdf_k, sf_k = _phi_pair(kc)
    # Φ(h) + Φ(k) − 1 as a difference of two values below ½ where possible (keeps small results accurate)
    both = jnp.where(hc > 0, cdf_k - sf_h, cdf_h - sf_k)
    either = jnp.minimum(cdf_h, cdf_k)  # Φ(min(h, k))
    theta = _if_any(
        small & ~tail, lambda a, b, c: _theta_integral(a, b, c, small_nodes), hc, kc, jnp.where(small, r, 0)
    )
    value_small = cdf_h * cdf_k + theta
    large_r = jnp.where(small | edge, _SAFE_LARGE_R, r)
    correction = _if_any(
        ~small & ~edge & ~tail, lambda a, b, c: _large_r_correction(a, b, c, large_nodes), -hc, -kc, large_r
    )
    # ρ = 1: Φ(min(h, k)).  ρ = −1: max(0, Φ(h) + Φ(k) − 1).  0.925 ≤ |ρ| < 1: those plus Genz's correction
    positive = jnp.where(edge, either, either + correction)
    negative = jnp.maximum(both, 0) - jnp.where(edge, 0, correction)
    value = jnp.where(small, value_small, jnp.where(r > 0, positive, negative))
    # the tail form on safe inputs elsewhere (h = k = −1, ρ = 0: finite, and not used)
    tail_value = _if_any(
        tail,
        lambda a, b, c: _tail_value(a, b, c, tail_nodes),
        jnp.where(tail, hc, -1),
        jnp.where(tail, kc, -1),
        jnp.where(tail, r, 0),
    )
    value = jnp.where(tail, tail_value, value)
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
