"""NNGP and NTK kernels of whole architectures: one propagation rule per layer type, one jit per call.

The infinite-width recurrences of survey eq. (58)–(61) (fully connected) and (62)–(78)
(convolutions and pooling), with the conventions of neural-tangents 0.6.5 `stax` (DESIGN.md §1):
Σ⁰ = x·x'/C (C = channels, the last axis), Θ⁰ = 0; each layer maps a `Kernel` to a `Kernel`.

Public: `Kernel`, `kernel(net, x1, x2=None, *, get=("nngp", "ntk"), batch_size=None)`,
`propagate` (the singledispatch rule table; register a rule for a layer type of your own) and
`KernelInputError`.

Layout of `Kernel` (the full spatial layout of neural-tangents, with `diagonal_batch=True`):

==============  ===============================  ===================================
inputs          nngp, ntk                        cov1 (cov2 likewise, with n2)
==============  ===============================  ===================================
(n, C)          (n1, n2)                         (n1,)
(n, H, C)       (n1, n2, H, H')                  (n1, H, H')
(n, H, W, C)    (n1, n2, H, H', W, W')           (n1, H, H', W, W')
==============  ===============================  ===================================

so `nngp[i, j, h, h', w, w']` is the covariance of position (h, w) of x1[i] with position (h', w')
of x2[j] for one (infinitely wide) channel. Pooling, global pooling and flatten reduce the
spatial axes. Convolutions and pooling need the off-diagonal (h ≠ h') entries, so they are always
kept (neural-tangents drops them when only a final Flatten follows; the result is the same).

The activation enters only through its lowered dual (`ntksym.lower.lower`): no SymPy runs inside the
recurrence (STYLE.md principle 1).
"""

from __future__ import annotations

import dataclasses
import functools as ft
import math
import operator
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .errors import InvalidCovarianceError, NtksymError
from .layers import Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Serial

__all__ = ["Kernel", "KernelInputError", "kernel", "propagate"]

_GETS = ("nngp", "ntk")
_HIGHEST = lax.Precision.HIGHEST  # Σ⁰ = x·x'/C in full precision: TF32 on GPUs would cost ~1e-3 relative


class KernelInputError(NtksymError):
    """Inputs or an architecture the kernel cannot be computed for (shapes, `get`, a missing K̇, …)."""


# --------------------------------------------------------------------------------------------------
# The Kernel value
# --------------------------------------------------------------------------------------------------


def _static(**kwargs):
    return field(metadata=dict(static=True), **kwargs)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Kernel:
    """NNGP and NTK covariances of a layer's outputs, for inputs x1 (n1 of them) and x2 (n2).

    **Fields** (arrays; see the module docstring for the layout):
    - `nngp`: Σ(x1, x2), or None if not requested.
    - `ntk`: Θ(x1, x2), or None if not requested (or not tracked).
    - `cov1`, `cov2`: Σ(x1, x1) and Σ(x2, x2) for each input with itself (diagonal in the batch),
      the variances the activation rule K(Σ(x,x), Σ(x',x'), Σ(x,x')) needs. When x2 is None
      (x2 = x1), `cov2` is `cov1`, and it equals the batch diagonal of nngp.

    **Static metadata:** `spatial` (spatial shape of the layer's output, () if flat), `width`
    (finite channel count, used by the standard parameterization), `is_gaussian` (the outputs
    are an affine map of Gaussian weights, as an activation requires), `x1_is_x2`.

    Arrays are `jax.Array`s, or `numpy.ndarray`s when `kernel(..., batch_size=...)` assembled
    them block by block (no second copy of a large matrix). Change a Kernel with
    `dataclasses.replace`.
    """

    nngp: jax.Array | np.ndarray | None
    ntk: jax.Array | np.ndarray | None
    cov1: jax.Array | np.ndarray
    cov2: jax.Array | np.ndarray
    spatial: tuple[int, ...] = _static(default=())
    width: int = _static(default=1)
    is_gaussian: bool = _static(default=False)
    x1_is_x2: bool = _static(default=False)

    def replace(self, **changes) -> Kernel:
        """A copy with these fields changed (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------------------
# Lowered duals (the only entry of the activation into the numeric side)
# --------------------------------------------------------------------------------------------------


def _lower_dual(dual, extra_functions: tuple = ()):
    """The lowered dual f: f(q1, q2, c) -> (K, Kdot); f.V(q). Imported lazily (ntksym.lower is the bridge).

    extra_functions: the Activation layer's (class, JAX function) pairs."""
    from .lower import lower

    return lower(dual, extra_functions=dict(extra_functions))


@ft.lru_cache(maxsize=256)
def _lowered(dual, extra_functions: tuple = ()):
    return _lower_dual(dual, extra_functions)


# --------------------------------------------------------------------------------------------------
# Spatial helpers: a covariance array has `batch_ndim` leading batch axes (2 for nngp/ntk, 1 for
# cov1/cov2), then one pair of axes (h, h') per spatial dimension.
# --------------------------------------------------------------------------------------------------


def _pair_axes(batch_ndim: int, dim: int) -> tuple[int, int]:
    a = batch_ndim + 2 * dim
    return a, a + 1


def _pads(size: int, window: int, stride: int, padding: str, what: str) -> tuple[tuple[int, int], int]:
    """(lo, hi) zero padding and output size of a window sliding over `size` positions (lax's rule)."""
    if padding == "VALID":
        out = (size - window) // stride + 1
        if out < 1:
            raise KernelInputError(
                f"{what}: a window of {window} does not fit {size} positions with padding='VALID'; "
                f"use padding='SAME' or a smaller window"
            )
        return (0, 0), out
    ((lo, hi),) = lax.padtype_to_pads((size,), (window,), (stride,), "SAME")
    return (lo, hi), -(-size // stride)


def _pad(x, axes: Sequence[int], pads: tuple[int, int]):
    if pads == (0, 0):
        return x
    widths = [(0, 0)] * x.ndim
    for a in axes:
        widths[a] = pads
    return jnp.pad(x, widths)


def _window_slice(ndim: int, axes: Sequence[int], start: int, n_out: int, stride: int):
    idx = [slice(None)] * ndim
    for a in axes:
        idx[a] = slice(start, start + stride * (n_out - 1) + 1, stride)
    return tuple(idx)


def _conv_pair(x, axes: tuple[int, int], window: int, stride: int, padding: str, what: str):
    """out[p, p'] = (1/f) Σ_r x[p·s + r, p'·s + r] over zero-padded positions (survey eq. (70), NT's fan-in)."""
    pads, n_out = _pads(x.shape[axes[0]], window, stride, padding, what)
    x = _pad(x, axes, pads)
    total = sum(x[_window_slice(x.ndim, axes, r, n_out, stride)] for r in range(window))
    return total / window


def _pool_axis(x, axis: int, window: int, stride: int, padding: str, what: str):
    """out[p] = (1/w) Σ_r x[p·s + r] over zero-padded positions (NT's AvgPool, normalize_edges=False)."""
    pads, n_out = _pads(x.shape[axis], window, stride, padding, what)
    x = _pad(x, (axis,), pads)
    total = sum(x[_window_slice(x.ndim, (axis,), r, n_out, stride)] for r in range(window))
    return total / window


def _spatial_diagonal(x, batch_ndim: int):
    """x[..., h, h, w, w] -> x[..., h, w]: each position with itself."""
    n_spatial = (x.ndim - batch_ndim) // 2
    for dim in range(n_spatial):
        a = batch_ndim + dim
        x = jnp.moveaxis(jnp.diagonal(x, axis1=a, axis2=a + 1), -1, a)
    return x


def _outer_shape(v, batch_ndim: int, slot: int):
    """Reshape variances v[batch, h, w] to broadcast against a (…, h, h', w, w') array in pair `slot` (0 or 1)."""
    n_spatial = v.ndim - 1
    shape = list(v.shape[:1])
    if batch_ndim == 2:
        shape = [v.shape[0], 1] if slot == 0 else [1, v.shape[0]]
    for dim in range(n_spatial):
        size = v.shape[1 + dim]
        shape += [size, 1] if slot == 0 else [1, size]
    return v.reshape(shape)


def _set_spatial_diagonal(cov, values):
    """cov[i, h, h, w, w] = values[i, h, w] (cov1 layout)."""
    idx = [slice(None)]
    n_spatial = values.ndim - 1
    for dim, size in enumerate(values.shape[1:]):
        shape = [1] * n_spatial
        shape[dim] = size
        ar = jnp.arange(size).reshape(shape)
        idx += [ar, ar]
    return cov.at[tuple(idx)].set(values)


def _set_batch_diagonal(x, values):
    """x[i, i, ...] = values[i, ...] for a square x1-with-itself kernel."""
    ar = jnp.arange(x.shape[0])
    return x.at[ar, ar].set(values)


def _batch_diagonal(x):
    """nngp[i, i, …] for a square x1-with-itself kernel: the cov1 layout (n, h, h', …)."""
    return jnp.moveaxis(jnp.diagonal(x, axis1=0, axis2=1), -1, 0)


def _stack_batch(a, b, k: Kernel):
    """a and b (cov1-like, batch first) as one array, or a alone when x1 is x2."""
    return a if k.x1_is_x2 else jnp.concatenate([a, b])


def _map_spatial(fn: Callable, k: Kernel) -> tuple:
    """(nngp, ntk, cov1, cov2) after fn, a map of (batch, h, h', …) arrays acting on the spatial pairs.

    The four are stacked along one batch axis and mapped at once: one fused computation to compile
    instead of four. cov2 is None when x1 is x2, ntk None when untracked."""
    n_pairs = 2 * len(k.spatial)
    parts = [k.nngp, k.ntk, k.cov1, None if k.x1_is_x2 else k.cov2]
    present = [p for p in parts if p is not None]
    flat = [p.reshape((-1, *p.shape[p.ndim - n_pairs:])) for p in present]
    out = fn(jnp.concatenate(flat) if len(flat) > 1 else flat[0])
    bounds = np.cumsum([f.shape[0] for f in flat])[:-1]
    pieces = iter(jnp.split(out, bounds) if len(flat) > 1 else [out])
    return tuple(None if p is None else next(pieces).reshape((*p.shape[:p.ndim - n_pairs], *out.shape[1:]))
                 for p in parts)


def _require_spatial(k: Kernel, layer, n_dims: int) -> None:
    if not k.spatial:
        raise KernelInputError(
            f"{type(layer).__name__} needs spatial inputs (n, H, C) or (n, H, W, C), but its input is flat "
            f"(n, features); put it before any Flatten/GlobalAvgPool, or use Dense"
        )
    if n_dims != len(k.spatial):
        raise KernelInputError(
            f"{layer!r} has {n_dims} spatial dimension(s) but its input has {len(k.spatial)} "
            f"(spatial shape {k.spatial}); give one filter/window size per spatial dimension"
        )


# --------------------------------------------------------------------------------------------------
# Propagation rules: one per layer type (STYLE.md principle 3)
# --------------------------------------------------------------------------------------------------


@ft.singledispatch
def propagate(layer, k: Kernel) -> Kernel:
    """The Kernel after `layer`, given the Kernel `k` of its inputs (one rule per layer type).

    Register a rule for a layer type of your own with `@ntksym.kernel.propagate.register`."""
    if type(layer).__module__ == "ntksym.layers":
        raise NotImplementedError(
            f"internal error: the kernel interpretation (ntksym.kernel.propagate) has no rule for the "
            f"ntksym layer {type(layer).__name__}; please report this"
        )
    raise NotImplementedError(
        f"the kernel interpretation (NNGP/NTK, ntksym.kernel.propagate) has no rule for the layer type "
        f"{type(layer).__module__}.{type(layer).__qualname__}. Built-in rules: Dense, Activation, Conv, "
        f"AvgPool, GlobalAvgPool, Flatten, Serial. Register one with "
        f"@ntksym.kernel.propagate.register({type(layer).__name__}) def rule(layer, k): ... -> Kernel"
    )


_MAX_PERIOD = 4  # longest repeated block of layers looked for (an MLP repeats [Dense, Activation])
_MIN_REPEATS = 3  # a block repeated this often is compiled once, as a loop


@propagate.register
def _serial(layer: Serial, k: Kernel) -> Kernel:
    """Layers in order. A block of layers repeated back to back (as in mlp()) runs as a lax.scan loop
    after its first pass, so a deep network compiles in the time of a shallow one."""
    layers, i = layer.layers, 0
    while i < len(layers):
        period, repeats = _repeated_block(layers, i)
        if repeats >= _MIN_REPEATS:
            block = layers[i:i + period]
            k = _scan_block(block, _apply(block, k), repeats - 1)
            i += period * repeats
        else:
            k = propagate(layers[i], k)
            i += 1
    return k


def _apply(block: Sequence, k: Kernel) -> Kernel:
    for sub in block:
        k = propagate(sub, k)
    return k


def _repeated_block(layers: Sequence, i: int) -> tuple[int, int]:
    """(period, repeats) of the block starting at i that repeats most often back to back."""
    best = (1, 1)
    for period in range(1, _MAX_PERIOD + 1):
        block = layers[i:i + period]
        if len(block) < period:
            break
        repeats = 1
        while tuple(layers[i + repeats * period: i + (repeats + 1) * period]) == tuple(block):
            repeats += 1
        if repeats > best[1]:
            best = (period, repeats)
    return best


def _scan_block(block: Sequence, k: Kernel, n: int) -> Kernel:
    """`block` applied n more times; a lax.scan when one pass keeps the Kernel's shapes and metadata."""
    if n < 1:
        return k
    after = jax.eval_shape(ft.partial(_apply, block), k)
    before = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), k)
    if jax.tree_util.tree_structure(after) != jax.tree_util.tree_structure(before) or \
            jax.tree_util.tree_leaves(after) != jax.tree_util.tree_leaves(before):
        for _ in range(n):
            k = _apply(block, k)
        return k
    k, _ = lax.scan(lambda carry, _: (_apply(block, carry), None), k, None, length=n)
    return k


def _map_covs(k: Kernel, fn: Callable) -> dict:
    """fn applied to nngp, cov1 and cov2 (once when cov2 is cov1)."""
    cov1 = fn(k.cov1)
    return dict(nngp=fn(k.nngp), cov1=cov1, cov2=cov1 if k.x1_is_x2 else fn(k.cov2))


def _squares(layer, k: Kernel) -> tuple[float, float]:
    """(w_std², b_std²), checked to fit the working precision (a Python float would overflow on cast)."""
    w2, b2 = layer.w_std**2, layer.b_std**2
    dtype = k.cov1.dtype
    if max(w2, b2) > float(jnp.finfo(dtype).max):
        raise KernelInputError(
            f"{layer!r}: w_std² = {w2:.3g} or b_std² = {b2:.3g} overflows {jnp.dtype(dtype).name}; "
            f"use smaller standard deviations or float64 inputs (jax.enable_x64)"
        )
    return w2, b2


def _bias_ntk(b_std: float) -> float:
    # Standard parameterization: a bias's gradient is 1, so it adds 1 to Θ. b_std = 0 means "no bias"
    # (neural-tangents' b_std=None); in the NTK parameterization b_std·b has gradient b_std, already in Σ.
    return 1.0 if b_std > 0 else 0.0


@propagate.register
def _dense(layer: Dense, k: Kernel) -> Kernel:
    """Σ ↦ w²Σ + b² (survey eq. (58)); Θ ↦ Σ' + w²Θ (NTK param.) or N·Σ + w²Θ + 1[bias] (standard, N = fan-in)."""
    w2, b2 = _squares(layer, k)
    new = _map_covs(k, lambda m: w2 * m + b2)
    ntk = k.ntk
    if ntk is not None:
        if layer.parameterization == "ntk":
            ntk = new["nngp"] + w2 * ntk
        else:
            ntk = k.width * k.nngp + w2 * ntk + _bias_ntk(layer.b_std)
    return k.replace(ntk=ntk, width=layer.out_dim, is_gaussian=True, **new)


@propagate.register
def _conv(layer: Conv, k: Kernel) -> Kernel:
    """Σ ↦ w²·(1/|f|)Σ_r Σ^{s+r, s'+r} + b² (survey eq. (69)–(70), normalised by the filter size as NT's
    fan-in C·|f|); Θ ↦ w²·(1/|f|)Σ_r Θ^{s+r, s'+r} + Σ' (eq. (78) with r = r'), or the standard form."""
    n_dims = len(layer.filter_shape)
    _require_spatial(k, layer, n_dims)
    strides = layer.strides or (1,) * n_dims
    what = repr(layer)

    def unscaled(m):
        for dim in range(n_dims):
            m = _conv_pair(m, _pair_axes(1, dim), layer.filter_shape[dim], strides[dim], layer.padding, what)
        return m

    w2, b2 = _squares(layer, k)
    nngp_u, ntk_u, cov1_u, cov2_u = _map_spatial(unscaled, k)
    nngp, cov1 = w2 * nngp_u + b2, w2 * cov1_u + b2
    cov2 = cov1 if k.x1_is_x2 else w2 * cov2_u + b2
    ntk = None
    if ntk_u is not None:
        if layer.parameterization == "ntk":
            ntk = w2 * ntk_u + nngp
        else:
            fan_in = k.width * math.prod(layer.filter_shape)
            ntk = fan_in * nngp_u + w2 * ntk_u + _bias_ntk(layer.b_std)
    spatial = tuple(_pads(k.spatial[d], layer.filter_shape[d], strides[d], layer.padding, what)[1]
                    for d in range(n_dims))
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, spatial=spatial, width=layer.out_chan,
                     is_gaussian=True)


@propagate.register
def _activation(layer: Activation, k: Kernel) -> Kernel:
    """Σ ↦ K_σ(Σ(x,x), Σ(x',x'), Σ(x,x')), Θ ↦ K̇_σ(…)·Θ (DESIGN.md §1; survey eq. (60)–(61), (76)–(78))."""
    dual = layer.dual
    if not k.is_gaussian:
        raise KernelInputError(
            f"the activation {dual.activation} needs Gaussian pre-activations: put a Dense or Conv layer "
            f"before it (its input here is the network input or a Flatten output; neural-tangents "
            f"requires the same)"
        )
    if k.ntk is not None and dual.Kdot is None:
        raise KernelInputError(
            f"the NTK does not exist for σ = {dual.activation}: K̇ is undefined ({dual.Kdot_reason}). "
            f"Ask for the NNGP only: kernel(net, x1, x2, get='nngp')"
        )
    f = _lowered(dual, layer.extra_functions)
    if k.spatial:
        var1 = _spatial_diagonal(k.cov1, 1)
        var2 = var1 if k.x1_is_x2 else _spatial_diagonal(k.cov2, 1)
        K, Kdot = f(_outer_shape(var1, 2, 0), _outer_shape(var2, 2, 1), k.nngp)
        # cov1 and cov2 in one call (one compiled kernel); each position with itself is V(q) exactly,
        # as K(q, q, q) at ρ = 1 is ill-conditioned
        var, cov = _stack_batch(var1, var2, k), _stack_batch(k.cov1, k.cov2, k)
        cov = _set_spatial_diagonal(f(_outer_shape(var, 1, 0), _outer_shape(var, 1, 1), cov)[0], f.V(var))
    else:
        # each input with itself at ρ = 1 exactly: the Dense layers' affine maps of nngp and cov1 may be fused
        # differently by XLA (a multiply-add in one, not the other), leaving c ≠ q by an ulp, which K̇'s
        # √(1 − ρ) behaviour at ρ = 1 (σ' with a jump: elu) turns into 2e-9 relative errors of the NTK
        nngp = _set_batch_diagonal(k.nngp, k.cov1) if k.x1_is_x2 else k.nngp
        K, Kdot = f(k.cov1[:, None], k.cov2[None, :], nngp)
        cov = f.V(_stack_batch(k.cov1, k.cov2, k))
    n1 = k.cov1.shape[0]
    cov1, cov2 = (cov, cov) if k.x1_is_x2 else (cov[:n1], cov[n1:])
    if k.x1_is_x2:
        # Σ(x_i, x_i) is V exactly, as in cov1; keeps nngp and cov1 consistent, so ρ = 1 there
        K = _set_batch_diagonal(K, cov1)
    ntk = None if k.ntk is None else Kdot * k.ntk
    return k.replace(nngp=K, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)


@propagate.register
def _avg_pool(layer: AvgPool, k: Kernel) -> Kernel:
    """Average pooling: each of (h, h') averaged over its own window, divided by the window size (NT's
    `AvgPool(normalize_edges=False)`; strides default to 1 as in NT)."""
    n_dims = len(layer.window_shape)
    _require_spatial(k, layer, n_dims)
    strides = layer.strides or (1,) * n_dims
    what = repr(layer)

    def pool(m):
        for dim in range(n_dims):
            for a in _pair_axes(1, dim):
                m = _pool_axis(m, a, layer.window_shape[dim], strides[dim], layer.padding, what)
        return m

    nngp, ntk, cov1, cov2 = _map_spatial(pool, k)
    spatial = tuple(_pads(k.spatial[d], layer.window_shape[d], strides[d], layer.padding, what)[1]
                    for d in range(n_dims))
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov1 if k.x1_is_x2 else cov2, spatial=spatial)


@propagate.register
def _global_avg_pool(layer: GlobalAvgPool, k: Kernel) -> Kernel:
    """Mean over all spatial positions of both inputs (survey eq. (62), (75); NT's GlobalAvgPool)."""
    _require_spatial(k, layer, len(k.spatial))

    def mean(m, batch_ndim: int):
        return None if m is None else jnp.mean(m, axis=tuple(range(batch_ndim, m.ndim)))

    cov1 = mean(k.cov1, 1)
    return k.replace(nngp=mean(k.nngp, 2), ntk=mean(k.ntk, 2), cov1=cov1,
                     cov2=cov1 if k.x1_is_x2 else mean(k.cov2, 1), spatial=())


@propagate.register
def _flatten(layer: Flatten, k: Kernel) -> Kernel:
    """Mean over positions of each position with itself (the trace / size of NT's Flatten); width ×= H·W."""
    def trace(m, batch_ndim: int):
        if m is None or not k.spatial:
            return m
        return jnp.mean(_spatial_diagonal(m, batch_ndim), axis=tuple(range(batch_ndim, batch_ndim + len(k.spatial))))

    cov1 = trace(k.cov1, 1)
    return k.replace(nngp=trace(k.nngp, 2), ntk=trace(k.ntk, 2), cov1=cov1,
                     cov2=cov1 if k.x1_is_x2 else trace(k.cov2, 1), spatial=(),
                     width=k.width * math.prod(k.spatial), is_gaussian=False)


# --------------------------------------------------------------------------------------------------
# The input layer and the whole recurrence
# --------------------------------------------------------------------------------------------------

_LETTERS = "hgwv"


def _input_kernel(x1, x2, track_ntk: bool) -> Kernel:
    """Σ⁰(x, x') = Σ_c x_c x'_c / C per pair of positions (NT's input kernel), Θ⁰ = 0."""
    n_spatial = x1.ndim - 2
    channels = x1.shape[-1]
    pos1 = "".join(_LETTERS[2 * d] for d in range(n_spatial))
    pos2 = "".join(_LETTERS[2 * d + 1] for d in range(n_spatial))
    pairs = "".join(_LETTERS[2 * d: 2 * d + 2] for d in range(n_spatial))
    cross = ft.partial(jnp.einsum, f"i{pos1}c,j{pos2}c->ij{pairs}", precision=_HIGHEST)
    x1_is_x2 = x2 is None
    nngp = cross(x1, x1 if x1_is_x2 else x2) / channels
    if n_spatial:
        self_cov = ft.partial(jnp.einsum, f"i{pos1}c,i{pos2}c->i{pairs}", precision=_HIGHEST)
    else:  # a sum of squares: cheaper to compile and run than a batched dot
        self_cov = lambda a, _: jnp.sum(a * a, axis=-1)  # noqa: E731
    cov1 = self_cov(x1, x1) / channels
    cov2 = cov1 if x1_is_x2 else self_cov(x2, x2) / channels
    if x1_is_x2:
        # the same numbers on the batch diagonal of nngp as in cov1, whatever the shape of the dot
        nngp = _set_batch_diagonal(nngp, cov1)
    return Kernel(nngp=nngp, ntk=jnp.zeros_like(nngp) if track_ntk else None, cov1=cov1, cov2=cov2,
                  spatial=tuple(x1.shape[1:-1]), width=channels, is_gaussian=False, x1_is_x2=x1_is_x2)


def _all_finite(*arrays) -> jax.Array:
    flags = [jnp.all(jnp.isfinite(a)) for a in arrays if a is not None]
    return ft.reduce(operator.and_, flags)


def _recurrence(net, get: tuple[str, ...], x1_is_x2: bool) -> Callable:
    """The whole recurrence as one function of the inputs: (x1[, x2]) -> (Kernel, all-finite flag)."""
    track_ntk = "ntk" in get

    def run(x1, x2):
        k = propagate(net, _input_kernel(x1, x2, track_ntk))
        out = k.replace(nngp=k.nngp if "nngp" in get else None, ntk=k.ntk if track_ntk else None)
        return out, _all_finite(out.nngp, out.ntk, out.cov1, out.cov2)

    if x1_is_x2:
        return lambda x1: run(x1, None)
    return run


@ft.lru_cache(maxsize=64)
def _compiled(net, get: tuple[str, ...], spec1: tuple, spec2: tuple | None, x64: bool):
    """The compiled recurrence for this architecture, `get`, input shapes and dtype (cached)."""
    del x64  # part of the cache key only: it decides how weakly typed constants are traced
    shape1, dtype = spec1
    args = [jax.ShapeDtypeStruct(shape1, dtype)]
    if spec2 is not None:
        args.append(jax.ShapeDtypeStruct(spec2[0], dtype))
    return jax.jit(_recurrence(net, get, spec2 is None)).lower(*args).compile()


# --------------------------------------------------------------------------------------------------
# Validation (concrete, before jit) and error diagnosis
# --------------------------------------------------------------------------------------------------


def _check_get(get) -> tuple[str, ...]:
    names = (get,) if isinstance(get, str) else tuple(get)
    bad = [g for g in names if g not in _GETS]
    if not names or bad:
        raise KernelInputError(f"get must name one or both of {_GETS}, got {get!r}")
    return tuple(g for g in _GETS if g in names)


def _working_dtype(x) -> np.dtype:
    """float32 or float64, as JAX canonicalizes the inputs' dtype (float64 needs jax.enable_x64)."""
    dtype = np.dtype(x.dtype)
    if dtype.kind not in "iubf":
        raise KernelInputError(f"inputs must be real numbers (float32/float64), got dtype {dtype}")
    if dtype.kind == "f" and dtype.itemsize < 4:
        dtype = np.dtype(np.float32)  # half precisions are computed in float32
    elif dtype.kind != "f":
        dtype = np.dtype(float)  # integers and booleans in the widest float available
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))


def _as_input(x, name: str):
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = np.asarray(x)
    if x.ndim not in (2, 3, 4):
        raise KernelInputError(
            f"{name} must have shape (n, features), (n, H, C) or (n, H, W, C) (batch first, channels last), "
            f"got shape {tuple(x.shape)}"
        )
    if min(x.shape) < 1:
        raise KernelInputError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    finite = bool(jnp.all(jnp.isfinite(x))) if isinstance(x, jax.Array) else bool(np.all(np.isfinite(x)))
    if not finite:
        raise InvalidCovarianceError(
            f"{name} contains NaN or infinite values, so its covariance Σ⁰ = x·x'/C is not valid; "
            f"clean or impute the inputs first"
        )
    return x


def _flat_layers(net):
    return [sub for layer in (net.layers if isinstance(net, Serial) else (net,))
            for sub in (_flat_layers(layer) if isinstance(layer, Serial) else (layer,))]


def _diagnose(net, get, x1, x2, dtype) -> None:
    """Called when the result is not finite: re-run layer by layer, eagerly, and name the first culprit."""
    x1 = jnp.asarray(x1, dtype)
    x2 = None if x2 is None else jnp.asarray(x2, dtype)
    with warnings.catch_warnings():
        # constants that overflow the working dtype warn when cast eagerly; the error below says it better
        warnings.simplefilter("ignore", RuntimeWarning)
        k = _input_kernel(x1, x2, "ntk" in get)
        where = "the input layer (x·x'/C)"
        for i, layer in enumerate([None, *_flat_layers(net)]):
            if layer is not None:
                k = propagate(layer, k)
                where = f"layer {i - 1} ({layer!r})"
            if not bool(_all_finite(k.nngp, k.ntk, k.cov1, k.cov2)):
                raise InvalidCovarianceError(
                    f"the kernel is not finite after {where}: its values overflow {np.dtype(dtype).name}. "
                    f"Rescale the inputs, lower w_std/b_std, or compute in float64 (jax.enable_x64)"
                )
    raise InvalidCovarianceError(
        "the kernel is not finite, but an eager re-run is; please report this (a compiled/eager mismatch)"
    )


# --------------------------------------------------------------------------------------------------
# The public entry point
# --------------------------------------------------------------------------------------------------


def kernel(net, x1, x2=None, *, get=("nngp", "ntk"), batch_size: int | None = None) -> Kernel:
    """The NNGP and NTK of the architecture `net` between the inputs x1 and x2 (survey eq. (58)–(78)).

    **Arguments:**
    - `net`: a layer description (`ntksym.layers`: Serial, Dense, Activation, Conv, …).
    - `x1`: inputs, batch first and channels last: (n1, features), (n1, H, C) or (n1, H, W, C).
      The working precision follows the inputs as JAX canonicalizes them: float64 inputs are computed
      in float64 under `jax.enable_x64` and in float32 otherwise (ntksym never switches x64 on).
    - `x2`: inputs of the same shape apart from the batch size, or None for x2 = x1.
    - `get`: "nngp", "ntk" or both (the default).
    - `batch_size`: compute the Gram matrices in blocks of batch_size rows × batch_size columns,
      assembled into preallocated NumPy arrays (for large n; each block is one compiled call,
      and with x2 = None only blocks on and above the diagonal are computed).

    **Returns:** a `Kernel` (layout in the module docstring). The whole recurrence runs as one
    jit-compiled function, cached per (architecture, get, input shapes, dtype).

    **Raises:** `KernelInputError` (shapes, `get`, an architecture that does not fit the inputs, an
    NTK asked of an activation without K̇), `InvalidCovarianceError` (NaN/inf inputs, or a
    kernel that overflows the working precision), `NotImplementedError` (a layer type without a rule).
    """
    get = _check_get(get)
    x1 = _as_input(x1, "x1")
    if x2 is not None:
        x2 = _as_input(x2, "x2")
        if tuple(x2.shape[1:]) != tuple(x1.shape[1:]):
            raise KernelInputError(
                f"x1 and x2 must agree in every axis but the batch: x1 has shape {tuple(x1.shape)}, "
                f"x2 has shape {tuple(x2.shape)}"
            )
    dtype = _working_dtype(x1)
    if x2 is not None and _working_dtype(x2) != dtype:
        raise KernelInputError(f"x1 and x2 must have the same dtype, got {x1.dtype} and {x2.dtype}")
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise KernelInputError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        return _kernel_blocked(net, get, x1, x2, int(batch_size), dtype)
    x1 = jnp.asarray(x1, dtype)
    x2 = None if x2 is None else jnp.asarray(x2, dtype)
    fn = _compiled(net, get, (tuple(x1.shape), dtype), None if x2 is None else (tuple(x2.shape), dtype),
                   bool(jax.config.jax_enable_x64))
    out, ok = fn(x1) if x2 is None else fn(x1, x2)
    if not bool(ok):
        _diagnose(net, get, x1, x2, dtype)
    return out


def _pad_rows(x: np.ndarray, multiple: int) -> np.ndarray:
    """Pad the batch to a multiple of `multiple` with copies of row 0 (valid inputs; results discarded)."""
    extra = -x.shape[0] % multiple
    if not extra:
        return x
    return np.concatenate([x, np.broadcast_to(x[:1], (extra, *x.shape[1:]))])


def _swap_block(block: np.ndarray) -> np.ndarray:
    """The (x2, x1) block of an (x1, x2) kernel block: swap the batch axes and each spatial pair."""
    axes = [1, 0]
    for a in range(2, block.ndim, 2):
        axes += [a + 1, a]
    return np.transpose(block, axes)


def _kernel_blocked(net, get, x1, x2, b: int, dtype) -> Kernel:
    """kernel() in blocks of b rows × b columns, assembled into preallocated NumPy arrays."""
    n1 = x1.shape[0]
    symmetric = x2 is None
    n2 = n1 if symmetric else x2.shape[0]
    b1, b2 = min(b, n1), min(b, n2)
    x1p = _pad_rows(np.asarray(x1, dtype), b1)
    x2p = x1p if symmetric else _pad_rows(np.asarray(x2, dtype), b2)
    x64 = bool(jax.config.jax_enable_x64)
    spec1 = ((b1, *x1.shape[1:]), dtype)
    pair = _compiled(net, get, spec1, ((b2, *x1.shape[1:]), dtype), x64)
    diag = _compiled(net, get, spec1, None, x64) if symmetric else None

    tasks = [(i, j) for i in range(0, n1, b1) for j in range(i if symmetric else 0, n2, b2)]
    out: dict[str, np.ndarray] = {}
    cov1 = cov2 = None

    def launch(i, j):
        xi = jnp.asarray(x1p[i:i + b1])
        if symmetric and i == j:
            return diag(xi)
        return pair(xi, jnp.asarray(x2p[j:j + b2]))

    def store(i, j, result) -> None:
        nonlocal cov1, cov2
        blk, ok = result
        if not bool(ok):
            _diagnose(net, get, x1p[i:i + b1], None if symmetric and i == j else x2p[j:j + b2], dtype)
        ri, rj = slice(i, min(i + b1, n1)), slice(j, min(j + b2, n2))
        if cov1 is None:
            cov1 = np.empty((n1, *blk.cov1.shape[1:]), dtype)
            cov2 = cov1 if symmetric else np.empty((n2, *blk.cov2.shape[1:]), dtype)
            for name in get:
                out[name] = np.empty((n1, n2, *getattr(blk, name).shape[2:]), dtype)
        rows, cols = ri.stop - ri.start, rj.stop - rj.start
        if j == (i if symmetric else 0):
            cov1[ri] = np.asarray(blk.cov1)[:rows]
        if i == 0 and not symmetric:
            cov2[rj] = np.asarray(blk.cov2)[:cols]
        for name in get:
            block = np.asarray(getattr(blk, name))[:rows, :cols]
            out[name][ri, rj] = block
            if symmetric and i != j:
                out[name][rj, ri] = _swap_block(block)
        last_meta.update(spatial=blk.spatial, width=blk.width, is_gaussian=blk.is_gaussian)

    last_meta: dict = {}
    pending = None  # dispatch the next block before copying the previous one: overlap compute and copy
    for i, j in tasks:
        result = launch(i, j)
        if pending is not None:
            store(*pending)
        pending = (i, j, result)
    store(*pending)
    return Kernel(nngp=out.get("nngp"), ntk=out.get("ntk"), cov1=cov1, cov2=cov2, x1_is_x2=symmetric,
                  **last_meta)
