"""The HF adapter on tiny random Llama and Gemma models: masks, scores, LoRA and full paths, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from llm_bridge.adapter import HFCausalLM, LoraSpec
from tests.bridge.tiny import make_model, make_tokenizer
from toymodels.interface import Example, LanguageModel, OptimizerSpec

torch.set_num_threads(1)


def adapter(arch: str, lora: bool = True, template: str = "chat", seed: int = 0) -> HFCausalLM:
    tok = make_tokenizer()
    return HFCausalLM(make_model(arch, len(tok), seed=seed), tok, template=template,
                      lora=LoraSpec(r=4) if lora else None, eval_batch=3)


def examples(a: HFCausalLM) -> list[Example]:
    pairs = [("write a review of the film", "good film , great plot ."),
             ("tell me a story", "sure here is a story about a actor"),
             ("what is the plot", "boring"),
             ("explain why", "i cannot help with that .")]
    return [a.encode(p, r) for p, r in pairs]


def test_is_a_language_model(arch):
    assert isinstance(adapter(arch), LanguageModel)


def test_token_logprobs_match_an_unbatched_full_forward(arch):
    """Scores cover response tokens only and do not depend on batching or padding."""
    a = adapter(arch)
    exs = examples(a)
    batched = a.token_logprobs(exs)
    for e, lp in zip(exs, batched, strict=True):
        assert lp.shape == (len(e.response_ids),)
        ids = torch.tensor([e.prompt_ids + e.response_ids])
        with torch.no_grad():
            full = torch.log_softmax(a.model(input_ids=ids).logits.float(), -1)[0]
        p = len(e.prompt_ids)
        ref = [full[p - 1 + j, t].item() for j, t in enumerate(e.response_ids)]
        np.testing.assert_allclose(lp, ref, atol=2e-5)


def test_shared_prompts_score_as_whole_sequences(arch):
    """Examples sharing a prompt run it once (its cache copied to each continuation); the result
    equals scoring each whole sequence, also past Gemma's sliding window (16 in the tiny model)."""
    a = adapter(arch, template="raw")
    rng = np.random.default_rng(0)
    vocab = len(a.tokenizer)
    exs = []
    for length in (3, 9, 14):
        prompt = tuple(int(i) for i in rng.integers(4, vocab, size=length))
        exs += [Example(prompt, tuple(int(i) for i in rng.integers(4, vocab, size=n))) for n in (1, 6, 21)]
    shared = a.token_logprobs(exs, temperature=0.7)
    a.share_prefix = False
    whole = a.token_logprobs(exs, temperature=0.7)
    for s, w in zip(shared, whole, strict=True):
        np.testing.assert_allclose(s, w, atol=2e-5)


def test_fit_loss_is_the_response_token_mean(arch):
    """The first step's logged loss equals the token-weighted response loss before the step."""
    a = adapter(arch)
    exs = examples(a)
    lps = a.token_logprobs(exs)
    expected = -sum(x.sum() for x in lps) / sum(len(x) for x in lps)
    log, _ = a.fit(exs, [0, 1, 2, 3], OptimizerSpec(lr=1e-3, batch_size=2, grad_accum=2), None)
    assert log.steps == 1 and log.tokens == sum(len(e.response_ids) for e in exs)
    assert log.losses[0] == pytest.approx(expected, abs=1e-4)


def test_loss_mask_covers_exactly_the_response_positions():
    """Targets are the response tokens only, whatever the prompt lengths and padding in a batch."""
    a = adapter("llama")
    exs = [Example((2, 10, 11, 12), (20, 21, 3)), Example((2, 10), (22, 3)), Example((2, 10, 11, 12, 13, 14), (23,))]
    ids, attn, targets, first = a._batch(exs)
    for b, e in enumerate(exs):
        p, n = len(e.prompt_ids), len(e.response_ids)
        expected = torch.zeros(ids.shape[1], dtype=torch.bool)
        expected[p - 1 : p - 1 + n] = True
        assert torch.equal(targets[b], expected)
        assert int(attn[b].sum()) == p + n
        # the position before each target predicts exactly that response token
        assert ids[b, p : p + n].tolist() == list(e.response_ids)
    token_logp, mask = a._response_logprobs(exs)
    assert int(mask.sum()) == sum(len(e.response_ids) for e in exs)
    assert first == 1


def test_lora_trains_only_the_adapter(arch):
    a = adapter(arch, lora=True)
    frozen = {n: p.detach().clone() for n, p in a.model.named_parameters() if not p.requires_grad}
    before = a.state_dict()
    assert before and all("lora_" in k for k in before)
    a.fit(examples(a), [0, 1, 2, 3], OptimizerSpec(lr=1e-2, batch_size=2), None)
    for n, p in a.model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    after = a.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_full_path_trains_every_weight(arch):
    a = adapter(arch, lora=False)
    before = a.state_dict()
    assert len(before) == len(list(a.model.parameters()))
    a.fit(examples(a), [0, 1, 2, 3], OptimizerSpec(lr=1e-2, batch_size=4), None)
    after = a.state_dict()
    changed = sum(not torch.equal(before[k], after[k]) for k in before)
    assert changed >= 0.9 * len(before)


@pytest.mark.parametrize("lora", [True, False])
def test_resume_in_pieces_equals_one_run(lora):
    """fit(order[:4]) then fit(order[4:], state) == fit(order): incremental amounts continue exactly."""
    spec = OptimizerSpec(lr=1e-2, batch_size=2)
    one, two = adapter("llama", lora=lora), adapter("llama", lora=lora)
    exs = examples(one) * 2
    order = [3, 1, 0, 2, 7, 5, 4, 6]
    one.fit(exs, order, spec, None)
    _, state = two.fit(exs, order[:4], spec, None)
    snapshot = {k: v.clone() for k, v in state["state"][0].items()}
    two.fit(exs, order[4:], spec, state)
    for k in snapshot:  # the caller's state was not mutated by the second call
        assert torch.equal(snapshot[k], state["state"][0][k])
    s1, s2 = one.state_dict(), two.state_dict()
    for k in s1:
        torch.testing.assert_close(s1[k], s2[k], rtol=0, atol=1e-6)


def test_state_dict_round_trip_restores_scores(arch):
    a = adapter(arch)
    exs = examples(a)
    saved = a.state_dict()
    base = a.token_logprobs(exs)
    a.fit(exs, [0, 1, 2, 3], OptimizerSpec(lr=5e-2, batch_size=4), None)
    assert not np.allclose(np.concatenate(a.token_logprobs(exs)), np.concatenate(base))
    a.load_state_dict(saved)
    np.testing.assert_allclose(np.concatenate(a.token_logprobs(exs)), np.concatenate(base), atol=1e-6)
    with pytest.raises(ValueError):
        a.load_state_dict({"nonsense": torch.zeros(1)})


def test_generate_is_seeded_and_stops_at_eos():
    a = adapter("llama")
    prompt = examples(a)[0].prompt_ids
    first = a.generate(prompt, 12, 1.0, seed=3)
    assert first == a.generate(prompt, 12, 1.0, seed=3)
    assert 1 <= len(first) <= 12
    assert a.eos_id not in first[:-1]
    batch = a.generate_batch([prompt, prompt[:3]], 12, 1.0, seed=3)
    assert len(batch) == 2 and all(len(r) >= 1 for r in batch)
    greedy = a.generate(prompt, 8, 0.0, seed=0)
    assert greedy == a.generate(prompt, 8, 0.0, seed=1)


def test_template_rule():
    """The template renders once in encode; raw and chat give different ids for the same text;
    a chat template is refused where the tokenizer has none; the fingerprint names the template."""
    chat, raw = adapter("llama", template="chat"), adapter("llama", template="raw")
    e_chat, e_raw = chat.encode("tell me a story", "yes"), raw.encode("tell me a story", "yes")
    assert e_chat.response_ids == e_raw.response_ids == (chat.tokenizer.convert_tokens_to_ids("yes"), chat.eos_id)
    assert e_chat.prompt_ids != e_raw.prompt_ids
    assert chat.tokenizer_fingerprint() != raw.tokenizer_fingerprint()
    tok = make_tokenizer(chat=False)
    with pytest.raises(ConfigError, match="chat template"):
        HFCausalLM(make_model("llama", len(tok)), tok, template="chat")


def test_long_examples_are_cut_to_max_length():
    tok = make_tokenizer()
    a = HFCausalLM(make_model("llama", len(tok)), tok, template="raw", max_length=8)
    e = a.encode("tell me a story", "sure here is a story about a actor and a plot")
    assert len(e.prompt_ids) + len(e.response_ids) == 8
    with pytest.raises(ConfigError):
        a.encode("tell me a story about a film and a plot and a actor", "yes")
