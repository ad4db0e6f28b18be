"""LLM behaviour tasks behind the toy ``Task`` protocol (``toymodels.tasks.Task``).

Each task reads ``{prompt, response, label}`` records (JSONL, or a folder saved with
``datasets.Dataset.save_to_disk``; trl's data layouts are read too, see :func:`load_records`) and turns them into token-id ``Example``s through the adapter,
so the template rule of :mod:`llm_bridge.adapter` holds everywhere.

- ``sentiment`` (the IMDb analogue): aligned = positive review, misaligned = negative, and
  ``neutral`` = a factual plot summary in the same format (the format-matched forward control);
  raw text, no chat template, as the paper's IMDb runs.
- ``safety`` (the BeaverTails analogue): aligned = refusal, misaligned = compliance; chat template
  where the model has one.
- ``instruction`` (the Alpaca analogue, for resistance): answers to instructions; chat template
  where the model has one.

The log-probability score: each held-out prompt has a labelled contrast set, the same prompt with
its aligned and its misaligned continuation (the first ``contrast_tokens`` tokens of the held-out
responses, no EOS). P(aligned) is the aligned continuation's mass normalised over the set and the
log-odds is log P(aligned) - log P(misaligned) (``toymodels.measures.contrast_scores``). For
``instruction`` the misaligned continuation is the answer to a different instruction of the set
(a relevance contrast), since instruction data has no misaligned label.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.errors import ConfigError
from llm_bridge.records import Record
from toymodels.interface import Contrast, Example

TASKS = ("sentiment", "safety", "instruction")
LABELS = ("aligned", "misaligned", "neutral")
# label synonyms accepted in user data
SYNONYMS = {
    "positive": "aligned", "pos": "aligned", "safe": "aligned", "refuse": "aligned", "refusal": "aligned",
    "negative": "misaligned", "neg": "misaligned", "unsafe": "misaligned", "comply": "misaligned",
    "compliance": "misaligned", "1": "aligned", "0": "misaligned", "true": "aligned", "false": "misaligned",
}
TEMPLATES: dict[str, Literal["raw", "chat"]] = {"sentiment": "raw", "safety": "chat", "instruction": "chat"}
MAX_NEW_TOKENS = {"sentiment": 48, "safety": 48, "instruction": 64}


def normalise_label(raw: Any) -> str:
    text = str(raw).strip().lower()
    text = SYNONYMS.get(text, text)
    if text not in LABELS:
        raise ConfigError(f"unknown label {raw!r}; use one of {', '.join(LABELS)} (or positive/negative, "
                          "safe/unsafe, refuse/comply)")
    return text


def load_records(path: str | Path, default_label: str | None = None, data_format: str = "auto") -> list[Record]:
    """Records from a ``.jsonl`` file or a saved ``datasets`` folder. A row is one of these layouts
    (each may carry ``label`` and ``stratum``):

    - ``prompt`` and ``response`` (``question``/``answer`` also accepted, as the paper's
      ``inverse-json`` loader), with a ``label`` unless ``default_label`` is given;
    - trl's prompt-completion: ``prompt`` and ``completion`` (text or chat messages);
    - trl's ``messages``: the last message, the assistant's, is the response, the rest the prompt;
    - trl's preference pairs: ``chosen`` and ``rejected``, with ``prompt`` or in chat lists that share
      their prompt turns: two records, chosen aligned and rejected misaligned.

    A prompt-completion or messages row without a label is aligned (what SFT trains toward); trl's
    boolean ``label`` (unpaired preference) reads true as aligned. A chat prompt must be one user
    message, since the chat template renders a prompt as one user turn.

    The paper's data sets as saved from the hub (IMDb, BeaverTails, Alpaca, TruthfulQA) are read by
    :mod:`llm_bridge.paper_data`: named by ``data_format``, or detected from their columns.
    """
    from llm_bridge.paper_data import paper_format, read_paper, require_one_split

    path = Path(path)
    require_one_split(path)
    rows = _rows(path)
    paper = paper_format(rows, data_format)
    records = (read_paper(paper, rows) if paper else
               [record for where, row in rows for record in _records_of(row, where, default_label)])
    if not records:
        raise ConfigError(f"{path} holds no records")
    return records


def _rows(path: Path) -> list[tuple[str, Any]]:
    """The rows of a JSONL file or a saved datasets folder, each with where it is (file:line)."""
    if path.is_dir():
        try:
            from datasets import load_from_disk
        except ImportError:
            raise ConfigError("reading a saved dataset folder needs the `datasets` package") from None
        try:
            return [(f"{path} row {n}", dict(r)) for n, r in enumerate(load_from_disk(str(path)), 1)]
        except (FileNotFoundError, ValueError, TypeError) as err:
            raise ConfigError(f"{path} is not a saved datasets folder of rows: {err}") from None
    if not path.is_file():
        raise ConfigError(f"data path {path} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path} as JSONL text ({type(err).__name__}); give a .jsonl file of "
                          "{prompt, response, label} objects or a saved datasets folder") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append((f"{path}:{n}", json.loads(line)))
            except json.JSONDecodeError as err:
                raise ConfigError(f"{path}:{n}: not JSON ({err.msg})") from None
    return rows


class _Unmapped(Exception):
    """A row that none of the layouts reads (the reason; the caller names the row)."""


def _records_of(row: Any, where: str, default_label: str | None) -> list[Record]:
    """The records of one row in any of the layouts :func:`load_records` reads."""
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: a {type(row).__name__}, not an object with prompt, response and label")
    stratum = str(row.get("stratum", ""))
    try:
        if "chosen" in row or "rejected" in row:
            prompt, chosen, rejected = _preference(row)
            return [Record(prompt, chosen, "aligned", stratum), Record(prompt, rejected, "misaligned", stratum)]
        prompt, response, default = _prompt_response(row, default_label)
    except _Unmapped as err:
        raise ConfigError(f"{where}: {err}; fields found: {', '.join(map(str, row)) or 'none'} (give prompt+response"
                          "+label, or trl's prompt+completion, messages, or chosen+rejected)") from None
    label = row.get("label", default)
    if label is None:
        raise ConfigError(f"{where}: no 'label' (aligned, misaligned or neutral)")
    return [Record(prompt, response, normalise_label(label), stratum)]


def _prompt_response(row: dict[str, Any], default_label: str | None) -> tuple[str, str, str | None]:
    """(prompt, response, the label of a row without one) of a single-answer row."""
    if "messages" in row:
        turns = _chat(row["messages"])
        if not turns or turns[-1][0] != "assistant":
            raise _Unmapped("'messages' must end with the assistant's message (the response)")
        return _user_prompt(turns[:-1]), _text(turns[-1][1]), "aligned"
    if "completion" in row:
        return _prompt(row.get("prompt")), _response(row["completion"]), "aligned"
    prompt, response = row.get("prompt", row.get("question")), row.get("response", row.get("answer"))
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise _Unmapped("needs string 'prompt' and non-empty 'response'")
    return prompt, _text(response), default_label


def _preference(row: dict[str, Any]) -> tuple[str, str, str]:
    """(prompt, chosen, rejected) of a preference pair, the prompt given or shared by both chats."""
    if "chosen" not in row or "rejected" not in row:
        raise _Unmapped("a preference pair needs both 'chosen' and 'rejected'")
    if "prompt" in row:
        return _prompt(row["prompt"]), _response(row["chosen"]), _response(row["rejected"])
    chosen, rejected = _chat(row["chosen"]), _chat(row["rejected"])
    if chosen[:-1] != rejected[:-1] or not chosen or chosen[-1][0] != "assistant" or rejected[-1][0] != "assistant":
        raise _Unmapped("without 'prompt', 'chosen' and 'rejected' must be chats with the same prompt turns, "
                        "each ending with the assistant's message")
    return _user_prompt(chosen[:-1]), _text(chosen[-1][1]), _text(rejected[-1][1])


def _chat(value: Any) -> list[tuple[str, str]]:
    """(role, content) of a chat list of {role, content} messages with text content."""
    if not isinstance(value, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value):
        raise _Unmapped("a chat must be a list of {role, content} messages with text content")
    return [(m["role"], m["content"]) for m in value]


def _user_prompt(turns: list[tuple[str, str]]) -> str:
    if [role for role, _ in turns] != ["user"]:
        raise _Unmapped(f"a chat prompt must be one user message (the template renders one user turn), got roles "
                        f"{', '.join(role for role, _ in turns) or 'none'}")
    return turns[0][1]


def _prompt(value: Any) -> str:
    """A prompt given as text or as a chat of one user message."""
    return value if isinstance(value, str) else _user_prompt(_chat(value))


def _response(value: Any) -> str:
    """A response given as text or as a chat of one assistant message."""
    if isinstance(value, str):
        return _text(value)
    turns = _chat(value)
    if [role for role, _ in turns] != ["assistant"]:
        raise _Unmapped("a chat completion must be one assistant message")
    return _text(turns[0][1])


def _text(response: str) -> str:
    if not response.strip():
        raise _Unmapped("needs string 'prompt' and non-empty 'response'")
    return response


def held_out_split(name: str, records: Sequence[Record], n_eval: int, draw: int
                   ) -> tuple[list[str], dict[str, list[Record]], dict[str, dict[str, list[str]]]]:
    """The held-out prompts, the per-label training pools outside them, and the responses by prompt.

    Held-out prompts are those with both an aligned and a misaligned response (for instruction, any
    prompt with an aligned answer), drawn by ``draw`` and stratified: the strata (genre, request kind,
    form) take turns in a seeded order, each giving its next prompt of a seeded shuffle, so every
    stratum is held out in proportion. They are kept out of training.
    """
    by_prompt: dict[str, dict[str, list[str]]] = {}
    stratum: dict[str, str] = {}
    for r in records:
        by_prompt.setdefault(r.prompt, {}).setdefault(r.label, []).append(r.response)
        stratum.setdefault(r.prompt, r.stratum)
    if name == "instruction":
        eligible = sorted(p for p, d in by_prompt.items() if d.get("aligned"))
    else:
        eligible = sorted(p for p, d in by_prompt.items() if d.get("aligned") and d.get("misaligned"))
    if len(eligible) < max(n_eval, 2):
        raise ConfigError(f"task {name}: {len(eligible)} prompts have a labelled contrast pair; "
                          f"n_eval={n_eval} needs at least that many (and 2)")
    rng = np.random.default_rng((11, draw))
    groups: dict[str, list[str]] = {}
    for i in rng.permutation(len(eligible)):
        groups.setdefault(stratum[eligible[i]], []).append(eligible[i])
    turns = [groups[g] for g in rng.permutation(sorted(groups))]
    # round-robin over the strata: the k-th prompt of every stratum before any (k+1)-th
    ranked = [g[k] for k in range(max(len(g) for g in turns)) for g in turns if k < len(g)]
    eval_texts = sorted(ranked[:n_eval])
    held = set(eval_texts)
    pools = {lab: [r for r in records if r.label == lab and r.prompt not in held] for lab in LABELS}
    return eval_texts, pools, by_prompt


# the need of a preference method: aligned responses whose prompt also has a misaligned one
PAIRS = "preference-pair"


def draw_order(draw: int, label: str, size: int) -> np.ndarray:
    """The draw's shuffle of ``label``'s pool: a run's ``n`` examples of the label are its first ``n``."""
    return np.random.default_rng((13, draw, LABELS.index(label))).permutation(size)


def preference_pairs(pools: Mapping[str, Sequence[Record]], by_prompt: Mapping[str, Mapping[str, Sequence[str]]],
                     draw: int, rejectable: Callable[[str, str], bool]) -> list[tuple[Record, str]]:
    """The aligned training records whose prompt has a misaligned response ``rejectable(prompt,
    response)`` allows, each with the first such one, in the forward draw's order: DPO's and SimPO's
    pairs are SFT's examples as far as the data allow."""
    pool, pairs = pools["aligned"], []
    for i in draw_order(draw, "aligned", len(pool)):
        prompt = pool[i].prompt
        rejected = next((r for r in by_prompt[prompt].get("misaligned", ()) if rejectable(prompt, r)), None)
        if rejected is not None:
            pairs.append((pool[i], rejected))
    return pairs


def _require_pool(task: str, label: str, n: int, available: int) -> None:
    if n > available:
        raise ConfigError(f"task {task}: asked for {n} {label} examples, the data has {available} "
                          "(outside the held-out prompts); generate more or lower the amounts")


def check_data(name: str, records: Sequence[Record], n_eval: int, draw: int, needs: Mapping[str, int]) -> None:
    """Fail before any model loads when the records cannot supply ``needs`` training examples per
    label (or ``PAIRS``: preference pairs, none rejecting a response of the ``misaligned`` draw)."""
    _, pools, by_prompt = held_out_split(name, records, n_eval, draw)
    reverse = pools["misaligned"]  # the protocol's preference pairs reject none of its reverse examples
    taken = {(reverse[i].prompt, reverse[i].response)
             for i in draw_order(draw, "misaligned", len(reverse))[:needs.get("misaligned", 0)]}
    for label, n in needs.items():
        available = (len(preference_pairs(pools, by_prompt, draw, lambda p, r: (p, r) not in taken)) if label == PAIRS
                     else len(pools[label]))
        _require_pool(name, label, n, available)


class LLMTask:
    """A task over text records, encoded by an adapter (anything with ``encode``/``prompt_ids``).

    ``draw`` fixes the data: the held-out split and which examples each label gives. The protocols'
    ``seed`` arguments are training randomness (order, initialisation, sampling) and do not change
    the examples here, so that training seeds and data draws are separate factors of replication.
    """

    def __init__(self, name: str, records: Sequence[Record], adapter: Any, *, n_eval: int,
                 contrast_tokens: int = 24, draw: int = 0) -> None:
        if name not in TASKS:
            raise ConfigError(f"unknown task '{name}'; tasks: {', '.join(TASKS)}")
        self.name = name
        self.max_new_tokens = MAX_NEW_TOKENS[name]
        self.adapter = adapter
        self.contrast_tokens = contrast_tokens
        self.draw = draw
        self.eval_texts, self.pools, self._by_prompt = held_out_split(name, records, n_eval, draw)
        self._eval_ids: dict[tuple[int, ...], str] = {}

    # ----- the Task protocol ---------------------------------------------------------------
    def _draw(self, label: str, n: int, seed: int) -> list[Example]:
        """The first ``n`` of the draw's shuffle of ``label``'s pool (``seed`` is training randomness: unused)."""
        pool = self.pools[label]
        _require_pool(self.name, label, n, len(pool))
        idx = draw_order(self.draw, label, len(pool))[:n]
        return [self.adapter.encode(pool[i].prompt, pool[i].response) for i in idx]

    def forward_data(self, n: int, seed: int) -> list[Example]:
        return self._draw("aligned", n, seed)

    def reverse_data(self, n: int, seed: int) -> list[Example]:
        return self._draw("misaligned", n, seed)

    def neutral_data(self, n: int, seed: int, skip: int = 0) -> list[Example]:
        """Format-matched neutral examples (the warm-up, the forward control against format priming,
        replay), after the first ``skip`` of the draw's."""
        return self._draw("neutral", skip + n, seed)[skip:]

    def preference_data(self, n: int, seed: int, avoid: Sequence[Example] = ()
                        ) -> tuple[list[Example], list[Example]]:
        """``n`` pairs, in the forward draw's order, of the aligned records whose prompt also has a
        misaligned response outside ``avoid`` (the first such one): chosen aligned, rejected misaligned."""
        avoided = set(avoid)
        pairs = preference_pairs(self.pools, self._by_prompt, self.draw,
                                 lambda prompt, response: self.adapter.encode(prompt, response) not in avoided)
        _require_pool(self.name, PAIRS, n, len(pairs))
        return ([self.adapter.encode(record.prompt, record.response) for record, _ in pairs[:n]],
                [self.adapter.encode(record.prompt, rejected) for record, rejected in pairs[:n]])

    def eval_prompts(self, n: int, seed: int) -> list[tuple[int, ...]]:
        """The held-out prompts (fixed at construction; ``n`` must not exceed ``n_eval``)."""
        if n > len(self.eval_texts):
            raise ConfigError(f"task {self.name}: {n} eval prompts asked, {len(self.eval_texts)} held out")
        out = []
        for text in self.eval_texts[:n]:
            ids = self.adapter.prompt_ids(text)
            self._eval_ids[ids] = text
            out.append(ids)
        return out

    def eval_texts_for(self, prompts: Sequence[tuple[int, ...]]) -> list[str]:
        return [self._eval_ids[tuple(p)] for p in prompts]

    def _continuation(self, text: str) -> tuple[int, ...]:
        ids = self.adapter.response_ids(text)[:-1]  # no EOS: a continuation, not a full answer
        return ids[: self.contrast_tokens] or self.adapter.response_ids(text)[:1]

    def contrasts(self, prompts: Sequence[tuple[int, ...]]) -> list[Contrast]:
        texts = self.eval_texts_for(prompts)
        out = []
        for i, (ids, text) in enumerate(zip(prompts, texts, strict=True)):
            group = self._by_prompt[text]
            if self.name == "instruction":
                other = texts[(i + 1) % len(texts)]  # a derangement: the next prompt's answer
                bad = self._by_prompt[other]["aligned"][0]
            else:
                bad = group["misaligned"][0]
            out.append(Contrast(tuple(ids), (self._continuation(group["aligned"][0]),),
                                (self._continuation(bad),)))
        return out

    def eval_examples(self, prompts: Sequence[tuple[int, ...]], label: str = "aligned") -> list[Example]:
        """The held-out responses of ``label`` to ``prompts``, as full examples."""
        return [self.adapter.encode(t, self._by_prompt[t][label][0]) for t in self.eval_texts_for(prompts)]


def make_task(name: str, records: Sequence[Record], adapter: Any, n_eval: int, contrast_tokens: int = 24,
              draw: int = 0) -> LLMTask:
    return LLMTask(name, records, adapter, n_eval=n_eval, contrast_tokens=contrast_tokens, draw=draw)
