"""The KL-excess on a known generator: a tiny random Llama sampled at temperature T.

The generator's self-loss at T on its own samples estimates the entropy of the tempered
distribution p_T; checked against the exact entropy of p_T at every sampled position (the same
expectation, without the sampling noise of the token). A model's loss minus that entropy estimates
KL(p_T || model): about 0 for the tempered generator itself on fresh samples, and for another
model close to the exact KL and above 0. Tolerance: 4 standard errors over tokens (the per-token
terms -log p(x_t) - H_t are martingale differences, so uncorrelated).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llm_bridge.adapter import HFCausalLM
from tests.bridge.tiny import make_model, make_tokenizer
from toymodels import measures
from toymodels.interface import Example

torch.set_num_threads(1)
N_SAMPLES, MAX_NEW = 160, 6
TOLERANCE_SE = 4


def generator(seed: int) -> HFCausalLM:
    tok = make_tokenizer(chat=False)
    return HFCausalLM(make_model("llama", len(tok), seed=seed), tok, template="raw", eval_batch=64)


def sample(model: HFCausalLM, temperature: float, seed: int) -> list[Example]:
    """Prompts of one length (no padding), each answered once at ``temperature``."""
    words = ["film", "movie", "plot", "actor", "scene", "story", "review", "good"]
    prompts = [model.prompt_ids(f"the {words[i % 8]} is {words[(i // 8) % 8]}") for i in range(N_SAMPLES)]
    assert len({len(p) for p in prompts}) == 1
    return [Example(p, tuple(r)) for p, r in zip(prompts, model.generate_batch(prompts, MAX_NEW, temperature, seed),
                                                  strict=True)]


def tempered_logprobs(model: HFCausalLM, examples: list[Example], temperature: float) -> list[torch.Tensor]:
    """log p_T over the whole vocabulary at each response position, by a plain full forward."""
    out = []
    with torch.no_grad():
        for e in examples:
            logits = model.net(input_ids=torch.tensor([e.prompt_ids + e.response_ids])).logits[0].float()
            p = len(e.prompt_ids)
            out.append(torch.log_softmax(logits[p - 1 : p - 1 + len(e.response_ids)] / temperature, -1))
    return out


def mean_and_se(per_token: np.ndarray) -> tuple[float, float]:
    return float(per_token.mean()), float(per_token.std(ddof=1) / np.sqrt(per_token.size))


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_self_loss_at_t_estimates_the_tempered_entropy_and_the_excess_is_a_kl(temperature):
    gen, other = generator(0), generator(1)
    data, fresh = sample(gen, temperature, seed=1), sample(gen, temperature, seed=2)
    self_lp = np.concatenate(measures.token_logprobs_at(gen, data, temperature))
    full = tempered_logprobs(gen, data, temperature)
    # the scored tokens are those of the full tempered distribution
    picked = torch.cat([lp.gather(1, torch.tensor(e.response_ids)[:, None])[:, 0] for lp, e in zip(full, data, strict=True)])
    np.testing.assert_allclose(self_lp, picked.double().numpy(), atol=2e-5)
    exact_entropy = torch.cat([-(lp.exp() * lp).sum(-1) for lp in full]).double().numpy()
    entropy, se = mean_and_se(-self_lp - exact_entropy)
    h_hat = float(-self_lp.mean())
    print(f"T={temperature}: self-loss {h_hat:.4f}, exact H(p_T) {exact_entropy.mean():.4f} nats/token (se {se:.4f})")
    assert abs(entropy) < TOLERANCE_SE * se + 1e-9

    # the tempered generator on fresh samples: excess about 0
    fresh_lp = np.concatenate(gen.token_logprobs(fresh, temperature=temperature))
    excess_self = float(-fresh_lp.mean()) - h_hat
    se_self = np.hypot(mean_and_se(-fresh_lp)[1], mean_and_se(-self_lp)[1])
    # another model, scored as training scores it (T = 1): excess close to the exact KL, and > 0
    other_lp = np.concatenate(other.token_logprobs(fresh))
    p_t = tempered_logprobs(gen, fresh, temperature)
    q = tempered_logprobs(other, fresh, 1.0)
    exact_kl = torch.cat([(a.exp() * (a - b)).sum(-1) for a, b in zip(p_t, q, strict=True)]).double().numpy()
    excess_other = float(-other_lp.mean()) - h_hat
    se_other = np.hypot(mean_and_se(-other_lp)[1], mean_and_se(-self_lp)[1])
    print(f"excess: generator {excess_self:.4f} (se {se_self:.4f}), other model {excess_other:.4f} "
          f"(se {se_other:.4f}), exact KL(p_T||other) {exact_kl.mean():.4f}")
    assert abs(excess_self) < TOLERANCE_SE * se_self + 1e-9
    assert exact_kl.min() >= -1e-6 and exact_kl.mean() > 0
    assert abs(excess_other - exact_kl.mean()) < TOLERANCE_SE * se_other
    assert excess_other > 0
    if temperature == 0.05:  # the self-loss at T = 1, subtracted before, is no entropy of this data
        stale = float(-np.concatenate(gen.token_logprobs(data)).mean())
        assert float(-other_lp.mean()) - stale < 0 < excess_other
