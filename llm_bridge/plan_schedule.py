"""The optimizer steps and examples an llm config will train on, counted as the protocols count them
(``steps_for`` per fit call, ``cumulative_steps`` for an incremental run), for the dry-run plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toymodels.finetuning import steps_for
from toymodels.protocols.rebound import cumulative_steps


@dataclass(frozen=True, kw_only=True)
class Fit:
    """A kind of training call of one run: its optimizer steps and examples, summed over its calls."""

    what: str
    steps: int
    examples: int


def rebound_fits(config: Any) -> list[Fit]:
    """One llm.rebound run: the shared warm-up, each arm's forward slices (cut at every F), a reverse
    sweep for every (arm, F) (the neutral arm shares the F = 0 sweep), and with ``save_checkpoints``
    the aligned forward slices again."""
    spec, opt = config.probe, config.probe.optimizer
    arms = 2 if config.neutral_control else 1
    fwd, rev = spec.forward_amounts, spec.reverse_amounts
    sweeps = len(fwd) + (arms - 1) * (len(fwd) - 1)
    fits = [Fit(what="warm-up", steps=steps_for(spec.warmup_examples, opt), examples=spec.warmup_examples),
            Fit(what=f"forward x {arms} arms", steps=arms * cumulative_steps(fwd, opt)[-1], examples=arms * fwd[-1]),
            Fit(what=f"reverse x {sweeps} sweeps", steps=sweeps * cumulative_steps(rev, opt)[-1],
                examples=sweeps * rev[-1])]
    if config.save_checkpoints:
        fits.append(Fit(what="forward again (saved checkpoints)", steps=cumulative_steps(fwd, opt)[-1],
                        examples=fwd[-1]))
    return [fit for fit in fits if fit.examples]


def resistance_fits(config: Any) -> list[Fit]:
    """One llm.resistance run: the SFT epoch, a forward and an inverse path per pair over the shared
    prompts, and with ``save_checkpoints`` the SFT epoch again."""
    spec, opt = config.protocol, config.protocol.optimizer
    sft = Fit(what="SFT epoch", steps=steps_for(spec.n_align, opt), examples=spec.n_align)
    paths = 2 * len(spec.pairs)
    fits = [sft, Fit(what=f"{paths} paths", steps=paths * steps_for(spec.n_queries, opt),
                     examples=paths * spec.n_queries)]
    return fits + ([Fit(what="SFT epoch again (saved checkpoints)", steps=sft.steps, examples=sft.examples)]
                   if config.save_checkpoints else [])


# how each llm experiment with training counts its fits; llm.pareto trains nothing
FITS: dict[str, Callable[[Any], list[Fit]]] = {"llm.rebound": rebound_fits, "llm.resistance": resistance_fits}


def optimizer_of(config: Any) -> Any:
    return config.probe.optimizer if hasattr(config, "probe") else config.protocol.optimizer


def runs_of(config: Any) -> int:
    """Independent runs: data draws x training seeds, each also from every no-pre-training start."""
    return len(config.data_draws) * config.seeds * (1 + len(config.controls))


# A contrast is one prompt with an aligned and a misaligned continuation (llm_bridge.tasks)
CONTRAST_SEQUENCES = 2


def rebound_scored(config: Any) -> int:
    """Sequences one llm.rebound run scores or samples without training: S0 and theta0's KL samples
    (sampled, then scored), and in every sweep the contrasts after each reverse amount and the KL
    samples after every ``kl_every``-th and the last."""
    spec = config.probe
    arms = 2 if config.neutral_control else 1
    sweeps = len(spec.forward_amounts) + (arms - 1) * (len(spec.forward_amounts) - 1)
    n_rev = len(spec.reverse_amounts)
    kl_points = len({*range(0, n_rev, spec.kl_every), n_rev - 1})
    per_sweep = n_rev * CONTRAST_SEQUENCES * spec.n_eval + kl_points * spec.n_kl_samples
    return CONTRAST_SEQUENCES * spec.n_eval + 2 * spec.n_kl_samples + sweeps * per_sweep


def resistance_scored(config: Any) -> int:
    """Sequences one llm.resistance run scores or samples without training: the contrasts at theta0..
    theta3; each checkpoint's answers (sampled, then scored at T = 1 and at the sampling T); every
    path's data before and after it."""
    spec = config.protocol
    temperatures = len({1.0, spec.temperature})
    checkpoints = len(spec.checkpoint_fractions)
    return ((checkpoints + 1) * CONTRAST_SEQUENCES * spec.n_queries + checkpoints * (1 + temperatures) * spec.n_queries
            + 2 * len(spec.pairs) * 2 * spec.n_queries)


SCORED: dict[str, Callable[[Any], int]] = {"llm.rebound": rebound_scored, "llm.resistance": resistance_scored}
