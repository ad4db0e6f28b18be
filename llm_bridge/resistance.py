"""Resistance on a real checkpoint: the toy resistance protocol (``run_resistance``, the paper's
Table 1) run on a Hugging Face model.

Its readings are the toy's (:func:`toymodels.protocols.resistance_readings.resistance_predictions`),
made by the same function: one training run is one independent run, so the primary reading reads
``underpowered`` until more runs are made. Within the run, a paired bootstrap over the shared
prompts gives exploratory readings (``WITHIN_RUN``; prompts are not runs). The KL-excess is the loss
minus the entropy of the tempered generator the data was sampled from: each checkpoint scores its
own samples at the sampling temperature.

``cpu-micro`` (the default) is a LoRA regime that runs on 2 CPU cores; ``paper`` uses the paper's
SFT settings. ``seeds`` x ``data_draws`` are the independent runs (one resumable cell each);
``controls`` runs the same protocol from a random init and/or permuted pre-trained weights (the
no-pre-training controls), read by the toy's ``resistance.beyond_control``. ``treatments`` aligns
the checkpoints under each alignment condition, as toy resistance does (exploratory readings, the
reference key gains ``.mitigations``).
``save_checkpoints`` writes the SFT checkpoints theta_1..theta_3 of every run as transformers
folders ``checkpoints/<run>-F<aligned examples seen>`` (safetensors, LoRA merged, with the tokenizer).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from harness.config import Preset, require
from harness.experiment import Experiment
from harness.metrics import metric_row
from harness.runs import RunDir
from harness.verdicts import Prediction, judge, paired_bootstrap
from llm_bridge import common
from toymodels.alignment import Strengths, check_treatments
from toymodels.protocols.resistance import ResistanceSpec
from toymodels.protocols.resistance_readings import BASELINE, temperature_tag
from toymodels.protocols.resistance_readings import readings as resistance_readings
from toymodels.sweep import Execution

N_BOOTSTRAP = 999


@dataclass(frozen=True, kw_only=True)
class LLMResistanceConfig:
    model: str = common.DEFAULT_MODEL
    task: Literal["sentiment", "safety", "instruction"] = "instruction"
    adapter_path: str = ""  # a saved PEFT adapter (safetensors) merged into the model: the starting point
    data: str = ""  # records (or trl's layouts) in JSONL or a saved datasets folder; "" = the shipped default
    data_format: common.DataFormat = "auto"  # the data's layout; auto: detected from its columns
    seed: int = 42  # the first training seed
    seeds: int = 1  # training seeds: seed, seed + 1, ...
    data_draws: tuple[int, ...] = (0,)  # held-out split and training examples; runs = draws x seeds
    controls: tuple[str, ...] = ()  # no-pre-training starts run beside: "random", "permuted"
    # alignment conditions of the checkpoints (toymodels.alignment.TREATMENTS), as in toy resistance
    treatments: tuple[str, ...] = (BASELINE,)
    strengths: Strengths = field(default_factory=Strengths)
    adapter: common.AdapterSettings = field(default_factory=common.AdapterSettings)
    protocol: ResistanceSpec = field(default_factory=lambda: ResistanceSpec(
        n_align=48, n_queries=24, temperature=0.05, optimizer=common.CPU_MICRO_OPTIMIZER))
    n_eval: int = 24  # held-out prompts; the shared query set Q is the first n_queries of them
    n_bootstrap: int = N_BOOTSTRAP
    execution: Execution = field(default_factory=common.llm_execution)
    trust_remote_code: bool = False
    save_checkpoints: bool = False  # the aligned models as transformers folders under checkpoints/

    def __post_init__(self) -> None:
        require(self.protocol.n_queries <= self.n_eval,
                "n_queries must be <= n_eval (Q is drawn from held-out prompts)")
        common.check_bootstrap(self.n_bootstrap)
        common.check_replication(self)
        if self.compares_treatments:
            check_treatments(self.treatments)
            require(not self.save_checkpoints, "save_checkpoints writes plain SFT checkpoints: leave it out of a "
                    "run of several treatments")
        else:
            require(self.strengths == Strengths(), "strengths apply only to a run of several treatments")

    @property
    def compares_treatments(self) -> bool:
        """True when the checkpoints are aligned under several conditions, not plain SFT alone."""
        return self.treatments != (BASELINE,)

    def data_needs(self) -> dict[str, int]:
        """Training examples per label (and preference pairs) that a run draws, checked before a model loads."""
        return {"aligned": self.protocol.n_align,
                **common.treatment_needs(self.treatments, self.strengths, self.protocol.n_align)}


# Readings of the one run, bootstrapped over its prompts: exploratory, since prompts are not runs
# (the primary reading comes from resistance_predictions over runs and reads underpowered with one).
WITHIN_RUN = (
    # measure, description
    ("excess_step0", "inverse - forward KL-excess before training (loss minus the tempered generator's self-loss)"),
    ("excess_final", "inverse - forward KL-excess after the epoch"),
    ("loss_step0", "inverse - forward loss before training"),
    ("loss_final", "inverse - forward loss after the epoch"),
)
PROMPT_MEASURES = {"step0": "prompt_loss_step0", "final": "prompt_loss_final", "entropy": "prompt_generator_entropy"}


def measure_paths(config: LLMResistanceConfig, run_dir: RunDir, init: str, draw: int, seed: int,
                  treatment: str = "") -> dict[str, Any]:
    """One run of the toy resistance protocol, its checkpoints aligned by ``treatment`` ("": plain
    SFT): each path's losses, token-weighted and per prompt."""
    from toymodels.measures import example_losses
    from toymodels.protocols.resistance import path_measures, run_resistance

    spec = config.protocol
    label = common.cell_label(init, draw, seed, treatment)
    adapter, task = common.load_run(config, run_dir, config.n_eval, init, draw, seed)
    result = run_resistance(adapter, task, spec, seed, progress=lambda m: print(f"{label} {m}", file=sys.stderr),
                            alignment=config.strengths.spec(treatment) if treatment else None)
    if config.save_checkpoints:
        save_aligned(adapter, task, spec, seed, run_dir, label)
    paths = {}
    for (k, m), both in result.pairs.items():
        for direction, path in both.items():
            target = result.datasets[path.target]
            paths[f"{k}-{m}/{direction}"] = {
                "summary": path_measures(path, target, spec.temperature),
                "step0": example_losses(path.step0_logprobs), "final": example_losses(path.final_logprobs),
                "entropy": example_losses(target.self_logprobs[spec.temperature]),
                "losses": path.log.losses, "steps": path.log.steps}
    return {"checkpoint_steps": result.checkpoint_steps, "checkpoint_scores": result.checkpoint_scores,
            "paths": paths}


def save_aligned(adapter: Any, task: Any, spec: ResistanceSpec, seed: int, run_dir: RunDir, label: str) -> None:
    """The SFT checkpoints theta_1..theta_3 as transformers folders, named by the aligned examples
    they saw. The protocol keeps no states, so the SFT epoch is trained again from theta0 (where it
    leaves the model) with its data, order and optimizer."""
    from toymodels.finetuning import epoch_order, fit_slices

    aligned = task.forward_data(spec.n_align, seed=seed)
    sft = fit_slices(adapter, aligned, epoch_order(len(aligned), seed), spec.optimizer, spec.checkpoint_fractions)
    common.save_checkpoints(adapter, run_dir, label, dict(zip(sft.boundaries, sft.states, strict=True)))


def run_result(config: LLMResistanceConfig, run_dir: RunDir, init: str, draw: int, seed: int,
               treatment: str = "") -> dict[str, Any]:
    """One independent run, a cell of the run folder (it holds the tempered generator entropy)."""
    return run_dir.cell(f"{common.cell_label(init, draw, seed, treatment)}-tempered_paths",
                        lambda: measure_paths(config, run_dir, init, draw, seed, treatment))


def measure_run(config: LLMResistanceConfig, run_path: str, cell: Any, device: str) -> list[dict[str, Any]]:
    """A cell of the run grid (in a worker process when ``n_jobs`` > 1): one run's metric rows."""
    result = run_result(config, RunDir.load(run_path), *common.cell_run(cell), common.cell_treatment(cell))
    return metric_rows(config, result, str(cell["init"]), cell.seed)


def metric_rows(config: LLMResistanceConfig, result: Mapping[str, Any], init: str, seed: Any) -> list[dict[str, Any]]:
    """One run in the toy's metrics layout, plus per-step training losses and per-prompt losses."""
    cond = {"init": init, "task": config.task, "size": config.model, "T": config.protocol.temperature}
    rows = []
    for i, (st, sc) in enumerate(zip(result["checkpoint_steps"], result["checkpoint_scores"], strict=True)):
        rows.append(metric_row("checkpoint_p_aligned", sc, "prob", seed=seed, x=i, **cond))
        rows.append(metric_row("checkpoint_steps", st, "steps", seed=seed, x=i, **cond))
    for key, path in result["paths"].items():
        pair, direction = key.split("/")
        c = dict(cond, pair=pair, path=direction)
        rows += [metric_row(f"{name}_nats", value, "nats", seed=seed, **c) for name, value in path["summary"].items()]
        rows.append(metric_row("steps", path["steps"], "steps", seed=seed, **c))
        rows += [metric_row("train_loss", loss, "nats", seed=seed, x=s + 1, **c) for s, loss in enumerate(path["losses"])]
        for what, measure in PROMPT_MEASURES.items():
            rows += [metric_row(measure, v, "nats", seed=seed, **c, prompt=p) for p, v in enumerate(path[what])]
    return rows


def prompt_arrays(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, float], dict[str, np.ndarray]]:
    """(run seed, T) -> ``"<pair>/<path>/<step0|final|entropy>"`` -> per-prompt losses (nats/token)."""
    names = {v: k for k, v in PROMPT_MEASURES.items()}
    values: dict[tuple[Any, float], dict[str, dict[int, float]]] = {}
    for r in rows:
        c = r["condition"]
        if r["measure"] in names and "prompt" in c:
            key = f"{c['pair']}/{c['path']}/{names[r['measure']]}"
            values.setdefault((r["seed"], float(c["T"])), {}).setdefault(key, {})[int(c["prompt"])] = float(r["value"])
    return {run: {k: np.array([v[p] for p in sorted(v)]) for k, v in arrays.items()} for run, arrays in values.items()}


def prompt_asymmetry(arrays: Mapping[str, np.ndarray], measure: str) -> np.ndarray:
    """(n_pairs, n_prompts): inverse - forward of ``measure`` (``excess_step0``, ``loss_final``, ...) per prompt."""
    kind, when = measure.split("_")
    pairs = sorted({k.split("/")[0] for k in arrays})

    def of(pair: str, path: str) -> np.ndarray:
        loss = arrays[f"{pair}/{path}/{when}"]
        return loss - arrays[f"{pair}/{path}/entropy"] if kind == "excess" else loss

    return np.array([of(p, "inverse") - of(p, "forward") for p in pairs])


def within_run(rows: Sequence[Mapping[str, Any]], n_resamples: int = N_BOOTSTRAP, seed: int = 0) -> list[Prediction]:
    """Exploratory readings of one run's prompts: the mean over prompts of (inverse - forward, mean
    over pairs), with a paired bootstrap over the prompts (n_runs = 1); one set per (run, T) in ``rows``."""
    predictions = []
    for (_run, temp), arrays in prompt_arrays(rows).items():
        for measure, desc in WITHIN_RUN:
            diffs = prompt_asymmetry(arrays, measure)
            est = paired_bootstrap({"diff": diffs.mean(axis=0)}, lambda s: float(np.mean(s["diff"])), n_resamples,
                                   seed)
            predictions.append(judge(
                f"resistance.{measure}.inverse_lower.{temperature_tag(temp)}.within_run", est,
                f"{desc} (nats/token) at sampling T = {temp:g}, per prompt, mean over pairs; one run", n_runs=1,
                temperature=temp, pairs_inverse_lower=int(np.sum(diffs.mean(axis=1) < 0)), n_pairs=len(diffs),
                prompts_inverse_lower=int(np.sum(diffs.mean(axis=0) < 0))))
    return predictions


def readings(rows: Sequence[Mapping[str, Any]], experiment: str = "llm.resistance") -> list[Prediction]:
    """The toy resistance readings over training runs (the seeds of the rows), e.g. of several GPU
    runs' metrics tables put together; one run reads ``underpowered``. A table of several alignment
    conditions has the toy's exploratory treatment readings only."""
    return resistance_readings(rows, experiment, unit="training runs")


def run(config: LLMResistanceConfig, run_dir: RunDir) -> dict[str, Any]:
    common.qualify_reference(run_dir, config, "instruction")
    if config.compares_treatments:  # a reference of its own; its path figures are plain SFT's
        run_dir.reference_key += ".mitigations"
        run_dir.reference_args = f"{run_dir.reference_args} --set treatments={','.join(config.treatments)}".strip()
    rows = common.sweep_runs(config, run_dir, measure_run, config.data_needs(), config.n_eval, "llm resistance: runs")
    run_dir.write_metrics(rows)
    results = {common.cell_label(*common.cell_run(c), common.cell_treatment(c)):
               run_result(config, run_dir, *common.cell_run(c), common.cell_treatment(c)) for c in common.run_grid(config).cells()}
    runs = list(common.pretrained_runs(config))
    predictions = readings(rows, run_dir.experiment)
    if len(runs) == 1 and not config.compares_treatments:  # its prompts give exploratory readings (not runs)
        predictions += within_run([r for r in rows if r["seed"] == runs[0]], config.n_bootstrap, config.seed)
    first_result = next(iter(results.values()))
    first = first_result["paths"]
    pairs = sorted({k.split("/")[0] for k in first})
    failures = [f"run {label} pair {p}: forward and inverse took different step counts"
                for label, result in results.items() for p in pairs
                if result["paths"][f"{p}/forward"]["steps"] != result["paths"][f"{p}/inverse"]["steps"]]
    return {"predictions": predictions, "n_runs": len(runs), "runs": runs,
            "controls": list(config.controls), "treatments": list(config.treatments), "per_run": per_run_primary(rows),
            "table1_nats": {label: {p: {d: result["paths"][f"{p}/{d}"]["summary"] for d in ("forward", "inverse")}
                                    for p in pairs} for label, result in results.items()},
            "checkpoint_steps": first_result["checkpoint_steps"],
            "checkpoint_p_aligned": {label: result["checkpoint_scores"] for label, result in results.items()},
            "steps_per_path": first[f"{pairs[0]}/forward"]["steps"],
            "examples_per_step": config.protocol.optimizer.examples_per_step,
            "regime": common.regime(config.adapter, config.protocol.optimizer), "template_rule": common.TEMPLATE_RULE,
            "provenance": common.provenance(config, run_dir), "instrument_failures": failures}


def per_run_primary(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[Any, float]]:
    """The primary resistance readings' value in each run, beside their pooled interval (in a run of
    several alignment conditions, each condition's ``mitigation.<t>_resistance_level``)."""
    from toymodels.protocols.resistance_readings import (
        PRIMARY_T,
        asymmetries,
        beyond_control,
        by_treatment,
        paths_by_comparison,
        per_run_by_label,
        primary_by_run,
    )

    if any("treatment" in r["condition"] for r in rows):
        return {f"mitigation.{t}_resistance_level": primary_by_run(paths_by_comparison(group))
                for t, group in by_treatment(rows).items()}
    index = paths_by_comparison(rows)
    out = {}
    pre = index.get(("excess_mean_nats", "pretrained", PRIMARY_T))
    if pre:
        out["resistance.inverse_lower"] = per_run_by_label(asymmetries(pre))
    ctl = index.get(("excess_mean_nats", "random", PRIMARY_T))
    if pre and ctl:
        out["resistance.beyond_control"] = per_run_by_label(beyond_control(pre, ctl, "random"))
    return out


EXPERIMENT = Experiment(
    name="llm.resistance",
    help="Resistance on a real checkpoint: forward vs inverse fine-tuning between SFT checkpoints (paper Table 1)",
    config_cls=LLMResistanceConfig,
    presets={
        "cpu-micro": Preset({}, "LoRA r=8, lr 5e-4, batch 2, 48 SFT examples (24 steps), checkpoints at "
                            "25/50/75%, 24 shared prompts at T=0.05, 12 steps per path "
                            "(SmolLM2 ~4 min on 2 idle cores)", est_seconds=300),
        **common.replication_presets(920, 9700, "SmolLM2 took 15 min on 2 cores, Gemma 3 about 95 min",
                                     "SmolLM2 took about 2.7 h on 2 cores"),
        "paper": Preset({**{k: v for k, v in common.PAPER.items() if k != "warmup_examples"}, "n_align": 10000,
                         "n_queries": 512, "n_eval": 512},
                        "the paper's SFT settings (full, lr 1e-5 constant, batch 4x8, max_length 2048, one epoch, "
                        "answers at T=0.05; checkpoints at 25/50/75% as inferred from the authors' log names); "
                        "the paper does not give |D_a| or |Q|: n_align 10000 and 512 prompts are this project's. "
                        "GPU; tatsu-lab/alpaca rows, PKU-Alignment/BeaverTails (--task safety) or "
                        "truthfulqa/truthful_qa, whose 817 questions need smaller amounts, e.g. --set n_align=1024 "
                        "--set n_eval=256 --set n_queries=256", est_seconds=36000),
    },
    run=run, readings=readings, draw="toymodels.figures:draw_resistance", flags=common.FLAGS,
    default_preset="cpu-micro", units={"loss": "nats per response token", "score": "probability"},
)
