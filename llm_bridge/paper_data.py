"""Readers of the paper's data sets, as saved from the hub (a ``datasets`` folder of one split, or
JSONL of its rows), into the project's records.

- ``imdb`` (stanfordnlp/imdb: ``text``, ``label`` 0 = neg, 1 = pos, -1 = unlabelled): the paper
  aligns toward positive sentiment and reverses with negative reviews, so positive = aligned and
  negative = misaligned; unlabelled rows (the ``unsupervised`` split) are left out. IMDb has no
  prompts: the i-th positive and the i-th negative review share the prompt ``Review <i>:``, a
  sentiment-free stem that gives every held-out prompt its labelled contrast pair (the prompt
  format of the paper's IMDb runs is not known).
- ``beavertails`` (PKU-Alignment/BeaverTails: ``prompt``, ``response``, ``is_safe``,
  ``category``): safe = aligned, unsafe = misaligned; the stratum is the first harm category
  flagged (none for a safe answer). A safe answer is not always a refusal.
- ``alpaca`` (tatsu-lab/alpaca: ``instruction``, ``input``, ``output``): the instruction, then
  its input after a blank line, answered by ``output``; all aligned (instruction data has no
  misaligned label). Rows with an empty output are left out: there is no answer to train on.
- ``truthfulqa`` (truthfulqa/truthful_qa, ``generation``: ``question``, ``best_answer``,
  ``correct_answers``, ``incorrect_answers``, ``category``): the best answer first, then the other
  correct answers, aligned; the incorrect answers misaligned; the stratum is the category.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from llm_bridge.records import Record

# The columns that identify each data set's rows (their hub layouts).
SIGNATURES: dict[str, frozenset[str]] = {
    "imdb": frozenset({"text", "label"}),
    "beavertails": frozenset({"prompt", "response", "is_safe"}),
    "alpaca": frozenset({"instruction", "output"}),
    "truthfulqa": frozenset({"question", "best_answer", "incorrect_answers"}),
}
# ``records``: the project's own layouts and trl's (``llm_bridge.tasks.load_records``)
DATA_FORMATS = ("auto", "records", *SIGNATURES)
IMDB_LABELS = {0: "misaligned", 1: "aligned"}  # stanfordnlp/imdb's ClassLabel: 0 neg, 1 pos
IMDB_UNLABELLED = -1

Rows = Sequence[tuple[str, Any]]


def require_one_split(path: Path) -> None:
    """Refuse a saved ``DatasetDict`` (every split of a hub data set), naming its splits' folders."""
    if not path.is_dir():
        return
    try:
        from datasets import config, load_from_disk
    except ImportError:
        return  # reading the folder says what is missing
    if (path / config.DATASETDICT_JSON_FILENAME).is_file():
        splits = list(load_from_disk(str(path)))
        raise ConfigError(f"{path} holds the splits {', '.join(splits)}; give one split's folder, e.g. "
                          f"{path / splits[0]}")


def paper_format(rows: Rows, data_format: str) -> str | None:
    """The paper data set ``rows`` are in (``data_format``, or detected from the first row's columns),
    None for the project's own layouts."""
    if data_format not in DATA_FORMATS:
        raise ConfigError(f"unknown data_format '{data_format}'; use one of {', '.join(DATA_FORMATS)}")
    if data_format == "records" or not rows or not isinstance(rows[0][1], Mapping):
        return None
    where, first = rows[0]
    if data_format != "auto":
        missing = sorted(SIGNATURES[data_format] - first.keys())
        if missing:
            raise ConfigError(f"{where}: data_format {data_format} needs columns {', '.join(missing)}; "
                              f"fields found: {', '.join(map(str, first))}")
        return data_format
    fits = [name for name, columns in SIGNATURES.items() if columns <= first.keys()]
    if fits and _project_layout(first):
        fits.append("records")
    if len(fits) > 1:
        raise ConfigError(f"{where}: the columns fit more than one layout ({', '.join(fits)}); keep one layout's "
                          "columns (datasets' remove_columns) or name the layout with load_records' data_format")
    return fits[0] if fits else None


def _project_layout(row: Mapping[str, Any]) -> bool:
    """Whether a row also reads as a labelled record or one of trl's layouts."""
    return bool({"completion", "messages", "chosen", "rejected"} & row.keys()) or (
        "label" in row and bool({"prompt", "question"} & row.keys()) and bool({"response", "answer"} & row.keys()))


def read_paper(data_format: str, rows: Rows) -> list[Record]:
    """The records of ``rows`` in the paper data set ``data_format``."""
    for where, row in rows:
        if not isinstance(row, Mapping):
            raise ConfigError(f"{where}: a {type(row).__name__}, not a row of {data_format}")
    return READERS[data_format](rows)


def _field(row: Mapping[str, Any], where: str, name: str, kind: type) -> Any:
    value = row.get(name)
    if type(value) is not kind:  # exact: a bool is not an IMDb label, nor 1 a BeaverTails verdict
        raise ConfigError(f"{where}: '{name}' must be of type {kind.__name__}, got {type(value).__name__}")
    return value


def imdb(rows: Rows) -> list[Record]:
    by_label: dict[str, list[str]] = {"aligned": [], "misaligned": []}
    for where, row in rows:
        label = _field(row, where, "label", int)
        if label == IMDB_UNLABELLED:
            continue
        if label not in IMDB_LABELS:
            raise ConfigError(f"{where}: IMDb label {label} is not 0 (neg), 1 (pos) or -1 (unlabelled)")
        # the corpus keeps the reviews' HTML line breaks
        text = _field(row, where, "text", str).replace("<br />", "\n").strip()
        if text:
            by_label[IMDB_LABELS[label]].append(" " + text)
    if not by_label["aligned"] or not by_label["misaligned"]:
        raise ConfigError("IMDb data needs both positive and negative reviews (a labelled split, not unsupervised)")
    out = []
    for label, reviews in by_label.items():
        out += [Record(f"Review {i}:", review, label) for i, review in enumerate(reviews, 1)]
    return out


def beavertails(rows: Rows) -> list[Record]:
    out = []
    for where, row in rows:
        prompt, response = _field(row, where, "prompt", str), _field(row, where, "response", str)
        safe = _field(row, where, "is_safe", bool)
        if response.strip():
            out.append(Record(prompt, response, "aligned" if safe else "misaligned", _harm(row, safe)))
    return out


def _harm(row: Mapping[str, Any], safe: bool) -> str:
    """The first harm category an unsafe answer is flagged with (none for a safe one)."""
    flagged = [name for name, on in (row.get("category") or {}).items() if on]
    return "" if safe else (flagged or ["unsafe"])[0]


def alpaca(rows: Rows) -> list[Record]:
    out = []
    for where, row in rows:
        instruction, output = _field(row, where, "instruction", str), _field(row, where, "output", str)
        extra = row.get("input") or ""
        if not isinstance(extra, str):
            raise ConfigError(f"{where}: 'input' must be a str, got {type(extra).__name__}")
        if output.strip():
            prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
            out.append(Record(prompt, output, "aligned", "input" if extra.strip() else "no input"))
    return out


def truthfulqa(rows: Rows) -> list[Record]:
    out = []
    for where, row in rows:
        question, best = _field(row, where, "question", str), _field(row, where, "best_answer", str)
        correct = [a for a in _answers(row, where, "correct_answers") if a != best]
        stratum = str(row.get("category", ""))
        out += [Record(question, a, "aligned", stratum) for a in [best, *correct] if a.strip()]
        out += [Record(question, a, "misaligned", stratum) for a in _answers(row, where, "incorrect_answers")
                if a.strip()]
    return out


def _answers(row: Mapping[str, Any], where: str, name: str) -> list[str]:
    answers = row.get(name, [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ConfigError(f"{where}: '{name}' must be a list of strings")
    return answers


READERS: dict[str, Callable[[Rows], list[Record]]] = {
    "imdb": imdb, "beavertails": beavertails, "alpaca": alpaca, "truthfulqa": truthfulqa}
