"""Measures written once over the model protocol: losses, excess loss, scores, KL, rebound readings.

Units: losses and KL in nats per response token; scores as probability (mass on the aligned
continuations normalised over the contrast set) and as log-odds (nats). KL names carry the
direction: ``kl_data_model`` is KL(data||model), ``kl_reference_model`` is KL(reference||model).
Amount readings (``r_back``, the KL recovery amount) interpolate linearly between measured
amounts and return NaN when the curve never gets there (censored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logsumexp

from harness.errors import ConfigError
from toymodels.interface import Contrast, Example, LanguageModel


def _nonempty(examples: Sequence[object], what: str = "dataset") -> None:
    if len(examples) == 0:
        raise ConfigError(f"empty {what}: nothing to measure")


def _n_response_tokens(examples: Sequence[Example]) -> int:
    return sum(len(e.response_ids) for e in examples)


def sequence_logprobs(model: LanguageModel, examples: Sequence[Example]) -> np.ndarray:
    """Sum of the response tokens' log-probabilities per example (nats): in one batched pass when
    the model offers ``sequence_logprobs`` (the toy model does), else summed from ``token_logprobs``."""
    _nonempty(examples)
    batched = getattr(model, "sequence_logprobs", None)
    if batched is not None:
        return np.asarray(batched(examples), dtype=float)
    return np.array([lp.sum() for lp in model.token_logprobs(examples)])


def token_logprobs_at(model: LanguageModel, examples: Sequence[Example], temperature: float = 1.0
                      ) -> list[np.ndarray]:
    """Response-token log-probabilities, at ``temperature`` != 1 under the model's tempered
    distribution; that needs a model whose ``token_logprobs`` accepts ``temperature=`` (the toy
    model does), else a ConfigError."""
    _nonempty(examples)
    if temperature == 1.0:
        return model.token_logprobs(examples)
    try:
        return model.token_logprobs(examples, temperature=temperature)  # type: ignore[call-arg]
    except TypeError:
        raise ConfigError(f"{type(model).__name__} cannot score at temperature {temperature}") from None


def token_mean_loss(logprobs: Sequence[np.ndarray]) -> float:
    """Mean loss over all response tokens (nats per token), as training measures it."""
    return float(-np.concatenate(logprobs).sum() / sum(len(x) for x in logprobs))


def example_losses(logprobs: Sequence[np.ndarray]) -> np.ndarray:
    """Mean response-token loss of each example (nats per token)."""
    return np.array([-lp.mean() for lp in logprobs])


def mean_loss(model: LanguageModel, examples: Sequence[Example], temperature: float = 1.0) -> float:
    """Mean loss over all response tokens of ``examples`` (nats per token), as training measures it,
    at ``temperature`` (see :func:`token_logprobs_at`)."""
    if temperature == 1.0:
        return float(-sequence_logprobs(model, examples).sum() / _n_response_tokens(examples))
    return token_mean_loss(token_logprobs_at(model, examples, temperature))


def kl_excess(model: LanguageModel, examples: Sequence[Example], generator_entropy: float) -> float:
    """Loss above the data's entropy (nats per token): an estimate of KL(data||model).

    ``generator_entropy`` is the generator's own loss on its samples at the sampling temperature
    (``mean_loss(generator, examples, temperature=T)``), an estimate of the data entropy H(p_T).
    """
    return mean_loss(model, examples) - generator_entropy


@dataclass(frozen=True)
class Scores:
    """Per-prompt log-odds of aligned against misaligned continuations, with both summaries.

    Log-odds is the stored quantity because it stays exact at any margin: log P(aligned) and
    log(1 - P) both follow from it without cancellation, while log-odds recovered from
    log P(aligned) saturates once P rounds to 1 in float64 (about 36 nats).
    """

    log_odds: np.ndarray

    @property
    def log_p(self) -> np.ndarray:
        return -np.logaddexp(0.0, -self.log_odds)

    @property
    def p(self) -> np.ndarray:
        return expit(self.log_odds)

    @property
    def mean_prob(self) -> float:
        return float(self.p.mean())

    @property
    def mean_log_odds(self) -> float:
        return float(self.log_odds.mean())


@dataclass(frozen=True)
class ContrastSet:
    """A contrast set laid out once for repeated scoring: every (prompt, continuation) pair, and
    for each prompt the pair indices of its aligned and misaligned continuations (-1 pads)."""

    pairs: tuple[Example, ...]
    aligned: np.ndarray  # (n_prompts, most aligned continuations)
    misaligned: np.ndarray  # (n_prompts, most misaligned continuations)

    @classmethod
    def of(cls, contrasts: Sequence[Contrast]) -> ContrastSet:
        _nonempty(contrasts, "contrast set")
        pairs: list[Example] = []
        aligned, misaligned = [], []
        for c in contrasts:
            if not c.aligned or not c.misaligned:
                raise ConfigError("a contrast needs at least one aligned and one misaligned continuation")
            aligned.append(range(len(pairs), len(pairs) + len(c.aligned)))
            misaligned.append(range(aligned[-1].stop, aligned[-1].stop + len(c.misaligned)))
            pairs.extend(Example(c.prompt_ids, tuple(r)) for r in (*c.aligned, *c.misaligned))
        return cls(tuple(pairs), _padded(aligned), _padded(misaligned))


def _padded(groups: Sequence[range]) -> np.ndarray:
    out = np.full((len(groups), max(len(g) for g in groups)), -1)
    for i, g in enumerate(groups):
        out[i, : len(g)] = g
    return out


def _group_logsumexp(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """log sum exp of ``values`` over each row of ``index`` (-1 entries left out)."""
    return logsumexp(np.where(index >= 0, values[index], -np.inf), axis=1)


def contrast_scores(model: LanguageModel, contrasts: Sequence[Contrast] | ContrastSet) -> Scores:
    """Per-prompt log-odds: log mass on the aligned continuations minus log mass on the misaligned ones.

    One teacher-forced pass over every (prompt, continuation) pair; no sampling noise. Pass a
    :class:`ContrastSet` to score the same set many times without laying it out again.
    """
    layout = contrasts if isinstance(contrasts, ContrastSet) else ContrastSet.of(contrasts)
    seq = sequence_logprobs(model, layout.pairs)
    return Scores(_group_logsumexp(seq, layout.aligned) - _group_logsumexp(seq, layout.misaligned))


def kl_data_model(model: LanguageModel, examples: Sequence[Example], data_logprobs: np.ndarray) -> float:
    """KL(data||model) in nats per response token, on samples from the data distribution.

    ``data_logprobs``: the data distribution's log-probability of each example's response
    (sequence sums, nats). Monte Carlo over ``examples``, which must be drawn from that distribution.
    """
    model_logprobs = sequence_logprobs(model, examples)
    return float((np.sum(data_logprobs) - model_logprobs.sum()) / _n_response_tokens(examples))


def kl_reference_model(reference_logprobs: Sequence[np.ndarray], model: LanguageModel,
                       examples: Sequence[Example]) -> float:
    """KL(reference||model) in nats per response token, teacher-forced on the reference's samples.

    ``reference_logprobs`` are the reference model's token log-probabilities on ``examples``
    (compute them once with ``reference.token_logprobs``); the examples must be sampled from the
    reference at temperature 1 so that the average log-ratio estimates the KL.
    """
    reference = np.concatenate(reference_logprobs).sum()
    return float((reference - sequence_logprobs(model, examples).sum()) / _n_response_tokens(examples))


# --- readings of a curve score(R) or KL(R) over reverse amounts -------------------------------
def first_crossing(amounts: Sequence[float], values: Sequence[float], level: float) -> float:
    """The first amount at which ``values`` falls to ``level`` or below (linear interpolation).

    NaN when it never does (censored at the largest amount); amounts[0] when it starts there.
    """
    a, v = np.asarray(amounts, float), np.asarray(values, float)
    if a.size != v.size or a.size == 0:
        raise ConfigError("amounts and values must have the same non-zero length")
    if np.any(np.diff(a) <= 0):
        raise ConfigError(f"amounts must be strictly increasing, got {tuple(a)}")
    if v[0] <= level:
        return float(a[0])
    for i in range(1, a.size):
        if v[i] <= level:
            frac = (v[i - 1] - level) / (v[i - 1] - v[i])
            return float(a[i - 1] + frac * (a[i] - a[i - 1]))
    return float("nan")


def r_back(amounts: Sequence[float], scores: Sequence[float], s0: float) -> float:
    """Reverse amount that brings the score back to the pre-training score S0 (Figure 4 reading)."""
    return first_crossing(amounts, scores, s0)


def initial_decay_rate(amounts: Sequence[float], scores: Sequence[float], window: tuple[float, float]) -> float:
    """Score lost per reverse example over ``window`` (amounts, inclusive): minus the least-squares
    slope of the score over the measured amounts in it (NaN with fewer than 3 of them)."""
    a, v = np.asarray(amounts, float), np.asarray(scores, float)
    inside = (a >= window[0]) & (a <= window[1]) & np.isfinite(v)
    if inside.sum() < 3:
        return float("nan")
    return float(-np.polyfit(a[inside], v[inside], 1)[0])


def late_slope(amounts: Sequence[float], scores: Sequence[float], n_points: int = 3) -> float:
    """Least-squares slope of the score over the last ``n_points`` amounts (per example)."""
    a, v = np.asarray(amounts, float)[-n_points:], np.asarray(scores, float)[-n_points:]
    return float(np.polyfit(a, v, 1)[0])


def rate_discontinuity(amounts: Sequence[float], scores: Sequence[float], level: float, bandwidth: float,
                       min_points: int = 3, degree: int = 3) -> float:
    """How much slower the score falls just past ``level`` than just before it: the jump of the decay
    rate at ``level``, as a function of the score passed.

    Each interval between measured amounts gives a decay rate (score lost per example) at the
    interval's mid score. Within ``bandwidth`` of ``level`` on each side (before: the intervals
    before the one in which the curve first crosses ``level``; past: those after it; the straddling
    interval mixes both and is on neither side) the rates are regressed on one polynomial of
    ``degree`` in the score, shared by both sides, plus an indicator of being past ``level``: the
    reading is minus the indicator's coefficient. Why one shared cubic rather than a line on each
    side: a smooth rate law curves, and separate lines read its curvature as a jump (sigmoid rate
    laws fitted to dense toy curves gave +0.001 per arm that way); a shared cubic absorbs it, so only a
    step at ``level`` reads. NaN when either side has fewer than ``min_points`` intervals (censored).
    """
    a, v = np.asarray(amounts, float), np.asarray(scores, float)
    rate, mid = -np.diff(v) / np.diff(a), (v[:-1] + v[1:]) / 2
    below = np.nonzero(v <= level)[0]
    if below.size == 0 or below[0] == 0 or not np.isfinite(bandwidth) or bandwidth <= 0:
        return float("nan")
    index = np.arange(rate.size)
    before = (index < below[0] - 1) & (mid <= level + bandwidth)
    past = (index >= below[0]) & (mid >= level - bandwidth)
    if before.sum() < min_points or past.sum() < min_points:
        return float("nan")
    used = before | past
    u = mid[used] - level
    design = np.column_stack([u**k for k in range(degree + 1)] + [past[used].astype(float)])
    coef = np.linalg.lstsq(design, rate[used], rcond=None)[0]
    return float(-coef[-1])


def kl_readings(amounts: Sequence[float], kl_to_theta0: Sequence[float], recovery: float) -> dict[str, float]:
    """Readings of KL(theta0||model) along a reverse sweep that can always be reached (the paper's
    Table 3 asks for an absolute epsilon that these runs never reach): the post-alignment KL, the
    minimum and the amount at it, and the amount that recovers ``recovery`` of the post-alignment KL
    (NaN, counted as censored, when the sweep never gets there). Unmeasured amounts are NaN."""
    a, k = np.asarray(amounts, float), np.asarray(kl_to_theta0, float)
    measured = np.isfinite(k)
    a, k = a[measured], k[measured]
    if k.size == 0:
        return dict.fromkeys(("kl_post_alignment_nats", "kl_min_nats", "kl_min_amount", "kl_recovery_amount"),
                             float("nan"))
    start = float(k[0])
    target = start * (1.0 - recovery)
    return {"kl_post_alignment_nats": start, "kl_min_nats": float(k.min()), "kl_min_amount": float(a[np.argmin(k)]),
            "kl_recovery_amount": first_crossing(a, k, target) if start > 0 else float("nan")}
