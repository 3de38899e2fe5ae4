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
    return parser


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
