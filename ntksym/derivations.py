"""The derivations catalog: a Markdown page and a LaTeX document per catalog activation, and an index.

`write_derivations(directory)` is what `ntksym catalog --write derivations/` runs. Each page has a symbolic
part (σ, K, K̇, V in LaTeX, the method and the derivation trace) that depends only on the engine, and a
verification part (Monte Carlo with a fixed seed, independent quadrature) that records measured figures.
tests/test_derivations.py regenerates the symbolic parts and the index and fails when derivations/ is stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp

from .catalog import CATALOG
from .dual import Dual, check_against_quadrature, derive

__all__ = ["VERIFY_SAMPLES", "catalog_table", "render_page", "symbolic_section", "write_derivations"]

VERIFY_SAMPLES = 2**18
VERIFY_SEED = 0
VERIFICATION_HEADING = "## Verification"


@dataclass(frozen=True)
class CatalogRow:
    """One line of the catalog table: name, σ, exact or numeric, method."""

    name: str
    expression: str
    exact: bool
    method: str


def _rows() -> list[CatalogRow]:
    rows = []
    for name, entry in CATALOG.items():
        dual = derive(entry.factory())
        rows.append(CatalogRow(name, _plain(dual.activation.expr), dual.exact, dual.method))
    return rows


def catalog_table(*, links: bool = False) -> str:
    """The Markdown table of the catalog (activation, σ, exact/numeric, method), generated from the engine."""
    lines = ["| activation | σ(x) (default parameters) | dual | method |", "|---|---|---|---|"]
    for row in _rows():
        name = f"[{row.name}]({row.name}.md)" if links else f"`{row.name}`"
        kind = "exact" if row.exact else "numeric"
        lines.append(f"| {name} | `{row.expression}` | {kind} | {row.method} |")
    return "\n".join(lines) + "\n"


def _plain(expr: sp.Expr) -> str:
    """σ as one line of text for a table cell: long exact constants shown to 8 digits, '|' escaped."""
    short = expr.xreplace({r: sp.Float(r, 8) for r in expr.atoms(sp.Rational) if r.q > 10**6 or abs(r.p) > 10**9})
    return sp.sstr(short).replace("|", "\\|")


def _math(expr) -> str:
    return f"$$\n{sp.latex(expr)}\n$$"


def symbolic_section(name: str) -> str:
    """The engine-only part of an activation's page: σ, the dual in LaTeX, the method and the trace."""
    entry = CATALOG[name]
    dual = derive(entry.factory())
    params = ", ".join(f"{p}={v}" for p, v in entry.parameters)
    out = [f"# {name}", "", f"{entry.description}", "",
           f"σ(x) = ${sp.latex(dual.activation.expr)}$ — `ntksym.catalog.{name}({params})`", "",
           f"**Method:** {dual.method}. " + ("**Exact** (closed form)." if dual.exact else
                                            f"**Numeric** — no closed form found; relative error bound "
                                            f"{dual.error_bound:.1e}."), ""]
    if dual.exact:
        out += ["## Dual activation", "", "K(q₁, q₂, c) = E[σ(u)σ(v)]:", "", _math(dual.K), "",
                "K̇(q₁, q₂, c) = E[σ'(u)σ'(v)]:", ""]
        out += [_math(dual.Kdot) if dual.Kdot is not None else f"does not exist: {dual.Kdot_reason}", ""]
        out += ["V(q) = E[σ(z)²]:", "", _math(dual.V), "", "Normalised: k̂(ρ) = K(1, 1, ρ):", "",
                _math(dual.k_hat), ""]
    else:
        out += ["## Dual activation", "",
                ("K, K̇ and V are evaluated by panelled Gaussian quadrature (`dual.evaluate`, `dual.variance`); "
                "in JAX by `nk.lower.lower(dual)`."), ""]
        if dual.Kdot is None:
            out += [f"K̇ does not exist: {dual.Kdot_reason}", ""]
    out += ["## Derivation", ""]
    for i, step in enumerate(dual.steps, 1):
        line = f"{i}. **{step.rule}** — {step.description}"
        if step.expression is not None:
            line += f": ${sp.latex(step.expression)}$"
        out.append(line)
    out.append("")
    return "\n".join(out)


def _verification_section(name: str, dual: Dual) -> str:
    from .verify import verify

    report = verify(dual, n_samples=VERIFY_SAMPLES, seed=VERIFY_SEED)
    judged = [e for e in report.estimates if e.judged]
    worst = max((abs(e.z) for e in judged if np.isfinite(e.z)), default=0.0)
    lines = [VERIFICATION_HEADING, "",
             (f"Monte Carlo (`ntksym verify {name} --samples {VERIFY_SAMPLES} --seed {VERIFY_SEED}`): "
             f"**{'passed' if report.passed else 'FAILED'}** — {report.n_judged} of {len(report.estimates)} "
             f"estimates judged, largest |z| = {worst:.2f} against z* = {report.z_threshold:.2f} "
             f"(family-wise false-alarm rate α = {report.alpha:g}).")]
    if dual.exact:
        check = check_against_quadrature(dual)
        lines.append("")
        lines.append(f"Independent quadrature (`ntksym derive {name}`): K agrees to {check.discrepancy:.1e} of "
                     f"√(V(q₁)V(q₂)) at {len(check.covariances)} covariances (quadrature error estimate "
                     f"{check.quadrature_error:.1e}) — **{'passed' if check.passed else 'FAILED'}**.")
    return "\n".join(lines) + "\n"


def render_page(name: str, *, verify: bool = True) -> str:
    """The Markdown page of a catalog activation (with the Monte Carlo section if `verify`)."""
    page = symbolic_section(name)
    if verify:
        page += "\n" + _verification_section(name, derive(CATALOG[name].factory()))
    return page


def write_derivations(directory, *, names=None, verify: bool = True, log=None) -> list[Path]:
    """Write <name>.md and <name>.tex for every catalog activation, and index.md, into `directory`."""
    from .latex import latex_document

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or list(CATALOG):
        dual = derive(CATALOG[name].factory())
        md = directory / f"{name}.md"
        md.write_text(render_page(name, verify=verify), encoding="utf-8")
        tex = directory / f"{name}.tex"
        tex.write_text(latex_document(dual, title=f"ntksym: the dual activation of {name}"), encoding="utf-8")
        written += [md, tex]
        if log is not None:
            log(f"wrote {md} and {tex}")
    index = directory / "index.md"
    index.write_text("# Derivations of the catalog activations\n\n"
                     "Generated by `ntksym catalog --write derivations/`; do not edit by hand "
                     "(tests/test_derivations.py fails when these pages are stale).\n\n"
                     + catalog_table(links=True), encoding="utf-8")
    written.append(index)
    return written
