"""Speed of contrast scoring: batched with the shared prompt run once, against one sequence at a time.

Run with ``pytest tests/bridge/test_benchmark.py -m '' --benchmark-enable`` to compare; the default
suite runs the random mid-size Llama once as a test (--benchmark-disable), and the ``slow`` suite the
real SmolLM2 too. Both ways must give the same log-probabilities; nothing asserts a wall time.
"""

from __future__ import annotations

import numpy as np
import pytest

from llm_bridge.adapter import HFCausalLM
from tests.bridge.tiny import make_tokenizer
from toymodels import measures
from toymodels.interface import Contrast

N_PROMPTS, CONTINUATION = 24, 24  # the cpu-micro rebound's contrast set: 24 prompts x 2 continuations


def _mid_llama():
    """A random Llama of 4 layers x 256 wide: big enough that compute, not Python, dominates."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer(chat=False)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512,
                         tie_word_embeddings=True, pad_token_id=1, bos_token_id=2, eos_token_id=3)
    return HFCausalLM(LlamaForCausalLM(config).eval(), tok, template="raw", max_length=512)


def _smollm2():
    pytest.importorskip("gguf")
    from llm_bridge.models import load_model

    loaded = load_model("smollm2-135m")
    return HFCausalLM(loaded.model, loaded.tokenizer, template="raw", max_length=512)


def _contrasts(vocab: int, prompt_len: int) -> list[Contrast]:
    rng = np.random.default_rng(0)

    def ids(n: int) -> tuple[int, ...]:
        return tuple(int(i) for i in rng.integers(4, vocab, size=n))

    return [Contrast(ids(prompt_len + p % 5), (ids(CONTINUATION),), (ids(CONTINUATION),)) for p in range(N_PROMPTS)]


MODELS = {"random-llama-4x256": (_mid_llama, 11), "smollm2-135m": (_smollm2, 48)}


@pytest.fixture(scope="module", params=[pytest.param("random-llama-4x256"),
                                        pytest.param("smollm2-135m", marks=pytest.mark.slow)])
def scoring(request):
    build, prompt_len = MODELS[request.param]
    adapter = build()
    contrasts = _contrasts(min(len(adapter.tokenizer), 30_000), prompt_len)
    return adapter, contrasts


def _score(adapter: HFCausalLM, contrasts: list[Contrast], batch: int, share: bool) -> np.ndarray:
    adapter.eval_batch, adapter.share_prefix = batch, share
    return measures.contrast_scores(adapter, contrasts).log_odds


@pytest.mark.benchmark(group="llm contrast scoring (24 prompts x 2 continuations of 24 tokens)")
def test_one_at_a_time(benchmark, scoring):
    adapter, contrasts = scoring
    got = benchmark(_score, adapter, contrasts, 1, False)
    # float32 sums over 24 tokens in another order: log-odds of about 10 nats agree to 1e-3
    assert got == pytest.approx(_score(adapter, contrasts, 16, True), abs=1e-3)


@pytest.mark.benchmark(group="llm contrast scoring (24 prompts x 2 continuations of 24 tokens)")
def test_batched_shared_prefix(benchmark, scoring):
    adapter, contrasts = scoring
    got = benchmark(_score, adapter, contrasts, 16, True)
    assert np.all(np.isfinite(got)) and got.shape == (N_PROMPTS,)
