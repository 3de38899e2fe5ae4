"""Validation of σ: real-valued on ℝ and with a finite Gaussian second moment E[σ(z)²] for every variance.

Three checks, in this order, each raising a named ntksym error:

1. growth (structural): σ must satisfy log|σ(x)| = o(x²); otherwise E[σ(z)²] = ∞ for large variances
   (`DivergentMomentError`). The check proves growth, it never guesses: it flags σ only when some
   factor certainly grows like exp(c·|x|^d) with d > 2, or d = 2 and c > 0, and nothing can cancel it.
2. real values (numeric): σ is evaluated at fixed probe points; a non-zero imaginary part, or NaN, is a
   `NotRealError`.
3. poles (numeric, near candidate points): candidates are the probe points where σ is infinite and the
   real zeros of every denominator (exact for polynomials, a grid scan on [-40, 40] otherwise) and of the
   arguments of tan, cot, sec, csc, coth, csch, log. Near each candidate the local order p of |σ| ~ |x-r|^-p
   is measured; p ≥ 1/2 makes E[σ(z)²] diverge (`DivergentMomentError`).

Numbers are computed by a small tree walk in Python floats (never lambdify, never exec, and no mpmath
evaluation that could hang on exp(exp(exp(x)))); an overflow makes a probe inconclusive, not an error.
Expressions that still hold parameter symbols other than x (symbolic catalog parameters) get only the
structural check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import sympy as sp

from .errors import DivergentMomentError, NotRealError
from .symbols import x
from .vocabulary import python_functions

_PROBES = (0.0, 0.3, -0.3, 1.0, -1.0, 1.7, -1.7, 3.1, -3.1, 5.0, -5.0, 10.0, -10.0, 23.0, -23.0)
_IMAG_TOL = 1e-9  # relative size of an imaginary part that counts as "complex", far above float rounding
_POLE_ORDER = 0.5 - 1e-3  # ∫|t|^(-2p) dt diverges at 0 iff p ≥ 1/2; the 1e-3 absorbs float rounding of the slope
_SCAN = (-40.0, 40.0, 0.05)  # grid for zeros of non-polynomial denominators
_MAX_CANDIDATES = 24
_MAX_SCANS = 16  # distinct denominators searched for zeros


def validate(expr: sp.Expr) -> None:
    """Raise a named ntksym error unless σ = expr (in symbols.x) is real on ℝ with E[σ(z)²] < ∞ for all q."""
    _check_growth(expr)
    if expr.free_symbols - {x}:
        return  # symbolic parameters: values unknown, so only the structural check applies
    if not expr.has(x):
        _check_constant(expr)
        return
    values = _probe(expr)
    _check_real(expr, values)
    _check_poles(expr, values)


def moment_divergence(expr: sp.Expr, name: str = "σ'") -> str | None:
    """Why E[f(z)²] diverges for f = expr (in symbols.x), or None where validate's checks find it finite.

    For σ', whose second moment is not validated with σ: a valid σ = |x|^α (0 < α ≤ 1/2) has
    σ' ~ |x|^(α−1), a pole of order ≥ 1/2, so E[σ'(z)²] = K̇(q, q, q) = ∞ although E[σ(z)²] < ∞. Without this
    check a numeric dual meets that infinity at ρ = ±1 and reports it as σ overflowing float64."""
    try:
        _check_growth(expr, name)
        if expr.free_symbols - {x} or not expr.has(x):
            return None
        _check_poles(expr, _probe(expr), name)
    except DivergentMomentError as err:
        return str(err)
    return None


# ---------------------------------------------------------------------------------------------------------------
# 1. growth at ±∞


@dataclass(frozen=True)
class _Growth:
    """A certain lower bound on |f| in one direction: level 0: |f| ≳ |x|^degree; level 1: log|f| ≳ |x|^degree;
    level 2: faster than any exp(|x|^d). sign is the eventual sign of f (None if unknown); witness names the rate."""

    level: int
    degree: sp.Expr
    sign: int | None
    witness: sp.Expr

    def diverges(self) -> bool:
        return self.level >= 2 or (self.level == 1 and bool(self.degree >= 2))


def _check_growth(expr: sp.Expr, name: str = "σ") -> None:
    found = {s: g for s in (1, -1) if (g := _growth(expr, s)) is not None and g.diverges()}
    if not found:
        return
    witness = next(iter(found.values())).witness
    where = "±∞" if len(found) == 2 else ("+∞" if 1 in found else "-∞")
    raise DivergentMomentError(
        f"E[{name}(z)²] diverges: {name} = {_short(expr)} grows like {_short(witness)} as x → {where}. "
        "The Gaussian second moment is finite for every variance only if log|σ(x)| = o(x²); damp σ (e.g. multiply by "
        "exp(-x**2)) or bound it (e.g. tanh(...))."
    )


def _growth(f: sp.Expr, s: int) -> _Growth | None:
    """How |f(x)| certainly grows as x → s·∞ (s = ±1); None if f need not tend to ±∞ (bounded, decaying,
    or unknown)."""
    if not f.has(x):
        return None
    poly = _as_polynomial(f)
    if poly is not None:
        return _poly_growth(poly, s)
    rule = _GROWTH_RULES.get(type(f))
    if rule is None:
        for cls, r in _GROWTH_RULES.items():
            if isinstance(f, cls):
                rule = r
                break
    return rule(f, s) if rule is not None else None


def _as_polynomial(f: sp.Expr) -> sp.Poly | None:
    if not f.is_polynomial(x):
        return None
    try:
        poly = sp.Poly(f, x)
    except sp.PolynomialError:
        return None
    return poly if poly.degree() >= 1 else None


def _sign_of(value: sp.Expr) -> int | None:
    if value.is_positive:
        return 1
    if value.is_negative:
        return -1
    return None


def _poly_growth(poly: sp.Poly, s: int) -> _Growth | None:
    lead = _sign_of(poly.LC())
    if lead is None:
        return None
    d = poly.degree()
    return _Growth(0, sp.Integer(d), lead * s**d, poly.LC() * x**d)


def _exp_of(g: _Growth) -> _Growth:
    """The growth of exp(a) for an a that tends to +∞ as g says."""
    if g.level == 0:
        return _Growth(1, g.degree, 1, sp.exp(g.witness, evaluate=False))
    return _Growth(2, sp.oo, 1, sp.exp(g.witness, evaluate=False))


def _exp_growth(arg: sp.Expr, s: int) -> _Growth | None:
    """exp(arg) grows iff arg → +∞."""
    g = _growth(arg, s)
    return _exp_of(g) if g is not None and g.sign == 1 else None


def _growth_exp(f: sp.Expr, s: int) -> _Growth | None:
    return _exp_growth(f.args[0], s)


def _growth_cosh_sinh(f: sp.Expr, s: int) -> _Growth | None:
    """cosh(a), |sinh(a)| ≥ (exp(|a|) - 1)/2: they grow as soon as a → ±∞ with a known sign."""
    g = _growth(f.args[0], s)
    if g is None or g.sign is None:
        return None
    grown = _exp_of(g)
    sign = 1 if isinstance(f, sp.cosh) else g.sign
    return _Growth(grown.level, grown.degree, sign, grown.witness)


def _growth_pow(f: sp.Expr, s: int) -> _Growth | None:
    base, e = f.args
    if not e.has(x):
        if not (e.is_number and e.is_positive):
            return None  # a negative power of something growing decays
        g = _growth(base, s)
        if g is None:
            return None
        if e.is_integer:
            sign = None if g.sign is None else (1 if e.is_even else g.sign)
        else:
            sign = 1
        degree = g.degree * e if g.level == 0 else g.degree
        return _Growth(g.level, degree, sign, f.func(g.witness, e))
    if base.is_number and base.is_positive and not base.has(x):
        return _exp_growth(e * sp.log(base), s)  # c**a = exp(a·log c)
    return None


def _growth_mul(f: sp.Expr, s: int) -> _Growth | None:
    grown, other = [], []
    for factor in f.args:
        (grown if (g := _growth(factor, s)) is not None else other).append((factor, g))
    if not grown:
        return None
    sign: int | None = 1
    for factor, g in grown:
        sign = None if (sign is None or g.sign is None) else sign * g.sign
    for factor, _ in other:
        if not _persists(factor, s):
            return None
        sign = None if sign is None else _combine_sign(sign, _eventual_sign(factor, s))
    top = max(g.level for _, g in grown)
    if top == 0:
        degree = sum((g.degree for _, g in grown), sp.Integer(0))
        witness = sp.Mul(*(g.witness for _, g in grown))
    else:
        best = max((g for _, g in grown if g.level == top), key=lambda g: float(g.degree))
        degree, witness = best.degree, best.witness
    return _Growth(top, degree, sign, witness)


def _combine_sign(sign: int, other: int | None) -> int | None:
    return None if other is None else sign * other


def _growth_add(f: sp.Expr, s: int) -> _Growth | None:
    grown = [g for term in f.args if (g := _growth(term, s)) is not None]
    if not grown:
        return None
    top = max(grown, key=lambda g: (g.level, float(g.degree)))
    ties = [g for g in grown if g.level == top.level and g.degree == top.degree]
    if any(g.sign is None or g.sign != ties[0].sign for g in ties):
        return None  # terms of the same size and opposite or unknown signs may cancel
    return top


def _growth_abs(f: sp.Expr, s: int) -> _Growth | None:
    g = _growth(f.args[0], s)
    return None if g is None else _Growth(g.level, g.degree, 1, g.witness)


def _growth_max_min(f: sp.Expr, s: int) -> _Growth | None:
    wanted = 1 if isinstance(f, sp.Max) else -1  # Max ≥ each argument, Min ≤ each argument
    candidates = [g for a in f.args if (g := _growth(a, s)) is not None and g.sign == wanted]
    return max(candidates, key=lambda g: (g.level, float(g.degree)), default=None)


def _growth_piecewise(f: sp.Expr, s: int) -> _Growth | None:
    """The growth of the branch in force far out (decided at x = ±10⁶, beyond any breakpoint an activation uses)."""
    far = sp.Integer(s * 10**6)
    for value, cond in f.args:
        decided = cond.subs(x, far)
        if decided is sp.true:
            return _growth(value, s)
        if decided is not sp.false:
            return None
    return None


_GROWTH_RULES: dict[type, Callable[[sp.Expr, int], _Growth | None]] = {
    sp.exp: _growth_exp,
    sp.cosh: _growth_cosh_sinh,
    sp.sinh: _growth_cosh_sinh,
    sp.Pow: _growth_pow,
    sp.Mul: _growth_mul,
    sp.Add: _growth_add,
    sp.Abs: _growth_abs,
    sp.Max: _growth_max_min,
    sp.Min: _growth_max_min,
    sp.Piecewise: _growth_piecewise,
}

# Factors that can decay at most polynomially, so they cannot cancel an exponential growth.
_PERSISTENT = (sp.Add, sp.Mul, sp.Pow, sp.Symbol, sp.Number, sp.NumberSymbol, sp.Abs, sp.sign, sp.Heaviside,
               sp.Max, sp.Min, sp.Piecewise, sp.sin, sp.cos, sp.tanh, sp.atan, sp.erf, sp.log,
               sp.Tuple, sp.logic.boolalg.Boolean, sp.core.relational.Relational)


def _persists(f: sp.Expr, s: int) -> bool:
    """True when |f| certainly decays no faster than a power of x as x → s·∞ (and is not eventually 0)."""
    if f.is_number:
        return bool(f.is_nonzero)
    for node in sp.preorder_traversal(f):
        if not isinstance(node, _PERSISTENT):
            return False
        if isinstance(node, sp.Pow) and node.exp.has(x):
            return False
    value = _try_evaluate(f, s * 1e3)
    return value is not None and value != 0


def _eventual_sign(f: sp.Expr, s: int) -> int | None:
    if f.is_number:
        return _sign_of(f)
    if f.has(sp.sin, sp.cos):
        return None  # oscillates
    value = _try_evaluate(f, s * 1e3)
    if value is None or value.imag != 0 or value.real == 0 or math.isnan(value.real):
        return None
    return 1 if value.real > 0 else -1


# ---------------------------------------------------------------------------------------------------------------
# 2. real values


def _check_constant(expr: sp.Expr) -> None:
    value = _try_evaluate(expr, 0.0)
    if expr.is_real is False or (value is not None and not _is_finite_real(value)):
        raise NotRealError(
            f"σ = {_short(expr)} is not a finite real constant; a constant activation must be a real number."
        )


def _probe(expr: sp.Expr) -> dict[float, complex]:
    """σ at the probe points where it can be evaluated (an overflow or an unknown function leaves a point out)."""
    values = {}
    for p in _PROBES:
        v = _try_evaluate(expr, p)
        if v is not None:
            values[p] = v
    return values


def _check_real(expr: sp.Expr, values: dict[float, complex]) -> None:
    for p, v in values.items():
        if _is_complex(v):
            raise NotRealError(
                f"σ = {_short(expr)} takes complex values: σ({_fmt(p)}) = {_fmt_complex(v)}. σ must be real on "
                "all of ℝ; make it real, e.g. sqrt(Abs(x)) instead of sqrt(x), log(1 + x**2) instead of log(x)."
            )


def _is_complex(v: complex) -> bool:
    return math.isfinite(v.imag) and abs(v.imag) > _IMAG_TOL * max(1.0, abs(v.real) if math.isfinite(v.real) else 1.0)


def _is_finite_real(v: complex) -> bool:
    return math.isfinite(v.real) and math.isfinite(v.imag) and not _is_complex(v)


# ---------------------------------------------------------------------------------------------------------------
# 3. poles


def _check_poles(expr: sp.Expr, values: dict[float, complex], name: str = "σ") -> None:
    candidates = [p for p, v in values.items() if not _is_finite_real(v)]
    candidates += _singular_candidates(expr)
    candidates.sort(key=lambda r: (round(abs(r), 9), -r))  # report the pole nearest 0 first (x > 0 on ties)
    seen: list[float] = []
    for r in candidates:
        if any(abs(r - t) < 1e-9 * max(1.0, abs(r)) for t in seen):
            continue
        seen.append(r)
        if len(seen) > _MAX_CANDIDATES:
            break
        _check_point(expr, r, name)


def _check_point(expr: sp.Expr, r: float, name: str = "σ") -> None:
    """Measure the local order p of |σ(x)| ~ |x - r|^-p from both sides; p ≥ 1/2 diverges."""
    scale = max(1.0, abs(r))
    h1, h2 = 1e-3 * scale, 1e-6 * scale
    undefined = 0
    for side in (1, -1):
        a = _try_evaluate(expr, r + side * h1, overflow=math.inf)
        b = _try_evaluate(expr, r + side * h2, overflow=math.inf)
        if a is None or b is None:
            continue
        if math.isnan(a.real) or math.isnan(b.real):
            undefined += 1
            continue
        if math.isinf(abs(a)) or math.isinf(abs(b)):
            raise DivergentMomentError(
                f"E[{name}(z)²] diverges: {name} = {_short(expr)} is infinite near x = {_fmt(r)}. "
                "σ must be finite almost everywhere with no pole of order ≥ 1/2; remove the singularity "
                "(e.g. 1/(1 + x**2) instead of 1/x**2)."
            )
        if abs(a) == 0 or abs(b) == 0:
            continue
        p = math.log(abs(b) / abs(a)) / math.log(h1 / h2)
        if p >= _POLE_ORDER:
            raise DivergentMomentError(
                f"E[{name}(z)²] diverges: {name} = {_short(expr)} has a pole at x = {_fmt(r)} "
                f"(|{name}| grows like {_distance(r)}^-{p:.3g}; "
                "a pole of order ≥ 1/2 makes the Gaussian second moment infinite). Remove the pole, e.g. "
                "x/(1 + x**2) instead of 1/x."
            )
    if undefined == 2:
        raise NotRealError(
            f"σ = {_short(expr)} is undefined (NaN) near x = {_fmt(r)}; σ must be defined on all of ℝ "
            "(a Piecewise needs a final (value, True) branch)."
        )


def _singular_candidates(expr: sp.Expr) -> list[float]:
    """Real zeros of every denominator and of the arguments where tan, cot, sec, csc, coth, csch, log blow up."""
    vanishing: list[sp.Expr] = []
    for node in sp.preorder_traversal(expr):
        if not isinstance(node, sp.Expr) or not node.has(x):
            continue
        if isinstance(node, sp.Pow) and node.exp.is_number and node.exp.is_negative:
            vanishing.append(node.base)
        elif isinstance(node, (sp.tan, sp.sec)):
            vanishing.append(sp.cos(node.args[0]))
        elif isinstance(node, (sp.cot, sp.csc)):
            vanishing.append(sp.sin(node.args[0]))
        elif isinstance(node, (sp.coth, sp.csch, sp.log)):
            vanishing.append(node.args[0])
    unique = list(dict.fromkeys(vanishing))[:_MAX_SCANS]  # bounds the work on adversarially long input
    return [r for g in unique for r in _real_zeros(g)]


def _real_zeros(g: sp.Expr) -> list[float]:
    """Real zeros of g: exact for polynomials, else sign changes and near-zero minima of |g| on a grid."""
    if g.is_positive or g.is_negative:
        return []  # SymPy proves g ≠ 0 on ℝ (e.g. 1 + exp(-x))
    poly = _as_polynomial(g)
    if poly is not None and poly.degree() <= 64 and all(c.is_number for c in poly.all_coeffs()):
        try:
            return [float(r) for r in poly.real_roots()]
        except (sp.PolynomialError, NotImplementedError, TypeError, ValueError):
            pass
    lo, hi, step = _SCAN
    n = int(round((hi - lo) / step))
    grid = [lo + i * step for i in range(n + 1)]
    vals = [_real_or_none(g, t) for t in grid]
    zeros: list[float] = []
    for i in range(n):
        a, b = vals[i], vals[i + 1]
        if a is None or b is None:
            continue
        if a == 0:
            zeros.append(grid[i])
        elif a * b < 0:
            zeros.append(_bisect(g, grid[i], grid[i + 1], a))
        elif 0 < i and vals[i - 1] is not None and abs(a) < abs(vals[i - 1]) and abs(a) <= abs(b):
            t = _minimise_abs(g, grid[i - 1], grid[i + 1])
            v = _real_or_none(g, t)
            if v is not None and abs(v) < 1e-10:
                zeros.append(t)
        if len(zeros) >= _MAX_CANDIDATES:
            break
    return zeros


def _real_or_none(g: sp.Expr, t: float) -> float | None:
    v = _try_evaluate(g, t)
    if v is None or not _is_finite_real(v):
        return None
    return v.real


def _bisect(g: sp.Expr, a: float, b: float, ga: float) -> float:
    for _ in range(60):
        m = (a + b) / 2
        gm = _real_or_none(g, m)
        if gm is None:
            return m
        if gm == 0:
            return m
        if (gm < 0) == (ga < 0):
            a, ga = m, gm
        else:
            b = m
    return (a + b) / 2


def _minimise_abs(g: sp.Expr, a: float, b: float) -> float:
    """Golden-section search for a minimum of |g| on [a, b] (finds zeros of even multiplicity)."""
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(80):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        fc, fd = _real_or_none(g, c), _real_or_none(g, d)
        if fc is None or fd is None:
            break
        if abs(fc) <= abs(fd):
            b = d
        else:
            a = c
    return (a + b) / 2


# ---------------------------------------------------------------------------------------------------------------
# numeric evaluation in Python floats


class _Unknown(Exception):
    """The evaluator cannot compute this node (an unknown function or a parameter symbol)."""


class _Overflow(Exception):
    """A float overflowed: σ is huge at this point, which is not a singularity."""


def _try_evaluate(expr: sp.Expr, point: float, overflow: float | None = None) -> complex | None:
    """σ(point) as a Python complex; None when it cannot be computed (or overflows, unless overflow is given)."""
    try:
        return _evaluate(expr, point)
    except _Overflow:
        return None if overflow is None else complex(overflow)
    except (_Unknown, ArithmeticError, ValueError, TypeError, RecursionError):
        return None


def _evaluate(e: sp.Basic, t: float) -> complex:
    if e is x:
        return complex(t)
    if e is sp.I:
        return 1j
    if isinstance(e, (sp.Number, sp.NumberSymbol)) or e is sp.zoo:
        return _number(e)
    if isinstance(e, sp.Symbol):
        raise _Unknown(f"symbol {e}")
    handler = _EVAL.get(type(e))
    if handler is None:
        for cls, h in _EVAL.items():
            if isinstance(e, cls):
                handler = h
                break
    if handler is None:
        return _evaluate_unknown(e, t)
    return handler(e, t)


def _number(e: sp.Basic) -> complex:
    if e is sp.zoo or e is sp.oo:
        return complex(math.inf)
    if e is sp.S.NegativeInfinity:
        return complex(-math.inf)
    if e is sp.nan:
        return complex(math.nan)
    try:
        value = float(e)
    except OverflowError as err:
        raise _Overflow from err
    if math.isinf(value):
        raise _Overflow  # a finite number beyond the float range (SymPy rounds it to inf)
    return complex(value)


def _evaluate_unknown(e: sp.Basic, t: float) -> complex:
    """A function outside the table: let SymPy evaluate it at float arguments (finite, so no runaway)."""
    if not isinstance(e, sp.Function):
        raise _Unknown(type(e).__name__)
    args = [_evaluate(a, t) for a in e.args]
    if any(not math.isfinite(a.real) or a.imag != 0 for a in args):
        raise _Unknown(type(e).__name__)
    value = e.func(*(sp.Float(a.real) for a in args)).evalf(17)
    if not value.is_number:
        raise _Unknown(type(e).__name__)
    return _number(value)


def _real(v: complex) -> bool:
    return v.imag == 0


def _guard(fn: Callable[[], complex]) -> complex:
    try:
        return fn()
    except OverflowError as err:
        raise _Overflow from err


def _eval_add(e: sp.Add, t: float) -> complex:
    vals = [_evaluate(a, t) for a in e.args]
    if all(_real(v) for v in vals):
        return complex(math.fsum(v.real for v in vals)) if all(math.isfinite(v.real) for v in vals) else complex(
            sum(v.real for v in vals))
    return sum(vals, complex(0))


def _eval_mul(e: sp.Mul, t: float) -> complex:
    vals = [_evaluate(a, t) for a in e.args]
    if all(_real(v) for v in vals):
        out = 1.0
        for v in vals:
            out *= v.real
        return complex(out)
    out_c = complex(1)
    for v in vals:
        out_c *= v
    return out_c


def _eval_pow(e: sp.Pow, t: float) -> complex:
    b, p = _evaluate(e.base, t), _evaluate(e.exp, t)
    if _real(b) and _real(p):
        br, pr = b.real, p.real
        if br == 0 and pr < 0:
            return complex(math.inf)
        if br < 0 and not float(pr).is_integer():
            return _guard(lambda: complex(br) ** complex(pr))  # principal branch, as SymPy
        return _guard(lambda: complex(br**pr))
    if b == 0:
        return complex(math.inf) if p.real < 0 else complex(0)
    return _guard(lambda: b**p)


def _unary(real_fn: Callable[[float], float], complex_fn: Callable[[complex], complex] | None = None):
    def handler(e: sp.Basic, t: float) -> complex:
        v = _evaluate(e.args[0], t)
        if _real(v):
            return _guard(lambda: complex(real_fn(v.real)))
        if complex_fn is None:
            raise _Unknown(type(e).__name__)
        return _guard(lambda: complex_fn(v))

    return handler


def _eval_abs(e: sp.Abs, t: float) -> complex:
    return complex(abs(_evaluate(e.args[0], t)))


def _eval_sign(e: sp.sign, t: float) -> complex:
    v = _evaluate(e.args[0], t)
    if not _real(v):
        raise _Unknown("sign of a complex value")
    return complex((v.real > 0) - (v.real < 0)) if not math.isnan(v.real) else complex(math.nan)


def _eval_heaviside(e: sp.Heaviside, t: float) -> complex:
    v = _evaluate(e.args[0], t)
    if not _real(v):
        raise _Unknown("Heaviside of a complex value")
    if v.real == 0:
        return _evaluate(e.args[1], t) if len(e.args) > 1 else complex(0.5)
    return complex(1.0 if v.real > 0 else 0.0)


def _eval_max_min(e: sp.Basic, t: float) -> complex:
    vals = [_evaluate(a, t) for a in e.args]
    if not all(_real(v) for v in vals):
        raise _Unknown("Max/Min of complex values")
    pick = max if isinstance(e, sp.Max) else min
    return complex(pick(v.real for v in vals))


def _eval_piecewise(e: sp.Piecewise, t: float) -> complex:
    for value, cond in e.args:
        if _condition(cond, t):
            return _evaluate(value, t)
    return complex(math.nan)


def _condition(c: sp.Basic, t: float) -> bool:
    if c is sp.true:
        return True
    if c is sp.false:
        return False
    if isinstance(c, sp.core.relational.Relational):
        lhs, rhs = _evaluate(c.lhs, t), _evaluate(c.rhs, t)
        if not (_real(lhs) and _real(rhs)):
            raise _Unknown("comparison of complex values")
        op = _COMPARE.get(type(c))
        if op is None:
            raise _Unknown(type(c).__name__)
        return op(lhs.real, rhs.real)
    if isinstance(c, sp.And):
        return all(_condition(a, t) for a in c.args)
    if isinstance(c, sp.Or):
        return any(_condition(a, t) for a in c.args)
    if isinstance(c, sp.Not):
        return not _condition(c.args[0], t)
    raise _Unknown(type(c).__name__)


_COMPARE: dict[type, Callable[[float, float], bool]] = {
    sp.StrictLessThan: lambda a, b: a < b,
    sp.LessThan: lambda a, b: a <= b,
    sp.StrictGreaterThan: lambda a, b: a > b,
    sp.GreaterThan: lambda a, b: a >= b,
    sp.Eq: lambda a, b: a == b,
    sp.Ne: lambda a, b: a != b,
}


_STRUCTURAL: dict[type, Callable[[sp.Basic, float], complex]] = {
    sp.Add: _eval_add,
    sp.Mul: _eval_mul,
    sp.Pow: _eval_pow,
    sp.Abs: _eval_abs,
    sp.sign: _eval_sign,
    sp.Heaviside: _eval_heaviside,
    sp.Max: _eval_max_min,
    sp.Min: _eval_max_min,
    sp.Piecewise: _eval_piecewise,
}

# The one-argument functions evaluate as the vocabulary says (ntksym.vocabulary: (real, complex) on Python
# numbers); the rest through the handlers above, or SymPy's evalf (_evaluate_unknown).
_EVAL: dict[type, Callable[[sp.Basic, float], complex]] = {
    **{cls: _unary(*fns) for cls, fns in python_functions().items() if cls not in _STRUCTURAL},
    **_STRUCTURAL,
}


# ---------------------------------------------------------------------------------------------------------------
# formatting


def _short(expr: sp.Basic, limit: int = 120) -> str:
    """An expression for a message, cut to `limit` characters."""
    text = str(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(p: float) -> str:
    """A point for a message: integers (and bisection results within 1e-9 of one) print as integers."""
    nearest = round(p)
    if abs(p - nearest) < 1e-9:
        return str(int(nearest))
    return f"{p:.6g}"


def _distance(r: float) -> str:
    if r == 0:
        return "|x|"
    return f"|x - {_fmt(r)}|" if r > 0 else f"|x + {_fmt(-r)}|"


def _fmt_complex(v: complex) -> str:
    return f"{v.real:.6g}{v.imag:+.6g}i"
