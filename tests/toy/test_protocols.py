"""Instrument tests of the protocols: equal paths, controls, step counts, determinism, CLI errors."""

from __future__ import annotations

import math

import pytest

from harness.runner import execute
from toymodels.corpus import Corpus
from toymodels.interface import OptimizerSpec
from toymodels.model import model_config
from toymodels.protocols import rebound, resistance
from toymodels.tasks import ToyTask
from toymodels.train import ToyLM


def test_forward_and_inverse_paths_use_identical_steps_and_data_order():
    corpus = Corpus()
    model = ToyLM(model_config("50k", corpus.vocab_size, corpus.seq_len), seed=0)
    spec = resistance.ResistanceSpec(n_align=64, n_queries=40, optimizer=OptimizerSpec(batch_size=16))
    result = resistance.run_resistance(model, ToyTask(corpus, "format"), spec, seed=0)
    assert set(result.pairs) == {(1, 2), (2, 3), (1, 3)}
    assert result.checkpoint_steps == [0, 1, 2, 3]  # fractions 0.25, 0.5, 0.75 of 4 steps
    for paths in result.pairs.values():
        fwd, inv = paths["forward"], paths["inverse"]
        assert fwd.log.steps == inv.log.steps == math.ceil(40 / 16)
        assert fwd.order == inv.order and sorted(fwd.order) == list(range(40))
        assert (fwd.start, fwd.target) == (inv.target, inv.start)
    # each generator scores its own data at T = 1 and at the sampling temperature (its entropy)
    assert all(set(d.self_logprobs) == {1.0, spec.temperature} for d in result.datasets.values())


def test_no_pretraining_control_runs_and_is_reported(resistance_run):
    rows = resistance_run.run.read_metrics()
    assert any(r["condition"].get("init") == "random" for r in rows)
    ids = {p["id"] for p in resistance_run.summary["predictions"]}
    assert {"resistance.inverse_lower", "resistance.beyond_control",
            "resistance.excess_mean.inverse_lower.control_no_pretraining.T0.05"} <= ids
    assert "random.excess_mean_nats.T0.05" in resistance_run.summary["counts"]
    # the summary's readings are those of the metrics.csv it wrote
    again = resistance.EXPERIMENT.readings(rows, "toy.resistance")
    assert [(p.id, p.value, p.verdict) for p in again] == [
        (p["id"], pytest.approx(p["value"]), p.get("verdict")) for p in resistance_run.summary["predictions"]]
    assert not resistance_run.summary["instrument_failures"]
    assert resistance_run.summary["steps_per_path"] == math.ceil(64 / 16)


def test_f0_control_runs_and_is_reported(rebound_run):
    rows = rebound_run.run.read_metrics()
    control = [r for r in rows if r["measure"] == "score_log_odds" and r["condition"]["F"] == 0]
    assert len(control) == 5 * 17  # seeds x reverse amounts (every step to 256)
    s0 = {r["seed"]: r["value"] for r in rows if r["measure"] == "s0_log_odds"}
    for r in control:  # the control starts at S0 by construction
        if r["x"] == 0:
            assert r["value"] == pytest.approx(s0[r["seed"]])
    assert "0" in rebound_run.summary["per_F_mean_over_seeds"]
    assert rebound_run.summary["reverse_steps"] == list(range(17))  # equal steps
    assert rebound_run.summary["forward_steps"] == [0, 4, 8, 16]


def test_figures_are_drawn(resistance_run, rebound_run):
    assert list(resistance_run.run.figures_dir.glob("resistance_*.png"))
    assert list(rebound_run.run.figures_dir.glob("rebound_*.png"))


def test_same_seed_gives_identical_metrics(toy_cache, tmp_path):
    config = rebound.EXPERIMENT.resolve("micro", sets={"seeds": 1})
    first = execute(rebound.EXPERIMENT, config, out=tmp_path / "a", draw=False)
    second = execute(rebound.EXPERIMENT, config, out=tmp_path / "b", draw=False)
    assert (first.run.path / "metrics.csv").read_bytes() == (second.run.path / "metrics.csv").read_bytes()
