# ruff: noqa: E741  (l is the paper's symbol for |D_t|/|D_a|)
"""Exact results at the distribution level: asserted directly (no recorded verdicts)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from harness.errors import ConfigError
from theory.checks import _mpmath_agreement
from theory.mixture import Components, derivatives, finite_step, log1pmx
from theory.pareto import zipf_masses
from theory.simulate import BAND, K_DECADES
from theory.worlds import distribution_components

ALPHAS, DEPTHS = (0.8, 1.2, 2.0), (4, 8, 12)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("depth", DEPTHS)
def test_pointwise_identity_to_1e9(alpha, depth):
    comps = distribution_components(alpha, 4096, "pretrain", seed=0)
    worst = max(derivatives(comps, k, l, depth).identity_error() for k in K_DECADES for l in (0.0, 0.05, 0.1))
    print(f"alpha={alpha} depth={depth}: max relative error of dgamma_a/dl = -(k+l) dgamma_p/dl: {worst:.3g}")
    assert worst <= 1e-9


def test_signs_of_the_pretraining_perturbation():
    comps = distribution_components(1.2, 4096, "pretrain", seed=0)
    for k in K_DECADES:
        d = derivatives(comps, k, 0.1, 8)
        assert d.p < 0 < d.a


def test_against_mpmath_at_k_1e5():
    check = _mpmath_agreement(k=1e5)
    print(check.detail, check.value)
    assert check.value <= 1e-9


def test_log1pmx_against_mpmath():
    x = np.array([-0.5, -1e-3, -1e-9, 0.0, 1e-12, 1e-4, 0.0999, 0.1, 3.0])
    mpmath.mp.dps = 40
    ref = np.array([float(mpmath.log1p(mpmath.mpf(v)) - mpmath.mpf(v)) for v in x])
    np.testing.assert_allclose(log1pmx(x), ref, rtol=1e-13, atol=0)


def test_finite_step_tends_to_derivative():
    comps = distribution_components(1.2, 1024, "novel", seed=2)
    d0 = derivatives(comps, 100.0, 0.0, 8)
    h = 1e-6
    full, half = finite_step(comps, 100.0, h, 8), finite_step(comps, 100.0, h / 2, 8)
    # Richardson: 2 D(h/2) - D(h) removes the O(h) term of the difference quotient
    assert 2 * half.dgamma_p / (h / 2) - full.dgamma_p / h == pytest.approx(d0.p, rel=1e-7)
    assert 2 * half.dgamma_a / (h / 2) - full.dgamma_a / h == pytest.approx(d0.a, rel=1e-7)


@pytest.mark.parametrize("kind", ["pretrain", "align", "novel", "unseen", "mix"])
def test_conservation_for_any_perturbation(kind):
    comps = distribution_components(1.2, 1024, kind, seed=3, similarity=0.5)
    for k in (10.0, 1e3, 1e5):
        for l in (0.0, 0.1, 1.0):
            assert derivatives(comps, k, l, 8).conservation_residual() <= 1e-9


def test_l0_form_holds_for_any_covered_perturbation():
    comps = distribution_components(1.2, 4096, "novel", seed=0)
    for k in (10.0, 1e3, 1e5):
        d = derivatives(comps, k, 0.0, 8)
        assert d.a == pytest.approx(-k * d.p, rel=1e-9)


def test_alignment_perturbation_flips_the_signs():
    comps = distribution_components(1.2, 4096, "align", seed=0)
    d = derivatives(comps, 1000.0, 0.1, 8)
    assert d.p > 0 > d.a
    assert d.p == pytest.approx(-(1 + 0.1) / 1000.0 * d.a, rel=1e-9)


def test_unseen_leaves_break_even_the_l0_form():
    """Leaves only D_t has: q(0) = 0 there, and k g_p' + g_a' = m_u/(d ln 2) instead of 0."""
    comps = distribution_components(1.2, 1024, "unseen", seed=0)
    d = derivatives(comps, 1000.0, 0.0, 8)
    assert d.unseen_mass == pytest.approx(1.0)
    assert 1000.0 * d.p + d.a == pytest.approx(1.0 / (8 * np.log(2)), rel=1e-9)
    assert np.isinf(d.t)


def test_novel_perturbation_at_finite_l_breaks_the_relation():
    for k in (100.0, 1e3, 1e4):
        step = finite_step(distribution_components(1.2, 4096, "novel", seed=0), k, 0.1, 8)
        print(f"k={k:g}: novel perturbation coefficient {step.coefficient:.4g}, signs {step.signs_hold}")
        assert not (BAND[0] <= step.coefficient <= BAND[1] and step.signs_hold)


def test_disjoint_supports_give_plus_one():
    z, pad = zipf_masses(1.2, 64), np.zeros(64)
    comps = Components(np.r_[z, pad, pad], np.r_[pad, z, pad], np.r_[pad, pad, z])
    assert finite_step(comps, 1000.0, 0.1, 8).ratio == pytest.approx(1.0, rel=1e-12)
    assert derivatives(comps, 1000.0, 0.1, 8).ratio == pytest.approx(1.0, rel=1e-12)


def test_bad_inputs():
    comps = distribution_components(1.2, 16, "pretrain", seed=0)
    with pytest.raises(ConfigError, match="k must be > 0"):
        derivatives(comps, 0.0, 0.1, 8)
    with pytest.raises(ConfigError, match="depth"):
        finite_step(comps, 10.0, 0.1, 0)
    with pytest.raises(ConfigError, match="sum to 1"):
        Components(np.array([0.5, 0.6]), np.array([0.5, 0.5]), np.array([0.5, 0.5]))
