"""Time the derivation of every catalog activation (cold caches, one process per activation).

Usage:  python benchmarks/bench_derive.py [--json] [NAME ...]
Each activation is derived in a fresh interpreter, so SymPy's and ntksym's caches are cold, as for a
user's first call; the figure excludes interpreter start-up and imports (measured inside the child).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

_CHILD = r"""
import time, sys
import ntksym as nk
from ntksym.catalog import CATALOG
entry = CATALOG[sys.argv[1]]
act = entry.factory()
t = time.perf_counter()
dual = nk.derive(act)
print(time.perf_counter() - t, dual.exact, dual.method, sep="\t")
"""


def main() -> int:
    from ntksym.catalog import CATALOG

    rows = []
    wall = time.perf_counter()
    names = [a for a in sys.argv[1:] if not a.startswith("-")] or list(CATALOG)
    for name in names:
        out = subprocess.run([sys.executable, "-c", _CHILD, name], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr}", file=sys.stderr)
            return 1
        seconds, exact, method = out.stdout.strip().splitlines()[-1].split("\t")
        rows.append({"activation": name, "seconds": float(seconds), "exact": exact == "True", "method": method})
    total = sum(r["seconds"] for r in rows)
    if "--json" in sys.argv:
        print(json.dumps({"rows": rows, "total_seconds": total}, indent=2))
        return 0
    print(f"{'activation':22s} {'seconds':>8s}  exact  method")
    for r in rows:
        print(f"{r['activation']:22s} {r['seconds']:8.2f}  {str(r['exact']):5s}  {r['method']}")
    print(f"{'total (derivations)':22s} {total:8.2f}   (max {max(r['seconds'] for r in rows):.2f} s; "
          f"wall incl. start-up {time.perf_counter() - wall:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
