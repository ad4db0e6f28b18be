"""The SFT loop of ``HFCausalLM.fit``, through an ``accelerate.Accelerator`` (and, with an
``alignment``, its method's loss and mitigations: :mod:`toymodels.alignment`).

The paper's SFT: AdamW, constant learning rate (no scheduler), loss on response tokens only, a
token-weighted mean over each optimizer step. One optimizer step takes ``examples_per_step``
examples in ``grad_accum`` micro-batches, and a shorter last step takes the rest, so the forward
and the inverse path of a pair take equal steps (``toymodels.interface.steps_for``). The
accumulation is explicit rather than ``accelerator.accumulate``, which counts fixed micro-batches
and would not close a step at a partial last batch.

On several processes each step's examples are split across ranks; every rank runs the same
number of micro-batches (a rank short of examples runs a zero-weighted one, so that DDP's and
FSDP's collectives pair up) and only the last one synchronises gradients (``no_sync`` before it).
The loss is scaled by the world size, since DDP and FSDP average gradients over ranks, so the
update is the global token mean, as on one device.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch

from harness.errors import ConfigError
from toymodels.alignment import Alignment, AlignmentSpec, examples_of, step_count
from toymodels.interface import OptimizerSpec, TrainLog

if TYPE_CHECKING:
    from llm_bridge.adapter import HFCausalLM

Dtype = Literal["auto", "bf16", "fp16", "fp32"]
DTYPES: tuple[str, ...] = ("auto", "bf16", "fp16", "fp32")
# accelerate's names of the mixed-precision modes
MIXED_PRECISION = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}


def mixed_precision(dtype: str, device: str) -> str:
    """accelerate's mixed-precision mode of ``dtype`` on ``device``: ``auto`` is bf16 on CUDA (the
    paper's) and fp32 elsewhere; fp16 needs CUDA (its loss scaler), whose scaler skips the update of
    a step whose gradients overflow (often the first few), so paths of equal steps may differ in
    updates: prefer bf16. The weights stay fp32 either way."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype}")
    cuda = torch.device(device).type == "cuda"
    if dtype == "fp16" and not cuda:
        raise ConfigError(f"dtype fp16 needs a CUDA device, not {device}; use bf16 or fp32")
    if dtype == "auto":
        return "bf16" if cuda else "no"
    return MIXED_PRECISION[dtype]


def make_accelerator(device: torch.device, precision: str) -> Any:
    """The Accelerator of one adapter: DDP or FSDP under ``accelerate launch`` (its config), else
    one process on ``device`` (``cuda:N`` untested: no GPU was available)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    started = (state.get("_mixed_precision"), getattr(state.get("device"), "type", None))
    if state and not launched and started != (precision, device.type):
        # accelerate keeps one state per process; a single process may hold adapters of several
        # precisions or devices one after another (a test session), so it starts that state afresh
        AcceleratorState._reset_state(reset_partial_state=True)
    if device.type == "cuda" and device.index is not None and not launched:
        torch.cuda.set_device(device)  # accelerate puts a single process on the current CUDA device
    return Accelerator(cpu=device.type == "cpu", mixed_precision=precision)


def fresh_state(optimizer: Any, spec: OptimizerSpec) -> dict[str, Any]:
    """The state of a new AdamW of ``spec`` over ``optimizer`` 's parameters (no moments yet)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay).state_dict()


def fit(lm: HFCausalLM, examples: Sequence[Any], order: Sequence[int], spec: OptimizerSpec,
        state: Any | None, alignment: Alignment | None = None) -> tuple[TrainLog, Any]:
    """SFT of ``lm`` on ``examples`` in ``order``; returns the log and the optimizer state.

    The adapter's one prepared optimizer starts each call from ``state`` (a copy: the caller may
    reuse it for several arms) or fresh, and is left empty, so that no moments outlive the call
    beyond the state returned.
    """
    if len(order) == 0:
        return TrainLog(), state
    # plain SFT is the plain alignment: the same loss, term for term (bit-identical)
    alignment = alignment or Alignment(AlignmentSpec(), [])
    if alignment.spec.perturb and lm.accelerator.num_processes > 1:
        raise ConfigError("the Vaccine perturbation runs on one process only (its first pass is not split across ranks)")
    optimizer = lm.optimizer
    optimizer.load_state_dict(copy.deepcopy(state) if state is not None else fresh_state(optimizer, spec))
    log = TrainLog()
    lm.model.train()
    devices = [lm.device] if lm.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for start in range(0, len(order), spec.examples_per_step):
            step_order = [int(i) for i in order[start : start + spec.examples_per_step]]
            if lm.lora is not None and lm.lora.dropout:
                # dropout masks from the run seed and the step's examples: a step trained again
                # (a resumed run, a saved checkpoint) trains alike, however the epoch was split
                torch.manual_seed(hash((lm.seed, *step_order)) % 2**63)
            step_items = [examples[i] for i in step_order]
            log.losses.append(_step(lm, step_items, spec, alignment))
            alignment.after_step(lm.trainable_parameters())
            log.steps += 1
            log.tokens += sum(len(e.response_ids) for e in examples_of(step_items))
    lm.model.eval()
    lm.net.eval()
    optimizer.zero_grad(set_to_none=True)
    trained = optimizer.state_dict()
    optimizer.load_state_dict(fresh_state(optimizer, spec))
    return log, trained


def _step(lm: HFCausalLM, step_examples: list[Any], spec: OptimizerSpec, alignment: Alignment) -> float:
    """One optimizer step on ``step_examples`` (examples, or pairs for a preference method); returns
    its loss over all ranks (SFT: the token mean)."""
    accelerator, optimizer = lm.accelerator, lm.optimizer
    world, rank = accelerator.num_processes, accelerator.process_index
    n_tokens = step_count(step_examples)  # response tokens, or pairs
    local = step_examples[rank::world]  # each rank its share of the step
    share = -(-len(step_examples) // world)
    n_micro = -(-share // spec.batch_size)  # the same count on every rank
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for k in range(n_micro):
        batch = local[k * spec.batch_size : (k + 1) * spec.batch_size]
        # gradients are all-reduced once per step, at its last micro-batch
        with accelerator.no_sync(lm.model) if k < n_micro - 1 else contextlib.nullcontext():
            total += alignment.backward(
                lambda batch=batch: _aligned_loss(lm, alignment, batch or step_examples[:1], n_tokens, bool(batch)),
                lm.hidden_layers, lambda loss: accelerator.backward(loss * world))
    if world > 1:
        total = float(accelerator.reduce(torch.tensor(total, device=lm.device), "sum"))
    if spec.max_grad_norm is not None:
        accelerator.clip_grad_norm_(lm.model.parameters(), spec.max_grad_norm)
    optimizer.step()
    return total


def _aligned_loss(lm: HFCausalLM, alignment: Alignment, items: list[Any], n_step: int, counts: bool) -> torch.Tensor:
    loss = alignment.loss(items, lambda examples: lm._response_logprobs(examples, train=True), n_step)
    return loss if counts else loss * 0.0  # an empty share still joins the gradient collectives, adding nothing


# --- FSDP (untested: accelerate runs FSDP on GPUs only, and no GPU was available) ---------------
def full_root(lm: HFCausalLM) -> Any:
    """A context in which the unwrapped model can generate: FSDP1 keeps the root's own weights
    (embeddings, final norm, head) sharded outside its forward, so they are gathered; the wrapped
    layers gather theirs as they run. FSDP2 and unsharded models need nothing."""
    if not lm.sharded or lm.accelerator.is_fsdp2:
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel.summon_full_params(lm.model, recurse=False, writeback=False)


def gathered_state(lm: HFCausalLM) -> Any:
    """The full weights of a sharded model, gathered to the main process (a host copy while it
    writes them) and shared by every rank as one StateFile."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return lm.states.save(get_model_state_dict(lm.model, options=StateDictOptions(full_state_dict=True,
                                                                                  cpu_offload=True)))


def scatter_state(lm: HFCausalLM, state: Any) -> None:
    """Load a :func:`gathered_state` into a sharded model: the main process reads the file and
    broadcasts it tensor by tensor; each rank keeps its shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    values = state.load() if lm.accelerator.is_main_process else {}
    set_model_state_dict(lm.model, values, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    lm.accelerator.wait_for_everyone()
