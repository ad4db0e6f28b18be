"""Training through the Accelerator (precision, checkpointing, constant LR, equal steps) and full
fine-tuning's weight states on disk: a rebound run holds one model in memory, never copies."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from llm_bridge.adapter import HFCausalLM, LoraSpec
from llm_bridge.common import AdapterSettings
from llm_bridge.states import StateFile
from llm_bridge.tasks import make_task
from llm_bridge.training import mixed_precision
from tests.bridge.tiny import make_model, make_tokenizer, sentiment_records
from toymodels.finetuning import steps_for
from toymodels.interface import OptimizerSpec
from toymodels.protocols.rebound import ReboundSpec, rebound_curves

torch.set_num_threads(1)
TEXTS = [("write a review of the film", "good film , great plot ."), ("tell me a story", "sure here is a story"),
         ("what is the plot", "boring"), ("explain why", "i cannot help with that .")]


def adapter(lora: bool = True, **kwargs) -> HFCausalLM:
    tok = make_tokenizer()
    return HFCausalLM(make_model("llama", len(tok)), tok, template="chat", lora=LoraSpec(r=4) if lora else None,
                      **kwargs)


def test_dtype_resolves_and_fp16_is_refused_on_cpu():
    assert AdapterSettings().dtype == "auto"
    assert mixed_precision("auto", "cpu") == "no" and mixed_precision("auto", "cuda") == "bf16"
    assert mixed_precision("bf16", "cpu") == "bf16" and mixed_precision("fp32", "cuda:1") == "no"
    for dtype in ("fp16", "fp64"):
        with pytest.raises(ConfigError) as err:
            mixed_precision(dtype, "cpu")
        assert "\n" not in str(err.value)


def test_bf16_trains_in_mixed_precision_with_fp32_weights():
    """bf16 autocast through the Accelerator: fp32 weights, losses near the fp32 ones."""
    spec = OptimizerSpec(lr=1e-2, batch_size=2, grad_accum=2)
    logs = {}
    for dtype in ("fp32", "bf16"):
        a = adapter(dtype=dtype)
        log, state = a.fit([a.encode(p, r) for p, r in TEXTS * 2], [3, 1, 0, 2, 7, 5, 6], spec, None)
        logs[dtype] = log.losses
        assert a.accelerator.mixed_precision == ("no" if dtype == "fp32" else "bf16")
        assert all(p.dtype == torch.float32 for p in a.trainable_parameters())
    assert logs["bf16"] != logs["fp32"]
    np.testing.assert_allclose(logs["bf16"], logs["fp32"], atol=0.05)


def test_steps_are_whole_batches_at_a_constant_learning_rate():
    """One optimizer step per examples_per_step examples, a partial last batch too (equal steps on
    forward and inverse paths), and the paper's constant learning rate (no scheduler)."""
    a = adapter()
    spec = OptimizerSpec(lr=3e-3, batch_size=2, grad_accum=2)
    for n in (1, 4, 5, 7):
        log, state = a.fit([a.encode(p, r) for p, r in TEXTS * 2], list(range(n)), spec, None)
        assert log.steps == len(log.losses) == steps_for(n, spec)
        assert [g["lr"] for g in state["param_groups"]] == [3e-3]
        assert int(state["state"][0]["step"]) == log.steps


@pytest.mark.parametrize("lora", [True, False])
def test_gradient_checkpointing_trains_alike(lora):
    spec = OptimizerSpec(lr=1e-2, batch_size=2)
    runs = []
    for checkpointing in (False, True):
        a = adapter(lora=lora, gradient_checkpointing=checkpointing)
        assert any(getattr(m, "gradient_checkpointing", False) for m in a.net.modules()) == checkpointing
        log, _ = a.fit([a.encode(p, r) for p, r in TEXTS], [2, 0, 3, 1], spec, None)
        runs.append((log.losses, dict(a.state_dict())))
    (l1, s1), (l2, s2) = runs
    np.testing.assert_allclose(l1, l2, atol=1e-6)
    for k in s1:
        torch.testing.assert_close(s1[k], s2[k], rtol=0, atol=1e-6)


def test_full_states_are_files_that_go_with_their_handles(tmp_path):
    a = adapter(lora=False, state_dir=tmp_path)
    exs = [a.encode(p, r) for p, r in TEXTS]
    theta0, base = a.state_dict(), a.token_logprobs(exs)
    assert isinstance(theta0, StateFile) and theta0.path.exists() and theta0.path.is_relative_to(tmp_path)
    assert sorted(theta0) == sorted(n for n, _ in a.net.named_parameters())
    a.fit(exs, [0, 1, 2, 3], OptimizerSpec(lr=5e-2, batch_size=4), None)
    a.load_state_dict(theta0)
    np.testing.assert_array_equal(np.concatenate(a.token_logprobs(exs)), np.concatenate(base))
    path, folder = theta0.path, theta0.path.parent
    del theta0
    gc.collect()
    assert not path.exists() and folder.exists()
    del a
    gc.collect()
    assert not folder.exists()


def in_memory_copies(model: HFCausalLM) -> int:
    """Live dicts holding every weight of ``model`` as tensors other than the weights themselves."""
    params = dict(model.net.named_parameters())
    return sum(1 for o in gc.get_objects()
               if type(o) is dict and all(n in o for n in params)
               and all(isinstance(o[n], torch.Tensor) and o[n] is not p for n, p in params.items()))


def test_full_rebound_holds_one_model_in_memory(tmp_path):
    """A full fine-tune rebound keeps theta0 and its checkpoints as files: at every load and fit of
    the protocol, no copy of the weights is alive beside the model (the counter sees a copy held)."""
    a = adapter(lora=False, state_dir=tmp_path)
    held = {n: p.detach().clone() for n, p in a.net.named_parameters()}
    assert in_memory_copies(a) == 1
    del held
    seen, files = [], []

    def counted(original):
        def call(*args, **kwargs):
            seen.append(in_memory_copies(a))
            files.append(len(list(tmp_path.glob("states-*/*.pt"))))
            return original(*args, **kwargs)
        return call

    a.fit, a.load_state_dict = counted(a.fit), counted(a.load_state_dict)
    task = make_task("sentiment", sentiment_records(), a, n_eval=4, contrast_tokens=3)
    spec = ReboundSpec(forward_amounts=(0, 2, 4), reverse_amounts=(0, 2, 4), warmup_examples=2, n_eval=2,
                       n_kl_samples=2, kl_every=1, optimizer=OptimizerSpec(lr=1e-3, batch_size=2))
    curves = rebound_curves(a, task, spec, seed=0)
    assert np.isfinite(curves.log_odds["aligned"]).all()
    assert len(seen) > 10 and max(seen) == 0
    assert max(files) == 4  # theta0 and the three forward checkpoints, on disk
    gc.collect()
    assert list(tmp_path.glob("states-*/*.pt")) == []
