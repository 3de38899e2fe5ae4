"""One-dimensional Gaussian expectations E[t(w)], w ~ N(m, v), of a Term in closed form.

Rules: completing the square moves exp(αw² + βw) into the Gaussian; raw moments of N(m, v);
half-line moments for a Heaviside factor (recursion J_n = m J_{n-1} + (n-1) v J_{n-2});
Stein's lemma E[(w-m) f(w)] = v E[f'(w)] for an erf factor, down to E[erf(bw+d)] = erf((bm+d)/√(1+2b²v));
δ(w) gives the density at 0.
"""

from __future__ import annotations

import sympy as sp

from .terms import Term, UnsupportedTerm


def _double_factorial_odd(k: int) -> int:
    """(k-1)!! for even k ≥ 0: the k-th moment of N(0, 1)."""
    out = 1
    for j in range(k - 1, 0, -2):
        out *= j
    return out


def raw_moment(n: int, m: sp.Expr, v: sp.Expr) -> sp.Expr:
    """E[wⁿ] for w ~ N(m, v)."""
    return sp.Add(*(sp.binomial(n, k) * m ** (n - k) * v ** (k // 2) * _double_factorial_odd(k) for k in range(0, n + 1, 2)))


def complete_square(alpha, beta, m, v) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """exp(αw² + βw)·φ_{m,v}(w) = Z·φ_{m',v'}(w); returns (Z, m', v').

    Needs 1 - 2αv > 0 (else E diverges)."""
    if alpha == 0 and beta == 0:
        return sp.S.One, m, v
    a = 1 / (2 * v) - alpha  # coefficient of -w² after combining
    if a.is_nonpositive:
        raise UnsupportedTerm("a Gaussian moment diverges (exp(αw²) with α ≥ 1/(2v))")
    vp = sp.cancel(1 / (2 * a))
    mp = sp.cancel((m / v + beta) * vp)
    log_z = sp.cancel(-(m**2) / (2 * v) + (m / v + beta) ** 2 * vp / 2)
    z = sp.sqrt(sp.cancel(vp / v)) * sp.exp(log_z)
    return z, mp, vp


def _half_line_moment(n: int, m, v) -> sp.Expr:
    """∫₀^∞ wⁿ φ_{m,v}(w) dw."""
    phi0 = sp.exp(-(m**2) / (2 * v)) / sp.sqrt(2 * sp.pi * v)
    j_prev = (1 + sp.erf(m / sp.sqrt(2 * v))) / 2
    if n == 0:
        return j_prev
    j = m * j_prev + v * phi0
    for k in range(2, n + 1):
        j_prev, j = j, m * j + (k - 1) * v * j_prev
    return j


def _erf_moment(n: int, b, d, m, v) -> sp.Expr:
    """E[wⁿ erf(bw + d)], w ~ N(m, v), by Stein's lemma."""
    if n == 0:
        return sp.erf((b * m + d) / sp.sqrt(1 + 2 * b**2 * v))
    out = m * _erf_moment(n - 1, b, d, m, v)
    if n >= 2:
        out += v * (n - 1) * _erf_moment(n - 2, b, d, m, v)
    # v·E[w^{n-1} · (2b/√π) exp(-(bw+d)²)]
    g = Term(coef=2 * b / sp.sqrt(sp.pi) * sp.exp(-(d**2)), n=n - 1, alpha=-(b**2), beta=-2 * b * d)
    return out + v * expect(g, v, m)


def expect(t: Term, v: sp.Expr, m: sp.Expr = sp.S.Zero) -> sp.Expr:
    """E[t(w)] for w ~ N(m, v), v > 0, in closed form (UnsupportedTerm if outside the rules)."""
    if t.delta:
        return t.coef * sp.exp(-((t.step_at - m) ** 2) / (2 * v)) / sp.sqrt(2 * sp.pi * v)
    if t.is_truncated:
        from .truncated import truncated_expect

        return truncated_expect(t, v, m)
    z, mp, vp = complete_square(t.alpha, t.beta, m, v)
    if t.heaviside and t.erf_b is not None:
        raise UnsupportedTerm("a Heaviside step times an erf in one term")
    if t.heaviside:
        if t.heaviside > 0:
            body = _half_line_moment(t.n, mp, vp)
        else:
            body = (-1) ** t.n * _half_line_moment(t.n, -mp, vp)
    elif t.erf_b is not None:
        body = _erf_moment(t.n, t.erf_b, t.erf_d, mp, vp)
    else:
        body = raw_moment(t.n, mp, vp)
    return t.coef * z * body


def expect_sum(terms, v: sp.Expr, m: sp.Expr = sp.S.Zero) -> sp.Expr:
    return sp.Add(*(expect(t, v, m) for t in terms))
