"""LaTeX of duals, derivation traces and NNGP/NTK recurrences; a standalone document; pdflatex.

Formulas are `sympy.latex` of ntksym's own expressions (q1, q2, c, rho print as q_{1}, q_{2}, c, \\rho),
so what is shown is exactly what was derived. Every fragment is ASCII and needs only amsmath and
amssymb (both in Debian's texlive-latex-base), so `latex_document` compiles with a bare TeX install.

Long closed forms are set as breakable displays, `$\\displaystyle lhs = rhs$` in a ragged-right
paragraph: TeX may break such a line after a top-level `+`, `-` or `=`, where a display environment
(`align`, `equation`) cannot break at all; `multline` would need hand-placed breaks and `breqn`
is not in texlive-latex-base. The recurrences of a network are numbered `align` equations (their
general form is short); the closed forms substituted into them follow each as a breakable display.

Public: `dual_latex`, `derivation_latex`, `network_latex`, `latex_document`, `compile_latex`,
`escape_text`, `LatexError`, `LatexInputError`, `UnsupportedLayerError`. No JAX here (STYLE.md
principle 1): this module reads only symbolic objects.
"""

from __future__ import annotations

import functools as ft
import math
import pathlib
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass

import sympy as sp

from .dual import Dual
from .errors import NtksymError
from .layers import Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Serial
from .symbols import c, q1, q2
from .trace import Step

__all__ = [
    "LatexError",
    "LatexInputError",
    "UnsupportedLayerError",
    "compile_latex",
    "derivation_latex",
    "dual_latex",
    "escape_text",
    "latex_document",
    "network_latex",
]


class LatexError(NtksymError):
    """A LaTeX engine is missing, or it failed on a document (the message quotes the log's first error)."""


class LatexInputError(NtksymError, TypeError):
    """An object that ntksym cannot render as LaTeX (a wrong type, or an architecture that does not fit)."""


class UnsupportedLayerError(NtksymError, NotImplementedError):
    """A layer type without a LaTeX rule (ntksym.latex renders Dense, Activation, Conv, AvgPool,
    GlobalAvgPool, Flatten and Serial)."""


# --------------------------------------------------------------------------------------------------
# Text escaping: LaTeX specials and unicode -> ASCII LaTeX that pdflatex accepts
# --------------------------------------------------------------------------------------------------

_TEXT_SPECIALS = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
    "$": r"\$", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}",
    # "[" and "]" braced: after \\ or \item a leading "[" would start an optional argument
    "[": "{[}", "]": "{]}",
    "\n": " ", "\t": " ", "\r": " ",
    "\u00a0": "~", "\u2014": "---", "\u2013": "--", "\u2026": r"\ldots{}", "\u2018": "`", "\u2019": "'",
    "\u201c": "``", "\u201d": "''", "\u2044": "/",
}
# OT1 text fonts put other glyphs in the slots of < > | (¡ ¿ —): these are set in math
_MATH_ASCII = {"<": "<", ">": ">", "|": "|"}
_MATH_SYMBOLS = {
    "\u2264": r"\le", "\u2265": r"\ge", "\u2260": r"\neq", "\u2248": r"\approx", "\u00b1": r"\pm",
    "\u2213": r"\mp", "\u00d7": r"\times", "\u00b7": r"\cdot", "\u22c5": r"\cdot", "\u00f7": r"\div",
    "\u2212": "-", "\u2192": r"\to", "\u2190": r"\leftarrow", "\u21a6": r"\mapsto", "\u21d2": r"\Rightarrow",
    "\u21d4": r"\Leftrightarrow", "\u2194": r"\leftrightarrow", "\u221e": r"\infty", "\u221a": r"\surd",
    "\u2211": r"\sum", "\u220f": r"\prod", "\u222b": r"\int", "\u2202": r"\partial", "\u2207": r"\nabla",
    "\u2208": r"\in", "\u2209": r"\notin", "\u2282": r"\subset", "\u2286": r"\subseteq", "\u222a": r"\cup",
    "\u2229": r"\cap", "\u2200": r"\forall", "\u2203": r"\exists", "\u211d": r"\mathbb{R}",
    "\u2115": r"\mathbb{N}", "\u2124": r"\mathbb{Z}", "\u211a": r"\mathbb{Q}", "\u2102": r"\mathbb{C}",
    "\U0001d53c": r"\mathbb{E}", "\u22a4": r"\top", "\u22a5": r"\perp", "\u00b0": r"{}^{\circ}",
    "\u2218": r"\circ", "\u2032": "'", "\u2033": "''", "\u223c": r"\sim", "\u2261": r"\equiv",
    "\u221d": r"\propto", "\u27e8": r"\langle", "\u27e9": r"\rangle", "\u2016": r"\|", "\u2223": "|",
    "\u00ac": r"\neg", "\u2227": r"\wedge", "\u2228": r"\vee", "\u2113": r"\ell", "\u0127": r"\hbar",
    "\u2205": r"\emptyset", "\u2297": r"\otimes", "\u2295": r"\oplus", "\u2299": r"\odot",
}
_GREEK_CAPITALS = {"GAMMA", "DELTA", "THETA", "LAMDA", "XI", "PI", "SIGMA", "UPSILON", "PHI", "PSI", "OMEGA"}
_GREEK_SMALL = {"ALPHA", "BETA", "GAMMA", "DELTA", "EPSILON", "ZETA", "ETA", "THETA", "IOTA", "KAPPA",
                "LAMDA", "MU", "NU", "XI", "PI", "RHO", "SIGMA", "TAU", "UPSILON", "PHI", "CHI", "PSI", "OMEGA"}
_TEXT_ACCENTS = {"\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=", "\u0306": "u",
                 "\u0307": ".", "\u0308": '"', "\u030a": "r", "\u030b": "H", "\u030c": "v", "\u0323": "d",
                 "\u0327": "c", "\u0331": "b"}
_MATH_ACCENTS = {"\u0300": "grave", "\u0301": "acute", "\u0302": "hat", "\u0303": "tilde", "\u0304": "bar",
                 "\u0306": "breve", "\u0307": "dot", "\u0308": "ddot", "\u030a": "mathring", "\u030c": "check",
                 "\u20d7": "vec"}
_SCRIPT_BASES = set("0123456789+-=()abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass
class _Token:
    kind: str  # "text", "math" (an atom), "sup" or "sub" (a script of the preceding math)
    body: str
    accentable: bool = False  # a single letter (text) or a single symbol (math) that may take an accent


def escape_text(text: str) -> str:
    """Plain text as LaTeX that pdflatex accepts: specials escaped, unicode set as math or text accents.

    Greek letters, ≤, →, ², ᵢ, K̇ (a combining dot) and the like become math ($\\sigma$, $\\le$,
    $^{2}$, $_{i}$, $\\dot{K}$); accented letters become text accents (\\'{e}); control characters
    are dropped; any other character is shown as its code point, e.g. U+2603. The result is ASCII."""
    if not isinstance(text, str):
        raise LatexInputError(f"escape_text takes a str, got {type(text).__name__}")
    tokens: list[_Token] = []
    run = 0
    for ch in text:
        # a long run without spaces (a number with 60 digits, a formula in words) may break every
        # _RUN characters; TeX itself breaks text only at spaces and hyphens. Never before a
        # combining mark (non-ASCII), which accents the token before it.
        if run >= _RUN and ch.isascii() and tokens and tokens[-1].kind == "text":
            tokens.append(_Token("text", r"\allowbreak{}"))
            run = 0
        _tokenize(ch, tokens)
        run = run + 1 if not ch.isspace() else 0
    return _join(tokens)


_RUN = 16


def _tokenize(ch: str, tokens: list[_Token]) -> None:
    if ch in _TEXT_SPECIALS:
        tokens.append(_Token("text", _TEXT_SPECIALS[ch]))
    elif ch in _MATH_ASCII:
        tokens.append(_Token("math", _MATH_ASCII[ch]))
    elif ch == "'" and tokens and tokens[-1].kind in ("math", "sup", "sub"):
        tokens.append(_Token("math", "'"))  # σ' is a prime in math, not an apostrophe after it
    elif ch.isascii() and ch.isprintable():
        tokens.append(_Token("text", ch, accentable=ch.isalpha()))
    elif ch.isascii():
        return  # ASCII control characters
    elif ch in _MATH_SYMBOLS:
        tokens.append(_Token("math", _MATH_SYMBOLS[ch], accentable=True))
    elif unicodedata.category(ch) == "Mn":
        _accent(ch, tokens)
    elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
        if unicodedata.category(ch) in ("Zl", "Zp"):
            tokens.append(_Token("text", " "))
    elif (greek := _greek(ch)) is not None:
        tokens.append(_Token("math", greek, accentable=True))
    elif (script := _script(ch)) is not None:
        tokens.append(script)
    elif (decomposed := unicodedata.normalize("NFKD", ch)) != ch:
        for part in decomposed:
            _tokenize(part, tokens)
    elif unicodedata.category(ch).startswith("Z"):
        tokens.append(_Token("text", " "))
    else:
        tokens.append(_Token("text", rf"{{\ttfamily U+{ord(ch):04X}}}"))


def _greek(ch: str) -> str | None:
    name = unicodedata.name(ch, "")
    for prefix, small in (("GREEK SMALL LETTER ", True), ("GREEK CAPITAL LETTER ", False)):
        if name.startswith(prefix):
            letter = name[len(prefix):]
            if letter == "FINAL SIGMA":
                return r"\varsigma"
            if letter == "OMICRON":
                return "o" if small else r"\mathrm{O}"
            if small and letter in _GREEK_SMALL:
                return "\\" + letter.lower().replace("lamda", "lambda")
            if not small and letter in _GREEK_CAPITALS:
                return "\\" + letter.capitalize().replace("Lamda", "Lambda")
            if not small and letter in _GREEK_SMALL:  # capitals that look Latin: Α, Β, Ε, …
                return rf"\mathrm{{{_latin_look(letter)}}}"
    return None


def _latin_look(letter: str) -> str:
    return {"ALPHA": "A", "BETA": "B", "EPSILON": "E", "ZETA": "Z", "ETA": "H", "IOTA": "I", "KAPPA": "K",
            "MU": "M", "NU": "N", "RHO": "P", "TAU": "T", "CHI": "X"}.get(letter, "?")


def _script(ch: str) -> _Token | None:
    decomposition = unicodedata.decomposition(ch).split()
    if len(decomposition) == 2 and decomposition[0] in ("<super>", "<sub>"):
        base = chr(int(decomposition[1], 16))
        if base in _SCRIPT_BASES:
            return _Token("sup" if decomposition[0] == "<super>" else "sub", base)
    return None


def _accent(mark: str, tokens: list[_Token]) -> None:
    """A combining mark accents the token before it; with nothing accentable before it, it is dropped."""
    if not tokens or not tokens[-1].accentable:
        return
    last = tokens[-1]
    if last.kind == "text" and mark in _TEXT_ACCENTS:
        tokens[-1] = _Token("text", rf"\{_TEXT_ACCENTS[mark]}{{{last.body}}}")
    elif mark in _MATH_ACCENTS:  # over a math symbol, or a math-only accent (a vector arrow) over a letter
        tokens[-1] = _Token("math", rf"\{_MATH_ACCENTS[mark]}{{{last.body}}}")


def _join(tokens: list[_Token]) -> str:
    """Text tokens as they are; each run of math tokens as one $...$."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i].kind == "text":
            out.append(tokens[i].body)
            i += 1
            continue
        j = i
        while j < len(tokens) and tokens[j].kind != "text":
            j += 1
        out.append("$" + _math_run(tokens[i:j]) + "$")
        i = j
    return "".join(out)


def _math_run(run: list[_Token]) -> str:
    """Math atoms and scripts as one formula; scripts are merged so that no base gets two subscripts
    or two superscripts, and a prime never follows a script (both TeX errors)."""
    parts: list[str] = []
    scripts: dict[str, str] = {}  # the scripts of the current base: "sub"/"sup" -> body
    last = None
    for tok in run:
        if tok.kind == "math":
            after_script = bool(scripts)
            _flush_scripts(scripts, parts)
            if tok.body != "'":
                parts.append(" " + tok.body + " ")
            else:
                parts.append("{}'" if after_script else "'")
        elif tok.kind not in scripts:
            scripts[tok.kind] = tok.body
        elif last == tok.kind:  # ᵢⱼ -> _{ij}, ²³ -> ^{23}
            scripts[tok.kind] += tok.body
        else:  # _{i}^{2} followed by another subscript: give it a new, empty base
            _flush_scripts(scripts, parts)
            parts.append("{}")
            scripts[tok.kind] = tok.body
        last = tok.kind
    _flush_scripts(scripts, parts)
    body = "".join(parts).strip()
    return "{}" + body if body.startswith(("_", "^", "'")) else body


def _flush_scripts(scripts: dict[str, str], parts: list[str]) -> None:
    for kind, mark in (("sub", "_"), ("sup", "^")):
        if kind in scripts:
            parts.append(mark + "{" + scripts.pop(kind) + "}")


# --------------------------------------------------------------------------------------------------
# Formulas
# --------------------------------------------------------------------------------------------------


def _breakable(lhs: str | None, rhs: str) -> str:
    """`lhs = rhs` (or rhs alone) as a display TeX may break after a top-level + or − (hanging indent)."""
    formula = rhs if lhs is None else f"{lhs} = {rhs}"
    return rf"{{\raggedright\noindent\hangindent=2em\hangafter=1 $\displaystyle {formula}$\par}}"


def _number(value: float) -> str:
    text = repr(float(value))
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa.removesuffix('.0')} \times 10^{{{int(exponent)}}}"
    return text.removesuffix(".0")


def _bound(value: float) -> str:
    mantissa, exponent = f"{value:.1e}".split("e")
    return rf"{mantissa} \times 10^{{{int(exponent)}}}"


def _sigma_latex(dual: Dual) -> str:
    return sp.latex(dual.activation.expr)


_DEFINITIONS = (r"(u, v) \sim \mathcal{N}\!\left(0, \begin{pmatrix} q_{1} & c \\ c & q_{2} \end{pmatrix}\right)"
                r",\ z \sim \mathcal{N}(0, q)")


def _check_dual(dual, what: str) -> None:
    if not isinstance(dual, Dual):
        raise LatexInputError(f"{what} takes an ntksym Dual (from ntksym.derive), got {type(dual).__name__}; "
                              f"derive one first: {what}(ntksym.derive(...))")


def dual_latex(dual: Dual) -> str:
    """σ(x), K(q₁, q₂, c), K̇(q₁, q₂, c), V(q) and k̂(ρ) = K(1, 1, ρ) of a dual as a LaTeX fragment.

    The fragment is body material (paragraphs and breakable displays, not one `align`: a numeric
    dual needs text, and long closed forms must be able to break). Closed forms are
    `sympy.latex(dual.K)` etc. verbatim; a numeric dual shows the defining expectations and its
    error bound; a missing K̇ is explained."""
    _check_dual(dual, "dual_latex")
    act = dual.activation
    name = "" if act.name is None else rf" (\texttt{{{escape_text(act.name)}}})"
    lines = [
        rf"\noindent Activation{name}, derived by: {escape_text(dual.method)}.\par",
        _breakable(r"\sigma(x)", _sigma_latex(dual)),
        rf"\noindent Here ${_DEFINITIONS}$.\par\smallskip",
    ]
    if dual.exact:
        lines.append(_breakable(r"K(q_{1}, q_{2}, c)", sp.latex(dual.K)))
    else:
        lines.append(rf"\noindent No closed form; numeric (Gaussian quadrature), relative error "
                     rf"$\le {_bound(dual.error_bound)}$.\par")
        lines.append(_breakable(r"K(q_{1}, q_{2}, c)", r"\mathbb{E}\left[\sigma(u)\,\sigma(v)\right]"))
    if dual.Kdot is None:
        lines.append(rf"\noindent $\dot{{K}}(q_{{1}}, q_{{2}}, c)$ does not exist: "
                     rf"{escape_text(dual.Kdot_reason or '')}.\par")
    elif dual.exact:
        lines.append(_breakable(r"\dot{K}(q_{1}, q_{2}, c)", sp.latex(dual.Kdot)))
    else:
        lines.append(_breakable(r"\dot{K}(q_{1}, q_{2}, c)", r"\mathbb{E}\left[\sigma'(u)\,\sigma'(v)\right]"))
    if dual.exact:
        lines.append(_breakable("V(q)", sp.latex(dual.V)))
        lines.append(_breakable(r"\hat{k}(\rho) = K(1, 1, \rho)", sp.latex(dual.k_hat)))
    else:
        lines.append(_breakable("V(q)", r"\mathbb{E}\left[\sigma(z)^{2}\right]"))
        lines.append(_breakable(r"\hat{k}(\rho)", r"K(1, 1, \rho)"))
    return "\n".join(lines) + "\n"


def derivation_latex(dual: Dual) -> str:
    """The derivation trace `dual.steps` as a numbered list: each step's rule, description and expression."""
    _check_dual(dual, "derivation_latex")
    if not dual.steps:
        return "\\noindent (No derivation steps were recorded.)\\par\n"
    items = []
    for step in dual.steps:
        if not isinstance(step, Step):
            raise LatexInputError(f"dual.steps must hold ntksym.trace.Step records, got {type(step).__name__}")
        item = rf"\item \textbf{{{escape_text(step.rule)}}}: {escape_text(step.description)}"
        if step.expression is not None:
            item += "\n" + _breakable(None, sp.latex(step.expression))
        items.append(item)
    return "\\begin{enumerate}\n" + "\n".join(items) + "\n\\end{enumerate}\n"


# --------------------------------------------------------------------------------------------------
# Network recurrences: one rule per layer type (STYLE.md principle 3)
# --------------------------------------------------------------------------------------------------


@dataclass
class _State:
    """What the rule of layer l needs to know about its input (the output of layer l − 1)."""

    l: int  # the layer index of the survey
    spatial: bool
    gaussian: bool  # the inputs are an affine map of Gaussian weights (an activation needs this)
    ntk: bool  # Θ is defined (false after an activation without K̇)
    width: str  # the fan-in n^{(l-1)} as LaTeX (a number where known)
    substitute: bool


def _S(l: int, spatial: bool, which: str = "xy") -> str:
    return _kernel_symbol(r"\Sigma", l, spatial, which)


def _T(l: int, spatial: bool, which: str = "xy") -> str:
    return _kernel_symbol(r"\Theta", l, spatial, which)


def _kernel_symbol(letter: str, l: int, spatial: bool, which: str, index: str | None = None) -> str:
    args = {"xy": "x, x'", "xx": "x, x", "yy": "x', x'"}[which]
    if index is None:
        index = {"xy": "s, s'", "xx": "s, s", "yy": "s', s'"}[which]
    sub = f"_{{{index}}}" if spatial else ""
    return rf"{letter}^{{({l})}}{sub}({args})"


def _w(l: int) -> str:
    return rf"\sigma_w^{{({l})}}"


def _b(l: int) -> str:
    return rf"\sigma_b^{{({l})}}"


def _paragraph(title: str, body: str) -> str:
    return rf"\paragraph{{{title}}} {body}" + "\n"


def _align(*rows: str) -> str:
    return "\\begin{align}\n" + " \\\\\n".join(rows) + "\n\\end{align}\n"


@ft.singledispatch
def _rule(layer, state: _State) -> str:
    raise UnsupportedLayerError(
        f"the LaTeX interpretation (ntksym.latex.network_latex) has no rule for the layer type "
        f"{type(layer).__module__}.{type(layer).__qualname__}. Supported: Dense, Activation, Conv, AvgPool, "
        f"GlobalAvgPool, Flatten (in a Serial)"
    )


def _params(layer, l: int) -> str:
    return rf"${_w(l)} = {_number(layer.w_std)}$, ${_b(l)} = {_number(layer.b_std)}$"


def _theta_note(state: _State) -> str:
    return "" if state.ntk else r" ($\Theta$ is not defined, see above.)"


@_rule.register
def _dense(layer: Dense, state: _State) -> str:
    l, sp_ = state.l, state.spatial
    sigma = rf"{_S(l, sp_)} &= \left({_w(l)}\right)^{{2}} {_S(l - 1, sp_)} + \left({_b(l)}\right)^{{2}}"
    rows = [sigma]
    if state.ntk and layer.parameterization == "ntk":
        rows.append(rf"{_T(l, sp_)} &= {_S(l, sp_)} + \left({_w(l)}\right)^{{2}} {_T(l - 1, sp_)}")
    elif state.ntk:
        bias = " + 1" if layer.b_std > 0 else ""
        rows.append(rf"{_T(l, sp_)} &= n^{{({l - 1})}} {_S(l - 1, sp_)} "
                    rf"+ \left({_w(l)}\right)^{{2}} {_T(l - 1, sp_)}{bias}")
    where = "per pair of positions $(s, s')$, " if sp_ else ""
    text = (rf"{'NTK' if layer.parameterization == 'ntk' else 'Standard'} "
            rf"parameterization, {where}{_params(layer, l)}; survey eq.~(58), (61).")
    if state.ntk and layer.parameterization == "standard":
        text += (rf" The fan-in is $n^{{({l - 1})}} = {state.width}$; the bias adds 1 to $\Theta$ "
                 r"when $\sigma_b > 0$ (neural-tangents' standard parameterization).")
    state.width, state.gaussian = str(layer.out_dim), True
    return _paragraph(f"Layer {l}: Dense.", text + _theta_note(state)) + _align(*rows)


@_rule.register
def _activation(layer: Activation, state: _State) -> str:
    l, sp_ = state.l, state.spatial
    dual = layer.dual
    if not state.gaussian:
        raise LatexInputError(
            f"layer {l} (activation {dual.activation}) needs Gaussian pre-activations: put a Dense or Conv "
            f"layer before it (its input here is the network input or a Flatten output)"
        )
    args = ", ".join(_S(l - 1, sp_, w) for w in ("xx", "yy", "xy"))
    rows = [rf"{_S(l, sp_)} &= K_{{\sigma}}\!\left({args}\right)"]
    text = (rf"$\sigma(x) = {_sigma_latex(dual)}$; survey eq.~(60)--(61)"
            + (r", (76)--(78)" if sp_ else "") + ".")
    if state.ntk and dual.Kdot is not None:
        rows.append(rf"{_T(l, sp_)} &= \dot{{K}}_{{\sigma}}\!\left({args}\right) {_T(l - 1, sp_)}")
    elif state.ntk:
        text += (rf" $\dot{{K}}_{{\sigma}}$ does not exist ({escape_text(dual.Kdot_reason or '')}), so "
                 rf"the NTK $\Theta^{{({l})}}$ and every later $\Theta$ are not defined.")
        state.ntk = False
    out = _paragraph(f"Layer {l}: activation.", text) + _align(*rows)
    if not dual.exact:
        which = r"$K_{\sigma}$ and $\dot{K}_{\sigma}$ have" if dual.Kdot is not None else r"$K_{\sigma}$ has"
        out += (rf"\noindent {which} no closed form: evaluated numerically (Gaussian quadrature, "
                rf"relative error $\le {_bound(dual.error_bound)}$).\par" + "\n")
    elif state.substitute:
        names = {q1: _S(l - 1, sp_, "xx"), q2: _S(l - 1, sp_, "yy"), c: _S(l - 1, sp_, "xy")}
        out += (r"\noindent With the closed forms of $K_{\sigma}$"
                + (r" and $\dot{K}_{\sigma}$" if state.ntk and dual.Kdot is not None else "")
                + rf" ($q_{{1}} = {names[q1]}$, $q_{{2}} = {names[q2]}$, $c = {names[c]}$):\par" + "\n")
        out += _breakable(_S(l, sp_), _substituted(dual.K, l - 1, sp_)) + "\n"
        if state.ntk and dual.Kdot is not None:
            kdot = rf"\dot{{K}}^{{({l})}}"
            out += _breakable(_T(l, sp_), rf"{kdot}\, {_T(l - 1, sp_)}") + "\n"
            out += _breakable(rf"\quad\text{{where }} {kdot}", _substituted(dual.Kdot, l - 1, sp_)) + "\n"
    state.gaussian = False
    return out


def _substituted(expr: sp.Expr, l: int, spatial: bool) -> str:
    """sympy.latex of a closed form in q1, q2, c with q1 = Σ^{(l)}(x,x), q2 = Σ^{(l)}(x',x'),
    c = Σ^{(l)}(x,x') (per position pair (s, s') when spatial): the printer renames the symbols,
    the expression itself is untouched."""
    names = {q1: _S(l, spatial, "xx"), q2: _S(l, spatial, "yy"), c: _S(l, spatial, "xy")}
    return sp.latex(expr, symbol_names=names)


def _window(shape: tuple[int, ...]) -> str:
    return r"\times".join(rf"\{{0, \ldots, {f - 1}\}}" for f in shape)


def _index(strides: tuple[int, ...] | None, base: str, offset: str) -> str:
    if strides is None or all(t == 1 for t in strides):
        return f"{base} + {offset}"
    return rf"t \odot {base} + {offset}"


def _require_spatial(layer, state: _State) -> None:
    if not state.spatial:
        raise LatexInputError(
            f"layer {state.l} ({type(layer).__name__}) needs spatial inputs, but it follows a Flatten or "
            f"GlobalAvgPool; put it before them"
        )


def _stride_text(strides) -> str:
    if strides is None or all(t == 1 for t in strides):
        return "stride 1"
    return rf"strides $t = ({', '.join(map(str, strides))})$ ($\odot$ componentwise)"


@_rule.register
def _conv(layer: Conv, state: _State) -> str:
    _require_spatial(layer, state)
    l = state.l
    size = math.prod(layer.filter_shape)
    win = rf"\mathcal{{W}}^{{({l})}}"
    i, j = _index(layer.strides, "s", "r"), _index(layer.strides, "s'", "r")
    prev_s = _kernel_symbol(r"\Sigma", l - 1, True, "xy", f"{i},\\, {j}")
    prev_t = _kernel_symbol(r"\Theta", l - 1, True, "xy", f"{i},\\, {j}")
    avg = rf"\frac{{1}}{{|{win}|}} \sum_{{r \in {win}}}"
    rows = [rf"{_S(l, True)} &= \left({_w(l)}\right)^{{2}} {avg} {prev_s} + \left({_b(l)}\right)^{{2}}"]
    if state.ntk and layer.parameterization == "ntk":
        rows.append(rf"{_T(l, True)} &= {_S(l, True)} + \left({_w(l)}\right)^{{2}} {avg} {prev_t}")
    elif state.ntk:
        bias = " + 1" if layer.b_std > 0 else ""
        rows.append(rf"{_T(l, True)} &= n^{{({l - 1})}} \sum_{{r \in {win}}} {prev_s} "
                    rf"+ \left({_w(l)}\right)^{{2}} {avg} {prev_t}{bias}")
    text = (rf"{'NTK' if layer.parameterization == 'ntk' else 'Standard'} parameterization, "
            rf"{_params(layer, l)}; filter window ${win} = {_window(layer.filter_shape)}$ "
            rf"($|{win}| = {size}$), {_stride_text(layer.strides)}, padding {layer.padding}: indices run over "
            r"the zero-padded input, where $\Sigma$ and $\Theta$ are 0 outside the input "
            r"(survey eq.~(69)--(70), (76), (78) with $r = r'$; normalised by the fan-in as neural-tangents).")
    if state.ntk and layer.parameterization == "standard":
        text += rf" The fan-in per position is $n^{{({l - 1})}} = {state.width}$ channels."
    state.width, state.gaussian = str(layer.out_chan), True
    return _paragraph(f"Layer {l}: Conv.", text + _theta_note(state)) + _align(*rows)


@_rule.register
def _avg_pool(layer: AvgPool, state: _State) -> str:
    _require_spatial(layer, state)
    l = state.l
    win = rf"\mathcal{{P}}^{{({l})}}"
    i, j = _index(layer.strides, "s", "r"), _index(layer.strides, "s'", "r'")
    rows = []
    for letter, on in ((r"\Sigma", True), (r"\Theta", state.ntk)):
        if on:
            prev = _kernel_symbol(letter, l - 1, True, "xy", f"{i},\\, {j}")
            rows.append(rf"{_kernel_symbol(letter, l, True, 'xy')} &= \frac{{1}}{{|{win}|^{{2}}}} "
                        rf"\sum_{{r, r' \in {win}}} {prev}")
    text = (rf"Window ${win} = {_window(layer.window_shape)}$, {_stride_text(layer.strides)}, padding "
            rf"{layer.padding} (zero padding, divided by the full window size as neural-tangents' "
            r"\texttt{AvgPool}).")
    return _paragraph(f"Layer {l}: AvgPool.", text + _theta_note(state)) + _align(*rows)


@_rule.register
def _global_avg_pool(layer: GlobalAvgPool, state: _State) -> str:
    _require_spatial(layer, state)
    l = state.l
    rows = []
    for letter, on in ((r"\Sigma", True), (r"\Theta", state.ntk)):
        if on:
            prev = _kernel_symbol(letter, l - 1, True, "xy")
            rows.append(rf"{letter}^{{({l})}}(x, x') &= \frac{{1}}{{|\mathcal{{S}}|^{{2}}}} "
                        rf"\sum_{{s, s' \in \mathcal{{S}}}} {prev}")
    state.spatial, state.gaussian = False, False
    text = r"Mean over all pairs of positions $\mathcal{S}$ of layer " + f"{l - 1} (survey eq.~(62), (75))."
    return _paragraph(f"Layer {l}: GlobalAvgPool.", text + _theta_note(state)) + _align(*rows)


@_rule.register
def _flatten(layer: Flatten, state: _State) -> str:
    l = state.l
    rows = []
    for letter, on in ((r"\Sigma", True), (r"\Theta", state.ntk)):
        if on and state.spatial:
            prev = _kernel_symbol(letter, l - 1, True, "xy", "s, s")
            rows.append(rf"{letter}^{{({l})}}(x, x') &= \frac{{1}}{{|\mathcal{{S}}|}} "
                        rf"\sum_{{s \in \mathcal{{S}}}} {prev}")
        elif on:
            rows.append(rf"{letter}^{{({l})}}(x, x') &= {letter}^{{({l - 1})}}(x, x')")
    text = (r"Each position with itself, averaged over the positions $\mathcal{S}$ (neural-tangents' "
            r"\texttt{Flatten}); the width becomes $n^{(" + str(l - 1) + r")} |\mathcal{S}|$."
            if state.spatial else "The input is already flat: nothing changes.")
    if state.spatial:
        state.width = rf"n^{{({l - 1})}} |\mathcal{{S}}|"
    state.spatial, state.gaussian = False, False
    return _paragraph(f"Layer {l}: Flatten.", text + _theta_note(state)) + _align(*rows)


def _layers(net) -> tuple:
    if isinstance(net, Serial):
        return tuple(sub for layer in net.layers for sub in _layers(layer))
    return (net,)


_SPATIAL = (Conv, AvgPool, GlobalAvgPool, Flatten)


def network_latex(net, *, substitute: bool = True) -> str:
    """The NNGP Σ⁽ˡ⁾ and NTK Θ⁽ˡ⁾ recurrences of an architecture, layer by layer, as numbered equations.

    Layer l maps Σ⁽ˡ⁻¹⁾, Θ⁽ˡ⁻¹⁾ to Σ⁽ˡ⁾, Θ⁽ˡ⁾ (survey eq. (58)–(61), (62)–(78); the conventions of
    ntksym.kernel and neural-tangents), with weight and bias scales σ_w⁽ˡ⁾, σ_b⁽ˡ⁾ as symbols and their
    values listed. substitute=True also shows each activation's closed forms with
    q₁ = Σ⁽ˡ⁻¹⁾(x,x), q₂ = Σ⁽ˡ⁻¹⁾(x',x'), c = Σ⁽ˡ⁻¹⁾(x,x').

    **Raises:** `LatexInputError` (not a layer description, or layers in an order the kernel rejects),
    `UnsupportedLayerError` (a layer type without a LaTeX rule)."""
    if not isinstance(substitute, bool):
        raise LatexInputError(f"substitute must be True or False, got {substitute!r}")
    if not isinstance(net, (Serial, Dense, Activation, *_SPATIAL)):
        raise LatexInputError(
            f"network_latex takes an architecture (ntksym.serial(...), ntksym.mlp(...) or one layer), got "
            f"{type(net).__name__}"
        )
    layers = _layers(net)
    spatial = any(isinstance(layer, _SPATIAL) for layer in layers)
    state = _State(l=0, spatial=spatial, gaussian=False, ntk=True, width="d" if not spatial else "C",
                   substitute=substitute)
    if spatial:
        inp = (r"\frac{1}{C} \sum_{j=1}^{C} x_{s,j}\, x'_{s',j}",
               (r"Inputs $x, x'$ have positions $s$ and $C$ channels (survey eq.~(69) with the "
                r"neural-tangents normalisation $1/C$)."))
    else:
        inp = (r"\frac{x^{\top} x'}{d}",
               r"Inputs $x, x' \in \mathbb{R}^{d}$ (survey eq.~(58) with the neural-tangents normalisation $1/d$).")
    parts = [
        r"\noindent Every $\Sigma^{(l)}$ holds for all pairs of inputs, including $x' = x$, which gives the "
        r"variances $\Sigma^{(l)}(x, x)$ that the activation layers read.\par" + "\n",
        _paragraph("Input.", inp[1]) + _align(rf"{_S(0, spatial)} &= {inp[0]}", rf"{_T(0, spatial)} &= 0"),
    ]
    for l, layer in enumerate(layers, start=1):
        state.l = l
        parts.append(_rule(layer, state))
    last = len(layers)
    out = rf"\noindent The NNGP kernel is $\Sigma^{{({last})}}$" + (
        rf" and the NTK is $\Theta^{{({last})}}$." if state.ntk else "; the NTK is not defined.")
    parts.append(out + "\\par\n")
    return "".join(parts)


# --------------------------------------------------------------------------------------------------
# Documents and compilation
# --------------------------------------------------------------------------------------------------

_PREAMBLE = r"""\documentclass{article}
\usepackage{amsmath}
\usepackage{amssymb}
\allowdisplaybreaks
\setlength{\emergencystretch}{3em}
"""


def latex_document(*parts, title: str | None = None) -> str:
    """A complete LaTeX document (article class, amsmath and amssymb only).

    Each part is a Dual (its dual_latex and derivation_latex), a Serial or single layer
    (network_latex) or a str, included verbatim as LaTeX source (escape plain text with escape_text).
    title is plain text (escaped)."""
    if title is not None and not isinstance(title, str):
        raise LatexInputError(f"title must be a str or None, got {type(title).__name__}")
    body = []
    if title is not None:
        body.append(rf"\section*{{{escape_text(title)}}}")
    for part in parts:
        if isinstance(part, Dual):
            label = escape_text(part.activation.label)
            body.append(rf"\section{{Dual activation: {label}}}" + "\n" + dual_latex(part)
                        + "\\subsection*{Derivation}\n" + derivation_latex(part))
        elif isinstance(part, (Serial, Dense, Activation, *_SPATIAL)):
            body.append("\\section{NNGP and NTK recurrences}\n" + network_latex(part))
        elif isinstance(part, str):
            body.append(part)
        else:
            raise LatexInputError(
                f"latex_document parts must be Duals, architectures (Serial or a layer) or LaTeX strings, "
                f"got {type(part).__name__}"
            )
    return _PREAMBLE + "\\begin{document}\n" + "\n".join(body) + "\n\\end{document}\n"


_INSTALL_HINT = {
    "pdflatex": "apt-get install texlive-latex-base",
    "latex": "apt-get install texlive-latex-base",
    "lualatex": "apt-get install texlive-luatex",
    "xelatex": "apt-get install texlive-xetex",
}


def compile_latex(source: str, *, engine: str = "pdflatex", workdir=None, timeout: float = 120.0) -> pathlib.Path:
    """Compile a LaTeX document; return the path of the PDF.

    Runs `engine -interaction=nonstopmode -halt-on-error -no-shell-escape` once in `workdir` (a new
    temporary directory if None; it is kept, as it holds the PDF). Raises LatexError when the engine is
    not installed, fails, times out, or its log reports an undefined control sequence (quoting the
    log's first error lines)."""
    if not isinstance(source, str):
        raise LatexInputError(f"compile_latex takes LaTeX source as a str, got {type(source).__name__}")
    exe = shutil.which(engine)
    if exe is None:
        hint = _INSTALL_HINT.get(pathlib.Path(engine).name, "install a TeX distribution (e.g. TeX Live)")
        raise LatexError(f"the LaTeX engine {engine!r} is not installed (not on PATH); install it with: {hint}")
    folder = pathlib.Path(tempfile.mkdtemp(prefix="ntksym-latex-") if workdir is None else workdir)
    folder.mkdir(parents=True, exist_ok=True)
    tex = folder / "document.tex"
    tex.write_text(source, encoding="utf-8")
    cmd = [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", tex.name]
    try:
        run = subprocess.run(cmd, cwd=folder, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                             check=False)  # the status is judged below, with the log
    except subprocess.TimeoutExpired as err:
        raise LatexError(f"{engine} ran past {timeout} s on {tex}") from err
    log_path = folder / "document.log"
    log = log_path.read_text(encoding="latin-1") if log_path.exists() else run.stdout.decode("latin-1")
    pdf = folder / "document.pdf"
    if run.returncode != 0 or "Undefined control sequence" in log or not pdf.exists():
        raise LatexError(f"{engine} failed on {tex} (exit status {run.returncode}):\n{_first_error(log)}")
    return pdf


def _first_error(log: str, context: int = 6) -> str:
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("!"):
            return "\n".join(lines[i:i + context])
    return "\n".join(lines[-context:])
