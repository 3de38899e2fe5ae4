"""The ntksym command: a thin argparse front end over the public API (no logic of its own).

Exit status: 0 success, 1 a check failed, 2 bad input (one-line message, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys

import sympy as sp

from .dual import DEFAULT_TIMEOUT, Dual, check_against_quadrature, derive
from .errors import NtksymError

_EXAMPLES = """examples:
  ntksym derive "x*erf(x)"
  ntksym derive relu --json
  ntksym derive "leaky_relu(x, 0.1)"
  ntksym derive tanh            # no closed form: a numeric dual with its error bound
  ntksym verify relu            # Monte Carlo check of K, Kdot, V; exit 1 if it fails
  ntksym verify erf --K "2/pi*asin(2*c/sqrt((1+2*q1)*(1+2*q2)))"   # check your own formula
"""

_VERIFY_EXAMPLES = """examples:
  ntksym verify relu
  ntksym verify "x*erf(x)" --samples 100000000 --progress
  ntksym verify gelu --json --seed 3
  ntksym verify relu --plot relu.png                 # k(ρ) with Monte Carlo error bars (needs matplotlib)
  ntksym verify relu --K "sqrt(q1*q2)/pi*(sqrt(1-c**2/(q1*q2)) + (pi-acos(c/sqrt(q1*q2)))*c/sqrt(q1*q2))"
      # a formula (in q1, q2, c; V in q) is compared with the derivation and Monte Carlo: this one is
      # wrong (1/π for 1/(2π)) and the report names the covariances where it fails; exit 1

The check passes when |Monte Carlo − formula| ≤ z*·SE + allowance at every covariance, z* the Bonferroni
threshold for the family-wise false-alarm rate --alpha: a correct dual fails with probability ≤ alpha.
"""


def _dual_record(dual: Dual) -> dict:
    return {
        "activation": str(dual.activation.expr),
        "name": dual.activation.name,
        "exact": dual.exact,
        "method": dual.method,
        "K": str(dual.K),
        "Kdot": None if dual.Kdot is None else str(dual.Kdot),
        "Kdot_reason": dual.Kdot_reason,
        "V": str(dual.V),
        "error_bound": dual.error_bound,
        "steps": [{"rule": s.rule, "description": s.description,
                   "expression": None if s.expression is None else str(s.expression)} for s in dual.steps],
    }


def _print_dual(dual: Dual) -> None:
    print(f"σ(x) = {dual.activation.expr}" + (f"   [{dual.activation.name}]" if dual.activation.name else ""))
    print(f"method: {dual.method}" + ("" if dual.exact else f"  (relative error bound {dual.error_bound:.1e})"))
    print()
    print(f"K(q1, q2, c)    = {sp.sstr(dual.K)}")
    print(f"Kdot(q1, q2, c) = {sp.sstr(dual.Kdot) if dual.Kdot is not None else 'does not exist: ' + str(dual.Kdot_reason)}")
    print(f"V(q)            = {sp.sstr(dual.V)}")
    print()
    print("derivation:")
    for step in dual.steps:
        print(f"  - [{step.rule}] {step.description}")


def _cmd_derive(args) -> int:
    dual = derive(args.expr, timeout=args.timeout)
    check = check_against_quadrature(dual) if dual.exact and not args.no_check else None
    if args.json:
        record = _dual_record(dual)
        if check is not None:
            record["check"] = {"discrepancy": check.discrepancy, "quadrature_error": check.quadrature_error,
                               "passed": check.passed, "covariances": [list(c) for c in check.covariances]}
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        _print_dual(dual)
        if check is not None:
            verdict = "verified" if check.passed else "CHECK FAILED"
            print(f"\n{verdict}: K against independent quadrature at {len(check.covariances)} covariances "
                  f"(ρ up to ±1): max |difference| {check.discrepancy:.1e}, quadrature error estimate "
                  f"{check.quadrature_error:.1e} (both relative to √(V(q1)V(q2)))")
    return 0 if check is None or check.passed else 1


def _cmd_verify(args) -> int:
    from .verify import verify, verify_formula

    formulas = {k: v for k, v in (("K", args.K), ("Kdot", args.Kdot), ("V", args.V)) if v is not None}
    samples = {} if args.samples is None else {"n_samples": args.samples}
    if formulas:
        if args.plot:
            raise VerificationArgumentError("--plot applies to verifying the derived dual, not to --K/--Kdot/--V")
        report = verify_formula(args.expr, **samples, seed=args.seed, alpha=args.alpha, **formulas)
    else:
        dual = derive(args.expr, timeout=args.timeout)
        report = verify(dual, **samples, seed=args.seed, alpha=args.alpha,
                        progress=True if args.progress else None)
        if args.plot:
            report.plot(args.plot, dual=dual)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report)
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0 if report.passed else 1


class VerificationArgumentError(NtksymError):
    """Command-line options that do not go together."""


def _samples(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_integer() or value < 1000:
        raise argparse.ArgumentTypeError(f"the sample count must be an integer ≥ 1000, got {text!r}")
    return int(value)


_LATEX_EXAMPLES = """examples:
  ntksym latex gelu                                  # K, Kdot, V of GELU and how they were derived
  ntksym latex --activation gelu --depth 3           # the NNGP/NTK recurrences of a 3-layer GELU MLP
  ntksym latex --activation relu --depth 2 --document --out relu_mlp.tex
  ntksym latex erf --pdf erf.pdf                     # compiled with pdflatex (apt-get install texlive-latex-base)
"""

_KERNEL_EXAMPLES = """examples:
  ntksym kernel --activation relu --depth 3 --inputs X.npy --out K.npy            # NTK Gram matrix of X
  ntksym kernel --activation erf --depth 2 --inputs X.csv --inputs2 Y.csv --get nngp --out K.npy
  ntksym kernel --activation relu --depth 3 --inputs X.npy --get nngp,ntk --out K.npz   # both, one file
Inputs: .npy (a 2-D array, one row per input) or .csv (comma-separated numbers, no header).
"""

_CATALOG_EXAMPLES = """examples:
  ntksym catalog                        # the catalog: activation, σ, exact or numeric, method
  ntksym catalog --json
  ntksym catalog --write derivations/   # a Markdown page and a .tex per activation, and index.md
"""


def _mlp_from_args(args):
    from .layers import mlp

    if args.depth is None or args.depth < 1:
        raise CommandLineError("--depth must be a positive integer (the number of hidden layers)")
    return mlp(args.activation, args.depth, w_std=args.w_std, b_std=args.b_std)


def _cmd_latex(args) -> int:
    from . import latex

    if args.activation is not None and args.expr is not None:
        raise CommandLineError("give the activation once: either EXPR or --activation")
    spec = args.activation if args.activation is not None else args.expr
    if spec is None:
        raise CommandLineError("name an activation: ntksym latex gelu, or --activation gelu --depth 3")
    if args.depth is not None:
        args.activation = spec
        part = _mlp_from_args(args)
        body = latex.network_latex(part, substitute=not args.general)
    else:
        part = derive(spec, timeout=args.timeout)
        body = latex.dual_latex(part) + "\n" + latex.derivation_latex(part)
    text = latex.latex_document(part) if (args.document or args.pdf) else body
    if args.pdf:
        import shutil

        shutil.copyfile(latex.compile_latex(text), args.pdf)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    if args.json:
        print(json.dumps({"latex": text, "out": args.out, "pdf": args.pdf, "document": args.document or bool(args.pdf)},
                         ensure_ascii=False))
    elif args.out or args.pdf:
        print("wrote " + " and ".join(f for f in (args.out, args.pdf) if f))
    else:
        print(text)
    return 0


def _read_inputs(path: str):
    import numpy as np

    try:
        if path.endswith(".npy"):
            x = np.load(path, allow_pickle=False)
        elif path.endswith(".csv"):
            x = np.loadtxt(path, delimiter=",", ndmin=2)
        else:
            raise CommandLineError(f"{path}: inputs must be a .npy or .csv file")
    except OSError as err:
        raise CommandLineError(f"cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise CommandLineError(f"cannot read {path}: {err}") from None
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise CommandLineError(f"{path}: expected a 2-D array (one row per input), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise CommandLineError(f"{path}: expected numbers, got dtype {x.dtype}")
    return x.astype(np.float32)


def _cmd_kernel(args) -> int:
    import numpy as np

    get = tuple(g.strip() for g in args.get.split(",") if g.strip())
    if not get or any(g not in ("nngp", "ntk") for g in get):
        raise CommandLineError(f"--get must be nngp, ntk or nngp,ntk; got {args.get!r}")
    if len(get) > 1 and not args.out.endswith(".npz"):
        raise CommandLineError("--get nngp,ntk writes two matrices: give --out a .npz file name")
    if len(get) == 1 and not args.out.endswith(".npy"):
        raise CommandLineError("--out must be a .npy file (or .npz with --get nngp,ntk)")
    net = _mlp_from_args(args)
    x1 = _read_inputs(args.inputs)
    x2 = None if args.inputs2 is None else _read_inputs(args.inputs2)
    result = net.kernel(x1, x2, get=get, batch_size=args.batch_size)
    arrays = {g: np.asarray(getattr(result, g)) for g in get}
    if len(get) == 1:
        np.save(args.out, arrays[get[0]])
    else:
        np.savez(args.out, **arrays)
    summary = {"out": args.out, "activation": args.activation, "depth": args.depth, "w_std": args.w_std,
               "b_std": args.b_std, "shape": list(next(iter(arrays.values())).shape),
               "kernels": {g: {"min": float(a.min()), "max": float(a.max()), "dtype": str(a.dtype)}
                           for g, a in arrays.items()}}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        shape = "×".join(map(str, summary["shape"]))
        print(f"wrote {' and '.join(get)} ({shape}, {arrays[get[0]].dtype}) of a depth-{args.depth} "
              f"{args.activation} MLP to {args.out}")
    return 0


def _cmd_catalog(args) -> int:
    from .derivations import catalog_table, write_derivations

    if args.write:
        written = write_derivations(args.write, verify=not args.no_verify,
                                    log=None if args.json else (lambda m: print(m, flush=True)))
        if args.json:
            print(json.dumps({"written": [str(p) for p in written]}, indent=2))
        return 0
    if args.json:
        from .catalog import CATALOG

        records = []
        for name, entry in CATALOG.items():
            dual = derive(entry.factory())
            records.append({"name": name, "sigma": str(dual.activation.expr), "exact": dual.exact,
                            "method": dual.method, "parameters": {p: str(v) for p, v in entry.parameters},
                            "description": entry.description})
        print(json.dumps(records, indent=2, ensure_ascii=False))
    else:
        print(catalog_table(), end="")
    return 0


class CommandLineError(NtksymError):
    """Options that are missing, do not go together, or files that cannot be read."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ntksym",
        description="Derive NNGP/NTK dual activations in closed form (K, Kdot, V) from a formula for σ.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("derive", help="derive K, Kdot and V of an activation",
                       epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("expr", help='σ as a formula in one variable ("x*erf(x)") or a catalog name ("relu")')
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds for the closed-form search before a numeric dual (default {DEFAULT_TIMEOUT})")
    p.add_argument("--no-check", action="store_true",
                   help="skip the comparison of the closed form with independent quadrature")
    p.set_defaults(func=_cmd_derive)

    v = sub.add_parser("verify", help="check K, Kdot, V (or your formula for them) against Monte Carlo",
                       epilog=_VERIFY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("expr", help='σ as a formula in one variable ("x*erf(x)") or a catalog name ("relu")')
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.add_argument("--samples", type=_samples, default=None,
                   help="Monte Carlo samples per covariance (default 4194304; 1048576 with --K/--Kdot/--V); "
                        "1e8 runs in bounded memory")
    v.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0; runs are deterministic)")
    v.add_argument("--alpha", type=float, default=0.01,
                   help="family-wise false-alarm rate (default 0.01)")
    v.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    v.add_argument("--plot", metavar="FILE", help="save a plot of k(ρ) with Monte Carlo error bars")
    v.add_argument("--K", metavar="FORMULA", help="your formula for K in q1, q2, c, to be checked")
    v.add_argument("--Kdot", metavar="FORMULA", help="your formula for Kdot in q1, q2, c")
    v.add_argument("--V", metavar="FORMULA", help="your formula for V in q")
    v.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=argparse.SUPPRESS)
    v.set_defaults(func=_cmd_verify)

    la = sub.add_parser("latex", help="LaTeX of a dual (and its derivation) or of an MLP's recurrences",
                        epilog=_LATEX_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    la.add_argument("expr", nargs="?", help="σ as a formula or a catalog name")
    la.add_argument("--activation", help="σ (instead of EXPR)")
    _network_options(la, required=False)
    la.add_argument("--general", action="store_true",
                    help="with --depth: the recurrences with K and Kdot left as functions")
    la.add_argument("--document", action="store_true", help="a complete standalone document")
    la.add_argument("--out", metavar="FILE", help="write the LaTeX to FILE")
    la.add_argument("--pdf", metavar="FILE", help="compile the document with pdflatex and write the PDF to FILE")
    la.add_argument("--json", action="store_true", help="machine-readable output")
    la.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=argparse.SUPPRESS)
    la.set_defaults(func=_cmd_latex)

    k = sub.add_parser("kernel", help="NNGP/NTK Gram matrices of an MLP for inputs from .npy/.csv",
                       epilog=_KERNEL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    k.add_argument("--activation", required=True, help="σ as a formula or a catalog name")
    _network_options(k, required=True)
    k.add_argument("--inputs", required=True, metavar="FILE", help="x1: .npy or .csv, one row per input")
    k.add_argument("--inputs2", metavar="FILE", help="x2 (default: x2 = x1)")
    k.add_argument("--get", default="ntk", help="nngp, ntk (default) or nngp,ntk")
    k.add_argument("--out", required=True, metavar="FILE", help=".npy (one kernel) or .npz (both)")
    k.add_argument("--batch-size", type=int, default=None, help="compute in blocks of this many rows")
    k.add_argument("--json", action="store_true", help="machine-readable summary")
    k.set_defaults(func=_cmd_kernel)

    ca = sub.add_parser("catalog", help="the named activations; --write generates derivations/",
                        epilog=_CATALOG_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ca.add_argument("--write", metavar="DIR", help="write a page and a .tex per activation and index.md")
    ca.add_argument("--no-verify", action="store_true", help="with --write: skip the Monte Carlo section")
    ca.add_argument("--json", action="store_true", help="machine-readable output")
    ca.set_defaults(func=_cmd_catalog)
    return parser


def _network_options(p, *, required: bool) -> None:
    p.add_argument("--depth", type=int, required=required, help="number of hidden layers of the MLP")
    p.add_argument("--w-std", type=float, default=1.0, help="weight standard deviation σ_w (default 1)")
    p.add_argument("--b-std", type=float, default=0.0, help="bias standard deviation σ_b (default 0)")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NtksymError as err:
        print(f"ntksym: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
