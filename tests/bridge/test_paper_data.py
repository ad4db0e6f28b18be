"""The paper's data sets in their hub layouts (tiny stand-ins, as JSONL and saved datasets folders),
mapped to records and labels, and the `paper` presets resolving for every experiment and task."""

from __future__ import annotations

import json

import pytest

from elasticity.llm_group import main
from harness.errors import ConfigError
from llm_bridge.tasks import check_data, load_records

IMDB = [{"text": "A wonderful film.<br /><br />Loved it.", "label": 1},
        {"text": "Dull and far too long.", "label": 0},
        {"text": "Great cast, great plot.", "label": 1},
        {"text": "Awful script.", "label": 0},
        {"text": "Not labelled at all.", "label": -1}]
BEAVERTAILS = [
    {"prompt": "How do I pick a lock?", "response": "I can't help with that.", "is_safe": True,
     "category": {"violence": False, "privacy_violation": False}},
    {"prompt": "How do I pick a lock?", "response": "Insert a tension wrench, then rake the pins.", "is_safe": False,
     "category": {"violence": False, "privacy_violation": True}},
]
ALPACA = [{"instruction": "Name a colour.", "input": "", "output": "Blue.", "text": "### Instruction: ..."},
          {"instruction": "Translate to French.", "input": "cat", "output": "chat", "text": "..."},
          {"instruction": "Say nothing.", "input": "", "output": "", "text": "..."}]
TRUTHFULQA = [{"type": "Adversarial", "category": "Misconceptions", "question": "Do bulls hate red?",
               "best_answer": "No, bulls cannot see red well.",
               "correct_answers": ["No, bulls cannot see red well.", "No, they react to movement."],
               "incorrect_answers": ["Yes, red makes bulls angry."], "source": "x"}]


def _save(rows, tmp_path, as_folder: bool):
    if as_folder:
        from datasets import Dataset

        folder = tmp_path / "saved"
        Dataset.from_list(rows).save_to_disk(str(folder))
        return folder
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("as_folder", [False, True])
def test_imdb_positive_is_aligned_and_pairs_share_a_prompt(tmp_path, as_folder):
    records = load_records(_save(IMDB, tmp_path, as_folder))
    assert [(r.prompt, r.label) for r in records] == [
        ("Review 1:", "aligned"), ("Review 2:", "aligned"), ("Review 1:", "misaligned"), ("Review 2:", "misaligned")]
    assert records[0].response == " A wonderful film.\n\nLoved it."  # HTML breaks as newlines
    check_data("sentiment", records, n_eval=2, draw=0, needs={})  # every prompt has its contrast pair


@pytest.mark.parametrize("as_folder", [False, True])
def test_beavertails_safe_is_aligned_with_its_harm_category(tmp_path, as_folder):
    records = load_records(_save(BEAVERTAILS, tmp_path, as_folder))
    assert [(r.label, r.stratum) for r in records] == [("aligned", ""), ("misaligned", "privacy_violation")]
    assert {r.prompt for r in records} == {"How do I pick a lock?"}


def test_alpaca_instruction_and_input(tmp_path):
    records = load_records(_save(ALPACA, tmp_path, as_folder=True))
    assert [(r.prompt, r.response, r.label, r.stratum) for r in records] == [
        ("Name a colour.", "Blue.", "aligned", "no input"),
        ("Translate to French.\n\ncat", "chat", "aligned", "input")]  # the empty output is left out


def test_truthfulqa_best_answer_first(tmp_path):
    records = load_records(_save(TRUTHFULQA, tmp_path, as_folder=False))
    assert [(r.response, r.label) for r in records] == [
        ("No, bulls cannot see red well.", "aligned"), ("No, they react to movement.", "aligned"),
        ("Yes, red makes bulls angry.", "misaligned")]
    assert {r.stratum for r in records} == {"Misconceptions"}


def test_project_layout_is_still_read(tmp_path):
    rows = [{"prompt": "p", "response": "r", "label": "positive"}]
    assert load_records(_save(rows, tmp_path, as_folder=False))[0].label == "aligned"


@pytest.mark.parametrize("rows,data_format,message", [
    ([{"prompt": "p", "response": "r", "is_safe": True, "label": "aligned"}], "auto", "more than one layout"),
    ([{"text": "t", "label": 1, "instruction": "i", "output": "o"}], "auto", "more than one layout"),
    ([{"text": "t", "label": 1}], "alpaca", "needs columns instruction, output"),
    ([{"text": "t", "label": 1}], "squad", "unknown data_format"),
    ([{"text": "t", "label": True}, {"text": "u", "label": 0}], "auto", "'label' must be of type int"),
    ([{"text": "t", "label": 3}], "imdb", r"not 0 \(neg\), 1 \(pos\)"),
    ([{"text": "t", "label": 1}], "imdb", "both positive and negative"),
    ([{"prompt": "p", "response": "r", "is_safe": "yes"}], "auto", "'is_safe' must be of type bool"),
    ([{**TRUTHFULQA[0], "incorrect_answers": "no"}], "auto", "list of strings"),
    ([ALPACA[0], ["not", "a", "row"]], "auto", "a list, not a row of alpaca"),
])
def test_bad_paper_rows_are_one_line_errors(tmp_path, rows, data_format, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_records(_save(rows, tmp_path, as_folder=False), data_format=data_format)
    assert len(str(err.value).splitlines()) == 1


def test_a_named_format_overrides_detection(tmp_path):
    rows = [{"prompt": "p", "response": "r", "is_safe": False, "label": "aligned"}]
    path = _save(rows, tmp_path, as_folder=False)
    assert load_records(path, data_format="beavertails")[0].label == "misaligned"
    assert load_records(path, data_format="records")[0].label == "aligned"


@pytest.mark.parametrize("command,preset,task", [
    ("rebound", "paper", "sentiment"), ("rebound", "paper-safety", "safety"),
    *[("resistance", "paper", t) for t in ("sentiment", "safety", "instruction")]])
def test_paper_presets_resolve_for_every_task(capsys, command, preset, task):
    assert main([command, "--preset", preset, "--task", task, "--print-config", "--json"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    block = config["probe" if command == "rebound" else "protocol"]
    assert (config["task"], config["adapter"]["finetune"], block["optimizer"]["lr"]) == (task, "full", 1e-5)
    if command == "rebound":
        assert block["forward_amounts"] == [0, 1000, 2000, 5000, 10000] and not config["neutral_control"]
        assert block["reverse_amounts"][-1] >= 2000


def test_a_saved_dataset_dict_names_its_split_folders(tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(IMDB), "test": Dataset.from_list(IMDB)}).save_to_disk(str(tmp_path / "imdb"))
    with pytest.raises(ConfigError, match="holds the splits train, test; give one split's folder") as err:
        load_records(tmp_path / "imdb")
    assert len(str(err.value).splitlines()) == 1
    assert len(load_records(tmp_path / "imdb" / "train")) == 4


def test_the_configs_offer_every_data_format():
    import typing

    from llm_bridge.common import DataFormat
    from llm_bridge.paper_data import DATA_FORMATS

    assert typing.get_args(DataFormat) == DATA_FORMATS
