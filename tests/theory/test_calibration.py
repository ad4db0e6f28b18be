"""Calibration of the theorem's primary slope reading on theory.simulate and toy.compression."""

from __future__ import annotations

import numpy as np
import pytest

from harness.calibration import calibrate
from theory import calibration, simulate
from theory.readings import PRIMARY, cells_from_rows, seed_slopes


@pytest.mark.parametrize("cal", calibration.CALIBRATIONS, ids=lambda c: c.name)
def test_smoke(cal):
    """A few replicates through the whole pipeline: verdicts at the headline's seed count."""
    result = calibrate(cal, 2)
    assert set(result.power_curve) == {f"{s:.6g}" for s in cal.scan}
    found = cal.replicate(cal.stated, 0)
    assert found.id == PRIMARY and found.primary and found.verdict in ("holds", "inconclusive", "contradicted")
    assert found.n_runs == calibration.headline_seeds(cal.experiment)


def test_simulate_headline_seeds_follow_the_preset():
    assert calibration.headline_seeds("theory.simulate") == simulate.PRESETS["full"].overrides["seeds"]


@pytest.mark.parametrize("experiment", ["theory.simulate", "toy.compression"])
def test_planted_slope_is_recovered_with_the_reference_spread(experiment):
    """Planting moves the mean slope to the planted size and keeps the reference's per-seed spread."""
    ref = calibration.reference(experiment)
    values = [calibration.read(experiment, calibration.synthetic_rows(experiment, 1.0, 40, seed)).value
              for seed in range(4)]
    assert abs(np.mean(values) - 1.0) < 0.05
    rows = calibration.synthetic_rows(experiment, 1.0, 200, 0)
    per_seed = list(seed_slopes(cells_from_rows(rows, calibration.LAYOUTS[experiment])).values())
    assert np.std(per_seed, ddof=1) == pytest.approx(ref.slopes.std(ddof=1), rel=0.25)


@pytest.mark.slow
@pytest.mark.parametrize("cal", calibration.CALIBRATIONS, ids=lambda c: c.name)
def test_calibration(cal):
    """400 replicates: false-positive rate at the band's edge, power at the theorem's slope 1.

    Measured at the headline seed counts (`elasticity calibrate`, seed 0): theory.simulate (40 seeds)
    fpr 0.052, power 0.94; toy.compression (80 seeds) fpr 0.045, power 0.81. At 25 and 40 seeds the
    power was 0.59 and 0.38 (the band, pre-registered, is not widened).
    """
    result = calibrate(cal, 400, scan=False, n_jobs=-1)
    print(f"{cal.name}: fpr {result.false_positive_rate:.3f} ± {result.false_positive_mcse:.3f}, power "
          f"{result.power:.3f} ± {result.power_mcse:.3f}")
    assert result.fpr_ok
    assert result.power_ok
