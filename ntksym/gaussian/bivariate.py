"""Two-dimensional Gaussian expectations E[f(u) g(v)], (u, v) ~ N(0, [[q1, c], [c, q2]]), of Terms.

Rules, tried in order (each a pure function of the pair and the covariance):
  constant      one side constant: E[f(u)]·g, a one-dimensional expectation;
  parity        f even and g odd (or the reverse): 0, since (u, v) and (−u, −v) have the same law;
  orthant       δ(u)δ(v): the bivariate density at 0, 1/(2π√(q1q2 − c²));
  conditioning  δ(u)·g(v): φ_{q1}(0)·E[g(v) | u = 0], and v | u=0 ~ N(0, (q1q2 − c²)/q1);
  gaussian      polynomial × exp(quadratic) on both sides: complete the square in 2-D, then Isserlis;
  truncated     a step away from 0, an exponential under a step, an erf with an offset (truncated.py):
                tilting, Stein's lemma and conditioning down to Φ₂, φ·Φ and φ·φ;
  price         otherwise Price's theorem, ∂E[f(u)g(v)]/∂c = E[f'(u)g'(v)]: recurse on the derivatives
                and integrate back in c from c = 0, where E[f(u)g(v)] = E[f(u)]·E[g(v)].
"""

from __future__ import annotations

import functools as ft
from dataclasses import dataclass

import sympy as sp

from . import _budget
from .integrate import integrate_from_zero
from .terms import Term, UnsupportedTerm, derivative
from .univariate import _double_factorial_odd, expect

MAX_PRICE_DEPTH = 8


@dataclass(frozen=True)
class Covariance:
    """The symbolic covariance [[q1, c], [c, q2]] the rules work in (symbols, or 1 for unit variances)."""

    q1: sp.Expr
    q2: sp.Expr
    c: sp.Symbol


def _central_moment_2d(i: int, j: int, m11, m12, m22) -> sp.Expr:
    """E[z1^i z2^j] for (z1, z2) ~ N(0, [[m11, m12], [m12, m22]]) (Isserlis)."""
    out = sp.S.Zero
    for k in range(min(i, j) + 1):
        if (i - k) % 2 or (j - k) % 2:
            continue
        out += (sp.binomial(i, k) * sp.binomial(j, k) * sp.factorial(k) * m12**k
                * _double_factorial_odd(i - k) * m11 ** ((i - k) // 2)
                * _double_factorial_odd(j - k) * m22 ** ((j - k) // 2))
    return out


def _gaussian_pair(f: Term, g: Term, cov: Covariance) -> sp.Expr:
    """E[uⁿ e^{α1u²+β1u} · vᵐ e^{α2v²+β2v}]: complete the square, then moments of N(μ, M).

    With N = I − 2AΣ, A = diag(α1, α2): the weight is det(N)^(-1/2) exp(βᵀMβ/2) and M = Σ N⁻¹, whose
    entries are (q1 − 2α2 D, c, q2 − 2α1 D)/det(N) with D = q1q2 − c²."""
    q1, q2, c = cov.q1, cov.q2, cov.c
    a1, a2, b1, b2 = f.alpha, g.alpha, f.beta, g.beta
    det = sp.expand((1 - 2 * a1 * q1) * (1 - 2 * a2 * q2) - 4 * a1 * a2 * c**2)
    d = q1 * q2 - c**2
    m11, m12, m22 = (q1 - 2 * a2 * d) / det, c / det, (q2 - 2 * a1 * d) / det
    mu1, mu2 = m11 * b1 + m12 * b2, m12 * b1 + m22 * b2
    exp_part = sp.exp(sp.cancel((b1**2 * m11 + 2 * b1 * b2 * m12 + b2**2 * m22) / 2)) if (b1 != 0 or b2 != 0) else 1
    moment = sp.S.Zero
    for i in range(f.n + 1):
        for j in range(g.n + 1):
            moment += (sp.binomial(f.n, i) * sp.binomial(g.n, j) * mu1 ** (f.n - i) * mu2 ** (g.n - j)
                       * _central_moment_2d(i, j, m11, m12, m22))
    return f.coef * g.coef * _over_power_of(sp.together(moment), det, sp.Rational(1, 2)) * exp_part


def _over_power_of(ratio: sp.Expr, det: sp.Expr, extra: sp.Expr) -> sp.Expr:
    """numerator·det^(−k−extra) for ratio = numerator/det^k: a single power of the determinant, so that
    Price's integration in c sees one quadratic base."""
    num, den = sp.fraction(sp.together(ratio))
    if not det.free_symbols:
        return sp.expand(num / den) * det ** (-extra)
    gens = sorted(det.free_symbols, key=str)
    den_poly, det_poly, k = sp.Poly(den, *gens), sp.Poly(det, *gens), 0
    while den_poly.total_degree() > 0:
        quotient, remainder = sp.div(den_poly, det_poly)
        if not remainder.is_zero:
            break
        den_poly, k = quotient, k + 1
    return sp.expand(num / den_poly.as_expr()) * det ** (-k - extra)


@ft.lru_cache(maxsize=8192)
def pair(f: Term, g: Term, cov: Covariance, depth: int = 0) -> tuple[sp.Expr, str]:
    """E[f(u) g(v)] in closed form and the name of the rule that produced it."""
    _budget.check()
    if f.is_constant:
        return f.coef * expect(g, cov.q2), "constant"
    if g.is_constant:
        return g.coef * expect(f, cov.q1), "constant"
    if f.parity * g.parity == -1:
        return sp.S.Zero, "parity"
    det = cov.q1 * cov.q2 - cov.c**2
    if (f.delta and f.step_at != 0) or (g.delta and g.step_at != 0):
        raise UnsupportedTerm("a Dirac δ away from 0 (σ jumps there)")
    if f.delta and g.delta:
        return f.coef * g.coef / (2 * sp.pi * sp.sqrt(det)), "orthant"
    if f.delta:
        return f.coef / sp.sqrt(2 * sp.pi * cov.q1) * expect(g, det / cov.q1), "conditioning"
    if g.delta:
        return g.coef / sp.sqrt(2 * sp.pi * cov.q2) * expect(f, det / cov.q2), "conditioning"
    if f.is_gaussian and g.is_gaussian:
        return _gaussian_pair(f, g, cov), "gaussian"
    if f.is_truncated or g.is_truncated:
        from .truncated import truncated_pair

        return truncated_pair(f, g, cov.q1, cov.q2, cov.c), "truncated Gaussian (tilting, Stein, Φ₂)"
    return _price(f, g, cov, depth), "price"


def _price(f: Term, g: Term, cov: Covariance, depth: int) -> sp.Expr:
    """Price's theorem: E[f g](c) = E[f]E[g] + ∫₀^c E[f'(u) g'(v)] dτ."""
    if depth >= MAX_PRICE_DEPTH:
        raise UnsupportedTerm("Price's theorem did not reach elementary expectations")
    for t in (f, g):
        if (t.heaviside or t.erf_b is not None) and (t.alpha != 0 or t.beta != 0):
            # d/dx [e^{αx²+βx}·H(x)] contains e^{αx²+βx}·H(x) again: differentiating never terminates
            raise UnsupportedTerm(f"Price's theorem does not terminate on {t.as_expr()}")
    start = expect(f, cov.q1) * expect(g, cov.q2)
    integral = sp.S.Zero
    for df in derivative(f):
        for dg in derivative(g):
            value, _ = pair(df, dg, cov, depth + 1)
            if value != 0:
                integral += integrate_from_zero(value, cov.c)
    return start + integral


def _conjugate(t: Term) -> Term:
    """The complex conjugate term (all symbols are real): pairs of conjugate terms come from sin/cos."""
    conj = (lambda e: e.subs(sp.I, -sp.I))
    return Term(coef=conj(t.coef), n=t.n, alpha=t.alpha, beta=conj(t.beta), heaviside=t.heaviside,
                erf_b=t.erf_b, erf_d=conj(t.erf_d), delta=t.delta, step_at=t.step_at)


def _real_part(e: sp.Expr) -> sp.Expr:
    """Re e for an expression in real symbols: exp(a + ib) = eᵃ(cos b + i sin b), then drop the i-terms."""
    def split(arg):
        if not arg.has(sp.I):
            return sp.exp(arg)
        re_part = sp.expand((arg + arg.subs(sp.I, -sp.I)) / 2)
        im_part = sp.expand((arg - arg.subs(sp.I, -sp.I)) / (2 * sp.I))
        return sp.exp(re_part) * (sp.cos(im_part) + sp.I * sp.sin(im_part))

    e = sp.expand(e.replace(lambda z: isinstance(z, sp.exp), lambda z: split(z.args[0])), power_base=False,
                  multinomial=False)
    return sp.expand((e + e.subs(sp.I, -sp.I)) / 2, power_base=False, multinomial=False)


def expect_pair_sums(fs, gs, cov: Covariance) -> tuple[sp.Expr, dict[str, int]]:
    """E[(Σ fᵢ)(u) (Σ gⱼ)(v)] = Σᵢⱼ E[fᵢ(u) gⱼ(v)] (linearity with cross terms), and rule counts.

    σ is real, so complex terms (from sin/cos) come in conjugate pairs; the pair (f̄, ḡ) contributes
    the conjugate of (f, g), so each such couple is computed once, as 2·Re E[f(u) g(v)]."""
    total = sp.S.Zero
    rules: dict[str, int] = {}
    fs, gs = tuple(fs), tuple(gs)
    done = set()
    for f in fs:
        for g in gs:
            if (f, g) in done:
                continue
            value, rule = pair(f, g, cov)
            rules[rule] = rules.get(rule, 0) + 1
            partner = (_conjugate(f), _conjugate(g))
            if value.has(sp.I) and partner != (f, g) and partner[0] in fs and partner[1] in gs:
                done.add(partner)
                value = 2 * _real_part(value)
            total += value
    return total, rules
