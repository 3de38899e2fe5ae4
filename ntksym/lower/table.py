"""The JAX targets of ntksym's function vocabulary (ntksym.vocabulary), keyed by the same SymPy classes.

Every vocabulary class is lowered in exactly one of three ways (tests/test_vocabulary.py checks the cover):

- FUNCTIONS: a JAX function of the lowered arguments (Phi, phi, Phi2 get theirs as safe ratios:
  RATIO_ARGUMENTS; hyper its parameter Tuples as Python numbers: PARAMETER_ARGUMENTS);
- WALKED: the walk in ntksym.lower lowers the node itself (Pow by its exponent, Piecewise by a double where);
- REWRITES: rewritten into other vocabulary functions before the walk (erfi through Dawson's integral).

Constants stay Python numbers, so the dtype is chosen at trace time.
"""

from __future__ import annotations

import functools as ft

import jax
import jax.numpy as jnp
import sympy as sp

from .._stable import Dawson, Expm1, GramDeterminant, Product, _expit, _softplus
from ..special import Phi, Phi2, phi
from . import safe


def _sech(a):
    # 2e^{−|a|}/(1 + e^{−2|a|}): 1/cosh(a) has the gradient −sinh/cosh² = −inf/inf = NaN for |a| > 710
    e = jnp.exp(-jnp.abs(a))
    return 2 * e / (1 + e * e)


def _bvn_cdf(h, k, r):
    from .bvn import bvn_cdf  # imported on use: only duals with Φ₂ need its Gauss–Legendre tables

    return bvn_cdf(h, k, r)


def _norm_pdf(z):
    from .bvn import norm_pdf

    return norm_pdf(z)


def _hyp2f1(a: float, b: float, c: float, z):
    from .hyp2f1 import hyp2f1  # imported on use: its coefficients are computed per (a, b, c) in mpmath

    return hyp2f1(a, b, c, z)


def _reduce(op):
    return lambda *args: ft.reduce(op, args)


FUNCTIONS = {
    sp.exp: jnp.exp,
    sp.log: jnp.log,
    sp.sin: jnp.sin,
    sp.cos: jnp.cos,
    sp.tan: jnp.tan,
    sp.cot: lambda a: 1 / jnp.tan(a),
    sp.sec: lambda a: 1 / jnp.cos(a),
    sp.csc: lambda a: 1 / jnp.sin(a),
    sp.sinh: jnp.sinh,
    sp.cosh: jnp.cosh,
    sp.tanh: jnp.tanh,
    sp.coth: lambda a: 1 / jnp.tanh(a),
    sp.sech: _sech,
    sp.csch: lambda a: 1 / jnp.sinh(a),
    sp.asinh: jnp.arcsinh,
    sp.asin: safe.safe_asin,
    sp.acos: safe.safe_acos,
    sp.atan: jnp.arctan,
    sp.atan2: jnp.arctan2,
    sp.erf: jax.scipy.special.erf,
    sp.erfc: jax.scipy.special.erfc,
    sp.Abs: jnp.abs,
    sp.sign: jnp.sign,
    sp.Heaviside: safe.heaviside,
    sp.Max: _reduce(jnp.maximum),
    sp.Min: _reduce(jnp.minimum),
    _softplus: lambda a: jnp.logaddexp(0, a),
    _expit: jax.nn.sigmoid,
    Product: lambda a, b: a * b,
    GramDeterminant: safe.gram_determinant,
    Dawson: jax.scipy.special.dawsn,
    Expm1: jnp.expm1,
    Phi: jax.scipy.special.ndtr,
    phi: _norm_pdf,
    Phi2: _bvn_cdf,
    sp.hyper: _hyp2f1,
}
"""class → JAX function of the lowered arguments (sp.hyper: of (a, b, c) as Python floats and z)."""

WALKED = frozenset({sp.Pow, sp.Piecewise})
"""Classes whose nodes the walk lowers itself: Pow by its exponent (safe.safe_power), Piecewise by a double
where (branches evaluated inside their own regions)."""

PARAMETER_ARGUMENTS = frozenset({sp.hyper})
"""hyper((a, b), (c,), z): the parameters are Tuples of numbers, passed to the function as Python floats."""

RATIO_ARGUMENTS = frozenset({Phi, phi, Phi2})
"""Arguments lowered as num/den with safe.safe_ratio: the engine writes them as num·(q1q2 − c²)^(−1/2) or
num·q^(−1/2), whose denominator is exactly 0 at |ρ| = 1 or q = 0, where the limit is Φ(±inf)."""

REWRITES = {sp.erfi: lambda b: 2 / sp.sqrt(sp.pi) * sp.exp(b**2) * Dawson(b)}
"""class → SymPy rewrite applied before the walk: erfi(b) = 2/√π·e^{b²}·D(b), so that e^{−a}·erfi(b) becomes
2/√π·e^{b²−a}·D(b) once exponentials are combined, and does not overflow."""


def supported() -> list[str]:
    """The names of every class this table lowers (for LoweringError messages)."""
    return sorted({cls.__name__ for cls in (*FUNCTIONS, *WALKED, *REWRITES)})
