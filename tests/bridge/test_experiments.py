"""The llm experiments end to end on a tiny random Llama folder and hand-made records:
controls present, equal steps on both paths, resume from cached cells, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.runner import execute
from harness.verdicts import paired_bootstrap
from llm_bridge.common import model_tag
from llm_bridge.pareto import EXPERIMENT as PARETO
from llm_bridge.rebound import EXPERIMENT as REBOUND
from llm_bridge.resistance import EXPERIMENT as RESISTANCE
from theory.pareto import size_bias_recovery

# one example per step, so that the 8 misaligned records cover the initial-rate window (steps 1-9)
MICRO = {"forward_amounts": "0,2,4", "reverse_amounts": ",".join(map(str, range(9))), "batch_size": 1, "n_eval": 4,
         "n_kl_samples": 2,
         "warmup_examples": 2, "lr": 1e-2, "n_bootstrap": 199, "threads": 1}


@pytest.fixture(scope="module")
def rebound_run(tiny_folder, records_file, tmp_path_factory):
    config = REBOUND.resolve("cpu-micro", sets={"model": str(tiny_folder), "data": str(records_file), **MICRO,
                                                "save_checkpoints": True})
    return config, execute(REBOUND, config, out=tmp_path_factory.mktemp("rebound") / "run")


def test_rebound_has_controls_and_both_scales(rebound_run):
    _, outcome = rebound_run
    rows = outcome.run.read_metrics()
    conds = {(r["condition"]["task"], r["condition"]["F"]) for r in rows if r["measure"] == "score_log_odds"}
    assert ("sentiment", 0) in conds  # the F = 0 control
    assert ("sentiment+neutral-forward", 4) in conds  # the format control
    assert {r["measure"] for r in rows} >= {"score_prob", "score_log_odds", "kl_theta0_model",
                                            "prompt_log_odds", "kl_recovery_amount", "r_back_log_odds"}
    predictions = {p["id"]: p for p in outcome.summary["predictions"]}
    assert "rebound.initial_rate_vs_neutral_control" in predictions and "rebound.r_back_decreases_with_F" in predictions
    # one training run: the primary readings are underpowered, prompts never count as runs
    primary = predictions["rebound.initial_rate_increases_with_F"]
    assert primary["primary"] and primary["n_runs"] == 1 and primary["verdict"] == "underpowered"
    within = predictions["rebound.initial_rate_vs_neutral_control"]
    assert within["method"] == "paired percentile bootstrap over prompts" and "verdict" not in within
    # F = 0 is one shared control: identical in both arms
    f0 = {}
    for r in rows:
        if r["measure"] == "score_log_odds" and r["condition"]["F"] == 0:
            f0.setdefault(r["x"], set()).add(r["value"])
    assert all(len(v) == 1 for v in f0.values())
    assert outcome.run.reference_key.startswith("llm.rebound.")  # non-default model: qualified reference key
    assert sorted(p.name for p in outcome.run.figures_dir.glob("*.png"))


def test_rebound_saves_the_aligned_models_it_measured(rebound_run):
    """Each saved theta_F opens in transformers and scores the held-out contrasts as measured at R = 0."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_bridge.adapter import HFCausalLM
    from llm_bridge.tasks import load_records, make_task
    from toymodels.measures import contrast_scores

    config, outcome = rebound_run
    saved = outcome.run.path / "checkpoints"
    assert sorted(p.name for p in saved.iterdir()) == ["d0-s42-F2", "d0-s42-F4"]
    measured = next(r["value"] for r in outcome.run.read_metrics() if r["measure"] == "score_log_odds"
                    and r["condition"]["task"] == "sentiment" and r["condition"]["F"] == 4 and r["x"] == 0)
    folder = saved / "d0-s42-F4"
    model = HFCausalLM(AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder))
    task = make_task("sentiment", load_records(config.data), model, n_eval=4)
    scores = contrast_scores(model, task.contrasts(task.eval_prompts(4, seed=config.seed)))
    assert scores.mean_log_odds == pytest.approx(measured, abs=1e-4)


def test_rebound_resumes_from_cells_with_identical_metrics(rebound_run):
    config, outcome = rebound_run
    before = (outcome.run.path / "metrics.csv").read_text()
    again = execute(REBOUND, config, out=outcome.run.path)
    assert again.run.resumed and (again.run.path / "metrics.csv").read_text() == before
    assert again.seconds < outcome.seconds


def test_rebound_is_deterministic(rebound_run, tmp_path):
    config, outcome = rebound_run
    fresh = execute(REBOUND, config, out=tmp_path / "again", draw=False)
    assert (fresh.run.path / "metrics.csv").read_text() == (outcome.run.path / "metrics.csv").read_text()


def test_resistance_paths_take_equal_steps(tiny_folder, records_file, tmp_path):
    config = RESISTANCE.resolve("cpu-micro", sets={
        "model": str(tiny_folder), "data": str(records_file), "task": "sentiment", "n_align": 8, "batch_size": 1,
        "n_queries": 4, "n_eval": 4, "lr": 1e-2, "n_bootstrap": 199, "threads": 1, "save_checkpoints": True})
    outcome = execute(RESISTANCE, config, out=tmp_path / "run")
    # theta_1..theta_3 of the SFT epoch, named by the aligned examples they saw
    assert sorted(p.name for p in (outcome.run.path / "checkpoints").iterdir()) == [
        "d0-s42-F2", "d0-s42-F4", "d0-s42-F6"]
    assert not outcome.summary.get("instrument_failures")
    rows = outcome.run.read_metrics()
    steps = [r["value"] for r in rows if r["measure"] == "steps"]
    assert len(steps) == 6 and len(set(steps)) == 1
    preds = {p["id"]: p for p in outcome.summary["predictions"]}
    primary = preds["resistance.inverse_lower"]  # the toy's reading, over one training run
    assert primary["primary"] and primary["n_runs"] == 1 and primary["verdict"] == "underpowered"
    within = {pid: p for pid, p in preds.items() if pid.endswith(".within_run")}
    assert set(within) == {f"resistance.{m}.inverse_lower.T0.05.within_run"
                           for m in ("excess_step0", "excess_final", "loss_step0", "loss_final")}
    for p in within.values():  # prompts are not runs: exploratory, no verdict
        assert p["n_runs"] == 1 and "verdict" not in p and p["method"] == "paired percentile bootstrap over prompts"
    # the KL-excess is the loss minus the entropy of the tempered generator (its self-loss at T = 0.05)
    path = {(r["condition"]["pair"], r["condition"]["path"], r["measure"]): r["value"] for r in rows
            if "path" in r["condition"] and "prompt" not in r["condition"]}
    for (pair, direction, measure), value in path.items():
        if measure == "excess_mean_nats":
            entropy = path[(pair, direction, "generator_entropy_nats")]
            assert value == pytest.approx(path[(pair, direction, "loss_mean_nats")] - entropy)
            assert entropy < path[(pair, direction, "generator_loss_nats")]
    again = RESISTANCE.readings(rows, "llm.resistance")  # the readings over runs, from the metrics alone
    assert [(p.id, p.value) for p in again] == [(p["id"], pytest.approx(p["value"]))
                                                for p in outcome.summary["predictions"] if p["id"] not in within]


def test_paired_bootstrap_resamples_prompts_jointly():
    a = np.arange(10.0)
    paired = paired_bootstrap({"a": a, "b": a + 1}, lambda s: float(np.mean(s["b"] - s["a"])), 199, 0)
    assert paired.value == 1.0 and paired.ci == (1.0, 1.0)  # paired: the difference never varies
    assert paired.n == 10 and "prompts" in paired.method  # prompts, never runs
    single = paired_bootstrap({"a": a}, lambda s: float(np.mean(s["a"])), 499, 0)
    assert single.ci[0] < single.value < single.ci[1]


def test_size_biased_fit_recovers_alpha():
    """Leaves sampled in proportion to their mass: the corrected fit recovers alpha, the naive one not."""
    for alpha in (0.8, 1.2):
        r = size_bias_recovery(alpha, n_leaves=20_000, n_samples=20_000, seed=0)
        print(r)
        assert abs(r["alpha_corrected"] - alpha) < 0.15 * alpha
        assert abs(r["alpha_naive"] - alpha) > abs(r["alpha_corrected"] - alpha)


def test_pareto_on_a_tiny_model(tiny_folder, tmp_path):
    config = PARETO.resolve("cpu-micro", sets={"model": str(tiny_folder), "depth": 2, "n_samples": 200,
                                               "batch": 100, "threads": 1, "synthetic_samples": 5000,
                                               "synthetic_leaves": 2000})
    outcome = execute(PARETO, config, out=tmp_path / "run")
    assert {p["id"] for p in outcome.summary["predictions"]} == {
        "pareto.power_law_over_lognormal", "pareto.power_law_over_exponential"}
    assert outcome.summary["fit"]["alpha"] > 0


def test_a_non_default_model_is_recorded_beside_the_default(rebound_run, tmp_path, monkeypatch):
    """--update-reference of another model keeps its own key, command and figures, and
    `elasticity figures` redraws them under that key byte for byte."""
    from elasticity import figures as figures_cmd
    from harness import reference
    from harness.markdown import TABLE_END, TABLE_START

    figures = tmp_path / "figures"
    figures.mkdir()
    monkeypatch.setattr(reference, "figures_dir", lambda: figures)
    monkeypatch.setattr(figures_cmd, "figures_dir", lambda: figures)
    monkeypatch.setattr(reference, "results_path", lambda: figures / "results.json")
    monkeypatch.setattr(reference, "readme_path", lambda: tmp_path / "README.md")
    (tmp_path / "README.md").write_text(f"{TABLE_START}\n{TABLE_END}\n")
    config, outcome = rebound_run
    key = f"llm.rebound.{model_tag(config.model)}"
    assert outcome.run.reference_key == key and outcome.run.experiment == "llm.rebound"
    reference.update_reference(outcome.run, outcome.summary, "cpu-micro", commit="0" * 40)
    headline = reference.load_results()["experiments"][key]["headline"]
    assert headline["command"].startswith("elasticity llm rebound --model ")
    recorded = {p.name: p.read_bytes() for p in figures.glob("*.png")}
    assert recorded and all(name.startswith(f"{key}.") for name in recorded)
    figures_cmd.redraw_reference()
    assert {p.name: p.read_bytes() for p in figures.glob("*.png")} == recorded


def test_short_data_fails_before_the_model_loads(tiny_folder, records_file, tmp_path, monkeypatch):
    import llm_bridge.models

    monkeypatch.setattr(llm_bridge.models, "load_model", lambda *a, **k: pytest.fail("model loaded before the data check"))
    sets = {"model": str(tiny_folder), "data": str(records_file), **MICRO, "forward_amounts": "0,2,1000"}
    with pytest.raises(ConfigError, match="asked for 1000 aligned examples"):
        execute(REBOUND, REBOUND.resolve("cpu-micro", sets=sets), out=tmp_path / "run")
