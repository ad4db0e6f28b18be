"""A Hugging Face causal LM behind the toy model protocol (``toymodels.interface.LanguageModel``).

The protocols and measures see token ids only; the tokenizer and the chat template live here.

Template rule (the one rule, also when measuring KL): a task's text becomes token ids exactly
once, in :meth:`HFCausalLM.encode`, with the template the task names:

- ``raw``: ``prompt`` tokenised as plain text (with the tokenizer's BOS), ``response`` tokenised
  without special tokens and closed with EOS. Used for sentiment, like the paper's IMDb runs, and for
  every model without a chat template (Gemma 3 270M is a base model);
- ``chat``: the tokenizer's chat template renders the prompt as one user turn with the generation
  prompt; the response is the assistant text closed with the template's end-of-turn token (EOS).

Every score, loss and KL then compares models on these identical ids. Two models are only ever
compared through one adapter (one tokenizer, one template), by swapping weights with
``load_state_dict``; KL(reference‖model) is estimated on the reference's own samples,
teacher-forced through the same ids, so the template can never differ between the two sides.

Training follows the paper's SFT (:mod:`llm_bridge.training`): AdamW with betas (0.9, 0.95),
constant LR, weight decay 0, loss on response tokens only (token-weighted mean over each optimizer
step), through an ``accelerate.Accelerator`` whose mixed precision is the adapter's ``dtype``
(``auto``: bf16 on CUDA, fp32 on CPU). LoRA goes through peft; the full path trains every weight,
and its ``state_dict()`` is a file on disk (:mod:`llm_bridge.states`), never a second model in memory.

Multi-GPU: under ``accelerate launch`` the Accelerator wraps the model as its config says (DDP with
the shipped ``accelerate_configs/ddp.yaml``). Each optimizer step's examples are split across ranks
and the loss is scaled so that the all-reduced gradient is the same token-weighted mean as on one
device; scoring and sampling run the unwrapped model on every rank, so every rank measures the same
numbers. The CUDA paths (bf16, fp16 with its loss scaler, several GPUs) are untested: no GPU was
available; DDP is checked on 2 CPU ranks.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import DistributedType

from harness.errors import ConfigError
from llm_bridge import training
from llm_bridge.states import StateFile, StateFolder
from toymodels.interface import Example, OptimizerSpec, TrainLog

Template = Literal["raw", "chat"]


@dataclass(frozen=True, kw_only=True)
class LoraSpec:
    """peft LoRA settings; ``target_modules`` names the linear layers (Llama and Gemma share them)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


class HFCausalLM:
    """``LanguageModel`` over a transformers causal LM (full fine-tuning or LoRA)."""

    def __init__(
        self, model: Any, tokenizer: Any, *, lora: LoraSpec | None = None, max_length: int = 2048,
        eval_batch: int = 16, device: str = "cpu", seed: int = 42, template: Template = "raw",
        gradient_checkpointing: bool = False, share_prefix: bool = True, dtype: training.Dtype = "auto",
        state_dir: Path | None = None,
    ) -> None:
        if template == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ConfigError("template 'chat' needs a tokenizer with a chat template; use template=raw")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.eval_batch = eval_batch  # sequences per scoring pass
        self.share_prefix = share_prefix
        self.device = torch.device(device)
        self.template = template
        self.lora = lora
        self.seed = seed
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)
        precision = training.mixed_precision(dtype, device)
        if lora is not None:
            model = _with_lora(model, lora, seed)
        if gradient_checkpointing:
            # non-reentrant: the reentrant kind needs inputs that require grad (LoRA freezes the
            # embeddings) and clashes with DDP's and FSDP's gradient hooks
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.accelerator = training.make_accelerator(self.device, precision)
        self.device = self.accelerator.device
        self.states = StateFolder(state_dir, self, self.accelerator)  # full fine-tuning's weight states
        self.sharded = self.accelerator.distributed_type == DistributedType.FSDP  # weights split across ranks
        if self.sharded and lora is not None:
            raise ConfigError("LoRA under FSDP is not supported: a LoRA run's model fits one device, use "
                              "accelerate_configs/ddp.yaml")
        self.net = model  # the unwrapped model: scoring, sampling, weights
        # one AdamW for the adapter's life, prepared with the model; each fit loads its state
        adamw = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
        self.model, self.optimizer = self.accelerator.prepare(model, adamw)
        self.net.eval()

    # ----- text <-> ids (the template rule) -------------------------------------------------
    def prompt_ids(self, prompt: str) -> tuple[int, ...]:
        if self.template == "chat":
            ids = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True,
                return_dict=False,
            )
            return tuple(int(i) for i in ids)
        return tuple(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])

    def response_ids(self, response: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(response, add_special_tokens=False)["input_ids"]) + (self.eos_id,)

    def encode(self, prompt: str, response: str) -> Example:
        """One {prompt, response} pair as token ids, truncated to ``max_length`` (response tail cut)."""
        p, r = self.prompt_ids(prompt), self.response_ids(response)
        if len(p) >= self.max_length:
            raise ConfigError(f"a prompt of {len(p)} tokens leaves no room under max_length={self.max_length}")
        return Example(p, r[: self.max_length - len(p)])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i != self.eos_id], skip_special_tokens=True)

    def tokenizer_fingerprint(self) -> str:
        """Hash of vocabulary and template: KL and scores compare ids only under one fingerprint."""
        vocab = sorted(self.tokenizer.get_vocab().items())
        text = repr(vocab) + str(getattr(self.tokenizer, "chat_template", "")) + self.template
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ----- batching ------------------------------------------------------------------------
    def _batch(self, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Right-padded ids, attention mask, response-target mask, and the first logit position.

        ``targets[b, t]`` is True where position t's logits predict a response token.
        """
        seqs = [e.prompt_ids + e.response_ids for e in examples]
        width = max(len(s) for s in seqs)
        if width > self.max_length:
            raise ConfigError(f"an example of {width} tokens exceeds max_length={self.max_length}")
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        targets = torch.zeros((len(seqs), width), dtype=torch.bool)
        for b, (e, s) in enumerate(zip(examples, seqs, strict=True)):
            ids[b, : len(s)] = torch.tensor(s)
            attn[b, : len(s)] = 1
            targets[b, len(e.prompt_ids) - 1 : len(s) - 1] = True
        first = min(len(e.prompt_ids) for e in examples) - 1
        return ids.to(self.device), attn.to(self.device), targets.to(self.device), first

    def _response_logprobs(self, examples: Sequence[Example], train: bool = False, temperature: float = 1.0
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of the next (response) tokens under softmax(logits / ``temperature``)
        and their mask, from one forward pass.

        Logits are computed only from the first response position on (``logits_to_keep``), which
        matters for Gemma's 262k-token vocabulary.
        """
        ids, attn, targets, first = self._batch(examples)
        keep = torch.arange(first, ids.shape[1], device=self.device)
        net = self.model if train or self.sharded else self.net
        with self.accelerator.autocast():
            logits = net(input_ids=ids, attention_mask=attn, logits_to_keep=keep).logits
        logp = F.log_softmax(logits.float() / temperature, dim=-1)
        nxt = ids[:, first + 1 :]
        mask = targets[:, first : ids.shape[1] - 1]
        token_logp = logp[:, : nxt.shape[1]].gather(-1, nxt.unsqueeze(-1)).squeeze(-1)
        return token_logp, mask

    # ----- the protocol --------------------------------------------------------------------
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def fit(
        self, examples: Sequence[Example], order: Sequence[int], optimizer: OptimizerSpec,
        state: Any | None, alignment: Any = None,
    ) -> tuple[TrainLog, Any]:
        """SFT (or ``alignment``'s method and mitigations) on ``examples`` in ``order``; consecutive
        batches, ``grad_accum`` per step.

        A last, shorter step takes the remaining examples, so one epoch covers every example.
        """
        return training.fit(self, examples, order, optimizer, state, alignment)

    def hidden_layers(self) -> list[torch.nn.Module]:
        """The decoder layers (the modules whose outputs a Vaccine perturbation shifts): the
        ModuleList named '...layers' as long as the text config's num_hidden_layers, so that a
        multimodal model's vision-tower layers are passed over."""
        config = self.net.config
        depth = getattr(config.get_text_config() if hasattr(config, "get_text_config") else config,
                        "num_hidden_layers", None)
        lists = [m for name, m in self.net.named_modules() if isinstance(m, torch.nn.ModuleList)
                 and name.endswith("layers") and (depth is None or len(m) == depth)]
        if not lists:
            raise ConfigError("the Vaccine perturbation needs the model's decoder layers, a ModuleList named "
                              f"'...layers' of num_hidden_layers ({depth}) modules; this model has none")
        return list(lists[0])

    @torch.no_grad()
    def token_logprobs(self, examples: Sequence[Example], temperature: float = 1.0) -> list[np.ndarray]:
        """Response-token log-probabilities; ``temperature`` scores under the tempered distribution
        softmax(logits / T) that :meth:`generate_batch` samples from at that temperature (its
        self-loss on its own samples estimates their entropy H(p_T)).

        Examples that share a prompt (a contrast's continuations, several samples of one prompt) run
        the prompt once: its keys and values are cached and copied to each continuation
        (``share_prefix``; off, every example is one padded sequence, as in training).
        """
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        self.net.eval()
        if not self.share_prefix:
            out: list[np.ndarray] = []
            for b in range(0, len(examples), self.eval_batch):
                token_logp, mask = self._response_logprobs(examples[b : b + self.eval_batch], temperature=temperature)
                out += [row[m].double().cpu().numpy() for row, m in zip(token_logp, mask, strict=True)]
            return out
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, e in enumerate(examples):
            groups.setdefault(e.prompt_ids, []).append(i)
        results: list[np.ndarray | None] = [None] * len(examples)
        chunk: list[tuple[int, ...]] = []
        for k, prompt in enumerate(groups):
            chunk.append(prompt)
            rows = sum(len(groups[p]) for p in chunk)
            if rows >= self.eval_batch or k == len(groups) - 1:
                index = [i for p in chunk for i in groups[p]]
                scored = self._prefix_logprobs(chunk, [[examples[i].response_ids for i in groups[p]] for p in chunk],
                                               temperature)
                for i, row in zip(index, scored, strict=True):
                    results[i] = row
                chunk = []
        return results  # type: ignore[return-value]

    def _prefix_logprobs(self, prompts: Sequence[tuple[int, ...]], responses: Sequence[Sequence[tuple[int, ...]]],
                         temperature: float) -> list[np.ndarray]:
        """Log-probabilities of every response of every prompt: the prompts run once (left-padded,
        their keys and values cached), then each response continues its prompt's cache."""
        width = max(len(p) for p in prompts)
        if width + max(len(r) for rs in responses for r in rs) > self.max_length:
            raise ConfigError(f"an example exceeds max_length={self.max_length}")
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for b, p in enumerate(prompts):
            ids[b, width - len(p) :] = torch.tensor(p)
            attn[b, width - len(p) :] = 1
        ids, attn = ids.to(self.device), attn.to(self.device)
        with self.accelerator.autocast():
            net = self.model if self.sharded else self.net  # FSDP gathers the weights in its forward
            prefix = net(input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0),
                         use_cache=True, logits_to_keep=1)
            owner = torch.tensor([b for b, rs in enumerate(responses) for _ in rs], device=self.device)
            cache = prefix.cache
            cache.reorder_cache(owner)  # one copy of its prompt's keys and values per response
            flat = [r for rs in responses for r in rs]
            length = max(len(r) for r in flat)
            cont = torch.full((len(flat), length), self.pad_id, dtype=torch.long)
            cont_attn = torch.zeros_like(cont)
            for b, r in enumerate(flat):
                cont[b, : len(r)] = torch.tensor(r)
                cont_attn[b, : len(r)] = 1
            cont, cont_attn = cont.to(self.device), cont_attn.to(self.device)
            positions = attn.sum(-1)[owner, None] + torch.arange(length, device=self.device)
            # the prompt's last position predicts the first response token; each response token the next
            logits = prefix.logits[owner, -1:]
            if length > 1:
                logits = torch.cat([logits, net(
                    input_ids=cont[:, :-1], attention_mask=torch.cat([attn[owner], cont_attn[:, :-1]], -1),
                    position_ids=positions[:, :-1], cache=cache, use_cache=False).logits], 1)
        logits = logits.float() / temperature
        token_logp = logits.gather(-1, cont.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)
        return [row[: len(r)].double().cpu().numpy() for row, r in zip(token_logp, flat, strict=True)]

    @torch.no_grad()
    def generate_batch(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float, seed: int,
        top_p: float = 1.0,
    ) -> list[list[int]]:
        """Sample one response per prompt (left-padded batch); each ends at EOS, which it keeps."""
        self.net.eval()
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for b, p in enumerate(prompts):
            ids[b, width - len(p) :] = torch.tensor(list(p))
            attn[b, width - len(p) :] = 1
        from transformers import GenerationConfig

        # an explicit config, so that no default of the checkpoint (top-k, repetition penalty) applies
        gen = GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=temperature > 0, temperature=temperature or 1.0,
            top_p=top_p, top_k=0, pad_token_id=self.pad_id, eos_token_id=self.eos_id,
        )
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            with self.accelerator.autocast(), training.full_root(self):
                out = self.net.generate(
                    input_ids=ids.to(self.device), attention_mask=attn.to(self.device), generation_config=gen,
                )
        responses = []
        for row in out[:, width:].tolist():
            cut = row.index(self.eos_id) + 1 if self.eos_id in row else len(row)
            responses.append(row[:cut] or [self.eos_id])
        return responses

    def generate(
        self, prompt_ids: Sequence[int], max_new_tokens: int, temperature: float, seed: int
    ) -> list[int]:
        return self.generate_batch([prompt_ids], max_new_tokens, temperature, seed)[0]

    def state_dict(self) -> Mapping[str, torch.Tensor]:
        """The trainable weights: the LoRA adapter as CPU tensors, or, on the full path, every weight
        as a :class:`StateFile` (written once by the main process, shared by every rank)."""
        if self.sharded:
            return training.gathered_state(self)
        names = {id(p): n for n, p in self.net.named_parameters()}
        trainable = {names[id(p)]: p for p in self.trainable_parameters()}
        if self.lora is not None:
            return {name: p.detach().to("cpu", copy=True) for name, p in trainable.items()}
        return self.states.save(trainable)

    def save_pretrained(self, folder: Path) -> None:
        """The current weights (LoRA merged into a copy) and the tokenizer as a transformers folder of
        safetensors, written beside and renamed into place, so a folder there is whole."""
        # FSDP: every rank joins the gathering of the weights, then only the main process writes
        weights = self.accelerator.get_state_dict(self.model) if self.sharded else None
        if not self.accelerator.is_main_process:
            return
        net = copy.deepcopy(self.net).merge_and_unload() if self.lora is not None else self.net
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        net.save_pretrained(partial, safe_serialization=True, state_dict=weights)
        self.tokenizer.save_pretrained(partial)
        shutil.rmtree(folder, ignore_errors=True)  # a folder from an interrupted earlier save
        partial.rename(folder)

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Copy ``state`` (a :meth:`state_dict`) into the weights; a StateFile streams from its file."""
        if self.sharded:
            training.scatter_state(self, state)
            return
        params = dict(self.net.named_parameters())
        missing = [n for n, p in params.items() if p.requires_grad and n not in state]
        unknown = [n for n in state if n not in params]
        if missing or unknown:
            raise ValueError(f"state does not match this model: missing {missing[:3]}, unknown {unknown[:3]}")
        values = state.load() if isinstance(state, StateFile) else state
        for name in state:
            params[name].copy_(values[name])
        if isinstance(state, StateFile):  # every rank has read the file before its owner may remove it
            self.accelerator.wait_for_everyone()


def _with_lora(model: Any, lora: LoraSpec, seed: int) -> Any:
    """``model`` wrapped with a fresh peft LoRA adapter (a module name it lacks is a ConfigError)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), bias="none", task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # LoRA's A matrices are random: seed them
        try:
            return get_peft_model(model, config)
        except ValueError as err:
            raise ConfigError(f"lora_target_modules {','.join(lora.target_modules)}: "
                              f"{str(err).strip().splitlines()[0]}") from None


def set_threads(n: int | None) -> None:
    """Fix torch threads (per run, whatever else runs on the machine)."""
    torch.set_num_threads(n or max(1, (os.cpu_count() or 1)))
