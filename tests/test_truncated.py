"""Closed forms through Φ, φ and Φ₂ (ntksym/gaussian/truncated.py): steps away from 0, exponentials under a
step, erf(b·x + d) — ELU, SELU, CELU, ReLU6, hard-tanh, hard-sigmoid, hard-swish, shifted ReLUs and steps.

Each K, K̇, V is compared with nested adaptive quadrature (tests/references.py, breakpoints at σ's kinks) of
σ written here in NumPy, independently of the SymPy expression the engine reads; then the DESIGN §1 identities
and Price's theorem (ntksym.testing.check_all). Tolerance: 1e-10 of √(V(q1)V(q2)) — the reference's own error
target is 1e-13 of that scale, and the closed forms are evaluated at 30 digits, so 1e-10 leaves room only for
a genuinely wrong formula (a wrong sign, coefficient or branch is O(1e-3) or more of the scale).
"""

from __future__ import annotations

import math
import signal
import time

import numpy as np
import pytest
import scipy.special as ss
from hypothesis import given, settings
from hypothesis import strategies as st

import helpers
import ntksym as nk
import references as R
from ntksym import testing as nkt

RTOL = 1e-10  # see the module docstring


def _relu(t):
    return np.maximum(t, 0.0)


def _step(t, a=0.0):
    return np.where(t > a, 1.0, 0.0)


def _elu(alpha):
    return lambda t: np.where(t > 0, t, alpha * np.expm1(np.minimum(t, 0.0)))


def _delu(alpha):
    return lambda t: np.where(t > 0, 1.0, alpha * np.exp(np.minimum(t, 0.0)))


_SA, _SL = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _pl4(t):  # continuous, breakpoints −2, 0, 1, 3 (slopes 0.5, 1.5, −0.5, 1, 0)
    return np.piecewise(t, [t < -2, (t >= -2) & (t < 0), (t >= 0) & (t < 1), (t >= 1) & (t < 3), t >= 3],
                        [lambda s: 0.5 * s, lambda s: 1.5 * s + 2, lambda s: 2 - 0.5 * s, lambda s: s + 0.5, 3.5])


def _dpl4(t):
    return np.select([t < -2, t < 0, t < 1, t < 3], [0.5, 1.5, -0.5, 1.0], 0.0)


# (σ string, σ in NumPy, σ' in NumPy or None when σ jumps, kinks, smallest variance, largest variance).
# Smallest variance: the quadrature reference loses relative accuracy once all of σ's mass sits beyond
# |z| ≈ 8 (a breakpoint a with a²/q > 64), so those σ start at q = a²/25. Largest: e^{βx} grows V like
# e^{2β²q}, which overflows float64 near 2β²q ≈ 700.
CASES = [
    ("elu", _elu(1.0), _delu(1.0), (0.0,), 1e-3, 1e2),
    ("elu(x, 0.5)", _elu(0.5), _delu(0.5), (0.0,), 1e-3, 1e2),
    ("elu(x, 2)", _elu(2.0), _delu(2.0), (0.0,), 1e-3, 1e2),
    ("selu", lambda t: _SL * _elu(_SA)(t), lambda t: _SL * _delu(_SA)(t), (0.0,), 1e-3, 1e2),
    ("celu(x, 2)", lambda t: np.where(t > 0, t, 2 * np.expm1(np.minimum(t, 0) / 2)),
     lambda t: np.where(t > 0, 1.0, np.exp(np.minimum(t, 0) / 2)), (0.0,), 1e-3, 1e2),
    ("relu6", lambda t: np.clip(t, 0, 6), lambda t: _step(t) - _step(t, 6), (0.0, 6.0), 1e-3, 1e3),
    ("hard_tanh", lambda t: np.clip(t, -1, 1), lambda t: _step(t, -1) - _step(t, 1), (-1.0, 1.0), 0.04, 1e3),
    ("hard_sigmoid", lambda t: np.clip(t + 3, 0, 6) / 6, lambda t: (_step(t, -3) - _step(t, 3)) / 6,
     (-3.0, 3.0), 0.36, 1e3),
    ("hard_swish", lambda t: t * np.clip(t + 3, 0, 6) / 6,
     lambda t: np.clip(t + 3, 0, 6) / 6 + t * (_step(t, -3) - _step(t, 3)) / 6, (-3.0, 3.0), 0.36, 1e3),
    ("Max(x + 1, 0)", lambda t: _relu(t + 1), lambda t: _step(t, -1), (-1.0,), 0.04, 1e3),
    ("Max(x - 0.5, 0)", lambda t: _relu(t - 0.5), lambda t: _step(t, 0.5), (0.5,), 0.01, 1e3),
    ("Max(x - 2, 0)", lambda t: _relu(t - 2), lambda t: _step(t, 2), (2.0,), 0.16, 1e3),
    ("x*Heaviside(x - 1)", lambda t: t * _step(t, 1), None, (1.0,), 0.04, 1e3),
    ("exp(x)*Heaviside(x)", lambda t: np.exp(np.minimum(t, 700)) * _step(t), None, (0.0,), 1e-3, 1e2),
    ("exp(x/3)*Heaviside(x)", lambda t: np.exp(np.minimum(t, 2100) / 3) * _step(t), None, (0.0,), 1e-3, 1e3),
    ("erf(x + 1)", lambda t: ss.erf(t + 1), lambda t: 2 / math.sqrt(math.pi) * np.exp(-((t + 1) ** 2)),
     (-1.0,), 1e-3, 1e3),
    ("erf(2*x - 0.5)", lambda t: ss.erf(2 * t - 0.5), lambda t: 4 / math.sqrt(math.pi) * np.exp(-((2 * t - 0.5) ** 2)),
     (0.25,), 1e-3, 1e3),
    ("Piecewise((0.5*x, x < -2), (1.5*x + 2, x < 0), (2 - 0.5*x, x < 1), (x + 0.5, x < 3), (3.5, True))",
     _pl4, _dpl4, (-2.0, 0.0, 1.0, 3.0), 0.16, 1e3),
    ("Heaviside(x - 1)", lambda t: _step(t, 1), None, (1.0,), 0.04, 1e3),
    ("x*exp(-x**2)*Heaviside(x)", lambda t: t * np.exp(-t * t) * _step(t),
     lambda t: (1 - 2 * t * t) * np.exp(-t * t) * _step(t), (0.0,), 1e-3, 1e3),
]
IDS = [c[0] for c in CASES]
# the four-breakpoint σ's K has ~3000 operations: its 30-digit identities take minutes on 2 cores (-m slow)
CI_CASES = [pytest.param(c, id=c[0], marks=pytest.mark.slow if c[0].startswith("Piecewise") else ())
            for c in CASES]


@pytest.fixture(scope="module")
def duals():
    return {case[0]: nk.derive(case[0]) for case in CASES}


def _edge_covariances(qmin, qmax):
    lo, hi = max(qmin, 1e-3), min(qmax, 1e3)
    mid = math.sqrt(lo * hi)
    out = [(1.0, 1.0, 0.5), (0.5, 2.0, -0.7), (lo, hi, 0.3 * math.sqrt(lo * hi))]
    for q in (lo, mid, hi, 1.0):
        out += [(q, q, q), (q, q, -q), (q, q, 0.0)]
    # near the edge: the reference's inner integral over a kink of width √(1 − ρ²) needs 1 − |ρ| ≳ 1e-6
    out += [(mid, 2 * mid, math.sqrt(2) * mid * (1 - 1e-6)), (2.0, 3.0, -math.sqrt(6.0) * (1 - 1e-6))]
    return out


def _compare(dual, f, fprime, kinks, cov):
    q1, q2, c = cov
    k, kdot = dual.evaluate(q1, q2, c)
    v1, v2 = (float(dual.variance(q)) for q in (q1, q2))
    ref_v1, ref_v2 = R.quad_V(f, q1, kinks=kinks), R.quad_V(f, q2, kinks=kinks)
    helpers.assert_close_scaled(v1, ref_v1, v1, RTOL, f"V({q1}) of {dual.activation}")
    helpers.assert_close_scaled(v2, ref_v2, v2, RTOL, f"V({q2}) of {dual.activation}")
    scale = math.sqrt(v1 * v2)
    ref = R.quad_K(f, q1, q2, c, kinks=kinks)
    helpers.assert_close_scaled(float(k), ref, scale, RTOL, f"K{cov} of {dual.activation}")
    if fprime is not None:
        assert kdot is not None, f"{dual.activation}: K̇ missing ({dual.Kdot_reason})"
        d1, d2 = R.quad_V(fprime, q1, kinks=kinks), R.quad_V(fprime, q2, kinks=kinks)
        ref_d = R.quad_K(fprime, q1, q2, c, kinks=kinks)
        helpers.assert_close_scaled(float(kdot), ref_d, math.sqrt(d1 * d2), RTOL, f"K̇{cov} of {dual.activation}")


def _ci_covariances(qmin, qmax):
    lo, hi = max(qmin, 1e-3), min(qmax, 1e3)
    return [(lo, hi, 0.3 * math.sqrt(lo * hi)), (hi, hi, hi), (1.0, 1.0, -1.0)]


@pytest.mark.parametrize("case", CI_CASES)
def test_exact_and_matches_quadrature(case, duals):
    """CI subset: an interior point, the variance extremes, ρ = 1 at the largest variance and ρ = −1."""
    expr, f, fprime, kinks, qmin, qmax = case
    dual = duals[expr]
    assert dual.exact, f"{expr}: {dual.steps[0].description if dual.steps else ''}"
    if fprime is None:
        assert dual.Kdot is None and "jumps" in dual.Kdot_reason
    else:
        assert dual.Kdot is not None, dual.Kdot_reason
    for cov in _ci_covariances(qmin, qmax):
        _compare(dual, f, fprime, kinks, cov)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_quadrature_at_edges(case, duals):
    """The full edge grid (about 10 minutes on 2 cores for all cases: nested quadrature dominates)."""
    expr, f, fprime, kinks, qmin, qmax = case
    for cov in _edge_covariances(qmin, qmax):
        _compare(duals[expr], f, fprime, kinks, cov)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
@settings(max_examples=4)
@given(data=st.data())
def test_matches_quadrature_hypothesis(case, duals, data):
    expr, f, fprime, kinks, qmin, qmax = case
    lo, hi = max(qmin, 1e-3), min(qmax, 1e3)
    q1 = data.draw(helpers.log_uniform(lo, hi))
    rho = data.draw(st.sampled_from([-1.0, 1.0, 0.0]) | st.floats(-1 + 1e-6, 1 - 1e-6))  # margin: see _edge_covariances
    q2 = q1 if abs(rho) == 1 else data.draw(helpers.log_uniform(lo, hi))
    cov = (q1, q2, rho * math.sqrt(q1 * q2) if abs(rho) < 1 else rho * q1)
    _compare(duals[expr], f, fprime, kinks, cov)


@pytest.mark.parametrize("case", CI_CASES)
def test_identities(case, duals):
    expr, _, _, _, qmin, qmax = case
    lo, hi = max(qmin, 1e-3), min(qmax, 1e3)
    for cov in [(2.0, 0.5, 0.999 * 1.0)] if qmin < 0.5 else [(lo, hi, -0.6 * math.sqrt(lo * hi))]:
        nkt.check_all(duals[expr], cov)


def test_trace_names_the_rule(duals):
    from ntksym.special import Phi2

    dual = duals["elu"]
    assert any("truncated Gaussian" in s.description for s in dual.steps)
    assert dual.K.has(Phi2)


def test_jump_reason_names_the_point(duals):
    assert "x = 1" in duals["Heaviside(x - 1)"].Kdot_reason


@pytest.mark.parametrize("expr", ["erf(x)*Heaviside(x)", "x*exp(-x**2)*Heaviside(x)"])
def test_continuous_sigma_gets_kdot(expr):
    dual = nk.derive(expr)
    assert dual.Kdot is not None, dual.Kdot_reason
    _, kdot = dual.evaluate(1.0, 2.0, 0.5)
    f = (lambda t: ss.erf(t) * _step(t)) if "erf" in expr else (lambda t: t * np.exp(-t * t) * _step(t))
    df = ((lambda t: 2 / math.sqrt(math.pi) * np.exp(-t * t) * _step(t)) if "erf" in expr
          else (lambda t: (1 - 2 * t * t) * np.exp(-t * t) * _step(t)))
    scale = math.sqrt(R.quad_V(df, 1.0) * R.quad_V(df, 2.0))
    # a numeric dual (erf·H: four indicators, beyond Φ₂) carries its own bound; closed forms get RTOL
    tol = RTOL if dual.exact else max(RTOL, 10 * dual.error_bound)
    helpers.assert_close_scaled(float(kdot), R.quad_K(df, 1.0, 2.0, 0.5), scale, tol, f"K̇ of {expr}")
    del f


def test_exact_duals_that_were_exact_stay_on_their_rules():
    # relu and erf keep the arc-sine forms of Price's theorem (no Φ₂ appears)
    from ntksym.special import Phi2

    for expr in ("relu", "erf", "abrelu", "leaky_relu"):
        dual = nk.derive(expr)
        assert dual.exact and not dual.K.has(Phi2), expr


def test_derive_restores_the_callers_alarm():
    fired = []

    def handler(signum, frame):  # noqa: ARG001
        fired.append(signum)

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        nk.derive("Max(x - 0.25, 0)", timeout=5)
        assert signal.getsignal(signal.SIGALRM) is handler
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 30.0, "the caller's pending timer was cancelled"
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        deadline = time.monotonic() + 5
        while not fired and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fired == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
