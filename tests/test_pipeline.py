"""One path for every activation: derive → lower → kernel → predict, with no code for any activation.

x·erf(x) (derived in closed form, in no catalog) and tanh (a numeric dual) go through exactly the same
serial/kernel/predict calls as relu; their kernels are checked against Monte Carlo-free independent
evaluations of the same recurrence in NumPy, built from the Dual's own 30-digit evaluation.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import ntksym as nk


def _numpy_mlp_kernels(dual, x, depth, w_std, b_std):
    """Survey eq. (58)–(61) in NumPy, with K and K̇ from Dual.evaluate (a different evaluation path)."""
    sigma = x @ x.T / x.shape[1]
    theta = np.zeros_like(sigma)
    for _ in range(depth):
        sigma = w_std**2 * sigma + b_std**2
        theta = sigma + w_std**2 * theta
        d = np.diag(sigma)
        k, kdot = dual.evaluate(d[:, None], d[None, :], sigma)
        sigma, theta = k, kdot * theta
    sigma_out = w_std**2 * sigma + b_std**2
    return sigma_out, sigma_out + w_std**2 * theta


@pytest.mark.parametrize("spec", ["x*erf(x)", "tanh", "relu"])
def test_same_path_for_derived_numeric_and_catalog(spec):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5))
    dual = nk.derive(spec)
    net = nk.mlp(dual, depth=3, w_std=1.3, b_std=0.2)
    with jax.enable_x64(True):
        k = net.kernel(x)
        nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
        y = rng.normal(size=(7,))
        pred = nk.predict.kernel_regression(k.ntk[:5, :5], y[:5], k.ntk[5:, :5], ridge=1e-3)
    ref_nngp, ref_ntk = _numpy_mlp_kernels(dual, x, 3, 1.3, 0.2)
    # exact duals: float64 recurrences vs 30-digit K, K̇ — 1e-13 off the diagonal; on it (ρ = 1) one ulp
    # of ρ moves relu's K̇ = asin(ρ)/2π + 1/4 by √(2 eps)/2π ≈ 3.4e-9 per layer: 3 layers, both sides → 2e-8.
    # tanh: the lowered rule is the panelled quadrature itself (to ~1e-15), so the same bound holds (the
    # Gauss–Hermite rule it replaced was 6e-6 off on K̇ at ρ = 1, q ≈ 6).
    tol = 2e-8
    np.testing.assert_allclose(nngp, ref_nngp, rtol=tol, atol=tol)
    np.testing.assert_allclose(ntk, ref_ntk, rtol=tol, atol=tol)
    # the solver on the kernel it was given (its accuracy is tested above): a 5×5 solve, float64
    expected = ntk[5:, :5] @ np.linalg.solve(ntk[:5, :5] + 1e-3 * np.eye(5), y[:5])
    np.testing.assert_allclose(np.asarray(pred), expected, rtol=1e-9, atol=1e-12)
