"""What every llm experiment shares: loading the checkpoint and task behind the model protocol,
the reference key of a non-default model and the provenance a reference records (model, weight and
data sha256), and a progress bar over phases.

Template rule: a task's text becomes token ids once, with the task's template (raw for
sentiment; chat for safety and instruction when the model has a chat template), so every
score and KL compares weights on identical ids.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from harness.config import require
from harness.runs import RunDir
from toymodels.interface import OptimizerSpec
from toymodels.sweep import Runtime

DEFAULT_MODEL = "smollm2-135m"
TEMPLATE_RULE = ("task template (raw for sentiment; chat for safety/instruction when the model has one), "
                 "rendered once per example; every score and KL compares weights on identical ids")


@contextmanager
def progress_bar(total: int, desc: str) -> Iterator[Callable[[str], None]]:
    """A bar on stderr advanced once per finished phase; each phase's message stays above it as a log line."""
    with tqdm(total=total, desc=desc, unit="phase", file=sys.stderr) as bar:
        def done(message: str) -> None:
            bar.write(message, file=sys.stderr)
            bar.update()

        yield done


def model_tag(model: str) -> str:
    """A short file-safe name of a model: the built-in name, or the folder/file stem."""
    stem = model if "/" not in model and not model.endswith(".gguf") else Path(model.rstrip("/")).stem
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in stem)


def config_model(run_dir: RunDir) -> str:
    """The model a run folder's config names (a dataclass while running, a dict when reloaded)."""
    config = run_dir.config
    return config["model"] if isinstance(config, Mapping) else config.model


def qualify_reference(run_dir: RunDir, model: str) -> None:
    """Results of a non-default model are recorded under ``<experiment>.<model>`` (results.json key
    and figures/data folder), so SmolLM2 and Gemma 3 rebound results sit side by side."""
    if model != DEFAULT_MODEL:
        run_dir.reference_key = f"{run_dir.experiment}.{model_tag(model)}"
        run_dir.reference_args = f"--model {shlex.quote(model)}"


@dataclass(frozen=True, kw_only=True)
class AdapterSettings:
    """How the checkpoint is fine-tuned: the ``adapter`` block of the llm configs."""

    finetune: Literal["lora", "full"] = "lora"
    lora_r: int = 8
    max_length: int = 512
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        require(self.lora_r >= 1, f"lora_r must be >= 1, got {self.lora_r}")
        require(self.max_length >= 16, f"max_length must be >= 16, got {self.max_length}")


# The cpu-micro optimizer: a higher learning rate than the paper's, so that something moves in a
# few dozen LoRA steps on a CPU.
CPU_MICRO_OPTIMIZER = OptimizerSpec(lr=5e-4, batch_size=2)


def llm_runtime() -> Runtime:
    """One model in one process (several GPUs go through accelerate launch), two CPU threads by default."""
    return Runtime(threads=2)


def regime(adapter: AdapterSettings, optimizer: OptimizerSpec) -> str:
    batch = f"batch {optimizer.batch_size}x{optimizer.grad_accum}"
    if adapter.finetune == "lora":
        return (f"LoRA r={adapter.lora_r}, lr {optimizer.lr:g} constant, {batch}: "
                "a CPU-micro regime, not the paper's (full fine-tuning, lr 1e-5, batch 4x8)")
    return f"full fine-tuning, lr {optimizer.lr:g} constant, {batch}"


def _records(config: Any):
    from llm_bridge.data import default_records
    from llm_bridge.tasks import load_records

    if config.data:
        return load_records(config.data)
    t0 = time.perf_counter()
    records = default_records(config.task)
    print(f"default data for {config.task}: {len(records)} records ({time.perf_counter() - t0:.0f} s, "
          "generation time reported separately by make-data)", file=sys.stderr)
    return records


def load(config: Any, run_dir: RunDir, needs: Mapping[str, int], n_eval: int):
    """Load the model (record its weight hashes), build the adapter and the task.

    ``needs``: training examples per label that the protocol will draw, checked (with ``n_eval``
    held-out prompts) before the model loads.
    """
    from llm_bridge.adapter import HFCausalLM, LoraSpec, set_threads
    from llm_bridge.models import describe_source, load_model
    from llm_bridge.tasks import TEMPLATES, check_data, make_task
    from toymodels.train import resolve_device

    describe_source(config.model)  # a bad model name fails before any data is generated
    device, settings = config.execution.device, config.adapter
    resolve_device(device)
    set_threads(config.execution.threads or None)
    records = _records(config)
    check_data(config.task, records, n_eval, config.seed, needs)
    t0 = time.perf_counter()
    loaded = load_model(config.model, device=device, trust_remote_code=config.trust_remote_code)
    template = TEMPLATES[config.task] if loaded.record["has_chat_template"] else "raw"
    lora = LoraSpec(r=settings.lora_r, alpha=2 * settings.lora_r) if settings.finetune == "lora" else None
    adapter = HFCausalLM(loaded.model, loaded.tokenizer, lora=lora, max_length=settings.max_length,
                         device=device, seed=config.seed, template=template,
                         gradient_checkpointing=settings.gradient_checkpointing)
    task = make_task(config.task, records, adapter, n_eval=n_eval, seed=config.seed)
    run_dir.write_json("model.json", {**loaded.record, "template": template, "template_rule": TEMPLATE_RULE,
                                      "tokenizer_fingerprint": adapter.tokenizer_fingerprint(),
                                      "load_seconds": round(time.perf_counter() - t0, 1)})
    return adapter, task


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a folder (a saved ``datasets`` folder): of its files' names and hashes."""
    from llm_bridge.models import sha256_file

    if path.is_file():
        return sha256_file(path)
    listing = "".join(f"{p.relative_to(path)}\0{sha256_file(p)}\n" for p in sorted(path.rglob("*")) if p.is_file())
    return hashlib.sha256(listing.encode()).hexdigest()


def provenance(config: Any, run_dir: RunDir) -> dict[str, Any]:
    """What a reference records about a real-checkpoint run: the model, the sha256 of its weight files
    (from the ``model.json`` that :func:`load` wrote) and the sha256 of the data it was given."""
    from llm_bridge.data import default_spec, make_data

    record = run_dir.read_json("model.json")
    out = {"model": config.model, "weights_sha256": record["weights_sha256"]}
    if hasattr(config, "task"):  # a model's own samples (llm.pareto) have no data file
        data = Path(config.data) if config.data else make_data(default_spec(config.task))  # cached by then
        out.update(data=config.data or f"the default {config.task} data", data_sha256=sha256_path(data))
    if "gguf_sha256" in record:
        out["gguf_sha256"] = record["gguf_sha256"]
    return out


# The paper's SFT settings (digest §5.6), shared by the `paper` presets: each key names one leaf
# of the rebound config, and of the resistance config except warmup_examples.
PAPER = {"finetune": "full", "lr": 1e-5, "batch_size": 4, "grad_accum": 8, "max_grad_norm": 1.0,
         "max_length": 2048, "seed": 42, "device": "cuda", "warmup_examples": 0, "threads": 0}
FLAGS = {"--model": "model", "--task": "task", "--lr": "lr", "--data": "data", "--finetune": "adapter.finetune"}
