"""The finite-width network (ntksym.empirical): shapes, neural-tangents' conventions, and independent checks.

* Equivalence: `apply` against a forward pass written here in NumPy (loops over filter patches, explicit
  SAME padding), same params, float64; the tolerance is k·eps64 of the sum of absolute terms.
* Statistics: over independent initialisations of a relu MLP in NTK parameterization, the sample covariance
  of the outputs matches the NNGP recurrence of survey eq. (58)–(61), computed here in NumPy with the
  arc-cosine kernel written out (Cho & Saul 2009), judged by z-scores at a family-wise false-alarm rate.
* Empirical kernels (survey eq. (3), §5.2): the two NTK methods (Jacobian contraction, NTK–vector products)
  agree to rounding; both equal the NTK of a one-hidden-layer network written out by hand in NumPy, and one
  from a Jacobian by central finite differences; the Monte Carlo mean over initialisations matches the
  analytic kernels of ntksym.kernel within t·SE, and rejects a wrong one.
"""

from __future__ import annotations

import dataclasses
import functools as ft
import inspect
import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from helpers import (
    assert_close_scaled,
    dtype_tolerance,
    familywise_z,
    float64_tolerance,
)
from scipy.special import erf as np_erf
from scipy.stats import t as student_t

from ntksym import empirical, layers
from ntksym.empirical import (
    MonteCarloKernel,
    NetworkError,
    ShapeError,
    apply,
    init,
    monte_carlo_kernel,
    nngp,
    ntk,
)
from ntksym.errors import NtksymError
from ntksym.kernel import kernel
from ntksym.layers import AvgPool, Conv, Dense, Flatten, GlobalAvgPool, mlp, serial


@ft.cache
def relu():
    return layers.Activation("relu")


@ft.cache
def erf():
    return layers.Activation("erf")


def small_mlp(parameterization="ntk"):
    return serial(Dense(6, 1.5, 0.1, parameterization), relu(), Dense(4, 1.2, 0.3, parameterization), erf(),
                  Dense(2, 0.9, 0.2, parameterization))


def small_cnn(parameterization="ntk"):
    """Strided SAME conv, SAME pooling, rectangular VALID conv, VALID strided pooling, both read-outs."""
    return serial(
        Conv(5, (3, 3), (2, 1), "SAME", 1.3, 0.2, parameterization), relu(),
        AvgPool((2, 2), None, "SAME"),
        Conv(4, (2, 3), None, "VALID", 1.1, 0.1, parameterization), erf(),
        AvgPool((2, 1), (2, 1), "VALID"),
        Flatten(), Dense(3, 0.8, 0.3, parameterization),
    )


def gap_cnn():
    return serial(Conv(3, (2,), (1,), "SAME", 1.0, 0.5), relu(), GlobalAvgPool(), Dense(2, 1.0, 0.1))


def key(seed):
    """An rbg key: XLA compiles its normal sampler several times faster than threefry's on CPU, and init does
    not depend on the key's implementation (the stax-convention test below uses the default threefry)."""
    return jr.key(seed, impl="rbg")


def shapes(params):
    return jax.tree.map(lambda a: a.shape, params)


# --------------------------------------------------------------------------------------------------
# Shapes and dtypes
# --------------------------------------------------------------------------------------------------


def abstract_init(net, x_shape, width=None, dtype=None):
    """init's output shapes and dtypes, traced without drawing (no compilation)."""
    return jax.eval_shape(lambda k: init(net, k, x_shape, width=width, dtype=dtype), key(0))


def abstract_apply(net, params, x_shape, dtype):
    return jax.eval_shape(lambda p, x: apply(net, p, x), params, jax.ShapeDtypeStruct(x_shape, dtype))


def test_mlp_parameter_shapes_with_and_without_width():
    net = mlp(relu().dual, 2, 1.5, 0.1, out_dim=3)
    assert shapes(abstract_init(net, (4, 5))) == (((5, 1), (1, 1)), (), ((1, 1), (1, 1)), (), ((1, 3), (1, 3)))
    wide = abstract_init(net, (4, 5), width=32)
    assert shapes(wide) == (((5, 32), (1, 32)), (), ((32, 32), (1, 32)), (), ((32, 3), (1, 3)))
    assert abstract_apply(net, wide, (4, 5), jnp.float32).shape == (4, 3)


def test_cnn_parameter_and_output_shapes():
    net = small_cnn()
    x_shape = (2, 9, 8, 3)
    # Conv SAME strides (2,1): 9x8 -> 5x8; AvgPool 2x2 SAME stride 1: 5x8; Conv (2,3) VALID: 4x6;
    # AvgPool (2,1) stride (2,1) VALID: 2x6; Flatten: 2*6*channels.
    assert shapes(abstract_init(net, x_shape)) == (
        ((3, 3, 3, 5), (1, 1, 1, 5)), (), (), ((2, 3, 5, 4), (1, 1, 1, 4)), (), (), (), ((48, 3), (1, 3)))
    wide = abstract_init(net, x_shape, width=16)
    assert shapes(wide) == (
        ((3, 3, 3, 16), (1, 1, 1, 16)), (), (), ((2, 3, 16, 16), (1, 1, 1, 16)), (), (), (), ((192, 3), (1, 3)))
    assert abstract_apply(net, wide, x_shape, jnp.float32).shape == (2, 3)
    gap = gap_cnn()  # 1-D conv, GlobalAvgPool
    assert abstract_apply(gap, abstract_init(gap, (3, 7, 2), width=8), (3, 7, 2), jnp.float32).shape == (3, 2)


def test_width_keeps_the_last_linear_layer_even_when_it_is_not_last():
    net = serial(Conv(2, (3, 3)), relu(), Conv(7, (1, 1)), GlobalAvgPool())
    params = abstract_init(net, (1, 4, 4, 3), width=5)
    assert shapes(params)[0][0] == (3, 3, 3, 5) and shapes(params)[2][0] == (1, 1, 5, 7)
    assert abstract_apply(net, params, (1, 4, 4, 3), jnp.float32).shape == (1, 7)


@pytest.mark.parametrize("net_fn, x_shape", [(small_mlp, (3, 5)), (small_cnn, (2, 9, 8, 3)), (gap_cnn, (2, 6, 2))])
def test_dtype_follows_the_input(float_dtype, net_fn, x_shape):
    net = net_fn()
    params = abstract_init(net, x_shape)  # JAX's default float: float64 iff x64 is on
    assert all(leaf.dtype == float_dtype for leaf in jax.tree.leaves(params))
    assert abstract_apply(net, params, x_shape, float_dtype).dtype == float_dtype
    # float32 inputs with float64 params (or the reverse) compute in the input's dtype
    if float_dtype == np.float64:
        assert abstract_apply(net, params, x_shape, np.float32).dtype == np.float32
        params32 = abstract_init(net, x_shape, dtype=np.float32)
        assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(params32))
        assert abstract_apply(net, params32, x_shape, np.float64).dtype == np.float64


def test_float32_forward_pass_runs_and_is_finite():
    net = small_cnn()
    params = init(net, key(3), (2, 9, 8, 3))
    out = apply(net, params, jr.normal(key(4), (2, 9, 8, 3)))
    assert out.dtype == jnp.float32 and out.shape == (2, 3) and bool(jnp.all(jnp.isfinite(out)))


def test_init_and_apply_under_jit():
    net = serial(Dense(3, 1.5, 0.1), relu(), Dense(2, 1.0, 0.2))
    x = jr.normal(key(5), (3, 4))
    params = jax.jit(lambda k: init(net, k, (3, 4)))(key(6))
    for eager, traced in zip(jax.tree.leaves(init(net, key(6), (3, 4))), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(eager), np.asarray(traced))
    # rtol: jit may fuse a*b + c into one FMA, a few float32 roundings apart from the eager result
    np.testing.assert_allclose(np.asarray(jax.jit(ft.partial(apply, net))(params, x)),
                               np.asarray(apply(net, params, x)), rtol=1e-5)
    # the front end on Serial hands off to this module
    front = net.apply(net.init(key(6), (3, 4)), x)
    np.testing.assert_array_equal(np.asarray(front), np.asarray(apply(net, params, x)))
    # vmap over keys: see sample_outputs in the statistical test


def test_draws_follow_stax_key_splitting():
    """jax.example_libraries.stax.serial: `key, layer_key = split(key)` per layer; Dense/Conv split layer_key into
    (W, b); W, b ~ N(0, 1) in NTK parameterization, W·w_std/√fan_in and b·b_std in standard. Same numbers as
    neural-tangents 0.6.5's stax init_fn for the same key and input shape."""
    threefry = jr.PRNGKey(11)  # neural-tangents' examples use the legacy uint32 threefry keys
    for parameterization in ("ntk", "standard"):
        net = serial(Dense(4, 1.5, 0.1, parameterization), relu(), Dense(4, 1.2, 0.3, parameterization))
        params = init(net, threefry, (3, 4))
        k, fan_in = threefry, 4
        for layer, p in zip(net.layers, params):
            k, layer_key = jr.split(k)
            if not isinstance(layer, Dense):
                assert p == ()
                continue
            k_W, k_b = jr.split(layer_key)
            W, b = jr.normal(k_W, (fan_in, layer.out_dim)), jr.normal(k_b, (1, layer.out_dim))
            if parameterization == "standard":
                W, b = W * (layer.w_std / fan_in**0.5), b * layer.b_std
            np.testing.assert_array_equal(np.asarray(p[0]), np.asarray(W))
            np.testing.assert_array_equal(np.asarray(p[1]), np.asarray(b))
            fan_in = layer.out_dim


# --------------------------------------------------------------------------------------------------
# Equivalence with an independent NumPy forward pass (float64)
# --------------------------------------------------------------------------------------------------


def _same_pads(size, window, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def _windows(x, window, strides, padding):
    """Zero-padded windows of an NHWC (or NWC) array: the output spatial shape and its windows in C order."""
    n = len(window)
    pads = [(0, 0)] + [(_same_pads(s, w, st) if padding == "SAME" else (0, 0))
                       for s, w, st in zip(x.shape[1:-1], window, strides)] + [(0, 0)]
    xp = np.pad(x, pads)
    out = tuple((xp.shape[1 + i] - window[i]) // strides[i] + 1 for i in range(n))
    patches = [xp[(slice(None), *(slice(j * st, j * st + w) for j, w, st in zip(index, window, strides)), slice(None))]
               for index in np.ndindex(*out)]
    return out, patches


def numpy_forward(net, params, x, absolute=False):
    """The network in NumPy. absolute=True: |W|, |b|, |x| and σ → |·| (relu and erf are 1-Lipschitz-ish with
    σ(0) = 0), so the result bounds the sum of absolute terms behind every output (the rounding scale)."""
    a = np.abs if absolute else (lambda v: v)
    x = a(np.asarray(x, np.float64))
    for layer, p in zip(net.layers, params):
        if isinstance(layer, Dense):
            W, b = (a(np.asarray(t, np.float64)) for t in p)
            if layer.parameterization == "ntk":
                x = layer.w_std / math.sqrt(x.shape[-1]) * (x @ W) + layer.b_std * b
            else:
                x = x @ W + b
        elif isinstance(layer, Conv):
            W, b = (a(np.asarray(t, np.float64)) for t in p)
            strides = layer.strides or (1,) * len(layer.filter_shape)
            fan_in = x.shape[-1] * math.prod(layer.filter_shape)
            out, patches = _windows(x, layer.filter_shape, strides, layer.padding)
            y = np.stack([np.tensordot(patch, W, axes=(range(1, patch.ndim), range(W.ndim - 1))) for patch in patches],
                         axis=1).reshape(x.shape[0], *out, W.shape[-1])
            x = (layer.w_std / math.sqrt(fan_in) * y + layer.b_std * b) if layer.parameterization == "ntk" else y + b
        elif isinstance(layer, AvgPool):
            strides = layer.strides or (1,) * len(layer.window_shape)  # neural-tangents' default stride is 1
            out, patches = _windows(x, layer.window_shape, strides, layer.padding)
            sums = np.stack([patch.sum(axis=tuple(range(1, patch.ndim - 1))) for patch in patches], axis=1)
            x = sums.reshape(x.shape[0], *out, x.shape[-1]) / math.prod(layer.window_shape)
        elif isinstance(layer, GlobalAvgPool):
            x = x.mean(axis=tuple(range(1, x.ndim - 1)))
        elif isinstance(layer, Flatten):
            x = x.reshape(x.shape[0], -1)
        elif layer is relu():
            x = x if absolute else np.maximum(x, 0.0)
        elif layer is erf():
            x = x if absolute else np_erf(x)
        else:
            raise AssertionError(f"no NumPy reference for {layer}")
    return x


def rounding_steps(net, x_shape):
    """A bound on the rounding steps along any path to an output: fan-in (+2 for scale and bias) per linear
    layer, window size (+1) per pooling, and 4 per activation (erf/relu are accurate to a few eps)."""
    steps, shape = 0, x_shape
    for layer in net.layers:
        if isinstance(layer, Dense):
            steps, shape = steps + shape[-1] + 2, (*shape[:-1], layer.out_dim)
        elif isinstance(layer, Conv):
            steps += shape[-1] * math.prod(layer.filter_shape) + 2
            shape = (*shape[:-1], layer.out_chan)
        elif isinstance(layer, AvgPool):
            steps += math.prod(layer.window_shape) + 1
        elif isinstance(layer, (GlobalAvgPool, Flatten)):
            steps += math.prod(shape[1:-1]) + 1
            shape = (shape[0], math.prod(shape[1:]))
        else:
            steps += 4
    return steps


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("net_fn, x_shape, width", [
    (small_mlp, (4, 5), None), (small_cnn, (2, 9, 8, 3), 6), (gap_cnn, (3, 7, 2), 4),
])
def test_apply_matches_numpy_forward(net_fn, x_shape, width, parameterization):
    with jax.enable_x64(True):
        net = net_fn() if net_fn is gap_cnn else net_fn(parameterization)
        params = init(net, key(8), x_shape, width=width)
        x = np.random.default_rng(9).normal(size=x_shape)
        value = apply(net, params, jnp.asarray(x))
        assert value.dtype == jnp.float64
    reference = numpy_forward(net, params, x)
    scale = numpy_forward(net, params, x, absolute=True)
    # Each path to an output has at most `rounding_steps` roundings, each ≤ eps64 relative to the sum of
    # absolute terms it acts on; erf' ≤ 2/√π amplifies errors passed through it (condition (2/√π)^depth).
    n_erf = sum(layer is erf() for layer in net.layers)
    rtol = float64_tolerance(rounding_steps(net, x_shape), condition=(2 / math.sqrt(math.pi)) ** n_erf)
    assert_close_scaled(value, reference, scale, rtol=rtol,
                        reason="float64 rounding: k·eps64 of the absolute-term scale, k = rounding steps per path")


# --------------------------------------------------------------------------------------------------
# Statistics: output covariance over initialisations vs the NNGP recurrence, survey eq. (58)–(61)
# --------------------------------------------------------------------------------------------------


def relu_arccos_K(S):
    """E[relu(u) relu(v)] for (u, v) ~ N(0, [[S_ii, S_ij], [S_ij, S_jj]]), all pairs: Cho & Saul's arc-cosine
    kernel of degree 1, √(q_i q_j)/(2π)·(sin θ + (π − θ) cos θ), θ = arccos(S_ij/√(q_i q_j))."""
    q = np.sqrt(np.diag(S))
    rho = np.clip(S / np.outer(q, q), -1.0, 1.0)
    theta = np.arccos(rho)
    return np.outer(q, q) / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))


def nngp_relu_mlp(X, depth, w_std, b_std):
    """Σ⁰ = x·x'/d; Σ¹ = w²Σ⁰ + b²; Σ^{l+1} = w²K_relu(Σ^l) + b² (survey eq. (58)–(61)): the NNGP of
    mlp(relu, depth), depth hidden layers."""
    S = w_std**2 * (X @ X.T) / X.shape[1] + b_std**2
    for _ in range(depth):
        S = w_std**2 * relu_arccos_K(S) + b_std**2
    return S


def _inputs():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(3, 5))
    X[1] *= 1.7                      # a larger norm
    X[2] = 0.8 * X[0] + 0.3 * X[2]   # strongly correlated with x1
    return X


def sample_outputs(net, X, width, n_inits, seed_key, dtype):
    """f(X) for n_inits independent initialisations (one output unit), shape (n_inits, len(X))."""
    x = jnp.asarray(X, dtype)

    @jax.jit
    def outputs(keys):
        return jax.vmap(lambda k: apply(net, init(net, k, x.shape, width=width, dtype=dtype), x)[:, 0])(keys)

    keys = jr.split(seed_key, n_inits)
    chunk = 2000
    return np.concatenate([np.asarray(outputs(keys[i:i + chunk]), np.float64) for i in range(0, n_inits, chunk)])


def covariance_z_scores(F, S):
    """z-scores of the 2nd moments E[f_i f_j] (i ≤ j) against S; E f = 0 exactly (W, b symmetric), so the
    raw moment is unbiased and its standard error is std(f_i f_j)/√M from the same sample."""
    i, j = np.triu_indices(F.shape[1])
    products = F[:, i] * F[:, j]
    estimate = products.mean(axis=0)
    se = products.std(axis=0, ddof=1) / math.sqrt(F.shape[0])
    return (estimate - S[i, j]) / se


ALPHA = 1e-3  # family-wise false-alarm rate of each statistical test (Bonferroni over its entries)


def test_output_covariance_matches_nngp_recurrence():
    """mlp(relu, depth=2): three Dense layers, NTK parameterization, width 64, 8000 seeded inits (float32).

    Finite width: E[f f'] = w²·E[K_relu(Σ̂)] + b², where Σ̂ (the empirical covariance of the last hidden
    pre-activations) is unbiased for Σ; the O(1/n) bias from K's curvature is ≤ 0.3% of Σ at n = 64
    (measured by simulating E[K_relu(Σ̂)] directly, 20000 replicas per width 64–512; diagonal entries are
    exactly unbiased since V_relu(q) = q/2 is linear), below 0.25 of the ~1.3% standard error here.
    """
    w_std, b_std, depth = 1.4, 0.3, 2
    net = mlp(relu().dual, depth, w_std, b_std)
    X = _inputs()
    F = sample_outputs(net, X, width=64, n_inits=8000, seed_key=key(2024), dtype=jnp.float32)
    z_crit = familywise_z(ALPHA, n_tests=6)  # 6 distinct entries of the 3x3 covariance
    z = covariance_z_scores(F, nngp_relu_mlp(X, depth, w_std, b_std))
    assert np.all(np.abs(z) < z_crit), f"z-scores {np.round(z, 2)} exceed {z_crit:.2f} (family-wise α = {ALPHA})"
    # Power: the same sample rejects the recurrence without the bias terms (b_std = 0).
    z_wrong = covariance_z_scores(F, nngp_relu_mlp(X, depth, w_std, 0.0))
    assert np.max(np.abs(z_wrong)) > z_crit


@pytest.mark.slow
def test_output_covariance_matches_nngp_recurrence_deeper_wider():
    """mlp(relu, depth=3) (four Dense layers), width 128, 20000 seeded inits, float64 (~40 s on 2 CPU cores).
    Finite-width bias O(1/n) as in the fast test (≤ 0.3% of Σ at n = 64 for depth 2), about 0.3 SE (~0.9%) here."""
    w_std, b_std, depth = 1.3, 0.2, 3
    net = mlp(relu().dual, depth, w_std, b_std)
    X = _inputs()
    with jax.enable_x64(True):
        F = sample_outputs(net, X, width=128, n_inits=20000, seed_key=key(7), dtype=jnp.float64)
    z = covariance_z_scores(F, nngp_relu_mlp(X, depth, w_std, b_std))
    z_crit = familywise_z(ALPHA, n_tests=6)
    assert np.all(np.abs(z) < z_crit), f"z-scores {np.round(z, 2)} exceed {z_crit:.2f} (family-wise α = {ALPHA})"


# --------------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("net_fn, x_shape, width", [(small_mlp, (4, 5), None), (small_cnn, (2, 9, 8, 3), 6)])
def test_grad_is_finite_and_matches_a_finite_difference(net_fn, x_shape, width):
    net = net_fn()
    with jax.enable_x64(True):  # the shapes of test_apply_matches_numpy_forward: its compiled draws are reused
        params = init(net, key(13), x_shape, width=width)
        x = jr.normal(key(14), x_shape)

        def loss(p):
            return jnp.sum(apply(net, p, x) ** 2)

        grads = jax.jit(jax.grad(loss))(params)
        assert jax.tree.structure(grads) == jax.tree.structure(params)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
        # directional derivative along a random direction vs a central difference (h = 1e-5: truncation
        # O(h²) ~ 1e-10 and rounding O(eps/h) ~ 1e-11, relative to the loss scale)
        leaves, tree = jax.tree.flatten(params)
        direction = jax.tree.unflatten(tree, [jr.normal(key(15 + i), leaf.shape) for i, leaf in enumerate(leaves)])
        h = 1e-5
        shifted = [jax.tree.map(lambda p, d, s=s: p + s * h * d, params, direction) for s in (1, -1)]
        fd = (loss(shifted[0]) - loss(shifted[1])) / (2 * h)
        analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
        np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-6, atol=1e-6 * float(loss(params)))


def test_grad_with_respect_to_inputs_of_piecewise_activation_is_finite():
    net = serial(Dense(8, 1.0, 0.1), layers.Activation("elu"), Dense(1))
    params = init(net, key(16), (5, 3))
    x = jr.normal(key(17), (5, 3))
    g = jax.grad(lambda x: jnp.sum(apply(net, params, x)))(x)
    assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))


# --------------------------------------------------------------------------------------------------
# Errors and the rule registry
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MyLayer:
    """A user layer type with no finite-network rule."""


def test_user_layer_without_a_rule_names_the_interpretation():
    with pytest.raises(NotImplementedError, match="finite-width network"):
        init(serial(Dense(2), MyLayer()), key(0), (3, 4))
    with pytest.raises(NotImplementedError, match="MyLayer"):
        apply(serial(MyLayer()), ((),), jnp.ones((3, 4)))


def test_every_layer_type_has_an_init_and_an_apply_rule():
    layer_types = [cls for _, cls in inspect.getmembers(layers, inspect.isclass)
                   if cls.__module__ == layers.__name__ and dataclasses.is_dataclass(cls)]
    assert {cls.__name__ for cls in layer_types} >= {"Dense", "Activation", "Conv", "AvgPool", "GlobalAvgPool",
                                                     "Flatten", "Serial"}
    for rule in (empirical._init_layer, empirical._apply_layer):
        missing = [cls.__name__ for cls in layer_types if rule.dispatch(cls) is rule.dispatch(object)]
        assert not missing, f"{rule.__name__} has no rule for {missing}"


@pytest.mark.parametrize("call, error, message", [
    (lambda: init(mlp(relu().dual, 1), key(0), (5,)), ShapeError, "input_shape"),
    (lambda: init(mlp(relu().dual, 1), key(0), (5, 0)), ShapeError, "positive"),
    (lambda: init(serial(Conv(2, (3, 3))), key(0), (2, 5)), ShapeError, "rank 4"),
    (lambda: init(serial(Conv(2, (3, 3), padding="VALID")), key(0), (2, 2, 5, 1)), ShapeError, "empty output"),
    (lambda: init(serial(AvgPool((4,), padding="VALID")), key(0), (2, 3, 1)), ShapeError, "empty output"),
    (lambda: init(mlp(relu().dual, 1), key(0), (3, 4), width=0), NetworkError, "width"),
    (lambda: init(mlp(relu().dual, 1), key(0), (3, 4), width=2.5), NetworkError, "width"),
    (lambda: init(mlp(relu().dual, 1), key(0), (3, 4), dtype=jnp.int32), NetworkError, "floating"),
])
def test_bad_arguments_raise_named_errors(call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert isinstance(info.value, NtksymError)


def test_float64_params_without_x64_raise():
    with jax.enable_x64(False), pytest.raises(NetworkError, match="x64"):
        init(mlp(relu().dual, 1), key(0), (3, 4), dtype=np.float64)


def test_apply_with_mismatched_inputs_or_params_raises():
    net = mlp(relu().dual, 1, out_dim=2)
    params = init(net, key(0), (3, 4), width=5)
    with pytest.raises(ShapeError, match="4 input features"):
        apply(net, params, jnp.ones((3, 6)))
    with pytest.raises(ShapeError, match="batch axis"):
        apply(net, params, jnp.ones((4,)))
    with pytest.raises(NetworkError, match="floating"):
        apply(net, params, jnp.ones((3, 4), jnp.int32))
    with pytest.raises(NetworkError, match="3 layers"):
        apply(net, params[:2], jnp.ones((3, 4)))
    other = init(small_cnn(), key(0), (2, 9, 8, 3))
    with pytest.raises(NetworkError, match="params"):
        apply(net, other[:3], jnp.ones((3, 4)))
    cnn_params = init(serial(Conv(2, (3, 3))), key(0), (1, 5, 5, 3))
    with pytest.raises(ShapeError, match="channels"):
        apply(serial(Conv(2, (3, 3))), cnn_params, jnp.ones((1, 5, 5, 4)))


# --------------------------------------------------------------------------------------------------
# Empirical kernels of one network
# --------------------------------------------------------------------------------------------------


def random_params(net, shape, seed: int, dtype=np.float32):
    """Parameters of init's structure and shapes, N(0, 1) from NumPy: no sampler to compile (init's own draws
    are tested above). Any values serve the identities below."""
    abstract = jax.eval_shape(lambda k: init(net, k, shape, dtype=dtype), key(0))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), dtype), abstract)


def n_params(params) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(params))


def as_matrix(gram):
    """A kernel in ntksym.kernel's layout (n1, n2, H, H', W, W') as the matrix ((n1, H, W), (n2, H', W'))."""
    gram = np.asarray(gram, np.float64)
    d = (gram.ndim - 2) // 2
    gram = np.transpose(gram, [0, *range(2, 2 + 2 * d, 2), 1, *range(3, 3 + 2 * d, 2)])
    half = gram.ndim // 2
    return gram.reshape(math.prod(gram.shape[:half]), -1)


def gram_scale(gram):
    """√(G_ii·G_jj): by Cauchy–Schwarz, a bound on |G_ij| and on the sum of |products| behind it."""
    return np.sqrt(np.outer(np.diag(gram), np.diag(gram)))


NTK_TEST_NETS = {
    "mlp-2-outputs": (lambda: serial(Dense(5, 1.3, 0.2), relu(), Dense(4, 1.1, 0.3), erf(), Dense(2, 0.9, 0.1)),
                      (4, 3)),
    "cnn-spatial-outputs": (lambda: serial(Conv(3, (2, 2), None, "SAME", 1.2, 0.1), relu(),
                                           Conv(2, (2, 1), None, "VALID", 1.0, 0.2)),
                            (4, 4, 3, 2)),
}


@pytest.mark.parametrize("case", list(NTK_TEST_NETS))
def test_ntk_by_jacobians_equals_ntk_by_products(float_dtype, case):
    """Two algorithms for Θ̂ (survey §5.2), per-leaf Jacobian contraction and NTK–vector products J1(J2ᵀe), on
    x (symmetric) and on (x1, x2) = (x[:2], x[2:]), whose kernel must be the off-diagonal block of x's (not
    its transpose: Θ̂(x1, x2) is not symmetric)."""
    net_fn, shape = NTK_TEST_NETS[case]
    net = net_fn()
    params = random_params(net, shape, 30, float_dtype)
    x = jnp.asarray(np.random.default_rng(31).normal(size=shape), float_dtype)
    whole = {method: ntk(net, params, x, method=method) for method in ("jacobian", "ntvp")}
    block = {method: ntk(net, params, x[:2], x[2:], method=method) for method in ("jacobian", "ntvp")}
    assert all(k.dtype == float_dtype for k in (*whole.values(), *block.values()))
    # layout: ntksym.kernel's (n1, n2, H, H', W, W') (the CNN's outputs are 3 × 3 × 2 channels)
    assert block["ntvp"].shape == ((2, shape[0] - 2, 3, 3, 3, 3) if len(shape) == 4 else (2, shape[0] - 2))
    reference = as_matrix(whole["jacobian"])
    np.testing.assert_array_equal(reference, reference.T)  # the same products in either order: exactly symmetric
    scale = gram_scale(reference)  # Cauchy–Schwarz: |Θ̂(x,x')| and its sum of |products| ≤ √(Θ̂(x,x)·Θ̂(x',x'))
    rows = as_matrix(whole["jacobian"][:2]).shape[0]  # the rows of x[:2] (with their spatial positions)
    # Each method sums n_params products (sequential summation: ≤ n_params roundings of eps relative to the sum
    # of |products| ≤ scale), of Jacobian entries with their own forward/backward rounding over fan-ins
    # (fewer than n_params steps): ≤ 2·n_params·eps(dtype) of the scale (measured: ~1 eps).
    rtol = dtype_tolerance(float_dtype, 2 * n_params(params))
    reason = "float rounding: 2·n_params·eps(dtype) of the Cauchy–Schwarz scale"
    assert_close_scaled(as_matrix(whole["ntvp"]), reference, scale, rtol=rtol, reason=reason)
    for method in ("jacobian", "ntvp"):
        assert_close_scaled(as_matrix(block[method]), reference[:rows, rows:], scale[:rows, rows:], rtol=rtol,
                            reason=reason)


def hand_one_hidden_layer(act, parameterization, w_std, b_std, params, X):
    """Θ̂ and the readout NNGP of Dense(n) → σ → Dense(k), written out in NumPy (float64) from the chain rule.

    NTK parameterization: h = (w1/√d)·xW1 + b1·B1, f = (w2/√n)·σ(h)W2 + b2·B2; standard: h = xW1 + B1,
    f = σ(h)W2 + B2, where a zero b_std means no bias (B ignored, whatever its value). ∂f_c/∂W2[j,c] = s2·σ(h_j),
    ∂f_c/∂B2[c] = g2, ∂f_c/∂W1[i,j] = s2·W2[j,c]·σ'(h_j)·s1·x_i, ∂f_c/∂B1[j] = s2·W2[j,c]·σ'(h_j)·g1, so
    Θ̂(x,x') = (1/k)·Σ_c [s2²·σ(h)·σ(h') + g2² + s2²·Σ_j W2[j,c]²σ'(h_j)σ'(h'_j)·(s1²·x·x' + g1²)].
    The readout NNGP E_{W2,B2}[f f'ᵀ]/k = Var(W2)·σ(h)·σ(h') + Var(B2) = (w2²/n)·σ(h)·σ(h') + b2² in both.
    """
    (W1, B1), _, (W2, _) = (tuple(np.asarray(t, np.float64) for t in p) for p in params)
    (w1, w2), (b1, b2) = w_std, b_std
    d, n = W1.shape
    if parameterization == "ntk":
        s1, g1, s2, g2 = w1 / math.sqrt(d), b1, w2 / math.sqrt(n), b2
        h = s1 * X @ W1 + b1 * B1
    else:
        s1, g1, s2, g2 = 1.0, float(b1 > 0), 1.0, float(b2 > 0)
        h = X @ W1 + g1 * B1
    if act == "relu":
        a, da = np.maximum(h, 0), (h > 0).astype(float)
    else:
        a, da = np_erf(h), 2 / math.sqrt(math.pi) * np.exp(-h * h)
    first = s2**2 * (a @ a.T) + g2**2
    second = s2**2 * np.mean([(da * W2[:, c] ** 2) @ da.T for c in range(W2.shape[1])], axis=0)
    ntk_hand = first + second * (s1**2 * (X @ X.T) + g1**2)
    nngp_hand = w2**2 / n * (a @ a.T) + b2**2
    return ntk_hand, nngp_hand


@pytest.mark.parametrize("act, parameterization, b_std", [
    ("relu", "ntk", (0.4, 0.3)), ("erf", "ntk", (0.0, 0.0)), ("relu", "standard", (0.0, 0.0)),
    ("erf", "standard", (0.4, 0.3)),
], ids=["relu-ntk-bias", "erf-ntk-no-bias", "relu-standard-no-bias", "erf-standard-bias"])
def test_empirical_kernels_match_a_hand_computation(act, parameterization, b_std):
    """Θ̂ (both methods) and the readout NNGP against the chain rule written out in NumPy (float64).

    b_std = 0 means "no bias" (neural-tangents' b_std=None), as in ntksym.kernel: the drawn b takes no part, its
    gradient is exactly zero, and the standard parameterization's Θ̂ has no bias term (it used to add 1)."""
    w_std = (1.3, 0.9)
    net = serial(Dense(6, w_std[0], b_std[0], parameterization), layers.Activation(act),
                 Dense(2, w_std[1], b_std[1], parameterization))
    X = np.random.default_rng(40).normal(size=(4, 3))
    with jax.enable_x64(True):
        params = random_params(net, X.shape, 41, np.float64)  # every b nonzero: a zero b_std must ignore it
        x = jnp.asarray(X)
        ntk_hand, nngp_hand = hand_one_hidden_layer(act, parameterization, w_std, b_std, params, X)
        # float64 rounding of sums over 6 units and 3 inputs, erf/erf' to a few eps: 100·eps64 leaves a wide
        # margin; a spurious bias term (≥ b² or 1) would exceed it by ~1e13
        for method in ("jacobian", "ntvp"):
            assert_close_scaled(ntk(net, params, x, method=method), ntk_hand, gram_scale(ntk_hand),
                                rtol=float64_tolerance(100),
                                reason="float64 rounding of sums over 6 units and 3 inputs (100·eps64, wide margin)")
        assert_close_scaled(nngp(net, params, x, estimator="readout"), nngp_hand, gram_scale(nngp_hand),
                            rtol=float64_tolerance(100),
                            reason="float64 rounding of a sum over 6 units (100·eps64, wide margin)")
        if b_std == (0.0, 0.0):
            grads = jax.grad(lambda p: jnp.sum(apply(net, p, x) ** 2))(params)
            assert all(bool(jnp.all(grads[i][1] == 0)) and bool(jnp.any(grads[i][0] != 0)) for i in (0, 2))
        # the output estimator is f(x)·f(x')ᵀ/k, from the forward pass: the same products, a few roundings
        f = np.asarray(apply(net, params, x))
        assert_close_scaled(nngp(net, params, x), f @ f.T / f.shape[1], gram_scale(f @ f.T / 2),
                            rtol=float64_tolerance(8), reason="float64 rounding of a 2-term sum (8·eps64)")


def test_ntk_matches_finite_differences_of_the_outputs():
    """Θ̂ from a Jacobian by central differences of `apply` over every parameter (an independent method),
    for a two-hidden-layer erf network (smooth, so finite differences converge) with two outputs, float64."""
    net = serial(Dense(3, 1.4, 0.2), erf(), Dense(3, 1.1, 0.3), erf(), Dense(2, 0.8, 0.1))
    with jax.enable_x64(True):
        params = random_params(net, (3, 2), 50, np.float64)
        x = jnp.asarray(np.random.default_rng(51).normal(size=(3, 2)))
        leaves, tree = jax.tree.flatten(params)
        flat = np.concatenate([np.asarray(leaf).ravel() for leaf in leaves])
        offsets = np.cumsum([0] + [leaf.size for leaf in leaves])

        def unflatten(vector):
            return jax.tree.unflatten(tree, [jnp.asarray(vector[a:b]).reshape(leaf.shape)
                                             for a, b, leaf in zip(offsets[:-1], offsets[1:], leaves)])

        forward = jax.jit(lambda p: apply(net, p, x))
        h = 1e-5
        columns = []
        for i in range(flat.size):
            step = np.zeros_like(flat)
            step[i] = h
            up, down = (np.asarray(forward(unflatten(flat + s))) for s in (step, -step))
            columns.append((up - down) / (2 * h))
        J = np.stack(columns, axis=-1)  # (n, k, n_params)
        reference = np.einsum("icp,jcp->ij", J, J) / J.shape[1]
        # central differences with h = 1e-5: truncation h²·|f'''|/6 ~ 1e-11 and rounding eps64·|f|/h ~ 1e-11 per
        # derivative; over 29 parameters with |∇f| ~ 1: ≲ 1e-9 of the scale. rtol 1e-7 leaves 100×.
        for method in ("jacobian", "ntvp"):
            assert_close_scaled(ntk(net, params, x, method=method), reference, gram_scale(reference), rtol=1e-7,
                                reason="central differences, h = 1e-5: ≲ 1e-9 error, 100× margin")


def test_a_net_without_parameters_has_a_zero_ntk():
    net = serial(GlobalAvgPool())
    x = jnp.asarray(np.random.default_rng(52).normal(size=(2, 4, 3)), jnp.float32)
    for method in ("jacobian", "ntvp"):
        np.testing.assert_array_equal(np.asarray(ntk(net, ((),), x, method=method)), np.zeros((2, 2)))


# --------------------------------------------------------------------------------------------------
# Monte Carlo over initialisations (survey §4.3)
# --------------------------------------------------------------------------------------------------


def mc_inputs():
    return np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)


def band_t(estimate, se, reference):
    """(estimate − reference)/SE on the distinct entries (upper triangle) of a symmetric Gram matrix."""
    i, j = np.triu_indices(estimate.shape[0])
    return ((estimate - np.asarray(reference, np.float64)) / se)[i, j]


def test_monte_carlo_mean_matches_the_analytic_kernels():
    """mlp(relu, 2) at width 256, NTK parameterization, 64 networks (float32): the Monte Carlo means of the
    NTK, the readout NNGP and the output NNGP f·f'ᵀ lie within t·SE of ntksym.kernel's analytic kernels.

    The finite-width bias of E Θ̂ is O(1/width), a fraction of the ~1.5% SE here (tests/test_network_check.py
    sees no bias at width 64 with 16 networks). Threshold: Student-t with 63 degrees of freedom (each SE comes
    from 64 networks), Bonferroni over 3 kernels × 21 distinct entries at family-wise α = 1e-3.
    """
    net = mlp(relu().dual, 2, 1.5, 0.1)
    x = mc_inputs()
    analytic = kernel(net, x)
    readout = monte_carlo_kernel(net, 0, x, width=256, n_samples=64, nngp_estimator="readout")
    output = monte_carlo_kernel(net, 0, x, width=256, n_samples=64, get="nngp")
    assert isinstance(readout, MonteCarloKernel) and readout.dtype == "float32" and readout.n_samples == 64
    assert output.ntk is None and output.ntk_se is None
    threshold = float(student_t.isf(ALPHA / (2 * 3 * 21), 63))
    cases = [(readout.ntk, readout.ntk_se, analytic.ntk), (readout.nngp, readout.nngp_se, analytic.nngp),
             (output.nngp, output.nngp_se, analytic.nngp)]
    for estimate, se, reference in cases:
        t = band_t(estimate, se, reference)
        assert np.max(np.abs(t)) < threshold, f"t-scores {np.round(t, 2)} exceed {threshold:.2f}"
    # the readout NNGP has the output's mean and a spread that falls with the width: a far smaller SE
    assert np.all(readout.nngp_se < 0.5 * output.nngp_se)
    # Power: the same draws reject the kernels of a wrong w_std (1.6 for 1.5)
    wrong = kernel(mlp(relu().dual, 2, 1.6, 0.1), x)
    assert np.max(np.abs(band_t(readout.ntk, readout.ntk_se, wrong.ntk))) > threshold
    assert np.max(np.abs(band_t(readout.nngp, readout.nngp_se, wrong.nngp))) > threshold


def test_monte_carlo_standard_parameterization_without_bias_matches_the_analytic_kernel():
    """Dense(64, standard, b_std = 0) → relu → Dense(1, standard, b_std = 0): the first layer's pre-activations are
    exactly Gaussian, so E Θ̂ equals ntksym.kernel's finite-width standard NTK, which has no bias term (a bias of
    b_std = 0 counted in Θ̂ would add 1 + E Σ_j W2_j²·1[h_j > 0]·1 ≈ 1.7, many standard errors). 48 networks;
    threshold: Student-t with 47 degrees of freedom, Bonferroni over 21 entries at family-wise α = 1e-3."""
    net = serial(Dense(64, 1.4, 0.0, "standard"), relu(), Dense(1, 1.2, 0.0, "standard"))
    x = mc_inputs()
    mc = monte_carlo_kernel(net, 1, x, width=64, n_samples=48, get="ntk")
    threshold = float(student_t.isf(ALPHA / (2 * 21), 47))
    analytic = np.asarray(kernel(net, x).ntk, np.float64)
    t = band_t(mc.ntk, mc.ntk_se, analytic)
    assert np.max(np.abs(t)) < threshold, f"t-scores {np.round(t, 2)} exceed {threshold:.2f}"
    # Power: the analytic kernel plus the spurious bias term is rejected
    assert np.max(np.abs(band_t(mc.ntk, mc.ntk_se, analytic + 1.0))) > threshold


def test_welford_accumulation_matches_numpy():
    """The running mean and standard error (Welford, float64) equal NumPy's two-pass formulas."""
    rng = np.random.default_rng(60)
    samples = 1e3 + rng.normal(size=(25, 3, 3))  # a large offset: where a naive Σx² − (Σx)²/M would cancel
    state = None
    for sample in samples:
        state = empirical._welford(state, sample)
    mean, se = empirical._mean_and_se(state)
    # float64 rounding of 25 updates (a few eps each) relative to |mean| ~ 1e3, and to the SE ~ 0.2 after the
    # offset's cancellation (1e3/0.2·25 updates·eps64 ~ 3e-11)
    np.testing.assert_allclose(mean, samples.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(se, samples.std(axis=0, ddof=1) / 5, rtol=1e-9)


def test_jacobian_chunks_respect_the_budget():
    """Consecutive leaves are grouped while their Jacobians fit the budget; a larger leaf stands alone."""
    sizes = {0: 10, 1: 5, 2: 100, 3: 3, 4: 4, 5: 30}
    assert empirical._chunks(sizes, 20) == [(0, 1), (2,), (3, 4), (5,)]
    assert empirical._chunks(sizes, 1000) == [(0, 1, 2, 3, 4, 5)]
    assert empirical._chunks({}, 10) == []


def test_ntk_jacobians_are_taken_one_leaf_at_a_time_when_large(monkeypatch):
    """With a budget below every leaf's Jacobian, each leaf is its own chunk, and the kernel is unchanged."""
    net = serial(Dense(8, 1.2, 0.1), relu(), Dense(2, 1.0, 0.2))
    params = random_params(net, (3, 4), 61)
    x = jnp.asarray(np.random.default_rng(62).normal(size=(3, 4)), jnp.float32)
    whole = np.asarray(ntk(net, params, x))
    seen = []
    original = empirical._chunk_jacobian
    monkeypatch.setattr(empirical, "_JACOBIAN_BUDGET", 1)
    monkeypatch.setattr(empirical, "_chunk_jacobian", lambda net, chunk: seen.append(chunk) or original(net, chunk))
    per_leaf = np.asarray(ntk(net, params, x))
    assert seen == [(0,), (1,), (2,), (3,)]
    # the same products summed in another grouping: a few float32 roundings of the Cauchy–Schwarz scale
    assert_close_scaled(per_leaf, whole, gram_scale(whole), rtol=dtype_tolerance(np.float32, 8),
                        reason="float32 rounding: the same sum in another grouping (8·eps32)")


@pytest.mark.parametrize("call, error, message", [
    (lambda: ntk(mlp(relu().dual, 1), None, np.ones(3)), ShapeError, "batch axis"),
    (lambda: ntk(mlp(relu().dual, 1), None, np.ones((2, 3)), np.ones((2, 4))), ShapeError, "agree"),
    (lambda: ntk(mlp(relu().dual, 1), None, np.full((2, 3), np.nan)), NetworkError, "NaN"),
    (lambda: ntk(mlp(relu().dual, 1), None, np.ones((2, 3)), method="exact"), NetworkError, "method"),
    (lambda: nngp(mlp(relu().dual, 1), None, np.ones((2, 3)), estimator="mean"), NetworkError, "estimator"),
    (lambda: nngp(serial(Dense(2), relu()), None, np.ones((2, 3)), estimator="readout"), NetworkError,
     "Activation follows"),
    (lambda: ntk(mlp(relu().dual, 1), init(mlp(relu().dual, 2), key(0), (2, 3)), np.ones((2, 3))), NetworkError,
     "params"),
    (lambda: monte_carlo_kernel(mlp(relu().dual, 1), 0, np.ones((2, 3)), width=0, n_samples=4), NetworkError,
     "width"),
    (lambda: monte_carlo_kernel(mlp(relu().dual, 1), 0, np.ones((2, 3)), width=8, n_samples=1), NetworkError,
     "n_samples"),
    (lambda: monte_carlo_kernel(mlp(relu().dual, 1), 0, np.ones((2, 3)), width=8, n_samples=4, get="cov"),
     NetworkError, "get"),
    (lambda: monte_carlo_kernel(mlp(relu().dual, 1), "seed", np.ones((2, 3)), width=8, n_samples=4), NetworkError,
     "key"),
    (lambda: monte_carlo_kernel(mlp(relu().dual, 1), 0, np.array([[1.0, np.inf]]), width=8, n_samples=4),
     NetworkError, "NaN or infinite"),
])
def test_bad_kernel_arguments_raise_named_errors(call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert isinstance(info.value, NtksymError)
