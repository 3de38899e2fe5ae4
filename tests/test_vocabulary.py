"""The function vocabulary (ntksym.vocabulary): one entry per function, every target present, no dead entries,
every parser name lowers or is refused, and the targets agree numerically."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import sympy as sp

import ntksym as nk
from ntksym import _parse, _validate, vocabulary
from ntksym._stable import Dawson, Expm1, GramDeterminant, Product, _expit, _softplus, _stabilize
from ntksym.dual import _mpmath_function
from ntksym.gaussian.numeric import vectorize
from ntksym.lower import _rewrite, lower_elementwise, lower_expression, safe, table
from ntksym.special import Phi, Phi2, bvn_mpmath, phi
from ntksym.symbols import c, q1, q2, x

VOCABULARY = {f.cls: f for f in vocabulary.VOCABULARY}
IDS = [f.name for f in vocabulary.VOCABULARY]


# ---------------------------------------------------------------------------------- every target has every entry


@pytest.mark.parametrize("entry", vocabulary.VOCABULARY, ids=IDS)
def test_every_target_has_an_entry(entry):
    if not entry.structural:
        assert callable(entry.mpmath) and callable(entry.numpy), f"{entry.name} lacks an mpmath or NumPy evaluation"
        assert vocabulary.namespace("mpmath")[entry.name] is entry.mpmath
        assert vocabulary.namespace("numpy")[entry.name] is entry.numpy
    covered = [entry.cls in table.FUNCTIONS, entry.cls in table.WALKED, entry.cls in table.REWRITES]
    assert sum(covered) == 1, f"{entry.name}: JAX lowers it in {sum(covered)} ways (table, walk, rewrite); want 1"
    assert entry.latex != "missing", f"{entry.name} has no LaTeX of its own (it would print its private name)"
    assert entry.occurs and set(entry.occurs) <= set(vocabulary.OCCURS)


def test_the_tables_have_no_keys_outside_the_vocabulary():
    jax_keys = set(table.FUNCTIONS) | set(table.WALKED) | set(table.REWRITES)
    assert jax_keys == set(VOCABULARY)
    assert table.RATIO_ARGUMENTS | table.PARAMETER_ARGUMENTS <= set(table.FUNCTIONS)
    # the validator's table: the vocabulary's Python evaluations plus its structural handlers (Add, Mul)
    assert set(_validate._EVAL) - {sp.Add, sp.Mul} <= set(VOCABULARY)
    assert all(_validate._EVAL[cls] is not None for cls in vocabulary.python_functions())
    names = {f.name for f in vocabulary.VOCABULARY} | {n for f in vocabulary.VOCABULARY for n in (f.printed or {})}
    assert set(vocabulary.namespace("numpy")) <= names and set(vocabulary.namespace("mpmath")) <= names


# ------------------------------------------------------------------------------------------ no dead entries


def _parsed(text):
    return lambda: _parse.parse(text)


def _sympy_activation(expr):
    return lambda: nk.activation(expr).expr  # the validator accepts it: it reaches derive and lowering


def _formula(text):
    return lambda: _parse.parse_formula(text, {"q1": q1, "q2": q2, "c": c})


def _engine(text, part="K"):
    return lambda: getattr(nk.derive(text), part)


WITNESSES = {
    sp.exp: ("parser", _parsed("x*exp(-x**2)")),
    sp.log: ("parser", _parsed("log(1 + x**2)")),
    sp.sin: ("parser", _parsed("sin(x)")),
    sp.cos: ("parser", _parsed("cos(x)")),
    sp.tan: ("parser", _parsed("tan(x)/(1 + tan(x)**2)")),
    sp.cot: ("sympy", _sympy_activation(sp.exp(-sp.cot(x) ** 2))),
    sp.sec: ("sympy", _sympy_activation(sp.exp(-sp.sec(x) ** 2))),
    sp.csc: ("sympy", _sympy_activation(sp.exp(-sp.csc(x) ** 2))),
    sp.sinh: ("parser", _parsed("sinh(x)*exp(-x**2)")),
    sp.cosh: ("parser", _parsed("1/cosh(x)")),
    sp.tanh: ("parser", _parsed("tanh(x)")),
    sp.coth: ("sympy", _sympy_activation(x * sp.coth(x))),
    sp.sech: ("parser", _parsed("sech(x)")),
    sp.csch: ("sympy", _sympy_activation(x * sp.csch(x))),
    sp.asinh: ("parser", _parsed("arcsinh(x)")),
    sp.asin: ("engine", _engine("erf")),
    sp.acos: ("formula", _formula("acos(c/sqrt(q1*q2))")),
    sp.atan: ("parser", _parsed("arctan(x)")),
    sp.atan2: ("formula", _formula("atan2(c, c - q1)")),
    sp.erf: ("parser", _parsed("erf(x)")),
    sp.erfc: ("parser", _parsed("erfc(x)")),
    sp.erfi: ("formula", _formula("erfi(c)")),
    sp.Pow: ("parser", _parsed("sqrt(abs(x))")),
    sp.Abs: ("parser", _parsed("abs(x)")),
    sp.sign: ("parser", _parsed("sign(x)")),
    sp.Heaviside: ("parser", _parsed("H(x)")),
    sp.Max: ("parser", _parsed("max(x, 0)")),
    sp.Min: ("parser", _parsed("min(x, 0)")),
    sp.Piecewise: ("parser", _parsed("Piecewise((x, x > 0), (0, True))")),
    _softplus: ("rewrite", lambda: _stabilize(_parse.parse("log(1 + exp(x))"))),
    _expit: ("rewrite", lambda: _stabilize(_parse.parse("exp(x)/(1 + exp(x))"))),
    Product: ("rewrite", lambda: _rewrite(c / (sp.sqrt(q1) * sp.sqrt(q2)))),
    GramDeterminant: ("rewrite", lambda: _rewrite(sp.sqrt(1 - c**2 / (q1 * q2)))),
    Dawson: ("rewrite", lambda: _rewrite(sp.exp(-c) * sp.erfi(c))),
    Expm1: ("rewrite", lambda: _rewrite(sp.exp(c) - 1)),
    Phi: ("engine", _engine("Max(x - 1, 0)")),
    phi: ("engine", _engine("Max(x - 1, 0)")),
    Phi2: ("engine", _engine("Max(x - 1, 0)")),
    sp.hyper: ("engine", _engine("abs(x)**0.5")),  # fractional powers: (q1q2)^(α/2)·₂F₁(a, b; c; ρ²)
}


@pytest.mark.parametrize("entry", vocabulary.VOCABULARY, ids=IDS)
def test_every_entry_can_occur(entry):
    assert entry.cls in WITNESSES, f"{entry.name}: no witness that it can occur (a dead entry?)"
    route, build = WITNESSES[entry.cls]
    assert route in entry.occurs, f"{entry.name} occurs by {route!r}, which its entry does not list"
    expr = build()
    assert any(type(node) is entry.cls for node in sp.preorder_traversal(expr)), f"{expr} has no {entry.name}"


def test_engine_results_stay_inside_the_vocabulary():
    for name in ("erf", "Max(x - 1, 0)", "relu", "gelu", "abs(x)**0.5"):
        dual = nk.derive(name)
        for expr in (dual.K, dual.Kdot, dual.V):
            assert vocabulary.unknown_functions(expr) == set(), name


# ------------------------------------------------------------------------- every parser name lowers or is refused


def _call(name: str) -> str:
    fn = _parse._FUNCTIONS.get(name)
    return f"{name}(x, 0)" if fn is not None and fn.min_args == 2 else f"{name}(x)"


@pytest.mark.parametrize("name", _parse.allowed_functions())
def test_every_parser_name_lowers_with_its_derivative(name):
    # σ and σ' (numeric duals and verify lower both); positive points, where log(x) and sqrt(x) are real too
    text = "Piecewise((x, x > 0), (0, True))" if name == "Piecewise" else _call(name)
    try:
        expr = _parse.parse(text)
    except nk.ParseError:  # refused with a named error (a catalog name that needs parameters): allowed
        return
    dsigma = sp.diff(expr, x).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
    with jax.enable_x64(True):
        points = jnp.asarray([0.3, 0.7, 1.9, 2.5], jnp.float64)
        for e in (expr, dsigma):
            values = lower_elementwise(e)(points)
            assert bool(jnp.all(jnp.isfinite(values))), f"{name}: {e} is not finite at {points}"


@pytest.mark.parametrize("name", sorted(_parse._REFUSED))
def test_refused_names_say_what_to_write_instead(name):
    with pytest.raises(nk.ParseError, match=rf"'{name}' is not accepted.*write"):
        _parse.parse(f"{name}(x)")


def test_lowering_error_names_where_extra_functions_go():
    class Wobble(sp.Function):
        pass

    with pytest.raises(nk.LoweringError, match=r"Wobble.*extra_functions.*nk\.Activation.*nk\.mlp.*nk\.verify"):
        lower_elementwise(Wobble(x))


# ---------------------------------------------------------------------------------------- numerical agreement

# Each sample is evaluated by SymPy's own evalf at 30 digits (the reference: SymPy's implementations, not our
# tables) and by the four evaluators that read the vocabulary: lambdify + mpmath namespace (30 digits),
# lambdify + NumPy namespace (numeric.vectorize), the JAX walk (float64), the validator's probe walk.
SAMPLES = {
    sp.exp: sp.exp(x / 3), sp.log: sp.log(1 + x**2), sp.sin: sp.sin(x), sp.cos: sp.cos(x), sp.tan: sp.tan(x / 3),
    sp.cot: sp.cot(x / 3 + 2), sp.sec: sp.sec(x / 3), sp.csc: sp.csc(x / 3 + 2), sp.sinh: sp.sinh(x),
    sp.cosh: sp.cosh(x), sp.tanh: sp.tanh(x), sp.coth: sp.coth(x / 3 + 2), sp.sech: sp.sech(x),
    sp.csch: sp.csch(x / 3 + 2), sp.asinh: sp.asinh(x), sp.asin: sp.asin(x / 3), sp.acos: sp.acos(x / 3),
    sp.atan: sp.atan(x), sp.atan2: sp.atan2(x, x - 3), sp.erf: sp.erf(x), sp.erfc: sp.erfc(x),
    sp.erfi: sp.erfi(x / 2), sp.Pow: sp.sqrt(x**2 + 1) + (x**2 + 2) ** sp.Rational(-3, 2),
    sp.Abs: sp.Abs(x), sp.sign: sp.sign(x), sp.Heaviside: sp.Heaviside(x) + sp.Heaviside(x - 1, 1),
    sp.Max: sp.Max(x, sp.Rational(1, 5)), sp.Min: sp.Min(x, sp.Rational(1, 5)),
    sp.Piecewise: sp.Piecewise((x**2, x > 0), (sp.sin(x), True)),
    _softplus: _softplus(x), _expit: _expit(x), Product: Product(x, x + 1), Dawson: Dawson(x), Expm1: Expm1(x),
    GramDeterminant: GramDeterminant(x + 2, x**2 + 1, x / 3),
    Phi: Phi(x), phi: phi(x), Phi2: Phi2(x, x / 2 + sp.Rational(1, 5), sp.Rational(-2, 5)),
    sp.hyper: sp.hyper([sp.Rational(1, 2), sp.Rational(1, 3)], [sp.Rational(3, 2)], x**2 / (x**2 + 1)),
}
POINTS = (-1.75, -0.5, 0.25, 0.75, 1.25)  # exactly representable, away from every kink, pole and branch cut
# float64 library functions are accurate to a few ulp; the samples' arguments are computed from exact points
# in a handful of float64 steps, with condition numbers ≤ ~10 at these points (|x·f'/f|, e.g. ≈ 4 for
# csc(x/3 + 2) at 1.25). So each evaluator is within ~1e-14 of the reference; 1e-13 leaves a 10× margin.
RTOL = 1e-13


# the rewrite helpers have no evalf of their own: the reference evaluates what they stand for
_MEANING = {Dawson: lambda z: sp.sqrt(sp.pi) / 2 * sp.exp(-z**2) * sp.erfi(z), Expm1: lambda a: sp.exp(a) - 1,
            Product: lambda a, b: a * b, GramDeterminant: lambda a, b, cc: a * b - cc**2,
            _softplus: lambda a: sp.log(1 + sp.exp(a)),
            _expit: lambda a: 1 / (1 + sp.exp(-a))}


def _reference(expr, point):
    for cls, meaning in _MEANING.items():
        expr = expr.replace(cls, meaning)
    return float(sp.N(expr.subs(x, sp.Float(point, 30)), 30))


@pytest.mark.parametrize("entry", vocabulary.VOCABULARY, ids=IDS)
def test_targets_agree_numerically(entry):
    expr = SAMPLES[entry.cls]
    assert any(type(node) is entry.cls for node in sp.preorder_traversal(expr))
    refs = np.array([_reference(expr, p) for p in POINTS])
    tol = RTOL * np.maximum(1.0, np.abs(refs))
    with mpmath.workdps(30):
        mp_fn = _mpmath_function(expr, (x,))
        mp_values = np.array([float(mpmath.re(mp_fn(mpmath.mpf(p)))) for p in POINTS])
    np.testing.assert_allclose(mp_values, refs, rtol=0, atol=tol.max(), err_msg="mpmath")
    np_values = vectorize(expr)(np.array(POINTS))
    np.testing.assert_allclose(np_values, refs, rtol=0, atol=tol.max(), err_msg="NumPy")
    with jax.enable_x64(True):
        jax_values = np.asarray(lower_elementwise(expr)(jnp.asarray(POINTS, jnp.float64)))
    np.testing.assert_allclose(jax_values, refs, rtol=0, atol=tol.max(), err_msg="JAX")
    if entry.python is not None:
        py_values = np.array([_validate._evaluate(expr, p).real for p in POINTS])
        np.testing.assert_allclose(py_values, refs, rtol=0, atol=tol.max(), err_msg="validator")


@pytest.mark.parametrize("entry", [f for f in vocabulary.VOCABULARY if not f.structural],
                         ids=[f.name for f in vocabulary.VOCABULARY if not f.structural])
def test_derivative_matches_numerical_differentiation(entry):
    # SymPy's derivative (the class's fdiff) against mpmath's numerical differentiation of the mpmath entry,
    # both at 30 digits: they agree to ~1e-25 at smooth points; 1e-20 is far above that and far below any error
    expr = SAMPLES[entry.cls]
    derivative = sp.diff(expr, x).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
    assert not derivative.has(sp.Derivative), f"{entry.name} has no derivative of its own"
    with mpmath.workdps(30):
        f, df = _mpmath_function(expr, (x,)), _mpmath_function(derivative, (x,))
        for p in POINTS:
            numeric = mpmath.diff(lambda t: mpmath.re(f(t)), mpmath.mpf(p))
            assert abs(mpmath.re(df(mpmath.mpf(p))) - numeric) <= mpmath.mpf(10) ** -20 * (1 + abs(numeric))


# ------------------------------------------------------------------------------- edge rule of Φ, φ, Φ₂ arguments


def test_phi_arguments_with_a_vanishing_denominator_take_their_limits():
    # c·(q1q2 − c²)^(−1/2) is ±inf at |ρ| = 1: Φ → 1 or 0, φ → 0; 0·(…)^(−1/2) stays 0: Φ(0) = 1/2
    w = q1 * q2 - c**2
    exprs = (Phi(c / sp.sqrt(w)), phi(c / sp.sqrt(w)), Phi2(c / sp.sqrt(w), (q1 - q2) / sp.sqrt(w), sp.Rational(1, 3)))
    fns = [lower_expression(e, (q1, q2, c)) for e in exprs]
    a = np.array([1.0, 1.0, 2.0, 1.0])
    b = np.array([1.0, 1.0, 2.0, 4.0])
    cc = np.array([1.0, -1.0, 0.0, 2.0])
    with jax.enable_x64(True):
        values = [np.asarray(f(a, b, cc)) for f in fns]
        grads = [jax.grad(lambda *v, f=f: jnp.sum(f(*v)), argnums=(0, 1, 2))(a, b, cc) for f in fns]
    np.testing.assert_array_equal(values[0], [1.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(values[1][[0, 1, 3]], [0.0, 0.0, 0.0])
    # Φ₂(+inf, ±inf or a finite k, ρ): Φ(k) or 1; Φ₂(−inf, ·) = 0; at (2, 2, 0): Φ₂(0, 0; 1/3) (interior)
    np.testing.assert_allclose(values[2], [0.5, 0.0, float(bvn_mpmath(0, 0, mpmath.mpf(1) / 3)), 0.0], atol=1e-15)
    for g in grads:
        assert all(bool(jnp.all(jnp.isfinite(gi))) for gi in g)


def test_gram_determinant_is_exactly_zero_at_the_clipped_edge():
    # under jit XLA contracts q1·q2 − c·c into an FMA, which leaves the rounding error of c² (~eps·q1q2) where
    # c = ±√(q1q2): √ of it is a √eps error in Φ(√(q1q2 − c²)/√q). The lowered form is exactly 0 there.
    fn = jax.jit(lower_expression(sp.sqrt(q1 * q2 - c**2), (q1, q2, c)))
    with jax.enable_x64(True):
        q = jnp.asarray([1e-4, 0.3, 7.0, 1e3])
        np.testing.assert_array_equal(np.asarray(fn(q, q, q)), 0.0)
        np.testing.assert_array_equal(np.asarray(fn(q, 2 * q, -jnp.sqrt(q * (2 * q)))), 0.0)
        np.testing.assert_allclose(np.asarray(fn(q, q, q / 2)), np.sqrt(0.75) * np.asarray(q), rtol=4e-16)


def test_safe_ratio():
    with jax.enable_x64(True):
        num = jnp.array([2.0, -2.0, 0.0, 3.0])
        den = jnp.array([0.0, 0.0, 0.0, 2.0])
        np.testing.assert_array_equal(np.asarray(safe.safe_ratio(num, den)), [np.inf, -np.inf, 0.0, 1.5])
        _, tangent = jax.jvp(safe.safe_ratio, (num, den), (jnp.ones(4), jnp.ones(4)))
        np.testing.assert_array_equal(np.asarray(tangent), [0.0, 0.0, 0.0, (2.0 - 3.0) / 4.0])


# --------------------------------------------------------------------------------------------- end to end


def _nngp_ntk_numpy(dual, x_in, depth):
    """The MLP recurrences of DESIGN.md §1 (w_std = 1, b_std = 0) in NumPy with the dual's own evaluation."""
    sigma = x_in @ x_in.T / x_in.shape[1]
    theta = sigma.copy()
    for _ in range(depth):
        d = np.diag(sigma)
        k, kdot = dual.evaluate(np.broadcast_to(d[:, None], sigma.shape), np.broadcast_to(d[None, :], sigma.shape),
                                sigma)
        sigma, theta = k, k + kdot * theta
    return sigma, theta


@pytest.mark.parametrize("text", ["sech(x)", "asinh(x)", "atan(x)", "log(1 + exp(x))"])
def test_end_to_end(text):
    dual = nk.derive(text)
    report = nk.verify(dual, n_samples=2**14)
    assert report.passed, str(report)
    x_in = np.random.default_rng(0).normal(size=(3, 4))
    with jax.enable_x64(True):
        k = nk.mlp(text, depth=2).kernel(x_in)
    nngp, ntk = _nngp_ntk_numpy(dual, x_in, 2)
    # both sides run the numeric dual's panelled rule (JAX and NumPy ports): each layer adds at most the
    # rule's error bound relative to √(V1V2) (~1, the kernel's scale here); 100× covers two layers and the
    # NTK's products
    tol = 100 * (dual.error_bound or 1e-12)
    np.testing.assert_allclose(np.asarray(k.nngp), nngp, rtol=0, atol=tol)
    np.testing.assert_allclose(np.asarray(k.ntk), ntk, rtol=0, atol=tol * 10)


# ----------------------------------------------------------------------------------------- extra_functions


class Squash(sp.Function):
    """A user's own function: tanh under another name, with SymPy derivative and NumPy evaluation (_imp_)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return 1 - Squash(self.args[0]) ** 2

    _imp_ = staticmethod(lambda a: np.tanh(np.asarray(a, dtype=float)))


def test_extra_functions_reach_kernel_verify_and_the_finite_network():
    dual = nk.derive(Squash(x))
    x_in = np.random.default_rng(1).normal(size=(3, 4))
    with pytest.raises(nk.LoweringError, match=r"Squash.*nk\.mlp"):
        nk.mlp(dual, depth=1).kernel(x_in)
    with pytest.raises(nk.LoweringError, match=r"Squash.*nk\.verify"):
        nk.verify(dual, n_samples=2**12)

    net = nk.mlp(dual, depth=1, extra_functions={Squash: jnp.tanh})
    by_name = nk.serial(nk.Dense(), nk.Activation(dual, extra_functions={"Squash": jnp.tanh}), nk.Dense())
    with jax.enable_x64(True):
        k = net.kernel(x_in)
        params = net.init(jax.random.key(0), x_in.shape, width=8)
        out = np.asarray(net.apply(params, x_in))
        out_name = np.asarray(by_name.apply(params, x_in))
        reference = np.asarray(nk.mlp("tanh(x)", depth=1).apply(params, x_in))
    nngp, ntk = _nngp_ntk_numpy(dual, x_in, 1)
    tol = 100 * (dual.error_bound or 1e-12)  # the same panelled rule in JAX and NumPy (test_end_to_end)
    np.testing.assert_allclose(np.asarray(k.nngp), nngp, rtol=0, atol=tol)
    np.testing.assert_allclose(np.asarray(k.ntk), ntk, rtol=0, atol=10 * tol)
    np.testing.assert_array_equal(out, reference)  # jnp.tanh both ways: the same operations
    np.testing.assert_array_equal(out_name, reference)
    assert nk.verify(dual, n_samples=2**12, extra_functions={Squash: jnp.tanh}).passed


def test_extra_functions_must_be_a_mapping_of_classes_to_functions():
    with pytest.raises(nk.LoweringError, match="extra_functions"):
        nk.Activation("relu", extra_functions={1: jnp.tanh})
    with pytest.raises(nk.LoweringError, match="JAX function"):
        nk.Activation("relu", extra_functions={Squash: 3})
