"""Rebound on a real checkpoint: the toy rebound protocol (``rebound_curves``) run on a Hugging
Face model, with two controls of the bridge's own and a paired bootstrap over prompts.

- A shared warm-up: ``warmup_examples`` neutral-format examples (a fresh optimizer, then
  discarded), so that no arm starts from a fresh LoRA (B = 0); theta0 and S0 are taken after it.
- ``neutral_control``: a format-matched control arm per F, trained on neutral examples in the
  same template, then on the same reverse data in the same order.
- Each (arm, F) reverse sweep is a run-folder cell, so an interrupted run resumes.

``cpu-micro`` (the default) runs on 2 CPU cores in minutes with LoRA and a higher learning rate
than the paper: its own regime, not the paper's. ``paper`` uses the paper's IMDb SFT settings and
amounts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from harness.config import Preset, require
from harness.experiment import Experiment
from harness.runs import RunDir
from harness.verdicts import bootstrap_prediction
from llm_bridge import common
from toymodels.protocols.rebound import ReboundSpec
from toymodels.sweep import Runtime

# The toy rebound's predictions (toymodels.protocols.rebound.PREDICTIONS) are reused as they are;
# the bridge adds the Table 3 reading and the format-matched neutral control.
BRIDGE_PREDICTIONS = (
    # id, metric, statistic, predicted sign, description
    ("rebound.table3_reverse_to_eps_decreases_with_F", "table3_reverse_to_eps", "trend", -1,
     "slope of the reverse amount that brings KL(theta0||model) under eps, vs log10 F (Table 3)"),
    ("rebound.initial_rate_vs_neutral_control", "initial_rate_log_odds", "vs_control", 1,
     "initial log-odds decay rate, aligned minus format-matched neutral forward arm, mean over F > 0"),
    ("rebound.initial_rate_vs_neutral_control.prob", "initial_rate_prob", "vs_control", 1,
     "initial probability decay rate, aligned minus format-matched neutral forward arm, mean over F > 0"),
)


@dataclass(frozen=True, kw_only=True)
class LLMReboundConfig:
    model: str = common.DEFAULT_MODEL
    task: Literal["sentiment", "safety", "instruction"] = "sentiment"
    data: str = ""  # {prompt, response, label} JSONL or saved datasets folder; "" = generated default
    seed: int = 42
    adapter: common.AdapterSettings = field(default_factory=common.AdapterSettings)
    probe: ReboundSpec = field(default_factory=lambda: ReboundSpec(
        forward_amounts=(0, 6, 12, 24), reverse_amounts=(0, 4, 8, 16, 32), n_eval=24, n_kl_samples=8,
        optimizer=common.CPU_MICRO_OPTIMIZER))
    warmup_examples: int = 4
    neutral_control: bool = True
    n_bootstrap: int = 999
    execution: Runtime = field(default_factory=common.llm_runtime)
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        require(self.warmup_examples >= 0, "warmup_examples must be >= 0")
        # an llm task's held-out prompts are fixed: the KL prompts are the first n_kl_samples of them
        require(self.probe.n_kl_samples <= self.probe.n_eval,
                "n_kl_samples must be <= n_eval (KL prompts are eval prompts)")
        require(self.n_bootstrap >= 99, "n_bootstrap must be >= 99")


def data_needs(spec: Any, warmup: int, neutral: bool) -> dict[str, int]:
    """Training examples per label that a run draws (checked before a model loads)."""
    fwd = spec.forward_amounts
    return {"aligned": fwd[-1], "misaligned": spec.reverse_amounts[-1],
            "neutral": warmup + (fwd[-1] if neutral else 0)}


def measure_curves(config: LLMReboundConfig, run_dir: RunDir) -> Any:
    """The warm-up, then the toy rebound protocol with the neutral arm; per-prompt curves."""
    from toymodels.protocols.rebound import rebound_curves

    spec = config.probe
    needs = data_needs(spec, config.warmup_examples, config.neutral_control)
    adapter, task = common.load(config, run_dir, needs, spec.n_eval)
    neutral = task.neutral_data(needs["neutral"], seed=config.seed) if needs["neutral"] else []
    warmup = config.warmup_examples
    if warmup:
        adapter.fit(neutral[:warmup], np.arange(warmup), spec.optimizer, None)
    controls = {"neutral": neutral[warmup:]} if config.neutral_control else {}
    n_sweeps = len(spec.forward_amounts) + len(controls) * (len(spec.forward_amounts) - 1)
    with common.progress_bar(n_sweeps, "llm rebound: reverse sweeps") as progress:
        return rebound_curves(adapter, task, spec, config.seed, controls=controls, cache=run_dir.cell,
                              progress=progress)


def statistic(curves: Any, key: str, stat: str) -> Callable[[Mapping[str, np.ndarray]], float]:
    """A rebound reading of the prompts a bootstrap resample drew (``sample["prompt"]``)."""
    from toymodels.protocols.rebound_readings import reading, rebound_metrics

    def of(sample: Mapping[str, np.ndarray]) -> float:
        idx = sample["prompt"]
        control = rebound_metrics(curves.means("neutral", idx)) if stat == "vs_control" else None
        return reading(stat, key, rebound_metrics(curves.means("aligned", idx)), control)

    return of


def run(config: LLMReboundConfig, run_dir: RunDir) -> dict[str, Any]:
    from toymodels.measures import Scores
    from toymodels.protocols.rebound import ReboundCurves, cumulative_steps, curve_rows
    from toymodels.protocols.rebound_readings import PREDICTIONS, rebound_metrics

    spec = config.probe
    common.qualify_reference(run_dir, config.model)

    def compute() -> dict[str, Any]:
        curves = measure_curves(config, run_dir)
        return {"s0_log_odds": curves.s0_log_odds, "log_odds": curves.log_odds, "kl": curves.kl_theta0_model}

    raw = run_dir.cell("scores", compute)  # resumable: a finished measurement is not redone
    curves = ReboundCurves(spec, np.asarray(raw["s0_log_odds"]), {k: np.asarray(v) for k, v in raw["log_odds"].items()},
                           {k: np.asarray(v) for k, v in raw["kl"].items()},
                           cumulative_steps(spec.forward_amounts, spec.optimizer),
                           cumulative_steps(spec.reverse_amounts, spec.optimizer))
    rows = []
    for arm in curves.log_odds:  # the neutral arm is the pseudo-task <task>+neutral-forward
        name = config.task if arm == "aligned" else f"{config.task}+neutral-forward"
        rows += curve_rows(curves, arm, per_prompt=True, seed=config.seed, task=name)
    run_dir.write_metrics(rows)
    per_prompt = {"prompt": np.arange(len(curves.s0_log_odds))}
    family = "llm rebound: 9 predictions (4 readings x 2 score scales + Table 3); no correction"
    predictions = [bootstrap_prediction(pid, per_prompt, statistic(curves, key, stat), sign, desc,
                                        config.n_bootstrap, config.seed, family)
                   for pid, key, stat, sign, desc in (*PREDICTIONS, *BRIDGE_PREDICTIONS)
                   if stat != "vs_control" or "neutral" in curves.log_odds]
    per_arm = {arm: {str(f): m for f, m in rebound_metrics(curves.means(arm)).items()} for arm in curves.log_odds}
    s0 = Scores(curves.s0_log_odds)
    return {"predictions": predictions, "per_F": per_arm, "s0_prob": s0.mean_prob, "s0_log_odds_nats": s0.mean_log_odds,
            "forward_steps": curves.forward_steps, "reverse_steps": curves.reverse_steps,
            "examples_per_step": spec.optimizer.examples_per_step,
            "regime": common.regime(config.adapter, spec.optimizer), "template_rule": common.TEMPLATE_RULE}


def draw(run_dir: RunDir) -> None:
    from toymodels.figures import draw_rebound

    draw_rebound(run_dir, common.model_tag(common.config_model(run_dir)))


EXPERIMENT = Experiment(
    name="llm.rebound",
    help="Rebound on a real checkpoint: alignment amount F vs decay under reverse data (paper Fig. 4, Table 3)",
    config_cls=LLMReboundConfig,
    presets={
        "cpu-micro": Preset({}, "LoRA r=8, lr 5e-4, batch 2 (1 step = 2 examples), F in {0,6,12,24}, "
                            "R in {0,4,8,16,32}, 4-example shared warm-up, neutral control, 24 prompts "
                            "(measured on 2 idle cores: SmolLM2 8 min, Gemma 3 11 min; data generation not counted)",
                            est_seconds=600),
        "paper": Preset({**{k: v for k, v in common.PAPER.items() if k != "max_length"}, "max_length": 512,
                         "batch_size": 1, "forward_amounts": (0, 1000, 2000, 5000, 10000),
                         "reverse_amounts": (0, 100, 200, 500, 1000, 2000), "n_eval": 256, "n_kl_samples": 128},
                        "the paper's IMDb SFT settings and amounts (GPU; needs that much data)", est_seconds=36000),
    },
    run=run, draw=draw, flags=common.FLAGS, default_preset="cpu-micro",
    units={"score": "probability and log-odds (nats)", "kl": "nats per response token"},
)
