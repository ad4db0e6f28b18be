"""The mixture model's replay derivation (theory.mitigations): the identity in sympy, the exact rate
against a finite difference, and the leading-order predictions against the exact readings."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError
from theory.mitigations import predicted_gain_ratio, replay_forgetting, replay_identity
from theory.mixture import Components

RHO = 0.25


def components(alpha: float, seed: int, leaves: int = 256) -> Components:
    ranks = np.arange(1, leaves + 1.0)
    p = ranks**-alpha / np.sum(ranks**-alpha)
    return Components(p, np.random.default_rng(seed).dirichlet(np.ones(leaves)), p)


def test_replay_is_the_theorem_with_effective_k_and_l():
    assert replay_identity().residual() == 0


@pytest.mark.parametrize("rho", [0.0, RHO])
def test_the_exact_rate_matches_a_finite_difference(rho):
    c, k, h = components(1.0, 0), 40.0, 1e-5

    def gamma_a(n_t: float) -> float:
        q = ((k + rho) * c.p + (1 - rho) * c.a + n_t * c.t) / (k + 1 + n_t)
        return -float(np.sum(c.a * np.log(q)))

    numeric = (gamma_a(h) - gamma_a(-h)) / (2 * h)
    assert replay_forgetting(c, k, rho).rate == pytest.approx(numeric, rel=1e-6)


@pytest.mark.parametrize("alpha, seed", [(0.8, 0), (1.2, 1), (1.0, 2)])
def test_replay_costs_gain_and_leaves_the_share_lost_within_order_one_over_k(alpha, seed):
    c = components(alpha, seed)
    for k in (40.0, 1000.0, 10_000.0):
        sft, replay = replay_forgetting(c, k, 0.0), replay_forgetting(c, k, RHO)
        gain_ratio, share_ratio = replay.gain / sft.gain, replay.share_lost / sft.share_lost
        print(f"alpha {alpha} k {k:g}: gain ratio {gain_ratio:.4f} (leading order "
              f"{predicted_gain_ratio(k, RHO):.4f}), share lost ratio {share_ratio:.4f}")
        assert abs(gain_ratio - predicted_gain_ratio(k, RHO)) < 5 / k
        assert abs(share_ratio - 1) < 5 / k


def test_replay_needs_p_p_to_cover_p_a():
    c = Components(np.array([0.5, 0.5, 0.0]), np.array([0.2, 0.2, 0.6]), np.array([0.5, 0.5, 0.0]))
    with pytest.raises(ConfigError, match="cover"):
        replay_forgetting(c, 10.0, RHO)
