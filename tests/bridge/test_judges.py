"""The llm rebound with a sampled-text judge beside the exact score: a tiny random Llama scored by a
tiny local sequence classifier. The judge adds rows and changes no other number (the end-to-end runs
take a minute: marked slow)."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.runner import execute
from llm_bridge.rebound import EXPERIMENT as REBOUND
from tests.bridge.test_experiments import MICRO

ARMS = ("sentiment", "sentiment+neutral-forward")


@pytest.fixture(scope="module")
def judge_folder(tmp_path_factory):
    """A tiny random sequence classifier with a POSITIVE label, saved as a local folder."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from tests.bridge.tiny import make_tokenizer

    tok = make_tokenizer(chat=False)
    torch.manual_seed(0)
    labels = {0: "NEGATIVE", 1: "POSITIVE"}
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=8, pad_token_id=1, num_labels=2,
                         id2label=labels, label2id={v: k for k, v in labels.items()})
    folder = tmp_path_factory.mktemp("judge")
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_judge_probe_is_seeded_by_run_and_amount(tiny_folder, records_file, judge_folder):
    """Two reads at one reverse amount sample the same responses; the model's own RNG is left alone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_bridge.adapter import HFCausalLM
    from llm_bridge.scorers import JudgeSettings, judge_probe, sampling_seed
    from llm_bridge.tasks import load_records, make_task

    adapter = HFCausalLM(AutoModelForCausalLM.from_pretrained(tiny_folder), AutoTokenizer.from_pretrained(tiny_folder))
    task = make_task("sentiment", load_records(records_file), adapter, n_eval=4)
    settings = JudgeSettings(scorer=f"classifier:{judge_folder}", scorer_label="POSITIVE")
    probe = judge_probe(settings, adapter, task, 4, seed=42)
    state = torch.random.get_rng_state()
    first = probe(adapter, 8)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert probe(adapter, 8) == first and 0.0 <= first["judge_score"] <= 1.0
    assert sampling_seed(42, 8) != sampling_seed(42, 16) != sampling_seed(43, 16)


def rebound_config(tiny_folder, records_file, **sets):
    return REBOUND.resolve("cpu-micro", sets={"model": str(tiny_folder), "data": str(records_file), **MICRO, **sets})


@pytest.fixture(scope="module")
def judged(tiny_folder, records_file, judge_folder, tmp_path_factory):
    config = rebound_config(tiny_folder, records_file, scorer=f"classifier:{judge_folder}", scorer_label="POSITIVE")
    return config, execute(REBOUND, config, out=tmp_path_factory.mktemp("judged") / "run")


def judge_lines(text: str, keep: bool) -> list[str]:
    return [line for line in text.splitlines() if (",judge_score," in line) == keep]


@pytest.mark.slow
def test_judge_rows_at_every_kl_point_of_every_arm(judged):
    config, outcome = judged
    rows = outcome.run.read_metrics()
    kl_points = {(r["condition"]["task"], r["condition"]["F"], r["x"]) for r in rows
                 if r["measure"] == "kl_theta0_model" and r["value"] == r["value"]}  # NaN between KL points
    judge = [r for r in rows if r["measure"] == "judge_score"]
    assert {(r["condition"]["task"], r["condition"]["F"], r["x"]) for r in judge} == kl_points
    assert {t for t, _, _ in kl_points} == set(ARMS) and len(judge) == len(kl_points)
    assert all(r["unit"] == "judge" and 0.0 <= r["value"] <= 1.0 for r in judge)  # P(POSITIVE)
    summary = outcome.summary["judge"]
    assert summary["exploratory"] and set(summary["mean_by_F"]) == {"0", "2", "4"}
    assert config.judge.scorer.startswith("classifier:")


@pytest.mark.slow
def test_judge_changes_no_other_number(judged, tiny_folder, records_file, tmp_path):
    """The same run without a judge: its metrics table is the judged one's without the judge rows."""
    _, outcome = judged
    plain = execute(REBOUND, rebound_config(tiny_folder, records_file), out=tmp_path / "plain")
    plain_text = (plain.run.path / "metrics.csv").read_text()
    assert not judge_lines(plain_text, keep=True)
    assert judge_lines((outcome.run.path / "metrics.csv").read_text(), keep=False) == plain_text.splitlines()
    assert [p["verdict"] for p in plain.summary["predictions"] if "verdict" in p] == \
        [p["verdict"] for p in outcome.summary["predictions"] if "verdict" in p]
    assert "judge" not in plain.summary


@pytest.mark.slow
def test_judged_run_resumes_identically(judged):
    config, outcome = judged
    before = (outcome.run.path / "metrics.csv").read_text()
    again = execute(REBOUND, config, out=outcome.run.path)
    assert again.run.resumed and (again.run.path / "metrics.csv").read_text() == before


@pytest.mark.slow
def test_judged_run_is_deterministic(judged, tmp_path):
    config, outcome = judged
    again = execute(REBOUND, config, out=tmp_path / "again")
    assert (again.run.path / "metrics.csv").read_text() == (outcome.run.path / "metrics.csv").read_text()


@pytest.mark.parametrize("sets,message", [
    ({"scorer": "judge:/models/x"}, "scorer must be one of"),
    ({"scorer": "classifier:/models/x"}, "needs scorer_label"),
    ({"scorer_label": "POSITIVE"}, "no scorer"),
])
def test_bad_judge_settings_are_one_line_errors(tiny_folder, records_file, sets, message):
    with pytest.raises(ConfigError, match=message) as err:
        rebound_config(tiny_folder, records_file, **sets)
    assert len(str(err.value).splitlines()) == 1


def test_missing_judge_folder_fails_as_one_line(tiny_folder, records_file, tmp_path):
    config = rebound_config(tiny_folder, records_file, scorer=f"cost:{tmp_path / 'absent'}")
    with pytest.raises(ConfigError, match="cannot load classifier") as err:
        execute(REBOUND, config, out=tmp_path / "run")
    assert len(str(err.value).splitlines()) == 1
