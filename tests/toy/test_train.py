"""Instrument tests of training: response-only masking, determinism, resume, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from toymodels.corpus import Corpus
from toymodels.finetuning import check_amounts, epoch_order, fit_slices
from toymodels.interface import Example, OptimizerSpec
from toymodels.model import model_config
from toymodels.train import IGNORE, PretrainSpec, ToyLM, encode, pretrain

CORPUS = Corpus()


def _lm(seed: int = 0) -> ToyLM:
    return ToyLM(model_config("50k", CORPUS.vocab_size, CORPUS.seq_len), seed=seed)


def test_encode_keeps_response_targets_only():
    ex = Example((5, 6, 7), (8, 9, 2))
    inputs, targets = encode([ex], "response")
    assert inputs.tolist() == [[5, 6, 7, 8, 9]]
    # position t predicts token t+1: the last prompt token predicts the first response token
    assert targets.tolist() == [[IGNORE, IGNORE, 8, 9, 2]]
    _, all_targets = encode([ex], "all")
    assert all_targets.tolist() == [[6, 7, 8, 9, 2]]


def test_padding_is_off_the_loss():
    short, long = Example((5, 6), (8, 2)), Example((5, 6, 7, 7), (8, 9, 9, 2))
    inputs, targets = encode([short, long])
    assert (targets[0] != IGNORE).sum() == 2 and (targets[1] != IGNORE).sum() == 4
    assert inputs.shape == targets.shape


def test_token_logprobs_cover_response_tokens_and_ignore_the_prompt():
    """Response-only masking, checked against a direct computation; prompt edits after the
    response cannot leak in, and the response log-probs depend on the prompt only as context."""
    lm = _lm()
    examples = CORPUS.task_examples("sentiment", 4, True, seed=0)
    lps = lm.token_logprobs(examples)
    assert [len(x) for x in lps] == [len(e.response_ids) for e in examples]
    ex = examples[0]
    seq = torch.tensor([ex.prompt_ids + ex.response_ids])
    with torch.no_grad():
        logp = torch.log_softmax(lm.net(seq[:, :-1]), -1)[0]
    start = len(ex.prompt_ids) - 1
    direct = [float(logp[start + i, t]) for i, t in enumerate(ex.response_ids)]
    np.testing.assert_allclose(lps[0], direct, rtol=1e-5, atol=1e-6)


def test_fit_loss_is_the_mean_over_response_tokens():
    lm = _lm()
    examples = CORPUS.task_examples("safety", 8, True, seed=0)
    expected = -np.concatenate(lm.token_logprobs(examples)).mean()
    log, _ = lm.fit(examples, np.arange(8), OptimizerSpec(batch_size=8, lr=1e-12), None)
    assert log.steps == 1 and log.tokens == 8 * len(examples[0].response_ids)
    assert log.losses[0] == pytest.approx(expected, rel=1e-5)
    # the same with a direct masked cross-entropy
    inputs, targets = encode(examples)
    with torch.no_grad():
        direct = F.cross_entropy(_lm().net(inputs).transpose(1, 2), targets, ignore_index=IGNORE)
    assert float(direct) == pytest.approx(expected, rel=1e-5)


def test_grad_accumulation_equals_one_big_batch():
    examples = CORPUS.task_examples("format", 32, True, seed=0)
    a, b = _lm(), _lm()
    log_a, _ = a.fit(examples, np.arange(32), OptimizerSpec(batch_size=16, grad_accum=2), None)
    log_b, _ = b.fit(examples, np.arange(32), OptimizerSpec(batch_size=32), None)
    assert log_a.steps == log_b.steps == 1
    for (_, pa), (_, pb) in zip(a.net.named_parameters(), b.net.named_parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)


def test_incremental_fit_continues_exactly():
    """Two fit calls passing the optimizer state equal one call (incremental amounts)."""
    examples = CORPUS.task_examples("sentiment", 64, False, seed=2)
    order = epoch_order(64, seed=0)
    spec = OptimizerSpec(batch_size=16)
    a, b = _lm(), _lm()
    log_a, _ = a.fit(examples, order, spec, None)
    log_b1, state = b.fit(examples, order[:32], spec, None)
    log_b2, _ = b.fit(examples, order[32:], spec, state)
    assert log_a.losses == log_b1.losses + log_b2.losses
    for pa, pb in zip(a.net.parameters(), b.net.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_pretraining_is_deterministic_and_resumes_after_interruption(tmp_path):
    spec = PretrainSpec(size="50k", n_pretrain=640, checkpoint_fractions=(0.5, 1.0), seed=4)
    whole = pretrain(spec, use_cache=False)
    again = pretrain(spec, use_cache=False)
    assert whole.losses == again.losses
    ckpt = tmp_path / "pretrain.pt"
    partial = pretrain(spec, use_cache=False, checkpoint_path=str(ckpt), save_every_steps=2,
                       stop_after_steps=3)
    assert partial.steps == 3 and ckpt.exists()
    resumed = pretrain(spec, use_cache=False, checkpoint_path=str(ckpt), save_every_steps=2)
    assert resumed.steps == whole.steps == 10
    assert resumed.losses == whole.losses
    for f in spec.checkpoint_fractions:
        for k, v in whole.states[f]["model"].items():
            assert torch.equal(v, resumed.states[f]["model"][k]), k


def test_pretrain_cache_returns_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICITY_CACHE", str(tmp_path))
    spec = PretrainSpec(size="50k", n_pretrain=128, seed=1)
    first = pretrain(spec)
    second = pretrain(spec)
    assert not first.from_cache and second.from_cache
    for k, v in first.states[1.0]["model"].items():
        assert torch.equal(v, second.states[1.0]["model"][k])


def test_fit_slices_cuts_at_fractions():
    examples = CORPUS.task_examples("sentiment", 64, True, seed=0)
    res = fit_slices(_lm(), examples, epoch_order(64, 0), OptimizerSpec(batch_size=8), (0.25, 0.5, 1.0))
    assert res.steps_at == [2, 4, 8] and res.boundaries == [16, 32, 64] and res.log.steps == 8


@pytest.mark.parametrize("fractions", [(0.0, 0.5), (0.5, 1.5), (-0.1,), (), (0.5, 0.25)])
def test_checkpoint_fractions_outside_0_1_are_rejected(fractions):
    with pytest.raises(ConfigError):
        PretrainSpec(checkpoint_fractions=fractions)


def test_amounts_must_increase():
    with pytest.raises(ConfigError, match="strictly increasing"):
        check_amounts((0, 100, 50), "reverse_amounts")
    with pytest.raises(ConfigError):
        check_amounts((), "forward_amounts")


def test_empty_dataset_is_rejected():
    with pytest.raises(ConfigError, match="empty dataset"):
        _lm().fit([], [], OptimizerSpec(), None)
    with pytest.raises(ConfigError, match="empty dataset"):
        epoch_order(0, seed=0)


def test_pretrain_cache_key_survives_the_settings_block():
    """Nesting the pre-training settings did not change the cache key, so existing caches stay valid."""
    assert PretrainSpec().cache_key() == "5bc879e059a6"
