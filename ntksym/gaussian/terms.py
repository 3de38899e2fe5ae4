"""σ as a sum of elementary terms, the normal form every Gaussian rule works on.

A term is  coef · xⁿ · exp(α x² + β x) · [H(ε (x − a))] · [erf(b x + d)]  or  coef · δ(x − a),
with coef, α, β, a, b, d free of x (β, d may be complex: sin and cos enter as exp(±i b x)).
Max/Min/Abs/sign/Piecewise with breakpoints anywhere are rewritten into Heaviside pieces (a product of
steps becomes one step or the difference of two: an interval), Φ and erfc into erf,
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
    """coef · xⁿ · exp(α x² + β x) · [H(ε (x − a))] · [erf(b x + d)], or coef · δ(x − a) when delta is True."""

    coef: sp.Expr
    n: int = 0
    alpha: sp.Expr = sp.S.Zero
    beta: sp.Expr = sp.S.Zero
    heaviside: int = 0  # 0: no factor; +1: H(x − a); -1: H(a − x)
    erf_b: sp.Expr | None = None
    erf_d: sp.Expr = sp.S.Zero
    delta: bool = False
    step_at: sp.Expr = sp.S.Zero  # a: the breakpoint of the step (or the location of the δ)

    @property
    def is_truncated(self) -> bool:
        """Outside the rules of Price's theorem: a step away from 0, an exponential under a step or an erf,
        or an erf with an offset. Pairs with such a term go to the truncated-Gaussian rule (truncated.py)."""
        if self.delta:
            return False
        tilted = self.alpha != 0 or self.beta != 0
        if self.heaviside and (self.step_at != 0 or tilted or self.erf_b is not None):
            return True
        return self.erf_b is not None and (self.erf_d != 0 or tilted)

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
        return (not self.delta and self.alpha == 0 and self.beta == 0 and self.erf_b is None
                and self.step_at == 0)

    def as_expr(self) -> sp.Expr:
        if self.delta:
            return self.coef * sp.DiracDelta(x - self.step_at)
        e = self.coef * x**self.n * sp.exp(self.alpha * x**2 + self.beta * x)
        if self.heaviside:
            e *= sp.Heaviside(self.heaviside * (x - self.step_at))
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


def _complement(ind: sp.Expr) -> sp.Expr:
    """1 − ind; for a single step H(g) that is H(−g) (ties have measure 0). Written as a step, not as 1 − H(g):
    e^x·(1 − H(x)) = e^x − e^x·H(x) is a difference of two terms of size e^{q/2} (elu at q = 100: 10²¹)."""
    return sp.Heaviside(-ind.args[0]) if isinstance(ind, sp.Heaviside) else 1 - ind


def _piecewise_to_heaviside(*pairs) -> sp.Expr:
    out = sp.S.Zero
    not_before = sp.S.One
    for value, cond in pairs:
        ind = _heaviside_of_condition(cond)
        out += value * ind * not_before
        not_before *= _complement(ind)
    return out


def _is_polynomial(e: sp.Expr) -> bool:
    return e.is_polynomial(x)


def _max_to_heaviside(*args) -> sp.Expr:
    out = args[0]
    for b in args[1:]:
        if _is_polynomial(out) and _is_polynomial(b):
            out = out + (b - out) * sp.Heaviside(b - out)
        else:  # each piece on its own region: no difference of large terms (see _complement)
            out = out * sp.Heaviside(out - b) + b * sp.Heaviside(b - out)
    return out


def _min_to_heaviside(*args) -> sp.Expr:
    out = args[0]
    for b in args[1:]:
        if _is_polynomial(out) and _is_polynomial(b):
            out = out - (out - b) * sp.Heaviside(out - b)
        else:
            out = out * sp.Heaviside(b - out) + b * sp.Heaviside(out - b)
    return out


def _unnest_step(h: sp.Heaviside) -> sp.Expr:
    """H(g) with a step s inside g: H(g) = H(s)·H(g|H(s)=1) + (1 − H(s))·H(g|H(s)=0) (ties have measure 0).

    Max/Min of pieces that are themselves piecewise (relu6 = min(max(x, 0), 6)) give such nested steps."""
    inner = next(iter(h.args[0].atoms(sp.Heaviside)))
    on, off = h.args[0].subs(inner, 1), h.args[0].subs(inner, 0)
    return inner * sp.Heaviside(on) + (1 - inner) * sp.Heaviside(off)


def rewrite(expr: sp.Expr) -> sp.Expr:
    """Rewrite σ into Heaviside steps, erf and exponentials (the vocabulary of terms)."""
    from ..special import Phi

    e = expr
    e = e.replace(sp.Piecewise, lambda *a: _piecewise_to_heaviside(*a))
    e = e.replace(sp.Max, _max_to_heaviside)
    e = e.replace(sp.Min, _min_to_heaviside)
    e = e.replace(sp.Abs, lambda a: a * (2 * sp.Heaviside(a) - 1))
    e = e.replace(sp.sign, lambda a: 2 * sp.Heaviside(a) - 1)
    e = e.replace(sp.erfc, lambda a: 1 - sp.erf(a))
    e = e.replace(Phi, lambda a: (1 + sp.erf(a / sp.sqrt(2))) / 2)
    e = e.replace(sp.Heaviside, lambda a, *h0: sp.Heaviside(a))
    for _ in range(64):  # each pass removes one level of nesting; 64 bounds a pathological input
        nested = [h for h in e.atoms(sp.Heaviside) if h.args[0].has(sp.Heaviside)]
        if not nested:
            break
        e = e.xreplace({h: _unnest_step(h) for h in nested})
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


def _step(factor: sp.Expr) -> tuple[int, sp.Expr]:
    """H(k·x + d) as (ε, a) with H(ε(x − a)): ε = sign(k), a = −d/k."""
    k, d = _linear_coefficients(factor.args[0], "Heaviside")
    if k == 0:
        raise UnsupportedTerm(f"{factor} does not depend on x")
    if not k.is_real or k.is_positive is None:
        raise UnsupportedTerm(f"{factor}: cannot decide the sign of {k}")
    a = sp.nsimplify(-d / k) if (-d / k).is_Float else -d / k
    return (1 if k.is_positive else -1), a


def _interval(steps: list[tuple[int, sp.Expr]]) -> list[tuple[int, int, sp.Expr]] | None:
    """A product of steps as a signed sum of single steps: [(sign, ε, a)], [] for no step, None if it vanishes.

    ∏ H(x − aᵢ)·∏ H(bⱼ − x) is the indicator of (L, U) with L = max aᵢ, U = min bⱼ: H(x − L) − H(x − U)."""
    lower = [a for e, a in steps if e > 0]
    upper = [a for e, a in steps if e < 0]
    try:
        lo = sp.Max(*lower) if lower else None
        hi = sp.Min(*upper) if upper else None
        if isinstance(lo, sp.Max) or isinstance(hi, sp.Min):
            raise TypeError
        if lo is not None and hi is not None and bool(lo >= hi):
            return None
    except TypeError:
        raise UnsupportedTerm(f"cannot order the breakpoints {[a for _, a in steps]}") from None
    if lo is None and hi is None:
        return []
    if hi is None:
        return [(1, 1, lo)]
    if lo is None:
        return [(1, -1, hi)]
    return [(1, 1, lo), (-1, 1, hi)]


def _terms_of_product(product: sp.Expr) -> list[Term]:
    """The Terms of a product of factors (none if the product vanishes almost everywhere)."""
    coef, n, alpha, beta = sp.S.One, 0, sp.S.Zero, sp.S.Zero
    steps: list[tuple[int, sp.Expr]] = []
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
            steps.append(_step(factor))
        elif isinstance(base, sp.Heaviside) and power.is_Integer and power > 0:
            steps.append(_step(base))
        elif isinstance(factor, sp.erf):
            if erf_arg is not None:
                raise UnsupportedTerm("a product of two erf factors")
            erf_arg = _linear_coefficients(factor.args[0], "erf")
        elif isinstance(factor, sp.DiracDelta):
            raise UnsupportedTerm("a Dirac delta in σ")
        else:
            raise UnsupportedTerm(f"the factor {factor} is outside the closed-form class")
    if coef == 0:
        return []
    pieces = _interval(steps)
    if pieces is None:
        return []  # H(x − a)·H(b − x) with b ≤ a vanishes almost everywhere
    erf_b, erf_d = (None, sp.S.Zero) if erf_arg is None else erf_arg
    if erf_b is not None and erf_b == 0:
        coef, erf_b, erf_d = coef * sp.erf(erf_d), None, sp.S.Zero
    shape = Term(coef=coef, n=n, alpha=alpha, beta=beta, erf_b=erf_b, erf_d=erf_d)
    if not pieces:
        return [shape]
    return [replace(shape, coef=sign * coef, heaviside=eps, step_at=a) for sign, eps, a in pieces]


def _key(t: Term) -> tuple:
    return (t.n, t.alpha, t.beta, t.heaviside, t.erf_b, t.erf_d, t.delta, t.step_at)


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
        terms.extend(_terms_of_product(sp.powsimp(product, combine="exp")))
    return combine(terms)


def derivative(t: Term) -> tuple[Term, ...]:
    """d/dx of a term, as terms; H(ε(x − a))' = ε·δ(x − a) and f(x)δ(x − a) = f(a)δ(x − a)."""
    if t.delta:
        raise UnsupportedTerm("the derivative of a Dirac delta")
    out: list[Term] = []
    if t.n > 0:
        out.append(replace(t, coef=t.coef * t.n, n=t.n - 1))
    if t.alpha != 0:
        out.append(replace(t, coef=2 * t.alpha * t.coef, n=t.n + 1))
    if t.beta != 0:
        out.append(replace(t, coef=t.beta * t.coef))
    if t.heaviside:
        a = t.step_at
        at_a = a**t.n * sp.exp(t.alpha * a**2 + t.beta * a)
        if t.erf_b is not None:
            at_a *= sp.erf(t.erf_b * a + t.erf_d)
        if at_a != 0:
            out.append(Term(coef=t.coef * t.heaviside * at_a, delta=True, step_at=a))
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


def jump_points(terms) -> list[sp.Expr]:
    """Where σ jumps: the locations of the δ terms left in σ' after like terms are collected."""
    return sorted({t.step_at for t in terms if t.delta}, key=lambda a: float(a) if a.is_number else 0.0)


def as_expr(terms) -> sp.Expr:
    return sp.Add(*(t.as_expr() for t in terms))
