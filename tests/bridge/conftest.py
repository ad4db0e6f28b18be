"""Fixtures of the bridge tests: tiny models built locally (see tests/bridge/tiny.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.bridge.tiny import make_model, make_tokenizer, sentiment_records  # noqa: E402


@pytest.fixture
def tokenizer():
    return make_tokenizer()


@pytest.fixture(params=["llama", "gemma"])
def arch(request):
    return request.param


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A tiny random Llama saved as a local HF folder (safetensors + tokenizer)."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tok = make_tokenizer(chat=False)
    make_model("llama", len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def records_file(tmp_path_factory):
    import dataclasses
    import json

    path = tmp_path_factory.mktemp("data") / "sentiment.jsonl"
    path.write_text("".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in sentiment_records()))
    return path
