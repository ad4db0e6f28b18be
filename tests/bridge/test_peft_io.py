"""LoRA settings of the adapter block, a base model plus a saved PEFT adapter, and aligned models
saved as transformers folders that open with the same log-probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.runs import RunDir
from llm_bridge import common
from llm_bridge.adapter import HFCausalLM, LoraSpec
from llm_bridge.models import load_model
from llm_bridge.rebound import EXPERIMENT as REBOUND
from tests.bridge.test_adapter import examples
from tests.bridge.tiny import make_model, make_tokenizer
from toymodels.interface import OptimizerSpec

torch.set_num_threads(1)


def test_lora_settings_reach_peft():
    default = common.lora_spec(common.AdapterSettings())
    assert (default.r, default.alpha, default.dropout) == (8, 16, 0.0)  # today's LoRA: alpha = 2 r
    config = REBOUND.resolve("cpu-micro", sets={"lora_r": 4, "lora_alpha": 7, "lora_dropout": 0.1,
                                                "lora_target_modules": "q_proj,v_proj"})
    spec = common.lora_spec(config.adapter)
    tok = make_tokenizer()
    peft_config = HFCausalLM(make_model("llama", len(tok)), tok, lora=spec).net.peft_config["default"]
    assert (peft_config.r, peft_config.lora_alpha, peft_config.lora_dropout) == (4, 7, 0.1)
    assert set(peft_config.target_modules) == {"q_proj", "v_proj"}
    assert "alpha=7 dropout=0.1 on q_proj,v_proj" in common.regime(config.adapter, OptimizerSpec())


@pytest.mark.parametrize("sets,match", [
    ({"finetune": "full", "lora_alpha": 4}, "adapter.lora_alpha = 4 is not used with finetune = full"),
    ({"finetune": "full", "lora_dropout": 0.1}, "adapter.lora_dropout = 0.1 is not used"),
    ({"finetune": "full", "lora_target_modules": "q_proj"}, "adapter.lora_target_modules = q_proj is not used"),
    ({"lora_dropout": 1.0}, r"lora_dropout must be in \[0, 1\)"),
    ({"lora_alpha": 0}, "lora_alpha must be >= 1"),
    ({"lora_target_modules": "q_proj,q_proj"}, "each once"),
])
def test_bad_lora_settings_are_config_errors(sets, match):
    with pytest.raises(ConfigError, match=match):
        REBOUND.resolve("cpu-micro", sets=sets)


def test_lora_dropout_repeats_its_masks_when_a_step_is_trained_again():
    """A resumed run or a saved checkpoint trains its steps again: with dropout, alike."""
    tok = make_tokenizer()

    def trained(pieces, dropout: float = 0.5) -> dict:
        model = HFCausalLM(make_model("llama", len(tok)), tok, template="chat", lora=LoraSpec(r=4, dropout=dropout))
        data, state = examples(model), None
        for piece in pieces:
            _, state = model.fit(data, piece, OptimizerSpec(lr=1e-2, batch_size=1), state)
        return model.state_dict()

    one, two, plain = trained([np.arange(4)]), trained([np.arange(2), np.arange(2, 4)]), trained([np.arange(4)], 0.0)
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert not all(torch.equal(one[k], plain[k]) for k in one)  # dropout was on


def test_unknown_target_module_is_a_config_error():
    tok = make_tokenizer()
    with pytest.raises(ConfigError, match="lora_target_modules nope"):
        HFCausalLM(make_model("llama", len(tok)), tok, lora=LoraSpec(target_modules=("nope",)))


def test_saved_model_opens_in_transformers_with_the_same_logprobs(tmp_path):
    from transformers import AutoModelForCausalLM

    tok = make_tokenizer()
    trained = HFCausalLM(make_model("llama", len(tok)), tok, template="chat", lora=LoraSpec(r=4))
    data = examples(trained)
    trained.fit(data, np.arange(len(data)), OptimizerSpec(lr=1e-2, batch_size=2), None)
    trained.save_pretrained(tmp_path / "aligned")
    assert sorted(p.suffix for p in (tmp_path / "aligned").glob("model*")) == [".safetensors"]
    reopened = HFCausalLM(AutoModelForCausalLM.from_pretrained(tmp_path / "aligned"), tok, template="chat")
    for ours, theirs in zip(trained.token_logprobs(data), reopened.token_logprobs(data), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert any("lora_" in name for name in trained.state_dict())  # the in-memory adapter is kept


def save_peft_adapter(folder, model_dir, seed: int) -> None:
    """A LoRA adapter with random (nonzero) weights for the tiny model, saved as peft saves one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                                LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    peft_model.save_pretrained(folder)


def test_base_plus_peft_adapter_is_merged_and_recorded(tiny_folder, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    save_peft_adapter(tmp_path / "adapter", tiny_folder, seed=0)
    loaded = load_model(str(tiny_folder), adapter_path=str(tmp_path / "adapter"))
    assert set(loaded.record["adapter_sha256"]) == {"adapter_config.json", "adapter_model.safetensors"}
    assert not any("lora_" in name for name, _ in loaded.model.named_parameters())  # merged, not wrapped
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_folder), tmp_path / "adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_folder)
    ids = torch.tensor([[4, 5, 6, 7, 8]])
    with torch.no_grad():
        merged, unmerged, plain = (m(input_ids=ids).logits for m in (loaded.model, reference, base))
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(merged, plain)  # the adapter changed the model


@pytest.mark.parametrize("files,match", [
    ((), "is not a folder"),
    (("adapter_config.json",), "holds no adapter_model.safetensors; pickled adapters"),
    (("adapter_model.safetensors",), "holds no adapter_config.json"),
])
def test_bad_adapter_folders_are_config_errors(tiny_folder, tmp_path, files, match):
    folder = tmp_path / "adapter"
    if files:
        folder.mkdir()
        for name in files:
            (folder / name).write_text("{}")
    with pytest.raises(ConfigError, match=match):
        load_model(str(tiny_folder), adapter_path=str(folder))


def test_an_adapter_missing_weights_is_a_config_error(tiny_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    save_peft_adapter(tmp_path / "adapter", tiny_folder, seed=0)
    weights = tmp_path / "adapter" / "adapter_model.safetensors"
    save_file({k: v for k, v in load_file(weights).items() if "v_proj" not in k}, weights)
    with pytest.raises(ConfigError, match="cannot apply the PEFT adapter .*missing adapter keys"):
        load_model(str(tiny_folder), adapter_path=str(tmp_path / "adapter"))


def test_a_changed_adapter_refuses_resume(tiny_folder, records_file, tmp_path):
    config = REBOUND.resolve("cpu-micro", sets={"model": str(tiny_folder), "data": str(records_file), "n_eval": 4,
                                                "adapter_path": str(tmp_path / "adapter"), "threads": 1})
    save_peft_adapter(tmp_path / "adapter", tiny_folder, seed=0)
    run = RunDir.open(REBOUND.name, config, out=tmp_path / "run")
    common.load_run(config, run, 4, "pretrained", 0, 42)
    assert run.read_json("model.json")["adapter_sha256"]
    save_peft_adapter(tmp_path / "adapter", tiny_folder, seed=1)
    with pytest.raises(ConfigError, match="other adapter"):
        common.load_run(config, run, 4, "pretrained", 0, 42)
