"""Fine-tuning over the model protocol: epoch orders, step counts, amount and fraction checks,
training in slices (checkpoints at fractions of the epoch, incremental amounts, resumable), and
datasets sampled from a model.

Nothing here may touch a model's internals: only ``fit``, ``token_logprobs``, ``generate``,
``state_dict`` and ``load_state_dict`` (plus an optional ``generate_batch`` fast path).
"""

from __future__ import annotations

import io
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.atomic import atomic_write_bytes
from harness.errors import ConfigError
from toymodels.corpus import check_examples
from toymodels.interface import Example, LanguageModel, OptimizerSpec, TrainLog


def epoch_order(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(n)``: one epoch's data order."""
    if n < 1:
        raise ConfigError(f"empty dataset: an epoch needs at least one example, got {n}")
    return np.random.default_rng((7, seed)).permutation(n)


def check_fractions(fractions: Sequence[float], name: str = "checkpoint_fractions") -> None:
    """Checkpoint fractions: non-empty, each in (0, 1], strictly increasing."""
    if len(fractions) == 0:
        raise ConfigError(f"{name} must not be empty")
    for f in fractions:
        if not 0 < f <= 1:
            raise ConfigError(f"{name}: each fraction must be in (0, 1], got {f}")
    if any(b <= a for a, b in zip(fractions, fractions[1:], strict=False)):
        raise ConfigError(f"{name} must be strictly increasing, got {tuple(fractions)}")


def load_weights(path: Path) -> Any:
    """A saved checkpoint or cache file: tensors and plain containers only (``weights_only``), so a
    file that would run code when unpickled is refused, as a one-line error, and never runs."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError):
        raise ConfigError(f"{path} is damaged or holds more than tensors, so a weights-only load refused it; "
                          "delete it and rerun to recompute it") from None


def check_amounts(amounts: Sequence[int], name: str, allow_zero: bool = True) -> None:
    """Data amounts (numbers of examples): non-empty, >= 0 (or > 0), strictly increasing."""
    if len(amounts) == 0:
        raise ConfigError(f"{name} must not be empty")
    low = 0 if allow_zero else 1
    if any(a < low for a in amounts):
        raise ConfigError(f"{name} must be >= {low}, got {tuple(amounts)}")
    if any(b <= a for a, b in zip(amounts, amounts[1:], strict=False)):
        raise ConfigError(f"{name} must be strictly increasing, got {tuple(amounts)}")
    check_examples(name, amounts)


def steps_for(n_examples: int, optimizer: OptimizerSpec) -> int:
    """Optimizer steps that ``n_examples`` examples take (a partial last batch is a step)."""
    return math.ceil(n_examples / optimizer.examples_per_step)


@dataclass
class SliceResult:
    """Model states after each slice, the steps at which they were taken, and the full log."""

    states: list[dict[str, Any]]
    steps_at: list[int]
    log: TrainLog
    optimizer_state: Any = None
    boundaries: list[int] = field(default_factory=list)  # examples seen at each state


def fit_slices(
    model: LanguageModel, examples: Sequence[Example] | None, order: Sequence[int],
    optimizer: OptimizerSpec, fractions: Sequence[float], *,
    fit: Callable[[Sequence[int], Any], tuple[TrainLog, Any]] | None = None,
    state: Any | None = None, checkpoint_path: str | Path | None = None,
    save_every_steps: int = 0, stop_after_steps: int | None = None,
) -> SliceResult:
    """Train on ``order`` once, keeping the model state at each fraction of the steps.

    The fractions are of optimizer steps (rounded, at least one step). With ``checkpoint_path``
    a resumable checkpoint (weights, optimizer state, position, log) is written every
    ``save_every_steps`` steps and at each fraction; a later call resumes from it. A run stopped
    by ``stop_after_steps`` (a simulated interruption) returns what it has.
    """
    check_fractions(fractions)
    if len(order) == 0:
        raise ConfigError("empty dataset: nothing to train on")
    if fit is None:
        if examples is None:
            raise ValueError("fit_slices needs examples or a fit function")

        def fit(sub: Sequence[int], st: Any) -> tuple[TrainLog, Any]:
            return model.fit(examples, sub, optimizer, st)

    per_step = optimizer.examples_per_step
    total = steps_for(len(order), optimizer)
    marks = sorted({max(1, round(f * total)) for f in fractions})
    cuts = set(marks)
    if save_every_steps > 0:
        cuts |= set(range(save_every_steps, total, save_every_steps))
    if stop_after_steps is not None:
        cuts.add(stop_after_steps)
    log, states, steps_at, done = TrainLog(), [], [], 0
    path = Path(checkpoint_path) if checkpoint_path else None
    if path is not None and path.exists():
        blob = load_weights(path)
        model.load_state_dict(blob["model"])
        state, done, states, steps_at = blob["optimizer"], blob["done"], blob["states"], blob["steps_at"]
        log = TrainLog(list(blob["losses"]), blob["done"], blob["tokens"])
    for cut in sorted(c for c in cuts if c > done):
        part, state = fit(order[done * per_step : cut * per_step], state)
        log.losses.extend(part.losses)
        log.steps += part.steps
        log.tokens += part.tokens
        done = cut
        if cut in marks:
            states.append(model.state_dict())
            steps_at.append(cut)
        if path is not None:
            buffer = io.BytesIO()
            torch.save({"model": model.state_dict(), "optimizer": state, "done": done, "states": states,
                        "steps_at": steps_at, "losses": log.losses, "tokens": log.tokens}, buffer)
            atomic_write_bytes(path, buffer.getvalue())
        if stop_after_steps is not None and done >= stop_after_steps:
            break
    return SliceResult(states, steps_at, log, state,
                       [min(s * per_step, len(order)) for s in steps_at])


def sample_responses(model: LanguageModel, prompts: Sequence[tuple[int, ...]], max_new_tokens: int,
                     temperature: float, seed: int) -> list[Example]:
    """Each prompt answered by ``model`` at ``temperature`` (seeded), as Examples.

    Uses the model's ``generate_batch`` when it has one, else ``generate`` per prompt with
    seed ``seed + i``.
    """
    batch = getattr(model, "generate_batch", None)
    if batch is not None:
        responses = batch(prompts, max_new_tokens, temperature, seed)
    else:
        responses = [model.generate(p, max_new_tokens, temperature, seed + i) for i, p in enumerate(prompts)]
    out = []
    for p, r in zip(prompts, responses, strict=False):
        if len(r) == 0:
            raise ConfigError("a model returned an empty response; max_new_tokens must be >= 1")
        out.append(Example(tuple(p), tuple(int(t) for t in r)))
    return out
