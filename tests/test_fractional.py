"""Fractional-power duals (ntksym.gaussian.fractional) and the JAX ₂F₁ (ntksym.lower.hyp2f1).

References are independent of the code under test: nested adaptive quadrature (scipy.integrate.quad, with the
singular points as breakpoints) of E[σ(u)σ(v)] written out here, and mpmath.hyp2f1 for ₂F₁.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import sympy as sp
from scipy import integrate

import helpers
import ntksym as nk
from ntksym._validate import moment_divergence
from ntksym.errors import DivergentMomentError
from ntksym.gaussian.fractional import KDOT_DIVERGES_RULE, RULE, fractional_dual, kdot_divergence
from ntksym.gaussian.terms import UnsupportedTerm
from ntksym.lower.hyp2f1 import hyp2f1
from ntksym.symbols import c, q, q1, q2, x

R = sp.Rational

# ------------------------------------------------------------------------------------ quadrature reference

_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_CUT = 12.0  # N(0, 1) mass beyond ±12 is 4e-33: far below every tolerance here
_QUAD_RTOL = 1e-12


def _phi(t: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * t * t)


def _line(f, points) -> float:
    """∫_{−12}^{12} f with the given breakpoints (where f is singular or kinked)."""
    edges = [-_CUT, *sorted(p for p in points if -_CUT < p < _CUT), _CUT]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        # full_output: quad reports a roundoff message instead of warning (warnings are errors in this suite); the
        # comparisons below are the check of its accuracy
        total += integrate.quad(f, lo, hi, epsabs=0.0, epsrel=_QUAD_RTOL, limit=200, full_output=1)[0]
    return total


def _expect2(f, g, q1v: float, q2v: float, cv: float) -> float:
    """E[f(u) g(v)], (u, v) ~ N(0, [[q1, c], [c, q2]]): u = √q1·s, v = √q2·(ρs + √(1−ρ²)·t)."""
    s1, s2 = math.sqrt(q1v), math.sqrt(q2v)
    r = cv / (s1 * s2)
    if abs(r) >= 1:
        sign = math.copysign(1.0, r)
        return _line(lambda s: f(s1 * s) * g(sign * s2 * s) * _phi(s), [0.0])
    w = math.sqrt(1 - r * r)

    def inner(s: float) -> float:
        return _line(lambda t: g(s2 * (r * s + w * t)) * _phi(t), [-r * s / w])

    return _line(lambda s: f(s1 * s) * _phi(s) * inner(s), [0.0])


def _expect1(f, qv: float) -> float:
    return _line(lambda s: f(math.sqrt(qv) * s) * _phi(s), [0.0])


def _pow(t: float, a: float) -> float:
    return abs(t) ** a if t != 0 else 0.0


def _sgnpow(t: float, a: float) -> float:
    return math.copysign(abs(t) ** a, t) if t != 0 else 0.0


def _ramp(t: float, a: float) -> float:
    return t**a if t > 0 else 0.0


# name: (σ, python σ, python σ' or None, degree α of σ (for the K̇ scale), ρ where K̇ diverges)
ACTIVATIONS = {
    "abs^0.5": (sp.sqrt(sp.Abs(x)), lambda t: _pow(t, 0.5), lambda t: 0.5 * _sgnpow(t, -0.5), 0.5, {-1, 1}),
    "relu^1.5": (sp.Max(x, 0) ** R(3, 2), lambda t: _ramp(t, 1.5), lambda t: 1.5 * _ramp(t, 0.5), 1.5, set()),
    "sign*abs^0.7": (sp.sign(x) * sp.Abs(x) ** 0.7, lambda t: _sgnpow(t, 0.7), lambda t: 0.7 * _pow(t, -0.3), 0.7,
                     set()),
    "relu^0.3": (sp.Max(0, x) ** R(3, 10), lambda t: _ramp(t, 0.3), lambda t: 0.3 * _ramp(t, -0.7), 0.3, {-1, 1}),
    "abs^-0.3": (sp.Abs(x) ** R(-3, 10), lambda t: _pow(t, -0.3), None, -0.3, set()),
    "mixture^1/3": (2 * sp.Abs(x) ** R(1, 3) - sp.Max(0, -3 * x) ** R(1, 3),
                    lambda t: 2 * _pow(t, 1 / 3) - _ramp(-3 * t, 1 / 3),
                    lambda t: (2 / 3) * _sgnpow(t, -2 / 3) + (3 ** (1 / 3) / 3) * _ramp(-t, -2 / 3), 1 / 3, {-1, 1}),
    "abs^1.25+x+abs^0.5/2": (sp.Abs(x) ** 1.25 + x + 0.5 * sp.Abs(x) ** 0.5,
                             lambda t: _pow(t, 1.25) + t + 0.5 * _pow(t, 0.5),
                             lambda t: 1.25 * _sgnpow(t, 0.25) + 1 + 0.25 * _sgnpow(t, -0.5), None, {-1, 1}),
}

# exact covariances: √(q1q2) is rational, so c²/(q1q2) = 1 exactly at |ρ| = 1
_FULL_GRID = [
    (1, 1, -1), (1, 1, R(-3, 5)), (1, 1, R(1, 5)), (1, 1, R(99, 100)), (1, 1, 1),
    (R(1, 1000), 1000, -1), (R(1, 1000), 1000, R(1, 2)), (R(1, 1000), 1000, 1),
    (1000, 1000, -900), (1000, 1000, 1000), (R(1, 1000), R(1, 1000), R(3, 10000)), (4, 9, R(-21, 5)),
]
_SMALL_GRID = [(1, 1, -1), (1, 1, R(-1, 2)), (R(1, 1000), 1000, R(7, 10)), (1000, 1000, 1000), (4, 9, -6)]
_GRIDS = {"abs^0.5": _FULL_GRID, "relu^1.5": _FULL_GRID, "sign*abs^0.7": _FULL_GRID}


@pytest.fixture(scope="module")
def forms():
    return {name: fractional_dual(spec[0]) for name, spec in ACTIVATIONS.items()}


def _at(expr: sp.Expr, q1v, q2v, cv, digits: int = 20) -> sp.Expr:
    return expr.subs({q1: q1v, q2: q2v, c: cv}).evalf(digits)


def _cases(kdot: bool):
    for name, spec in ACTIVATIONS.items():
        for cov in _GRIDS.get(name, _SMALL_GRID):
            rho = cov[2] / sp.sqrt(cov[0] * cov[1])
            if kdot and (spec[2] is None or (abs(rho) == 1 and int(rho) in spec[4])):
                continue
            yield pytest.param(name, cov, id=f"{name}-{cov[0]}-{cov[1]}-{cov[2]}")


_QUAD_REASON = ("nested quad at epsrel 1e-12 per level (inner error enters the outer integral), with the "
                "singular points as breakpoints; the formula is evaluated at 20 digits")


@pytest.mark.parametrize(("name", "cov"), list(_cases(kdot=False)))
def test_K_against_quadrature(forms, name, cov):
    _, f, _, _, _ = ACTIVATIONS[name]
    q1v, q2v, cv = (float(v) for v in cov)
    reference = _expect2(f, f, q1v, q2v, cv)
    scale = math.sqrt(_expect1(lambda t: f(t) ** 2, q1v) * _expect1(lambda t: f(t) ** 2, q2v))
    value = float(_at(forms[name].K, *cov))
    helpers.assert_close_scaled(value, reference, scale, 1e-10, _QUAD_REASON)


@pytest.mark.parametrize(("name", "cov"), list(_cases(kdot=True)))
def test_Kdot_against_quadrature(forms, name, cov):
    _, _, df, alpha, _ = ACTIVATIONS[name]
    q1v, q2v, cv = (float(v) for v in cov)
    reference = _expect2(df, df, q1v, q2v, cv)
    # the homogeneity unit of K̇ (unit-variance K̇ is O(1)); for the mixture of degrees (σ' of degrees 1/4, 0,
    # −1/2), the largest of its units
    qq = q1v * q2v
    scale = qq ** ((alpha - 1) / 2) if alpha is not None else max(qq**0.125, 1.0, qq**-0.25)
    value = float(_at(forms[name].Kdot, *cov))
    helpers.assert_close_scaled(value, reference, scale, 1e-10, _QUAD_REASON)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_V_against_quadrature_and_diagonal(forms, name):
    form, f = forms[name], ACTIVATIONS[name][1]
    for qv in (R(1, 1000), 1, 1000):
        v = float(form.V.subs(q, qv).evalf(20))
        helpers.assert_close_scaled(v, _expect1(lambda t: f(t) ** 2, float(qv)), v, 1e-11,
                                    "adaptive quad at epsrel 1e-12")
        on_diagonal = _at(form.K, qv, qv, qv, 30)  # ₂F₁ at ρ² = 1 exactly: Gauss's sum
        assert abs(on_diagonal - form.V.subs(q, qv).evalf(30)) <= 1e-25 * abs(on_diagonal)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_symmetry_cauchy_schwarz_and_factorisation(forms, name):
    form, f = forms[name], ACTIVATIONS[name][1]
    for q1v, q2v, cv in [(R(1, 1000), 1000, R(1, 2)), (4, 9, -3), (R(1, 5), 7, R(1, 10))]:
        assert abs(_at(form.K, q1v, q2v, cv, 30) - _at(form.K, q2v, q1v, cv, 30)) <= 1e-25 * (1 + abs(_at(
            form.K, q1v, q2v, cv, 30)))
    v = {qv: form.V.subs(q, qv).evalf(30) for qv in (R(1, 1000), 1, 1000)}
    for q1v in v:
        for q2v in v:
            bound = sp.sqrt(v[q1v] * v[q2v])
            for rho in (-1, R(-9, 10), 0, R(1, 2), R(999, 1000), 1):
                assert abs(_at(form.K, q1v, q2v, rho * sp.sqrt(q1v * q2v), 30)) <= bound * (1 + R(1, 10**20))
    mean = _expect1(f, 4.0) * _expect1(f, 0.25)  # K(q1, q2, 0) = E[σ(u)]·E[σ(v)]
    scale = float(sp.sqrt(form.V.subs(q, 4) * form.V.subs(q, R(1, 4))).evalf(20))
    helpers.assert_close_scaled(float(_at(form.K, 4, R(1, 4), 0)), mean, scale, 1e-11, "adaptive quad at epsrel 1e-12")


@pytest.mark.parametrize("name", [n for n, spec in ACTIVATIONS.items() if spec[2] is not None])
def test_price_theorem(forms, name):
    """∂K/∂c = K̇ at interior points, at 30 digits."""
    form = forms[name]
    dk = sp.diff(form.K, c)
    for cov in [(1, 1, R(3, 10)), (R(1, 1000), 1000, R(-7, 10)), (4, 9, 5), (1000, 2, R(-1, 3))]:
        lhs, rhs = _at(dk, *cov, digits=30), _at(form.Kdot, *cov, digits=30)
        assert abs(lhs - rhs) <= 1e-25 * (abs(rhs) + 1), (cov, lhs, rhs)


def test_kdot_divergence_is_in_the_trace(forms):
    for name, spec in ACTIVATIONS.items():
        form = forms[name]
        if spec[2] is None:
            continue
        assert form.Kdot is not None and form.Kdot_reason is None
        assert kdot_divergence(form.steps) == frozenset(spec[4]), name
    step = next(s for s in forms["abs^0.5"].steps if s.rule == KDOT_DIVERGES_RULE)
    assert step.description.startswith("K̇ diverges at |ρ| = 1 (α ≤ 1/2)")
    assert forms["abs^0.5"].method == RULE and forms["abs^0.5"].steps[0].rule == RULE


def test_kdot_that_is_not_a_function(forms):
    assert forms["abs^-0.3"].Kdot is None and "not a function" in forms["abs^-0.3"].Kdot_reason
    jump = fractional_dual(sp.sign(x) * sp.Abs(x) ** R(1, 2) + sp.sign(x))
    assert jump.Kdot is None and "Dirac" in jump.Kdot_reason


@pytest.mark.parametrize("expr", [sp.Max(x, 0), x**2, sp.Abs(x) ** 3, sp.sqrt(sp.Abs(x)) * sp.tanh(x),
                                  sp.sqrt(sp.Abs(x + 1)), sp.sqrt(sp.Abs(x)) * sp.exp(-x**2), sp.S.Zero,
                                  sp.Abs(x) ** R(1, 2) + sp.Abs(x) ** R(1, 2) * sp.erf(x)])
def test_unsupported_terms_are_left_to_other_strategies(expr):
    with pytest.raises(UnsupportedTerm):
        fractional_dual(expr)


@pytest.mark.parametrize("expr", [sp.Abs(x) ** R(-1, 2), sp.Abs(x) ** -0.6 + sp.Abs(x) ** R(1, 2)])
def test_divergent_powers(expr):
    with pytest.raises(DivergentMomentError, match="diverges"):
        fractional_dual(expr)


def test_validation_of_fractional_powers():
    for text in ("Abs(x)**0.5", "Abs(x)**-0.3", "Max(x, 0)**1.5", "sign(x)*Abs(x)**0.7", "Abs(x)**(-0.49)"):
        nk.activation(text)
    for text in ("Abs(x)**-0.5", "Abs(x)**-0.7", "Max(x, 0)**(-0.3)"):
        with pytest.raises(DivergentMomentError):
            nk.activation(text)
    # σ' of |x|^0.5 has a pole of order 1/2: its own second moment diverges (K̇ at |ρ| = 1), said as σ'
    why = moment_divergence(sp.diff(sp.sqrt(sp.Abs(x)), x))
    assert why is not None and why.startswith("E[σ'(z)²] diverges: σ' = ")
    assert moment_divergence(sp.diff(sp.Abs(x) ** R(7, 10), x)) is None


# ------------------------------------------------------------------------------------ JAX ₂F₁


def _parameters(forms) -> list[tuple[float, float, float]]:
    """(a, b; c) of every ₂F₁ in the duals above, as the lowering will pass them (Python floats)."""
    found = set()
    for form in forms.values():
        for e in (form.K, form.Kdot):
            if e is not None:
                for h in e.atoms(sp.hyper):
                    found.add((float(h.ap[0]), float(h.ap[1]), float(h.bq[0])))
    return sorted(found)


# z on [0, 1), dense near 1 and at the switch z = 1/2, then interior points for the derivative, then z = 1
_Z = np.concatenate([np.linspace(0, 1, 41)[:-1], 1 - np.logspace(-15, -1, 15), [np.nextafter(0.5, 1)]])
_ZG = np.array([0.2, 0.5, 0.7, 0.99, 1 - 1e-6])
_ALL_Z = np.concatenate([_Z, _ZG, [1.0]])
# the sign activation's dual, s = 0, s = −1 (Euler's transformation), a terminating series
_EXTRA = [(0.5, 0.5, 1.5), (0.3, 0.7, 1.0), (1.0, 1.0, 1.0), (-1.0, -0.25, 0.5)]


def _value_and_grad(a, b, cc, z):
    f = jax.jit(jax.vmap(jax.value_and_grad(lambda t: hyp2f1(a, b, cc, t))))
    value, grad = f(jnp.asarray(z))
    return np.asarray(value), np.asarray(grad)


def test_hyp2f1_against_mpmath_float64(forms, float_dtype):
    if float_dtype != np.float64:
        pytest.skip("float64 accuracy")
    params = _parameters(forms) + _EXTRA
    assert len(params) >= 12
    for a, b, cc in params:
        value, grad = _value_and_grad(a, b, cc, _ALL_Z)
        with mpmath.workdps(30):
            ref = np.array([float(mpmath.hyp2f1(a, b, cc, mpmath.mpf(float(z)))) for z in _Z])
            dref = np.array([float(mpmath.diff(lambda t: mpmath.hyp2f1(a, b, cc, t), mpmath.mpf(z))) for z in _ZG])
            at_one = mpmath.hyp2f1(a, b, cc, 1) if cc - a - b > 0 else None
            dat_one = a * b / cc * mpmath.hyp2f1(a + 1, b + 1, cc + 1, 1) if cc - a - b > 1 else None
        what = f"({a}, {b}; {cc})"
        helpers.assert_close_scaled(value[: len(_Z)], ref, np.abs(ref), 1e-13,
                                    f"~60-term series in z or 1 − z ≤ 1/2 by Horner in float64 {what}")
        if at_one is not None:
            helpers.assert_close_scaled(value[-1], float(at_one), abs(float(at_one)), 1e-14, f"Gauss's sum {what}")
        else:
            assert value[-1] == np.inf, what
        assert np.all(np.isfinite(grad)), what
        g = grad[len(_Z): len(_Z) + len(_ZG)]
        helpers.assert_close_scaled(g, dref, np.abs(dref), 1e-11, f"derivative of the truncated series {what}")
        if dat_one is not None:  # a finite true derivative at z = 1, where the analytic part's is exact
            helpers.assert_close_scaled(grad[-1], float(dat_one), abs(float(dat_one)), 1e-12, f"Gauss's sum {what}")


def test_hyp2f1_float32_is_finite(forms, float_dtype):
    if float_dtype != np.float32:
        pytest.skip("float32")
    params = _parameters(forms)
    for a, b, cc in params[:: max(1, len(params) // 5)]:
        f = jax.jit(jax.vmap(jax.value_and_grad(lambda t: hyp2f1(a, b, cc, t))))
        value, grad = f(jnp.asarray(_ALL_Z, dtype=np.float32))
        assert value.dtype == np.float32 and grad.dtype == np.float32
        assert np.all(np.isfinite(np.asarray(grad)))
        if cc - a - b > 0:
            assert np.all(np.isfinite(np.asarray(value)))
            ref = np.array([float(mpmath.hyp2f1(a, b, cc, float(z))) for z in np.asarray(_ALL_Z, dtype=np.float32)])
            helpers.assert_close_scaled(np.asarray(value), ref, np.abs(ref), 1e-5,
                                        "float32: ~60 Horner steps of eps32 = 1.2e-7 each, and z itself rounded "
                                        "(the singular terms amplify that near z = 1)")
