"""Property testing for dual activations: hypothesis strategies and the identities of DESIGN.md §1 as checks.

Strategies draw what the identities quantify over, with extra weight on the edges that break naive
formulas (ρ = ±1 exactly, ρ near ±1 and near 0, variances at the ends of their range):

* `variances`, `correlations`, `covariances` — valid (q1, q2, c), c² ≤ q1·q2 exactly;
* `activation_expressions` — σ(x) from a grammar that `ntksym.derive` closes in closed form;
* `input_batches` (and `input_covariance`) — network inputs and their covariance Σ⁰ = x·x'/d.

Checks take a `Dual`, or plain callables K(q1, q2, c) (with K̇ and V where the identity needs them), and
raise `IdentityError` (an AssertionError) naming the identity, the covariance, the discrepancy and the
tolerance: `check_symmetry`, `check_diagonal`, `check_cauchy_schwarz`, `check_price`,
`check_independence`, `check_psd`, and `check_all`.

**Tolerances.** Every value is compared against a *scale*, √(V(q1)·V(q2)) for K (the Cauchy–Schwarz
bound of |K|, so a K that passes through zero is still measured meaningfully) and √(K̇(q1,q1,q1)·K̇(q2,q2,q2))
for K̇. Each value is assumed accurate to a relative error `rtol` of its scale: by default the float64
rounding of how it was computed (constants below), plus `Dual.error_bound` for a numeric dual; an identity
that compares n values allows n·rtol. Pass `rtol=` for values of a known lower accuracy (float32: ~1e-6).

    import ntksym as nk
    from hypothesis import given
    from ntksym.testing import check_all, covariances

    @given(covariances())
    def test_my_activation(cov):
        check_all(nk.derive("x*erf(x)"), cov)

Needs hypothesis (`pip install hypothesis`); imports no JAX.
"""

from __future__ import annotations

import functools as ft
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import sympy as sp

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as err:  # pragma: no cover - exercised only without hypothesis
    raise ImportError(
        "ntksym.testing needs hypothesis, which is not installed: pip install hypothesis "
        "(or pip install 'ntksym[test]')"
    ) from err

from .activation import activation
from .dual import Dual
from .errors import InvalidCovarianceError
from .symbols import c as _c
from .symbols import x

__all__ = [
    "DIGITS",
    "EPS64",
    "NEAR_ONE",
    "PRICE_SAFETY",
    "RTOL_CALLABLE",
    "RTOL_EXACT",
    "IdentityError",
    "activation_expressions",
    "check_all",
    "check_cauchy_schwarz",
    "check_diagonal",
    "check_independence",
    "check_price",
    "check_psd",
    "check_symmetry",
    "correlations",
    "covariances",
    "input_batches",
    "input_covariance",
    "variances",
]

EPS64 = float(np.finfo(np.float64).eps)

# Digits of Dual.evaluate in the checks: beyond 32, the product of two float64 (106 bits) is exact, so
# q1·q2 − c² is exact near |ρ| = 1, where √(q1·q2 − c²) would turn a 10^-30 rounding into a 10^-15 error
# (measured: ReLU's ∂K/∂c at q1 = 2, q2 = 3, c = fl(√6) is off by 1e-9 at Dual.evaluate's default 30 digits).
DIGITS = 40

# One value of an exact Dual: evaluated in DIGITS-digit arithmetic and rounded once to float64, so it is
# within eps/2 of itself, hence of the scale (|K| ≤ √(V1·V2)). 2·eps per value leaves a factor 4 for the
# evaluation's own error (1e-40 times the formula's condition).
RTOL_EXACT = 2 * EPS64

# One value of a float64 callable: k·eps·condition with k = 64 rounding steps at condition 1. A formula
# that cancels (arccos or √(1 − ρ²) near |ρ| = 1 amplifies rounding by 1/√(1 − ρ²)) needs a larger
# rtol, which its caller states.
RTOL_CALLABLE = 64 * EPS64

# Price's check for numeric duals and callables: K is differenced over c ± h and c ± h/2. The truncation
# error of D(h/2) is estimated by |D(h) − D(h/2)|, which is 3× it for a smooth K (error ∝ h²) and still
# ≥ 1/4 of it for error ∝ h^p, p ≥ 1/3 (K̇ with a square-root singularity at |ρ| = 1, as ReLU's);
# PRICE_SAFETY = 4 covers both. Rounding adds 2·rtol·√(V1V2)/h. Steps run from ρ-steps 1/16 down to
# ∛rtol/64 (below ∛rtol, rounding ∝ rtol/h overtakes truncation ∝ h² for a smooth K), and the step with
# the least allowance is used.
PRICE_SAFETY = 4.0


class IdentityError(AssertionError):
    """An identity of DESIGN.md §1 does not hold within its tolerance.

    **Attributes:** `identity` (its name), `covariance` (where it failed), `discrepancy` (measured,
    relative to the scale), `tolerance` (allowed, relative to the scale).
    """

    def __init__(self, message: str, *, identity: str, covariance, discrepancy: float, tolerance: float):
        super().__init__(message)
        self.identity = identity
        self.covariance = covariance
        self.discrepancy = discrepancy
        self.tolerance = tolerance


# ================================================================================================ strategies


def _check_variance_range(min_variance: float, max_variance: float) -> None:
    if not (math.isfinite(min_variance) and math.isfinite(max_variance) and 0.0 < min_variance <= max_variance):
        raise ValueError(
            f"variances need 0 < min_variance ≤ max_variance < inf (log-uniform), got {min_variance}, {max_variance}"
        )


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)


def variances(min_variance: float = 1e-3, max_variance: float = 1e3, edges: bool = True) -> st.SearchStrategy[float]:
    """Variances q, log-uniform in [min_variance, max_variance]; with `edges`, the bounds (and 1) exactly too."""
    _check_variance_range(min_variance, max_variance)
    lo, hi = math.log(min_variance), math.log(max_variance)
    inner = st.floats(lo, hi).map(lambda t: _clamp(math.exp(t), min_variance, max_variance))
    if not edges:
        return inner
    points = [min_variance, max_variance] + ([1.0] if min_variance < 1.0 < max_variance else [])
    return st.one_of(st.sampled_from(points), inner)


NEAR_ONE = 1.0 - 1e-12
"""The correlation nearest ±1 that `correlations` draws on purpose (besides ±1): √(1 − ρ²) ≈ 1.4e-6."""


def correlations(edges: bool = True) -> st.SearchStrategy[float]:
    """Correlations ρ in [−1, 1]; with `edges`, also exactly 0 and ±1, ±(1 − 1e-12), ±(1 − 10^-t) and ±10^-t
    for t in [1, 12] (where √(1 − ρ²) cancels and where K is near its value at independence)."""
    uniform = st.floats(-1.0, 1.0)
    if not edges:
        return uniform
    sign = st.sampled_from([1.0, -1.0])
    near_one = st.tuples(sign, st.floats(1.0, 12.0)).map(lambda s: s[0] * (1.0 - 10.0 ** -s[1]))
    near_zero = st.tuples(sign, st.floats(1.0, 12.0)).map(lambda s: s[0] * 10.0 ** -s[1])
    points = st.sampled_from([0.0, 1.0, -1.0, NEAR_ONE, -NEAR_ONE])
    return st.one_of(points, near_one, near_zero, uniform)


def _covariance_entry(rho: float, q1: float, q2: float) -> float:
    """c = ρ·√(q1·q2) as a float with c² ≤ q1·q2 exactly (in rational arithmetic, hence after rounding too).

    √(q1·q2) is computed as one root where the product is a normal float, so that q1 = q2, ρ = ±1 gives
    c = ±q1 exactly; then c is stepped toward 0 by ulps while rounding left it outside the bound."""
    product = q1 * q2
    root = math.sqrt(product) if 0.0 < product < math.inf and product >= 2.3e-308 else math.sqrt(q1) * math.sqrt(q2)
    entry = _clamp(rho * root, -root, root)
    bound = Fraction(q1) * Fraction(q2)
    while Fraction(entry) ** 2 > bound:
        entry = math.nextafter(entry, 0.0)
    return entry


def covariances(
    min_variance: float = 1e-3, max_variance: float = 1e3, edges: bool = True
) -> st.SearchStrategy[tuple[float, float, float]]:
    """Valid covariances (q1, q2, c): variances from `variances`, c = ρ·√(q1·q2) with ρ from `correlations`.

    Always c² ≤ q1·q2 exactly. With `edges`, also q1 = q2 (a quarter of the draws), so that ρ = ±1 gives
    c = ±q exactly (the diagonal K(q, q, q) = V(q) and its mirror)."""
    _check_variance_range(min_variance, max_variance)
    return _covariances(variances(min_variance, max_variance, edges), correlations(edges), edges)


@st.composite
def _covariances(draw, variance, correlation, edges: bool) -> tuple[float, float, float]:
    q1 = draw(variance)
    same = edges and draw(st.integers(0, 3)) == 3
    q2 = q1 if same else draw(variance)
    rho = draw(correlation)
    return q1, q2, _covariance_entry(rho, q1, q2)


# ------------------------------------------------------------------------------------ activation grammar
#
# The closed-form engine works on terms coef·xⁿ·e^{αx²+βx}·[H(±x)]·[erf(bx)] (ntksym/gaussian/terms.py).
# Measured with derive(timeout=10): trees of depth ≤ 2 inside one family below close in 0.1-6 s; mixing
# families (ReLU + Gaussian damping, x·erf(x) + ReLU), erf with an offset (erf(2x + 1)), or polynomial ×
# Gaussian damping × sin does not close within the default 20 s and falls back to a numeric dual. So each
# drawn σ comes from one family, plus polynomials.

_R = sp.Rational
_COEFFICIENTS = tuple(_R(n, 2) for n in (-4, -3, -2, -1, 1, 2, 3, 4))  # ±1/2 … ±2: exact, small
_SLOPES = (_R(1, 2), sp.S.One, sp.Integer(2))  # erf(bx), sin(bx + d): a transition width of 0.5 to 2
_PHASES = (sp.S.Zero, _R(1, 2), -sp.S.One)
_DAMPING = (_R(1, 4), _R(1, 2), sp.S.One)  # exp(−a·x²), a > 0: every moment stays finite


def _scaled(leaf: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(lambda a, e: a * e, st.sampled_from(_COEFFICIENTS), leaf)


def _monomials(max_degree: int) -> st.SearchStrategy:
    return _scaled(st.integers(1, max_degree).map(lambda k: x**k))


def _piecewise_leaves() -> st.SearchStrategy:
    """Positively homogeneous pieces with their kink at 0 (ReLU, |x|, sign, steps, leaky ReLU, xᵏ·H(x))."""
    kinks = st.sampled_from([sp.Max(0, x), sp.Min(0, x), sp.Abs(x), sp.sign(x), sp.Heaviside(x), sp.Heaviside(-x)])
    leaky = st.sampled_from([_R(1, 10), _R(1, 4), -_R(1, 2)]).map(lambda a: sp.Piecewise((x, x > 0), (a * x, True)))
    rectified = st.integers(1, 2).map(lambda k: x**k * sp.Heaviside(x))
    return st.one_of(_scaled(st.one_of(kinks, leaky, rectified)), _monomials(2))


def _erf_leaves() -> st.SearchStrategy:
    """a·erf(b·x) (no offset: erf(bx + d) with d ≠ 0 does not close quickly) and low-degree monomials."""
    return st.one_of(_scaled(st.sampled_from(_SLOPES).map(lambda b: sp.erf(b * x))), _monomials(2))


def _trig_leaves() -> st.SearchStrategy:
    """a·sin(b·x + d), a·cos(b·x + d) and low-degree monomials (E[e^{ibu}] is Gaussian: closed forms)."""
    wave = st.builds(lambda f, b, d: f(b * x + d), st.sampled_from([sp.sin, sp.cos]), st.sampled_from(_SLOPES),
                     st.sampled_from(_PHASES))
    return st.one_of(_scaled(wave), _monomials(2))


def _gaussian_leaves() -> st.SearchStrategy:
    """Gaussian damping exp(−α·x²) times 1, x or x² − 1 (finite moments at every variance)."""
    damping = st.sampled_from(_DAMPING).map(lambda a: sp.exp(-a * x**2))
    factor = st.sampled_from([sp.S.One, x, x**2 - 1])
    return _scaled(st.builds(lambda d, f: d * f, damping, factor))


def _damped_waves() -> st.SearchStrategy:
    """a·cos(b·x)·exp(−α·x²): 2-4 s to derive alone, 8-14 s in sums, so drawn only alone."""
    return _scaled(st.builds(lambda a, b: sp.exp(-a * x**2) * sp.cos(b * x), st.sampled_from(_DAMPING),
                             st.sampled_from(_SLOPES)))


@dataclass(frozen=True)
class _Family:
    """Leaves of one family of σ; whether products of its subexpressions stay in the fast class; and
    `alone`, leaves drawn only on their own (not in sums or products)."""

    leaves: Callable[[], st.SearchStrategy]
    products: bool
    alone: Callable[[], st.SearchStrategy] | None = None


_FAMILIES = {
    "piecewise": _Family(_piecewise_leaves, products=True),  # products of homogeneous pieces are homogeneous
    "erf": _Family(_erf_leaves, products=False),  # erf·erf is outside the term class
    "trig": _Family(_trig_leaves, products=True),  # sin·cos is a sum of exponentials again
    # products multiply the number of terms past the fast class
    "gaussian": _Family(_gaussian_leaves, products=False, alone=_damped_waves),
}


def _trees(family: _Family, depth: int) -> st.SearchStrategy:
    """Trees of sums (and products, where the family allows) of leaves, at most `depth` levels deep."""
    if depth == 0:
        return family.leaves()
    sub = _trees(family, depth - 1)
    branches = [family.leaves(), st.builds(lambda a, b: a + b, sub, sub)]
    if family.products:
        # one factor a leaf: a product of two sums multiplies the number of terms past the fast class
        branches.append(st.builds(lambda a, b: a * b, sub, family.leaves()))
    return st.one_of(*branches)


def _family_expressions(family: _Family, depth: int) -> st.SearchStrategy:
    trees = _trees(family, depth)
    return trees if family.alone is None else st.one_of(trees, family.alone())


_PROBES = tuple(_R(n, 10) for n in (-23, -7, 3, 11, 19))  # points away from the kinks at 0


def _is_valid_activation(expr: sp.Expr) -> bool:
    """σ depends on x, is not 0 at every probe point (sums may cancel) and passes ntksym.activation."""
    if not (isinstance(expr, sp.Expr) and expr.has(x)):
        return False
    if all(abs(complex(sp.N(expr.subs(x, t)))) < 1e-12 for t in _PROBES):
        return False
    activation(expr)  # raises an NtksymError if the grammar ever builds an invalid σ: a bug to report
    return True


def activation_expressions(max_depth: int = 1, families: tuple[str, ...] | None = None) -> st.SearchStrategy[sp.Expr]:
    """Activations σ(x) in ntksym.symbols.x that `ntksym.derive` finds in closed form within its time budget.

    Each σ is a tree of sums (and, in the families that allow it, products) of leaves from one family,
    at most `max_depth` levels deep (0: a single leaf):
      "piecewise"  ReLU, min(0, x), |x|, sign, H(±x), leaky ReLU, xᵏ·H(x), monomials;
      "erf"        a·erf(b·x), monomials;
      "trig"       a·sin(b·x + d), a·cos(b·x + d), monomials;
      "gaussian"   a·exp(−α·x²)·{1, x, x² − 1}; and a·exp(−α·x²)·cos(b·x) on its own.
    Coefficients are small exact rationals. Every σ passes `ntksym.activation` (finite Gaussian second
    moments, real, univariate) and is not identically zero. Measured: derive() takes 0.1-6 s per σ at
    depth ≤ 2 (mixing families, or erf(b·x + d) with d ≠ 0, would exceed its 20 s budget).
    """
    if not isinstance(max_depth, int) or isinstance(max_depth, bool) or not 0 <= max_depth <= 2:
        raise ValueError(f"max_depth must be 0, 1 or 2 (deeper trees do not derive quickly), got {max_depth!r}")
    names = tuple(_FAMILIES) if families is None else tuple(families)
    unknown = [name for name in names if name not in _FAMILIES]
    if unknown or not names:
        raise ValueError(f"unknown activation families {unknown or names}; choose from {sorted(_FAMILIES)}")
    trees = st.one_of(*(_family_expressions(_FAMILIES[name], max_depth) for name in names))
    return trees.filter(_is_valid_activation)


# ------------------------------------------------------------------------------------------ network inputs


def _as_strategy(value, name: str, lo: int) -> st.SearchStrategy[int]:
    if isinstance(value, st.SearchStrategy):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= lo:
        return st.just(value)
    raise ValueError(f"{name} must be an integer ≥ {lo} or a hypothesis strategy of them, got {value!r}")


def input_batches(
    n=None,
    d=None,
    min_magnitude: float = 1e-2,
    max_magnitude: float = 1e2,
    allow_zero_rows: bool = False,
) -> st.SearchStrategy[np.ndarray]:
    """Float64 arrays x of shape (n, d): n network inputs of dimension d.

    **Arguments:**
    - `n`, `d`: integers or strategies of them (default: 1-6 inputs of dimension 1-5).
    - `min_magnitude`, `max_magnitude`: every entry is 0 or has a magnitude, log-uniform, in this range,
      so Σ⁰(x, x) = x·x/d is 0 only for an all-zero row and cannot underflow or overflow.
    - `allow_zero_rows`: if False (default) every row has a nonzero entry, so every variance is > 0.
    """
    if not (0.0 < min_magnitude <= max_magnitude < math.inf):
        raise ValueError(f"input_batches needs 0 < min_magnitude ≤ max_magnitude < inf, got {min_magnitude}, {max_magnitude}")
    rows = _as_strategy(st.integers(1, 6) if n is None else n, "n", 1)
    cols = _as_strategy(st.integers(1, 5) if d is None else d, "d", 1)
    lo, hi = math.log(min_magnitude), math.log(max_magnitude)
    magnitude = st.floats(lo, hi).map(lambda t: _clamp(math.exp(t), min_magnitude, max_magnitude))
    nonzero = st.builds(lambda s, m: s * m, st.sampled_from([1.0, -1.0]), magnitude)
    return _batches(rows, cols, st.one_of(st.just(0.0), nonzero), nonzero, allow_zero_rows)


@st.composite
def _batches(draw, rows, cols, entries, nonzero, allow_zero_rows: bool) -> np.ndarray:
    shape = (draw(rows), draw(cols))
    batch = np.array(draw(hnp.arrays(np.float64, shape, elements=entries)), dtype=np.float64)
    if not allow_zero_rows:
        for i in np.flatnonzero(~batch.any(axis=1)):
            batch[i, draw(st.integers(0, shape[1] - 1))] = draw(nonzero)
    return batch


def input_covariance(inputs) -> np.ndarray:
    """Σ⁰ = x·xᵀ/d, the input layer's covariance of n inputs of dimension d (DESIGN.md §1), as (n, n) float64."""
    batch = np.asarray(inputs, dtype=np.float64)
    if batch.ndim != 2 or batch.shape[1] == 0:
        raise ValueError(f"inputs must be an (n, d) array with d ≥ 1, got shape {batch.shape}")
    return batch @ batch.T / batch.shape[1]


# ============================================================================================== the subject


@dataclass(frozen=True)
class _Subject:
    """What the checks measure: K, K̇, V and E[σ] as array functions, and the accuracy of one value.

    `mean(q)` returns (E[σ(z)], its absolute error bound); `accuracy` is the relative error of one value of
    K, K̇ or V against its scale, `accuracy_reason` says where it comes from."""

    K: Callable
    Kdot: Callable | None
    V: Callable | None
    mean: Callable | None
    accuracy: float
    accuracy_reason: str
    dual: Dual | None = None
    no_Kdot: str | None = None


def _elementwise(f: Callable, name: str) -> Callable:
    """A scalar callable applied to broadcast float64 arrays, element by element, with float results."""

    def apply(*arrays):
        arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in arrays))
        out = np.empty(arrays[0].shape)
        for idx in np.ndindex(out.shape):
            value = f(*(float(a[idx]) for a in arrays))
            try:
                out[idx] = float(value)
            except TypeError:
                raise TypeError(
                    f"{name} must return one number, got {type(value).__name__}; a lowered dual returns (K, K̇): "
                    "pass K=lambda q1, q2, c: f(q1, q2, c)[0] and Kdot=lambda q1, q2, c: f(q1, q2, c)[1]"
                ) from None
        return out

    return apply


def _mean_by_quadrature(expr: sp.Expr) -> Callable:
    def mean(q):
        # quadrature: a different method from the closed forms
        from .gaussian.numeric import expect_numeric

        value, error = expect_numeric(expr, np.asarray(q, dtype=np.float64))
        return value, error

    return mean


def _subject_of_dual(dual: Dual, rtol: float | None) -> _Subject:
    def K(a, b, cc):
        return np.asarray(dual.evaluate(a, b, cc, digits=DIGITS)[0], dtype=np.float64)

    def Kdot(a, b, cc):
        return np.asarray(dual.evaluate(a, b, cc, digits=DIGITS)[1], dtype=np.float64)

    def V(q):
        return np.asarray(dual.variance(q, digits=DIGITS), dtype=np.float64)

    if rtol is not None:
        accuracy, reason = rtol, "rtol given by the caller"
    elif dual.exact:
        accuracy, reason = RTOL_EXACT, f"exact Dual: {DIGITS}-digit evaluation rounded once to float64 (RTOL_EXACT = 2·eps)"
    else:
        accuracy = dual.error_bound + RTOL_EXACT
        reason = f"numeric Dual: its error_bound {dual.error_bound:.2e} plus float64 rounding"
    return _Subject(K=K, Kdot=None if dual.Kdot is None else Kdot, V=V,
                    mean=_mean_by_quadrature(dual.activation.expr), accuracy=accuracy, accuracy_reason=reason,
                    dual=dual, no_Kdot=dual.Kdot_reason)


def _subject(K, Kdot=None, V=None, mean=None, rtol: float | None = None) -> _Subject:
    """Normalise a Dual or callables K(q1, q2, c), K̇(q1, q2, c), V(q), mean(q) into a _Subject."""
    if rtol is not None and not (math.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol must be a finite number ≥ 0, got {rtol!r}")
    if isinstance(K, Dual):
        if Kdot is not None or V is not None or mean is not None:
            raise TypeError("a Dual carries its own K̇, V and σ: pass Kdot=, V= and mean= only with a callable K")
        return _subject_of_dual(K, rtol)
    if not callable(K):
        raise TypeError(f"K must be an ntksym Dual or a callable K(q1, q2, c), got {type(K).__name__}")
    for name, f in (("Kdot", Kdot), ("V", V), ("mean", mean)):
        if f is not None and not callable(f):
            raise TypeError(f"{name} must be callable or None, got {type(f).__name__}")
    reason = "rtol given by the caller" if rtol is not None else "float64 callable: RTOL_CALLABLE = 64·eps per value"
    mean_fn = None if mean is None else _with_zero_error(_elementwise(mean, "mean"))
    return _Subject(K=_elementwise(K, "K"), Kdot=None if Kdot is None else _elementwise(Kdot, "Kdot"),
                    V=None if V is None else _elementwise(V, "V"), mean=mean_fn,
                    accuracy=RTOL_CALLABLE if rtol is None else rtol, accuracy_reason=reason,
                    no_Kdot="no Kdot callable was given")


def _with_zero_error(f: Callable) -> Callable:
    def mean(q):
        value = f(q)
        return value, np.zeros_like(value)

    return mean


# ============================================================================================ the checks


def _validated(covariance) -> tuple[float, float, float]:
    """(q1, q2, c) as floats, or InvalidCovarianceError (a wrong input is not a failed identity)."""
    try:
        q1, q2, cc = (float(v) for v in covariance)
    except (TypeError, ValueError):
        raise InvalidCovarianceError(f"a covariance is a triple (q1, q2, c) of numbers, got {covariance!r}") from None
    if not all(math.isfinite(v) for v in (q1, q2, cc)) or q1 < 0 or q2 < 0:
        raise InvalidCovarianceError(f"covariance (q1, q2, c) = {covariance!r} needs finite q1, q2 ≥ 0 and c")
    if Fraction(cc) ** 2 > Fraction(q1) * Fraction(q2) * (1 + Fraction(4 * EPS64)):
        raise InvalidCovarianceError(f"covariance (q1, q2, c) = {covariance!r} has c² > q1·q2 (|ρ| > 1)")
    return q1, q2, _clamp_entry(cc, q1, q2)


def _clamp_entry(cc: float, q1: float, q2: float) -> float:
    """c clipped to c² ≤ q1·q2 exactly: rounding may leave it an ulp outside (DESIGN.md §4)."""
    if Fraction(cc) ** 2 <= Fraction(q1) * Fraction(q2):
        return cc
    return _covariance_entry(1.0 if cc > 0 else -1.0, q1, q2)


def _scale(a: float, b: float) -> float:
    """√a·√b (two roots: a·b may underflow or overflow); negative rounding noise counts as 0."""
    return math.sqrt(max(a, 0.0)) * math.sqrt(max(b, 0.0))


def _where(covariance) -> str:
    q1, q2, cc = covariance
    root = _scale(q1, q2)
    rho = f"{cc / root:.17g}" if root > 0 else "undefined"
    return f"at q1={q1!r}, q2={q2!r}, c={cc!r} (ρ = {rho})"


def _failure(identity: str, statement: str, covariance, lines: list[str], discrepancy: float, tolerance: float,
             reason: str) -> IdentityError:
    body = "".join(f"\n  {line}" for line in lines)
    message = (
        f"{identity}: {statement} fails {_where(covariance)} (DESIGN.md §1){body}"
        f"\n  discrepancy {discrepancy:.3e} of the scale > tolerance {tolerance:.3e}"
        f"\n  tolerance: {reason}"
    )
    return IdentityError(message, identity=identity, covariance=covariance, discrepancy=discrepancy,
                         tolerance=tolerance)


def _relative(difference: float, scale: float) -> float:
    """|difference| / scale, with 0/0 = 0 (σ vanishes there) and x/0 = inf."""
    difference = abs(difference)
    if difference == 0.0:
        return 0.0
    return difference / scale if scale > 0 else math.inf


def _variance_values(subject: _Subject, q1: float, q2: float) -> tuple[float, float, str]:
    """V(q1), V(q2) and the name of their scale: √(V(q1)·V(q2)), or from K(q, q, q) where no V was given."""
    qs = np.array([q1, q2])
    if subject.V is not None:
        v1, v2 = np.asarray(subject.V(qs), dtype=np.float64)
        return float(v1), float(v2), "√(V(q1)·V(q2))"
    v1, v2 = subject.K(qs, qs, qs)
    return float(v1), float(v2), "√(K(q1,q1,q1)·K(q2,q2,q2))"


def check_symmetry(K, covariance, *, V=None, rtol: float | None = None) -> float:
    """Check K(q1, q2, c) = K(q2, q1, c): (u, v) and (v, u) are the same pair of Gaussians, swapped.

    **Arguments:** `K` a Dual or a callable K(q1, q2, c); `covariance` (q1, q2, c); `V` a callable V(q) for the
    scale (default K(q, q, q)); `rtol` the relative accuracy of one value (default: module docstring).
    **Returns:** |K(q1, q2, c) − K(q2, q1, c)| / √(V(q1)V(q2)). **Raises:** IdentityError.
    """
    subject = _subject(K, V=V, rtol=rtol)
    q1, q2, cc = cov = _validated(covariance)
    k12, k21 = subject.K(np.array([q1, q2]), np.array([q2, q1]), np.array([cc, cc])).tolist()
    v1, v2, scale_name = _variance_values(subject, q1, q2)
    scale = _scale(v1, v2)
    discrepancy, tolerance = _relative(k12 - k21, scale), 2 * subject.accuracy
    if not discrepancy <= tolerance:
        raise _failure("check_symmetry", "K(q1, q2, c) = K(q2, q1, c)", cov,
                       [f"K(q1, q2, c) = {k12!r}, K(q2, q1, c) = {k21!r}, difference {k12 - k21:.3e}",
                        f"scale {scale_name} = {scale:.6g}"],
                       discrepancy, tolerance, f"2 values × {subject.accuracy:.2e} ({subject.accuracy_reason})")
    return discrepancy


def check_diagonal(K, covariance, *, V=None, rtol: float | None = None) -> float:
    """Check K(q, q, q) = V(q) at q = q1 and q = q2: at c = q, u = v, so E[σ(u)σ(v)] = E[σ(u)²].

    **Arguments:** `K` a Dual or a callable K(q1, q2, c); `covariance` (q1, q2, c) (only q1, q2 are used);
    `V` a callable V(q), required with a callable K; `rtol` as in check_symmetry.
    **Returns:** the larger |K(q, q, q) − V(q)| / V(q). **Raises:** IdentityError.
    """
    subject = _subject(K, V=V, rtol=rtol)
    if subject.V is None:
        raise TypeError("check_diagonal compares K(q, q, q) with V(q): pass V=, a callable V(q)")
    q1, q2, _ = cov = _validated(covariance)
    qs = np.array([q1, q2])
    kqq, vq = subject.K(qs, qs, qs), np.asarray(subject.V(qs), dtype=np.float64)
    tolerance, worst = 2 * subject.accuracy, 0.0
    for qv, k, v in zip(qs.tolist(), kqq.tolist(), vq.tolist()):
        discrepancy = _relative(k - v, abs(v))
        if not discrepancy <= tolerance:
            raise _failure("check_diagonal", "K(q, q, q) = V(q)", cov,
                           [f"at q = {qv!r}: K(q, q, q) = {k!r}, V(q) = {v!r}, difference {k - v:.3e}",
                            f"scale V(q) = {abs(v):.6g}"],
                           discrepancy, tolerance, f"2 values × {subject.accuracy:.2e} ({subject.accuracy_reason})")
        worst = max(worst, discrepancy)
    return worst


def check_cauchy_schwarz(K, covariance, *, V=None, rtol: float | None = None) -> float:
    """Check |K(q1, q2, c)| ≤ √(V(q1)·V(q2)): Cauchy–Schwarz for E[σ(u)σ(v)].

    **Arguments:** as check_symmetry (`V` default K(q, q, q)).
    **Returns:** |K| / √(V(q1)V(q2)) − 1 (≤ 0 inside the bound). **Raises:** IdentityError.
    """
    subject = _subject(K, V=V, rtol=rtol)
    q1, q2, cc = cov = _validated(covariance)
    k = float(subject.K(np.array(q1), np.array(q2), np.array(cc)))
    v1, v2, scale_name = _variance_values(subject, q1, q2)
    scale = _scale(v1, v2)
    excess = abs(k) - scale
    discrepancy = excess / scale if scale > 0 else (0.0 if excess <= 0 else math.inf)
    tolerance = 2 * subject.accuracy  # K's error, and the scale's (each V contributes half of its error)
    if not discrepancy <= tolerance:
        raise _failure("check_cauchy_schwarz", f"|K(q1, q2, c)| ≤ {scale_name}", cov,
                       [f"K(q1, q2, c) = {k!r}; the two variances {v1!r}, {v2!r}",
                        f"bound {scale_name} = {scale!r}, excess {excess:.3e}"],
                       discrepancy, tolerance, f"2 values × {subject.accuracy:.2e} ({subject.accuracy_reason})")
    return discrepancy


@ft.lru_cache(maxsize=256)
def _derivative_in_c(K: sp.Expr) -> sp.Expr:
    return sp.diff(K, _c)


def _kdot_scale(subject: _Subject, q1: float, q2: float) -> float:
    """√(K̇(q1, q1, q1)·K̇(q2, q2, q2)) = √(E[σ'(u)²]E[σ'(v)²]), the Cauchy–Schwarz bound of |K̇|."""
    qs = np.array([q1, q2])
    d1, d2 = subject.Kdot(qs, qs, qs)
    return _scale(d1, d2)


def check_price(K, covariance, *, Kdot=None, V=None, rtol: float | None = None) -> float:
    """Check Price's theorem ∂K/∂c = K̇(q1, q2, c) (for σ weakly differentiable; DESIGN.md §1).

    For an exact Dual, ∂K/∂c is the symbolic derivative of `Dual.K`, evaluated like K (DIGITS digits; at
    |ρ| = 1 one ulp inward). For a numeric Dual or callables it is a central difference
    D(h) = (K(c + h) − K(c − h))/(2h), h = (δ/2)·√(q1·q2) for ρ-steps δ = 1/16, 1/64, … down to ∛rtol/64;
    where c ± 2h would leave |ρ| ≤ 1 the centre moves inward. Each step's allowance is
    PRICE_SAFETY·|D(2h) − D(h)| (truncation, estimated) + 2·rtol·√(V1V2)/(2h) (rounding of the difference)
    + rtol·√(V̇1V̇2) (K̇'s own error); the step with the least allowance is used.

    **Arguments:** `K` a Dual or a callable; `covariance` (q1, q2, c); `Kdot` the callable K̇(q1, q2, c),
    required with a callable K; `V` as in check_symmetry; `rtol` the relative accuracy of one value.
    **Returns:** |∂K/∂c − K̇| / √(V̇(q1)V̇(q2)). **Raises:** IdentityError; ValueError where K̇ does not exist.
    """
    subject = _subject(K, Kdot=Kdot, V=V, rtol=rtol)
    if subject.Kdot is None:
        raise ValueError(f"check_price needs K̇, and there is none: {subject.no_Kdot}")
    cov = _validated(covariance)
    if subject.dual is not None and subject.dual.exact:
        return _check_price_exact(subject, cov)
    return _check_price_difference(subject, cov)


def _check_price_exact(subject: _Subject, cov) -> float:
    q1, q2, cc = cov
    if q1 == 0 or q2 == 0:
        return 0.0  # c = 0 is the only valid covariance: ∂K/∂c has no neighbourhood to exist in
    moved = []
    if Fraction(cc) ** 2 == Fraction(q1) * Fraction(q2):
        # |ρ| = 1: ∂K/∂c is a one-sided limit, and its formula's singular terms (c/√(q1q2 − c²) and the
        # like) cancel as inf − inf; one ulp inward they are ~1e8 and cancel safely in 40 digits
        cc = math.nextafter(cc, 0.0)
        moved = [f"|ρ| = 1: checked one ulp inward, at c = {cc!r}, where ∂K/∂c is not a one-sided limit"]
    dual = subject.dual
    derivative = replace(dual, K=_derivative_in_c(dual.K))  # evaluate() then gives (∂K/∂c, K̇)
    dk, kdot = (float(v) for v in derivative.evaluate(q1, q2, cc, digits=DIGITS))
    scale = _kdot_scale(subject, q1, q2)
    discrepancy, tolerance = _relative(dk - kdot, scale), 2 * subject.accuracy
    if not discrepancy <= tolerance:
        raise _failure("check_price", "Price's theorem ∂K/∂c = K̇", cov,
                       moved + [f"∂K/∂c (symbolic derivative of Dual.K) = {dk!r}, K̇ = {kdot!r}",
                                f"difference {dk - kdot:.3e}",
                        f"scale √(K̇(q1,q1,q1)·K̇(q2,q2,q2)) = {scale:.6g}"],
                       discrepancy, tolerance, f"2 values × {subject.accuracy:.2e} ({subject.accuracy_reason})")
    return discrepancy


def _price_steps(accuracy: float) -> list[float]:
    """Steps δ of the central differences, in correlation units: 1/16, 1/64, … down to ∛rtol/64 (∛rtol
    balances truncation ∝ δ² against rounding ∝ rtol/δ for a smooth K; a K with sharp features near
    |ρ| = 1, tanh's at q = 1e3, needs smaller steps)."""
    floor = max(accuracy, EPS64) ** (1 / 3) / 64
    steps = [1 / 16]
    while steps[-1] / 4 >= floor:
        steps.append(steps[-1] / 4)
    return steps


@dataclass(frozen=True)
class _Difference:
    """One central difference of K in c: D(h) at `centre` with steps h and h/2, K̇ there, and the allowance."""

    step: float
    centre: float
    d_h: float
    d_half: float
    kdot: float
    allowed: float


def _differences(subject: _Subject, q1: float, q2: float, cc: float) -> list[_Difference]:
    """Central differences at every step of _price_steps, each centred at c or, where c ± h would leave
    |ρ| ≤ 1, at the nearest centre that keeps it inside; all K values in one call."""
    root = _scale(q1, q2)
    rho = cc / root
    steps = _price_steps(subject.accuracy)
    centres, points = [], []
    for delta in steps:
        middle = _clamp(rho, -1.0 + delta, 1.0 - delta)
        centres.append(cc if middle == rho else _covariance_entry(middle, q1, q2))
        points += [_covariance_entry(_clamp(middle + o, -1.0, 1.0), q1, q2)
                   for o in (delta, -delta, delta / 2, -delta / 2)]
    points = np.array(points)
    ks = subject.K(np.full(len(points), q1), np.full(len(points), q2), points).reshape(-1, 4)
    kdots = subject.Kdot(np.full(len(steps), q1), np.full(len(steps), q2), np.array(centres))
    v1, v2, _ = _variance_values(subject, q1, q2)
    rounding = 2 * subject.accuracy * _scale(v1, v2)  # two values of K, each within rtol·√(V1V2)
    kdot_error = subject.accuracy * _kdot_scale(subject, q1, q2)
    out = []
    for i, delta in enumerate(steps):
        p = points[4 * i: 4 * i + 4]
        d_h = (ks[i, 0] - ks[i, 1]) / (p[0] - p[1])
        d_half = (ks[i, 2] - ks[i, 3]) / (p[2] - p[3])
        allowed = PRICE_SAFETY * abs(d_h - d_half) + rounding / (p[2] - p[3]) + kdot_error
        out.append(_Difference(delta, centres[i], float(d_h), float(d_half), float(kdots[i]), float(allowed)))
    return out


def _check_price_difference(subject: _Subject, cov) -> float:
    q1, q2, cc = cov
    if _scale(q1, q2) == 0:
        return 0.0  # c = 0 is the only valid covariance: there is no neighbourhood to difference over
    best = min(_differences(subject, q1, q2, cc), key=lambda d: d.allowed)
    scale = _kdot_scale(subject, q1, q2)
    discrepancy, tolerance = _relative(best.d_half - best.kdot, scale), _relative(best.allowed, scale)
    if not abs(best.d_half - best.kdot) <= best.allowed:
        h = best.step * _scale(q1, q2) / 2
        moved = [] if best.centre == cc else [f"centre moved to c = {best.centre!r} so that c ± 2h stays valid"]
        raise _failure("check_price", "Price's theorem ∂K/∂c = K̇", cov,
                       moved + [f"∂K/∂c ≈ {best.d_half!r} (central difference, h = {h:.3e}; at 2h: {best.d_h!r})",
                                f"K̇ = {best.kdot!r}, difference {best.d_half - best.kdot:.3e}",
                                f"scale √(K̇(q1,q1,q1)·K̇(q2,q2,q2)) = {scale:.6g}"],
                       discrepancy, tolerance,
                       f"{PRICE_SAFETY:g}·|D(2h) − D(h)| (truncation) + 2·rtol·√(V1V2)/(2h) (rounding) + rtol (K̇), "
                       f"at the step h = ρ-step/2 · √(q1q2) with the least allowance among ρ-steps "
                       f"{', '.join(f'{d:.1e}' for d in _price_steps(subject.accuracy))}; "
                       f"rtol = {subject.accuracy:.2e} ({subject.accuracy_reason})")
    return discrepancy


def check_independence(K, covariance, *, mean=None, V=None, rtol: float | None = None) -> float:
    """Check K(q1, q2, 0) = E[σ(u)]·E[σ(v)]: uncorrelated Gaussians are independent.

    For a Dual the means come from quadrature of σ (ntksym.gaussian.numeric: a different method from the
    closed forms), with their estimated errors added to the tolerance.

    **Arguments:** `K` a Dual or a callable; `covariance` (q1, q2, c) (c is set to 0); `mean` the callable
    q ↦ E[σ(z)], z ~ N(0, q), required with a callable K; `V`, `rtol` as in check_symmetry.
    **Returns:** |K(q1, q2, 0) − E[σ(u)]E[σ(v)]| / √(V(q1)V(q2)). **Raises:** IdentityError.
    """
    subject = _subject(K, V=V, mean=mean, rtol=rtol)
    if subject.mean is None:
        raise TypeError("check_independence compares K(q1, q2, 0) with E[σ(u)]·E[σ(v)]: pass mean=, a callable q ↦ E[σ(z)]")
    q1, q2, _ = _validated(covariance)
    cov = (q1, q2, 0.0)
    k0 = float(subject.K(np.array(q1), np.array(q2), np.array(0.0)))
    (m1, m2), (e1, e2) = subject.mean(np.array([q1, q2]))
    m1, m2, e1, e2 = float(m1), float(m2), float(e1), float(e2)
    v1, v2, scale_name = _variance_values(subject, q1, q2)
    scale = _scale(v1, v2)
    product = m1 * m2
    means_error = abs(m2) * e1 + abs(m1) * e2 + e1 * e2
    allowed = 2 * subject.accuracy * scale + means_error  # K's value and the product's rounding; the means' error
    discrepancy, tolerance = _relative(k0 - product, scale), _relative(allowed, scale)
    if not abs(k0 - product) <= allowed:
        raise _failure("check_independence", "K(q1, q2, 0) = E[σ(u)]·E[σ(v)]", cov,
                       [f"K(q1, q2, 0) = {k0!r}, E[σ(u)] = {m1!r}, E[σ(v)] = {m2!r}, product {product!r}",
                        f"difference {k0 - product:.3e}; scale {scale_name} = {scale:.6g}"],
                       discrepancy, tolerance,
                       f"2·rtol (K and the product) + the means' error {means_error:.2e}, "
                       f"rtol = {subject.accuracy:.2e} ({subject.accuracy_reason})")
    return discrepancy


# A covariance matrix must be PSD up to rounding: x·x'/d perturbs correlations by ≤ d·eps (1e-13 at d = 1000);
# a correlation matrix with an eigenvalue below −1e-10 is an invalid input, not a rounding effect.
_PSD_INPUT_SLACK = 1e-10


def _gram_covariances(covariance_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray, str | None]:
    """(q_i, q_j, c_ij) for a covariance matrix Σ of n inputs, made exactly a covariance, and a note on how.

    Rounding can leave Σ an ulp outside the PSD cone (parallel inputs: |ρ_ij| = 1 ± eps), and K with a
    square-root singularity at |ρ| = 1 (σ with jumps) turns that ulp into a 1e-8 negative eigenvalue of G.
    So where the correlation matrix R has an eigenvalue below 8·n·eps, its off-diagonal entries are shrunk
    by the factor 1 − τ that lifts it there (τ ~ 1e-15), and each c_ij is clipped to c² ≤ q_i·q_j."""
    sigma = np.asarray(covariance_matrix, dtype=np.float64)
    if sigma.ndim != 2 or sigma.shape[0] != sigma.shape[1] or sigma.shape[0] == 0:
        raise InvalidCovarianceError(f"check_psd needs an (n, n) covariance matrix, got shape {sigma.shape}")
    if not np.all(np.isfinite(sigma)) or np.any(np.diag(sigma) < 0):
        raise InvalidCovarianceError("the covariance matrix needs finite entries and variances ≥ 0 on its diagonal")
    if not np.allclose(sigma, sigma.T, rtol=4 * EPS64, atol=0.0):
        raise InvalidCovarianceError("the covariance matrix must be symmetric")
    q = np.diag(sigma).copy()
    n = len(q)
    root = np.sqrt(q)
    safe = np.where(root > 0, root, 1.0)
    corr = np.clip(sigma / safe[:, None] / safe[None, :], -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    lowest = float(np.linalg.eigvalsh((corr + corr.T) / 2)[0])
    if lowest < -_PSD_INPUT_SLACK:
        raise InvalidCovarianceError(
            f"the covariance matrix is not positive semi-definite (its correlation matrix has eigenvalue {lowest:.3e}); "
            "build it from inputs, e.g. input_covariance(x)")
    note = None
    floor = 8 * n * EPS64
    if lowest < floor:
        tau = floor - lowest
        corr = np.where(np.eye(n, dtype=bool), 1.0, corr * (1.0 - tau))
        note = (f"Σ is at the edge of the PSD cone (correlation eigenvalue {lowest:.2e}): its correlations were "
                f"shrunk by 1 − {tau:.1e} so that it is a covariance exactly")
    entries = np.array([[q[i] if i == j else _clamp_entry(float(corr[i, j] * root[i] * root[j]), q[i], q[j])
                         for j in range(n)] for i in range(n)])
    return np.broadcast_to(q[:, None], (n, n)), np.broadcast_to(q[None, :], (n, n)), entries, note


def _indent(matrix: np.ndarray) -> str:
    return "\n".join("    " + line for line in str(matrix).splitlines())


def check_psd(K, covariance_matrix, *, rtol: float | None = None) -> float:
    """Check that the Gram matrix G_ij = K(Σ_ii, Σ_jj, Σ_ij) is positive semi-definite: it is the covariance
    of σ applied to Gaussians with covariance Σ (DESIGN.md §1).

    Build Σ from network inputs with `input_covariance(x)`. A Σ that rounding left an ulp outside the PSD
    cone (parallel inputs) has its correlations shrunk by ~1e-15 first (see _gram_covariances); a Σ that
    is not PSD beyond rounding is an InvalidCovarianceError. The smallest
    eigenvalue of the symmetric part of G, normalised by its diagonal (G_ij/√(G_ii G_jj)), must be
    ≥ −(n·rtol + 4·n·eps·‖Ĝ‖): a perturbation of rtol per entry moves eigenvalues by ≤ n·rtol, and the
    symmetric eigensolver's backward error is a few n·eps·‖Ĝ‖.

    **Returns:** minus the smallest normalised eigenvalue (≤ 0 for a PSD matrix). **Raises:** IdentityError.
    """
    subject = _subject(K, rtol=rtol)
    qi, qj, cij, note = _gram_covariances(covariance_matrix)
    gram = subject.K(qi, qj, cij)
    gram = (gram + gram.T) / 2  # asymmetry is check_symmetry's business
    diag = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    diag = np.where(diag > 0, diag, 1.0)  # σ(z) = 0 almost surely at that variance: its row is left as it is
    normalised = gram / diag[:, None] / diag[None, :]
    eigenvalues, vectors = np.linalg.eigh(normalised)
    n = len(diag)
    norm = max(1.0, float(np.max(np.abs(eigenvalues))))
    tolerance = n * subject.accuracy + 4 * n * EPS64 * norm
    discrepancy = -float(eigenvalues[0])
    if not discrepancy <= tolerance:
        with np.printoptions(precision=6, linewidth=120):
            lines = ([] if note is None else [note]) + [
                     f"smallest eigenvalue of G_ij/√(G_ii·G_jj) = {eigenvalues[0]:.6e} (n = {n})",
                     f"its eigenvector {vectors[:, 0]}", f"covariance matrix Σ =\n{_indent(cij)}",
                     f"Gram matrix G =\n{_indent(gram)}"]
        raise IdentityError(
            "check_psd: the Gram matrix G_ij = K(Σ_ii, Σ_jj, Σ_ij) is not positive semi-definite (DESIGN.md §1)"
            + "".join(f"\n  {line}" for line in lines)
            + f"\n  discrepancy {discrepancy:.3e} > tolerance {tolerance:.3e}"
            + f"\n  tolerance: n·rtol + 4·n·eps·‖Ĝ‖, rtol = {subject.accuracy:.2e} ({subject.accuracy_reason})",
            identity="check_psd", covariance=cij, discrepancy=discrepancy, tolerance=tolerance)
    return discrepancy


def check_all(K, covariance, *, Kdot=None, V=None, mean=None, rtol: float | None = None) -> dict[str, float]:
    """Every identity of DESIGN.md §1 that the inputs allow, at one covariance (q1, q2, c).

    A Dual gets all six (Price's only where K̇ exists; the Gram matrix is that of [[q1, c], [c, q2]]); a
    callable K gets symmetry, Cauchy–Schwarz and PSD, plus diagonal with `V`, Price with `Kdot` and
    independence with `mean`.

    **Returns:** {check name: its measured discrepancy}. **Raises:** the first failure's IdentityError, its
    message listing every identity that failed.
    """
    subject = _subject(K, Kdot=Kdot, V=V, mean=mean, rtol=rtol)  # validates the arguments once
    q1, q2, cc = _validated(covariance)
    extra = {} if isinstance(K, Dual) else {"V": V}
    checks = {
        "check_symmetry": lambda: check_symmetry(K, covariance, rtol=rtol, **extra),
        "check_cauchy_schwarz": lambda: check_cauchy_schwarz(K, covariance, rtol=rtol, **extra),
        "check_psd": lambda: check_psd(K, [[q1, cc], [cc, q2]], rtol=rtol),
    }
    if subject.V is not None:
        checks["check_diagonal"] = lambda: check_diagonal(K, covariance, rtol=rtol, **extra)
    if subject.Kdot is not None:
        extra_kdot = {} if isinstance(K, Dual) else {"Kdot": Kdot, "V": V}
        checks["check_price"] = lambda: check_price(K, covariance, rtol=rtol, **extra_kdot)
    if subject.mean is not None:
        extra_mean = {} if isinstance(K, Dual) else {"mean": mean, "V": V}
        checks["check_independence"] = lambda: check_independence(K, covariance, rtol=rtol, **extra_mean)
    results: dict[str, float] = {}
    failures: list[IdentityError] = []
    for name, run in checks.items():
        try:
            results[name] = run()
        except IdentityError as failure:
            failures.append(failure)
    if failures:
        first = failures[0]
        if len(failures) > 1:
            listing = "\n\n".join(str(f) for f in failures)
            first = IdentityError(f"{len(failures)} identities fail:\n\n{listing}", identity=first.identity,
                                  covariance=first.covariance, discrepancy=first.discrepancy,
                                  tolerance=first.tolerance)
        raise first
    return results
