"""Edge-safe primitives for lowered duals: finite values and finite gradients at ρ = ±1 and q → 0.

Each one is a custom_jvp whose derivative is the true one inside the domain and a finite value at its
edge (where the true one is infinite, e.g. d√x/dx at 0): a kernel such as the arc-cosine kernel is
continuous there and its derivative in c, where it exists, is the limit of the interior values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _tiny(x):
    return jnp.finfo(jnp.result_type(x)).tiny


@jax.custom_jvp
def safe_sqrt(x):
    """√max(x, 0): rounding may make q1·q2 − c² slightly negative at |ρ| = 1."""
    return jnp.sqrt(jnp.maximum(x, 0))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = safe_sqrt(x)
    positive = y > 0
    return y, jnp.where(positive, dx / (2 * jnp.where(positive, y, 1)), 0)


@jax.custom_jvp
def safe_asin(x):
    """asin of x clipped into [−1, 1] (a correlation computed in floating point can exceed 1)."""
    return jnp.arcsin(jnp.clip(x, -1, 1))


@safe_asin.defjvp
def _safe_asin_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    w = 1 - jnp.clip(x, -1, 1) ** 2
    inside = w > 0
    return safe_asin(x), jnp.where(inside, dx / jnp.sqrt(jnp.where(inside, w, 1)), 0)


def safe_acos(x):
    """acos of x clipped into [−1, 1], as π/2 − asin (so it shares safe_asin's edge-safe derivative)."""
    return jnp.pi / 2 - safe_asin(x)


def safe_power(base, exponent):
    """base**exponent with 0 for a negative power of 0 (double where: a finite gradient too).

    A negative power of 0 arises only in 0/0 forms at a degenerate covariance (q = 0, where c = 0 too)
    at which the dual is continuous; the factor it multiplies vanishes there."""
    if exponent >= 0:
        if float(exponent).is_integer():
            return jax.lax.integer_pow(base, int(exponent))
        if exponent == 0.5:
            return safe_sqrt(base)
        return jnp.power(jnp.maximum(base, 0), exponent)
    zero = base == 0
    safe_base = jnp.where(zero, 1, base)
    if float(exponent).is_integer():
        value = 1 / jax.lax.integer_pow(safe_base, int(-exponent))
    elif exponent == -0.5:
        value = jax.lax.rsqrt(jnp.where(safe_base > 0, safe_base, _tiny(base)))
    else:
        value = jnp.power(jnp.where(safe_base > 0, safe_base, _tiny(base)), exponent)
    return jnp.where(zero, 0, value)


def heaviside(x, at_zero=0.5):
    return jnp.where(x > 0, 1, jnp.where(x < 0, 0, at_zero)).astype(jnp.result_type(x))


def erfi(x):
    """erfi(x) = 2/√π · e^{x²} · D(x) (Dawson's integral: JAX has no erfi)."""
    return 2 / jnp.sqrt(jnp.pi).astype(jnp.result_type(x)) * jnp.exp(x * x) * jax.scipy.special.dawsn(x)


@jax.custom_jvp
def safe_ratio(num, den):
    """num/den, with den = 0 giving ±inf by the sign of num (0 where num = 0 too); tangent 0 where den = 0.

    For the arguments of Φ, φ, Φ₂: the engine writes them as num·(q1q2 − c²)^(−1/2) or num·q^(−1/2), whose
    denominator vanishes at |ρ| = 1 or q = 0, where the dual is Φ(±inf) (1 or 0), or Φ(0) for num = 0.
    safe_power would turn the negative power of 0 into 0, hence Φ(0) = ½ for every num."""
    zero = den == 0
    ratio = num / jnp.where(zero, 1, den)
    return jnp.where(zero, jnp.where(num == 0, 0, jnp.sign(num) * jnp.inf), ratio).astype(ratio.dtype)


@safe_ratio.defjvp
def _safe_ratio_jvp(primals, tangents):
    (num, den), (dnum, dden) = primals, tangents
    value = safe_ratio(num, den)
    zero = den == 0
    safe_den = jnp.where(zero, 1, den)
    tangent = (dnum - jnp.where(zero, 0, value) * dden) / safe_den
    return value, jnp.where(zero, 0, tangent)


@jax.custom_jvp
def gram_determinant(q1, q2, c):
    """q1·q2 − c² as (√(q1q2) − |c|)(√(q1q2) + |c|): exactly 0 where c = ±√(q1q2) (the clipped edge |ρ| = 1);
    q1·q2 − c·c would be contracted into an FMA that leaves the rounding error of c² there."""
    s = safe_sqrt(q1 * q2)
    return (s - jnp.abs(c)) * (s + jnp.abs(c))


@gram_determinant.defjvp
def _gram_determinant_jvp(primals, tangents):
    (q1, q2, c), (d1, d2, dc) = primals, tangents
    return gram_determinant(q1, q2, c), q2 * d1 + q1 * d2 - 2 * c * dc
