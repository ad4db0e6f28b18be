"""Training the toy Transformer: the :class:`ToyLM` adapter of the model protocol, pre-training
with checkpoints at fractions of the epoch, resume after interruption, and a cache of pre-trained
models keyed by config hash.

Pre-training puts the loss on all tokens; ``fit`` (SFT) on response tokens only. AdamW with the
paper's defaults: constant LR, betas (0.9, 0.95), weight decay 0, one epoch.
"""

from __future__ import annotations

import copy
import dataclasses
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from harness.atomic import atomic_write_bytes
from harness.config import require
from harness.errors import ConfigError
from harness.runs import cache_dir, config_hash
from toymodels.alignment import Alignment, examples_of, step_count
from toymodels.corpus import PAD, TASKS, Corpus, CorpusConfig
from toymodels.finetuning import check_fractions, epoch_order, fit_slices, load_weights
from toymodels.interface import Example, OptimizerSpec, TrainLog
from toymodels.model import GPT, ModelConfig, model_config

LossOn = Literal["response", "all"]
IGNORE = -100  # target id that cross_entropy skips


def resolve_device(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} was asked for but CUDA is not available")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"unknown device '{device}'; use cpu, cuda or cuda:N")
    return torch.device(device)


def encode(examples: Sequence[Example], loss_on: LossOn = "response", width: int | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (N, W-1) right-padded with PAD, and targets (N, W-1) with IGNORE off the loss.

    Input position t predicts token t+1; its target is kept when token t+1 is a response token
    (``loss_on="response"``) or any real token after the first (``"all"``). ``width`` (W) defaults
    to the longest example.
    """
    if len(examples) == 0:
        raise ConfigError("empty dataset: nothing to train or score on")
    width = width or max(len(e.prompt_ids) + len(e.response_ids) for e in examples)
    tokens = torch.full((len(examples), width), PAD, dtype=torch.long)
    targets = torch.full((len(examples), width - 1), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        seq = torch.tensor(e.prompt_ids + e.response_ids)
        tokens[i, : len(seq)] = seq
        start = len(e.prompt_ids) - 1 if loss_on == "response" else 0
        targets[i, start : len(seq) - 1] = seq[start + 1 :]
    return tokens[:, :-1].contiguous(), targets


class ToyLM:
    """The toy Transformer behind the :class:`~toymodels.interface.LanguageModel` protocol."""

    def __init__(self, config: ModelConfig, seed: int, device: str = "cpu", eos_id: int = 2):
        self.config = config
        self.device = resolve_device(device)
        self.eos_id = eos_id
        torch.manual_seed(seed)
        self.net = GPT(config).to(self.device)
        self._scored: tuple[Sequence[Example], tuple[torch.Tensor, ...]] | None = None

    # --- training -------------------------------------------------------------------------
    def fit(self, examples: Sequence[Example], order: Sequence[int], optimizer: OptimizerSpec,
            state: Any | None, alignment: Alignment | None = None, loss_on: LossOn = "response"
            ) -> tuple[TrainLog, Any]:
        if alignment is not None and not alignment.spec.plain:
            return self._fit_aligned(examples, order, optimizer, state, alignment)
        # encode only the examples this call takes (an incremental amount is a few batches of a large
        # set), padded to the whole set's width so that every batch is the one a full encoding gives
        if len(examples) == 0:
            raise ConfigError("empty dataset: nothing to train or score on")
        width = max(len(e.prompt_ids) + len(e.response_ids) for e in examples)
        inputs, targets = encode([examples[i] for i in order] or list(examples[:1]), loss_on, width)
        return self.fit_encoded(inputs, targets, range(len(order)), optimizer, state)

    def fit_encoded(self, inputs: torch.Tensor, targets: torch.Tensor, order: Sequence[int],
                    optimizer: OptimizerSpec, state: Any | None) -> tuple[TrainLog, Any]:
        """``fit`` on already-encoded data (pre-training encodes once and fits in slices)."""
        opt = self._optimizer(optimizer, state)
        self.net.train()
        order_t = torch.as_tensor(np.asarray(order, dtype=np.int64))
        counts = (targets != IGNORE).sum(dim=1)
        micro, accum = optimizer.batch_size, optimizer.grad_accum
        per_step = micro * accum
        vocab = self.config.vocab_size
        log = TrainLog()
        for start in range(0, len(order_t), per_step):
            step_idx = order_t[start : start + per_step]
            n_targets = int(counts[step_idx].sum())
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for m in range(0, len(step_idx), micro):
                idx = step_idx[m : m + micro]
                x, y = inputs[idx].to(self.device), targets[idx].to(self.device)
                logits = self.net(x)
                # sum over the step's response tokens / their count: one mean per optimizer step,
                # however the step is split into micro-batches
                loss = F.cross_entropy(logits.view(-1, vocab), y.view(-1), ignore_index=IGNORE,
                                       reduction="sum") / n_targets
                loss.backward()
                total += float(loss.detach())
            if optimizer.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), optimizer.max_grad_norm, foreach=True)
            opt.step()
            log.losses.append(total)
            log.steps += 1
            log.tokens += n_targets
        return log, {"adamw": copy.deepcopy(opt.state_dict())}

    def _fit_aligned(self, items: Sequence[Any], order: Sequence[int], optimizer: OptimizerSpec,
                     state: Any | None, alignment: Alignment) -> tuple[TrainLog, Any]:
        """``fit`` with an alignment method or mitigation (toymodels.alignment): the same steps and
        micro-batches as plain SFT, each micro-batch's loss from differentiable response log-probs."""
        opt = self._optimizer(optimizer, state)
        self.net.train()
        params = list(self.net.parameters())
        log, per_step = TrainLog(), optimizer.examples_per_step
        for start in range(0, len(order), per_step):
            step_items = [items[int(i)] for i in order[start : start + per_step]]
            n_step = step_count(step_items)
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for m in range(0, len(step_items), optimizer.batch_size):
                micro = step_items[m : m + optimizer.batch_size]
                total += alignment.backward(lambda micro=micro, n=n_step: alignment.loss(micro, self._train_logprobs, n),
                                            self.hidden_layers)
            if optimizer.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, optimizer.max_grad_norm, foreach=True)
            opt.step()
            alignment.after_step(params)
            log.losses.append(total)
            log.steps += 1
            log.tokens += sum(len(e.response_ids) for e in examples_of(step_items))
        return log, {"adamw": copy.deepcopy(opt.state_dict())}

    def _train_logprobs(self, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor]:
        """Response-token log-probabilities (B, T) with gradients, and their mask."""
        inputs, targets = encode(examples, "response")
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        logp = torch.log_softmax(self.net(inputs), dim=-1)
        keep = targets != IGNORE
        picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return picked.masked_fill(~keep, 0.0), keep.to(picked.dtype)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.net.parameters())

    def hidden_layers(self) -> list[torch.nn.Module]:
        return list(self.net.blocks)

    def _optimizer(self, spec: OptimizerSpec, state: Any | None) -> torch.optim.AdamW:
        opt = torch.optim.AdamW(self.net.parameters(), lr=spec.lr, betas=tuple(spec.betas),
                                weight_decay=spec.weight_decay, foreach=True)
        if state is not None:
            opt.load_state_dict(copy.deepcopy(state["adamw"]))
        return opt

    # --- scoring and sampling -------------------------------------------------------------
    def _scoring_batch(self, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Distinct input rows (U, T-1), each example's row (N,) and the targets (N, T-1).

        A contrast's one-token continuations of a prompt share one input row (the prompt), so the
        prompt runs once rather than once per continuation. A tuple of examples (a probe scored
        after every reverse step) is encoded once and kept while the next call passes the same one.
        """
        if self._scored is not None and self._scored[0] is examples:
            return self._scored[1]
        inputs, targets = encode(examples, "response")
        rows, inverse = torch.unique(inputs, dim=0, return_inverse=True)
        batch = (rows.to(self.device), inverse.to(self.device), targets.to(self.device))
        self._scored = (examples, batch) if isinstance(examples, tuple) else None
        return batch

    @torch.no_grad()
    def _picked_logprobs(self, examples: Sequence[Example], batch_size: int, temperature: float
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each target token's log-probability (N, T-1), float64, under softmax(logits / T), and the
        mask of response positions."""
        rows, inverse, targets = self._scoring_batch(examples)
        self.net.eval()
        logp = torch.cat([torch.log_softmax(self.net(rows[s : s + batch_size]).float() / temperature, dim=-1)
                          for s in range(0, len(rows), batch_size)])
        keep = targets != IGNORE
        position = torch.arange(targets.shape[1], device=targets.device)
        picked = logp[inverse[:, None], position[None, :], targets.clamp(min=0)].double()
        return picked.masked_fill(~keep, 0.0), keep

    def token_logprobs(self, examples: Sequence[Example], batch_size: int = 1024,
                       temperature: float = 1.0) -> list[np.ndarray]:
        """Teacher-forced response log-probabilities; ``temperature`` scores under the tempered
        distribution softmax(logits / T) that :meth:`generate_batch` samples from."""
        picked, keep = self._picked_logprobs(examples, batch_size, temperature)
        return [row[mask].cpu().numpy() for row, mask in zip(picked, keep, strict=True)]

    def sequence_logprobs(self, examples: Sequence[Example], batch_size: int = 1024) -> np.ndarray:
        """Sum of each example's response log-probabilities (nats), in one batched pass."""
        picked, _ = self._picked_logprobs(examples, batch_size, 1.0)
        return picked.sum(dim=1).cpu().numpy()

    def generate(self, prompt_ids: Sequence[int], max_new_tokens: int, temperature: float,
                 seed: int) -> list[int]:
        return self.generate_batch([tuple(prompt_ids)], max_new_tokens, temperature, seed)[0]

    @torch.no_grad()
    def generate_batch(self, prompts: Sequence[tuple[int, ...]], max_new_tokens: int,
                       temperature: float, seed: int) -> list[list[int]]:
        """Sample responses for many prompts at once (prompts grouped by length), seeded."""
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        self.net.eval()
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        out: list[list[int]] = [[] for _ in prompts]
        by_len: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            by_len.setdefault(len(p), []).append(i)
        for length in sorted(by_len):
            idx = by_len[length]
            x = torch.tensor([prompts[i] for i in idx], dtype=torch.long, device=self.device)
            done = torch.zeros(len(idx), dtype=torch.bool, device=self.device)
            new = []
            for _ in range(max_new_tokens):
                logits = self.net(x[:, -self.config.block_size :])[:, -1].float() / temperature
                nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)[:, 0]
                nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
                new.append(nxt)
                done |= nxt == self.eos_id
                x = torch.cat([x, nxt[:, None]], dim=1)
                if bool(done.all()):
                    break
            rows = torch.stack(new, dim=1).cpu().tolist()
            for i, row in zip(idx, rows, strict=False):
                resp = []
                for tok in row:
                    resp.append(tok)
                    if tok == self.eos_id:
                        break
                out[i] = resp
        return out

    # --- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])


# --- pre-training ------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PretrainSettings:
    """How the toy Transformer is pre-trained: the config block every toy experiment nests
    (``pretrain.lr``; the earlier flat keys ``pretrain_lr`` and ``pretrain_batch`` still work)."""

    ALIASES: ClassVar[Mapping[str, str]] = {"pretrain_lr": "lr", "pretrain_batch": "batch_size"}

    lr: float = 3e-3
    batch_size: int = 64
    epochs: int = 1

    def __post_init__(self) -> None:
        require(self.lr > 0, f"pretrain.lr must be > 0, got {self.lr}")
        require(self.batch_size >= 1, f"pretrain.batch_size must be >= 1, got {self.batch_size}")
        require(self.epochs >= 1, f"pretrain.epochs must be >= 1, got {self.epochs}")

    @property
    def optimizer(self) -> OptimizerSpec:
        return OptimizerSpec(lr=self.lr, batch_size=self.batch_size)


@dataclass(frozen=True, kw_only=True)
class PretrainSpec:
    """Everything that determines a pre-trained toy model (its cache key)."""

    size: str = "100k"
    n_pretrain: int = 20_000
    settings: PretrainSettings = field(default_factory=PretrainSettings)
    checkpoint_fractions: tuple[float, ...] = (1.0,)
    seed: int = 0
    tasks: tuple[str, ...] = TASKS
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    random_init: bool = False  # the no-pre-training control: the same init, zero steps

    def __post_init__(self) -> None:
        require(self.n_pretrain >= 1, f"n_pretrain must be >= 1, got {self.n_pretrain}")
        check_fractions(self.checkpoint_fractions)

    def cache_key(self) -> str:
        """The hash of the spec with its settings' fields at the top: the same key as before
        pre-training settings became a block, so existing caches stay valid."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "settings"}
        return config_hash("toy.pretrain", fields | dataclasses.asdict(self.settings))


@dataclass
class Pretrained:
    """Pre-trained weights at each checkpoint fraction, and the loss log (nats per token)."""

    spec: PretrainSpec
    model_config: ModelConfig
    states: dict[float, dict[str, Any]]
    losses: list[float]
    steps: int
    from_cache: bool = False

    def model(self, fraction: float = 1.0, device: str = "cpu") -> ToyLM:
        """A fresh ToyLM holding the weights at ``fraction`` of pre-training."""
        lm = ToyLM(self.model_config, seed=self.spec.seed, device=device)
        lm.load_state_dict(self.states[fraction])
        return lm


def pretrain(spec: PretrainSpec, device: str = "cpu", use_cache: bool = True,
             checkpoint_path: str | None = None, save_every_steps: int = 0,
             stop_after_steps: int | None = None) -> Pretrained:
    """Pre-train (loss on all tokens) or load from the cache under ``cache_dir("toy", "pretrain")``.

    ``checkpoint_path`` with ``save_every_steps`` saves a resumable checkpoint; a rerun resumes
    from it and ends with the same weights as an uninterrupted run. ``stop_after_steps`` simulates
    an interruption (for tests) and returns None-free partial results without caching.
    """
    corpus = Corpus(spec.corpus)
    cfg = model_config(spec.size, corpus.vocab_size, block_size=corpus.seq_len)
    target = cache_dir("toy", "pretrain") / f"{spec.cache_key()}.pt"
    if use_cache and target.exists():
        blob = load_weights(target)
        return Pretrained(spec, cfg, blob["states"], blob["losses"], blob["steps"], from_cache=True)
    lm = ToyLM(cfg, seed=spec.seed, device=device, eos_id=corpus.eos_id)
    if spec.random_init:
        states = {f: lm.state_dict() for f in spec.checkpoint_fractions}
        return Pretrained(spec, cfg, states, [], 0)
    examples = corpus.pretrain_examples(spec.n_pretrain, seed=spec.seed, tasks=spec.tasks)
    inputs, targets = encode(examples, "all")
    order = np.concatenate([epoch_order(len(examples), seed=spec.seed * 1000 + e)
                            for e in range(spec.settings.epochs)])
    optimizer = spec.settings.optimizer

    def fit(sub_order: Sequence[int], state: Any) -> tuple[TrainLog, Any]:
        return lm.fit_encoded(inputs, targets, sub_order, optimizer, state)

    result = fit_slices(lm, None, order, optimizer, spec.checkpoint_fractions, fit=fit,
                        checkpoint_path=checkpoint_path, save_every_steps=save_every_steps,
                        stop_after_steps=stop_after_steps)
    out = Pretrained(spec, cfg, dict(zip(spec.checkpoint_fractions, result.states, strict=False)),
                     result.log.losses, result.log.steps)
    if use_cache and stop_after_steps is None:
        buffer = io.BytesIO()
        torch.save({"states": out.states, "losses": out.losses, "steps": out.steps}, buffer)
        atomic_write_bytes(target, buffer.getvalue())
    return out
