"""Instrument tests of the measures: exact score vs Monte Carlo, identities, curve readings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.errors import ConfigError
from toymodels import measures
from toymodels.corpus import TASKS, Corpus
from toymodels.finetuning import sample_responses
from toymodels.interface import Contrast, Example
from toymodels.tasks import ToyTask
from toymodels.train import PretrainSpec, pretrain

MC_SAMPLES = 20_000
MC_SEED = 1234


@pytest.fixture(scope="module")
def trained(toy_cache):
    return pretrain(PretrainSpec(size="50k", n_pretrain=2000, seed=0)).model()


@pytest.mark.parametrize("task_name", TASKS)
def test_exact_score_matches_monte_carlo(trained, task_name):
    """P(aligned | prompt) from log-probabilities vs the aligned fraction among 20,000 first
    tokens sampled at temperature 1 (seed 1234), restricted to the contrast set: within 4 SE."""
    task = ToyTask(Corpus(), task_name)
    prompt = task.eval_prompts(1, seed=0)[0]
    exact = float(measures.contrast_scores(trained, task.contrasts([prompt])).p[0])
    firsts = [r[0] for r in trained.generate_batch([prompt] * MC_SAMPLES, 1, 1.0, MC_SEED)]
    labels = [task.corpus.is_aligned(task_name, [t]) for t in firsts]
    in_set = np.array([x for x in labels if x is not None], float)
    se = math.sqrt(exact * (1 - exact) / in_set.size)
    print(f"{task_name}: exact {exact:.4f}, sampled {in_set.mean():.4f} over {in_set.size} "
          f"of {MC_SAMPLES} samples in the contrast set, SE {se:.4f}")
    assert abs(in_set.mean() - exact) < 4 * se


def test_log_odds_and_probability_are_consistent(trained):
    task = ToyTask(Corpus(), "sentiment")
    scores = measures.contrast_scores(trained, task.contrasts(task.eval_prompts(50, seed=0)))
    p = scores.p
    np.testing.assert_allclose(scores.log_odds, np.log(p / (1 - p)), rtol=1e-9, atol=1e-9)
    assert np.all((p > 0) & (p < 1))
    assert scores.mean_prob == pytest.approx(p.mean())


class _FixedLogprobs:
    """A stand-in model whose response log-probability is set by the response's first token."""

    def __init__(self, logprob_of: dict[int, float]) -> None:
        self.logprob_of = logprob_of

    def token_logprobs(self, examples):
        return [np.array([self.logprob_of[e.response_ids[0]]]) for e in examples]


@pytest.mark.parametrize("margin", [0.5, 20.0, 45.0, 120.0, 800.0])
def test_log_odds_are_exact_at_large_margins(margin):
    """log-odds = log P(aligned) - log P(misaligned) exactly, also where P(aligned) rounds to 1
    (margins above about 36 nats); the probability summaries follow without cancellation."""
    model = _FixedLogprobs({1: -0.25, 2: -0.25 - margin, 3: -0.25 - margin})
    contrast = Contrast((0,), aligned=((1,),), misaligned=((2,), (3,)))
    scores = measures.contrast_scores(model, [contrast])
    expected = margin - math.log(2)  # two misaligned continuations share the misaligned mass
    print(f"margin {margin}: log-odds {scores.log_odds[0]!r}, expected {expected!r}")
    assert scores.log_odds[0] == pytest.approx(expected, rel=1e-12)
    assert scores.log_p[0] == pytest.approx(-math.log1p(math.exp(-expected)), rel=1e-12)
    assert scores.p[0] == pytest.approx(1 / (1 + math.exp(-expected)), rel=1e-12)


def test_kl_of_a_model_to_itself_is_zero_and_loss_identities(trained):
    task = ToyTask(Corpus(), "safety")
    samples = sample_responses(trained, task.eval_prompts(32, seed=1), task.max_new_tokens, 1.0, seed=3)
    ref = trained.token_logprobs(samples)
    assert measures.kl_reference_model(ref, trained, samples) == pytest.approx(0.0, abs=1e-12)
    seq = np.array([x.sum() for x in ref])
    assert measures.kl_data_model(trained, samples, seq) == pytest.approx(0.0, abs=1e-12)
    loss = measures.mean_loss(trained, samples)
    assert measures.kl_excess(trained, samples, loss) == pytest.approx(0.0, abs=1e-12)
    n_tokens = sum(len(x) for x in ref)
    assert loss == pytest.approx(-sum(x.sum() for x in ref) / n_tokens)


def test_batched_scoring_equals_one_pass_per_pair(trained):
    """The probe's fast path (distinct input rows run once, sums and log-sum-exp vectorised, the set
    laid out once) against the plain computation: every (prompt, continuation) pair through the
    network on its own, summed, and a log-sum-exp per prompt. Equal within the float32 rounding of
    forward passes over batches of different shapes (1e-5 nats); the summing is exact (1e-12)."""
    import torch
    from scipy.special import logsumexp

    from toymodels.train import encode

    task = ToyTask(Corpus(), "sentiment")
    contrasts = task.contrasts(task.eval_prompts(40, seed=2))
    layout = measures.ContrastSet.of(contrasts)
    fast = measures.contrast_scores(trained, layout).log_odds
    again = measures.contrast_scores(trained, layout).log_odds  # the cached layout, scored again
    plain = []
    for c in contrasts:
        sums = []
        for response in (*c.aligned, *c.misaligned):
            x, y = encode([Example(c.prompt_ids, response)])
            with torch.no_grad():
                logp = torch.log_softmax(trained.net(x).float(), -1).double()
            keep = y[0] >= 0
            sums.append(float(logp[0, keep].gather(1, y[0, keep][:, None]).sum()))
        n_a = len(c.aligned)
        plain.append(logsumexp(sums[:n_a]) - logsumexp(sums[n_a:]))
    print(f"max |fast - plain| = {np.max(np.abs(fast - plain)):.2e} nats over {len(contrasts)} prompts")
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(fast, again)
    samples = sample_responses(trained, task.eval_prompts(16, seed=5), task.max_new_tokens, 1.0, seed=4)
    np.testing.assert_allclose(measures.sequence_logprobs(trained, samples),
                               [x.sum() for x in trained.token_logprobs(samples)], rtol=0, atol=1e-12)


def test_first_crossing_interpolates_and_censors():
    amounts = [0, 10, 20, 40]
    assert measures.r_back(amounts, [1.0, 0.8, 0.4, 0.1], 0.6) == pytest.approx(15.0)
    assert math.isnan(measures.r_back(amounts, [1.0, 0.9, 0.8, 0.7], 0.6))
    assert measures.r_back(amounts, [0.5, 0.4, 0.3, 0.2], 0.6) == 0.0
    with pytest.raises(ConfigError, match="strictly increasing"):
        measures.r_back([0, 20, 10], [1, 0.5, 0.1], 0.6)


def test_rates_and_slopes():
    amounts = [0, 10, 20, 40, 80]
    scores = [1.0, 0.8, 0.5, 0.3, 0.2]
    # the initial rate is a least-squares slope over a window of amounts, NaN with < 3 points in it
    assert measures.initial_decay_rate(amounts, scores, (10, 40)) == pytest.approx(
        -np.polyfit([10, 20, 40], [0.8, 0.5, 0.3], 1)[0])
    assert math.isnan(measures.initial_decay_rate(amounts, scores, (10, 20)))
    assert measures.late_slope(amounts, scores, 3) == pytest.approx(np.polyfit([20, 40, 80], [0.5, 0.3, 0.2], 1)[0])


def _decay(shape: str, slowdown: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A curve from 4 to below S0 = 0 on an equal-step grid, by dy/dR = -g(y); after crossing 0 the
    rate is cut by the share ``slowdown``."""
    g = {"exponential": lambda y: 0.0025 * (y + 6), "power": lambda y: 0.0005 * (y + 6) ** 2,
         "linear": lambda y: 0.01 + 0 * y, "accelerating": lambda y: 0.024 - 0.002 * (y + 6),
         # sigmoid rate laws, as fitted to dense toy curves: inflection at S0 and beside it
         "sigmoid": lambda y: 0.03 / (1 + np.exp(-0.6 * y)), "sigmoid off S0": lambda y: 0.03 / (1 + np.exp(-0.6 * (y - 1)))}[shape]
    amounts, y, ys = np.arange(0, 1281, 16.0), 4.0, []
    for _ in amounts:
        ys.append(y)
        for _ in range(160):  # Euler sub-steps of 0.1 example
            y -= 0.1 * g(y) * (1 - slowdown if y <= 0 else 1)
    return amounts, np.array(ys)


@pytest.mark.parametrize("shape", ["exponential", "power", "linear", "accelerating", "sigmoid", "sigmoid off S0"])
def test_rate_discontinuity_reads_zero_on_smooth_curves_and_the_planted_slowdown(shape):
    """Whatever the smooth shape (a rate linear in the score, or curved: power law, sigmoid with its
    inflection at S0 or beside it), no feature at S0 reads ~0; a rate cut by half at S0 reads about
    half the rate there."""
    amounts, smooth = _decay(shape)
    _, slowed = _decay(shape, slowdown=0.5)
    rate_at_s0 = {"exponential": 0.015, "power": 0.018, "linear": 0.01, "accelerating": 0.012, "sigmoid": 0.015,
                  "sigmoid off S0": 0.03 / (1 + np.exp(0.6))}[shape]
    null = measures.rate_discontinuity(amounts, smooth, 0.0, 2.0)
    planted = measures.rate_discontinuity(amounts, slowed, 0.0, 2.0)
    print(f"{shape}: null {null:.5f}, planted {planted:.5f}, half the rate at S0 {rate_at_s0 / 2:.5f}")
    assert abs(null) < 0.01 * rate_at_s0
    assert planted == pytest.approx(rate_at_s0 / 2, rel=0.1)


def test_rate_discontinuity_is_censored_without_enough_points_each_side():
    amounts, y = _decay("exponential")
    assert math.isnan(measures.rate_discontinuity(amounts[:8], y[:8], 0.0, 2.0))  # never crosses
    assert math.isnan(measures.rate_discontinuity(amounts, y, 0.0, 0.01))  # too narrow a band


def test_kl_readings_can_always_be_reached_or_are_counted_as_censored():
    amounts = [0, 10, 20, 40]
    out = measures.kl_readings(amounts, [0.4, float("nan"), 0.1, 0.3], 0.5)
    assert out["kl_post_alignment_nats"] == 0.4 and out["kl_min_nats"] == 0.1 and out["kl_min_amount"] == 20
    assert out["kl_recovery_amount"] == pytest.approx(10 * 0.2 / 0.3 * 2)  # 0.4 -> 0.2 between 0 and 20
    assert math.isnan(measures.kl_readings(amounts, [0.4, 0.39, 0.38, 0.37], 0.5)["kl_recovery_amount"])
    assert all(math.isnan(v) for v in measures.kl_readings(amounts, [float("nan")] * 4, 0.5).values())


def test_empty_inputs_are_config_errors(trained):
    with pytest.raises(ConfigError, match="empty"):
        measures.mean_loss(trained, [])
    with pytest.raises(ConfigError, match="empty"):
        measures.contrast_scores(trained, [])


def test_tempered_scores_match_the_sampling_distribution(trained):
    """Generator entropy at temperature T: token log-probs under softmax(logits / T), the
    distribution generate_batch samples from; the data entropy estimate falls as T falls."""
    task = ToyTask(Corpus(), "format")
    prompts = task.eval_prompts(64, seed=2)
    sharp = sample_responses(trained, prompts, task.max_new_tokens, 0.05, seed=5)
    flat = sample_responses(trained, prompts, task.max_new_tokens, 1.0, seed=5)
    h_sharp = measures.mean_loss(trained, sharp, temperature=0.05)
    h_flat = measures.mean_loss(trained, flat, temperature=1.0)
    print(f"entropy estimates: T=0.05 {h_sharp:.4f}, T=1 {h_flat:.4f} nats/token")
    assert 0 <= h_sharp < h_flat
    lp = trained.token_logprobs(sharp[:1], temperature=0.05)[0]
    assert np.all(lp <= 0)
    assert measures.mean_loss(trained, flat, temperature=1.0) == measures.mean_loss(trained, flat)
