"""ntksym's function vocabulary: every function the engine accepts or emits, defined once for every target.

One `Function` entry per SymPy class that can occur in σ or in K, K̇, V — from the activation parser, from a
SymPy expression a user passes, from the engine's rules, from the overflow-safe rewrites (ntksym._stable) or
from a formula given to verify_formula. An entry holds its SymPy class (the key of every table), its
derivative (SymPy's own: the class's fdiff or SymPy's derivative rule), its mpmath evaluation, its NumPy/SciPy
evaluation, its evaluation on Python floats for the validator's probes, and how its LaTeX is printed.
Every evaluator reads this one table:

- `namespace("numpy")`  — lambdify's modules for the NumPy quadrature (ntksym.gaussian.numeric.vectorize);
- `namespace("mpmath")` — lambdify's modules for exact duals at any precision (ntksym.dual, the antiderivative
  check in ntksym.gaussian.integrate);
- `python_functions()`  — the validator's probe walk (ntksym._validate._EVAL);
- the JAX lowering (ntksym.lower.table) keys its table by the same classes; tests/test_vocabulary.py checks that
  every target has every entry, that every entry can occur, and that the targets agree numerically.

Symbolic side: imports SymPy, mpmath, NumPy and SciPy, never JAX.
"""

from __future__ import annotations

import cmath
import functools as ft
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mpmath
import numpy as np
import scipy.special
import sympy as sp
from sympy.printing.latex import LatexPrinter

from ._stable import Dawson, Expm1, GramDeterminant, Product, _expit, _softplus
from .errors import LoweringError
from .special import MPMATH as _SPECIAL_MPMATH
from .special import Phi, Phi2, phi

__all__ = ["Function", "VOCABULARY", "BY_CLASS", "OCCURS", "namespace", "python_functions", "unknown_functions",
           "freeze_extra_functions"]

OCCURS = {
    "parser": "an activation string names it (ntksym._parse)",
    "sympy": "a SymPy σ passed to nk.activation may hold it (ntksym._validate evaluates it)",
    "engine": "the Gaussian engine's rules emit it in K, K̇ or V (ntksym.gaussian)",
    "derivative": "SymPy writes σ' with it (ntksym.dual differentiates σ for K̇)",
    "rewrite": "an overflow-safe rewrite produces it (ntksym._stable, ntksym.lower._rewrite)",
    "formula": "a formula given to verify_formula names it (ntksym._parse.parse_formula)",
}
"""How a function can enter an expression; every entry names at least one (tests/test_vocabulary.py)."""


@dataclass(frozen=True)
class Function:
    """One function of the vocabulary.

    **Fields:**
    - `cls`: the SymPy class, `expr.func` (sp.Pow for √, sp.hyper for ₂F₁): the key of every evaluator's table.
    - `mpmath`: its evaluation on mpmath numbers at the working precision (sp.hyper: mpmath.hyper(ap, bq, z)).
    - `numpy`: its elementwise evaluation on float64 arrays (NumPy/SciPy).
    - `python`: `(real, complex)` functions on Python floats / complexes for the validator's probe walk
      (complex None: a complex argument makes the probe inconclusive), or None where the validator evaluates it
      by a structural handler of its own (several arguments, conditions) or by SymPy's evalf.
    - `occurs`: the keys of OCCURS by which it can enter an expression.
    - `printed`: the names lambdify prints for it besides `cls.__name__` (sp.Pow prints `sqrt`), each with its
      evaluation in `numpy_printed` / `mpmath_printed`.
    - `structural`: True where every evaluator handles the node itself rather than through a function call
      (Pow is `**`, Piecewise a select / conditional expression / double where); `mpmath`/`numpy` are then
      reference evaluations only, used by the tests.

    The derivative is SymPy's own (`derivative`), and the LaTeX is SymPy's printer or the class's `_latex`
    (`latex`).
    """

    cls: type
    mpmath: Callable | None
    numpy: Callable | None
    python: tuple[Callable, Callable | None] | None
    occurs: tuple[str, ...]
    printed: Mapping[str, tuple[Callable, Callable]] | None = None
    structural: bool = False

    @property
    def name(self) -> str:
        """The name lambdify and the LoweringError messages use: the class's own name."""
        return self.cls.__name__

    def derivative(self, expr: sp.Basic, argindex: int = 1) -> sp.Expr:
        """∂expr/∂(argument argindex), by SymPy's own rule (fdiff for Function classes)."""
        if isinstance(expr, sp.Function):
            return expr.fdiff(argindex)
        arg = expr.args[argindex - 1]
        d = sp.Dummy("d", real=True)
        args = list(expr.args)
        args[argindex - 1] = d
        return sp.diff(expr.func(*args), d).xreplace({d: arg})

    @property
    def latex(self) -> str:
        """Who prints its LaTeX: 'class' (cls._latex), 'printer' (a LatexPrinter._print_<Class>), 'function'
        (LatexPrinter._print_Function: \\operatorname{name}, or \\arcsin-style names), or 'missing' (a private
        name, which would print as \\operatorname{\\_name})."""
        if "_latex" in vars(self.cls):
            return "class"
        generic = (sp.Function, sp.Expr, sp.Basic, sp.core.function.Application)
        if any(hasattr(LatexPrinter, f"_print_{k.__name__}") for k in self.cls.__mro__[:-1] if k not in generic):
            return "printer"
        return "missing" if self.name.startswith("_") else "function"


# --------------------------------------------------------------------------------------------------------------
# evaluations that are more than a library call


def _mp_heaviside(a, at_zero=mpmath.mpf(1) / 2):
    return mpmath.mpf(1) if a > 0 else mpmath.mpf(0) if a < 0 else mpmath.mpf(at_zero)


def _np_heaviside(a, at_zero=0.5):
    return np.heaviside(a, at_zero)


def _np_sech(a):
    # 2e^{−|a|}/(1 + e^{−2|a|}): 1/cosh(a) overflows to 1/inf = 0 correctly, but with a warning
    e = np.exp(-np.abs(a))
    return 2 * e / (1 + e * e)


def _py_sech(v: float) -> float:
    return 1 / math.cosh(v) if abs(v) < 710 else 0.0


def _py_log(v: float) -> complex:
    if v == 0:
        return -math.inf
    return math.log(v) if v > 0 else cmath.log(v)


def _py_arc(real_fn, complex_fn):
    # asin/acos are complex outside [−1, 1]: return that complex value, so the validator reports "not real"
    return lambda v: real_fn(v) if -1 <= v <= 1 else complex_fn(v)


def _np_hyper(ap, bq, z):
    if len(ap) != 2 or len(bq) != 1:
        raise NotImplementedError(f"only ₂F₁ has a NumPy evaluation, not {len(ap)}F{len(bq)}")
    return scipy.special.hyp2f1(float(ap[0]), float(ap[1]), float(bq[0]), z)


def _mp_dawson(z):
    return mpmath.sqrt(mpmath.pi) / 2 * mpmath.exp(-z * z) * mpmath.erfi(z)


def _np_phi(z):
    return np.exp(-0.5 * np.square(z)) / math.sqrt(2 * math.pi)


def _np_bvn(h, k, r):
    from ._bvn import bvn_cdf_numpy  # imported on use: only duals with Φ₂ need it

    return bvn_cdf_numpy(h, k, r)


def _py_Phi(v: float) -> float:
    return 0.5 * math.erfc(-v / math.sqrt(2))


def _py_phi(v: float) -> float:
    return math.exp(-0.5 * v * v) / math.sqrt(2 * math.pi)


def _reduce(op):
    return lambda *args: ft.reduce(op, args)


def _elementary(cls, mp, npf, py=None, occurs=("parser",)):
    return Function(cls, mp, npf, py, occurs)


_SQRT = {"sqrt": (mpmath.sqrt, np.sqrt)}

VOCABULARY: tuple[Function, ...] = (
    # elementary functions
    _elementary(sp.exp, mpmath.exp, np.exp, (math.exp, cmath.exp), ("parser", "engine")),
    _elementary(sp.log, mpmath.log, np.log, (_py_log, cmath.log)),
    _elementary(sp.sin, mpmath.sin, np.sin, (math.sin, cmath.sin)),
    _elementary(sp.cos, mpmath.cos, np.cos, (math.cos, cmath.cos)),
    _elementary(sp.tan, mpmath.tan, np.tan, (math.tan, cmath.tan)),
    _elementary(sp.cot, mpmath.cot, lambda a: 1 / np.tan(a),
                (lambda v: math.cos(v) / math.sin(v) if math.sin(v) != 0 else math.inf, None), ("sympy",)),
    _elementary(sp.sec, mpmath.sec, lambda a: 1 / np.cos(a), (lambda v: 1 / math.cos(v), None), ("sympy",)),
    _elementary(sp.csc, mpmath.csc, lambda a: 1 / np.sin(a),
                (lambda v: 1 / math.sin(v) if math.sin(v) != 0 else math.inf, None), ("sympy",)),
    _elementary(sp.sinh, mpmath.sinh, np.sinh, (math.sinh, cmath.sinh)),
    _elementary(sp.cosh, mpmath.cosh, np.cosh, (math.cosh, cmath.cosh)),
    _elementary(sp.tanh, mpmath.tanh, np.tanh, (math.tanh, cmath.tanh), ("parser", "derivative")),
    _elementary(sp.coth, mpmath.coth, lambda a: 1 / np.tanh(a),
                (lambda v: 1 / math.tanh(v) if v != 0 else math.inf, None), ("sympy",)),
    _elementary(sp.sech, mpmath.sech, _np_sech, (_py_sech, None), ("parser", "derivative")),
    _elementary(sp.csch, mpmath.csch, lambda a: 1 / np.sinh(a),
                (lambda v: 1 / math.sinh(v) if v != 0 else math.inf, None), ("sympy",)),
    _elementary(sp.asinh, mpmath.asinh, np.arcsinh, (math.asinh, cmath.asinh)),
    _elementary(sp.asin, mpmath.asin, np.arcsin, (_py_arc(math.asin, cmath.asin), cmath.asin),
                ("engine", "formula")),
    _elementary(sp.acos, mpmath.acos, np.arccos, (_py_arc(math.acos, cmath.acos), cmath.acos), ("formula",)),
    _elementary(sp.atan, mpmath.atan, np.arctan, (math.atan, cmath.atan)),
    Function(sp.atan2, mpmath.atan2, np.arctan2, None, ("formula",)),
    _elementary(sp.erf, mpmath.erf, scipy.special.erf, (math.erf, None), ("parser", "engine")),
    _elementary(sp.erfc, mpmath.erfc, scipy.special.erfc, (math.erfc, None)),
    _elementary(sp.erfi, mpmath.erfi, scipy.special.erfi, None, ("formula",)),
    # powers (√ is Pow(·, 1/2)), and the piecewise family
    Function(sp.Pow, mpmath.power, np.power, None, ("parser", "engine"), printed=_SQRT, structural=True),
    Function(sp.Abs, abs, np.abs, None, ("parser",)),
    Function(sp.sign, mpmath.sign, np.sign, None, ("parser", "derivative")),
    Function(sp.Heaviside, _mp_heaviside, _np_heaviside, None, ("parser", "derivative")),
    Function(sp.Max, _reduce(max), _reduce(np.maximum), None, ("parser",)),
    Function(sp.Min, _reduce(min), _reduce(np.minimum), None, ("parser",)),
    Function(sp.Piecewise, None, None, None, ("parser",), structural=True),
    # overflow-safe forms (ntksym._stable): the NumPy quadrature's and the lowering's rewrites
    Function(_softplus, lambda a: mpmath.log1p(mpmath.exp(a)), lambda a: np.logaddexp(0.0, a), None, ("rewrite",)),
    Function(_expit, lambda a: 1 / (1 + mpmath.exp(-a)), scipy.special.expit, None, ("rewrite",)),
    Function(Product, lambda a, b: a * b, np.multiply, None, ("rewrite",)),
    Function(GramDeterminant, lambda a, b, cc: a * b - cc * cc, lambda a, b, cc: a * b - cc * cc, None, ("rewrite",)),
    Function(Dawson, _mp_dawson, scipy.special.dawsn, None, ("rewrite",)),
    Function(Expm1, mpmath.expm1, np.expm1, None, ("rewrite",)),
    # special functions of the engine (ntksym.special) and Gauss's ₂F₁ (fractional-power duals)
    Function(Phi, _SPECIAL_MPMATH["Phi"], scipy.special.ndtr, (_py_Phi, None), ("engine",)),
    Function(phi, _SPECIAL_MPMATH["phi"], _np_phi, (_py_phi, None), ("engine",)),
    Function(Phi2, _SPECIAL_MPMATH["Phi2"], _np_bvn, None, ("engine",)),
    Function(sp.hyper, mpmath.hyper, _np_hyper, None, ("engine", "formula")),
)

BY_CLASS: dict[type, Function] = {f.cls: f for f in VOCABULARY}


def namespace(target: str) -> dict[str, Callable]:
    """lambdify's user namespace for `target` ("numpy" or "mpmath"): printed name → evaluation.

    Pass it first in `modules=` (then "mpmath", or "scipy", "numpy", for the printer's own constants)."""
    if target not in ("numpy", "mpmath"):
        raise ValueError(f"target must be 'numpy' or 'mpmath', got {target!r}")
    return dict(_namespace(target))


@ft.cache
def _namespace(target: str) -> tuple:
    out: dict[str, Callable] = {}
    for f in VOCABULARY:
        fn = f.numpy if target == "numpy" else f.mpmath
        if fn is not None and not f.structural:
            out[f.name] = fn
        for printed, (mp_fn, np_fn) in (f.printed or {}).items():
            out[printed] = np_fn if target == "numpy" else mp_fn
    return tuple(out.items())


def python_functions() -> dict[type, tuple[Callable, Callable | None]]:
    """class → (real, complex) evaluation on Python numbers, for the validator's probes."""
    return {f.cls: f.python for f in VOCABULARY if f.python is not None}


def unknown_functions(expr: sp.Basic) -> set[type]:
    """The function classes in expr outside the vocabulary (no mpmath/NumPy evaluation here), e.g. the
    exp_polar of a SymPy antiderivative; a user's class with an `_imp_` (implemented_function) is known, and
    so is a constant such as gamma(3/4) (every evaluator turns it into a number first)."""
    return {type(node) for node in sp.preorder_traversal(expr)
            if isinstance(node, sp.core.function.Application) and type(node) not in BY_CLASS
            and node.free_symbols and not hasattr(node, "_imp_")}


def freeze_extra_functions(extra) -> tuple:
    """A user's extra_functions ({SymPy class or its name: JAX function}) as a hashable tuple of pairs.

    It travels with frozen layer descriptions and into caches; ntksym.lower reads it back with dict()."""
    if extra is None:
        return ()
    items = extra.items() if isinstance(extra, Mapping) else extra
    try:
        pairs = tuple((key, fn) for key, fn in items)
    except (TypeError, ValueError):
        raise LoweringError(
            f"extra_functions must map SymPy function classes to JAX functions, e.g. {{MyFn: jnp.tanh}}; "
            f"got {type(extra).__name__}") from None
    for key, fn in pairs:
        if not (isinstance(key, str) or (isinstance(key, type) and issubclass(key, sp.Basic))):
            raise LoweringError(f"extra_functions keys must be SymPy function classes (or their names), got {key!r}")
        if not callable(fn):
            raise LoweringError(f"extra_functions[{getattr(key, '__name__', key)}] must be a JAX function, got {fn!r}")
    return tuple(sorted(pairs, key=lambda p: getattr(p[0], "__name__", str(p[0]))))
