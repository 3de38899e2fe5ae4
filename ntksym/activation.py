"""The Activation type: σ as a SymPy expression in the canonical real variable x.

Strings are parsed safely (a whitelist of names and operators, no eval, no sympify of raw text; see
`ntksym._parse` for the accepted vocabulary); SymPy expressions are validated (univariate, real-valued on ℝ,
finite Gaussian second moments; see `ntksym._validate`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from ._validate import validate
from .errors import NotUnivariateError, ParseError
from .symbols import x

# Unevaluated operators have no pointwise value σ(x); ask for .doit() instead of guessing.
_UNEVALUATED = (sp.Integral, sp.Derivative, sp.Sum, sp.Product, sp.Limit, sp.Subs, sp.Order)


@dataclass(frozen=True)
class Activation:
    """An activation σ(x): its expression in ntksym.symbols.x and a display name."""

    expr: sp.Expr
    name: str | None = None

    def __post_init__(self):
        if not isinstance(self.expr, sp.Expr):
            raise ParseError(
                f"Activation.expr must be a SymPy expression, got {type(self.expr).__name__}; "
                "build activations with ntksym.activation(...)"
            )

    @property
    def label(self) -> str:
        return self.name if self.name is not None else str(self.expr)

    def __str__(self) -> str:
        return self.label


def activation(spec, var: sp.Symbol | str | None = None, name: str | None = None) -> Activation:
    """Parse and validate σ: a string (safe whitelist parser), a SymPy expression, or an Activation.

    **Arguments:**
    - `spec`: a formula string ("x*erf(x)", "leaky_relu(x, 0.1)"), a bare catalog name ("relu"), a SymPy
      expression, or an Activation (returned unchanged, renamed if `name` is given).
    - `var`: σ's variable (a Symbol or its name); by default the one free symbol / identifier.
    - `name`: the display name; by default the catalog name, or none (the label is then the expression).

    **Returns:** an Activation whose expression is in ntksym.symbols.x.

    **Raises:** ParseError, NotUnivariateError, NotRealError, DivergentMomentError (all NtksymError).
    """
    if isinstance(spec, Activation):
        if var is not None:
            raise ParseError("var= applies to strings and SymPy expressions, not to an Activation; drop var=")
        return spec if name is None else replace(spec, name=name)
    if isinstance(spec, str):
        return _from_string(spec, _var_name(var), name)
    if isinstance(spec, sp.Basic):
        return _from_sympy(spec, var, name)
    raise ParseError(
        f"cannot make an activation from a {type(spec).__name__}; pass a string such as 'x*erf(x)', "
        "a SymPy expression, or an Activation"
    )


def _var_name(var: sp.Symbol | str | None) -> str | None:
    if var is None or isinstance(var, str):
        return var
    if isinstance(var, sp.Symbol):
        return var.name
    raise ParseError(f"var must be a SymPy Symbol or a name, got {type(var).__name__}")


def _from_string(text: str, var: str | None, name: str | None) -> Activation:
    from . import _parse  # imported here: _parse reads the catalog, which imports this module
    from .catalog import CATALOG

    stripped = text.strip()
    entry = CATALOG.get(stripped)
    if entry is not None:
        act = entry.factory()
        return act if name is None else replace(act, name=name)
    expr = _parse.parse(text, var)
    validate(expr)
    return Activation(expr, name)


def _from_sympy(expr: sp.Basic, var: sp.Symbol | str | None, name: str | None) -> Activation:
    if not isinstance(expr, sp.Expr):
        raise ParseError(
            f"σ must be a SymPy expression, got a {type(expr).__name__} ({expr}); "
            "write conditions inside Piecewise((value, condition), ..., (value, True))"
        )
    if expr.has(*_UNEVALUATED):
        raise ParseError(f"σ = {expr} holds an unevaluated operator; call .doit() first or write σ explicitly")
    expr = _univariate(expr, var)
    validate(expr)
    return Activation(expr, name)


def _univariate(expr: sp.Expr, var: sp.Symbol | str | None) -> sp.Expr:
    """Rename σ's one variable to symbols.x (a real symbol), or raise NotUnivariateError naming the others."""
    free = sorted(expr.free_symbols, key=sp.default_sort_key)
    if var is None:
        if len(free) > 1:
            raise NotUnivariateError(
                f"σ = {expr} must be a function of one variable, but it has {len(free)}: "
                f"{', '.join(map(str, free))}; substitute numbers for all but one, or pass var=..."
            )
        return expr.xreplace({free[0]: x}) if free else expr
    symbol = _find_symbol(free, var)
    extra = [s for s in free if s != symbol]
    if extra:
        raise NotUnivariateError(
            f"σ = {expr} must be a function of {var} only, but it also has {', '.join(map(str, extra))}; "
            "substitute numbers for them"
        )
    return expr.xreplace({symbol: x}) if symbol is not None else expr


def _find_symbol(free: list[sp.Symbol], var: sp.Symbol | str) -> sp.Symbol | None:
    if isinstance(var, sp.Symbol):
        return var if var in free else None
    if isinstance(var, str):
        matches = [s for s in free if s.name == var]
        return matches[0] if matches else None
    raise ParseError(f"var must be a SymPy Symbol or a name, got {type(var).__name__}")


__all__ = ["Activation", "activation", "x"]
