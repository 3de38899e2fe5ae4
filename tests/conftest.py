"""Shared pytest configuration: hypothesis profiles and the JAX precision/promotion fixtures.

Hypothesis profiles (select with the environment variable NTKSYM_HYPOTHESIS_PROFILE):

* ``ci`` (default): few examples, no deadline (quadrature and SymPy are slow and variable),
  derandomized so every run draws the same examples, no example database.
* ``full``: many examples, random, for a thorough local run:
  ``NTKSYM_HYPOTHESIS_PROFILE=full pytest -m "slow or not slow"``.

This module never imports jax at import time (STYLE.md principle 1 and the layering tests):
the JAX fixtures import it lazily, and only for tests that use JAX.
"""

from __future__ import annotations

import os
import types

import pytest
from hypothesis import HealthCheck, settings

PROFILE_ENV = "NTKSYM_HYPOTHESIS_PROFILE"

settings.register_profile(
    "ci",
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "full",
    max_examples=500,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

_profile = os.environ.get(PROFILE_ENV, "ci")
if _profile not in ("ci", "full"):
    raise pytest.UsageError(f"{PROFILE_ENV}={_profile!r} is not a hypothesis profile of ntksym; use 'ci' or 'full'")
settings.load_profile(_profile)


def _module_uses_jax(module: types.ModuleType | None) -> bool:
    """True if a test module has imported jax (or something from it) at module level."""
    if module is None:
        return False
    for value in vars(module).values():
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.split(".")[0] == "jax":
            return True
    return False


@pytest.fixture(autouse=True)
def _strict_jax_promotion(request):
    """Strict dtype promotion and rank promotion = raise (STYLE.md principle 10) in JAX test modules.

    Applied to every test of a module that imports jax at module level; a test that imports jax
    lazily can request the `strict_jax` fixture instead. Decided per module, so the outcome does not
    depend on which tests ran before.
    """
    if not _module_uses_jax(getattr(request, "module", None)):
        yield
        return
    import jax

    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        yield


@pytest.fixture
def strict_jax():
    """The jax module, with strict dtype promotion and rank promotion = raise for this test."""
    import jax

    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        yield jax


@pytest.fixture(params=["float32", "float64"])
def float_dtype(request):
    """Each lowered function is tested in both precisions (STYLE.md principle 11).

    Yields numpy.float32 or numpy.float64; for float64, JAX's x64 mode is on for this test only
    (never switched on globally), and promotion is strict in both cases.
    """
    import jax
    import numpy as np

    x64 = request.param == "float64"
    with jax.enable_x64(x64), jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        yield np.float64 if x64 else np.float32
