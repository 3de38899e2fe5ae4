"""Named activations as σ expressions in ntksym.symbols.x (never dual formulas).

Conventions follow neural-tangents `stax` where it has the activation (Erf, Sin, Cos, Exp, ABRelu, LeakyRelu,
Abs, Sign, Gelu exact, Hermite), with one deliberate difference: `gaussian(a, b, c) = a·exp(-b·x²) + c` takes
b > 0, where `stax.Gaussian(a, b) = a·exp(b·x²)` takes b < 0. Parameters become exact SymPy numbers (a float
goes through its decimal repr, so 0.1 is 1/10); SymPy numbers and parameter symbols are accepted as they are.
Every instance is validated like `ntksym.activation`, so a bad parameter fails here with a named error.

Note: the functions `abs`, `exp`, `sin`, `cos` shadow builtins inside this module; code here uses `sp.*`.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Callable

import sympy as sp

from ._validate import validate
from .activation import Activation
from .errors import DivergentMomentError, NtksymError
from .symbols import x

MAX_DEGREE = 64  # monomial, hermite and polynomial degrees: the same guard as the parser's exponents

# SELU constants (Klambauer et al. 2017) as exact Rationals of their published 32-digit decimals; these round to
# the same float64 as jax.nn.selu's constants.
SELU_ALPHA = sp.Rational("1.6732632423543772848170429916717")
SELU_SCALE = sp.Rational("1.0507009873554804934193349852946")


@dataclass(frozen=True)
class CatalogEntry:
    """One named activation: its factory, parameters (name, default), a one-line description, its σ builder.

    `build` takes every parameter (converted or not) and returns σ's expression without validating it;
    `variadic` marks an entry whose single parameter is a sequence given as trailing arguments in strings.
    """

    name: str
    factory: Callable[..., Activation]
    parameters: tuple[tuple[str, object], ...]
    description: str
    build: Callable[..., sp.Expr]
    variadic: bool = False

    @property
    def is_parametric(self) -> bool:
        return bool(self.parameters)

    def expression(self, *args, **kwargs) -> sp.Expr:
        """σ for these parameters (positional in `parameters` order, defaults filled in), not validated."""
        names = [n for n, _ in self.parameters]
        if len(args) > len(names):
            raise NtksymError(
                f"{self.name} takes at most {len(names)} parameter(s) ({', '.join(names)}), got {len(args)}"
            )
        values = dict(self.parameters)
        values.update(zip(names, args))
        unknown = set(kwargs) - set(names)
        if unknown:
            raise NtksymError(f"{self.name} has no parameter {', '.join(sorted(unknown))}; its parameters: {names}")
        values.update(kwargs)
        return self.build(**values)


# ---------------------------------------------------------------------------------------------------------------
# parameter conversion


def _real(value: object, param: str, entry: str) -> sp.Expr:
    """An exact SymPy real: int → Integer, float → Rational(repr), Fraction → Rational, SymPy kept."""
    if isinstance(value, bool):
        raise NtksymError(f"parameter {param} of {entry} must be a number, got the boolean {value}")
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    if isinstance(value, Fraction):
        return sp.Rational(value.numerator, value.denominator)
    if isinstance(value, numbers.Real) and not isinstance(value, sp.Basic):
        f = float(value)
        if not math.isfinite(f):
            raise NtksymError(f"parameter {param} of {entry} must be finite, got {f}")
        return sp.Rational(repr(f))
    if isinstance(value, sp.Expr):
        if value.has(x):
            raise NtksymError(f"parameter {param} of {entry} must not depend on x, got {value}")
        if value.has(sp.oo, -sp.oo, sp.zoo, sp.nan) or value.is_real is False:
            raise NtksymError(f"parameter {param} of {entry} must be a finite real number, got {value}")
        return value
    raise NtksymError(
        f"parameter {param} of {entry} must be a real number (int, float, Fraction or SymPy), "
        f"got {type(value).__name__} {value!r}"
    )


def _degree(value: object, param: str, entry: str) -> int:
    """A non-negative integer degree k ≤ MAX_DEGREE."""
    k = _real(value, param, entry)
    if not (k.is_Integer and 0 <= int(k) <= MAX_DEGREE):
        raise NtksymError(f"parameter {param} of {entry} must be an integer between 0 and {MAX_DEGREE}, got {value!r}")
    return int(k)


def _coefficients(value: object, entry: str) -> tuple[sp.Expr, ...]:
    if isinstance(value, (str, bytes, sp.Expr)) or not isinstance(value, Iterable):
        raise NtksymError(f"coeffs of {entry} must be a sequence of numbers (c0, c1, ...), got {value!r}")
    items = tuple(value)
    if not 1 <= len(items) <= MAX_DEGREE + 1:
        raise NtksymError(f"coeffs of {entry} must hold between 1 and {MAX_DEGREE + 1} numbers, got {len(items)}")
    return tuple(_real(c, f"coeffs[{i}]", entry) for i, c in enumerate(items))


def _label(name: str, values: Mapping[str, object], defaults: Mapping[str, object]) -> str:
    changed = [(k, v) for k, v in values.items() if v != defaults[k]]
    if not changed:
        return name
    shown = ", ".join(f"{k}={_show(v)}" for k, v in changed)
    return f"{name}({shown})"


def _show(value: object) -> str:
    if isinstance(value, tuple):
        inner = ", ".join(str(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return str(value)


def _convert(entry: CatalogEntry, values: Mapping[str, object]) -> dict[str, object]:
    """Parameters in their exact form, for labels (the builders convert again, idempotently)."""
    out: dict[str, object] = {}
    for k, v in values.items():
        if entry.variadic:
            out[k] = _coefficients(v, entry.name)
        else:
            out[k] = _real(v, k, entry.name)
    return out


def _make(name: str, **params: object) -> Activation:
    """Build, validate and label the catalog activation `name` with these parameters."""
    entry = CATALOG[name]
    expr = entry.expression(**params)
    validate(expr)
    values = _convert(entry, params)
    defaults = _convert(entry, dict(entry.parameters))
    return Activation(expr, _label(name, values, defaults))


# ---------------------------------------------------------------------------------------------------------------
# expression builders: parameters → σ(x)


def _relu_expr() -> sp.Expr:
    return sp.Max(0, x)


def _leaky_relu_expr(alpha: object) -> sp.Expr:
    a = _real(alpha, "alpha", "leaky_relu")
    return sp.Piecewise((x, x > 0), (a * x, True))


def _abrelu_expr(a: object, b: object) -> sp.Expr:
    a, b = _real(a, "a", "abrelu"), _real(b, "b", "abrelu")
    return a * sp.Min(x, 0) + b * sp.Max(x, 0)


def _abs_expr() -> sp.Expr:
    return sp.Abs(x)


def _step_expr() -> sp.Expr:
    return sp.Heaviside(x)


def _sign_expr() -> sp.Expr:
    return sp.sign(x)


def _erf_expr(a: object, b: object, c: object) -> sp.Expr:
    a, b, c = (_real(v, n, "erf") for v, n in ((a, "a"), (b, "b"), (c, "c")))
    return a * sp.erf(b * x) + c


def _gelu_expr() -> sp.Expr:
    return x * (1 + sp.erf(x / sp.sqrt(2))) / 2


def _sin_expr(a: object, b: object, c: object) -> sp.Expr:
    a, b, c = (_real(v, n, "sin") for v, n in ((a, "a"), (b, "b"), (c, "c")))
    return a * sp.sin(b * x + c)


def _cos_expr(a: object, b: object, c: object) -> sp.Expr:
    a, b, c = (_real(v, n, "cos") for v, n in ((a, "a"), (b, "b"), (c, "c")))
    return a * sp.cos(b * x + c)


def _exp_expr(a: object, b: object, c: object) -> sp.Expr:
    a, b, c = (_real(v, n, "exp") for v, n in ((a, "a"), (b, "b"), (c, "c")))
    return a * sp.exp(b * x) + c


def _gaussian_expr(a: object, b: object, c: object) -> sp.Expr:
    a, b, c = (_real(v, n, "gaussian") for v, n in ((a, "a"), (b, "b"), (c, "c")))
    if b.is_negative:
        raise DivergentMomentError(
            f"gaussian(b={b}) = a·exp(-b·x²) with b < 0 grows like exp({-b}·x²), so E[σ(z)²] diverges; "
            "use b > 0 (neural-tangents' Gaussian(a, b) with b < 0 is gaussian(a, -b) here)"
        )
    if b.is_zero:
        raise NtksymError(
            "gaussian needs b > 0: with b = 0 it is the constant a + c; use polynomial((a + c,)) for a constant"
        )
    if not b.is_positive:
        raise NtksymError(f"gaussian needs b > 0, and b = {b} is not known to be positive; "
                          f"declare it as Symbol('{b}', positive=True)")
    return a * sp.exp(-b * x**2) + c


def _monomial_expr(k: object) -> sp.Expr:
    return x ** _degree(k, "k", "monomial")


def _rectified_monomial_expr(k: object) -> sp.Expr:
    return x ** _degree(k, "k", "rectified_monomial") * sp.Heaviside(x)


def _polynomial_expr(coeffs: object) -> sp.Expr:
    cs = _coefficients(coeffs, "polynomial")
    return sp.Add(*(c * x**i for i, c in enumerate(cs)))


def _hermite_prob(k: int) -> sp.Expr:
    """Probabilists' Hermite He_k(x), expanded: SymPy's hermite_prob, else He_{n+1} = x·He_n - n·He_{n-1}."""
    builder = getattr(sp, "hermite_prob", None)
    if builder is not None:
        return sp.expand(builder(k, x))
    previous, current = sp.Integer(1), x
    if k == 0:
        return previous
    for n in range(1, k):
        previous, current = current, sp.expand(x * current - n * previous)
    return current


def _hermite_expr(k: object) -> sp.Expr:
    n = _degree(k, "k", "hermite")
    return _hermite_prob(n) / sp.sqrt(sp.factorial(n))


def _tanh_expr() -> sp.Expr:
    return sp.tanh(x)


def _sigmoid_expr() -> sp.Expr:
    return 1 / (1 + sp.exp(-x))


def _softplus_expr() -> sp.Expr:
    return sp.log(1 + sp.exp(x))


def _silu_expr() -> sp.Expr:
    return x * _sigmoid_expr()


def _elu_expr(alpha: object) -> sp.Expr:
    a = _real(alpha, "alpha", "elu")
    return sp.Piecewise((x, x > 0), (a * (sp.exp(x) - 1), True))


def _selu_expr() -> sp.Expr:
    return SELU_SCALE * sp.Piecewise((x, x > 0), (SELU_ALPHA * (sp.exp(x) - 1), True))


def _mish_expr() -> sp.Expr:
    return x * sp.tanh(_softplus_expr())


def _positive(value: object, param: str, entry: str) -> sp.Expr:
    v = _real(value, param, entry)
    if v.is_positive is not True:
        raise NtksymError(f"parameter {param} of {entry} must be a positive number, got {value!r}")
    return v


def _relu6_expr() -> sp.Expr:
    return sp.Min(sp.Max(x, 0), 6)


def _hard_tanh_expr() -> sp.Expr:
    return sp.Max(-1, sp.Min(1, x))


def _hard_sigmoid_expr() -> sp.Expr:
    return _relu6_expr().subs(x, x + 3) / 6


def _hard_swish_expr() -> sp.Expr:
    return x * _hard_sigmoid_expr()


def _shifted_relu_expr(b: object) -> sp.Expr:
    return sp.Max(x - _real(b, "b", "shifted_relu"), 0)


def _celu_expr(alpha: object) -> sp.Expr:
    a = _positive(alpha, "alpha", "celu")
    return sp.Piecewise((x, x > 0), (a * (sp.exp(x / a) - 1), True))


def _clipped_relu_expr(a: object) -> sp.Expr:
    return sp.Min(sp.Max(x, 0), _positive(a, "a", "clipped_relu"))


# ---------------------------------------------------------------------------------------------------------------
# public factories


def relu() -> Activation:
    """ReLU: max(0, x)."""
    return _make("relu")


def leaky_relu(alpha: object = 0.01) -> Activation:
    """Leaky ReLU: x for x > 0, alpha·x otherwise (stax.LeakyRelu)."""
    return _make("leaky_relu", alpha=alpha)


def abrelu(a: object = 0, b: object = 1) -> Activation:
    """ABReLU: a·min(x, 0) + b·max(x, 0) (stax.ABRelu); the defaults give ReLU."""
    return _make("abrelu", a=a, b=b)


def abs() -> Activation:  # noqa: A001 - the catalog name
    """Absolute value |x| (stax.Abs)."""
    return _make("abs")


def step() -> Activation:
    """Heaviside step H(x), with H(0) = 1/2."""
    return _make("step")


def sign() -> Activation:
    """Sign function sign(x) (stax.Sign)."""
    return _make("sign")


def erf(a: object = 1, b: object = 1, c: object = 0) -> Activation:
    """a·erf(b·x) + c (stax.Erf)."""
    return _make("erf", a=a, b=b, c=c)


def gelu() -> Activation:
    """Exact GELU: x·Φ(x) = x·(1 + erf(x/√2))/2 (stax.Gelu(approximate=False))."""
    return _make("gelu")


def sin(a: object = 1, b: object = 1, c: object = 0) -> Activation:
    """a·sin(b·x + c) (stax.Sin)."""
    return _make("sin", a=a, b=b, c=c)


def cos(a: object = 1, b: object = 1, c: object = 0) -> Activation:
    """a·cos(b·x + c) (stax.Cos)."""
    return _make("cos", a=a, b=b, c=c)


def exp(a: object = 1, b: object = 1, c: object = 0) -> Activation:
    """a·exp(b·x) + c (stax.Exp, with an added shift c)."""
    return _make("exp", a=a, b=b, c=c)


def gaussian(a: object = 1, b: object = 1, c: object = 0) -> Activation:
    """a·exp(-b·x²) + c with b > 0 (stax.Gaussian(a, -b) when c = 0)."""
    return _make("gaussian", a=a, b=b, c=c)


def monomial(k: object = 2) -> Activation:
    """x**k, k a non-negative integer."""
    return _make("monomial", k=k)


def rectified_monomial(k: object = 2) -> Activation:
    """max(x, 0)**k written x**k·H(x); k = 0 is the step (H(0) = 1/2), k = 1 is ReLU."""
    return _make("rectified_monomial", k=k)


def polynomial(coeffs: Sequence[object] = (0, 1)) -> Activation:
    """Σ coeffs[i]·x**i; the default (0, 1) is the identity."""
    return _make("polynomial", coeffs=coeffs)


def hermite(k: object = 2) -> Activation:
    """Normalised probabilists' Hermite polynomial He_k(x)/√(k!), so E[σ(z)²] = 1 for z ~ N(0, 1) (stax.Hermite)."""
    return _make("hermite", k=k)


def tanh() -> Activation:
    """Hyperbolic tangent tanh(x)."""
    return _make("tanh")


def sigmoid() -> Activation:
    """Logistic sigmoid 1/(1 + exp(-x)) (not stax.Sigmoid_like, which is an erf)."""
    return _make("sigmoid")


def softplus() -> Activation:
    """Softplus log(1 + exp(x))."""
    return _make("softplus")


def silu() -> Activation:
    """SiLU (swish): x·sigmoid(x)."""
    return _make("silu")


def elu(alpha: object = 1) -> Activation:
    """ELU: x for x > 0, alpha·(exp(x) - 1) otherwise."""
    return _make("elu", alpha=alpha)


def selu() -> Activation:
    """SELU: λ·elu_α(x) with α = SELU_ALPHA, λ = SELU_SCALE (exact Rationals of the published decimals)."""
    return _make("selu")


def mish() -> Activation:
    """Mish: x·tanh(softplus(x))."""
    return _make("mish")


def relu6() -> Activation:
    """ReLU6: min(max(x, 0), 6) (PyTorch nn.ReLU6)."""
    return _make("relu6")


def hard_tanh() -> Activation:
    """Hard tanh: max(−1, min(1, x)) (PyTorch nn.Hardtanh)."""
    return _make("hard_tanh")


def hard_sigmoid() -> Activation:
    """Hard sigmoid: relu6(x + 3)/6 (PyTorch nn.Hardsigmoid)."""
    return _make("hard_sigmoid")


def hard_swish() -> Activation:
    """Hard swish: x·relu6(x + 3)/6 (PyTorch nn.Hardswish)."""
    return _make("hard_swish")


def shifted_relu(b: object = -1) -> Activation:
    """Shifted ReLU: max(x − b, 0) (default b = −1: with b > 0 the mass at small variance lies in the far tail)."""
    return _make("shifted_relu", b=b)


def celu(alpha: object = 1) -> Activation:
    """CELU: x for x > 0, alpha·(exp(x/alpha) − 1) otherwise, alpha > 0 (PyTorch nn.CELU)."""
    return _make("celu", alpha=alpha)


def clipped_relu(a: object = 1) -> Activation:
    """Clipped ReLU: min(max(x, 0), a), a > 0."""
    return _make("clipped_relu", a=a)


# ---------------------------------------------------------------------------------------------------------------
# registry


def _entry(factory: Callable[..., Activation], build: Callable[..., sp.Expr], variadic: bool = False) -> CatalogEntry:
    signature = inspect.signature(factory)
    parameters = tuple((p.name, p.default) for p in signature.parameters.values())
    description = (factory.__doc__ or "").strip().splitlines()[0]
    return CatalogEntry(factory.__name__, factory, parameters, description, build, variadic)


CATALOG: Mapping[str, CatalogEntry] = MappingProxyType(
    {
        e.name: e
        for e in (
            _entry(relu, _relu_expr),
            _entry(leaky_relu, _leaky_relu_expr),
            _entry(abrelu, _abrelu_expr),
            _entry(abs, _abs_expr),
            _entry(step, _step_expr),
            _entry(sign, _sign_expr),
            _entry(erf, _erf_expr),
            _entry(gelu, _gelu_expr),
            _entry(sin, _sin_expr),
            _entry(cos, _cos_expr),
            _entry(exp, _exp_expr),
            _entry(gaussian, _gaussian_expr),
            _entry(monomial, _monomial_expr),
            _entry(rectified_monomial, _rectified_monomial_expr),
            _entry(polynomial, _polynomial_expr, variadic=True),
            _entry(hermite, _hermite_expr),
            _entry(tanh, _tanh_expr),
            _entry(sigmoid, _sigmoid_expr),
            _entry(softplus, _softplus_expr),
            _entry(silu, _silu_expr),
            _entry(elu, _elu_expr),
            _entry(selu, _selu_expr),
            _entry(mish, _mish_expr),
            _entry(relu6, _relu6_expr),
            _entry(hard_tanh, _hard_tanh_expr),
            _entry(hard_sigmoid, _hard_sigmoid_expr),
            _entry(hard_swish, _hard_swish_expr),
            _entry(shifted_relu, _shifted_relu_expr),
            _entry(celu, _celu_expr),
            _entry(clipped_relu, _clipped_relu_expr),
        )
    }
)


def catalog_activations() -> tuple[Activation, ...]:
    """The default instance of every catalog entry, in catalog order (for tests and benchmarks)."""
    return tuple(entry.factory() for entry in CATALOG.values())


__all__ = [
    "CATALOG",
    "CatalogEntry",
    "catalog_activations",
    "SELU_ALPHA",
    "SELU_SCALE",
    "relu",
    "leaky_relu",
    "abrelu",
    "abs",
    "step",
    "sign",
    "erf",
    "gelu",
    "sin",
    "cos",
    "exp",
    "gaussian",
    "monomial",
    "rectified_monomial",
    "polynomial",
    "hermite",
    "tanh",
    "sigmoid",
    "softplus",
    "silu",
    "elu",
    "selu",
    "mish",
    "relu6",
    "hard_tanh",
    "hard_sigmoid",
    "hard_swish",
    "shifted_relu",
    "celu",
    "clipped_relu",
]
