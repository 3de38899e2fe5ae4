"""Closed-form duals of fractional powers: |x|^α, sign(x)·|x|^α, max(±x, 0)^α and their mixtures.

The arc-cosine family beyond integer degrees. σ is accepted when it is a finite sum of constants times products
of |x|^p, x^n (n an integer), sign(x), H(±x), max(0, ±kx)^p, min(0, kx)^n with real exponents, i.e.

    σ(x) = Σᵢ cᵢ·|x|^{dᵢ}·sign(x)^{pᵢ}     (pᵢ ∈ {0, 1}: even or odd; H(±x) = (1 ± sign x)/2 splits a half-line)

with every dᵢ > −1/2 (else E[σ(z)²] = ∞) and at least one dᵢ not an integer (all-integer σ is left to the
homogeneous strategy, which owns ReLU, the step and polynomials). Anything else raises UnsupportedTerm.

**Derivation (Mehler series).** For unit variances and correlation ρ, Mehler's formula gives
E[f(u)g(v)] = Σₙ ρⁿ fₙ gₙ / n! with fₙ = E[f(z) Heₙ(z)] = E[f⁽ⁿ⁾(z)] (Rodrigues' formula, integrating by parts;
for |z|^a this holds by analytic continuation in a). Write M(a) = E|z|^a = 2^{a/2} Γ((a+1)/2)/√π.

- f = |x|^a (even): f^{(2k)} = a(a−1)…(a−2k+1)|x|^{a−2k}, so f_{2k} = Γ(a+1)/Γ(a−2k+1)·M(a−2k). Legendre's
  duplication formula on both Gammas gives f_{2k} = M(a)·2^k·(−a/2)ₖ. With (2k)! = 4^k k! (1/2)ₖ:

      E[|u|^a |v|^b] = M(a) M(b) Σₖ (−a/2)ₖ(−b/2)ₖ/((1/2)ₖ k!) ρ^{2k}
                     = 2^{(a+b)/2} Γ((a+1)/2) Γ((b+1)/2)/π · ₂F₁(−a/2, −b/2; 1/2; ρ²).

- f = sign(x)|x|^a (odd): f' = a|x|^{a−1}, f_{2k+1} = Γ(a+1)/Γ(a−2k)·M(a−2k−1) = 2^{k+(a+1)/2} Γ(a/2+1)/√π
  ·(−1)^k ((1−a)/2)ₖ, and (2k+1)! = 4^k k! (3/2)ₖ:

      E[sgn(u)|u|^a sgn(v)|v|^b] = 2^{(a+b)/2+1} Γ(a/2+1) Γ(b/2+1)/π · ρ · ₂F₁((1−a)/2, (1−b)/2; 3/2; ρ²).

- even × odd: 0, since (u, v) → (−u, −v) preserves the Gaussian and flips the sign of the integrand.

For a = b = α these are the two formulas of the arc-cosine family; max(x, 0)^α = (|x|^α + sign(x)|x|^α)/2 gives
K = ¼(first + second). Checks: at ρ = 0 the even formula is M(a)M(b) = E|u|^a·E|v|^b; a = b = 0 gives 1 and
(2/π)·asin ρ (the sign activation); at ρ² = 1 Gauss's sum ₂F₁(a, b; c; 1) = Γ(c)Γ(c−a−b)/(Γ(c−a)Γ(c−b)) turns
both into M(a+b) = E|z|^{a+b}, i.e. K(q, q, q) = V(q). The series converges for |ρ| < 1 (f, g ∈ L²(γ)) and,
by Abel's theorem, at |ρ| = 1 wherever the expectation is finite (a + b > −1, i.e. c − a − b > 0 in ₂F₁).

**General variances.** |x|^a is positively homogeneous, so with u = √q1·u₁, v = √q2·v₁:
K(q1, q2, c) = Σᵢⱼ cᵢcⱼ q1^{dᵢ/2} q2^{dⱼ/2} k̂ᵢⱼ(c/√(q1q2)), and V(q) = Σᵢⱼ cᵢcⱼ q^{(dᵢ+dⱼ)/2} M(dᵢ+dⱼ)
over pairs of equal parity (for σ = |x|^α: V(q) = q^α 2^α Γ(α+1/2)/√π).

**K̇.** σ' of c·|x|^d·sign^p is c·d·|x|^{d−1}·sign^{1−p} (parity swapped), again in the family, so K̇ is the
same sum for σ'. Its exceptions, and what this module returns:

- a sign(x) term (d = 0, odd): σ' has a Dirac δ → Kdot = None with Kdot_reason (as for every jump).
- a term with −1/2 < d < 0: σ' ~ |x|^{d−1} is not locally integrable, so σ' is not a function → Kdot = None
  with Kdot_reason.
- otherwise every degree of σ' is > −1: E[σ'(u)σ'(v)] is finite for |ρ| < 1. As ρ → ±1 a pair of σ' terms of
  degrees a, b grows like (1 − ρ²)^((1+a+b)/2) when a + b < −1 (a logarithm at a + b = −1; Gauss's connection
  formula) — for a single α: K̇ diverges at both ends iff α ≤ 1/2 (E[σ'(z)²] = ∞). For max(x, 0)^α too: K̇ → ∞
  as ρ → −1, although at the degenerate covariance ρ = −1 itself E[σ'(u)σ'(−u)] = 0. Then Kdot is the formula
  (valid for |ρ| < 1; ±∞ at the divergent ends), Kdot_reason is None (a Dual requires Kdot_reason exactly
  when Kdot is None), and the trace holds a Step with rule `KDOT_DIVERGES_RULE`, whose description starts
  "K̇ diverges at |ρ| = 1 (α ≤ 1/2)" ("at ρ = 1" or "at ρ = −1" where only one end diverges, which takes a
  special ratio of even and odd parts) and whose expression is the FiniteSet of those ρ.
  `kdot_divergence(steps)` reads it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

from ..errors import DivergentMomentError
from ..symbols import c, q, q1, q2, rho, x
from ..trace import Step
from .terms import UnsupportedTerm

if TYPE_CHECKING:
    from . import ClosedForm

__all__ = ["KDOT_DIVERGES_RULE", "RULE", "fractional_dual", "kdot_divergence"]

RULE = "fractional power: Mehler series / ₂F₁"
KDOT_DIVERGES_RULE = "K̇ diverges at |ρ| = 1"

# (degree d, parity p) -> coefficient of |x|^d·sign(x)^p
_Components = dict[tuple[sp.Expr, int], sp.Expr]


# ------------------------------------------------------------------------------------------ recognising σ


def _exponent(e: sp.Expr) -> sp.Expr:
    """A real constant exponent, with floats made exact (0.7 → 7/10) so that Γ factors stay exact."""
    if e.has(x) or not e.is_number or e.is_real is not True:
        raise UnsupportedTerm(f"exponent {e} is not a real constant")
    return sp.nsimplify(e, rational=True) if e.has(sp.Float) else e


def _linear_coefficient(arg: sp.Expr) -> sp.Expr | None:
    """k where arg = k·x with k a non-zero real constant; else None."""
    k = sp.simplify(arg / x)
    if k.has(x) or not k.is_number or k.is_real is not True or k.is_zero:
        return None
    return k


def _ramp(f: sp.Expr) -> tuple[sp.Expr, int]:
    """Max(0, kx) = |k|·|x|·H(side·x) → (signed scale, side); Min(0, kx) = −|k|·|x|·H(−sign(k)·x)."""
    args = list(f.args)
    if len(args) != 2 or sp.S.Zero not in args:
        raise UnsupportedTerm(f"{f} is not max/min(0, k·x)")
    other = args[0] if args[1] == 0 else args[1]
    k = _linear_coefficient(other)
    if k is None:
        raise UnsupportedTerm(f"{f} is not max/min(0, k·x)")
    side = 1 if k.is_positive else -1
    if isinstance(f, sp.Max):
        return sp.Abs(k), side
    return -sp.Abs(k), -side


def _half(f: sp.Expr) -> int:
    k = _linear_coefficient(f.args[0])
    if k is None:
        raise UnsupportedTerm(f"{f} is not H(k·x)")
    return 1 if k.is_positive else -1


class _Monomial:
    """coef·|x|^degree·sign(x)^parity·[H(half·x)] being assembled from the factors of one product."""

    def __init__(self) -> None:
        self.coef: sp.Expr = sp.S.One
        self.degree: sp.Expr = sp.S.Zero
        self.parity = 0
        self.half = 0  # 0: no step; ±1: H(±x)
        self.vanishes = False

    def step(self, side: int) -> None:
        if self.half == 0:
            self.half = side
        elif self.half != side:
            self.vanishes = True  # H(x)·H(−x) = 0 almost everywhere

    def power_of_x(self, n: sp.Expr) -> None:
        if not n.is_integer:
            raise UnsupportedTerm(f"x**{n} is not real for x < 0; write Abs(x)**{n} or Max(x, 0)**{n}")
        self.degree += n
        self.parity ^= int(n) % 2

    def factor(self, f: sp.Expr) -> None:
        if not f.has(x):
            self.coef *= f
        elif f == x:
            self.power_of_x(sp.S.One)
        elif isinstance(f, sp.Abs) and f.args[0] == x:
            self.degree += 1
        elif isinstance(f, sp.sign) and f.args[0] == x:
            self.parity ^= 1
        elif isinstance(f, sp.Heaviside):
            self.step(_half(f))
        elif isinstance(f, (sp.Max, sp.Min)):
            scale, side = _ramp(f)
            self.coef *= scale
            self.degree += 1
            self.step(side)
        elif isinstance(f, sp.Pow):
            self.power(f.base, _exponent(f.exp))
        else:
            raise UnsupportedTerm(f"{f} is not a power of |x|, sign(x), max(±x, 0) or H(±x)")

    def power(self, base: sp.Expr, e: sp.Expr) -> None:
        if base == x:
            self.power_of_x(e)
        elif isinstance(base, sp.Abs) and base.args[0] == x:
            self.degree += e
        elif isinstance(base, sp.sign) and base.args[0] == x and e.is_integer:
            self.parity ^= int(e) % 2
        elif isinstance(base, sp.Heaviside) and e.is_positive:
            self.step(_half(base))
        elif isinstance(base, (sp.Max, sp.Min)):
            scale, side = _ramp(base)
            if not e.is_positive:
                raise UnsupportedTerm(f"{base}**{e} is infinite where {base} = 0 (a whole half-line)")
            if scale.is_negative and not e.is_integer:
                raise UnsupportedTerm(f"{base}**{e} is not real")
            self.coef *= scale**e
            self.degree += e
            self.step(side)
        else:
            raise UnsupportedTerm(f"{base}**{e} is not a power of |x|, sign(x), max(±x, 0) or H(±x)")

    def components(self) -> list[tuple[tuple[sp.Expr, int], sp.Expr]]:
        if self.vanishes:
            return []
        if self.half == 0:
            return [((self.degree, self.parity), self.coef)]
        # H(h·x) = (1 + h·sign x)/2
        return [((self.degree, self.parity), self.coef / 2),
                ((self.degree, 1 - self.parity), self.half * self.coef / 2)]


def _components(expr: sp.Expr) -> _Components:
    expanded = sp.expand(expr, deep=False, power_base=False, power_exp=False, log=False)
    comps: _Components = {}
    for term in sp.Add.make_args(expanded):
        mono = _Monomial()
        for f in sp.Mul.make_args(term):
            mono.factor(f)
        for key, coef in mono.components():
            comps[key] = comps.get(key, sp.S.Zero) + coef
    # floats made exact (0.5 → 1/2), as in the exponents: the duals are closed forms, evaluable to any precision
    comps = {key: sp.nsimplify(coef, rational=True) if coef.has(sp.Float) else coef for key, coef in comps.items()}
    return {key: coef for key, coef in comps.items() if sp.expand(coef) != 0}


def _as_expr(comps: _Components) -> sp.Expr:
    return sp.Add(*(coef * sp.Abs(x) ** d * sp.sign(x) ** p for (d, p), coef in comps.items()))


# ------------------------------------------------------------------------------------------ the duals


def _hyper(a: sp.Expr, b: sp.Expr, cc: sp.Expr, z: sp.Expr) -> sp.Expr:
    """₂F₁(a, b; cc; z): a polynomial where a or b is a non-positive integer, else sp.hyper."""
    if any(p.is_integer and p.is_nonpositive for p in (a, b)):
        return sp.hyperexpand(sp.hyper([a, b], [cc], z))
    return sp.hyper([a, b], [cc], z)


def _pair(a: sp.Expr, b: sp.Expr, parity: int, r: sp.Expr, r2: sp.Expr) -> sp.Expr:
    """E[|u|^a sign(u)^p |v|^b sign(v)^p] at unit variances and correlation r (r2 = r²)."""
    half = sp.S.Half
    if parity == 0:
        return (2 ** ((a + b) / 2) * sp.gamma((a + 1) / 2) * sp.gamma((b + 1) / 2) / sp.pi
                * _hyper(-a / 2, -b / 2, half, r2))
    return (2 ** ((a + b) / 2 + 1) * sp.gamma(a / 2 + 1) * sp.gamma(b / 2 + 1) / sp.pi
            * r * _hyper((1 - a) / 2, (1 - b) / 2, 3 * half, r2))


def _pairs(comps: _Components):
    items = sorted(comps.items(), key=lambda kv: (kv[0][1], sp.default_sort_key(kv[0][0])))
    for i, ((a, p), ca) in enumerate(items):
        for j in range(i, len(items)):
            (b, pb), cb = items[j]
            if pb == p:
                yield a, b, p, ca, cb, i == j


def _kernel(comps: _Components) -> tuple[sp.Expr, sp.Expr]:
    """(K(q1, q2, c), k̂(ρ)) of σ = Σ c·|x|^d·sign^p."""
    r, r2 = c / sp.sqrt(q1 * q2), c**2 / (q1 * q2)
    k, khat = sp.S.Zero, sp.S.Zero
    for a, b, p, ca, cb, same in _pairs(comps):
        scale = q1 ** (a / 2) * q2 ** (b / 2)
        if same:
            k += ca * cb * scale * _pair(a, b, p, r, r2)
            khat += ca * cb * _pair(a, b, p, rho, rho**2)
        else:  # (i, j) and (j, i): the unit-variance kernel is symmetric in (a, b)
            k += ca * cb * (scale + q1 ** (b / 2) * q2 ** (a / 2)) * _pair(a, b, p, r, r2)
            khat += 2 * ca * cb * _pair(a, b, p, rho, rho**2)
    return k, khat


def _moment(p: sp.Expr) -> sp.Expr:
    """E|z|^p, z ~ N(0, 1)."""
    return 2 ** (p / 2) * sp.gamma((p + 1) / 2) / sp.sqrt(sp.pi)


def _variance(comps: _Components) -> sp.Expr:
    v = sp.S.Zero
    for a, b, _, ca, cb, same in _pairs(comps):
        v += (1 if same else 2) * ca * cb * q ** ((a + b) / 2) * _moment(a + b)
    return v


def _derivative(comps: _Components) -> tuple[_Components | None, str | None]:
    """σ' in the family, or (None, why K̇ is not a function)."""
    out: _Components = {}
    for (d, p), coef in comps.items():
        if d == 0:
            if p == 1:
                return None, ("σ jumps at x = 0 (its sign(x) term gives σ' a Dirac δ), so E[σ'(u)σ'(v)] is not "
                              "a function")
            continue  # a constant
        if d.is_negative:
            return None, (f"σ has a term |x|^({d}) with {d} < 0, whose derivative ~ |x|^({d - 1}) is not locally "
                          "integrable at 0: σ' is not a function, so E[σ'(u)σ'(v)] does not exist (∂K/∂c does "
                          "for |ρ| < 1)")
        key = (d - 1, 1 - p)
        out[key] = out.get(key, sp.S.Zero) + coef * d
    return {k: v for k, v in out.items() if sp.expand(v) != 0}, None


def _leading(a: sp.Expr, b: sp.Expr, parity: int, end: int) -> sp.Expr:
    """The coefficient of the singular term of the unit-variance pair kernel as ρ → end (end = ±1):
    of (1 − ρ²)^σ for σ = (1 + a + b)/2 < 0, of −log(1 − ρ²) for σ = 0 (Gauss's connection formula,
    ₂F₁(A, B; C; z) ~ Γ(C)Γ(−σ)/(Γ(A)Γ(B))·(1 − z)^σ, resp. Γ(C)/(Γ(A)Γ(B))·(−log(1 − z)))."""
    sigma = (1 + a + b) / 2
    g = sp.gamma(-sigma) if sigma != 0 else sp.S.One
    if parity == 0:
        return (2 ** ((a + b) / 2) * sp.gamma((a + 1) / 2) * sp.gamma((b + 1) / 2) / sp.pi
                * sp.gamma(sp.S.Half) * g / (sp.gamma(-a / 2) * sp.gamma(-b / 2)))
    return (end * 2 ** ((a + b) / 2 + 1) * sp.gamma(a / 2 + 1) * sp.gamma(b / 2 + 1) / sp.pi
            * sp.gamma(3 * sp.S.Half) * g / (sp.gamma((1 - a) / 2) * sp.gamma((1 - b) / 2)))


def _divergent_ends(dcomps: _Components) -> list[int]:
    """The ρ ∈ {−1, +1} where K̇ → ∞ (at unit variances; the variances only scale each degree's part).

    A pair of σ' terms of degrees a, b diverges as ρ² → 1 iff a + b ≤ −1; the most singular power with a
    non-zero total coefficient decides. (That total cancels only for special ratios of even and odd parts:
    for max(x, 0)^α it does not, and K̇ → ∞ as ρ → −1 too, like (1 − ρ²)^(α − 1/2), although at the degenerate
    covariance ρ = −1 itself E[σ'(u)σ'(−u)] = 0.)"""
    ends = []
    for end in (-1, 1):
        groups: dict[sp.Expr, sp.Expr] = {}
        for a, b, p, ca, cb, same in _pairs(dcomps):
            if a + b <= -1:
                sigma = (1 + a + b) / 2
                groups[sigma] = groups.get(sigma, sp.S.Zero) + (1 if same else 2) * ca * cb * _leading(a, b, p, end)
        for sigma in sorted(groups, key=float):
            if abs(groups[sigma].evalf(30)) > 1e-25:
                ends.append(end)
                break
    return ends


def _divergence_step(dcomps: _Components, comps: _Components) -> Step | None:
    ends = _divergent_ends(dcomps)
    if not ends:
        return None
    degrees = sorted({d for d, _ in comps}, key=sp.default_sort_key)
    where = "|ρ| = 1" if len(ends) == 2 else f"ρ = {ends[0]}"
    if len(degrees) == 1:
        why = (f"(α ≤ 1/2): σ' ~ |x|^(α−1) with α = {degrees[0]}, so |K̇| grows like (1 − ρ²)^(α − 1/2) "
               "(like a logarithm at α = 1/2)")
    else:
        why = (f"(a degree of σ ≤ 1/2; degrees {', '.join(map(str, degrees))}): σ' has a power |x|^e with "
               "e ≤ −1/2")
    text = f"K̇ diverges at {where} {why}; the formula is K̇ for |ρ| < 1, and ±∞ where it diverges"
    return Step(KDOT_DIVERGES_RULE, text, sp.FiniteSet(*ends))


def kdot_divergence(steps) -> frozenset[int]:
    """The correlations ρ ∈ {−1, 1} where a closed form's K̇ is infinite (empty if none), read from its trace."""
    for step in steps:
        if step.rule == KDOT_DIVERGES_RULE:
            return frozenset(int(e) for e in step.expression)
    return frozenset()


def fractional_dual(expr: sp.Expr) -> ClosedForm:
    """K, K̇, V of a fractional-power σ (see the module docstring); UnsupportedTerm for anything else."""
    from . import ClosedForm  # here, not at the top: gaussian/__init__ imports this module

    comps = _components(expr)
    if not comps:
        raise UnsupportedTerm("σ = 0")
    if all(d.is_integer for d, _ in comps):
        raise UnsupportedTerm("only integer powers: left to the homogeneous strategy")
    low = [d for d, _ in comps if not d > -sp.S.Half]
    if low:
        raise DivergentMomentError(
            f"E[σ(z)²] diverges: σ = {expr} has the term |x|^({low[0]}) and E|z|^(2·{low[0]}) = ∞ (|x|^α has a "
            "finite Gaussian second moment only for α > −1/2)"
        )
    degrees = sorted({d for d, _ in comps}, key=sp.default_sort_key)
    steps = [Step(RULE, "σ = Σ c·|x|^d·sign(x)^p (H(±x) = (1 ± sign x)/2); degrees "
                  f"{', '.join(map(str, degrees))}", _as_expr(comps))]
    k, khat = _kernel(comps)
    steps.append(Step("Mehler series", "unit variances: E[|u|^a|v|^b] = 2^((a+b)/2)Γ((a+1)/2)Γ((b+1)/2)/π·"
                      "₂F₁(−a/2, −b/2; 1/2; ρ²), E[sgn u|u|^a sgn v|v|^b] = 2^((a+b)/2+1)Γ(a/2+1)Γ(b/2+1)/π·ρ·"
                      "₂F₁((1−a)/2, (1−b)/2; 3/2; ρ²), even × odd = 0", khat))
    steps.append(Step("homogeneity", "K = Σ cᵢcⱼ q1^(dᵢ/2) q2^(dⱼ/2) k̂ᵢⱼ(c/√(q1q2))", k))
    dcomps, reason = _derivative(comps)
    if dcomps is None:
        kdot = None
        steps.append(Step("derivative", reason))
    else:
        steps.append(Step("derivative", "σ' (parity swapped, degree − 1)", _as_expr(dcomps)))
        kdot, _ = _kernel(dcomps) if dcomps else (sp.S.Zero, None)
        steps.append(Step("homogeneity", "K̇ = E[σ'(u)σ'(v)], the same sum for σ'", kdot))
        diverges = _divergence_step(dcomps, comps)
        if diverges is not None:
            steps.append(diverges)
    v = _variance(comps)
    steps.append(Step("variance", "V(q) = Σ cᵢcⱼ q^((dᵢ+dⱼ)/2)·E|z|^(dᵢ+dⱼ) (Gauss's ₂F₁ at ρ² = 1)", v))
    return ClosedForm(K=k, Kdot=kdot, Kdot_reason=reason, V=v, method=RULE, steps=tuple(steps))
