"""σ as a sum of elementary terms, the normal form every Gaussian rule works on.

A term is  coef · xⁿ · exp(α x² + β x) · [H(ε x)] · [erf(b x + d)]  or  coef · δ(x),
with coef, α, β, b, d free of x (β, d may be complex: sin and cos enter as exp(±i b x)).
Max/Min/Abs/sign/Piecewise with breakpoints at 0 are rewritten into Heaviside pieces, erfc into erf,
trigonometric and hyperbolic functions into exponentials. Anything else is not a term: the
decomposition raises UnsupportedTerm naming the factor, and derive() moves on to another strategy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from ..symbols import x


class UnsupportedTerm(Exception):
    """σ contains a factor outside the term class (internal: caught by the strategies)."""


@dataclass(frozen=True)
class Term:
    """coef · xⁿ · exp(α x² + β x) · [H(ε x)] · [erf(b x + d)], or coef · δ(x) when delta is True."""

    coef: sp.Expr
    n: int = 0
    alpha: sp.Expr = sp.S.Zero
    beta: sp.Expr = sp.S.Zero
    heaviside: int = 0  # 0: no factor; +1: H(x); -1: H(-x)
    erf_b: sp.Expr | None = None
    erf_d: sp.Expr = sp.S.Zero
    delta: bool = False

    @property
    def is_gaussian(self) -> bool:
        """Polynomial × exponential of a quadratic: the class closed under Gaussian integration."""
        return not self.delta and self.heaviside == 0 and self.erf_b is None

    @property
    def is_constant(self) -> bool:
        return self.is_gaussian and self.n == 0 and self.alpha == 0 and self.beta == 0

    @property
    def parity(self) -> int:
        """+1 even, -1 odd, 0 neither (under x -> -x)."""
        if self.delta:
            return 1
        if self.heaviside != 0 or self.beta != 0:
            return 0
        p = -1 if self.n % 2 else 1
        if self.erf_b is not None:
            if self.erf_d != 0:
                return 0
            p = -p
        return p

    @property
    def is_homogeneous(self) -> bool:
        """xⁿ·[H(±x)]: positively homogeneous of degree n."""
        return not self.delta and self.alpha == 0 and self.beta == 0 and self.erf_b is None

    def as_expr(self) -> sp.Expr:
        if self.delta:
            return self.coef * sp.DiracDelta(x)
        e = self.coef * x**self.n * sp.exp(self.alpha * x**2 + self.beta * x)
        if self.heaviside:
            e *= sp.Heaviside(self.heaviside * x)
        if self.erf_b is not None:
            e *= sp.erf(self.erf_b * x + self.erf_d)
        return e


# ---------------------------------------------------------------- rewriting into Heaviside/exp form


def _heaviside_of_condition(cond: sp.Basic) -> sp.Expr:
    """Indicator of a condition on x as a product of Heaviside steps (breakpoints anywhere)."""
    if cond is sp.true:
        return sp.S.One
    if cond is sp.false:
        return sp.S.Zero
    if isinstance(cond, sp.And):
        out = sp.S.One
        for arg in cond.args:
            out *= _heaviside_of_condition(arg)
        return out
    if isinstance(cond, (sp.StrictGreaterThan, sp.GreaterThan)):
        return sp.Heaviside(cond.lhs - cond.rhs)
    if isinstance(cond, (sp.StrictLessThan, sp.LessThan)):
        return sp.Heaviside(cond.rhs - cond.lhs)
    raise UnsupportedTerm(f"the Piecewise condition {cond} is not an interval condition")


def _piecewise_to_heaviside(*pairs) -> sp.Expr:
    out = sp.S.Zero
    not_before = sp.S.One
    for value, cond in pairs:
        ind = _heaviside_of_condition(cond)
        out += value * ind * not_before
        not_before *= 1 - ind
    return out


def _max_to_heaviside(*args) -> sp.Expr:
    out = args[0]
    for b in args[1:]:
        out = out + (b - out) * sp.Heaviside(b - out)
    return out


def _min_to_heaviside(*args) -> sp.Expr:
    out = args[0]
    for b in args[1:]:
        out = out - (out - b) * sp.Heaviside(out - b)
    return out


def rewrite(expr: sp.Expr) -> sp.Expr:
    """Rewrite σ into Heaviside steps, erf and exponentials (the vocabulary of terms)."""
    e = expr
    e = e.replace(sp.Piecewise, lambda *a: _piecewise_to_heaviside(*a))
    e = e.replace(sp.Max, _max_to_heaviside)
    e = e.replace(sp.Min, _min_to_heaviside)
    e = e.replace(sp.Abs, lambda a: a * (2 * sp.Heaviside(a) - 1))
    e = e.replace(sp.sign, lambda a: 2 * sp.Heaviside(a) - 1)
    e = e.replace(sp.erfc, lambda a: 1 - sp.erf(a))
    e = e.replace(sp.Heaviside, lambda a, *h0: sp.Heaviside(a))
    e = e.rewrite(sp.sin, sp.exp).rewrite(sp.cos, sp.exp)
    e = e.rewrite(sp.sinh, sp.exp).rewrite(sp.cosh, sp.exp)
    return e


# ---------------------------------------------------------------- decomposition


def _linear_coefficients(arg: sp.Expr, what: str) -> tuple[sp.Expr, sp.Expr]:
    """(k, d) with arg = k·x + d, or UnsupportedTerm."""
    poly = sp.Poly(arg, x) if arg.is_polynomial(x) else None
    if poly is None or poly.degree() > 1:
        raise UnsupportedTerm(f"{what}({arg}) has an argument that is not linear in x")
    coeffs = poly.all_coeffs()
    return (coeffs[0], coeffs[1]) if len(coeffs) == 2 else (sp.S.Zero, coeffs[0])


def _quadratic_coefficients(arg: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(a2, a1, a0) with arg = a2·x² + a1·x + a0, or UnsupportedTerm."""
    if not arg.is_polynomial(x) or sp.Poly(arg, x).degree() > 2:
        raise UnsupportedTerm(f"exp({arg}) has an exponent that is not a quadratic in x")
    coeffs = sp.Poly(arg, x).all_coeffs()
    return tuple([sp.S.Zero] * (3 - len(coeffs)) + coeffs)


def _term_of_product(product: sp.Expr) -> Term | None:
    """One Term from a product of factors (None if the product vanishes almost everywhere)."""
    coef, n, alpha, beta = sp.S.One, 0, sp.S.Zero, sp.S.Zero
    steps: list[int] = []
    erf_arg = None
    for factor in sp.Mul.make_args(product):
        base, power = factor.as_base_exp()
        if not factor.has(x):
            coef *= factor
        elif factor == x:
            n += 1
        elif base == x and power.is_Integer and power > 0:
            n += int(power)
        elif isinstance(base, sp.exp) or (base is sp.E):
            arg = (base.args[0] if isinstance(base, sp.exp) else sp.S.One) * power
            c2, c1, c0 = _quadratic_coefficients(arg)
            alpha, beta, coef = alpha + c2, beta + c1, coef * sp.exp(c0)
        elif isinstance(factor, sp.Heaviside):
            k, d = _linear_coefficients(factor.args[0], "Heaviside")
            if d != 0 or k == 0:
                raise UnsupportedTerm(f"{factor} has a breakpoint away from 0")
            if not k.is_real or k.is_positive is None:
                raise UnsupportedTerm(f"{factor}: cannot decide the sign of {k}")
            steps.append(1 if k.is_positive else -1)
        elif isinstance(base, sp.Heaviside) and power.is_Integer and power > 0:
            k, d = _linear_coefficients(base.args[0], "Heaviside")
            if d != 0 or k == 0 or k.is_positive is None:
                raise UnsupportedTerm(f"{base} has a breakpoint away from 0")
            steps.append(1 if k.is_positive else -1)
        elif isinstance(factor, sp.erf):
            if erf_arg is not None:
                raise UnsupportedTerm("a product of two erf factors")
            erf_arg = _linear_coefficients(factor.args[0], "erf")
        elif isinstance(factor, sp.DiracDelta):
            raise UnsupportedTerm("a Dirac delta in σ")
        else:
            raise UnsupportedTerm(f"the factor {factor} is outside the closed-form class")
    if coef == 0:
        return None
    heaviside = 0
    if steps:
        if len(set(steps)) > 1:
            return None  # H(x)·H(-x) vanishes almost everywhere
        heaviside = steps[0]
    erf_b, erf_d = (None, sp.S.Zero) if erf_arg is None else erf_arg
    if erf_b is not None and erf_b == 0:
        coef, erf_b, erf_d = coef * sp.erf(erf_d), None, sp.S.Zero
    return Term(coef=coef, n=n, alpha=alpha, beta=beta, heaviside=heaviside, erf_b=erf_b, erf_d=erf_d)


def _key(t: Term) -> tuple:
    return (t.n, t.alpha, t.beta, t.heaviside, t.erf_b, t.erf_d, t.delta)


def combine(terms) -> tuple[Term, ...]:
    """Collect like terms (same shape, summed coefficients); drop zeros."""
    acc: dict[tuple, Term] = {}
    for t in terms:
        k = _key(t)
        acc[k] = replace(acc[k], coef=acc[k].coef + t.coef) if k in acc else t
    out = []
    for t in acc.values():
        coef = sp.simplify(t.coef) if t.coef.free_symbols else sp.nsimplify(t.coef) if t.coef.is_Float else t.coef
        coef = sp.expand(coef) if not coef.is_Number else coef
        if coef != 0:
            out.append(replace(t, coef=coef))
    return tuple(out)


def to_terms(expr: sp.Expr) -> tuple[Term, ...]:
    """Decompose σ into a sum of Terms (linearity), or raise UnsupportedTerm naming the culprit."""
    e = sp.expand(rewrite(expr), power_base=False, log=False)
    terms = []
    for product in sp.Add.make_args(e):
        t = _term_of_product(sp.powsimp(product, combine="exp"))
        if t is not None:
            terms.append(t)
    return combine(terms)


def derivative(t: Term) -> tuple[Term, ...]:
    """d/dx of a term, as terms; H' = δ and p(x)δ(x) = p(0)δ(x)."""
    if t.delta:
        raise UnsupportedTerm("the derivative of a Dirac delta")
    out: list[Term] = []
    if t.n > 0:
        out.append(replace(t, coef=t.coef * t.n, n=t.n - 1))
    if t.alpha != 0:
        out.append(replace(t, coef=2 * t.alpha * t.coef, n=t.n + 1))
    if t.beta != 0:
        out.append(replace(t, coef=t.beta * t.coef))
    if t.heaviside and t.n == 0:
        at_zero = sp.erf(t.erf_d) if t.erf_b is not None else sp.S.One
        out.append(Term(coef=t.coef * t.heaviside * at_zero, delta=True))
    if t.erf_b is not None:
        b, d = t.erf_b, t.erf_d
        out.append(
            Term(
                coef=t.coef * 2 * b / sp.sqrt(sp.pi) * sp.exp(-(d**2)),
                n=t.n,
                alpha=t.alpha - b**2,
                beta=t.beta - 2 * b * d,
                heaviside=t.heaviside,
            )
        )
    return combine(out)


def derivative_of_sum(terms) -> tuple[Term, ...]:
    return combine(d for t in terms for d in derivative(t))


def has_delta(terms) -> bool:
    return any(t.delta for t in terms)


def as_expr(terms) -> sp.Expr:
    return sp.Add(*(t.as_expr() for t in terms))
