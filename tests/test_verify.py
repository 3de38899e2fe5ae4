"""nk.verify and nk.verify_formula: Monte Carlo checks of duals and of users' formulas.

Every check here can fail: the wrong formulas of the issue (ReLU with 1/π for 1/(2π), erf with 1 + q for
1 + 2q, GELU with one sign flipped) must be rejected, the correct ones accepted, and the accumulation of
the Monte Carlo sums is compared with a direct NumPy computation over the same Gaussian draws.
Sample sizes are small (2^16) so that the whole catalog runs in CI; the threshold z* is Bonferroni's, so
each `verify` call on a correct dual fails with probability ≤ α = 0.01 at a fixed seed — the seeds are fixed,
so the outcome is deterministic.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import sympy as sp
from scipy import special

import ntksym as nk
from ntksym.catalog import CATALOG
from ntksym.cli import main
from ntksym.symbols import c, q, q1, q2
from ntksym.verify import (
    DESIGN,
    HEAVY_TAIL_SHARE,
    VerificationError,
    verify,
    verify_formula,
)

N_CI = 2**16

RELU_K = "sqrt(q1*q2)/(2*pi)*(sqrt(1 - c**2/(q1*q2)) + (pi - acos(c/sqrt(q1*q2)))*c/sqrt(q1*q2))"
RELU_KDOT = "(pi - acos(c/sqrt(q1*q2)))/(2*pi)"
ERF_K = "2/pi*asin(2*c/sqrt((1+2*q1)*(1+2*q2)))"
GELU_K = ("c/4 + c*asin(c/sqrt((1+q1)*(1+q2)))/(2*pi)"
          " + (q1*q2 + c**2*(1-q1*q2)/((1+q1)*(1+q2)))/(2*pi*sqrt((1+q1)*(1+q2)-c**2))")
# the three deliberately wrong formulas of the issue
WRONG = {
    "relu": RELU_K.replace("(2*pi)", "pi"),
    "erf": ERF_K.replace("1+2*q1", "1+q1").replace("1+2*q2", "1+q2"),
    "gelu": GELU_K.replace("c/4 +", "-c/4 +"),
}
RIGHT = {"relu": RELU_K, "erf": ERF_K, "gelu": GELU_K}


# ------------------------------------------------------------------------------------------ verify


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_catalog_dual_passes(name):
    """Exact duals with allowance float64 rounding; numeric ones with their error bound added."""
    dual = nk.derive(name)
    report = verify(dual, n_samples=N_CI, seed=1)
    assert report.passed, str(report)
    # the verdict rests on much of the design, not on heavy-tail exemptions; e^x is the exception: e^{u+v}
    # is log-normal, and at variances ≥ 1/2 its largest sample dominates (the module docstring)
    assert report.n_judged >= (5 if name == "exp" else len(report.estimates) // 3), str(report)


def test_a_wrong_dual_fails_where_it_is_wrong():
    dual = nk.derive("relu")
    wrong = dataclasses.replace(dual, K=dual.K * sp.Rational(21, 20))  # 5% too large everywhere
    report = verify(wrong, n_samples=2**18, seed=0)
    assert not report.passed
    failed = {(e.quantity, e.q1, e.q2) for e in report.failures}
    assert all(quantity == "K" for quantity, *_ in failed)  # K̇ and V are still right
    # at ρ = −1 relu's K is 0, so 5% of it is still right there; elsewhere 5% is ≥ 20 standard errors
    assert len(report.failures) >= len([d for d in DESIGN if d[2] > -1]) - 2


def test_a_wrong_variance_map_fails():
    dual = nk.derive("erf")
    wrong = dataclasses.replace(dual, V=dual.V + q / 100)
    report = verify(wrong, n_samples=2**18, seed=0)
    assert not report.passed and {e.quantity for e in report.failures} == {"V"}


class _Biased:
    """A numeric rule whose K is off by 2% — far beyond its claimed error bound."""

    def __init__(self, rule):
        self.rule = rule

    def K(self, *a):
        return self.rule.K(*a) * 1.02

    def Kdot(self, *a):
        return self.rule.Kdot(*a)

    def V(self, *a):
        return self.rule.V(*a)


def test_a_numeric_dual_outside_its_error_bound_fails():
    dual = nk.derive("tanh")
    assert not dual.exact
    wrong = dataclasses.replace(dual, numeric=_Biased(dual.numeric))
    report = verify(wrong, n_samples=2**18, seed=0)
    assert not report.passed and {e.quantity for e in report.failures} == {"K"}


@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_allowance_is_the_error_bound_plus_rounding(name):
    """K's allowance is (error bound + ROUNDING)·√(V̂(q1)V̂(q2)), V̂ the Monte Carlo variance map (so a
    wrong V cannot widen K's allowance); the error bound is 0 for a closed form."""
    from ntksym.verify import ROUNDING

    dual = nk.derive(name)
    report = verify(dual, n_samples=4096, seed=0)
    v_hat = {e.q1: e.estimate for e in report.estimates if e.quantity == "V"}
    for e in report.estimates:
        if e.quantity == "K":
            expected = ((dual.error_bound or 0.0) + ROUNDING) * math.sqrt(v_hat[e.q1] * v_hat[e.q2])
            assert e.allowance == pytest.approx(expected, rel=1e-12)


def test_threshold_is_bonferroni():
    report = verify("erf", n_samples=4096, seed=0, alpha=0.05)
    m = report.n_judged
    assert report.z_threshold == pytest.approx(special.ndtri(1 - 0.05 / (2 * m)), rel=1e-12)


def test_runs_are_deterministic_and_seeds_differ():
    a = verify("gelu", n_samples=4096, seed=5)
    b = verify("gelu", n_samples=4096, seed=5)
    other = verify("gelu", n_samples=4096, seed=6)
    assert [e.estimate for e in a.estimates] == [e.estimate for e in b.estimates]
    assert [e.estimate for e in a.estimates] != [e.estimate for e in other.estimates]


def test_chunked_sums_equal_a_direct_computation(strict_jax):
    """Mean and standard error from the chunked, shifted float64 sums equal NumPy's over the same draws,
    including a partial last chunk (n = 2.5 chunks). Tolerance 1e-12 relative: float64 summation order."""
    import jax

    n, chunk = 2560, 1024
    report = verify("relu", n_samples=n, seed=3, chunk_size=chunk)
    with jax.enable_x64(True):
        key = jax.random.key(3)
        sizes = (chunk, chunk, n - 2 * chunk)  # the last chunk draws exactly the samples it needs
        draws = [np.asarray(jax.random.normal(jax.random.fold_in(key, i), (2, size), dtype=np.float64))
                 for i, size in enumerate(sizes)]
    z = np.concatenate(draws, axis=1)
    for e in report.estimates:
        if e.quantity != "K":
            continue
        rho = e.rho
        u = math.sqrt(e.q1) * z[0]
        v = math.sqrt(e.q2) * (rho * z[0] + math.sqrt(max(1 - rho * rho, 0.0)) * z[1])
        samples = np.maximum(u, 0) * np.maximum(v, 0)
        assert e.estimate == pytest.approx(samples.mean(), rel=1e-12, abs=1e-15)
        assert e.standard_error == pytest.approx(samples.std(ddof=1) / math.sqrt(n), rel=1e-9, abs=1e-15)


def test_heavy_tails_are_not_judged_but_light_ones_are():
    report = verify("exp", n_samples=N_CI, seed=0)
    by_q = {(e.quantity, e.q1): e for e in report.estimates if e.quantity == "V"}
    # E[e^{2√q z}] at q = 100: the mean sits at z = 20, never sampled; Monte Carlo cannot judge it
    assert not by_q[("V", 100.0)].judged
    assert by_q[("V", 1e-3)].judged
    relu = verify("relu", n_samples=2**18, seed=0)
    assert all(e.judged for e in relu.estimates if e.quantity == "V")
    assert 0 < HEAVY_TAIL_SHARE < 0.1


def test_report_table_json_and_progress(capsys):
    report = verify("erf", n_samples=4096, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "100.0%" in err
    text = str(report)
    assert "PASSED" in text and f"z* = {report.z_threshold:.2f}" in text
    record = json.loads(report.to_json())
    assert record["passed"] is True and len(record["estimates"]) == len(report.estimates)


def test_plot_writes_a_file(tmp_path):
    pytest.importorskip("matplotlib")
    dual = nk.derive("relu")
    report = verify(dual, n_samples=4096, seed=0)
    path = tmp_path / "relu.png"
    report.plot(path, dual=dual)
    assert path.stat().st_size > 1000


@pytest.mark.parametrize("kwargs, message", [
    ({"n_samples": 10}, "n_samples"),
    ({"n_samples": 5000.5}, "n_samples"),
    ({"alpha": 1.5}, "alpha"),
    ({"seed": -1}, "seed"),
    ({"covariances": [(1.0, 1.0, 2.0)]}, "c²"),
    ({"covariances": [(1.0, float("nan"), 0.0)]}, "NaN"),
    ({"covariances": []}, "empty"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(nk.NtksymError, match=message):
        verify("relu", **kwargs)


# ---------------------------------------------------------------------------------- verify_formula


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_formulas_are_rejected_with_the_covariances(name):
    report = verify_formula(name, K=WRONG[name], n_samples=N_CI)
    assert not report.passed
    text = str(report)
    assert "K is WRONG" in text
    worst = report.failures("K")
    assert worst
    # the message names the covariances where it fails
    assert worst[0].where() in text or any(p.where() in text for p in worst)
    # Monte Carlo agrees with the derivation, not with the wrong formula, at the designed covariances
    judged = [p for p in worst if p.monte_carlo is not None and p.standard_error > 0]
    assert judged and max(abs(p.z) for p in judged) > report.z_threshold


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_right_formulas_are_accepted(name):
    report = verify_formula(name, K=RIGHT[name], n_samples=N_CI)
    assert report.passed, str(report)
    assert "correct at all" in str(report)


def test_formulas_as_sympy_and_callables():
    theta = sp.acos(c / sp.sqrt(q1 * q2))
    kdot = (sp.pi - theta) / (2 * sp.pi)
    ok = verify_formula("relu", Kdot=kdot, V=q / 2, n_samples=N_CI)
    assert ok.passed, str(ok)

    def wrong_v(qv):
        return np.asarray(qv) / 3

    bad = verify_formula("relu", V=wrong_v, n_samples=N_CI)
    assert not bad.passed and bad.failures("V")
    # a scalar-only callable is evaluated point by point
    good = verify_formula("relu", K=lambda a, b, cc: float(nk.derive("relu").evaluate(a, b, cc)[0]),
                          n_samples=N_CI)
    assert good.passed


def test_kdot_of_a_step_is_refused():
    with pytest.raises(VerificationError, match="does not exist"):
        verify_formula("step", Kdot="0*c")


@pytest.mark.parametrize("formula, message", [
    ("theta", "unknown name 'theta'"),
    ("__import__('os').system('true')", "not allowed"),
    ("relu(c)", "not allowed in a formula"),
    (sp.Symbol("y") * c, "also uses y"),
    (3, "SymPy expression, a string or a callable"),
])
def test_bad_formulas_are_named(formula, message):
    with pytest.raises(nk.NtksymError, match=message):
        verify_formula("relu", K=formula, n_samples=N_CI)


def test_formula_needed():
    with pytest.raises(VerificationError, match="at least one"):
        verify_formula("relu")


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_verify_passes_and_fails(capsys):
    assert main(["verify", "relu", "--samples", str(N_CI)]) == 0
    assert "PASSED" in capsys.readouterr().out
    assert main(["verify", "relu", "--samples", str(N_CI), "--K", WRONG["relu"]]) == 1
    out = capsys.readouterr().out
    assert "K is WRONG" in out and "(q1, q2, c)=" in out
    assert main(["verify", "erf", "--samples", "4096", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True


@pytest.mark.parametrize("argv", [["verify", "x + y"], ["verify", "relu", "--K", "theta"],
                                  ["verify", "relu", "--alpha", "3"]])
def test_cli_verify_bad_input_exits_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntksym: error: ") and err.count("\n") == 1
