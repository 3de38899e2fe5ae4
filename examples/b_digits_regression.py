"""NNGP and NTK kernel regression on handwritten digits, beside a finite network trained by gradient descent.

scikit-learn's `load_digits` (8×8 images, 10 classes; shipped inside scikit-learn, no download) on a random
subset, inputs standardised with the training set's mean and standard deviation, labels one-hot and centred
(e_y − 1/10). The architecture is a one-hidden-layer ReLU network in the NTK parameterization,
nk.mlp("relu", depth=1, w_std=√2, b_std=0.1, out_dim=10). This script reports test accuracy and MSE of

* the NNGP posterior mean (survey eq. 149; a Bayesian network's prediction),
* the NTK gradient-flow prediction at t = ∞ (survey eq. 9 / lecture eq. 14.8 with f_0 = 0: kernel regression),
* the finite network of the same architecture (`net.init`/`net.apply`, width `--width`) trained by
  full-batch gradient descent on ½ Σ_i ‖f(x_i) − y_i‖² for `--steps` steps,
* and the NTK prediction for that network: eq. (14.8) at the same time t = η·steps, started from the
  network's own outputs at initialisation f_0. The finite network approaches this one as its width
  grows; the relative difference between the two is printed (it shrinks like 1/√width).

Run: python examples/b_digits_regression.py [--train 300] [--test 300] [--width 4096] [--steps 300]
(about 20 s on a 2-core CPU; needs scikit-learn).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import ntksym as nk


@dataclasses.dataclass(frozen=True)
class Row:
    """One predictor's test accuracy (fraction of digits classified right) and mean squared error."""

    name: str
    accuracy: float
    mse: float


@dataclasses.dataclass(frozen=True)
class Result:
    """What the run measured.

    **Fields:**
    - `rows`: NNGP posterior mean, NTK at t = ∞, finite network, NTK at the network's t with its f_0.
    - `relative_difference`: ‖f_network − f_NTK(t)‖ / ‖f_NTK(t)‖ over the test outputs (Frobenius).
    - `width`, `steps`, `lr` (η), `t` (= η·steps), `lambda_max` (largest eigenvalue of Θ(X, X)).
    - `train_loss`: the finite network's ½ Σ‖f − y‖² before and after training.
    """

    rows: tuple[Row, ...]
    relative_difference: float
    width: int
    steps: int
    lr: float
    t: float
    lambda_max: float
    train_loss: tuple[float, float]

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)


def load(n_train: int, n_test: int, seed: int):
    """A random train/test split of the digits: standardised inputs, centred one-hot labels, class indices."""
    from sklearn.datasets import load_digits

    x, labels = load_digits(return_X_y=True)
    if n_train + n_test > len(labels):
        raise ValueError(f"--train + --test must be at most {len(labels)} (the number of digits)")
    order = np.random.default_rng(seed).permutation(len(labels))
    train, test = order[:n_train], order[n_train:n_train + n_test]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)  # border pixels are always 0: leave them 0 instead of dividing by 0
    x = (x - mean) / std
    y = np.eye(10)[labels] - 0.1  # centred: the prior mean 0 is then the class average
    return x[train], y[train], labels[train], x[test], y[test], labels[test]


def _scores(name: str, f, y, labels) -> Row:
    f = np.asarray(f)
    return Row(name, float(np.mean(np.argmax(f, axis=1) == labels)), float(np.mean((f - y) ** 2)))


def run(*, n_train: int = 300, n_test: int = 300, width: int = 4096, steps: int = 300, seed: int = 0) -> Result:
    """Kernel predictions and a trained finite network on the digits; prints the table and returns the numbers."""
    with jax.enable_x64(True):  # float64 here only: kernel solves with condition numbers ~10³–10⁴
        x_train, y_train, _, x_test, y_test, l_test = load(n_train, n_test, seed)
        net = nk.mlp("relu", depth=1, w_std=math.sqrt(2.0), b_std=0.1, out_dim=10)
        k_tt = net.kernel(x_train)
        k_st = net.kernel(x_test, x_train)

        nngp = nk.predict.gp_posterior(k_tt.nngp, y_train, k_st.nngp).mean
        ntk_inf = nk.predict.gradient_flow(k_tt.ntk, y_train, jnp.inf, ntk_test_train=k_st.ntk).test

        # Step size. On the square loss ½ Σ‖f − y‖² one gradient-descent step moves the training outputs by
        # f ← f − η Θ̂ (f − Y) (to first order), shrinking the residual along the eigenvector of Θ̂ with
        # eigenvalue λ by the factor (1 − ηλ): stable iff η λ_max < 2. η = 1/λ_max of the analytic Θ(X, X) is
        # the largest step under which no direction oscillates; the finite network's λ̂_max is within
        # O(1/√width) of λ_max, so this keeps a factor ~2 from divergence. With this step, (1 − ηλ)^steps
        # differs from the flow's e^{−ηλ·steps} by at most ~0.3/steps of each residual component (the worst
        # case is ηλ·steps ≈ 2), so the flow at t = η·steps is the right comparison.
        lambda_max = float(np.linalg.eigvalsh(np.asarray(k_tt.ntk))[-1])
        lr = 1.0 / lambda_max
        t = lr * steps

        # The network is centred, f(x) = f_θ(x) − f_θ₀(x) (θ₀ its initial parameters, held fixed): it has the
        # same gradients, hence the same NTK and the same training dynamics, but f_0 ≡ 0. Without it, the
        # random initial outputs f_θ₀ (of variance K(x, x) ≈ 1 per output, as large as the labels) stay in the
        # test predictions at every width and every t (lecture §14.2 "dealing with h_0"; example (c) uses the
        # lecture's symmetric initialisation instead, which ntksym's init does not draw).
        params0 = net.init(jr.key(seed), x_train.shape, width=width)
        x_tr, y_tr, x_te = jnp.asarray(x_train), jnp.asarray(y_train), jnp.asarray(x_test)
        f0_train, f0_test = net.apply(params0, x_tr), net.apply(params0, x_te)

        def loss(p, x, y, f0):
            return 0.5 * jnp.sum((net.apply(p, x) - f0 - y) ** 2)

        # Data and initial outputs are arguments, not closed-over constants: XLA would constant-fold them.
        @jax.jit
        def train(p, x, y, f0):
            step = lambda _, p: jax.tree.map(lambda w, g: w - lr * g, p, jax.grad(loss)(p, x, y, f0))
            return jax.lax.fori_loop(0, steps, step, p)

        start = time.perf_counter()
        trained = train(params0, x_tr, y_tr, f0_train)
        f_net = np.asarray(net.apply(trained, x_te) - f0_test)
        seconds = time.perf_counter() - start
        train_loss = (float(loss(params0, x_tr, y_tr, f0_train)), float(loss(trained, x_tr, y_tr, f0_train)))

        # Eq. (14.8) with f_0 = 0 at the network's time t: what the network tends to as its width grows.
        ntk_t = np.asarray(nk.predict.gradient_flow(k_tt.ntk, y_train, t, ntk_test_train=k_st.ntk).test)
        relative = float(np.linalg.norm(f_net - ntk_t) / np.linalg.norm(ntk_t))

    rows = (
        _scores("NNGP posterior mean", nngp, y_test, l_test),
        _scores("NTK gradient flow, t = ∞", ntk_inf, y_test, l_test),
        _scores(f"NTK gradient flow, t = η·steps = {t:.3g}", ntk_t, y_test, l_test),
        _scores(f"network, width {width}, {steps} GD steps", f_net, y_test, l_test),
    )
    print(f"digits: {n_train} train / {n_test} test, 10 classes; one-hidden-layer ReLU network, NTK parameterization")
    print(f"λ_max(Θ(X, X)) = {lambda_max:.4g}, η = 1/λ_max = {lr:.4g}, t = η·steps = {t:.4g}; "
          f"network training loss {train_loss[0]:.4g} → {train_loss[1]:.4g} in {seconds:.1f} s")
    print(f"{'predictor':<46} {'test accuracy':>13} {'test MSE':>9}")
    for r in rows:
        print(f"{r.name:<46} {r.accuracy:>13.3f} {r.mse:>9.4f}")
    print(f"relative difference network vs NTK flow at the same t: {relative:.4f} "
          f"(1/√width = {1 / math.sqrt(width):.4f})")
    return Result(rows=rows, relative_difference=relative, width=width, steps=steps, lr=lr, t=t,
                  lambda_max=lambda_max, train_loss=train_loss)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=300, help="training digits")
    parser.add_argument("--test", type=int, default=300, help="test digits")
    parser.add_argument("--width", type=int, default=4096, help="hidden width of the finite network")
    parser.add_argument("--steps", type=int, default=300, help="full-batch gradient-descent steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of the initialisation")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run(n_train=args.train, n_test=args.test, width=args.width, steps=args.steps, seed=args.seed)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
