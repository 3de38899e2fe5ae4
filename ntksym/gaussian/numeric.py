"""Numeric dual activation by quadrature, for activations with no closed form (tanh, softplus, selu, …).

For (u, v) ~ N(0, [[q1, c], [c, q2]]) write u = √q1·z1 and v = √q2·(ρ·z1 + s·z2) with z1, z2 ~ N(0, 1)
independent, ρ = c/√(q1·q2) clipped into [−1, 1] and s = √(1 − ρ²). Then

    K = E[f(u) f(v)] = ∫ f(√q1·z1) G(z1) φ(z1) dz1,    G(z1) = ∫ f(√q2·(ρ·z1 + s·z2)) φ(z2) dz2,

with f = σ for K and f = σ' for K̇; V(q) = ∫ σ(√q·z)² φ(z) dz and E[f(z)] are the one-dimensional case.

**The rule.** Every one-dimensional integral (the outer one, and the inner one of each outer node) is truncated
to |z| ≤ L = 9 (Gaussian mass beyond: 2e-19) and split into panels, each integrated by n-point Gauss–Legendre
(n = `order`, 8 by default). The panel ends are
  - the Gaussian ladder ±1, ±3, ±5.5, ±9, which resolves φ itself (1e-11 for z^k·φ at n = 8);
  - for every *feature* of the integrand, its centre t and the ladder t ± m·ε, m ∈ {1, 2.5, 6, 15}, keeping the
    levels with m·ε < 3 (beyond, the Gaussian ladder resolves it too; at 15ε an exponential transition has
    decayed to e^-30). A feature is a point b where σ(x) changes character, read from the expression when the
    dual is built: a kink or jump (a zero of a Piecewise condition, or of the argument of Heaviside, sign, Abs,
    Max, Min) or a transition (a zero, real or complex, of a polynomial argument of exp, tanh, erf, log, a power,
    …), with a width w in x-units (1/|a| for an argument a·x + b). Features of σ(√q·z) sit at t = b/√q with
    ε = w/√q: a sharp transition (tanh at q = 1e3 is nearly a step) gets panels graded down to its own width,
    and a kink falls on a panel end, where Gauss–Legendre never evaluates.
  - Inner integral of the outer node z1: the features of f(√q2·(ρ·z1 + s·z2)), at t = (b/√q2 − ρ·z1)/s with
    ε = w/(√q2·s).
  - Outer integral: the features of f(√q1·z1), at t = b/√q1 with ε = w/√q1, and those of G, which is f smoothed
    by a Gaussian of standard deviation √q2·s: at t = b/(√q2·ρ) with ε = √(w²/q2 + s²)/|ρ|; where f has a kink,
    G has one smoothed over s/|ρ|: its ladder then uses ε = w/(√q2·|ρ|) and adds t ± (s/|ρ|)·{2, 8}. When the
    two centres coincide (b = 0, or ρ = 1 and q1 = q2) one ladder at the finer width serves both.
A ladder level that is left out, and any end clipped into [−L, L], makes a zero-length panel, so each integral
has a fixed number of nodes for a given σ: the rule is a fixed-size array computation, ready to be written in
JAX. (The NumPy code skips the zero-length panels, which add exactly 0.)

**The error estimate** of a value Q is |Q − Q_outer| + |Q − Q_inner|, where Q_outer (Q_inner) integrates the
outer (inner) dimension on the same panels with n − 2 points (one term in one dimension). Each term is about the
error of the (n − 2)-point rule, 10-300 times that of Q in the tests, so the estimate bounds the error of Q in
practice; lowering one dimension at a time keeps the two dimensions' errors from cancelling. Added to it: the
truncated tails, with |h| extrapolated beyond ±L exponentially at the rate seen over the last half unit inside
(at most the activation's own asymptotic rate), which is exact for an activation that outgrows the Gaussian
(exp(x) at large q gets an estimate as large as the missing mass, or inf); and a rounding allowance N·eps·Σ|w·h|
for an N-term sum. `NumericDual.error_bound` is the largest estimate relative to the scale √(V(q1)·V(q2))
(√(V̇(q1)·V̇(q2)) for K̇, V(q) for V) over a fixed grid of covariances: variances 1e-3, 1, 1e3 in all pairs,
correlations −1, −0.999, −0.5, 0, 0.5, 0.9, 0.999, 1. It costs about a third of a second per dual.

**Accuracy and speed** (measured against nested QUADPACK and closed forms, tests/test_gaussian_numeric.py): at
n = 8, K and K̇ of tanh, sigmoid, softplus, silu, elu, selu, mish and erf(x + 1) are within 2e-9 of
√(V(q1)·V(q2)) over q1, q2 ∈ [1e-3, 1e3], |ρ| ≤ 1, and the estimates exceed the actual errors 10-1000 times.
K of 1000 covariances takes 0.4-1.6 s in NumPy on one core (most for large variances, whose sharp transitions
need the most panels); n = 7 is 25% faster, at about 3e-8.

Nothing here imports JAX: the rule runs in NumPy; SymPy is called only when a dual is built.
"""

from __future__ import annotations

import dataclasses
import functools as ft
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.special
import sympy as sp

from ..errors import DivergentMomentError, InvalidCovarianceError, NotUnivariateError, NtksymError
from .. import vocabulary
from .._stable import _stabilize
from ..symbols import x as _x

__all__ = ["RULE", "NumericDual", "PanelRule", "expect_numeric", "feature_arrays", "numeric_dual", "vectorize"]

_L = 9.0  # truncation |z| ≤ 9: the Gaussian mass beyond is 2e-19
_GAUSS_LADDER = (-_L, -5.5, -3.0, -1.0, 1.0, 3.0, 5.5, _L)  # 8-point Gauss–Legendre: ~1e-11 on z^k·φ, k ≤ 6
_LADDER = (1.0, 2.5, 6.0, 15.0)  # feature ladder t ± m·ε: up to 15ε, where an exponential transition is e^-30
_REACH = 3.0  # ladder levels m·ε ≥ 3 are left out: from there on the Gaussian ladder resolves the feature too
_S_LADDER = (2.0, 8.0)  # a kink smoothed over s: erfc(8/√2) ≈ 1e-15, so beyond 8s it has gone
_ORDER = 8  # Gauss–Legendre points per panel: ≤ 3e-9 of √(V1·V2) on the tested activations (test file)
_LOWER = 2  # the error estimate's rule has order − 2 points per panel
_EPS = np.finfo(np.float64).eps
_TINY = 1e-200  # floor for divisors (q = 0, ρ = 0, s = 0): quotients stay finite, then are clipped into [−L, L]
_CHUNK = 500_000  # inner nodes per block: temporaries of ~4 MB stay in cache
_COVARIANCES_PER_BLOCK = 512  # bounds the (rows × panel ends) arrays of the inner integrals
_COV_RTOL = 1e-12  # c² may exceed q1·q2 by this relative amount (rounding of a Gram matrix), not more


@dataclass(frozen=True)
class PanelRule:
    """The rule's constants (module docstring), shared with its JAX port, ntksym.lower.panelled."""

    truncation: float = _L
    gauss_ladder: tuple[float, ...] = _GAUSS_LADDER
    ladder: tuple[float, ...] = _LADDER
    reach: float = _REACH
    s_ladder: tuple[float, ...] = _S_LADDER
    order: int = _ORDER


RULE = PanelRule()


# --------------------------------------------------------------------------------------------------------------
# SymPy expression -> vectorised NumPy function


_NUMPY_TABLE = vocabulary.namespace("numpy")  # every function's NumPy/SciPy evaluation (ntksym.vocabulary)


@dataclass(frozen=True)
class _Vectorized:
    """f(x) on float64 arrays: overflow in unused Piecewise branches is silent; a removable x = 0 is patched."""

    fn: Callable
    value_at_zero: float | None

    def __call__(self, xs: np.ndarray) -> np.ndarray:
        xs = np.asarray(xs, dtype=np.float64)
        with np.errstate(all="ignore"):  # inf in a branch that np.select discards; callers check the results
            out = np.asarray(self.fn(xs), dtype=np.float64)
        if out.shape != xs.shape:  # a constant expression
            out = np.broadcast_to(out, xs.shape).copy()
        if self.value_at_zero is not None:
            out = np.where(xs == 0.0, self.value_at_zero, out)
        return out


def vectorize(expr: sp.Expr, var: sp.Symbol = _x) -> Callable[[np.ndarray], np.ndarray]:
    """A NumPy function of float64 arrays computing the validated SymPy expression expr(var).

    Piecewise, Heaviside, Max, Min, sign, Abs, erf and erfc work elementwise; log(1 + exp(a)) and
    exp(a)/(1 + exp(a)) are rewritten so that they do not overflow; a constant broadcasts to the input's shape.
    """
    expr = sp.sympify(expr)
    others = expr.free_symbols - {var}
    if others:
        raise NotUnivariateError(f"{expr} depends on {sorted(map(str, others))} besides {var}: substitute numbers first")
    # lambdify is acceptable here: expr is an already validated SymPy tree, never raw user text
    fn = sp.lambdify(var, _stabilize(expr), modules=[_NUMPY_TABLE, "scipy", "numpy"])
    with np.errstate(all="ignore"):
        at_zero = float(np.asarray(fn(np.float64(0.0)), dtype=np.float64))
    value_at_zero = None
    if not np.isfinite(at_zero):  # e.g. sin(x)/x: lambdify gives 0/0, the limit exists
        limit = sp.limit(expr, var, 0)
        if limit.is_finite and limit.is_real:
            value_at_zero = float(limit)
    return _Vectorized(fn, value_at_zero)


# --------------------------------------------------------------------------------------------------------------
# Features of an expression: where it has a kink or a sharp transition, and on what scale


@dataclass(frozen=True)
class _Feature:
    """A point x = center where σ changes character, over a width (inf: a kink between polynomial pieces)."""

    center: float
    width: float
    kink: bool


def _local_scale(poly: np.poly1d, at: complex) -> float:
    # Distance over which a polynomial argument changes by O(1) near a root: min over k of (k!/|p^(k)|)^(1/k).
    scales = []
    for k in range(1, poly.order + 1):
        deriv = abs(np.polyder(poly, k)(at))
        if deriv > 0:
            scales.append((math.factorial(k) / deriv) ** (1.0 / k))
    return min(scales) if scales else np.inf


def _polynomial(e: sp.Expr, var: sp.Symbol) -> np.poly1d | None:
    if e.is_polynomial(var):
        coeffs = [complex(cf) for cf in sp.Poly(e, var).all_coeffs()]
        if all(cf.imag == 0 for cf in coeffs) and len(coeffs) >= 2:
            return np.poly1d([cf.real for cf in coeffs])
    return None


def _real_zeros(e: sp.Expr, var: sp.Symbol) -> list[float]:
    """Real points where e changes sign (polynomials exactly; other expressions by a scan and brentq)."""
    poly = _polynomial(sp.expand(e), var)
    if poly is not None:
        # a root is real if its imaginary part is rounding (relative 1e-9 of its size: np.roots is backward stable)
        return [float(r.real) for r in poly.roots if abs(r.imag) <= 1e-9 * (1.0 + abs(r))]
    if not e.has(var):
        return []
    fn = vectorize(e, var)
    grid = np.sinh(np.linspace(-np.arcsinh(1e6), np.arcsinh(1e6), 4001))  # |x| ≤ 1e6, dense near 0
    vals = fn(grid)
    zeros = []
    for lo, hi, a, b in zip(grid[:-1], grid[1:], vals[:-1], vals[1:]):
        if np.isfinite(a) and np.isfinite(b) and a * b < 0:
            zeros.append(float(scipy.optimize.brentq(lambda t: float(fn(np.float64(t))), lo, hi, xtol=1e-14)))
        elif a == 0.0:
            zeros.append(float(lo))
    return zeros


def _relationals(cond: sp.Basic) -> list[sp.Expr]:
    if isinstance(cond, sp.core.relational.Relational):
        return [cond.lhs - cond.rhs]
    if isinstance(cond, (sp.And, sp.Or, sp.Not, sp.Xor)):
        return [r for a in cond.args for r in _relationals(a)]
    return []


def _kink_arguments(e: sp.Basic) -> list[sp.Expr]:
    if isinstance(e, sp.Piecewise):
        return [r for _, cond in e.args for r in _relationals(cond)]
    if isinstance(e, (sp.Heaviside, sp.sign, sp.Abs)):
        return [e.args[0]]
    if isinstance(e, (sp.Max, sp.Min)):
        return [a - b for a, b in itertools.combinations(e.args, 2)]
    return []


def _smooth_arguments(e: sp.Basic) -> list[sp.Expr]:
    if isinstance(e, sp.Pow):
        return [] if (e.exp.is_Integer and e.exp >= 0) else [e.base]
    if isinstance(e, sp.Function) and not isinstance(e, (sp.Piecewise, sp.Heaviside, sp.sign, sp.Abs, sp.Max, sp.Min)):
        return list(e.args)
    return []


def _smooth_features(arg: sp.Expr, var: sp.Symbol) -> list[_Feature]:
    poly = _polynomial(sp.expand(arg), var)
    if poly is None:
        return []  # non-polynomial arguments: their own sub-expressions are scanned instead
    return [_Feature(float(r.real), max(abs(r.imag), _local_scale(poly, r)), False) for r in poly.roots]


def _merge(features: list[_Feature]) -> tuple[_Feature, ...]:
    """One feature per centre (same centre to 1e-12 relative): the smallest width, a kink if any is."""
    merged: list[_Feature] = []
    for feat in sorted(features, key=lambda f: f.center):
        if merged and abs(feat.center - merged[-1].center) <= 1e-12 * (1.0 + abs(feat.center)):
            last = merged[-1]
            merged[-1] = _Feature(last.center, min(last.width, feat.width), last.kink or feat.kink)
        else:
            merged.append(feat)
    return tuple(merged)


def _features(expr: sp.Expr, var: sp.Symbol = _x) -> tuple[_Feature, ...]:
    """Kinks and sharp transitions of expr(var), each with a centre and a width in var-units."""
    if expr.has(sp.DiracDelta):
        raise NtksymError(f"{expr} contains DiracDelta: a numeric dual needs an ordinary function, not a distribution")
    feats: list[_Feature] = []
    for node in sp.preorder_traversal(expr):
        for arg in _kink_arguments(node):
            feats += [_Feature(z, np.inf, True) for z in _real_zeros(arg, var)]
        for arg in _smooth_arguments(node):
            feats += _smooth_features(arg, var)
    return _merge([f for f in feats if np.isfinite(f.center)])


@dataclass(frozen=True)
class _Integrand:
    """A vectorised σ (or σ'), its features as arrays (centres b, widths w, kink flags), and its growth rate."""

    fn: Callable[[np.ndarray], np.ndarray]
    centers: np.ndarray
    widths: np.ndarray
    kinks: np.ndarray
    growth: float


def _growth(fn: Callable[[np.ndarray], np.ndarray]) -> float:
    """The exponential growth rate of |f(x)| as |x| → ∞ (log-slope at |x| = 50; 0 for bounded or polynomial f up to
    k/50 for degree k; inf if f overflows there), to extrapolate the tails beyond the truncation."""
    x0 = np.array([-50.0, 50.0])
    h0, h1 = np.abs(fn(x0)), np.abs(fn(1.02 * x0))
    if not (np.all(np.isfinite(h0)) and np.all(np.isfinite(h1))):
        return np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.log(h1 / h0) / (0.02 * 50.0)
    return float(np.max(np.clip(np.nan_to_num(slope, nan=0.0, posinf=np.inf, neginf=0.0), 0.0, None)))


@ft.lru_cache(maxsize=256)
def _integrand(expr: sp.Expr) -> _Integrand:
    feats = _features(expr)
    fn = vectorize(expr)
    return _Integrand(
        fn,
        np.array([f.center for f in feats], dtype=np.float64),
        np.array([f.width for f in feats], dtype=np.float64),
        np.array([f.kink for f in feats], dtype=bool),
        _growth(fn),
    )


def feature_arrays(expr: sp.Expr) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres b, widths w (x-units; inf for a kink between polynomial pieces) and kink flags of expr(x)'s
    features: the data the rule's panel ends are built from, here and in its JAX port."""
    h = _integrand(sp.sympify(expr))
    return h.centers, h.widths, h.kinks


# --------------------------------------------------------------------------------------------------------------
# The rule: composite Gauss–Legendre on panels with data-dependent ends and a fixed count (module docstring)

_TAIL_STEP = 0.5
_EDGES = np.array([-_L, _L, -(_L - _TAIL_STEP), _L - _TAIL_STEP])  # the truncation points, and a step inside


def _tail(h_edges: np.ndarray, growth) -> np.ndarray:
    """Estimate of ∫_{|z|>L} |h(z)| φ(z) dz from h at _EDGES (last axis).

    Beyond each end, |h| is taken to grow at most exponentially, |h(z)| ≤ |h(L)|·e^{a(z−L)}, with a the growth
    seen over the last step inside, clipped into [0, growth] (growth: the largest rate the activation allows in
    these coordinates). Then the tail is |h(L)|·e^{a²/2 − aL}·P(z > L − a): exact for exponential growth, about
    |h(L)|·P(z > L) for bounded or polynomial h.
    """
    h = np.abs(h_edges)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slope = np.log(h[..., :2] / h[..., 2:]) / _TAIL_STEP
    a = np.clip(np.nan_to_num(slope, nan=0.0, posinf=np.inf, neginf=0.0), 0.0, np.asarray(growth)[..., None])
    log_tail = 0.5 * a * a - a * _L + scipy.special.log_ndtr(a - _L)
    with np.errstate(over="ignore", invalid="ignore"):
        tail = np.where(h[..., :2] == 0.0, 0.0, h[..., :2] * np.exp(log_tail))
    return tail.sum(axis=-1)


@ft.lru_cache(maxsize=None)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes on [−1, 1] and weights, the weights pre-multiplied by 1/√(2π) (φ's constant)."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return nodes, weights / np.sqrt(2.0 * np.pi)


def _div(num, den) -> np.ndarray:
    """num/den with |den| floored at _TINY (sign kept): a position that would be infinite becomes huge."""
    den = np.asarray(den, dtype=np.float64)
    return num / np.where(den < 0, np.minimum(den, -_TINY), np.maximum(den, _TINY))


def _ladder(t: np.ndarray, eps: np.ndarray, multipliers=_LADDER) -> list[np.ndarray]:
    """t and t ± m·ε for the levels with m·ε < _REACH; a level left out collapses onto t (a zero-length panel)."""
    points = [t]
    for m in multipliers:
        d = m * eps
        near = d < _REACH
        points += [np.where(near, t - d, t), np.where(near, t + d, t)]
    return points


def _concat(points: list, batch: tuple[int, ...]) -> np.ndarray:
    """Panel ends, each entry broadcast over the batch shape and laid along a new last axis."""
    return np.concatenate([np.broadcast_to(np.asarray(p)[..., None], batch + (1,)) for p in points], axis=-1)


def _ends_per_row(h: _Integrand) -> int:
    return len(_GAUSS_LADDER) + (1 + 2 * len(_LADDER)) * len(h.centers)


def _compact(ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Midpoints and half-widths of each row's panels (ends sorted and clipped into [−L, L]), the non-empty
    panels first, and the number of non-empty panels per row. Empty panels add exactly 0 to any sum."""
    ends = np.sort(np.clip(ends, -_L, _L), axis=-1)
    a, b = ends[..., :-1], ends[..., 1:]
    empty = b == a
    order = np.argsort(empty, axis=-1, kind="stable")
    a, b = np.take_along_axis(a, order, axis=-1), np.take_along_axis(b, order, axis=-1)
    return 0.5 * (a + b), 0.5 * (b - a), (~empty).sum(axis=-1)


def _nodes(mid: np.ndarray, half: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes z and weights w·φ(z) on the panels, flattened to shape (..., panels·n)."""
    x, w = _legendre(n)
    z = mid[..., None] + half[..., None] * x
    weight = np.square(z)
    weight *= -0.5
    np.exp(weight, out=weight)
    weight *= half[..., None] * w
    shape = mid.shape[:-1] + (-1,)
    return z.reshape(shape), weight.reshape(shape)


def _used(mid: np.ndarray, half: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The panel columns that some row uses (the others are empty in every row)."""
    keep = int(count.max(initial=0))
    return mid[..., :keep], half[..., :keep]


def _one_dim_ends(h: _Integrand, r: np.ndarray) -> np.ndarray:
    """Panel ends of E[h(r·z)]: the Gaussian ladder and each feature's ladder, at b/r with width w/r."""
    points = list(_GAUSS_LADDER)
    for b, w in zip(h.centers, h.widths):
        points += _ladder(_div(b, r), _div(w, r))
    return _concat(points, r.shape)


def _expect_1d(h: _Integrand, r: np.ndarray, panels, n: int, power: int, *, allowance: bool):
    """E[h(r·z)^power], z ~ N(0, 1), for r = √q of shape (B,); and its tail + rounding allowance (or 0)."""
    z, w = _nodes(*panels, n)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing moment is reported by _check_finite
        vals = h.fn(r[:, None] * z) ** power
        value = np.einsum("bi,bi->b", w, vals)
        if not allowance:
            return value, 0.0
        tail = _tail(h.fn(r[:, None] * _EDGES) ** power, power * h.growth * r)
    rounding = z.shape[-1] * _EPS * np.einsum("bi,bi->b", w, np.abs(vals))
    return value, tail + rounding


def _outer_ends(h: _Integrand, r1, r2, rho, s) -> np.ndarray:
    """Panel ends of the outer (z1) integral: Gaussian ladder, features of h(√q1·z1) and of G (module docstring)."""
    points = list(_GAUSS_LADDER)
    den = r2 * rho
    for b, w, kink in zip(h.centers, h.widths, h.kinks):
        t_G = _div(b, den)
        if kink:  # G: the kink smoothed over s/|ρ|, its pieces on the scale w/(√q2·|ρ|)
            eps_G = _div(w, np.abs(den))
            points += _ladder(t_G, _div(s, np.abs(rho)), _S_LADDER)[1:]
        else:
            with np.errstate(over="ignore"):  # w/√q2 may overflow to inf: then so is the width, as it should be
                eps_G = _div(np.sqrt(_div(w * w, r2 * r2) + s * s), np.abs(rho))
        t_f, eps_f = _div(b, r1), _div(w, r1)
        meet = np.abs(t_f - t_G) <= 0.25 * np.minimum(eps_f, eps_G)  # one ladder, at the finer width, serves both
        points += _ladder(t_f, np.where(meet, np.minimum(eps_f, eps_G), eps_f))
        points += _ladder(t_G, np.where(meet, np.inf, eps_G))
    return _concat(points, r1.shape)


def _inner_ends(h: _Integrand, r2, rho, s, z1) -> np.ndarray:
    """Panel ends of the inner (z2) integral of each row: Gaussian ladder and features of h(√q2·(ρ·z1 + s·z2)).

    The arguments are flat arrays over the rows: √q2, ρ, s of the row's covariance, and its outer node z1.
    """
    points = list(_GAUSS_LADDER)
    for b, w in zip(h.centers, h.widths):
        points += _ladder(_div(_div(b, r2) - rho * z1, s), _div(w, r2 * s))
    return _concat(points, z1.shape)


def _inner_integrals(h: _Integrand, rows, n: int, *, with_abs: bool):
    """G = E[h(√q2·(ρ·z1 + s·z2))] of each row (√q2, ρ, s, z1: flat arrays); and E|h(…)| if with_abs.

    Rows are grouped by their number of non-empty panels, so that no work goes into empty ones; each row's value
    is still that of the fixed-size rule.
    """
    r2, rho, s, z1 = rows
    mid, half, count = _compact(_inner_ends(h, r2, rho, s, z1))
    x, wx = _legendre(n)
    G = np.zeros(z1.shape)
    G_abs = np.zeros(z1.shape) if with_abs else None
    by_count = np.argsort(count, kind="stable")
    starts = np.searchsorted(count[by_count], np.arange(mid.shape[-1] + 2))
    for panels in range(1, mid.shape[-1] + 1):
        group = by_count[starts[panels] : starts[panels + 1]]
        for blk in _chunks(group.size, max(1, _CHUNK // (panels * n))):
            idx = group[blk]
            m, hw = mid[idx, :panels], half[idx, :panels]
            scale = (r2[idx] * s[idx])[:, None]
            v = (scale * hw)[..., None] * x  # v = √q2·(ρ·z1 + s·(m + hw·x)), formed as α + β·x per panel
            v += (r2[idx] * rho[idx] * z1[idx])[:, None, None] + (scale * m)[..., None]
            hv = h.fn(v)
            weight = hw[..., None] * x
            weight += m[..., None]
            np.square(weight, out=weight)
            weight *= -0.5
            np.exp(weight, out=weight)
            weight *= hw[..., None] * wx
            G[idx] = np.einsum("rpk,rpk->r", weight, hv)
            if with_abs:
                G_abs[idx] = np.einsum("rpk,rpk->r", weight, np.abs(hv))
    return G, G_abs


def _expect_2d(h: _Integrand, geometry, n_outer: int, n_inner: int, *, allowance: bool):
    """E[h(u) h(v)] for a block of covariances (geometry: √q1, √q2, ρ, s of shape (B,)), with n_outer and
    n_inner points per panel; and its tail + rounding allowance (or 0)."""
    r1, r2, rho, s = geometry
    z1, w1 = _nodes(*_used(*_compact(_outer_ends(h, *geometry))), n_outer)
    if allowance:  # more rows (with weight 0) at the truncation points, for the tail estimate
        z1 = np.concatenate([z1, np.broadcast_to(_EDGES, (z1.shape[0], _EDGES.size))], axis=-1)
        w1 = np.concatenate([w1, np.zeros((z1.shape[0], _EDGES.size))], axis=-1)
    rows = tuple(np.repeat(a, z1.shape[-1]) for a in (r2, rho, s)) + (z1.ravel(),)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing moment is reported by _check_finite
        G, G_abs = _inner_integrals(h, rows, n_inner, with_abs=allowance)
        G = G.reshape(z1.shape)
        hu = h.fn(r1[:, None] * z1)
        value = np.einsum("bi,bi->b", w1, hu * G)
    if not allowance:
        return value, 0.0
    # tails: the outer integrand at the edge rows (the last ones); each row's inner integrand at its edges
    edges = slice(z1.shape[-1] - _EDGES.size, None)
    with np.errstate(invalid="ignore"):  # growth 0 times an infinite … is no growth
        outer_growth = np.nan_to_num(h.growth * (r1 + r2 * np.abs(rho)), nan=0.0)
        inner_growth = np.nan_to_num(h.growth * rows[0] * rows[2], nan=0.0)
    tail = _tail(hu[:, edges] * G[:, edges], outer_growth)
    r2_, rho_, s_, z1_ = (a[:, None] for a in rows)
    inner_tail = _tail(h.fn(r2_ * (rho_ * z1_ + s_ * _EDGES)), inner_growth).reshape(z1.shape)
    with np.errstate(over="ignore", invalid="ignore"):  # an infinite tail estimate is an honest answer
        weighted = np.abs(hu) * inner_tail
        weighted[:, edges] = 0.0  # the edge rows have weight 0 (and an infinite tail there would give 0·inf)
        tail += np.einsum("bi,bi->b", w1, weighted)
    terms = z1.shape[-1] + _ends_per_row(h) * n_inner
    rounding = terms * _EPS * np.einsum("bi,bi->b", w1, np.abs(hu) * G_abs.reshape(z1.shape))
    return value, tail + rounding


def _chunks(total: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, total)) for i in range(0, total, size)]


# --------------------------------------------------------------------------------------------------------------
# Inputs


def _as_float_array(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _describe(index: tuple, **arrays) -> str:
    where = f" at index {index}" if index else ""
    return where + ": " + ", ".join(f"{k}={float(v[index])!r}" for k, v in arrays.items())


def _validate_variance(q: np.ndarray) -> None:
    bad = ~(np.isfinite(q) & (q >= 0))
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidCovarianceError(
            f"invalid variance{_describe(index, q=q)}; a variance must be finite and ≥ 0 "
            f"({int(bad.sum())} invalid entr{'y' if bad.sum() == 1 else 'ies'})"
        )


def _validate_covariance(q1: np.ndarray, q2: np.ndarray, c: np.ndarray) -> None:
    for name, arr in (("q1", q1), ("q2", q2), ("c", c)):
        bad = ~np.isfinite(arr)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InvalidCovarianceError(
                f"covariance entry {name} is not finite{_describe(index, q1=q1, q2=q2, c=c)}; pass finite numbers"
            )
    bad = (q1 < 0) | (q2 < 0)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidCovarianceError(f"negative variance{_describe(index, q1=q1, q2=q2, c=c)}; variances must be ≥ 0")
    bad = c * c > q1 * q2 * (1.0 + _COV_RTOL)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidCovarianceError(
            f"c² > q1·q2{_describe(index, q1=q1, q2=q2, c=c)}: [[q1, c], [c, q2]] is not positive semi-definite "
            "(|c| may exceed √(q1·q2) only by rounding, relative 1e-12)"
        )


def _correlation(q1: np.ndarray, q2: np.ndarray, c: np.ndarray):
    """√q1, √q2, ρ clipped into [−1, 1], and s = √(1 − ρ²) (written (1 − ρ)(1 + ρ): accurate near |ρ| = 1).

    ρ = c/√(q1·q2) with one square root, so that c = q1 = q2 gives ρ = 1 exactly: K̇ of a σ' with a jump
    varies like √(1 − ρ), and a rounded ρ = 1 − 2e-16 would move it by ~1e-9.
    """
    r1, r2 = np.sqrt(q1), np.sqrt(q2)
    with np.errstate(over="ignore", under="ignore"):
        product = q1 * q2
    normal = np.isfinite(product) & (product >= np.finfo(np.float64).tiny)
    root = np.where(normal, np.sqrt(np.where(normal, product, 1.0)), r1 * r2)
    rho = np.clip(_div(c, root), -1.0, 1.0)
    return r1, r2, rho, np.sqrt((1.0 - rho) * (1.0 + rho))


# --------------------------------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True)
class NumericDual:
    """K, K̇ and V of σ by panel Gauss–Legendre quadrature, each with an error estimate (module docstring).

    **Fields:** `sigma`, `dsigma` (SymPy expressions in ntksym.symbols.x; dsigma None when σ' is not an ordinary
    function), `order` (Gauss–Legendre points per panel), `error_bound` (the largest estimated error relative to
    √(V(q1)·V(q2)) over a fixed grid of covariances). Build it with `numeric_dual`.
    """

    sigma: sp.Expr
    dsigma: sp.Expr | None
    order: int
    error_bound: float
    _f: _Integrand = dataclasses.field(repr=False, compare=False)
    _df: _Integrand | None = dataclasses.field(repr=False, compare=False)

    def __post_init__(self):
        _check_order(self.order)

    def K(self, q1, q2, c) -> np.ndarray:
        """K(q1, q2, c) = E[σ(u) σ(v)]: array arguments broadcast; float64 out."""
        return _bivariate(self._f, q1, q2, c, self.order, estimate=False)[0]

    def Kdot(self, q1, q2, c) -> np.ndarray:
        """K̇(q1, q2, c) = E[σ'(u) σ'(v)]; raises NtksymError if the dual was built without σ'."""
        return _bivariate(self._derivative(), q1, q2, c, self.order, estimate=False)[0]

    def V(self, q) -> np.ndarray:
        """V(q) = E[σ(z)²], z ~ N(0, q)."""
        return _univariate(self._f, q, 2, self.order, estimate=False)[0]

    def K_with_error(self, q1, q2, c) -> tuple[np.ndarray, np.ndarray]:
        """(K, its estimated absolute error)."""
        return _bivariate(self._f, q1, q2, c, self.order, estimate=True)

    def Kdot_with_error(self, q1, q2, c) -> tuple[np.ndarray, np.ndarray]:
        """(K̇, its estimated absolute error)."""
        return _bivariate(self._derivative(), q1, q2, c, self.order, estimate=True)

    def V_with_error(self, q) -> tuple[np.ndarray, np.ndarray]:
        """(V, its estimated absolute error)."""
        return _univariate(self._f, q, 2, self.order, estimate=True)

    @property
    def has_Kdot(self) -> bool:
        return self._df is not None

    def _derivative(self) -> _Integrand:
        if self._df is None:
            raise NtksymError(
                f"this numeric dual of σ = {self.sigma} has no K̇: it was built without σ' (σ has a jump, or σ' "
                "was left out); pass dsigma_expr to numeric_dual"
            )
        return self._df


def _bivariate(h: _Integrand, q1, q2, c, n: int, *, estimate: bool) -> tuple[np.ndarray, np.ndarray]:
    """E[h(u) h(v)] and its error estimate (zeros if not estimate) for broadcast covariance arrays."""
    q1, q2, c = np.broadcast_arrays(_as_float_array(q1), _as_float_array(q2), _as_float_array(c))
    _validate_covariance(q1, q2, c)
    # K is symmetric in (q1, q2): integrate the smaller variance inside, whose panels are fewer (and K(q1, q2, c)
    # and K(q2, q1, c) are then the same number)
    larger, smaller = np.maximum(q1, q2).ravel(), np.minimum(q1, q2).ravel()
    geometry = _correlation(larger, smaller, c.ravel())
    value, error = np.empty(q1.size), np.zeros(q1.size)
    for blk in _chunks(q1.size, _COVARIANCES_PER_BLOCK):
        geo = tuple(a[blk] for a in geometry)
        value[blk], allowance = _expect_2d(h, geo, n, n, allowance=estimate)
        if estimate:  # lower one dimension at a time, so that the two dimensions' errors cannot cancel
            outer_low, _ = _expect_2d(h, geo, n - _LOWER, n, allowance=False)
            inner_low, _ = _expect_2d(h, geo, n, n - _LOWER, allowance=False)
            error[blk] = np.abs(value[blk] - outer_low) + np.abs(value[blk] - inner_low) + allowance
    _check_finite(value, q1=q1.ravel(), q2=q2.ravel(), c=c.ravel())
    return value.reshape(q1.shape), error.reshape(q1.shape)


def _univariate(h: _Integrand, q, power: int, n: int, *, estimate: bool) -> tuple[np.ndarray, np.ndarray]:
    """E[h(z)^power], z ~ N(0, q), and its error estimate (zeros if not estimate)."""
    q = _as_float_array(q)
    _validate_variance(q)
    r = np.sqrt(q.ravel())
    value, error = np.empty(r.size), np.zeros(r.size)
    for blk in _chunks(r.size, _COVARIANCES_PER_BLOCK):
        panels = _used(*_compact(_one_dim_ends(h, r[blk])))
        value[blk], allowance = _expect_1d(h, r[blk], panels, n, power, allowance=estimate)
        if estimate:
            low, _ = _expect_1d(h, r[blk], panels, n - _LOWER, power, allowance=False)
            error[blk] = np.abs(value[blk] - low) + allowance
    _check_finite(value, q=q.ravel())
    return value.reshape(q.shape), error.reshape(q.shape)


def _check_finite(value: np.ndarray, **inputs: np.ndarray) -> None:
    """Raise, never return NaN, where a value is not finite."""
    if not np.all(np.isfinite(value)):
        i = int(np.flatnonzero(~np.isfinite(value))[0])
        where = ", ".join(f"{name}={float(a[i])!r}" for name, a in inputs.items())
        raise DivergentMomentError(
            f"the Gaussian integral is {value[i]!r} at {where}: the activation overflows float64 in the Gaussian's "
            "range (its moments are too large to represent at this variance), or is not defined there (NaN)"
        )


def _check_order(order: int) -> None:
    if not isinstance(order, int) or order < _LOWER + 1:
        raise ValueError(f"order must be an integer ≥ {_LOWER + 1} (the error estimate uses order − {_LOWER}), got {order!r}")


def expect_numeric(f_expr: sp.Expr, q, *, order: int = _ORDER) -> tuple[np.ndarray, np.ndarray]:
    """E[f(z)], z ~ N(0, q), by the same rule: (value, estimated absolute error), arrays shaped like q."""
    _check_order(order)
    return _univariate(_integrand(sp.sympify(f_expr)), q, 1, order, estimate=True)


_GRID_Q = (1e-3, 1.0, 1e3)  # error_bound's grid: these variances in all pairs, with
_GRID_RHO = (-1.0, -0.999, -0.5, 0.0, 0.5, 0.9, 0.999, 1.0)  # these correlations (±1 exactly)


def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cells = [(a, b, r) for a, b in itertools.combinations_with_replacement(_GRID_Q, 2) for r in _GRID_RHO]
    q1, q2, rho = (np.array(col) for col in zip(*cells))
    return q1, q2, rho * np.sqrt(q1 * q2)


def _largest_relative(error: np.ndarray, scale: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):  # scale 0 (σ ≡ 0 there) with error 0 is no error
        return float(np.max(np.where(error == 0.0, 0.0, error / scale)))


def _error_bound(f: _Integrand, df: _Integrand | None, n: int) -> float:
    """The largest estimated error relative to the Cauchy–Schwarz scale, over _GRID_Q × _GRID_Q × _GRID_RHO."""
    q1, q2, c = _grid()
    bounds = []
    for h in (f, df) if df is not None else (f,):
        variances, v_err = _univariate(h, np.array(_GRID_Q), 2, n, estimate=True)
        v = dict(zip(_GRID_Q, variances))
        _, k_err = _bivariate(h, q1, q2, c, n, estimate=True)
        scale = np.sqrt([v[a] for a in q1]) * np.sqrt([v[b] for b in q2])  # two roots: V may be huge
        bounds += [_largest_relative(v_err, variances), _largest_relative(k_err, scale)]
    return max(bounds)


def numeric_dual(sigma_expr: sp.Expr, dsigma_expr: sp.Expr | None = None, *, order: int = _ORDER) -> NumericDual:
    """The numeric dual of σ(x) (and of σ'(x) when given), x = ntksym.symbols.x, with its error_bound."""
    sigma_expr = sp.sympify(sigma_expr)
    dsigma_expr = None if dsigma_expr is None else sp.sympify(dsigma_expr)
    _check_order(order)
    f = _integrand(sigma_expr)
    df = None if dsigma_expr is None else _integrand(dsigma_expr)
    return NumericDual(sigma_expr, dsigma_expr, order, _error_bound(f, df, order), f, df)
