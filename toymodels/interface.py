"""The model protocol: the only surface the experiment protocols and measures may touch.

Protocols work on token ids. Tokenizers, chat templates and model internals stay inside the
adapters (the toy Transformer here, Hugging Face models in :mod:`llm_bridge`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from harness.config import require


@dataclass(frozen=True)
class Example:
    """A prompt and its response, as token ids. Losses and scores use the response only."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.response_ids) == 0:
            raise ValueError("an Example needs at least one response token")


@dataclass(frozen=True)
class Pair:
    """A preference pair: a chosen (aligned) and a rejected (misaligned) response to one prompt, with
    the reference model's summed response log-probabilities of each (nats; DPO's pi0)."""

    chosen: Example
    rejected: Example
    ref_chosen: float = float("nan")
    ref_rejected: float = float("nan")


@dataclass(frozen=True)
class Contrast:
    """A prompt with labelled continuations, for exact behaviour scores by log-probabilities.

    Toy tasks fix the attribute with the first response token, so each continuation is one
    marker token and the mass on ``aligned`` is exactly P(aligned | prompt). LLM tasks use an
    aligned and a misaligned continuation of the same prompt. Scores are the mass on ``aligned``
    normalised over the contrast set, and its log-odds.
    """

    prompt_ids: tuple[int, ...]
    aligned: tuple[tuple[int, ...], ...]
    misaligned: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, kw_only=True)
class OptimizerSpec:
    """AdamW settings. Defaults follow the paper: constant LR, betas (0.9, 0.95), no decay.

    A config block: wherever it is nested, ``lr`` and ``batch_size`` name its learning rate and
    batch size (a pre-training block's must be named in full, ``pretrain.lr``).
    """

    ALIASES: ClassVar[Mapping[str, str]] = {"lr": "lr", "batch_size": "batch_size"}

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    batch_size: int = 16
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                f"betas must be two numbers in [0, 1), got {self.betas}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(self.batch_size >= 1 and self.grad_accum >= 1,
                f"batch_size and grad_accum must be >= 1, got {self.batch_size} and {self.grad_accum}")
        require(self.max_grad_norm is None or self.max_grad_norm > 0,
                f"max_grad_norm must be > 0 (or none), got {self.max_grad_norm}")

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.grad_accum


@dataclass
class TrainLog:
    """What one ``fit`` call did: mean response-token loss (nats) per optimizer step."""

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    tokens: int = 0

    @property
    def mean_loss(self) -> float:
        return float(np.mean(self.losses)) if self.losses else float("nan")


@runtime_checkable
class LanguageModel(Protocol):
    """What a model must offer for the protocols to run on it.

    Two optional fast paths are used when a model has them: ``generate_batch`` (many prompts at
    once) and ``sequence_logprobs(examples) -> array`` (each example's summed response
    log-probability in one batched pass, which the measures' scores, losses and KL use).

    ``fit`` takes an optional ``alignment`` (:class:`toymodels.alignment.Alignment`): a preference
    method on :class:`Pair` items, or a mitigation. A model that supports it also offers
    ``trainable_parameters()`` (for the anchor) and ``hidden_layers()`` (the modules whose outputs
    a Vaccine perturbation shifts).
    """

    def fit(
        self, examples: Sequence[Example], order: Sequence[int], optimizer: OptimizerSpec,
        state: Any | None, alignment: Any = None,
    ) -> tuple[TrainLog, Any]:
        """Fine-tune in place on ``examples`` taken in ``order`` (indices; consecutive batches of
        ``optimizer.batch_size``, ``grad_accum`` batches per step), loss on response tokens only.

        ``state`` is the optimizer state returned by a previous call (None for a fresh AdamW), so
        incremental amounts continue exactly where they stopped. Returns the log and the new state.
        """
        ...

    def token_logprobs(self, examples: Sequence[Example]) -> list[np.ndarray]:
        """Teacher-forced log-probabilities (nats) of each response token, one array per example."""
        ...

    def generate(
        self, prompt_ids: Sequence[int], max_new_tokens: int, temperature: float, seed: int
    ) -> list[int]:
        """Sample a response (stopping at the model's end-of-sequence token)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Weights (and anything else needed) to restore this model: for slices, resume, clones."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...
