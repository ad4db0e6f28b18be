"""Alignment methods and mitigations: how the forward (alignment) run trains, over the model protocol.

Methods (``AlignmentSpec.method``), each a loss on one micro-batch of response log-probabilities:

- ``sft``: the mean negative log-likelihood of the aligned responses (the protocols' default);
- ``dpo``: Rafailov et al. (2023), ``-log sigmoid(beta [(log pi(y_w) - log pi0(y_w)) - (log pi(y_l) -
  log pi0(y_l))])`` on pairs of an aligned (y_w) and a misaligned (y_l) response to one prompt;
  ``pi0`` is theta0, the model the alignment starts from, whose log-probabilities are computed once
  before training (:func:`pairs_with_reference`), so no second copy of the model is ever held;
- ``simpo``: Meng et al. (2024), reference-free, ``-log sigmoid(beta (log pi(y_w)/|y_w| - log
  pi(y_l)/|y_l|) - margin)``.

Mitigations, each a choice that any method can take:

- ``replay``: that share of the alignment run's examples is pre-training-like data (the task's
  neutral data) in place of aligned ones, so the steps stay equal; the run's epoch order shuffles
  them in, so the whole run holds the share exactly and each slice of it about the share;
- ``anchor``: L2-SP (Li, Grandvalet and Davoine, 2018) in decoupled form: after every optimizer step
  each trainable weight moves that share of the way back to its theta0 value;
- ``perturb``: Vaccine (Huang et al., 2024, "Vaccine: Perturbation-aware Alignment for Large Language
  Models against Harmful Fine-tuning"): each micro-batch's gradient is taken with every hidden layer's
  output shifted by the perturbation of total L2 norm ``perturb`` that most raises the loss (the
  normalised gradient of the loss with respect to the layer outputs, from a first pass).

The losses are short and written here rather than taken from trl: trl's trainers own the training
loop, and the protocols must own it to cut one run at every forward amount with equal optimizer
steps and the optimizer state carried (``toymodels.finetuning``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.config import require
from toymodels.interface import Example, Pair

METHODS = ("sft", "dpo", "simpo")
# one micro-batch's response log-probabilities: (tokens (B, T), mask (B, T)), differentiable
LogProbs = Callable[[Sequence[Example]], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True, kw_only=True)
class AlignmentSpec:
    """The alignment method and its mitigations (all off: plain SFT, the protocols' default)."""

    method: str = "sft"
    beta: float = 0.1  # DPO's beta (SimPO's is usually 2 to 2.5: set it)
    margin: float = 0.5  # SimPO's target reward margin gamma (trl's simpo_gamma default)
    replay: float = 0.0  # share of the alignment run's examples that is pre-training-like data
    anchor: float = 0.0  # share of the distance back to theta0 removed after each optimizer step
    perturb: float = 0.0  # Vaccine's rho: L2 norm of the hidden-state perturbation

    def __post_init__(self) -> None:
        require(self.method in METHODS, f"unknown alignment method '{self.method}'; choose one of {', '.join(METHODS)}")
        require(self.beta > 0, f"beta must be > 0, got {self.beta}")
        require(0 <= self.replay < 1, f"replay must be in [0, 1), got {self.replay}")
        require(0 <= self.anchor < 1, f"anchor must be in [0, 1), got {self.anchor}")
        require(self.perturb >= 0, f"perturb must be >= 0, got {self.perturb}")
        require(self.method == "sft" or self.replay == 0,
                "replay mixes pre-training-like examples into SFT; a preference method has no place for them")

    @property
    def plain(self) -> bool:
        """True for plain SFT (whatever its unused preference settings), which the models train by
        their original (bit-identical) path."""
        return self.method == "sft" and not (self.replay or self.anchor or self.perturb)

    @property
    def preference(self) -> bool:
        return self.method != "sft"


# the alignment conditions the mitigations experiments compare, one factor at a time
TREATMENTS = ("sft", "replay", "anchor", "vaccine", "dpo", "simpo")


@dataclass(frozen=True, kw_only=True)
class Strengths:
    """Each treatment's setting, fixed before the runs (harness/preregistration.toml)."""

    replay: float = 0.25  # share of the alignment run's examples that is pre-training-like data
    anchor: float = 0.02  # share of the way back to theta0 after each optimizer step
    perturb: float = 2.0  # Vaccine's rho (its paper's default)
    dpo_beta: float = 0.1
    simpo_beta: float = 2.0
    simpo_margin: float = 0.5

    def spec(self, condition: str) -> AlignmentSpec:
        """The alignment of ``condition``."""
        return {
            "sft": AlignmentSpec(),
            "replay": AlignmentSpec(replay=self.replay),
            "anchor": AlignmentSpec(anchor=self.anchor),
            "vaccine": AlignmentSpec(perturb=self.perturb),
            "dpo": AlignmentSpec(method="dpo", beta=self.dpo_beta),
            "simpo": AlignmentSpec(method="simpo", beta=self.simpo_beta, margin=self.simpo_margin),
        }[condition]

    def __post_init__(self) -> None:
        for condition in TREATMENTS:
            self.spec(condition)  # each one's own range checks


def check_treatments(treatments: tuple[str, ...]) -> None:
    unknown = [c for c in treatments if c not in TREATMENTS]
    require(not unknown, f"unknown treatment(s) {', '.join(unknown)}; choose from {', '.join(TREATMENTS)}")
    require(len(set(treatments)) == len(treatments), f"treatments repeat: {', '.join(treatments)}")
    require("sft" in treatments and len(treatments) >= 2,
            "treatments must hold sft (every reading is against it) and at least one other")


@dataclass
class Alignment:
    """An alignment in progress: its spec and theta0's trainable weights (for ``anchor``)."""

    spec: AlignmentSpec
    theta0: list[torch.Tensor]

    @classmethod
    def start(cls, spec: AlignmentSpec | None, model: Any) -> Alignment | None:
        """Begin aligning ``model`` from its current weights (theta0); None for plain SFT (or no
        spec), which the models train by their original path."""
        if spec is None or spec.plain:
            return None
        theta0 = [p.detach().clone() for p in model.trainable_parameters()] if spec.anchor else []
        return cls(spec, theta0)

    def loss(self, items: Sequence[Example | Pair], logprobs: LogProbs, n_step: int) -> torch.Tensor:
        """The loss of one micro-batch, scaled so that the micro-batches of a step sum to its mean
        (``n_step``: response tokens in the step for SFT, pairs for a preference method)."""
        if not self.spec.preference:
            tokens, mask = logprobs(items)  # type: ignore[arg-type]
            return -(tokens * mask).sum() / n_step
        pairs: Sequence[Pair] = items  # type: ignore[assignment]
        tokens, mask = logprobs([p.chosen for p in pairs] + [p.rejected for p in pairs])
        total, length = (tokens * mask).sum(dim=1), mask.sum(dim=1)
        n = len(pairs)
        if self.spec.method == "dpo":
            ref = torch.tensor([[p.ref_chosen, p.ref_rejected] for p in pairs], dtype=total.dtype, device=total.device)
            margin = self.spec.beta * ((total[:n] - ref[:, 0]) - (total[n:] - ref[:, 1]))
        else:
            margin = self.spec.beta * (total[:n] / length[:n] - total[n:] / length[n:]) - self.spec.margin
        return -F.logsigmoid(margin).sum() / n_step

    def backward(self, compute_loss: Callable[[], torch.Tensor], layers: Callable[[], Sequence[torch.nn.Module]],
                 backward: Callable[[torch.Tensor], None] = torch.Tensor.backward) -> float:
        """Back-propagate one micro-batch's loss (``backward``: the model's own, e.g. accelerate's);
        with ``perturb``, through hidden states shifted along the loss's gradient, the direction that
        raises it most (Vaccine). ``layers()`` gives the modules to shift; it is asked only then."""
        if not self.spec.perturb:
            loss = compute_loss()
            backward(loss)
            return float(loss.detach())
        modules = layers()
        with _captured(modules) as outputs:
            first = compute_loss()
        grads = torch.autograd.grad(first, outputs, allow_unused=True)
        grads = [torch.zeros_like(o) if g is None else g for o, g in zip(outputs, grads, strict=True)]
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads)) + 1e-12
        with _shifted(modules, [self.spec.perturb * g / norm for g in grads]):
            loss = compute_loss()
        backward(loss)
        return float(loss.detach())

    @torch.no_grad()
    def after_step(self, params: Sequence[torch.Tensor]) -> None:
        """The anchor: move every trainable weight ``anchor`` of the way back to theta0 (nothing
        without an anchor)."""
        if not self.spec.anchor:
            return
        for p, p0 in zip(params, self.theta0, strict=True):
            p.lerp_(p0.to(p.device, p.dtype), self.spec.anchor)


def examples_of(items: Sequence[Example | Pair]) -> list[Example]:
    """The examples a step trains on (both responses of each pair)."""
    return [e for item in items for e in ((item.chosen, item.rejected) if isinstance(item, Pair) else (item,))]


def step_count(items: Sequence[Example | Pair]) -> int:
    """What a step's loss is averaged over: response tokens (SFT) or pairs (preference methods)."""
    if items and isinstance(items[0], Pair):
        return len(items)
    return sum(len(e.response_ids) for e in items)  # type: ignore[union-attr]


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def _captured(layers: Sequence[torch.nn.Module]) -> Iterator[list[torch.Tensor]]:
    outputs: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda _m, _i, out: outputs.append(_first(out))) for layer in layers]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


@contextlib.contextmanager
def _shifted(layers: Sequence[torch.nn.Module], deltas: Sequence[torch.Tensor]) -> Iterator[None]:
    def hook(delta: torch.Tensor) -> Callable[..., Any]:
        def shift(_m: Any, _i: Any, out: Any) -> Any:
            if isinstance(out, tuple):
                return (out[0] + delta, *out[1:])
            return out + delta
        return shift
    hooks = [layer.register_forward_hook(hook(d)) for layer, d in zip(layers, deltas, strict=True)]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def mix_replay(aligned: Sequence[Example], neutral: Sequence[Example], share: float) -> list[Example]:
    """``aligned`` with ``share`` of its positions given to ``neutral`` examples, evenly (position i
    is replay when floor((i + 1) share) > floor(i share)), so every prefix of the list holds the
    share (an epoch order then shuffles them)."""
    out, used = [], 0
    for i, example in enumerate(aligned):
        # a hair above each product, so that 0.29 * 100 counts 29 and not 28.999...
        if math.floor((i + 1) * share + 1e-9) > math.floor(i * share + 1e-9):
            out.append(neutral[used])
            used += 1
        else:
            out.append(example)
    return out


def alignment_data(model: Any, task: Any, n: int, seed: int, alignment: AlignmentSpec | None,
                   skip: int = 0, avoid: Sequence[Example] = ()) -> list[Example] | list[Pair]:
    """An alignment run's ``n`` items from ``task``: aligned examples (with ``replay``'s share of
    neutral, pre-training-like ones), or preference pairs scored by ``model`` (theta0) for a
    preference method, none rejecting an example of ``avoid`` (the reverse data)."""
    if alignment is not None and alignment.preference:
        return pairs_with_reference(model, *task.preference_data(n, seed=seed, avoid=avoid))
    aligned = task.forward_data(n, seed=seed)
    if alignment is None or not alignment.replay:
        return aligned
    # apart from the neutral examples the warm-up and a neutral arm take: a toy task by its seed
    # range, a real one (whose examples do not depend on the seed) by passing over ``skip`` of them
    return mix_replay(aligned, task.neutral_data(n, seed=seed + 500_009, skip=skip), alignment.replay)


def pairs_with_reference(model: Any, chosen: Sequence[Example], rejected: Sequence[Example]) -> list[Pair]:
    """Preference pairs (chosen and rejected responses to the same prompts) carrying ``model``'s
    (theta0's) summed response log-probabilities, the DPO reference."""
    require(all(c.prompt_ids == r.prompt_ids for c, r in zip(chosen, rejected, strict=True)),
            "a preference pair needs the same prompt for its chosen and rejected responses")
    scored = _sequence_logprobs(model, list(chosen) + list(rejected))
    n = len(chosen)
    return [Pair(c, r, float(scored[i]), float(scored[n + i])) for i, (c, r) in enumerate(zip(chosen, rejected, strict=True))]


def _sequence_logprobs(model: Any, examples: Sequence[Example]) -> np.ndarray:
    fast = getattr(model, "sequence_logprobs", None)
    if fast is not None:
        return np.asarray(fast(examples), dtype=float)
    return np.array([float(np.sum(lp)) for lp in model.token_logprobs(examples)])
