"""The plan of an llm run, made before anything is launched (``--dry-run``): the model built on the
meta device from its config alone (no weights), the optimizer steps and tokens of the preset, the
memory per GPU under each accelerate config, and a time estimate.

Memory follows the ZeRO paper's accounting (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations
Toward Training Trillion Parameter Models", section 3.1): each trainable parameter holds 16 bytes in
bf16 mixed precision with AdamW. DeepSpeed holds the model in bf16 with fp32 master weights in the
optimizer (2 + 2 + 4 + 8 for AdamW's two moments); accelerate's DDP and FSDP, and one GPU, keep fp32
weights and gradients under bf16 autocast (4 + 4 + 8): the fp32 weights are the master copy. A frozen
weight (the base model under LoRA) holds only its forward copy. fp32 is 4 + 4 + 8 everywhere; fp16
takes bf16's bytes. DDP replicates everything; FSDP and ZeRO divide what they shard by the number of
processes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from llm_bridge import common
from llm_bridge.plan_schedule import FITS, SCORED, optimizer_of, runs_of

CONFIGS_DIR = Path(__file__).parent / "accelerate_configs"
SHIPPED_LAYOUTS = ("ddp", "fsdp", "deepspeed_zero3")
ADAM_STATE_BYTES = 8  # AdamW's two fp32 moments per trainable parameter
# Peak dense throughput per GPU in TFLOP/s, from NVIDIA's datasheets (A100 80GB SXM; H100 SXM; H200 SXM,
# whose compute is the H100's): bf16 tensor cores without sparsity, and plain fp32 (PyTorch leaves TF32
# off for matmuls by default).
PEAK_TFLOPS = {"A100 80GB": {"bf16": 312.0, "fp32": 19.5}, "H100 SXM": {"bf16": 989.0, "fp32": 67.0},
               "H200": {"bf16": 989.0, "fp32": 67.0}}
# Model FLOPs utilisation assumed for the time estimate, not measured: PaLM's pre-training reached 46%
# (Chowdhery et al. 2022, Table 3); fine-tuning with small micro-batches usually reaches less.
MFU = 0.40


@dataclass(frozen=True, kw_only=True)
class Layout:
    """How one accelerate config places the training state: processes, and what it shards over them."""

    name: str
    processes: int
    shards_parameters: bool = False
    shards_gradients: bool = False
    shards_optimizer: bool = False
    offloads_parameters: bool = False  # held in CPU memory between uses
    offloads_optimizer: bool = False
    casts_weights: bool = False  # holds the model in the 16-bit dtype, fp32 master weights in the optimizer


@dataclass(frozen=True, kw_only=True)
class Precision:
    """One training precision: its name and the bytes of an activation."""

    name: str
    activation: int


PRECISIONS = (Precision(name="bf16", activation=2), Precision(name="fp32", activation=4))


def state_bytes(precision: Precision, layout: Layout) -> tuple[int, int, int]:
    """Bytes per parameter of the forward weight, an fp32 master copy and the gradient."""
    if precision.name == "bf16" and layout.casts_weights:
        return 2, 4, 2
    return 4, 0, 4  # fp32, or bf16 autocast over fp32 weights (their own master copy)


def config_precision(adapter: Any, device: str) -> str:
    """The precision row of a config's ``dtype``: ``auto`` is bf16 on CUDA; fp16 has bf16's bytes."""
    dtype = adapter.dtype if adapter.dtype != "auto" else "bf16" if device.startswith("cuda") else "fp32"
    return "bf16" if dtype == "fp16" else dtype


@dataclass(frozen=True, kw_only=True)
class ModelShape:
    """What the plan needs of a causal LM, counted on its meta-device build."""

    architecture: str
    parameters: int  # every parameter once (a tied head is the embedding table)
    input_embedding: int  # entries of the input embedding table
    tied: bool
    layers: int
    hidden: int
    q_width: int  # heads x head_dim
    kv_width: int  # kv heads x head_dim
    intermediate: int
    vocab: int
    lora_parameters: int  # LoRA A and B entries at the config's rank and target modules

    @property
    def matmul_parameters(self) -> int:
        """Weights each token is multiplied by: an untied input table is a lookup, not a matmul."""
        return self.parameters - (0 if self.tied else self.input_embedding)


def config_source(model: str) -> tuple[str, dict[str, str]]:
    """Where the model's config is read from (and the gguf_file argument of a GGUF): a local folder
    holding config.json, a config.json, a .gguf file or a built-in name; never a download."""
    from llm_bridge.models import BUILTIN_MODELS, builtin_gguf

    path = Path(model).expanduser()
    if model in BUILTIN_MODELS or (path.is_file() and path.suffix == ".gguf"):
        gguf = builtin_gguf(model) if model in BUILTIN_MODELS else path
        return str(gguf.parent), {"gguf_file": gguf.name}
    if (path.is_file() and path.suffix == ".json") or (path / "config.json").is_file():
        return str(path), {}
    raise ConfigError(f"a dry run reads a local config.json and '{model}' is neither a folder holding one, a "
                      "config.json, a .gguf nor a built-in name (for a hub model: hf download OWNER/NAME "
                      "config.json --local-dir DIR, then --model DIR)")


def meta_model(model: str, trust_remote_code: bool = False) -> Any:
    """The causal LM of ``model``'s config on the meta device: shapes without memory or weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    source, extra = config_source(model)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **extra)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"cannot build a causal LM from the config of '{model}' "
                          f"({str(err).strip().splitlines()[0]})") from None


def model_shape(net: Any, adapter: common.AdapterSettings) -> ModelShape:
    """The counts and widths of a (meta-device) causal LM, with its LoRA parameters at ``adapter``."""
    config = net.config.get_text_config()
    needed = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
    missing = [key for key in needed if getattr(config, key, None) is None]
    if missing:
        raise ConfigError(f"the model config has no {', '.join(missing)}: the activation estimate needs a decoder's "
                          "widths")
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    embedding = net.get_input_embeddings().weight
    head = net.get_output_embeddings()
    return ModelShape(
        architecture=type(net).__name__, parameters=sum(p.numel() for p in net.parameters()),
        input_embedding=embedding.numel(), tied=head is not None and head.weight is embedding,
        layers=config.num_hidden_layers, hidden=config.hidden_size, q_width=heads * head_dim,
        kv_width=kv_heads * head_dim, intermediate=config.intermediate_size, vocab=config.vocab_size,
        lora_parameters=lora_parameters(net, adapter))


def lora_parameters(net: Any, adapter: common.AdapterSettings) -> int:
    """LoRA's A (r x in) and B (out x r) entries on every linear layer a target names, matched as
    peft matches them (the last part of the module's name); none is an error only where LoRA trains."""
    import torch

    targets = set(adapter.lora_target_modules)
    linears = [m for name, m in net.named_modules()
               if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets]
    if not linears and adapter.finetune == "lora":
        raise ConfigError(f"no linear layer of this model is named {', '.join(sorted(targets))} (lora_target_modules)")
    return sum(adapter.lora_r * (m.in_features + m.out_features) for m in linears)


SINGLE = Layout(name="1 GPU", processes=1)
# FSDP's strategies as ZeRO stages: FULL_SHARD is stage 3, SHARD_GRAD_OP stage 2, NO_SHARD DDP
FSDP_STAGES = {"FULL_SHARD": 3, "1": 3, "SHARD_GRAD_OP": 2, "2": 2, "NO_SHARD": 0, "3": 0}


def read_layout(path: Path, processes: int | None = None) -> Layout:
    """The layout an accelerate config file names; ``processes`` overrides its ``num_processes``."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the accelerate config {path} ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"the accelerate config {path} is not a mapping of settings")
    count = processes if processes is not None else int(raw.get("num_processes", 1))
    if count < 1:
        raise ConfigError(f"num_processes must be >= 1, got {count} ({path})")
    kind = raw.get("distributed_type", "NO")
    if kind in ("NO", "MULTI_GPU"):
        return Layout(name=path.stem, processes=count)
    stage, offload = _zero_stage(kind, raw, path)
    return Layout(name=path.stem, processes=count, shards_parameters=stage >= 3, shards_gradients=stage >= 2,
                  shards_optimizer=stage >= 1, offloads_parameters=offload.get("param", "none") != "none",
                  offloads_optimizer=offload.get("optimizer", "none") != "none", casts_weights=kind == "DEEPSPEED")


def _zero_stage(kind: str, raw: dict[str, Any], path: Path) -> tuple[int, dict[str, str]]:
    """The ZeRO stage of an FSDP or DeepSpeed config, and where it offloads (param/optimizer -> device)."""
    if kind == "FSDP":
        fsdp = raw.get("fsdp_config") or {}
        if fsdp.get("fsdp_version") == 2:  # FSDP2 says it with reshard_after_forward
            return (3 if fsdp.get("fsdp_reshard_after_forward", True) else 2), {}
        strategy = str(fsdp.get("fsdp_sharding_strategy", "FULL_SHARD"))
        if strategy not in FSDP_STAGES:
            raise ConfigError(f"{path}: fsdp_sharding_strategy {strategy} is not one the plan reads "
                              f"({', '.join(s for s in FSDP_STAGES if not s.isdigit())})")
        offload = "cpu" if fsdp.get("fsdp_offload_params") else "none"  # FSDP offloads both together
        return FSDP_STAGES[strategy], {"param": offload, "optimizer": offload}
    if kind == "DEEPSPEED":
        ds = raw.get("deepspeed_config") or {}
        if "zero_stage" not in ds:
            raise ConfigError(f"{path}: deepspeed_config names no zero_stage (a deepspeed_config_file is not read)")
        return int(ds["zero_stage"]), {"param": str(ds.get("offload_param_device", "none")),
                                       "optimizer": str(ds.get("offload_optimizer_device", "none"))}
    raise ConfigError(f"{path}: distributed_type {kind} is not one the plan reads (NO, MULTI_GPU, FSDP, DEEPSPEED)")


def layouts(paths: Sequence[str] = (), processes: int | None = None) -> list[Layout]:
    """One GPU without accelerate, then each accelerate config (the shipped three when none is given)."""
    if processes is not None and processes < 1:
        raise ConfigError(f"--num-processes must be >= 1, got {processes}")
    files = [Path(p) for p in paths] or [CONFIGS_DIR / f"{name}.yaml" for name in SHIPPED_LAYOUTS]
    for file in files:
        if not file.is_file():
            raise ConfigError(f"accelerate config {file} does not exist")
    return [SINGLE, *(read_layout(file, processes) for file in files)]


def activation_elements(shape: ModelShape, checkpointing: bool) -> int:
    """Elements saved for the backward pass per token of a micro-batch, in the decoder's layers.

    Counted as Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
    Models", section 4.1) count them, for a pre-norm decoder with a gated MLP and fused attention
    (SDPA/flash: no seq x seq scores are kept): per layer the two norms' inputs and outputs (4h), q and
    the attention output (2 q_width), k and v (2 kv_width), and the MLP's gate, its activation, up and
    their product (4 intermediate). Checkpointing each layer keeps its input (h) and recomputes one
    layer at a time. Temporaries and the allocator's fragmentation are not counted."""
    layer = 4 * shape.hidden + 2 * shape.q_width + 2 * shape.kv_width + 4 * shape.intermediate
    kept = shape.layers * (shape.hidden if checkpointing else layer) + (layer if checkpointing else 0)
    return kept + 2 * shape.hidden  # the final norm


def activation_bytes(shape: ModelShape, precision: Precision, tokens: int, checkpointing: bool) -> int:
    """Activations of a micro-batch of ``tokens`` tokens; the head keeps the logits and their fp32
    log-softmax (and the fp32 copy of 16-bit logits) at every position, an upper bound: the adapter
    keeps logits only from the first response token on."""
    head = shape.vocab * (precision.activation + 4 + (4 if precision.activation < 4 else 0))
    return tokens * (activation_elements(shape, checkpointing) * precision.activation + head)


@dataclass(frozen=True, kw_only=True)
class Memory:
    """Bytes per GPU of one (layout, fine-tuning, precision)."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    activations_checkpointed: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    @property
    def total_checkpointed(self) -> int:
        return self.total - self.activations + self.activations_checkpointed


def memory(shape: ModelShape, layout: Layout, precision: Precision, finetune: str, tokens: int) -> Memory:
    """Per-GPU memory: what a layout shards is divided by its processes, what it offloads leaves the GPU."""
    trainable = shape.parameters if finetune == "full" else shape.lora_parameters
    held = shape.parameters + (shape.lora_parameters if finetune == "lora" else 0)
    weight, master, gradient = state_bytes(precision, layout)

    def per_gpu(total: int, sharded: bool, offloaded: bool = False) -> int:
        return 0 if offloaded else math.ceil(total / layout.processes) if sharded else total

    return Memory(
        weights=per_gpu(held * weight, layout.shards_parameters, layout.offloads_parameters),
        gradients=per_gpu(trainable * gradient, layout.shards_gradients),
        optimizer=per_gpu(trainable * (ADAM_STATE_BYTES + master), layout.shards_optimizer,
                          layout.offloads_optimizer),
        activations=activation_bytes(shape, precision, tokens, False),
        activations_checkpointed=activation_bytes(shape, precision, tokens, True))


def micro_batch(optimizer: Any, processes: int) -> int:
    """Sequences in one forward pass on one GPU: a step's examples are split over the processes, each
    running micro-batches of at most ``batch_size`` (the adapter's fit)."""
    return min(optimizer.batch_size, math.ceil(optimizer.examples_per_step / processes))


def training_flops(shape: ModelShape, tokens: int, max_length: int, finetune: str, checkpointing: bool) -> float:
    """FLOPs of the training passes over ``tokens`` tokens.

    Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", section 2.1): a forward pass costs
    2N + 2 n_layer n_ctx d_attn per token and a training step three forward passes (6N for full
    fine-tuning). LoRA skips the frozen weights' gradients, a third of the work (two forward passes);
    checkpointing recomputes the forward pass once more. n_ctx is max_length: an upper bound."""
    passes = (3 if finetune == "full" else 2) + (1 if checkpointing else 0)
    return passes * forward_flops(shape, tokens, max_length)


def forward_flops(shape: ModelShape, tokens: int, max_length: int) -> float:
    """One forward pass over ``tokens`` tokens (Kaplan et al. 2020: 2N + 2 n_layer n_ctx d_attn per token)."""
    return float((2 * shape.matmul_parameters + 2 * shape.layers * max_length * shape.q_width) * tokens)


def hours(flops: float, gpu: str, precision: str, processes: int) -> float:
    return flops / (processes * PEAK_TFLOPS[gpu][precision] * 1e12 * MFU) / 3600


def make_plan(experiment: str, preset: str, config: Any, accelerate_configs: Sequence[str] = (),
              processes: int | None = None) -> dict[str, Any]:
    """The plan of ``config`` as JSON-ready data: the model, the schedule, memory per GPU under one GPU
    and each accelerate config (full fine-tuning and LoRA, bf16 and fp32) and the time estimate."""
    if experiment not in FITS:
        raise ConfigError(f"{experiment} trains nothing: a dry run plans {' and '.join(FITS)}")
    adapter, opt = config.adapter, optimizer_of(config)
    shape = model_shape(meta_model(config.model, config.trust_remote_code), adapter)
    per_run = FITS[experiment](config)
    runs = runs_of(config)
    examples = runs * sum(fit.examples for fit in per_run)
    scored = runs * SCORED[experiment](config)
    placed = layouts(accelerate_configs, processes)
    return {
        "experiment": experiment, "preset": preset, "model": config.model, "architecture": shape.architecture,
        "parameters": shape.parameters, "matmul_parameters": shape.matmul_parameters,
        "input_embedding": shape.input_embedding, "tied_embeddings": shape.tied,
        "lora": {"r": adapter.lora_r, "target_modules": list(adapter.lora_target_modules),
                 "parameters": shape.lora_parameters},
        "finetune": adapter.finetune, "gradient_checkpointing": adapter.gradient_checkpointing,
        "dtype": adapter.dtype, "precision": config_precision(adapter, config.execution.device),
        "schedule": {"runs": runs, "per_run": [vars(fit) for fit in per_run],
                     "optimizer_steps": runs * sum(fit.steps for fit in per_run), "examples": examples,
                     "max_tokens": examples * adapter.max_length, "max_length": adapter.max_length,
                     "scored_sequences": scored,
                     "batch_size": opt.batch_size, "grad_accum": opt.grad_accum},
        "memory": memory_rows(shape, placed, opt, adapter.max_length),
        "time": time_rows(shape, {"full": examples, "lora": examples, "score": scored}, adapter,
                          sorted({lay.processes for lay in placed})),
        "assumptions": {"mfu": MFU, "peak_tflops": PEAK_TFLOPS},
    }


def memory_rows(shape: ModelShape, placed: Sequence[Layout], opt: Any, max_length: int) -> list[dict[str, Any]]:
    rows = []
    for layout in placed:
        batch = micro_batch(opt, layout.processes)
        for finetune in ("full", "lora"):
            for precision in PRECISIONS:
                mem = memory(shape, layout, precision, finetune, batch * max_length)
                rows.append({"layout": layout.name, "processes": layout.processes, "micro_batch": batch,
                             "finetune": finetune, "precision": precision.name, **vars(mem),
                             "total": mem.total, "total_checkpointed": mem.total_checkpointed})
    return rows


def time_rows(shape: ModelShape, sequences: dict[str, int], adapter: common.AdapterSettings,
              counts: Sequence[int]) -> list[dict[str, Any]]:
    """Hours per GPU type and count of the training passes (``full`` and ``lora``) and of the forward
    passes that score and sample (``score``), every sequence at max_length: an upper bound. Every rank
    scores and samples everything (the adapter does not split it), so ``score`` is one GPU's time."""
    rows = []
    for work, n in sequences.items():
        tokens = n * adapter.max_length
        flops = (training_flops(shape, tokens, adapter.max_length, work, adapter.gradient_checkpointing)
                 if work != "score" else forward_flops(shape, tokens, adapter.max_length))
        rows += [{"gpu": gpu, "precision": precision.name, "work": work, "processes": count,
                  "flops": flops, "hours": hours(flops, gpu, precision.name, count)}
                 for gpu in PEAK_TFLOPS for precision in PRECISIONS for count in (counts if work != "score" else [1])]
    return rows
