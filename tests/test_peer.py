"""Agreement with the peer library neural-tangents 0.6.5 (`stax`), in float64.

neural-tangents needs an old JAX, so it lives in its own virtualenv (built by
/work/shared/peer/neural-tangents-venv.sh, default /tmp/nt-peer; the environment variable
NTKSYM_PEER_PYTHON names another interpreter). All neural-tangents kernels of this module are computed in
ONE subprocess (JAX_ENABLE_X64=1) that reads the cases as JSON and the inputs as .npy files and writes the
kernels back as .npy files; ntksym computes its own in-process under jax.enable_x64. Without the peer the
tests are skipped, naming the script that builds it.

Tolerance: 1e-9 of the reference's largest entry. Both libraries evaluate closed forms of the same duals in
float64 (errors ~1e-15 per operation); the margin covers neural-tangents' own formulas, whose arccos/arctan2
forms lose up to √eps ≈ 1.5e-8 *relative to the angle* near |ρ| = 1 (at most ~1e-10 of the entries here, for
distinct random inputs), compounded over ≤ 10 layers. Errors are measured against the largest entry because
kernels such as sin's cross zero, where an elementwise relative error means nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import pytest

from ntksym import catalog, derive
from ntksym.kernel import kernel
from ntksym.layers import Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, serial

PEER_SCRIPT = "/work/shared/peer/neural-tangents-venv.sh"
PEER_PYTHON = os.environ.get("NTKSYM_PEER_PYTHON", "/tmp/nt-peer/bin/python")
RTOL = 1e-9  # of the reference's largest entry; see the module docstring

# The script run by the peer's interpreter: build each stax net from its JSON description and save
# kernel_fn(x1, x2, ("nngp", "ntk")).
NT_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import jax
    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax

    folder = sys.argv[1]
    cases = json.load(open(f"{folder}/cases.json"))
    for case in cases:
        layers = []
        for spec in case["layers"]:
            kind = spec.pop("kind")
            # stax wants tuples where JSON gives lists
            spec = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
            layers.append(getattr(stax, kind)(**spec))
        _, _, kernel_fn = stax.serial(*layers)
        x1 = np.load(f"{folder}/{case['x1']}").astype(np.float64)
        x2 = np.load(f"{folder}/{case['x2']}").astype(np.float64)
        out = kernel_fn(x1, x2, ("nngp", "ntk"))
        np.save(f"{folder}/{case['name']}.nngp.npy", np.asarray(out.nngp))
        np.save(f"{folder}/{case['name']}.ntk.npy", np.asarray(out.ntk))
''')


# --------------------------------------------------------------------------------------------------
# Activations: ntksym catalog entry and the matching stax layer (checked against NT 0.6.5's signatures)
# --------------------------------------------------------------------------------------------------

ACTIVATIONS = {
    "relu": (catalog.relu(), {"kind": "Relu"}),
    "erf": (catalog.erf(), {"kind": "Erf"}),
    "erf_abc": (catalog.erf(2.0, 0.5, 0.1), {"kind": "Erf", "a": 2.0, "b": 0.5, "c": 0.1}),  # a·erf(bx) + c
    "gelu": (catalog.gelu(), {"kind": "Gelu", "approximate": False}),
    "sin": (catalog.sin(1.5, 0.8, 0.3), {"kind": "Sin", "a": 1.5, "b": 0.8, "c": 0.3}),  # a·sin(bx + c)
    "cos": (catalog.cos(1.0, 1.2, 0.0), {"kind": "Cos", "a": 1.0, "b": 1.2, "c": 0.0}),
    "exp": (catalog.exp(0.5, 0.7), {"kind": "Exp", "a": 0.5, "b": 0.7}),  # a·exp(bx)
    # ntksym's gaussian(a, b, 0) = a·exp(−b x²) is stax.Gaussian(a, −b) = a·exp(−b x²)
    "gaussian": (catalog.gaussian(1.5, 0.5), {"kind": "Gaussian", "a": 1.5, "b": -0.5}),
    "abs": (catalog.abs(), {"kind": "Abs"}),
    "leaky_relu": (catalog.leaky_relu(0.1), {"kind": "LeakyRelu", "alpha": 0.1}),
    "monomial": (catalog.monomial(3), {"kind": "Monomial", "degree": 3}),
    "rectified_monomial": (catalog.rectified_monomial(2), {"kind": "RectifiedMonomial", "degree": 2}),
}
DUALS = {name: derive(act) for name, (act, _) in ACTIVATIONS.items()}


def to_stax(layer, act_name: str | None) -> dict:
    """The stax layer matching an ntksym layer (b_std = 0 is stax's b_std=None: no bias)."""
    if isinstance(layer, Dense):
        return {"kind": "Dense", "out_dim": layer.out_dim, "W_std": layer.w_std,
                "b_std": layer.b_std or None, "parameterization": layer.parameterization}
    if isinstance(layer, Conv):
        n = len(layer.filter_shape)
        return {"kind": "Conv", "out_chan": layer.out_chan, "filter_shape": list(layer.filter_shape),
                "strides": list(layer.strides or (1,) * n), "padding": layer.padding, "W_std": layer.w_std,
                "b_std": layer.b_std or None, "parameterization": layer.parameterization}
    if isinstance(layer, AvgPool):
        n = len(layer.window_shape)
        return {"kind": "AvgPool", "window_shape": list(layer.window_shape),
                "strides": list(layer.strides or (1,) * n), "padding": layer.padding}
    if isinstance(layer, GlobalAvgPool):
        return {"kind": "GlobalAvgPool"}
    if isinstance(layer, Flatten):
        return {"kind": "Flatten"}
    if isinstance(layer, Activation):
        return dict(ACTIVATIONS[act_name][1])
    raise TypeError(layer)


@dataclass(frozen=True)
class Case:
    name: str
    net: object
    act: str
    x1_shape: tuple
    x2_shape: tuple

    def inputs(self):
        rng = np.random.default_rng(abs(hash(self.name)) % 2**32)
        return rng.normal(size=self.x1_shape), rng.normal(size=self.x2_shape)


def mlp_case(act, depth, w_std, b_std, param="ntk", width=5):
    sigma = Activation(DUALS[act])
    layers = [layer for _ in range(depth) for layer in (Dense(width, w_std, b_std, param), sigma)]
    net = serial(*layers, Dense(1, w_std, b_std, param))
    return Case(f"mlp-{act}-d{depth}-w{w_std}-b{b_std}-{param}", net, act, (5, 6), (4, 6))


def cnn_case(act, arch, padding, param="ntk"):
    sigma = Activation(DUALS[act])
    if arch == "gap":  # Conv–σ–Conv–σ–GlobalAvgPool–Dense, the second conv strided
        net = serial(Conv(4, (3, 3), None, padding, 1.5, 0.1, param), sigma,
                     Conv(3, (3, 3), (2, 2), padding, 1.2, 0.2, param), sigma,
                     GlobalAvgPool(), Dense(1, 1.1, 0.1, param))
    else:  # Conv–σ–AvgPool–Flatten–Dense
        net = serial(Conv(4, (3, 3), None, padding, 1.3, 0.2, param), sigma,
                     AvgPool((2, 2), (2, 2), padding), Flatten(), Dense(1, 1.0, 0.1, param))
    return Case(f"cnn-{arch}-{act}-{padding}-{param}", net, act, (3, 8, 8, 3), (2, 8, 8, 3))


CASES = [
    # every activation in a 3-layer MLP (exp and the cubic grow fast: 2 layers, smaller weights;
    # stax.RectifiedMonomial returns NaN variances — its (π − θ)/sin θ at θ = 0 — so it can only be the
    # last activation of a stax net: 1 layer)
    *[mlp_case(act, 3, 1.3, 0.1) for act in ACTIVATIONS if act not in ("exp", "monomial", "rectified_monomial")],
    mlp_case("exp", 2, 0.6, 0.1),
    mlp_case("monomial", 2, 0.7, 0.1),
    mlp_case("rectified_monomial", 1, 1.3, 0.1),
    # depths 1..10, several w_std/b_std, both parameterizations
    mlp_case("relu", 1, 1.0, 0.0),
    mlp_case("relu", 10, 1.41, 0.05),
    mlp_case("relu", 5, 1.2, 0.3, "standard"),
    mlp_case("relu", 10, 1.0, 0.0, "standard", width=3),
    mlp_case("erf", 10, 2.0, 0.2),
    mlp_case("erf", 2, 0.8, 0.5, "standard"),
    mlp_case("gelu", 10, 1.3, 0.1),
    mlp_case("leaky_relu", 7, 1.4, 0.0, "standard"),
    mlp_case("gaussian", 10, 1.5, 0.2),
    # CNNs on 8×8×3 inputs, SAME and VALID
    cnn_case("relu", "gap", "SAME"),
    cnn_case("relu", "gap", "VALID"),
    cnn_case("erf", "gap", "SAME", "standard"),
    cnn_case("relu", "pool", "SAME"),
    cnn_case("gelu", "pool", "VALID"),
]


@pytest.fixture(scope="module")
def peer_kernels(tmp_path_factory):
    """{case name: (nngp, ntk)} from neural-tangents, all cases in one subprocess."""
    probe = subprocess.run([PEER_PYTHON, "-c", "import neural_tangents"], capture_output=True) \
        if Path(PEER_PYTHON).exists() else None
    if probe is None or probe.returncode != 0:
        pytest.skip(f"the neural-tangents peer is not installed at {PEER_PYTHON}: build it with {PEER_SCRIPT} "
                    f"(or set NTKSYM_PEER_PYTHON)")
    folder = tmp_path_factory.mktemp("peer")
    specs = []
    for case in CASES:
        x1, x2 = case.inputs()
        np.save(folder / f"{case.name}.x1.npy", x1)
        np.save(folder / f"{case.name}.x2.npy", x2)
        specs.append({"name": case.name, "x1": f"{case.name}.x1.npy", "x2": f"{case.name}.x2.npy",
                      "layers": [to_stax(layer, case.act) for layer in case.net.layers]})
    (folder / "cases.json").write_text(json.dumps(specs))
    (folder / "run_nt.py").write_text(NT_SCRIPT)
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([PEER_PYTHON, str(folder / "run_nt.py"), str(folder)], capture_output=True, text=True,
                         env=env, timeout=900)
    if run.returncode != 0:
        raise RuntimeError(f"neural-tangents failed:\n{run.stderr[-4000:]}")
    return {c.name: (np.load(folder / f"{c.name}.nngp.npy"), np.load(folder / f"{c.name}.ntk.npy")) for c in CASES}


def peer_errors(case, peer):
    """{"nngp": (max-norm relative error, max elementwise relative error), "ntk": …} of ntksym vs the peer."""
    x1, x2 = case.inputs()
    with jax.enable_x64(True):
        k = kernel(case.net, x1, x2)
    out = {}
    for name, ref in zip(("nngp", "ntk"), peer):
        got = np.asarray(getattr(k, name))
        assert got.shape == ref.shape and np.all(np.isfinite(ref)), (case.name, name)
        err = np.abs(got - ref)
        big = np.abs(ref) > 1e-3 * np.max(np.abs(ref))
        out[name] = (float(np.max(err) / np.max(np.abs(ref))), float(np.max(err[big] / np.abs(ref[big]))))
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_agrees_with_neural_tangents(case, peer_kernels):
    errors = peer_errors(case, peer_kernels[case.name])
    for name, (max_norm, _) in errors.items():
        assert max_norm <= RTOL, f"{case.name} {name}: max|ntksym − NT| / max|NT| = {max_norm:.3g} > {RTOL}"


def test_every_catalog_activation_of_the_acceptance_list_is_covered():
    wanted = {"relu", "erf", "gelu", "sin", "cos", "exp", "gaussian", "abs", "leaky_relu", "monomial",
              "rectified_monomial"}
    assert wanted <= {case.act for case in CASES}
