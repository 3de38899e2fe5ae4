"""The ntksym command: derive prints K, K̇, V and the method; bad input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sympy as sp

import ntksym as nk
from ntksym.cli import main


def test_derive_prints_the_dual(capsys):
    assert main(["derive", "x*erf(x)"]) == 0
    out = capsys.readouterr().out
    dual = nk.derive("x*erf(x)")
    assert f"K(q1, q2, c)    = {sp.sstr(dual.K)}" in out
    assert f"Kdot(q1, q2, c) = {sp.sstr(dual.Kdot)}" in out
    assert f"V(q)            = {sp.sstr(dual.V)}" in out
    assert f"method: {dual.method}" in out


def test_derive_json_round_trips(capsys):
    assert main(["derive", "relu", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    dual = nk.derive("relu")
    assert record["exact"] is True
    assert record["K"] == str(dual.K)
    assert record["Kdot"] == str(dual.Kdot)
    assert [s["rule"] for s in record["steps"]] == [s.rule for s in dual.steps]


def test_derive_reports_missing_kdot(capsys):
    assert main(["derive", "sign"]) == 0
    assert "does not exist" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["x + y", "exp(x**2)", "1/x", "", "sqrt(-1)*x", "__import__('os').system('echo pwned')"])
def test_bad_input_exits_2_with_one_line(text, capsys):
    assert main(["derive", text]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntksym: error: ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_console_script_runs_as_a_process():
    out = subprocess.run([sys.executable, "-m", "ntksym.cli", "derive", "step"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "asin" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "ntksym.cli", "derive", "x + y"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_derive_verifies_against_quadrature(capsys):
    assert main(["derive", "gelu"]) == 0
    assert "verified: K against independent quadrature" in capsys.readouterr().out


def test_the_check_catches_a_wrong_formula():
    """A 1/(2π) → 1/π slip in the ReLU kernel is caught by the quadrature check."""
    import dataclasses

    from ntksym.dual import check_against_quadrature

    dual = nk.derive("relu")
    assert check_against_quadrature(dual).passed
    from ntksym.symbols import c

    wrong = dataclasses.replace(dual, K=dual.K + (dual.K - c / 4))  # doubles the 1/(2π) part
    assert not check_against_quadrature(wrong).passed
