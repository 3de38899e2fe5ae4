"""Import rules (STYLE.md): the symbolic side never imports JAX."""

from __future__ import annotations

import subprocess
import sys

import pytest

SYMBOLIC_MODULES = [
    "ntksym",
    "ntksym.errors",
    "ntksym.symbols",
    "ntksym.activation",
    "ntksym.catalog",
    "ntksym.verify",
    "ntksym.testing",
    "ntksym.latex",
    "ntksym.derivations",
    "ntksym.gaussian",
    "ntksym.gaussian.numeric",
    "ntksym.trace",
    "ntksym.dual",
    "ntksym.cli",
    "ntksym.vocabulary",
]


@pytest.mark.parametrize("module", SYMBOLIC_MODULES)
def test_symbolic_modules_do_not_import_jax(module):
    code = f"import sys, {module}; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"importing {module} loaded jax"


def test_deriving_does_not_import_jax():
    code = "import sys, ntksym as nk; nk.derive('relu'); print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
