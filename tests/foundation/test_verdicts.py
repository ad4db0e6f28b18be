"""Verdicts, Holm's adjustment and the schema-2 renderings of readings (summary, README, reports)."""

import numpy as np
import pytest

from elasticity.command import format_summary
from harness.markdown import calibration_provenance, calibration_table, mde_text, results_table
from harness.verdicts import Claim, adjust_families, holm, judge, make_summary, t_estimate


def test_holm_matches_a_hand_worked_example():
    # Sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04, raised to the running
    # maximum 0.06. Back in the input order:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def _primary(pid, family, verdict, p):
    return {"id": pid, "primary": True, "family": family, "verdict": verdict, "p_value": p}


def test_adjust_families_within_each_family_only():
    out = adjust_families([
        _primary("a1", "A", "holds", 0.03), _primary("a2", "A", "holds", 0.04),
        _primary("a3", "A", "underpowered", 0.001), _primary("b1", "B", "contradicted", 0.01),
        {"id": "x", "primary": False, "p_value": 0.001},
    ])
    a1, a2, a3, b1, x = out
    # A has two members (the underpowered reading is left out): 0.03 x 2 = 0.06, then max(0.06, 0.04)
    assert (a1["p_adjusted"], a2["p_adjusted"]) == pytest.approx((0.06, 0.06))
    assert a1["verdict_adjusted"] == a2["verdict_adjusted"] == "inconclusive"
    assert a1["verdict"] == "holds"  # the raw verdict stays
    assert "p_adjusted" not in a3 and a3["verdict_adjusted"] == "underpowered"
    assert b1["p_adjusted"] == pytest.approx(0.01) and b1["verdict_adjusted"] == "contradicted"
    assert "verdict_adjusted" not in x and "verdict" not in x


@pytest.mark.parametrize("values, verdict", [
    ([0.99, 1.0, 1.01, 1.0, 0.995], "holds"),          # the interval lies inside the band
    ([2.0, 2.01, 1.99, 2.0, 2.02], "contradicted"),    # wholly above it
    ([0.5, 0.52, 0.49, 0.5, 0.51], "contradicted"),    # wholly below it
    ([1.05, 1.15, 1.1, 1.12, 1.08], "inconclusive"),   # straddles the upper edge
])
def test_band_claims_are_two_one_sided_tests(values, verdict):
    est = t_estimate(values)
    p = judge("theorem.slope", est, "slope", claim=Claim(band=(0.9, 1.1)), family="theorem")
    assert p.verdict == verdict
    inside = 0.9 < est.ci[0] and est.ci[1] < 1.1
    outside = est.ci[0] > 1.1 or est.ci[1] < 0.9
    assert (verdict == "holds") == inside and (verdict == "contradicted") == outside
    assert (p.p_value < 0.05) == (verdict != "inconclusive")


def test_fewer_than_three_runs_is_underpowered():
    clear = judge("r", t_estimate([5.0, 5.1]), "m", claim=Claim(direction=1), family="f")
    assert clear.ci[0] > 0 and clear.verdict == "underpowered" and clear.n_runs == 2
    # 24 prompts of one training run: prompts never count as runs
    prompts = t_estimate(np.linspace(1, 2, 24), unit="prompts")
    assert judge("r", prompts, "m", claim=Claim(direction=1), family="f", n_runs=1).verdict == "underpowered"
    assert judge("r", t_estimate([5.0, 5.1, 5.2]), "m", claim=Claim(direction=1), family="f").verdict == "holds"


def test_prediction_dicts_follow_schema_2():
    primary = judge("p", t_estimate([1.0, 1.2, 1.1]), "m", claim=Claim(direction=1), family="f", task="x")
    exploratory = judge("e", t_estimate([1.0, 1.2, 1.1]), "m")
    summary = make_summary("demo.micro", "h", [primary, exploratory], {"loss": "nats"})
    p, e = summary["predictions"]
    assert summary["schema_version"] == 2
    assert set(p) == {"id", "value", "ci", "n_runs", "measure", "method", "primary", "family", "direction",
                      "verdict", "p_value", "p_adjusted", "verdict_adjusted", "task"}
    assert set(e) == {"id", "value", "ci", "n_runs", "measure", "method", "primary", "p_value"}
    assert not any("n_seeds" in d for d in (p, e))


def _results():
    primary = {"id": "rebound.slows_near_s0", "primary": True, "family": "rebound", "verdict": "holds",
               "verdict_adjusted": "inconclusive", "p_value": 0.03, "p_adjusted": 0.06, "value": 0.2,
               "ci": [0.01, 0.4], "n_runs": 5, "measure": "rate jump"}
    exploratory = {"id": "rebound.r_back", "primary": False, "p_value": 0.5, "value": 1.5, "ci": [-1.0, 4.0],
                   "n_runs": 5, "measure": "examples"}
    old = {"id": "pareto.old", "verdict": "holds", "value": 1.0, "ci": [0.5, 1.5], "n_seeds": 3, "measure": "m"}
    return {"schema_version": 2, "holm_scope": "within each family", "experiments": {
        "toy.rebound": {"headline": {"preset": "full", "predictions": [exploratory, primary]}},
        "theory.boundary": {"headline": {"preset": "full", "predictions": [], "exact_checks": [
            {"id": "boundary.pretrain_identity", "passed": True, "value": 1e-15},
            {"id": "boundary.disjoint_plus_one", "passed": False, "detail": "ratio 0.5"}]}},
        "llm.pareto": {"headline": {"preset": "cpu-micro", "predictions": [old]}},
    }}


def test_results_table_puts_primary_first_and_exploratory_without_verdicts():
    text = results_table(_results())
    primary_at, exploratory_at = text.index("Primary readings"), text.index("Exploratory readings")
    assert primary_at < exploratory_at < text.index("Exact checks")
    primary_line = next(line for line in text.splitlines() if "`rebound.slows_near_s0`" in line)
    assert "**holds**" in primary_line and "**inconclusive**" in primary_line and "0.06" in primary_line
    exploratory_line = next(line for line in text.splitlines() if "`rebound.r_back`" in line)
    assert "**" not in exploratory_line and exploratory_line.index("`toy.rebound`") == 2
    assert "`pareto.old`" in text[exploratory_at:]  # an earlier record still renders, as exploratory
    assert "| `boundary.disjoint_plus_one` | **FAIL** |" in text and "| `boundary.pretrain_identity` | pass |" in text
    assert "Holm adjustment: within each family." in text
    assert results_table({"experiments": {}}) == "No reference results recorded yet."


def test_format_summary_shows_both_verdicts_and_marks_exploratory():
    summary = {"experiment": "toy.rebound", "config_hash": "h",
               "predictions": _results()["experiments"]["toy.rebound"]["headline"]["predictions"],
               "exact_checks": [{"id": "c", "passed": False}]}
    lines = format_summary(summary).splitlines()
    assert "rebound.slows_near_s0" in lines[1] and "holds / Holm inconclusive" in lines[1]
    assert "rebound.r_back" in lines[2] and "exploratory" in lines[2] and "holds" not in lines[2]
    assert "exact check: FAIL" in lines[3]


def test_calibration_table_columns():
    entry = {"name": "toy.rebound:r", "reading": "r", "experiment": "toy.rebound", "false_positive_rate": 0.04,
             "false_positive_mcse": 0.01, "power": 0.85, "power_mcse": 0.02, "stated_effect": 0.5, "unit": "nats",
             "minimal_detectable_effect": None, "paper_size": "none derivable", "noise": "sd 0.1",
             "fpr_ok": True, "power_ok": True, "n_replicates": 400}
    text = calibration_table({"n_replicates": "400", "seed": "0", "calibrations": {"toy.rebound:r": entry}})
    assert text.splitlines()[0] == ("| reading | experiment | false-positive rate (± MCSE) | power at stated size | "
                                    "minimal detectable effect (planted size at 0.8 power) | the size the paper "
                                    "implies | noise matched to |")
    assert "| 0.040 ± 0.010 | 0.85 ± 0.02 at 0.5 nats | not reached on the scan | none derivable | sd 0.1 |" in text


def test_minimal_detectable_effect_at_the_scans_first_size_is_a_bound():
    curve = {"-0.02": 0.99, "-0.04": 1.0}
    assert mde_text(-0.02, curve, "nats") == "-0.02 nats or closer to the null (reached at the scan's first size)"
    assert mde_text(-0.03, {"-0.02": 0.5, "-0.04": 1.0}, "nats") == "-0.03 nats"
    assert mde_text(float("nan"), curve, "nats") == "not reached on the scan"


def test_calibration_footer_names_each_run_that_made_a_calibration():
    """Calibrations are merged by reading, so the footer names every command and commit, not the last."""
    def entry(experiment, commit, command):
        return {"reading": "r", "experiment": experiment, "git_commit": commit, "command": command}

    text = calibration_provenance({"n_replicates": "400", "seed": "0", "calibrations": {
        "toy.rebound:r": entry("toy.rebound", "a" * 40, "calibrate"),
        "toy.scale:r": entry("toy.scale", "b" * 40, "calibrate --only toy.scale"),
        "toy.scale:s": entry("toy.scale", "b" * 40, "calibrate --only toy.scale")}})
    assert text.endswith("Made: `toy.rebound` by `calibrate` at `aaaaaaa`; `toy.scale` by `calibrate --only toy.scale` "
                         "at `bbbbbbb`.")
