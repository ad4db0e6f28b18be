"""Prediction tests: each asserts the verdict recorded in figures/results.json for its test config.

The test configs are in ``conftest.py`` (5 seeds each; t-interval over seeds). Record a changed
verdict deliberately with ELASTICITY_RECORD_VERDICTS=1 and commit figures/results.json.
"""

from __future__ import annotations

import pytest

from tests.verdicts import check_recorded_verdict


def _prediction(outcome, pid):
    return next(p for p in outcome.summary["predictions"] if p["id"] == pid)


@pytest.mark.parametrize("experiment, run, pid", [
    ("toy.resistance", "resistance_run", "resistance.inverse_lower"),
    ("toy.resistance", "resistance_run", "resistance.beyond_control"),
    ("toy.rebound", "rebound_run", "rebound.initial_rate_increases_with_F"),
    ("toy.rebound", "rebound_run", "rebound.slows_near_s0"),
])
def test_recorded_verdict(request, experiment, run, pid):
    outcome = request.getfixturevalue(run)
    check_recorded_verdict(experiment, outcome.summary["config_hash"], _prediction(outcome, pid))
