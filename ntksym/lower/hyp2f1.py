"""Gauss's hypergeometric function ₂F₁(a, b; c; z) in JAX for fixed real parameters and z ∈ [0, 1].

The fractional-power duals (`ntksym.gaussian.fractional`) are (q1q2)^(α/2)·₂F₁(a, b; c; ρ²) with ρ² ∈ [0, 1]
and ρ² = 1 exactly on the diagonal of a Gram matrix, so what matters is z → 1.

**Why not jax.scipy.special.hyp2f1.** Measured with JAX 0.10.2 in float64 against mpmath.hyp2f1 (40 digits):
it is accurate (≤ 2e-15 relative) wherever c − a − b is an integer, at every z incl. z = 1, but where
c − a − b is not an integer it is accurate only up to z ≈ 0.9, then drifts off and stays off as z → 1:

    (a, b; c)              c−a−b   z = 0.99   z = 1 − 1e-6   z = 1 − 1e-12   z = 1
    (−0.35, −0.35; 1/2)     1.2    2.2e-6     9.6e-5         9.6e-5          2e-16 (Gauss's value)
    (0.15, 0.15; 3/2)       1.2    5.7e-7     2.5e-5         2.5e-5          2e-15
    (1/2, 1/2; 3/2)         0.5    2.7e-4     2.2e-2         2.3e-2          6e-16
    (0.15, 0.15; 1/2)       0.2    3.2e-4     4.8e-2         6.0e-2          1e-15
    (0.65, 0.65; 3/2)       0.2    1.6e-3     1.9e-1         2.3e-1          4e-16

((1/2, 1/2; 3/2) is the sign-activation dual (2/π)·asin(ρ)/ρ: a 2 % error at ρ² = 1 − 1e-6.) Its z-gradient
is +inf at z = 1 even where the true derivative is finite (c − a − b = 1.2), NaN at z = 1 where c − a − b = 0,
and off by the same amounts near 1 (e.g. 8.1 instead of 499 at z = 1 − 1e-6 for (1/2, 1/2; 3/2)).

**What this module does.** The parameters are Python numbers, so everything that depends on them only is
computed once, in Python with mpmath at 40 digits, and cached: the function becomes fixed polynomials in z
or in w = 1 − z, evaluated by Horner's rule in a lax.scan (it compiles, and runs eagerly, faster than an unrolled
loop).

- z ≤ 1/2: the Gauss series Σ (a)ₖ(b)ₖ/((c)ₖ k!) zᵏ, truncated where the tail at z = 1/2 is below 1e-18
  of the sum of the absolute terms.
- z > 1/2: the connection to w = 1 − z ≤ 1/2 (A&S 15.3.6, DLMF §15.8(ii)), with s = c − a − b:
  s not an integer:  F = A·₂F₁(a, b; 1 − s; w) + B·w^s·₂F₁(c − a, c − b; 1 + s; w),
                     A = Γ(c)Γ(s)/(Γ(c − a)Γ(c − b)), B = Γ(c)Γ(−s)/(Γ(a)Γ(b));
  s = m ≥ 0 integer: the logarithmic case DLMF 15.8.10 (A&S 15.3.10–11), F = P(w) + log(w)·R(w);
  s = −m < 0:        Euler's transformation F = w^(−m)·₂F₁(c − a, c − b; c; z) and then the case m > 0.
  Every case is stored as P(w) + w^s·Q(w) + log(w)·R(w) with P, Q, R polynomials.
- a or b a non-positive integer: F is a polynomial, evaluated as one on all of [0, 1].
- Parameters within 1e-14 (relative) of a fraction with denominator ≤ 10⁶ are snapped to it (Python floats of
  (1 − 0.7)/2 and the like), so that an integer s is recognised as one.

**z = 1.** Where s > 0 the value is Gauss's Γ(c)Γ(s)/(Γ(c − a)Γ(c − b)) (the constant term of P; w^s and
w^m·log w vanish there). Where s ≤ 0 the true value is infinite and the function returns ±inf with the sign of
the limit. **Gradient at z = 1:** the derivative of the analytic part P alone (the singular pieces w^s and
log w contribute 0, by a double where). This is the true derivative where it is finite (s > 1 not an integer,
or s ≥ 2), and a finite stand-in where the true derivative is infinite (s ≤ 1: s ∈ (0, 1), s = 1, or s ≤ 0).
On [0, 1) the gradient is the true derivative.

**Inputs.** z is clipped into [0, 1] first (z = c²/(q1q2) can exceed 1 by rounding); the clip keeps the
gradient 1 at z = 1 itself. Coefficients are cast to z's dtype at trace time, so z's dtype (float32 or float64)
is the result's.

**Measured** against mpmath.hyp2f1 at 30–40 digits on z ∈ [0, 1] (0, 0.025, …, 1 − 10⁻ᵏ, 1; tests/test_fractional.py
asserts 1e-13): ≤ 2e-15 relative in float64 for the duals' parameters (|a|, |b| ≤ 1.25, c ∈ {1/2, 3/2}, s = c − a − b
integer or not, of either sign), z-gradient ≤ 2e-15 relative on [0, 1); 3e-14 for (5.5, 3.2; 1/2) and 2e-13 for
(−4.7, 3.3; 5/2) (larger parameters, where the terms cancel more). float32: finite values (s > 0) and gradients,
≤ 1e-5 relative. Accuracy degrades like 1e-16/dist(s, ℤ) where s is within ~1e-3 of an integer without being
snapped to it (the two connection terms nearly cancel): 2e-10 at s = 1 + 1e-7.
"""

from __future__ import annotations

import functools as ft
import math
from dataclasses import dataclass
from fractions import Fraction

import jax
import jax.numpy as jnp
import mpmath

__all__ = ["hyp2f1"]

_DPS = 40  # working digits of the coefficient computation
_TAIL = 1e-18  # truncation: the tail at |argument| = 1/2 below this fraction of the sum of absolute terms
_MAX_TERMS = 4000
_SNAP_DENOMINATOR = 10**6
_SNAP_RTOL = 1e-14


@dataclass(frozen=True)
class _Plan:
    """₂F₁(a, b; c; ·) prepared for one parameter triple.

    poly: coefficients in z of a terminating series (then nothing else is used);
    direct: Gauss-series coefficients in z for z ≤ 1/2;
    P, Q, R, s: F = P(w) + w^s·Q(w) + log(w)·R(w) for w = 1 − z < 1/2;
    at_one: F(1) (±inf where it diverges)."""

    poly: tuple[float, ...] | None
    direct: tuple[float, ...] = ()
    P: tuple[float, ...] = ()
    Q: tuple[float, ...] = ()
    R: tuple[float, ...] = ()
    s: float = 0.0
    at_one: float = math.nan


def _exact(v: float) -> mpmath.mpf:
    """v as an mpf, snapped to a nearby fraction with a small denominator (see the module docstring)."""
    f = Fraction(v).limit_denominator(_SNAP_DENOMINATOR)
    if abs(float(f) - v) <= _SNAP_RTOL * max(1.0, abs(v)):
        return mpmath.mpf(f.numerator) / f.denominator
    return mpmath.mpf(v)


def _nonpositive_integer(v: mpmath.mpf) -> bool:
    return v <= 0 and v == mpmath.floor(v)


def _series(next_term, first: mpmath.mpf = mpmath.mpf(1)) -> list[mpmath.mpf]:
    """Coefficients t₀, t₁, … with t_{k+1} = next_term(k, t_k), truncated where the tail at 1/2 is negligible."""
    terms = [first]
    scale = abs(first)
    small = 0
    for k in range(_MAX_TERMS):
        t = next_term(k, terms[-1])
        terms.append(t)
        size = abs(t) * mpmath.mpf(2) ** -(k + 1)
        scale += size
        # the term ratio tends to 1/2 at w = 1/2: the tail is about the current term once it is decreasing
        small = small + 1 if size <= _TAIL * scale else 0
        if small >= 4:
            return terms
    raise ValueError(f"hyp2f1: the series did not converge in {_MAX_TERMS} terms (parameters too large?)")


def _gauss_series(a, b, c) -> list[mpmath.mpf]:
    return _series(lambda k, t: t * (a + k) * (b + k) / ((c + k) * (k + 1)))


def _log_case(a, b, c, m: int) -> tuple[list, list]:
    """P, R of F(a, b; a + b + m; z) = P(w) + log(w)·R(w), m ≥ 0 (DLMF 15.8.10 times Γ(c))."""
    gc = mpmath.gamma(c)
    P = [gc * mpmath.rgamma(a + m) * mpmath.rgamma(b + m) * mpmath.rf(a, k) * mpmath.rf(b, k)
         * mpmath.factorial(m - k - 1) * (-1) ** k / mpmath.factorial(k) for k in range(m)]
    lead = -((-1) ** m) * gc * mpmath.rgamma(a) * mpmath.rgamma(b) / mpmath.factorial(m)
    # series in j of (a+m)_j (b+m)_j / (j! (j+m)!) w^(j+m), first term 1/m! (folded into lead)
    ratio = _series(lambda j, t: t * (a + m + j) * (b + m + j) / ((j + 1) * (j + m + 1)))
    R = [mpmath.mpf(0)] * m + [lead * t for t in ratio]
    tail = [lead * t * (-mpmath.psi(0, j + 1) - mpmath.psi(0, j + m + 1) + mpmath.psi(0, a + j + m)
                        + mpmath.psi(0, b + j + m)) for j, t in enumerate(ratio)]
    P = P + [mpmath.mpf(0)] * (m - len(P)) + tail
    return P, R


def _floats(values) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    while len(out) > 1 and out[-1] == 0.0:
        out = out[:-1]
    return out


@ft.lru_cache(maxsize=512)
def _plan(a: float, b: float, c: float) -> _Plan:
    with mpmath.workdps(_DPS):
        A, B, C = _exact(a), _exact(b), _exact(c)
        if _nonpositive_integer(C):
            raise ValueError(f"hyp2f1: c = {c} is a non-positive integer, where ₂F₁(a, b; c; z) is undefined")
        for top in (A, B):
            if _nonpositive_integer(top):
                n = int(-top)
                coef, t = [], mpmath.mpf(1)
                for k in range(n + 1):
                    coef.append(t)
                    t = t * (A + k) * (B + k) / ((C + k) * (k + 1))
                return _Plan(poly=_floats(coef))
        direct = _gauss_series(A, B, C)
        s = C - A - B
        m = int(mpmath.nint(s))
        if s == m and m >= 0:
            P, R = _log_case(A, B, C, m)
            Q: list = []
            s_out = 0.0
        elif s == m:  # m < 0: Euler, F = w^m·F(c − a, c − b; c; z), whose c − a − b is −m > 0
            Pg, Rg = _log_case(C - A, C - B, C, -m)
            P, Q, R, s_out = [], Pg, Rg[-m:], float(m)
        else:
            gc = mpmath.gamma(C)
            coef_a = gc * mpmath.gamma(s) * mpmath.rgamma(C - A) * mpmath.rgamma(C - B)
            coef_b = gc * mpmath.gamma(-s) * mpmath.rgamma(A) * mpmath.rgamma(B)
            P = [coef_a * t for t in _gauss_series(A, B, 1 - s)]
            Q = [coef_b * t for t in _gauss_series(C - A, C - B, 1 + s)]
            R = []
            s_out = float(s)
        # the value at w = 0
        if Q and s_out < 0 and Q[0] != 0:
            at_one = math.copysign(math.inf, float(Q[0]))
        elif R and R[0] != 0:
            at_one = math.copysign(math.inf, -float(R[0]))  # log w → −∞
        else:
            at_one = float(P[0]) if P else 0.0
        return _Plan(poly=None, direct=_floats(direct), P=_floats(P) if P else (), Q=_floats(Q) if Q else (),
                     R=_floats(R) if R else (), s=s_out, at_one=at_one)


def _horner(coef: tuple[float, ...], t):
    """Σ coef[k]·t^k by Horner's rule, as one scan (a small graph that compiles fast; coefficients in t's dtype)."""
    if len(coef) == 1:
        return jnp.zeros_like(t) + coef[0]
    rest = jnp.asarray(coef[-2::-1], dtype=t.dtype)

    def step(acc, ck):
        return acc * t + ck, None

    acc, _ = jax.lax.scan(step, jnp.zeros_like(t) + coef[-1], rest)
    return acc


def hyp2f1(a, b, c, z):
    """₂F₁(a, b; c; z) for real a, b, c (Python numbers) and z ∈ [0, 1] (a JAX array; clipped into [0, 1]).

    Finite for every z in [0, 1] where the function is (z = 1 needs c − a − b > 0; elsewhere ±inf there),
    with a finite z-gradient everywhere, including z = 1 (see the module docstring for what it is there)."""
    plan = _plan(float(a), float(b), float(c))
    z = jnp.asarray(z)
    if not jnp.issubdtype(z.dtype, jnp.floating):
        z = z.astype(jnp.result_type(float))
    z = jnp.where(z < 0, 0, jnp.where(z > 1, 1, z))
    if plan.poly is not None:
        return _horner(plan.poly, z)
    near = z > 0.5
    direct = _horner(plan.direct, jnp.where(near, 0.5, z))
    w = 1 - jnp.where(near, z, 0.75)  # in (0, 1/2] where used; 1/4 (a regular point) elsewhere
    inside = w > 0
    w_safe = jnp.where(inside, w, 0.25)
    value = _horner(plan.P, w) if plan.P else jnp.zeros_like(w)
    if plan.Q:
        value = value + jnp.where(inside, jnp.power(w_safe, plan.s) * _horner(plan.Q, w_safe), 0)
    if plan.R:
        value = value + jnp.where(inside, jnp.log(w_safe) * _horner(plan.R, w_safe), 0)
    if math.isinf(plan.at_one):
        value = jnp.where(inside, value, plan.at_one)
    return jnp.where(near, value, direct)
