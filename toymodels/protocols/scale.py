"""``elasticity toy scale``: rebound across model sizes and pre-training budgets (paper Figs. 5-6).

Each cell (size, pre-training examples, seed) takes a checkpoint of one cached pre-training run
per (size, seed) and runs the toy rebound probe on it: alignment cut at forward amounts F (F = 0
is the control: reverse training from the pre-trained model itself), then reverse fine-tuning.

Rebound strength of a cell is read against its own control, because more pre-training can make a
model stiffer in both directions without any pull back toward S0 (``rebound_readings.strength_rows``):
the excess initial decay rate and the excess late slope at the largest F, the slowdown at S0 and
the R_back trend. The paper expects a faster initial decline with size and with data: the
pre-registered primary readings are the slopes of the excess initial log-odds rate against
log10(parameters) and log10(pre-training examples), per seed, averaged over the other axis, with a
t-interval over seeds (:func:`readings`); every other strength is exploratory.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.config import Preset, require, seeds_of
from harness.experiment import Experiment
from harness.metrics import condition_label, metric_row
from harness.preregistration import reading
from harness.runs import RunDir
from harness.verdicts import Prediction, log_slope, t_estimate
from toymodels.corpus import Corpus, CorpusConfig, check_examples, check_task
from toymodels.model import GPT, check_size, model_config, n_params
from toymodels.protocols.rebound import PROBE_PRESETS, ReboundSpec, curve_rows, rebound_curves
from toymodels.protocols.rebound_readings import SCORES, STRENGTHS, derived_rows, strengths_by_run
from toymodels.sweep import Cell, Execution, Grid, aggregate, run_grid, write_aggregate
from toymodels.tasks import ToyTask
from toymodels.train import PretrainSettings, PretrainSpec, pretrain


@dataclass(frozen=True, kw_only=True)
class ScaleConfig:
    task: str = "sentiment"
    sizes: tuple[str, ...] = ("50k", "100k", "250k")
    n_pretrain: tuple[int, ...] = (5_000, 10_000, 20_000)  # pre-training examples (16 tokens each)
    seeds: int = 5
    seed: int = 0
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    probe: ReboundSpec = field(default_factory=lambda: ReboundSpec(n_kl_samples=128))
    execution: Execution = field(default_factory=Execution)

    def __post_init__(self) -> None:
        check_task(self.task)
        for size in self.sizes:
            check_size(size)
        require(self.seeds >= 2, f"seeds must be >= 2 for a confidence interval, got {self.seeds}")
        check_examples("n_pretrain", self.n_pretrain)
        self.grid()

    def grid(self) -> Grid:
        return Grid.of({"size": self.sizes, "n_pretrain": self.n_pretrain}, seeds_of(self), positive=["n_pretrain"])


def pretrain_spec(config: ScaleConfig, size: str, seed: int) -> PretrainSpec:
    """One pre-training run per (size, seed) with a checkpoint at every budget: under a constant
    learning rate the checkpoint after n examples is a model pre-trained on n examples (the paper's
    Fig. 6 also compares checkpoints of one run)."""
    budgets = sorted(config.n_pretrain)
    return PretrainSpec(size=size, n_pretrain=budgets[-1], settings=config.pretrain, seed=seed,
                        checkpoint_fractions=tuple(n / budgets[-1] for n in budgets))


def measure_cell(config: ScaleConfig, cell: Cell, device: str) -> list[dict[str, Any]]:
    """Load the (size, budget, seed) checkpoint, then run the rebound probe on it."""
    spec = pretrain_spec(config, str(cell["size"]), cell.seed)
    pre = pretrain(spec, device=device)
    fraction = int(cell["n_pretrain"]) / spec.n_pretrain
    task = ToyTask(Corpus(spec.corpus), config.task)
    return curve_rows(rebound_curves(pre.model(fraction, device=device), task, config.probe, cell.seed))


def param_counts(sizes: Sequence[str]) -> dict[str, int]:
    corpus = Corpus(CorpusConfig())
    return {s: n_params(GPT(model_config(s, corpus.vocab_size, corpus.seq_len))) for s in sizes}


def axis_slopes(strengths: Mapping[tuple[Any, tuple], Mapping[str, float]], measure: str, axis: str, other: str,
                x_of: Mapping[Any, float]) -> dict[Any, float]:
    """Per seed: least-squares slope of a strength ``measure`` against log10 of ``axis`` (through
    ``x_of``), averaged over the values of ``other``."""
    table: dict[Any, dict[Any, dict[Any, float]]] = {}
    for (seed, group), values in strengths.items():
        cond = dict(group)
        table.setdefault(seed, {}).setdefault(cond[other], {})[cond[axis]] = values[measure]
    out = {}
    for seed, by_other in table.items():
        slopes = [log_slope({x_of[a]: v for a, v in points.items()}) for points in by_other.values()]
        slopes = [s for s in slopes if np.isfinite(s)]
        out[seed] = float(np.mean(slopes)) if slopes else float("nan")
    return out


def run(config: ScaleConfig, run_dir: RunDir) -> dict[str, Any]:
    table = run_grid(run_dir, config, measure_cell, desc="toy.scale")
    params = param_counts(config.sizes)
    rows = table + [metric_row("n_params", n, "parameters", size=s) for s, n in params.items()]
    run_dir.write_metrics(rows + derived_rows(table, with_strengths=True))
    write_aggregate(run_dir, table)
    return summarise(rows)


AXES = {"size": ("parameters", "n_pretrain"), "n_pretrain": ("pre-training examples", "size")}
PRIMARY_OF_AXIS = {"size": "scale.rebound_grows_with_size", "n_pretrain": "scale.rebound_grows_with_pretraining"}


def params_of(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Parameter count of every size, from the table's ``n_params`` rows."""
    return {r["condition"]["size"]: float(r["value"]) for r in rows if r["measure"] == "n_params"}


def readings(rows: Sequence[Mapping[str, Any]], experiment: str = "toy.scale") -> list[Prediction]:
    """Every scale reading of a metrics table: per seed, the least-squares slope of a rebound
    strength against log10 of one axis (parameters, pre-training examples), averaged over the other
    axis; a t-interval over seeds. The excess initial log-odds rate is the pre-registered primary."""
    params, strengths = params_of(rows), strengths_by_run(rows)
    predictions = []
    for axis, (axis_name, other) in AXES.items():
        x_of = params if axis == "size" else {dict(g)["n_pretrain"]: float(dict(g)["n_pretrain"]) for _, g in strengths}
        for strength, kind in itertools.product(STRENGTHS, SCORES):
            per_seed = axis_slopes(strengths, f"{strength}_{kind}", axis, other, x_of)
            primary = strength == "excess_initial_rate" and kind == "log_odds"
            pid = PRIMARY_OF_AXIS[axis] + ("" if primary else f".{strength}.{kind}")
            predictions.append(reading(
                pid, t_estimate([per_seed[s] for s in sorted(per_seed)]),
                f"slope of {strength.replace('_', ' ')} ({kind}; largest F against the cell's F = 0 control) "
                f"per decade of {axis_name}, mean over {other}", experiment=experiment))
    return predictions


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    cells = {}
    for row in aggregate(derived_rows(rows, with_strengths=True)):
        if "F" not in row["condition"] and row["measure"].startswith(STRENGTHS):
            cells.setdefault(condition_label(row["condition"]), {})[row["measure"]] = {
                "mean": row["mean"], "ci": [row["ci_lo"], row["ci_hi"]], "n": row["n"]}
    return {"predictions": readings(rows), "cells": cells,
            "n_params": params_of(rows), "tokens_per_example": Corpus(CorpusConfig()).seq_len}


EXPERIMENT = Experiment(
    name="toy.scale",
    help="rebound metrics across model sizes and pre-training budgets, beside the F=0 control (paper Figs. 5-6)",
    config_cls=ScaleConfig,
    presets={
        "micro": Preset({"sizes": ("50k",), "n_pretrain": (500, 1500, 4500), **PROBE_PRESETS["tiny"], "seeds": 5},
                        "tests: one size, 3 budgets, tiny amounts, 5 seeds", est_seconds=18),
        "quick": Preset({"sizes": ("50k", "100k"), "n_pretrain": (1000, 3000), **PROBE_PRESETS["tiny"], "seeds": 2},
                        "2 sizes x 2 budgets, tiny amounts, 2 seeds", est_seconds=13),
        # 8 seeds: the calibration's power for the size reading at its stated effect (5 gave 0.64)
        "reduced": Preset({"n_pretrain": (1000, 5000, 20_000), "seeds": 8, **PROBE_PRESETS["reduced"]},
                          "3 sizes (50k-250k) x 3 budgets (1k-20k examples), F to 500, R every step to 256, "
                          "8 seeds", est_seconds=136),
        "full": Preset({"seeds": 8}, "3 sizes (50k-250k) x 3 budgets (5k-20k examples), F to 1000, R every step "
                       "to 512, 8 seeds",
                       est_seconds=268),
    },
    run=run,
    readings=readings,
    draw="toymodels.science_figures:draw_scale",
    flags={"--seeds": "seeds", "--lr": "probe.optimizer.lr"},
    units={"score": "probability and log-odds (nats)", "rate": "score lost per reverse example"},
)
