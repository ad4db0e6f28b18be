"""Rebound on a real checkpoint: the toy rebound protocol (``rebound_curves``) run on a Hugging
Face model, with a control arm of the bridge's own.

- The protocol's shared warm-up (``probe.warmup_examples`` neutral-format examples, a fresh
  optimizer then discarded) means no arm starts from a fresh LoRA (B = 0); theta0 and S0 are
  taken after it.
- ``neutral_control``: a format-matched control arm per F, trained on neutral examples in the
  same template, then on the same reverse data in the same order.
- Each (arm, F) reverse sweep is a run-folder cell, so an interrupted run resumes.

The readings are the toy rebound's, over training runs: one run reads ``underpowered`` (prompts
are not runs). Readings of the one run bootstrapped over its prompts are reported beside them as
exploratory.

``cpu-micro`` (the default) runs on 2 CPU cores in minutes with LoRA and a higher learning rate
than the paper: its own regime, not the paper's. ``paper`` uses the paper's IMDb SFT settings and
amounts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from harness.config import Preset, require
from harness.experiment import Experiment
from harness.runs import RunDir
from harness.verdicts import judge, paired_bootstrap
from llm_bridge import common
from toymodels.protocols.rebound import ReboundSpec
from toymodels.sweep import Runtime

# Readings of the one run, bootstrapped over its prompts: exploratory, since prompts are not runs
# (the primary readings come from rebound_predictions over runs and read underpowered with one run).
WITHIN_RUN = (
    # id, metric, statistic, description
    ("rebound.initial_rate_increases_with_F.within_run", "initial_rate_log_odds", "trend",
     "slope of the initial log-odds decay rate vs log10 F, bootstrapped over the prompts of one run"),
    ("rebound.slows_near_s0.within_run", "slowdown_at_s0_log_odds", "mean",
     "drop of the log-odds decay rate at S0, mean over F > 0, bootstrapped over the prompts of one run"),
    ("rebound.initial_rate_vs_neutral_control", "initial_rate_log_odds", "vs_control",
     "initial log-odds decay rate (steps 1-9), aligned minus format-matched neutral forward arm, mean over F > 0"),
    ("rebound.initial_rate_vs_neutral_control.prob", "initial_rate_prob", "vs_control",
     "initial probability decay rate (steps 1-9), aligned minus format-matched neutral forward arm, mean over F > 0"),
)


@dataclass(frozen=True, kw_only=True)
class LLMReboundConfig:
    model: str = common.DEFAULT_MODEL
    task: Literal["sentiment", "safety", "instruction"] = "sentiment"
    data: str = ""  # {prompt, response, label} JSONL or saved datasets folder; "" = generated default
    seed: int = 42
    adapter: common.AdapterSettings = field(default_factory=common.AdapterSettings)
    probe: ReboundSpec = field(default_factory=lambda: ReboundSpec(
        forward_amounts=(0, 6, 12, 24), reverse_amounts=tuple(range(0, 33, 2)), warmup_examples=4, n_eval=24,
        n_kl_samples=64, kl_every=4, optimizer=common.CPU_MICRO_OPTIMIZER))
    neutral_control: bool = True
    n_bootstrap: int = 999
    execution: Runtime = field(default_factory=common.llm_runtime)
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        require(self.n_bootstrap >= 99, "n_bootstrap must be >= 99")


def data_needs(spec: Any, warmup: int, neutral: bool) -> dict[str, int]:
    """Training examples per label that a run draws (checked before a model loads)."""
    fwd = spec.forward_amounts
    return {"aligned": fwd[-1], "misaligned": spec.reverse_amounts[-1],
            "neutral": warmup + (fwd[-1] if neutral else 0)}


def measure_curves(config: LLMReboundConfig, run_dir: RunDir) -> Any:
    """The toy rebound protocol with the neutral arm: per-prompt curves."""
    from toymodels.protocols.rebound import rebound_curves

    spec = config.probe
    needs = data_needs(spec, spec.warmup_examples, config.neutral_control)
    adapter, task = common.load(config, run_dir, needs, spec.n_eval)
    # the neutral arm takes the neutral examples after the protocol's own warm-up ones
    controls = ({"neutral": task.neutral_data(needs["neutral"], seed=config.seed)[spec.warmup_examples:]}
                if config.neutral_control else {})
    n_sweeps = len(spec.forward_amounts) + len(controls) * (len(spec.forward_amounts) - 1)
    with common.progress_bar(n_sweeps, "llm rebound: reverse sweeps") as progress:
        return rebound_curves(adapter, task, spec, config.seed, controls=controls, cache=run_dir.cell,
                              progress=progress)


def statistic(curves: Any, key: str, stat: str) -> Callable[[Mapping[str, np.ndarray]], float]:
    """A rebound reading of the prompts a bootstrap resample drew (``sample["prompt"]``)."""
    from toymodels.protocols.rebound_readings import reading_of, rebound_metrics

    def of(sample: Mapping[str, np.ndarray]) -> float:
        idx = sample["prompt"]
        control = rebound_metrics(curves.means("neutral", idx)) if stat == "vs_control" else None
        return reading_of(stat, key, rebound_metrics(curves.means("aligned", idx)), control)

    return of


def run(config: LLMReboundConfig, run_dir: RunDir) -> dict[str, Any]:
    from toymodels.measures import Scores
    from toymodels.protocols.rebound import ReboundCurves, cumulative_steps, curve_rows
    from toymodels.protocols.rebound_readings import derived_rows, rebound_metrics

    spec = config.probe
    common.qualify_reference(run_dir, config.model)

    def compute() -> dict[str, Any]:
        curves = measure_curves(config, run_dir)
        return {"s0_log_odds": curves.s0_log_odds, "log_odds": curves.log_odds, "kl": curves.kl_theta0_model}

    raw = run_dir.cell("scores", compute)  # resumable: a finished measurement is not redone
    curves = ReboundCurves(spec, np.asarray(raw["s0_log_odds"]), {k: np.asarray(v) for k, v in raw["log_odds"].items()},
                           {k: np.asarray(v, dtype=float) for k, v in raw["kl"].items()},
                           cumulative_steps(spec.forward_amounts, spec.optimizer),
                           cumulative_steps(spec.reverse_amounts, spec.optimizer))
    rows = []
    for arm in curves.log_odds:  # the neutral arm is the pseudo-task <task>+neutral-forward
        name = config.task if arm == "aligned" else f"{config.task}+neutral-forward"
        rows += curve_rows(curves, arm, per_prompt=True, seed=config.seed, task=name)
    run_dir.write_metrics(rows + derived_rows(rows))
    per_prompt = {"prompt": np.arange(len(curves.s0_log_odds))}
    predictions = readings(rows, run_dir.experiment)
    predictions += [judge(pid, paired_bootstrap(per_prompt, statistic(curves, key, stat), config.n_bootstrap,
                                                config.seed), desc, n_runs=1)
                    for pid, key, stat, desc in WITHIN_RUN if stat != "vs_control" or "neutral" in curves.log_odds]
    per_arm = {arm: {str(f): m for f, m in rebound_metrics(curves.means(arm)).items()} for arm in curves.log_odds}
    s0 = Scores(curves.s0_log_odds)
    return {"predictions": predictions, "per_F": per_arm, "s0_prob": s0.mean_prob, "s0_log_odds_nats": s0.mean_log_odds,
            "forward_steps": curves.forward_steps, "reverse_steps": curves.reverse_steps,
            "examples_per_step": spec.optimizer.examples_per_step,
            "regime": common.regime(config.adapter, spec.optimizer), "template_rule": common.TEMPLATE_RULE,
            "provenance": common.provenance(config, run_dir)}


def readings(rows: Sequence[Mapping[str, Any]], experiment: str = "llm.rebound") -> list[Any]:
    """The toy rebound's readings over training runs (the seeds of the rows), e.g. of several
    GPU runs' metrics tables put together; one run reads ``underpowered``."""
    from toymodels.protocols.rebound_readings import rebound_predictions

    return rebound_predictions(rows, experiment, unit="training runs")


def draw(run_dir: RunDir) -> None:
    from toymodels.figures import draw_rebound

    draw_rebound(run_dir, common.model_tag(common.config_model(run_dir)))


EXPERIMENT = Experiment(
    name="llm.rebound",
    help="Rebound on a real checkpoint: alignment amount F vs decay under reverse data (paper Fig. 4, Table 3)",
    config_cls=LLMReboundConfig,
    presets={
        "cpu-micro": Preset({}, "LoRA r=8, lr 5e-4, batch 2 (1 step = 2 examples), F in {0,6,12,24}, "
                            "R every step to 32, 4-example shared warm-up, neutral control, 24 prompts, "
                            "64 KL samples every 4 steps", est_seconds=1200),
        "paper": Preset({**{k: v for k, v in common.PAPER.items() if k != "max_length"}, "max_length": 512,
                         "batch_size": 1, "forward_amounts": (0, 1000, 2000, 5000, 10000),
                         "reverse_amounts": tuple(range(0, 2001, 8)), "kl_every": 8, "n_eval": 256,
                         "n_kl_samples": 128},
                        "the paper's IMDb SFT settings and amounts (GPU; needs that much data)", est_seconds=36000),
    },
    run=run, readings=readings, draw=draw, flags=common.FLAGS, default_preset="cpu-micro",
    units={"score": "probability and log-odds (nats)", "kl": "nats per response token"},
)
