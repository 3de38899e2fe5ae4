"""Accuracy and speed of the lowered numeric duals: the panelled rule (default) against Gauss–Hermite.

Usage:  python benchmarks/bench_numeric_lowering.py [--entries N] [NAME ...]   (default: the 7 numeric catalog duals)

Accuracy: float64, the largest |lowered − Dual.evaluate| over variances 1e-4…1e4 (pairs (q, q) and (q, 1)) and
ρ ∈ {−1, −0.7, 0, 0.5, 0.95, 1 − 1e-6, 1}, relative to √(V(q1)V(q2)) for K, √(K̇(q1,q1,q1)K̇(q2,q2,q2)) for K̇
and V(q) for V. Dual.evaluate's panelled NumPy rule is itself within 2e-9 of adaptive quadrature
(tests/test_gaussian_numeric.py). Speed: K and K̇ of N float32 covariances (default 512², variances in
[0.5, 2], |ρ| ≤ 0.9) after a warm-up call; compile is the first call on 10 entries.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import ntksym as nk
from ntksym.lower import RULES, lower

_Q = [1e-4, 1e-2, 1.0, 1e2, 1e4]
_RHO = [-1.0, -0.7, 0.0, 0.5, 0.95, 1 - 1e-6, 1.0]


def _accuracy(dual, rule: str) -> tuple[float, float, float]:
    cells = [(a, b, r) for a in _Q for b in (a, 1.0) for r in _RHO]
    q1, q2, rho = (np.array(col) for col in zip(*cells))
    c = rho * np.sqrt(q1 * q2)
    with jax.enable_x64(True):
        f = lower(dual, rule=rule)
        k, kdot = (np.asarray(a) for a in f(q1, q2, c))
        v = np.asarray(f.V(q1))
    ref_k, ref_kdot = dual.evaluate(q1, q2, c)
    v1, v2 = dual.variance(q1), dual.variance(q2)
    d1, d2 = dual.evaluate(q1, q1, q1)[1], dual.evaluate(q2, q2, q2)[1]
    return (float(np.max(np.abs(k - ref_k) / np.sqrt(v1 * v2))),
            float(np.max(np.abs(kdot - ref_kdot) / np.sqrt(d1 * d2))),
            float(np.max(np.abs(v - v1) / v1)))


def _speed(dual, rule: str, entries: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    q1, q2 = (jnp.asarray(rng.uniform(0.5, 2.0, entries), jnp.float32) for _ in range(2))
    c = jnp.asarray(rng.uniform(-0.9, 0.9, entries), jnp.float32) * jnp.sqrt(q1 * q2)
    f = lower(dual, rule=rule)
    start = time.perf_counter()
    jax.block_until_ready(f(q1[:10], q2[:10], c[:10]))
    compile_s = time.perf_counter() - start
    jax.block_until_ready(f(q1, q2, c))  # compile for this shape
    start = time.perf_counter()
    jax.block_until_ready(f(q1, q2, c))
    return compile_s, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["tanh", "sigmoid", "softplus", "silu", "elu", "selu", "mish"])
    parser.add_argument("--entries", type=int, default=512 * 512)
    args = parser.parse_args()
    print(f"| activation | rule | K error | K̇ error | V error | compile | K+K̇ of {args.entries} (float32) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.names:
        dual = nk.derive(name)
        for rule in RULES:
            k_err, kdot_err, v_err = _accuracy(dual, rule)
            compile_s, run_s = _speed(dual, rule, args.entries)
            print(f"| {name} | {rule} | {k_err:.1e} | {kdot_err:.1e} | {v_err:.1e} | {compile_s:.2f} s | {run_s:.2f} s |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
