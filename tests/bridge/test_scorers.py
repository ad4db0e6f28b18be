"""Text scorers on hand-written examples, with explicit label-index and sign handling."""

from __future__ import annotations

import pytest
import torch

from harness.errors import ConfigError
from llm_bridge.scorers import (
    ClassifierScorer,
    ClassifierSpec,
    JudgeSettings,
    RefusalScorer,
    VaderScorer,
)


def test_vader_orders_hand_written_reviews():
    v = VaderScorer()
    pos, neg, neutral = v.score([
        "A wonderful, moving film. I loved every minute and the acting was superb.",
        "A boring, awful mess. The acting was terrible and I hated it.",
        "The film is set in a small town and follows a family over one summer.",
    ])
    assert pos > 0.5 and neg < -0.5 and abs(neutral) < 0.3
    assert v.label("Great fun, brilliant and beautiful.") == 1
    assert v.label("Dreadful, dull and painful to watch.") == 0
    assert v.label("It is a film about a boat.") is None


@pytest.mark.parametrize("text,refuses", [
    ("I'm sorry, but I can't help with that request.", True),
    ("I cannot assist with breaking into a network.", True),
    ("As an AI, I must decline.", True),
    ("I won\u2019t help with this.", True),  # typographic apostrophe
    ("Sure, here is how: first open the settings page, then choose a new password.", False),
    ("Here are the steps. 1. Buy a ticket. 2. Enter the cinema.", False),
])
def test_refusal_keywords(text, refuses):
    assert RefusalScorer().score([text]) == [1.0 if refuses else 0.0]


def test_refusal_head_only():
    text = "Sure, here is a plan. Later on, some people might say I'm sorry."
    assert RefusalScorer().score([text]) == [1.0]
    assert RefusalScorer(head_chars=20).score([text]) == [0.0]


def _classifier(num_labels: int, id2label: dict[int, str]):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from tests.bridge.tiny import make_tokenizer

    tok = make_tokenizer(chat=False)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=8, pad_token_id=1,
                         num_labels=num_labels, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    return LlamaForSequenceClassification(config).eval(), tok


def test_classifier_label_by_name_index_and_sign():
    model, tok = _classifier(2, {0: "NEGATIVE", 1: "POSITIVE"})
    texts = ["good film", "bad film , boring plot"]
    by_name = ClassifierScorer(ClassifierSpec("tiny", label="positive"), model=model, tokenizer=tok).score(texts)
    by_index = ClassifierScorer(ClassifierSpec("tiny", label=1), model=model, tokenizer=tok).score(texts)
    other = ClassifierScorer(ClassifierSpec("tiny", label="NEGATIVE"), model=model, tokenizer=tok).score(texts)
    assert by_name == pytest.approx(by_index)
    assert [a + b for a, b in zip(by_name, other, strict=True)] == pytest.approx([1.0, 1.0])  # softmax over 2
    with pytest.raises(ConfigError, match="which label"):
        ClassifierScorer(ClassifierSpec("tiny"), model=model, tokenizer=tok)
    with pytest.raises(ConfigError, match="not one of"):
        ClassifierScorer(ClassifierSpec("tiny", label="neutral"), model=model, tokenizer=tok)
    with pytest.raises(ConfigError, match="out of range"):
        ClassifierScorer(ClassifierSpec("tiny", label=2), model=model, tokenizer=tok)


def test_cost_model_sign():
    """A cost model's safe score is minus its scalar output (beaver-7b-v1.0-cost convention)."""
    model, tok = _classifier(1, {0: "LABEL_0"})
    texts = ["good film", "i cannot help with that"]
    reward = ClassifierScorer(ClassifierSpec("tiny", kind="reward"), model=model, tokenizer=tok).score(texts)
    cost = ClassifierScorer(ClassifierSpec("tiny", kind="reward", sign=-1), model=model, tokenizer=tok).score(texts)
    assert cost == pytest.approx([-r for r in reward])
    two, tok2 = _classifier(2, {0: "a", 1: "b"})
    with pytest.raises(ConfigError, match="exactly 1"):
        ClassifierScorer(ClassifierSpec("tiny", kind="reward"), model=two, tokenizer=tok2)


@pytest.mark.parametrize("scorer,label,message", [
    ("classifier:/models/sentiment", "", "needs scorer_label"),
    ("cost:/models/cost", "safe", "takes no scorer_label"),
    ("judge:/models/x", "", "scorer must be one of"),
    ("cost:", "", "scorer must be one of"),
    ("", "POSITIVE", "no scorer"),
])
def test_judge_settings_refuse_bad_input(scorer, label, message):
    with pytest.raises(ConfigError, match=message) as err:
        JudgeSettings(scorer=scorer, scorer_label=label)
    assert len(str(err.value).splitlines()) == 1


def _saved(tmp_path, name: str, num_labels: int, id2label: dict[int, str]) -> str:
    """A tiny classifier saved to a folder (same seed, so same weights, whatever its labels)."""
    model, tok = _classifier(num_labels, id2label)
    folder = tmp_path / name
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_saved_classifier_score_follows_the_aligned_label_name(tmp_path):
    """The same weights with the label names swapped: the score is P(named label), not P(index 1)."""
    texts = ["good film", "bad film , boring plot"]
    pos_second = _saved(tmp_path, "a", 2, {0: "NEGATIVE", 1: "POSITIVE"})
    pos_first = _saved(tmp_path, "b", 2, {0: "POSITIVE", 1: "NEGATIVE"})
    p = ClassifierScorer(JudgeSettings(scorer=f"classifier:{pos_second}", scorer_label="positive").spec()).score(texts)
    q = ClassifierScorer(JudgeSettings(scorer=f"classifier:{pos_first}", scorer_label="POSITIVE").spec()).score(texts)
    assert [a + b for a, b in zip(p, q, strict=True)] == pytest.approx([1.0, 1.0])
    by_index = ClassifierScorer(JudgeSettings(scorer=f"classifier:{pos_second}", scorer_label="1").spec()).score(texts)
    assert by_index == pytest.approx(p)


def test_saved_cost_model_lower_cost_scores_higher(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = _saved(tmp_path, "cost", 1, {0: "LABEL_0"})
    texts = ["i cannot help with that", "sure here is how to do it"]
    model, tok = AutoModelForSequenceClassification.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        cost = model(**tok(texts, return_tensors="pt", padding=True)).logits[:, 0].tolist()
    safe = ClassifierScorer(JudgeSettings(scorer=f"cost:{folder}").spec()).score(texts)
    assert safe == pytest.approx([-c for c in cost], abs=1e-5)
    assert (safe[0] > safe[1]) == (cost[0] < cost[1])  # the aligned order is the cost's reversed
    reward = ClassifierScorer(JudgeSettings(scorer=f"reward:{folder}").spec()).score(texts)
    assert reward == pytest.approx(cost, abs=1e-5)
