"""Calibration of toy.resistance's primary readings: false-positive rate and power on synthetic
per-seed paired losses with the reference's noise (see toymodels.protocols.resistance_calibration)."""

from __future__ import annotations

import pytest

from harness.calibration import calibrate
from harness.metrics import metric_row
from toymodels.protocols.resistance_calibration import (
    CALIBRATIONS,
    planted_means,
    reference,
    replicate,
)
from toymodels.protocols.resistance_readings import resistance_predictions

NAMES = [cal.reading for cal in CALIBRATIONS]


def test_calibrations_cover_the_primary_readings():
    assert set(NAMES) == {"resistance.inverse_lower", "resistance.beyond_control"}


def test_planted_effect_is_the_reading_without_noise():
    """With the noise left out, each reading of the planted means is the planted size."""
    ref = reference()
    for reading in NAMES:
        for size in (0.0, -0.05):
            means = planted_means(reading, size)
            assert means.shape == ref.means.shape
            rows = [metric_row("excess_mean_nats", float(v), "nats", seed=s, init=c[0], T=c[1], task=c[2], size=c[3],
                               pair=c[4], path=c[5]) for s in range(3) for c, v in zip(ref.cells, means, strict=True)]
            pred = next(p for p in resistance_predictions(rows, "toy.resistance") if p.id == reading)
            assert pred.value == pytest.approx(size, abs=1e-9)


@pytest.mark.parametrize("cal", CALIBRATIONS, ids=NAMES)
def test_calibration_smoke(cal):
    """A few replicates through the full pipeline: verdicts come back, 5 runs each."""
    result = calibrate(cal, 4)
    assert 0 <= result.false_positive_rate <= 1 and 0 <= result.power <= 1
    pred = replicate(cal.reading, cal.stated, 0)
    assert pred.primary and pred.n_runs == 5 and pred.verdict in ("holds", "contradicted", "inconclusive")


@pytest.mark.slow
@pytest.mark.parametrize("cal", CALIBRATIONS, ids=NAMES)
def test_calibration(cal):
    result = calibrate(cal, 400, scan=False, n_jobs=-1)
    print(f"{result.name}: FPR {result.false_positive_rate:.4f} +- {result.false_positive_mcse:.4f}, power "
          f"{result.power:.4f} at {result.stated_effect} {result.unit}")
    assert result.fpr_ok and result.power_ok
