"""ntksym.testing: its strategies draw only valid values (edges included), its checks pass on correct duals
and fail, with a message that says what and where, on wrong ones.

The wrong formulas are deliberate: ReLU's kernel with 1/π in place of 1/(2π), an asymmetric K, a K̇ off by a
factor, a kernel whose Gram matrices are not PSD. A check that cannot fail on them would be worthless.
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

import ntksym as nk
from ntksym import catalog
from ntksym.symbols import x
from ntksym.testing import (
    EPS64,
    NEAR_ONE,
    RTOL_CALLABLE,
    IdentityError,
    activation_expressions,
    check_all,
    check_cauchy_schwarz,
    check_diagonal,
    check_independence,
    check_price,
    check_psd,
    check_symmetry,
    correlations,
    covariances,
    input_batches,
    input_covariance,
    variances,
)

# `find` searches until the condition holds; derandomized so that a run is reproducible, and 2000 tries
# is far more than an edge drawn on purpose (one branch in 3-5 of every draw) needs.
FIND = settings(max_examples=2000, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def _exactly_valid(cov) -> bool:
    q1, q2, c = cov
    return Fraction(c) ** 2 <= Fraction(q1) * Fraction(q2)


def _rho(cov) -> float:
    q1, q2, c = cov
    return c / (math.sqrt(q1) * math.sqrt(q2))


# ============================================================================================ strategies


@given(q=variances())
def test_variances_stay_in_their_range(q):
    assert isinstance(q, float) and 1e-3 <= q <= 1e3


@given(q=variances(1e-200, 1e200, edges=False))
def test_variances_over_a_wide_range(q):
    assert 1e-200 <= q <= 1e200


@given(rho=correlations())
def test_correlations_stay_in_range(rho):
    assert isinstance(rho, float) and -1.0 <= rho <= 1.0


@given(cov=covariances())
def test_covariances_are_valid_exactly(cov):
    q1, q2, c = cov
    assert all(isinstance(v, float) for v in cov)
    assert 1e-3 <= q1 <= 1e3 and 1e-3 <= q2 <= 1e3
    assert _exactly_valid(cov)  # c² ≤ q1·q2 in rational arithmetic, so after any rounding too
    assert c * c <= q1 * q2


@given(cov=covariances(1e-300, 1e300))
def test_covariances_are_valid_where_q1_q2_overflows(cov):
    """At q ~ 1e±300 the product q1·q2 leaves float64: the entry is built from √q1·√q2."""
    assert math.isfinite(cov[2]) and _exactly_valid(cov)


@pytest.mark.parametrize(
    ("name", "condition"),
    [
        ("rho = 1 exactly", lambda cov: cov[2] > 0 and Fraction(cov[2]) ** 2 == Fraction(cov[0]) * Fraction(cov[1])),
        ("rho = -1 exactly", lambda cov: cov[2] < 0 and Fraction(cov[2]) ** 2 == Fraction(cov[0]) * Fraction(cov[1])),
        ("rho = 0 exactly", lambda cov: cov[2] == 0.0),
        ("rho = 1 - 1e-12", lambda cov: abs(_rho(cov) - NEAR_ONE) < 1e-15),
        ("rho = -(1 - 1e-12)", lambda cov: abs(_rho(cov) + NEAR_ONE) < 1e-15),
        ("diagonal c = q1 = q2", lambda cov: cov[0] == cov[1] == cov[2]),
        ("smallest variance", lambda cov: cov[0] == 1e-3),
        ("largest variance", lambda cov: cov[1] == 1e3),
        ("tiny |rho| > 0", lambda cov: 0 < abs(_rho(cov)) < 1e-9),
    ],
)
def test_covariances_hit_the_edges(name, condition):
    assert condition(find(covariances(), condition, settings=FIND)), name


@given(rho=correlations(edges=False), cov=covariances(edges=False))
def test_without_edges_values_stay_valid(rho, cov):
    assert -1.0 <= rho <= 1.0 and _exactly_valid(cov)


@pytest.mark.parametrize("bad", [(0.0, 1.0), (2.0, 1.0), (1e-3, math.inf), (-1.0, 1.0)])
def test_variance_ranges_are_checked(bad):
    with pytest.raises(ValueError, match="min_variance"):
        covariances(*bad)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(expr=activation_expressions(max_depth=2))
def test_activation_expressions_are_valid_activations(expr):
    act = nk.activation(expr)  # raises on anything invalid
    assert act.expr.free_symbols == {x}
    assert not act.expr.has(sp.Float)  # exact coefficients: the engine works in exact arithmetic


@pytest.mark.parametrize("family", ["piecewise", "erf", "trig", "gaussian"])
@given(data=st.data())
@settings(max_examples=3)
def test_each_family_draws_valid_activations(family, data):
    expr = data.draw(activation_expressions(max_depth=1, families=(family,)))
    assert nk.activation(expr).expr == expr


@given(expr=activation_expressions(max_depth=1))
@settings(max_examples=3)
def test_drawn_activations_derive_in_closed_form(expr):
    """The grammar's promise: a closed form within derive()'s default budget — and the identities hold."""
    dual = nk.derive(expr)
    assert dual.exact, f"σ = {expr} fell back to {dual.method}"
    check_all(dual, (0.7, 1.9, -0.4))


@pytest.mark.slow
@given(expr=activation_expressions(max_depth=2))
@settings(max_examples=25)
def test_deeper_drawn_activations_derive_in_closed_form(expr):
    dual = nk.derive(expr)
    assert dual.exact, f"σ = {expr} fell back to {dual.method}"
    check_all(dual, (0.7, 1.9, -0.4))
    check_all(dual, (2.0, 2.0, 2.0))


@pytest.mark.parametrize(("kwargs", "match"), [({"max_depth": 3}, "max_depth"), ({"max_depth": -1}, "max_depth"),
                                               ({"families": ("softmax",)}, "famil")])
def test_activation_expressions_reject_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        activation_expressions(**kwargs)


@given(batch=input_batches())
def test_input_batches_are_finite_inputs_without_zero_rows(batch):
    assert batch.dtype == np.float64 and batch.ndim == 2
    assert 1 <= batch.shape[0] <= 6 and 1 <= batch.shape[1] <= 5
    assert np.all(np.isfinite(batch))
    assert np.all(np.any(batch != 0, axis=1))
    nonzero = np.abs(batch[batch != 0])
    assert np.all((nonzero >= 1e-2) & (nonzero <= 1e2))
    cov = input_covariance(batch)
    assert np.all(np.diag(cov) > 0) and np.array_equal(cov, cov.T)


@given(batch=input_batches(n=4, d=st.just(3), min_magnitude=1.0, max_magnitude=2.0))
def test_input_batches_take_fixed_shapes_and_ranges(batch):
    assert batch.shape == (4, 3)
    nonzero = np.abs(batch[batch != 0])
    assert np.all((nonzero >= 1.0) & (nonzero <= 2.0))


def test_input_batches_can_allow_zero_rows():
    found = find(input_batches(allow_zero_rows=True), lambda b: not np.all(np.any(b != 0, axis=1)), settings=FIND)
    assert np.any(np.all(found == 0, axis=1))


# ============================================================================ checks pass on correct duals

CATALOG_DUALS = ["relu", "erf", "gelu", "sin", "tanh", "step"]


@pytest.mark.parametrize("name", CATALOG_DUALS)
@given(cov=covariances())
def test_every_identity_holds_for_catalog_duals(name, cov):
    dual = nk.derive(getattr(catalog, name)())
    results = check_all(dual, cov)
    expected = {"check_symmetry", "check_diagonal", "check_cauchy_schwarz", "check_independence", "check_psd"}
    assert set(results) == expected | ({"check_price"} if dual.Kdot is not None else set())
    # K is symmetric to the accuracy of two values (exact: 2·RTOL_EXACT; numeric: 2·(error_bound + RTOL_EXACT))
    assert results["check_symmetry"] <= 2 * (dual.error_bound or 0) + 4 * EPS64


@pytest.mark.parametrize("name", CATALOG_DUALS)
@given(batch=input_batches())
@settings(max_examples=5)
def test_gram_matrices_of_catalog_duals_are_psd(name, batch):
    assert check_psd(nk.derive(getattr(catalog, name)()), input_covariance(batch)) <= 1e-12


def test_psd_of_a_jump_at_parallel_inputs():
    """Regression: parallel inputs make Σ rank one, and rounding leaves it an ulp outside the PSD cone; the
    step's K (Hölder-½ at ρ = 1) turned that into a −9e-11 eigenvalue before Σ was lifted back inside."""
    sigma = input_covariance([[7.38905609893065], [1.0], [2.718281828459045]])
    for name in ("step", "sign"):
        assert check_psd(nk.derive(name), sigma) <= 1e-12


def test_a_non_psd_covariance_matrix_is_an_input_error():
    with pytest.raises(nk.InvalidCovarianceError, match="not positive semi-definite"):
        check_psd(nk.derive("relu"), [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])


def test_step_has_no_price_check_and_says_why():
    with pytest.raises(ValueError, match="jump"):
        check_price(nk.derive("step"), (1.0, 1.0, 0.5))


def _relu_K(q1, q2, c, factor=1 / (2 * math.pi)):
    """Cho–Saul arc-cosine kernel of degree 1 (a float64 formula, clipping ρ)."""
    s = math.sqrt(q1) * math.sqrt(q2)
    rho = max(-1.0, min(1.0, c / s)) if s > 0 else 0.0
    return factor * s * (math.sqrt(max(0.0, 1 - rho * rho)) + (math.pi - math.acos(rho)) * rho)


def _relu_Kdot(q1, q2, c):
    s = math.sqrt(q1) * math.sqrt(q2)
    rho = max(-1.0, min(1.0, c / s)) if s > 0 else 0.0
    return (math.pi - math.acos(rho)) / (2 * math.pi)


def _relu_V(q):
    return q / 2


def _relu_mean(q):
    return math.sqrt(q / (2 * math.pi))


@given(cov=covariances())
def test_every_identity_holds_for_relu_as_plain_callables(cov):
    """The callable path, Price's finite difference included, at the default float64 tolerance."""
    results = check_all(_relu_K, cov, Kdot=_relu_Kdot, V=_relu_V, mean=_relu_mean)
    assert set(results) == {"check_symmetry", "check_diagonal", "check_cauchy_schwarz", "check_price",
                            "check_independence", "check_psd"}


def test_callables_get_the_checks_their_inputs_allow():
    assert set(check_all(_relu_K, (1.0, 2.0, 0.5))) == {"check_symmetry", "check_cauchy_schwarz", "check_psd"}


# ================================================================================ checks fail when wrong

# (1.0, 2.0, 0.5): unequal variances, so an asymmetric K shows; an interior ρ, so every check applies.
COV = (1.0, 2.0, 0.5)


def _wrong_relu_K(q1, q2, c):
    return _relu_K(q1, q2, c, factor=1 / math.pi)  # the classic slip: 1/π in place of 1/(2π)


def _assert_informative(error: IdentityError, identity: str, statement: str):
    message = str(error)
    assert isinstance(error, AssertionError) and error.identity == identity
    assert message.startswith(identity) and statement in message
    assert "q1=" in message and "q2=" in message and "c=" in message  # where
    assert "discrepancy" in message and f"{error.discrepancy:.3e}" in message  # by how much
    assert f"{error.tolerance:.3e}" in message and "tolerance:" in message  # against which tolerance, and why
    assert error.discrepancy > error.tolerance


def test_wrong_normalisation_fails_check_diagonal():
    with pytest.raises(IdentityError) as info:
        check_diagonal(_wrong_relu_K, COV, V=_relu_V)
    _assert_informative(info.value, "check_diagonal", "K(q, q, q) = V(q)")
    assert info.value.discrepancy == pytest.approx(1.0)  # K(q, q, q) = 2·V(q): off by V(q) itself


def test_wrong_normalisation_fails_cauchy_schwarz_at_rho_one():
    with pytest.raises(IdentityError) as info:
        check_cauchy_schwarz(_wrong_relu_K, (1.0, 2.0, math.sqrt(2.0)), V=_relu_V)
    _assert_informative(info.value, "check_cauchy_schwarz", "|K(q1, q2, c)| ≤")


def test_wrong_normalisation_of_a_dual_fails():
    relu = nk.derive("relu")
    wrong = replace(relu, K=2 * relu.K)
    with pytest.raises(IdentityError) as info:
        check_diagonal(wrong, COV)
    _assert_informative(info.value, "check_diagonal", "K(q, q, q) = V(q)")


def test_asymmetric_K_fails_check_symmetry():
    def asymmetric(q1, q2, c):
        return _relu_K(q1, q2, c) * (q1 / q2) ** 0.1

    with pytest.raises(IdentityError) as info:
        check_symmetry(asymmetric, COV, V=_relu_V)
    _assert_informative(info.value, "check_symmetry", "K(q1, q2, c) = K(q2, q1, c)")


def test_symmetry_tolerance_is_tight():
    """An asymmetry of 1e-12 relative is far above float64 rounding (2·64·eps ≈ 2.8e-14): it must fail."""
    def nearly(q1, q2, c):
        return _relu_K(q1, q2, c) * (1 + 1e-12 * (q1 > q2))

    assert 2 * RTOL_CALLABLE < 1e-12
    with pytest.raises(IdentityError, match="check_symmetry"):
        check_symmetry(nearly, (2.0, 1.0, 0.5))
    assert check_symmetry(nearly, (2.0, 1.0, 0.5), rtol=1e-12) <= 2e-12  # a stated looser accuracy passes


def test_wrong_kdot_fails_check_price_for_callables():
    def wrong_kdot(q1, q2, c):
        return 1.2 * _relu_Kdot(q1, q2, c)

    with pytest.raises(IdentityError) as info:
        check_price(_relu_K, COV, Kdot=wrong_kdot)
    _assert_informative(info.value, "check_price", "∂K/∂c = K̇")
    assert "central difference" in str(info.value)


def test_wrong_kdot_fails_check_price_near_rho_one():
    """At ρ = 1 the difference's centre moves inward (and the message says so); a wrong K̇ still fails."""
    with pytest.raises(IdentityError, match="centre moved"):
        check_price(_relu_K, (1.0, 1.0, 1.0), Kdot=lambda q1, q2, c: 0.4)


def test_wrong_kdot_of_a_dual_fails_check_price():
    relu = nk.derive("relu")
    with pytest.raises(IdentityError) as info:
        check_price(replace(relu, Kdot=relu.Kdot * 9 / 10), COV)
    _assert_informative(info.value, "check_price", "∂K/∂c = K̇")
    assert "symbolic derivative" in str(info.value)


def test_wrong_kdot_of_a_numeric_dual_fails_check_price():
    from ntksym.gaussian.numeric import numeric_dual

    tanh = nk.derive("tanh")
    sigma = tanh.activation.expr
    wrong = replace(tanh, numeric=numeric_dual(sigma, sp.diff(sigma, x) / 2))  # σ'/2 in place of σ'
    with pytest.raises(IdentityError, match="check_price"):
        check_price(wrong, COV)


def test_shifted_K_fails_check_independence():
    relu = nk.derive("relu")
    with pytest.raises(IdentityError) as info:
        check_independence(replace(relu, K=relu.K + sp.Rational(1, 10)), COV)
    _assert_informative(info.value, "check_independence", "K(q1, q2, 0) = E[σ(u)]·E[σ(v)]")


def test_wrong_mean_fails_check_independence():
    with pytest.raises(IdentityError, match="check_independence"):
        check_independence(_relu_K, COV, mean=lambda q: math.sqrt(q / math.pi))


def test_non_psd_kernel_fails_check_psd_only():
    """K = √(q1q2)·(2ρ² − 1) is symmetric, within Cauchy–Schwarz and right on the diagonal, but for three
    orthogonal inputs its normalised Gram matrix is 2I − J, with eigenvalue −1."""
    def kernel(q1, q2, c):
        s = math.sqrt(q1) * math.sqrt(q2)
        return s * (2 * (c / s) ** 2 - 1)

    sigma = input_covariance(np.eye(3))
    with pytest.raises(IdentityError) as info:
        check_psd(kernel, sigma)
    assert info.value.identity == "check_psd" and info.value.discrepancy == pytest.approx(1.0)
    assert "not positive semi-definite" in str(info.value) and "eigenvalue" in str(info.value)
    for cov in ((1 / 3, 1 / 3, 0.0), (1.0, 2.0, 0.5)):
        check_symmetry(kernel, cov)
        check_cauchy_schwarz(kernel, cov)
        check_diagonal(kernel, cov, V=lambda q: q)


def test_check_all_lists_every_failure():
    with pytest.raises(IdentityError) as info:
        check_all(_wrong_relu_K, (1.0, 2.0, math.sqrt(2.0)), Kdot=_relu_Kdot, V=_relu_V, mean=_relu_mean)
    message = str(info.value)
    assert message.startswith("4 identities fail")
    for name in ("check_cauchy_schwarz", "check_diagonal", "check_price", "check_independence"):
        assert name in message


# ====================================================================================== misuse, imports


@pytest.mark.parametrize("cov", [(1.0, 1.0, 1.5), (-1.0, 1.0, 0.0), (1.0, math.nan, 0.0), (1.0, 2.0)])
def test_invalid_covariances_are_errors_not_failures(cov):
    with pytest.raises(nk.InvalidCovarianceError):
        check_symmetry(_relu_K, cov)


def test_missing_inputs_are_named():
    with pytest.raises(TypeError, match="V="):
        check_diagonal(_relu_K, COV)
    with pytest.raises(TypeError, match="mean="):
        check_independence(_relu_K, COV)
    with pytest.raises(ValueError, match="no Kdot"):
        check_price(_relu_K, COV)
    with pytest.raises(TypeError, match="Dual carries"):
        check_diagonal(nk.derive("relu"), COV, V=_relu_V)


def test_a_tuple_valued_K_gets_a_hint():
    with pytest.raises(TypeError, match=r"f\(q1, q2, c\)\[0\]"):
        check_symmetry(lambda q1, q2, c: (1.0, 2.0), COV)


def test_importing_testing_loads_no_jax_and_needs_hypothesis():
    """One subprocess for both import facts (each costs a fresh interpreter importing SymPy)."""
    code = (
        "import sys, importlib\n"
        "import ntksym.testing\n"
        "print('jax' in sys.modules)\n"
        "for name in [m for m in sys.modules if m == 'hypothesis' or m.startswith('hypothesis.')]:\n"
        "    sys.modules[name] = None\n"
        "del sys.modules['ntksym.testing']\n"
        "try:\n"
        "    importlib.import_module('ntksym.testing')\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    jax_loaded, message = out.stdout.split("\n", 1)
    assert jax_loaded == "False", "importing ntksym.testing loaded jax"
    assert "pip install hypothesis" in message
