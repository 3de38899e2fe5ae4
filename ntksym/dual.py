"""Dual: the dual activation K, its derivative dual K̇ and the variance map V of σ; derive().

K(q1, q2, c) = E[σ(u)σ(v)], K̇ = E[σ'(u)σ'(v)], V(q) = E[σ(z)²] for (u, v) ~ N(0, [[q1, c], [c, q2]])
(DESIGN.md §1; survey eq. (58)–(61) use them layer by layer). derive() finds them in closed form or,
where no strategy succeeds within the time budget, returns a numeric dual with an error bound.
"""

from __future__ import annotations

import functools as ft
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from . import vocabulary
from .activation import Activation, activation
from .errors import DerivationTimeout, InvalidCovarianceError
from .gaussian import UnsupportedTerm, _budget, closed_form_dual
from .symbols import c, q, q1, q2, rho, x
from .special import Phi, Phi2, phi
from .trace import Step

DEFAULT_TIMEOUT = 20.0
"""Seconds a closed-form derivation may take before derive() falls back to a numeric dual."""


@dataclass(frozen=True)
class Dual:
    """K, K̇, V of an activation, with their provenance.

    exact: True for closed forms (SymPy expressions in ntksym.symbols q1, q2, c and q); False for a
    numeric dual, whose K, Kdot, V are unevaluated placeholders evaluated by quadrature
    (`evaluate`, `variance`) and whose `error_bound` bounds the relative error.
    Kdot is None, with `Kdot_reason`, where σ jumps (σ' has a Dirac δ).
    """

    activation: Activation
    K: sp.Expr
    Kdot: sp.Expr | None
    V: sp.Expr
    exact: bool
    method: str
    steps: tuple[Step, ...]
    error_bound: float | None = None
    Kdot_reason: str | None = None
    numeric: object | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.exact and self.error_bound is not None:
            raise ValueError("an exact Dual has no error bound")
        if not self.exact and self.numeric is None:
            raise ValueError("a numeric Dual needs its quadrature rule")
        if (self.Kdot is None) != (self.Kdot_reason is not None):
            raise ValueError("Kdot_reason is given exactly when Kdot is None")

    def latex(self) -> str:
        """σ, K, K̇, V and k̂ as a LaTeX fragment (ntksym.latex.dual_latex)."""
        # imported on use: ntksym.latex imports this module
        from .latex import dual_latex

        return dual_latex(self)

    def derivation_latex(self) -> str:
        """The derivation trace `steps` as a LaTeX enumerate list (ntksym.latex.derivation_latex)."""
        from .latex import derivation_latex

        return derivation_latex(self)

    def lower(self, **kwargs):
        """The jit-compatible JAX f(q1, q2, c) -> (K, K̇) of this dual (ntksym.lower.lower; imports JAX)."""
        from .lower import lower

        return lower(self, **kwargs)

    @property
    def k_hat(self) -> sp.Expr:
        """The normalised dual k̂(ρ) = K(1, 1, ρ)."""
        return self.K.subs({q1: 1, q2: 1, c: rho})

    def evaluate(self, q1_value, q2_value, c_value, *, digits: int = 30):
        """(K, K̇) as float64 arrays at the given covariances (K̇ is None where it does not exist).

        Exact duals are evaluated in `digits`-digit arithmetic, so the float64 result is correctly
        rounded even where the formula cancels (|ρ| → 1); numeric duals by their quadrature rule."""
        a, b, cc = _validated(q1_value, q2_value, c_value)
        if not self.exact:
            kdot = None if self.Kdot is None else self.numeric.Kdot(a, b, cc)
            return self.numeric.K(a, b, cc), kdot
        k = _evaluate_exact(self.K, (q1, q2, c), (a, b, cc), digits)
        kdot = None if self.Kdot is None else _evaluate_exact(self.Kdot, (q1, q2, c), (a, b, cc), digits)
        return k, kdot

    def variance(self, q_value, *, digits: int = 30):
        """V(q) as a float64 array."""
        qq = np.asarray(q_value, dtype=np.float64)
        if np.any(~np.isfinite(qq)) or np.any(qq < 0):
            raise InvalidCovarianceError(f"variances must be finite and ≥ 0, got {q_value!r}")
        if not self.exact:
            return self.numeric.V(qq)
        return _evaluate_exact(self.V, (q,), (qq,), digits)


CHECK_COVARIANCES = ((1.0, 1.0, 0.5), (0.5, 2.0, -0.7), (2.0, 2.0, 1.998), (1e-2, 1e2, 0.3), (1.0, 1.0, -1.0))


@dataclass(frozen=True)
class QuadratureCheck:
    """A closed form compared with independent quadrature: the largest |difference| and the largest
    quadrature error estimate, both relative to √(V(q1)V(q2)), over `covariances`."""

    covariances: tuple
    discrepancy: float
    quadrature_error: float

    @property
    def passed(self) -> bool:
        # the quadrature estimate is an honest bound (tests/test_gaussian_numeric.py); 1e-12 absorbs the
        # closed form's own float64 rounding
        return self.discrepancy <= self.quadrature_error + 1e-12


def check_against_quadrature(dual: "Dual", covariances=CHECK_COVARIANCES) -> QuadratureCheck:
    """Compare an exact dual's K with the numeric rule (a different method) at a few covariances."""
    from .gaussian.numeric import numeric_dual

    rule = numeric_dual(dual.activation.expr)
    q1v, q2v, cv = (np.array(col, dtype=np.float64) for col in zip(*covariances))
    k, _ = dual.evaluate(q1v, q2v, cv)
    ref, err = rule.K_with_error(q1v, q2v, cv)
    scale = np.sqrt(rule.V(q1v) * rule.V(q2v))
    scale = np.where(scale > 0, scale, 1.0)
    return QuadratureCheck(tuple(covariances), float(np.max(np.abs(k - ref) / scale)), float(np.max(err / scale)))


def _validated(q1_value, q2_value, c_value):
    a, b, cc = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (q1_value, q2_value, c_value)))
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(np.isfinite(cc))):
        raise InvalidCovarianceError("covariance entries must be finite numbers (got NaN or inf)")
    if np.any(a < 0) or np.any(b < 0):
        raise InvalidCovarianceError(f"variances q1, q2 must be ≥ 0, got q1={q1_value!r}, q2={q2_value!r}")
    if np.any(cc * cc > a * b * (1 + 4e-16)):
        raise InvalidCovarianceError("c² must not exceed q1·q2 (|correlation| ≤ 1); "
                                     f"got q1={q1_value!r}, q2={q2_value!r}, c={c_value!r}")
    return a, b, cc


def _evaluate_exact(expr: sp.Expr, symbols, values, digits: int) -> np.ndarray:
    # ρ exactly ±1 (and q → 0) can be 0/0 in a formula that is continuous there: take the limit.
    f = _mpmath_function(expr, tuple(symbols))
    out = np.empty(values[0].shape, dtype=np.float64)
    # truncated-moment forms (Φ, φ, Φ₂) cancel near |ρ| = 1 (terms of size 4 summing to 2e-20 at elu's
    # q = 100, 1 − ρ = 1e-20): 20 guard digits keep `digits` correct up to 1 − |ρ| ~ 1e-20
    if expr.has(Phi, Phi2, phi):
        digits += 20
    with mpmath.workdps(digits):
        for idx in np.ndindex(out.shape):
            point = [mpmath.mpf(float(v[idx])) for v in values]
            if len(point) == 3:  # clip c into [−√(q1q2), √(q1q2)]: inputs may exceed it by rounding
                bound = mpmath.sqrt(point[0] * point[1])
                point[2] = min(max(point[2], -bound), bound)
            try:
                value = f(*point)
            except (ZeroDivisionError, ValueError):
                value = mpmath.nan
            if isinstance(value, mpmath.mpc):
                # rounding at |ρ| = 1 can push an asin/sqrt argument out of range by ~10^-digits, which
                # leaves an imaginary part ~10^(-digits/2) (square-root branch point); the real part is
                # continuous there and is the value. A genuinely complex value would be O(1).
                value = value.real if abs(value.imag) <= 1e-10 * (1 + abs(value.real)) else mpmath.nan
            if not mpmath.isfinite(value):
                value = _limit_value(f, point, digits)
            out[idx] = float(value)
    return out


@ft.lru_cache(maxsize=512)
def _mpmath_function(expr: sp.Expr, symbols: tuple):
    # lambdify is safe here: expr is a SymPy tree that ntksym built, never text from a user. The vocabulary's
    # namespace gives every function its mpmath evaluation (Φ, φ, Φ₂ and the rewrite helpers included).
    return sp.lambdify(symbols, expr, modules=[vocabulary.namespace("mpmath"), "mpmath"])


def _limit_value(f, point, digits: int):
    """The value at a boundary point where the formula is 0/0 (q = 0, or |ρ| = 1 in some forms), as the
    value at a point moved 10^-(2·digits−4) into the interior: the duals are continuous (at worst Hölder-½
    in c), so the move changes the value by less than 10^-(digits−2). The arithmetic carries 3·digits + 10:
    the Φ₂ forms of truncated moments cancel near |ρ| = 1 by about as many digits as 1 − |ρ| has
    (elu at q = 100, ρ = 1: 2·digits arithmetic was off by 2.5e-8 relative)."""
    with mpmath.workdps(3 * digits + 10):
        delta = mpmath.mpf(10) ** (4 - 2 * digits)
        moved = [max(v, delta) for v in point[:2]] if len(point) == 3 else [max(point[0], delta)]
        if len(point) == 3:
            bound = mpmath.sqrt(moved[0] * moved[1])
            moved.append(min(max(point[2], -bound), bound) * (1 - delta))
        value = f(*moved)
        return mpmath.re(value) if isinstance(value, mpmath.mpc) else value


# ----------------------------------------------------------------------------------------- derive


def derive(act, *, timeout: float | None = DEFAULT_TIMEOUT, numeric: bool = True) -> Dual:
    """Derive K, K̇, V of σ in closed form; else (numeric=True) a numeric dual with an error bound.

    act: an Activation, a string (parsed safely) or a SymPy expression in one variable.
    timeout: seconds allowed to the closed-form strategies (None: no limit).
    numeric: if False, raise NoClosedFormError instead of returning a numeric dual.
    """
    act = activation(act)
    return _derive(act, timeout, numeric)


@ft.lru_cache(maxsize=256)
def _derive(act: Activation, timeout: float | None, numeric: bool) -> Dual:
    try:
        with _budget.budget(timeout):
            form = closed_form_dual(act.expr)
        return Dual(activation=act, K=form.K, Kdot=form.Kdot, V=form.V, exact=True, method=form.method,
                    steps=form.steps, Kdot_reason=form.Kdot_reason)
    except UnsupportedTerm as err:
        reason = f"no closed-form rule applies: {err}"
    except DerivationTimeout:
        reason = f"the closed-form strategies ran past the time budget of {timeout} s"
    if not numeric:
        from .errors import NoClosedFormError

        raise NoClosedFormError(f"σ = {act.expr}: {reason}")
    return _numeric_dual(act, reason)


def _numeric_dual(act: Activation, reason: str) -> Dual:
    from .gaussian.numeric import numeric_dual

    where = _jumps(act.expr)
    jumps = bool(where)
    dsigma = None if jumps else sp.diff(act.expr, x).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
    rule = numeric_dual(act.expr, dsigma)
    label = sp.Symbol(r"\sigma") if act.name is None else sp.Symbol(act.name)
    k = sp.Function("K")(label, q1, q2, c)
    kdot = None if jumps else sp.Function("Kdot")(label, q1, q2, c)
    v = sp.Function("V")(label, q)
    steps = (
        Step("closed form", reason),
        Step("numeric", "Gaussian quadrature of E[σ(u)σ(v)], E[σ'(u)σ'(v)], E[σ(z)²]; "
             f"relative error bound {rule.error_bound:.1e}"),
    )
    why = (f"σ jumps at {where} (σ' contains a Dirac δ), so E[σ'(u)σ'(v)] is not a function" if jumps else None)
    return Dual(activation=act, K=k, Kdot=kdot, V=v, exact=False, method="numeric (Gaussian quadrature)",
                steps=steps, error_bound=float(rule.error_bound), Kdot_reason=why, numeric=rule)


def _jumps(expr: sp.Expr) -> str:
    """Where σ jumps ("x = 1, x = 2"), or "" if it is continuous: a Dirac δ in σ' counts only where the one-sided
    limits of σ differ (erf(x)·H(x) is continuous, though SymPy's σ' keeps an erf(x)·δ(x)). The candidates
    are the roots of every step's argument after rewriting into Heaviside form; the limits are compared at
    a ± 10⁻³⁰ in 60-digit arithmetic."""
    from .gaussian.terms import UnsupportedTerm, rewrite

    try:
        steps = rewrite(expr).atoms(sp.Heaviside)
    except UnsupportedTerm:
        return "an undetermined point (σ's pieces could not be located)"
    points: set = set()
    for h in steps:
        g = h.args[0]
        if not g.is_polynomial(x):
            return f"a root of {g} (not located)"
        points.update(r for r in sp.Poly(g, x).real_roots())
    found = []
    for a in sorted(points, key=float):
        eps = sp.Float("1e-30", 60)
        left, right = (sp.N(expr.subs(x, a + s * eps), 60) for s in (-1, 1))
        try:
            gap = abs(complex(left) - complex(right))
            size = 1 + abs(complex(left))
        except TypeError:
            gap, size = 1.0, 1.0
        if gap > 1e-20 * size:
            found.append(f"x = {a}")
    return ", ".join(found)
