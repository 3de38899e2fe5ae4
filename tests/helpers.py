"""Test plumbing shared by the ntksym test-suite: tolerances that carry their reason, and strategies.

Every tolerance is built from a named source of error (STYLE.md principle 10):

* ``float64_tolerance(k, condition)`` / ``dtype_tolerance(dtype, k, condition)``: k rounding steps of
  relative size eps, amplified by a stated condition number;
* ``familywise_z(alpha, n)``: the z-score of a Monte Carlo check at family-wise false-alarm rate alpha;
* ``assert_close_scaled(value, reference, scale, rtol, reason)``: the comparison itself, measured
  relative to a *scale* (usually sqrt(V(q1) V(q2)), the Cauchy–Schwarz bound of |K|), because K may
  pass through zero where a relative error means nothing.

Strategies (hypothesis) draw valid covariances [[q1, c], [c, q2]] with extra weight on the edges
that break naive formulas: |rho| near 1, rho near or exactly 0, variances at the ends of their range.

Import as ``import helpers`` (pytest puts ``tests/`` on sys.path; there is no tests/__init__.py).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)

# The range of variances and the correlation margin the suite promises to support (the task brief:
# q in [1e-3, 1e3], |rho| <= 1 - 1e-6).
MIN_VAR = 1e-3
MAX_VAR = 1e3
RHO_MARGIN = 1e-6


# --------------------------------------------------------------------------------------------------
# Tolerances
# --------------------------------------------------------------------------------------------------


def float64_tolerance(k: float, condition: float = 1.0) -> float:
    """k·eps64·condition: the error of a float64 computation with k rounding steps, amplified by condition.

    **Arguments:**
    - `k`: a bound on the number of rounding steps whose relative errors (each <= eps) can add up.
    - `condition`: how much the computed quantity amplifies a relative input/rounding error
      (e.g. |∂f/∂x|·|x|/|f|, or sum|terms| / |sum| for a cancelling sum).

    **Returns:** a relative tolerance, to be used with the scale the condition was measured against.
    """
    if k <= 0 or condition < 0:
        raise ValueError(f"float64_tolerance needs k > 0 and condition >= 0, got k={k}, condition={condition}")
    return k * EPS64 * condition


def dtype_tolerance(dtype, k: float, condition: float = 1.0) -> float:
    """k·eps(dtype)·condition: as float64_tolerance, for the working precision `dtype` (float32 or float64)."""
    if k <= 0 or condition < 0:
        raise ValueError(f"dtype_tolerance needs k > 0 and condition >= 0, got k={k}, condition={condition}")
    return k * float(np.finfo(np.dtype(dtype)).eps) * condition


def familywise_z(alpha: float, n_tests: int) -> float:
    """The two-sided z-score that keeps the family-wise false-alarm rate of n_tests z-tests below alpha.

    Bonferroni: each test is run at level alpha / n_tests, so |z| > z* fires with probability
    alpha / n_tests per test under the null hypothesis and at most alpha in total.
    """
    if not 0.0 < alpha < 1.0 or n_tests < 1:
        raise ValueError(f"familywise_z needs 0 < alpha < 1 and n_tests >= 1, got {alpha}, {n_tests}")
    from scipy.stats import norm  # scipy is a hard dependency; imported here to keep import light

    return float(norm.isf(alpha / (2.0 * n_tests)))


def assert_close_scaled(value, reference, scale, rtol: float, reason: str) -> None:
    """Assert |value − reference| <= rtol·scale elementwise, and say why rtol is what it is on failure.

    **Arguments:**
    - `value`, `reference`: the quantity under test and its independent reference (arrays broadcast).
    - `scale`: the magnitude the error is measured against, e.g. sqrt(V(q1)·V(q2)) for K; must be > 0.
    - `rtol`: the allowed error relative to `scale`.
    - `reason`: where rtol comes from (written beside the number, STYLE.md principle 10); required.
    """
    if not reason or not reason.strip():
        raise ValueError("assert_close_scaled needs a reason for its tolerance (STYLE.md principle 10)")
    value = np.asarray(value, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    value, reference, scale = np.broadcast_arrays(value, reference, scale)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"assert_close_scaled needs a finite positive scale, got {scale}")
    finite_match = np.isfinite(value) == np.isfinite(reference)
    err = np.where(np.isfinite(value) & np.isfinite(reference), np.abs(value - reference), np.inf)
    # two equal infinities (same sign) agree
    err = np.where(~np.isfinite(value) & (value == reference), 0.0, err)
    ratio = err / scale
    bad = ~(ratio <= rtol) | ~finite_match
    if np.any(bad):
        i = np.unravel_index(int(np.argmax(np.where(bad, ratio, -1.0))), ratio.shape) if ratio.ndim else ()
        raise AssertionError(
            f"{int(np.count_nonzero(bad))} of {ratio.size} values differ by more than rtol={rtol:.3g} of the scale\n"
            f"  worst: value={value[i]!r}, reference={reference[i]!r}, |diff|={err[i]:.3g}, "
            f"scale={scale[i]:.3g}, |diff|/scale={ratio[i]:.3g}\n"
            f"  tolerance reason: {reason}"
        )


def scaled_error(value, reference, scale) -> float:
    """max |value − reference| / scale: the discrepancy measure assert_close_scaled checks (for reports)."""
    value, reference, scale = np.broadcast_arrays(
        np.asarray(value, np.float64), np.asarray(reference, np.float64), np.asarray(scale, np.float64)
    )
    return float(np.max(np.abs(value - reference) / scale))


# --------------------------------------------------------------------------------------------------
# Hypothesis strategies
# --------------------------------------------------------------------------------------------------


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats log-uniform in [lo, hi] (0 < lo <= hi), with the endpoints themselves drawn now and then."""
    if not 0.0 < lo <= hi:
        raise ValueError(f"log_uniform needs 0 < lo <= hi, got {lo}, {hi}")
    inner = st.floats(math.log(lo), math.log(hi)).map(lambda t: min(max(math.exp(t), lo), hi))
    edges = [lo, hi] + ([1.0] if lo < 1.0 < hi else [])
    return st.one_of(st.sampled_from(edges), inner)


def correlations(rho_margin: float = RHO_MARGIN) -> st.SearchStrategy[float]:
    """Correlations rho with |rho| <= 1 − rho_margin, weighted towards the edges.

    Branches: exactly 0; exactly ±(1 − rho_margin); ±(1 − δ) with δ log-uniform in [rho_margin, 0.1]
    (near ±1, where √(1−ρ²) cancels); ±δ with δ log-uniform in [1e-12, 1e-2] (near 0); and uniform.
    """
    if not 0.0 < rho_margin < 1.0:
        raise ValueError(f"correlations needs 0 < rho_margin < 1, got {rho_margin}")
    top = 1.0 - rho_margin
    sign = st.sampled_from([-1.0, 1.0])
    near_one = st.tuples(sign, log_uniform(rho_margin, max(rho_margin, 0.1))).map(lambda t: t[0] * min(1.0 - t[1], top))
    near_zero = st.tuples(sign, log_uniform(1e-12, 1e-2)).map(lambda t: t[0] * t[1])
    return st.one_of(
        st.just(0.0),
        st.sampled_from([-top, top]),
        near_one,
        near_zero,
        st.floats(-top, top),
    )


def covariances(
    min_var: float = MIN_VAR, max_var: float = MAX_VAR, rho_margin: float = RHO_MARGIN
) -> st.SearchStrategy[tuple[float, float, float]]:
    """Valid covariances (q1, q2, c): q1, q2 log-uniform in [min_var, max_var], c = rho·sqrt(q1·q2).

    rho comes from `correlations(rho_margin)`, so |c| <= (1 − rho_margin)·sqrt(q1·q2) and c² < q1·q2
    even after rounding.
    """
    return st.builds(
        lambda q1, q2, rho: (q1, q2, rho * math.sqrt(q1 * q2)),
        log_uniform(min_var, max_var),
        log_uniform(min_var, max_var),
        correlations(rho_margin),
    )


def unit_covariances(rho_margin: float = RHO_MARGIN) -> st.SearchStrategy[tuple[float, float, float]]:
    """Unit-variance covariances (1.0, 1.0, rho), for the normalised dual k̂(ρ) = K(1, 1, ρ)."""
    return correlations(rho_margin).map(lambda rho: (1.0, 1.0, rho))


__all__ = [
    "EPS32",
    "EPS64",
    "MAX_VAR",
    "MIN_VAR",
    "RHO_MARGIN",
    "assert_close_scaled",
    "correlations",
    "covariances",
    "dtype_tolerance",
    "familywise_z",
    "float64_tolerance",
    "log_uniform",
    "scaled_error",
    "unit_covariances",
]
