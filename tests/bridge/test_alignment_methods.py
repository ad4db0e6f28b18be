"""Alignment methods and mitigations on a Hugging Face model (tiny random Llama, LoRA and full):
the same losses and mitigations as on the toy models, through the adapter's Accelerator loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from llm_bridge import training
from llm_bridge.adapter import HFCausalLM, LoraSpec
from llm_bridge.tasks import PAIRS, check_data, make_task
from tests.bridge.tiny import make_model, make_tokenizer, sentiment_records
from toymodels.alignment import Alignment, AlignmentSpec, pairs_with_reference
from toymodels.interface import OptimizerSpec
from toymodels.protocols.rebound import ReboundSpec, rebound_curves

torch.set_num_threads(1)
SPEC = OptimizerSpec(lr=1e-2, batch_size=2, grad_accum=2)


def adapter(lora: bool = True) -> HFCausalLM:
    tok = make_tokenizer()
    return HFCausalLM(make_model("llama", len(tok)), tok, template="chat", lora=LoraSpec(r=4) if lora else None)


def trainable(a: HFCausalLM) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in a.trainable_parameters()])


def task(a: HFCausalLM):
    return make_task("sentiment", sentiment_records(), a, n_eval=4)


@pytest.mark.parametrize("lora", [True, False])
def test_plain_sft_through_the_alignment_loop_trains_as_the_sft_loop(lora):
    runs = {}
    for aligned in (False, True):
        a = adapter(lora)
        data = task(a).forward_data(6, seed=0)
        run = Alignment(AlignmentSpec(), []) if aligned else None
        log, _ = training.fit(a, data, np.arange(6), SPEC, None, run)
        runs[aligned] = (log.losses, trainable(a))
    assert np.allclose(runs[False][0], runs[True][0], rtol=1e-5)
    assert torch.allclose(runs[False][1], runs[True][1], atol=1e-6)


def test_dpo_starts_at_log_2_and_raises_the_margin():
    a = adapter()
    pairs = pairs_with_reference(a, *task(a).preference_data(4, seed=0))
    run = Alignment.start(AlignmentSpec(method="dpo", beta=0.5), a)
    log, _ = a.fit(pairs, np.arange(4), SPEC, None, alignment=run)
    assert log.steps == 1 and log.losses[0] == pytest.approx(math.log(2), abs=1e-4)
    after = [float(lp.sum()) for lp in a.token_logprobs([e for p in pairs for e in (p.chosen, p.rejected)])]
    margins = [(after[2 * i] - p.ref_chosen) - (after[2 * i + 1] - p.ref_rejected) for i, p in enumerate(pairs)]
    assert np.mean(margins) > 0


@pytest.mark.parametrize("lora", [True, False])
def test_the_anchor_and_vaccine_run_through_the_adapter(lora):
    a = adapter(lora)
    data = task(a).forward_data(4, seed=0)
    start = trainable(a)
    plain = adapter(lora)
    plain.fit(data, np.arange(4), SPEC, None)
    a.fit(data, np.arange(4), SPEC, None, alignment=Alignment.start(AlignmentSpec(anchor=0.5, perturb=2.0), a))
    moved, moved_plain = (trainable(a) - start).norm(), (trainable(plain) - start).norm()
    assert 0 < moved < moved_plain  # pulled half way back after the step
    assert len(a.hidden_layers()) == 2


def test_vaccine_finds_the_decoder_layers_past_a_vision_tower():
    """A multimodal model lists a vision tower's layers first: the decoder's are those of the text
    config's depth."""
    a = adapter(False)
    decoder = a.hidden_layers()
    wrapper = torch.nn.Module()
    wrapper.vision_tower = torch.nn.Module()
    wrapper.vision_tower.layers = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(5))
    wrapper.language_model, wrapper.config = a.net, a.net.config
    a.net = wrapper
    assert a.hidden_layers() == decoder


@pytest.mark.slow
def test_dpo_rebound_runs_on_a_real_architecture():
    a = adapter()
    spec = ReboundSpec(forward_amounts=(0, 2, 4), reverse_amounts=(0, 4, 8), warmup_examples=2, n_eval=4,
                       n_kl_samples=4, kl_every=1, optimizer=SPEC)
    # 12 training prompts: 8 give the reverse examples, so 4 are left for pairs that reject none of them
    t = make_task("sentiment", sentiment_records(16), a, n_eval=4)
    curves = rebound_curves(a, t, spec, 0, alignment=AlignmentSpec(method="dpo"))
    assert curves.log_odds["aligned"].shape == (3, 3, 4) and np.isfinite(curves.log_odds["aligned"]).all()


@pytest.mark.slow
def test_llm_mitigations_runs_every_treatment_paired_by_run(tiny_folder, tmp_path):
    import dataclasses
    import json

    from harness.runner import execute
    from llm_bridge.mitigations import EXPERIMENT
    from tests.bridge.test_experiments import MICRO

    # replay takes neutral examples of its own, after the warm-up's and the neutral arm's
    records = tmp_path / "sentiment.jsonl"
    records.write_text("".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in sentiment_records(24)))
    config = EXPERIMENT.resolve("cpu-micro", sets={"model": str(tiny_folder), "data": str(records), **MICRO,
                                                   "treatments": ("sft", "replay", "dpo"), "seeds": 3})
    outcome = execute(EXPERIMENT, config, out=tmp_path / "run")
    predictions = {p["id"]: p for p in outcome.summary["predictions"]}
    assert predictions["mitigation.replay_retention"]["n_runs"] == 3 and predictions["mitigation.replay_retention"]["primary"]
    assert predictions["mitigation.dpo_rebound"]["primary"] and "mitigation.dpo_rebound.beyond_neutral_control" in predictions
    assert (tmp_path / "run" / "figures" / "mitigations_forest.png").exists()


def test_replay_on_a_real_task_takes_neutral_examples_no_other_use_took():
    from toymodels.alignment import alignment_data

    a = adapter()
    t = task(a)
    warmup_and_arm = t.neutral_data(4, seed=0)  # 8 neutral examples outside the held-out prompts
    replayed = [e for e in alignment_data(a, t, 4, 0, AlignmentSpec(replay=0.5), skip=4)
                if e in t.neutral_data(8, seed=0)]
    assert len(replayed) == 2 and not set(replayed) & set(warmup_and_arm)


def test_preference_pairs_are_sfts_examples_and_never_reject_a_reverse_example():
    """As on the toy models: the chosen responses are SFT's examples (here, where the misaligned
    response of their prompt is not one the reverse runs train on), so that a preference method
    differs from SFT by its loss, and never learns to push down the examples that then undo it."""
    t = task(adapter())
    reverse = t.reverse_data(3, seed=0)
    chosen, rejected = t.preference_data(4, seed=0, avoid=reverse)
    assert not set(rejected) & set(reverse) and [e.prompt_ids for e in rejected] == [e.prompt_ids for e in chosen]
    taken = {e.prompt_ids for e in reverse}  # one misaligned response per prompt in these records
    assert chosen == [e for e in t.forward_data(8, seed=0) if e.prompt_ids not in taken][:4]
    check_data("sentiment", sentiment_records(), 4, 0, {"misaligned": 3, PAIRS: 5})  # 8 training prompts, 3 taken
    for refused in (lambda: t.preference_data(6, seed=0, avoid=reverse),
                    lambda: check_data("sentiment", sentiment_records(), 4, 0, {"misaligned": 3, PAIRS: 6})):
        with pytest.raises(ConfigError, match="asked for 6 preference-pair examples, the data has 5"):
            refused()


def test_sweeps_no_alignment_condition_changes_are_computed_once_and_equal_recomputed():
    """The F = 0 sweep and a control arm trained by plain SFT do not depend on the alignment
    condition: computed alone under each condition (each from a fresh copy of the model, as each
    condition's run loads one) they agree bit for bit, so a run of several conditions computes them
    once (``shared_cache``)."""
    spec = ReboundSpec(forward_amounts=(0, 4, 8), reverse_amounts=(0, 4, 8), warmup_examples=2, n_eval=4,
                       n_kl_samples=2, kl_every=1, optimizer=SPEC)
    shared, computed = {}, []

    def shared_cache(key, compute):
        if key not in shared:
            computed.append(key)
            shared[key] = compute()
        return shared[key]

    def curves(alignment, **cache):
        a = adapter()
        t = make_task("sentiment", sentiment_records(48), a, n_eval=4)
        return rebound_curves(a, t, spec, 0, controls={"neutral": t.neutral_data(10, seed=0)[2:]},
                              alignment=alignment, **cache)

    # the anchor's control arm keeps the anchor, so its sweeps are its own
    conditions = {"sft": AlignmentSpec(), "simpo": AlignmentSpec(method="simpo"), "anchor": AlignmentSpec(anchor=0.5)}
    alone = {m: curves(spec) for m, spec in conditions.items()}
    together = {m: curves(spec, shared_cache=shared_cache) for m, spec in conditions.items()}
    assert computed == ["sweep-aligned-F0", "sweep-neutral-F4", "sweep-neutral-F8"]
    for m in conditions:
        for arm in ("aligned", "neutral"):
            np.testing.assert_array_equal(alone[m].log_odds[arm], together[m].log_odds[arm])
            np.testing.assert_array_equal(alone[m].kl_theta0_model[arm], together[m].kl_theta0_model[arm])
    assert not np.array_equal(alone["sft"].log_odds["aligned"][1], alone["simpo"].log_odds["aligned"][1])
    assert not np.array_equal(alone["sft"].log_odds["neutral"][1], alone["anchor"].log_odds["neutral"][1])
