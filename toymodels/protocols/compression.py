"""``elasticity toy compression``: the elasticity theorem on trained networks.

For each k = |D_p|/|D_a| (over at least two decades) and seed: pre-train on D_p (cached), align on
D_a (all aligned examples of one task, one epoch), then perturb with growing |D_t|, one example
stream continued across amounts. After each amount the compression rate, bits per response token,
is measured on held-out D_p and D_a. The slopes dγ/d|D_t| give the ratio dγ_a/dl ÷ dγ_p/dl (the
normalisation of l cancels), and its log-log slope against k, per seed, is the theorem's primary
reading (``theorem.ratio_scales_with_k``): the same function and the same band [0.9, 1.1] as in
theory.simulate (:mod:`theory.readings`). The signs (γ_a rises, γ_p falls) are exploratory shares of k.

Two perturbations: ``like`` is drawn like the pre-training data (the theorem's setting, where the
joint-mixture model predicts the ratio -(k + l), a log-log slope of 1), ``unlike`` comes from a
different language over the same tokens (other Zipf chains, exponent ``unlike_alpha``), where the
theory says the relation need not hold. The mixture prediction (theory.mixture) for it uses the
leaf masses of the three datasets' response trees pruned at ``mixture_depth``, estimated by sampling.

|D_p| is fixed and k is set through |D_a| = |D_p|/k, so every k starts from the same pre-trained
model; the trained network is fine-tuned in sequence, not trained on the joint mixture, and the
difference from the mixture prediction is reported per k.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from harness.config import Preset, require, seeds_of
from harness.experiment import Experiment
from harness.metrics import metric_row
from harness.runs import RunDir
from harness.verdicts import Prediction, mean_ci
from theory.mixture import Components, derivatives
from theory.readings import (
    COMPRESSION_LIKE,
    Layout,
    cells_from_rows,
    fraction_reading,
    loglog_slope,
    slope_estimate,
    theorem_reading,
)
from toymodels import measures
from toymodels.corpus import Corpus, CorpusConfig, check_examples, check_task
from toymodels.finetuning import check_amounts, epoch_order, steps_for
from toymodels.interface import Example, OptimizerSpec
from toymodels.model import check_size
from toymodels.sweep import Cell, Execution, Grid, run_grid, write_aggregate
from toymodels.tasks import ToyTask
from toymodels.train import PretrainSettings, PretrainSpec, pretrain

NAME = "toy.compression"
PERTURBATIONS = ("like", "unlike")
UNLIKE_ALPHA = 2.0  # the Zipf exponent of the unlike language's chains
LN2 = math.log(2.0)
# seed offsets of the held-out and perturbation streams (disjoint from training seeds)
HELDOUT, PERTURB = 10_000_000, 20_000_000


@dataclass(frozen=True, kw_only=True)
class CompressionConfig:
    task: str = "sentiment"
    size: str = "100k"
    n_pretrain: int = 20_000  # |D_p|, fixed; |D_a| = n_pretrain / k
    k: tuple[float, ...] = (10.0, 100.0, 1000.0)
    perturb_amounts: tuple[int, ...] = (0, 16, 32, 64, 128)  # |D_t| in examples
    perturbations: tuple[str, ...] = PERTURBATIONS
    unlike_alpha: float = UNLIKE_ALPHA
    n_eval: int = 1024
    mixture_depth: int = 2
    mixture_samples: int = 50_000
    seeds: int = 5
    seed: int = 0
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)  # alignment and perturbation
    execution: Execution = field(default_factory=Execution)

    def __post_init__(self) -> None:
        check_task(self.task)
        check_size(self.size)
        require(self.n_pretrain >= 1, f"n_pretrain must be >= 1, got {self.n_pretrain}")
        require(all(k > 0 for k in self.k), f"k must be > 0, got {self.k}")
        require(len(self.k) >= 2 and max(self.k) / min(self.k) >= 10,
                f"k needs at least two values spanning a decade, got {self.k}")
        require(all(self.n_pretrain / k >= 1 for k in self.k),
                f"|D_a| = n_pretrain / k must be >= 1 example for every k (n_pretrain {self.n_pretrain})")
        check_amounts(self.perturb_amounts, "perturb_amounts")
        require(len(self.perturb_amounts) >= 2 and self.perturb_amounts[0] == 0,
                "perturb_amounts must start at 0 and hold at least one positive amount")
        require(len(self.perturbations) >= 1 and set(self.perturbations) <= set(PERTURBATIONS),
                f"perturbations must be among {', '.join(PERTURBATIONS)}, got {self.perturbations}")
        require(self.n_eval >= 1 and self.mixture_samples >= 1, "n_eval and mixture_samples must be >= 1")
        for key in ("n_pretrain", "n_eval", "mixture_samples"):
            check_examples(key, getattr(self, key))
        require(self.mixture_depth >= 1, f"mixture_depth must be >= 1, got {self.mixture_depth}")
        require(self.seeds >= 2, f"seeds must be >= 2 for a confidence interval, got {self.seeds}")
        require(self.unlike_alpha > 0, f"unlike_alpha must be > 0, got {self.unlike_alpha}")
        require("unlike" in self.perturbations or self.unlike_alpha == UNLIKE_ALPHA,
                f"unlike_alpha = {self.unlike_alpha} is not used without the 'unlike' perturbation; leave it out")

    def grid(self) -> Grid:
        return Grid.of({"k": self.k, "perturbation": self.perturbations}, seeds_of(self), positive=["k"])

    def n_align(self, k: float) -> int:
        return max(1, round(self.n_pretrain / k))

    def pretrain_spec(self, seed: int) -> PretrainSpec:
        return PretrainSpec(size=self.size, n_pretrain=self.n_pretrain, settings=self.pretrain, seed=seed)


def unlike_corpus(corpus: Corpus, alpha: float) -> Corpus:
    """A different language over the same tokens: other chains and Zipf exponent."""
    return Corpus(replace(corpus.config, seed=corpus.config.seed + 1, zipf_alpha=alpha))


def perturbation_data(config: CompressionConfig, corpus: Corpus, kind: str, n: int, seed: int) -> list[Example]:
    source = corpus if kind == "like" else unlike_corpus(corpus, config.unlike_alpha)
    return source.pretrain_examples(n, seed=PERTURB + seed)


def bits_per_token(model: Any, examples: Sequence[Example]) -> float:
    """Compression rate γ of a held-out set: mean response-token code length in bits."""
    return measures.mean_loss(model, examples) / LN2


def measure_cell(config: CompressionConfig, cell: Cell, device: str) -> list[dict[str, Any]]:
    """Pre-train (cached), align on |D_a| = |D_p|/k, perturb in growing amounts; γ after each."""
    k, kind, seed = float(cell["k"]), str(cell["perturbation"]), cell.seed
    corpus = Corpus(CorpusConfig())
    task = ToyTask(corpus, config.task)
    model = pretrain(config.pretrain_spec(seed), device=device).model(1.0, device=device)
    heldout_p = corpus.pretrain_examples(config.n_eval, seed=HELDOUT + seed)
    heldout_a = task.forward_data(config.n_eval, seed=HELDOUT + seed)
    n_align = config.n_align(k)
    align = task.forward_data(n_align, seed=seed)
    model.fit(align, epoch_order(n_align, seed), config.optimizer, None)
    amounts = config.perturb_amounts
    perturb = perturbation_data(config, corpus, kind, amounts[-1], seed)
    order = epoch_order(len(perturb), PERTURB + seed)
    rows, state, done = [], None, 0
    for amount in amounts:
        if amount > done:
            _, state = model.fit(perturb, order[done:amount], config.optimizer, state)
            done = amount
        rows += [metric_row("gamma_p_bits", bits_per_token(model, heldout_p), "bits/token", x=amount),
                 metric_row("gamma_a_bits", bits_per_token(model, heldout_a), "bits/token", x=amount)]
    rows += [metric_row("n_align", n_align, "examples"),
             metric_row("align_steps", steps_for(n_align, config.optimizer), "steps"),
             metric_row("perturb_steps", steps_for(amounts[-1], config.optimizer), "steps")]
    return rows


# --- the joint-mixture prediction -------------------------------------------------------------
def leaf_masses(examples: Sequence[Example], depth: int) -> Counter:
    """Empirical leaf masses of a response token tree pruned at ``depth`` (response prefixes)."""
    counts = Counter(ex.response_ids[:depth] for ex in examples)
    total = sum(counts.values())
    return Counter({leaf: c / total for leaf, c in counts.items()})


def components(p_p: Mapping, p_a: Mapping, p_t: Mapping) -> Components:
    """The three leaf distributions on one aligned leaf set, for :mod:`theory.mixture`."""
    leaves = sorted(set(p_p) | set(p_a) | set(p_t))
    return Components(*(np.array([dist.get(j, 0.0) for j in leaves]) for dist in (p_p, p_a, p_t)))


def mixture_predictions(config: CompressionConfig) -> dict[str, dict[float, float]]:
    """The mixture model's ratio at each k, at the mean l of the measured perturbation range.

    ``like`` uses P_t = P_p exactly (the perturbation is drawn from the same distribution), for
    which the ratio is -(k + l) for any leaf masses; ``unlike`` uses the sampled leaf masses.
    """
    corpus = Corpus(CorpusConfig())
    task = ToyTask(corpus, config.task)
    n, depth = config.mixture_samples, config.mixture_depth
    p_p = leaf_masses(corpus.pretrain_examples(n, seed=HELDOUT - 1), depth)
    p_a = leaf_masses(task.forward_data(n, seed=HELDOUT - 1), depth)
    sources = {"like": p_p, "unlike": leaf_masses(
        unlike_corpus(corpus, config.unlike_alpha).pretrain_examples(n, seed=HELDOUT - 1), depth)}
    out: dict[str, dict[float, float]] = {}
    for kind in config.perturbations:
        out[kind] = {}
        for k in config.k:
            l_mean = float(np.mean(config.perturb_amounts)) / config.n_align(k)
            out[kind][k] = derivatives(components(p_p, p_a, sources[kind]), k, l_mean, depth).ratio
    return out


# --- analysis ---------------------------------------------------------------------------------
def slope(x: Sequence[float], y: Sequence[float]) -> float:
    return float(np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0])


def derived_rows(config: CompressionConfig, table: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (perturbation, k, seed): dγ_p/d|D_t|, dγ_a/d|D_t| (least squares), their ratio, and
    per (perturbation, seed) the log-log slope of |ratio| against k."""
    curves: dict[tuple[str, float, int, str], dict[float, float]] = {}
    for row in table:
        if row["measure"] in ("gamma_p_bits", "gamma_a_bits"):
            cond = row["condition"]
            key = (cond["perturbation"], float(cond["k"]), row["seed"], row["measure"])
            curves.setdefault(key, {})[float(row["x"])] = row["value"]
    rows = []
    for kind in config.perturbations:
        for seed in seeds_of(config):
            ratios = []
            for k in config.k:
                cond = {"k": k, "perturbation": kind}
                per_l = 1.0 / config.n_align(k)  # dγ/dl = dγ/d|D_t| × |D_a|; the factor cancels in the ratio
                s_p = slope(list(curves[(kind, k, seed, "gamma_p_bits")]),
                            list(curves[(kind, k, seed, "gamma_p_bits")].values())) / per_l
                s_a = slope(list(curves[(kind, k, seed, "gamma_a_bits")]),
                            list(curves[(kind, k, seed, "gamma_a_bits")].values())) / per_l
                ratio = s_a / s_p if s_p != 0 else float("nan")
                ratios.append(ratio)
                rows += [metric_row("dgamma_p_dl_bits", s_p, "bits/token per unit l", seed=seed, **cond),
                         metric_row("dgamma_a_dl_bits", s_a, "bits/token per unit l", seed=seed, **cond),
                         metric_row("ratio", ratio, "ratio", seed=seed, **cond)]
            rows.append(metric_row("loglog_slope", loglog_slope(config.k, ratios), "dlog|ratio|/dlog k",
                                   seed=seed, perturbation=kind))
    return rows


def run(config: CompressionConfig, run_dir: RunDir) -> dict[str, Any]:
    table = run_grid(run_dir, config, measure_cell, desc="toy.compression")
    mixture = mixture_predictions(config)
    mixture_rows = [metric_row("mixture_ratio", mixture[kind][k], "ratio", k=k, perturbation=kind)
                    for kind in config.perturbations for k in config.k]
    derived = derived_rows(config, table)
    rows = table + derived + mixture_rows
    run_dir.write_metrics(rows)
    write_aggregate(run_dir, table + derived)
    return {**summarise(config, derived, mixture), "predictions": readings(rows, NAME)}


def layout(kind: str) -> Layout:
    """Where the rates of one perturbation sit in the metrics table (the like one is the theorem's)."""
    return replace(COMPRESSION_LIKE, where=(("perturbation", kind),))


def readings(rows: Sequence[Mapping[str, Any]], experiment: str = NAME) -> list[Prediction]:
    """The predictions of any toy.compression metrics table: the theorem's slope on the like-D_p
    perturbation (primary, the band of theory.simulate), the same slope for the unlike one and, per
    seed, the shares of k at which γ_a rises and γ_p falls (exploratory)."""
    mixture = {float(r["condition"]["k"]): r["value"] for r in rows
               if r["measure"] == "mixture_ratio" and r["condition"].get("perturbation") == "like"}
    note = (f"joint-mixture prediction: slope {loglog_slope(list(mixture), list(mixture.values())):.3g}"
            if len(mixture) >= 2 else "")
    preds = [theorem_reading(rows, COMPRESSION_LIKE, experiment, note=note),
             theorem_reading(rows, layout("unlike"), experiment, pid="compression.unlike_ratio_scales_with_k",
                             measure="log-log slope of |dγ_a/dl ÷ dγ_p/dl| against k, per seed, unlike-D_p "
                                     "perturbation (the theory expects no relation)")]
    like = cells_from_rows(rows, COMPRESSION_LIKE)
    if like:
        preds += [fraction_reading("compression.gamma_a_rises_fraction", like, lambda c: c.a > 0,
                                   "dγ_a/dl > 0 (like-D_p perturbation)", experiment),
                  fraction_reading("compression.gamma_p_falls_fraction", like, lambda c: c.p < 0,
                                   "dγ_p/dl < 0 (like-D_p perturbation)", experiment)]
    return [p for p in preds if p is not None]


def _values(rows: Sequence[Mapping[str, Any]], measure: str, **condition: Any) -> list[float]:
    return [r["value"] for r in rows if r["measure"] == measure and r["condition"] == condition]


def summarise(config: CompressionConfig, derived: Sequence[Mapping[str, Any]],
              mixture: Mapping[str, Mapping[float, float]]) -> dict[str, Any]:
    """Per perturbation: the log-log slope over seeds, the mixture model's, and each k's rates."""
    per_kind: dict[str, Any] = {}
    for kind in config.perturbations:
        est = slope_estimate(cells_from_rows(derived, layout(kind)))
        mixture_slope = slope([math.log10(k) for k in config.k],
                              [math.log10(abs(mixture[kind][k])) for k in config.k])
        by_k = {}
        for k in config.k:
            cond = {"k": k, "perturbation": kind}
            ratios = _values(derived, "ratio", **cond)
            gap = [math.log10(abs(r) / abs(mixture[kind][k])) if r == r and r != 0 else float("nan")
                   for r in ratios]
            by_k[str(k)] = {
                "n_align": config.n_align(k),
                "ratio": _ci_dict(ratios), "mixture_ratio": mixture[kind][k],
                "log10_trained_over_mixture": _ci_dict(gap),
                "dgamma_p_dl_bits": _ci_dict(_values(derived, "dgamma_p_dl_bits", **cond)),
                "dgamma_a_dl_bits": _ci_dict(_values(derived, "dgamma_a_dl_bits", **cond)),
            }
        per_kind[kind] = {"loglog_slope": {"mean": est.value, "ci": list(est.ci), "n": est.n},
                          "mixture_loglog_slope": mixture_slope, "by_k": by_k}
    return {"perturbations": per_kind, "units": {"gamma": "bits per response token", "l": "|D_t|/|D_a|"}}


def _ci_dict(values: Sequence[float]) -> dict[str, Any]:
    mean, ci = mean_ci(values)
    return {"mean": mean, "ci": list(ci), "n": len(values)}


EXPERIMENT = Experiment(
    name=NAME,
    help="the theorem on trained networks: dγ_a/dl ÷ dγ_p/dl against k, beside the joint-mixture prediction",
    config_cls=CompressionConfig,
    presets={
        "quick": Preset({"perturb_amounts": (0, 32, 64), "n_eval": 128, "seeds": 2,
                         "mixture_samples": 20_000},
                        "100k model, |D_p| 20000 (the toy core's cached pre-training), k 10-1000, 2 seeds",
                        est_seconds=11),
        # 80 seeds: the calibration's power for the theorem's band at slope 1 (5 seeds gave 0.02; 40,
        # with the noise their own run measured, 0.38)
        "full": Preset({"seeds": 80}, "100k model, |D_p| 20000, k 10-1000, 5 amounts, 80 seeds",
                       est_seconds=903),
    },
    run=run,
    readings=readings,
    draw="toymodels.science_figures:draw_compression",
    flags={"--k": "k", "--size": "size", "--seeds": "seeds"},
    units={"gamma": "bits per response token"},
)
