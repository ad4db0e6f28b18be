"""Resistance on a real checkpoint: the toy resistance protocol (``run_resistance``, the paper's
Table 1) run on a Hugging Face model.

Its readings are the toy's (:func:`toymodels.protocols.resistance_readings.resistance_predictions`),
made by the same function: one training run is one independent run, so the primary reading reads
``underpowered`` until more runs are made. Within the run, a paired bootstrap over the shared
prompts gives exploratory readings (``WITHIN_RUN``; prompts are not runs). The KL-excess is the loss
minus the entropy of the tempered generator the data was sampled from: each checkpoint scores its
own samples at the sampling temperature.

``cpu-micro`` (the default) is a LoRA regime that runs on 2 CPU cores; ``paper`` uses the paper's
SFT settings. The no-pre-training control cannot be run at this size (a randomly initialised
135M model cannot answer); see ``toy.resistance``.
"""

from __future__ import annotations

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
from toymodels.protocols.resistance import ResistanceSpec
from toymodels.protocols.resistance_readings import resistance_predictions, temperature_tag
from toymodels.sweep import Runtime

N_BOOTSTRAP = 999


@dataclass(frozen=True, kw_only=True)
class LLMResistanceConfig:
    model: str = common.DEFAULT_MODEL
    task: Literal["sentiment", "safety", "instruction"] = "instruction"
    data: str = ""
    seed: int = 42
    adapter: common.AdapterSettings = field(default_factory=common.AdapterSettings)
    protocol: ResistanceSpec = field(default_factory=lambda: ResistanceSpec(
        n_align=48, n_queries=24, temperature=0.05, optimizer=common.CPU_MICRO_OPTIMIZER))
    n_eval: int = 24  # held-out prompts; the shared query set Q is the first n_queries of them
    n_bootstrap: int = N_BOOTSTRAP
    execution: Runtime = field(default_factory=common.llm_runtime)
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        require(self.protocol.n_queries <= self.n_eval,
                "n_queries must be <= n_eval (Q is drawn from held-out prompts)")
        require(self.n_bootstrap >= 99, "n_bootstrap must be >= 99")


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


def measure_paths(config: LLMResistanceConfig, run_dir: RunDir) -> dict[str, Any]:
    """The toy resistance protocol on the checkpoint: each path's losses, token-weighted and per prompt."""
    from toymodels.measures import example_losses
    from toymodels.protocols.resistance import path_measures, run_resistance

    spec = config.protocol
    adapter, task = common.load(config, run_dir, {"aligned": spec.n_align}, config.n_eval)
    with common.progress_bar(len(spec.checkpoint_fractions) + 2 * len(spec.pairs), "llm resistance") as progress:
        result = run_resistance(adapter, task, spec, config.seed, progress=progress)
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


def metric_rows(config: LLMResistanceConfig, result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run in the toy's metrics layout, plus per-step training losses and per-prompt losses."""
    cond = {"init": "pretrained", "task": config.task, "size": config.model, "T": config.protocol.temperature}
    seed = config.seed
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


def within_run(rows: Sequence[Mapping[str, Any]], n_resamples: int = N_BOOTSTRAP) -> list[Prediction]:
    """Exploratory readings of one run's prompts: the mean over prompts of (inverse - forward, mean
    over pairs), with a paired bootstrap over the prompts (n_runs = 1); one set per (seed, T) in ``rows``."""
    predictions = []
    for (seed, temp), arrays in prompt_arrays(rows).items():
        for measure, desc in WITHIN_RUN:
            diffs = prompt_asymmetry(arrays, measure)
            est = paired_bootstrap({"diff": diffs.mean(axis=0)}, lambda s: float(np.mean(s["diff"])), n_resamples,
                                   int(seed))
            predictions.append(judge(
                f"resistance.{measure}.inverse_lower.{temperature_tag(temp)}.within_run", est,
                f"{desc} (nats/token) at sampling T = {temp:g}, per prompt, mean over pairs; one run", n_runs=1,
                temperature=temp, pairs_inverse_lower=int(np.sum(diffs.mean(axis=1) < 0)), n_pairs=len(diffs),
                prompts_inverse_lower=int(np.sum(diffs.mean(axis=0) < 0))))
    return predictions


def readings(rows: Sequence[Mapping[str, Any]], experiment: str = "llm.resistance") -> list[Prediction]:
    """The toy resistance readings over training runs (the seeds of the rows), e.g. of several GPU
    runs' metrics tables put together; one run reads ``underpowered``."""
    return resistance_predictions(rows, experiment, unit="training runs")


def run(config: LLMResistanceConfig, run_dir: RunDir) -> dict[str, Any]:
    common.qualify_reference(run_dir, config.model)
    # the cell holds the tempered generator entropy: earlier "paths" cells (T = 1 self-loss) are not reused
    result = run_dir.cell("tempered_paths", lambda: measure_paths(config, run_dir))
    rows = metric_rows(config, result)
    run_dir.write_metrics(rows)
    paths = result["paths"]
    pairs = sorted({k.split("/")[0] for k in paths})
    steps = {k: v["steps"] for k, v in paths.items()}
    failures = [f"pair {p}: forward and inverse took different step counts"
                for p in pairs if steps[f"{p}/forward"] != steps[f"{p}/inverse"]]
    return {"predictions": readings(rows, run_dir.experiment) + within_run(rows, config.n_bootstrap),
            "table1_nats": {p: {d: paths[f"{p}/{d}"]["summary"] for d in ("forward", "inverse")} for p in pairs},
            "checkpoint_steps": result["checkpoint_steps"], "checkpoint_p_aligned": result["checkpoint_scores"],
            "steps_per_path": steps[f"{pairs[0]}/forward"],
            "examples_per_step": config.protocol.optimizer.examples_per_step,
            "regime": common.regime(config.adapter, config.protocol.optimizer), "template_rule": common.TEMPLATE_RULE,
            "no_pretraining_control": "not run: a randomly initialised 135M model cannot answer; see toy.resistance",
            "provenance": common.provenance(config, run_dir), "instrument_failures": failures}


EXPERIMENT = Experiment(
    name="llm.resistance",
    help="Resistance on a real checkpoint: forward vs inverse fine-tuning between SFT checkpoints (paper Table 1)",
    config_cls=LLMResistanceConfig,
    presets={
        "cpu-micro": Preset({}, "LoRA r=8, lr 5e-4, batch 2, 48 SFT examples (24 steps), checkpoints at "
                            "25/50/75%, 24 shared prompts at T=0.05, 12 steps per path "
                            "(SmolLM2 ~10 min on 2 idle cores; data generation not counted)", est_seconds=600),
        "paper": Preset({**{k: v for k, v in common.PAPER.items() if k != "warmup_examples"}, "n_align": 10000,
                         "n_queries": 512, "n_eval": 512},
                        "the paper's SFT settings (GPU; needs that much data)", est_seconds=36000),
    },
    run=run, readings=readings, draw="toymodels.figures:draw_resistance", flags=common.FLAGS,
    default_preset="cpu-micro", units={"loss": "nats per response token", "score": "probability"},
)
