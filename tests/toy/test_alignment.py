"""Alignment methods and mitigations (toymodels.alignment) on a tiny toy model: the losses against
hand values, plain SFT through the alignment path against the original path, the anchor, Vaccine's
perturbation, replay's share and the preference pairs' reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from toymodels.alignment import Alignment, AlignmentSpec, mix_replay, pairs_with_reference
from toymodels.corpus import Corpus, CorpusConfig
from toymodels.interface import Example, OptimizerSpec, Pair
from toymodels.model import model_config
from toymodels.tasks import ToyTask
from toymodels.train import ToyLM

CORPUS = Corpus(CorpusConfig())
TASK = ToyTask(CORPUS, "sentiment")
OPT = OptimizerSpec(lr=1e-3, batch_size=4, grad_accum=2)


def tiny(seed: int = 0) -> ToyLM:
    return ToyLM(model_config("50k", CORPUS.vocab_size, CORPUS.seq_len), seed)


def weights(model: ToyLM) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.net.parameters()])


def test_plain_sft_through_the_alignment_path_trains_as_the_original_path():
    data = TASK.forward_data(24, seed=0)
    order = np.arange(24)
    original, aligned = tiny(), tiny()
    log_a, _ = original.fit(data, order, OPT, None)
    log_b, _ = aligned._fit_aligned(data, order, OPT, None, Alignment(AlignmentSpec(), []))
    assert log_a.steps == log_b.steps == 3 and log_a.tokens == log_b.tokens
    assert np.allclose(log_a.losses, log_b.losses, rtol=1e-5)
    assert torch.allclose(weights(original), weights(aligned), atol=1e-6)


def test_dpo_loss_is_log_2_per_pair_at_its_reference_and_simpo_matches_its_formula():
    model = tiny()
    pairs = pairs_with_reference(model, *TASK.preference_data(6, seed=1))
    model.net.train()
    dpo = Alignment(AlignmentSpec(method="dpo"), []).loss(pairs, model._train_logprobs, len(pairs))
    assert float(dpo.detach()) == pytest.approx(math.log(2), abs=1e-5)  # theta = theta0: every margin is 0
    spec = AlignmentSpec(method="simpo", beta=2.0, margin=0.5)
    simpo = float(Alignment(spec, []).loss(pairs, model._train_logprobs, len(pairs)).detach())
    per_token = [float(np.mean(lp)) for lp in model.token_logprobs([e for p in pairs for e in (p.chosen, p.rejected)])]
    margins = [2.0 * (per_token[2 * i] - per_token[2 * i + 1]) - 0.5 for i in range(len(pairs))]
    assert simpo == pytest.approx(np.mean([math.log1p(math.exp(-m)) for m in margins]), rel=1e-5)


def test_a_preference_pair_needs_one_prompt():
    chosen = TASK.forward_data(2, seed=0)
    with pytest.raises(ConfigError, match="same prompt"):
        pairs_with_reference(tiny(), chosen, TASK.reverse_data(2, seed=0))


def test_preference_pairs_answer_one_prompt_aligned_and_misaligned():
    chosen, rejected = TASK.preference_data(8, seed=3)
    assert chosen == TASK.forward_data(8, seed=3)
    assert [e.prompt_ids for e in rejected] == [e.prompt_ids for e in chosen]
    assert all(CORPUS.is_aligned("sentiment", e.response_ids) is False for e in rejected)


def test_no_rejected_response_is_an_avoided_example():
    chosen, rejected = TASK.preference_data(8, seed=3)
    again, redrawn = TASK.preference_data(8, seed=3, avoid=rejected[2:4])
    assert again == chosen and redrawn[:2] == rejected[:2] and redrawn[4:] == rejected[4:]
    assert not set(redrawn) & set(rejected[2:4])
    assert [e.prompt_ids for e in redrawn] == [e.prompt_ids for e in chosen]


def test_a_corpus_too_small_to_keep_pairs_and_reverse_data_apart_is_refused():
    task = ToyTask(Corpus(CorpusConfig(prompt_len=1, response_len=0)), "sentiment")  # two responses a prompt
    with pytest.raises(ConfigError, match="every misaligned response drawn"):
        task.preference_data(32, seed=0, avoid=task.reverse_data(64, seed=0))


def test_the_anchor_moves_every_weight_its_share_back_to_theta0():
    model = tiny()
    run = Alignment.start(AlignmentSpec(anchor=0.25), model)
    start = weights(model)
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(1.0)
    run.after_step(list(model.net.parameters()))
    assert torch.allclose(weights(model) - start, torch.full_like(start, 0.75), atol=1e-6)


def test_vaccine_perturbation_raises_the_loss_and_changes_the_gradient():
    data = TASK.forward_data(8, seed=2)
    grads, losses = {}, {}
    for rho in (0.0, 2.0):
        model = tiny()
        model.net.train()
        run = Alignment(AlignmentSpec(perturb=rho), [])
        n = sum(len(e.response_ids) for e in data)
        losses[rho] = run.backward(lambda m=model, a=run, n=n: a.loss(data, m._train_logprobs, n), model.hidden_layers)
        grads[rho] = torch.cat([p.grad.flatten() for p in model.net.parameters()])
    assert losses[2.0] > losses[0.0]
    assert not torch.allclose(grads[2.0], grads[0.0])


def test_replay_holds_its_share_in_every_prefix():
    aligned = [Example((1,), (2,))] * 40
    neutral = [Example((1,), (3,))] * 40
    mixed = mix_replay(aligned, neutral, 0.25)
    for n in range(1, 41):
        assert sum(e.response_ids == (3,) for e in mixed[:n]) == math.floor(0.25 * n)


@pytest.mark.parametrize("fields, message", [
    ({"method": "ppo"}, "unknown alignment method 'ppo'"),
    ({"replay": 1.0}, "replay must be in"),
    ({"anchor": -0.1}, "anchor must be in"),
    ({"perturb": -1.0}, "perturb must be >= 0"),
    ({"method": "dpo", "replay": 0.25}, "replay mixes"),
])
def test_bad_alignment_settings_are_one_line_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        AlignmentSpec(**fields)


def test_a_pair_holds_its_reference_log_probs():
    model = tiny()
    pairs = pairs_with_reference(model, *TASK.preference_data(3, seed=4))
    assert all(isinstance(p, Pair) for p in pairs)
    expected = model.sequence_logprobs([pairs[0].chosen, pairs[0].rejected])
    assert (pairs[0].ref_chosen, pairs[0].ref_rejected) == pytest.approx(tuple(expected))


@pytest.mark.parametrize("spec", [AlignmentSpec(method="dpo"), AlignmentSpec(anchor=0.05)], ids=["dpo", "anchor"])
def test_resistance_aligns_its_checkpoints_by_the_method_with_equal_steps(spec):
    from toymodels.protocols import resistance

    protocol = resistance.ResistanceSpec(n_align=64, n_queries=16, optimizer=OptimizerSpec(batch_size=16))
    plain = resistance.run_resistance(tiny(), TASK, protocol, seed=0)
    aligned = resistance.run_resistance(tiny(), TASK, protocol, seed=0, alignment=spec)
    assert aligned.checkpoint_steps == plain.checkpoint_steps == [0, 1, 2, 3]
    assert aligned.checkpoint_scores[0] == plain.checkpoint_scores[0]  # the same theta0
    assert aligned.checkpoint_scores[1:] != plain.checkpoint_scores[1:]


def test_replay_counts_exactly_at_shares_that_floats_round_down():
    mixed = mix_replay([Example((1,), (2,))] * 100, [Example((1,), (3,))] * 100, 0.29)
    assert sum(e.response_ids == (3,) for e in mixed) == 29


def test_only_the_vaccine_perturbation_asks_for_the_layers():
    def no_layers():
        raise AssertionError("asked for the layers")

    model = tiny()
    data = TASK.forward_data(4, seed=0)
    run = Alignment(AlignmentSpec(anchor=0.1), [])
    run.backward(lambda: run.loss(data, model._train_logprobs, 40), no_layers)


def test_an_sft_arm_of_a_preference_spec_takes_the_plain_path():
    import dataclasses

    simpo = AlignmentSpec(method="simpo", beta=2.0, margin=0.5)
    assert dataclasses.replace(simpo, method="sft").plain and not simpo.plain
