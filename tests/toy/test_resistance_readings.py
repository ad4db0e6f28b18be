"""The resistance readings on small hand-made metrics tables: temperatures never pooled, the relative
asymmetry against the control, runs (not comparisons) as the unit, and a metrics.csv round trip."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.metrics import metric_row, read_metrics_csv, write_metrics_csv
from toymodels.protocols.resistance_readings import counts, readings

PAIRS = ("1-2", "2-3", "1-3")


def table(seeds: int, asym: dict[tuple[str, float], tuple[float, float]], jitter: float = 0.01) -> list[dict]:
    """excess_mean_nats rows: per (init, T) a (level, inverse - forward), with a small per-seed
    offset of the difference so that intervals have a width."""
    rng = np.random.default_rng(0)
    rows = []
    for s, ((init, temp), (level, diff)), task, pair in itertools.product(range(seeds), asym.items(), ("a", "b"), PAIRS):
        d = diff + jitter * (s - (seeds - 1) / 2) + 1e-4 * rng.standard_normal()
        for path, sign in (("inverse", 1), ("forward", -1)):
            rows.append(metric_row("excess_mean_nats", level + sign * d / 2, "nats", seed=s, init=init, task=task,
                                   size="50k", T=temp, pair=pair, path=path))
    return rows


def by_id(rows, experiment="toy.resistance"):
    return {p.id: p for p in readings(rows, experiment)}


def test_each_temperature_is_read_on_its_own():
    """T = 0.05 with the inverse path lower and T = 1 with it higher: never averaged together."""
    preds = by_id(table(5, {("pretrained", 0.05): (1.0, -0.1), ("pretrained", 1.0): (0.1, 0.1)}))
    assert preds["resistance.inverse_lower"].value == pytest.approx(-0.1, abs=1e-3)
    assert preds["resistance.inverse_lower"].extra["temperature"] == 0.05
    assert preds["resistance.excess_mean.inverse_lower.T1"].value == pytest.approx(0.1, abs=1e-3)
    assert "resistance.excess_mean.inverse_lower.T0.05" not in preds  # that one is the primary
    for pid, p in preds.items():
        assert p.extra["n_comparisons"] == 5 * 2 * 3  # one temperature's comparisons each
        assert p.primary == (pid == "resistance.inverse_lower")
        assert pid == "resistance.inverse_lower" or pid.endswith((".T0.05", ".T1"))
    assert preds["resistance.inverse_lower"].verdict == "holds"
    assert preds["resistance.excess_mean.inverse_lower.T1"].verdict is None  # exploratory


def test_beyond_control_is_a_relative_asymmetry():
    """The control's losses are 3 times larger: the same relative asymmetry reads 0 beyond it,
    though the absolute difference is 3 times larger there."""
    same = by_id(table(5, {("pretrained", 0.05): (1.0, -0.2), ("random", 0.05): (3.0, -0.6)}, jitter=0.003))
    assert same["resistance.beyond_control"].value == pytest.approx(0.0, abs=3e-3)
    assert same["resistance.relative_asymmetry.control_no_pretraining.T0.05"].value == pytest.approx(-0.2, abs=3e-3)
    assert same["resistance.excess_mean.inverse_lower.control_no_pretraining.T0.05"].value == pytest.approx(-0.6, abs=1e-3)
    more = by_id(table(5, {("pretrained", 0.05): (1.0, -0.3), ("random", 0.05): (3.0, -0.3)}))
    assert more["resistance.beyond_control"].value == pytest.approx(-0.3 - (-0.1), abs=3e-3)
    assert more["resistance.beyond_control"].verdict == "holds"


def test_two_seeds_are_underpowered_and_comparisons_are_not_runs():
    asym = {("pretrained", 0.05): (1.0, -0.3), ("random", 0.05): (3.0, -0.3)}
    two = by_id(table(2, asym))
    for pid in ("resistance.inverse_lower", "resistance.beyond_control"):
        assert two[pid].n_runs == 2 and two[pid].verdict == "underpowered"
        assert two[pid].method == "t-interval over seeds"
    assert by_id(table(3, asym))["resistance.inverse_lower"].verdict == "holds"


def test_one_training_run_reads_underpowered():
    preds = readings(table(1, {("pretrained", 0.05): (1.0, -0.3)}), "llm.resistance")
    primary = next(p for p in preds if p.id == "resistance.inverse_lower")
    assert primary.primary and primary.n_runs == 1 and primary.verdict == "underpowered"


def test_readings_of_a_metrics_csv_equal_those_of_the_rows(tmp_path):
    rows = table(3, {("pretrained", 0.05): (1.0, -0.1), ("random", 1.0): (0.5, 0.02)})
    write_metrics_csv(tmp_path / "metrics.csv", rows)
    again = read_metrics_csv(tmp_path / "metrics.csv")
    assert [p.to_dict() for p in readings(again, "toy.resistance")] == [p.to_dict() for p in readings(rows, "toy.resistance")]
    assert set(counts(again)) == {"pretrained.excess_mean_nats.T0.05", "random.excess_mean_nats.T1"}


def with_treatment(rows, treatment):
    return [{**r, "condition": {**r["condition"], "treatment": treatment}} for r in rows]


def test_a_planted_change_after_a_mitigation_reads_its_size_and_none_is_primary():
    """Replay's checkpoints resist 0.05 nats/token less than SFT's in every run; the anchor's the same:
    the paired readings read +0.05 and 0, and a mitigations table never reads a pre-registered id."""
    base = {("pretrained", 0.05): (1.0, -0.2), ("random", 0.05): (3.0, -0.3)}
    rows = (with_treatment(table(5, base), "sft") + with_treatment(table(5, base, jitter=0.02), "anchor")
            + with_treatment(table(5, {("pretrained", 0.05): (1.0, -0.15), ("random", 0.05): (3.0, -0.3)}), "replay"))
    preds = by_id(rows)
    assert not any(p.primary for p in preds.values())
    assert preds["mitigation.replay_resistance"].value == pytest.approx(0.05, abs=1e-3)
    assert preds["mitigation.replay_resistance"].ci[0] > 0
    assert preds["mitigation.anchor_resistance"].value == pytest.approx(0.0, abs=1e-3)
    assert preds["mitigation.anchor_resistance"].ci[0] < 0 < preds["mitigation.anchor_resistance"].ci[1]
    assert preds["mitigation.sft_resistance_level"].value == pytest.approx(-0.2, abs=1e-3)
    assert "mitigation.sft_resistance" not in preds  # SFT is what the others are read against
    assert preds["mitigation.replay_resistance_beyond_control"].value == pytest.approx(-0.15 + 0.1, abs=3e-3)
