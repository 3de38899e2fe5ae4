"""Safe parsing of activation strings: Python syntax, a whitelist, SymPy objects built by hand.

`ast.parse(text, mode="eval")` only parses; nothing in the text is ever executed, and no raw string reaches
`sympify`/`parse_expr`. The tree walk accepts:

- numbers: integer and decimal literals, scientific notation; decimals become exact Rationals ("0.1" → 1/10);
- one variable: any identifier that is not a function or constant below (mapped to ntksym.symbols.x);
- constants: pi, e and E (Euler's number; so "e" can never be the variable);
- operators: + - * / ** and unary - +; "^" is rejected (it is XOR in Python): write x**2;
- functions, positional arguments only: exp, log (ln), sqrt, sin, cos, tan, atan (arctan), tanh, sinh, cosh,
  sech, asinh (arcsinh), erf, erfc, Phi (standard normal CDF, (1 + erf(x/√2))/2), Heaviside (H, heaviside;
  H(0) = 1/2), Abs (abs), sign (sgn), Max (max), Min (min), Piecewise((value, condition), ..., (value, True));
  each goes end to end (derive, verify, lower; ntksym.vocabulary). Names that cannot (asin, acosh, sec, coth,
  erfi, log1p, ...) are refused with a ParseError that says what to write instead (_REFUSED);
- catalog activations as functions: name(input, *parameters), e.g. relu(x), leaky_relu(x, 0.1), gelu(2*x),
  erf(x, a, b, c); the parameters are numbers, in the order of the catalog entry (polynomial takes its
  coefficients as trailing arguments). For a name that is also a function above (exp, sin, cos, erf, tanh,
  abs, sign), the one-argument call is that function, which equals the catalog default; step(x) is H(x);
- conditions, only inside Piecewise: < <= > >= (chained too), and/or/not, & | ~, True, False.

Resource guards: at most 10 000 characters, nesting depth 100, numeric exponents |n| ≤ 64, literals of
at most 100 digits with decimal exponents |e| ≤ 300, exact numbers of at most 10 000 digits.
"""

from __future__ import annotations

import ast
import builtins
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from . import special
from .errors import NotUnivariateError, NtksymError, ParseError
from .symbols import x

MAX_LENGTH = 10_000
MAX_DEPTH = 100
MAX_EXPONENT = 64
MAX_LITERAL_DIGITS = 100
MAX_LITERAL_EXPONENT = 300
MAX_NUMBER_BITS = 33_220  # about 10 000 decimal digits


def _phi(a: sp.Expr) -> sp.Expr:
    return (1 + sp.erf(a / sp.sqrt(2))) / 2


@dataclass(frozen=True)
class _Function:
    """A whitelisted function: its SymPy builder and how many arguments it takes (max None: any number)."""

    build: Callable[..., sp.Expr]
    min_args: int = 1
    max_args: int | None = 1


_FUNCTIONS: dict[str, _Function] = {
    "exp": _Function(sp.exp),
    "log": _Function(sp.log),
    "ln": _Function(sp.log),
    "sqrt": _Function(sp.sqrt),
    "sin": _Function(sp.sin),
    "cos": _Function(sp.cos),
    "tan": _Function(sp.tan),
    "atan": _Function(sp.atan),
    "arctan": _Function(sp.atan),
    "tanh": _Function(sp.tanh),
    "sinh": _Function(sp.sinh),
    "cosh": _Function(sp.cosh),
    "sech": _Function(sp.sech),
    "asinh": _Function(sp.asinh),
    "arcsinh": _Function(sp.asinh),
    "erf": _Function(sp.erf),
    "erfc": _Function(sp.erfc),
    "Phi": _Function(_phi),
    "Heaviside": _Function(sp.Heaviside),
    "heaviside": _Function(sp.Heaviside),
    "H": _Function(sp.Heaviside),
    "Abs": _Function(sp.Abs),
    "abs": _Function(sp.Abs),
    "sign": _Function(sp.sign),
    "sgn": _Function(sp.sign),
    "Max": _Function(sp.Max, 2, None),
    "max": _Function(sp.Max, 2, None),
    "Min": _Function(sp.Min, 2, None),
    "min": _Function(sp.Min, 2, None),
}

_CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "e": sp.E, "E": sp.E}

_NOT_REAL = "is complex for {where}, and σ must be real on all of ℝ; {instead}"
_POLE = ("has poles on the real line, where E[σ(z)²] diverges; write it as {reciprocal} if a factor cancels "
         "the pole (the validator checks), e.g. x/{base}")
_REFUSED: dict[str, str] = {
    **{name: _NOT_REAL.format(where="|x| > 1", instead="for a bounded activation write atan(x) or tanh(x)")
       for name in ("asin", "arcsin", "acos", "arccos")},
    **{name: _NOT_REAL.format(where="x < 1", instead="write asinh(x), which is real everywhere")
       for name in ("acosh", "arccosh")},
    **{name: _NOT_REAL.format(where="|x| > 1 (and infinite at ±1)", instead="write tanh(x) or atan(x)")
       for name in ("atanh", "arctanh")},
    **{name: _POLE.format(reciprocal=f"1/{base}(x)", base=f"{base}(x)")
       for name, base in (("sec", "cos"), ("csc", "sin"), ("cot", "tan"), ("coth", "tanh"), ("csch", "sinh"))},
    "erfi": "grows like e^{x²}, so E[erfi(z)²] diverges for variances q ≥ 1/4; write erf(x)",
    "log1p": _NOT_REAL.format(where="x < −1", instead="write log(1 + exp(x)) (softplus) or log(1 + x**2)"),
    "expit": "is the catalog's sigmoid: write sigmoid(x)",
    "logistic": "is the catalog's sigmoid: write sigmoid(x)",
}
"""Function names refused with what to write instead: they are not real, or not square-integrable, on ℝ."""

_RESERVED = {
    "I": "the imaginary unit I is not allowed: σ must be real-valued",
    "oo": "'oo' (infinity) is not allowed: σ must be finite",
    "inf": "'inf' is not allowed: σ must be finite",
    "nan": "'nan' is not allowed: σ must be a real number everywhere",
    "zoo": "'zoo' is not allowed: σ must be finite",
}

_BUILTIN_NAMES = frozenset(dir(builtins))

_CONDITION_ONLY = "comparisons, and/or/not, & | ~ and True/False are only allowed as conditions inside Piecewise"


def allowed_functions() -> list[str]:
    """Every function name a string may call: the whitelist plus the catalog names."""
    from .catalog import CATALOG

    return sorted(set(_FUNCTIONS) | set(CATALOG) | {"Piecewise"})


def parse(text: str, var: str | None = None) -> sp.Expr:
    """Parse an activation string into a SymPy expression in symbols.x (no eval; see the module docstring).

    **Arguments:** `text` the formula; `var` the variable's name if it is fixed (else any one identifier).
    **Raises:** ParseError for anything off the whitelist, NotUnivariateError for two or more variables.
    """
    source = _clean(text)
    tree = _syntax_tree(source)
    _check_names(tree)
    walker = _Walker(source)
    expr = walker.expression(tree.body, depth=0)
    _check_variables(walker.variables, var, source)
    _check_exponents(expr)
    return expr


def _clean(text: str) -> str:
    source = text.strip()
    if not source:
        raise ParseError(
            "empty expression: write σ as a formula in one variable, e.g. 'x*erf(x)', or a catalog name, e.g. 'relu'"
        )
    if len(source) > MAX_LENGTH:
        raise ParseError(f"expression too long ({len(source)} characters; at most {MAX_LENGTH} are accepted)")
    return source


def _syntax_tree(source: str) -> ast.Expression:
    try:
        with warnings.catch_warnings():
            # "1and x" parses with a SyntaxWarning; the outcome must not depend on the caller's warning filters
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return ast.parse(source, mode="eval")
    except SyntaxError as err:
        raise ParseError(_syntax_message(source, err)) from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as err:
        # null bytes, integer literals beyond Python's digit limit, or nesting the parser cannot hold
        raise ParseError(f"cannot parse the expression: {err}; simplify it") from None


def _syntax_message(source: str, err: SyntaxError) -> str:
    lines = source.splitlines() or [source]
    if not err.lineno or err.lineno > len(lines):
        return f"syntax error: {err.msg}"
    column = max(err.offset or 1, 1)
    where = f"line {err.lineno}, column {column}" if len(lines) > 1 else f"column {column}"
    line = lines[err.lineno - 1]
    if len(line) > 120:
        return f"syntax error at {where}: {err.msg}"
    return f"syntax error at {where}: {err.msg}\n    {line}\n    {' ' * (column - 1)}^"


def _check_names(tree: ast.Expression) -> None:
    """Name the most telling offence first: a dunder or Python builtin anywhere in the text (e.g. __import__)."""
    names = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name)), key=lambda n: (n.lineno, n.col_offset))
    for node in names:
        name = node.id
        if name in _FUNCTIONS or name in _CONSTANTS or name in _RESERVED:
            continue
        if name.startswith("_") or name in _BUILTIN_NAMES:
            raise ParseError(
                f"name '{name}' is not allowed (column {node.col_offset + 1}); allowed functions: "
                f"{', '.join(allowed_functions())}"
            )


def _check_variables(names: list[str], var: str | None, source: str) -> None:
    distinct = sorted(set(names), key=names.index)
    source = source if len(source) <= 120 else source[:117] + "..."
    if var is not None:
        extra = [n for n in distinct if n != var]
        if extra:
            raise NotUnivariateError(
                f"σ = {source!r} must be a function of {var} only, but it also uses {', '.join(extra)}; "
                f"replace the other names by numbers"
            )
        return
    if len(distinct) > 1:
        raise NotUnivariateError(
            f"σ = {source!r} must be a function of one variable, but it uses {len(distinct)}: "
            f"{', '.join(distinct)}. Replace all but one by numbers (e.g. 'x + 0.5' instead of 'x + y')."
        )


def _check_exponents(expr: sp.Expr) -> None:
    """SymPy merges powers (x**64 * x**64 = x**128); keep every numeric exponent within the guard."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Pow) and node.exp.is_Number and abs(node.exp) > MAX_EXPONENT:
            raise ParseError(
                f"the exponent of {node} is larger than {MAX_EXPONENT} in absolute value; such powers are refused"
            )


class _Walker:
    """Builds SymPy objects from a whitelisted Python syntax tree; records the variable names it meets."""

    def __init__(self, source: str):
        self.source = source
        self.variables: list[str] = []

    # -- errors ------------------------------------------------------------------------------------------------

    def _where(self, node: ast.AST) -> str:
        col = getattr(node, "col_offset", None)
        return "" if col is None else f" (column {col + 1})"

    def _refuse(self, node: ast.AST, what: str) -> ParseError:
        return ParseError(f"{what}{self._where(node)}")

    def _segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or type(node).__name__

    # -- expressions -------------------------------------------------------------------------------------------

    def expression(self, node: ast.AST, depth: int) -> sp.Expr:
        if depth > MAX_DEPTH:
            raise self._refuse(node, f"expression nested too deeply (more than {MAX_DEPTH} levels); simplify it")
        method = getattr(self, f"_expr_{type(node).__name__}", None)
        if method is None:
            raise self._refuse(node, _describe(node, self._segment(node)))
        return method(node, depth + 1)

    def _expr_Constant(self, node: ast.Constant, depth: int) -> sp.Expr:
        value = node.value
        if isinstance(value, bool):
            raise self._refuse(node, f"the boolean {value} is only allowed as a Piecewise condition")
        if isinstance(value, int):
            if value.bit_length() > MAX_LITERAL_DIGITS * 3.33:
                raise self._refuse(node, f"integer literal too large (more than {MAX_LITERAL_DIGITS} digits)")
            return sp.Integer(value)
        if isinstance(value, float):
            return self._decimal(node)
        if isinstance(value, complex):
            literal = self._segment(node)
            raise self._refuse(node, f"imaginary literal {literal!r} is not allowed: σ must be real-valued")
        if isinstance(value, (str, bytes)):
            raise self._refuse(node, f"string literal {self._segment(node)} is not allowed; write a formula")
        raise self._refuse(node, f"the constant {self._segment(node)} is not allowed")

    def _decimal(self, node: ast.Constant) -> sp.Expr:
        text = self._segment(node).replace("_", "").lower()
        match = re.fullmatch(r"(\d*)\.?(\d*)(?:e([+-]?\d+))?", text)
        if match is None:
            raise self._refuse(node, f"number literal {text!r} is not understood")
        digits = len((match.group(1) + match.group(2)).lstrip("0"))
        exponent = int(match.group(3) or 0)
        if digits > MAX_LITERAL_DIGITS or abs(exponent) > MAX_LITERAL_EXPONENT:
            raise self._refuse(
                node,
                f"number literal {text!r} is too large or too precise (at most {MAX_LITERAL_DIGITS} digits and "
                f"exponents within ±{MAX_LITERAL_EXPONENT})",
            )
        exact = Fraction(text)
        return sp.Rational(exact.numerator, exact.denominator)

    def _expr_Name(self, node: ast.Name, depth: int) -> sp.Expr:
        name = node.id
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name in _FUNCTIONS or name == "Piecewise":
            raise self._refuse(node, f"'{name}' is a function and needs an argument, e.g. {name}(x)")
        if _is_catalog_name(name):
            raise self._refuse(
                node,
                f"the catalog activation '{name}' must be called with its input, e.g. {name}(x); "
                f"only the whole string '{name}' means it without a call",
            )
        self._check_variable_name(node, name)
        self.variables.append(name)
        return x

    def _check_variable_name(self, node: ast.Name, name: str) -> None:
        if name in _RESERVED:
            raise self._refuse(node, _RESERVED[name])

    def _expr_UnaryOp(self, node: ast.UnaryOp, depth: int) -> sp.Expr:
        if isinstance(node.op, ast.USub):
            return _build(node, lambda a: -a, self.expression(node.operand, depth))
        if isinstance(node.op, ast.UAdd):
            return self.expression(node.operand, depth)
        shown = _OP_NAMES.get(type(node.op), type(node.op).__name__)
        raise self._refuse(node, f"operator {shown} is not allowed here; {_CONDITION_ONLY}")

    def _expr_BinOp(self, node: ast.BinOp, depth: int) -> sp.Expr:
        group = _GROUPS.get(type(node.op))
        if group is not None:
            return self._chain(node, group, depth)
        return self._binary(node, depth)

    def _chain(self, node: ast.BinOp, group: frozenset, depth: int) -> sp.Expr:
        """a + b - c + ... (or a * b / c ...) without one nesting level per term: Python nests them leftwards."""
        links = []
        while isinstance(node, ast.BinOp) and type(node.op) in group:
            links.append(node)
            node = node.left
        result = self.expression(node, depth)
        for link in reversed(links):
            right = self.expression(link.right, depth)
            result = _build(link, _ARITHMETIC[type(link.op)], result, right)
        return result

    def _binary(self, node: ast.BinOp, depth: int) -> sp.Expr:
        op = type(node.op)
        if op is ast.BitXor:
            raise self._refuse(node, "'^' is not a power here (in Python it is XOR): write x**2 for a power")
        if op in (ast.BitAnd, ast.BitOr):
            raise self._refuse(node, f"operator {_OP_NAMES[op]} is not allowed here; {_CONDITION_ONLY}")
        if op not in _ARITHMETIC:
            raise self._refuse(
                node, f"operator {_OP_NAMES.get(op, op.__name__)} is not allowed; use + - * / and ** only"
            )
        left = self.expression(node.left, depth)
        right = self.expression(node.right, depth)
        if op is ast.Pow:
            _check_power(node, left, right, self)
        return _build(node, _ARITHMETIC[op], left, right)

    def _expr_Call(self, node: ast.Call, depth: int) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            raise self._refuse(
                node, f"only calls of named functions are allowed, not {self._segment(node.func)!r}(...)"
            )
        name = node.func.id
        if node.keywords:
            kw = node.keywords[0]
            shown = f"{kw.arg}=..." if kw.arg is not None else "**..."
            raise self._refuse(
                node,
                f"keyword arguments are not allowed (got {shown} in {name}(...)); pass parameters positionally, "
                "e.g. leaky_relu(x, 0.1)",
            )
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self._refuse(node, "starred arguments (*args) are not allowed")
        if name == "Piecewise":
            return self._piecewise(node, depth)
        fn = _FUNCTIONS.get(name)
        if fn is not None and (len(node.args) == 1 or not _is_catalog_name(name)):
            return self._function(node, name, fn, depth)
        if _is_catalog_name(name):
            return self._catalog_call(node, name, depth)
        if name in _REFUSED:
            raise self._refuse(node, f"'{name}' is not accepted as an activation: {name}(x) {_REFUSED[name]}")
        raise self._refuse(
            node, f"name '{name}' is not allowed; allowed functions: {', '.join(allowed_functions())}"
        )

    def _function(self, node: ast.Call, name: str, fn: _Function, depth: int) -> sp.Expr:
        n = len(node.args)
        if n < fn.min_args or (fn.max_args is not None and n > fn.max_args):
            wanted = str(fn.min_args) if fn.max_args == fn.min_args else f"at least {fn.min_args}"
            raise self._refuse(node, f"{name} takes {wanted} argument(s), got {n}")
        args = [self.expression(a, depth) for a in node.args]
        return _build(node, fn.build, *args)

    def _catalog_call(self, node: ast.Call, name: str, depth: int) -> sp.Expr:
        from .catalog import CATALOG

        entry = CATALOG[name]
        if not node.args:
            raise self._refuse(node, f"{name} needs its input as the first argument, e.g. {name}(x)")
        arg = self.expression(node.args[0], depth)
        params = [self._parameter(a, name, depth) for a in node.args[1:]]
        names = [p for p, _ in entry.parameters]
        if entry.variadic:
            params = [tuple(params)] if params else []
        elif len(params) > len(names):
            takes = f"at most {len(names)} parameter(s) ({', '.join(names)})" if names else "no parameters"
            raise self._refuse(node, f"{name} takes {takes} after its input; got {len(params)}")
        expr = entry.expression(*params)
        return _build(node, lambda e: e.xreplace({x: arg}), expr)

    def _parameter(self, node: ast.AST, name: str, depth: int) -> sp.Expr:
        value = self.expression(node, depth)
        if value.has(x):
            raise self._refuse(node, f"the parameters of {name} must be numbers, got {self._segment(node)!r}")
        return value

    # -- Piecewise ---------------------------------------------------------------------------------------------

    def _piecewise(self, node: ast.Call, depth: int) -> sp.Expr:
        if not node.args:
            raise self._refuse(node, "Piecewise needs (value, condition) pairs, e.g. Piecewise((x, x > 0), (0, True))")
        pairs = []
        for arg in node.args:
            if not (isinstance(arg, ast.Tuple) and len(arg.elts) == 2):
                raise self._refuse(
                    arg,
                    f"Piecewise arguments must be (value, condition) pairs, got {self._segment(arg)!r}; "
                    "e.g. Piecewise((x, x > 0), (0, True))",
                )
            value = self.expression(arg.elts[0], depth + 1)
            cond = self.condition(arg.elts[1], depth + 1)
            pairs.append((value, cond))
        return _build(node, lambda *p: sp.Piecewise(*p), *pairs)

    def condition(self, node: ast.AST, depth: int) -> sp.Basic:
        if depth > MAX_DEPTH:
            raise self._refuse(node, f"condition nested too deeply (more than {MAX_DEPTH} levels)")
        depth += 1
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return sp.true if node.value else sp.false
        if isinstance(node, ast.Compare):
            return self._compare(node, depth)
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v, depth) for v in node.values]
            return _build(node, sp.And if isinstance(node.op, ast.And) else sp.Or, *parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
            return _build(node, sp.Not, self.condition(node.operand, depth))
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            parts = [self.condition(node.left, depth), self.condition(node.right, depth)]
            return _build(node, sp.And if isinstance(node.op, ast.BitAnd) else sp.Or, *parts)
        raise self._refuse(
            node, f"{self._segment(node)!r} is not a condition; use comparisons such as x > 0, or True"
        )

    def _compare(self, node: ast.Compare, depth: int) -> sp.Basic:
        terms = [self.expression(node.left, depth)] + [self.expression(c, depth) for c in node.comparators]
        parts = []
        for i, op in enumerate(node.ops):
            relation = _RELATIONS.get(type(op))
            if relation is None:
                raise self._refuse(
                    node,
                    f"comparison {_OP_NAMES.get(type(op), type(op).__name__)} is not allowed; use <, <=, > or >= "
                    "(σ is defined up to sets of measure zero, so == and != carry no information)",
                )
            parts.append(_build(node, relation, terms[i], terms[i + 1]))
        return parts[0] if len(parts) == 1 else _build(node, sp.And, *parts)


def _describe(node: ast.AST, segment: str) -> str:
    """The refusal message for a syntax node outside the whitelist."""
    kind = type(node)
    if kind is ast.Attribute:
        return f"attribute access {segment!r} is not allowed"
    if kind is ast.Subscript:
        return f"subscripts such as {segment!r} are not allowed"
    if kind is ast.Lambda:
        return "lambda expressions are not allowed"
    if kind in (ast.List, ast.ListComp):
        return f"lists such as {segment!r} are not allowed"
    if kind in (ast.Set, ast.SetComp, ast.Dict, ast.DictComp, ast.GeneratorExp):
        return f"collections and comprehensions such as {segment!r} are not allowed"
    if kind is ast.JoinedStr or kind is ast.FormattedValue:
        return "f-strings are not allowed; write a formula"
    if kind is ast.Tuple:
        return f"tuples such as {segment!r} are only allowed as (value, condition) pairs inside Piecewise"
    if kind in (ast.Compare, ast.BoolOp):
        return f"{segment!r}: {_CONDITION_ONLY}"
    if kind is ast.IfExp:
        return "conditional expressions (a if c else b) are not allowed; use Piecewise((a, c), (b, True))"
    if kind is ast.NamedExpr:
        return "assignment expressions (:=) are not allowed"
    if kind is ast.Starred:
        return "starred expressions (*args) are not allowed"
    return f"{kind.__name__} syntax ({segment!r}) is not allowed"


def _is_catalog_name(name: str) -> bool:
    from .catalog import CATALOG

    return name in CATALOG


def _build(node: ast.AST, fn: Callable[..., sp.Basic], *args) -> sp.Basic:
    """Call a SymPy constructor; turn SymPy's own complaints (x < I, Max of complex ...) into a ParseError."""
    try:
        return fn(*args)
    except NtksymError:
        raise
    except (TypeError, ValueError, ArithmeticError, AttributeError, sp.SympifyError) as err:
        col = getattr(node, "col_offset", None)
        where = "" if col is None else f" (column {col + 1})"
        raise ParseError(f"cannot build this expression{where}: {err}") from None


def _check_power(node: ast.BinOp, base: sp.Expr, exponent: sp.Expr, walker: _Walker) -> None:
    """Refuse powers that SymPy would evaluate into enormous exact numbers (10**10**9), before building them."""
    if exponent.is_Number and abs(exponent) > MAX_EXPONENT:
        raise walker._refuse(
            node, f"exponent {exponent} is too large; numeric exponents must satisfy |n| ≤ {MAX_EXPONENT}"
        )
    if base.is_Rational and exponent.is_Rational:
        bits = max(abs(base.p).bit_length(), abs(base.q).bit_length())
        if bits * abs(float(exponent)) > MAX_NUMBER_BITS:
            raise walker._refuse(node, "this power is a number too large to represent exactly; simplify it")


_ARITHMETIC: dict[type, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}

_GROUPS: dict[type, frozenset] = {
    ast.Add: frozenset({ast.Add, ast.Sub}),
    ast.Sub: frozenset({ast.Add, ast.Sub}),
    ast.Mult: frozenset({ast.Mult, ast.Div}),
    ast.Div: frozenset({ast.Mult, ast.Div}),
}

_RELATIONS: dict[type, Callable[[sp.Expr, sp.Expr], sp.Basic]] = {
    ast.Lt: sp.StrictLessThan,
    ast.LtE: sp.LessThan,
    ast.Gt: sp.StrictGreaterThan,
    ast.GtE: sp.GreaterThan,
}

_OP_NAMES: dict[type, str] = {
    ast.BitAnd: "'&'",
    ast.BitOr: "'|'",
    ast.BitXor: "'^'",
    ast.FloorDiv: "'//'",
    ast.Mod: "'%'",
    ast.MatMult: "'@'",
    ast.LShift: "'<<'",
    ast.RShift: "'>>'",
    ast.Not: "'not'",
    ast.Invert: "'~'",
    ast.Eq: "'=='",
    ast.NotEq: "'!='",
    ast.Is: "'is'",
    ast.IsNot: "'is not'",
    ast.In: "'in'",
    ast.NotIn: "'not in'",
}


# ------------------------------------------------------------------------------ formulas of K, K̇, V

_FORMULA_FUNCTIONS: dict[str, _Function] = {
    **_FUNCTIONS,
    "asin": _Function(sp.asin),
    "arcsin": _Function(sp.asin),
    "acos": _Function(sp.acos),
    "arccos": _Function(sp.acos),
    "atan2": _Function(sp.atan2, 2, 2),
    "erfi": _Function(sp.erfi),
    "phi": _Function(special.phi),
    "Phi2": _Function(special.Phi2, 3, 3),
    "hyp2f1": _Function(lambda a, b, c, z: sp.hyper([a, b], [c], z), 4, 4),
}


class _FormulaWalker(_Walker):
    """A _Walker for kernel formulas: the variables are a fixed set of names (q1, q2, c or q), and the
    inverse trigonometric functions that duals are written with are allowed; catalog calls are not."""

    def __init__(self, source: str, variables: dict[str, sp.Symbol]):
        super().__init__(source)
        self.allowed = variables

    def _expr_Name(self, node: ast.Name, depth: int) -> sp.Expr:
        name = node.id
        if name in self.allowed:
            self.variables.append(name)
            return self.allowed[name]
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name in _FORMULA_FUNCTIONS:
            raise self._refuse(node, f"'{name}' is a function and needs an argument, e.g. {name}(c)")
        raise self._refuse(node, f"unknown name '{name}': this formula may use {', '.join(self.allowed)} "
                                 "and the constants pi, e")

    def _expr_Call(self, node: ast.Call, depth: int) -> sp.Expr:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        fn = _FORMULA_FUNCTIONS.get(name) if name is not None else None
        if fn is None or node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            if name is not None and name not in _FORMULA_FUNCTIONS and name != "Piecewise":
                raise self._refuse(node, f"function '{name}' is not allowed in a formula; allowed: "
                                         f"{', '.join(sorted(_FORMULA_FUNCTIONS))}, Piecewise")
            return super()._expr_Call(node, depth)
        return self._function(node, name, fn, depth)


def parse_formula(text: str, variables: dict[str, sp.Symbol]) -> sp.Expr:
    """Parse a formula of K, K̇ (in q1, q2, c) or V (in q) safely, as `parse` does an activation.

    **Raises:** ParseError for anything off the whitelist, naming the offending name or operator.
    """
    source = _clean(text)
    tree = _syntax_tree(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and (node.id.startswith("_") or node.id in _BUILTIN_NAMES) \
                and node.id not in _FORMULA_FUNCTIONS:
            raise ParseError(f"name '{node.id}' is not allowed (column {node.col_offset + 1})")
    expr = _FormulaWalker(source, variables).expression(tree.body, depth=0)
    _check_exponents(expr)
    return expr
