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
