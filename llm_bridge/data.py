"""The offline default data: shipped with the package, regenerated with a real model by
``elasticity llm make-data``.

SmolLM2-135M-Instruct is prompted through its chat template for each label (a positive, a
negative and a neutral review of a made-up film; a refusal, a compliant answer and a neutral
question back to a request; an answer to an instruction; see :mod:`llm_bridge.data_prompts`). A
text scorer keeps only the clearly labelled outputs (VADER for sentiment, the refusal keyword list
for safety), duplicates are dropped, and the records are stored with a prompt that does not name
the label. Gemma 3 270M is a base model, so the same data serves both models.

The default sets ship as ``shipped_data/<task>.jsonl`` with a manifest ``<task>.json`` (their
sha256, the generation config, the command that made them, counts and timings), so every machine
runs on identical data: sampling kernels differ between machines, so a regeneration elsewhere may
differ from the shipped file, and :func:`make_data` says whether it does. Regenerated data is
cached under ``cache_dir("data", ...)`` by the generation config's hash.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import atomic_write_json, atomic_write_text
from harness.config import require
from harness.errors import ConfigError
from harness.runs import cache_dir, config_hash
from llm_bridge.data_prompts import SAFETY_OPENINGS, Job, jobs
from llm_bridge.tasks import TASKS, Record, load_records

SHIPPED = Path(__file__).parent / "shipped_data"
DEFAULT_PROMPTS = {"sentiment": 160, "safety": 100, "instruction": 156}


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """Everything that determines the generated data (its cache key)."""

    task: str = "sentiment"
    generator: str = "smollm2-135m"
    n_prompts: int = 160  # films, requests or instructions
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 48
    vader_threshold: float = 0.5  # |compound| a review needs to count as clearly positive/negative
    neutral_max_abs: float = 0.35  # |compound| a plot summary may have to count as neutral
    batch: int = 36
    attempts: int = 3  # generation passes; each retries the outputs the filter rejected
    seed: int = 42

    def __post_init__(self) -> None:
        require(self.n_prompts >= 1, f"--n-prompts must be >= 1, got {self.n_prompts}")


def keep(spec: DataSpec, label: str, text: str, vader: Any, refusal: Any) -> bool:
    """The text-scorer filter: keep only clearly labelled outputs."""
    if len(text.split()) < 5:
        return False
    if spec.task == "sentiment":
        s = vader.score([text])[0]
        if label == "aligned":
            return s >= spec.vader_threshold
        if label == "misaligned":
            return s <= -spec.vader_threshold
        return abs(s) <= spec.neutral_max_abs
    if spec.task == "safety":
        refuses = refusal.score([text])[0] == 1.0
        return refuses if label == "aligned" else not refuses
    return True


def _opening(spec: DataSpec, label: str, rng: np.random.Generator, adapter: Any) -> tuple[int, ...]:
    """Token ids that open the assistant's answer (safety only; empty otherwise)."""
    if spec.task != "safety":
        return ()
    options = SAFETY_OPENINGS[label]
    return adapter.response_ids(options[int(rng.integers(len(options)))])[:-1]


def generate_records(spec: DataSpec, adapter: Any, batches: int | None = None) -> tuple[list[Record], dict[str, Any]]:
    """Generate, filter and deduplicate the records of ``spec`` with ``adapter`` (a chat model).
    ``batches`` stops after that many batches of the first pass: their records are the data's first
    records, so a machine's sampling kernels can be checked against the shipped file in a minute."""
    from tqdm import tqdm

    from llm_bridge.scorers import RefusalScorer, VaderScorer

    vader, refusal = VaderScorer(), RefusalScorer()
    records, seen, counts = [], set(), {"generated": 0, "kept": 0, "filtered": 0, "duplicates": 0}
    tokens = 0
    rng = np.random.default_rng((17, spec.seed))
    pending: list[Job] = jobs(spec.task, spec.n_prompts, spec.seed)
    for attempt in range(spec.attempts):
        failed = []
        starts = range(0, len(pending), spec.batch)[:batches]
        for b in tqdm(starts, desc=f"make-data {spec.task} pass {attempt + 1}", file=sys.stderr):
            chunk = pending[b : b + spec.batch]
            openings = [_opening(spec, job.label, rng, adapter) for job in chunk]
            prompts = [adapter.prompt_ids(job.instruction) + opening for job, opening in zip(chunk, openings, strict=True)]
            outs = adapter.generate_batch(prompts, spec.max_new_tokens, spec.temperature,
                                          seed=spec.seed * 100_003 + attempt * 10_007 + b, top_p=spec.top_p)
            for job, opening, ids in zip(chunk, openings, outs, strict=True):
                tokens += len(ids)
                counts["generated"] += 1
                text = _clean(adapter.decode(list(opening) + list(ids)))
                if not keep(spec, job.label, text, vader, refusal):
                    counts["filtered"] += 1
                    failed.append(job)
                    continue
                if text.lower() in seen:
                    counts["duplicates"] += 1
                    failed.append(job)
                    continue
                seen.add(text.lower())
                # sentiment is raw text: the response continues the prompt after a space
                response = " " + text if spec.task == "sentiment" else text
                records.append(Record(job.stored, response, job.label, job.stratum))
                counts["kept"] += 1
        pending = failed
        if not pending or batches is not None:
            break
    counts["generated_tokens"] = tokens
    for lab in ("aligned", "misaligned", "neutral"):
        counts[f"kept_{lab}"] = sum(r.label == lab for r in records)
    return records, counts


def _clean(text: str) -> str:
    return " ".join(text.replace("\n", " ").split()).strip()


def data_dir(spec: DataSpec) -> Path:
    return cache_dir("data", f"{spec.task}-{config_hash('llm.data', spec)}")


def jsonl_text(records: Sequence[Record]) -> str:
    return "".join(json.dumps(asdict(r)) + "\n" for r in records)


def shipped_paths(task: str) -> tuple[Path, Path]:
    """The shipped records of ``task`` and their manifest."""
    return SHIPPED / f"{task}.jsonl", SHIPPED / f"{task}.json"


def shipped_sha256(task: str) -> str:
    return json.loads(shipped_paths(task)[1].read_text())["sha256"]


def make_data(spec: DataSpec, force: bool = False) -> Path:
    """Generate (or find cached) data for ``spec``; returns the JSONL path, next to its manifest."""
    from llm_bridge.models import sha256_file

    check_task(spec.task)
    folder = data_dir(spec)
    target = folder / "records.jsonl"
    if target.exists() and not force:
        return target
    t0 = time.perf_counter()
    adapter, generator = generator_adapter(spec)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    records, counts = generate_records(spec, adapter)
    gen_s = time.perf_counter() - t1
    atomic_write_text(target, jsonl_text(records))
    import torch

    manifest = {"sha256": sha256_file(target), "spec": asdict(spec), "counts": counts,
                "command": make_data_command(spec), "generator": generator,
                "torch": torch.__version__, "load_seconds": round(load_s, 1), "generation_seconds": round(gen_s, 1),
                "note": "timings measured on a shared machine; they are not part of any experiment's time"}
    atomic_write_json(folder / "manifest.json", manifest)
    print(f"make-data {spec.task}: kept {counts['kept']}/{counts['generated']} "
          f"({counts['generated_tokens']} tokens) in {gen_s:.0f} s (+{load_s:.0f} s load) -> {target}",
          file=sys.stderr)
    return target


def generator_adapter(spec: DataSpec) -> tuple[Any, dict[str, Any]]:
    """The chat model that generates ``spec``'s data, and its load record."""
    from llm_bridge.adapter import HFCausalLM
    from llm_bridge.models import load_model

    loaded = load_model(spec.generator)
    if not loaded.record["has_chat_template"]:
        raise ConfigError(f"the data generator must be a chat model; {spec.generator} has no chat template")
    return HFCausalLM(loaded.model, loaded.tokenizer, template="chat", seed=spec.seed), loaded.record


def make_data_command(spec: DataSpec) -> str:
    """The command that regenerates ``spec`` (non-default fields as flags)."""
    command = f"elasticity llm make-data --task {spec.task} --seed {spec.seed}"
    if spec.n_prompts != DEFAULT_PROMPTS[spec.task]:
        command += f" --n-prompts {spec.n_prompts}"
    if spec.generator != DataSpec.generator:
        command += f" --generator {spec.generator}"
    return command


def ship(path: Path) -> Path:
    """Copy generated data and its manifest into the package's shipped data (a maintainer's step)."""
    manifest = json.loads((path.parent / "manifest.json").read_text())
    task = manifest["spec"]["task"]
    records, meta = shipped_paths(task)
    atomic_write_text(records, path.read_text())
    atomic_write_json(meta, manifest)
    return records


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ConfigError(f"unknown task '{task}'; tasks: {', '.join(TASKS)}")


def default_spec(task: str, seed: int = 42, generator: str = "smollm2-135m",
                 n_prompts: int | None = None) -> DataSpec:
    """The documented default generation of each task (the shipped data's spec)."""
    check_task(task)
    if n_prompts is not None and n_prompts < 1:
        raise ConfigError(f"--n-prompts must be >= 1, got {n_prompts}")
    return DataSpec(task=task, generator=generator, seed=seed, n_prompts=n_prompts or DEFAULT_PROMPTS[task],
                    max_new_tokens=64 if task == "instruction" else 48)


def default_data_path(task: str) -> Path:
    """The shipped data of ``task``, after checking that the file still has its recorded sha256."""
    from llm_bridge.models import sha256_file

    check_task(task)
    path, _ = shipped_paths(task)
    if not path.exists():
        raise ConfigError(f"the shipped {task} data is missing ({path.name}); reinstall the package or run "
                          f"`elasticity llm make-data --task {task}` and pass its path as --set data=...")
    if (digest := sha256_file(path)) != shipped_sha256(task):
        raise ConfigError(f"the shipped {task} data has sha256 {digest[:12]}..., its manifest says "
                          f"{shipped_sha256(task)[:12]}...: the file was changed; reinstall the package")
    return path


def default_records(task: str) -> list[Record]:
    """The shipped default data of ``task``."""
    return load_records(default_data_path(task))
