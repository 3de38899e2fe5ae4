"""ntksym: derive NNGP/NTK dual activations in closed form, verify them, lower them to JAX."""

import importlib.metadata as _metadata

from .activation import Activation as Activation, activation as activation
from .dual import Dual as Dual, derive as derive
from .trace import Step as Step
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
