"""Calibration of the rebound and scale primary readings: false-positive rate and power on synthetic
reverse curves with the references' noise (see toymodels.protocols.rebound_calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.calibration import calibrate
from toymodels.protocols import rebound_calibration as rc
from toymodels.protocols.rebound_readings import initial_rate_window, metrics_by_run

NAMES = [cal.name for cal in rc.CALIBRATIONS]


def test_calibrations_cover_the_primary_readings():
    assert {cal.reading for cal in rc.CALIBRATIONS} == {
        "rebound.initial_rate_increases_with_F", "rebound.slows_near_s0",
        "scale.rebound_grows_with_size", "scale.rebound_grows_with_pretraining"}


def test_synthetic_arm_reads_the_rate_it_was_given():
    """Without step noise, an arm's initial-rate window reads exactly the rate it was built for."""
    spec = rc.REBOUND
    rng = np.random.default_rng(0)
    for rate in (0.02, 0.04):
        lam = rc.decay_for_rate(spec, 9.0, rate)
        r = np.asarray(spec.reverse_amounts, float)
        y = 9.0 * np.exp(-lam * r)
        lo, hi = initial_rate_window(spec)
        inside = (r >= lo) & (r <= hi)
        assert -np.polyfit(r[inside], y[inside], 1)[0] == pytest.approx(rate, rel=1e-6)
    assert rc.arm_curve(spec, 0.0, 4.0, 0.04, 0.0, rng).shape == (len(spec.reverse_amounts),)


def test_replicates_have_the_headline_shape():
    by_run = metrics_by_run(rc.rebound_rows(0.0, 0.0, 0))
    assert {run for run, _ in by_run} == set(range(rc.SEEDS)) and {task for _, task in by_run} == set(rc.TASKS)
    assert all(sorted(m) == list(rc.REBOUND.forward_amounts) for m in by_run.values())


@pytest.mark.parametrize("cal", rc.CALIBRATIONS[:2], ids=NAMES[:2])
def test_calibration_smoke(cal):
    """A few replicates through the full pipeline: verdicts come back, over 5 runs."""
    result = calibrate(cal, 3)
    assert 0 <= result.false_positive_rate <= 1 and 0 <= result.power <= 1
    prediction = cal.replicate(cal.stated, 0)
    assert prediction.primary and prediction.n_runs == rc.SEEDS
    assert prediction.verdict in ("holds", "contradicted", "inconclusive")


@pytest.mark.slow
@pytest.mark.parametrize("cal", rc.CALIBRATIONS, ids=NAMES)
def test_calibration(cal):
    result = calibrate(cal, 400)
    print(f"{result.name}: FPR {result.false_positive_rate:.4f} +- {result.false_positive_mcse:.4f}, power "
          f"{result.power:.4f} at {result.stated_effect} ({result.unit}), MDE {result.minimal_detectable_effect:.4g}, "
          f"curve {result.power_curve}")
    assert result.fpr_ok and result.power_ok
