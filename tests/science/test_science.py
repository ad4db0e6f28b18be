"""Prediction and instrument tests of the toy science experiments (scale, compression, lifecycle)."""

from __future__ import annotations

import math

import pytest

from harness.errors import ConfigError
from harness.runner import execute
from tests.verdicts import check_recorded_verdict
from toymodels.protocols import compression, lifecycle, scale


def _prediction(outcome, pid: str) -> dict:
    return next(p for p in outcome.summary["predictions"] if p["id"] == pid)


def test_compression_theorem_slope(compression_run):
    """Prediction: the log-log slope of |dγ_a/dl ÷ dγ_p/dl| against k lies in the theorem's band."""
    p = _prediction(compression_run, "theorem.ratio_scales_with_k")
    assert p["n_runs"] == 5 and p["primary"] and tuple(p["band"]) == (0.9, 1.1)
    for pid in ("compression.gamma_a_rises_fraction", "compression.gamma_p_falls_fraction"):
        assert "verdict" not in _prediction(compression_run, pid)
    check_recorded_verdict("toy.compression", compression_run.run.config_hash, p)


def test_compression_primary_is_the_calibrated_reading():
    """toy.compression judges the theorem's slope with the code its calibration runs, at its seeds."""
    from theory import calibration

    assert calibration.COMPRESSION_SEEDS == compression.EXPERIMENT.presets["full"].overrides["seeds"]
    rows = calibration.synthetic_rows("toy.compression", 1.0, 5, seed=3)
    ours = next(p for p in compression.readings(rows) if p.id == "theorem.ratio_scales_with_k")
    assert ours == calibration.read("toy.compression", rows)


def test_rebound_strength_vs_pretraining(scale_micro_run):
    """Prediction: the excess initial decay over the F=0 control grows with pre-training examples
    (the pre-registered primary reading; its probability-scale twin is exploratory)."""
    p = _prediction(scale_micro_run, "scale.rebound_grows_with_pretraining")
    assert p["primary"] and p["n_runs"] == 5 and p["family"] == "scale"
    exploratory = _prediction(scale_micro_run, "scale.rebound_grows_with_pretraining.excess_initial_rate.prob")
    assert not exploratory["primary"] and "verdict" not in exploratory
    check_recorded_verdict("toy.scale", scale_micro_run.run.config_hash, p)


def test_mixture_prediction_is_exact_for_like_perturbation(compression_run):
    """Instrument: with P_t = P_p the joint mixture gives dγ_a/dl ÷ dγ_p/dl = -(k + l) exactly."""
    config = compression.EXPERIMENT.resolve("quick", sets={"k": (10.0, 1000.0), "mixture_samples": 2000})
    predicted = compression.mixture_predictions(config)["like"]
    for k, ratio in predicted.items():
        l_mean = sum(config.perturb_amounts) / len(config.perturb_amounts) / config.n_align(k)
        assert ratio == pytest.approx(-(k + l_mean), rel=1e-9)


def test_compression_run_records_every_cell_and_figure(compression_run):
    rows = compression_run.run.read_metrics()
    gammas = [r for r in rows if r["measure"] in ("gamma_p_bits", "gamma_a_bits")]
    assert len(gammas) == 3 * 5 * 3 * 2  # k x seeds x amounts x {p, a}
    assert all(math.isfinite(r["value"]) and r["value"] > 0 for r in gammas)
    assert (compression_run.run.figures_dir / "compression.png").exists()


def test_rerun_into_the_same_folder_resumes_with_identical_metrics(scale_micro_run):
    """Instrument: every cell is cached, so a rerun computes nothing and writes the same table."""
    before = (scale_micro_run.run.path / "metrics.csv").read_text()
    config = scale.EXPERIMENT.resolve("micro")
    again = execute(scale.EXPERIMENT, config, out=scale_micro_run.run.path, draw=False)
    assert again.run.resumed
    assert (scale_micro_run.run.path / "metrics.csv").read_text() == before
    assert (scale_micro_run.run.figures_dir / "scale.png").exists()


def test_scale_reports_the_control_beside_every_cell(scale_micro_run):
    rows = scale_micro_run.run.read_metrics()
    controls = {r["condition"]["n_pretrain"] for r in rows
                if r["measure"] == "score_log_odds" and r["condition"].get("F") == 0}
    assert len(controls) == 3  # one F = 0 control per budget (one size in the micro grid)


@pytest.mark.parametrize("experiment, sets, message", [
    (compression.EXPERIMENT, {"k": (10.0, 20.0)}, "spanning a decade"),
    (compression.EXPERIMENT, {"k": (10.0, 1e6)}, "must be >= 1 example"),
    (compression.EXPERIMENT, {"perturbations": ("like", "sideways")}, "perturbations"),
    (scale.EXPERIMENT, {"sizes": ("50k", "3m")}, "unknown model size"),
    (scale.EXPERIMENT, {"n_pretrain": (1000, 1000)}, "repeats the value"),
    (scale.EXPERIMENT, {"n_pretrain": (0, 1000)}, "positive sizes"),
    (lifecycle.EXPERIMENT, {"checkpoints": (0, 4000, 1000)}, "strictly increasing"),
    (lifecycle.EXPERIMENT, {"lrs": ()}, "empty"),
])
def test_bad_science_configs_are_config_errors(experiment, sets, message):
    with pytest.raises(ConfigError, match=message):
        experiment.resolve("quick", sets=sets)
