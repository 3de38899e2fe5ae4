"""Linear algebra on symmetric positive semi-definite kernel matrices; solvers return their state.

Two solvers, in the style of lineax (STYLE.md principle 4): `state = solver.init(kernel, ridge)`
factorises K + ridge·I once and returns a frozen PyTree; `solver.solve(state, y)` applies
(K + ridge·I)⁻¹ to y, as many times as needed, with no cache hidden anywhere.

- `Cholesky`: K + ridge·I = L Lᵀ. The cheapest factorisation; `init` refuses a matrix that is not
  positive definite to working precision.
- `Eigh`: K + ridge·I = V diag(λ) Vᵀ. Also applies matrix functions V diag(f(λ)) Vᵀ y (`Eigh.apply`),
  such as the gradient-flow factor I − e^{−ηtΘ}, which exist even for a singular kernel; only
  `Eigh.solve` needs an invertible matrix.

Multiple outputs: y has shape (m,) or (m, k, ...); each trailing column is solved against the same
m × m matrix, which is the block structure Θ ⊗ I_k of survey §5.1 without forming the mk × mk matrix.

Precision: everything runs in the dtype of the inputs (float64 only when JAX's x64 mode is on).
A matrix is *singular to working precision* when λ_min ≤ rcond·λ_max with rcond = m·eps(dtype)
by default (the rank tolerance of numpy.linalg.matrix_rank: eigenvalues below it cannot be told
from 0 given the rounding in an m × m matrix). Such a matrix raises `SingularKernelError`,
never returns NaN. The checks run on concrete values before returning; inside `jax.jit` they run
as a `jax.debug.callback`, which aborts the computation with the same message (wrapped by JAX in a
runtime error) instead of letting NaN or inf through.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import final

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from .errors import NtksymError

__all__ = [
    "AbstractKernelSolver",
    "Cholesky",
    "CholeskyState",
    "Eigh",
    "EighState",
    "InvalidArgumentError",
    "InvalidKernelError",
    "ShapeMismatchError",
    "SingularKernelError",
    "working_dtype",
]


# --------------------------------------------------------------------------------------------------
# Errors (subclasses of NtksymError; candidates for ntksym/errors.py)
# --------------------------------------------------------------------------------------------------


class SingularKernelError(NtksymError):
    """A kernel matrix (plus its ridge) is singular to working precision, so it cannot be inverted."""


class InvalidKernelError(NtksymError):
    """A kernel matrix is not square, not finite, not symmetric, or clearly not positive semi-definite."""


class ShapeMismatchError(NtksymError):
    """Kernel blocks, labels and initial outputs have shapes that do not fit together."""


class InvalidArgumentError(NtksymError):
    """A scalar argument of a solver or predictor is out of its range (negative ridge or time, unknown loss)."""


# --------------------------------------------------------------------------------------------------
# dtype and concrete-or-traced checks
# --------------------------------------------------------------------------------------------------


def working_dtype(*arrays) -> np.dtype:
    """The floating dtype to compute in: the promotion of the inputs' floating dtypes (numpy rules).

    Integer or boolean inputs do not vote; with no floating input, JAX's default float is used.
    The result is canonicalised, so float64 becomes float32 when JAX's x64 mode is off, and
    half precisions are raised to float32 (LAPACK has no half-precision factorisations).
    """
    floating = []
    for a in arrays:
        if a is None:
            continue
        if isinstance(a, (bool, int, float)):
            continue  # Python scalars are weakly typed in JAX: they follow the arrays
        dtype = np.dtype(a.dtype) if hasattr(a, "dtype") else np.asarray(a).dtype
        if np.issubdtype(dtype, np.complexfloating):
            raise InvalidArgumentError(
                f"ntksym's solvers work with real kernels and labels, got an array of dtype {dtype}; "
                "pass the real part (kernel matrices of real networks are real)."
            )
        if np.issubdtype(dtype, np.floating):
            floating.append(dtype)
    dtype = np.result_type(*floating) if floating else np.dtype(jnp.result_type(float))
    if dtype.itemsize < 4:
        dtype = np.dtype(np.float32)
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))


def _asarray(x, dtype) -> jax.Array:
    """x as a JAX array of `dtype`. Host inputs are converted by numpy, so no device operation has
    to be compiled for a mere conversion; JAX arrays and tracers are cast only if needed."""
    if isinstance(x, jax.Array):  # tracers included
        return x if x.dtype == dtype else x.astype(dtype)
    return jax.device_put(np.asarray(x, dtype=dtype))  # (jnp.asarray would compile a staging op per shape)


def _is_traced(*values) -> bool:
    return any(isinstance(v, jax.core.Tracer) for v in values)


def _raise_if(predicate: Callable[..., object], make_error: Callable[..., Exception], *diagnostics) -> None:
    """Raise make_error(*diagnostics) where predicate(xp, *diagnostics) holds: now, or at run time under jit.

    `predicate` receives the array module: numpy for concrete values (no JAX dispatch, nothing to
    compile), jax.numpy under tracing. Under jit this is equinox's `error_if` idea with plain JAX:
    a debug callback raises inside the compiled computation, so the caller gets the message instead
    of NaN. Under vmap the diagnostics arrive batched, so the message builders accept arrays.
    """
    if not _is_traced(*diagnostics):
        values = [np.asarray(d) for d in diagnostics]
        if bool(np.any(predicate(np, *values))):
            raise make_error(*values)
        return

    def callback(bad, *diagnostics):
        if np.any(bad):
            raise make_error(*diagnostics)

    jax.debug.callback(callback, predicate(jnp, *diagnostics), *diagnostics)


def _fmt(x) -> str:
    """A diagnostic number (or, under vmap, the extreme of a batch of them) for an error message."""
    x = np.asarray(x, dtype=np.float64)
    return f"{float(x):.3g}" if x.size == 1 else f"[{float(np.min(x)):.3g} … {float(np.max(x)):.3g}]"


def _default_rcond(m: int, dtype) -> float:
    # The rank tolerance of numpy.linalg.matrix_rank: rounding in an m × m matrix moves its
    # eigenvalues by up to about m·eps·λ_max, so smaller ones are indistinguishable from 0.
    return m * float(np.finfo(dtype).eps)


def _negative_tolerance(m: int, dtype) -> float:
    # How negative λ_min/λ_max may be before the matrix is called indefinite rather than a
    # rounded PSD matrix: generously above the m·eps rounding level (by 10), and never below
    # sqrt(eps), so a kernel computed entry by entry with a few rounding errors each is accepted.
    eps = float(np.finfo(dtype).eps)
    return max(math.sqrt(eps), 10.0 * m * eps)


def _suggested_ridge(lam_max, m: int, dtype) -> float:
    # 100·rcond·λ_max lifts every eigenvalue well above the singularity threshold.
    lam = float(np.max(np.abs(np.asarray(lam_max, dtype=np.float64))))
    if not math.isfinite(lam) or lam <= 0:
        lam = 1.0
    return 100.0 * _default_rcond(m, dtype) * lam


def _is_singular(rcond: float):
    """Predicate of `_raise_if`: not λ_min > rcond·λ_max (NaN counts as singular)."""
    return lambda xp, lambda_min, lambda_max: xp.logical_not(lambda_min > rcond * lambda_max)


def _is_indefinite(m: int, dtype):
    """Predicate of `_raise_if`: λ_min below −tol·|λ_max|, beyond what rounding explains."""
    tol = _negative_tolerance(m, dtype)
    return lambda xp, lambda_min, lambda_max: lambda_min < -tol * xp.abs(lambda_max)


def _check_kernel(kernel, name: str) -> None:
    """Concrete validation of a train-train kernel matrix: square, finite, symmetric."""
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise InvalidKernelError(
            f"{name} must be a square m × m matrix (the kernel between the training inputs), "
            f"got shape {tuple(kernel.shape)}."
        )
    if kernel.shape[0] == 0:
        raise InvalidKernelError(f"{name} is empty (0 × 0): there are no training points.")
    if _is_traced(kernel):
        return
    values = np.asarray(kernel)
    if not np.all(np.isfinite(values)):
        raise InvalidKernelError(
            f"{name} has {int(np.count_nonzero(~np.isfinite(values)))} non-finite entries (NaN or inf); "
            "check the kernel computation (e.g. inputs of very different scales, or overflow in float32)."
        )
    scale = float(np.max(np.abs(values)))
    asym = float(np.max(np.abs(values - values.T)))
    # sqrt(eps) of the dtype: far above the few-eps asymmetry that rounding leaves in a kernel
    # computed entry by entry, far below the asymmetry of a wrong matrix (e.g. a test-train block).
    if asym > math.sqrt(float(np.finfo(values.dtype).eps)) * scale:
        raise InvalidKernelError(
            f"{name} is not symmetric: max |K − Kᵀ| = {asym:.3g} against max |K| = {scale:.3g}. "
            "A train-train kernel k(X, X) is symmetric; did you pass a test-train block?"
        )


def _check_ridge(ridge, name: str = "ridge") -> None:
    if _is_traced(ridge):
        return
    r = np.asarray(ridge)
    if r.ndim != 0 or not np.isfinite(r) or r < 0:
        raise InvalidArgumentError(
            f"{name} must be a finite scalar >= 0 (it is added to the diagonal of the kernel), got {ridge!r}."
        )


def _as_columns(y, m: int, name: str):
    """y of shape (m, ...) as an (m, K) matrix of columns, and a function restoring the trailing shape."""
    if y.ndim == 0 or y.shape[0] != m:
        raise ShapeMismatchError(
            f"{name} must have shape (m, ...) with m = {m} rows, one per training point, got {tuple(y.shape)}."
        )
    trailing = y.shape[1:]
    return y.reshape(m, -1), trailing


# --------------------------------------------------------------------------------------------------
# Solver states
# --------------------------------------------------------------------------------------------------


@final
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class CholeskyState:
    """K + ridge·I = L Lᵀ, as returned by `Cholesky.init`.

    **Fields:**
    - `factor`: the lower-triangular L, shape (m, m).
    - `ridge`: the ridge that was added to the diagonal.
    - `lambda_min`, `lambda_max`: estimates of the extreme eigenvalues of K + ridge·I (inverse and
      direct power iteration); their ratio is the reciprocal condition number.
    """

    factor: jax.Array
    ridge: jax.Array
    lambda_min: jax.Array
    lambda_max: jax.Array


@final
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EighState:
    """K + ridge·I = V diag(λ) Vᵀ, as returned by `Eigh.init`.

    **Fields:**
    - `eigenvalues`: λ in ascending order, shape (m,); may hold tiny negative values from rounding.
    - `eigenvectors`: V, orthonormal columns, shape (m, m).
    - `ridge`: the ridge that was added to the diagonal.
    """

    eigenvalues: jax.Array
    eigenvectors: jax.Array
    ridge: jax.Array


# --------------------------------------------------------------------------------------------------
# Numerical cores (jit-compiled, shape-polymorphic by retracing)
# --------------------------------------------------------------------------------------------------

# Full-precision products: on GPUs and TPUs JAX's default float32 matmul may use TF32/bfloat16
# passes (about 3 decimal digits), which would make a careful solve pointless.
_HIGHEST = jax.lax.Precision.HIGHEST
_POWER_STEPS = 8  # each costs O(m²); against O(m³) for the factorisation, a negligible price


@jax.jit
def _cholesky_core(kernel, ridge):
    m = kernel.shape[0]
    a = kernel + ridge * jnp.eye(m, dtype=kernel.dtype)
    factor = jnp.linalg.cholesky(a)
    # Extreme eigenvalues by power iteration (on A and, through the factor, on A⁻¹) from a fixed
    # start: like LAPACK's condition estimators, cheap and reliable where it matters.
    # A singular matrix has 1/λ_min orders of magnitude above the rest of A⁻¹'s spectrum, so the
    # inverse iteration finds it within a step or two.
    # A fixed, generic start (no RNG: it would cost a compilation of its own): sin of multiples of
    # the golden angle, which has no special relation to any kernel's eigenvectors.
    start = jnp.sin(1.0 + 2.399963229728653 * jnp.arange(m, dtype=kernel.dtype))
    start = start / jnp.linalg.norm(start)

    def power(_, v):
        w = jnp.matmul(a, v, precision=_HIGHEST)
        return w / jnp.linalg.norm(w)

    def inverse_power(_, v):
        w = jsl.cho_solve((factor, True), v)
        return w / jnp.linalg.norm(w)

    v = jax.lax.fori_loop(0, _POWER_STEPS, power, start)
    lambda_max = jnp.dot(v, jnp.matmul(a, v, precision=_HIGHEST), precision=_HIGHEST)
    w = jax.lax.fori_loop(0, _POWER_STEPS, inverse_power, start)
    lambda_min = 1.0 / jnp.linalg.norm(jsl.cho_solve((factor, True), w))
    finite = jnp.all(jnp.isfinite(factor)) & jnp.isfinite(lambda_min)
    # A failed factorisation is NaN; report it as λ_min = −inf ("not positive definite").
    lambda_min = jnp.where(finite, lambda_min, -jnp.inf)
    return factor, lambda_min, lambda_max


@jax.jit
def _eigh_core(kernel, ridge):
    m = kernel.shape[0]
    eigenvalues, eigenvectors = jnp.linalg.eigh(kernel + ridge * jnp.eye(m, dtype=kernel.dtype))
    return eigenvalues, eigenvectors, eigenvalues[0], eigenvalues[-1]


@jax.jit
def _cholesky_apply(factor, columns):
    return jsl.cho_solve((factor, True), columns)


# --------------------------------------------------------------------------------------------------
# Solvers
# --------------------------------------------------------------------------------------------------


class AbstractKernelSolver(abc.ABC):
    """A way to factorise K + ridge·I once (`init`) and apply its inverse many times (`solve`)."""

    @abc.abstractmethod
    def init(self, kernel, ridge=0.0, *, name: str = "kernel"):
        """Factorise `kernel + ridge·I`; returns the solver's state (a frozen PyTree)."""

    @abc.abstractmethod
    def solve(self, state, y):
        """(K + ridge·I)⁻¹ y for y of shape (m,) or (m, ...), in the state's dtype."""


def _singular_error(*, m, dtype, rcond, name, regulariser):
    def make(lambda_min, lambda_max):
        lmin = np.asarray(lambda_min, dtype=np.float64)
        lmax = np.asarray(lambda_max, dtype=np.float64)
        if np.any(np.isneginf(lmin)):  # only under jit: the factorisation failed and was not diagnosed
            what = "is not positive definite to working precision (its Cholesky factorisation failed)"
        elif np.all(lmin > rcond * lmax):  # the eigenvalues pass, the factorisation did not
            what = (
                f"is too ill-conditioned for a Cholesky factorisation in {dtype.name} (λ_min ≈ {_fmt(lmin)}, "
                f"λ_max ≈ {_fmt(lmax)})"
            )
        else:
            what = (
                f"is singular to working precision: λ_min/λ_max ≈ {_fmt(lmin / lmax)} "
                f"(λ_min ≈ {_fmt(lmin)}, λ_max ≈ {_fmt(lmax)}) is at or below rcond = {rcond:.3g}"
            )
        return SingularKernelError(
            f"The {m} × {m} {dtype.name} matrix {name} {what}, so solving with it would give inf, NaN "
            f"or meaningless values. Pass {regulariser} > 0 to regularise it: {regulariser}="
            f"{_suggested_ridge(lambda_max, m, dtype):.3g} (100·rcond·λ_max) is about the smallest that "
            "makes it safely invertible; larger values smooth the fit. If the matrix is only "
            "ill-conditioned in float32, computing in float64 (JAX's x64 mode) can also help. "
            "Duplicated training inputs, or more training points than features of a finite kernel, "
            "make a kernel matrix exactly singular."
        )

    return make


def _indefinite_error(*, m, dtype, name):
    def make(lambda_min, lambda_max):
        return InvalidKernelError(
            f"The {m} × {m} {dtype.name} matrix {name} is not positive semi-definite: it has an "
            f"eigenvalue {_fmt(lambda_min)} against λ_max = {_fmt(lambda_max)}, far more negative than "
            f"rounding can make it ({_negative_tolerance(m, dtype):.2g}·λ_max). A kernel matrix k(X, X) "
            "of an NNGP or NTK is PSD: check that this is the train-train block of the intended kernel. "
            f"(A ridge larger than {_fmt(-np.asarray(lambda_min))} would hide this, but not fix its cause.)"
        )

    return make


@final
@dataclasses.dataclass(frozen=True)
class Cholesky(AbstractKernelSolver):
    """Solve (K + ridge·I) x = y through the Cholesky factor K + ridge·I = L Lᵀ.

    **Arguments:**
    - `rcond`: a matrix with estimated λ_min ≤ rcond·λ_max is refused as singular; None means
      m·eps(dtype) (module docstring).
    """

    rcond: float | None = None

    def __post_init__(self):
        if self.rcond is not None and not (0.0 <= self.rcond < 1.0):
            raise InvalidArgumentError(f"rcond must be in [0, 1), got {self.rcond!r}.")

    def init(self, kernel, ridge=0.0, *, name: str = "kernel", regulariser: str = "ridge") -> CholeskyState:
        """Factorise `kernel + ridge·I`; raises `SingularKernelError` if it is singular to working precision.

        **Arguments:**
        - `kernel`: symmetric PSD matrix of shape (m, m); after the symmetry check its symmetric
          part (K + Kᵀ)/2 is factorised.
        - `ridge`: a scalar >= 0 added to the diagonal (absolute units of the kernel).
        - `name`, `regulariser`: how error messages call the matrix and the ridge argument.

        **Returns:** a `CholeskyState`.
        """
        dtype = working_dtype(kernel)
        kernel = _asarray(kernel, dtype)
        _check_kernel(kernel, name)
        _check_ridge(ridge, regulariser)
        ridge = _asarray(ridge, dtype)
        factor, lambda_min, lambda_max = _cholesky_core(kernel, ridge)
        m = kernel.shape[0]
        rcond = _default_rcond(m, dtype) if self.rcond is None else self.rcond
        singular = _singular_error(m=m, dtype=dtype, rcond=rcond, name=name, regulariser=regulariser)
        if not _is_traced(lambda_min) and np.isneginf(np.asarray(lambda_min)):
            # The factorisation failed. On this (error) path an eigendecomposition costs nothing that
            # matters, and tells an indefinite matrix (InvalidKernelError) from a singular one.
            _, _, lambda_min, lambda_max = _eigh_core(kernel, ridge)
            _raise_if(_is_indefinite(m, dtype), _indefinite_error(m=m, dtype=dtype, name=name), lambda_min, lambda_max)
            raise singular(np.asarray(lambda_min), np.asarray(lambda_max))
        _raise_if(_is_singular(rcond), singular, lambda_min, lambda_max)
        return CholeskyState(factor=factor, ridge=ridge, lambda_min=lambda_min, lambda_max=lambda_max)

    def solve(self, state: CholeskyState, y) -> jax.Array:
        """(K + ridge·I)⁻¹ y, for y of shape (m,) or (m, ...); each trailing column is solved alike."""
        m = state.factor.shape[0]
        y = _asarray(y, state.factor.dtype)
        columns, trailing = _as_columns(y, m, "y")
        return _cholesky_apply(state.factor, columns).reshape((m,) + trailing)


@final
@dataclasses.dataclass(frozen=True)
class Eigh(AbstractKernelSolver):
    """Symmetric eigendecomposition K + ridge·I = V diag(λ) Vᵀ: solves and matrix functions.

    **Arguments:**
    - `rcond`: `solve` refuses a matrix with λ_min ≤ rcond·λ_max as singular; None means
      m·eps(dtype) (module docstring).
    """

    rcond: float | None = None

    def __post_init__(self):
        if self.rcond is not None and not (0.0 <= self.rcond < 1.0):
            raise InvalidArgumentError(f"rcond must be in [0, 1), got {self.rcond!r}.")

    def init(self, kernel, ridge=0.0, *, name: str = "kernel", regulariser: str = "ridge") -> EighState:
        """Eigendecompose `kernel + ridge·I`; raises `InvalidKernelError` if it is clearly indefinite.

        A singular matrix is accepted here (matrix functions such as I − e^{−ηtΘ} exist for it);
        `solve` is where invertibility is required.

        **Returns:** an `EighState`.
        """
        dtype = working_dtype(kernel)
        kernel = _asarray(kernel, dtype)
        _check_kernel(kernel, name)
        _check_ridge(ridge, regulariser)
        ridge = _asarray(ridge, dtype)
        eigenvalues, eigenvectors, lambda_min, lambda_max = _eigh_core(kernel, ridge)
        m = kernel.shape[0]
        _raise_if(_is_indefinite(m, dtype), _indefinite_error(m=m, dtype=dtype, name=name), lambda_min, lambda_max)
        return EighState(eigenvalues=eigenvalues, eigenvectors=eigenvectors, ridge=ridge)

    def check_invertible(
        self, state: EighState, *, name: str = "kernel", regulariser: str = "ridge", when=True
    ) -> None:
        """Raise `SingularKernelError` unless λ_min > rcond·λ_max (concretely, or at run time under jit).

        `when` (a boolean, possibly traced) limits the check to the cases that need the inverse.
        """
        m = state.eigenvalues.shape[0]
        dtype = np.dtype(state.eigenvalues.dtype)
        rcond = _default_rcond(m, dtype) if self.rcond is None else self.rcond
        if _is_traced(state.eigenvalues, when):
            lambda_min, lambda_max = state.eigenvalues[0], state.eigenvalues[-1]
        else:  # plain numpy: no JAX dispatch for a check on two numbers
            if not bool(np.any(np.asarray(when))):
                return
            eigenvalues = np.asarray(state.eigenvalues)
            lambda_min, lambda_max, when = eigenvalues[0], eigenvalues[-1], True
        is_singular = _is_singular(rcond)
        _raise_if(
            lambda xp, lmin, lmax, when: xp.logical_and(when, is_singular(xp, lmin, lmax)),
            lambda lmin, lmax, when: _singular_error(
                m=m, dtype=dtype, rcond=rcond, name=name, regulariser=regulariser
            )(lmin, lmax),
            lambda_min,
            lambda_max,
            when,
        )

    def apply(self, state: EighState, fn: Callable[[jax.Array], jax.Array], y) -> jax.Array:
        """V diag(fn(λ)) Vᵀ y: a function of the matrix applied to y.

        **Arguments:**
        - `fn`: maps the eigenvalues, shape (m,), to coefficients of shape (..., m); a batch of
          leading axes (e.g. one per time t) gives a batch of results. It receives max(λ, 0):
          the matrix is PSD by contract, its negative eigenvalues are rounding, and left
          negative they would make e^{−ηtλ} grow without bound (neural-tangents clips them too).
        - `y`: shape (m,) or (m, ...).

        **Returns:** shape (...,) + y.shape.
        """
        m = state.eigenvalues.shape[0]
        y = _asarray(y, state.eigenvalues.dtype)
        columns, trailing = _as_columns(y, m, "y")
        coefficients = fn(jnp.maximum(state.eigenvalues, 0))
        batch = coefficients.shape[:-1]
        out = _eigh_apply(state.eigenvectors, coefficients.reshape((-1, m)), columns)
        return out.reshape(batch + (m,) + trailing)

    def solve(self, state: EighState, y, *, name: str = "kernel", regulariser: str = "ridge") -> jax.Array:
        """(K + ridge·I)⁻¹ y; raises `SingularKernelError` if K + ridge·I is singular to working precision."""
        self.check_invertible(state, name=name, regulariser=regulariser)
        return self.apply(state, _reciprocal, y)


def _reciprocal(eigenvalues):
    return 1.0 / eigenvalues


@jax.jit
def _eigh_apply(eigenvectors, coefficients, columns):
    # V diag(c_b) Vᵀ Y for each row c_b of coefficients: rotate once, scale per batch, rotate back.
    rotated = jnp.matmul(eigenvectors.T, columns, precision=_HIGHEST)
    return jnp.einsum("im,bm,mk->bik", eigenvectors, coefficients, rotated, precision=_HIGHEST)

