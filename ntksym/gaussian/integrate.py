"""Integration in the covariance c (Price's theorem integrates ∂K/∂c back from c = 0).

The integrands that Price's theorem produces depend on c through one quadratic D(c) = A − B c²
(the Gaussian determinant), its square roots and arcsines. Substituting c = √(A/B)·t turns them into
integrands in t free of the variances, which SymPy integrates quickly and which are cached.
Every antiderivative is checked by differentiating it back at random points.
"""

from __future__ import annotations

import functools as ft
import random

import mpmath
import sympy as sp

from .. import vocabulary
from . import _budget
from .terms import UnsupportedTerm

_t = sp.Symbol("t", real=True)


def _quadratic_bases(e: sp.Expr, c: sp.Symbol) -> set[tuple[sp.Expr, sp.Expr]]:
    """(A, B) of every power base of the form A − B·c² (A, B free of c) in e."""
    found = set()
    for p in e.atoms(sp.Pow):
        base = p.base
        if not base.has(c) or not base.is_polynomial(c):
            continue
        poly = sp.Poly(base, c)
        if poly.degree() != 2:
            continue
        a2, a1, a0 = poly.all_coeffs()
        if a1 == 0:
            found.add((sp.factor(a0), -a2))
    return found


def _arcsine_scales(e: sp.Expr, c: sp.Symbol) -> set[sp.Expr]:
    """s² for every asin(c/s) in e (s free of c): the substitution c = s·t makes it asin(t)."""
    out = set()
    for f in e.atoms(sp.asin):
        k = sp.cancel(f.args[0] / c)
        if not k.has(c):
            out.add(sp.cancel(1 / k**2))
    return out


@ft.lru_cache(maxsize=1024)
def _power_antiderivative(m: int, p2: int) -> sp.Expr:
    """∫ tᵐ (1 − t²)^(p2/2) dt on |t| < 1, by the reduction formulas (t = sin θ)."""
    w = 1 - _t**2
    if m >= 2:  # tᵐ wᵖ = tᵐ⁻² wᵖ − tᵐ⁻² wᵖ⁺¹
        return _power_antiderivative(m - 2, p2) - _power_antiderivative(m - 2, p2 + 2)
    if m == 1:
        return -(w ** sp.Rational(p2 + 2, 2)) / (p2 + 2) if p2 != -2 else -sp.log(w) / 2
    if p2 % 2 == 0 and p2 >= 0:
        return sp.integrate(sp.expand(w ** (p2 // 2)), _t)
    if p2 == -1:
        return sp.asin(_t)
    if p2 % 2 and p2 >= 1:  # J(p) = t w^(p/2)/(p+1) + p/(p+1) J(p−2)
        return _t * w ** sp.Rational(p2, 2) / (p2 + 1) + sp.Rational(p2, p2 + 1) * _power_antiderivative(0, p2 - 2)
    if p2 % 2 and p2 <= -3:  # J(p) = ((p+3) J(p+2) − t w^((p+2)/2)) / (p+2)
        return ((p2 + 3) * _power_antiderivative(0, p2 + 2) - _t * w ** sp.Rational(p2 + 2, 2)) / (p2 + 2)
    raise UnsupportedTerm(f"no reduction formula for t^{m}·(1 − t²)^({p2}/2)")


def _as_power_form(f: sp.Expr) -> tuple[sp.Expr, int, int] | None:
    """(k, m, p2) with f = k·tᵐ·(1 − t²)^(p2/2), or None."""
    k, m, p2 = sp.S.One, 0, 0
    for factor in sp.Mul.make_args(f):
        base, exp = factor.as_base_exp()
        if not factor.has(_t):
            k *= factor
        elif base == _t and exp.is_Integer and exp >= 0:
            m += int(exp)
        elif sp.expand(base - (1 - _t**2)) == 0 and (2 * exp).is_Integer:
            p2 += int(2 * exp)
        else:
            return None
    return k, m, p2


def _by_parts_arcsine(f: sp.Expr) -> sp.Expr | None:
    """∫ g(t)·asin(t) dt = G·asin(t) − ∫ G/√(1 − t²) dt, for g = k·tᵐ(1 − t²)^(p/2) with G free of asin."""
    k, rest = f.as_independent(_t, as_Add=False)
    if not isinstance(rest, sp.Mul) and rest != sp.asin(_t):
        return None
    g = rest / sp.asin(_t)
    form = _as_power_form(g) if not g.has(sp.asin) else None
    if form is None:
        return None
    _, m, p2 = form
    big_g = form[0] * _power_antiderivative(m, p2)
    if big_g.has(sp.asin):
        return None
    inner = sp.S.Zero
    for term in sp.Add.make_args(sp.expand(big_g / sp.sqrt(1 - _t**2), power_base=False, multinomial=False)):
        sub = _as_power_form(term)
        if sub is None:
            return None
        inner += sub[0] * _power_antiderivative(sub[1], sub[2])
    return k * (big_g * sp.asin(_t) - inner)


def _branch_inside(f: sp.Expr) -> sp.Expr:
    """SymPy sometimes answers with a Piecewise over t² > 1; keep the branch valid on |t| < 1."""
    return f.replace(lambda z: isinstance(z, sp.Piecewise),
                     lambda z: next(v for v, cond in z.args if bool(cond.subs(_t, sp.Rational(1, 2)))))


@ft.lru_cache(maxsize=4096)
def _antiderivative_t(f: sp.Expr) -> sp.Expr:
    """∫ f(t) dt for an integrand in t alone (cached: the same pieces recur across activations)."""
    form = _as_power_form(f)
    if form is not None:
        k, m, p2 = form
        return k * _power_antiderivative(m, p2)
    arcsine = _by_parts_arcsine(f)
    if arcsine is not None:
        return arcsine
    result = sp.integrate(f, _t)
    if result.has(sp.Integral):
        raise UnsupportedTerm(f"SymPy found no antiderivative of {f}")
    return _branch_inside(result)


def _integrate_by_substitution(e: sp.Expr, c: sp.Symbol, a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """c = √(A/B)·t: every power of D = A − B c² becomes A^p (1 − t²)^p, the rest a function of t."""
    scale = sp.sqrt(a / b)
    one_minus_t2 = 1 - _t**2

    def _is_d_power(p: sp.Basic) -> bool:
        return isinstance(p, sp.Pow) and p.base.has(c) and sp.expand(p.base - (a - b * c**2)) == 0

    e_t = e.replace(_is_d_power, lambda p: a**p.exp * one_minus_t2**p.exp).subs(c, scale * _t)
    e_t = sp.expand(e_t, power_base=False, multinomial=False)
    total = sp.S.Zero
    for term in sp.Add.make_args(e_t):
        _budget.check()
        num, den = sp.fraction(term)
        indep, dep = (num / sp.factor(den)).as_independent(_t, as_Add=False)
        big_f = _antiderivative_t(dep)
        total += indep * (big_f - _value_at_zero(big_f, _t))
    return scale * total.subs(_t, c / scale)


def _value_at_zero(f: sp.Expr, var: sp.Symbol) -> sp.Expr:
    v = f.subs(var, 0)
    if v.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        v = sp.limit(f, var, 0)
    return v


def _integrate_direct(e: sp.Expr, c: sp.Symbol) -> sp.Expr:
    big_f = sp.integrate(e, c)
    if big_f.has(sp.Integral):
        raise UnsupportedTerm(f"SymPy found no antiderivative in c of {e}")
    return big_f - _value_at_zero(big_f, c)


def _check_derivative(result: sp.Expr, e: sp.Expr, c: sp.Symbol, rng: random.Random) -> None:
    """d/dc result = e at random points of the open domain (30 digits): a wrong antiderivative never passes."""
    symbols = sorted((result.free_symbols | e.free_symbols) - {c}, key=str)
    unknown = vocabulary.unknown_functions(result)
    if unknown:  # e.g. the exp_polar of SymPy's hypergeometric antiderivatives: no evaluator could read it
        names = ", ".join(sorted(cls.__name__ for cls in unknown))
        raise UnsupportedTerm(f"the antiderivative of {e} uses {names}, outside ntksym's function vocabulary")
    modules = [vocabulary.namespace("mpmath"), "mpmath"]
    d_fn = sp.lambdify([*symbols, c], sp.diff(result, c), modules=modules)
    e_fn = sp.lambdify([*symbols, c], e, modules=modules)
    with mpmath.workdps(30):
        for _ in range(3):
            values = {s: sp.Rational(rng.randint(3, 17), 7) for s in symbols}
            bound = float(_c_bound(e, c, values))
            point = [mpmath.mpf(values[s].p) / values[s].q for s in symbols]
            point.append(mpmath.mpf(rng.randint(-90, 90)) / 100 * bound)
            lhs, rhs = complex(d_fn(*point)), complex(e_fn(*point))
            if not mpmath.almosteq(lhs, rhs, rel_eps=1e-15, abs_eps=1e-15 * (1 + abs(rhs))):
                raise UnsupportedTerm(f"antiderivative check failed for {e}")


def _c_bound(e: sp.Expr, c: sp.Symbol, values: dict) -> sp.Expr:
    """A |c| up to which e is defined: the smallest √(A/B) of its quadratic bases (else 1)."""
    bounds = [sp.sqrt(a / b).subs(values) for a, b in _quadratic_bases(e, c)]
    bounds = [bd for bd in bounds if bd.is_positive]
    return min(bounds, key=lambda bd: float(bd)) if bounds else sp.S.One


def integrate_from_zero(e: sp.Expr, c: sp.Symbol) -> sp.Expr:
    """∫₀^c e(τ) dτ in closed form, verified; UnsupportedTerm if no closed form is found."""
    _budget.check()
    e = sp.expand(e, power_base=False, multinomial=False)
    if not e.has(c):
        return e * c
    bases = {(a, b) for a, b in _quadratic_bases(e, c) if b != 0}
    arcsines = _arcsine_scales(e, c)
    candidates = []
    if len(bases) == 1:
        (a, b), = bases
        if all(sp.simplify(a / b - s2) == 0 for s2 in arcsines):
            candidates.append(lambda: _integrate_by_substitution(e, c, a, b))
    elif not bases and len(arcsines) == 1:
        (s2,) = arcsines
        candidates.append(lambda: _integrate_by_substitution(e, c, s2, sp.S.One))
    candidates.append(lambda: _integrate_direct(e, c))
    rng = random.Random(0)
    last: Exception | None = None
    for attempt in candidates:
        try:
            result = attempt()
            _check_derivative(result, e, c, rng)
            return result
        except UnsupportedTerm as err:
            last = err
        except (NotImplementedError, ValueError, TypeError, ZeroDivisionError) as err:
            last = UnsupportedTerm(f"integration failed: {err}")
    raise last if last is not None else UnsupportedTerm("no integration strategy")
