"""Overflow-safe SymPy forms shared by the numeric back ends (NumPy quadrature, JAX lowering).

log(1 + e^a) and e^a/(1 + e^a)^k overflow for large a when evaluated as written; stabilize() rewrites
them into softplus/expit functions that every back end evaluates stably. Symbolic only: no NumPy, no JAX.
"""

from __future__ import annotations

import sympy as sp


def _power(body: str, exp) -> str:
    return body if exp is None else rf"{body}^{{{exp}}}"


class _softplus(sp.Function):
    """log(1 + exp(a)), evaluated as logaddexp(0, a) so that it does not overflow."""

    nargs = 1

    def fdiff(self, argindex=1):
        return _expit(self.args[0])

    def _latex(self, printer, exp=None):
        return _power(rf"\log\left(1 + e^{{{printer._print(self.args[0])}}}\right)", exp)


class _expit(sp.Function):
    """1/(1 + exp(−a)), evaluated as scipy.special.expit so that it does not overflow."""

    nargs = 1

    def fdiff(self, argindex=1):
        a = self.args[0]
        return _expit(a) * _expit(-a)

    def _latex(self, printer, exp=None):
        return _power(rf"\left(1 + e^{{{printer._print(-self.args[0])}}}\right)", -1 if exp is None else f"-{exp}")


# Forms the JAX lowering rewrites into (ntksym.lower._rewrite). They live here, on the symbolic side, so that
# ntksym.vocabulary can give them their mpmath/NumPy evaluations and tests can evaluate rewritten trees.


class Product(sp.Function):
    """An opaque q1·q2, so that SymPy does not split √(q1·q2) back into √q1·√q2 (see ntksym.lower)."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        if argindex == 1:
            return b
        if argindex == 2:
            return a
        raise sp.ArgumentIndexError(self, argindex)

    def _latex(self, printer, exp=None):
        a, b = (printer.parenthesize(v, 50) for v in self.args)
        return _power(rf"\left({a} {b}\right)", exp)


class GramDeterminant(sp.Function):
    """q1·q2 − c², the determinant of the covariance [[q1, c], [c, q2]], lowered as (√(q1q2) − |c|)(√(q1q2) + |c|):
    exactly 0 at |ρ| = 1, where c was clipped to ±√(q1q2); as written, XLA contracts q1·q2 − c·c into an FMA
    that leaves the rounding error of c² (~eps·q1q2), and its square root a √eps error in every Φ(√(…)/√q)."""

    nargs = 3

    def fdiff(self, argindex=1):
        a, b, cc = self.args
        if argindex == 1:
            return b
        if argindex == 2:
            return a
        if argindex == 3:
            return -2 * cc
        raise sp.ArgumentIndexError(self, argindex)

    def _latex(self, printer, exp=None):
        a, b, cc = (printer.parenthesize(v, 50) for v in self.args)
        return _power(rf"\left({a} {b} - {cc}^{{2}}\right)", exp)


class Dawson(sp.Function):
    """Dawson's integral D(z) = e^{−z²}∫₀^z e^{t²}dt; erfi(z) = 2/√π·e^{z²}·D(z) is lowered through it,
    so that e^{−a}·erfi(b) becomes 2/√π·e^{b²−a}·D(b) and does not overflow."""

    nargs = 1

    def fdiff(self, argindex=1):
        z = self.args[0]
        return 1 - 2 * z * Dawson(z)

    def _latex(self, printer, exp=None):
        return _power(rf"D\left({printer._print(self.args[0])}\right)", exp)


class Expm1(sp.Function):
    """e^a − 1, lowered to jnp.expm1: exact near a = 0, where e^a − 1 cancels (elu at x = −1e-6 in float32
    lost 1e-1 of its value, so K at q = 1e-12 lost 2e-3)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.exp(self.args[0])

    def _latex(self, printer, exp=None):
        return _power(rf"\left(e^{{{printer._print(self.args[0])}}} - 1\right)", exp)




def _is_one_plus_exp(e: sp.Basic) -> sp.Expr | None:
    """a if e is 1 + exp(a), else None."""
    if isinstance(e, sp.Add) and len(e.args) == 2 and sp.S.One in e.args:
        other = e.args[0] if e.args[1] == 1 else e.args[1]
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


def _is_expit_power(e: sp.Basic) -> bool:
    return isinstance(e, sp.Pow) and bool(e.exp.is_negative) and _is_one_plus_exp(e.base) is not None


def _stabilize_log(e: sp.log) -> sp.Expr:
    # log(c + exp(a)) = log c + softplus(a − log c): exp(a) overflows for a > 709, logaddexp does not.
    arg = e.args[0]
    if isinstance(arg, sp.Add) and len(arg.args) == 2:
        const, other = (arg.args[0], arg.args[1]) if arg.args[0].is_number else (arg.args[1], arg.args[0])
        if const.is_number and const.is_positive and isinstance(other, sp.exp):
            return sp.log(const) + _softplus(other.args[0] - sp.log(const))
    return e


def _stabilize_mul(factors: list[sp.Expr]) -> sp.Expr:
    # exp(a)^j·(1 + exp(a))^(−k) = expit(a)^j·expit(−a)^(k−j) for 0 ≤ j ≤ k: inf/inf becomes 1·0.
    factors = list(factors)
    for i, fac in enumerate(factors):
        if not _is_expit_power(fac):
            continue
        a = _stabilize(_is_one_plus_exp(fac.base))
        k = -fac.exp
        for j, other in enumerate(factors):
            if j == i or not isinstance(other, sp.exp):
                continue
            ratio = sp.simplify(_stabilize(other.args[0]) / a)
            if ratio.is_Integer and 0 < ratio <= k:
                factors[i] = _expit(a) ** ratio * _expit(-a) ** (k - ratio)
                factors[j] = sp.S.One
                break
        else:
            factors[i] = _expit(-a) ** k
    return sp.Mul(*factors)


def _stabilize(e: sp.Basic) -> sp.Basic:
    """Rewrite the overflow-prone forms log(1 + exp(a)) and exp(a)/(1 + exp(a))^k (bottom-up)."""
    if not e.args:
        return e
    if isinstance(e, sp.Piecewise):
        return sp.Piecewise(*[(_stabilize(ex), cond) for ex, cond in e.args])
    if isinstance(e, sp.Mul):  # before its factors, so that (1 + exp(a))^(−k) still meets exp(a)
        return _stabilize_mul([fac if _is_expit_power(fac) else _stabilize(fac) for fac in e.args])
    new = e.func(*[_stabilize(a) for a in e.args])
    if isinstance(new, sp.log):
        return _stabilize_log(new)
    if isinstance(new, sp.Pow) and new.exp.is_negative and _is_one_plus_exp(new.base) is not None:
        return _expit(-_is_one_plus_exp(new.base)) ** (-new.exp)
    return new
