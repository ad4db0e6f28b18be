"""Rebound on a real checkpoint: the toy rebound protocol (``rebound_curves``) run on a Hugging
Face model, with a control arm of the bridge's own.

- The protocol's shared warm-up (``probe.warmup_examples`` neutral-format examples, a fresh
  optimizer then discarded) means no arm starts from a fresh LoRA (B = 0); theta0 and S0 are
  taken after it.
- ``neutral_control``: a format-matched control arm per F, trained on neutral examples in the
  same template, then on the same reverse data in the same order.
- Replication: ``seeds`` training seeds x ``data_draws`` data draws are the independent runs; each
  (run, arm, F) reverse sweep is a run-folder cell, so an interrupted run resumes.
- ``controls``: the same protocol from the same architecture without its knowledge (``random``
  initialisation, or ``permuted`` pre-trained weights), one control run per run, read beside it.
- ``save_checkpoints``: the aligned models theta_F (F > 0) of every run as transformers folders
  ``checkpoints/<run>-F<F>`` (safetensors, LoRA merged, with the tokenizer).

The readings are the toy rebound's, a t-interval over training runs: fewer than 3 runs read
``underpowered`` (prompts are not runs). With one run, readings bootstrapped over its prompts are
reported beside them as exploratory.

``cpu-micro`` (the default) runs on 2 CPU cores in minutes with LoRA and a higher learning rate
than the paper: its own regime, not the paper's. ``paper`` uses the paper's IMDb SFT settings and
amounts, ``paper-safety`` its BeaverTails ones (the data sets' hub rows are read by
:mod:`llm_bridge.paper_data`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from harness.config import Preset
from harness.experiment import Experiment
from harness.runs import RunDir
from harness.verdicts import judge, paired_bootstrap
from llm_bridge import common
from llm_bridge.scorers import JUDGE_MEASURE, JUDGE_UNIT, JudgeSettings, judge_probe
from toymodels.protocols.rebound import ReboundSpec
from toymodels.sweep import Execution

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
    adapter_path: str = ""  # a saved PEFT adapter (safetensors) merged into the model: the starting point
    data: str = ""  # records (or trl's layouts) in JSONL or a saved datasets folder; "" = the shipped default
    data_format: common.DataFormat = "auto"  # the data's layout; auto: detected from its columns
    seed: int = 42  # the first training seed
    seeds: int = 1  # training seeds: seed, seed + 1, ...
    data_draws: tuple[int, ...] = (0,)  # held-out split and training examples; runs = draws x seeds
    controls: tuple[str, ...] = ()  # no-pre-training starts run beside: "random", "permuted"
    adapter: common.AdapterSettings = field(default_factory=common.AdapterSettings)
    probe: ReboundSpec = field(default_factory=lambda: ReboundSpec(
        forward_amounts=(0, 6, 12, 24), reverse_amounts=tuple(range(0, 33, 2)), warmup_examples=4, n_eval=24,
        n_kl_samples=64, kl_every=4, optimizer=common.CPU_MICRO_OPTIMIZER))
    neutral_control: bool = True
    n_bootstrap: int = 999
    execution: Execution = field(default_factory=common.llm_execution)
    trust_remote_code: bool = False
    save_checkpoints: bool = False  # the aligned models as transformers folders under checkpoints/
    judge: JudgeSettings = field(default_factory=JudgeSettings)  # exploratory sampled-text score; "" = none

    def __post_init__(self) -> None:
        common.check_bootstrap(self.n_bootstrap)
        common.check_replication(self)


def data_needs(spec: Any, warmup: int, neutral: bool) -> dict[str, int]:
    """Training examples per label that a run draws (checked before a model loads)."""
    fwd = spec.forward_amounts
    return {"aligned": fwd[-1], "misaligned": spec.reverse_amounts[-1],
            "neutral": warmup + (fwd[-1] if neutral else 0)}


def run_curves(config: LLMReboundConfig, run_dir: RunDir, init: str, draw: int, seed: int,
               alignment: Any = None, tag: str = "") -> Any:
    """One independent run of the toy rebound protocol with the neutral arm: per-prompt curves
    (``alignment``: the forward runs' method and mitigations, its cells named with ``tag``, except
    the sweeps no alignment condition changes, which the run's conditions share).

    The run is a cell of the run folder, and so is each of its (arm, F) reverse sweeps, so that a
    killed run resumes from its last finished sweep."""
    from toymodels.protocols.rebound import ReboundCurves, cumulative_steps, rebound_curves

    spec = config.probe
    label = common.cell_label(init, draw, seed, tag)
    # the sweeps no alignment condition changes are one cell per run, shared by its conditions
    untagged = common.cell_label(init, draw, seed)

    def compute() -> dict[str, Any]:
        needs = data_needs(spec, spec.warmup_examples, config.neutral_control)
        adapter, task = common.load_run(config, run_dir, spec.n_eval, init, draw, seed)
        # the neutral arm takes the neutral examples after the protocol's own warm-up ones
        controls = ({"neutral": task.neutral_data(needs["neutral"], seed=seed)[spec.warmup_examples:]}
                    if config.neutral_control else {})
        probe = judge_probe(config.judge, adapter, task, spec.n_eval, seed) if config.judge.scorer else None
        curves = rebound_curves(adapter, task, spec, seed, controls=controls,
                                progress=lambda message: print(f"{label} {message}", file=sys.stderr),
                                cache=lambda key, compute: run_dir.cell(f"{label}-{key}", compute), probe=probe,
                                shared_cache=lambda key, compute: run_dir.cell(f"{untagged}-{key}", compute),
                                alignment=alignment)
        if config.save_checkpoints:
            save_aligned(adapter, task, spec, seed, run_dir, label)
        # no judge: the cell holds what it always held, so earlier run folders resume
        return {"s0_log_odds": curves.s0_log_odds, "log_odds": curves.log_odds, "kl": curves.kl_theta0_model,
                **({"probed": curves.probed} if probe else {})}

    raw = run_dir.cell(f"{label}-scores", compute)
    # a stored cell's F keys are strings
    probed = {arm: {int(f): v for f, v in by_f.items()} for arm, by_f in raw.get("probed", {}).items()}
    return ReboundCurves(spec, np.asarray(raw["s0_log_odds"]), {k: np.asarray(v) for k, v in raw["log_odds"].items()},
                         {k: np.asarray(v, dtype=float) for k, v in raw["kl"].items()},
                         cumulative_steps(spec.forward_amounts, spec.optimizer),
                         cumulative_steps(spec.reverse_amounts, spec.optimizer), probed)


def save_aligned(adapter: Any, task: Any, spec: ReboundSpec, seed: int, run_dir: RunDir, label: str) -> None:
    """The aligned arm's models theta_F (F > 0) as transformers folders. The protocol keeps no
    states, so the forward slices are trained again from theta0 (where it leaves the model) with its
    data, order and optimizer, as a resumed run recomputes them."""
    from toymodels.finetuning import epoch_order
    from toymodels.protocols.rebound import forward_checkpoints

    fwd = spec.forward_amounts
    data = task.forward_data(fwd[-1], seed=seed)
    states = forward_checkpoints(adapter, data, epoch_order(len(data), seed), fwd, spec.optimizer)
    common.save_checkpoints(adapter, run_dir, label, {f: s for f, s in zip(fwd, states, strict=True) if f > 0})


def measure_run(config: LLMReboundConfig, run_path: str, cell: Any, device: str) -> list[dict[str, Any]]:
    """A cell of the run grid (in a worker process when ``n_jobs`` > 1): one run's metric rows."""
    from toymodels.protocols.rebound import curve_rows

    curves = run_curves(config, RunDir.load(run_path), *common.cell_run(cell))
    rows = []
    for arm in curves.log_odds:  # the neutral arm is the pseudo-task <task>+neutral-forward
        name = config.task if arm == "aligned" else f"{config.task}+neutral-forward"
        rows += curve_rows(curves, arm, per_prompt=True, probe_units={JUDGE_MEASURE: JUDGE_UNIT}, task=name)
    return rows


def statistic(curves: Any, key: str, stat: str) -> Callable[[Mapping[str, np.ndarray]], float]:
    """A rebound reading of the prompts a bootstrap resample drew (``sample["prompt"]``)."""
    from toymodels.protocols.rebound_readings import reading_of, rebound_metrics

    def of(sample: Mapping[str, np.ndarray]) -> float:
        idx = sample["prompt"]
        control = rebound_metrics(curves.means("neutral", idx)) if stat == "vs_control" else None
        return reading_of(stat, key, rebound_metrics(curves.means("aligned", idx)), control)

    return of


def aligned_prob(rows: Sequence[Mapping[str, Any]], config: LLMReboundConfig) -> dict[str, dict[str, float]]:
    """How far alignment got from each starting point: mean P(aligned) over runs before alignment (S0)
    and after the largest F (before any reverse step)."""
    top = config.probe.forward_amounts[-1]
    out: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        c = r["condition"]
        if r["measure"] == "s0_prob" and c["task"] == config.task:
            out.setdefault(c["init"], {}).setdefault("s0", []).append(r["value"])
        elif r["measure"] == "score_prob" and c["task"] == config.task and c["F"] == top and r["x"] == 0:
            out.setdefault(c["init"], {}).setdefault(f"F{top}", []).append(r["value"])
    return {init: {k: float(np.mean(v)) for k, v in by.items()} for init, by in out.items()}


def run(config: LLMReboundConfig, run_dir: RunDir) -> dict[str, Any]:
    from toymodels.measures import Scores
    from toymodels.protocols.rebound import cumulative_steps
    from toymodels.protocols.rebound_readings import (
        PREDICTIONS,
        PRIMARY_IDS,
        derived_rows,
        per_run_values,
    )
    spec = config.probe
    common.qualify_reference(run_dir, config, "sentiment")
    rows = common.sweep_runs(config, run_dir, measure_run, data_needs(spec, spec.warmup_examples, config.neutral_control),
                             spec.n_eval, "llm rebound: runs")
    run_dir.write_metrics(rows + derived_rows(rows))
    predictions = readings(rows, run_dir.experiment)
    runs = common.pretrained_runs(config)
    curves = {label: run_curves(config, run_dir, "pretrained", d, s) for label, (d, s) in runs.items()}
    if len(runs) == 1:  # one run: its prompts give exploratory readings (prompts are not runs)
        one = next(iter(curves.values()))
        per_prompt = {"prompt": np.arange(len(one.s0_log_odds))}
        predictions += [judge(pid, paired_bootstrap(per_prompt, statistic(one, key, stat), config.n_bootstrap,
                                                    config.seed), desc, n_runs=1)
                        for pid, key, stat, desc in WITHIN_RUN if stat != "vs_control" or "neutral" in one.log_odds]
    pretrained = [r for r in rows if r["condition"]["init"] == "pretrained"]
    s0 = Scores(np.concatenate([c.s0_log_odds for c in curves.values()]))
    return {"predictions": predictions, "n_runs": len(runs), "runs": list(runs), "controls": list(config.controls),
            # the primary readings' value in each run, beside their pooled interval
            "per_run": {pid: per_run_values(pretrained, key, stat)[0]
                        for pid, key, stat, _ in PREDICTIONS if pid in PRIMARY_IDS},
            "s0_prob": s0.mean_prob, "s0_log_odds_nats": s0.mean_log_odds, "aligned_prob": aligned_prob(rows, config),
            "forward_steps": cumulative_steps(spec.forward_amounts, spec.optimizer),
            "reverse_steps": cumulative_steps(spec.reverse_amounts, spec.optimizer),
            "examples_per_step": spec.optimizer.examples_per_step,
            "regime": common.regime(config.adapter, spec.optimizer), "template_rule": common.TEMPLATE_RULE,
            "provenance": common.provenance(config, run_dir), **judge_summary(pretrained, config)}


def judge_summary(rows: Sequence[Mapping[str, Any]], config: LLMReboundConfig) -> dict[str, Any]:
    """With a judge: its mean score of samples over runs, per F, before and after the reverse sweep
    (exploratory: sampled text, beside the exact score, read by no prediction); else nothing."""
    if not config.judge.scorer:
        return {}
    last = config.probe.reverse_amounts[-1]
    by_f: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        c = r["condition"]
        if r["measure"] == JUDGE_MEASURE and c["task"] == config.task and r["x"] in (0, last):
            by_f.setdefault(str(c["F"]), {}).setdefault(f"R{r['x']}", []).append(r["value"])
    return {"judge": {"scorer": config.judge.scorer, "measure": JUDGE_MEASURE, "exploratory": True,
                      "mean_by_F": {f: {k: float(np.mean(v)) for k, v in at.items()} for f, at in by_f.items()}}}


def readings(rows: Sequence[Mapping[str, Any]], experiment: str = "llm.rebound") -> list[Any]:
    """The toy rebound's readings over training runs (the seeds of the rows: one per data draw and
    training seed), e.g. of several GPU runs' metrics tables put together; fewer than 3 runs read
    ``underpowered``. The format-matched neutral arm and rows from no-pre-training starts (condition
    ``init``) give exploratory control readings."""
    from toymodels.protocols.rebound_readings import (
        control_arm_predictions,
        control_predictions,
        rebound_predictions,
    )

    by_init: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_init.setdefault(str(r["condition"].get("init", "pretrained")), []).append(r)
    predictions = rebound_predictions(by_init.get("pretrained", []), experiment, unit="training runs")
    predictions += control_arm_predictions(by_init.get("pretrained", []), experiment, unit="training runs")
    if len(by_init) > 1:
        predictions += control_predictions(by_init, experiment, unit="training runs")
    return predictions


def draw(run_dir: RunDir) -> None:
    from toymodels.figures import draw_rebound

    draw_rebound(run_dir, common.model_tag(common.config_model(run_dir)))


# The paper's rebound amounts (digest 5.2, [P] v1 figure): F aligned examples, then up to 2000 reverse
# ones. The paper has no neutral arm and IMDb/BeaverTails no neutral text, so none is trained.
PAPER_REBOUND = {**common.PAPER, "forward_amounts": (0, 1000, 2000, 5000, 10000), "neutral_control": False,
                 "kl_every": 8, "n_eval": 256, "n_kl_samples": 128}
PAPER_NOT_GIVEN = ("the paper does not give its evaluation prompts or samples: n_eval 256, 128 KL samples "
                   "and the read-out grid are this project's")

EXPERIMENT = Experiment(
    name="llm.rebound",
    help="Rebound on a real checkpoint: alignment amount F vs decay under reverse data (paper Fig. 4, Table 3)",
    config_cls=LLMReboundConfig,
    presets={
        "cpu-micro": Preset({}, "one run: LoRA r=8, lr 5e-4, batch 2 (1 step = 2 examples), F in {0,6,12,24}, "
                            "R every step to 32, 4-example shared warm-up, neutral control, 24 prompts, "
                            "64 KL samples every 4 steps", est_seconds=600),
        **common.replication_presets(3050, 19000, "SmolLM2 sentiment took 51 min on 2 cores, Gemma 3 about 3 h",
                                     "SmolLM2 sentiment took about 5.3 h on 2 cores, two runs at a time"),
        "paper": Preset({**PAPER_REBOUND, "max_length": 512, "batch_size": 1,
                         "reverse_amounts": tuple(range(0, 2001, 8))},
                        "the paper's IMDb SFT (sft-imdb.sh: full, lr 1e-5 constant, batch 1x8, max_length 512) and "
                        "amounts (F in {1000,2000,5000,10000}, reverse to 2000, read every 8-example step); "
                        f"{PAPER_NOT_GIVEN}; GPU; stanfordnlp/imdb rows; a sentiment judge of samples beside "
                        "the exact score: --set scorer=classifier:DIR --set scorer_label=POSITIVE", est_seconds=36000),
        "paper-safety": Preset({**PAPER_REBOUND, "task": "safety", "reverse_amounts": tuple(range(0, 2017, 32))},
                               "the paper's BeaverTails SFT (sft-safe.sh: full, lr 1e-5 constant, batch 4x8, "
                               "max_length 2048) and amounts (F in {1000,2000,5000,10000}, reverse to 2016, read "
                               f"every 32-example step); {PAPER_NOT_GIVEN}; GPU; "
                               "PKU-Alignment/BeaverTails rows; a safety judge of samples beside the exact "
                               "score: --set scorer=cost:DIR (a cost model)", est_seconds=36000),
    },
    run=run, readings=readings, draw=draw, flags=common.FLAGS, default_preset="cpu-micro",
    units={"score": "probability and log-odds (nats)", "kl": "nats per response token",
           "judge": "the judge's mean score of sampled responses (exploratory)"},
)
