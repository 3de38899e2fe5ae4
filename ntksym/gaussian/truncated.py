"""Truncated Gaussian moments: steps away from 0, exponentials under a step, erf(b·x + d) — down to Φ₂, φ·Φ, φ·φ.

E[f(u) g(v)] (or E[f(w)]) for terms f = coef·uⁿ·e^{αu² + βu}·[H(ε(u − a))]·[erf(bu + d)]:
  tilting       e^{wᵀAw + βᵀw}·φ_Σ(w) = Z·φ_{μ,M}(w): the exponentials become a new mean μ = Mβ and
                covariance M = (Σ⁻¹ − 2A)⁻¹, Z = det(I − 2AΣ)^(−1/2)·e^{βᵀMβ/2};
  erf           erf(bw + d) = 2·P(Y < bw + d | w) − 1 with Y ~ N(0, ½) independent: an indicator 1{bw − Y > −d};
  Stein         E[(Gᵢ − μᵢ)·h(G)] = Σₖ Sᵢₖ·E[∂ₖh(G)] (any Gaussian G, degenerate included) lowers the degree of
                the polynomial; the derivative of an indicator 1{L > t} is δ(L − t), and
                E[h·δ(L − t)] = φ_{S_LL}(t − μ_L)·E[h | L = t] (conditioning removes one indicator);
  orthant       E[1{L > t}] = Φ(h) and E[1{L₁ > t₁}·1{L₂ > t₂}] = Φ₂(h₁, h₂; S₁₂/√(S₁₁S₂₂)), hⱼ = (μⱼ − tⱼ)/√Sⱼⱼ.
An indicator whose conditional variance is exactly 0 is deterministic, H(μ − t) (ties: ½, the symmetric limit).
At most two indicators per expectation (Φ₂ is the largest function in the vocabulary); more raise UnsupportedTerm.
"""

from __future__ import annotations

import functools as ft

import sympy as sp

from ..special import Phi, Phi2, phi
from . import _budget
from .terms import Term, UnsupportedTerm

MAX_INDICATORS = 2

__all__ = ["truncated_expect", "truncated_pair"]


def _root(var: sp.Expr) -> sp.Expr:
    """√var as √numerator/√denominator, so that a vanishing factor (q1q2 − c² at |ρ| = 1) stands on its own
    in a denominator, where the lowering's safe ratio finds it."""
    num, den = sp.fraction(sp.cancel(var))
    return sp.sqrt(num) / sp.sqrt(den)


def _ratio(num: sp.Expr, var: sp.Expr) -> sp.Expr:
    """num/√var, written as num·√den/√numerator of var; when var's numerator n divides num, as (num/n)·√n
    ((c² − q1q2)/√(q1q2 − c²) is −√(q1q2 − c²): no 0/0 at |ρ| = 1)."""
    n, d = sp.fraction(sp.cancel(var))
    num_n, num_d = sp.fraction(sp.cancel(num))
    gens = sorted(n.free_symbols | num_n.free_symbols, key=str)
    if gens and n.free_symbols:
        try:
            quotient, remainder = sp.div(sp.Poly(num_n, *gens), sp.Poly(n, *gens))
            if remainder.is_zero:
                return sp.cancel(quotient.as_expr() * sp.sqrt(d) / num_d) * sp.sqrt(n)
        except sp.PolynomialError:
            pass
    return sp.cancel(num * sp.sqrt(d) / sp.sqrt(n)) if d != 1 else num / sp.sqrt(n)


def _orthant(mean, cov, p: int, thresholds) -> sp.Expr:
    r = len(thresholds)
    if r == 0:
        return sp.S.One
    if r == 1:
        return Phi(_ratio(mean[p] - thresholds[0], cov[p][p]))
    i, j = p, p + 1
    h = _ratio(mean[i] - thresholds[0], cov[i][i])
    k = _ratio(mean[j] - thresholds[1], cov[j][j])
    corr = sp.cancel(cov[i][j] / (_root(cov[i][i]) * _root(cov[j][j])))
    return Phi2(h, k, corr)


def _condition(mean, cov, p: int, thresholds, j: int):
    """Condition on indicator coordinate p + j taking its threshold: (density, mean', cov', thresholds', factor).

    Indicators left with conditional variance 0 are deterministic; they leave as a factor H(μ' − t)."""
    idx = p + j
    var, t, m = cov[idx][idx], thresholds[j], mean[idx]
    density = phi(_ratio(t - m, var)) / _root(var)
    keep = [a for a in range(len(mean)) if a != idx]
    new_mean = [sp.cancel(mean[a] + cov[a][idx] * (t - m) / var) for a in keep]
    new_cov = [[sp.cancel(cov[a][b] - cov[a][idx] * cov[idx][b] / var) for b in keep] for a in keep]
    new_thresholds = [s for i, s in enumerate(thresholds) if i != j]
    factor = sp.S.One
    for i in reversed(range(len(new_thresholds))):
        coord = p + i
        if new_cov[coord][coord] == 0:
            factor *= sp.Heaviside(sp.cancel(new_mean[coord] - new_thresholds[i]))
            del new_thresholds[i]
            del new_mean[coord]
            del new_cov[coord]
            for row in new_cov:
                del row[coord]
    return density, tuple(new_mean), tuple(tuple(row) for row in new_cov), tuple(new_thresholds), factor


@ft.lru_cache(maxsize=16384)
def _moment(powers: tuple[int, ...], mean: tuple, cov: tuple, thresholds: tuple) -> sp.Expr:
    """E[∏ Gᵢ^powersᵢ · ∏ⱼ 1{G_{p+j} > tⱼ}] for G ~ N(mean, cov) (p = len(powers) polynomial coordinates)."""
    _budget.check()
    p = len(powers)
    if not any(powers):
        return _orthant(mean, cov, p, thresholds)
    i = next(k for k, n in enumerate(powers) if n)
    lower = powers[:i] + (powers[i] - 1,) + powers[i + 1:]
    out = mean[i] * _moment(lower, mean, cov, thresholds) if mean[i] != 0 else sp.S.Zero
    for k in range(p):  # Stein: the polynomial's own derivative
        if lower[k] and cov[i][k] != 0:
            reduced = lower[:k] + (lower[k] - 1,) + lower[k + 1:]
            out += cov[i][k] * lower[k] * _moment(reduced, mean, cov, thresholds)
    for j in range(len(thresholds)):  # Stein: the indicators' derivatives, δ(L − t)
        if cov[i][p + j] != 0:
            density, m2, c2, t2, factor = _condition(mean, cov, p, thresholds, j)
            if factor != 0:
                out += cov[i][p + j] * density * factor * _moment(lower, m2, c2, t2)
    return out


def _indicator_parts(t: Term, coord: int, p: int):
    """[(multiplier, [(coefficients over the p coordinates, noise variance, threshold)])] of t's step and erf.

    H(ε(w − a)) = 1{ε·w > ε·a}; erf(bw + d) = 2·1{bw − Y > −d} − 1 in expectation over Y ~ N(0, ½)."""
    unit = [sp.S.Zero] * p
    steps = []
    if t.heaviside:
        e = list(unit)
        e[coord] = sp.Integer(t.heaviside)
        steps.append((tuple(e), sp.S.Zero, t.heaviside * t.step_at))
    if t.erf_b is None:
        return [(sp.S.One, steps)]
    e = list(unit)
    e[coord] = t.erf_b
    return [(sp.Integer(2), steps + [(tuple(e), sp.S.Half, -t.erf_d)]), (sp.S.NegativeOne, steps)]


def _augmented(mean, cov, indicators):
    """The Gaussian of (w₁..w_p, L₁..L_r), Lⱼ = aⱼ·w − Yⱼ, and the thresholds."""
    p = len(mean)
    forms = [a for a, _, _ in indicators]
    rows = [list(cov[i]) for i in range(p)]
    full_mean = list(mean) + [sp.cancel(sum(a[k] * mean[k] for k in range(p))) for a in forms]
    a_cov = [[sp.cancel(sum(a[k] * cov[k][i] for k in range(p))) for i in range(p)] for a in forms]
    size = p + len(forms)
    full = [[sp.S.Zero] * size for _ in range(size)]
    for i in range(p):
        for k in range(p):
            full[i][k] = rows[i][k]
    for j, a in enumerate(forms):
        for i in range(p):
            full[p + j][i] = full[i][p + j] = a_cov[j][i]
        for l, b in enumerate(forms):
            value = sum(a_cov[j][k] * b[k] for k in range(p)) + (indicators[j][1] if j == l else 0)
            full[p + j][p + l] = sp.cancel(value)
    return tuple(full_mean), tuple(tuple(r) for r in full), tuple(t for _, _, t in indicators)


def _check_real(*terms: Term) -> None:
    for t in terms:
        for v in (t.alpha, t.beta, t.erf_d, t.step_at) + (() if t.erf_b is None else (t.erf_b,)):
            if v.is_real is not True:
                raise UnsupportedTerm(f"the truncated-Gaussian rule needs real parameters; {t.as_expr()} has {v}")


def _expectation(parts_lists, powers, mean, cov) -> sp.Expr:
    total = sp.S.Zero
    combos = [(sp.S.One, [])]
    for parts in parts_lists:
        combos = [(m1 * m2, i1 + i2) for m1, i1 in combos for m2, i2 in parts]
    for mult, indicators in combos:
        if len(indicators) > MAX_INDICATORS:
            raise UnsupportedTerm(f"{len(indicators)} steps/erf factors in one expectation: a Gaussian orthant of "
                                  f"dimension {len(indicators)} has no closed form in Φ and Φ₂")
        m, c, t = _augmented(mean, cov, indicators)
        total += mult * _moment(tuple(powers), m, c, t)
    return total


def truncated_expect(t: Term, v: sp.Expr, m: sp.Expr = sp.S.Zero) -> sp.Expr:
    """E[t(w)] for w ~ N(m, v) (one dimension)."""
    from .univariate import complete_square

    _check_real(t)
    z, mp, vp = complete_square(t.alpha, t.beta, m, v)
    body = _expectation([_indicator_parts(t, 0, 1)], (t.n,), (sp.cancel(mp),), ((sp.cancel(vp),),))
    return t.coef * z * body


def truncated_pair(f: Term, g: Term, q1: sp.Expr, q2: sp.Expr, c: sp.Expr) -> sp.Expr:
    """E[f(u) g(v)] for (u, v) ~ N(0, [[q1, c], [c, q2]]): tilt, then truncated moments (module docstring)."""
    _check_real(f, g)
    a1, a2, b1, b2 = f.alpha, g.alpha, f.beta, g.beta
    det = sp.expand((1 - 2 * a1 * q1) * (1 - 2 * a2 * q2) - 4 * a1 * a2 * c**2)
    d = q1 * q2 - c**2
    m11, m12, m22 = (sp.cancel(e / det) for e in (q1 - 2 * a2 * d, c, q2 - 2 * a1 * d))
    mean = (sp.cancel(m11 * b1 + m12 * b2), sp.cancel(m12 * b1 + m22 * b2))
    weight = det ** sp.Rational(-1, 2) if det != 1 else sp.S.One
    if b1 != 0 or b2 != 0:
        weight *= sp.exp(sp.cancel((b1**2 * m11 + 2 * b1 * b2 * m12 + b2**2 * m22) / 2))
    parts = [_indicator_parts(f, 0, 2), _indicator_parts(g, 1, 2)]
    body = _expectation(parts, (f.n, g.n), mean, ((m11, m12), (m12, m22)))
    return f.coef * g.coef * weight * body
