"""Monte Carlo verification of duals and of formulas users write: `verify`, `verify_formula`.

For (u, v) ~ N(0, [[q1, c], [c, q2]]) the sample means of σ(u)σ(v), σ'(u)σ'(v) and σ(√q·z)² estimate K, K̇
and V (DESIGN.md §1); each estimate comes with its standard error, and a formula passes at a covariance when
|estimate − formula| ≤ z*·SE + allowance. z* is the Bonferroni threshold Φ⁻¹(1 − α/(2m)) over the m judged
estimates, so the probability that a *correct* dual fails anywhere is at most α (the family-wise
false-alarm rate; measured in tests/test_verify_statistics.py and stated in the README). The allowance is
the numeric dual's error bound (zero for closed forms) plus float64 rounding, both relative to √(V(q1)V(q2)).

Samples are drawn in chunks inside one jit-compiled JAX function in float64, so 10⁸ samples run in the
memory of one chunk; sums are accumulated in float64 NumPy around a pilot mean (no cancellation).

An estimate whose largest single sample carries more than `HEAVY_TAIL_SHARE` of the sample variance is
heavy-tailed (e.g. e^{u+v} at a large variance): its standard error is not trustworthy, so it is reported
as "not judged" instead of passing or failing, and it does not count in m.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import sympy as sp
from scipy import special

from .activation import Activation, activation
from .dual import Dual, _evaluate_exact, _validated, derive
from .errors import NtksymError
from .symbols import c as c_sym
from .symbols import q as q_sym
from .symbols import q1 as q1_sym
from .symbols import q2 as q2_sym
from .symbols import x
from .vocabulary import freeze_extra_functions

__all__ = ["DESIGN", "Estimate", "FormulaPoint", "FormulaReport", "VerificationError", "VerificationReport",
           "verify", "verify_formula"]

DESIGN: tuple[tuple[float, float, float], ...] = (
    (1.0, 1.0, 0.0), (1.0, 1.0, 0.5), (1.0, 1.0, -0.5), (1.0, 1.0, 0.95), (1.0, 1.0, -0.95),
    (1.0, 1.0, 1.0), (1.0, 1.0, -1.0),
    (0.5, 2.0, 0.3), (2.0, 0.5, -0.7), (4.0, 4.0, 0.8),
    (1e-3, 1e-3, 0.5), (1e-3, 1.0, -0.6),
    (25.0, 25.0, 0.5), (100.0, 1.0, -0.3),
)
"""The designed covariances as (q1, q2, ρ): unit variances at ρ near −1, 0 and 1 and exactly ±1, unequal
and non-unit variances, tiny (10⁻³) and large (25, 100) variances."""

DEFAULT_SAMPLES = 2**22
DEFAULT_ALPHA = 0.01
HEAVY_TAIL_SHARE = 0.01
ROUNDING = 1e-11
"""Relative float64 allowance: pairwise sums of ≤ 10⁸ terms and ulp-accurate σ are good to ~1e-13."""

_CHUNK = 2**16


class VerificationError(NtksymError):
    """Invalid arguments to verify / verify_formula (sample counts, α, covariances, formulas)."""


# ------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Estimate:
    """One Monte Carlo estimate of K, Kdot or V at one covariance, against the formula's value.

    `z` is (estimate − formula)/SE (±inf where SE = 0 and the difference exceeds the allowance);
    `judged` is False for heavy-tailed estimates (see the module docstring); `passed` is True when not judged.
    """

    quantity: str
    q1: float
    q2: float
    c: float
    formula: float
    estimate: float
    standard_error: float
    allowance: float
    z: float
    judged: bool
    passed: bool

    @property
    def rho(self) -> float:
        bound = math.sqrt(self.q1 * self.q2)
        return self.c / bound if bound > 0 else 0.0

    def where(self) -> str:
        return _where(self.quantity, self.q1, self.q2, self.c) + ("" if self.quantity == "V" else
                                                                  f" [ρ={self.rho:+.3g}]")


@dataclass(frozen=True)
class VerificationReport:
    """The outcome of `verify`: every estimate, the threshold and the family-wise false-alarm rate α."""

    activation: str
    method: str
    exact: bool
    error_bound: float | None
    n_samples: int
    seed: int
    alpha: float
    z_threshold: float
    estimates: tuple[Estimate, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(e.passed for e in self.estimates)

    @property
    def failures(self) -> tuple[Estimate, ...]:
        return tuple(e for e in self.estimates if not e.passed)

    @property
    def n_judged(self) -> int:
        return sum(e.judged for e in self.estimates)

    def __str__(self) -> str:
        head = (f"verify σ = {self.activation}: {self.method}"
                + ("" if self.exact else f" (relative error bound {self.error_bound:.1e})")
                + f"\nMonte Carlo: {self.n_samples:,} samples, seed {self.seed}, float64")
        rows = [("", "q1", "q2", "ρ", "formula", "Monte Carlo", "std. error", "z", "")]
        for e in self.estimates:
            q2 = "" if e.quantity == "V" else _g(e.q2)
            rho = "" if e.quantity == "V" else f"{e.rho:+.3g}"
            status = "ok" if e.passed and e.judged else ("heavy tail: not judged" if not e.judged else "FAIL")
            rows.append((e.quantity, _g(e.q1), q2, rho, f"{e.formula:.8g}", f"{e.estimate:.8g}",
                         f"{e.standard_error:.2g}", _z(e.z), status))
        verdict = "PASSED" if self.passed else f"FAILED at {len(self.failures)} of {self.n_judged} estimates"
        foot = (f"{verdict}: |MC − formula| ≤ z*·SE + allowance with z* = {self.z_threshold:.2f} "
                f"(Bonferroni over {self.n_judged} judged estimates: a correct dual fails with probability "
                f"≤ α = {self.alpha:g}); {self.seconds:.1f} s")
        return "\n".join([head, _table(rows), foot])

    def to_dict(self) -> dict:
        record = asdict(self)
        record["estimates"] = [asdict(e) | {"rho": e.rho} for e in self.estimates]
        record["passed"] = self.passed
        record["n_judged"] = self.n_judged
        return _finite_json(record)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def plot(self, path=None, *, dual: Dual | None = None, ax=None):
        """k̂(ρ) = K(1, 1, ρ) of the formula with the unit-variance Monte Carlo estimates and ±z*·SE bars.

        Needs matplotlib (pip install matplotlib). Saves to `path` if given; returns the Axes."""
        try:
            import matplotlib

            if ax is None and path is not None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise VerificationError("plot() needs matplotlib: pip install matplotlib") from None
        points = [e for e in self.estimates if e.quantity == "K" and e.q1 == 1.0 and e.q2 == 1.0]
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        if dual is not None:
            grid = np.linspace(-1, 1, 201)
            ax.plot(grid, dual.evaluate(np.ones_like(grid), np.ones_like(grid), grid)[0], label="formula")
        ax.errorbar([e.rho for e in points], [e.estimate for e in points],
                    yerr=[self.z_threshold * e.standard_error for e in points], fmt="o", ms=3,
                    label=f"Monte Carlo ± {self.z_threshold:.2f}·SE")
        ax.set_xlabel("ρ")
        ax.set_ylabel("k̂(ρ) = K(1, 1, ρ)")
        ax.set_title(f"σ = {self.activation}")
        ax.legend()
        if path is not None:
            ax.figure.tight_layout()
            ax.figure.savefig(path)
        return ax


# ----------------------------------------------------------------------------------------- verify


def verify(dual, *, n_samples: int = DEFAULT_SAMPLES, seed: int = 0, alpha: float = DEFAULT_ALPHA,
           covariances=None, progress: bool | None = None, chunk_size: int = _CHUNK,
           extra_functions=None) -> VerificationReport:
    """Monte Carlo check of a dual's K, K̇ and V at the designed covariances (or `covariances`).

    **Arguments:**
    - `dual`: a Dual, or anything `derive` takes (a catalog name, a formula string, a SymPy expression).
    - `n_samples`: Gaussian samples per covariance (≥ 1000); memory is one chunk whatever the count.
    - `seed`: the JAX PRNG seed (runs are deterministic).
    - `alpha`: family-wise false-alarm rate: a correct dual fails with probability at most alpha.
    - `covariances`: (q1, q2, c) triples instead of DESIGN.
    - `progress`: a progress bar on stderr (default: on for ≥ 10⁷ samples when stderr is a terminal).
    - `extra_functions`: {SymPy class (or its name): JAX function} for functions in σ that ntksym's vocabulary
      lacks; the Monte Carlo samples σ and σ' in JAX with them.

    **Returns:** a VerificationReport (`.passed`, `.failures`, `str()` a table, `.to_json()`, `.plot()`).
    """
    dual = dual if isinstance(dual, Dual) else derive(dual)
    n_samples, alpha = _check_run(n_samples, alpha, seed, chunk_size)
    extra = freeze_extra_functions(extra_functions)
    design = _design(covariances)
    start = time.perf_counter()
    mc = _monte_carlo(dual.activation, dual.Kdot is not None, design, n_samples, seed, chunk_size, progress, extra)
    values = _dual_values(dual, design)
    bound = dual.error_bound or 0.0
    estimates = _raw_estimates(values, mc, design, bound)
    return VerificationReport(
        activation=dual.activation.label, method=dual.method, exact=dual.exact, error_bound=dual.error_bound,
        n_samples=n_samples, seed=seed, alpha=alpha, z_threshold=_threshold(alpha, estimates),
        estimates=_finalise(estimates, alpha), seconds=time.perf_counter() - start)


def _check_run(n_samples, alpha, seed, chunk_size) -> tuple[int, float]:
    if isinstance(n_samples, float) and n_samples.is_integer():
        n_samples = int(n_samples)
    if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples < 1000:
        raise VerificationError(f"n_samples must be an integer ≥ 1000, got {n_samples!r}")
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise VerificationError(f"alpha (the family-wise false-alarm rate) must be in (0, 1), got {alpha!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise VerificationError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(chunk_size, int) or chunk_size < 16:
        raise VerificationError(f"chunk_size must be an integer ≥ 16, got {chunk_size!r}")
    return int(n_samples), float(alpha)


def _design(covariances) -> np.ndarray:
    """(q1, q2, c) rows of the covariances to check, validated."""
    if covariances is None:
        rows = np.array([(a, b, r * math.sqrt(a * b)) for a, b, r in DESIGN])
    else:
        try:
            rows = np.asarray(covariances, dtype=np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            raise VerificationError("covariances must be a sequence of (q1, q2, c) number triples") from None
        if rows.shape[0] == 0:
            raise VerificationError("covariances is empty: give at least one (q1, q2, c) triple")
    _validated(rows[:, 0], rows[:, 1], rows[:, 2])
    return rows


@dataclass(frozen=True)
class _MonteCarlo:
    """Sample means, standard errors and heavy-tail shares: K and Kdot rows per covariance, V and
    V̇ = E[σ'(√q z)²] rows per distinct variance (V̇ only scales K̇'s allowance)."""

    K: tuple[np.ndarray, np.ndarray, np.ndarray]
    Kdot: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    V: tuple[np.ndarray, np.ndarray, np.ndarray]
    Vdot: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    variances: np.ndarray


def _monte_carlo(act: Activation, with_derivative: bool, design: np.ndarray, n: int, seed: int,
                 chunk: int, progress: bool | None, extra: tuple = ()) -> _MonteCarlo:
    import jax

    variances = np.unique(np.concatenate([design[:, 0], design[:, 1]]))
    m, k = len(design), len(variances)
    with jax.enable_x64(True):
        key = jax.random.key(seed)
        rho = np.where(design[:, 0] * design[:, 1] > 0,
                       design[:, 2] / np.sqrt(np.maximum(design[:, 0] * design[:, 1], 1e-300)), 0.0)
        rho = np.clip(rho, -1.0, 1.0)
        i1 = tuple(int(i) for i in np.searchsorted(variances, design[:, 0]))
        step = _chunk_function(act.expr, with_derivative, chunk, i1, extra)
        args = (np.sqrt(design[:, 1]), rho, np.sqrt(1 - rho * rho), np.sqrt(variances))
        rows = (2 if with_derivative else 1) * (m + k)
        pilot = np.asarray(step(jax.random.fold_in(key, 2**31 - 1), *args, np.zeros(rows)))
        shift = pilot[0] / chunk
        sums = np.zeros_like(pilot)
        n_chunks = -(-n // chunk)
        bar = _Progress(n, act.label) if _show_progress(progress, n) else None
        for i in range(n_chunks):
            size = min(chunk, n - i * chunk)
            run = step if size == chunk else _chunk_function(act.expr, with_derivative, size, i1, extra)
            part = np.asarray(run(jax.random.fold_in(key, i), *args, shift))
            sums[:2] += part[:2]
            sums[2] = np.maximum(sums[2], part[2])
            if bar is not None:
                bar.update(min((i + 1) * chunk, n))
        if bar is not None:
            bar.close()
    total, squares, largest = sums
    mean = shift + total / n
    variance = np.maximum(squares - total * total / n, 0.0) / (n - 1)
    se = np.sqrt(variance / n)
    share = np.where(squares > 0, largest / np.where(squares > 0, squares, 1.0), 0.0)
    rows = [(mean[s], se[s], share[s]) for s in _row_slices(m, k, with_derivative)]
    return _MonteCarlo(K=rows[0], Kdot=rows[1] if with_derivative else None, V=rows[-2 if with_derivative else -1],
                       Vdot=rows[-1] if with_derivative else None, variances=variances)


def _row_slices(m: int, k: int, with_derivative: bool) -> list[slice]:
    if with_derivative:
        return [slice(0, m), slice(m, 2 * m), slice(2 * m, 2 * m + k), slice(2 * m + k, 2 * m + 2 * k)]
    return [slice(0, m), slice(m, m + k)]


_CHUNK_FUNCTIONS: dict = {}


def _chunk_function(expr: sp.Expr, with_derivative: bool, chunk: int, i1: tuple[int, ...],
                    extra: tuple = ()) -> Callable:
    """jit-compiled: one chunk of samples → per row Σ(x − shift), Σ(x − shift)², max (x − shift)².

    σ at √q·z1 for each distinct variance q serves both as σ(u) (u = √q1·z1, row i1 of the variances) and
    for V; only σ(v) is evaluated per covariance. The indices i1 are static: a dynamic gather, or one
    concatenation of all rows before the reductions, is ~10× slower on XLA:CPU."""
    cache_key = (expr, with_derivative, chunk, i1, extra)
    if cache_key in _CHUNK_FUNCTIONS:
        return _CHUNK_FUNCTIONS[cache_key]
    import jax
    import jax.numpy as jnp

    from .lower import lower_elementwise

    sigma = lower_elementwise(expr, dict(extra))
    # where K̇ exists, σ' has no δ mass (a Dirac δ in σ' meets a factor vanishing there, as in
    # x²·δ(x) of d/dx x²H(x)), so δ terms are zero almost everywhere and are dropped
    dsigma = lower_elementwise(sp.diff(expr, x).replace(sp.DiracDelta, lambda *a: sp.S.Zero), dict(extra)) \
        if with_derivative else None

    @jax.jit
    def step(key, s2, rho, rho_c, s, shift):
        # samples along axis 0, rows along axis 1: XLA:CPU reduces this layout ~3× faster
        z1, z2 = jax.random.normal(key, (2, chunk), dtype=jnp.float64)
        w = z1[:, None] * s[None, :]
        v = (z1[:, None] * rho[None, :] + z2[:, None] * rho_c[None, :]) * s2[None, :]
        sw = sigma(w)
        parts = [jnp.stack([sw[:, i] for i in i1], axis=1) * sigma(v)]
        if dsigma is not None:
            dw = dsigma(w)
            parts.append(jnp.stack([dw[:, i] for i in i1], axis=1) * dsigma(v))
        parts.append(sw * sw)
        if dsigma is not None:
            parts.append(dw * dw)
        stats, start = [], 0
        for part in parts:
            d = part - shift[None, start:start + part.shape[1]]
            d2 = d * d
            stats.append(jnp.stack([d.sum(axis=0), d2.sum(axis=0), d2.max(axis=0)]))
            start += part.shape[1]
        return jnp.concatenate(stats, axis=1)

    _CHUNK_FUNCTIONS[cache_key] = step
    return step


def _show_progress(progress: bool | None, n: int) -> bool:
    if progress is None:
        return n >= 10**7 and sys.stderr.isatty()
    return bool(progress)


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label, self.start = total, label, time.perf_counter()
        self.stream = stream if stream is not None else sys.stderr

    def update(self, done: int) -> None:
        frac = done / self.total
        bar = "#" * int(30 * frac)
        self.stream.write(f"\rverify {self.label}: [{bar:<30}] {100 * frac:5.1f}% "
                          f"{done:.2e}/{self.total:.2e} samples, {time.perf_counter() - self.start:.0f} s")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _dual_values(dual: Dual, design: np.ndarray) -> dict:
    k, kdot = dual.evaluate(design[:, 0], design[:, 1], design[:, 2])
    variances = np.unique(np.concatenate([design[:, 0], design[:, 1]]))
    return {"K": k, "Kdot": kdot, "V": dual.variance(variances)}


@dataclass(frozen=True)
class _Raw:
    quantity: str
    q1: float
    q2: float
    c: float
    formula: float
    estimate: float
    se: float
    allowance: float
    judged: bool


def _scales(mc: _MonteCarlo, design: np.ndarray) -> dict:
    """√(E σ(u)² E σ(v)²) and √(E σ'(u)² E σ'(v)²) per covariance, V per variance (from the samples, so a
    wrong V in the formula cannot widen its own allowance)."""
    index = {float(v): i for i, v in enumerate(mc.variances)}
    i1 = np.array([index[float(a)] for a in design[:, 0]])
    i2 = np.array([index[float(b)] for b in design[:, 1]])
    out = {"K": np.sqrt(mc.V[0][i1] * mc.V[0][i2]), "V": np.abs(mc.V[0])}
    if mc.Vdot is not None:
        out["Kdot"] = np.sqrt(mc.Vdot[0][i1] * mc.Vdot[0][i2])
    return out


def _raw_estimates(values: dict, mc: _MonteCarlo, design: np.ndarray, bound: float) -> list[_Raw]:
    scales = _scales(mc, design)
    out = []
    for quantity in ("K", "Kdot", "V"):
        rows = getattr(mc, quantity)
        if rows is None or values.get(quantity) is None:
            continue
        mean, se, share = rows
        points = [(v, v, v) for v in mc.variances] if quantity == "V" else [tuple(r) for r in design]
        for i, (a, b, cc) in enumerate(points):
            allowance = (bound + ROUNDING) * scales[quantity][i]
            out.append(_Raw(quantity, float(a), float(b), float(cc), float(values[quantity][i]), float(mean[i]),
                            float(se[i]), float(allowance), bool(share[i] <= HEAVY_TAIL_SHARE)))
    return out


def _threshold(alpha: float, raw) -> float:
    m = max(sum(r.judged for r in raw), 1)
    return float(special.ndtri(1 - alpha / (2 * m)))


def _finalise(raw: list[_Raw], alpha: float) -> tuple[Estimate, ...]:
    z_star = _threshold(alpha, raw)
    return tuple(_estimate(r, z_star) for r in raw)


def _estimate(r: _Raw, z_star: float) -> Estimate:
    diff = r.estimate - r.formula
    if not math.isfinite(r.formula):
        z, ok = math.nan, False
    elif r.se > 0:
        z = diff / r.se
        ok = abs(diff) <= z_star * r.se + r.allowance
    else:
        ok = abs(diff) <= r.allowance
        z = 0.0 if ok else math.copysign(math.inf, diff)
    judged = r.judged or not math.isfinite(r.formula)  # a NaN formula fails, heavy tail or not
    return Estimate(quantity=r.quantity, q1=r.q1, q2=r.q2, c=r.c, formula=r.formula, estimate=r.estimate,
                    standard_error=r.se, allowance=r.allowance, z=z, judged=judged, passed=ok or not judged)


# --------------------------------------------------------------------------------- verify_formula


@dataclass(frozen=True)
class FormulaPoint:
    """A user's formula at one covariance, against the engine's derivation and (at designed points)
    Monte Carlo; `ok` is False where either disagrees beyond its tolerance."""

    quantity: str
    q1: float
    q2: float
    c: float
    yours: float
    derived: float
    tolerance: float
    monte_carlo: float | None
    standard_error: float | None
    z: float | None
    ok: bool

    def where(self) -> str:
        return _where(self.quantity, self.q1, self.q2, self.c)


@dataclass(frozen=True)
class FormulaReport:
    """The outcome of `verify_formula`: per formula given, every point checked; `str()` says where it fails."""

    activation: str
    derived_method: str
    z_threshold: float
    alpha: float
    n_samples: int
    points: tuple[FormulaPoint, ...]
    consistency: VerificationReport | None

    @property
    def passed(self) -> bool:
        return all(p.ok for p in self.points)

    def failures(self, quantity: str | None = None) -> tuple[FormulaPoint, ...]:
        return tuple(p for p in self.points if not p.ok and quantity in (None, p.quantity))

    def quantities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.quantity for p in self.points))

    def __str__(self) -> str:
        head = (f"verify_formula for σ = {self.activation} (derived: {self.derived_method}; Monte Carlo "
                f"{self.n_samples:,} samples, z* = {self.z_threshold:.2f} at family-wise α = {self.alpha:g})")
        lines = [head]
        for quantity in self.quantities():
            points = [p for p in self.points if p.quantity == quantity]
            bad = self.failures(quantity)
            if not bad:
                lines.append(f"{quantity}: correct at all {len(points)} covariances checked")
                continue
            lines.append(f"{quantity} is WRONG at {len(bad)} of {len(points)} covariances checked:")
            for p in sorted(bad, key=lambda p: -abs(p.yours - p.derived) / max(p.tolerance, 1e-300))[:8]:
                text = (f"  {p.where()}: yours {p.yours:.10g}, derived {p.derived:.10g} "
                        f"(difference {p.yours - p.derived:+.3g}, tolerance {p.tolerance:.1g})")
                if p.monte_carlo is not None:
                    text += f", Monte Carlo {p.monte_carlo:.6g} ± {p.standard_error:.2g} (z = {_z(p.z)})"
                lines.append(text)
            if len(bad) > 8:
                lines.append(f"  ... and {len(bad) - 8} more covariances")
            good = [p for p in points if p.ok]
            if 0 < len(good) <= 12:
                lines.append(f"  it agrees only at: {'; '.join(p.where() for p in good)}")
        if self.consistency is not None and not self.consistency.passed:
            lines.append("warning: the derived dual itself disagrees with Monte Carlo; see verify(...)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return _finite_json({"activation": self.activation, "derived_method": self.derived_method,
                             "passed": self.passed, "z_threshold": self.z_threshold, "alpha": self.alpha,
                             "n_samples": self.n_samples, "points": [asdict(p) for p in self.points]})


_GRID_Q = (0.25, 1.0, 4.0)
_GRID_RHO = tuple(np.linspace(-1, 1, 9))
FORMULA_RTOL = 1e-9
"""Agreement demanded of a formula with an exact derivation, relative to √(V(q1)V(q2)): both are evaluated
in 30-digit arithmetic, so any real error in a formula is far above this."""


def verify_formula(act, *, K=None, Kdot=None, V=None, n_samples: int = 2**20, seed: int = 0,
                   alpha: float = DEFAULT_ALPHA, covariances=None, extra_functions=None) -> FormulaReport:
    """Check formulas a user wrote for σ's K, K̇ and/or V against the derived dual and Monte Carlo.

    Each formula is a SymPy expression or a string in q1, q2, c (K, Kdot) or q (V), parsed safely, or a
    Python callable of float arrays. It is compared with the engine at DESIGN and on a grid (q1, q2 ∈
    {1/4, 1, 4}, ρ ∈ {−1, −3/4, …, 1}), and with Monte Carlo at DESIGN. The report's `str()` names the
    covariances where a formula is wrong and by how much; `.passed` is the verdict. `extra_functions` as in
    verify().
    """
    act = activation(act)
    given = {k: v for k, v in (("K", K), ("Kdot", Kdot), ("V", V)) if v is not None}
    if not given:
        raise VerificationError("verify_formula needs at least one of K=, Kdot=, V=")
    dual = derive(act)
    if "Kdot" in given and dual.Kdot is None:
        raise VerificationError(f"K̇ does not exist for σ = {act.label}: {dual.Kdot_reason}")
    n_samples, alpha = _check_run(n_samples, alpha, seed, _CHUNK)
    design = _design(covariances)
    grid = np.array([(a, b, r * math.sqrt(a * b)) for a in _GRID_Q for b in _GRID_Q for r in _GRID_RHO])
    extra = [row for row in grid if not any(np.allclose(row, d, rtol=1e-12, atol=0) for d in design)]
    points = np.concatenate([design, np.array(extra).reshape(-1, 3)])
    functions = {k: _formula_function(k, v) for k, v in given.items()}

    mc = _monte_carlo(act, dual.Kdot is not None, design, n_samples, seed, _CHUNK, None,
                      freeze_extra_functions(extra_functions))
    derived_design = _dual_values(dual, design)
    consistency_raw = _raw_estimates(derived_design, mc, design, dual.error_bound or 0.0)
    # the user's formulas are judged at the designed covariances of the quantities given: m counts those
    z_star = _threshold(alpha, [r for r in consistency_raw if r.quantity in given])
    consistency = VerificationReport(
        activation=act.label, method=dual.method, exact=dual.exact, error_bound=dual.error_bound,
        n_samples=n_samples, seed=seed, alpha=alpha, z_threshold=_threshold(alpha, consistency_raw),
        estimates=_finalise(consistency_raw, alpha), seconds=0.0)

    out = []
    for quantity, fn in functions.items():
        out.extend(_formula_points(quantity, fn, dual, points, len(design), mc, z_star))
    return FormulaReport(activation=act.label, derived_method=dual.method, z_threshold=z_star, alpha=alpha,
                         n_samples=n_samples, points=tuple(out), consistency=consistency)


def _formula_points(quantity, fn, dual, points, n_design, mc, z_star) -> list[FormulaPoint]:
    if quantity == "V":
        qs = np.unique(np.concatenate([points[:, 0], points[:, 1]]))
        derived = dual.variance(qs)
        yours = fn(qs)
        scale = np.abs(derived)
        coords = [(v, v, v) for v in qs]
        mc_index = {float(v): i for i, v in enumerate(mc.variances)}
        mc_rows = [mc_index.get(float(v)) for v in qs]
        mc_data = mc.V
    else:
        k, kdot = dual.evaluate(points[:, 0], points[:, 1], points[:, 2])
        derived = k if quantity == "K" else kdot
        yours = fn(points[:, 0], points[:, 1], points[:, 2])
        vq = dual.variance(points[:, :2]) if quantity == "K" else np.stack(
            [dual.evaluate(points[:, j], points[:, j], points[:, j])[1] for j in (0, 1)], axis=1)
        scale = np.sqrt(np.abs(vq[:, 0] * vq[:, 1]))
        coords = [tuple(r) for r in points]
        mc_rows = [i if i < n_design else None for i in range(len(points))]
        mc_data = getattr(mc, quantity)
    tolerance = (FORMULA_RTOL + (dual.error_bound or 0.0)) * np.where(scale > 0, scale, 1.0)
    out = []
    for i, (a, b, cc) in enumerate(coords):
        y, d, tol = float(yours[i]), float(derived[i]), float(tolerance[i])
        ok = math.isfinite(y) and abs(y - d) <= tol
        est = se = z = None
        j = mc_rows[i]
        if j is not None and mc_data is not None:
            est, se = float(mc_data[0][j]), float(mc_data[1][j])
            z = (y - est) / se if se > 0 else (0.0 if y == est else math.inf)
            judged = mc_data[2][j] <= HEAVY_TAIL_SHARE
            ok = ok and (not judged or (math.isfinite(y) and abs(y - est) <= z_star * se + tol))
        out.append(FormulaPoint(quantity, float(a), float(b), float(cc), y, d, tol, est, se, z, ok))
    return out


def _formula_function(quantity: str, formula) -> Callable:
    """A vectorised float64 function of (q1, q2, c) or q from a SymPy expression, a string or a callable."""
    names = ("q",) if quantity == "V" else ("q1", "q2", "c")
    symbols = (q_sym,) if quantity == "V" else (q1_sym, q2_sym, c_sym)
    if callable(formula) and not isinstance(formula, sp.Basic):
        return _wrap_callable(quantity, formula)
    if isinstance(formula, str):
        from ._parse import parse_formula

        expr = parse_formula(formula, dict(zip(names, symbols)))
    elif isinstance(formula, sp.Basic):
        by_name = dict(zip(names, symbols))
        extra = sorted(s.name for s in formula.free_symbols if s.name not in by_name)
        if extra:
            raise VerificationError(f"the formula for {quantity} may only use {', '.join(names)}; "
                                    f"it also uses {', '.join(extra)}")
        expr = formula.xreplace({s: by_name[s.name] for s in formula.free_symbols})
    else:
        raise VerificationError(f"{quantity}= must be a SymPy expression, a string or a callable, "
                                f"got {type(formula).__name__}")

    def fn(*arrays):
        return _evaluate_exact(expr, symbols, tuple(np.asarray(a, dtype=np.float64) for a in arrays), 30)

    return fn


def _wrap_callable(quantity: str, f: Callable) -> Callable:
    def fn(*arrays):
        try:
            out = np.asarray(f(*arrays), dtype=np.float64)
            if out.shape != np.shape(arrays[0]):
                raise ValueError("shape")
        except Exception:  # noqa: BLE001 - a user's callable may raise anything if not vectorised: go point by point
            try:
                out = np.array([float(f(*point)) for point in zip(*arrays)], dtype=np.float64)
            except Exception as err:  # noqa: BLE001 - reported as a clear error naming the callable
                raise VerificationError(f"the {quantity} callable failed at a covariance: "
                                        f"{type(err).__name__}: {err}") from None
        return out

    return fn


# ------------------------------------------------------------------------------------------ helpers


def _where(quantity: str, q1: float, q2: float, c: float) -> str:
    """The covariance of an estimate as the message shows it: q for V, (q1, q2, c) for K and K̇."""
    return f"q={_g(q1)}" if quantity == "V" else f"(q1, q2, c)=({_g(q1)}, {_g(q2)}, {_g(c)})"


def _z(z: float) -> str:
    return f"{z:+.2f}" if abs(z) < 1e4 else f"{z:+.2g}"


def _g(v: float) -> str:
    return f"{v:.4g}"


def _table(rows) -> str:
    """Right-aligned columns, the last (a status word) left-aligned."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(v).rjust(w) for v, w in zip(r[:-1], widths)) + "  " + str(r[-1])
                     for r in rows).rstrip()


def _finite_json(value):
    """JSON has no inf/NaN: write them as strings."""
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
