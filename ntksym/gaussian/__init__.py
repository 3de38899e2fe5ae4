"""The symbolic engine: Gaussian expectations of activations in closed form. Never imports JAX.

`closed_form_dual(expr)` tries the derivation strategies in order and returns the first success:
  fractional    |x|^α, sign(x)·|x|^α, max(x, 0)^α with non-integer α > −1/2: Mehler series summed to ₂F₁;
  homogeneous   every term is positively homogeneous (xⁿ·H(±x)): derive k̂(ρ) at unit variances,
                then K = Σ q1^{n/2} q2^{m/2} k̂_{nm}(c/√(q1q2));
  expectation   linearity over the terms of σ and the pair rules of `bivariate` (Gaussian moments,
                conditioning on δ, Price's theorem integrated back in c).
Each raises UnsupportedTerm when its rules do not apply; the caller then falls back to a numeric dual.
"""

from __future__ import annotations

import functools as ft
from dataclasses import dataclass

import sympy as sp

from ..errors import DerivationTimeout
from ..symbols import c, q, q1, q2, rho
from ..trace import Step
from . import _budget
from ..special import Phi, Phi2, phi
from .fractional import fractional_dual
from .bivariate import Covariance, _real_part, expect_pair_sums, pair
from .terms import Term, UnsupportedTerm, as_expr, derivative_of_sum, has_delta, jump_points, rewrite, to_terms
from .truncated import truncated_pair

__all__ = ["ClosedForm", "UnsupportedTerm", "closed_form_dual"]


@dataclass(frozen=True)
class ClosedForm:
    """K, K̇ (or the reason it does not exist), V, and the trace of how they were found."""

    K: sp.Expr
    Kdot: sp.Expr | None
    Kdot_reason: str | None
    V: sp.Expr
    method: str
    steps: tuple[Step, ...]


def _rules_text(rules: dict[str, int]) -> str:
    return ", ".join(f"{name} ×{count}" for name, count in sorted(rules.items()))


def _kernel_homogeneous(terms: tuple[Term, ...]) -> tuple[sp.Expr, dict[str, int]]:
    unit = Covariance(sp.S.One, sp.S.One, rho)
    total = sp.S.Zero
    rules: dict[str, int] = {}
    for f in terms:
        for g in terms:
            value, used = expect_pair_sums((f,), (g,), unit)
            for k, v in used.items():
                rules[k] = rules.get(k, 0) + v
            total += q1 ** sp.Rational(f.n, 2) * q2 ** sp.Rational(g.n, 2) * value
    return total.subs(rho, c / sp.sqrt(q1 * q2)), rules


def _kernel_general(terms: tuple[Term, ...]) -> tuple[sp.Expr, dict[str, int]]:
    return expect_pair_sums(terms, terms, Covariance(q1, q2, c))


def _is_homogeneous(terms) -> bool:
    return all(t.is_homogeneous for t in terms)


SIMPLIFY_SECONDS = 1.0
SIMPLIFY_MAX_OPS = 40


@ft.lru_cache(maxsize=4096)
def _factored(base: sp.Expr) -> sp.Expr:
    return sp.factor(sp.together(base))


def _factor_radicals(e: sp.Expr) -> sp.Expr:
    """Factor the base of every radical, so that positive factors split off and equal radicals match."""
    return e.replace(lambda z: isinstance(z, sp.Pow) and z.base.is_Add and not z.exp.is_Integer,
                     lambda z: _factored(z.base) ** z.exp)


def _tidy(e: sp.Expr) -> sp.Expr:
    """A cheap normal form: cancelled exponents, factored radicals, then the terms collected over the
    transcendental pieces (asin, erfi, exp, radicals in c) with factored coefficients."""
    e = sp.powsimp(sp.expand(e, power_base=False, multinomial=False), combine="exp")
    e = e.replace(lambda z: isinstance(z, sp.exp), lambda z: sp.exp(sp.cancel(z.args[0])))
    e = sp.expand(_factor_radicals(_factor_radicals(e)), power_base=False, multinomial=False)
    atoms = list(e.atoms(sp.asin, sp.erfi, sp.erf, sp.exp, sp.cos, sp.sin, Phi, Phi2, phi, sp.Heaviside))
    atoms += [p for p in e.atoms(sp.Pow) if p.has(c) and not p.exp.is_Integer]
    if not atoms:
        return sp.factor(e)
    groups = sp.collect(e, atoms, evaluate=False)
    return sp.Add(*(sp.factor(coef) * key for key, coef in groups.items()))


def _simplify(e: sp.Expr) -> sp.Expr:
    """A readable form: several candidates, each under a small time budget; the shortest wins."""
    if e.has(sp.I):  # a leftover complex exponential: σ is real, so K is
        e = _real_part(e)
    # e^a·e^b → e^(a+b) in every candidate: separate factors can overflow and underflow (inf·0)
    e = sp.powsimp(e, combine="exp").replace(lambda z: isinstance(z, sp.exp), lambda z: sp.exp(sp.cancel(z.args[0])))
    candidates = [e]
    if e.has(Phi, Phi2, phi):
        # truncated-moment forms: the deterministic normal form only, under the derivation's own budget. A
        # candidate that may or may not finish within SIMPLIFY_SECONDS makes the printed form depend on the
        # machine's load (derivations/ pages went stale between two runs)
        # the expanded sum is canonical whatever the route (caches, rule order); _tidy's factoring was not
        return sp.expand(e, deep=False, power_base=False, power_exp=False, log=False)
    for fn in (_tidy, lambda z: sp.simplify(_tidy(z))):
        if fn is not _tidy and sp.count_ops(candidates[-1]) > SIMPLIFY_MAX_OPS:
            break  # simplify() rarely shortens the collected form of a large expression, and is slow on it
        try:
            with _budget.budget(SIMPLIFY_SECONDS):
                candidates.append(fn(e))
        except DerivationTimeout:
            _budget.check()  # the derivation's own budget may be the one that ran out
        except (NotImplementedError, TypeError, ValueError):  # pragma: no cover - SymPy's own limits
            pass
    return min(candidates, key=sp.count_ops)


def _variance_map(k: sp.Expr) -> sp.Expr:
    """V(q) = K(q, q, q), taking the limit c → q where the formula is 0/0 at the diagonal."""
    v = k.subs({q1: q, q2: q}).subs(c, q)
    if v.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        v = sp.limit(k.subs({q1: q, q2: q}), c, q, dir="-")
    return v


def _variance_of_terms(terms: tuple[Term, ...]) -> sp.Expr:
    """V(q) = E[σ(z)²] pair by pair: truncated pairs directly at the degenerate covariance [[q, q], [q, q]]
    (their K has Φ(·/√(q1q2 − c²)) terms, 0/0 at the diagonal), the others as K(q, q, q)."""
    general = Covariance(q1, q2, c)
    direct, rest = sp.S.Zero, sp.S.Zero
    for f in terms:
        for g in terms:
            if f.is_truncated or g.is_truncated:
                direct += truncated_pair(f, g, q, q, q)
            else:
                rest += pair(f, g, general)[0]
    return direct + (_variance_map(rest) if rest != 0 else sp.S.Zero)


def _dual_of_terms(terms: tuple[Term, ...], what: str, steps: list[Step]) -> tuple[sp.Expr, str]:
    if _is_homogeneous(terms):
        k, rules = _kernel_homogeneous(terms)
        method = "positive homogeneity"
        steps.append(Step("homogeneity", f"{what}: every term is positively homogeneous; derived k̂(ρ) at unit "
                          f"variances and rescaled by q1^(n/2)·q2^(m/2)"))
    else:
        k, rules = _kernel_general(terms)
        method = "Gaussian expectation rules"
    if any(name.startswith("truncated") for name in rules):
        method += " + truncated Gaussians (Φ, Φ₂)"
    if "price" in rules:
        method += " + Price's theorem"
    k = _simplify(k)
    steps.append(Step("expectation", f"{what}: {len(terms)}×{len(terms)} pairs of terms ({_rules_text(rules)})", k))
    return k, method


def closed_form_dual(expr: sp.Expr) -> ClosedForm:
    """Derive K, K̇, V of σ = expr in closed form (UnsupportedTerm if no strategy applies)."""
    try:  # fractional powers |x|^α, sign(x)|x|^α, max(x, 0)^α (non-integer α): the ₂F₁ forms of fractional.py
        return fractional_dual(expr)
    except UnsupportedTerm:
        pass
    steps: list[Step] = []
    rewritten = rewrite(expr)
    if rewritten != expr:
        steps.append(Step("rewrite", "σ in Heaviside/erf/exponential form", rewritten))
    terms = to_terms(expr)
    steps.append(Step("linearity", f"σ = sum of {len(terms)} term(s); K = Σᵢⱼ E[σᵢ(u)σⱼ(v)]", as_expr(terms)))
    k, method = _dual_of_terms(terms, "K", steps)
    dterms = derivative_of_sum(terms)
    if has_delta(dterms):
        where = ", ".join(f"x = {a}" for a in jump_points(dterms))
        kdot, reason = None, f"σ jumps at {where} (σ' contains a Dirac δ), so E[σ'(u)σ'(v)] is not a function"
        steps.append(Step("derivative", reason))
    else:
        steps.append(Step("derivative", "σ' (distributional)", as_expr(dterms)))
        kdot, _ = _dual_of_terms(dterms, "K̇ = E[σ'(u)σ'(v)]", steps)
        reason = None
    v = _simplify(_variance_of_terms(terms) if any(t.is_truncated for t in terms) else _variance_map(k))
    steps.append(Step("variance", "V(q) = K(q, q, q)", v))
    return ClosedForm(K=k, Kdot=kdot, Kdot_reason=reason, V=v, method=method, steps=tuple(steps))

