"""SymPy → JAX: the only bridge between ntksym's symbolic and numeric sides (STYLE.md principle 1).

`lower(dual)` turns a Dual into a jit-compiled f(q1, q2, c) -> (K, K̇) broadcasting over arrays;
`lower_elementwise(expr)` turns σ(x) into a JAX function of x. Translation is a table walk over the
expression tree (never lambdify: it execs generated code and maps erf to math.erf), with edge-safe
primitives (safe.py) and constants kept as Python numbers so that the dtype is chosen at trace time.
Numeric duals lower to the panelled Gauss–Legendre rule of Dual.evaluate, in JAX (panelled.py).
"""

from __future__ import annotations

import functools as ft
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from .._stable import Dawson, Expm1, GramDeterminant, Product, _stabilize
from ..dual import Dual
from ..errors import LoweringError
from ..special import Phi, Phi2, phi
from ..symbols import c, q, q1, q2, x
from . import panelled, safe, table

_RELATIONS = {
    sp.StrictGreaterThan: jnp.greater,
    sp.GreaterThan: jnp.greater_equal,
    sp.StrictLessThan: jnp.less,
    sp.LessThan: jnp.less_equal,
    sp.Equality: jnp.equal,
    sp.Unequality: jnp.not_equal,
}
SUPPORTED = table.supported()

EXTRA_FUNCTIONS_ADVICE = (
    "nk.lower(dual, extra_functions=...) or dual.lower(extra_functions=...); for a network, "
    "nk.Activation(dual, extra_functions=...) or nk.mlp(act, depth, extra_functions=...), which net.kernel, "
    "net.init/net.apply and the empirical NTK use; nk.verify(dual, extra_functions=...) for Monte Carlo"
)
"""Where a user passes JAX implementations of SymPy classes the table lacks (named in every LoweringError)."""


def _joint_variance_powers(m: sp.Mul) -> sp.Expr:
    """q1^e·q2^e → (q1·q2)^e: at the diagonal c = q1 = q2, c/√(q1q2) is exactly 1 in floating point,
    while c/(√q1·√q2) rounds to 1 − eps, which asin's infinite slope turns into a √eps error."""
    powers = m.as_powers_dict()
    e1, e2 = powers.get(q1, 0), powers.get(q2, 0)
    if e1 == 0 or e1 != e2 or e1.is_Integer:
        return m
    rest = sp.Mul(*(f for f in m.args if f.as_base_exp()[0] not in (q1, q2)))
    return rest * Product(q1, q2) ** e1


def _rewrite(expr: sp.Expr) -> sp.Expr:
    """Stable forms before printing: erfi through Dawson's integral, exponentials combined, √(q1q2)."""
    expr = _stabilize(expr)
    for cls, rewrite in table.REWRITES.items():
        if expr.has(cls):
            expr = expr.replace(cls, rewrite)
    if expr.has(sp.exp):
        # e^a·(e^b − 1) → e^(a+b) − e^a: a product of an overflowing and an underflowing factor is inf·0 = NaN
        expr = sp.powsimp(sp.expand(expr, power_base=False, multinomial=False), combine="exp")
        expr = expr.replace(lambda z: isinstance(z, sp.exp), lambda z: sp.exp(sp.cancel(z.args[0])))
    expr = expr.replace(lambda z: z.is_Add and z.has(sp.exp), _expm1)
    expr = expr.replace(_is_gram_multiple, _gram_determinant)
    return expr.replace(lambda z: z.is_Mul, _joint_variance_powers)


_GRAM = q1 * q2 - c**2


def _is_gram_multiple(z: sp.Basic) -> bool:
    """z = r·(q1q2 − c²) with r free of c (q1q2 − c², 1 − c²/(q1q2), …): a two-term sum in q1, q2 and c."""
    if not (z.is_Add and len(z.args) == 2 and z.free_symbols == {q1, q2, c}):
        return False
    return not sp.cancel(z / _GRAM).has(c)


def _gram_determinant(z: sp.Add) -> sp.Expr:
    return sp.cancel(z / _GRAM) * GramDeterminant(q1, q2, c)


def _expm1(add: sp.Add) -> sp.Expr:
    """k·e^a − k → k·expm1(a), for a number k (the pair of terms, wherever they sit in the sum)."""
    terms = list(add.args)
    for i, term in enumerate(terms):
        coeff, rest = term.as_coeff_Mul()
        if not isinstance(rest, sp.exp):
            continue
        for j, other in enumerate(terms):
            if j != i and other.is_number and (other + coeff).is_zero:
                terms[i], terms[j] = coeff * Expm1(rest.args[0]), sp.S.Zero
                return sp.Add(*terms)
    return add


def _walk(e: sp.Basic, env: dict, memo: dict, extra: dict):
    """Evaluate the SymPy tree e on JAX arrays (env: symbol → array), sharing common subexpressions."""
    if e in memo:
        return memo[e]
    if e.is_Symbol:
        if e not in env:
            raise LoweringError(f"the symbol {e} is not an input of the lowered function (inputs: {sorted(map(str, env))})")
        out = env[e]
    elif not e.free_symbols:
        if e.is_real is False or not e.is_number:
            raise LoweringError(f"the constant {e} is not a real number")
        out = float(e)  # a Python number (√2, π^(3/2), …): the array operands choose the dtype at trace time
    elif e.is_Add:
        out = ft.reduce(lambda a, b: a + b, (_walk(a, env, memo, extra) for a in e.args))
    elif e.is_Mul:
        out = _product(e, env, memo, extra)
    elif e.is_Pow:
        base = _walk(e.base, env, memo, extra)
        if not e.exp.is_Number:
            out = jnp.power(base, _walk(e.exp, env, memo, extra))
        else:
            out = safe.safe_power(base, float(e.exp))
    elif isinstance(e, sp.Piecewise):
        out = _piecewise(e, env, memo, extra)
    else:
        out = _function(e, env, memo, extra)
    memo[e] = out
    return out


def _extra_function(e: sp.Basic, extra: dict):
    if not extra:
        return None
    return extra.get(type(e), extra.get(type(e).__name__))


def _function(e: sp.Basic, env: dict, memo: dict, extra: dict):
    """A function node: a user's extra function, else the vocabulary's JAX table (ntksym.lower.table)."""
    fn = _extra_function(e, extra)
    if fn is not None:
        return fn(*(_walk(a, env, memo, extra) for a in e.args))
    cls = type(e)
    fn = table.FUNCTIONS.get(cls)
    if fn is None:
        name = getattr(e.func, "__name__", cls.__name__)
        raise LoweringError(
            f"cannot lower {name} (in {e}) to JAX; supported: {', '.join(SUPPORTED)}. Give a JAX implementation "
            f"as extra_functions={{{name}: jax_function}} (or keyed by the name '{name}'): "
            f"{EXTRA_FUNCTIONS_ADVICE}."
        )
    if cls in table.RATIO_ARGUMENTS:
        return fn(*(_ratio(a, env, memo, extra) for a in e.args))
    if cls in table.PARAMETER_ARGUMENTS:
        return _hyper(e, fn, env, memo, extra)
    if isinstance(e, sp.Heaviside) and len(e.args) > 1 and not e.args[1].is_number:
        raise LoweringError(f"cannot lower {e}: its value at zero, {e.args[1]}, must be a number")
    return fn(*(_walk(a, env, memo, extra) for a in e.args))


def _product(e: sp.Mul, env, memo, extra):
    """A product, with its radicals of negative exponent divided out rather than multiplied as reciprocals:
    c·(q1q2)^(−1/2) as c/√(q1q2) is exactly 1 on the diagonal (a division and √ are correctly rounded;
    rsqrt is not: elu's K̇ = … + asin(ρ)/2π came out 2.4e-9 low at q = 8.694395620582394, ρ = 1).
    A zero denominator gives 0, as safe.safe_power does (a 0/0 form at a degenerate covariance)."""
    if any(isinstance(a, sp.exp) for a in e.args) and any(isinstance(a, (Phi, phi, Phi2)) for a in e.args):
        return _scaled_product(e, env, memo, extra)
    up = [a for a in e.args if not (a.is_Pow and a.exp.is_Rational and a.exp < 0 and not a.exp.is_Integer)]
    down = [a.base ** -a.exp for a in e.args if a not in up]
    num = ft.reduce(lambda a, b: a * b, (_walk(a, env, memo, extra) for a in up)) if up else 1.0
    if not down:
        return num
    den = ft.reduce(lambda a, b: a * b, (_walk(a, env, memo, extra) for a in down))
    zero = den == 0
    return jnp.where(zero, 0, num / jnp.where(zero, 1, den))


def _log_special(f, env, memo, extra):
    """log Φ(z), log φ(z) or log Φ₂(h, k; ρ), −inf where the function is 0 (finite gradients: double where)."""
    dtype = jnp.result_type(*env.values())
    if isinstance(f, Phi):
        z = jnp.asarray(_ratio(f.args[0], env, memo, extra), dtype)
        finite = jnp.isfinite(z)
        value = jax.scipy.special.log_ndtr(jnp.where(finite, z, 0))
        return jnp.where(finite, value, jnp.where(z > 0, 0, -jnp.inf))
    if isinstance(f, phi):
        z = jnp.asarray(_ratio(f.args[0], env, memo, extra), dtype)
        finite = jnp.isfinite(z)
        zs = jnp.where(finite, z, 0)
        return jnp.where(finite, -zs * zs / 2 - 0.5 * float(np.log(2 * np.pi)), -jnp.inf)
    value = _walk(f, env, memo, extra)
    positive = value > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, value, 1)), -jnp.inf)


def _scaled_product(e: sp.Mul, env, memo, extra):
    """e^A·Φ(·)·… as exp(A + log Φ + …): the engine's truncated moments multiply an exponential that overflows
    by a Φ, φ or Φ₂ that underflows (elu's e^{q/2}·Φ(−√q) at q = 10⁶ is ∞·0 = NaN in float32; the product is
    1/√(2πq)). Φ's logarithm is log_ndtr, exact in the tail; Φ₂'s is the log of its value."""
    specials = [a for a in e.args if isinstance(a, (sp.exp, Phi, phi, Phi2))]
    rest = sp.Mul(*(a for a in e.args if a not in specials))
    total = 0.0
    for f in specials:
        total = total + (_walk(f.args[0], env, memo, extra) if isinstance(f, sp.exp) else
                         _log_special(f, env, memo, extra))
    total = jnp.asarray(total, jnp.result_type(*env.values()))
    finite = jnp.isfinite(total)
    scale = jnp.where(finite, jnp.exp(jnp.where(finite, total, 0)), jnp.where(total > 0, jnp.inf, 0))
    return scale if rest == 1 else _walk(rest, env, memo, extra) * scale


def _ratio(arg: sp.Expr, env, memo, extra):
    """arg as num/den (SymPy's fraction), den = 0 giving ±inf (safe.safe_ratio): the arguments of Φ, φ, Φ₂
    are num·(q1q2 − c²)^(−1/2) and the like, infinite where the covariance is singular."""
    num, den = _cancel_radicals(*sp.fraction(sp.together(arg)))
    # √q1·√q2 → √(q1q2) again (fraction() splits the joint power): ρ = c/√(q1q2) is then exactly ±1 on the
    # diagonal, where Φ₂(h, k; ρ) has √(1 − ρ) sensitivity (elu's NTK was 2e-9 off at x2 = x1)
    num, den = (z.replace(lambda m: m.is_Mul, _joint_variance_powers) for z in (num, den))
    if den == 1 or not den.free_symbols:
        return _walk(num / den, env, memo, extra)
    return safe.safe_ratio(_walk(num, env, memo, extra), _walk(den, env, memo, extra))


def _cancel_radicals(num: sp.Expr, den: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """num/den with each radical B^e of den (0 < e < 1) that divides num cancelled: (c² − q1q2)/√(q1q2 − c²) →
    −√(q1q2 − c²). Otherwise num and den round independently at B = 0 (XLA contracts c·c − q1·q2 into an FMA),
    and 10⁻²⁴/0 would be an infinite ratio where the true one is 0."""
    for factor in sp.Mul.make_args(den):
        base, e = factor.as_base_exp()
        if not (e.is_Rational and 0 < e < 1 and base.free_symbols):
            continue
        quotient = sp.cancel(num / base)
        if sp.fraction(quotient)[1].free_symbols.isdisjoint(base.free_symbols):
            num, den = quotient * base ** (1 - e), den / factor
    return num, den


def _hyper(e: sp.hyper, fn, env, memo, extra):
    """hyper((a, b), (c,), z) → fn(a, b, c, z) with a, b, c Python floats (only ₂F₁ with numeric parameters)."""
    ap, bq, z = e.args
    if len(ap) != 2 or len(bq) != 1 or not all(p.is_number and p.is_real for p in (*ap, *bq)):
        raise LoweringError(
            f"cannot lower {e}: only ₂F₁ with real numeric parameters, hyper((a, b), (c,), z), has a JAX "
            f"implementation; give another as extra_functions={{hyper: jax_function}}: {EXTRA_FUNCTIONS_ADVICE}")
    return fn(float(ap[0]), float(ap[1]), float(bq[0]), _walk(z, env, memo, extra))


def _condition(cond, env, memo, extra):
    if cond is sp.true:
        return True
    if isinstance(cond, sp.And):
        return ft.reduce(jnp.logical_and, (_condition(a, env, memo, extra) for a in cond.args))
    if isinstance(cond, sp.Or):
        return ft.reduce(jnp.logical_or, (_condition(a, env, memo, extra) for a in cond.args))
    if type(cond) in _RELATIONS:
        return _RELATIONS[type(cond)](_walk(cond.lhs, env, memo, extra), _walk(cond.rhs, env, memo, extra))
    raise LoweringError(f"cannot lower the Piecewise condition {cond}")


def _inside_point(region: sp.Set):
    """A point strictly inside `region` (a set of reals) where that is easy to find, else None.

    Interior points keep a branch away from its own endpoint singularities (1/x on x > 0 is evaluated at 1)."""
    if isinstance(region, sp.Union):
        return next((p for p in map(_inside_point, region.args) if p is not None), None)
    if isinstance(region, sp.FiniteSet):
        return next((float(p) for p in region if p.is_real), None)
    if isinstance(region, sp.Interval):
        lo, hi = region.start, region.end
        if lo.is_finite and hi.is_finite:
            return float((lo + hi) / 2)
        if hi.is_finite:
            return float(hi - 1)
        if lo.is_finite:
            return float(lo + 1)
        return 0.0
    return None


def _branch_points(e: sp.Piecewise, s: sp.Symbol) -> list:
    """For a Piecewise in the one variable s, a point inside each branch's own region (conditions are
    tried in order, so branch i holds where cond_i and no earlier condition does); None where unknown."""
    points, taken = [], sp.S.EmptySet
    for _, cond in e.args:
        try:
            region = cond.as_set() if cond is not sp.true else sp.S.Reals
            own = sp.Complement(sp.Intersection(region, sp.S.Reals), taken)
            points.append(_inside_point(own))
            taken = sp.Union(taken, region)
        except (NotImplementedError, TypeError, ValueError, AttributeError):
            points.append(None)
            taken = sp.S.Reals  # regions unknown from here on: no later branch gets a point
    return points


def _piecewise(e: sp.Piecewise, env, memo, extra):
    """Piecewise as nested jnp.where, with each branch evaluated on inputs moved into its own region
    ("double where"): an unselected branch then stays finite, so its zero cotangent cannot meet an
    infinite local derivative (elu's e^x at x = 100 in float32 gave ∞·0 = NaN gradients)."""
    variables = [s for s in e.free_symbols if s in env]
    points = _branch_points(e, variables[0]) if len(variables) == 1 else [None] * len(e.args)
    masks, taken = [], None
    for _, cond in e.args:
        hit = _condition(cond, env, memo, extra)
        masks.append(hit if taken is None else jnp.logical_and(hit, jnp.logical_not(taken)))
        taken = hit if taken is None else jnp.logical_or(taken, hit)
    out = None
    for (value, cond), mask, point in reversed(list(zip(e.args, masks, points))):
        if point is None or not value.has(variables[0]):
            v = _walk(value, env, memo, extra)
        else:
            s = variables[0]
            moved = dict(env)
            moved[s] = jnp.where(mask, env[s], jnp.asarray(point, env[s].dtype))
            v = _walk(value, moved, {}, extra)
        out = v if out is None else jnp.where(mask, v, out)
    return out


def _heaviside_products(expr: sp.Expr) -> sp.Expr:
    """H(g)·f → Piecewise((f, g > 0), (H(0)·f, g = 0), (0, otherwise)) for univariate g, so that
    _piecewise's double where protects f where H is zero (e^x·H(−x) at x = 100: ∞·0 in the product)."""

    def split(m: sp.Mul) -> sp.Expr:
        steps = [f for f in m.args if isinstance(f, sp.Heaviside) and len(f.args[0].free_symbols) == 1]
        if not steps:
            return m
        h = steps[0]
        rest = m / h
        at_zero = h.args[1] if len(h.args) > 1 else sp.S.Half
        g = h.args[0]
        return sp.Piecewise((rest, g > 0), (at_zero * rest, sp.Eq(g, 0)), (0, True))

    return expr.replace(lambda z: z.is_Mul and z.has(sp.Heaviside), split)


def lower_expression(expr: sp.Expr, symbols, extra_functions=None):
    """A JAX function of `symbols` evaluating expr (not jitted; compose and jit at the call site)."""
    expr = _rewrite(sp.sympify(expr))
    extra = dict(extra_functions or {})
    symbols = tuple(symbols)

    def fn(*args):
        dtype = jnp.result_type(*args, float)
        env = {s: jnp.asarray(a, dtype) for s, a in zip(symbols, args)}
        value = _walk(expr, env, {}, extra)
        return jnp.broadcast_to(jnp.asarray(value, dtype), jnp.broadcast_shapes(*(jnp.shape(a) for a in args)))

    # translate once now, so that an unsupported function fails at lowering time, not inside jit
    jax.eval_shape(fn, *(jax.ShapeDtypeStruct((), jnp.float32) for _ in symbols))
    return fn


def lower_elementwise(expr: sp.Expr, extra_functions=None):
    """σ(x) as a jit-compatible JAX function, elementwise; finite gradients wherever σ' is finite
    (Heaviside products become Piecewise, whose branches are evaluated inside their own regions)."""
    return lower_expression(_heaviside_products(sp.sympify(expr)), (x,), extra_functions)


# ------------------------------------------------------------------------------------ lowered duals


@dataclass(frozen=True)
class LoweredDual:
    """f(q1, q2, c) -> (K, K̇) in JAX, broadcasting; K̇ is None where the dual has none. V(q) too."""

    dual: Dual
    _kernel: object = field(repr=False)
    _variance: object = field(repr=False)

    def __call__(self, q1_value, q2_value, c_value):
        return self._kernel(q1_value, q2_value, c_value)

    def V(self, q_value):
        return self._variance(q_value)


def _clip_covariance(q1v, q2v, cv):
    """Variances ≥ 0 and c into [−√(q1q2), √(q1q2)]: inputs from floating-point recurrences can leave the
    valid set by rounding (|ρ| = 1 + 1e-7 in float32)."""
    q1v, q2v = jnp.maximum(q1v, 0), jnp.maximum(q2v, 0)
    bound = safe.safe_sqrt(q1v * q2v)
    # |ρ| within 8 ulps of 1 is ρ = ±1 exactly: an input with itself arrives as c = q ± 1 ulp when XLA
    # contracts the Dense maps of nngp and of the variances differently, and duals whose K̇ behaves like
    # √(1 − ρ) there (elu, relu: σ' jumps) turn the ulp into a 2e-8 relative error of the NTK
    near = jnp.abs(cv) >= bound * (1 - 8 * jnp.finfo(bound.dtype).eps)
    cv = jnp.where(near, jnp.sign(cv) * bound, cv)
    return q1v, q2v, jnp.clip(cv, -bound, bound)


def _exact_functions(dual: Dual, extra):
    k_fn = lower_expression(dual.K, (q1, q2, c), extra)
    kdot_fn = None if dual.Kdot is None else lower_expression(dual.Kdot, (q1, q2, c), extra)
    v_fn = lower_expression(dual.V, (q,), extra)

    def kernel(q1v, q2v, cv):
        q1v, q2v, cv = _clip_covariance(*jnp.broadcast_arrays(*_as_float(q1v, q2v, cv)))
        return k_fn(q1v, q2v, cv), (None if kdot_fn is None else kdot_fn(q1v, q2v, cv))

    def variance(qv):
        (qv,) = _as_float(qv)
        return v_fn(jnp.maximum(qv, 0))

    return kernel, variance


def _as_float(*args):
    dtype = jnp.result_type(*args, float)
    return tuple(jnp.asarray(a, dtype) for a in args)


GAUSS_HERMITE_DEGREE = 96
"""Nodes per dimension of the optional tensor Gauss–Hermite rule (lower(..., rule="gauss_hermite")). It converges
geometrically only within σ's strip of analyticity scaled by 1/√q: for tanh 2e-9 (K) and 4e-8 (K̇) at q ~ 1,
but 4.5e-2 and 0.89 (relative) at q = 100; kinks (elu, selu) converge algebraically. Faster, not accurate."""

RULES = ("panelled", "gauss_hermite")


def _gauss_hermite_functions(fs, degree: int):
    nodes, weights = np.polynomial.hermite_e.hermegauss(degree)
    weights = weights / np.sqrt(2 * np.pi)

    def expect2(q1v, q2v, cv):
        z = jnp.asarray(nodes, q1v.dtype).reshape((1,) * q1v.ndim + (-1,))
        w = jnp.asarray(weights, q1v.dtype).reshape((1,) * q1v.ndim + (-1,))
        r1, r2 = safe.safe_sqrt(q1v), safe.safe_sqrt(q2v)
        denom = r1 * r2
        rho = jnp.clip(jnp.where(denom > 0, cv / jnp.where(denom > 0, denom, 1), 0), -1, 1)
        s = safe.safe_sqrt(1 - rho * rho)

        def outer(totals, zw):
            z1, w1 = zw
            v = r2[..., None] * (rho[..., None] * z1 + s[..., None] * z)
            return tuple(t + w1 * f(r1 * z1) * jnp.sum(w * f(v), axis=-1) for t, f in zip(totals, fs)), None

        zeros = tuple(jnp.zeros_like(q1v) for _ in fs)
        totals, _ = jax.lax.scan(outer, zeros, (jnp.asarray(nodes, q1v.dtype), jnp.asarray(weights, q1v.dtype)))
        return totals

    def variance(qv):
        z = jnp.asarray(nodes, qv.dtype).reshape((1,) * qv.ndim + (-1,))
        w = jnp.asarray(weights, qv.dtype).reshape((1,) * qv.ndim + (-1,))
        return jnp.sum(w * fs[0](safe.safe_sqrt(qv)[..., None] * z) ** 2, axis=-1)

    return expect2, variance


def _panelled_functions(dual: Dual, fs):
    exprs = (dual.numeric.sigma,) if len(fs) == 1 else (dual.numeric.sigma, dual.numeric.dsigma)
    features, sigma_features = panelled.Features.of(*exprs), panelled.Features.of(dual.numeric.sigma)
    order = dual.numeric.order

    def expect2(q1v, q2v, cv):
        return panelled.expect_2d(fs, features, *panelled.geometry(q1v, q2v, cv), order)

    def variance(qv):
        return panelled.expect_1d(fs[0], sigma_features, safe.safe_sqrt(qv), 2, order)

    return expect2, variance


def _numeric_functions(dual: Dual, extra, rule: str, degree: int):
    fs = (lower_elementwise(dual.activation.expr, extra),)
    if dual.Kdot is not None:
        fs += (lower_elementwise(dual.numeric.dsigma, extra),)
    expect2, v_fn = _panelled_functions(dual, fs) if rule == "panelled" else _gauss_hermite_functions(fs, degree)

    def kernel(q1v, q2v, cv):
        q1v, q2v, cv = _clip_covariance(*jnp.broadcast_arrays(*_as_float(q1v, q2v, cv)))
        # both rules treat u and v differently: order them (larger variance outside) so that
        # K(q1, q2, c) = K(q2, q1, c) holds exactly and Gram matrices come out symmetric
        q1v, q2v = jnp.maximum(q1v, q2v), jnp.minimum(q1v, q2v)
        values = expect2(q1v, q2v, cv)
        return values[0], (values[1] if len(values) > 1 else None)

    def variance(qv):
        (qv,) = _as_float(qv)
        return v_fn(jnp.maximum(qv, 0))

    return kernel, variance


def lower(
    dual: Dual, *, extra_functions=None, rule: str = "panelled", degree: int = GAUSS_HERMITE_DEGREE
) -> LoweredDual:
    """Lower a Dual to jit-compiled JAX: f(q1, q2, c) -> (K, K̇), and f.V(q).

    Exact duals print their closed forms through the edge-safe table. Numeric duals become quadrature over
    (u, v) = (√q1 z1, √q2(ρz1 + √(1−ρ²) z2)): by default ("panelled") the rule of Dual.evaluate — panels at
    σ's kinks and transitions scaled by √q, Gauss–Legendre on each — accurate to ~1e-9 of √(V1V2) at any
    variance; rule="gauss_hermite" is `degree` Gauss–Hermite nodes per dimension, about 3× faster and
    accurate only near q ~ 1 (GAUSS_HERMITE_DEGREE). Functions translate by the vocabulary's JAX table
    (ntksym.lower.table). Raises LoweringError, naming the function, if an expression uses one the table lacks
    (add it with extra_functions={SymPyClass: jax_function}; EXTRA_FUNCTIONS_ADVICE lists where else it goes)."""
    if not isinstance(dual, Dual):
        raise LoweringError(f"lower() takes an ntksym Dual (from nk.derive), got {type(dual).__name__}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    extra = {} if extra_functions is None else dict(extra_functions)
    if dual.exact:
        kernel, variance = _exact_functions(dual, extra)
    else:
        kernel, variance = _numeric_functions(dual, extra, rule, degree)
    return LoweredDual(dual, jax.jit(kernel), jax.jit(variance))


__all__ = ["LoweredDual", "lower", "lower_elementwise", "lower_expression", "SUPPORTED", "EXTRA_FUNCTIONS_ADVICE",
           "Product", "Dawson", "Expm1", "GramDeterminant"]
