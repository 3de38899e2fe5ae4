"""verify_network (ntksym.network_check): the analytic NNGP/NTK against Monte Carlo over finite networks.

Acceptance: for a 3-layer relu MLP, a 3-layer erf MLP and a small CNN (Conv → relu → Conv 1×1 → relu →
GlobalAvgPool → Dense), all in the NTK parameterization, the report passes (analytic kernel inside the Monte
Carlo band at every width, error slope consistent with −1/2), and the single-network error at the widest width
is below the narrowest width's by a factor consistent with √(w_max/w_min) = 4 within the Monte Carlo noise:
|log(e_min/e_max) − log 4| ≤ t·SE, SE from the sample spread of log errors (module docstring of
ntksym.network_check). CI runs widths (64, 256, 1024); `pytest -m slow` runs (256, 1024, 4096).
A wrong analytic kernel (wrong w_std, another activation) must fail. Seeds are fixed: key=0 throughout.

The statistics helpers (kernel distance of survey eq. (148), slope fit, layout) are checked against hand
computations.
"""

from __future__ import annotations

import dataclasses
import functools as ft
import json
import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from ntksym import network_check
from ntksym.empirical import NetworkError
from ntksym.layers import Activation, Conv, Dense, GlobalAvgPool, mlp, serial
from ntksym.network_check import NetworkReport, kernel_distance, verify_network

ALPHA = 1e-3  # family-wise false-alarm rate of each statistical assertion (Bonferroni over its tests)
N_SAMPLES = 16  # networks per width
CI_WIDTHS = {"relu-mlp": (64, 256, 1024), "erf-mlp": (64, 256, 1024), "cnn": (32, 128, 512)}  # ratio 16 each
SLOW_WIDTHS = (256, 1024, 4096)


@ft.cache
def relu():
    return Activation("relu")


@ft.cache
def erf():
    return Activation("erf")


def relu_mlp():
    return mlp(relu().dual, 2, 1.5, 0.1)  # 3 Dense layers


def erf_mlp():
    return mlp(erf().dual, 2, 1.5, 0.1)


def small_cnn():
    return serial(Conv(1, (3, 3), w_std=1.4, b_std=0.1), relu(), Conv(1, (1, 1), w_std=1.4, b_std=0.1), relu(),
                  GlobalAvgPool(), Dense(1, 1.4, 0.1))


NETS = {"relu-mlp": relu_mlp, "erf-mlp": erf_mlp, "cnn": small_cnn}


def inputs(name):
    rng = np.random.default_rng(0)
    shape = (4, 5, 5, 2) if name == "cnn" else (6, 4)
    return rng.normal(size=shape).astype(np.float32)


@ft.cache
def report(name: str, widths: tuple[int, ...]) -> NetworkReport:
    return verify_network(NETS[name](), inputs(name), widths=widths, n_samples=N_SAMPLES, key=0)


def assert_error_shrinks_like_inverse_sqrt_width(rep: NetworkReport, n_tests: int) -> None:
    """e(w_min)/e(w_max) consistent with √(w_max/w_min): |log ratio − ½·log(w_max/w_min)| ≤ t·SE, where SE
    combines the two widths' standard errors of log single-network error (each from N_SAMPLES networks, so
    Student-t with N_SAMPLES − 1 degrees of freedom) at family-wise α = ALPHA over n_tests such checks."""
    threshold = float(student_t.isf(ALPHA / (2 * n_tests), N_SAMPLES - 1))
    lo, hi = rep.widths[0], rep.widths[-1]
    for name in rep.get:
        a, b = rep.result(name, lo), rep.result(name, hi)
        log_ratio = math.log(a.single_error / b.single_error)
        se = math.hypot(a.single_error_log_se, b.single_error_log_se)
        expected = 0.5 * math.log(hi / lo)
        assert abs(log_ratio - expected) <= threshold * se, (
            f"{name}: error ratio {math.exp(log_ratio):.2f} between widths {lo} and {hi}, expected "
            f"{math.exp(expected):.2f} within exp(±{threshold:.2f}·{se:.3f})\n{rep}")


# --------------------------------------------------------------------------------------------------
# Acceptance
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(NETS))
def test_verify_network_passes_and_error_falls_like_inverse_sqrt_width(name):
    rep = report(name, CI_WIDTHS[name])
    assert rep.passed, str(rep)
    assert all(r.inside for r in rep.results) and all(s.consistent for s in rep.slopes)
    # 3 nets × 2 kernels ratio checks in this test function
    assert_error_shrinks_like_inverse_sqrt_width(rep, n_tests=2 * len(NETS))
    # the kernel distance (148) is second order in the error: the Monte Carlo mean is closer than one network
    for r in rep.results:
        assert r.distance < r.single_distance


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NETS))
def test_verify_network_at_widths_up_to_4096(name):
    """The brief's widths (256, 1024, 4096): ~1–2 min per net on 2 CPU cores, peak memory ~1.3 GB (float32)."""
    rep = report(name, SLOW_WIDTHS)
    assert rep.passed, str(rep)
    assert_error_shrinks_like_inverse_sqrt_width(rep, n_tests=2 * len(NETS))


@pytest.mark.parametrize("reference", ["wrong-w_std", "erf-for-relu"])
def test_verify_network_fails_against_a_wrong_kernel(reference):
    """The same relu networks (same key) against the analytic kernel of a wrong architecture: w_std 1.6 for 1.5
    (Θ off by ~30%), or erf for relu. The band rejects it at every width, and the error stops falling."""
    wrong = mlp(relu().dual, 2, 1.6, 0.1) if reference == "wrong-w_std" else mlp(erf().dual, 2, 1.5, 0.1)
    rep = verify_network(relu_mlp(), inputs("relu-mlp"), widths=CI_WIDTHS["relu-mlp"], n_samples=N_SAMPLES, key=0,
                         reference=wrong)
    assert not rep.passed
    assert not any(r.inside for r in rep.results)
    assert not any(s.consistent for s in rep.slopes)
    assert "FAILED" in str(rep)


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


def test_report_threshold_table_and_json():
    rep = report("relu-mlp", CI_WIDTHS["relu-mlp"])
    # Bonferroni over the distinct entries of two 6×6 Gram matrices at three widths, plus two slopes
    assert rep.n_tests == 2 * 3 * 21 + 2
    assert rep.threshold == pytest.approx(student_t.isf(ALPHA / (2 * rep.n_tests), N_SAMPLES - 1), rel=1e-12)
    assert rep.widths == CI_WIDTHS["relu-mlp"] and rep.get == ("nngp", "ntk") and rep.dtype == "float32"
    assert [(r.kernel, r.width) for r in rep.results] == [(k, w) for k in ("nngp", "ntk") for w in rep.widths]
    assert all(r.n_entries == 21 for r in rep.results)
    text = str(rep)
    assert "PASSED" in text and "|t| ≤" in text and text.count("\n") >= 3 + len(rep.results) + len(rep.slopes)
    data = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert data["passed"] is True and len(data["results"]) == 6 and data["slopes"][0]["t"] == rep.slopes[0].t
    with pytest.raises(dataclasses.FrozenInstanceError):
        rep.threshold = 1.0


def test_a_given_threshold_replaces_the_bonferroni_one():
    """z = 1e-6: every band entry and slope is judged at |t| ≤ 1e-6, which Monte Carlo noise always exceeds."""
    tiny = verify_network(relu_mlp(), inputs("relu-mlp"), widths=(64, 256), n_samples=4, z=1e-6)
    assert tiny.alpha is None and tiny.threshold == 1e-6
    assert not tiny.passed and not any(r.inside for r in tiny.results)
    assert "given threshold" in str(tiny)


@pytest.mark.parametrize("kwargs, message", [
    ({"widths": (256,)}, "two distinct widths"),
    ({"widths": (0, 64)}, "width"),
    ({"n_samples": 1}, "n_samples"),
    ({"alpha": 1.5}, "alpha"),
    ({"z": -1.0}, "z"),
    ({"get": "cov"}, "get"),
    ({"method": "exact"}, "method"),
])
def test_bad_arguments_raise_network_errors(kwargs, message):
    with pytest.raises(NetworkError, match=message):
        verify_network(relu_mlp(), inputs("relu-mlp"), **{"widths": (8, 16), "n_samples": 2, **kwargs})


def test_standard_parameterization_and_bad_inputs_are_refused():
    standard = mlp(relu().dual, 1, 1.5, 0.1, parameterization="standard")
    with pytest.raises(NetworkError, match="NTK parameterization"):
        verify_network(standard, inputs("relu-mlp"), widths=(8, 16), n_samples=2)
    with pytest.raises(NetworkError, match="NaN"):
        verify_network(relu_mlp(), np.full((3, 4), np.nan), widths=(8, 16), n_samples=2)


# --------------------------------------------------------------------------------------------------
# Statistics helpers against hand computations
# --------------------------------------------------------------------------------------------------


def test_kernel_distance_is_one_minus_cosine_similarity():
    """Survey eq. (148): ρ(H, H') = 1 − tr(HH'ᵀ)/√(tr(HHᵀ)·tr(H'H'ᵀ))."""
    H = np.array([[2.0, 1.0], [1.0, 3.0]])
    assert kernel_distance(H, 5 * H) == pytest.approx(0.0, abs=1e-15)  # scale-invariant
    assert kernel_distance(np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]])) == pytest.approx(1.0)  # orthogonal
    assert kernel_distance(H, -H) == pytest.approx(2.0)
    G = np.array([[1.0, 0.0], [0.0, 2.0]])
    # by hand: tr(HGᵀ) = 2 + 6 = 8, tr(HHᵀ) = 4 + 1 + 1 + 9 = 15, tr(GGᵀ) = 5
    assert kernel_distance(H, G) == pytest.approx(1 - 8 / math.sqrt(15 * 5), rel=1e-14)


def test_slope_fit_is_weighted_least_squares():
    widths = [64, 256, 1024]
    x = np.log(widths)
    # noiseless points on a line of slope −1/2: recovered to rounding
    slope, se = network_check._slope_fit(widths, 0.3 - 0.5 * x, [0.1, 0.1, 0.1])
    assert slope == pytest.approx(-0.5, rel=1e-12)
    # equal weights: SE = s/√Σ(x − x̄)² (textbook ordinary least squares with a known s)
    assert se == pytest.approx(0.1 / math.sqrt(np.sum((x - x.mean()) ** 2)), rel=1e-12)
    # a very uncertain middle point barely moves the slope from the two-point slope of the others
    slope, _ = network_check._slope_fit(widths, [0.0, 5.0, -0.5 * (x[2] - x[0])], [0.01, 1e6, 0.01])
    assert slope == pytest.approx(-0.5, rel=1e-6)


def test_matrix_layout_pairs_each_position_with_its_own():
    """(n1, n2, H, H', W, W') → rows (i, h, w), columns (j, h', w')."""
    rng = np.random.default_rng(5)
    gram = rng.normal(size=(2, 3, 4, 4, 5, 5))
    matrix = network_check._as_matrix(gram)
    assert matrix.shape == (2 * 4 * 5, 3 * 4 * 5)
    i, j, h, h2, w, w2 = 1, 2, 3, 0, 4, 1
    assert matrix[(i * 4 + h) * 5 + w, (j * 4 + h2) * 5 + w2] == gram[i, j, h, h2, w, w2]
    assert np.array_equal(network_check._as_matrix(gram[:, :, 0, 0, 0, 0]), gram[:, :, 0, 0, 0, 0])
