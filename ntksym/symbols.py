"""The canonical SymPy symbols of ntksym; nothing else creates them.

x is the activation's real variable; (u, v) ~ N(0, [[q1, c], [c, q2]]); q is the variance of V(q);
rho the correlation of the normalised dual k̂(ρ) = K(1, 1, ρ) (DESIGN.md §1).
"""

from __future__ import annotations

import sympy as sp

x = sp.Symbol("x", real=True)
q = sp.Symbol("q", positive=True)
q1 = sp.Symbol("q1", positive=True)
q2 = sp.Symbol("q2", positive=True)
c = sp.Symbol("c", real=True)
rho = sp.Symbol("rho", real=True)

__all__ = ["x", "q", "q1", "q2", "c", "rho"]
