"""Speed of the JAX bivariate normal CDF bvn_cdf against jax.scipy.special.erf, and Owen's T accuracy.

Usage:  python benchmarks/bench_bvn.py [--size N] [--repeats R] [--owens-t]

Speed: one jitted call on float32 arrays of shape (N, N) (default 2048²; h, k uniform in [−3, 3], ρ uniform
in [−1, 1], so both |ρ| regimes occur), steady state: after a compile-and-warm-up call, the median of R
timed calls, each ending in block_until_ready. Prints bvn_cdf, erf, Φ₂ through two owens_t calls (the
alternative the module docstring of ntksym.lower.bvn weighs), and the ratios to erf.
--owens-t: float64 worst absolute error of jax.scipy.special.owens_t against mpmath at 30 digits on a
grid h ∈ [−40, 40], a ∈ [0, 1e6] (about 30 s).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf, ndtr, owens_t

from ntksym.lower.bvn import bvn_cdf


def _bvn_owens_t(h, k, r):
    """Φ₂ = ½Φ(h) + ½Φ(k) − T(h, a_h) − T(k, a_k) − β, for timing only (no h = 0, k = 0, |ρ| = 1 cases)."""
    s = jnp.sqrt((1 - r) * (1 + r))
    a_h = jnp.where(r >= 0, (k - h) + (1 - r) * h, (k + h) - (1 + r) * h) / (h * s)
    a_k = jnp.where(r >= 0, (h - k) + (1 - r) * k, (h + k) - (1 + r) * k) / (k * s)
    beta = jnp.where(h * k < 0, 0.5, 0.0)
    return 0.5 * ndtr(h) + 0.5 * ndtr(k) - owens_t(h, a_h) - owens_t(k, a_k) - beta


def _median_seconds(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(size: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    h, k = (jnp.asarray(rng.uniform(-3, 3, (size, size)), jnp.float32) for _ in range(2))
    r = jnp.asarray(rng.uniform(-1, 1, (size, size)), jnp.float32)
    t_erf = _median_seconds(jax.jit(erf), (h,), repeats)
    t_bvn = _median_seconds(jax.jit(bvn_cdf), (h, k, r), repeats)
    t_owt = _median_seconds(jax.jit(_bvn_owens_t), (h, k, r), repeats)
    print(f"device: {jax.devices()[0].device_kind}, float32 arrays of shape ({size}, {size}), median of {repeats}")
    print(f"  erf               {t_erf * 1e3:9.3f} ms")
    print(f"  bvn_cdf           {t_bvn * 1e3:9.3f} ms   ratio to erf {t_bvn / t_erf:7.1f}")
    print(f"  Φ₂ via owens_t    {t_owt * 1e3:9.3f} ms   ratio to erf {t_owt / t_erf:7.1f}")


def _owens_t_mpmath(h: float, a: float):
    """T(h, a) = (1/2π)∫₀^a e^{−h²(1+x²)/2}/(1+x²) dx by mpmath.quad, split where the integrand changes scale."""
    import mpmath

    h, a = mpmath.mpf(h), mpmath.mpf(a)
    if a == 0:
        return mpmath.mpf(0)
    breaks = [m / abs(h) for m in (1, 4, 16)] if h != 0 else []
    breaks += [mpmath.mpf(10) ** e for e in range(7)]
    points = [mpmath.mpf(0), *sorted({p for p in breaks if 0 < p < a}), a]
    return mpmath.quad(lambda x: mpmath.exp(-h * h * (1 + x * x) / 2) / (1 + x * x), points) / (2 * mpmath.pi)


def owens_t_accuracy() -> None:
    import mpmath

    edges = [-40, -20, -10, -5, -3, -2, -1.5, -1, -0.5, -0.1, -1e-3, 0, 1e-3, 0.1, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 40]
    hs = np.r_[edges, np.linspace(-40, 40, 41)]
    as_ = np.r_[[0, 1e-6, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.9, 0.99, 1, 1.01, 1.5, 2, 3, 5, 10, 30, 100, 1e3, 1e4, 1e5, 1e6],
                np.geomspace(1e-3, 1e6, 30)]
    h, a = (g.ravel() for g in np.meshgrid(hs, as_))
    with mpmath.workdps(30):
        reference = np.array([float(_owens_t_mpmath(x, y)) for x, y in zip(h, a)])
    with jax.enable_x64(True):
        value = np.asarray(owens_t(jnp.asarray(h), jnp.asarray(a)))
    err = np.abs(value - reference)
    i = int(np.argmax(err))
    print(f"owens_t float64 on {h.size} points: worst |error| {err[i]:.2g} at h={h[i]:g}, a={a[i]:g}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--owens-t", action="store_true", help="measure owens_t's float64 accuracy instead")
    args = parser.parse_args()
    if args.owens_t:
        owens_t_accuracy()
    else:
        speed(args.size, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
