"""Calibration of the rebound and scale primary readings: false-positive rate and power on synthetic
reverse curves with the references' shapes, rate laws and noise (see toymodels.protocols.rebound_calibration
and toymodels.protocols.scale_calibration)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.special import expit

from harness.calibration import calibrate
from harness.metrics import metrics_path, read_metrics_csv
from harness.reference import figures_dir
from toymodels.protocols import rebound_calibration as rc
from toymodels.protocols import scale_calibration as sc
from toymodels.protocols.rebound_readings import curves_from_rows, metrics_by_run, reading_of

CALIBRATIONS = rc.CALIBRATIONS + sc.CALIBRATIONS
NAMES = [cal.name for cal in CALIBRATIONS]
REVERSE = np.arange(0, 513, rc.STEP, dtype=float)


def test_calibrations_cover_the_primary_readings():
    assert {cal.reading for cal in CALIBRATIONS} == {
        "rebound.initial_rate_increases_with_F", "rebound.slows_near_s0",
        "scale.rebound_grows_with_size", "scale.rebound_grows_with_pretraining"}


@pytest.mark.parametrize("slowdown", [0.0, 0.5])
def test_law_curve_solves_its_rate_law(slowdown):
    """The closed form against a numerical solution of dy/dR = -c sigmoid(a (y - b)), with the rate
    cut by ``slowdown`` below S0 = 0."""
    c, a, b, start = 0.04, 0.6, 0.5, 4.0

    def rate(_, y):
        return [-c * expit(a * (y[0] - b)) * (1 - slowdown if y[0] <= 0 else 1)]

    exact = solve_ivp(rate, (0, 512), [start], t_eval=REVERSE, rtol=1e-10, atol=1e-10, max_step=1.0).y[0]
    assert rc.law_curve(REVERSE, start, c, a, b, 0.0, slowdown) == pytest.approx(exact, abs=2e-4)


def test_an_arm_reads_the_window_rate_it_was_built_for():
    for rate in (0.01, 0.02):
        m = rc.multiplier_for(REVERSE, 4.0, 0.04, 0.6, 0.5, rate)
        assert rc.window_rate(REVERSE, rc.law_curve(REVERSE, 4.0, m * 0.04, 0.6, 0.5)) == pytest.approx(rate)


def test_replicates_have_the_headline_shape():
    """The synthetic runs take the committed reference's shape: its seeds, tasks and amounts."""
    shape = rc.headline_shape()
    curves = curves_from_rows(rc.rebound_rows(0.0, 0.0, 0))
    print(f"toy.rebound reference: {shape.seeds} seeds, tasks {shape.tasks}, F {shape.forward}, "
          f"R to {shape.reverse[-1]:.0f}")
    assert {seed for seed, _ in curves} == set(range(shape.seeds)) and len(curves) == shape.seeds * len(shape.tasks)
    assert all(c.forward_amounts == shape.forward and c.reverse_amounts == tuple(shape.reverse.astype(int))
               for c in curves.values())
    scale_shape, scale_ref = rc.headline_shape("toy.scale"), sc.scale_reference()
    scale_curves = curves_from_rows(sc.scale_rows(0.0, 0.0, 0))
    assert len(scale_curves) == scale_shape.seeds * len(scale_ref.sizes) * len(scale_ref.budgets)
    assert all(c.forward_amounts == scale_shape.forward for c in scale_curves.values())
    print(f"toy.scale reference: {scale_ref}")
    assert np.isfinite([scale_ref.cell_sd, scale_ref.size_slope_sd, scale_ref.budget_slope_sd]).all()
    ref = rc.rebound_reference()
    print(f"reference: {len(ref.laws)} rate laws, step noise sd {ref.step_sd:.3f} lag-1 {ref.step_lag1:.2f}, "
          f"trend sd {ref.trend_seed_sd:.4f} (seeds) {ref.trend_task_sd:.4f} (tasks), arm sd {ref.arm_sd:.4f}")
    assert np.isfinite([ref.step_sd, ref.step_lag1, ref.trend_task_sd, ref.arm_sd]).all()


def _per_seed(rows, stat, key):
    per_run = {}
    for (run, _), metrics in metrics_by_run(rows).items():
        per_run.setdefault(run, []).append(reading_of(stat, key, metrics))
    return [float(np.nanmean(v)) for v in per_run.values()]


@pytest.mark.slow
@pytest.mark.parametrize("reading, stat, key", [("initial_rate", "trend", "initial_rate_log_odds"),
                                                ("slowdown", "mean", "slowdown_at_s0_log_odds")])
def test_synthetic_runs_spread_like_the_reference(reading, stat, key):
    """The noise is matched reading by reading: the per-seed sd of a null synthetic run is within 35%
    of the committed reference's."""
    reference = np.std(_per_seed(read_metrics_csv(metrics_path(figures_dir() / "data" / "toy.rebound")),
                                 stat, key), ddof=1)
    synthetic = np.std([v for seed in range(10) for v in _per_seed(
        rc.rebound_rows(0.0, 0.0, seed, rc.STEP_NOISE_SCALE[reading]), stat, key)], ddof=1)
    print(f"{reading}: per-seed sd {synthetic:.5f} synthetic, {reference:.5f} reference")
    assert synthetic == pytest.approx(reference, rel=0.35)


@pytest.mark.parametrize("cal", rc.CALIBRATIONS[:2], ids=NAMES[:2])
def test_calibration_smoke(cal):
    """A few replicates through the full pipeline: verdicts come back, over 5 runs."""
    result = calibrate(cal, 2)
    assert 0 <= result.false_positive_rate <= 1 and 0 <= result.power <= 1
    prediction = cal.replicate(cal.stated, 0)
    assert prediction.primary and prediction.n_runs == rc.headline_shape().seeds
    assert prediction.verdict in ("holds", "contradicted", "inconclusive")


@pytest.mark.slow
@pytest.mark.parametrize("cal", CALIBRATIONS, ids=NAMES)
def test_calibration(cal):
    result = calibrate(cal, 400, scan=False, n_jobs=-1)
    print(f"{result.name}: FPR {result.false_positive_rate:.4f} +- {result.false_positive_mcse:.4f}, power "
          f"{result.power:.4f} at {result.stated_effect} ({result.unit})")
    assert result.fpr_ok and result.power_ok
