"""ntksym: derive NNGP/NTK dual activations in closed form, verify them, lower them to JAX."""

import importlib.metadata as _metadata

from .activation import Activation as ActivationFunction  # noqa: F401 - public: the σ type (nk.Activation is the layer)
from .activation import activation as activation
from .dual import Dual as Dual, derive as derive
from .layers import (
    Activation as Activation,
    AvgPool as AvgPool,
    Conv as Conv,
    Dense as Dense,
    Flatten as Flatten,
    GlobalAvgPool as GlobalAvgPool,
    LayerError as LayerError,
    Serial as Serial,
    mlp as mlp,
    serial as serial,
)
from .trace import Step as Step
from .verify import verify as verify, verify_formula as verify_formula
from .errors import (
    DivergentMomentError as DivergentMomentError,
    InvalidCovarianceError as InvalidCovarianceError,
    LoweringError as LoweringError,
    NoClosedFormError as NoClosedFormError,
    NotRealError as NotRealError,
    NotUnivariateError as NotUnivariateError,
    NtksymError as NtksymError,
    ParseError as ParseError,
)

try:
    __version__ = _metadata.version("ntksym")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"


_LAZY = {"predict": "ntksym.predict", "solve": "ntksym.solve", "lower": "ntksym.lower",
         "kernel": "ntksym.kernel", "empirical": "ntksym.empirical", "catalog": "ntksym.catalog",
         "testing": "ntksym.testing", "network_check": "ntksym.network_check", "latex": "ntksym.latex"}
_LAZY_ATTRIBUTES = {"verify_network": ("ntksym.network_check", "verify_network"),
                    "NetworkReport": ("ntksym.network_check", "NetworkReport"),
                    "monte_carlo_kernel": ("ntksym.empirical", "monte_carlo_kernel"),
                    "MonteCarloKernel": ("ntksym.empirical", "MonteCarloKernel"),
                    "latex_document": ("ntksym.latex", "latex_document"),
                    "LatexError": ("ntksym.latex", "LatexError")}


def __getattr__(name):
    # The numeric modules import JAX; they load on first use, so `import ntksym` stays symbolic only.
    import importlib

    if name in _LAZY:
        return importlib.import_module(_LAZY[name])
    if name in _LAZY_ATTRIBUTES:
        module, attribute = _LAZY_ATTRIBUTES[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'ntksym' has no attribute {name!r}")
