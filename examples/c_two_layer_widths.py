"""The lecture's two-layer network, trained by gradient descent, approaches the NTK prediction as width grows.

Lecture §14.1 (CPSC 532D, "Neural tangent kernels"): h(x; W) = (1/√N) Σ_j a_j σ(w_j·x) with fixed
output weights a_j ∈ {±1} and trained first-layer weights w_j ∈ ℝ^d, initialised w_j ~ N(0, I). Gradient
descent with a small step η on L_S = (1/m) Σ_i (h(x_i) − y_i)² follows gradient flow, and in the
infinite-width limit the flow's predictions are lecture eq. (14.8):

    h_t(x) = h_0(x) + k(x, X) k(X, X)⁻¹ (I − e^{−(2/m) t k(X, X)}) (Y − h_0(X)),

with the infinite NTK k_∞(x, x') = x·x' E_{w~N(0,I)}[σ'(w·x) σ'(w·x')] (the lecture writes e^{−ηtk},
having absorbed the 2/m of its eq. (14.7) into η). We use the lecture's symmetric initialisation
(a = (+1,…,+1, −1,…,−1) with w_{j+N/2} = w_j), which makes h_0 ≡ 0 at every width, so every
network is compared with the same infinite-width prediction. This script trains the network at
growing widths N, measures the RMS distance between its test predictions and eq. (14.8) at the
same time t, and shows that it falls like 1/√N. It saves a plot (predictions and distance vs width).

The 1-D problem: y = sin(2x) on x ∈ [−2, 2]; the lecture's network has no bias, so each input is
embedded as x̃ = (x, 1) ∈ ℝ² (the constant coordinate plays the bias).

Run: python examples/c_two_layer_widths.py [--widths 16 64 256 1024 4096] [--plot two_layer_widths.png]
(about 20 s on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools as ft
import math
import sys
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import ntksym as nk


@dataclasses.dataclass(frozen=True)
class Result:
    """What the run measured.

    **Fields:**
    - `widths`: the hidden widths N.
    - `distances`: RMS over test points and seeds of h_t^{network}(x) − h_t^{NTK}(x), one per width.
    - `scale`: RMS of the NTK prediction h_t^{NTK} over the test points (the size of the signal).
    - `discretisation`: RMS distance between kernel gradient *descent* (the same steps) and the
      flow, with the infinite NTK: the part of `distances` that no width removes.
    - `slope`: least-squares slope of log(distance) against log(width) (−1/2 expected).
    - `t`: the training time η·steps; `lr`: the step η; `plot`: the saved figure's path (or None).
    """

    widths: tuple[int, ...]
    distances: tuple[float, ...]
    scale: float
    discretisation: float
    slope: float
    t: float
    lr: float
    plot: str | None


def _data(m: int, n_test: int):
    """m training points and an n_test grid on [−2, 2], embedded as x̃ = (x, 1); labels sin(2x)."""
    x_train = np.linspace(-2.0, 2.0, m)
    x_test = np.linspace(-2.0, 2.0, n_test)
    return x_train, _embed(x_train), np.sin(2 * x_train), x_test, _embed(x_test)


def _embed(x):
    """x ↦ x̃ = (x, 1): the constant coordinate acts as a bias, which the lecture's network has not."""
    return np.stack([x, np.ones_like(x)], axis=1)


def lecture_ntk(activation: str, x1, x2):
    """k_∞(x1, x2) = x·x' E[σ'(w·x)σ'(w·x')], w ~ N(0, I_d): the lecture's infinite NTK, from ntksym.

    ntksym's Dense in the NTK parameterization computes (w_std/√d)·x·W with W ~ N(0, 1) (neural-tangents'
    convention), so w_std = √d gives the lecture's pre-activations w·x with w ~ N(0, I), and the first layer's
    share of the NTK is w_std²·x·x'/d = x·x' — the gradient with respect to w_j exactly as in the lecture.
    Then Θ = K_σ + x·x'·K̇_σ for serial(Dense(√d), σ, Dense(1)): the K_σ term (the NNGP) is the readout layer's
    share, the gradient with respect to a_j. The lecture keeps a fixed, so its kernel is Θ − K_σ = NTK − NNGP.
    (a_j ∈ {±1} rather than N(0, 1) changes nothing: only a_j² = 1 = E[a²] enters.)
    """
    d = x1.shape[1]
    net = nk.serial(nk.Dense(w_std=math.sqrt(d), b_std=0.0), nk.Activation(activation), nk.Dense(w_std=1.0))
    k = net.kernel(x1, x2)
    return np.asarray(k.ntk) - np.asarray(k.nngp)


def _network(sigma):
    def h(W, a, x):
        """The lecture's h(x; W) = (1/√N) Σ_j a_j σ(w_j·x), W of shape (N, d)."""
        return sigma(x @ W.T) @ a / math.sqrt(a.shape[0])

    return h


def _train(h, W0, a, x_train, y_train, x_test, lr: float, steps: int):
    """`steps` of gradient descent on L_S = (1/m) Σ (h(x_i) − y_i)² over W only; test outputs at the end."""

    def loss(W):
        return jnp.mean((h(W, a, x_train) - y_train) ** 2)

    grad = jax.grad(loss)
    W = jax.lax.fori_loop(0, steps, lambda _, W: W - lr * grad(W), W0)
    return h(W, a, x_test)


def _symmetric_init(key, width: int, d: int, dtype):
    """w_j ~ N(0, I) for j < N/2, copied to j + N/2 with a = −1 there: h_0 ≡ 0 (the lecture's remedy for h_0)."""
    half = jr.normal(key, (width // 2, d), dtype)
    W0 = jnp.concatenate([half, half])
    a = jnp.concatenate([jnp.ones(width // 2, dtype), -jnp.ones(width // 2, dtype)])
    return W0, a


def _kernel_descent(k_tt, k_st, y, lr: float, steps: int, m: int):
    """Kernel gradient descent h ← h − lr·(2/m)·k(h − y) with the infinite NTK, by eigendecomposition:
    test outputs k(x, X) k⁻¹ (I − (I − (2 lr/m) k)^steps) y — eq. (14.8) with the flow's e^{−...} replaced by
    the steps actually taken. Its distance to the flow is the time-discretisation error alone."""
    lam, U = np.linalg.eigh(k_tt)
    decay = (1 - 2 * lr / m * lam) ** steps
    return k_st @ (U @ (((1 - decay) / lam) * (U.T @ y)))


def run(*, widths=(16, 64, 256, 1024, 4096), activation: str = "erf", m: int = 16, n_test: int = 101,
        t: float = 20.0, steps: int = 1000, seeds: int = 4, seed: int = 0, plot: str | None = "two_layer_widths.png"):
    """Train the lecture's network at each width (`seeds` initialisations each) and compare with eq. (14.8)."""
    if any(w % 2 for w in widths):
        raise ValueError(f"widths must be even (the symmetric initialisation pairs units), got {widths}")
    with jax.enable_x64(True):  # float64 here only: 1/√4096 effects must stand well above rounding
        x_train_1d, x_train, y_train, x_test_1d, x_test = _data(m, n_test)
        k_tt = lecture_ntk(activation, x_train, None)
        k_st = lecture_ntk(activation, x_test, x_train)

        # Eq. (14.8) with h_0 = 0. ntksym's flow is df/dt = −η Θ (f − Y) (survey loss ½Σ(f − y)²); the
        # lecture's loss (1/m)Σ(h − y)² gives dh/dt = −(2/m) k (h − y) per unit of time t = η·steps,
        # hence learning_rate = 2/m (ntksym.predict's module docstring).
        flow = nk.predict.gradient_flow(k_tt, y_train, t, ntk_test_train=k_st, learning_rate=2.0 / m)
        h_ntk = np.asarray(flow.test)

        # The step: gradient descent on the linearised model contracts the mode of eigenvalue λ of k(X, X)
        # by (1 − (2η/m)λ) per step, the flow by e^{−(2η/m)λ}; they differ by O((2η/m)λ) relative, so
        # η = t/steps must make (2η/m)·λ_max small (stability needs < 2). Measured below as `discretisation`.
        lr = t / steps
        contraction = 2 * lr / m * float(np.linalg.eigvalsh(k_tt)[-1])
        h_gd_kernel = _kernel_descent(k_tt, k_st, y_train, lr, steps, m)
        discretisation = float(np.sqrt(np.mean((h_gd_kernel - h_ntk) ** 2)))

        sigma = nk.lower.lower_elementwise(nk.activation(activation).expr)
        h = _network(sigma)
        train = jax.jit(jax.vmap(lambda W0, a: _train(h, W0, a, x_train, y_train, x_test, lr, steps)))
        distances, examples = [], []
        for width in widths:
            keys = jr.split(jr.fold_in(jr.key(seed), width), seeds)
            init = ft.partial(_symmetric_init, width=width, d=x_train.shape[1], dtype=jnp.float64)
            W0, a = jax.vmap(init)(keys)
            h_net = np.asarray(train(W0, a))  # (seeds, n_test)
            distances.append(float(np.sqrt(np.mean((h_net - h_ntk) ** 2))))
            examples.append(h_net[0])
        slope = float(np.polyfit(np.log(widths), np.log(distances), 1)[0])
        scale = float(np.sqrt(np.mean(h_ntk**2)))

    print(f"lecture two-layer network, σ = {activation}, m = {m} training points, t = η·steps = {t:g} "
          f"(η = {lr:g}, {steps} steps, (2η/m)·λ_max = {contraction:.3f}), {seeds} seeds per width")
    print(f"RMS of the NTK prediction eq. (14.8) on the test grid: {scale:.4f}")
    print(f"time-discretisation floor (kernel gradient descent vs flow): {discretisation:.2e}")
    print(f"{'width N':>8}  {'RMS distance':>12}  {'distance·√N':>11}")
    for width, dist in zip(widths, distances):
        print(f"{width:>8d}  {dist:>12.3e}  {dist * math.sqrt(width):>11.3f}")
    print(f"log-log slope of distance vs width: {slope:+.3f} (1/√N predicts −0.5)")

    if plot is not None:
        _plot(plot, x_train_1d, y_train, x_test_1d, h_ntk, widths, examples, distances, activation, t)
        print(f"plot saved to {plot}")
    return Result(widths=tuple(widths), distances=tuple(distances), scale=scale, discretisation=discretisation,
                  slope=slope, t=t, lr=lr, plot=plot)


def _plot(path, x_train, y_train, x_test, h_ntk, widths, examples, distances, activation, t):
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(x_train, y_train, "ko", label="training data")
    for width, h_net in zip(widths, examples):
        left.plot(x_test, h_net, lw=1, alpha=0.8, label=f"network, N = {width}")
    left.plot(x_test, h_ntk, "k--", lw=2, label="NTK, eq. (14.8)")
    left.set(xlabel="x", ylabel=f"h_t(x), t = {t:g}", title=f"two-layer {activation} network vs its NTK")
    left.legend(fontsize=8)
    w = np.asarray(widths, dtype=float)
    right.loglog(w, distances, "o-", label="RMS distance to eq. (14.8)")
    right.loglog(w, distances[0] * np.sqrt(w[0] / w), "k:", label="∝ 1/√N")
    right.set(xlabel="width N", ylabel="RMS distance", title="distance to the infinite-width prediction")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 64, 256, 1024, 4096],
                        help="hidden widths N (even)")
    parser.add_argument("--activation", default="erf", help="σ: a catalog name or a formula in x (default erf)")
    parser.add_argument("--train", type=int, default=16, help="number of training points m")
    parser.add_argument("--test", type=int, default=101, help="number of test points")
    parser.add_argument("--time", type=float, default=20.0, help="training time t = η·steps")
    parser.add_argument("--steps", type=int, default=1000, help="gradient-descent steps")
    parser.add_argument("--seeds", type=int, default=4, help="initialisations per width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="two_layer_widths.png", help="figure file ('' for none)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run(widths=tuple(args.widths), activation=args.activation, m=args.train, n_test=args.test, t=args.time,
        steps=args.steps, seeds=args.seeds, seed=args.seed, plot=args.plot or None)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
