"""Mitigations on a real checkpoint: the toy mitigations experiment's treatments and readings, each
treatment one run of the bridge's rebound protocol (``llm_bridge.rebound.run_curves``) per (data
draw, training seed), with its format-matched neutral arm.

Each (treatment, run) is a cell; every treatment of a run loads the same checkpoint and draws the
same data, so the readings pair treatments by run. The reverse sweeps no treatment changes (from
theta0, and the neutral arm's where it trains by plain SFT) are computed once per run and shared.
The treatments' settings are the toy's (``toymodels.alignment.Strengths``, pre-registered); the
optimizer, amounts and steps are the rebound ``cpu-micro`` preset's. On a real task replay's
pre-training-like examples are the task's neutral (format-matched) examples, the nearest thing to
pre-training text it has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.config import Preset, require
from harness.experiment import Experiment
from harness.runs import RunDir
from llm_bridge import common
from llm_bridge.rebound import LLMReboundConfig, data_needs, run_curves
from toymodels.alignment import TREATMENTS, Strengths, check_treatments
from toymodels.protocols.mitigations import summarise


@dataclass(frozen=True, kw_only=True)
class LLMMitigationsConfig(LLMReboundConfig):
    treatments: tuple[str, ...] = TREATMENTS
    strengths: Strengths = field(default_factory=Strengths)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_treatments(self.treatments)
        require(not self.judge.scorer and not self.save_checkpoints,
                       "llm mitigations reads exact scores only: judge and save_checkpoints belong to llm rebound")


def measure_run(config: LLMMitigationsConfig, run_path: str, cell: Any, device: str) -> list[dict[str, Any]]:
    """One (start, draw, treatment, training seed) cell: the rebound protocol with that alignment."""
    from toymodels.protocols.rebound import curve_rows

    treatment = common.cell_treatment(cell)
    curves = run_curves(config, RunDir.load(run_path), *common.cell_run(cell), alignment=config.strengths.spec(treatment),
                        tag=treatment)
    rows = []
    for arm in curves.log_odds:
        name = config.task if arm == "aligned" else f"{config.task}+neutral-forward"
        rows += curve_rows(curves, arm, task=name)
    return rows


def data_needs_of(config: LLMMitigationsConfig) -> dict[str, int]:
    """Training examples per label (and preference pairs) that a run draws, checked before a model loads."""
    spec = config.probe
    needs = data_needs(spec, spec.warmup_examples, config.neutral_control)
    # replay draws its neutral examples after the warm-up's and the arm's
    for label, n in common.treatment_needs(config.treatments, config.strengths, spec.forward_amounts[-1]).items():
        needs[label] = needs.get(label, 0) + n
    return needs


def run(config: LLMMitigationsConfig, run_dir: RunDir) -> dict[str, Any]:
    from toymodels.protocols.rebound_readings import derived_rows

    rows = common.sweep_runs(config, run_dir, measure_run, data_needs_of(config), config.probe.n_eval,
                             "llm mitigations: runs")
    run_dir.write_metrics(rows + derived_rows(rows))
    return {**summarise(rows, config, run_dir.experiment, unit="training runs"),
            "n_runs": len(common.pretrained_runs(config)), "regime": common.regime(config.adapter, config.probe.optimizer),
            "provenance": common.provenance(config, run_dir)}


def readings(rows: Sequence[Mapping[str, Any]], experiment: str = "llm.mitigations") -> list[Any]:
    from toymodels.protocols.mitigation_readings import mitigation_predictions

    return mitigation_predictions(rows, experiment, unit="training runs")


def draw(run_dir: RunDir) -> None:
    from toymodels.mitigation_figures import draw_mitigations

    draw_mitigations(run_dir, common.model_tag(common.config_model(run_dir)))


EXPERIMENT = Experiment(
    name="llm.mitigations",
    help="Mitigations on a real checkpoint: SFT, replay, anchor, Vaccine, DPO and SimPO under the rebound protocol",
    config_cls=LLMMitigationsConfig,
    presets={
        "cpu-micro": Preset({}, "one run of each treatment at the rebound cpu-micro settings (LoRA r=8, lr 5e-4, "
                            "F in {0,6,12,24}, R every step to 32, neutral arm)", est_seconds=3600),
        "replicated": Preset(common.REPLICATED,
                             "cpu-micro x 6 independent runs (3 training seeds x 2 data draws) of each treatment",
                             # the reference run on 2 cores: 168 reverse sweeps (28 per (draw, seed) after
                             # sharing) at about 125 s each, two workers at a time
                             est_seconds=21000),
    },
    run=run, readings=readings, draw=draw, flags=common.FLAGS, default_preset="cpu-micro",
    units={"retention": "share of the alignment gain", "score": "log-odds (nats)", "kl": "nats per response token"},
)
