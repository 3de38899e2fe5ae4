"""Independent references for dual activations: published closed forms, Isserlis/Mehler series, quadrature.

For tests only: the ntksym package never contains dual formulas (STYLE.md, "What not to copy").
Everything here is written by hand from the literature or derived in the comments, and
tests/test_references.py checks each formula against a different method (quadrature, Isserlis vs
Mehler, V vs K(q, q, q), K̇ vs a finite difference of K).

Conventions (DESIGN.md §1): (u, v) ~ N(0, [[q1, c], [c, q2]]), ρ = c/√(q1 q2), θ = arccos ρ,
  K(q1, q2, c) = E[σ(u)σ(v)],  K̇(q1, q2, c) = E[σ'(u)σ'(v)],  V(q) = E[σ(z)²], z ~ N(0, q).

Accuracy. Closed forms are evaluated in mpmath at 30 significant digits, treating the float64
inputs as exact, and rounded once to float64; so each value is the correctly rounded K of the given
float64 (q1, q2, c), up to ~1e-16 relative to the scale √(V(q1) V(q2)), even where the formula
cancels in float64 (√(1−ρ²) near |ρ| = 1 is computed as √((1−ρ)(1+ρ)) besides). Polynomials are
exact (Python Fractions). Quadrature (`quad_K`, `quad_Kdot`: a batched adaptive Gauss–Legendre
rule, nested by conditioning) targets 1e-13 relative to the scale (`quad_V`: 1e-14 relative),
returns its error estimate on request, and raises QuadratureError rather than return a value whose
estimate exceeds 1e-12 of the scale; in test_references it agrees with every closed form to ~1e-15.
Inputs must satisfy q1, q2 > 0 and c² <= q1 q2 (a relative excess up to 1e-12 is taken for
rounding and clipped); anything else raises ValueError. Results that overflow float64 (e.g. the
exp activation at large variance) come back as inf.

API:
  REFERENCES[name] -> Reference with default parameters; REFERENCES[name](**params) -> another one
    (keys: CATALOG_NAMES + EXTRA_NAMES; e.g. REFERENCES["erf"](a=2.0, b=0.5, c=0.1)).
  Reference.K(q1, q2, c), .Kdot(q1, q2, c) (None if σ has jumps), .V(q): numpy-broadcasting, float64.
  Reference.scale(q1, q2) = √(V(q1)V(q2)), .dscale(q1, q2): the scales to measure K and K̇ errors by.
  Reference.sigma / .dsigma: numpy-vectorised σ and σ' (σ' None if σ jumps); .kinks: breakpoints;
    .expr / .sympy(): σ as SymPy text / expression; .params, .label, .source.
  Reference.quad_K / quad_Kdot / quad_V: the same quantities by quadrature of sigma / dsigma
    (use_inner=True: the inner expectation in closed form, for oscillatory σ at large q).
  quad_K(f, q1, q2, c, kinks=(0.0,), *, g=None, g_kinks=None, inner=None, return_error=False),
  quad_Kdot(fprime, ...), quad_V(f, q, kinks=(0.0,)), quad_mean(f, q, kinks=(0.0,)).
  isserlis_moment(i, j, q1, q2, c), polynomial_K(coeffs, q1, q2, c), mehler_K(coeffs, q1, q2, c),
  hermite_expansion(coeffs, q), central_difference_dK_dc(K, q1, q2, c).

Import as ``import references`` / ``from references import REFERENCES`` (tests/ is on sys.path).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.polynomial import hermite_e
from scipy import special

DPS = 30  # decimal digits of the mpmath evaluations: 1e-30 rounding leaves ~1e-24 after the worst cancellation here
ZMAX = 12.0  # quadrature truncates standard-normal coordinates at |z| <= ZMAX: φ(12) = 5e-32, so even
# polynomial growth |z|^12 leaves a tail below 1e-18 of E[z^12]; the activations here grow at most like that.
_SQRT2PI = math.sqrt(2.0 * math.pi)
_RHO_ROUNDING = 1e-12  # |ρ| up to 1 + 1e-12 is taken as rounding of a covariance with |ρ| = 1 and clipped


# --------------------------------------------------------------------------------------------------
# Evaluation plumbing: float64 in, mpmath at DPS digits inside, float64 out; numpy broadcasting.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cov:
    """A covariance in mpmath numbers. omr2 = 1 − ρ² computed as (1 − ρ)(1 + ρ); s = √(1 − ρ²) = sin θ."""

    q1: Any
    q2: Any
    c: Any
    sq: Any  # √(q1 q2)
    rho: Any
    omr2: Any
    s: Any
    det: Any  # q1 q2 − c² = q1 q2 (1 − ρ²) ≥ 0


def _check_variance(q: float, name: str) -> None:
    if not (math.isfinite(q) and q > 0.0):
        raise ValueError(f"{name} must be a finite positive variance, got {q!r}")


def _rho_float(q1: float, q2: float, c: float) -> float:
    _check_variance(q1, "q1")
    _check_variance(q2, "q2")
    if not math.isfinite(c):
        raise ValueError(f"c must be finite, got {c!r}")
    with mpmath.workdps(DPS):
        rho = mpmath.mpf(c) / mpmath.sqrt(mpmath.mpf(q1) * mpmath.mpf(q2))
        if abs(rho) > 1 + _RHO_ROUNDING:
            raise ValueError(f"invalid covariance: c² > q1·q2 (q1={q1!r}, q2={q2!r}, c={c!r}, ρ={float(rho)!r})")
        return float(max(min(rho, mpmath.mpf(1)), mpmath.mpf(-1)))


def _cov(q1: float, q2: float, c: float) -> _Cov:
    """Validate and convert (inside an mpmath workdps context)."""
    _rho_float(q1, q2, c)
    return _cov_exact(mpmath.mpf(q1), mpmath.mpf(q2), mpmath.mpf(c))


def _cov_exact(Q1, Q2, C) -> _Cov:
    """A _Cov from mpmath numbers (already validated), at the working precision of the caller."""
    sq = mpmath.sqrt(Q1 * Q2)
    rho = C / sq
    if abs(rho) > 1:  # rounding (checked above): clip to the boundary
        rho = mpmath.sign(rho)
        C = rho * sq
    omr2 = (1 - rho) * (1 + rho)
    return _Cov(Q1, Q2, C, sq, rho, omr2, mpmath.sqrt(omr2), Q1 * Q2 * omr2)


def _vectorize(scalar_fn: Callable[..., float], *args):
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in args))
    out = np.empty(arrays[0].shape, dtype=np.float64)
    for idx in np.ndindex(out.shape):
        out[idx] = scalar_fn(*(float(a[idx]) for a in arrays))
    return out[()]  # a numpy float64 scalar for scalar inputs


def _K_from_mp(fn: Callable[[_Cov], Any]) -> Callable:
    """Wrap an mpmath formula fn(cov) into a broadcasting float64 K(q1, q2, c)."""

    def scalar(q1: float, q2: float, c: float) -> float:
        with mpmath.workdps(DPS):
            return float(fn(_cov(q1, q2, c)))

    @functools.wraps(fn)
    def K(q1, q2, c):
        return _vectorize(scalar, q1, q2, c)

    K.mp = fn  # the formula itself, of a _Cov, for high-precision checks (central_difference_dK_dc)
    return K


def _V_from_mp(fn: Callable[[Any], Any]) -> Callable:
    """Wrap an mpmath formula fn(q) into a broadcasting float64 V(q)."""

    def scalar(q: float) -> float:
        _check_variance(q, "q")
        with mpmath.workdps(DPS):
            return float(fn(mpmath.mpf(q)))

    @functools.wraps(fn)
    def V(q):
        return _vectorize(scalar, q)

    return V


def _K_from_fraction(fn: Callable[[Fraction, Fraction, Fraction], Fraction]) -> Callable:
    """Wrap an exact rational formula fn(q1, q2, c) into a broadcasting float64 K (correctly rounded)."""

    def scalar(q1: float, q2: float, c: float) -> float:
        _rho_float(q1, q2, c)
        return float(fn(Fraction(q1), Fraction(q2), Fraction(c)))

    def K(q1, q2, c):
        return _vectorize(scalar, q1, q2, c)

    K.exact = fn  # the exact rational formula, for central_difference_dK_dc
    return K


def central_difference_dK_dc(K: Callable, q1: float, q2: float, c: float, h_rho: float = 1e-15, dps: int = 50):
    """∂K/∂c by the central difference (K(c + h) − K(c − h))/(2h), h = h_rho·√(q1 q2), in high precision.

    K must be a closed-form reference (REFERENCES[...].K). The difference is taken in mpmath at `dps`
    digits (exact rationals for polynomials), so with h_rho = 1e-15 the truncation error
    h²|∂³K/∂c³|/6 and the rounding error 10^−dps·|K|/h are both far below float64 resolution
    even at |ρ| = 1 − 1e-6, where ∂³K/∂ρ³ of a kinked σ grows like (1 − ρ²)^{−3/2} ~ 4e8.
    Needs |ρ| + h_rho < 1. Returns float64.
    """
    rho = _rho_float(q1, q2, c)
    if abs(rho) + 2 * h_rho >= 1:
        raise ValueError(f"central_difference_dK_dc needs |ρ| + 2·h_rho < 1, got ρ={rho}")
    exact = getattr(K, "exact", None)
    if exact is not None:
        Q1, Q2, C = Fraction(q1), Fraction(q2), Fraction(c)
        h = Fraction(h_rho) * Fraction(math.sqrt(q1 * q2))  # any exact h works: only its size matters
        return np.float64(float((exact(Q1, Q2, C + h) - exact(Q1, Q2, C - h)) / (2 * h)))
    fn = getattr(K, "mp", None)
    if fn is None:
        raise TypeError("central_difference_dK_dc needs a closed-form reference K (with .mp or .exact)")
    with mpmath.workdps(dps):
        Q1, Q2, C = mpmath.mpf(q1), mpmath.mpf(q2), mpmath.mpf(c)
        h = mpmath.mpf(h_rho) * mpmath.sqrt(Q1 * Q2)
        return np.float64(float((fn(_cov_exact(Q1, Q2, C + h)) - fn(_cov_exact(Q1, Q2, C - h))) / (2 * h)))


def _V_from_fraction(fn: Callable[[Fraction], Fraction]) -> Callable:
    def scalar(q: float) -> float:
        _check_variance(q, "q")
        return float(fn(Fraction(q)))

    def V(q):
        return _vectorize(scalar, q)

    return V


# --------------------------------------------------------------------------------------------------
# Quadrature references: E[f(u) g(v)] by conditioning and nested adaptive Gauss–Legendre.
# --------------------------------------------------------------------------------------------------
# A small vectorised adaptive integrator instead of nested scipy.integrate.quad: all inner integrals
# E[g(v) | z1] of one outer refinement round are computed in one batch (numpy arrays over outer nodes
# × segments × Gauss nodes), which makes a 2-D reference ~10-100× faster than nested scalar quad.
# Each segment [a, b] carries the Gauss–Legendre value P of itself; a round evaluates both halves,
# S = L + R, and accepts S with error estimate |P − S| (the error of the coarser P, a conservative
# bound for S) once |P − S| <= tol·(b − a)/(total length) or is at the float64 roundoff level of the
# segment; the other segments are bisected. Breakpoints go wherever the integrand has a kink or a jump.

_GL_N = 10  # Gauss–Legendre nodes per segment: exact for polynomials of degree 19
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_GL_N)
_MAX_PIECE = 2.0  # initial segments are at most 2 standard deviations long, so no feature of the
# Gaussian weight is missed by a first coarse sample
_MAX_ROUNDS = 60  # bisection depth: 2·ZMAX/2^60 is far below any feature a float64 integrand can have
_DEEP = 6  # bisections after which a segment may meet the looser tol_accept (see _integrate)
_MAX_SEGMENTS = 400_000  # a guard against runaway bisection (memory: segments × 2·_GL_N floats)
_CHUNK = 512  # inner integrals computed together (bounds memory: 512 × segments × 2·_GL_N floats)
_ROUNDOFF = 64 * 2.0**-52  # a segment whose |P − S| is below this times Σ|w·f| is at float64 roundoff level


class QuadratureError(RuntimeError):
    """Quadrature could not certify its target accuracy (or an integrand returned a non-finite value)."""


@dataclass(frozen=True)
class QuadResult:
    """A quadrature value and its error estimate (inner-integral errors included)."""

    value: float
    error: float
    evaluations: int = 0


def _phi(z):
    return np.exp(-0.5 * z * z) * (1.0 / _SQRT2PI)


def _as_vectorized(f: Callable) -> Callable[[np.ndarray], np.ndarray]:
    """f as a function of float64 arrays: used as is if it maps arrays elementwise, else np.vectorize'd."""
    probe = np.array([-1.5, 0.0, 0.5, 2.0])
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(f(probe), dtype=np.float64)
        if out.shape == probe.shape:
            expected = np.array([float(f(float(t))) for t in probe])
            if np.allclose(out, expected, rtol=1e-14, atol=0.0, equal_nan=True):
                return lambda z: np.asarray(f(z), dtype=np.float64)
        elif out.ndim == 0:  # a constant function written as `lambda x: 1.0`
            return lambda z: np.broadcast_to(np.asarray(f(z), dtype=np.float64), np.shape(z))
    except (TypeError, ValueError):  # e.g. `x if x > 0 else 0` on an array, or mpmath on an array
        pass
    scalar = np.vectorize(lambda t: float(f(float(t))), otypes=[np.float64])
    return lambda z: scalar(z)


def _segments(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of sorted edges (n, k) -> flat segments (lo, hi, owner), dropping empty ones."""
    edges = np.sort(edges, axis=1)
    lo, hi = edges[:, :-1], edges[:, 1:]
    owner = np.broadcast_to(np.arange(edges.shape[0])[:, None], lo.shape)
    keep = hi > lo
    return lo[keep], hi[keep], owner[keep]


def _base_edges(zmax: float) -> np.ndarray:
    n = max(1, math.ceil(2 * zmax / _MAX_PIECE))
    return np.linspace(-zmax, zmax, n + 1)


def _integrate(fun, lo, hi, owner, n_owner, tol, what, tol_accept=None):
    """Σ over segments of ∫_lo^hi fun(z, owner) dz, per owner; tol: (n_owner,) absolute targets.

    tol_accept (default 20·tol): a looser target a segment may meet once it has been bisected
    _DEEP times: where evaluation noise (e.g. cos at an argument ~400, rounded to ~4e-14) keeps
    |P − S| above tol however small the segment, the integral is still certified to tol_accept.

    fun(z, owner) takes z of shape (M, _GL_N) and owner of shape (M,) and returns values of z's shape,
    or (values, noise) with noise a bound on the absolute error of each value (e.g. from an inner
    integral); differences |P − S| within the noise of P and S are accepted, since bisecting cannot
    reduce them. Returns (totals, errors, evaluations).
    """
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), (n_owner,))
    tol_accept = 20.0 * tol if tol_accept is None else np.broadcast_to(np.asarray(tol_accept, np.float64), (n_owner,))
    length = np.zeros(n_owner)
    np.add.at(length, owner, hi - lo)
    density = tol / np.where(length > 0, length, 1.0)
    density_accept = tol_accept / np.where(length > 0, length, 1.0)
    depth = 0
    evaluations = 0

    def rule(a, b, own):
        nonlocal evaluations
        half = 0.5 * (b - a)
        z = (0.5 * (a + b))[:, None] + half[:, None] * _GL_X
        vals = fun(z, own)
        noise = None
        if isinstance(vals, tuple):
            vals, noise = vals
        evaluations += vals.size
        if not np.all(np.isfinite(vals)):
            raise QuadratureError(f"{what}: the integrand is not finite at some nodes (overflow?)")
        absval = np.abs(half) * (np.abs(vals) @ _GL_W)
        noise = np.zeros_like(absval) if noise is None else np.abs(half) * (noise @ _GL_W)
        return half * (vals @ _GL_W), _ROUNDOFF * absval + noise

    total = np.zeros(n_owner)
    error = np.zeros(n_owner)
    P, P_noise = rule(lo, hi, owner)
    for _ in range(_MAX_ROUNDS):
        n = lo.size
        if n == 0:
            return total, error, evaluations
        mid = 0.5 * (lo + hi)
        V, N = rule(np.concatenate([lo, mid]), np.concatenate([mid, hi]), np.concatenate([owner, owner]))
        L, R = V[:n], V[n:]
        S = L + R
        e = np.abs(P - S)
        ok = (e <= density[owner] * (hi - lo)) | (e <= P_noise + N[:n] + N[n:])
        if depth >= _DEEP:
            ok |= e <= density_accept[owner] * (hi - lo)
        depth += 1
        np.add.at(total, owner[ok], S[ok])
        # error of S: |P − S| (a bound for the coarser P) plus the noise carried by S's own values
        np.add.at(error, owner[ok], e[ok] + N[:n][ok] + N[n:][ok])
        bad = ~ok
        lo, hi, owner, P, P_noise = (
            np.concatenate([lo[bad], mid[bad]]),
            np.concatenate([mid[bad], hi[bad]]),
            np.concatenate([owner[bad], owner[bad]]),
            np.concatenate([L[bad], R[bad]]),
            np.concatenate([N[:n][bad], N[n:][bad]]),
        )
        if lo.size > _MAX_SEGMENTS:
            raise QuadratureError(f"{what}: more than {_MAX_SEGMENTS} segments after {depth} bisections (noisy integrand?)")
    raise QuadratureError(f"{what}: no convergence after {_MAX_ROUNDS} bisections ({lo.size} segments left)")


def _integrate_1d(fun, edges, tol_abs, tol_rel, what):
    """One integral of a vectorised fun(z) over the segments between sorted edges; returns QuadResult."""
    lo, hi, owner = _segments(np.asarray(edges, dtype=np.float64)[None, :])

    def batched(z, own):
        return fun(z)

    # a first coarse pass sets the relative part of the target
    rough = float(np.sum(np.abs(_integrate_coarse(fun, lo, hi))))
    tol = max(tol_abs, tol_rel * rough, 1e-300)
    total, error, evaluations = _integrate(batched, lo, hi, owner, 1, tol, what)
    return QuadResult(float(total[0]), float(error[0]), evaluations)


def _integrate_coarse(fun, lo, hi):
    half = 0.5 * (hi - lo)
    z = (0.5 * (lo + hi))[:, None] + half[:, None] * _GL_X
    return half * (np.abs(fun(z)) @ _GL_W)


def _edges_1d(points, zmax: float) -> np.ndarray:
    pts = [p for p in points if math.isfinite(p) and -zmax < p < zmax]
    return np.concatenate([_base_edges(zmax), np.asarray(pts, dtype=np.float64)])


def quad_V(f: Callable, q, kinks: Sequence[float] = (0.0,), zmax: float | None = None, *, return_error: bool = False):
    """V(q) = E[f(z)²], z ~ N(0, q), by adaptive quadrature in z/√q with breakpoints at the kinks of f.

    The integrand is non-negative, so the relative target 1e-14 has no cancellation to fight.
    zmax=None chooses the truncation |z| <= zmax from ZMAX_CANDIDATES: the first at which the
    integrand is negligible (1e-18 of the integral) at ±zmax.
    """
    if np.ndim(q):
        return _vectorize(lambda t: quad_V(f, t, kinks, zmax), q)
    res, _ = _quad_V_auto(_as_vectorized(f), q, kinks, zmax)
    return res if return_error else np.float64(res.value)


ZMAX_CANDIDATES = (ZMAX, 20.0, 28.0, 40.0)  # wider truncations for fast-growing f, e.g. exp(b x) with b√q ~ 1..10


def _quad_V_auto(fv, q: float, kinks, zmax: float | None) -> tuple[QuadResult, float]:
    _check_variance(q, "q")
    sq = math.sqrt(q)

    def integrand(z):
        fz = fv(sq * z)
        return _phi(z) * fz * fz

    candidates = ZMAX_CANDIDATES if zmax is None else (zmax,)
    for i, z in enumerate(candidates):
        try:
            with np.errstate(over="raise"):
                res = _integrate_1d(integrand, _edges_1d([k / sq for k in kinks], z), 0.0, 1e-14, "quad_V")
            _check_tails(integrand, z, res.value, f"quad_V at q={q}")
            return res, z
        except (QuadratureError, FloatingPointError) as err:
            if i == len(candidates) - 1:
                raise QuadratureError(f"quad_V at q={q}: {err}") from None
    raise AssertionError("unreachable")


def _check_tails(integrand, zmax: float, total: float, what: str) -> None:
    """Refuse a truncated integral whose integrand is not negligible at ±zmax (e.g. exp(b x) with b√q ≳ 3:
    its Gaussian-weighted mass sits near z = 2b√q, and truncation would silently drop it)."""
    with np.errstate(over="ignore"):
        edge = np.abs(integrand(np.array([-zmax, zmax])))
    if not np.all(edge <= 1e-18 * abs(total)):
        raise QuadratureError(
            f"{what}: the integrand at |z| = {zmax} is {float(np.max(edge)):.3g}, not negligible against "
            f"the integral {total:.3g}: the activation grows too fast for truncated quadrature"
        )


def quad_mean(f: Callable, q, kinks: Sequence[float] = (0.0,), zmax: float | None = None, *, return_error: bool = False):
    """E[f(z)], z ~ N(0, q), by adaptive quadrature, target 1e-14 relative to √E[f(z)²]."""
    if np.ndim(q):
        return _vectorize(lambda t: quad_mean(f, t, kinks, zmax), q)
    fv = _as_vectorized(f)
    sq = math.sqrt(q)
    V, zmax = _quad_V_auto(fv, q, kinks, zmax)
    scale = math.sqrt(V.value)
    res = _integrate_1d(
        lambda z: _phi(z) * fv(sq * z), _edges_1d([k / sq for k in kinks], zmax), 1e-14 * scale, 0.0, "quad_mean"
    )
    return res if return_error else np.float64(res.value)


def _geometric_points(center: float, width: float, zmax: float) -> list[float]:
    """center ± width·4^j (j = −1, 0, 1, …) inside (−zmax, zmax): breakpoints that resolve a feature of
    size `width` at `center` (a kink of g smoothed by the conditional spread), however small it is."""
    pts = [center]
    if width <= 0.0 or not math.isfinite(width):
        return pts
    d = width / 4.0
    while d < 2 * zmax:
        pts += [center - d, center + d]
        d *= 4.0
    return pts


def quad_K(
    f: Callable,
    q1,
    q2,
    c,
    kinks: Sequence[float] = (0.0,),
    *,
    g: Callable | None = None,
    g_kinks: Sequence[float] | None = None,
    inner: Callable | None = None,
    zmax: float | None = None,
    return_error: bool = False,
    max_evaluations: float = 5e7,
):
    """E[f(u) g(v)], (u, v) ~ N(0, [[q1, c], [c, q2]]) (g defaults to f): K by nested quadrature.

    Conditioning (Gaussian chain rule): u = √q1 z1, v = m + s z2 with m = √q2 ρ z1 and
    s = √q2 √((1−ρ)(1+ρ)), z1, z2 independent standard normals. The outer integral runs over z1,
    the inner E[g(v) | z1] over the *standardised* z2, so a narrow conditional Gaussian (|ρ| → 1)
    is as easy as a wide one; at |ρ| = 1 exactly the inner expectation is g(m).

    **Arguments:**
    - `f`, `g`: callables of a float (numpy-vectorised ones are much faster; scalar-only ones, e.g.
      `x if x > 0 else 0` or mpmath functions, are wrapped); at most polynomial growth, as the
      Gaussian coordinates are truncated at |z| <= zmax (None: the smallest of ZMAX_CANDIDATES at
      which f² and g² are negligible, see quad_V).
    - `kinks`, `g_kinks`: points where f (resp. g) or its derivative jumps, or where it is steepest;
      they become breakpoints: k/√q1 in z1, (k − m)/s in z2, and around k/(√q2 ρ) in z1, where
      E[g(v) | z1] bends on the scale s/(√q2 |ρ|).
    - `inner`: optional closed form inner(m, s) = E[g(m + s Z)], Z ~ N(0, 1), vectorised in m (e.g.
      sin(m)·exp(−s²/2) for g = sin); it replaces the inner quadrature, which makes oscillatory g at
      large q cheap.
    - `return_error`: return a QuadResult (value, error estimate, evaluations) instead of the value.
    - `max_evaluations`: a budget of integrand evaluations (~1 s per 5e7), past which it raises
      QuadratureError instead of running on.

    Target 1e-13 relative to the scale √(E[f(u)²] E[g(v)²]); raises QuadratureError if the error
    estimate exceeds 1e-12 of the scale.
    """
    if any(np.ndim(a) for a in (q1, q2, c)):
        return _vectorize(
            lambda a, b, d: quad_K(
                f, a, b, d, kinks, g=g, g_kinks=g_kinks, inner=inner, zmax=zmax, max_evaluations=max_evaluations
            ),
            q1,
            q2,
            c,
        )
    if g is None:
        g = f
    g_kinks = tuple(kinks if g_kinks is None else g_kinks)
    kinks = tuple(kinks)
    # ρ and √(1 − ρ²) are each rounded once from their exact values: then the angle atan2(s, ρ)
    # they describe is right to ~eps *relative*, where computing s from the rounded ρ would err by
    # eps/s (absolute in ρ), which a jump activation amplifies by 1/s near |ρ| = 1.
    with mpmath.workdps(DPS):
        rho_mp = _cov(q1, q2, c).rho
        rho = float(rho_mp)
        s_unit = float(mpmath.sqrt((1 - rho_mp) * (1 + rho_mp)))
    sq1, sq2 = math.sqrt(q1), math.sqrt(q2)
    sd = sq2 * s_unit  # conditional standard deviation of v given z1
    fv, gv = _as_vectorized(f), _as_vectorized(g)

    Vf, zf = _quad_V_auto(fv, q1, kinks, zmax)
    Vg, zg = _quad_V_auto(gv, q2, g_kinks, zmax)
    zmax = max(zf, zg)
    scale_f, scale_g = math.sqrt(Vf.value), math.sqrt(Vg.value)
    scale = scale_f * scale_g
    if not math.isfinite(scale):
        raise QuadratureError(f"quad_K: E[f(u)²] or E[g(v)²] is not finite in float64 (q1={q1}, q2={q2})")
    if scale == 0.0:
        return QuadResult(0.0, 0.0) if return_error else np.float64(0.0)

    inner_tol = 1e-14 * scale_g
    evaluations = [0]
    base = _base_edges(zmax)
    kink_arr = np.asarray(g_kinks, dtype=np.float64)

    def conditional(m: np.ndarray) -> np.ndarray:
        """E[g(m + sd·Z)] for a flat array of conditional means m."""
        if inner is not None:
            G = np.asarray(inner(m, sd), dtype=np.float64) * np.ones_like(m)
            return G, _ROUNDOFF * np.abs(G)
        if sd == 0.0 or m.size == 0:
            return gv(m), np.zeros_like(m)
        out = np.empty_like(m)
        out_err = np.empty_like(m)
        for start in range(0, m.size, _CHUNK):  # chunks bound the memory of oscillatory integrands
            mc = m[start : start + _CHUNK]
            pts = np.clip((kink_arr[None, :] - mc[:, None]) / sd, -zmax, zmax)
            lo, hi, owner = _segments(np.concatenate([np.broadcast_to(base, (mc.size, base.size)), pts], axis=1))

            def integrand(z2, own, mc=mc):
                return _phi(z2) * gv(mc[own][:, None] + sd * z2)

            vals, errs, n_eval = _integrate(
                integrand, lo, hi, owner, mc.size, inner_tol, "quad_K inner integral", tol_accept=20 * inner_tol
            )
            out[start : start + _CHUNK] = vals
            out_err[start : start + _CHUNK] = errs
            evaluations[0] += n_eval
            if evaluations[0] > max_evaluations:
                raise QuadratureError(
                    f"quad_K: more than {max_evaluations:.3g} evaluations (oscillatory g at large variance?); "
                    "pass inner=E[g(m + sZ)] in closed form"
                )
        return out, out_err

    def outer(z1: np.ndarray, own) -> np.ndarray:
        flat = z1.ravel()
        fu = fv(sq1 * flat)
        out = np.zeros_like(flat)
        noise = np.zeros_like(flat)
        live = fu != 0.0  # e.g. the dead half of a ReLU: no inner integral needed
        G, G_err = conditional(sq2 * rho * flat[live])
        weight = _phi(flat[live]) * fu[live]
        out[live] = weight * G
        noise[live] = np.abs(weight) * G_err
        return out.reshape(z1.shape), noise.reshape(z1.shape)

    points = [k / sq1 for k in kinks]
    if rho != 0.0:
        for k in g_kinks:
            points += _geometric_points(k / (sq2 * rho), s_unit / abs(rho), zmax)
    lo, hi, owner = _segments(_edges_1d(points, zmax)[None, :])
    # outer target 1e-13 (certifiable 5e-13) plus inner errors <= 2e-13·scale_g weighted by E|f| <= scale_f:
    # the total stays below the 1e-12·scale that is certified below
    total, error, n_eval = _integrate(outer, lo, hi, owner, 1, 1e-13 * scale, "quad_K outer integral", 5e-13 * scale)
    err = float(error[0])  # includes the inner errors, carried as noise: ∫ φ(z1)|f(u)|·err_inner(z1) dz1
    if not err <= 1e-12 * scale:
        raise QuadratureError(f"quad_K: error estimate {err:.3g} exceeds 1e-12 of the scale {scale:.3g}")
    if return_error:
        return QuadResult(float(total[0]), err, n_eval + evaluations[0])
    return np.float64(total[0])


def quad_Kdot(fprime: Callable, q1, q2, c, kinks: Sequence[float] = (0.0,), **kwargs):
    """K̇ = E[f'(u) g'(v)] by quadrature: quad_K applied to the derivatives (pass g=g', inner=E[g'(m+sZ)])."""
    return quad_K(fprime, q1, q2, c, kinks, **kwargs)

# --------------------------------------------------------------------------------------------------
# Polynomials: Isserlis (Wick) moments, exact; Mehler (Hermite) series, float64.
# --------------------------------------------------------------------------------------------------


def _double_factorial(n: int) -> int:
    """n!! with (−1)!! = 0!! = 1."""
    return 1 if n <= 0 else math.prod(range(n, 0, -2))


def isserlis_moment(i: int, j: int, q1, q2, c) -> Fraction:
    """E[u^i v^j] exactly (Isserlis 1918 / Wick): pair the i + j factors.

    E[u^i v^j] = Σ_k C(i,k) C(j,k) k! c^k (i−k−1)!! q1^((i−k)/2) (j−k−1)!! q2^((j−k)/2),
    over k = number of u–v pairs with i − k and j − k even (the rest pair up within u's and within v's).
    Arguments are converted with Fraction (floats exactly).
    """
    q1, q2, c = Fraction(q1), Fraction(q2), Fraction(c)
    total = Fraction(0)
    for k in range(min(i, j) + 1):
        if (i - k) % 2 or (j - k) % 2:
            continue
        total += (
            math.comb(i, k)
            * math.comb(j, k)
            * math.factorial(k)
            * c**k
            * _double_factorial(i - k - 1)
            * q1 ** ((i - k) // 2)
            * _double_factorial(j - k - 1)
            * q2 ** ((j - k) // 2)
        )
    return total


def _poly_K_exact(coeffs: Sequence, q1: Fraction, q2: Fraction, c: Fraction) -> Fraction:
    a = [Fraction(x) for x in coeffs]
    return sum(
        (a[i] * a[j] * isserlis_moment(i, j, q1, q2, c) for i in range(len(a)) for j in range(len(a)) if a[i] and a[j]),
        Fraction(0),
    )


def polynomial_K(coeffs: Sequence, q1, q2, c):
    """K of p(x) = Σ_i coeffs[i] x^i (ascending) by Isserlis, exact in rationals, rounded once to float64."""
    return _K_from_fraction(lambda a, b, d: _poly_K_exact(coeffs, a, b, d))(q1, q2, c)


def hermite_expansion(coeffs: Sequence[float], q: float) -> np.ndarray:
    """Coefficients h_k of z ↦ p(√q z) in probabilists' Hermite polynomials He_k (numpy.polynomial.hermite_e)."""
    scaled = np.array([float(a) * math.sqrt(q) ** i for i, a in enumerate(coeffs)], dtype=np.float64)
    return hermite_e.poly2herme(scaled)


def mehler_K(coeffs: Sequence[float], q1: float, q2: float, c: float) -> np.float64:
    """K of a polynomial by Mehler's formula: E[He_k(z1) He_l(z2)] = δ_kl k! ρ^k for unit normals with correlation ρ.

    With p(√q1 z) = Σ h1_k He_k(z) and p(√q2 z) = Σ h2_k He_k(z): K = Σ_k h1_k h2_k k! ρ^k
    (Mehler 1866; the Hermite form of dual activations, Daniely, Frostig & Singer 2016, §4).
    In float64: an independent method, not an exact one (see test_references for its tolerance).
    """
    rho = _rho_float(q1, q2, c)
    h1, h2 = hermite_expansion(coeffs, q1), hermite_expansion(coeffs, q2)
    return np.float64(sum(h1[k] * h2[k] * math.factorial(k) * rho**k for k in range(len(h1))))


def mehler_terms(coeffs: Sequence[float], q1: float, q2: float, c: float) -> np.ndarray:
    """The terms h1_k h2_k k! ρ^k of mehler_K (their absolute sum is the condition of the series)."""
    rho = _rho_float(q1, q2, c)
    h1, h2 = hermite_expansion(coeffs, q1), hermite_expansion(coeffs, q2)
    return np.array([h1[k] * h2[k] * math.factorial(k) * rho**k for k in range(len(h1))])


def _hermite_integer_coeffs(k: int) -> list[int]:
    """Ascending integer coefficients of He_k: He_{n+1} = x He_n − n He_{n−1}, He_0 = 1, He_1 = x."""
    prev, cur = [1], [0, 1]
    if k == 0:
        return prev
    for n in range(1, k):
        nxt = [0] + cur
        for i, a in enumerate(prev):
            nxt[i] -= n * a
        prev, cur = cur, nxt
    return cur


# --------------------------------------------------------------------------------------------------
# The Reference record
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """Independent K, K̇, V of one activation σ (with its parameters), and σ itself for quadrature.

    Call it with parameters to get the same family with other parameters:
    ``REFERENCES["leaky_relu"](alpha=0.1)``. ``Kdot`` and ``dsigma`` are None where σ has jumps
    (K̇ does not exist as a function, DESIGN.md §1).
    """

    name: str
    params: tuple[tuple[str, Any], ...]
    expr: str  # σ in SymPy syntax in the real variable x, parameters substituted
    sigma: Callable[[float], float]
    dsigma: Callable[[float], float] | None
    K: Callable
    Kdot: Callable | None
    V: Callable
    kinks: tuple[float, ...] = ()  # where σ or σ' is not smooth (quadrature breakpoints)
    source: str = ""  # citation / derivation of the closed form
    inner: Callable[[float, float], float] | None = None  # E[σ(m + sZ)] in closed form, if simple
    dinner: Callable[[float, float], float] | None = None  # E[σ'(m + sZ)] in closed form, if simple
    _factory: Callable[..., Reference] | None = field(default=None, repr=False, compare=False)

    def __call__(self, **params) -> Reference:
        if self._factory is None:
            raise TypeError(f"reference {self.name!r} takes no parameters")
        return self._factory(**{**dict(self.params), **params})

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params)})"

    def sympy(self):
        """σ as a SymPy expression in Symbol('x', real=True) (numbers made rational)."""
        import sympy as sp

        x = sp.Symbol("x", real=True)
        return sp.sympify(self.expr, locals={"x": x}, rational=True)

    def scale(self, q1, q2):
        """√(V(q1) V(q2)): the Cauchy–Schwarz bound of |K|, the scale K errors are measured against."""
        return np.sqrt(self.V(q1) * self.V(q2))

    def dscale(self, q1, q2):
        """√(K̇(q1,q1,q1) K̇(q2,q2,q2)) = √(E[σ'(u)²] E[σ'(v)²]): the scale of K̇ errors."""
        if self.Kdot is None:
            raise TypeError(f"{self.label} has jumps: K̇ does not exist")
        return np.sqrt(self.Kdot(q1, q1, q1) * self.Kdot(q2, q2, q2))

    def quad_K(self, q1, q2, c, *, use_inner: bool = False, **kwargs):
        """K by quadrature of sigma (use_inner: the inner expectation in closed form, if available)."""
        inner = self.inner if use_inner else None
        if use_inner and inner is None:
            raise TypeError(f"{self.label} has no closed-form inner expectation")
        return quad_K(self.sigma, q1, q2, c, self.kinks, inner=inner, **kwargs)

    def quad_Kdot(self, q1, q2, c, *, use_inner: bool = False, **kwargs):
        """K̇ by quadrature of dsigma."""
        if self.dsigma is None:
            raise TypeError(f"{self.label} has jumps: K̇ does not exist")
        inner = self.dinner if use_inner else None
        if use_inner and inner is None:
            raise TypeError(f"{self.label} has no closed-form inner expectation of σ'")
        return quad_Kdot(self.dsigma, q1, q2, c, self.kinks, inner=inner, **kwargs)

    def quad_V(self, q, **kwargs):
        return quad_V(self.sigma, q, self.kinks, **kwargs)


def _family(name: str, **defaults):
    """Register a factory params -> Reference under `name`; REFERENCES[name] is its default instance.

    Parameter names and defaults are those of ntksym.catalog (so REFERENCES[name] and catalog's
    name() describe the same σ)."""

    def decorate(build: Callable[..., Reference]):
        @functools.wraps(build)
        def factory(**params) -> Reference:
            unknown = set(params) - set(defaults)
            if unknown:
                raise TypeError(f"{name} takes parameters {sorted(defaults)}, not {sorted(unknown)}")
            full = {**defaults, **params}
            ref = build(**full)
            return dataclasses.replace(ref, name=name, params=tuple(full.items()), _factory=factory)

        REFERENCES[name] = factory()
        return factory

    return decorate


REFERENCES: dict[str, Reference] = {}


def _ref(expr, sigma, dsigma, K, Kdot, V, kinks=(), source="", inner=None, dinner=None) -> Reference:
    return Reference("", (), expr, sigma, dsigma, K, Kdot, V, tuple(kinks), source, inner, dinner)


def _num(x) -> str:
    """A parameter as it appears in Reference.expr."""
    return repr(float(x)) if not isinstance(x, int) else str(x)


# --------------------------------------------------------------------------------------------------
# Arc-cosine kernels: σ = max(x, 0)^n (Cho & Saul 2009)
# --------------------------------------------------------------------------------------------------
# Cho & Saul, "Kernel methods for deep learning", NeurIPS 2009, eqs. (1), (6)–(7):
#   E[Θ(u)Θ(v) u^n v^n] = (q1 q2)^{n/2} J_n(θ) / (2π),  θ = arccos ρ,
#   J_n(θ) = (−1)^n (sin θ)^{2n+1} ((1/sin θ) ∂/∂θ)^n ((π − θ)/sin θ),
#   J_0 = π − θ,  J_1 = sin θ + (π − θ) cos θ,  J_2 = 3 sin θ cos θ + (π − θ)(1 + 2 cos² θ),
#   J_3 = 15 sin θ − 11 sin³ θ + (π − θ)(9 sin² θ cos θ + 15 cos³ θ)
# (J_3 worked out from the recursion; test_references checks all four against the recursion in SymPy
# and against quadrature). V(q) = E[max(z,0)^{2n}] = q^n (2n − 1)!!/2; σ' = n max(x,0)^{n−1}
# (Heaviside for n = 1), so K̇_n = n² K_{n−1}; the step (n = 0) jumps, so it has no K̇.


def _J(n: int, cv: _Cov):
    theta = mpmath.acos(cv.rho)
    pt = mpmath.pi - theta  # at ρ → −1 both are exact to DPS digits (ρ is exact)
    s, co = cv.s, cv.rho
    if n == 0:
        return pt
    if n == 1:
        return s + pt * co
    if n == 2:
        return 3 * s * co + pt * (1 + 2 * co**2)
    if n == 3:
        return 15 * s - 11 * s**3 + pt * (9 * s**2 * co + 15 * co**3)
    raise ValueError(f"arc-cosine kernel implemented for n = 0..3, not {n}")


def _arccos_mp(n: int, cv: _Cov):
    return cv.sq**n * _J(n, cv) / (2 * mpmath.pi)


def _arccos_V_mp(n: int, q):
    return q**n * _double_factorial(2 * n - 1) / 2


def _relu_power(n: int) -> Callable[[float], float]:
    if n == 0:
        return lambda x: np.where(np.asarray(x) > 0.0, 1.0, 0.0)[()]
    return lambda x: np.where(np.asarray(x) > 0.0, x, 0.0)[()] ** n


@_family("rectified_monomial", k=2)
def rectified_monomial(k: int) -> Reference:
    """σ = max(x, 0)^k, k = 0..3 (k = 0: Heaviside step)."""
    if k not in (0, 1, 2, 3):
        raise ValueError(f"rectified_monomial(k) is implemented for k = 0..3, not {k}")
    expr = "Heaviside(x)" if k == 0 else ("Max(x, 0)" if k == 1 else f"Max(x, 0)**{k}")
    return _ref(
        expr,
        _relu_power(k),
        None if k == 0 else (lambda x, k=k: k * _relu_power(k - 1)(x)),
        _K_from_mp(lambda cv: _arccos_mp(k, cv)),
        None if k == 0 else _K_from_mp(lambda cv: k**2 * _arccos_mp(k - 1, cv)),
        _V_from_mp(lambda q: _arccos_V_mp(k, q)),
        kinks=(0.0,),
        source="Cho & Saul 2009, arc-cosine kernel of degree k",
    )


@_family("relu")
def relu() -> Reference:
    """σ = max(x, 0): the arc-cosine kernel of degree 1."""
    return dataclasses.replace(rectified_monomial(k=1), _factory=None)


@_family("step")
def step() -> Reference:
    """σ = Heaviside(x): K = P(u > 0, v > 0) = (π − θ)/(2π) (Sheppard 1899; Cho & Saul J_0); no K̇."""
    return dataclasses.replace(rectified_monomial(k=0), _factory=None)


# --------------------------------------------------------------------------------------------------
# Piecewise-linear activations by symmetry from the arc-cosine kernels.
# --------------------------------------------------------------------------------------------------
# abrelu(a, b) = a min(x,0) + b max(x,0) = b r(x) − a r(−x), r = relu. Since (−u, −v) ~ (u, v) and
# (u, −v) has correlation −ρ (θ → π − θ):
#   E[r(u)r(v)] = E[r(−u)r(−v)] = K1(θ) = √(q1q2)(s + (π−θ)ρ)/(2π),
#   E[r(u)r(−v)] = E[r(−u)r(v)] = K1(π − θ) = √(q1q2)(s − θρ)/(2π),
#   K = (a² + b²) K1(θ) − 2ab K1(π − θ)   (a = b: K = a²c, as it must).
# σ' = b on x > 0 and a on x < 0; P(u>0, v>0) = (π−θ)/(2π), P(u>0, v<0) = θ/(2π):
#   K̇ = ((a² + b²)(π − θ) + 2ab θ)/(2π);   V = (a² + b²) q/2.
# leaky_relu(α) = abrelu(α, 1) (neural-tangents' LeakyRelu); abs = abrelu(−1, 1) is written below in
# its own published form as a cross-check.


def _abrelu_K_mp(a: float, b: float, cv: _Cov):
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    theta = mpmath.acos(cv.rho)
    k_same = cv.sq * (cv.s + (mpmath.pi - theta) * cv.rho) / (2 * mpmath.pi)
    k_opp = cv.sq * (cv.s - theta * cv.rho) / (2 * mpmath.pi)
    return (a**2 + b**2) * k_same - 2 * a * b * k_opp


def _abrelu_Kdot_mp(a: float, b: float, cv: _Cov):
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    theta = mpmath.acos(cv.rho)
    return ((a**2 + b**2) * (mpmath.pi - theta) + 2 * a * b * theta) / (2 * mpmath.pi)


def _abrelu(a: float, b: float, expr: str, source: str) -> Reference:
    return _ref(
        expr,
        lambda x: np.where(np.asarray(x) > 0.0, b * x, a * x)[()],
        lambda x: np.where(np.asarray(x) > 0.0, float(b), float(a))[()],
        _K_from_mp(lambda cv: _abrelu_K_mp(a, b, cv)),
        _K_from_mp(lambda cv: _abrelu_Kdot_mp(a, b, cv)),
        _V_from_mp(lambda q: (mpmath.mpf(a) ** 2 + mpmath.mpf(b) ** 2) * q / 2),
        kinks=(0.0,),
        source=source,
    )


@_family("abrelu", a=0.0, b=1.0)
def abrelu(a: float, b: float) -> Reference:
    """σ = a·min(x, 0) + b·max(x, 0) (neural-tangents' ABRelu)."""
    return _abrelu(a, b, f"{_num(a)}*Min(x, 0) + {_num(b)}*Max(x, 0)", "arc-cosine K1 by symmetry")


@_family("leaky_relu", alpha=0.01)
def leaky_relu(alpha: float) -> Reference:
    """σ = x if x > 0 else α·x (neural-tangents' LeakyRelu(alpha) = ABRelu(alpha, 1))."""
    return _abrelu(alpha, 1.0, f"Max(x, 0) + {_num(alpha)}*Min(x, 0)", "arc-cosine K1 by symmetry")


# abs: E[|u||v|] = (2√(q1q2)/π)(√(1−ρ²) + ρ arcsin ρ) (e.g. Cho & Saul J_1 folded: K1(θ) + K1(π−θ) twice);
# abs' = sign, K̇ = E[sign u sign v] = (2/π) arcsin ρ (Sheppard 1899); V = q.
@_family("abs")
def abs_() -> Reference:
    """σ = |x|."""
    return _ref(
        "Abs(x)",
        np.abs,
        np.sign,
        _K_from_mp(lambda cv: 2 * cv.sq / mpmath.pi * (cv.s + cv.rho * mpmath.asin(cv.rho))),
        _K_from_mp(lambda cv: 2 / mpmath.pi * mpmath.asin(cv.rho)),
        _V_from_mp(lambda q: q),
        kinks=(0.0,),
        source="E|u||v| = (2√(q1q2)/π)(√(1−ρ²) + ρ arcsin ρ); Sheppard 1899 for K̇",
    )


# sign: E[sign u sign v] = 1 − 2P(u > 0, v < 0) = 1 − 2θ/π = (2/π) arcsin ρ (Sheppard 1899); V = 1; jumps.
@_family("sign")
def sign() -> Reference:
    """σ = sign(x)."""
    return _ref(
        "sign(x)",
        np.sign,
        None,
        _K_from_mp(lambda cv: 2 / mpmath.pi * mpmath.asin(cv.rho)),
        None,
        _V_from_mp(lambda q: mpmath.mpf(1)),
        kinks=(0.0,),
        source="Sheppard 1899 (orthant probability of a bivariate normal)",
    )


# --------------------------------------------------------------------------------------------------
# erf (Williams 1997)
# --------------------------------------------------------------------------------------------------
# Williams, "Computing with infinite networks", NeurIPS 1997, eq. (11), for σ = erf(b x) (the bias
# folded into Σ): E[erf(bu) erf(bv)] = (2/π) arcsin(2b²c / √((1 + 2b²q1)(1 + 2b²q2))).
# σ = a erf(bx) + c0: E[erf] = 0, so K = a²·that + c0².
# σ' = (2ab/√π) e^{−b²x²}: E[e^{−b²(u²+v²)}] = det(I + 2b²Σ)^{−1/2}, so
#   K̇ = (4a²b²/π) / √((1 + 2b²q1)(1 + 2b²q2) − 4b⁴c²)  (= ∂K/∂c, Price's theorem),
# with the determinant written 1 + 2b²(q1 + q2) + 4b⁴ q1q2(1 − ρ)(1 + ρ) (no cancellation).
# V = (2a²/π) arcsin(2b²q/(1 + 2b²q)) + c0².
# Inner expectation: E[erf(b(m + sZ))] = erf(bm/√(1 + 2b²s²)).


def _erf_K_mp(a, b, c0, cv: _Cov):
    a, b, c0 = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(c0)
    b2 = b * b
    arg = 2 * b2 * cv.c / mpmath.sqrt((1 + 2 * b2 * cv.q1) * (1 + 2 * b2 * cv.q2))
    return 2 * a**2 / mpmath.pi * mpmath.asin(arg) + c0**2


def _erf_Kdot_mp(a, b, cv: _Cov):
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    b2 = b * b
    det = 1 + 2 * b2 * (cv.q1 + cv.q2) + 4 * b2**2 * cv.det
    return 4 * a**2 * b2 / mpmath.pi / mpmath.sqrt(det)


@_family("erf", a=1.0, b=1.0, c=0.0)
def erf(a: float, b: float, c: float) -> Reference:
    """σ = a·erf(b·x) + c (neural-tangents' Erf)."""
    c0 = c
    return _ref(
        f"{_num(a)}*erf({_num(b)}*x) + {_num(c0)}",
        lambda x: a * special.erf(b * x) + c0,
        lambda x: a * b * 2.0 / math.sqrt(math.pi) * np.exp(-((b * x) ** 2)),
        _K_from_mp(lambda cv: _erf_K_mp(a, b, c0, cv)),
        _K_from_mp(lambda cv: _erf_Kdot_mp(a, b, cv)),
        _V_from_mp(
            lambda q: 2 * mpmath.mpf(a) ** 2 / mpmath.pi * mpmath.asin(2 * mpmath.mpf(b) ** 2 * q / (1 + 2 * mpmath.mpf(b) ** 2 * q))
            + mpmath.mpf(c0) ** 2
        ),
        kinks=(0.0,),  # not a kink; the steepest point of erf(bx) at large b²q, a useful breakpoint
        source="Williams 1997, eq. (11); K̇ by det(I + 2b²Σ)^(-1/2)",
        inner=lambda m, s: a * special.erf(b * m / np.sqrt(1.0 + 2.0 * (b * s) ** 2)) + c0,
        dinner=lambda m, s: a * b * 2.0 / math.sqrt(math.pi) / np.sqrt(1.0 + 2.0 * (b * s) ** 2)
        * np.exp(-((b * m) ** 2) / (1.0 + 2.0 * (b * s) ** 2)),
    )


# --------------------------------------------------------------------------------------------------
# GELU = x Φ(x) (exact, not the tanh approximation)
# --------------------------------------------------------------------------------------------------
# Derived here by Stein's lemma (cf. Tsuchida, Pearce, van der Heide, Roosta & Gallagher, "Avoiding
# kernel fixed points: computing with ELU and GELU infinite networks", AAAI 2021, which gives the
# GELU kernel in an equivalent form); test_references checks it against quadrature.
# Write Φ(x) = P(w ≤ x) with w ~ N(0,1) independent, s = u − w1, t = v − w2; then
#   K = E[u v 1{s>0} 1{t>0}]
#     = Cov(u,v) P(s>0,t>0) + Cov(u,s) E[v δ(s) 1{t>0}] + Cov(u,t) E[v 1{s>0} δ(t)]   (Stein's lemma)
# with Var s = 1+q1, Var t = 1+q2, Cov(s,t) = c, Cov(u,s) = q1, Cov(u,t) = c, Cov(v,s) = c, Cov(v,t) = q2.
# Sheppard: P(s>0,t>0) = 1/4 + arcsin(c/√((1+q1)(1+q2)))/(2π). For a zero-mean Gaussian pair,
# E[v 1{t>0}] = Cov(v,t)/√(2π Var t); conditioning on s = 0 (density 1/√(2π(1+q1))) gives the second
# term; with D = (1+q1)(1+q2) − c² = 1 + q1 + q2 + q1q2(1−ρ²) the last two terms add up to
#   [q1q2 + c²(1 − q1q2)/((1+q1)(1+q2))] / (2π√D).
# So  K = c/4 + c·arcsin(c/√((1+q1)(1+q2)))/(2π) + [q1q2 + c²(1 − q1q2)/((1+q1)(1+q2))]/(2π√D),
# and at c = 0 K = E[uΦ(u)]E[vΦ(v)] = q1q2/(2π√((1+q1)(1+q2))) as it must.
# σ' = Φ(x) + xφ(x). With E[φ(u)φ(v)] = 1/(2π√D), E[Φ(u) vφ(v)] = c/(1+q2)·E[φ(u)φ(v)] (Stein), and
# E[uφ(u) vφ(v)] = c/(2π D^{3/2}) (Gaussian integral with precision Σ⁻¹ + I):
#   K̇ = 1/4 + arcsin(c/√((1+q1)(1+q2)))/(2π) + c(1/(1+q1) + 1/(1+q2))/(2π√D) + c/(2π D^{3/2}).
# V(q) = K(q,q,q) = q/4 + q·arcsin(q/(1+q))/(2π) + q²/(π(1+q)√(1+2q)).


def _gelu_K_mp(q1, q2, c, det):
    """K of x Φ(x) at (q1, q2, c); det = q1 q2 − c² (≥ 0), passed in so it is free of cancellation."""
    a1, a2 = 1 + q1, 1 + q2
    D = 1 + q1 + q2 + det
    return (
        c / 4
        + c * mpmath.asin(c / mpmath.sqrt(a1 * a2)) / (2 * mpmath.pi)
        + (q1 * q2 + c**2 * (1 - q1 * q2) / (a1 * a2)) / (2 * mpmath.pi * mpmath.sqrt(D))
    )


def _gelu_Kdot_mp(q1, q2, c, det):
    a1, a2 = 1 + q1, 1 + q2
    D = 1 + q1 + q2 + det
    return (
        mpmath.mpf(1) / 4
        + mpmath.asin(c / mpmath.sqrt(a1 * a2)) / (2 * mpmath.pi)
        + c * (1 / a1 + 1 / a2) / (2 * mpmath.pi * mpmath.sqrt(D))
        + c / (2 * mpmath.pi * D**1.5)
    )


def _gelu_sigma(x):
    return x * 0.5 * special.erfc(-x / math.sqrt(2.0))  # erfc form: accurate Φ for x << 0


def _gelu_dsigma(x):
    return 0.5 * special.erfc(-x / math.sqrt(2.0)) + x * _phi(x)


@_family("gelu")
def gelu() -> Reference:
    """σ = x·Φ(x) (exact GELU)."""
    return _ref(
        "x*(1 + erf(x/sqrt(2)))/2",
        _gelu_sigma,
        _gelu_dsigma,
        _K_from_mp(lambda cv: _gelu_K_mp(cv.q1, cv.q2, cv.c, cv.det)),
        _K_from_mp(lambda cv: _gelu_Kdot_mp(cv.q1, cv.q2, cv.c, cv.det)),
        _V_from_mp(lambda q: q / 4 + q * mpmath.asin(q / (1 + q)) / (2 * mpmath.pi) + q**2 / (mpmath.pi * (1 + q) * mpmath.sqrt(1 + 2 * q))),
        kinks=(0.0,),
        source="derived by Stein's lemma (see comment); cf. Tsuchida et al. 2021",
    )


# --------------------------------------------------------------------------------------------------
# sin, cos, exp, gaussian: Gaussian integrals (characteristic function, moment generating function)
# --------------------------------------------------------------------------------------------------
# Characteristic function: E[cos(t₁u + t₂v + φ)] = cos φ · exp(−tᵀΣt/2). With
#   Var(u − v) = q1 + q2 − 2c = (√q1 − √q2)² + 2√(q1q2)(1 − ρ)  (cancellation-free form),
#   Var(u + v) = q1 + q2 + 2c = (√q1 − √q2)² + 2√(q1q2)(1 + ρ):
# sin(a,b,c0) = a sin(bx + c0): sin A sin B = [cos(A − B) − cos(A + B)]/2 ⇒
#   K = a²/2 [e^{−b²Var(u−v)/2} − cos(2c0) e^{−b²Var(u+v)/2}],  K̇ = a²b²/2 [e^{−b²Var(u−v)/2} + cos(2c0) e^{−b²Var(u+v)/2}],
#   V = a²/2 [1 − cos(2c0) e^{−2b²q}];  cos(a,b,c0) = a cos(bx + c0): the same with the sign of the
#   cos(2c0) term flipped in K and V and in K̇ (cf. Pearce et al. 2019, "Expressive priors in Bayesian
#   neural networks: kernel combinations and periodic functions"; neural-tangents Sin/Cos).
#   Inner expectations: E[sin(b(m + sZ) + c0)] = sin(bm + c0) e^{−b²s²/2}, likewise cos.
# exp(a,b,c0) = a e^{bx} + c0 (moment generating function E[e^{tᵀx}] = e^{tᵀΣt/2}):
#   K = a² e^{b²Var(u+v)/2} + a c0 (e^{b²q1/2} + e^{b²q2/2}) + c0²,  K̇ = a²b² e^{b²Var(u+v)/2},
#   V = a² e^{2b²q} + 2 a c0 e^{b²q/2} + c0²  (overflows float64 once b²·Var(u+v)/2 > 709).
# gaussian(a,b,c0) = a e^{−bx²} + c0, b > 0: E[e^{−b(u² + v²)}] = det(I + 2bΣ)^{−1/2} with
#   det = 1 + 2b(q1 + q2) + 4b² q1q2(1 − ρ²);  E[e^{−bu²}] = (1 + 2bq1)^{−1/2};
#   K = a² det^{−1/2} + a c0 ((1 + 2bq1)^{−1/2} + (1 + 2bq2)^{−1/2}) + c0²;
#   σ' = −2abx e^{−bx²}, E[u e^{−bu²} v e^{−bv²}] = det^{−1/2}·[Σ(I + 2bΣ)⁻¹]₁₂ = c det^{−3/2}, so
#   K̇ = 4a²b² c det^{−3/2};  V = a²(1 + 4bq)^{−1/2} + 2a c0 (1 + 2bq)^{−1/2} + c0².
#   Inner: E[e^{−b(m + sZ)²}] = (1 + 2bs²)^{−1/2} e^{−bm²/(1 + 2bs²)}.


def _var_diff(cv: _Cov):
    return (mpmath.sqrt(cv.q1) - mpmath.sqrt(cv.q2)) ** 2 + 2 * cv.sq * (1 - cv.rho)


def _var_sum(cv: _Cov):
    return (mpmath.sqrt(cv.q1) - mpmath.sqrt(cv.q2)) ** 2 + 2 * cv.sq * (1 + cv.rho)


def _trig(kind: str, a: float, b: float, c0: float) -> Reference:
    sgn = -1 if kind == "sin" else 1  # sign of the cos(2c0) term in K and V

    def K(cv):
        A, B, C0 = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(c0)
        return A**2 / 2 * (mpmath.exp(-(B**2) * _var_diff(cv) / 2) + sgn * mpmath.cos(2 * C0) * mpmath.exp(-(B**2) * _var_sum(cv) / 2))

    def Kdot(cv):
        A, B, C0 = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(c0)
        return A**2 * B**2 / 2 * (mpmath.exp(-(B**2) * _var_diff(cv) / 2) - sgn * mpmath.cos(2 * C0) * mpmath.exp(-(B**2) * _var_sum(cv) / 2))

    def V(q):
        A, B, C0 = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(c0)
        return A**2 / 2 * (1 + sgn * mpmath.cos(2 * C0) * mpmath.exp(-2 * B**2 * q))

    fn, dfn = (np.sin, np.cos) if kind == "sin" else (np.cos, lambda t: -np.sin(t))
    return _ref(
        f"{_num(a)}*{kind}({_num(b)}*x + {_num(c0)})",
        lambda x: a * fn(b * x + c0),
        lambda x: a * b * dfn(b * x + c0),
        _K_from_mp(K),
        _K_from_mp(Kdot),
        _V_from_mp(V),
        kinks=(),
        source="characteristic function of N(0, Σ)",
        inner=lambda m, s: a * fn(b * m + c0) * np.exp(-0.5 * (b * s) ** 2),
        dinner=lambda m, s: a * b * dfn(b * m + c0) * np.exp(-0.5 * (b * s) ** 2),
    )


@_family("sin", a=1.0, b=1.0, c=0.0)
def sin(a: float, b: float, c: float) -> Reference:
    """σ = a·sin(b·x + c) (neural-tangents' Sin)."""
    return _trig("sin", a, b, c)


@_family("cos", a=1.0, b=1.0, c=0.0)
def cos(a: float, b: float, c: float) -> Reference:
    """σ = a·cos(b·x + c) (neural-tangents' Cos)."""
    return _trig("cos", a, b, c)


@_family("exp", a=1.0, b=1.0, c=0.0)
def exp(a: float, b: float, c: float) -> Reference:
    """σ = a·exp(b·x) + c (neural-tangents' Exp, with an offset c)."""
    c0 = c

    def K(cv):
        A, B, C0 = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(c0)
        return A**2 * mpmath.exp(B**2 * _var_sum(cv) / 2) + A * C0 * (mpmath.exp(B**2 * cv.q1 / 2) + mpmath.exp(B**2 * cv.q2 / 2)) + C0**2

    def Kdot(cv):
        A, B = mpmath.mpf(a), mpmath.mpf(b)
        return A**2 * B**2 * mpmath.exp(B**2 * _var_sum(cv) / 2)

    def V(q):
        A, B, C0 = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(c0)
        return A**2 * mpmath.exp(2 * B**2 * q) + 2 * A * C0 * mpmath.exp(B**2 * q / 2) + C0**2

    return _ref(
        f"{_num(a)}*exp({_num(b)}*x) + {_num(c0)}",
        lambda x: a * np.exp(b * x) + c0,
        lambda x: a * b * np.exp(b * x),
        _K_from_mp(K),
        _K_from_mp(Kdot),
        _V_from_mp(V),
        kinks=(),
        source="moment generating function of N(0, Σ)",
        inner=lambda m, s: a * np.exp(b * m + 0.5 * (b * s) ** 2) + c0,  # one exponent: no overflow of a factor
        dinner=lambda m, s: a * b * np.exp(b * m + 0.5 * (b * s) ** 2),
    )


@_family("gaussian", a=1.0, b=1.0, c=0.0)
def gaussian(a: float, b: float, c: float) -> Reference:
    """σ = a·exp(−b·x²) + c, b > 0."""
    if not b > 0:
        raise ValueError(f"gaussian(a, b, c) needs b > 0 (σ = a·exp(−b·x²) + c), got b={b}")
    c0 = c

    def K(cv):
        A, B, C0 = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(c0)
        det = 1 + 2 * B * (cv.q1 + cv.q2) + 4 * B**2 * cv.det
        return A**2 / mpmath.sqrt(det) + A * C0 * (1 / mpmath.sqrt(1 + 2 * B * cv.q1) + 1 / mpmath.sqrt(1 + 2 * B * cv.q2)) + C0**2

    def Kdot(cv):
        A, B = mpmath.mpf(a), mpmath.mpf(b)
        det = 1 + 2 * B * (cv.q1 + cv.q2) + 4 * B**2 * cv.det
        return 4 * A**2 * B**2 * cv.c / det**1.5

    def V(q):
        A, B, C0 = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(c0)
        return A**2 / mpmath.sqrt(1 + 4 * B * q) + 2 * A * C0 / mpmath.sqrt(1 + 2 * B * q) + C0**2

    def inner(m, s, a=a, b=b, c0=c0):
        w = 1.0 + 2.0 * b * s * s
        return a * np.exp(-b * m * m / w) / math.sqrt(w) + c0

    def dinner(m, s, a=a, b=b):  # E[−2ab(m + sZ) e^{−b(m+sZ)²}] = −2ab m e^{−bm²/w} / w^{3/2}
        w = 1.0 + 2.0 * b * s * s
        return -2.0 * a * b * m * np.exp(-b * m * m / w) / w**1.5

    return _ref(
        f"{_num(a)}*exp(-{_num(b)}*x**2) + {_num(c0)}",
        lambda x: a * np.exp(-b * x * x) + c0,
        lambda x: -2.0 * a * b * x * np.exp(-b * x * x),
        _K_from_mp(K),
        _K_from_mp(Kdot),
        _V_from_mp(V),
        kinks=(),
        source="Gaussian integral det(I + 2bΣ)^(-1/2)",
        inner=inner,
        dinner=dinner,
    )


# --------------------------------------------------------------------------------------------------
# Polynomials: monomial(k), polynomial(coeffs), hermite(k) — Isserlis, exact
# --------------------------------------------------------------------------------------------------


def _poly_eval(coeffs: Sequence[float]) -> Callable[[float], float]:
    cs = [float(a) for a in coeffs]

    def p(x: float) -> float:
        acc = 0.0
        for a in reversed(cs):
            acc = acc * x + a
        return acc

    return p


def _poly_derivative(coeffs: Sequence) -> list:
    return [i * Fraction(a) for i, a in enumerate(coeffs)][1:] or [Fraction(0)]


def _poly_V_exact(coeffs: Sequence, q: Fraction) -> Fraction:
    return _poly_K_exact(coeffs, q, q, q)


def _poly_expr(coeffs: Sequence) -> str:
    terms = [f"{_num(a)}*x**{i}" for i, a in enumerate(coeffs) if a]
    return " + ".join(terms) or "0"


def _polynomial_reference(coeffs: Sequence, expr: str, source: str) -> Reference:
    dcoeffs = _poly_derivative(coeffs)
    return _ref(
        expr,
        _poly_eval(coeffs),
        _poly_eval(dcoeffs),
        _K_from_fraction(lambda a, b, d: _poly_K_exact(coeffs, a, b, d)),
        _K_from_fraction(lambda a, b, d: _poly_K_exact(dcoeffs, a, b, d)),
        _V_from_fraction(lambda q: _poly_V_exact(coeffs, q)),
        kinks=(),
        source=source,
    )


@_family("monomial", k=2)
def monomial(k: int) -> Reference:
    """σ = x^k, k = 0..6 (neural-tangents' Monomial)."""
    if not (isinstance(k, int) and 0 <= k <= 6):
        raise ValueError(f"monomial(k) is implemented for integer k = 0..6, not {k!r}")
    coeffs = [0] * k + [1]
    return _polynomial_reference(coeffs, f"x**{k}", "Isserlis 1918 (exact)")


@_family("polynomial", coeffs=(0.0, 1.0))
def polynomial(coeffs: Sequence[float]) -> Reference:
    """σ = Σ_i coeffs[i]·x^i (ascending order, degree <= 6; neural-tangents' Polynomial takes the same order)."""
    coeffs = tuple(coeffs)
    if not 1 <= len(coeffs) <= 7:
        raise ValueError(f"polynomial(coeffs) needs 1..7 coefficients (degree <= 6), got {len(coeffs)}")
    return _polynomial_reference(coeffs, _poly_expr(coeffs), "Isserlis 1918 (exact)")


# hermite(k) = He_k(x)/√(k!) (neural-tangents' Hermite: normalised probabilists' Hermite), so that
# K(1, 1, ρ) = ρ^k (Mehler). General variances: Isserlis on the integer coefficients of He_k,
# divided by k! exactly. σ' = k He_{k−1}/√(k!) = √k·hermite(k−1), so K̇ = k·K_{hermite(k−1)}.


def _hermite_K_exact(k: int, q1: Fraction, q2: Fraction, c: Fraction) -> Fraction:
    return _poly_K_exact(_hermite_integer_coeffs(k), q1, q2, c) / math.factorial(k)


@_family("hermite", k=2)
def hermite(k: int) -> Reference:
    """σ = He_k(x)/√(k!), k = 0..6."""
    if not (isinstance(k, int) and 0 <= k <= 6):
        raise ValueError(f"hermite(k) is implemented for integer k = 0..6, not {k!r}")
    he = _hermite_integer_coeffs(k)
    norm = math.sqrt(math.factorial(k))
    he_eval = _poly_eval(he)
    dhe_eval = _poly_eval(_poly_derivative(he))
    return _ref(
        f"hermite_prob({k}, x)/sqrt(factorial({k}))",
        lambda x: he_eval(x) / norm,
        lambda x: dhe_eval(x) / norm,
        _K_from_fraction(lambda a, b, d: _hermite_K_exact(k, a, b, d)),
        _K_from_fraction(lambda a, b, d: k * _hermite_K_exact(k - 1, a, b, d) if k else Fraction(0)),
        _V_from_fraction(lambda q: _hermite_K_exact(k, q, q, q)),
        kinks=(),
        source="Isserlis 1918 on He_k (exact); K(1,1,ρ) = ρ^k by Mehler",
    )


# --------------------------------------------------------------------------------------------------
# Activations outside the catalog (closed forms derived here; test_references checks each by quadrature)
# --------------------------------------------------------------------------------------------------

# x·erf(x): with Φ(√2 x) = (1 + erf x)/2, x erf x = 2g(x) − x where g(x) = xΦ(√2x) = gelu(√2x)/√2.
# E[g(u)g(v)] = K_gelu(2q1, 2q2, 2c)/2; E[u g(v)] = c E[g'(v)] = c (E[Φ(√2v)] + √2 E[vφ(√2v)]) = c/2
# (Stein; the second mean vanishes by oddness). Hence
#   K = 2 K_gelu(2q1, 2q2, 2c) − c,   K̇ = ∂K/∂c = 4 K̇_gelu(2q1, 2q2, 2c) − 1,   V = 2 V_gelu(2q) − q.
@_family("x*erf(x)")
def x_erf() -> Reference:
    return _ref(
        "x*erf(x)",
        lambda x: x * special.erf(x),
        lambda x: special.erf(x) + 2.0 / math.sqrt(math.pi) * x * np.exp(-x * x),
        _K_from_mp(lambda cv: 2 * _gelu_K_mp(2 * cv.q1, 2 * cv.q2, 2 * cv.c, 4 * cv.det) - cv.c),
        _K_from_mp(lambda cv: 4 * _gelu_Kdot_mp(2 * cv.q1, 2 * cv.q2, 2 * cv.c, 4 * cv.det) - 1),
        _V_from_mp(lambda q: 2 * _gelu_K_mp(2 * q, 2 * q, 2 * q, mpmath.mpf(0)) - q),
        kinks=(0.0,),
        source="2·K_gelu(2q1, 2q2, 2c) − c (derived from the GELU kernel, see comment)",
    )


# x·exp(−x²/2): E[u e^{−u²/2} v e^{−v²/2}] = det(I + Σ)^{−1/2} [Σ(I + Σ)⁻¹]₁₂ = c D^{−3/2},
# D = det(I + Σ) = 1 + q1 + q2 + q1q2(1 − ρ²). K̇ = ∂K/∂c = D^{−5/2}(D + 3c²) = ((1+q1)(1+q2) + 2c²) D^{−5/2}
# (also directly: σ' = (1 − x²)e^{−x²/2}). V = q (1 + 2q)^{−3/2}.
@_family("x*exp(-x**2/2)")
def x_gauss() -> Reference:
    def D(cv):
        return 1 + cv.q1 + cv.q2 + cv.det

    return _ref(
        "x*exp(-x**2/2)",
        lambda x: x * np.exp(-0.5 * x * x),
        lambda x: (1.0 - x * x) * np.exp(-0.5 * x * x),
        _K_from_mp(lambda cv: cv.c / D(cv) ** 1.5),
        _K_from_mp(lambda cv: ((1 + cv.q1) * (1 + cv.q2) + 2 * cv.c**2) / D(cv) ** 2.5),
        _V_from_mp(lambda q: q / (1 + 2 * q) ** 1.5),
        kinks=(),
        source="Gaussian integral with precision Σ⁻¹ + I (see comment)",
    )


# cos(x)·exp(−x²/4): cos u cos v = [cos(u − v) + cos(u + v)]/2 and
#   E[e^{i tᵀx} e^{−xᵀBx/2}] = det(I + ΣB)^{−1/2} exp(−tᵀ S t/2),  S = (Σ⁻¹ + B)⁻¹ = Σ(I + BΣ)⁻¹,
# with B = I/2: N = det(I + Σ/2) = 1 + (q1 + q2)/2 + P/4, P = q1q2 − c² = q1q2(1 − ρ²);
# S₁₁ = (q1 + P/2)/N, S₂₂ = (q2 + P/2)/N, S₁₂ = c/N. With A∓ = tᵀSt for t = (1, ∓1),
#   A∓ = (q1 + q2 + P ∓ 2c)/N,  K = N^{−1/2} (e^{−A₋/2} + e^{−A₊/2})/2.
# (A₋ is written with q1 + q2 − 2c = Var(u − v) in its cancellation-free form.)
# K̇ = ∂K/∂c (Price): with ∂N/∂c = −c/2, ∂A∓/∂c = ((−2c ∓ 2)N + (q1 + q2 + P ∓ 2c) c/2)/N²,
#   K̇ = N^{−1/2}/2 · [ (c/(4N))(e^{−A₋/2} + e^{−A₊/2}) − (∂A₋ e^{−A₋/2} + ∂A₊ e^{−A₊/2})/2 ].
# V = (1 + q)^{−1/2} (1 + e^{−2q/(1+q)})/2.
def _cosgauss_parts(cv: _Cov):
    P = cv.det
    N = 1 + (cv.q1 + cv.q2) / 2 + P / 4
    Bm = _var_diff(cv) + P  # q1 + q2 + P − 2c
    Bp = _var_sum(cv) + P  # q1 + q2 + P + 2c
    return N, Bm, Bp


def _cosgauss_K(cv: _Cov):
    N, Bm, Bp = _cosgauss_parts(cv)
    return (mpmath.exp(-Bm / (2 * N)) + mpmath.exp(-Bp / (2 * N))) / (2 * mpmath.sqrt(N))


def _cosgauss_Kdot(cv: _Cov):
    N, Bm, Bp = _cosgauss_parts(cv)
    c = cv.c
    Em, Ep = mpmath.exp(-Bm / (2 * N)), mpmath.exp(-Bp / (2 * N))
    dAm = ((-2 * c - 2) * N + Bm * c / 2) / N**2
    dAp = ((-2 * c + 2) * N + Bp * c / 2) / N**2
    return ((c / (4 * N)) * (Em + Ep) - (dAm * Em + dAp * Ep) / 2) / (2 * mpmath.sqrt(N))


@_family("cos(x)*exp(-x**2/4)")
def cos_gauss() -> Reference:
    return _ref(
        "cos(x)*exp(-x**2/4)",
        lambda x: np.cos(x) * np.exp(-0.25 * x * x),
        lambda x: -(np.sin(x) + 0.5 * x * np.cos(x)) * np.exp(-0.25 * x * x),
        _K_from_mp(_cosgauss_K),
        _K_from_mp(_cosgauss_Kdot),
        _V_from_mp(lambda q: (1 + mpmath.exp(-2 * q / (1 + q))) / (2 * mpmath.sqrt(1 + q))),
        kinks=(),
        source="Gaussian integral with a Fourier factor (see comment)",
    )


# x/2 + relu(x) = abrelu(a = 1/2, b = 3/2).
@_family("x/2 + Max(x, 0)")
def half_x_relu() -> Reference:
    return _abrelu(0.5, 1.5, "x/2 + Max(x, 0)", "abrelu(1/2, 3/2): arc-cosine K1 by symmetry")


# erf(x) + sin(x): K = K_erf + K_sin + E[erf(u) sin(v)] + E[sin(u) erf(v)].
# F(c) = E[erf(u) sin(v)] vanishes at c = 0 (E[erf u] = 0) and by Price's theorem
#   F'(c) = E[erf'(u) cos(v)] = (2/√π) E[e^{−u²} cos v] = (2/√π)(1 + 2q1)^{−1/2} exp(−q2/2 + c²/(1 + 2q1))
# (Gaussian integral with B = diag(2, 0): S₂₂ = q2 − 2c²/(1 + 2q1)); integrating in c,
#   E[erf(u) sin(v)] = e^{−q2/2} erfi(c/√(1 + 2q1)).
# (At q1 → 0: (2/√π) c e^{−q2/2} = E[(2u/√π) sin v], as it must.) K̇ adds the F'(c) terms to
# K̇_erf + K̇_sin. V = V_erf + V_sin + 2e^{−q/2} erfi(q/√(1 + 2q)). erfi's growth e^{x²} is
# cancelled by e^{−q2/2}: the product is ≤ 1 (exponent c²/(1+2q1) − q2/2 < 0), and mpmath has no overflow.
@_family("erf(x) + sin(x)")
def erf_sin() -> Reference:
    E, S = erf(a=1.0, b=1.0, c=0.0), sin(a=1.0, b=1.0, c=0.0)

    def cross(cv):
        return mpmath.exp(-cv.q2 / 2) * mpmath.erfi(cv.c / mpmath.sqrt(1 + 2 * cv.q1)) + mpmath.exp(-cv.q1 / 2) * mpmath.erfi(
            cv.c / mpmath.sqrt(1 + 2 * cv.q2)
        )

    def dcross(cv):
        def one(qa, qb):
            return 2 / mpmath.sqrt(mpmath.pi) / mpmath.sqrt(1 + 2 * qa) * mpmath.exp(-qb / 2 + cv.c**2 / (1 + 2 * qa))

        return one(cv.q1, cv.q2) + one(cv.q2, cv.q1)

    def K(cv):
        return _erf_K_mp(1, 1, 0, cv) + _trig_K_sin(cv) + cross(cv)

    def Kdot(cv):
        return _erf_Kdot_mp(1, 1, cv) + _trig_Kdot_sin(cv) + dcross(cv)

    def V(q):
        return 2 / mpmath.pi * mpmath.asin(2 * q / (1 + 2 * q)) + (1 - mpmath.exp(-2 * q)) / 2 + 2 * mpmath.exp(-q / 2) * mpmath.erfi(
            q / mpmath.sqrt(1 + 2 * q)
        )

    return _ref(
        "erf(x) + sin(x)",
        lambda x: special.erf(x) + np.sin(x),
        lambda x: 2.0 / math.sqrt(math.pi) * np.exp(-x * x) + np.cos(x),
        _K_from_mp(K),
        _K_from_mp(Kdot),
        _V_from_mp(V),
        kinks=(0.0,),
        source="Williams 1997 + characteristic function + erfi cross term (see comment)",
        inner=lambda m, s: E.inner(m, s) + S.inner(m, s),
        dinner=lambda m, s: E.dinner(m, s) + S.dinner(m, s),
    )


def _trig_K_sin(cv: _Cov):
    return (mpmath.exp(-_var_diff(cv) / 2) - mpmath.exp(-_var_sum(cv) / 2)) / 2


def _trig_Kdot_sin(cv: _Cov):
    return (mpmath.exp(-_var_diff(cv) / 2) + mpmath.exp(-_var_sum(cv) / 2)) / 2


# x²·Heaviside(x) − x = r(x)² − x: K = K_2(θ) − E[r(u)² v] − E[u r(v)²] + c, and by Stein
# E[u r(v)²] = c E[2 r(v)] = 2c √(q2/(2π)), so
#   K = K_2 − 2c(√q1 + √q2)/√(2π) + c;   σ' = 2r(x) − 1, K̇ = 4K_1 − 2(√q1 + √q2)/√(2π) + 1;
#   V = 3q²/2 − 4q^{3/2}/√(2π) + q.
@_family("x**2*Heaviside(x) - x")
def relu2_minus_x() -> Reference:
    def K(cv):
        return _arccos_mp(2, cv) - 2 * cv.c * (mpmath.sqrt(cv.q1) + mpmath.sqrt(cv.q2)) / mpmath.sqrt(2 * mpmath.pi) + cv.c

    def Kdot(cv):
        return 4 * _arccos_mp(1, cv) - 2 * (mpmath.sqrt(cv.q1) + mpmath.sqrt(cv.q2)) / mpmath.sqrt(2 * mpmath.pi) + 1

    return _ref(
        "x**2*Heaviside(x) - x",
        lambda x: np.where(np.asarray(x) > 0.0, x * x, 0.0)[()] - x,
        lambda x: np.where(np.asarray(x) > 0.0, 2.0 * x, 0.0)[()] - 1.0,
        _K_from_mp(K),
        _K_from_mp(Kdot),
        _V_from_mp(lambda q: 3 * q**2 / 2 - 4 * q**1.5 / mpmath.sqrt(2 * mpmath.pi) + q),
        kinks=(0.0,),
        source="arc-cosine K_2, K_1 and Stein's lemma (see comment)",
    )


CATALOG_NAMES = (
    "relu", "leaky_relu", "abrelu", "abs", "step", "sign", "erf", "gelu", "sin", "cos", "exp", "gaussian",
    "monomial", "rectified_monomial", "polynomial", "hermite",
)  # fmt: skip
EXTRA_NAMES = (
    "x*erf(x)", "x*exp(-x**2/2)", "cos(x)*exp(-x**2/4)", "x/2 + Max(x, 0)", "erf(x) + sin(x)", "x**2*Heaviside(x) - x",
)  # fmt: skip
assert set(REFERENCES) == set(CATALOG_NAMES) | set(EXTRA_NAMES)

__all__ = [
    "CATALOG_NAMES",
    "DPS",
    "EXTRA_NAMES",
    "QuadResult",
    "QuadratureError",
    "REFERENCES",
    "Reference",
    "ZMAX",
    "ZMAX_CANDIDATES",
    "hermite_expansion",
    "central_difference_dK_dc",
    "isserlis_moment",
    "mehler_K",
    "mehler_terms",
    "polynomial_K",
    "quad_K",
    "quad_Kdot",
    "quad_V",
    "quad_mean",
]
