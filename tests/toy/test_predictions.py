"""Prediction tests: each asserts the verdict recorded in figures/results.json for its test config.

The test configs are in ``conftest.py`` (5 seeds each; t-interval over seeds). Record a changed
verdict deliberately with ELASTICITY_RECORD_VERDICTS=1 and commit figures/results.json.
"""

from __future__ import annotations

import pytest

from tests.verdicts import check_recorded_verdict


def _prediction(outcome, pid):
    return next(p for p in outcome.summary["predictions"] if p["id"] == pid)


@pytest.mark.parametrize("pid", [
    "resistance.excess_mean.inverse_lower",
    "resistance.excess_mean.inverse_lower.control_no_pretraining",
    "resistance.excess_mean.beyond_control",
])
def test_resistance_by_kl_excess(resistance_run, pid):
    check_recorded_verdict("toy.resistance", resistance_run.summary["config_hash"],
                           _prediction(resistance_run, pid))


@pytest.mark.parametrize("pid", [
    "rebound.r_back_decreases_with_F",
    "rebound.initial_rate_increases_with_F",
    "rebound.knee_at_s0_vs_control",
])
def test_rebound(rebound_run, pid):
    check_recorded_verdict("toy.rebound", rebound_run.summary["config_hash"],
                           _prediction(rebound_run, pid))
