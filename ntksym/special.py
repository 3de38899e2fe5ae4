"""The special functions ntksym's engine emits beyond SymPy's own: Φ, φ and the bivariate normal CDF Φ₂.

Φ₂(h, k; ρ) = P(X ≤ h, Y ≤ k) for standard normals with correlation ρ is the canonical form of every
truncated bivariate Gaussian moment (ELU, SELU, ReLU6, shifted steps, erf(bx + d)): it *is* the orthant
probability the rules arrive at, its partial derivatives are elementary (∂Φ₂/∂h = φ(h)·Φ((k − ρh)/√(1 − ρ²)),
∂Φ₂/∂ρ = the bivariate density), and its limits at ρ = ±1 are Φ(min(h, k)) and max(0, Φ(h) + Φ(k) − 1).
Owen's T(h, a) would need the sign cases of h·k and a → ∞ at ρ → ±1 to say the same thing.

Each class carries its derivative (fdiff), its exact values (eval), an mpmath evaluation at any precision
(`_eval_evalf`, and `MPMATH` for lambdify) and its LaTeX. Never imports JAX (the lowering lives in
ntksym.lower). The numeric targets of every function, these included, are listed in ntksym.vocabulary.
"""

from __future__ import annotations

import mpmath
import sympy as sp

__all__ = ["Phi", "phi", "Phi2", "bvn_mpmath", "MPMATH"]


class phi(sp.Function):  # noqa: N801 - the mathematical name
    """The standard normal density φ(z) = e^{−z²/2}/√(2π)."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z in (sp.oo, -sp.oo):
            return sp.S.Zero
        if z.is_zero:
            return 1 / sp.sqrt(2 * sp.pi)
        if z.could_extract_minus_sign():
            return cls(-z)
        return None

    def fdiff(self, argindex=1):
        z = self.args[0]
        return -z * phi(z)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return True if self.args[0].is_real and self.args[0].is_finite else None

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi)

    def _eval_evalf(self, prec):
        try:
            z = self.args[0]._to_mpmath(prec)
        except ValueError:  # not a finite number (e.g. 1/0 at a degenerate covariance): leave unevaluated
            return None
        with mpmath.workprec(prec):
            return sp.Float._new(mpmath.npdf(z)._mpf_, prec)

    def _latex(self, printer, exp=None):
        body = rf"\varphi\left({printer._print(self.args[0])}\right)"
        return body if exp is None else rf"{body}^{{{exp}}}"


class Phi(sp.Function):  # noqa: N801 - the mathematical name
    """The standard normal CDF Φ(z) = (1 + erf(z/√2))/2."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z is sp.oo:
            return sp.S.One
        if z is -sp.oo:
            return sp.S.Zero
        if z.is_zero:
            return sp.S.Half
        return None

    def fdiff(self, argindex=1):
        return phi(self.args[0])

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_rewrite_as_erf(self, z, **kwargs):
        return (1 + sp.erf(z / sp.sqrt(2))) / 2

    def _eval_evalf(self, prec):
        try:
            z = self.args[0]._to_mpmath(prec)
        except ValueError:
            return None
        with mpmath.workprec(prec):
            return sp.Float._new(mpmath.ncdf(z)._mpf_, prec)

    def _latex(self, printer, exp=None):
        body = rf"\Phi\left({printer._print(self.args[0])}\right)"
        return body if exp is None else rf"{body}^{{{exp}}}"


class Phi2(sp.Function):  # noqa: N801 - the mathematical name
    """The bivariate normal CDF Φ₂(h, k; ρ) = P(X ≤ h, Y ≤ k), (X, Y) standard normal with correlation ρ."""

    nargs = 3

    @classmethod
    def eval(cls, h, k, r):
        if sp.oo in (h, k) or -sp.oo in (h, k):
            if -sp.oo in (h, k):
                return sp.S.Zero
            return Phi(k) if h is sp.oo else Phi(h)
        if r.is_zero:
            return Phi(h) * Phi(k)
        if r == 1:
            return Phi(sp.Min(h, k))
        if r == -1 and (h + k).is_number:  # P(X ≤ h, −X ≤ k) = P(−k ≤ X ≤ h)
            return Phi(h) - Phi(-k) if bool(h + k > 0) else sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        h, k, r = self.args
        if argindex == 1:
            return phi(h) * Phi((k - r * h) / sp.sqrt(1 - r**2))
        if argindex == 2:
            return phi(k) * Phi((h - r * k) / sp.sqrt(1 - r**2))
        if argindex == 3:
            return sp.exp(-(h**2 - 2 * r * h * k + k**2) / (2 * (1 - r**2))) / (2 * sp.pi * sp.sqrt(1 - r**2))
        raise sp.ArgumentIndexError(self, argindex)

    def _eval_is_real(self):
        return all(a.is_real for a in self.args) or None

    def _eval_evalf(self, prec):
        try:
            args = [a._to_mpmath(prec) for a in self.args]
        except ValueError:
            return None
        with mpmath.workprec(prec):
            return sp.Float._new(mpmath.mpf(bvn_mpmath(*args))._mpf_, prec)

    def _latex(self, printer, exp=None):
        h, k, r = (printer._print(a) for a in self.args)
        body = rf"\Phi_2\left({h}, {k}; {r}\right)"
        return body if exp is None else rf"{body}^{{{exp}}}"


def bvn_mpmath(h, k, r):
    """Φ₂(h, k; ρ) at mpmath's working precision (guard digits added), ρ = ±1 and infinite h, k as limits.

    First Φ(h)Φ(k) + (1/2π)∫₀^{asin ρ} e^{−(h² + k² − 2hk sin θ)/(2cos²θ)} dθ (a smooth integrand: fast); where
    that cancels (the result far below its two parts — the far tails: 7.7e-11 relative error at Φ₂ ≈ 3.7e-24 in
    30 digits), the positive form ∫_{−∞}^{min(h,k)} φ(x)·Φ((max − ρx)/√(1 − ρ²)) dx, split at the transition
    x = max/ρ (width √(1 − ρ²)) and around it, which is accurate relative to itself."""
    h, k, r = mpmath.mpf(h), mpmath.mpf(k), mpmath.mpf(r)
    if mpmath.isnan(h) or mpmath.isnan(k) or mpmath.isnan(r):
        return mpmath.nan
    r = min(max(r, mpmath.mpf(-1)), mpmath.mpf(1))
    if h == -mpmath.inf or k == -mpmath.inf:
        return mpmath.mpf(0)
    if h == mpmath.inf:
        return mpmath.ncdf(k)
    if k == mpmath.inf:
        return mpmath.ncdf(h)
    if r == 1:
        return mpmath.ncdf(min(h, k))
    if r == -1:
        return max(mpmath.mpf(0), mpmath.ncdf(h) - mpmath.ncdf(-k))
    with mpmath.extradps(15):
        hs, hk = (h * h + k * k) / 2, h * k

        def theta_integrand(theta):
            sn = mpmath.sin(theta)
            return mpmath.exp((sn * hk - hs) / (1 - sn * sn))

        base = mpmath.ncdf(h) * mpmath.ncdf(k)
        part = mpmath.quad(theta_integrand, [0, mpmath.asin(r)]) / (2 * mpmath.pi)
        value = base + part
        if abs(value) > mpmath.mpf(10) ** (-8) * (abs(base) + abs(part)):
            return +value
        lo, hi = (h, k) if h <= k else (k, h)
        s = mpmath.sqrt((1 - r) * (1 + r))
        big = mpmath.mpf(10) ** 8  # Φ(±10⁸) is 0 or 1 at any precision; mpmath's erfc overflows near 10^30

        def integrand(t):
            return mpmath.npdf(t) * mpmath.ncdf(min(max((hi - r * t) / s, -big), big))

        centre = hi / r if r != 0 else mpmath.mpf(0)
        marks = {mpmath.mpf(0), centre} | {centre + sgn * m * s / abs(r or 1) for sgn in (-1, 1) for m in (1, 10, 100)}
        points = [-mpmath.inf] + sorted(p for p in marks if p < lo) + [lo]
        return +mpmath.quad(integrand, points)


MPMATH = {"Phi": mpmath.ncdf, "phi": mpmath.npdf, "Phi2": bvn_mpmath}
"""The mpmath evaluations of this module's functions, by SymPy class name (for lambdify's modules=)."""
