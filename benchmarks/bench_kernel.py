"""Speed of ntksym.kernel beside neural-tangents 0.6.5, and the memory of a large blocked Gram matrix.

Speed (default): the NNGP+NTK Gram matrix of m inputs (x2 = None) through an MLP of `depth` hidden layers,
float32, for relu / erf / gelu, on the same machine in ONE run: ntksym in this process, neural-tangents
(`jax.jit(kernel_fn)`) in a subprocess of its own virtualenv (it needs an old JAX; built by
/work/shared/peer/neural-tangents-venv.sh, or give --peer-python). Reported: the first call (trace +
compile + run; for ntksym also lowering the dual), the steady state (median of --repeats calls after it),
compile ≈ first − steady, and the ratio neural-tangents / ntksym. The two results are compared on a corner
of the matrices as a sanity check.

Memory (--memory): the blocked n × n float32 NNGP+NTK of a 10-layer relu MLP (default n = 20000,
--batch-size 4096): peak resident memory of this process and wall time.

Runs on whatever JAX backend is installed (CPU or GPU), unchanged. Examples:
    python benchmarks/bench_kernel.py
    python benchmarks/bench_kernel.py --m 2048 --acts relu --repeats 3
    python benchmarks/bench_kernel.py --memory
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import jax
import numpy as np

import ntksym as nk
from ntksym import catalog
from ntksym.kernel import kernel
from ntksym.layers import mlp

DEFAULT_PEER = os.environ.get("NTKSYM_PEER_PYTHON", "/tmp/nt-peer/bin/python")
W_STD, B_STD = 1.4, 0.1
CORNER = 256  # rows/columns of the result compared between the two libraries

NT_SCRIPT = textwrap.dedent('''
    import json, statistics, sys, time
    import numpy as np
    import jax
    from neural_tangents import stax

    x_path, out_dir, depth, w_std, b_std, repeats, corner = sys.argv[1:8]
    depth, w_std, b_std, repeats, corner = int(depth), float(w_std), float(b_std), int(repeats), int(corner)
    x = np.load(x_path)
    layers_of = {"relu": stax.Relu, "erf": stax.Erf, "gelu": lambda: stax.Gelu(approximate=False)}
    results = {"backend": jax.default_backend(), "jax": jax.__version__}
    for act in sys.argv[8:]:
        hidden = [layer for _ in range(depth) for layer in (stax.Dense(1, w_std, b_std), layers_of[act]())]
        _, _, kernel_fn = stax.serial(*hidden, stax.Dense(1, w_std, b_std))
        fn = jax.jit(kernel_fn, static_argnames="get")
        t0 = time.perf_counter()
        out = fn(x, None, get=("nngp", "ntk"))
        jax.block_until_ready(out)
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(x, None, get=("nngp", "ntk")))
            times.append(time.perf_counter() - t0)
        np.save(f"{out_dir}/{act}.nngp.npy", np.asarray(out.nngp[:corner, :corner]))
        np.save(f"{out_dir}/{act}.ntk.npy", np.asarray(out.ntk[:corner, :corner]))
        results[act] = {"first": first, "steady": statistics.median(times), "times": times}
    print(json.dumps(results))
''')

ACTS = {"relu": catalog.relu, "erf": catalog.erf, "gelu": catalog.gelu}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def bench_ntksym(x: np.ndarray, depth: int, act: str, repeats: int) -> dict:
    t0 = time.perf_counter()
    dual = nk.derive(ACTS[act]())
    derive_s = time.perf_counter() - t0
    net = mlp(dual, depth, W_STD, B_STD)
    t0 = time.perf_counter()
    k = kernel(net, x)
    jax.block_until_ready((k.nngp, k.ntk))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(kernel(net, x))
        times.append(time.perf_counter() - t0)
    return {"derive": derive_s, "first": first, "steady": statistics.median(times), "times": times,
            "nngp": np.asarray(k.nngp[:CORNER, :CORNER]), "ntk": np.asarray(k.ntk[:CORNER, :CORNER])}


def bench_peer(peer_python: str, x: np.ndarray, depth: int, acts: list[str], repeats: int, folder: Path):
    if not Path(peer_python).exists():
        print(f"neural-tangents peer not found at {peer_python}: build it with "
              f"/work/shared/peer/neural-tangents-venv.sh (or pass --peer-python); ntksym only")
        return None
    np.save(folder / "x.npy", x)
    # not "nt.py": that name would shadow the `nt` module that numpy probes for on import
    (folder / "run_neural_tangents.py").write_text(NT_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("JAX_ENABLE_X64", None)  # float32, like ntksym here
    command = [peer_python, str(folder / "run_neural_tangents.py"), str(folder / "x.npy"), str(folder),
               str(depth), str(W_STD), str(B_STD), str(repeats), str(CORNER), *acts]
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        print("neural-tangents failed:\n" + run.stderr[-3000:])
        return None
    results = json.loads(run.stdout.strip().splitlines()[-1])
    for act in acts:
        results[act]["nngp"] = np.load(folder / f"{act}.nngp.npy")
        results[act]["ntk"] = np.load(folder / f"{act}.ntk.npy")
    return results


def speed(args) -> None:
    x = np.random.default_rng(0).normal(size=(args.m, args.d)).astype(np.float32)
    print(f"MLP depth {args.depth} (w_std={W_STD}, b_std={B_STD}), m = {args.m} inputs, d = {args.d}, float32, "
          f"NNGP+NTK Gram matrix; steady state = median of {args.repeats} calls after the first")
    print(f"ntksym: jax {jax.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind})")
    ours = {act: bench_ntksym(x, args.depth, act, args.repeats) for act in args.acts}
    with tempfile.TemporaryDirectory() as tmp:
        peer = None if args.no_peer else bench_peer(args.peer_python, x, args.depth, args.acts, args.repeats,
                                                     Path(tmp))
    if peer:
        print(f"neural-tangents 0.6.5: jax {peer['jax']} on {peer['backend']}")
    header = f"{'act':6s} {'lib':16s} {'first call':>11s} {'steady':>9s} {'compile≈':>9s}"
    print(header)
    for act in args.acts:
        rows = [("ntksym", ours[act])] + ([("neural-tangents", peer[act])] if peer else [])
        for lib, r in rows:
            print(f"{act:6s} {lib:16s} {r['first']:10.3f}s {r['steady']:8.3f}s {r['first'] - r['steady']:8.3f}s")
        print(f"{'':6s} (ntksym derive: {ours[act]['derive']:.2f}s, done once per activation)")
        if peer:
            p = peer[act]
            diff = {n: float(np.max(np.abs(ours[act][n] - p[n])) / np.max(np.abs(p[n]))) for n in ("nngp", "ntk")}
            print(f"{'':6s} ratio NT/ntksym: steady {p['steady'] / ours[act]['steady']:.2f}×, "
                  f"first call {p['first'] / ours[act]['first']:.2f}×; max|Δ|/max on a {CORNER}² corner: "
                  f"nngp {diff['nngp']:.1e}, ntk {diff['ntk']:.1e}")


def memory(args) -> None:
    n, b = args.n, args.batch_size
    x = np.random.default_rng(0).normal(size=(n, args.d)).astype(np.float32)
    net = mlp(nk.derive(catalog.relu()), 10, W_STD, B_STD)
    print(f"blocked {n} × {n} float32 NNGP+NTK, 10-layer relu MLP, d = {args.d}, batch_size = {b}, "
          f"on {jax.default_backend()}; the two outputs alone take {2 * n * n * 4 / 2**30:.2f} GiB")
    rss0 = _peak_rss_mib()
    t0 = time.perf_counter()
    k = kernel(net, x, batch_size=b)
    elapsed = time.perf_counter() - t0
    assert np.isfinite(k.nngp[::997, ::991]).all() and np.isfinite(k.ntk[::997, ::991]).all()
    print(f"time {elapsed:.1f}s; peak RSS {_peak_rss_mib() / 1024:.2f} GiB (before: {rss0 / 1024:.2f} GiB)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--m", type=int, default=4096, help="number of inputs (speed mode)")
    parser.add_argument("--d", type=int, default=256, help="input dimension")
    parser.add_argument("--depth", type=int, default=10, help="hidden layers of the MLP (speed mode)")
    parser.add_argument("--acts", nargs="+", default=["relu", "erf", "gelu"], choices=sorted(ACTS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peer-python", default=DEFAULT_PEER)
    parser.add_argument("--no-peer", action="store_true", help="ntksym only")
    parser.add_argument("--memory", action="store_true", help="the blocked large Gram matrix instead")
    parser.add_argument("--n", type=int, default=20000, help="number of inputs (memory mode)")
    parser.add_argument("--batch-size", type=int, default=4096, help="block size (memory mode)")
    args = parser.parse_args(argv)
    (memory if args.memory else speed)(args)


if __name__ == "__main__":
    sys.exit(main())
