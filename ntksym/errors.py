"""ntksym's exception types: every user-facing failure is a subclass of NtksymError.

Messages name the input, the rule it breaks and, where possible, the fix.
This module imports nothing from ntksym.
"""

from __future__ import annotations


class NtksymError(ValueError):
    """Base class of every error ntksym raises on purpose."""


class ParseError(NtksymError):
    """An activation string could not be parsed, or uses a name or operator not on the whitelist."""


class NotUnivariateError(NtksymError):
    """The activation is not a function of exactly one real variable."""


class NotRealError(NtksymError):
    """The activation is not real-valued (or not defined) on the whole real line."""


class DivergentMomentError(NtksymError):
    """A Gaussian moment E[σ(z)²] of the activation diverges, so its dual does not exist."""


class NoClosedFormError(NtksymError):
    """No derivation strategy found a closed form (raised only when a numeric dual is refused)."""


class InvalidCovarianceError(NtksymError):
    """A covariance [[q1, c], [c, q2]] is not valid: negative variance, c² > q1·q2, or NaN."""


class LoweringError(NtksymError):
    """An expression could not be lowered to JAX."""


class DerivationTimeout(NtksymError):
    """A derivation ran past its time budget (caught inside derive, which then falls back to a numeric dual)."""
