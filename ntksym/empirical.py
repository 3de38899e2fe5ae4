"""The finite-width network of a layer description: `init` and `apply`, as neural-tangents' stax.

One interpretation of the inert layers in ntksym.layers (STYLE.md principle 3): a rule per layer type
for the parameters (`_init_layer`) and one for the forward pass (`_apply_layer`), both dispatched with
functools.singledispatch. The conventions are those of neural-tangents 0.6.5 `stax` init_fn/apply_fn
(DESIGN.md §1), so that empirical kernels of these networks estimate the analytic ones:

* Dense, "ntk" parameterization: W ~ N(0, 1) of shape (fan_in, out), b ~ N(0, 1) of shape (1, …, 1, out),
  output (w_std/√fan_in)·x·W + b_std·b. "standard": W ~ N(0, w_std²/fan_in), b ~ N(0, b_std²),
  output x·W + b. Dense acts on the last (channel) axis of inputs of any rank.
* Conv: NHWC inputs, HWIO filters, `lax.conv_general_dilated` with the layer's strides (default 1) and
  "SAME"/"VALID" padding; fan_in = in_channels × filter size, otherwise as Dense; b of shape (1, …, 1, out).
* AvgPool: sum over each window (zero padding for "SAME") divided by the window size; strides default 1.
* GlobalAvgPool: mean over the spatial axes; Flatten: (batch, everything else).
* Serial: layer i draws from the i-th key of `rng, layer_rng = split(rng)` (jax.example_libraries.stax);
  Dense and Conv split their key into (W, b). With the same key and input shape, `init` draws the same
  numbers as neural-tangents.

`params` is a tuple with one entry per layer: (W, b) for Dense and Conv, () for the others, a nested tuple
for a nested Serial; `jax.grad` and `jax.jacobian` take it as it is.

The activation σ is evaluated elementwise from `dual.activation.expr`, lowered by ntksym.lower's
`lower_elementwise` (a table walk, never `sympy.lambdify`); an expression it cannot lower raises LoweringError.
"""

from __future__ import annotations

import functools as ft
import itertools
import math
import operator
from dataclasses import replace

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import lax

from .errors import NtksymError
from .layers import Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Serial
from .lower import lower_elementwise

__all__ = ["NetworkError", "ShapeError", "apply", "init"]

_INTERPRETATION = "the finite-width network (ntksym.empirical)"


class NetworkError(NtksymError):
    """Invalid arguments to the finite-width network: width, dtype, or params that do not fit the net."""


class ShapeError(NetworkError):
    """An input shape that a layer cannot take (wrong rank, channel count, or an empty output)."""


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def init(net, key, input_shape, width: int | None = None, *, dtype=None):
    """Draw the parameters of the finite-width network `net` for inputs of shape `input_shape`.

    **Arguments:**
    - `net`: a Serial (or a single layer) from ntksym.layers.
    - `key`: a JAX PRNG key (`jax.random.key` or `jax.random.PRNGKey`).
    - `input_shape`: (batch, d) for an MLP, (batch, spatial..., channels) for a conv net.
    - `width`: every Dense/Conv except the last gets `width` outputs; the last keeps its own
      out_dim/out_chan. None: every layer keeps its own.
    - `dtype`: of the parameters; by default JAX's default float (float64 iff x64 mode is on), which is
      what neural-tangents draws.

    **Returns:** params, a tuple with one entry per layer ((W, b) for Dense and Conv, () otherwise).

    **Raises:** ShapeError (input shape), NetworkError (width, dtype), LayerError from the layers.
    """
    dtype = _param_dtype(dtype)
    shape = _check_input_shape(input_shape)
    net = _resize(_as_serial(net), width)
    params, _ = _init_layer(net, key, shape, dtype)
    return params


def apply(net, params, x):
    """The output of the finite-width network `net` with parameters `params` at inputs `x`.

    Computes in the dtype of `x` (float32, or float64 under x64), casting params to it.

    **Raises:** ShapeError if x does not fit the layers, NetworkError if params do not fit the net.
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise NetworkError(
            f"apply needs floating-point inputs, got dtype {x.dtype}; cast them, e.g. x.astype(jnp.float32)"
        )
    if x.ndim < 2:
        raise ShapeError(
            f"inputs must have a batch axis and a feature axis, (batch, d) or (batch, spatial..., channels); "
            f"got shape {x.shape}. Add a batch axis with x[None]"
        )
    return _apply_layer(_as_serial(net), params, x)


# --------------------------------------------------------------------------------------------------
# Argument handling
# --------------------------------------------------------------------------------------------------


def _as_serial(net) -> Serial:
    return net if isinstance(net, Serial) else Serial((net,))


def _param_dtype(dtype):
    if dtype is None:
        return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise NetworkError(f"init's dtype must be a floating type such as float32 or float64, got {dtype}")
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise NetworkError(
            f"init was asked for {dtype} parameters, but JAX's x64 mode is off; "
            "enable it for this computation with `with jax.enable_x64(True):` or ask for float32"
        )
    return dtype


def _check_input_shape(input_shape) -> tuple[int, ...]:
    try:
        shape = tuple(operator.index(n) for n in input_shape)
    except TypeError:
        raise ShapeError(f"input_shape must be a tuple of integers, got {input_shape!r}") from None
    if len(shape) < 2 or min(shape) < 1:
        raise ShapeError(
            f"input_shape must be (batch, d) or (batch, spatial..., channels) with positive sizes, got {shape}"
        )
    return shape


def _resize(net: Serial, width: int | None) -> Serial:
    """net with every Dense/Conv but the last given `width` outputs (through replace; layers stay frozen)."""
    if width is None:
        return net
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise NetworkError(f"width must be a positive integer or None, got {width!r}")
    n_linear = sum(1 for _ in _linear_layers(net))
    counter = itertools.count()

    def resize(layer):
        if isinstance(layer, Serial):
            return replace(layer, layers=tuple(resize(sub) for sub in layer.layers))
        if isinstance(layer, (Dense, Conv)) and next(counter) < n_linear - 1:
            field = "out_dim" if isinstance(layer, Dense) else "out_chan"
            return replace(layer, **{field: int(width)})
        return layer

    return resize(net)


def _linear_layers(layer):
    if isinstance(layer, Serial):
        for sub in layer.layers:
            yield from _linear_layers(sub)
    elif isinstance(layer, (Dense, Conv)):
        yield layer


def _no_rule(layer, what: str) -> NotImplementedError:
    kind = type(layer)
    if kind.__module__.startswith("ntksym."):
        return NotImplementedError(
            f"internal error: ntksym's layer {kind.__name__} has no {what} rule in {_INTERPRETATION}; "
            "please report this"
        )
    return NotImplementedError(
        f"{kind.__name__} has no {what} rule in {_INTERPRETATION}: only ntksym's layers (Dense, Activation, "
        "Conv, AvgPool, GlobalAvgPool, Flatten, Serial) can be built as a finite-width network"
    )


def _spec(n_spatial: int) -> tuple[str, str, str]:
    """NHWC inputs and outputs, HWIO filters (neural-tangents' Conv dimension numbers)."""
    sp_axes = "HWD"[:n_spatial]
    return "N" + sp_axes + "C", sp_axes + "IO", "N" + sp_axes + "C"


def _out_size(size: int, window: int, stride: int, padding: str) -> int:
    if padding == "SAME":
        return -(-size // stride)
    return (size - window) // stride + 1 if size >= window else 0


def _check_spatial(layer, x_shape, window, strides, what: str) -> None:
    n = len(window)
    if len(x_shape) != n + 2:
        raise ShapeError(
            f"{what} with a {n}-D window {tuple(window)} needs inputs of rank {n + 2} "
            f"(batch, {n} spatial axes, channels), got shape {tuple(x_shape)}"
        )
    out = [_out_size(s, w, st, layer.padding) for s, w, st in zip(x_shape[1:-1], window, strides)]
    if min(out) < 1:
        raise ShapeError(
            f"{what} with window {tuple(window)}, strides {tuple(strides)} and padding {layer.padding!r} gives an "
            f"empty output on spatial shape {tuple(x_shape[1:-1])}; use padding='SAME' or a smaller window"
        )


def _unpack_linear(layer, params, n_dims: int):
    what = type(layer).__name__
    if not (isinstance(params, (tuple, list)) and len(params) == 2):
        raise NetworkError(f"{what} expects params (W, b), got {type(params).__name__}; use init(net, ...)")
    W, b = (jnp.asarray(p) for p in params)
    if W.ndim != n_dims or b.ndim < 1 or b.shape[-1] != W.shape[-1]:
        raise NetworkError(
            f"{what} params have W of shape {W.shape} and b of shape {b.shape}; they do not fit this layer "
            "(were they drawn for another net?)"
        )
    return W, b


# --------------------------------------------------------------------------------------------------
# Parameters: one rule per layer type. A rule returns (params, output shape).
# --------------------------------------------------------------------------------------------------


@ft.singledispatch
def _init_layer(layer, key, shape: tuple[int, ...], dtype):
    raise _no_rule(layer, "init")


def _output_shape(layer, params, shape, dtype) -> tuple[int, ...]:
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
    out = jax.eval_shape(lambda p, x: _apply_layer(layer, p, x), abstract, jax.ShapeDtypeStruct(shape, dtype))
    return tuple(out.shape)


@_init_layer.register
def _(layer: Serial, key, shape, dtype):
    params = []
    for sub in layer.layers:
        key, sub_key = jr.split(key)
        p, shape = _init_layer(sub, sub_key, shape, dtype)
        params.append(p)
    return tuple(params), shape


def _draw_linear(layer, key, W_shape, b_shape, fan_in: int, dtype):
    """W ~ N(0, 1), b ~ N(0, 1) (ntk), or scaled to N(0, w_std²/fan_in), N(0, b_std²) (standard)."""
    k_W, k_b = jr.split(key)
    W = jr.normal(k_W, W_shape, dtype)
    b = jr.normal(k_b, b_shape, dtype)
    if layer.parameterization == "standard":
        W = W * (layer.w_std / fan_in**0.5)  # neural-tangents' expression, so the draws agree to the last bit
        b = b * layer.b_std
    return W, b


@_init_layer.register
def _(layer: Dense, key, shape, dtype):
    fan_in = shape[-1]
    params = _draw_linear(layer, key, (fan_in, layer.out_dim), (1,) * (len(shape) - 1) + (layer.out_dim,),
                          fan_in, dtype)
    return params, _output_shape(layer, params, shape, dtype)


@_init_layer.register
def _(layer: Conv, key, shape, dtype):
    n = len(layer.filter_shape)
    if len(shape) != n + 2:
        raise ShapeError(
            f"Conv with a {n}-D filter {layer.filter_shape} needs input_shape of rank {n + 2} "
            f"(batch, {n} spatial axes, channels), got {shape}"
        )
    fan_in = shape[-1] * math.prod(layer.filter_shape)
    params = _draw_linear(layer, key, (*layer.filter_shape, shape[-1], layer.out_chan),
                          (1,) * (n + 1) + (layer.out_chan,), fan_in, dtype)
    return params, _output_shape(layer, params, shape, dtype)


@_init_layer.register(Activation)
@_init_layer.register(AvgPool)
@_init_layer.register(GlobalAvgPool)
@_init_layer.register(Flatten)
def _(layer, key, shape, dtype):
    return (), _output_shape(layer, (), shape, dtype)


# --------------------------------------------------------------------------------------------------
# Forward pass: one rule per layer type
# --------------------------------------------------------------------------------------------------


@ft.singledispatch
def _apply_layer(layer, params, x):
    raise _no_rule(layer, "apply")


@_apply_layer.register
def _(layer: Serial, params, x):
    if not isinstance(params, (tuple, list)) or len(params) != len(layer.layers):
        got = f"{len(params)} entries" if isinstance(params, (tuple, list)) else type(params).__name__
        raise NetworkError(
            f"params do not fit the net: it has {len(layer.layers)} layers, params has {got}; "
            "draw them with init(net, key, input_shape)"
        )
    for sub, p in zip(layer.layers, params):
        x = _apply_layer(sub, p, x)
    return x


def _affine(layer, product, b, fan_in: int):
    if layer.parameterization == "ntk":
        return (layer.w_std / fan_in**0.5) * product + layer.b_std * b
    return product + b


@_apply_layer.register
def _(layer: Dense, params, x):
    W, b = _unpack_linear(layer, params, 2)
    if W.shape[0] != x.shape[-1]:
        raise ShapeError(
            f"Dense params expect {W.shape[0]} input features on the last axis, got inputs of shape {x.shape}"
        )
    if b.ndim != x.ndim:
        raise ShapeError(f"Dense params were drawn for inputs of rank {b.ndim}, got inputs of shape {x.shape}")
    # contract W's first axis with x's last, then move the new axis last: neural-tangents' order of operations
    product = jnp.moveaxis(jnp.tensordot(W.astype(x.dtype), x, (0, x.ndim - 1)), 0, -1)
    return _affine(layer, product, b.astype(x.dtype), x.shape[-1])


@_apply_layer.register
def _(layer: Conv, params, x):
    n = len(layer.filter_shape)
    W, b = _unpack_linear(layer, params, n + 2)
    strides = tuple(layer.strides) if layer.strides is not None else (1,) * n
    _check_spatial(layer, x.shape, layer.filter_shape, strides, "Conv")
    if W.shape[:n] != tuple(layer.filter_shape) or W.shape[n] != x.shape[-1]:
        raise ShapeError(
            f"Conv params hold filters of shape {W.shape} (spatial..., in, out) for filter_shape "
            f"{layer.filter_shape}; inputs of shape {x.shape} have {x.shape[-1]} channels"
        )
    product = lax.conv_general_dilated(x, W.astype(x.dtype), strides, layer.padding,
                                       dimension_numbers=_spec(n))
    return _affine(layer, product, b.astype(x.dtype), x.shape[-1] * math.prod(layer.filter_shape))


@_apply_layer.register
def _(layer: AvgPool, params, x):
    n = len(layer.window_shape)
    strides = tuple(layer.strides) if layer.strides is not None else (1,) * n  # neural-tangents' default
    _check_spatial(layer, x.shape, layer.window_shape, strides, "AvgPool")
    # neural-tangents' AvgPool(normalize_edges=False): divide by the full window, zero padding included.
    summed = lax.reduce_window(x, np.zeros((), x.dtype), lax.add, (1, *layer.window_shape, 1),
                               (1, *strides, 1), layer.padding)
    return summed / math.prod(layer.window_shape)


@_apply_layer.register
def _(layer: GlobalAvgPool, params, x):
    return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))


@_apply_layer.register
def _(layer: Flatten, params, x):
    return x.reshape(x.shape[0], -1)


@_apply_layer.register
def _(layer: Activation, params, x):
    return _elementwise(layer.dual.activation.expr)(x)


# --------------------------------------------------------------------------------------------------
# σ elementwise in JAX
# --------------------------------------------------------------------------------------------------


@ft.lru_cache(maxsize=256)
def _elementwise(expr):
    """σ as a JAX function of an array, lowered once per expression by ntksym.lower (the only bridge from
    SymPy to JAX; this module never walks SymPy trees itself)."""
    return lower_elementwise(expr)
