"""What every llm experiment shares: its independent runs (data draws x training seeds, and the
no-pre-training starts) as a grid of cells, loading the checkpoint and task of one run behind the
model protocol, the reference key of a non-default model or task, and the provenance a reference
records (model, weight and data sha256).

Template rule: a task's text becomes token ids once, with the task's template (raw for
sentiment; chat for safety and instruction when the model has a chat template), so every
score and KL compares weights on identical ids.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.config import Preset, require, seeds_of
from harness.errors import ConfigError
from harness.runs import RunDir
from toymodels.interface import OptimizerSpec
from toymodels.sweep import Execution, Runtime

DEFAULT_MODEL = "smollm2-135m"
TEMPLATE_RULE = ("task template (raw for sentiment; chat for safety/instruction when the model has one), "
                 "rendered once per example; every score and KL compares weights on identical ids")


def model_tag(model: str) -> str:
    """A short file-safe name of a model: the built-in name, or the folder/file stem."""
    stem = model if "/" not in model and not model.endswith(".gguf") else Path(model.rstrip("/")).stem
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in stem)


def config_model(run_dir: RunDir) -> str:
    """The model a run folder's config names (a dataclass while running, a dict when reloaded)."""
    config = run_dir.config
    return config["model"] if isinstance(config, Mapping) else config.model


def qualify_reference(run_dir: RunDir, config: Any, default_task: str | None = None) -> None:
    """Results of a non-default model or task are recorded under ``<experiment>.<model>.<task>``
    (results.json key and figures/data folder; each part only where it is not the default, and
    ``.controls`` for a run with the no-pre-training controls), so that SmolLM2 and Gemma 3,
    sentiment and safety, sit side by side."""
    parts, args = [run_dir.experiment], []
    if config.model != DEFAULT_MODEL:
        parts.append(model_tag(config.model))
        args.append(f"--model {shlex.quote(config.model)}")
    if default_task is not None and config.task != default_task:
        parts.append(config.task)
        args.append(f"--task {config.task}")
    if getattr(config, "adapter_path", ""):  # a PEFT adapter merged into the model is another model
        parts.append(model_tag(config.adapter_path))
        args.append(f"--set adapter_path={shlex.quote(config.adapter_path)}")
    if getattr(config, "controls", ()):  # the no-pre-training controls beside their own pre-trained runs
        parts.append("controls")
    run_dir.reference_key, run_dir.reference_args = ".".join(parts), " ".join(args)


# the layouts a data file may be read as (llm_bridge.paper_data.DATA_FORMATS, checked by a test)
DataFormat = Literal["auto", "records", "imdb", "beavertails", "alpaca", "truthfulqa"]
LORA_RANK = 8  # the default rank of the LoRA adapters
# the attention projections, whose names Llama and Gemma share
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True, kw_only=True)
class AdapterSettings:
    """How the checkpoint is fine-tuned: the ``adapter`` block of the llm configs. ``lora_alpha``
    left out is 2 * ``lora_r``; ``lora_target_modules`` is a comma list of module names. ``dtype``
    is the mixed precision of training and scoring (weights stay fp32): ``auto`` is bf16 on CUDA,
    as the paper, and fp32 on CPU; fp16 needs CUDA."""

    finetune: Literal["lora", "full"] = "lora"
    lora_r: int = LORA_RANK
    lora_alpha: int | None = None
    lora_dropout: float = 0.0
    lora_target_modules: tuple[str, ...] = LORA_TARGETS
    max_length: int = 512
    gradient_checkpointing: bool = False
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"

    def __post_init__(self) -> None:
        require(self.lora_r >= 1, f"lora_r must be >= 1, got {self.lora_r}")
        require(self.lora_alpha is None or self.lora_alpha >= 1, f"lora_alpha must be >= 1, got {self.lora_alpha}")
        require(0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        targets = self.lora_target_modules
        require(len(targets) >= 1 and len(set(targets)) == len(targets),
                f"lora_target_modules must name at least one module, each once, got {','.join(targets)}")
        for f in dataclasses.fields(self):  # the LoRA keys, where no LoRA is trained
            value = getattr(self, f.name)
            shown = ",".join(value) if isinstance(value, tuple) else value
            require(self.finetune == "lora" or not f.name.startswith("lora_") or value == f.default,
                    f"adapter.{f.name} = {shown} is not used with finetune = {self.finetune}; leave it out")
        require(self.max_length >= 16, f"max_length must be >= 16, got {self.max_length}")


def lora_spec(settings: AdapterSettings) -> Any:
    """The peft settings of an ``adapter`` block (None for full fine-tuning)."""
    from llm_bridge.adapter import LoraSpec

    if settings.finetune != "lora":
        return None
    alpha = settings.lora_alpha if settings.lora_alpha is not None else 2 * settings.lora_r
    return LoraSpec(r=settings.lora_r, alpha=alpha, dropout=settings.lora_dropout,
                    target_modules=settings.lora_target_modules)


# The cpu-micro optimizer: a higher learning rate than the paper's, so that something moves in a
# few dozen LoRA steps on a CPU.
CPU_MICRO_OPTIMIZER = OptimizerSpec(lr=5e-4, batch_size=2)


def llm_runtime() -> Runtime:
    """One model in one process (several GPUs go through accelerate launch), two CPU threads by default."""
    return Runtime(threads=2)


# The replicated headline presets: 6 independent runs (3 training seeds x 2 data draws), two at once
# with one thread each (about 15% more runs per hour on 2 cores than one run with two threads).
REPLICATED = {"seeds": 3, "data_draws": (0, 1), "execution.threads": 1, "execution.n_jobs": 2}
# Neither LoRA nor full fine-tuning aligns a model without its knowledge in the cpu-micro steps
# (README, "No pre-training"); the controls and their pre-trained counterparts are fully fine-tuned,
# at a tenth of the LoRA learning rate.
CONTROLS = {**REPLICATED, "controls": ("random", "permuted"), "finetune": "full", "lr": 5e-5}


def replication_presets(replicated_seconds: int, controls_seconds: int, measured: str,
                        controls_measured: str) -> dict[str, Preset]:
    """The ``replicated`` and ``replicated-controls`` presets of an llm experiment; the estimates are
    SmolLM2's, and ``measured`` says what the reference runs took."""
    return {"replicated": Preset(REPLICATED, f"cpu-micro x 6 independent runs (3 training seeds x 2 data draws; "
                                 f"{measured})", est_seconds=replicated_seconds),
            "replicated-controls": Preset(CONTROLS, "replicated with full fine-tuning (lr 5e-5), each run also from "
                                          "a random init and from permuted weights (the no-pre-training controls; "
                                          f"{controls_measured})", est_seconds=controls_seconds)}


def llm_execution() -> Execution:
    """The independent runs of an llm experiment one after another in one process with two CPU
    threads; ``n_jobs=2 threads=1`` runs two at once (about 15% more runs per hour on 2 cores)."""
    return Execution(threads=2, n_jobs=1)


def run_grid(config: Any) -> Any:
    """The independent runs of a config as a grid: starting point x data draw (x treatment, for a
    config of several alignment conditions), training seeds innermost."""
    from toymodels.protocols.resistance_readings import BASELINE
    from toymodels.sweep import Grid

    axes = {"init": ("pretrained", *config.controls), "draw": config.data_draws}
    treatments = getattr(config, "treatments", (BASELINE,))
    return Grid.of({**axes, **({"treatment": treatments} if treatments != (BASELINE,) else {})}, seeds_of(config))


def regime(adapter: AdapterSettings, optimizer: OptimizerSpec) -> str:
    batch = f"batch {optimizer.batch_size}x{optimizer.grad_accum}"
    if adapter.finetune == "lora":
        return (f"{lora_text(adapter)}, lr {optimizer.lr:g} constant, {batch}: "
                "a CPU-micro regime, not the paper's (full fine-tuning, lr 1e-5, batch 4x8)")
    return f"full fine-tuning, lr {optimizer.lr:g} constant, {batch}"


def lora_text(adapter: AdapterSettings) -> str:
    """``LoRA r=8``, and the LoRA settings that are not the defaults."""
    text = f"LoRA r={adapter.lora_r}"
    if adapter.lora_alpha is not None:
        text += f" alpha={adapter.lora_alpha}"
    if adapter.lora_dropout:
        text += f" dropout={adapter.lora_dropout:g}"
    if adapter.lora_target_modules != LORA_TARGETS:
        text += f" on {','.join(adapter.lora_target_modules)}"
    return text


def data_path(config: Any) -> Path:
    """The data a config runs on: its ``data`` path, or the shipped default of its task."""
    from llm_bridge.data import default_data_path

    return Path(config.data) if config.data else default_data_path(config.task)


def data_record(config: Any) -> dict[str, str]:
    """What a run records about its data: the path (or the shipped default) and its sha256."""
    path = data_path(config)
    return {"data": config.data or f"the shipped {config.task} data", "data_sha256": sha256_path(path)}


def pretrained_runs(config: Any) -> dict[str, tuple[int, int]]:
    """The independent runs a config names, by label: every (data draw, training seed) pair."""
    return {run_label("pretrained", draw, seed): (draw, seed) for draw in config.data_draws for seed in seeds_of(config)}


def run_label(init: str, draw: int, seed: int) -> str:
    """The metrics table's ``seed`` column of one run, e.g. ``d0-s42`` (``random-d0-s42`` for a control)."""
    return f"d{draw}-s{seed}" if init == "pretrained" else f"{init}-d{draw}-s{seed}"


def cell_label(init: str, draw: int, seed: int, treatment: str = "") -> str:
    """The name of a run's cells in its run folder: its :func:`run_label`, with its alignment
    condition in a run of several (the ``seed`` column leaves it out, so that treatments pair by run)."""
    return run_label(init, draw, seed) + (f"-{treatment}" if treatment else "")


def cell_run(cell: Any) -> tuple[str, int, int]:
    """A run-grid cell's starting point, data draw and training seed."""
    return str(cell["init"]), int(cell["draw"]), cell.seed


def cell_treatment(cell: Any) -> str:
    """A run-grid cell's alignment condition ("" in a grid without the treatment axis: plain SFT)."""
    return str(cell.condition.get("treatment", ""))


def treatment_needs(treatments: tuple[str, ...], strengths: Any, n: int) -> dict[str, int]:
    """The training data the ``treatments`` draw besides aligned examples, ``n`` per alignment run:
    neutral (pre-training-like) examples for replay, preference pairs for DPO and SimPO."""
    from llm_bridge.tasks import PAIRS

    needs = {"neutral": n} if "replay" in treatments else {}
    if any(strengths.spec(t).preference for t in treatments):  # one pair per example slot
        needs[PAIRS] = n
    return needs


# a paired bootstrap holds resamples x prompts of floats: a million is far past what an interval needs
MAX_BOOTSTRAP = 1_000_000


def check_bootstrap(n_bootstrap: int) -> None:
    require(99 <= n_bootstrap <= MAX_BOOTSTRAP, f"n_bootstrap must be in [99, {MAX_BOOTSTRAP}] (resamples x "
            f"prompts are held in memory), got {n_bootstrap}")


def check_replication(config: Any) -> None:
    """The fields every replicated llm config shares: ``model``, ``seeds``, ``data_draws`` and ``controls``."""
    from llm_bridge.models import INITS

    require(config.model.strip() != "", "model must name a built-in checkpoint, a folder, a .gguf or a hub id")
    require(config.seeds >= 1, f"seeds must be >= 1, got {config.seeds}")
    require(len(config.data_draws) >= 1 and len(set(config.data_draws)) == len(config.data_draws),
            f"data_draws must name at least one draw, each once, got {config.data_draws}")
    require(all(c in INITS[1:] for c in config.controls) and len(set(config.controls)) == len(config.controls),
            f"controls must be distinct names among {', '.join(INITS[1:])}, got {config.controls}")


def sweep_runs(config: Any, run_dir: RunDir, measure_run: Callable[..., list[dict[str, Any]]],
               needs: Mapping[str, int], n_eval: int, desc: str) -> list[dict[str, Any]]:
    """Every independent run of ``config`` as a cell of its run grid, ``measure_run(config, run_path,
    cell, device)`` (module level: it may run in a worker process); the rows come back with each run's
    label (:func:`run_label`) as the ``seed``, which is what every reading groups by.

    The data is read and checked for every draw (``needs`` training examples per label outside
    ``n_eval`` held-out prompts) and its hash written to ``data.json`` before any model loads.
    """
    from llm_bridge.models import check_adapter, describe_source
    from llm_bridge.tasks import check_data, load_records
    from llm_bridge.training import mixed_precision
    from toymodels.sweep import run_sweep
    from toymodels.train import resolve_device

    describe_source(config.model)  # a bad model or adapter fails before anything else
    if config.adapter_path:
        check_adapter(config.adapter_path)
    resolve_device(config.execution.device)
    mixed_precision(config.adapter.dtype, config.execution.device)  # fp16 on a CPU fails here
    records = load_records(data_path(config), data_format=config.data_format)
    for draw in config.data_draws:
        check_data(config.task, records, n_eval, draw, needs)
    data = {**data_record(config), "n_records": len(records)}
    refuse_changed_input(run_dir, "data.json", {"data_sha256": data["data_sha256"]})
    run_dir.write_json("data.json", data)
    rows = run_sweep(run_dir, run_grid(config), functools.partial(measure_run, config, str(run_dir.path)),
                     config.execution, desc=desc)
    return [{**r, "seed": run_label(r["condition"]["init"], r["condition"]["draw"], r["seed"])} for r in rows]


def load_run(config: Any, run_dir: RunDir, n_eval: int, init: str, draw: int, seed: int):
    """The model of one run behind the adapter (``init``: pretrained, or a no-pre-training control
    seeded by the run's seed), and the task of its data draw. Each run loads its own model (seconds
    from the cached safetensors), so that a run's weights never depend on the run before it."""
    from llm_bridge.adapter import HFCausalLM, set_threads
    from llm_bridge.models import load_model, remove_knowledge
    from llm_bridge.tasks import TEMPLATES, load_records, make_task

    settings = config.adapter
    set_threads(config.execution.threads or None)
    t0 = time.perf_counter()
    loaded = load_model(config.model, device=config.execution.device, trust_remote_code=config.trust_remote_code,
                        adapter_path=config.adapter_path)
    model = remove_knowledge(loaded.model, init, seed)
    template = TEMPLATES[config.task] if loaded.record["has_chat_template"] else "raw"
    adapter = HFCausalLM(model, loaded.tokenizer, lora=lora_spec(settings), max_length=settings.max_length,
                         device=config.execution.device, seed=seed, template=template,
                         gradient_checkpointing=settings.gradient_checkpointing, dtype=settings.dtype,
                         state_dir=run_dir.path)  # full fine-tuning keeps its weight states in states-*/
    task = make_task(config.task, load_records(data_path(config), data_format=config.data_format), adapter,
                     n_eval=n_eval, draw=draw)
    # hub_revision: a hub model's resolved commit; adapter_sha256: the PEFT adapter merged into it
    refuse_changed_input(run_dir, "model.json", {key: loaded.record.get(key) for key in
                                                 ("weights_sha256", "hub_revision", "adapter_sha256")})
    run_dir.write_json("model.json", {**loaded.record, "template": template, "template_rule": TEMPLATE_RULE,
                                      "tokenizer_fingerprint": adapter.tokenizer_fingerprint(),
                                      "load_seconds": round(time.perf_counter() - t0, 1)})
    return adapter, task


def save_checkpoints(adapter: Any, run_dir: RunDir, label: str, states: Mapping[int, dict[str, Any]]) -> None:
    """The aligned models of one run (aligned examples F -> trainable weights) as transformers folders
    ``checkpoints/<run>-F<F>`` in the run folder; ``adapter`` is left at the weights it had."""
    current = adapter.state_dict()
    for amount, state in states.items():
        adapter.load_state_dict(state)
        adapter.save_pretrained(run_dir.path / "checkpoints" / f"{label}-F{amount}")
    adapter.load_state_dict(current)


def refuse_changed_input(run_dir: RunDir, name: str, now: Mapping[str, Any]) -> None:
    """A run folder resumes only with the inputs its finished cells came from: the data and the
    weights are part of its identity (their sha256, recorded in ``name``), beside the config hash."""
    recorded = run_dir.read_json(name) if (run_dir.path / name).exists() else {}
    for key, value in now.items():
        before = recorded.get(key)
        if before is not None and before != value:
            raise ConfigError(f"{run_dir.path} was run with other {key.split('_')[0]} ({key} was "
                              f"{_short(before)}, is now {_short(value)}); its cells cannot resume with these: "
                              "use a new --out")


def _short(value: Any) -> str:
    return value[:12] if isinstance(value, str) else json.dumps(value, sort_keys=True)[:60]


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a folder (a saved ``datasets`` folder): of its files' names and hashes."""
    from llm_bridge.models import sha256_file

    if path.is_file():
        return sha256_file(path)
    listing = "".join(f"{p.relative_to(path)}\0{sha256_file(p)}\n" for p in sorted(path.rglob("*")) if p.is_file())
    return hashlib.sha256(listing.encode()).hexdigest()


def provenance(config: Any, run_dir: RunDir) -> dict[str, Any]:
    """What a reference records about a real-checkpoint run: the model, the sha256 of its weight files
    (from the ``model.json`` a run's load wrote) and of the data it was given (``data.json``)."""
    record = run_dir.read_json("model.json")
    out = {"model": config.model, "weights_sha256": record["weights_sha256"]}
    if hasattr(config, "task"):  # a model's own samples (llm.pareto) have no data file
        out.update(run_dir.read_json("data.json"))
    out.update({key: record[key] for key in ("gguf_sha256", "adapter_path", "adapter_sha256") if key in record})
    return out


# The paper's SFT settings (digest §5.6), shared by the `paper` presets: each key names one leaf
# of the rebound config, and of the resistance config except warmup_examples.
PAPER = {"finetune": "full", "lr": 1e-5, "batch_size": 4, "grad_accum": 8, "max_grad_norm": 1.0,
         "max_length": 2048, "seed": 42, "device": "cuda", "warmup_examples": 0, "threads": 0}
FLAGS = {"--model": "model", "--task": "task", "--lr": "lr", "--data": "data", "--finetune": "adapter.finetune",
         "--seeds": "seeds", "--adapter-path": "adapter_path", "--save-checkpoints": "save_checkpoints"}
