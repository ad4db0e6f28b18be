"""The mitigations experiment's readings and their calibration (toymodels.protocols.mitigation_readings,
mitigation_calibration); the slow tests calibrate at 200 replicates and run the micro preset."""

from __future__ import annotations

import numpy as np
import pytest

from harness.calibration import calibrate
from harness.runner import execute
from toymodels.protocols import mitigation_calibration as mc
from toymodels.protocols import rebound_calibration as rc
from toymodels.protocols.mitigation_readings import against_sft, paired, readings_by_run
from toymodels.protocols.mitigations import EXPERIMENT, PRESETS


def test_a_planted_retention_change_reads_exactly_its_size():
    rows = rc.rebound_rows(0.0, 0.0, 3, mc.NOISE_SCALE, mc.mitigations_shape())
    both = mc.tagged(rows, "sft") + mc.tagged(mc.plant_retention(rows, 0.1), "anchor")
    diffs = paired(readings_by_run(both), "pretrained", "anchor", "retention")
    assert len(diffs) == mc.mitigations_shape().seeds
    assert np.allclose(list(diffs.values()), 0.1)
    none = paired(readings_by_run(both), "pretrained", "anchor", "gain_log_odds")
    assert np.allclose(list(none.values()), 0.0)  # the plant leaves the start alone


def test_calibrations_cover_the_mitigation_primaries():
    from harness.preregistration import primaries

    assert {c.reading for c in mc.CALIBRATIONS} == {p for p in primaries() if p.startswith("mitigation.")}


@pytest.mark.parametrize("cal", [mc.CALIBRATIONS[0], mc.CALIBRATIONS[3]], ids=lambda c: c.reading)
def test_calibration_smoke(cal):
    result = calibrate(cal, 2, scan=False)
    assert 0 <= result.false_positive_rate <= 1 and 0 <= result.power <= 1
    assert cal.replicate(cal.stated, 0).n_runs == mc.mitigations_shape().seeds


def test_the_replay_reading_is_against_sft_paired_by_seed():
    rows = rc.rebound_rows(0.0, 0.0, 4, mc.NOISE_SCALE, mc.mitigations_shape())
    same = mc.tagged(rows, "sft") + mc.tagged(rows, "replay")
    prediction = against_sft(readings_by_run(same), "replay", "retention", mc.EXPERIMENT)
    assert prediction.primary and prediction.value == 0.0 and prediction.verdict == "holds"  # inside the band


# anchor and vaccine share one replicate function, as do dpo and simpo: one of each is tested
@pytest.mark.slow
@pytest.mark.parametrize("cal", [mc.CALIBRATIONS[1], mc.CALIBRATIONS[3]], ids=lambda c: c.reading)
def test_calibration(cal):
    """The false-positive rate passes, and the power agrees with the published one (400 replicates,
    figures/calibration.json) within Monte Carlo error: the anchor and Vaccine reading's is 0.78 at
    +0.10, just under the 0.8 target, which the README states."""
    from harness.reference import load_calibration

    published = load_calibration()["calibrations"][cal.name]
    result = calibrate(cal, 200, scan=False, n_jobs=-1)
    print(f"{result.name}: FPR {result.false_positive_rate:.4f} +- {result.false_positive_mcse:.4f}, power "
          f"{result.power:.4f} at {result.stated_effect} (published {published['power']:.4f})")
    assert result.fpr_ok
    assert abs(result.power - published["power"]) <= 3 * result.power_mcse


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the pre-registered band of 0.05 is narrower than the paired interval "
                   "of 6 seeds: replay's equivalence claim cannot reach power 0.8 (published as a finding)")
def test_replay_band_calibration():
    result = calibrate(mc.CALIBRATIONS[0], 200, scan=False, n_jobs=-1)
    print(f"{result.name}: FPR {result.false_positive_rate:.4f}, power {result.power:.4f} inside the band")
    assert result.fpr_ok
    assert result.power_ok


@pytest.mark.slow
def test_micro_preset_runs_every_reading(toy_cache, tmp_path):
    outcome = execute(EXPERIMENT, EXPERIMENT.resolve("micro"), out=tmp_path / "run", preset="micro")
    ids = {p["id"] for p in outcome.summary["predictions"]}
    assert {"mitigation.anchor_retention", "mitigation.dpo_rebound", "mitigation.anchor_retention.beyond_control_random",
            "mitigation.dpo_rebound.beyond_neutral_control"} <= ids
    assert (tmp_path / "run" / "figures" / "mitigations_forest.png").exists()
    assert PRESETS["micro"].overrides["treatments"] == ("sft", "anchor", "dpo")


@pytest.mark.slow
def test_resistance_under_mitigations_is_a_reference_of_its_own(toy_cache, tmp_path):
    """Resistance with the checkpoints aligned by each condition: equal steps on every path, the
    exploratory readings only, its own reference key, the forest plot beside SFT's paths."""
    from toymodels.protocols import resistance

    config = resistance.EXPERIMENT.resolve("micro", sets={"treatments": ("sft", "anchor")})
    outcome = execute(resistance.EXPERIMENT, config, out=tmp_path / "run", preset="micro")
    ids = {p["id"] for p in outcome.summary["predictions"]}
    assert ids == {"mitigation.sft_resistance_level", "mitigation.sft_resistance_beyond_control",
                   "mitigation.anchor_resistance_level", "mitigation.anchor_resistance_beyond_control",
                   "mitigation.anchor_resistance"}
    assert outcome.summary["instrument_failures"] == []
    assert outcome.run.reference_key == "toy.resistance.mitigations"
    assert {"resistance_forest.png", "resistance_excess_mean.png"} <= {p.name for p in (tmp_path / "run" / "figures").iterdir()}
