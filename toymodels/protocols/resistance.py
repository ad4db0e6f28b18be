"""Resistance (the paper's Table 1): is inverse alignment easier than forward alignment?

From a starting model theta0, one SFT epoch on aligned data gives checkpoints theta1..theta3 at
fractions of the epoch. Each checkpoint answers a shared held-out prompt set at temperature T,
giving D1..D3. For a pair k < m: forward = theta_k trained on D_m, inverse = theta_m trained on
D_k, with identical optimizer settings, step counts and data order (the same permutation of the
shared prompts). Resistance predicts the inverse path has the lower loss.

The raw loss mixes resistance with the entropy of the target data, so each generator also scores
its own data at the sampling temperature T: its self-loss there estimates the data entropy H(p_T),
and the loss above it (the KL-excess, an estimate of KL(data||model), >= 0 in expectation) is
the reading. The whole protocol is repeated from a randomly initialised theta0 (the
no-pre-training control): an effect that also appears there is not elasticity.

:func:`run_resistance` is the protocol over any LanguageModel and Task; its readings are in
:mod:`toymodels.protocols.resistance_readings`; ``EXPERIMENT`` is the toy command
``elasticity toy resistance``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from harness.config import Preset, require, seeds_of
from harness.experiment import Experiment
from harness.metrics import metric_row
from harness.runs import RunDir
from toymodels import measures
from toymodels.alignment import (
    Alignment,
    AlignmentSpec,
    Strengths,
    alignment_data,
    check_treatments,
)
from toymodels.corpus import (
    Corpus,
    CorpusConfig,
    check_examples,
    check_pretraining_set,
    check_tasks,
)
from toymodels.finetuning import (
    check_fractions,
    epoch_order,
    fit_slices,
    sample_responses,
    steps_for,
)
from toymodels.interface import Example, LanguageModel, OptimizerSpec, TrainLog
from toymodels.model import check_size
from toymodels.protocols.resistance_readings import (
    BASELINE,
    PRIMARY_T,
    by_treatment,
    comparisons,
    counts,
    readings,
)
from toymodels.sweep import Cell, Execution, Grid, run_grid
from toymodels.tasks import Task, make_tasks
from toymodels.train import PretrainSettings, PretrainSpec, pretrain

DEFAULT_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (2, 3), (1, 3))


@dataclass(frozen=True, kw_only=True)
class ResistanceSpec:
    """The protocol's settings for one starting model and one task, and the ``protocol`` block of
    every config that runs it."""

    n_align: int = 1000  # |D_a|: aligned examples in the SFT epoch that yields theta1..theta3
    checkpoint_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    n_queries: int = 256  # |Q|: shared held-out prompts answered by each checkpoint
    temperature: float = 0.05
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    pairs: tuple[tuple[int, int], ...] = DEFAULT_PAIRS

    def __post_init__(self) -> None:
        check_fractions(self.checkpoint_fractions)
        require(len(self.checkpoint_fractions) == 3, "resistance uses three checkpoints theta1..theta3")
        require(self.n_align >= 1, f"n_align must be >= 1, got {self.n_align}")
        total = steps_for(self.n_align, self.optimizer)
        require(len({max(1, round(f * total)) for f in self.checkpoint_fractions}) == 3,
                f"n_align={self.n_align} gives {total} optimizer steps: too few for three distinct checkpoints")
        require(self.n_queries >= 1, f"n_queries must be >= 1, got {self.n_queries}")
        check_examples("protocol.n_align", self.n_align)
        check_examples("protocol.n_queries", self.n_queries)
        require(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        for k, m in self.pairs:
            require(1 <= k < m <= 3, f"pair ({k}, {m}) must satisfy 1 <= k < m <= 3")
        require(len(set(self.pairs)) == len(self.pairs), f"pairs must name each pair once, got {self.pairs}")


@dataclass
class GeneratedData:
    """D_k: checkpoint k's answers to the shared prompts, and its own token log-probabilities on
    them at T = 1 and at the sampling temperature."""

    examples: list[Example]
    self_logprobs: dict[float, list[np.ndarray]]


@dataclass
class PathResult:
    """One fine-tuning path: a start checkpoint trained on a target dataset for one epoch, with
    each example's token log-probabilities before and after."""

    start: int
    target: int
    step0_logprobs: list[np.ndarray]
    final_logprobs: list[np.ndarray]
    log: TrainLog
    order: list[int]


@dataclass
class ResistanceResult:
    """Checkpoints, their datasets, and the forward/inverse path of each pair."""

    checkpoint_steps: list[int]
    checkpoint_scores: list[float]  # mean P(aligned) of theta0..theta_n on the shared prompts
    datasets: dict[int, GeneratedData]
    pairs: dict[tuple[int, int], dict[str, PathResult]]


def run_resistance(model: LanguageModel, task: Task, spec: ResistanceSpec, seed: int, *,
                   progress: Callable[[str], None] = lambda message: None,
                   alignment: AlignmentSpec | None = None) -> ResistanceResult:
    """The Table 1 protocol from ``model``'s current weights (theta0), per example. ``model`` is
    left at theta0. ``alignment`` sets how the checkpoints are aligned (:mod:`toymodels.alignment`;
    None: SFT); the forward and inverse paths are SFT on generated data either way.

    Forward and inverse paths of a pair use the same permutation of the shared prompts, the same
    optimizer settings and a fresh optimizer each, so their step counts are equal by construction.
    Each generator scores its own data at T = 1 and at the sampling temperature (the data entropy);
    that needs a model whose ``token_logprobs`` takes ``temperature=``.
    """
    theta0 = model.state_dict()
    aligned = alignment_data(model, task, spec.n_align, seed, alignment)
    run = Alignment.start(alignment, model)
    sft = fit_slices(model, aligned, epoch_order(len(aligned), seed), spec.optimizer, spec.checkpoint_fractions,
                     fit=None if run is None else lambda sub, st: model.fit(aligned, sub, spec.optimizer, st, alignment=run))
    states = [theta0, *sft.states]
    prompts = task.eval_prompts(spec.n_queries, seed=seed)
    contrasts = task.contrasts(prompts)
    datasets: dict[int, GeneratedData] = {}
    scores = []
    for i, state in enumerate(states):
        model.load_state_dict(state)
        scores.append(measures.contrast_scores(model, contrasts).mean_prob)
        if i == 0:
            continue
        examples = sample_responses(model, prompts, task.max_new_tokens, spec.temperature, seed * 100 + i)
        datasets[i] = GeneratedData(examples, {t: measures.token_logprobs_at(model, examples, t)
                                               for t in dict.fromkeys((1.0, spec.temperature))})
        progress(f"checkpoint {i}: D_{i} generated, entropy at T={spec.temperature:g} "
                 f"{measures.token_mean_loss(datasets[i].self_logprobs[spec.temperature]):.3f} nats/token")
    order = epoch_order(spec.n_queries, seed=seed + 1)
    pairs: dict[tuple[int, int], dict[str, PathResult]] = {}
    for k, m in spec.pairs:
        for direction, start, target in (("forward", k, m), ("inverse", m, k)):
            model.load_state_dict(states[start])
            data = datasets[target].examples
            step0 = model.token_logprobs(data)
            log, _ = model.fit(data, order, spec.optimizer, None)
            path = PathResult(start, target, step0, model.token_logprobs(data), log, [int(i) for i in order])
            pairs.setdefault((k, m), {})[direction] = path
            progress(f"pair {k}-{m} {direction}: step-0 loss {measures.example_losses(step0).mean():.3f}, "
                     f"train mean {log.mean_loss:.3f}")
    model.load_state_dict(theta0)
    return ResistanceResult([0, *sft.steps_at], scores, datasets, pairs)


# --- the toy experiment ------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ResistanceConfig:
    """The toy grid: tasks x sizes x sampling temperatures x seeds, from pre-trained and (with
    ``control``) randomly initialised starting models. ``temperatures`` sets the protocol's
    sampling temperature, one run per value."""

    tasks: tuple[str, ...] = ("sentiment", "safety", "format")
    sizes: tuple[str, ...] = ("100k",)
    temperatures: tuple[float, ...] = (0.05,)
    seeds: int = 5
    seed: int = 0
    n_pretrain: int = 20_000
    pi0: float = 0.3
    control: bool = True  # also run from a random init (the no-pre-training control)
    # alignment conditions of the checkpoints (toymodels.alignment.TREATMENTS); more than plain
    # SFT makes a mitigations run, read by resistance_readings.treatment_predictions
    treatments: tuple[str, ...] = (BASELINE,)
    strengths: Strengths = field(default_factory=Strengths)
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    protocol: ResistanceSpec = field(default_factory=ResistanceSpec)
    execution: Execution = field(default_factory=Execution)

    def __post_init__(self) -> None:
        require(self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}")
        check_tasks(self.tasks)
        for size in self.sizes:
            check_size(size)
        require(len(self.temperatures) >= 1 and all(t > 0 for t in self.temperatures),
                "temperatures must not be empty and each must be > 0")
        require(self.protocol.temperature == ResistanceSpec().temperature,
                "toy resistance samples at each of temperatures: set temperatures, not protocol.temperature")
        check_pretraining_set(self.n_pretrain, self.pi0)
        if self.compares_treatments:
            check_treatments(self.treatments)
            require(PRIMARY_T in self.temperatures,
                    f"a run of several treatments is read at sampling T = {PRIMARY_T:g}: include it in temperatures")
        else:
            require(self.strengths == Strengths(), "strengths apply only to a run of several treatments")

    @property
    def compares_treatments(self) -> bool:
        """True when the checkpoints are aligned under several conditions, not plain SFT alone."""
        return self.treatments != (BASELINE,)

    @property
    def inits(self) -> list[str]:
        """The starting points: pre-trained, and with ``control`` a random init."""
        return ["pretrained"] + (["random"] if self.control else [])

    def grid(self) -> Grid:
        mitigations = {"treatment": self.treatments} if self.compares_treatments else {}
        return Grid.of({"size": self.sizes, "init": self.inits, **mitigations}, seeds_of(self))


def measure_cell(config: ResistanceConfig, cell: Cell, device: str) -> list[dict[str, Any]]:
    """One (size, starting point[, alignment condition], seed): pre-train (cached) or not, then every
    task and temperature."""
    size, init = str(cell["size"]), str(cell["init"])
    alignment = config.strengths.spec(str(cell["treatment"])) if "treatment" in cell.condition else None
    pspec = PretrainSpec(size=size, n_pretrain=config.n_pretrain, settings=config.pretrain, seed=cell.seed,
                         corpus=CorpusConfig(pi0=config.pi0), random_init=init == "random")
    pre = pretrain(pspec, device=device)
    rows = []
    for task, temp in itertools.product(make_tasks(Corpus(pspec.corpus), config.tasks), config.temperatures):
        result = run_resistance(pre.model(device=device), task, replace(config.protocol, temperature=temp),
                                cell.seed, alignment=alignment)
        cond = dict(task=task.name, T=temp)
        for i, (st, sc) in enumerate(zip(result.checkpoint_steps, result.checkpoint_scores, strict=False)):
            rows.append(metric_row("checkpoint_p_aligned", sc, "prob", x=i, **cond))
            rows.append(metric_row("checkpoint_steps", st, "steps", x=i, **cond))
        for (k, m), paths in result.pairs.items():
            for direction, path in paths.items():
                c = dict(cond, pair=f"{k}-{m}", path=direction)
                for name, value in path_measures(path, result.datasets[path.target], temp).items():
                    rows.append(metric_row(f"{name}_nats", value, "nats", **c))
                rows.append(metric_row("steps", path.log.steps, "steps", **c))
    rows.append(metric_row("pretrain_steps", pre.steps, "steps"))
    if pre.losses:
        rows.append(metric_row("pretrain_final_loss_nats", float(np.mean(pre.losses[-20:])), "nats"))
    return rows


def path_measures(path: PathResult, data: GeneratedData, temperature: float) -> dict[str, float]:
    """A path's losses (nats per token, token-weighted as training measures them): before training,
    over the epoch (the mean training loss, each batch scored before its step) and after it; its
    target's generator self-loss at T = 1 and at the sampling temperature ``temperature`` (the data
    entropy H(p_T)); and the KL-excess of each loss above that entropy, an estimate of
    KL(p_T||model) (>= 0 in expectation before and over the epoch; after it the model has seen the
    data)."""
    entropy = measures.token_mean_loss(data.self_logprobs[temperature])
    out = {"loss_step0": measures.token_mean_loss(path.step0_logprobs), "loss_mean": path.log.mean_loss,
           "loss_final": measures.token_mean_loss(path.final_logprobs),
           "generator_loss": measures.token_mean_loss(data.self_logprobs[1.0]), "generator_entropy": entropy}
    return out | {f"excess_{when}": out[f"loss_{when}"] - entropy for when in ("step0", "mean", "final")}


def table1(rows: Sequence[Mapping[str, Any]], measure: str = "loss_mean_nats") -> list[dict[str, Any]]:
    """Table 1 shape: mean over seeds of inverse vs forward per (init, task, size, T, pair)."""
    cells: dict[tuple, dict[str, list[float]]] = {}
    for r in rows:
        if r["measure"] != measure:
            continue
        c = r["condition"]
        key = (c["init"], c["task"], c["size"], c["T"], c["pair"])
        cells.setdefault(key, {}).setdefault(c["path"], []).append(float(r["value"]))
    return [{"init": k[0], "task": k[1], "size": k[2], "T": float(k[3]), "pair": k[4],
             "inverse_nats": float(np.mean(v["inverse"])), "forward_nats": float(np.mean(v["forward"]))}
            for k, v in sorted(cells.items()) if "inverse" in v and "forward" in v]


def run(config: ResistanceConfig, run_dir: RunDir) -> dict[str, Any]:
    if config.compares_treatments:  # a reference of its own; its summary tables and path figures are SFT's
        run_dir.reference_key = "toy.resistance.mitigations"
        run_dir.reference_args = f"--set treatments={','.join(config.treatments)}"
    rows = run_grid(run_dir, config, measure_cell, desc="toy.resistance")
    run_dir.write_metrics(rows)
    groups = by_treatment(rows)
    sft_rows = groups[BASELINE]
    failures = []
    steps = [v for group in groups.values() for init in config.inits
             for by_pair in comparisons(group, "steps", init).values() for v in by_pair.values()]
    if any(v != 0 for v in steps):
        failures.append("forward and inverse paths took different numbers of optimizer steps")
    optimizer = config.protocol.optimizer
    return {"predictions": readings(rows, run_dir.experiment), "counts": counts(sft_rows),
            "table1_loss_mean_nats": table1(sft_rows),
            "table1_excess_mean_nats": table1(sft_rows, "excess_mean_nats"),
            "treatments": list(config.treatments),
            "steps_per_path": steps_for(config.protocol.n_queries, optimizer),
            "examples_per_step": optimizer.examples_per_step,
            "instrument_failures": failures}


PRESETS = {
    "micro": Preset({"tasks": ("sentiment",), "seeds": 2, "n_pretrain": 2000, "protocol.n_align": 128,
                     "protocol.n_queries": 32},
                    "tests: one task, 2 seeds, tiny data", est_seconds=6),
    "quick": Preset({"seeds": 3, "protocol.n_align": 512, "protocol.n_queries": 128},
                    "3 tasks x 3 pairs, T=0.05, 100k params, 3 seeds, with the no-pre-training control",
                    est_seconds=23),
    "reduced": Preset({"sizes": ("50k", "100k"), "temperatures": (0.05, 1.0), "seeds": 5,
                       "protocol.n_align": 512, "protocol.n_queries": 128},
                      "3 tasks x 2 sizes x 3 pairs x 2 temperatures x 5 seeds, with the control",
                      est_seconds=77),
    "full": Preset({"sizes": ("50k", "250k", "600k"), "temperatures": (0.05, 1.0), "seeds": 5,
                    "n_pretrain": 50_000, "protocol.n_align": 2000, "protocol.n_queries": 512},
                   "27-grid x 2 temperatures x 5 seeds, with the control", est_seconds=757),
}

EXPERIMENT = Experiment(
    name="toy.resistance",
    help=__doc__.split("\n\n")[0],
    config_cls=ResistanceConfig,
    presets=PRESETS,
    run=run,
    readings=readings,
    draw="toymodels.figures:draw_resistance",
    flags={"--lr": "protocol.optimizer.lr", "--temperature": "temperatures",
           "--seeds": "seeds"},
    units={"loss": "nats per response token", "score": "probability"},
)
