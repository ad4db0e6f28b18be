"""``elasticity toy lifecycle``: when does elasticity emerge along pre-training, and in which regimes?

One pre-training run per seed from random init, with checkpoints at ``checkpoints`` pre-training
examples (0 is the random init itself, the no-pre-training point). At each checkpoint the toy
core's align-then-reverse probe runs (alignment cut at F, F = 0 the control; then reverse
fine-tuning), at each probe learning rate in ``lrs``: at a large learning rate optimizer steps
dominate example counts. The rebound strength of a checkpoint is read against its own F = 0
control, in both score metrics (probability and log-odds): the excess initial decay rate at the
largest F, the excess late slope, the slowdown at S0 and the R_back trend (see ``toy.scale``).

Reported per (learning rate, score metric): the strength curves over pre-training with 95%
intervals, whether the effect is already present at random init, the first checkpoint whose
interval lies above 0 when it is not, and the slope of strength against log10(pre-training
examples). All of it is exploratory: ``toy.scale`` holds the pre-registered scale readings.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.config import Preset, require, seeds_of
from harness.experiment import Experiment
from harness.preregistration import reading
from harness.runs import RunDir
from harness.verdicts import Prediction, log_slope, t_estimate
from toymodels.corpus import Corpus, check_examples, check_task
from toymodels.model import check_size
from toymodels.protocols.rebound import PROBE_PRESETS, ReboundSpec, curve_rows, rebound_curves
from toymodels.protocols.rebound_readings import SCORES, STRENGTHS, derived_rows, strengths_by_run
from toymodels.sweep import Cell, Execution, Grid, run_grid, write_aggregate
from toymodels.tasks import ToyTask
from toymodels.train import PretrainSettings, PretrainSpec, pretrain


@dataclass(frozen=True, kw_only=True)
class LifecycleConfig:
    """``lrs`` sets the probe's learning rate, one grid axis value per rate."""

    task: str = "sentiment"
    size: str = "100k"
    checkpoints: tuple[int, ...] = (0, 250, 1000, 2500, 5000, 10_000, 20_000)  # pre-training examples
    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)  # probe (alignment and reverse) learning rates
    seeds: int = 5
    seed: int = 0
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    probe: ReboundSpec = field(default_factory=lambda: ReboundSpec(n_kl_samples=128))
    execution: Execution = field(default_factory=Execution)

    def __post_init__(self) -> None:
        check_task(self.task)
        check_size(self.size)
        require(all(c >= 0 for c in self.checkpoints), f"checkpoints must be >= 0, got {self.checkpoints}")
        require(list(self.checkpoints) == sorted(set(self.checkpoints)),
                f"checkpoints must be strictly increasing, got {self.checkpoints}")
        require(sum(c > 0 for c in self.checkpoints) >= 2, "checkpoints need at least two positive amounts")
        check_examples("checkpoints", self.checkpoints)
        require(all(lr > 0 for lr in self.lrs), "learning rates must be > 0")
        require(self.probe.optimizer.lr == ReboundSpec().optimizer.lr,
                "lifecycle sets the probe's learning rate from lrs: set lrs, not probe.optimizer.lr")
        require(self.seeds >= 2, f"seeds must be >= 2 for a confidence interval, got {self.seeds}")
        self.grid()

    def grid(self) -> Grid:
        return Grid.of({"lr": self.lrs, "pretrain_examples": self.checkpoints}, seeds_of(self), positive=["lr"])

    def probe_at(self, lr: float) -> ReboundSpec:
        return replace(self.probe, optimizer=replace(self.probe.optimizer, lr=lr))

    def pretrain_spec(self, seed: int) -> PretrainSpec:
        positive = [c for c in self.checkpoints if c > 0]
        return PretrainSpec(size=self.size, n_pretrain=positive[-1], settings=self.pretrain, seed=seed,
                            checkpoint_fractions=tuple(c / positive[-1] for c in positive))


def measure_cell(config: LifecycleConfig, cell: Cell, device: str) -> list[dict[str, Any]]:
    """The probe at one checkpoint (0: random init, same seed) and one probe learning rate."""
    spec = config.pretrain_spec(cell.seed)
    examples = int(cell["pretrain_examples"])
    if examples == 0:
        spec = PretrainSpec(size=spec.size, n_pretrain=1, seed=cell.seed, random_init=True)
        model = pretrain(spec, device=device, use_cache=False).model(1.0, device=device)
    else:
        model = pretrain(spec, device=device).model(examples / spec.n_pretrain, device=device)
    task = ToyTask(Corpus(spec.corpus), config.task)
    return curve_rows(rebound_curves(model, task, config.probe_at(float(cell["lr"])), cell.seed))


def run(config: LifecycleConfig, run_dir: RunDir) -> dict[str, Any]:
    table = run_grid(run_dir, config, measure_cell, desc="toy.lifecycle")
    run_dir.write_metrics(table + derived_rows(table, with_strengths=True))
    write_aggregate(run_dir, table)
    return {"predictions": readings(table), "regimes": regimes(table),
            "tokens_per_example": Corpus(config.pretrain_spec(0).corpus).seq_len}


def _strengths(strengths: Mapping[tuple[Any, tuple], Mapping[str, float]], measure: str,
               lr: float) -> dict[Any, dict[int, float]]:
    """seed -> checkpoint -> a strength at probe learning rate ``lr``."""
    out: dict[Any, dict[int, float]] = {}
    for (seed, group), values in strengths.items():
        cond = dict(group)
        if cond["lr"] == lr:
            out.setdefault(seed, {})[cond["pretrain_examples"]] = values[measure]
    return out


def _lrs(strengths: Mapping[tuple[Any, tuple], Any]) -> list[float]:
    return sorted({dict(group)["lr"] for _, group in strengths})


def readings(table: Sequence[Mapping[str, Any]], experiment: str = "toy.lifecycle") -> list[Prediction]:
    """Per (probe learning rate, score scale): the slope of the excess initial decay rate against
    log10(pre-training examples) over the checkpoints after random init, per seed, with a t-interval
    over seeds. All exploratory: the lifecycle maps regimes, the scale experiment holds the primary."""
    strengths = strengths_by_run(table)
    predictions = []
    for lr, kind in itertools.product(_lrs(strengths), SCORES):
        by_seed = _strengths(strengths, f"excess_initial_rate_{kind}", lr)
        suffix = "" if kind == "log_odds" else ".prob"
        predictions.append(reading(
            f"lifecycle.elasticity_grows_with_pretraining.lr{lr:g}{suffix}",
            t_estimate([log_slope(by_seed[s]) for s in sorted(by_seed)]),
            f"slope of the excess initial decay rate ({kind}; largest F minus the F=0 control) "
            f"against log10(pre-training examples), probe lr {lr:g}", experiment=experiment))
    return predictions


def regimes(table: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (learning rate, score scale): every strength along pre-training, mean and 95% interval
    over seeds at each checkpoint, and whether the excess initial rate's interval lies above 0 at
    random init (then a later rise is not emergence) and, if not, at which checkpoint it first does.
    Descriptive: no verdicts."""
    strengths, out = strengths_by_run(table), []
    for lr, kind in itertools.product(_lrs(strengths), SCORES):
        curves = {}
        for strength in STRENGTHS:
            by_seed = _strengths(strengths, f"{strength}_{kind}", lr)
            checkpoints = sorted({c for v in by_seed.values() for c in v})
            curves[strength] = [{"pretrain_examples": c, "mean": est.value, "ci": list(est.ci),
                                 "above_zero": bool(est.ci[0] > 0)}
                                for c in checkpoints
                                for est in [t_estimate([by_seed[s].get(c, float("nan")) for s in sorted(by_seed)])]]
        curve = curves["excess_initial_rate"]
        at_init = curve[0]["above_zero"] if curve and curve[0]["pretrain_examples"] == 0 else None
        first_above = None if at_init else next(
            (p["pretrain_examples"] for p in curve if p["pretrain_examples"] > 0 and p["above_zero"]), None)
        out.append({"lr": lr, "score": kind, "curves": curves, "present_at_random_init": at_init,
                    "first_checkpoint_above_zero": first_above})
    return out


EXPERIMENT = Experiment(
    name="toy.lifecycle",
    help="rebound strength along pre-training from random init, by probe learning rate and score metric",
    config_cls=LifecycleConfig,
    presets={
        "quick": Preset({"size": "50k", "checkpoints": (0, 1000, 3000), "lrs": (1e-3, 3e-3), **PROBE_PRESETS["tiny"],
                         "seeds": 2},
                        "50k model, checkpoints 0/1000/3000, 2 learning rates, 2 seeds", est_seconds=12),
        "reduced": Preset({"checkpoints": (0, 1000, 5000, 20_000), "lrs": (1e-3, 3e-3), **PROBE_PRESETS["reduced"]},
                          "100k model, random init and 3 checkpoints to 20k examples (shared with toy.scale "
                          "reduced), 2 learning rates, F to 500, R to 256, 5 seeds", est_seconds=33),
        "full": Preset({}, "100k model, 7 checkpoints (random init to 20k examples), 3 learning rates, "
                       "F to 1000, R to 512, 5 seeds", est_seconds=269),
    },
    run=run,
    readings=readings,
    draw="toymodels.science_figures:draw_lifecycle",
    flags={"--seeds": "seeds", "--size": "size"},
    units={"score": "probability and log-odds (nats)", "rate": "score lost per reverse example"},
)
