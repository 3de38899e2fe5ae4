"""Numeric duals in JAX: the panelled Gauss–Legendre rule of ntksym.gaussian.numeric, as fixed-size arrays.

The panels are those of the NumPy rule (its module docstring): |z| ≤ L split at the Gaussian ladder and at each
feature's ladder t ± m·ε — for σ(√q·z) at t = b/√q, ε = w/√q; for the inner integral of an outer node z1 at
t = (b/√q2 − ρz1)/s, ε = w/(√q2·s); for the outer integral also at the features of the inner expectation G.
Unlike the NumPy code, zero-length panels are kept (their weights are exactly 0), so every covariance has the
same number of nodes and the rule jit-compiles and vectorises; the outer dimension is a lax.scan, so memory is
that of one inner integral per covariance. Gauss–Hermite on the whole line, which this replaces, converges only
within σ's strip of analyticity scaled by 1/√q: 96 nodes gave tanh's K̇ 89 % wrong at q = 100.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..gaussian.numeric import RULE, feature_arrays
from . import safe

_CLIP = RULE.truncation + RULE.reach + 1.0  # a ladder point (within `reach` of its centre) beyond L is clipped anyway


@dataclass(frozen=True)
class Features:
    """Centres b, widths w (inf: a kink between polynomial pieces) and kink flags of σ's features, in x-units."""

    centers: tuple[float, ...]
    widths: tuple[float, ...]
    kinks: tuple[bool, ...]

    @classmethod
    def of(cls, *exprs) -> Features:
        """The features of all the expressions, one per centre (the narrowest width; a kink if any is one)."""
        merged: dict[float, tuple[float, bool]] = {}
        for expr in exprs:
            for b, w, k in zip(*feature_arrays(expr)):
                width, kink = merged.get(float(b), (np.inf, False))
                merged[float(b)] = (min(width, float(w)), kink or bool(k))
        centres = tuple(sorted(merged))
        return cls(centres, tuple(merged[b][0] for b in centres), tuple(merged[b][1] for b in centres))


def _position(num, den):
    """num/den, with |den| floored at the dtype's tiny (sign kept), clipped into ±_CLIP: never inf or NaN."""
    tiny = jnp.finfo(den.dtype).tiny
    den = jnp.where(den < 0, jnp.minimum(den, -tiny), jnp.maximum(den, tiny))
    return jnp.clip(num / den, -_CLIP, _CLIP)


def _width(num, den):
    """num/|den| ≥ 0 with |den| floored at tiny; may be inf (a kink's width, or a feature far sharper than ε)."""
    return num / jnp.maximum(jnp.abs(den), jnp.finfo(den.dtype).tiny)


def _ladder(t, eps, multipliers=RULE.ladder, centre: bool = True):
    """The sorted points t ± m·ε for the levels with m·ε < reach (and t itself if centre), shape (..., k).

    The kept levels are the innermost ones; a level left out collapses onto the outermost kept point on its side
    (onto t if none is kept), so the list stays sorted and the extra panels have zero length, as in the NumPy rule.
    """
    d = [m * eps for m in multipliers]
    kept = [jnp.where(di < RULE.reach, di, 0) for di in d]
    outermost = kept[0]
    for di in kept[1:]:
        outermost = jnp.maximum(outermost, di)
    d = [jnp.where(di < RULE.reach, di, outermost) for di in d]
    points = [t - di for di in reversed(d)] + ([t] if centre else []) + [t + di for di in d]
    return jnp.stack(jnp.broadcast_arrays(*points), -1)


def _merge(lists):
    """Sorted lists (each (..., k_i), sorted along the last axis) merged into one sorted (..., Σk_i) array."""
    merged = lists[0]
    for other in lists[1:]:
        merged = _merge_two(merged, other)
    return merged


def _merge_two(a, b):
    """The k-th smallest of two sorted lists is min over i + j = k + 1 of max(a[i−1], b[j−1]) (a[−1] = −∞): the
    least possible largest element of k + 1 elements taken from the fronts of both. Only min and max, vectorised
    over the rows — jnp.sort costs ~30 times more on CPU, where it ran once per outer node."""
    shape = jnp.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    na, nb = a.shape[-1], b.shape[-1]
    out = []
    for k in range(na + nb):
        best = None
        for i in range(max(0, k + 1 - nb), min(na, k + 1) + 1):
            j = k + 1 - i
            if i == 0:
                largest = b[..., j - 1]
            elif j == 0:
                largest = a[..., i - 1]
            else:
                largest = jnp.maximum(a[..., i - 1], b[..., j - 1])
            best = largest if best is None else jnp.minimum(best, largest)
        out.append(jnp.broadcast_to(best, shape))
    return jnp.stack(out, -1)


def _nodes(ends, order: int):
    """Gauss–Legendre nodes z and weights w·φ(z) on the panels between the sorted ends, shape (..., P, order).

    The ends are a choice of discretisation, not a function to differentiate: gradients stop there, so that
    d/dq of a rule is the rule applied to d/dq of the integrand (and floored divisors cannot give ∞·0 = NaN)."""
    x, w = np.polynomial.legendre.leggauss(order)
    rank = (1,) * ends.ndim  # explicit broadcasting (the tests run with jax_numpy_rank_promotion="raise")
    x, w = jnp.asarray(x, ends.dtype).reshape(rank + (-1,)), jnp.asarray(w / np.sqrt(2 * np.pi), ends.dtype).reshape(rank + (-1,))
    ends = jax.lax.stop_gradient(jnp.clip(ends, -RULE.truncation, RULE.truncation))
    mid, half = 0.5 * (ends[..., 1:] + ends[..., :-1]), 0.5 * (ends[..., 1:] - ends[..., :-1])
    z = mid[..., None] + half[..., None] * x
    return z, half[..., None] * w * jnp.exp(-0.5 * z * z)


def _gaussian_ladder(dtype):
    return jnp.asarray(RULE.gauss_ladder, dtype)


def _one_dim_ends(features: Features, r):
    lists = [_gaussian_ladder(r.dtype)]
    for b, w in zip(features.centers, features.widths):
        lists.append(_ladder(_position(jnp.asarray(b, r.dtype), r), _width(jnp.asarray(w, r.dtype), r)))
    return _merge(lists)


def _outer_ends(features: Features, r1, r2, rho, s):
    """Outer (z1) panel ends: Gaussian ladder, features of f(√q1·z1) and of G (NumPy rule's _outer_ends)."""
    dtype = r1.dtype
    lists = [_gaussian_ladder(dtype)]
    den = r2 * rho
    for b, w, kink in zip(features.centers, features.widths, features.kinks):
        b, w = jnp.asarray(b, dtype), jnp.asarray(w, dtype)
        t_g = _position(b, den)
        if kink:  # G: the kink smoothed over s/|ρ|, its pieces on the scale w/(√q2·|ρ|)
            eps_g = _width(w, den)
            lists.append(_ladder(t_g, _width(s, rho), RULE.s_ladder, centre=False))
        else:
            eps_g = _width(jnp.sqrt(_width(w * w, r2 * r2) + s * s), rho)
        t_f, eps_f = _position(b, r1), _width(w, r1)
        finer = jnp.minimum(eps_f, eps_g)
        meet = jnp.abs(t_f - t_g) <= 0.25 * finer  # one ladder, at the finer width, serves both
        lists.append(_ladder(t_f, jnp.where(meet, finer, eps_f)))
        lists.append(_ladder(t_g, jnp.where(meet, jnp.inf, eps_g)))
    return _merge(lists)


def _inner_ends(features: Features, r2, rho, s, z1):
    """Inner (z2) panel ends of the outer node z1: Gaussian ladder and features of f(√q2·(ρ·z1 + s·z2))."""
    dtype = r2.dtype
    lists = [_gaussian_ladder(dtype)]
    for b, w in zip(features.centers, features.widths):
        b, w = jnp.asarray(b, dtype), jnp.asarray(w, dtype)
        centre = jnp.clip(b / jnp.maximum(r2, jnp.finfo(dtype).tiny), -2 * _CLIP, 2 * _CLIP) - rho * z1
        lists.append(_ladder(_position(centre, s), _width(w, r2 * s)))
    return _merge(lists)


def expect_1d(f, features: Features, r, power: int = 1, order: int = RULE.order):
    """E[f(r·z)^power], z ~ N(0, 1), for r = √q ≥ 0 of any shape."""
    z, weight = _nodes(_one_dim_ends(features, r), order)
    return jnp.sum(weight * f(r[..., None, None] * z) ** power, axis=(-2, -1))


def expect_2d(fs, features: Features, r1, r2, rho, s, order: int = RULE.order):
    """(E[f(u) f(v)] for f in fs), u = r1·z1, v = r2·(ρ·z1 + s·z2), all arguments of one shape (s = √(1 − ρ²)).

    The functions share the panels (features: the union of theirs), so K and K̇ cost one set of nodes, weights
    and panel ends, and XLA evaluates a subexpression they share (tanh(v) in tanh and 1 − tanh²) once."""
    z1, w1 = _nodes(_outer_ends(features, r1, r2, rho, s), order)
    z1, w1 = z1.reshape(z1.shape[:-2] + (-1,)), w1.reshape(w1.shape[:-2] + (-1,))
    a, b = r2[..., None, None] * rho[..., None, None], r2[..., None, None] * s[..., None, None]

    def step(totals, column):
        z, weight = column
        z2, w2 = _nodes(_inner_ends(features, r2, rho, s, z), order)
        v = a * z[..., None, None] + b * z2  # v = √q2·(ρ·z1 + s·z2)
        u = r1 * z
        return tuple(t + weight * f(u) * jnp.sum(w2 * f(v), axis=(-2, -1)) for t, f in zip(totals, fs)), None

    zeros = tuple(jnp.zeros_like(r1) for _ in fs)
    totals, _ = jax.lax.scan(step, zeros, (jnp.moveaxis(z1, -1, 0), jnp.moveaxis(w1, -1, 0)))
    return totals


def geometry(q1v, q2v, cv):
    """√q1, √q2, ρ = c/√(q1q2) clipped into [−1, 1] (one square root: ρ = 1 exactly on a diagonal), and
    s = √((1 − ρ)(1 + ρ)), accurate near |ρ| = 1."""
    r1, r2 = safe.safe_sqrt(q1v), safe.safe_sqrt(q2v)
    product = q1v * q2v
    normal = jnp.isfinite(product) & (product >= jnp.finfo(product.dtype).tiny)
    root = jnp.where(normal, safe.safe_sqrt(jnp.where(normal, product, 1)), r1 * r2)
    rho = jnp.clip(jnp.where(root > 0, cv / jnp.where(root > 0, root, 1), 0), -1, 1)
    return r1, r2, rho, safe.safe_sqrt((1 - rho) * (1 + rho))


__all__ = ["Features", "expect_1d", "expect_2d", "geometry"]
