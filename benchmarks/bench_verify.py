"""Time nk.verify and its peak memory at a given sample count (default 10^8: memory stays one chunk's).

Usage:  python benchmarks/bench_verify.py [--samples N] [NAME ...]     (default: relu erf gelu, 10^8)
Each activation runs in a fresh interpreter; the figure is verify's own time (the dual is derived first)
and the child's peak resident memory (ru_maxrss), which includes the interpreter, JAX and SymPy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

_CHILD = r"""
import json, resource, sys, time
import ntksym as nk
dual = nk.derive(sys.argv[1])
t = time.perf_counter()
report = nk.verify(dual, n_samples=int(sys.argv[2]))
seconds = time.perf_counter() - t
print(json.dumps({"activation": sys.argv[1], "samples": report.n_samples, "seconds": seconds,
                  "samples_per_second_per_estimate": report.n_samples / seconds,
                  "estimates": len(report.estimates), "passed": report.passed,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["relu", "erf", "gelu"])
    parser.add_argument("--samples", type=float, default=1e8)
    args = parser.parse_args()
    rows = []
    for name in args.names:
        out = subprocess.run([sys.executable, "-c", _CHILD, name, str(int(args.samples))],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr}", file=sys.stderr)
            return 1
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{name:<8} {row['samples']:.1e} samples × {row['estimates']} estimates: {row['seconds']:7.1f} s, "
              f"peak RSS {row['peak_rss_mib']:.0f} MiB, passed={row['passed']}", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
