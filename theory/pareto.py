"""Zipf/Pareto mass distributions: samplers, a maximum-likelihood fit and likelihood-ratio tests.

Conventions (glossary in architecture.md):

- ``alpha`` is the Zipf **rank** exponent of leaf masses, ``p_r ∝ r**-alpha``.
- The mass *values* then have a Pareto tail, ``#{leaves with mass >= x} ∝ x**-(1/alpha)``: the
  Pareto tail index of the masses is ``1/alpha``. Both are reported.

The fit follows Clauset, Shalizi & Newman (2009): the continuous power-law MLE above ``x_min``,
``x_min`` chosen by minimising the Kolmogorov–Smirnov distance, and Vuong likelihood-ratio tests
against a lognormal and an exponential truncated at the same ``x_min`` (scipy.stats). Integer data
(counts) use the standard continuous approximation with ``x_min - 1/2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from harness.errors import ConfigError


def _check_alpha(alpha: float) -> None:
    if not (np.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"alpha must be > 0, got {alpha}")


def zipf_masses(alpha: float, n_leaves: int) -> np.ndarray:
    """Exact leaf masses ``p_r ∝ r**-alpha`` for ranks ``r = 1..n_leaves`` (scipy.stats.zipfian)."""
    _check_alpha(alpha)
    if n_leaves < 1:
        raise ConfigError(f"n_leaves must be >= 1, got {n_leaves}")
    p = stats.zipfian.pmf(np.arange(1, n_leaves + 1), alpha, n_leaves)
    return p / p.sum()


def sample_ranks(alpha: float, n_leaves: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` i.i.d. ranks (0-based) from the Zipf(alpha) law over ``n_leaves`` leaves.

    Inverse-CDF sampling on the scipy.stats pmf (``zipfian.rvs`` is orders of magnitude slower).
    """
    return rng.choice(n_leaves, size=size, p=zipf_masses(alpha, n_leaves))


@dataclass(frozen=True)
class LikelihoodRatio:
    """Vuong test of the power law against one alternative: ``R > 0`` favours the power law."""

    alternative: str
    log_ratio: float  # sum of (weighted) pointwise log-likelihood differences, power law minus alternative
    z: float
    p_value: float  # two-sided: small means the sign of log_ratio is significant
    mean_ratio: float  # weighted mean pointwise difference, the quantity z standardises
    n_eff: float  # Kish effective sample size of the weights (the tail size when unweighted)


@dataclass(frozen=True)
class ParetoFit:
    """Result of :func:`fit_pareto`."""

    alpha: float  # Zipf rank exponent
    tail_index: float  # Pareto tail index of the mass values, 1/alpha
    x_min: float
    n_tail: int
    ks: float
    tests: dict[str, LikelihoodRatio] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "alpha": self.alpha, "tail_index": self.tail_index, "x_min": self.x_min,
            "n_tail": self.n_tail, "ks": self.ks,
            "tests": {k: vars(v) for k, v in self.tests.items()},
        }


def _validate(values: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ConfigError("no values to fit")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ConfigError("values must be finite and non-negative")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape != x.shape or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ConfigError("weights must be finite, non-negative and one per value")
    keep = (x > 0) & (w > 0)
    if keep.sum() < 3:
        raise ConfigError("need at least 3 positive values to fit")
    return x[keep], w[keep]


def _mle(x: np.ndarray, w: np.ndarray, lower: float) -> float:
    """Weighted MLE of the tail index ``b`` of ``P(X >= x) = (x/lower)**-b``."""
    return float(w.sum() / (w * np.log(x / lower)).sum())


def _ks(x_sorted: np.ndarray, w_sorted: np.ndarray, lower: float, b: float) -> float:
    ecdf = np.cumsum(w_sorted) / w_sorted.sum()
    model = 1.0 - (x_sorted / lower) ** -b
    before = np.r_[0.0, ecdf[:-1]]
    return float(max(np.abs(ecdf - model).max(), np.abs(before - model).max()))


def fit_pareto(
    values: np.ndarray, *, weights: np.ndarray | None = None, size_biased: bool = False,
    discrete: bool | None = None, x_min: float | None = None, min_tail: int = 50,
    n_candidates: int = 200,
) -> ParetoFit:
    """Fit a Pareto tail to leaf masses (or counts) and test it against lognormal and exponential.

    Args:
        values: one value per leaf: its mass, or its count in a sample (counts make ``discrete``
            default to True). With ``size_biased=True``, one value per *sampled sequence*: the
            mass of the leaf that the sample landed on, as a model's exact probability gives it.
        weights: optional weight per value (e.g. how many leaves it stands for).
        size_biased: the values were drawn with probability proportional to themselves (sampling
            sequences, then reading their leaf's mass); each value is reweighted by ``1/value``
            (Horvitz–Thompson), which turns the size-biased law back into the law over leaves.
        discrete: integer data; uses ``x_min - 1/2`` in the likelihood (Clauset et al. 2009, eq. 3.7).
        x_min: fixed lower cut; by default chosen by minimising the KS distance over candidates
            leaving at least ``min_tail`` values in the tail.

    Returns:
        ParetoFit with ``alpha`` (Zipf rank exponent) and ``tail_index`` (= 1/alpha).
    """
    x, w = _validate(values, weights)
    if size_biased:
        w = w / x
    if discrete is None:
        discrete = bool(np.all(x == np.round(x)))
    shift = 0.5 if discrete else 0.0
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    if x_min is None:
        uniq = np.unique(x)
        # candidates leave at least min_tail values above them
        limit = x[max(x.size - min(min_tail, x.size), 0)]
        uniq = uniq[uniq <= limit]
        if uniq.size > n_candidates:
            uniq = uniq[np.unique(np.linspace(0, uniq.size - 1, n_candidates).round().astype(int))]
        best = (np.inf, float(uniq[0]))
        for cand in uniq:
            tail = x >= cand
            lower = cand - shift
            if lower <= 0 or np.all(x[tail] == lower):
                continue
            b = _mle(x[tail], w[tail], lower)
            ks = _ks(x[tail], w[tail], lower, b)
            if ks < best[0]:
                best = (ks, float(cand))
        x_min = best[1]
    tail = x >= x_min
    if tail.sum() < 3:
        raise ConfigError(f"fewer than 3 values at or above x_min={x_min}")
    xt, wt = x[tail], w[tail]
    lower = x_min - shift
    if lower <= 0:
        raise ConfigError("x_min must exceed 1/2 for discrete data and 0 otherwise")
    b = _mle(xt, wt, lower)
    ks = _ks(xt, wt, lower, b)
    log_pl = np.log(b) - np.log(lower) - (1.0 + b) * np.log(xt / lower)
    tests = {
        "lognormal": _vuong("lognormal", log_pl, _lognormal_loglik(xt, wt, lower), wt),
        "exponential": _vuong("exponential", log_pl, _exponential_loglik(xt, wt, lower), wt),
    }
    return ParetoFit(alpha=1.0 / b, tail_index=b, x_min=float(x_min), n_tail=int(tail.sum()),
                     ks=ks, tests=tests)


def _exponential_loglik(x: np.ndarray, w: np.ndarray, lower: float) -> np.ndarray:
    scale = float((w * (x - lower)).sum() / w.sum())
    return stats.expon.logpdf(x, loc=lower, scale=max(scale, 1e-300))


def _lognormal_loglik(x: np.ndarray, w: np.ndarray, lower: float) -> np.ndarray:
    """Pointwise log-likelihood of a lognormal truncated below at ``lower``, fitted by weighted MLE."""
    logx = np.log(x)

    def pointwise(theta: np.ndarray) -> np.ndarray:
        mu, sigma = theta[0], np.exp(theta[1])
        return (stats.norm.logpdf(logx, mu, sigma) - logx
                - stats.norm.logsf(np.log(lower), mu, sigma))

    def loss(theta: np.ndarray) -> float:
        value = -(w * pointwise(theta)).sum() / w.sum()
        return float(value) if np.isfinite(value) else 1e300

    mean = float((w * logx).sum() / w.sum())
    std = float(np.sqrt((w * (logx - mean) ** 2).sum() / w.sum())) or 1.0
    res = optimize.minimize(loss, np.array([mean, np.log(std)]), method="L-BFGS-B")
    return pointwise(res.x)


def _vuong(name: str, log_a: np.ndarray, log_b: np.ndarray, w: np.ndarray) -> LikelihoodRatio:
    diff = log_a - log_b
    total = float((w * diff).sum())
    mean = float((w * diff).sum() / w.sum())
    sd = float(np.sqrt((w * (diff - mean) ** 2).sum() / w.sum()))
    n_eff = float(w.sum() ** 2 / (w**2).sum())
    if sd == 0:
        return LikelihoodRatio(name, total, float("inf") if mean else 0.0, 0.0 if mean else 1.0, mean, n_eff)
    z = mean * np.sqrt(n_eff) / sd
    return LikelihoodRatio(name, total, float(z), float(2 * stats.norm.sf(abs(z))), mean, n_eff)


def size_bias_recovery(alpha: float, n_leaves: int, n_samples: int, seed: int) -> dict[str, float]:
    """Sample leaves in proportion to their Zipf(alpha) mass, read each draw's mass, and fit with
    and without the size-bias correction; the corrected fit must recover ``alpha``."""
    rng = np.random.default_rng((29, seed))
    masses = zipf_masses(alpha, n_leaves)
    drawn = masses[sample_ranks(alpha, n_leaves, n_samples, rng)]
    corrected = fit_pareto(drawn, size_biased=True, discrete=False)
    naive = fit_pareto(drawn, size_biased=False, discrete=False)
    exact = fit_pareto(masses, discrete=False)
    return {"alpha_true": alpha, "alpha_corrected": corrected.alpha, "alpha_naive": naive.alpha,
            "alpha_all_leaves": exact.alpha}
