"""Pareto fitter: recovery of a known Zipf exponent and the likelihood-ratio tests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.errors import ConfigError
from theory.pareto import fit_pareto, sample_ranks, zipf_masses


@pytest.mark.parametrize("alpha", [1.1, 1.5, 2.0, 3.0])
def test_recovers_alpha_from_exact_masses(alpha):
    fit = fit_pareto(zipf_masses(alpha, 10_000))
    print(f"alpha={alpha}: fitted {fit.alpha:.4f} (tail index {fit.tail_index:.4f}), error {fit.alpha / alpha - 1:+.2%}")
    assert fit.alpha == pytest.approx(alpha, rel=0.05)
    assert fit.tail_index == pytest.approx(1 / fit.alpha)


@pytest.mark.parametrize("alpha", [1.1, 1.5, 2.0])
def test_recovers_alpha_from_sampled_counts(alpha):
    ranks = sample_ranks(alpha, 20_000, 1_000_000, np.random.default_rng(7))
    counts = np.bincount(ranks)
    fit = fit_pareto(counts[counts > 0])
    print(f"alpha={alpha}: fitted from counts {fit.alpha:.4f}, error {fit.alpha / alpha - 1:+.2%}, "
          f"x_min={fit.x_min:g}, tail {fit.n_tail} leaves")
    assert fit.alpha == pytest.approx(alpha, rel=0.05)


def test_size_biased_correction():
    """Masses read off sampled sequences are size-biased; the 1/x weights undo it."""
    alpha, masses = 1.5, zipf_masses(1.5, 20_000)
    drawn = masses[sample_ranks(alpha, 20_000, 30_000, np.random.default_rng(3))]
    corrected = fit_pareto(drawn, size_biased=True)
    naive = fit_pareto(drawn)
    print(f"size-biased sample: corrected {corrected.alpha:.4f}, uncorrected {naive.alpha:.4f} (true {alpha})")
    assert abs(corrected.alpha - alpha) < abs(naive.alpha - alpha)
    assert corrected.alpha == pytest.approx(alpha, rel=0.1)


def test_likelihood_ratio_tests():
    fit = fit_pareto(zipf_masses(1.5, 20_000))
    exp = fit.tests["exponential"]
    assert exp.log_ratio > 0 and exp.p_value < 0.01  # a power law is not exponential
    lognormal_data = stats.lognorm.rvs(1.0, size=5000, random_state=np.random.default_rng(0))
    fit_ln = fit_pareto(lognormal_data, x_min=float(np.quantile(lognormal_data, 0.05)))
    test = fit_ln.tests["lognormal"]
    print(f"lognormal data: R={test.log_ratio:.3g}, p={test.p_value:.3g}")
    assert test.log_ratio < 0 and test.p_value < 0.01


def test_weights_equal_repeats():
    x = zipf_masses(1.3, 500)
    w = np.arange(1, 501) % 3 + 1
    a = fit_pareto(x, weights=w, x_min=float(x[300]))
    b = fit_pareto(np.repeat(x, w), x_min=float(x[300]))
    assert a.alpha == pytest.approx(b.alpha, rel=1e-12)


@pytest.mark.parametrize("bad", [[], [1.0, np.nan, 2.0], [-1.0, 2.0, 3.0], [0.0, 0.0]])
def test_bad_values(bad):
    with pytest.raises(ConfigError):
        fit_pareto(np.array(bad, dtype=float))


def test_vuong_mean_and_effective_size():
    """Unweighted, the mean ratio is R / n_tail and n_eff is the tail size; size-biased 1/x weights
    shrink n_eff (Kish) and z is the mean standardised over it."""
    masses = zipf_masses(1.5, 5_000)
    fit = fit_pareto(masses, x_min=float(masses[999]))
    test = fit.tests["exponential"]
    assert test.n_eff == pytest.approx(fit.n_tail)
    assert test.mean_ratio == pytest.approx(test.log_ratio / fit.n_tail, rel=1e-12)
    drawn = masses[sample_ranks(1.5, 5_000, 5_000, np.random.default_rng(1))]
    weighted_fit = fit_pareto(drawn, size_biased=True)
    weighted = weighted_fit.tests["exponential"]
    print(f"size-biased: n_eff {weighted.n_eff:.1f} of {weighted_fit.n_tail} tail values, "
          f"mean ratio {weighted.mean_ratio:.3g}, z {weighted.z:.3g}")
    assert 1 <= weighted.n_eff < weighted_fit.n_tail
