"""Resistance on a real checkpoint: the toy resistance protocol (``run_resistance``, the paper's
Table 1) run on a Hugging Face model, with a paired bootstrap over the shared prompts.

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
from harness.verdicts import predict
from llm_bridge import common
from toymodels.protocols.resistance import ResistanceSpec
from toymodels.sweep import Runtime


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
    n_bootstrap: int = 999
    execution: Runtime = field(default_factory=common.llm_runtime)
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        require(self.protocol.n_queries <= self.n_eval,
                "n_queries must be <= n_eval (Q is drawn from held-out prompts)")
        require(self.n_bootstrap >= 99, "n_bootstrap must be >= 99")


RESISTANCE_MEASURES = (
    ("excess_step0", -1, "inverse - forward KL-excess at step 0 (loss - generator self-loss, nats/token)"),
    ("excess_final", -1, "inverse - forward KL-excess after the epoch (nats/token)"),
    ("loss_step0", -1, "inverse - forward loss at step 0 (nats/token)"),
    ("loss_final", -1, "inverse - forward loss after the epoch (nats/token)"),
)


def _wmean(values: Sequence[float], weights: np.ndarray) -> float:
    return float(np.sum(np.asarray(values, float) * weights) / weights.sum())


def _per_prompt(path: Mapping[str, Any], measure: str) -> np.ndarray:
    when = measure.split("_")[1]
    values = np.asarray(path[when], float)
    return values - np.asarray(path["generator"], float) if measure.startswith("excess") else values


def measure_paths(config: LLMResistanceConfig, run_dir: RunDir) -> dict[str, Any]:
    """The toy resistance protocol on the checkpoint; each path's per-prompt losses."""
    from toymodels.measures import example_losses
    from toymodels.protocols.resistance import run_resistance

    spec = config.protocol
    adapter, task = common.load(config, run_dir, {"aligned": spec.n_align}, config.n_eval)
    with common.progress_bar(len(spec.checkpoint_fractions) + 2 * len(spec.pairs), "llm resistance") as progress:
        result = run_resistance(adapter, task, spec, config.seed, progress=progress)
    paths = {}
    for (k, m), both in result.pairs.items():
        for direction, path in both.items():
            target = result.datasets[path.target]
            paths[f"{k}-{m}/{direction}"] = {
                "step0": example_losses(path.step0_logprobs), "final": example_losses(path.final_logprobs),
                "generator": example_losses(target.self_logprobs[1.0]), "losses": path.log.losses,
                "steps": path.log.steps, "mean_train_loss": path.log.mean_loss,
                "response_tokens": [len(e.response_ids) for e in target.examples]}
    return {"checkpoint_steps": result.checkpoint_steps, "checkpoint_scores": result.checkpoint_scores,
            "paths": paths}


def run(config: LLMResistanceConfig, run_dir: RunDir) -> dict[str, Any]:
    common.qualify_reference(run_dir, config.model)
    result = run_dir.cell("paths", lambda: measure_paths(config, run_dir))

    paths = result["paths"]
    cond = {"init": "pretrained", "task": config.task, "size": config.model, "T": config.protocol.temperature}
    rows = []
    for i, (st, sc) in enumerate(zip(result["checkpoint_steps"], result["checkpoint_scores"], strict=True)):
        rows.append(metric_row("checkpoint_p_aligned", sc, "prob", seed=config.seed, x=i, **cond))
        rows.append(metric_row("checkpoint_steps", st, "steps", seed=config.seed, x=i, **cond))
    for key, path in paths.items():
        pair, direction = key.split("/")
        c = dict(cond, pair=pair, path=direction)
        gen = np.asarray(path["generator"], float)
        tok = np.asarray(path["response_tokens"], float)
        # token-weighted means, as training measures loss; per-prompt values below
        summary = {"loss_step0_nats": _wmean(path["step0"], tok), "loss_final_nats": _wmean(path["final"], tok),
                   "generator_loss_nats": _wmean(gen, tok), "loss_mean_nats": path["mean_train_loss"]}
        summary["excess_step0_nats"] = summary["loss_step0_nats"] - summary["generator_loss_nats"]
        summary["excess_final_nats"] = summary["loss_final_nats"] - summary["generator_loss_nats"]
        summary["excess_mean_nats"] = summary["loss_mean_nats"] - summary["generator_loss_nats"]
        for name, value in summary.items():
            rows.append(metric_row(name, value, "nats", seed=config.seed, **c))
        rows.append(metric_row("steps", path["steps"], "steps", seed=config.seed, **c))
        for s, loss in enumerate(path["losses"]):
            rows.append(metric_row("train_loss", loss, "nats", seed=config.seed, x=s + 1, **c))
        for p, (a, b) in enumerate(zip(path["step0"], path["final"], strict=True)):
            rows.append(metric_row("prompt_loss_step0", a, "nats", seed=config.seed, **c, prompt=p))
            rows.append(metric_row("prompt_loss_final", b, "nats", seed=config.seed, **c, prompt=p))
    run_dir.write_metrics(rows)
    pairs = sorted({k.split("/")[0] for k in paths})
    family = "llm resistance: 4 measures over one set of paths; no correction, each with its own CI"
    predictions, counts = [], {}
    for measure, sign, desc in RESISTANCE_MEASURES:
        diffs = np.array([_per_prompt(paths[f"{p}/inverse"], measure) - _per_prompt(paths[f"{p}/forward"], measure)
                          for p in pairs])  # (n_pairs, n_prompts)
        per_prompt = diffs.mean(axis=0)
        counts[measure] = {"pairs_inverse_lower": int((diffs.mean(axis=1) < 0).sum()), "n_pairs": len(pairs),
                           "prompts_inverse_lower": int((per_prompt < 0).sum()), "n_prompts": int(per_prompt.size)}
        predictions.append(predict(f"resistance.{measure}.inverse_lower", per_prompt, sign,
                                   desc + ", per prompt, mean over the 3 pairs", method="bootstrap",
                                   seed=config.seed, family=family, **counts[measure]))
    steps = {k: v["steps"] for k, v in paths.items()}
    failures = [f"pair {p}: forward and inverse took different step counts"
                for p in pairs if steps[f"{p}/forward"] != steps[f"{p}/inverse"]]
    table = {p: {d: {m: float(np.mean(_per_prompt(paths[f'{p}/{d}'], m))) for m, _, _ in RESISTANCE_MEASURES}
                 | {"train_loss_mean": paths[f"{p}/{d}"]["mean_train_loss"]} for d in ("forward", "inverse")}
             for p in pairs}
    return {"predictions": predictions, "counts": counts, "table1_nats": table,
            "checkpoint_steps": result["checkpoint_steps"], "checkpoint_p_aligned": result["checkpoint_scores"],
            "steps_per_path": steps[f"{pairs[0]}/forward"],
            "examples_per_step": config.protocol.optimizer.examples_per_step,
            "regime": common.regime(config.adapter, config.protocol.optimizer), "template_rule": common.TEMPLATE_RULE,
            "no_pretraining_control": "not run: a randomly initialised 135M model cannot answer; see toy.resistance",
            "instrument_failures": failures}


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
    run=run, draw="toymodels.figures:draw_resistance", flags=common.FLAGS, default_preset="cpu-micro",
    units={"loss": "nats per response token", "score": "probability"},
)
