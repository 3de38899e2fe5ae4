"""Tests of ntksym.activation: the safe string parser, SymPy input, and validation of σ."""

from __future__ import annotations

import builtins
import dataclasses
import time

import pytest
import sympy as sp
import sympy.parsing.sympy_parser as sympy_parser
from hypothesis import given, settings
from hypothesis import strategies as st

import ntksym
from ntksym import catalog
from ntksym.activation import Activation, activation
from ntksym.errors import DivergentMomentError, NotRealError, NotUnivariateError, NtksymError, ParseError
from ntksym.symbols import x

# ---------------------------------------------------------------------------------------------------------------
# the whitelist builds the SymPy objects one would build by hand

BUILDS = [
    ("exp(-x**2)", sp.exp(-(x**2))),
    ("log(1 + x**2)", sp.log(1 + x**2)),
    ("ln(1 + x**2)", sp.log(1 + x**2)),
    ("sqrt(1 + x**2)", sp.sqrt(1 + x**2)),
    ("sin(x)", sp.sin(x)),
    ("cos(x)", sp.cos(x)),
    ("tan(tanh(x))", sp.tan(sp.tanh(x))),  # bounded argument: no pole
    ("atan(x)", sp.atan(x)),
    ("arctan(x)", sp.atan(x)),
    ("tanh(x)", sp.tanh(x)),
    ("sinh(x)", sp.sinh(x)),
    ("cosh(x)", sp.cosh(x)),
    ("erf(x)", sp.erf(x)),
    ("erfc(x)", sp.erfc(x)),
    ("Phi(x)", (1 + sp.erf(x / sp.sqrt(2))) / 2),
    ("Phi(2*x)", (1 + sp.erf(2 * x / sp.sqrt(2))) / 2),
    ("Heaviside(x)", sp.Heaviside(x)),
    ("heaviside(x)", sp.Heaviside(x)),
    ("H(x - 1)", sp.Heaviside(x - 1)),
    ("step(x)", sp.Heaviside(x)),
    ("Abs(x)", sp.Abs(x)),
    ("abs(x)", sp.Abs(x)),
    ("sign(x)", sp.sign(x)),
    ("sgn(x)", sp.sign(x)),
    ("Max(x, 0)", sp.Max(x, 0)),
    ("max(x, 0, x/2)", sp.Max(x, 0, x / 2)),
    ("Min(x, 1)", sp.Min(x, 1)),
    ("min(x, 1)", sp.Min(x, 1)),
    ("Piecewise((x, x > 0), (0, True))", sp.Piecewise((x, x > 0), (0, True))),
    ("Piecewise((x**2, x <= -1), (1, x < 1), (x, True))", sp.Piecewise((x**2, x <= -1), (1, x < 1), (x, True))),
    ("Piecewise((1, (x > 0) & (x < 1)), (0, True))", sp.Piecewise((1, sp.And(x > 0, x < 1)), (0, True))),
    ("Piecewise((1, 0 < x < 1), (0, True))", sp.Piecewise((1, sp.And(x > 0, x < 1)), (0, True))),
    ("Piecewise((1, x < -1 or x > 1), (0, True))", sp.Piecewise((1, sp.Or(x < -1, x > 1)), (0, True))),
    ("Piecewise((1, not x > 0), (0, True))", sp.Piecewise((1, x <= 0), (0, True))),
    ("pi*x", sp.pi * x),
    ("e*x", sp.E * x),
    ("E**x", sp.exp(x)),
    ("-x + +x**3 / 3 - 2", -x + x**3 / 3 - 2),
    ("x**(1/3)*0 + x", x),
    ("2**x", 2**x),
]


@pytest.mark.parametrize(("text", "expected"), BUILDS, ids=[t for t, _ in BUILDS])
def test_whitelisted_syntax_builds_the_expected_sympy_object(text, expected):
    assert activation(text).expr == expected


def test_decimals_are_exact_rationals():
    assert activation("0.5*x").expr == x / 2
    assert activation("0.1*x").expr == x / 10
    assert activation("1e-3*x + 2.5E2").expr == x / 1000 + 250
    assert activation("1_000.5*x").expr == sp.Rational(2001, 2) * x
    assert activation("x*0.3333333333333333").expr == sp.Rational(3333333333333333, 10**16) * x
    for text in ("0.5*x", "1e-3*x + 2.5E2", "sin(0.1*x)"):
        assert not activation(text).expr.atoms(sp.Float), text


def test_catalog_names_inside_strings():
    assert activation("relu(x)").expr == sp.Max(0, x)
    assert activation("0.5*x + relu(x)").expr == x / 2 + sp.Max(0, x)
    assert activation("gelu(2*x)").expr == catalog.gelu().expr.subs(x, 2 * x)
    assert activation("leaky_relu(x, 0.1)").expr == catalog.leaky_relu(0.1).expr
    assert activation("erf(x, 2, 3, 1)").expr == 2 * sp.erf(3 * x) + 1
    assert activation("sin(x, 2, 3, pi/2)").expr == catalog.sin(2, 3, sp.pi / 2).expr
    assert activation("polynomial(x, 1, 0, 2)").expr == 1 + 2 * x**2
    assert activation("hermite(x, 3)").expr == catalog.hermite(3).expr
    assert activation("rectified_monomial(x - 1, 2)").expr == (x - 1) ** 2 * sp.Heaviside(x - 1)


@pytest.mark.parametrize("name", list(catalog.CATALOG))
def test_every_catalog_name_as_a_call_and_bare(name):
    default = catalog.CATALOG[name].factory()
    assert activation(f"{name}(x)").expr == default.expr
    assert activation(f"{name}(z)").expr == default.expr
    bare = activation(name)
    assert bare == default and bare.name == name
    assert activation(f"  {name}  ", name="mine").name == "mine"


def test_the_variable_is_renamed_to_the_canonical_x():
    assert activation("z*erf(z)").expr == x * sp.erf(x)
    assert activation("t + 1").expr == x + 1
    assert activation("z**2", var="z").expr == x**2
    assert activation("z**2", var=sp.Symbol("z")).expr == x**2
    assert activation("3").expr == 3  # a constant σ is allowed
    (symbol,) = activation("exp(-w**2)").expr.free_symbols
    assert symbol is x and symbol.is_real


def test_sympy_input_is_renamed_and_validated():
    y, z, a = sp.symbols("y z a")
    assert activation(y * sp.exp(-(y**2))).expr == x * sp.exp(-(x**2))
    assert activation(sp.sqrt(z**2)).expr == sp.Abs(x)  # real x: the assumptions apply after renaming
    assert activation(z**2 + 1, var=z).expr == x**2 + 1
    assert activation(z**2 + 1, var="z").expr == x**2 + 1
    assert activation(sp.Integer(2)).expr == 2
    with pytest.raises(NotUnivariateError, match="a, z"):
        activation(a * z + 1)
    with pytest.raises(NotUnivariateError, match="also has a"):
        activation(a * z + 1, var=z)
    with pytest.raises(NotRealError, match="complex"):
        activation(sp.I * z)
    with pytest.raises(DivergentMomentError, match="pole"):
        activation(1 / z)
    with pytest.raises(DivergentMomentError, match="grows like"):
        activation(sp.exp(z**2))
    with pytest.raises(NotRealError):
        activation(sp.log(z))


def test_an_activation_passes_through_unchanged():
    act = catalog.relu()
    assert activation(act) is act
    assert activation(act, name="ReLU") == Activation(act.expr, "ReLU")
    with pytest.raises(ParseError, match="var="):
        activation(act, var=x)


def test_activation_is_frozen_and_checks_its_expression():
    act = activation("x*erf(x)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        act.expr = x  # type: ignore[misc]
    with pytest.raises(ParseError, match="SymPy expression"):
        Activation("x")  # type: ignore[arg-type]
    assert act.label == "x*erf(x)" and str(catalog.relu()) == "relu"
    assert ntksym.activation is activation


# ---------------------------------------------------------------------------------------------------------------
# refusals: each names the problem

PARSE_ERRORS = [
    ("__import__('os').system('echo pwned')", "name '__import__' is not allowed"),
    ("", "empty expression"),
    ("   \n ", "empty expression"),
    ("x^2", "write x**2"),
    ("().__class__", "attribute access"),
    ("x.__class__", "attribute access"),
    ("lambda: 1", "lambda"),
    ("[x]", "lists"),
    ("{x}", "collections"),
    ("[i for i in x]", "lists"),
    ("'a'", "string literal"),
    ("f'{x}'", "f-strings"),
    ("exp(x, y=1)", "keyword arguments"),
    ("exp(**x)", "keyword arguments"),
    ("exp(*x)", "starred"),
    ("x[0]", "subscripts"),
    ("x if x else 1", "Piecewise"),
    ("(y := x)", ":="),
    ("eval(x)", "name 'eval' is not allowed"),
    ("open", "name 'open' is not allowed"),
    ("foo(x)", "name 'foo' is not allowed; allowed functions: "),
    ("x > 0", "only allowed as conditions inside Piecewise"),
    ("x and 1", "only allowed as conditions inside Piecewise"),
    ("~x", "only allowed as conditions"),
    ("x & 1", "only allowed as conditions"),
    ("True", "only allowed as a Piecewise condition"),
    ("None", "constant None is not allowed"),
    ("Piecewise((x, x == 0), (0, True))", "'=='"),
    ("Piecewise(x)", "(value, condition) pairs"),
    ("Piecewise()", "(value, condition) pairs"),
    ("Piecewise((x, x), (0, True))", "not a condition"),
    ("x % 2", "'%'"),
    ("x // 2", "'//'"),
    ("x @ x", "'@'"),
    ("1j*x", "imaginary literal"),
    ("I*x", "imaginary unit"),
    ("oo*x", "finite"),
    ("x +", "syntax error at column"),
    ("x\x00", "null bytes"),
    ("1e400*x", "too large"),
    ("9" * 200, "too large"),
    ("10**10**9", "|n| ≤ 64"),
    ("x**65", "|n| ≤ 64"),
    ("x**64*x**64", "larger than 64"),
    ("((2**64)**64)**64", "too large"),
    ("x" * 10_001, "too long"),
    ("exp(" * 120 + "x" + ")" * 120, "nested too deeply"),
    ("relu + 1", "must be called with its input"),
    ("log", "needs an argument"),
    ("relu()", "needs its input"),
    ("leaky_relu(x, y)", "must be numbers"),
    ("leaky_relu(x, 1, 2)", "at most 1 parameter"),
    ("relu(x, 1)", "no parameters"),
    ("exp(x, 1, 2, 3, 4)", "at most 3 parameter"),
    ("Max(x)", "at least 2"),
    ("sqrt(x, 2)", "takes 1 argument"),
    ("x < 1", "only allowed as conditions"),
    ("Piecewise((x, x < I), (0, True))", "imaginary unit"),
    ("Piecewise((x, x < 1j), (0, True))", "imaginary literal"),
    ("(lambda: __import__('os'))()", "name '__import__' is not allowed"),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS, ids=[repr(t[:30]) for t, _ in PARSE_ERRORS])
def test_parse_errors_name_the_offending_construct(text, message):
    with pytest.raises(ParseError) as info:
        activation(text)
    assert message in str(info.value)


VALIDATION_ERRORS = [
    ("x + y", NotUnivariateError, "uses 2: x, y"),
    ("a*x + b", NotUnivariateError, "a, x, b"),
    ("exp(x**2)", DivergentMomentError, "grows like exp(x**2) as x → ±∞"),
    ("x*exp(x**2/100)", DivergentMomentError, "grows like exp(x**2/100)"),
    ("exp(x**3)", DivergentMomentError, "as x → +∞"),
    ("exp(-x**3)", DivergentMomentError, "as x → -∞"),
    ("exp(exp(x))", DivergentMomentError, "grows like exp(exp(x))"),
    ("cosh(x**2)", DivergentMomentError, "grows like exp(x**2)"),
    ("sinh(x**2) + 1", DivergentMomentError, "grows like"),
    ("2**(x**2)", DivergentMomentError, "grows like"),
    ("exp(abs(x)**2.5)", DivergentMomentError, "grows like"),
    ("Piecewise((exp(x**2), x > 0), (0, True))", DivergentMomentError, "as x → +∞"),
    ("1/x", DivergentMomentError, "pole at x = 0"),
    ("1/(x - 1)", DivergentMomentError, "pole at x = 1"),
    ("1/(x**2 - 2)", DivergentMomentError, "pole at x = 1.41421"),
    ("tan(x)", DivergentMomentError, "pole at x = 1.5708"),
    ("1/erf(x)", DivergentMomentError, "pole at x = 0"),
    ("1/(exp(x) - 1)", DivergentMomentError, "pole at x = 0"),
    ("Heaviside(x)/x", DivergentMomentError, "pole at x = 0"),
    ("abs(x)**(-0.5)", DivergentMomentError, "pole at x = 0"),
    ("1/Max(x, 0)", DivergentMomentError, "E[σ(z)²] diverges"),
    ("Piecewise((1/(x + 1), x < 0), (0, True))", DivergentMomentError, "pole at x = -1"),
    ("gaussian(x, 1, -1)", DivergentMomentError, "b < 0"),
    ("sqrt(-1)*x", NotRealError, "takes complex values"),
    ("log(x)", NotRealError, "σ(-0.3)"),
    ("sqrt(x)", NotRealError, "σ(-0.3)"),
    ("sqrt(x**2 - 1)", NotRealError, "σ(0)"),
    ("x**x", NotRealError, "complex"),
    ("Piecewise((x, x > 0))", NotRealError, "undefined (NaN)"),
    ("1/0", NotRealError, "not a finite real constant"),
    ("sqrt(-2)", NotRealError, "not a finite real constant"),
]


@pytest.mark.parametrize(("text", "error", "message"), VALIDATION_ERRORS, ids=[t for t, _, _ in VALIDATION_ERRORS])
def test_validation_errors_name_the_reason(text, error, message):
    with pytest.raises(error) as info:
        activation(text)
    assert message in str(info.value)


VALID = [
    "exp(-x**4)",
    "exp(x - x**2)",
    "exp(x)",
    "exp(abs(x)**1.5)",  # log|σ| = |x|^1.5 = o(x²): every Gaussian moment is finite
    "tanh(exp(x**2))",
    "exp(-exp(x))",
    "exp(-exp(exp(x)))",
    "exp(x**2)/cosh(x**2)",  # bounded: the growth of the numerator is cancelled, so it must not be flagged
    "x**64",
    "sin(x)/x",
    "x*sin(1/x)",
    "log(abs(x))",  # an integrable logarithmic singularity
    "abs(x)**(-0.49)",  # a pole of order < 1/2 has a finite second moment
    "1/(1 + x**2)",
    "(x**2)**(1/3)",
    "Piecewise((x, x > 0), (exp(x) - 1, True))",
    "sigmoid(x)*softplus(x)",
    "gaussian(x, 2, 3, -1)",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_activations_are_accepted(text):
    act = activation(text)
    assert act.expr.free_symbols <= {x}


def test_validation_is_fast_even_for_towers_of_exponentials():
    start = time.perf_counter()
    activation("exp(-exp(exp(exp(x))))")
    with pytest.raises(ParseError):
        activation("10**10**10**10")
    assert time.perf_counter() - start < 2.0  # evaluated in floats, no exact 10**10**10 is ever built


def test_unsupported_types_are_refused_with_their_name():
    with pytest.raises(ParseError, match="float"):
        activation(3.5)
    with pytest.raises(ParseError, match="list"):
        activation([x])
    with pytest.raises(ParseError, match="StrictGreaterThan"):
        activation(sp.Gt(x, 0))
    with pytest.raises(ParseError, match="unevaluated"):
        activation(sp.Integral(sp.exp(-(x**2)), x))
    with pytest.raises(ParseError, match="var must be"):
        activation("x", var=3)


# ---------------------------------------------------------------------------------------------------------------
# nothing in the text is ever executed

PAYLOADS = [
    "__import__('os').system('touch {path}')",
    "(lambda: __import__('os').system('touch {path}'))()",
    "exec(\"open('{path}', 'w')\")",
    "eval(\"open('{path}', 'w')\")",
    "open('{path}', 'w')",
    "getattr(__import__('os'), 'system')('touch {path}')",
    "().__class__.__base__.__subclasses__()",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "f'{{__import__(\"os\").system(\"touch {path}\")}}'",
    "x + __import__('os').system('touch {path}')",
    "relu(__import__('os').system('touch {path}'))",
    "Piecewise((x, __import__('os').system('touch {path}')), (0, True))",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_payload_never_runs(payload, tmp_path):
    path = tmp_path / "PWNED"
    with pytest.raises(ParseError):
        activation(payload.format(path=path))
    assert not path.exists()


def test_parsing_calls_neither_eval_nor_exec_nor_sympify(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the parser must not evaluate text")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(sympy_parser, "parse_expr", forbidden)
    act = activation("x*erf(x) + 0.5*leaky_relu(x, 0.1) + Piecewise((x, x > 0), (0, True))")
    assert act.expr.has(sp.erf, sp.Piecewise)


# ---------------------------------------------------------------------------------------------------------------
# any text: an Activation or an NtksymError, never anything else

_TOKENS = [
    "x", "y", "(", ")", "+", "-", "*", "/", "**", "^", "0", "1", "0.5", "1e3", "64", "exp", "log", "sqrt", "tan",
    "erf", "relu", "leaky_relu", "Piecewise", "(x, x > 0)", "(0, True)", ",", "abs", "Max", "H", "pi", "e",
    "polynomial", "hermite", "gaussian", "cosh", "[", "]", "'", "lambda", ":", "<", "==", "and", "|", "~", ".",
    "__class__", "3j", " ", "9" * 40,
]


def _outcome(text: str) -> None:
    try:
        act = activation(text)
    except NtksymError:
        return
    assert isinstance(act, Activation) and act.expr.free_symbols <= {x}


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_an_ntksym_error(text):
    _outcome(text)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=14).map("".join))
def test_token_soup_parses_or_raises_an_ntksym_error(text):
    _outcome(text)
