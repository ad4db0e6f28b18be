"""Replication on a tiny random Llama: independent runs (data draws x training seeds) as resumable
cells, intervals over runs, and the no-pre-training controls (random init, permuted weights)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from harness.config import ConfigError
from harness.runner import execute
from llm_bridge.models import remove_knowledge
from llm_bridge.rebound import EXPERIMENT as REBOUND
from llm_bridge.resistance import EXPERIMENT as RESISTANCE
from tests.bridge.test_experiments import MICRO
from tests.bridge.tiny import make_model


def test_controls_remove_knowledge_but_keep_the_architecture():
    pre = make_model("llama", 60, seed=0)
    before = {n: p.detach().clone() for n, p in pre.named_parameters()}
    random = remove_knowledge(make_model("llama", 60, seed=0), "random", seed=1)
    permuted = remove_knowledge(make_model("llama", 60, seed=0), "permuted", seed=1)
    for name, value in before.items():
        rnd, per = dict(random.named_parameters())[name], dict(permuted.named_parameters())[name]
        assert rnd.shape == per.shape == value.shape
        # the same entries in another order: same statistics, no learned structure
        assert torch.equal(per.detach().flatten().sort().values, value.flatten().sort().values)
        if value.numel() > 1 and value.unique().numel() > 1:
            assert not torch.equal(per, value) and not torch.equal(rnd, value)
    assert permuted.lm_head.weight is permuted.model.embed_tokens.weight  # tied weights stay one tensor
    again = remove_knowledge(make_model("llama", 60, seed=0), "permuted", seed=1)
    assert all(torch.equal(p, q) for p, q in zip(again.parameters(), permuted.parameters(), strict=True))


@pytest.fixture(scope="module")
def replicated(tiny_folder, records_file, tmp_path_factory):
    config = REBOUND.resolve("cpu-micro", sets={"model": str(tiny_folder), "data": str(records_file), **MICRO,
                                                "seeds": 2, "data_draws": "0,1", "controls": "random"})
    return config, execute(REBOUND, config, out=tmp_path_factory.mktemp("replicated") / "run", draw=False)


def test_runs_are_draws_times_seeds_and_intervals_cover_them(replicated, records_file):
    _, outcome = replicated
    summary = outcome.summary
    assert summary["runs"] == ["d0-s42", "d0-s43", "d1-s42", "d1-s43"] and summary["n_runs"] == 4
    predictions = {p["id"]: p for p in summary["predictions"]}
    primary = predictions["rebound.initial_rate_increases_with_F"]
    assert primary["n_runs"] == 4 and primary["verdict"] != "underpowered"
    assert primary["method"] == "t-interval over training runs"
    assert set(summary["per_run"]["rebound.initial_rate_increases_with_F"]) == set(summary["runs"])
    assert not [pid for pid in predictions if pid.endswith("within_run")]  # several runs: no prompt bootstrap
    for suffix in ("initial_rate_vs_neutral_control", "initial_rate_increases_with_F.beyond_neutral_control"):
        assert predictions[f"rebound.{suffix}"]["n_runs"] == 4  # the format-matched arm, over runs
    for suffix in ("control_random", "beyond_control_random"):
        control = predictions[f"rebound.initial_rate_increases_with_F.{suffix}"]
        assert control["n_runs"] == 4 and "verdict" not in control  # exploratory
    assert {k: set(v) for k, v in summary["aligned_prob"].items()} == {i: {"s0", "F4"} for i in ("pretrained", "random")}
    rows = outcome.run.read_metrics()
    assert {r["seed"] for r in rows} == {*summary["runs"], *(f"random-{run}" for run in summary["runs"])}
    s0 = {r["seed"]: r["value"] for r in rows if r["measure"] == "s0_log_odds" and r["condition"]["task"] == "sentiment"}
    assert len(set(s0.values())) == len(s0)  # every run its own model and data
    data = outcome.run.read_json("data.json")
    assert data["data_sha256"] == hashlib.sha256(records_file.read_bytes()).hexdigest()
    assert summary["provenance"]["data_sha256"] == data["data_sha256"]


def test_a_replicated_run_resumes_run_by_run(replicated):
    config, outcome = replicated
    cells = outcome.run.path / "cells"
    (cells / "d1-s43-scores.json").unlink()  # as if killed during the last run's final sweep
    (cells / "d1-s43-sweep-neutral-F4.json").unlink()
    before = (outcome.run.path / "metrics.csv").read_text()
    again = execute(REBOUND, config, out=outcome.run.path, draw=False)
    assert (again.run.path / "metrics.csv").read_text() == before


def test_resistance_reads_the_random_init_control_by_run(tiny_folder, records_file, tmp_path):
    config = RESISTANCE.resolve("cpu-micro", sets={
        "model": str(tiny_folder), "data": str(records_file), "task": "sentiment", "n_align": 8, "batch_size": 1,
        "n_queries": 4, "n_eval": 4, "lr": 1e-2, "threads": 1, "seeds": 1, "data_draws": "0,1,2",
        "controls": "random,permuted"})
    outcome = execute(RESISTANCE, config, out=tmp_path / "run", draw=False)
    predictions = {p["id"]: p for p in outcome.summary["predictions"]}
    beyond = predictions["resistance.beyond_control"]  # pre-registered for llm.resistance too
    assert beyond["primary"] and beyond["n_runs"] == 3
    assert predictions["resistance.beyond_control.control_permuted.T0.05"]["n_runs"] == 3
    assert set(outcome.summary["per_run"]["resistance.beyond_control"]) == {"d0-s42", "d1-s42", "d2-s42"}


@pytest.mark.slow
def test_runs_in_two_worker_processes_give_the_same_numbers(replicated, tmp_path):
    config, outcome = replicated
    parallel = REBOUND.resolve("cpu-micro", sets={**config_sets(config), "n_jobs": 2})
    assert parallel.execution.threads == config.execution.threads == 1
    again = execute(REBOUND, parallel, out=tmp_path / "parallel", draw=False)
    assert (again.run.path / "metrics.csv").read_text() == (outcome.run.path / "metrics.csv").read_text()


def config_sets(config) -> dict:
    """The --set values that rebuild ``config`` (the tiny model, its data, the micro amounts)."""
    return {"model": config.model, "data": config.data, **MICRO, "seeds": 2, "data_draws": "0,1",
            "controls": "random"}


@pytest.mark.parametrize("sets,key", [
    ({}, "llm.rebound"),
    ({"model": "gemma3-270m", "task": "safety"}, "llm.rebound.gemma3-270m.safety"),
    ({"controls": "random,permuted"}, "llm.rebound.controls"),
    ({"adapter_path": "adapters/my-lora"}, "llm.rebound.my-lora"),  # a merged PEFT adapter is another model
])
def test_reference_keys_keep_models_tasks_and_controls_apart(tmp_path, sets, key):
    from harness.runs import RunDir
    from llm_bridge.common import qualify_reference

    config = REBOUND.resolve("cpu-micro", sets=sets)
    run = RunDir.open("llm.rebound", config, out=tmp_path / "run")
    qualify_reference(run, config, "sentiment")
    assert run.reference_key == key


def test_a_run_folder_refuses_to_resume_with_other_data_or_weights(records_file, tmp_path):
    """The data's and the weights' sha256 are part of a run's identity: a resume with a changed data
    file or changed weights at the same paths is refused with exit-2 ConfigError, before any cell runs."""
    import shutil

    from harness.errors import ConfigError
    from tests.bridge.tiny import make_tokenizer

    model, data = tmp_path / "model", tmp_path / "data.jsonl"
    tok = make_tokenizer(chat=False)
    make_model("llama", len(tok), seed=0).save_pretrained(model)
    tok.save_pretrained(model)
    shutil.copyfile(records_file, data)
    config = REBOUND.resolve("cpu-micro", sets={"model": str(model), "data": str(data), **MICRO, "seeds": 1,
                                                "data_draws": "0"})
    execute(REBOUND, config, out=tmp_path / "run", draw=False)
    (tmp_path / "run" / "summary.json").unlink()
    (tmp_path / "run" / "cells" / "d0-s42-scores.json").unlink()  # an unfinished run, resumed below
    original = data.read_text()
    data.write_text(original.replace("great plot", "great story", 1))
    with pytest.raises(ConfigError, match="other data"):
        execute(REBOUND, config, out=tmp_path / "run", draw=False)
    data.write_text(original)
    make_model("llama", len(tok), seed=1).save_pretrained(model)
    with pytest.raises(ConfigError, match="other weights"):
        execute(REBOUND, config, out=tmp_path / "run", draw=False)


def test_resistance_aligns_its_checkpoints_by_each_treatment(tiny_folder, records_file, tmp_path):
    config = RESISTANCE.resolve("cpu-micro", sets={
        "model": str(tiny_folder), "data": str(records_file), "task": "sentiment", "n_align": 8, "batch_size": 1,
        "n_queries": 4, "n_eval": 4, "lr": 1e-2, "threads": 1, "seeds": 1, "data_draws": "0,1",
        "treatments": "sft,replay,dpo"})
    outcome = execute(RESISTANCE, config, out=tmp_path / "run")
    assert outcome.run.reference_key.endswith(".sentiment.mitigations")  # after the model tag
    predictions = {p["id"]: p for p in outcome.summary["predictions"]}
    # exploratory only: a second instance of resistance.inverse_lower would join the Holm family
    assert not any(p["primary"] for p in predictions.values()) and "resistance.inverse_lower" not in predictions
    assert predictions["mitigation.dpo_resistance"]["n_runs"] == 2  # minus SFT's, paired by run
    assert set(outcome.summary["per_run"]["mitigation.replay_resistance_level"]) == {"d0-s42", "d1-s42"}
    assert not outcome.summary["instrument_failures"]
    assert (outcome.run.path / "figures" / "resistance_forest.png").exists()
    with pytest.raises(ConfigError, match="strengths apply only"):
        RESISTANCE.resolve("cpu-micro", sets={"strengths.replay": 0.5})
