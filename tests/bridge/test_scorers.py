"""Text scorers on hand-written examples, with explicit label-index and sign handling."""

from __future__ import annotations

import pytest
import torch

from harness.errors import ConfigError
from llm_bridge.scorers import ClassifierScorer, ClassifierSpec, RefusalScorer, VaderScorer


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
