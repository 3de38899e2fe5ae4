"""Tests of ntksym.catalog: each named σ against an independent numpy/scipy formula, parameters, the registry."""

from __future__ import annotations

import dataclasses
import inspect
import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.special
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from ntksym import catalog
from ntksym.activation import Activation, activation
from ntksym.errors import DivergentMomentError, NtksymError
from ntksym.symbols import x

# float64 references (scipy, numpy, math) against SymPy at 30 digits: the reference makes a few roundings of
# relative size eps64 ≈ 2.2e-16, amplified by at most the condition number of the formula near the points drawn
# (|t| ≤ 6, where exp/erf/tanh are well conditioned); 1e-12 leaves a margin of ~5000 ulp for those few steps.
RTOL = 1e-12
ATOL = 1e-13  # where σ passes through 0 (sin, erf, hermite roots), relative error means nothing

SELU_ALPHA = 1.6732632423543772848170429916717  # the float64 constants of jax.nn.selu
SELU_SCALE = 1.0507009873554804934193349852946


def _relu(t):
    return max(t, 0.0)


def _hermite_reference(k):
    coeffs = np.zeros(k + 1)
    coeffs[k] = 1.0
    return lambda t: float(np.polynomial.hermite_e.hermeval(t, coeffs)) / math.sqrt(math.factorial(k))


# (catalog call, independent reference) — the reference follows neural-tangents' stax conventions where stax
# has the activation.
REFERENCES = [
    ("relu()", lambda: catalog.relu(), _relu),
    ("leaky_relu()", lambda: catalog.leaky_relu(), lambda t: t if t > 0 else 0.01 * t),
    ("leaky_relu(0.2)", lambda: catalog.leaky_relu(0.2), lambda t: t if t > 0 else 0.2 * t),
    ("abrelu(-0.5, 2)", lambda: catalog.abrelu(-0.5, 2), lambda t: -0.5 * min(t, 0.0) + 2 * max(t, 0.0)),
    ("abs()", lambda: catalog.abs(), math.fabs),
    ("step()", lambda: catalog.step(), lambda t: 1.0 if t > 0 else 0.0),
    ("sign()", lambda: catalog.sign(), lambda t: math.copysign(1.0, t)),
    ("erf()", lambda: catalog.erf(), scipy.special.erf),
    ("erf(2, 0.5, -1)", lambda: catalog.erf(2, 0.5, -1), lambda t: 2 * scipy.special.erf(0.5 * t) - 1),
    ("gelu()", lambda: catalog.gelu(), lambda t: t * scipy.special.ndtr(t)),
    ("sin()", lambda: catalog.sin(), math.sin),
    ("sin(2, 3, 0.5)", lambda: catalog.sin(2, 3, 0.5), lambda t: 2 * math.sin(3 * t + 0.5)),
    ("cos(1.5, 0.5, 1)", lambda: catalog.cos(1.5, 0.5, 1), lambda t: 1.5 * math.cos(0.5 * t + 1)),
    ("exp()", lambda: catalog.exp(), math.exp),
    ("exp(2, -0.5, 1)", lambda: catalog.exp(2, -0.5, 1), lambda t: 2 * math.exp(-0.5 * t) + 1),
    ("gaussian()", lambda: catalog.gaussian(), lambda t: math.exp(-t * t)),
    ("gaussian(2, 0.5, 1)", lambda: catalog.gaussian(2, 0.5, 1), lambda t: 2 * math.exp(-0.5 * t * t) + 1),
    ("monomial(3)", lambda: catalog.monomial(3), lambda t: t**3),
    ("monomial(0)", lambda: catalog.monomial(0), lambda t: 1.0),
    ("rectified_monomial(2)", lambda: catalog.rectified_monomial(2), lambda t: max(t, 0.0) ** 2),
    ("rectified_monomial(1)", lambda: catalog.rectified_monomial(1), _relu),
    ("polynomial((1, 0, -2, 0.5))", lambda: catalog.polynomial((1, 0, -2, 0.5)),
     lambda t: float(np.polynomial.polynomial.polyval(t, [1, 0, -2, 0.5]))),
    ("polynomial()", lambda: catalog.polynomial(), lambda t: t),
    *[(f"hermite({k})", (lambda k=k: catalog.hermite(k)), _hermite_reference(k)) for k in range(0, 9)],
    ("tanh()", lambda: catalog.tanh(), math.tanh),
    ("sigmoid()", lambda: catalog.sigmoid(), scipy.special.expit),
    ("softplus()", lambda: catalog.softplus(), lambda t: float(np.logaddexp(0.0, t))),
    ("silu()", lambda: catalog.silu(), lambda t: t * scipy.special.expit(t)),
    ("elu()", lambda: catalog.elu(), lambda t: t if t > 0 else math.expm1(t)),
    ("elu(0.5)", lambda: catalog.elu(0.5), lambda t: t if t > 0 else 0.5 * math.expm1(t)),
    ("selu()", lambda: catalog.selu(), lambda t: SELU_SCALE * (t if t > 0 else SELU_ALPHA * math.expm1(t))),
    ("mish()", lambda: catalog.mish(), lambda t: t * math.tanh(float(np.logaddexp(0.0, t)))),
    ("relu6()", lambda: catalog.relu6(), lambda t: min(max(t, 0.0), 6.0)),
    ("hard_tanh()", lambda: catalog.hard_tanh(), lambda t: min(max(t, -1.0), 1.0)),
    ("hard_sigmoid()", lambda: catalog.hard_sigmoid(), lambda t: min(max(t + 3, 0.0), 6.0) / 6),
    ("hard_swish()", lambda: catalog.hard_swish(), lambda t: t * min(max(t + 3, 0.0), 6.0) / 6),
    ("shifted_relu()", lambda: catalog.shifted_relu(), lambda t: max(t + 1, 0.0)),
    ("shifted_relu(-0.5)", lambda: catalog.shifted_relu(-0.5), lambda t: max(t + 0.5, 0.0)),
    ("celu()", lambda: catalog.celu(), lambda t: t if t > 0 else math.expm1(t)),
    ("celu(2)", lambda: catalog.celu(2), lambda t: t if t > 0 else 2 * math.expm1(t / 2)),
    ("clipped_relu()", lambda: catalog.clipped_relu(), lambda t: min(max(t, 0.0), 1.0)),
    ("clipped_relu(3)", lambda: catalog.clipped_relu(3), lambda t: min(max(t, 0.0), 3.0)),
]


def _value(act: Activation, t: float) -> float:
    """σ(t) from SymPy at 30 digits (a different route from the float64 reference)."""
    value = act.expr.subs(x, sp.Float(t, 30)).evalf(30)
    return float(value)


points = st.floats(min_value=-6.0, max_value=6.0, allow_nan=False).filter(lambda t: abs(t) > 1e-9)


@pytest.mark.parametrize(("make", "reference"), [(m, r) for _, m, r in REFERENCES], ids=[i for i, _, _ in REFERENCES])
@settings(max_examples=15)
@given(t=points)
def test_expression_matches_an_independent_formula(make, reference, t):
    expected = float(reference(t))
    assert math.isclose(_value(make(), t), expected, rel_tol=RTOL, abs_tol=ATOL)


def test_every_entry_has_a_reference_test():
    tested = {ident.split("(")[0] for ident, _, _ in REFERENCES}
    assert tested == set(catalog.CATALOG)


def test_values_at_zero_follow_the_stated_conventions():
    assert catalog.step().expr.subs(x, 0) == sp.Rational(1, 2)  # H(0) = 1/2
    assert catalog.sign().expr.subs(x, 0) == 0
    assert catalog.rectified_monomial(0).expr == catalog.step().expr  # k = 0 is the step
    assert catalog.relu().expr == sp.Max(0, x)  # natural forms, not pre-rewritten
    assert catalog.abs().expr == sp.Abs(x)
    assert isinstance(catalog.elu().expr, sp.Piecewise)


def test_parameters_are_exact_and_honoured():
    assert catalog.leaky_relu(0.1).expr.subs(x, -1) == sp.Rational(-1, 10)
    assert catalog.leaky_relu(0.2).expr.subs(x, -5) == -1
    assert catalog.leaky_relu(Fraction(1, 3)).expr.subs(x, -3) == -1
    assert catalog.leaky_relu(sp.Rational(1, 7)).expr.subs(x, -7) == -1
    assert catalog.erf(2, 3, 1).expr == 2 * sp.erf(3 * x) + 1
    assert catalog.sin(1, 2, sp.pi).expr == sp.sin(2 * x + sp.pi)
    assert catalog.polynomial([1, 0, 2]).expr == 1 + 2 * x**2
    assert catalog.polynomial(np.array([0.5, 1.0])).expr == sp.Rational(1, 2) + x
    for act in catalog.catalog_activations():
        assert not act.expr.atoms(sp.Float), act.name  # no inexact numbers anywhere


def test_names_show_the_parameters_that_differ_from_the_defaults():
    assert catalog.relu().name == "relu"
    assert catalog.leaky_relu().name == "leaky_relu"
    assert catalog.leaky_relu(0.1).name == "leaky_relu(alpha=1/10)"
    assert catalog.erf(2).name == "erf(a=2)"
    assert catalog.polynomial((1, 0, 2)).name == "polynomial(coeffs=(1, 0, 2))"
    assert catalog.hermite(3).name == "hermite(k=3)"


def test_related_entries_agree():
    # stax identities: ReLU = ABReLU(0, 1), LeakyReLU(α) = ABReLU(α, 1), Abs = ABReLU(-1, 1)
    for t in (-2.5, -0.3, 0.7, 4.0):
        assert _value(catalog.abrelu(0, 1), t) == _value(catalog.relu(), t)
        assert math.isclose(_value(catalog.abrelu(0.3, 1), t), _value(catalog.leaky_relu(0.3), t), rel_tol=RTOL)
        assert _value(catalog.abrelu(-1, 1), t) == _value(catalog.abs(), t)
        assert math.isclose(_value(catalog.silu(), t), t * _value(catalog.sigmoid(), t), rel_tol=RTOL)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: catalog.gaussian(b=-1), DivergentMomentError, "b < 0"),
        (lambda: catalog.gaussian(b=0), NtksymError, "b > 0"),
        (lambda: catalog.gaussian(b=sp.Symbol("b")), NtksymError, "positive=True"),
        (lambda: catalog.monomial(-1), NtksymError, "between 0 and 64"),
        (lambda: catalog.monomial(2.5), NtksymError, "integer"),
        (lambda: catalog.hermite(65), NtksymError, "between 0 and 64"),
        (lambda: catalog.rectified_monomial(True), NtksymError, "boolean"),
        (lambda: catalog.leaky_relu("0.1"), NtksymError, "got str"),
        (lambda: catalog.leaky_relu(float("nan")), NtksymError, "finite"),
        (lambda: catalog.leaky_relu(x), NtksymError, "must not depend on x"),
        (lambda: catalog.erf(a=sp.I), NtksymError, "finite real"),
        (lambda: catalog.polynomial([]), NtksymError, "between 1 and 65"),
        (lambda: catalog.polynomial("12"), NtksymError, "sequence"),
        (lambda: catalog.CATALOG["erf"].expression(1, 2, 3, 4), NtksymError, "at most 3"),
        (lambda: catalog.CATALOG["erf"].expression(d=1), NtksymError, "no parameter d"),
    ],
)
def test_bad_parameters_fail_with_a_named_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_symbolic_parameters_are_kept():
    alpha = sp.Symbol("alpha", real=True)
    b = sp.Symbol("b", positive=True)
    assert catalog.leaky_relu(alpha).expr == sp.Piecewise((x, x > 0), (alpha * x, True))
    assert catalog.gaussian(b=b).expr == sp.exp(-b * x**2)
    assert catalog.leaky_relu(alpha).name == "leaky_relu(alpha=alpha)"


def test_hermite_is_orthonormal_under_the_standard_gaussian():
    # Gauss–Hermite (probabilists') quadrature with 40 nodes is exact for polynomials of degree ≤ 79; the
    # products here have degree ≤ 16, so only float64 rounding of sums of O(1) terms remains.
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / math.sqrt(2 * math.pi)
    values = []
    for k in range(9):
        coeffs = [float(c) for c in sp.Poly(catalog.hermite(k).expr, x).all_coeffs()]
        values.append(np.polyval(coeffs, nodes))
    gram = np.array([[np.sum(weights * u * v) for v in values] for u in values])
    np.testing.assert_allclose(gram, np.eye(9), atol=1e-11)


def test_hermite_matches_the_neural_tangents_table():
    table = {
        1: x,
        2: (x**2 - 1) / sp.sqrt(2),
        3: (x**3 - 3 * x) / sp.sqrt(6),
        4: (x**4 - 6 * x**2 + 3) / sp.sqrt(24),
        5: (x**5 - 10 * x**3 + 15 * x) / sp.sqrt(120),
        6: (x**6 - 15 * x**4 + 45 * x**2 - 15) / sp.sqrt(720),
    }
    for k, expected in table.items():
        assert sp.expand(catalog.hermite(k).expr - expected) == 0


def test_hermite_fallback_recurrence_agrees_with_sympy(monkeypatch):
    expected = [catalog._hermite_prob(k) for k in range(10)]
    monkeypatch.delattr(sp, "hermite_prob", raising=False)
    assert [catalog._hermite_prob(k) for k in range(10)] == expected


def test_selu_constants():
    assert float(catalog.SELU_ALPHA) == SELU_ALPHA
    assert float(catalog.SELU_SCALE) == SELU_SCALE
    assert isinstance(catalog.SELU_ALPHA, sp.Rational)


# ---------------------------------------------------------------------------------------------------------------
# the registry


def test_catalog_activations_returns_every_entry_validated():
    acts = catalog.catalog_activations()
    assert [a.name for a in acts] == list(catalog.CATALOG)
    for act in acts:
        assert isinstance(act, Activation)
        assert act.expr.free_symbols == {x}
        assert activation(act.expr).expr == act.expr  # passes the same validation again


def test_entries_describe_their_factories():
    for name, entry in catalog.CATALOG.items():
        assert entry.name == name and entry.factory.__name__ == name
        signature = inspect.signature(entry.factory)
        assert entry.parameters == tuple((p.name, p.default) for p in signature.parameters.values())
        assert entry.is_parametric == bool(entry.parameters)
        assert entry.description and "\n" not in entry.description
        assert entry.expression() == entry.factory().expr
    assert catalog.CATALOG["leaky_relu"].is_parametric and not catalog.CATALOG["relu"].is_parametric
    assert catalog.CATALOG["leaky_relu"].expression(0.2) == catalog.leaky_relu(0.2).expr
    assert catalog.CATALOG["polynomial"].variadic


def test_the_registry_is_read_only():
    with pytest.raises(TypeError):
        catalog.CATALOG["mine"] = catalog.CATALOG["relu"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.CATALOG["relu"].name = "other"  # type: ignore[misc]
