"""ntksym.latex: the LaTeX shows exactly the derived expressions, and every document compiles.

Correctness is checked against `sympy.latex` of the dual's own expressions (sympy.parsing.latex
needs antlr4 or lark, which ntksym does not depend on, so there is no parse-back). The substituted
network recurrences are checked by mapping the Σ names back to q_{1}, q_{2}, c, which must give
sympy.latex(K) character for character: that checks the expression and the assignment
q1 = Σ(x,x), q2 = Σ(x',x'), c = Σ(x,x') together (a swapped assignment would not map back).

Compile tests need pdflatex. They skip without it, unless NTKSYM_REQUIRE_TEX=1 (CI sets it), where
they fail instead.
"""

from __future__ import annotations

import functools as ft
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

import ntksym as nk
from ntksym import latex as L
from ntksym.catalog import catalog_activations
from ntksym.errors import NtksymError
from ntksym.symbols import c, q1, q2

EXACT = ["relu", "erf", "gelu", "step", "sign", "hermite", "sin", "rectified_monomial"]


@ft.cache
def _catalog_duals() -> tuple:
    return tuple(nk.derive(a) for a in catalog_activations())


def _cnn():
    """The architecture of the brief: Conv → relu → AvgPool → Conv → GlobalAvgPool → Dense."""
    return nk.serial(
        nk.Conv(4, (3, 3), w_std=1.5, b_std=0.1),
        nk.Activation("relu"),
        nk.AvgPool((2, 2)),
        nk.Conv(4, (3, 3), strides=(2, 2), padding="VALID", w_std=1.2, b_std=0.2),
        nk.GlobalAvgPool(),
        nk.Dense(1, w_std=1.0, b_std=0.0),
    )


@pytest.fixture(scope="module")
def pdflatex():
    """The engine for compile tests: skip when absent, fail when NTKSYM_REQUIRE_TEX=1 asks for it."""
    if shutil.which("pdflatex") is not None:
        return "pdflatex"
    message = "pdflatex is not on PATH; install it with: apt-get install texlive-latex-base"
    if os.environ.get("NTKSYM_REQUIRE_TEX") == "1":
        pytest.fail(f"NTKSYM_REQUIRE_TEX=1 but {message}")
    pytest.skip(f"LaTeX compile tests skipped: {message} (set NTKSYM_REQUIRE_TEX=1 to make this a failure)")


def _compile(source: str, engine: str, workdir) -> None:
    pdf = L.compile_latex(source, engine=engine, workdir=workdir)
    # compile_latex raised if the log had an error or an undefined control sequence; the file must
    # also be a real PDF (a zero-byte or truncated file would mean the engine died silently)
    assert pdf.read_bytes()[:5] == b"%PDF-", f"{pdf} is not a PDF"
    log = (pdf.parent / "document.log").read_text(encoding="latin-1")
    assert "Undefined control sequence" not in log and "\n! " not in log, "the log reports a TeX error"


# --------------------------------------------------------------------------------------------------
# dual_latex: the exact expressions, the numeric and the missing-K̇ cases
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXACT)
def test_dual_latex_shows_exactly_the_derived_expressions(name):
    dual = nk.derive(name)
    out = L.dual_latex(dual)
    # each formula appears verbatim *after its own left-hand side*, so K, K̇, V, k̂ cannot be mixed up
    assert rf"K(q_{{1}}, q_{{2}}, c) = {sp.latex(dual.K)}$" in out
    assert rf"V(q) = {sp.latex(dual.V)}$" in out
    assert rf"\hat{{k}}(\rho) = K(1, 1, \rho) = {sp.latex(dual.k_hat)}$" in out
    assert rf"\sigma(x) = {sp.latex(dual.activation.expr)}$" in out
    if dual.Kdot is not None:
        assert rf"\dot{{K}}(q_{{1}}, q_{{2}}, c) = {sp.latex(dual.Kdot)}$" in out
    # sympy.latex prints the canonical symbols as q_{1}, q_{2}, c, \rho: no raw SymPy names leak
    assert "q1" not in out and "rho" not in out.replace(r"\rho", "")
    assert out.isascii(), "pdflatex without inputenc tricks needs ASCII source"


def test_dual_latex_of_a_numeric_dual_states_the_method_and_bound_instead_of_a_formula():
    dual = nk.derive("tanh")
    assert not dual.exact  # the premise: tanh has no closed-form dual in ntksym
    out = L.dual_latex(dual)
    assert "No closed form; numeric (Gaussian quadrature), relative error" in out
    mantissa, exponent = f"{dual.error_bound:.1e}".split("e")
    assert rf"\le {mantissa} \times 10^{{{int(exponent)}}}" in out
    # the defining expectations, not the unevaluated placeholder K(tanh, q1, q2, c)
    assert r"K(q_{1}, q_{2}, c) = \mathbb{E}\left[\sigma(u)\,\sigma(v)\right]" in out
    assert r"\dot{K}(q_{1}, q_{2}, c) = \mathbb{E}\left[\sigma'(u)\,\sigma'(v)\right]" in out
    assert r"V(q) = \mathbb{E}\left[\sigma(z)^{2}\right]" in out
    assert sp.latex(dual.K) not in out


def test_dual_latex_explains_a_missing_kdot():
    dual = nk.derive("step")
    assert dual.Kdot is None  # the premise: step jumps, so K̇ does not exist
    out = L.dual_latex(dual)
    assert r"$\dot{K}(q_{1}, q_{2}, c)$ does not exist: " + L.escape_text(dual.Kdot_reason) in out
    assert r"\dot{K}(q_{1}, q_{2}, c) =" not in out


def test_derivation_latex_lists_every_step_in_order():
    dual = nk.derive("relu")
    out = L.derivation_latex(dual)
    items = out.split(r"\item ")[1:]
    assert len(items) == len(dual.steps)  # one numbered item per step, none merged or lost
    for item, step in zip(items, dual.steps):
        assert item.startswith(rf"\textbf{{{L.escape_text(step.rule)}}}: {L.escape_text(step.description)}")
        if step.expression is not None:
            assert rf"$\displaystyle {sp.latex(step.expression)}$" in item
    assert out.startswith(r"\begin{enumerate}") and out.rstrip().endswith(r"\end{enumerate}")


def test_methods_delegate_to_the_module():
    dual = nk.derive("erf")
    net = nk.mlp(dual, depth=1)
    assert dual.latex() == L.dual_latex(dual)
    assert dual.derivation_latex() == L.derivation_latex(dual)
    assert net.latex() == L.network_latex(net)
    assert net.latex(substitute=False) == L.network_latex(net, substitute=False)


# --------------------------------------------------------------------------------------------------
# network_latex: the recurrences and the substituted closed forms
# --------------------------------------------------------------------------------------------------


def _sigma(l, which, spatial=False):
    args = {"xy": "x, x'", "xx": "x, x", "yy": "x', x'"}[which]
    sub = {"xy": "_{s, s'}", "xx": "_{s, s}", "yy": "_{s', s'}"}[which] if spatial else ""
    return rf"\Sigma^{{({l})}}{sub}({args})"


def _formula_after(out: str, lhs: str) -> str:
    """The right-hand side of the breakable display `lhs = ...`."""
    match = re.search(re.escape(rf"$\displaystyle {lhs} = ") + r"(.*?)\$\\par\}", out)
    assert match is not None, f"no display for {lhs}"
    return match.group(1)


def _map_back(formula: str, l: int, spatial: bool) -> str:
    """Σ names back to q_{1}, q_{2}, c. sympy parenthesises a base whose name holds '^' before a power
    (\\left(Σ\\right)^{2}), which q_{1} does not need: undo that first."""
    for which, name in (("xx", "q_{1}"), ("yy", "q_{2}"), ("xy", "c")):
        sym = _sigma(l, which, spatial)
        formula = formula.replace(rf"\left({sym}\right)", name).replace(sym, name)
    return formula


@pytest.mark.parametrize("name", ["relu", "gelu", "erf", "rectified_monomial"])
def test_mlp_recurrence_substitutes_the_closed_forms_with_the_right_arguments(name):
    dual = nk.derive(name)
    out = L.network_latex(nk.mlp(dual, depth=2, w_std=1.5, b_std=0.1))
    # layers: 1 Dense, 2 σ, 3 Dense, 4 σ, 5 Dense; the activations read layers 1 and 3
    for l in (2, 4):
        k_formula = _formula_after(out, _sigma(l, "xy"))
        assert _map_back(k_formula, l - 1, False) == sp.latex(dual.K)
        kdot_formula = _formula_after(out, rf"\quad\text{{where }} \dot{{K}}^{{({l})}}")
        assert _map_back(kdot_formula, l - 1, False) == sp.latex(dual.Kdot)
        # the same as sympy.latex with the canonical symbols renamed by the printer
        names = {q1: _sigma(l - 1, "xx"), q2: _sigma(l - 1, "yy"), c: _sigma(l - 1, "xy")}
        assert k_formula == sp.latex(dual.K, symbol_names=names)


def test_mlp_recurrence_is_survey_eq_58_61_with_listed_parameters():
    out = L.network_latex(nk.mlp("relu", depth=1, w_std=1.5, b_std=0.1))
    rows = [
        r"\Sigma^{(0)}(x, x') &= \frac{x^{\top} x'}{d}",
        r"\Theta^{(0)}(x, x') &= 0",
        r"\Sigma^{(1)}(x, x') &= \left(\sigma_w^{(1)}\right)^{2} \Sigma^{(0)}(x, x') + \left(\sigma_b^{(1)}\right)^{2}",
        r"\Theta^{(1)}(x, x') &= \Sigma^{(1)}(x, x') + \left(\sigma_w^{(1)}\right)^{2} \Theta^{(0)}(x, x')",
        r"\Sigma^{(2)}(x, x') &= K_{\sigma}\!\left(\Sigma^{(1)}(x, x), \Sigma^{(1)}(x', x'), \Sigma^{(1)}(x, x')\right)",
        (r"\Theta^{(2)}(x, x') &= \dot{K}_{\sigma}\!\left(\Sigma^{(1)}(x, x), \Sigma^{(1)}(x', x'), "
        r"\Sigma^{(1)}(x, x')\right) \Theta^{(1)}(x, x')"),
        r"\Theta^{(3)}(x, x') &= \Sigma^{(3)}(x, x') + \left(\sigma_w^{(3)}\right)^{2} \Theta^{(2)}(x, x')",
    ]
    for row in rows:
        assert row in out
    for l in (1, 3):
        assert rf"$\sigma_w^{{({l})}} = 1.5$, $\sigma_b^{{({l})}} = 0.1$" in out
    # numbered equations: one align per layer plus the input, two rows each
    assert out.count(r"\begin{align}") == 4 and r"\begin{align*}" not in out
    assert r"The NNGP kernel is $\Sigma^{(3)}$ and the NTK is $\Theta^{(3)}$." in out


def test_standard_parameterization_has_fan_in_and_bias_terms():
    # ntksym.kernel._dense: Θ ↦ n·Σ + w²Θ + 1[b_std > 0] (neural-tangents' standard parameterization)
    with_bias = L.network_latex(nk.serial(nk.Dense(7, 1.0, 0.5, "standard"), nk.Activation("erf"),
                                          nk.Dense(1, 2.0, 0.5, "standard")))
    assert (r"\Theta^{(3)}(x, x') &= n^{(2)} \Sigma^{(2)}(x, x') + \left(\sigma_w^{(3)}\right)^{2} "
            r"\Theta^{(2)}(x, x') + 1") in with_bias
    assert r"$n^{(2)} = 7$" in with_bias  # the width of the first Dense is the fan-in of the last
    no_bias = L.network_latex(nk.serial(nk.Dense(7, 1.0, 0.0, "standard")))
    assert r"\Theta^{(1)}(x, x') &= n^{(0)} \Sigma^{(0)}(x, x') + \left(\sigma_w^{(1)}\right)^{2} " \
        r"\Theta^{(0)}(x, x')" + "\n" in no_bias  # no "+ 1": b_std = 0 means no bias
    assert r"$n^{(0)} = d$" in no_bias


def test_substitute_false_and_numeric_duals_keep_the_general_form():
    relu = nk.derive("relu")
    general = L.network_latex(nk.mlp(relu, depth=1), substitute=False)
    assert sp.latex(relu.K, symbol_names={q1: _sigma(1, "xx"), q2: _sigma(1, "yy"), c: _sigma(1, "xy")}) \
        not in general
    assert r"K_{\sigma}\!\left(" in general
    tanh = nk.derive("tanh")
    numeric = L.network_latex(nk.mlp(tanh, depth=1))
    assert "no closed form: evaluated numerically" in numeric and r"\displaystyle" not in numeric


def test_missing_kdot_ends_the_ntk_in_the_recurrence():
    out = L.network_latex(nk.mlp("step", depth=1))
    assert r"\Theta^{(2)}" in out and r"\Theta^{(2)}(x, x') &=" not in out  # named as undefined, not defined
    assert r"\Theta^{(3)}(x, x') &=" not in out
    assert "the NTK is not defined" in out


def test_cnn_recurrence_follows_survey_eq_62_78():
    out = L.network_latex(_cnn())
    expected = [
        r"\Sigma^{(0)}_{s, s'}(x, x') &= \frac{1}{C} \sum_{j=1}^{C} x_{s,j}\, x'_{s',j}",
        # eq. (69)–(70) with NT's fan-in normalisation 1/|W|
        (r"\Sigma^{(1)}_{s, s'}(x, x') &= \left(\sigma_w^{(1)}\right)^{2} \frac{1}{|\mathcal{W}^{(1)}|} "
        r"\sum_{r \in \mathcal{W}^{(1)}} \Sigma^{(0)}_{s + r,\, s' + r}(x, x') + \left(\sigma_b^{(1)}\right)^{2}"),
        (r"\Theta^{(1)}_{s, s'}(x, x') &= \Sigma^{(1)}_{s, s'}(x, x') + \left(\sigma_w^{(1)}\right)^{2} "
        r"\frac{1}{|\mathcal{W}^{(1)}|} \sum_{r \in \mathcal{W}^{(1)}} \Theta^{(0)}_{s + r,\, s' + r}(x, x')"),
        r"$\mathcal{W}^{(1)} = \{0, \ldots, 2\}\times\{0, \ldots, 2\}$ ($|\mathcal{W}^{(1)}| = 9$)",
        # eq. (76)–(78): the activation per position pair
        (r"\Sigma^{(2)}_{s, s'}(x, x') &= K_{\sigma}\!\left(\Sigma^{(1)}_{s, s}(x, x), "
        r"\Sigma^{(1)}_{s', s'}(x', x'), \Sigma^{(1)}_{s, s'}(x, x')\right)"),
        # AvgPool: each of s, s' averaged over its own window
        (r"\Sigma^{(3)}_{s, s'}(x, x') &= \frac{1}{|\mathcal{P}^{(3)}|^{2}} \sum_{r, r' \in \mathcal{P}^{(3)}} "
        r"\Sigma^{(2)}_{s + r,\, s' + r'}(x, x')"),
        # strided Conv
        r"\Sigma^{(3)}_{t \odot s + r,\, t \odot s' + r}(x, x')",
        r"strides $t = (2, 2)$",
        # eq. (62), (75): global average pooling
        r"\Sigma^{(5)}(x, x') &= \frac{1}{|\mathcal{S}|^{2}} \sum_{s, s' \in \mathcal{S}} \Sigma^{(4)}_{s, s'}(x, x')",
        r"\Theta^{(6)}(x, x') &= \Sigma^{(6)}(x, x') + \left(\sigma_w^{(6)}\right)^{2} \Theta^{(5)}(x, x')",
    ]
    for row in expected:
        assert row in out
    relu = nk.derive("relu")
    assert _map_back(_formula_after(out, _sigma(2, "xy", True)), 1, True) == sp.latex(relu.K)


def test_flatten_averages_each_position_with_itself():
    out = L.network_latex(nk.serial(nk.Conv(2, (3,)), nk.Activation("erf"), nk.Flatten(), nk.Dense(1)))
    assert (r"\Sigma^{(3)}(x, x') &= \frac{1}{|\mathcal{S}|} \sum_{s \in \mathcal{S}} "
            r"\Sigma^{(2)}_{s, s}(x, x')") in out
    assert r"\{0, \ldots, 2\}$" in out  # a 1-D filter window


# --------------------------------------------------------------------------------------------------
# Escaping
# --------------------------------------------------------------------------------------------------

_SPECIALS = "\\{}_%&#$^~[]<>|\"'`-@*\n\t\x00\x7f"


def _trace_characters() -> str:
    chars = set()
    for dual in _catalog_duals():
        for step in dual.steps:
            chars |= set(step.rule + step.description)
        chars |= set(dual.Kdot_reason or "") | set(dual.method) | set(dual.activation.label)
    return "".join(sorted(chars))


# deferred: the catalog is derived when hypothesis first draws, not when pytest collects this module
_TRACE_OR_SPECIAL = st.deferred(lambda: st.sampled_from(_SPECIALS + _trace_characters()))


def test_escape_text_maps_specials_and_keeps_plain_text():
    assert L.escape_text("plain text 123") == "plain text 123"  # nothing to escape: unchanged
    assert L.escape_text("50% & $x_1$ #2 {a} ^ ~ \\") == (
        r"50\% \& \$x\_1\$ \#2 \{a\} \textasciicircum{} \textasciitilde{} \textbackslash{}")
    assert L.escape_text("σ ≤ ρ² → δ") == r"$\sigma$ $\le$ $\rho ^{2}$ $\to$ $\delta$"
    assert L.escape_text("K̇ k̂") == r"\.{K} \^{k}"  # combining dot and hat accent their letter
    assert L.escape_text("Σᵢⱼ σ'") == r"$\Sigma _{ij}$ $\sigma '$"  # two subscripts merged, prime in math
    assert L.escape_text("[x]") == "{[}x{]}"  # never an optional argument after \\ or \item


@given(st.text(st.one_of(_TRACE_OR_SPECIAL, st.characters()), max_size=80))
def test_escape_text_is_ascii_for_any_text(text):
    assert L.escape_text(text).isascii()


@given(st.lists(st.text(st.one_of(_TRACE_OR_SPECIAL, st.characters()),
                        max_size=60), min_size=1, max_size=4))
def test_escaped_text_compiles(pdflatex, tmp_path_factory, texts):
    body = "\n\n".join(L.escape_text(t) for t in texts)
    items = "\\begin{enumerate}\n" + "".join(rf"\item {L.escape_text(t)}" + "\n" for t in texts) + "\\end{enumerate}"
    _compile(L.latex_document(body, items, title=texts[0]), pdflatex, tmp_path_factory.mktemp("escape"))


def test_every_character_of_the_catalog_traces_compiles(pdflatex, tmp_path):
    chars = _trace_characters()
    assert any(not ch.isascii() for ch in chars)  # the premise: the traces hold unicode (σ, ρ, K̇, …)
    _compile(L.latex_document(L.escape_text(chars), title=chars), pdflatex, tmp_path)


# --------------------------------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------------------------------


def test_catalog_document_compiles(pdflatex, tmp_path):
    # all 23 catalog duals (exact, numeric, without K̇) with their derivations in one document: one
    # pdflatex run instead of 23, and a named activation with LaTeX specials in its section title
    odd = nk.derive(nk.activation("x*erf(x)", name="odd_name 50% & σ²"))
    _compile(L.latex_document(*_catalog_duals(), odd, title="ntksym catalog"), pdflatex, tmp_path)


def test_network_documents_compile(pdflatex, tmp_path):
    nets = [nk.mlp(dual, depth=1, w_std=1.5, b_std=0.1) for dual in _catalog_duals()]
    nets += [
        _cnn(),
        nk.mlp("relu", depth=2, w_std=1.2, b_std=0.3, parameterization="standard"),
        nk.serial(nk.Conv(2, (3,), parameterization="standard", b_std=0.1), nk.Activation("step"),
                  nk.Flatten(), nk.Dense(1)),
    ]
    _compile(L.latex_document(*nets, r"\noindent A raw \LaTeX{} part.", title="networks"), pdflatex, tmp_path)


def test_compile_errors_quote_the_log(pdflatex, tmp_path):
    bad = L.latex_document(r"\thisisnotacommand")
    with pytest.raises(L.LatexError, match="Undefined control sequence"):
        L.compile_latex(bad, engine=pdflatex, workdir=tmp_path)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MyLayer:
    """A user's own layer type: no LaTeX rule."""


def test_unsupported_layer_is_a_named_error():
    with pytest.raises(L.UnsupportedLayerError, match=r"no rule for the layer type .*MyLayer.*Supported: Dense") as err:
        L.network_latex(nk.serial(nk.Dense(), MyLayer()))
    assert isinstance(err.value, NtksymError) and isinstance(err.value, NotImplementedError)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: L.network_latex(42), "takes an architecture"),
        (lambda: L.network_latex(nk.mlp("relu", 1), substitute="yes"), "substitute must be True or False"),
        (lambda: L.dual_latex("relu"), r"derive one first"),
        (lambda: L.derivation_latex(None), r"takes an ntksym Dual"),
        (lambda: L.latex_document(3.0), "parts must be Duals"),
        (lambda: L.latex_document(title=5), "title must be a str"),
        (lambda: L.escape_text(b"bytes"), "takes a str"),
        (lambda: L.compile_latex(None), "LaTeX source as a str"),
        (lambda: L.network_latex(nk.serial(nk.Activation("relu"), nk.Dense())), "needs Gaussian pre-activations"),
        (lambda: L.network_latex(nk.serial(nk.Conv(1, (3,)), nk.Flatten(), nk.Conv(1, (3,)))),
         "needs spatial inputs"),
    ],
)
def test_bad_inputs_raise_ntksym_errors(call, match):
    with pytest.raises(NtksymError, match=match):
        call()


def test_missing_engine_says_how_to_install():
    with pytest.raises(L.LatexError, match="not installed.*apt-get install texlive-latex-base"):
        L.compile_latex(L.latex_document("x"), engine="/nonexistent/pdflatex")


def test_latex_module_does_not_import_jax():
    code = "import sys, ntksym.latex, ntksym as nk; nk.mlp('relu', 1).latex(); print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
