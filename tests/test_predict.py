"""Solvers and predictions from kernel matrices (ntksym.solve, ntksym.predict).

Every prediction is checked against a different method (STYLE.md principle 10):
- gradient flow against scipy.linalg.expm of the matrix (survey eq. 7, 9; lecture eq. 14.8) and
  against numerical integration of the ODE df/dt = −ηΘ(f − Y) (survey eq. 4, 6) with solve_ivp;
- kernel regression and the NNGP posterior against numpy.linalg.solve / inv (survey eq. 149–150);
- the NTK-GP against the covariance of f_t = f_0 + A_t(Y − f_0) built with expm, against the
  survey's closed forms (eq. 152–153, 155–156), and by Monte Carlo over f_0 ~ GP(0, K).
Kernels are Gram matrices of random features, so they are exactly PSD, with a condition number
that each test measures and puts into its tolerance.

Tolerances (the reason is written beside each):
- `_solve_tol(dtype, m, kappa)` = 10·m·eps·κ: Cholesky and eigh are backward stable, with backward
  error ≲ m·eps·‖K‖; a solve amplifies it by κ = λ_max/λ_min; 10 covers the matrix products
  before and after. Errors are measured against the largest |reference| entry.
- ODE references: solve_ivp (DOP853) with rtol = 1e-10 controls the local error per step; the flow
  is contracting (Θ is PSD), so local errors do not grow and the global error is at most the sum over
  the steps, well under 100·rtol for the < 100 steps these short integrations take.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from hypothesis import given, strategies as st

import helpers
from ntksym import predict as P
from ntksym import solve as S
from ntksym.errors import NtksymError

ODE_RTOL = 1e-10
ODE_ATOL = 1e-12


# --------------------------------------------------------------------------------------------------
# Problems: random-feature kernels, labels, initial outputs
# --------------------------------------------------------------------------------------------------


def _gram(rng, rows: int, features: int, bias: float = 0.5) -> np.ndarray:
    """Φ Φᵀ/p + b²: the NNGP of a random-feature model with a bias; PSD by construction."""
    phi = rng.normal(size=(rows, features))
    return phi @ phi.T / features + bias**2


def _problem(seed: int, dtype, m: int = 8, n: int = 5, k: int | None = None, rank: int | None = None):
    """Joint NNGP K and NTK Θ on m train + n test points, labels and initial outputs, cast to dtype.

    `rank` makes the train-train NTK rank-deficient (a finite-feature kernel with fewer features
    than training points). Everything is returned in float64 *after* rounding to `dtype`, so the
    references see exactly the inputs the code sees.
    """
    rng = np.random.default_rng(seed)
    big = m + n
    nngp = _gram(rng, big, 8 * big, bias=0.3)
    if rank is None:
        ntk = nngp + _gram(rng, big, 8 * big, bias=0.5)  # an NTK is the NNGP plus more PSD terms
    else:
        phi = rng.normal(size=(big, rank))
        ntk = phi @ phi.T / rank
    shape = (m,) if k is None else (m, k)
    y = rng.normal(size=shape)
    f0 = rng.normal(size=(big,) + shape[1:])
    cast = lambda a: np.asarray(a, dtype=dtype).astype(np.float64)  # noqa: E731
    return dict(
        nngp=cast(nngp), ntk=cast(ntk), y=cast(y), f0_train=cast(f0[:m]), f0_test=cast(f0[m:]), m=m, n=n
    )


def _blocks(kernel, m):
    return kernel[:m, :m], kernel[m:, :m], kernel[m:, m:]


def _kappa(k) -> float:
    lam = np.linalg.eigvalsh(k)
    return float(lam[-1] / lam[0])


def _solve_tol(dtype, m: int, kappa: float) -> float:
    return helpers.dtype_tolerance(dtype, 10 * m, kappa)


SOLVE_REASON = "backward-stable Cholesky/eigh: 10·m·eps·κ of the largest reference entry"


def _close(value, reference, rtol, reason):
    reference = np.asarray(reference, dtype=np.float64)
    scale = max(float(np.max(np.abs(reference))), 1e-300)
    helpers.assert_close_scaled(np.asarray(value), reference, scale, rtol, reason)


def _j(a, dtype):
    return jnp.asarray(a, dtype=dtype)


# --------------------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------------------


def _flow_expm(theta, theta_xX, y, f0, f0x, t, eta):
    """Survey eq. (7), (9): matrix exponential by scipy (Padé), inverse by numpy.linalg.solve."""
    m = theta.shape[0]
    decay = np.eye(m) - scipy.linalg.expm(-eta * t * theta)
    residual = y - f0
    train = f0 + decay @ residual
    test = f0x + theta_xX @ np.linalg.solve(theta, decay @ residual)
    return train, test


def _flow_ode(theta_joint, m, y, f0_joint, times, eta):
    """Integrate d/dt [f(X); f(x)] = −η [Θ(X, X); Θ(x, X)] (f(X) − Y) on the joint train+test system."""
    shape = f0_joint.shape
    coupling = theta_joint[:, :m]
    y2 = y.reshape(m, -1)

    def rhs(_, z):
        f = z.reshape(shape[0], -1)
        return (-eta * coupling @ (f[:m] - y2)).ravel()

    sol = scipy.integrate.solve_ivp(
        rhs, (0.0, max(times)), f0_joint.ravel(), method="DOP853", t_eval=times, rtol=ODE_RTOL, atol=ODE_ATOL
    )
    assert sol.success, sol.message
    return np.moveaxis(sol.y, -1, 0).reshape((len(times),) + shape)


# --------------------------------------------------------------------------------------------------
# Kernel regression
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [None, 3])
@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_kernel_regression_matches_numpy_solve(float_dtype, k, ridge):
    p = _problem(0, float_dtype, k=k)
    ktt, kxt, _ = _blocks(p["ntk"], p["m"])
    out = P.kernel_regression(_j(ktt, float_dtype), _j(p["y"], float_dtype), _j(kxt, float_dtype), ridge=ridge)
    assert out.dtype == float_dtype
    assert out.shape == (p["n"],) + p["y"].shape[1:]
    regularised = ktt + ridge * np.eye(p["m"])
    reference = kxt @ np.linalg.solve(regularised, p["y"])
    _close(out, reference, _solve_tol(float_dtype, p["m"], _kappa(regularised)), SOLVE_REASON)


# --------------------------------------------------------------------------------------------------
# Gradient flow
# --------------------------------------------------------------------------------------------------

TIMES = np.array([0.0, 0.05, 0.4, 3.0])


@pytest.mark.parametrize("k", [None, 3])
def test_gradient_flow_matches_matrix_exponential(float_dtype, k):
    p = _problem(1, float_dtype, k=k)
    eta = 0.7
    theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
    out = P.gradient_flow(
        _j(theta, float_dtype),
        _j(p["y"], float_dtype),
        TIMES,
        ntk_test_train=_j(theta_xX, float_dtype),
        fx_train_0=_j(p["f0_train"], float_dtype),
        fx_test_0=_j(p["f0_test"], float_dtype),
        learning_rate=eta,
    )
    assert out.train.dtype == float_dtype and out.test.dtype == float_dtype
    assert out.train.shape == TIMES.shape + p["y"].shape
    assert out.test.shape == TIMES.shape + (p["n"],) + p["y"].shape[1:]
    tol = _solve_tol(float_dtype, p["m"], _kappa(theta))
    for i, t in enumerate(TIMES):
        train, test = _flow_expm(theta, theta_xX, p["y"], p["f0_train"], p["f0_test"], t, eta)
        _close(out.train[i], train, tol, SOLVE_REASON)
        _close(out.test[i], test, tol, SOLVE_REASON)


@pytest.mark.parametrize("k", [None, 3])
def test_gradient_flow_matches_ode_on_joint_system(float_dtype, k):
    p = _problem(2, float_dtype, k=k)
    eta = 1.3
    theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
    out = P.gradient_flow(
        _j(theta, float_dtype),
        _j(p["y"], float_dtype),
        _j(TIMES, float_dtype),
        ntk_test_train=_j(theta_xX, float_dtype),
        fx_train_0=_j(p["f0_train"], float_dtype),
        fx_test_0=_j(p["f0_test"], float_dtype),
        learning_rate=eta,
    )
    f0_joint = np.concatenate([p["f0_train"], p["f0_test"]])
    ode = _flow_ode(p["ntk"], p["m"], p["y"], f0_joint, TIMES, eta)
    tol = 100 * ODE_RTOL + _solve_tol(float_dtype, p["m"], _kappa(theta))
    reason = "ODE global error < 100·rtol on a contracting flow, plus 10·m·eps·κ for the eigh-based solve"
    _close(out.train, ode[:, : p["m"]], tol, reason)
    _close(out.test, ode[:, p["m"] :], tol, reason)


def test_gradient_flow_at_infinity_is_kernel_regression(float_dtype):
    p = _problem(3, float_dtype, k=3)
    theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
    args = (_j(theta, float_dtype), _j(p["y"], float_dtype))
    f0, f0x = _j(p["f0_train"], float_dtype), _j(p["f0_test"], float_dtype)
    tx = _j(theta_xX, float_dtype)
    for ridge in (0.0, 0.2):
        kr = P.kernel_regression(*args, tx, ridge=ridge)
        # t = inf alone takes the Cholesky route ...
        at_inf = P.gradient_flow(*args, jnp.inf, ntk_test_train=tx, ridge=ridge)
        tol = _solve_tol(float_dtype, p["m"], _kappa(theta + ridge * np.eye(p["m"])))
        _close(at_inf.test, kr, tol, SOLVE_REASON)
        _close(at_inf.train, p["y"], 0.0, "at t = inf the training labels are fitted exactly, by definition")
        # ... inside an array of times it takes the eigendecomposition route; both must agree.
        mixed = P.gradient_flow(*args, np.array([1.0, np.inf]), ntk_test_train=tx, ridge=ridge)
        _close(mixed.test[1], kr, tol, SOLVE_REASON)
        _close(mixed.train[1], p["y"], tol, SOLVE_REASON)
    # With initial outputs, the limit is f_0(x) + Θ(x, X)Θ⁻¹(Y − f_0(X)) (survey eq. 89).
    with_f0 = P.gradient_flow(*args, np.inf, ntk_test_train=tx, fx_train_0=f0, fx_test_0=f0x)
    reference = p["f0_test"] + theta_xX @ np.linalg.solve(theta, p["y"] - p["f0_train"])
    _close(with_f0.test, reference, _solve_tol(float_dtype, p["m"], _kappa(theta)), SOLVE_REASON)


def test_gradient_flow_tends_to_kernel_regression(float_dtype):
    """‖f_t(x) − f_∞(x)‖ ≤ ‖Θ(x, X)Θ⁻¹‖·e^{−ηλ_min t}·‖Y − f_0(X)‖: the approach is exponential."""
    p = _problem(4, float_dtype)
    theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
    eta = 0.5
    times = np.array([0.5, 2.0, 8.0, 32.0, 1e4])
    flow = P.gradient_flow(
        _j(theta, float_dtype), _j(p["y"], float_dtype), times, ntk_test_train=_j(theta_xX, float_dtype),
        learning_rate=eta,
    )
    limit = theta_xX @ np.linalg.solve(theta, p["y"])
    lam_min = np.linalg.eigvalsh(theta)[0]
    gain = np.linalg.norm(theta_xX @ np.linalg.inv(theta), 2) * np.linalg.norm(p["y"])
    tol = _solve_tol(float_dtype, p["m"], _kappa(theta)) * np.max(np.abs(limit)) * np.sqrt(p["n"])
    errors = np.linalg.norm(np.asarray(flow.test, np.float64) - limit, axis=-1)
    for t, err in zip(times, errors):
        assert err <= gain * np.exp(-eta * lam_min * t) + tol, (t, err)
    # By t = 1e4, e^{−ηλ_min t} is far below eps: the flow has reached kernel regression.
    _close(flow.test[-1], limit, _solve_tol(float_dtype, p["m"], _kappa(theta)), SOLVE_REASON)


@pytest.mark.parametrize(
    "fn",
    ["kernel_regression", "gradient_flow", "gp_posterior", "ntk_gp"],
)
def test_multi_output_equals_per_output(float_dtype, fn):
    """The kernel of k outputs is Θ ⊗ I_k (survey §5.1): each column is its own scalar problem."""
    p = _problem(5, float_dtype, k=3)
    m = p["m"]
    theta, theta_xX, _ = _blocks(p["ntk"], m)
    k, kxX, kxx = _blocks(p["nngp"], m)
    j = lambda a: _j(a, float_dtype)  # noqa: E731

    def run(y, f0, f0x):
        if fn == "kernel_regression":
            return P.kernel_regression(j(theta), j(y), j(theta_xX))
        if fn == "gradient_flow":
            out = P.gradient_flow(j(theta), j(y), TIMES, ntk_test_train=j(theta_xX), fx_train_0=j(f0), fx_test_0=j(f0x))
            return jnp.concatenate([out.train, out.test], axis=1)
        if fn == "gp_posterior":
            return P.gp_posterior(j(k), j(y), j(kxX), noise=0.01).mean
        return P.ntk_gp(j(k), j(theta), j(y), TIMES, nngp_test_train=j(kxX), ntk_test_train=j(theta_xX)).mean

    joint = np.asarray(run(p["y"], p["f0_train"], p["f0_test"]))
    assert joint.shape[-1] == 3
    for c in range(3):
        single = np.asarray(run(p["y"][:, c], p["f0_train"][:, c], p["f0_test"][:, c]))
        # The same m × m factorisation and the same arithmetic per column; matrix products may sum
        # in another order, so allow a few rounding steps of the output scale.
        _close(joint[..., c], single, helpers.dtype_tolerance(float_dtype, 4 * m), "summation order only")


def test_gradient_flow_singular_kernel_at_finite_time_matches_ode(float_dtype):
    """A rank-3 NTK on 8 points: Θ⁻¹(I − e^{−ηtΘ}) still exists (→ ηt on the null space), no NaN."""
    p = _problem(6, float_dtype, rank=3)
    theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
    out = P.gradient_flow(
        _j(theta, float_dtype), _j(p["y"], float_dtype), TIMES, ntk_test_train=_j(theta_xX, float_dtype),
        fx_train_0=_j(p["f0_train"], float_dtype), fx_test_0=_j(p["f0_test"], float_dtype),
    )
    assert np.all(np.isfinite(out.train)) and np.all(np.isfinite(out.test))
    ode = _flow_ode(p["ntk"], p["m"], p["y"], np.concatenate([p["f0_train"], p["f0_test"]]), TIMES, 1.0)
    lam = np.linalg.eigvalsh(theta)
    kappa_range = lam[-1] / lam[-3]  # condition number on the range of Θ (its 3 nonzero eigenvalues)
    # The null space is only known to rounding: eigh mixes it with the range by eps·λ_max/gap, and
    # on the null space the coefficient is ηt ≤ 3, on the range ≤ 1/λ: hence (1 + ηt·λ_max)·κ_range.
    tol = 100 * ODE_RTOL + _solve_tol(float_dtype, p["m"], kappa_range * (1 + TIMES[-1] * lam[-1]))
    reason = "ODE error < 100·rtol, plus 10·m·eps·κ_range·(1 + ηt·λ_max) for the rank-deficient eigh"
    _close(out.train, ode[:, : p["m"]], tol, reason)
    _close(out.test, ode[:, p["m"] :], tol, reason)


@given(
    seed=st.integers(0, 2**31 - 1),
    t1=st.floats(0.0, 2.0),
    t2=st.floats(0.0, 2.0),
    eta=st.floats(0.1, 3.0),
)
def test_gradient_flow_is_a_semigroup(seed, t1, t2, eta):
    """Flowing t1 then t2 (restarting from f_{t1}) equals flowing t1 + t2: a property of any ODE flow."""
    with jax.enable_x64(True):
        p = _problem(seed, np.float64, k=3)
        theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
        common = dict(ntk_test_train=theta_xX, learning_rate=eta)
        first = P.gradient_flow(theta, p["y"], t1, fx_train_0=p["f0_train"], fx_test_0=p["f0_test"], **common)
        second = P.gradient_flow(theta, p["y"], t2, fx_train_0=first.train, fx_test_0=first.test, **common)
        direct = P.gradient_flow(theta, p["y"], t1 + t2, fx_train_0=p["f0_train"], fx_test_0=p["f0_test"], **common)
        tol = _solve_tol(np.float64, p["m"], _kappa(theta))
        _close(second.train, direct.train, tol, SOLVE_REASON)
        _close(second.test, direct.test, tol, SOLVE_REASON)


def test_learning_rate_only_scales_time(float_dtype):
    p = _problem(7, float_dtype)
    theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
    a = P.gradient_flow(_j(theta, float_dtype), _j(p["y"], float_dtype), 2.0, ntk_test_train=_j(theta_xX, float_dtype), learning_rate=0.25)
    b = P.gradient_flow(_j(theta, float_dtype), _j(p["y"], float_dtype), 0.5, ntk_test_train=_j(theta_xX, float_dtype))
    _close(a.test, b.test, helpers.dtype_tolerance(float_dtype, 4), "η·t is formed once; both products are exact or one rounding")


# --------------------------------------------------------------------------------------------------
# GP posteriors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_gp_posterior_matches_textbook_formula(float_dtype, noise):
    p = _problem(8, float_dtype, k=3)
    k, kxX, kxx = _blocks(p["nngp"], p["m"])
    j = lambda a: _j(a, float_dtype)  # noqa: E731
    out = P.gp_posterior(j(k), j(p["y"]), j(kxX), j(kxx), noise=noise)
    assert out.mean.dtype == float_dtype and out.cov.dtype == float_dtype
    regularised = k + noise * np.eye(p["m"])
    inverse = np.linalg.inv(regularised)  # the textbook formula, eq. (149)–(150)
    tol = _solve_tol(float_dtype, p["m"], _kappa(regularised))
    _close(out.mean, kxX @ inverse @ p["y"], tol, SOLVE_REASON)
    cov = kxx - kxX @ inverse @ kxX.T
    # The covariance is a difference of two O(‖K‖) terms: measure its error against ‖K(x, x)‖.
    helpers.assert_close_scaled(np.asarray(out.cov), cov, np.max(np.abs(kxx)), tol, SOLVE_REASON + " (of max K(x,x))")
    np.testing.assert_array_equal(np.asarray(out.cov), np.asarray(out.cov).T)  # symmetrised exactly
    marginal = P.gp_posterior(j(k), j(p["y"]), j(kxX), j(np.diag(kxx)), noise=noise)
    helpers.assert_close_scaled(np.asarray(marginal.cov), np.diag(cov), np.max(np.abs(kxx)), tol, SOLVE_REASON)
    assert P.gp_posterior(j(k), j(p["y"]), j(kxX), noise=noise).cov is None


def _ntk_gp_reference(nngp, ntk, m, y, t, eta):
    """f_t(x) = f_0(x) + A_t(Y − f_0(X)) is the linear map [−A_t, I] of the joint f_0 ~ N(0, K), plus A_t Y."""
    k, kxX, kxx = _blocks(nngp, m)
    theta, theta_xX, _ = _blocks(ntk, m)
    decay = np.eye(m) if np.isinf(t) else np.eye(m) - scipy.linalg.expm(-eta * t * theta)
    a = theta_xX @ np.linalg.solve(theta, decay)
    linear = np.concatenate([-a, np.eye(kxx.shape[0])], axis=1)
    return a @ y, linear @ nngp @ linear.T


@pytest.mark.parametrize("t", [0.0, 0.3, 2.0, np.inf])
def test_ntk_gp_matches_linear_map_of_prior(float_dtype, t):
    p = _problem(9, float_dtype, k=3)
    m = p["m"]
    k, kxX, kxx = _blocks(p["nngp"], m)
    theta, theta_xX, _ = _blocks(p["ntk"], m)
    j = lambda a: _j(a, float_dtype)  # noqa: E731
    eta = 0.8
    out = P.ntk_gp(
        j(k), j(theta), j(p["y"]), t, nngp_test_train=j(kxX), ntk_test_train=j(theta_xX), nngp_test_test=j(kxx),
        learning_rate=eta,
    )
    mean, cov = _ntk_gp_reference(p["nngp"], p["ntk"], m, p["y"], t, eta)
    kappa = _kappa(theta)
    # A_t enters the covariance twice (A K Aᵀ): the relative error of A (κ·eps) counts twice, and
    # ‖A‖² amplifies it relative to ‖K‖.
    gain = 1 + np.linalg.norm(theta_xX @ np.linalg.inv(theta), 2) ** 2
    tol = _solve_tol(float_dtype, m, kappa)
    _close(out.mean, mean, tol, SOLVE_REASON)
    helpers.assert_close_scaled(np.asarray(out.cov), cov, np.max(np.abs(kxx)), 2 * gain * tol, SOLVE_REASON + ", ×2‖A‖²")
    if np.isinf(t):
        # survey eq. (155)–(156), written out with explicit inverses
        inv = np.linalg.inv(theta)
        mean155 = theta_xX @ inv @ p["y"]
        cov156 = kxx + theta_xX @ inv @ k @ inv @ theta_xX.T - (theta_xX @ inv @ kxX.T + (theta_xX @ inv @ kxX.T).T)
        _close(out.mean, mean155, tol, SOLVE_REASON)
        helpers.assert_close_scaled(np.asarray(out.cov), cov156, np.max(np.abs(kxx)), 2 * gain * tol, SOLVE_REASON)


def test_ntk_gp_with_nngp_as_ntk_is_eq_152_153_and_the_posterior(float_dtype):
    """Training only the last layer (Θ = K): eq. (152)–(153) at finite t and the NNGP posterior at t = ∞."""
    p = _problem(10, float_dtype)
    m = p["m"]
    k, kxX, kxx = _blocks(p["nngp"], m)
    j = lambda a: _j(a, float_dtype)  # noqa: E731
    times = np.array([0.7, np.inf])
    out = P.ntk_gp(j(k), j(k), j(p["y"]), times, nngp_test_train=j(kxX), ntk_test_train=j(kxX), nngp_test_test=j(kxx))
    assert out.mean.shape == (2, p["n"]) and out.cov.shape == (2, p["n"], p["n"])
    tol = _solve_tol(float_dtype, m, _kappa(k))
    inv = np.linalg.inv(k)
    decay = np.eye(m) - scipy.linalg.expm(-0.7 * k)
    mean152 = kxX @ inv @ decay @ p["y"]
    cov153 = kxx + kxX @ inv @ decay @ k @ decay @ inv @ kxX.T - (kxX @ inv @ decay @ kxX.T + (kxX @ inv @ decay @ kxX.T).T)
    gain = 1 + np.linalg.norm(kxX @ inv, 2) ** 2
    _close(out.mean[0], mean152, tol, SOLVE_REASON)
    helpers.assert_close_scaled(np.asarray(out.cov[0]), cov153, np.max(np.abs(kxx)), 2 * gain * tol, SOLVE_REASON)
    posterior = P.gp_posterior(j(k), j(p["y"]), j(kxX), j(kxx))
    _close(out.mean[1], posterior.mean, tol, SOLVE_REASON)
    helpers.assert_close_scaled(np.asarray(out.cov[1]), np.asarray(posterior.cov), np.max(np.abs(kxx)), 2 * gain * tol, SOLVE_REASON)


def test_ntk_gp_agrees_with_gradient_flow_monte_carlo():
    """Sample f_0 ~ GP(0, K) on train+test, flow each sample with gradient_flow, compare moments with ntk_gp.

    z-tests at family-wise false-alarm rate 1e-6 (Bonferroni over every mean and covariance entry);
    the seed is fixed, so the outcome is deterministic.
    """
    with jax.enable_x64(True):
        p = _problem(11, np.float64)
        m, n = p["m"], p["n"]
        k, kxX, kxx = _blocks(p["nngp"], m)
        theta, theta_xX, _ = _blocks(p["ntk"], m)
        t, eta = 0.6, 1.1
        samples = 20_000
        f0 = np.random.default_rng(12).multivariate_normal(np.zeros(m + n), p["nngp"], size=samples).T  # (m+n, S)
        y = np.repeat(p["y"][:, None], samples, axis=1)
        flow = P.gradient_flow(
            theta, y, t, ntk_test_train=theta_xX, fx_train_0=f0[:m], fx_test_0=f0[m:], learning_rate=eta
        ).test  # (n, S): one output column per sample, the Θ ⊗ I block structure
        gp = P.ntk_gp(k, theta, p["y"], t, nngp_test_train=kxX, ntk_test_train=theta_xX, nngp_test_test=kxx, learning_rate=eta)
        mean, cov = np.asarray(gp.mean), np.asarray(gp.cov)
        flow = np.asarray(flow)
        z = helpers.familywise_z(1e-6, n + n * n)
        se_mean = np.sqrt(np.diag(cov) / samples)
        assert np.all(np.abs(flow.mean(axis=1) - mean) <= z * se_mean)
        centred = flow - mean[:, None]
        emp = centred @ centred.T / samples
        se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / samples)  # Gaussian 4th moments
        assert np.all(np.abs(emp - cov) <= z * se_cov)


# --------------------------------------------------------------------------------------------------
# Singular kernels: a named error, never NaN; a ridge fixes it
# --------------------------------------------------------------------------------------------------


def test_singular_kernel_raises_named_error_and_ridge_fixes_it(float_dtype):
    p = _problem(13, float_dtype, rank=3)
    theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
    j = lambda a: _j(a, float_dtype)  # noqa: E731
    tt, tx, y = j(theta), j(theta_xX), j(p["y"])
    calls = {
        "kernel_regression": lambda **kw: P.kernel_regression(tt, y, tx, **kw),
        "gradient_flow t=inf": lambda **kw: P.gradient_flow(tt, y, np.inf, ntk_test_train=tx, **kw),
        "gradient_flow t=[1, inf]": lambda **kw: P.gradient_flow(tt, y, np.array([1.0, np.inf]), ntk_test_train=tx, **kw),
        "ntk_gp": lambda **kw: P.ntk_gp(tt, tt, y, nngp_test_train=tx, ntk_test_train=tx, **kw),
    }
    for name, call in calls.items():
        with pytest.raises(S.SingularKernelError, match=r"ridge=") as info:
            call()
        assert isinstance(info.value, NtksymError), name
        assert "ntk_train_train" in str(info.value) or "k_train_train" in str(info.value), name
    with pytest.raises(S.SingularKernelError, match=r"noise="):
        P.gp_posterior(tt, y, tx)

    ridge = 1e-2 * float(np.mean(np.diag(theta)))
    regularised = theta + ridge * np.eye(p["m"])
    tol = _solve_tol(float_dtype, p["m"], _kappa(regularised))
    reference = theta_xX @ np.linalg.solve(regularised, p["y"])
    _close(calls["kernel_regression"](ridge=ridge), reference, tol, SOLVE_REASON)
    _close(calls["gradient_flow t=inf"](ridge=ridge).test, reference, tol, SOLVE_REASON)
    _close(calls["gradient_flow t=[1, inf]"](ridge=ridge).test[1], reference, tol, SOLVE_REASON)
    _close(calls["ntk_gp"](ridge=ridge).mean, reference, tol, SOLVE_REASON)
    _close(P.gp_posterior(tt, y, tx, noise=ridge).mean, reference, tol, SOLVE_REASON)


def test_singular_kernel_under_jit_raises_instead_of_nan():
    """Inside jit the check cannot raise before running: it aborts the computation with the same message."""
    p = _problem(14, np.float32, rank=3)
    theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
    run = jax.jit(lambda k, y, t: P.gradient_flow(k, y, t, ntk_test_train=theta_xX).test)
    y = jnp.asarray(p["y"], jnp.float32)
    assert np.all(np.isfinite(run(jnp.asarray(theta, jnp.float32), y, jnp.float32(2.0))))  # finite t is fine
    with pytest.raises(Exception, match="SingularKernelError") as info:
        jax.block_until_ready(run(jnp.asarray(theta, jnp.float32), y, jnp.float32(np.inf)))
    assert "ridge=" in str(info.value)
    good = _problem(14, np.float32)
    tt, tx, _ = _blocks(good["ntk"], good["m"])
    jitted = jax.jit(lambda k, y: P.gradient_flow(k, y, jnp.inf, ntk_test_train=tx).test)(
        jnp.asarray(tt, jnp.float32), jnp.asarray(good["y"], jnp.float32)
    )
    eager = P.kernel_regression(jnp.asarray(tt, jnp.float32), jnp.asarray(good["y"], jnp.float32), jnp.asarray(tx, jnp.float32))
    _close(jitted, eager, _solve_tol(np.float32, good["m"], _kappa(tt)), SOLVE_REASON + " (eigh vs Cholesky)")


# --------------------------------------------------------------------------------------------------
# Solvers and their states
# --------------------------------------------------------------------------------------------------


def test_solver_states_are_pytrees_and_reusable(float_dtype):
    p = _problem(15, float_dtype, k=2)
    theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
    j = lambda a: _j(a, float_dtype)  # noqa: E731
    tol = _solve_tol(float_dtype, p["m"], _kappa(theta))
    reference = np.linalg.solve(theta, p["y"])

    chol = S.Cholesky().init(j(theta))
    eig = S.Eigh().init(j(theta))
    for solver, state in ((S.Cholesky(), chol), (S.Eigh(), eig)):
        assert all(leaf.dtype == float_dtype for leaf in jax.tree_util.tree_leaves(state))
        _close(solver.solve(state, j(p["y"])), reference, tol, SOLVE_REASON)
        # the state goes through jit as a PyTree
        _close(jax.jit(solver.solve)(state, j(p["y"])), reference, tol, SOLVE_REASON)
    # matrix functions: e^{−Θ} y against scipy's Padé expm
    expm = S.Eigh().apply(eig, lambda lam: jnp.exp(-lam), j(p["y"]))
    _close(expm, scipy.linalg.expm(-theta) @ p["y"], tol, SOLVE_REASON)

    # a state stands in for the kernel, and its ridge cannot be changed afterwards
    kr = P.kernel_regression(chol, j(p["y"]), j(theta_xX))
    _close(kr, theta_xX @ reference, tol, SOLVE_REASON)
    flow = P.gradient_flow(eig, j(p["y"]), np.array([0.5, np.inf]), ntk_test_train=j(theta_xX))
    _close(flow.test[1], theta_xX @ reference, tol, SOLVE_REASON)
    with pytest.raises(S.InvalidArgumentError, match="fixed when it was built"):
        P.kernel_regression(chol, j(p["y"]), j(theta_xX), ridge=0.1)
    with pytest.raises(S.InvalidArgumentError, match="t = inf only"):
        P.gradient_flow(chol, j(p["y"]), 1.0)


def test_dtype_follows_inputs():
    p = _problem(16, np.float32)
    theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
    # x64 off: float64 numpy inputs compute in float32 (JAX's canonical dtype), without a warning.
    out = P.kernel_regression(theta, p["y"], theta_xX)
    assert out.dtype == jnp.float32
    with jax.enable_x64(True):
        assert P.kernel_regression(theta, p["y"], theta_xX).dtype == jnp.float64
        mixed = P.kernel_regression(theta.astype(np.float32), p["y"], theta_xX.astype(np.float32))
        assert mixed.dtype == jnp.float64  # float64 labels promote, as numpy would
        t32 = P.gradient_flow(theta.astype(np.float32), p["y"].astype(np.float32), np.float64(1.0))
        assert t32.train.dtype == jnp.float32  # times do not vote on the precision


# --------------------------------------------------------------------------------------------------
# Invalid inputs: named errors that say what to do
# --------------------------------------------------------------------------------------------------


def test_invalid_inputs_raise_named_errors():
    p = _problem(17, np.float32)
    theta, theta_xX, _ = _blocks(p["ntk"], p["m"])
    y = p["y"]
    asym = theta.copy()
    asym[0, 1] += 0.5
    with pytest.raises(S.InvalidKernelError, match="not symmetric"):
        P.kernel_regression(asym, y, theta_xX)
    with pytest.raises(S.InvalidKernelError, match="square"):
        S.Cholesky().init(theta_xX)
    with pytest.raises(S.InvalidKernelError, match="non-finite"):
        P.kernel_regression(np.where(np.eye(p["m"]) > 0, np.nan, theta), y, theta_xX)
    indefinite = theta - 2 * np.linalg.eigvalsh(theta)[-1] * np.outer(np.ones(p["m"]), np.ones(p["m"])) / p["m"]
    with pytest.raises(S.InvalidKernelError, match="not positive semi-definite"):
        P.kernel_regression(indefinite, y, theta_xX)
    with pytest.raises(S.InvalidKernelError, match="not positive semi-definite"):
        S.Eigh().init(indefinite)
    with pytest.raises(S.ShapeMismatchError, match="y_train"):
        P.kernel_regression(theta, y[:-1], theta_xX)
    with pytest.raises(S.ShapeMismatchError, match="k_test_train"):
        P.kernel_regression(theta, y, theta_xX[:, :-1])
    with pytest.raises(S.ShapeMismatchError, match="fx_train_0"):
        P.gradient_flow(theta, y, 1.0, fx_train_0=np.zeros(3))
    with pytest.raises(S.ShapeMismatchError, match="ntk_test_train"):
        P.gradient_flow(theta, y, 1.0, fx_test_0=np.zeros(3))
    with pytest.raises(S.InvalidArgumentError, match="ridge"):
        P.kernel_regression(theta, y, theta_xX, ridge=-1.0)
    with pytest.raises(S.InvalidArgumentError, match="t must be >= 0"):
        P.gradient_flow(theta, y, -1.0)
    with pytest.raises(S.InvalidArgumentError, match="learning_rate"):
        P.gradient_flow(theta, y, 1.0, learning_rate=0.0)
    with pytest.raises(S.InvalidArgumentError, match="loss='mse'"):
        P.gradient_flow(theta, y, 1.0, loss="cross_entropy")
    with pytest.raises(S.ShapeMismatchError, match="test-test"):
        P.gp_posterior(theta, y, theta_xX, np.zeros((2, 2)))
    for error in (S.SingularKernelError, S.InvalidKernelError, S.ShapeMismatchError, S.InvalidArgumentError):
        assert issubclass(error, NtksymError)
