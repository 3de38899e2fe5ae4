"""Cost of Φ₂ closed forms inside a network: a jitted 10-layer MLP kernel of Φ₂ activations vs erf.

Usage:  python benchmarks/bench_phi2_kernel.py [--m 512] [--d 64] [--repeats 5] [--acts elu relu6 hard_tanh]
NNGP + NTK, float32, w_std 1.5, b_std 0.1; steady state (first call excluded, reported separately); the runs
of each activation alternate with erf's, and the median of each is reported with the ratio to erf.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    for leaf in (out.nngp, out.ntk):
        leaf.block_until_ready()
    return time.perf_counter() - t


def main() -> int:
    import ntksym as nk

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--m", type=int, default=512)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--acts", nargs="+", default=["elu", "relu6", "hard_tanh"])
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(size=(args.m, args.d)).astype(np.float32)
    nets = {name: nk.mlp(name, depth=args.depth, w_std=1.5, b_std=0.1) for name in ["erf", *args.acts]}
    first = {name: _timed(lambda n=net: n.kernel(x)) for name, net in nets.items()}
    times = {name: [] for name in nets}
    for _ in range(args.repeats):
        for name, net in nets.items():
            times[name].append(_timed(lambda n=net: n.kernel(x)))
    base = statistics.median(times["erf"])
    print(f"m={args.m}, d={args.d}, depth={args.depth}, float32, NNGP+NTK, median of {args.repeats}")
    for name in nets:
        med = statistics.median(times[name])
        print(f"{name:>10}: {med * 1e3:8.1f} ms steady ({med / base:5.2f}× erf), first call {first[name]:6.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
