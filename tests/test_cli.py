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


# ------------------------------------------------------------------------------ kernel and catalog


def test_kernel_writes_the_gram_matrix(tmp_path, capsys):
    """The written matrix is net.kernel's, to the bit: the command adds no arithmetic of its own."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    np.save(tmp_path / "X.npy", x)
    out = tmp_path / "K.npy"
    argv = ["kernel", "--activation", "relu", "--depth", "3", "--inputs", str(tmp_path / "X.npy"), "--out", str(out)]
    assert main(argv) == 0
    expected = nk.mlp("relu", 3).kernel(x, get="ntk").ntk
    np.testing.assert_array_equal(np.load(out), np.asarray(expected))
    assert "wrote ntk (6×6" in capsys.readouterr().out


def test_kernel_reads_csv_and_writes_both_to_npz(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(1)
    x1, x2 = rng.standard_normal((3, 2)), rng.standard_normal((5, 2))
    np.savetxt(tmp_path / "a.csv", x1, delimiter=",")
    np.savetxt(tmp_path / "b.csv", x2, delimiter=",")
    out = tmp_path / "K.npz"
    assert main(["kernel", "--activation", "erf", "--depth", "2", "--w-std", "1.5", "--b-std", "0.1",
                 "--inputs", str(tmp_path / "a.csv"), "--inputs2", str(tmp_path / "b.csv"),
                 "--get", "nngp,ntk", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["shape"] == [3, 5]
    data = np.load(out)
    # csv text round-trips float64 to ~1e-16, then the command works in float32: compare at float32 rounding
    ref = nk.mlp("erf", 2, w_std=1.5, b_std=0.1).kernel(x1.astype(np.float32), x2.astype(np.float32))
    np.testing.assert_allclose(data["nngp"], ref.nngp, rtol=1e-5)
    np.testing.assert_allclose(data["ntk"], ref.ntk, rtol=1e-5)


@pytest.mark.parametrize("case", ["missing", "bad_get", "bad_out", "three_d", "text"])
def test_kernel_bad_input_exits_2(case, tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "X.npy", np.ones((3, 2)))
    np.save(tmp_path / "X3.npy", np.ones((3, 2, 2)))
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    inputs, get, out = str(tmp_path / "X.npy"), "ntk", str(tmp_path / "K.npy")
    if case == "missing":
        inputs = str(tmp_path / "nope.npy")
    elif case == "bad_get":
        get = "nngp,foo"
    elif case == "bad_out":
        out = str(tmp_path / "K.txt")
    elif case == "three_d":
        inputs = str(tmp_path / "X3.npy")
    elif case == "text":
        inputs = str(tmp_path / "t.csv")
    argv = ["kernel", "--activation", "relu", "--depth", "2", "--inputs", inputs, "--get", get, "--out", out]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntksym: error: ") and err.count("\n") == 1


def test_catalog_lists_every_activation(capsys):
    from ntksym.catalog import CATALOG

    assert main(["catalog", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == list(CATALOG)
    for r in records:
        dual = nk.derive(CATALOG[r["name"]].factory())
        assert r["exact"] == dual.exact and r["method"] == dual.method
    assert main(["catalog"]) == 0
    table = capsys.readouterr().out
    assert table.count("\n") == len(CATALOG) + 2  # header, rule, one row per activation


def test_help_lists_the_subcommands_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("derive", "verify", "latex", "kernel", "catalog"):
        assert command in out
    assert "examples:" in out


# ------------------------------------------------------------------------------------------- latex


def test_latex_of_a_dual_is_sympys(capsys):
    """The formulas printed are sympy.latex of the derived expressions (the printer adds nothing wrong)."""
    assert main(["latex", "gelu"]) == 0
    out = capsys.readouterr().out
    dual = nk.derive("gelu")
    for expr in (dual.K, dual.Kdot, dual.V):
        assert sp.latex(expr) in out
    assert r"\begin{enumerate}" in out  # the derivation trace


def test_latex_of_an_mlp_substitutes_the_closed_form(capsys):
    from ntksym.symbols import c, q1, q2

    assert main(["latex", "--activation", "relu", "--depth", "3"]) == 0
    out = capsys.readouterr().out
    dual = nk.derive("relu")
    # layer 2 is the first activation: q1, q2, c are layer 1's variances and covariance
    names = {q1: r"\Sigma^{(1)}(x, x)", q2: r"\Sigma^{(1)}(x', x')", c: r"\Sigma^{(1)}(x, x')"}
    assert sp.latex(dual.K, symbol_names=names) in out
    assert out.count(r"\paragraph{Layer") == 2 * 3 + 1  # Dense + activation per hidden layer, a readout


def test_latex_document_to_file_and_pdf(tmp_path, capsys):
    import os
    import shutil

    out = tmp_path / "relu.tex"
    assert main(["latex", "--activation", "relu", "--depth", "2", "--document", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith(r"\documentclass") and text.rstrip().endswith(r"\end{document}")
    if shutil.which("pdflatex") is None:
        if os.environ.get("NTKSYM_REQUIRE_TEX") == "1":
            pytest.fail("NTKSYM_REQUIRE_TEX=1 but pdflatex is not installed")
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-base)")
    pdf = tmp_path / "erf.pdf"
    assert main(["latex", "erf", "--pdf", str(pdf)]) == 0
    assert pdf.read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize("argv", [["latex"], ["latex", "relu", "--activation", "erf"],
                                  ["latex", "x + y"], ["latex", "--activation", "relu", "--depth", "0"]])
def test_latex_bad_input_exits_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntksym: error: ") and err.count("\n") == 1
