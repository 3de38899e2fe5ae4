"""A new activation, end to end: derive its dual in closed form, verify it, lower it to JAX, use it in a network.

σ(x) = x·e^{−x²/2} + ½·erf(x) is in no catalog: a "wavelet" (the derivative-of-Gaussian bump) plus a
saturating ramp. ntksym derives its dual activation K(q1, q2, c) = E[σ(u)σ(v)], the derivative dual
K̇ = E[σ'(u)σ'(v)] and the variance map V(q) = E[σ(z)²] in closed form (DESIGN.md §1), then this script

1. prints K, K̇, V, how they were derived, and their LaTeX;
2. checks them against Monte Carlo at 14 designed covariances (`nk.verify`; exit status 1 if it fails);
3. lowers them to JAX and evaluates the normalised dual k̂(ρ) = K(1, 1, ρ) and K̇(1, 1, ρ) on a grid of ρ,
   beside the exact values of `dual.evaluate` (30-digit arithmetic);
4. builds a 3-hidden-layer MLP with σ and prints its NNGP and NTK Gram matrices on a few inputs.

Run: python examples/a_new_activation.py [--activation "x*exp(-x**2/2) + 0.5*erf(x)"] [--samples 1048576]
(about 10 s on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import ntksym as nk

ACTIVATION = "x*exp(-x**2/2) + 0.5*erf(x)"


@dataclasses.dataclass(frozen=True)
class Result:
    """What the run measured.

    **Fields:**
    - `dual`: the derived Dual; `passed`: whether the Monte Carlo check passed; `report`: its text.
    - `rho`, `k_jax`, `kdot_jax`: the grid of correlations and the lowered K(1, 1, ρ), K̇(1, 1, ρ) (float64).
    - `k_exact`, `kdot_exact`: the same from `dual.evaluate` (correctly rounded float64).
    - `lowering_error`: max |lowered − exact| over the grid, K and K̇ together.
    - `nngp`, `ntk`: the MLP's Gram matrices on the example inputs; `latex`: the dual's LaTeX.
    """

    dual: nk.Dual
    passed: bool
    report: str
    rho: np.ndarray
    k_jax: np.ndarray
    kdot_jax: np.ndarray
    k_exact: np.ndarray
    kdot_exact: np.ndarray
    lowering_error: float
    nngp: np.ndarray
    ntk: np.ndarray
    latex: str


def run(activation: str = ACTIVATION, *, samples: int = 2**20, seed: int = 0, grid: int = 9,
        n_inputs: int = 4) -> Result:
    """Derive, verify, lower and use the dual of `activation`; prints each stage and returns the numbers."""
    start = time.perf_counter()
    dual = nk.derive(activation)
    print(f"σ(x) = {dual.activation.expr}")
    print(f"derived in {time.perf_counter() - start:.1f} s by: {dual.method} (closed form: {dual.exact}, "
          f"{len(dual.steps)} steps)")
    for step in dual.steps:
        print(f"  [{step.rule}] {step.description}")
    print(f"K(q1, q2, c) = {dual.K}")
    print(f"K̇(q1, q2, c) = {dual.Kdot}")
    print(f"V(q) = {dual.V}")

    report = nk.verify(dual, n_samples=samples, seed=seed)
    print(f"\nMonte Carlo verification ({samples} samples per covariance, seed {seed}):")
    print(report)

    rho = np.linspace(-1.0, 1.0, grid)
    ones = np.ones_like(rho)
    with jax.enable_x64(True):  # float64 here only, so the lowered values can be compared to float rounding
        f = nk.lower.lower(dual)
        k_jax, kdot_jax = (np.asarray(a) for a in f(jnp.asarray(ones), jnp.asarray(ones), jnp.asarray(rho)))
        k_exact, kdot_exact = dual.evaluate(ones, ones, rho)
        lowering_error = float(max(np.max(np.abs(k_jax - k_exact)), np.max(np.abs(kdot_jax - kdot_exact))))
        print("lowered to JAX (float64), unit variances:")
        print(f"{'ρ':>6}  {'k̂(ρ) JAX':>12}  {'K̇(1,1,ρ) JAX':>13}  {'|Δ| vs exact':>12}")
        for r, k, kd, ke, kde in zip(rho, k_jax, kdot_jax, k_exact, kdot_exact):
            print(f"{r:>6.2f}  {k:>12.8f}  {kd:>13.8f}  {max(abs(k - ke), abs(kd - kde)):>12.1e}")
        print(f"largest difference from dual.evaluate: {lowering_error:.1e}")

        net = nk.mlp(dual, depth=3, w_std=1.5, b_std=0.1)
        x = np.random.default_rng(seed).normal(size=(n_inputs, 5))
        k = net.kernel(x)
        nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
    np.set_printoptions(precision=4, suppress=True)
    print(f"\n3-hidden-layer MLP (w_std = 1.5, b_std = 0.1) on {n_inputs} random inputs in ℝ⁵:")
    print(f"NNGP Gram matrix (smallest eigenvalue {np.linalg.eigvalsh(nngp)[0]:.3g}):\n{nngp}")
    print(f"NTK Gram matrix (smallest eigenvalue {np.linalg.eigvalsh(ntk)[0]:.3g}):\n{ntk}")

    latex = dual.latex()
    print(f"\nLaTeX:\n{latex}")
    return Result(dual=dual, passed=report.passed, report=str(report), rho=rho, k_jax=k_jax, kdot_jax=kdot_jax,
                  k_exact=k_exact, kdot_exact=kdot_exact, lowering_error=lowering_error, nngp=nngp, ntk=ntk,
                  latex=latex)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activation", default=ACTIVATION, help=f"σ as a formula in x (default {ACTIVATION!r})")
    parser.add_argument("--samples", type=int, default=2**20, help="Monte Carlo samples per covariance")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo draws and the inputs")
    parser.add_argument("--grid", type=int, default=9, help="number of correlations ρ in [−1, 1]")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = run(args.activation, samples=args.samples, seed=args.seed, grid=args.grid)
    print(f"done in {time.perf_counter() - start:.1f} s")
    if not result.passed:
        print("Monte Carlo verification FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
