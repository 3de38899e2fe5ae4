"""Tests of ntksym.kernel: architecture kernels against an independent NumPy implementation of the seed
survey's recurrences, plus properties (symmetry, PSD, blocking, precision) and named errors.

The reference (`seed_kernel` below) is written from the survey (seed 002, eq. (58)–(61) for fully connected
nets, (62)–(78) for convolutions and pooling) in plain NumPy, over the *joint* covariance of all inputs
stacked together (one (N, N, P, P) array, P = number of positions), with the activation's dual in closed form
(relu: arc-cosine kernel of Cho & Saul; erf: Williams 1997). It shares no code with ntksym: positions are
flat indices, convolutions and pooling are index tables built here, and nothing is lowered from SymPy.
Conventions taken from neural-tangents (DESIGN.md §1): Σ⁰ = x·x'/C; a convolution divides by the filter
size (NT's fan-in C·|f|, where the survey's eq. (69)–(70) sum over the filter); eq. (78) with r' = r (the
weights W^{1kr}, W^{1k'r'} average to δ_kk'·δ_rr'; the survey prints independent r, r'); standard
parameterization as neural-tangents' `Dense(parameterization="standard")`: Θ ↦ N·Σ + w²Θ + 1[bias].
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from ntksym import catalog, derive
from ntksym import kernel as kernel_module
from ntksym.errors import InvalidCovarianceError, NtksymError
from ntksym.kernel import Kernel, KernelInputError, kernel, propagate
from ntksym.layers import Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, mlp, serial

RELU = derive(catalog.relu())
ERF = derive(catalog.erf())
DUALS = {"relu": RELU, "erf": ERF}

# Float64 agreement with the reference: both sides evaluate the same closed forms with different operation
# orders, so they differ by rounding only: ≲ 30 roundings per layer and ≤ 12 layers, amplified at most ~10×
# (relu's K̇ = (π − θ)/2π has condition ρ/√(1 − ρ²)·|dθ/dρ|… ≤ 10 for the |ρ| ≤ 0.99 of distinct random
# inputs; erf's is smaller). 30·12·10·eps64 ≈ 8e-13 < 1e-12, measured against √(K(x,x)K(x',x')).
REF_RTOL = 1e-12


def rho1_rtol(dtype, relu_layers: int) -> float:
    """Tolerance of the NTK of x with itself (ρ = 1 exactly) after relu layers.

    At ρ = 1, K̇ = arcsin(ρ)/2π + 1/4 has an infinite slope, so a rounding of ρ by one eps (ρ computed as
    c/(√q1·√q2)) moves K̇ by up to √(2 eps)/2π per relu layer; 2× for the two sides compared."""
    return 2 * relu_layers * math.sqrt(2 * float(np.finfo(dtype).eps)) / (2 * math.pi)


# --------------------------------------------------------------------------------------------------
# The lowered dual: ntksym.lower if present, else a closed-form stand-in (tests only)
# --------------------------------------------------------------------------------------------------


class _StandIn:
    """f(q1, q2, c) -> (K, K̇) and f.V(q) in JAX from the published closed forms (relu and erf only)."""

    def __init__(self, name):
        self.name = name

    def __call__(self, q1, q2, c):
        q1, q2, c = jnp.broadcast_arrays(q1, q2, c)
        if self.name == "relu":
            s = jnp.sqrt(q1 * q2)
            rho = jnp.clip(c / s, -1, 1)
            theta = jnp.arccos(rho)
            k = s * (jnp.sqrt((1 - rho) * (1 + rho)) + (jnp.pi - theta) * rho) / (2 * jnp.pi)
            return k, (jnp.pi - theta) / (2 * jnp.pi)
        d = (1 + 2 * q1) * (1 + 2 * q2)
        k = 2 / jnp.pi * jnp.arcsin(jnp.clip(2 * c / jnp.sqrt(d), -1, 1))
        return k, 4 / (jnp.pi * jnp.sqrt(d - 4 * c * c))

    def V(self, q):
        return self(q, q, q)[0]


@pytest.fixture(autouse=True, scope="module")
def _lowering():
    """Use ntksym.lower when it exists; otherwise the stand-in for relu and erf."""
    if importlib.util.find_spec("ntksym.lower") is not None:
        yield
        return
    names = {RELU: "relu", ERF: "erf"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernel_module, "_lower_dual", lambda dual: _StandIn(names[dual]))
        kernel_module._lowered.cache_clear()
        kernel_module._compiled.cache_clear()
        yield
    kernel_module._lowered.cache_clear()
    kernel_module._compiled.cache_clear()


# --------------------------------------------------------------------------------------------------
# The independent reference: seed survey eq. (58)–(78) in NumPy, over the joint covariance of all inputs
# --------------------------------------------------------------------------------------------------


def relu_dual(q1, q2, c):
    """Arc-cosine kernel of degree 1 (Cho & Saul 2009): K = √(q1q2)(sin θ + (π−θ)cos θ)/2π, K̇ = (π−θ)/2π."""
    s = np.sqrt(q1 * q2)
    rho = np.clip(c / s, -1.0, 1.0)
    theta = np.arccos(rho)
    return s * (np.sqrt((1 - rho) * (1 + rho)) + (np.pi - theta) * rho) / (2 * np.pi), (np.pi - theta) / (2 * np.pi)


def erf_dual(q1, q2, c):
    """Williams (1997): K = (2/π)·arcsin(2c/√((1+2q1)(1+2q2))), K̇ = 4/(π√((1+2q1)(1+2q2) − 4c²))."""
    d = (1 + 2 * q1) * (1 + 2 * q2)
    return 2 / np.pi * np.arcsin(2 * c / np.sqrt(d)), 4 / (np.pi * np.sqrt(d - 4 * c * c))


NUMPY_DUALS = {"relu": relu_dual, "erf": erf_dual}


def window_taps(size, window, stride, padding):
    """For each output position, the input positions of the window (None where it falls in the zero padding)."""
    if padding == "SAME":
        n_out = -(-size // stride)
        lo = max((n_out - 1) * stride + window - size, 0) // 2
    else:
        n_out, lo = (size - window) // stride + 1, 0
    return [[(o * stride + r - lo) if 0 <= o * stride + r - lo < size else None for r in range(window)]
            for o in range(n_out)]


def spatial_taps(shape, window, stride, padding):
    """Flat input index (P for padding) of each (output position, window offset), over all spatial dims."""
    per_dim = [window_taps(n, w, s, padding) for n, w, s in zip(shape, window, stride)]
    out_shape = tuple(len(t) for t in per_dim)
    P = math.prod(shape)
    taps = np.full((math.prod(out_shape), math.prod(window)), P)
    for o, out_idx in enumerate(itertools.product(*(range(n) for n in out_shape))):
        for r, off in enumerate(itertools.product(*(range(w) for w in window))):
            coords = [per_dim[d][out_idx[d]][off[d]] for d in range(len(shape))]
            if None not in coords:
                taps[o, r] = np.ravel_multi_index(coords, shape)
    return taps, out_shape


def _pad_positions(S):
    """Append a zero position (index P) to both position axes of an (N, N, P, P) covariance."""
    return np.pad(S, [(0, 0), (0, 0), (0, 1), (0, 1)])


def seed_kernel(layers, x1, x2=None):
    """(NNGP, NTK) of x1 against x2 (or x1) by the survey's recurrences over the joint covariance of all inputs.

    S[i, j, p, p'] = Σ(x_i at position p, x_j at p'), T likewise Θ; a flat input is one position."""
    X = x1 if x2 is None else np.concatenate([x1, x2])
    n1 = x1.shape[0]
    shape = X.shape[1:-1]
    C = X.shape[-1]
    Xf = X.reshape(X.shape[0], -1, C)
    S = np.einsum("ipc,jqc->ijpq", Xf, Xf) / C  # eq. (58), (69): q¹ = x·x'/C
    T = np.zeros_like(S)
    width, gaussian = C, False
    for layer in layers:
        if isinstance(layer, Dense):
            w2, b2 = layer.w_std**2, layer.b_std**2
            if layer.parameterization == "ntk":
                S = w2 * S + b2
                T = S + w2 * T  # eq. (61)
            else:
                T = width * S + w2 * T + (1.0 if layer.b_std > 0 else 0.0)
                S = w2 * S + b2
            width, gaussian = layer.out_dim, True
        elif isinstance(layer, Activation):
            assert gaussian
            phi = NUMPY_DUALS[{RELU: "relu", ERF: "erf"}[layer.dual]]
            q = np.einsum("iipp->ip", S)
            K, Kdot = phi(q[:, None, :, None], q[None, :, None, :], S)  # eq. (60), (76)
            S, T = K, Kdot * T  # eq. (61), (78)
            gaussian = False
        elif isinstance(layer, Conv):
            stride = layer.strides or (1,) * len(shape)
            taps, out_shape = spatial_taps(shape, layer.filter_shape, stride, layer.padding)
            Sp, Tp = _pad_positions(S), _pad_positions(T)
            f = taps.shape[1]
            # eq. (70)/(78) with r' = r, normalised by the filter size (NT's fan-in)
            S_u = sum(Sp[:, :, taps[:, r][:, None], taps[:, r][None, :]] for r in range(f)) / f
            T_u = sum(Tp[:, :, taps[:, r][:, None], taps[:, r][None, :]] for r in range(f)) / f
            w2, b2 = layer.w_std**2, layer.b_std**2
            if layer.parameterization == "ntk":
                S = w2 * S_u + b2
                T = w2 * T_u + S
            else:
                T = width * f * S_u + w2 * T_u + (1.0 if layer.b_std > 0 else 0.0)
                S = w2 * S_u + b2
            shape, width, gaussian = out_shape, layer.out_chan, True
        elif isinstance(layer, AvgPool):
            stride = layer.strides or (1,) * len(shape)
            taps, out_shape = spatial_taps(shape, layer.window_shape, stride, layer.padding)
            A = np.zeros((taps.shape[0], math.prod(shape) + 1))
            for o, row in enumerate(taps):
                for t in row:
                    A[o, t] += 1.0 / taps.shape[1]
            A[:, -1] = 0.0  # padding contributes zeros
            S = np.einsum("op,ijpq,rq->ijor", A, _pad_positions(S), A)
            T = np.einsum("op,ijpq,rq->ijor", A, _pad_positions(T), A)
            shape = out_shape
        elif isinstance(layer, GlobalAvgPool):  # eq. (62), (75): f = (1/d) Σ_s x^s
            S, T = S.mean(axis=(2, 3), keepdims=True), T.mean(axis=(2, 3), keepdims=True)
            shape = ()
        elif isinstance(layer, Flatten):
            S = np.einsum("ijpp->ij", S)[:, :, None, None] / S.shape[2]
            T = np.einsum("ijpp->ij", T)[:, :, None, None] / T.shape[2]
            width, shape, gaussian = width * math.prod(shape), (), False
        else:
            raise TypeError(layer)
    assert S.shape[2:] == (1, 1), "the reference compares networks with a flat output"
    S, T = S[:, :, 0, 0], T[:, :, 0, 0]
    if x2 is None:
        return S, T
    return S[:n1, n1:], T[:n1, n1:]


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def inputs(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def gram_scale(nngp_11, nngp_22):
    """√(K(x,x)·K(x',x')): the Cauchy–Schwarz bound of |K(x, x')| for a PSD kernel."""
    return np.sqrt(np.outer(np.diag(nngp_11), np.diag(nngp_22)))


def compare_to_seed(net, x1, x2, tag, *, gram: bool):
    """ntksym vs seed_kernel in float64: kernel(net, x1, x2), or (gram=True) the Gram matrix of x1 ∪ x2 with
    itself. Errors are measured against √(K(x,x)·K(x',x')), the Cauchy–Schwarz bound of |K(x, x')|."""
    X = np.concatenate([x1, x2])
    S, T = seed_kernel(net.layers, X)
    n1 = len(x1)
    with jax.enable_x64(True):
        k = kernel(net, X) if gram else kernel(net, x1, x2)
    rows = slice(None) if gram else slice(0, n1)
    cols = slice(None) if gram else slice(n1, None)
    reason = f"{tag}: float64 rounding of the same recurrence in two operation orders (REF_RTOL)"
    for got, want in [(k.nngp, S), (k.ntk, T)]:
        got, scale = np.asarray(got), gram_scale(want, want)[rows, cols]
        want = want[rows, cols]
        off = ~np.eye(len(X), dtype=bool)[rows, cols]
        helpers.assert_close_scaled(got[off], want[off], scale[off], REF_RTOL, reason)
    if gram:
        helpers.assert_close_scaled(np.diag(np.asarray(k.nngp)), np.diag(S), np.diag(S), REF_RTOL, reason)
        relu_layers = sum(isinstance(layer, Activation) and layer.dual == RELU for layer in net.layers)
        rtol = max(REF_RTOL, rho1_rtol(np.float64, relu_layers))
        helpers.assert_close_scaled(np.diag(np.asarray(k.ntk)), np.diag(T), np.diag(T), rtol,
                                    f"{tag}: NTK of x with itself, ρ = 1 (rho1_rtol)")
    return k


# --------------------------------------------------------------------------------------------------
# Agreement with the seed recurrences
# --------------------------------------------------------------------------------------------------

MLP_CASES = [
    # (activation, depth, w_std, b_std, parameterization, gram)
    ("relu", 1, 1.0, 0.0, "ntk", True),
    ("relu", 2, 1.5, 0.1, "ntk", False),
    ("relu", 10, 1.4, 0.05, "ntk", True),
    ("relu", 3, 0.8, 0.5, "standard", False),
    ("relu", 10, 1.2, 0.0, "standard", True),
    ("erf", 1, 1.0, 0.0, "ntk", False),
    ("erf", 4, 2.0, 0.3, "ntk", True),
    ("erf", 10, 1.3, 0.1, "standard", False),
]


@pytest.mark.parametrize("act, depth, w_std, b_std, param, gram", MLP_CASES)
def test_mlp_matches_seed_recurrence(act, depth, w_std, b_std, param, gram):
    """Survey eq. (58)–(61) (and the standard parameterization), float64."""
    # hidden widths matter in the standard parameterization: distinct in shallow nets; equal in deep ones,
    # whose repeated [Dense, σ] block then runs as one loop
    widths = [7, 5, 3, 9] if depth < 5 else [5] * depth
    layers = []
    for i in range(depth):
        layers += [Dense(widths[i], w_std, b_std, param), Activation(DUALS[act])]
    net = serial(*layers, Dense(1, w_std, b_std, param))
    x1, x2 = inputs((4, 6), 1), inputs((3, 6), 2)
    compare_to_seed(net, x1, x2, f"{act} depth {depth}", gram=gram)


def test_mlp_shorthand_is_the_serial_net():
    net = mlp(RELU, 2, 1.5, 0.1)
    x = inputs((3, 5), 3)
    with jax.enable_x64(True):
        k = kernel(net, x)
    s, t = seed_kernel(net.layers, x)
    helpers.assert_close_scaled(np.asarray(k.nngp), s, gram_scale(s, s), REF_RTOL, "float64 rounding (REF_RTOL)")


CNN_CASES = [
    # (activation, padding, strides of the second conv, filter, parameterization, gram)
    ("relu", "SAME", (1, 1), (3, 3), "ntk", True),
    ("erf", "VALID", (2, 2), (3, 2), "ntk", False),
    ("relu", "SAME", (2, 1), (2, 3), "standard", False),
]


@pytest.mark.parametrize("act, padding, strides, filt, param, gram", CNN_CASES)
def test_cnn_matches_seed_recurrence(act, padding, strides, filt, param, gram):
    """Conv–σ–Conv–σ–GlobalAvgPool–Dense on 6×5×3 inputs: survey eq. (62)–(78), float64."""
    sigma = Activation(DUALS[act])
    net = serial(Conv(4, filt, None, padding, 1.5, 0.1, param), sigma,
                 Conv(3, filt, strides, padding, 1.2, 0.2, param), sigma,
                 GlobalAvgPool(), Dense(1, 1.1, 0.1, param))
    x1, x2 = inputs((3, 6, 5, 3), 4), inputs((2, 6, 5, 3), 5)
    compare_to_seed(net, x1, x2, f"CNN {act} {padding}", gram=gram)


def test_cnn_avgpool_flatten_matches_seed_recurrence():
    """Conv–σ–AvgPool–Flatten–Dense (SAME pooling with a stride, so windows reach into the padding)."""
    net = serial(Conv(4, (3, 3), (1, 1), "VALID", 1.3, 0.2), Activation(ERF),
                 AvgPool((2, 3), (2, 2), "SAME"), Flatten(), Dense(1, 1.0, 0.1))
    x1, x2 = inputs((3, 7, 6, 2), 6), inputs((2, 7, 6, 2), 7)
    compare_to_seed(net, x1, x2, "Conv-AvgPool-Flatten", gram=False)


def test_conv1d_matches_seed_recurrence():
    net = serial(Conv(3, (3,), (2,), "SAME", 1.4, 0.1), Activation(RELU), Flatten(), Dense(1, 1.0, 0.0))
    x1, x2 = inputs((3, 9, 2), 8), inputs((2, 9, 2), 9)
    compare_to_seed(net, x1, x2, "Conv1D", gram=True)


def test_spatial_layout():
    """nngp (n1, n2, H, H', W, W') and cov1 (n1, H, H', W, W'): nngp[i, j, h, h', w, w'] pairs x1[i] at (h, w)
    with x2[j] at (h', w')."""
    net = serial(Conv(2, (3, 3), (1, 1), "SAME", 1.0, 0.0))
    x1, x2 = inputs((2, 4, 3, 2), 10, np.float32), inputs((3, 4, 3, 2), 11, np.float32)
    k = kernel(net, x1, x2)
    assert k.nngp.shape == (2, 3, 4, 4, 3, 3) and k.ntk.shape == (2, 3, 4, 4, 3, 3)
    assert k.cov1.shape == (2, 4, 4, 3, 3) and k.cov2.shape == (3, 4, 4, 3, 3)
    assert k.spatial == (4, 3) and k.width == 2
    # a 3×3 SAME conv of Σ⁰ at an interior pair is the mean over the 9 aligned taps of x·x'/C
    want = np.mean([x1[1, 1 + a, 1 + b] @ x2[2, 2 + a, 1 + b] for a in (-1, 0, 1) for b in (-1, 0, 1)]) / 2
    helpers.assert_close_scaled(k.nngp[1, 2, 1, 2, 1, 1], want, 1.0, 1e-6, "float32 rounding of a 27-term sum")


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------


def test_gram_matrices_are_symmetric_and_psd(float_dtype):
    """Σ and Θ of x with itself are symmetric PSD (DESIGN.md §1), in both precisions."""
    net = mlp(RELU, 3, 1.5, 0.1)
    x = inputs((12, 5), 12, float_dtype)
    k = kernel(net, x)
    eps = float(np.finfo(float_dtype).eps)
    for name in ("nngp", "ntk"):
        m = np.asarray(getattr(k, name), np.float64)
        # symmetric up to rounding of the same formula with q1 ↔ q2 swapped (~100 roundings over 4 layers)
        helpers.assert_close_scaled(m, m.T, np.max(np.abs(m)), 100 * eps, "rounding, q1 ↔ q2 swapped")
        lam = np.linalg.eigvalsh((m + m.T) / 2)
        # eigenvalues of a PSD matrix perturbed by rounding δ: ≥ −n·δ·max|m| (Weyl), δ ≈ 100 eps
        assert lam.min() >= -len(m) * 100 * eps * np.max(np.abs(m)), (name, lam.min())


def test_swapping_inputs_transposes_the_kernel():
    net = serial(Conv(3, (2, 2), (1, 1), "VALID", 1.2, 0.1), Activation(ERF), Conv(2, (2, 2), None, "SAME", 1.0, 0.2))
    x1, x2 = inputs((2, 4, 4, 2), 13, np.float32), inputs((2, 4, 4, 2), 14, np.float32)  # same shapes: one compile
    a, b = kernel(net, x1, x2), kernel(net, x2, x1)
    swapped = np.transpose(np.asarray(b.nngp), (1, 0, 3, 2, 5, 4))
    helpers.assert_close_scaled(np.asarray(a.nngp), swapped, np.max(np.abs(swapped)), 1e-6,
                                "float32 rounding of q1 ↔ q2 swapped formulas (~10 eps32)")


@pytest.mark.parametrize("symmetric", [False, True])
def test_blocked_equals_unblocked_mlp(symmetric, float_dtype):
    net = mlp(RELU, 4, 1.5, 0.1)
    x1, x2 = inputs((11, 6), 15, float_dtype), (None if symmetric else inputs((7, 6), 16, float_dtype))
    full = kernel(net, x1, x2)
    blocked = kernel(net, x1, x2, batch_size=4)  # 4 does not divide 11 or 7: ragged last blocks
    assert isinstance(blocked.nngp, np.ndarray) and blocked.nngp.dtype == float_dtype
    eps = float(np.finfo(float_dtype).eps)
    for name in ("nngp", "ntk", "cov1", "cov2"):
        got, want = getattr(blocked, name), np.asarray(getattr(full, name))
        scale = np.max(np.abs(want))
        if symmetric and name == "ntk":  # the entries of x with itself: ρ = 1, see rho1_rtol
            helpers.assert_close_scaled(np.diag(got), np.diag(want), scale, rho1_rtol(float_dtype, 4),
                                        "ρ = 1: an ulp of ρ moves relu's K̇ by √(2 eps)/2π")
            got, want = got[~np.eye(11, dtype=bool)], want[~np.eye(11, dtype=bool)]
        # the same recurrence; only the input dot products are summed in another order (d = 6 terms)
        helpers.assert_close_scaled(got, want, scale, 30 * eps, "blocking changes only the summation order of x·x'")


def test_blocked_equals_unblocked_cnn():
    """x2 = None: blocks below the diagonal are the swapped blocks above it (batch axes and each (h, h') pair)."""
    net = serial(Conv(3, (3, 3), (1, 1), "SAME", 1.3, 0.1), Activation(ERF), Conv(2, (2, 2), (2, 2), "VALID"))
    x = inputs((5, 4, 4, 2), 17, np.float32)
    full, blocked = kernel(net, x), kernel(net, x, batch_size=2)
    for name in ("nngp", "ntk", "cov1"):
        want = np.asarray(getattr(full, name))
        helpers.assert_close_scaled(getattr(blocked, name), want, np.max(np.abs(want)), 30 * helpers.EPS32,
                                    "blocking changes only the summation order of x·x'")


def test_float32_agrees_with_float64():
    """A 10-layer relu MLP in float32 vs float64, for distinct inputs x1, x2."""
    net = mlp(RELU, 10, 1.4, 0.1)
    x1, x2 = inputs((6, 8), 19), inputs((5, 8), 20)
    k32 = kernel(net, x1.astype(np.float32), x2.astype(np.float32))
    with jax.enable_x64(True):
        k64 = kernel(net, x1, x2)
    assert k32.nngp.dtype == jnp.float32 and k64.nngp.dtype == jnp.float64
    # float32 rounding, eps32 = 1.2e-7, with ~30 roundings per layer over 21 layers and relu's K̇ condition
    # ≤ 10 for the |ρ| ≤ 0.99 of distinct inputs: 30·21·10·eps32 ≈ 7.5e-4 of the scale.
    rtol = 30 * 21 * 10 * helpers.EPS32
    for name in ("nngp", "ntk"):
        a, b = np.asarray(getattr(k32, name), np.float64), np.asarray(getattr(k64, name))
        helpers.assert_close_scaled(a, b, np.max(np.abs(b)), rtol, "float32 rounding (see comment)")


def test_get_selects_outputs():
    net = mlp(ERF, 2)
    x = inputs((3, 4), 21, np.float32)
    only_nngp, only_ntk, both = kernel(net, x, get="nngp"), kernel(net, x, get=("ntk",)), kernel(net, x)
    assert only_nngp.ntk is None and only_ntk.nngp is None
    np.testing.assert_array_equal(only_nngp.nngp, both.nngp)
    np.testing.assert_array_equal(only_ntk.ntk, both.ntk)


def test_kernel_is_a_frozen_pytree():
    x = inputs((3, 4), 22, np.float32)
    k = kernel(mlp(RELU, 1), x)
    leaves, treedef = jax.tree_util.tree_flatten(k)
    assert len(leaves) == 4
    doubled = jax.jit(lambda kk: kk.replace(nngp=2 * kk.nngp))(k)
    np.testing.assert_array_equal(doubled.nngp, 2 * np.asarray(k.nngp))
    assert doubled.x1_is_x2 and doubled.spatial == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.nngp = None


def test_compiled_once_per_architecture_and_shape():
    net = mlp(RELU, 2, 1.1, 0.2)
    x = inputs((3, 4), 23, np.float32)
    kernel(net, x)
    before = kernel_module._compiled.cache_info()
    kernel(mlp(RELU, 2, 1.1, 0.2), x + 1)  # an equal architecture, same shapes and dtype: no recompilation
    after = kernel_module._compiled.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses


def test_deep_mlp_is_one_loop():
    """A repeated [Dense, σ] block runs as a lax.scan (compiles in the time of one block)."""
    net = mlp(RELU, 6, 1.2, 0.1)
    x = jax.ShapeDtypeStruct((3, 4), jnp.float32)
    jaxpr = jax.make_jaxpr(kernel_module._recurrence(net, ("nngp", "ntk"), True))(x)
    assert "scan" in str(jaxpr)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def test_nan_input_is_an_error():
    x = inputs((3, 4), 24, np.float32)
    x[1, 2] = np.nan
    with pytest.raises(InvalidCovarianceError, match="NaN"):
        kernel(mlp(RELU, 1), x)
    with pytest.raises(InvalidCovarianceError, match="x2"):
        kernel(mlp(RELU, 1), inputs((3, 4), 25, np.float32), x)


def test_overflow_is_an_error_naming_the_layer():
    x = np.full((2, 3), 1e20, np.float32)  # x·x' = 1e40 overflows float32
    with pytest.raises(InvalidCovarianceError, match="input layer"):
        kernel(mlp(RELU, 1), x)
    with pytest.raises(InvalidCovarianceError, match="layer 0 .*Dense"):  # w²·Σ⁰ = 1e38·100 overflows
        kernel(serial(Dense(1, 1e19, 0.0), Activation(RELU)), np.full((2, 3), 10.0, np.float32))
    with pytest.raises(KernelInputError, match="overflows float32"):  # w² = 1e40 itself does
        kernel(serial(Dense(1, 1e20, 0.0), Activation(RELU)), np.ones((2, 3), np.float32))


@pytest.mark.parametrize("x1_shape, x2_shape, match", [
    ((3,), None, "shape"),
    ((2, 3, 4, 5, 6), None, "shape"),
    ((3, 4), (3, 5), "agree"),
    ((0, 4), None, "empty"),
])
def test_shape_errors(x1_shape, x2_shape, match):
    x1 = np.ones(x1_shape, np.float32)
    x2 = None if x2_shape is None else np.ones(x2_shape, np.float32)
    with pytest.raises(KernelInputError, match=match):
        kernel(mlp(RELU, 1), x1, x2)


def test_architecture_errors():
    flat, image = np.ones((2, 4), np.float32), np.ones((2, 4, 4, 3), np.float32)
    with pytest.raises(KernelInputError, match="spatial"):
        kernel(serial(Conv(2, (3, 3)), Activation(RELU)), flat)
    with pytest.raises(KernelInputError, match="spatial dimension"):
        kernel(serial(Conv(2, (3,))), image)
    with pytest.raises(KernelInputError, match="does not fit"):
        kernel(serial(Conv(2, (5, 5), None, "VALID")), image)
    with pytest.raises(KernelInputError, match="Gaussian"):
        kernel(serial(Activation(RELU), Dense(1)), flat)
    with pytest.raises(KernelInputError, match="get"):
        kernel(mlp(RELU, 1), flat, get="nothing")
    with pytest.raises(KernelInputError, match="batch_size"):
        kernel(mlp(RELU, 1), flat, batch_size=0)


def test_ntk_of_a_jump_is_an_error():
    step = derive(catalog.step())
    assert step.Kdot is None
    with pytest.raises(KernelInputError, match="NTK does not exist.*get='nngp'"):
        kernel(mlp(step, 1), np.ones((2, 3), np.float32))


def test_dtype_follows_jax_canonicalization():
    """float64 inputs are computed in float64 under x64 only; integers in the default float."""
    net = mlp(RELU, 1)
    with jax.enable_x64(False):
        assert kernel(net, np.ones((2, 3), np.float64)).nngp.dtype == jnp.float32
        assert kernel(net, np.ones((2, 3), np.int32)).nngp.dtype == jnp.float32
    with jax.enable_x64(True):
        assert kernel(net, np.ones((2, 3), np.int32)).nngp.dtype == jnp.float64
        assert kernel(net, np.ones((2, 3), np.float32)).nngp.dtype == jnp.float32
    with pytest.raises(KernelInputError, match="real numbers"):
        kernel(net, np.ones((2, 3), np.complex64))


def test_a_layer_without_a_rule_names_the_interpretation():
    @dataclasses.dataclass(frozen=True)
    class Dropout:
        rate: float = 0.1

    with pytest.raises(NotImplementedError, match="kernel interpretation.*Dropout.*propagate.register"):
        kernel(serial(Dense(1), Dropout()), np.ones((2, 3), np.float32))


def test_a_registered_rule_is_used():
    @dataclasses.dataclass(frozen=True)
    class Scale:
        factor: float

    @propagate.register(Scale)
    def _(layer, k: Kernel) -> Kernel:
        return k.replace(nngp=layer.factor * k.nngp, cov1=layer.factor * k.cov1, cov2=layer.factor * k.cov2,
                         ntk=None if k.ntk is None else layer.factor * k.ntk)

    x = inputs((2, 3), 26, np.float32)
    a, b = kernel(serial(Dense(1), Scale(3.0)), x), kernel(serial(Dense(1)), x)
    np.testing.assert_allclose(a.nngp, 3 * np.asarray(b.nngp), rtol=1e-6)  # one float32 rounding
    assert issubclass(KernelInputError, NtksymError)
