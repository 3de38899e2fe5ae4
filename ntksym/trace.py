"""Provenance of a derivation: a Step records one rule application (name, description, expression)."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp


@dataclass(frozen=True)
class Step:
    """One step of a derivation: which rule fired, what it did, and the expression it produced."""

    rule: str
    description: str
    expression: sp.Basic | None = None

    def __str__(self) -> str:
        if self.expression is None:
            return f"[{self.rule}] {self.description}"
        return f"[{self.rule}] {self.description}: {self.expression}"
