"""Predictions from kernel matrices: kernel regression, gradient flow, NNGP and NTK-GP posteriors.

Built on `ntksym.solve` (Cholesky for t = ∞ and GP posteriors, symmetric eigendecomposition for
finite times), in the dtype of the inputs.

**Conventions.**

- *Shapes.* m training points, n test points. Train-train blocks are (m, m), test-train blocks
  (n, m), test-test blocks (n, n) (or (n,), their diagonal, for marginal variances only). Labels
  `y_train` have shape (m,) or (m, k, ...). The kernels are those of one scalar output: a network
  with k outputs has kernel Θ ⊗ I_k (survey §5.1), so each output column is predicted with the
  same m × m matrix and the mk × mk matrix is never formed. Covariances are shared by all outputs
  and are returned once, (n, n).
- *Loss and learning rate.* Gradient flow minimises the survey's square loss (survey §1)
  L = ½ Σ_i ‖f(x_i) − y_i‖² (summed over training points and outputs, not averaged), with
  θ̇ = −η ∇_θ L. In function space (survey eq. 4, 6) this is df(x)/dt = −η Θ(x, X)(f(X) − Y),
  solved by (survey eq. 7, 9; lecture eq. 14.8)

      f_t(X) = f_0(X) + (I − e^{−ηtΘ})(Y − f_0(X)),
      f_t(x) = f_0(x) + Θ(x, X) Θ⁻¹ (I − e^{−ηtΘ})(Y − f_0(X)).

  Other normalisations are a rescaling of η: the lecture's L_S = (1/m) Σ (h(x_i) − y_i)² gives
  dh/dt = −(2η/m) k (h − y) (its eq. 14.7), so pass `learning_rate=2*eta/m` (its eq. 14.8 writes
  e^{−ηtk}, i.e. it has absorbed 2/m into η); neural-tangents' `gradient_descent_mse` uses
  ½·mean over all y entries, so pass `learning_rate=eta/y_train.size` to match it.
- *Ridge.* `ridge` (gradient flow, kernel regression, NTK-GP) is added to the diagonal of the
  train-train NTK in absolute units, as neural-tangents' `diag_reg` with absolute scale: the flow
  then uses Θ + ridge·I on the training set, so f_t(X) → Y still. `noise` (NNGP posterior) is the
  label-noise variance added to K(X, X); the returned covariance is that of the latent f.
- *t = ∞* is allowed (`jnp.inf`); t = ∞ everywhere uses a Cholesky solve, and equals
  `kernel_regression` with the same ridge.
- *Singular kernels.* At finite t the flow exists for a singular Θ (Θ⁻¹(I − e^{−ηtΘ}) has the
  limit ηt on Θ's null space). Where the inverse itself is needed (t = ∞, posteriors) a kernel
  that is singular to working precision raises `SingularKernelError`, whose message suggests a
  ridge (or noise) — never NaN.
- *Reuse.* Wherever a train-train kernel is expected, a `CholeskyState` or `EighState` from
  `ntksym.solve` may be passed instead, so one factorisation serves many label sets or test sets;
  its ridge was fixed when it was built.
"""

from __future__ import annotations

import dataclasses
import functools as ft
import math
from typing import final

import jax
import jax.numpy as jnp
import numpy as np

from .solve import (
    Cholesky,
    CholeskyState,
    Eigh,
    EighState,
    InvalidArgumentError,
    InvalidKernelError,
    ShapeMismatchError,
    _asarray,
    _check_kernel,
    _is_traced,
    working_dtype,
)

__all__ = ["Gaussian", "Prediction", "gp_posterior", "gradient_flow", "kernel_regression", "ntk_gp"]

_HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@final
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Prediction:
    """Outputs of gradient flow at time(s) t on the training set and, if asked for, the test set.

    **Fields:**
    - `train`: f_t(X), shape t.shape + y_train.shape.
    - `test`: f_t(x), shape t.shape + (n,) + y_train.shape[1:], or None without a test-train kernel.
    """

    train: jax.Array
    test: jax.Array | None


@final
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Gaussian:
    """A Gaussian process on the test points: its mean and covariance.

    **Fields:**
    - `mean`: shape (n,) + y_train.shape[1:] (with leading time axes for `ntk_gp` at an array of t).
    - `cov`: (n, n), shared by every output column (the kernel is K ⊗ I_k); (n,) marginal variances
      if the test-test kernel was given as a diagonal; None if it was not given.
    """

    mean: jax.Array
    cov: jax.Array | None


# --------------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------------

_STATES = (CholeskyState, EighState)


def _state_arrays(k):
    """The arrays that decide the dtype: a kernel itself, or a solver state's main array."""
    if isinstance(k, CholeskyState):
        return k.factor
    if isinstance(k, EighState):
        return k.eigenvalues
    return k


def _size(k, name: str) -> int:
    """m, the number of training points, from a train-train kernel or a solver state."""
    if isinstance(k, CholeskyState):
        return k.factor.shape[0]
    if isinstance(k, EighState):
        return k.eigenvalues.shape[0]
    shape = np.shape(k)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise InvalidKernelError(
            f"{name} must be a square m × m matrix (the kernel between the training inputs), got shape {tuple(shape)}."
        )
    return shape[0]


def _factorise(k, ridge, dtype, solver, *, name: str, regulariser: str = "ridge"):
    """The solver state for k: k itself if it is a state (ridge must then be 0), else solver.init(k, ridge)."""
    if isinstance(k, _STATES):
        if _is_traced(ridge) or np.any(np.asarray(ridge) != 0):
            raise InvalidArgumentError(
                f"{name} is a precomputed {type(k).__name__}, whose {regulariser} was fixed when it was built; "
                f"pass {regulariser}=0 here, or build the state with the {regulariser} you want."
            )
        return k
    return solver.init(_asarray(k, dtype), ridge, name=name, regulariser=regulariser)


def _block(x, dtype, shape, name: str, meaning: str):
    """A kernel block or label array as a JAX array of `dtype` whose shape must be `shape`."""
    x = _asarray(x, dtype)
    if x.shape != shape:
        raise ShapeMismatchError(f"{name} must have shape {shape} ({meaning}), got {tuple(x.shape)}.")
    if not _is_traced(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise InvalidKernelError(f"{name} has non-finite entries (NaN or inf); check how it was computed.")
    return x


def _test_train(x, dtype, m: int, name: str):
    """A test-train block (n, m) as a JAX array of `dtype`, and n."""
    x = _asarray(x, dtype)
    n = x.shape[0] if x.ndim == 2 else -1
    return _block(x, dtype, (n, m), name, "n test points × m training points"), n


def _labels(y_train, dtype, m: int):
    y = _asarray(y_train, dtype)
    if y.ndim == 0 or y.shape[0] != m:
        raise ShapeMismatchError(
            f"y_train must have shape (m,) or (m, k, ...) with m = {m} rows, one per training point "
            f"(the train-train kernel is {m} × {m}), got {tuple(y.shape)}."
        )
    if not _is_traced(y) and not bool(np.all(np.isfinite(np.asarray(y)))):
        raise InvalidArgumentError("y_train has non-finite entries (NaN or inf).")
    return y


def _initial(f0, dtype, shape, name: str):
    """Initial outputs f_0: None means 0; a scalar or any array broadcastable to `shape` is allowed."""
    if f0 is None:
        return _asarray(np.zeros(shape, dtype), dtype)
    xp = jnp if isinstance(f0, jax.Array) else np  # broadcast host inputs on the host
    try:
        return _asarray(xp.broadcast_to(xp.asarray(f0, dtype=dtype), shape), dtype)
    except ValueError:
        raise ShapeMismatchError(
            f"{name} must have shape {shape} (one output per point, like the labels), got {tuple(np.shape(f0))}."
        ) from None


def _times(t, learning_rate, dtype):
    """t and η as JAX arrays of `dtype`, after checking t >= 0 (no NaN) and η > 0 where concrete."""
    if not _is_traced(learning_rate):
        lr = np.asarray(learning_rate)
        if lr.ndim != 0 or not np.isfinite(lr) or lr <= 0:
            raise InvalidArgumentError(
                f"learning_rate must be a finite scalar > 0, got {learning_rate!r}. "
                "(It multiplies time: only the product η·t matters for gradient flow.)"
            )
    t = _asarray(t, dtype)
    if not _is_traced(t):
        values = np.asarray(t)
        if np.any(np.isnan(values)) or np.any(values < 0):
            raise InvalidArgumentError(
                f"t must be >= 0 (jnp.inf for the end of training), got {values!r}: gradient flow runs forward "
                "in time, and backwards it amplifies e^{+ηλt} without bound."
            )
    # An array, not a Python float: a new learning rate must not mean a new compilation.
    return t, _asarray(learning_rate, dtype)


def _all_infinite(t) -> bool:
    """True if t is concrete and every entry is +inf: then a Cholesky solve replaces the eigendecomposition."""
    return not _is_traced(t) and bool(np.all(np.isinf(np.asarray(t))))


def _flow_coefficients(s):
    """Functions of the eigenvalues λ ≥ 0 for η·t = s (shape (T,)): (1 − e^{−λs}) and (1 − e^{−λs})/λ.

    At λ = 0 they are 0 and s (the limits), by a double `where` so neither 0/0 nor 0·∞ is formed;
    expm1 keeps 1 − e^{−λs} accurate when λs is small.
    """

    times = s[:, None]  # (T, 1) against eigenvalues (1, m): explicit ranks (no implicit rank promotion)

    def train(lam):
        positive = (lam > 0)[None, :]
        safe = jnp.where(positive, lam[None, :], 1)
        return jnp.where(positive, -jnp.expm1(-safe * times), 0)

    def test(lam):
        positive = (lam > 0)[None, :]
        safe = jnp.where(positive, lam[None, :], 1)
        at_zero = jnp.broadcast_to(times, (times.shape[0], lam.shape[0]))
        return jnp.where(positive, -jnp.expm1(-safe * times) / safe, at_zero)

    return train, test


def _left(k_test_train, x):
    """k_test_train (n, m) applied to x of shape (B, m, ...) -> (B, n, ...), in full precision."""
    out = jnp.tensordot(k_test_train, x, axes=[[1], [1]], precision=_HIGHEST)  # (n, B, ...)
    return jnp.moveaxis(out, 0, 1)


def _check_invertible(state, t=None, *, name: str) -> None:
    """Refuse a singular train-train matrix where its inverse is needed.

    A `CholeskyState` was checked when it was built. An `EighState` needs the inverse only at
    t = ∞ (or always, for t=None): checked concretely, or at run time under jit.
    """
    if isinstance(state, EighState):
        if t is None:
            when = True
        elif _is_traced(t):
            when = jnp.any(jnp.isinf(t))
        else:
            when = bool(np.any(np.isinf(np.asarray(t))))
        Eigh().check_invertible(state, name=name, when=when)


def _inverse(state, y):
    """(K + ridge·I)⁻¹ y from either state, traceable; the caller has checked invertibility."""
    if isinstance(state, CholeskyState):
        return Cholesky().solve(state, y)
    return Eigh().apply(state, lambda lam: 1.0 / lam, y)


# Jit-compiled cores: one compilation per shape and dtype instead of one per elementary operation.


@jax.jit
def _regression_core(state, y, k_test_train):
    return jnp.tensordot(k_test_train, _inverse(state, y), axes=1, precision=_HIGHEST)


@jax.jit
def _flow_core(state, y, f0, ntk_test_train, f0_test, t, learning_rate):
    residual = y - f0
    s = (learning_rate * t).reshape(-1)
    train_fn, test_fn = _flow_coefficients(s)
    solver = Eigh()
    train = f0[None] + solver.apply(state, train_fn, residual)
    test = None
    if ntk_test_train is not None:
        test = f0_test[None] + _left(ntk_test_train, solver.apply(state, test_fn, residual))
    return train, test


@ft.partial(jax.jit, static_argnames=("t_shape",))
def _flow_infinite_core(state, y, f0, ntk_test_train, f0_test, t_shape):
    # e^{−ηtΘ} = 0: the training set is fitted exactly; the test set gets Θ(x, X)Θ⁻¹(Y − f_0(X)).
    test = None
    if ntk_test_train is not None:
        test = f0_test + jnp.tensordot(ntk_test_train, _inverse(state, y - f0), axes=1, precision=_HIGHEST)
        test = jnp.broadcast_to(test, t_shape + test.shape)
    return jnp.broadcast_to(y, t_shape + y.shape), test


@jax.jit
def _gp_core(state, y, k_xX, k_xx):
    mean = jnp.tensordot(k_xX, _inverse(state, y), axes=1, precision=_HIGHEST)
    if k_xx is None:
        return mean, None
    reduction = _inverse(state, k_xX.T)  # K(X, X)⁻¹ K(X, x), shape (m, n)
    if k_xx.ndim == 1:
        return mean, k_xx - jnp.sum(k_xX.T * reduction, axis=0)
    cov = k_xx - jnp.matmul(k_xX, reduction, precision=_HIGHEST)
    return mean, 0.5 * (cov + cov.T)  # exact symmetry; the two halves differ by rounding only


@ft.partial(jax.jit, static_argnames=("infinite",))
def _ntk_gp_core(state, y, k_XX, k_xX, theta_xX, k_xx, t, learning_rate, infinite):
    m, n = theta_xX.shape[1], theta_xX.shape[0]
    if infinite:
        batch = t.size
        a_T = jnp.broadcast_to(_inverse(state, theta_xX.T)[None], (batch, m, n))  # A_∞ᵀ = Θ⁻¹ Θ(X, x)
    else:
        _, test_fn = _flow_coefficients((learning_rate * t).reshape(-1))
        a_T = Eigh().apply(state, test_fn, theta_xX.T)  # (B, m, n): A_tᵀ = Θ⁻¹(I − e^{−ηtΘ}) Θ(X, x)
    mean = jnp.tensordot(a_T, y, axes=[[1], [0]], precision=_HIGHEST)  # (B, n, ...)
    if k_xx is None:
        return mean, None
    if k_xx.ndim == 1:  # diagonals only: O(B·m²·n) instead of O(B·m·n²)
        cross = jnp.einsum("bmn,mn->bn", a_T, k_xX.T, precision=_HIGHEST)
        quad = jnp.einsum("bmn,mq,bqn->bn", a_T, k_XX, a_T, precision=_HIGHEST)
        return mean, k_xx[None] + quad - 2 * cross
    cross = jnp.einsum("bmn,mp->bnp", a_T, k_xX.T, precision=_HIGHEST)  # A K(X, x')
    quad = jnp.einsum("bmn,mq,bqp->bnp", a_T, k_XX, a_T, precision=_HIGHEST)  # A K(X, X) Aᵀ
    full = quad - cross - jnp.swapaxes(cross, 1, 2)
    return mean, k_xx[None] + 0.5 * (full + jnp.swapaxes(full, 1, 2))  # exact symmetry


# --------------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------------


def kernel_regression(k_train_train, y_train, k_test_train, ridge=0.0) -> jax.Array:
    """Kernel (ridge) regression mean k(x, X)(k(X, X) + ridge·I)⁻¹ Y (survey eq. 89 with f_0 = 0).

    **Arguments:**
    - `k_train_train`: (m, m) kernel of the training inputs, or a precomputed solver state.
    - `y_train`: labels, (m,) or (m, k, ...).
    - `k_test_train`: (n, m) kernel between test and training inputs.
    - `ridge`: scalar >= 0 added to the diagonal of k_train_train (absolute units).

    **Returns:** predictions of shape (n,) + y_train.shape[1:].

    **Raises:** `SingularKernelError` if k_train_train + ridge·I is singular to working precision.
    """
    dtype = working_dtype(_state_arrays(k_train_train), y_train, k_test_train)
    m = _size(k_train_train, "k_train_train")
    state = _factorise(k_train_train, ridge, dtype, Cholesky(), name="k_train_train")
    _check_invertible(state, name="k_train_train")
    dtype = np.dtype(_state_arrays(state).dtype)
    y = _labels(y_train, dtype, m)
    k_test_train, _ = _test_train(k_test_train, dtype, m, "k_test_train")
    return _regression_core(state, y, k_test_train)


def gradient_flow(
    ntk_train_train,
    y_train,
    t,
    *,
    ntk_test_train=None,
    fx_train_0=None,
    fx_test_0=None,
    learning_rate=1.0,
    loss: str = "mse",
    ridge=0.0,
) -> Prediction:
    """Outputs of a network trained by gradient flow on the square loss, in the NTK regime, at time t.

    Survey eq. (7), (9) and lecture eq. (14.8), with the survey's loss ½ Σ‖f(x_i) − y_i‖² and
    learning rate η (module docstring: df/dt = −η Θ (f − Y)):
    f_t(X) = f_0(X) + (I − e^{−ηtΘ})(Y − f_0(X)) and
    f_t(x) = f_0(x) + Θ(x, X) Θ⁻¹ (I − e^{−ηtΘ})(Y − f_0(X)). At t = ∞ this is kernel regression.

    **Arguments:**
    - `ntk_train_train`: (m, m) NTK of the training inputs, or a precomputed `EighState`/`CholeskyState`
      (a `CholeskyState` serves t = ∞ only).
    - `y_train`: labels, (m,) or (m, k, ...).
    - `t`: time, a scalar or an array of times >= 0; `jnp.inf` for the end of training.
    - `ntk_test_train`: (n, m) NTK between test and training inputs; without it only `train` is computed.
    - `fx_train_0`, `fx_test_0`: outputs of the network at initialisation (None: 0).
    - `learning_rate`: η > 0; only η·t matters.
    - `loss`: "mse", the square loss above — the only loss whose flow has this closed form.
    - `ridge`: scalar >= 0 added to the diagonal of the train-train NTK (module docstring).

    **Returns:** a `Prediction` with `train` of shape t.shape + y.shape and `test` of shape
    t.shape + (n,) + y.shape[1:] (or None).

    **Raises:** `SingularKernelError` at t = ∞ if Θ + ridge·I is singular to working precision.
    """
    if loss != "mse":
        raise InvalidArgumentError(
            f"loss={loss!r} has no closed-form gradient flow; ntksym.predict.gradient_flow supports loss='mse' "
            "(½ Σ‖f(x_i) − y_i‖²). For other losses, integrate df/dt = −η Θ ∇_f L numerically."
        )
    if fx_test_0 is not None and ntk_test_train is None:
        raise ShapeMismatchError("fx_test_0 was given without ntk_test_train: pass the (n, m) test-train NTK too.")
    # Times and the learning rate do not vote on the precision: the kernels, labels and outputs do.
    dtype = working_dtype(_state_arrays(ntk_train_train), y_train, ntk_test_train, fx_train_0, fx_test_0)
    m = _size(ntk_train_train, "ntk_train_train")
    t, learning_rate = _times(t, learning_rate, dtype)

    infinite = _all_infinite(t) and not isinstance(ntk_train_train, EighState)
    if isinstance(ntk_train_train, CholeskyState) and not infinite:
        raise InvalidArgumentError(
            "a CholeskyState serves t = inf only; for finite times pass the kernel or an EighState "
            "(ntksym.solve.Eigh().init(ntk, ridge))."
        )
    state = _factorise(ntk_train_train, ridge, dtype, Cholesky() if infinite else Eigh(), name="ntk_train_train")
    _check_invertible(state, t, name="ntk_train_train")
    dtype = np.dtype(_state_arrays(state).dtype)

    y = _labels(y_train, dtype, m)
    f0 = _initial(fx_train_0, dtype, y.shape, "fx_train_0")
    f0_test = None
    if ntk_test_train is not None:
        ntk_test_train, n = _test_train(ntk_test_train, dtype, m, "ntk_test_train")
        f0_test = _initial(fx_test_0, dtype, (n,) + y.shape[1:], "fx_test_0")

    if infinite:
        train, test = _flow_infinite_core(state, y, f0, ntk_test_train, f0_test, t.shape)
        return Prediction(train=train, test=test)
    train, test = _flow_core(state, y, f0, ntk_test_train, f0_test, t, learning_rate)
    train = train.reshape(t.shape + train.shape[1:])
    test = None if test is None else test.reshape(t.shape + test.shape[1:])
    return Prediction(train=train, test=test)


def gp_posterior(nngp_train_train, y_train, nngp_test_train, nngp_test_test=None, noise=0.0) -> Gaussian:
    """NNGP posterior on the test points given noisy labels (survey eq. 149–150).

    mean = K(x, X)(K(X, X) + noise·I)⁻¹ Y and
    cov = K(x, x') − K(x, X)(K(X, X) + noise·I)⁻¹ K(X, x'): the posterior of the latent function
    (add noise·I for the predictive distribution of new labels).

    **Arguments:**
    - `nngp_train_train`: (m, m) NNGP kernel of the training inputs, or a precomputed solver state.
    - `y_train`: labels, (m,) or (m, k, ...); outputs are independent GPs with the same kernel.
    - `nngp_test_train`: (n, m).
    - `nngp_test_test`: (n, n) for the full covariance, (n,) (its diagonal) for marginal variances,
      or None for the mean only.
    - `noise`: label-noise variance >= 0.

    **Returns:** a `Gaussian`.

    **Raises:** `SingularKernelError` if K(X, X) + noise·I is singular to working precision.
    """
    dtype = working_dtype(_state_arrays(nngp_train_train), y_train, nngp_test_train, nngp_test_test)
    m = _size(nngp_train_train, "nngp_train_train")
    state = _factorise(nngp_train_train, noise, dtype, Cholesky(), name="nngp_train_train", regulariser="noise")
    _check_invertible(state, name="nngp_train_train")
    dtype = np.dtype(_state_arrays(state).dtype)
    y = _labels(y_train, dtype, m)
    k_xX, n = _test_train(nngp_test_train, dtype, m, "nngp_test_train")
    k_xx = None if nngp_test_test is None else _test_test(nngp_test_test, dtype, n)
    mean, cov = _gp_core(state, y, k_xX, k_xx)
    return Gaussian(mean=mean, cov=cov)


def _test_test(k_xx, dtype, n: int):
    k_xx = _asarray(k_xx, dtype)
    if k_xx.shape not in ((n, n), (n,)):
        raise ShapeMismatchError(
            f"the test-test kernel must have shape ({n}, {n}) (full covariance) or ({n},) (its diagonal, for "
            f"marginal variances), got {tuple(k_xx.shape)}."
        )
    return _block(k_xx, dtype, k_xx.shape, "nngp_test_test", "test × test")


def ntk_gp(
    nngp_train_train,
    ntk_train_train,
    y_train,
    t=math.inf,
    *,
    nngp_test_train,
    ntk_test_train,
    nngp_test_test=None,
    learning_rate=1.0,
    ridge=0.0,
) -> Gaussian:
    """The Gaussian process of an infinitely wide network trained by gradient flow to time t.

    With f_0 ~ GP(0, K) (the NNGP) and A_t(x) = Θ(x, X)Θ⁻¹(I − e^{−ηtΘ}), the outputs
    f_t(x) = f_0(x) + A_t(x)(Y − f_0(X)) (survey eq. 154) are Gaussian with
    mean A_t(x) Y and covariance
    K(x, x') − A_t(x)K(X, x') − A_t(x')K(X, x) + A_t(x) K(X, X) A_t(x')ᵀ,
    which at t = ∞ is survey eq. (155)–(156), and with Θ = K is eq. (152)–(153).
    Loss, learning rate and ridge as in `gradient_flow`.

    **Arguments:**
    - `nngp_train_train`: (m, m) NNGP kernel K(X, X).
    - `ntk_train_train`: (m, m) NTK Θ(X, X), or a precomputed `EighState` (or `CholeskyState`, t = ∞ only).
    - `y_train`: labels, (m,) or (m, k, ...).
    - `t`: time >= 0, scalar or array; default ∞.
    - `nngp_test_train`, `ntk_test_train`: (n, m) blocks K(x, X) and Θ(x, X).
    - `nngp_test_test`: (n, n), or (n,) for marginal variances, or None for the mean only.

    **Returns:** a `Gaussian` whose mean has shape t.shape + (n,) + y.shape[1:] and covariance
    t.shape + (n, n) (or t.shape + (n,)).

    **Raises:** `SingularKernelError` at t = ∞ if Θ + ridge·I is singular to working precision.
    """
    dtype = working_dtype(
        nngp_train_train, _state_arrays(ntk_train_train), y_train, nngp_test_train, ntk_test_train, nngp_test_test
    )
    m = _size(ntk_train_train, "ntk_train_train")
    t, learning_rate = _times(t, learning_rate, dtype)
    infinite = _all_infinite(t) and not isinstance(ntk_train_train, EighState)
    if isinstance(ntk_train_train, CholeskyState) and not infinite:
        raise InvalidArgumentError("a CholeskyState serves t = inf only; pass the NTK or an EighState for finite t.")
    state = _factorise(ntk_train_train, ridge, dtype, Cholesky() if infinite else Eigh(), name="ntk_train_train")
    _check_invertible(state, t, name="ntk_train_train")
    dtype = np.dtype(_state_arrays(state).dtype)

    y = _labels(y_train, dtype, m)
    k_XX = _block(nngp_train_train, dtype, (m, m), "nngp_train_train", "m × m, like ntk_train_train")
    _check_kernel(k_XX, "nngp_train_train")  # symmetric (a swapped block would pass the shape check)
    k_xX, n = _test_train(nngp_test_train, dtype, m, "nngp_test_train")
    theta_xX = _block(ntk_test_train, dtype, (n, m), "ntk_test_train", "n × m, like nngp_test_train")
    k_xx = None if nngp_test_test is None else _test_test(nngp_test_test, dtype, n)

    mean, cov = _ntk_gp_core(state, y, k_XX, k_xX, theta_xX, k_xx, t, learning_rate, infinite)
    mean = mean.reshape(t.shape + mean.shape[1:])
    cov = None if cov is None else cov.reshape(t.shape + cov.shape[1:])
    return Gaussian(mean=mean, cov=cov)
