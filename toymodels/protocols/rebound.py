"""Rebound (the paper's Figure 4 and Table 3): does deeper alignment decay faster under reverse data?

From theta0, one SFT run on aligned data is cut at forward amounts F (theta_F; F = 0 is theta0
itself, the control). Each theta_F is then fine-tuned on increasing reverse (misaligned) amounts
R, with a fresh optimizer, the same reverse examples and the same order for every F. After each
amount the exact behaviour score (log-probabilities over the task's contrast set, no sampling) is
measured on held-out prompts, as mean probability and as mean log-odds, together with
KL(theta0||model) on samples of theta0.

:func:`rebound_curves` is the protocol over any LanguageModel and Task; it keeps per-prompt
scores, so the real-checkpoint bridge runs this very loop (with a control arm of its own) and
bootstraps over prompts. Its readings are in :mod:`toymodels.protocols.rebound_readings`.
``EXPERIMENT`` is the toy command ``elasticity toy rebound``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.config import Preset, require, seeds_of
from harness.experiment import Experiment
from harness.metrics import metric_row
from harness.runs import RunDir
from toymodels import measures
from toymodels.alignment import Alignment, AlignmentSpec, alignment_data
from toymodels.corpus import (
    Corpus,
    CorpusConfig,
    check_examples,
    check_pretraining_set,
    check_tasks,
)
from toymodels.finetuning import check_amounts, epoch_order, sample_responses, steps_for
from toymodels.interface import Contrast, Example, LanguageModel, OptimizerSpec, Pair
from toymodels.model import check_size
from toymodels.protocols.rebound_readings import (
    MeanCurves,
    derived_rows,
    metrics_by_run,
    rebound_predictions,
)
from toymodels.sweep import Cell, Execution, Grid, run_grid
from toymodels.tasks import Task, make_tasks
from toymodels.train import PretrainSettings, PretrainSpec, pretrain


@dataclass(frozen=True, kw_only=True)
class ReboundSpec:
    """The protocol's settings, and the ``probe`` block of every config that runs it: amounts in
    examples; optimizer steps follow from the batch size."""

    forward_amounts: tuple[int, ...] = (0, 125, 250, 500, 1000)  # F; 0 is the control
    # R: after every optimizer step (an equal-step grid, dense where every reading looks)
    reverse_amounts: tuple[int, ...] = tuple(range(0, 513, 16))
    warmup_examples: int = 32  # shared by every arm before theta0 is taken (fresh optimizer, discarded)
    n_eval: int = 256  # held-out prompts for the exact score
    n_kl_samples: int = 256  # samples of theta0 (temperature 1) for KL(theta0||model)
    kl_every: int = 4  # KL(theta0||model) at every kl_every-th reverse amount (and the last)
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)

    def __post_init__(self) -> None:
        check_amounts(self.forward_amounts, "forward_amounts")
        check_amounts(self.reverse_amounts, "reverse_amounts")
        require(self.forward_amounts[0] == 0, "forward_amounts must start at 0 (the F = 0 control)")
        require(len(self.forward_amounts) >= 3, "forward_amounts needs 0 and at least two F > 0")
        require(self.reverse_amounts[0] == 0, "reverse_amounts must start at 0")
        require(len(self.reverse_amounts) >= 3, "reverse_amounts needs at least three amounts")
        require(self.n_eval >= 1 and self.n_kl_samples >= 1, "n_eval and n_kl_samples must be >= 1")
        for key in ("n_eval", "n_kl_samples", "warmup_examples"):
            check_examples(f"probe.{key}", getattr(self, key))
        require(self.warmup_examples >= 0, f"warmup_examples must be >= 0, got {self.warmup_examples}")
        require(self.kl_every >= 1, f"kl_every must be >= 1, got {self.kl_every}")
        step = self.optimizer.examples_per_step
        # whole optimizer steps: the readings' windows are in steps, and a partial batch is a step too
        require(all(r % step == 0 for r in self.reverse_amounts),
                f"reverse_amounts must be multiples of the {step} examples per optimizer step, got {self.reverse_amounts}")


@dataclass
class ReboundCurves:
    """Per-prompt log-odds of every arm at every (F, R), KL(theta0||model), and the steps behind
    every amount. Arm ``aligned`` is the protocol; control arms (a bridge's format-matched
    ``neutral`` arm) share its F = 0 run."""

    spec: ReboundSpec
    s0_log_odds: np.ndarray  # (n_prompts,) log-odds of theta0
    log_odds: dict[str, np.ndarray]  # arm -> (n_F, n_R, n_prompts)
    kl_theta0_model: dict[str, np.ndarray]  # arm -> (n_F, n_R), nats per response token
    forward_steps: list[int]
    reverse_steps: list[int]
    # a probe's readings (rebound_curves' ``probe``): arm -> F -> per reverse amount, measure -> value
    probed: dict[str, dict[int, list[dict[str, float]]]] = field(default_factory=dict)

    def means(self, arm: str = "aligned", prompts: np.ndarray | None = None) -> MeanCurves:
        """The arm's scores averaged over ``prompts`` (all by default; a bootstrap resamples them)."""
        take = slice(None) if prompts is None else prompts
        scores = measures.Scores(self.log_odds[arm][..., take])
        s0 = measures.Scores(self.s0_log_odds[take])
        return MeanCurves(self.spec.forward_amounts, self.spec.reverse_amounts, tuple(self.reverse_steps),
                          s0.mean_prob, s0.mean_log_odds, scores.p.mean(-1), scores.log_odds.mean(-1),
                          self.kl_theta0_model[arm])


def cumulative_steps(amounts: Sequence[int], optimizer: OptimizerSpec) -> list[int]:
    """Optimizer steps behind each amount of an incremental run."""
    # each increment is its own fit call, so a partial last batch is a step of each increment
    return [int(v) for v in np.cumsum([0] + [steps_for(b - a, optimizer)
                                           for a, b in zip(amounts, amounts[1:], strict=False)])]


def forward_checkpoints(model: LanguageModel, data: Sequence[Example | Pair], order: np.ndarray,
                        amounts: Sequence[int], optimizer: OptimizerSpec,
                        alignment: AlignmentSpec | None = None) -> list[dict[str, Any]]:
    """One alignment run (SFT, or ``alignment``'s method and mitigations) from ``model``'s current
    weights, cut at each amount (nested checkpoints of one epoch, the optimizer state carried); the
    first state is the current weights (F = 0)."""
    states, state = [model.state_dict()], None
    run = Alignment.start(alignment, model)
    for a, b in zip(amounts, amounts[1:], strict=False):
        _, state = model.fit(data, order[a:b], optimizer, state, **({"alignment": run} if run else {}))
        states.append(model.state_dict())
    return states


# an extra reading at the KL points of every reverse sweep: (model, reverse amount) -> measure -> value
Probe = Callable[[LanguageModel, int], Mapping[str, float]]


def reverse_sweep(model: LanguageModel, reverse: Sequence[Example], order: np.ndarray, amounts: Sequence[int],
                  optimizer: OptimizerSpec, contrasts: Sequence[Contrast] | measures.ContrastSet,
                  kl_reference: tuple[Sequence[np.ndarray], Sequence[Example]], kl_every: int = 1,
                  probe: Probe | None = None,
                  ) -> tuple[list[measures.Scores], list[float], list[dict[str, float]]]:
    """Reverse fine-tuning from ``model``'s current weights through ``amounts`` (one run, a fresh
    optimizer whose state is carried), with the scores after each amount and KL(theta0||model) after
    every ``kl_every``-th and the last (NaN elsewhere).

    ``kl_reference``: theta0's token log-probabilities on its own samples, and those samples.
    ``probe(model, amount)``, if given, is read at the KL points too: its readings per amount (empty
    where not read) are returned third.
    """
    ref_lp, ref_samples = kl_reference
    opt_state, scores, kl, probed = None, [], [], []
    for j, amount in enumerate(amounts):
        if j > 0:
            _, opt_state = model.fit(reverse, order[amounts[j - 1] : amount], optimizer, opt_state)
        scores.append(measures.contrast_scores(model, contrasts))
        measured = j % kl_every == 0 or j == len(amounts) - 1
        kl.append(measures.kl_reference_model(ref_lp, model, ref_samples) if measured else float("nan"))
        probed.append({k: float(v) for k, v in probe(model, amount).items()}
                      if probe is not None and measured else {})
    return scores, kl, probed


def _compute(key: str, compute: Callable[[], Any]) -> Any:
    return compute()


def rebound_curves(model: LanguageModel, task: Task, spec: ReboundSpec, seed: int, *,
                   controls: Mapping[str, Sequence[Example]] | None = None,
                   cache: Callable[[str, Callable[[], Any]], Any] = _compute,
                   shared_cache: Callable[[str, Callable[[], Any]], Any] | None = None,
                   progress: Callable[[str], None] = lambda message: None,
                   probe: Probe | None = None, alignment: AlignmentSpec | None = None) -> ReboundCurves:
    """Measure the (F, R) grid from ``model``'s weights after a shared warm-up (theta0), per prompt.

    The warm-up fits ``spec.warmup_examples`` of ``task.neutral_data`` with a fresh optimizer that is
    then discarded, so that no arm starts from untouched weights (a fresh LoRA has B = 0). The
    aligned arm trains on ``task.forward_data``; each of ``controls`` (arm name -> forward examples,
    at least the largest F of them) is a further arm through the same amounts, the same reverse data
    and order, sharing the aligned arm's F = 0 sweep. ``cache(key, compute)`` may store each (arm, F)
    reverse sweep (a run folder's ``cell``) so that an interrupted run resumes; the forward slices
    are recomputed, deterministically. ``shared_cache`` (default ``cache``) stores the sweeps that
    ``alignment`` cannot change, the F = 0 sweep from theta0 and a control arm trained by plain SFT,
    so that runs of several alignment conditions from one theta0 compute them once. ``probe``, if
    given, is read at every KL point of every sweep (kept, cached with its sweep, in
    ``curves.probed``). ``alignment`` sets the forward runs' method and mitigations
    (:mod:`toymodels.alignment`; None: SFT); control arms train on their data with SFT (they keep
    its anchor and perturbation). ``model`` is left at theta0.
    """
    fwd, rev = spec.forward_amounts, spec.reverse_amounts
    if spec.warmup_examples:
        warmup = task.neutral_data(spec.warmup_examples, seed=seed)
        model.fit(warmup, np.arange(len(warmup)), spec.optimizer, None)
    theta0 = model.state_dict()
    # laid out once: every (arm, F, R) point scores this set
    contrasts = measures.ContrastSet.of(task.contrasts(task.eval_prompts(spec.n_eval, seed=seed)))
    s0 = measures.contrast_scores(model, contrasts)
    # KL samples beyond the held-out prompts (a real task holds out few) cycle through them
    kl_prompts = task.eval_prompts(min(spec.n_kl_samples, spec.n_eval), seed=seed + 7919)
    kl_prompts = [kl_prompts[i % len(kl_prompts)] for i in range(spec.n_kl_samples)]
    ref_samples = tuple(sample_responses(model, kl_prompts, task.max_new_tokens, 1.0, seed))
    kl_reference = (model.token_logprobs(ref_samples), ref_samples)
    reverse = task.reverse_data(rev[-1], seed=seed)
    r_order = epoch_order(len(reverse), seed + 1)
    used = spec.warmup_examples + sum(len(data) for data in (controls or {}).values())  # neutral examples taken
    aligned = alignment_data(model, task, fwd[-1], seed, alignment, skip=used, avoid=reverse)
    arms = {"aligned": aligned, **(controls or {})}
    curves = ReboundCurves(spec, s0.log_odds, {}, {}, cumulative_steps(fwd, spec.optimizer),
                           cumulative_steps(rev, spec.optimizer))
    for arm, data in arms.items():
        model.load_state_dict(theta0)
        method = alignment if arm == "aligned" or alignment is None else dataclasses.replace(
            alignment, method="sft", replay=0.0)
        states = forward_checkpoints(model, data, epoch_order(len(data), seed), fwd, spec.optimizer, method)
        log_odds = np.zeros((len(fwd), len(rev), len(s0.log_odds)))
        kl = np.zeros((len(fwd), len(rev)))
        for i, state in enumerate(states):
            if i == 0 and arm != "aligned":  # F = 0 is the same control for every arm
                log_odds[0], kl[0] = curves.log_odds["aligned"][0], curves.kl_theta0_model["aligned"][0]
                if probe is not None:
                    curves.probed.setdefault(arm, {})[0] = curves.probed["aligned"][0]
                continue

            def sweep(state: dict[str, Any] = state) -> dict[str, Any]:
                model.load_state_dict(state)
                scores, kls, probed = reverse_sweep(model, reverse, r_order, rev, spec.optimizer, contrasts,
                                                    kl_reference, spec.kl_every, probe)
                # no probe: the cell holds what it always held, so earlier run folders resume
                return {"log_odds": [sc.log_odds for sc in scores], "kl": kls, **({"probe": probed} if probe else {})}

            shared = i == 0 or (arm != "aligned" and (method is None or method.plain))
            done = ((shared_cache or cache) if shared else cache)(f"sweep-{arm}-F{fwd[i]}", sweep)
            log_odds[i], kl[i] = np.asarray(done["log_odds"]), np.asarray(done["kl"], dtype=float)
            if probe is not None:
                curves.probed.setdefault(arm, {})[fwd[i]] = done["probe"]
            progress(f"{arm} F={fwd[i]}: log-odds {log_odds[i, -1].mean():+.3f} at R={rev[-1]}")
        curves.log_odds[arm], curves.kl_theta0_model[arm] = log_odds, kl
    model.load_state_dict(theta0)
    return curves


def curve_rows(curves: ReboundCurves, arm: str = "aligned", *, per_prompt: bool = False, seed: Any = "",
               probe_units: Mapping[str, str] | None = None, **condition: Any) -> list[dict[str, Any]]:
    """One arm as metric rows: S0, and the mean scores and KL at every (F, R) (x = R, with the
    optimizer steps behind F and R), optionally each prompt's log-odds, then the probe's readings
    where it was read (``probe_units``: measure -> unit). The readings are derived from these rows
    alone (:func:`~toymodels.protocols.rebound_readings.derived_rows`)."""
    mean = curves.means(arm)
    rows = [metric_row("s0_prob", mean.s0_prob, "prob", seed=seed, **condition),
            metric_row("s0_log_odds", mean.s0_log_odds, "nats", seed=seed, **condition)]
    for (i, f), (j, r) in itertools.product(enumerate(curves.spec.forward_amounts),
                                            enumerate(curves.spec.reverse_amounts)):
        at = dict(condition, F=f, steps_F=curves.forward_steps[i], steps_R=curves.reverse_steps[j])
        rows += [metric_row("score_prob", mean.prob[i, j], "prob", seed=seed, x=r, **at),
                 metric_row("score_log_odds", mean.log_odds[i, j], "nats", seed=seed, x=r, **at),
                 metric_row("kl_theta0_model", mean.kl_theta0_model[i, j], "nats/token", seed=seed, x=r, **at)]
        if per_prompt:
            rows += [metric_row("prompt_log_odds", value, "nats", seed=seed, x=r, **at, prompt=p)
                     for p, value in enumerate(curves.log_odds[arm][i, j])]
    return rows + probe_rows(curves, arm, probe_units or {}, seed, condition)


def probe_rows(curves: ReboundCurves, arm: str, units: Mapping[str, str], seed: Any,
               condition: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The probe's readings of one arm as metric rows, at the (F, R) points where it was read."""
    rows = []
    for i, f in enumerate(curves.spec.forward_amounts):
        for j, readings in enumerate(curves.probed.get(arm, {}).get(f, [])):
            at = dict(condition, F=f, steps_F=curves.forward_steps[i], steps_R=curves.reverse_steps[j])
            rows += [metric_row(name, value, units.get(name, ""), seed=seed, x=curves.spec.reverse_amounts[j], **at)
                     for name, value in readings.items()]
    return rows


# probe settings that the scale and lifecycle presets share: every reverse step measured (16 examples
# per step), so that the initial-rate window (steps 1-9) and the slowdown reading see equal steps
PROBE_PRESETS = {
    "tiny": {"probe.forward_amounts": (0, 32, 64), "probe.reverse_amounts": tuple(range(0, 161, 16)),
             "probe.n_eval": 64, "probe.n_kl_samples": 64, "probe.kl_every": 5},
    "reduced": {"probe.forward_amounts": (0, 125, 250, 500), "probe.reverse_amounts": tuple(range(0, 257, 16)),
                "probe.n_eval": 128, "probe.n_kl_samples": 64, "probe.kl_every": 4},
}


# --- the toy experiment ------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ReboundConfig:
    tasks: tuple[str, ...] = ("sentiment",)
    size: str = "100k"
    seeds: int = 5
    seed: int = 0
    n_pretrain: int = 20_000
    pi0: float = 0.3
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    probe: ReboundSpec = field(default_factory=ReboundSpec)
    execution: Execution = field(default_factory=Execution)

    def __post_init__(self) -> None:
        require(self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}")
        check_tasks(self.tasks)
        check_size(self.size)
        check_pretraining_set(self.n_pretrain, self.pi0)

    def grid(self) -> Grid:
        return Grid.of({}, seeds_of(self))


def measure_cell(config: ReboundConfig, cell: Cell, device: str) -> list[dict[str, Any]]:
    """One seed: pre-train (cached), then the protocol on every task from that model."""
    pspec = PretrainSpec(size=config.size, n_pretrain=config.n_pretrain, settings=config.pretrain,
                         seed=cell.seed, corpus=CorpusConfig(pi0=config.pi0))
    pre = pretrain(pspec, device=device)
    rows = []
    for task in make_tasks(Corpus(pspec.corpus), config.tasks):
        rows += curve_rows(rebound_curves(pre.model(device=device), task, config.probe, cell.seed), task=task.name)
    return rows


def run(config: ReboundConfig, run_dir: RunDir) -> dict[str, Any]:
    rows = run_grid(run_dir, config, measure_cell, desc="toy.rebound")
    run_dir.write_metrics(rows + derived_rows(rows))
    by_seed = metrics_by_run(rows)
    spec = config.probe
    per_f: dict[str, dict[str, float]] = {}
    for f in spec.forward_amounts:
        keys = next(iter(by_seed.values()))[f].keys()
        per_f[str(f)] = {k: float(np.nanmean([m[f][k] for m in by_seed.values()]))
                         if any(np.isfinite(m[f][k]) for m in by_seed.values()) else float("nan")
                         for k in keys}
    return {"predictions": rebound_predictions(rows, "toy.rebound"),
            "per_F_mean_over_seeds": per_f,
            "forward_steps": cumulative_steps(spec.forward_amounts, spec.optimizer),
            "reverse_steps": cumulative_steps(spec.reverse_amounts, spec.optimizer),
            "examples_per_step": spec.optimizer.examples_per_step}


PRESETS = {
    "micro": Preset({"seeds": 2, "n_pretrain": 2000, "probe.forward_amounts": (0, 32, 64),
                     "probe.reverse_amounts": tuple(range(0, 161, 16)), "probe.n_eval": 64,
                     "probe.n_kl_samples": 64, "probe.kl_every": 5},
                    "tests: 2 seeds, tiny amounts", est_seconds=8),
    "quick": Preset({"seeds": 3}, "one task, 100k params, F in {0,125..1000}, 3 seeds", est_seconds=44),
    "reduced": Preset({"tasks": ("sentiment", "safety", "format"), "seeds": 5},
                      "3 tasks, F in {0,125..1000}, 5 seeds", est_seconds=50),
    "full": Preset({"tasks": ("sentiment", "safety", "format"), "seeds": 8, "n_pretrain": 50_000,
                    "probe.forward_amounts": (0, 125, 250, 500, 1000, 2000),
                    "probe.reverse_amounts": tuple(range(0, 1025, 16))},
                   "3 tasks, F over 1.2 decades plus the control, 8 seeds", est_seconds=192),
}

EXPERIMENT = Experiment(
    name="toy.rebound",
    help=__doc__.split("\n\n")[0],
    config_cls=ReboundConfig,
    presets=PRESETS,
    run=run,
    readings=rebound_predictions,
    draw="toymodels.figures:draw_rebound",
    flags={"--lr": "probe.optimizer.lr", "--seeds": "seeds"},
    units={"score": "probability and log-odds (nats)", "kl": "nats per response token"},
)
