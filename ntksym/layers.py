"""Layer descriptions: inert frozen dataclasses. They describe an architecture; they compute nothing.

Each interpretation lives in its own module with one rule per layer type (STYLE.md principle 3):
kernel.py (the NNGP/NTK recurrences, JAX), empirical.py (the finite-width network, JAX),
recurrence/latex (symbolic). Conventions follow neural-tangents' stax (DESIGN.md §1): inputs in
NHWC layout (batch, spatial..., channels), Σ⁰ = x·x'/d, NTK parameterization by default.
No JAX here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .activation import Activation as _Sigma
from .dual import Dual, derive
from .errors import NtksymError
from .vocabulary import freeze_extra_functions


class LayerError(NtksymError):
    """An invalid layer description (bad padding, negative std, empty serial, …)."""


@dataclass(frozen=True)
class Dense:
    """Fully connected layer: Σ ↦ w_std²·Σ + b_std² (survey eq. (58)); out_dim is used by the finite network.

    parameterization: "ntk" (default; Θ ↦ w²Σ + b² + w²Θ) or "standard" (neural-tangents'
    `Dense(parameterization="standard")`)."""

    out_dim: int = 1
    w_std: float = 1.0
    b_std: float = 0.0
    parameterization: str = "ntk"

    def __post_init__(self):
        _check_std(self.w_std, self.b_std)
        _check_parameterization(self.parameterization)
        if self.out_dim < 1:
            raise LayerError(f"Dense.out_dim must be ≥ 1, got {self.out_dim}")


@dataclass(frozen=True)
class Activation:
    """Elementwise activation σ: Σ ↦ K_σ(Σ), Θ ↦ K̇_σ(Σ)·Θ (DESIGN.md §1).

    `dual`: a Dual, or anything nk.derive accepts ("relu", "x*erf(x)", a SymPy expression), derived here.
    `extra_functions`: {SymPy function class (or its name): JAX function} for functions in σ, K or K̇ that
    ntksym's vocabulary lacks; net.kernel, net.init/net.apply and the empirical NTK lower with them. Stored as a
    tuple of pairs (layers are hashable); `dict(layer.extra_functions)` reads it back."""

    dual: Dual
    extra_functions: tuple = ()

    def __post_init__(self):
        if not isinstance(self.dual, Dual):
            object.__setattr__(self, "dual", derive(self.dual))
        object.__setattr__(self, "extra_functions", freeze_extra_functions(self.extra_functions or None))

    @property
    def sigma(self) -> _Sigma:
        return self.dual.activation


@dataclass(frozen=True)
class Conv:
    """Convolution over 1 or 2 spatial dimensions (NHWC): filter_shape, strides, padding "SAME"/"VALID".

    The kernel averages Σ over each filter patch (fan-in normalisation, survey eq. (62)–(78)),
    as neural-tangents' `stax.Conv(out_chan, filter_shape, strides, padding, W_std, b_std)`."""

    out_chan: int = 1
    filter_shape: tuple[int, ...] = (3, 3)
    strides: tuple[int, ...] | None = None
    padding: str = "SAME"
    w_std: float = 1.0
    b_std: float = 0.0
    parameterization: str = "ntk"

    def __post_init__(self):
        _check_std(self.w_std, self.b_std)
        _check_parameterization(self.parameterization)
        _check_padding(self.padding)
        if not 1 <= len(self.filter_shape) <= 2 or min(self.filter_shape) < 1:
            raise LayerError(f"Conv.filter_shape must have 1 or 2 positive sizes, got {self.filter_shape}")
        if self.strides is not None and (len(self.strides) != len(self.filter_shape) or min(self.strides) < 1):
            raise LayerError(f"Conv.strides {self.strides} must match filter_shape {self.filter_shape} and be ≥ 1")


@dataclass(frozen=True)
class AvgPool:
    """Average pooling over windows (as neural-tangents' `stax.AvgPool(window_shape, strides, padding)`)."""

    window_shape: tuple[int, ...] = (2, 2)
    strides: tuple[int, ...] | None = None
    padding: str = "VALID"

    def __post_init__(self):
        _check_padding(self.padding)
        if not 1 <= len(self.window_shape) <= 2 or min(self.window_shape) < 1:
            raise LayerError(f"AvgPool.window_shape must have 1 or 2 positive sizes, got {self.window_shape}")


@dataclass(frozen=True)
class GlobalAvgPool:
    """Average over all spatial positions (neural-tangents' `stax.GlobalAvgPool()`)."""


@dataclass(frozen=True)
class Flatten:
    """Flatten spatial and channel dimensions (neural-tangents' `stax.Flatten()`)."""


@dataclass(frozen=True)
class Serial:
    """Layers applied in sequence."""

    layers: tuple = field(default_factory=tuple)

    def __post_init__(self):
        if not self.layers:
            raise LayerError("serial() needs at least one layer")

    # Front-end methods: each hands off to the module of its interpretation (imported on use, so that
    # describing an architecture never loads JAX).
    def kernel(self, x1, x2=None, **kwargs):
        """NNGP and NTK Gram matrices of this architecture (ntksym.kernel.kernel)."""
        from .kernel import kernel

        return kernel(self, x1, x2, **kwargs)

    def init(self, key, input_shape, width=None):
        """Parameters of the finite-width network in NTK parameterization (ntksym.empirical.init)."""
        from .empirical import init

        return init(self, key, input_shape, width)

    def latex(self, substitute: bool = True) -> str:
        """The NNGP/NTK recurrences of this architecture as LaTeX (ntksym.latex.network_latex)."""
        from .latex import network_latex

        return network_latex(self, substitute=substitute)

    def apply(self, params, x):
        """Outputs of the finite-width network (ntksym.empirical.apply)."""
        from .empirical import apply

        return apply(self, params, x)


def serial(*layers) -> Serial:
    """Compose layers in order (nested Serials are flattened)."""
    flat: list = []
    for layer in layers:
        flat.extend(layer.layers if isinstance(layer, Serial) else (layer,))
    return Serial(tuple(flat))


def _check_std(w_std: float, b_std: float) -> None:
    if not (w_std >= 0 and b_std >= 0):
        raise LayerError(f"w_std and b_std must be ≥ 0, got w_std={w_std}, b_std={b_std}")


def _check_parameterization(p: str) -> None:
    if p not in ("ntk", "standard"):
        raise LayerError(f"parameterization must be 'ntk' or 'standard', got {p!r}")


def _check_padding(p: str) -> None:
    if p not in ("SAME", "VALID"):
        raise LayerError(f"padding must be 'SAME' or 'VALID', got {p!r}")


def mlp(act, depth: int, w_std: float = 1.0, b_std: float = 0.0, *, out_dim: int = 1,
        parameterization: str = "ntk", extra_functions=None) -> Serial:
    """[Dense, σ] × depth, then a Dense readout: survey eq. (58)–(61) (depth = number of hidden layers).

    act: a Dual or anything nk.derive accepts; it is derived once and shared by every layer.
    extra_functions: JAX implementations of SymPy classes the vocabulary lacks (see Activation)."""
    if depth < 0:
        raise LayerError(f"mlp depth must be ≥ 0, got {depth}")
    sigma = Activation(act, extra_functions)
    hidden = [(Dense(1, w_std, b_std, parameterization), sigma) for _ in range(depth)]
    return serial(*(layer for block in hidden for layer in block), Dense(out_dim, w_std, b_std, parameterization))
