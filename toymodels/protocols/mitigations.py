"""Mitigations: does anything make alignment stick? The rebound protocol once per alignment condition.

Conditions (pre-registered in harness/preregistration.toml, one factor at a time): plain ``sft``;
SFT with ``replay``, with the L2 ``anchor`` to theta0, with the ``vaccine`` perturbation; and the
preference methods ``dpo`` and ``simpo`` without mitigation (:mod:`toymodels.alignment`). Every
condition of a seed starts from the same pre-trained model (and, with ``control``, from the same
random init: the no-pre-training control), runs the same warm-up, forward amounts F (F = 0 is the
control), reverse data and order, and trains a format-matched neutral arm beside the aligned one.
Readings: :mod:`toymodels.protocols.mitigation_readings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.config import Preset, require, seeds_of
from harness.experiment import Experiment
from harness.runs import RunDir
from toymodels.alignment import TREATMENTS, AlignmentSpec, Strengths, check_treatments
from toymodels.corpus import Corpus, CorpusConfig, check_pretraining_set, check_tasks
from toymodels.model import check_size
from toymodels.protocols.mitigation_readings import condition_means, mitigation_predictions
from toymodels.protocols.rebound import ReboundSpec, curve_rows, rebound_curves
from toymodels.protocols.rebound_readings import derived_rows
from toymodels.sweep import Cell, Execution, Grid, run_grid
from toymodels.tasks import make_tasks
from toymodels.train import PretrainSettings, PretrainSpec, pretrain

# the reduced rebound probe, its reverse grid to 512 so that every condition's way back to S0 is seen
PROBE = {"forward_amounts": (0, 125, 250, 500), "reverse_amounts": tuple(range(0, 513, 16)),
         "n_eval": 128, "n_kl_samples": 64, "kl_every": 4}


@dataclass(frozen=True, kw_only=True)
class MitigationsConfig:
    tasks: tuple[str, ...] = ("sentiment", "safety", "format")
    treatments: tuple[str, ...] = TREATMENTS
    size: str = "100k"
    seeds: int = 6
    seed: int = 0
    n_pretrain: int = 20_000
    pi0: float = 0.3
    control: bool = True  # also from a random init: the no-pre-training control
    neutral_control: bool = True  # a format-matched arm trained on neutral examples beside each aligned one
    strengths: Strengths = field(default_factory=Strengths)
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    probe: ReboundSpec = field(default_factory=lambda: ReboundSpec(**PROBE))
    execution: Execution = field(default_factory=Execution)

    def __post_init__(self) -> None:
        require(self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}")
        check_tasks(self.tasks)
        check_treatments(self.treatments)
        check_size(self.size)
        check_pretraining_set(self.n_pretrain, self.pi0)

    @property
    def inits(self) -> list[str]:
        return ["pretrained"] + (["random"] if self.control else [])

    def grid(self) -> Grid:
        return Grid.of({"init": self.inits, "treatment": self.treatments}, seeds_of(self))


def measure_cell(config: MitigationsConfig, cell: Cell, device: str) -> list[dict[str, Any]]:
    """One (start, condition, seed): the rebound protocol on every task with that alignment."""
    init, condition = str(cell["init"]), str(cell["treatment"])
    pspec = PretrainSpec(size=config.size, n_pretrain=config.n_pretrain, settings=config.pretrain, seed=cell.seed,
                         corpus=CorpusConfig(pi0=config.pi0), random_init=init == "random")
    pre = pretrain(pspec, device=device)
    spec, rows = config.probe, []
    for task in make_tasks(Corpus(pspec.corpus), config.tasks):
        # the neutral arm's examples come after the warm-up's in the same stream
        neutral = task.neutral_data(spec.warmup_examples + spec.forward_amounts[-1], seed=cell.seed)
        controls = {"neutral": neutral[spec.warmup_examples:]} if config.neutral_control else {}
        curves = rebound_curves(pre.model(device=device), task, spec, cell.seed, controls=controls,
                                alignment=config.strengths.spec(condition))
        for arm in curves.log_odds:
            rows += curve_rows(curves, arm, task=task.name if arm == "aligned" else f"{task.name}+neutral-forward")
    return rows


def summarise(rows: list[dict[str, Any]], config: Any, experiment: str, unit: str = "seeds") -> dict[str, Any]:
    """The summary of a mitigations table (toy or bridge)."""
    return {"predictions": mitigation_predictions(rows, experiment, unit),
            "condition_means": condition_means(rows), "treatments": list(config.treatments),
            "strengths": {c: _plain(config.strengths.spec(c)) for c in config.treatments}}


def _plain(spec: AlignmentSpec) -> Mapping[str, Any]:
    default = AlignmentSpec()
    return {k: v for k, v in vars(spec).items() if k == "method" or v != getattr(default, k)}


def run(config: MitigationsConfig, run_dir: RunDir) -> dict[str, Any]:
    rows = run_grid(run_dir, config, measure_cell, desc="toy.mitigations")
    run_dir.write_metrics(rows + derived_rows(rows))
    return summarise(rows, config, "toy.mitigations")


PRESETS = {
    "micro": Preset({"seeds": 2, "tasks": ("sentiment",), "treatments": ("sft", "anchor", "dpo"), "n_pretrain": 2000,
                     "probe.forward_amounts": (0, 32, 64), "probe.reverse_amounts": tuple(range(0, 161, 16)),
                     "probe.n_eval": 32, "probe.n_kl_samples": 32, "probe.kl_every": 5},
                    "tests: 2 seeds, one task, three conditions, tiny amounts", est_seconds=40),
    "quick": Preset({"seeds": 3, "tasks": ("sentiment",), "control": False},
                    "one task, six conditions, 3 seeds, no random-init control", est_seconds=400),
    "reduced": Preset({"tasks": ("sentiment",)}, "one task, six conditions, 6 seeds, each also from a random init",
                      est_seconds=1200),
    "full": Preset({}, "3 tasks, six conditions, 6 seeds, each also from a random init", est_seconds=3600),
}

EXPERIMENT = Experiment(
    name="toy.mitigations",
    help=__doc__.split("\n\n")[0],
    config_cls=MitigationsConfig,
    presets=PRESETS,
    run=run,
    readings=lambda rows, experiment: mitigation_predictions(rows, experiment),
    draw="toymodels.mitigation_figures:draw_mitigations",
    flags={"--seeds": "seeds"},
    units={"retention": "share of the alignment gain", "score": "log-odds (nats)", "kl": "nats per response token"},
)
