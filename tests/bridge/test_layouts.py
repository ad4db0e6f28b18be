"""trl's data layouts read as the project's records: prompt-completion, messages and preference
pairs; a row no layout reads is a one-line ConfigError naming the file, the line and its fields."""

from __future__ import annotations

import json

import pytest

from harness.errors import ConfigError
from llm_bridge.tasks import load_records


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def jsonl(tmp_path, rows) -> str:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("rows,expected", [
    ([{"prompt": "p", "completion": " c"}], [("p", " c", "aligned")]),
    ([{"prompt": [user("p")], "completion": [assistant("c")], "label": False}], [("p", "c", "misaligned")]),
    ([{"prompt": "p", "completion": "c", "label": "neutral"}], [("p", "c", "neutral")]),
    ([{"messages": [user("p"), assistant("c")]}], [("p", "c", "aligned")]),
    ([{"prompt": "p", "chosen": " yes", "rejected": " no"}], [("p", " yes", "aligned"), ("p", " no", "misaligned")]),
    ([{"chosen": [user("p"), assistant("yes")], "rejected": [user("p"), assistant("no")]}],
     [("p", "yes", "aligned"), ("p", "no", "misaligned")]),
    ([{"prompt": [user("p")], "chosen": [assistant("yes")], "rejected": [assistant("no")], "stratum": "s"}],
     [("p", "yes", "aligned"), ("p", "no", "misaligned")]),
])
def test_trl_layouts_map_to_records(tmp_path, rows, expected):
    records = load_records(jsonl(tmp_path, rows))
    assert [(r.prompt, r.response, r.label) for r in records] == expected


def test_trl_layouts_from_a_saved_datasets_folder(tmp_path):
    from datasets import Dataset

    Dataset.from_list([{"chosen": [user("p"), assistant("yes")], "rejected": [user("p"), assistant("no")]}]
                      ).save_to_disk(str(tmp_path / "ds"))
    assert [r.label for r in load_records(tmp_path / "ds")] == ["aligned", "misaligned"]


@pytest.mark.parametrize("row,match", [
    ({"text": "a whole document"}, r"data.jsonl:2: .*fields found: text"),
    ({"chosen": " yes"}, r":2: a preference pair needs both .*fields found: chosen"),
    ({"chosen": " yes", "rejected": " no"}, r":2: a chat must be .*fields found: chosen, rejected"),
    ({"chosen": [user("p"), assistant("y")], "rejected": [user("q"), assistant("n")]}, "same prompt turns"),
    ({"messages": [{"role": "system", "content": "s"}, user("p"), assistant("c")]}, "roles system, user"),
    ({"messages": [user("p")]}, "must end with the assistant"),
    ({"prompt": "p", "completion": [user("c")]}, "one assistant message"),
    ({"prompt": "p", "completion": ""}, "non-empty"),
])
def test_unmappable_rows_name_file_line_and_fields(tmp_path, row, match):
    path = jsonl(tmp_path, [{"prompt": "p", "completion": "c"}, row])
    with pytest.raises(ConfigError, match=match) as err:
        load_records(path)
    assert "\n" not in str(err.value) and "data.jsonl:2" in str(err.value)
