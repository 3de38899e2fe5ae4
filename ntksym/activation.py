"""The Activation type: σ as a SymPy expression in the canonical real variable x.

Strings are parsed safely (a whitelist of names and operators, no eval, no sympify of raw text);
SymPy expressions are validated (univariate, real-valued on ℝ, finite Gaussian second moments).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .symbols import x


@dataclass(frozen=True)
class Activation:
    """An activation σ(x): its expression in ntksym.symbols.x and a display name."""

    expr: sp.Expr
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name if self.name is not None else str(self.expr)

    def __str__(self) -> str:
        return self.label


def activation(spec, var: sp.Symbol | None = None, name: str | None = None) -> Activation:
    """Parse and validate σ: a string (safe whitelist parser), a SymPy expression, or an Activation."""
    raise NotImplementedError  # replaced by the parser implementation


__all__ = ["Activation", "activation", "x"]
